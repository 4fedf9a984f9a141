//! The [`Changes`] service: confirmed changes recorded durably (rule C1),
//! the sync worker that delivers them (rule C2), the link to the core bank
//! (its one client, made once and shared by handle), the audit trail, and
//! what the local API shows of the outbox.
//!
//! The store is synchronous (SQLite); every call runs on tokio's blocking
//! pool so the API and the devices never wait on a disk flush.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use kiosk_corebank::{ChangeKind, ChangeRequest, CoreBankClient, Source};
use kiosk_proto::{
    ApiError, AuditReport, ChangeSummary, ErrorCode, Event, SubmitChangeParams, SubmittedChange,
    SyncListParams, SyncStatusInfo,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::clock::SteadyClock;
use crate::config::Config;
use crate::store::{self, Actor, AuditNote, ChangeState, ListFilter, Store};
use crate::sync::{self, SyncEvent, SyncOptions};

/// What the daemon last learnt of its link to the core bank.
#[derive(Debug, Default, Clone)]
pub struct LinkState {
    pub reachable: Option<bool>,
    pub detail: Option<String>,
    pub clock_skew_ms: Option<i64>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A store error as the local API reports it (no personal data in either).
fn store_error(e: crate::Error) -> ApiError {
    if e.is_store_unavailable() {
        return ApiError::new(ErrorCode::StoreUnavailable, e.to_string());
    }
    match e {
        crate::Error::ChangeNotFound { .. } => ApiError::new(ErrorCode::NotFound, e.to_string()),
        crate::Error::ChangeState { .. } | crate::Error::PayloadPurged { .. } => {
            ApiError::new(ErrorCode::NotAllowed, e.to_string())
        }
        crate::Error::InvalidChange(_) => ApiError::new(ErrorCode::BadRequest, e.to_string()),
        crate::Error::Lifecycle(l) if l.is_not_found() => {
            ApiError::new(ErrorCode::NotFound, l.to_string())
        }
        crate::Error::Lifecycle(l) => ApiError::new(ErrorCode::NotAllowed, l.to_string()),
        crate::Error::Busy(_) => ApiError::new(ErrorCode::Busy, e.to_string()),
        other => {
            tracing::error!(error = %other, "store failure");
            ApiError::new(ErrorCode::Internal, other.to_string())
        }
    }
}

/// The changes service.
#[derive(Debug)]
pub struct Changes {
    config: Arc<Config>,
    bus: Arc<Bus>,
    /// The local database (outbox, audit trail, queue counters), if configured.
    store: Option<Arc<Store>>,
    /// Wakes the sync worker when a change is committed or retried.
    wake: Arc<tokio::sync::Notify>,
    link: Mutex<LinkState>,
    /// The core-bank client for the flows' calls (made on first use).
    client: OnceLock<Option<CoreBankClient>>,
}

impl Changes {
    pub fn new(config: Arc<Config>, store: Option<Arc<Store>>, bus: Arc<Bus>) -> Changes {
        Changes {
            config,
            bus,
            store,
            wake: Arc::new(tokio::sync::Notify::new()),
            link: Mutex::new(LinkState::default()),
            client: OnceLock::new(),
        }
    }

    /// The store, if the kiosk has one.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    pub(crate) fn require_store(&self) -> Result<Arc<Store>, ApiError> {
        self.store.clone().ok_or_else(|| {
            ApiError::new(ErrorCode::NotAllowed, "this kiosk has no store configured")
        })
    }

    /// The core-bank client for lookups, answers and codes (`None`: no
    /// `[corebank]`, or a client that cannot be made, logged once).
    pub fn bank_client(&self) -> Option<CoreBankClient> {
        self.client
            .get_or_init(|| {
                let bank = self.config.corebank.as_ref()?;
                match CoreBankClient::new(bank, &self.config.kiosk.id) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "core bank client unavailable");
                        None
                    }
                }
            })
            .clone()
    }

    /// The core-bank link as last seen.
    pub fn link(&self) -> LinkState {
        self.link_mut().clone()
    }

    fn link_mut(&self) -> MutexGuard<'_, LinkState> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record reachability; emit an event when it changes.
    pub(crate) fn set_link(&self, reachable: bool, detail: Option<String>) {
        let changed = {
            let mut link = self.link_mut();
            let changed = link.reachable != Some(reachable);
            link.reachable = Some(reachable);
            link.detail = detail.clone();
            changed
        };
        if changed {
            tracing::info!(
                reachable,
                detail = detail.as_deref().unwrap_or(""),
                "core bank link"
            );
            self.bus.emit(Event::CoreBankLink { reachable, detail });
        }
    }

    /// The sync backlog and the store filesystem's (free, total) bytes
    /// (`None` without a store).
    pub async fn backlog_and_disk(&self) -> Option<(Option<u64>, Option<(u64, u64)>)> {
        let store = self.store.clone()?;
        tokio::task::spawn_blocking(move || {
            let backlog = store.outbox().backlog().ok();
            let dir = store
                .path()
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| std::path::PathBuf::from("."));
            // The field types differ between targets (u32 or u64).
            #[allow(clippy::unnecessary_cast)]
            let disk = nix::sys::statvfs::statvfs(&dir).ok().map(|v| {
                let frag = v.fragment_size() as u64;
                (
                    (v.blocks_available() as u64).saturating_mul(frag),
                    (v.blocks() as u64).saturating_mul(frag),
                )
            });
            (backlog, disk)
        })
        .await
        .ok()
    }

    /// Run `f` on the store on tokio's blocking pool.
    pub(crate) async fn with_store<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, crate::Error> + Send + 'static,
    {
        let store = self.require_store()?;
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("store task failed: {e}")))?
            .map_err(store_error)
    }

    /// Record a confirmed change: durable in SQLite (outbox + audit, one
    /// transaction, fsync'd) before this returns; then the sync worker is
    /// woken.
    pub async fn record_change(
        &self,
        customer_id: String,
        kind: ChangeKind,
        actor: Actor,
        detail: String,
    ) -> Result<SubmittedChange, ApiError> {
        self.record_change_with(customer_id, kind, actor, detail, None)
            .await
    }

    /// [`Changes::record_change`], with `also` audited first in the same
    /// transaction (a technician's `submit_change`: one commit for both).
    async fn record_change_with(
        &self,
        customer_id: String,
        kind: ChangeKind,
        actor: Actor,
        detail: String,
        also: Option<store::AuditEntry>,
    ) -> Result<SubmittedChange, ApiError> {
        let kiosk = &self.config.kiosk;
        let change = ChangeRequest {
            // Time-ordered (v7): each new id goes to the end of the
            // outbox's change_id index, not to a random page of it.
            change_id: uuid::Uuid::now_v7().to_string(),
            customer_id,
            occurred_at_ms: now_ms(),
            source: Source {
                kiosk_id: kiosk.id.clone(),
                branch_id: kiosk.branch_id.clone(),
                channel: kiosk.profile.as_str().to_string(),
            },
            kind,
        };
        let kind_name = match &change.kind {
            ChangeKind::IdValidity { .. } => "id_validity",
            ChangeKind::Mobile { .. } => "mobile",
        };
        let note = AuditNote {
            at_ms: change.occurred_at_ms,
            actor,
            detail,
        };
        let stored = self
            .with_store(move |s| s.outbox().commit_change_with(&change, note, also))
            .await?;
        tracing::info!(change_id = %stored.change_id, kind = kind_name, "change recorded");
        self.bus.emit(Event::ChangeRecorded {
            change_id: stored.change_id.clone(),
            kind: kind_name.into(),
        });
        self.wake.notify_one();
        Ok(SubmittedChange {
            change_id: stored.change_id,
        })
    }

    /// `submit_change`: demo and test kiosks only. A technician's call
    /// (`uid`), audited (`technician_request`) in the same transaction as
    /// the change it records; a refused call is audited on its own.
    pub async fn submit_change(
        &self,
        params: SubmitChangeParams,
        uid: u32,
    ) -> Result<SubmittedChange, ApiError> {
        let checked = self.check_direct_change(params);
        let (customer_id, kind) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                self.audit_technician("submit_change", uid).await?;
                return Err(e);
            }
        };
        self.record_change_with(
            customer_id,
            kind,
            Actor::Kiosk,
            "recorded through submit_change".into(),
            Some(technician_entry("submit_change", uid)),
        )
        .await
    }

    fn check_direct_change(
        &self,
        params: SubmitChangeParams,
    ) -> Result<(String, ChangeKind), ApiError> {
        if !self.config.api.allow_direct_changes {
            return Err(ApiError::new(
                ErrorCode::NotAllowed,
                "submit_change is off on this kiosk (api.allow_direct_changes)",
            ));
        }
        if params.customer_id.trim().is_empty() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "customer_id must not be empty",
            ));
        }
        let kind: ChangeKind = serde_json::from_value(params.change)
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid change: {e}")))?;
        Ok((params.customer_id, kind))
    }

    pub async fn sync_status(&self) -> Result<SyncStatusInfo, ApiError> {
        let st = self
            .with_store(|s| s.outbox().sync_status(now_ms()))
            .await?;
        let link = self.link();
        Ok(SyncStatusInfo {
            backlog: st.pending,
            oldest_pending_age_s: st.oldest_pending_age.map(|d| d.as_secs()),
            rejected: st.rejected,
            delivered: st.delivered,
            last_error: st
                .last_error
                .or(link.detail.filter(|_| link.reachable == Some(false))),
            last_delivery_at_ms: st.last_delivery_at_ms,
            core_reachable: link.reachable,
            clock_skew_ms: link.clock_skew_ms,
        })
    }

    pub async fn sync_list(&self, params: SyncListParams) -> Result<Vec<ChangeSummary>, ApiError> {
        let state = match params.state.as_deref() {
            None => None,
            Some(s) => Some(ChangeState::parse(s).ok_or_else(|| {
                ApiError::new(ErrorCode::BadRequest, format!("unknown state {s:?}"))
            })?),
        };
        let filter = ListFilter {
            state,
            customer_id: None,
            limit: params.limit.unwrap_or(100).min(10_000),
        };
        let list = self.with_store(move |s| s.outbox().list(&filter)).await?;
        Ok(list.into_iter().map(summary).collect())
    }

    pub async fn sync_rejected(&self) -> Result<Vec<ChangeSummary>, ApiError> {
        let list = self.with_store(|s| s.outbox().rejected()).await?;
        Ok(list.into_iter().map(summary).collect())
    }

    pub async fn sync_retry(&self, change_id: String) -> Result<ChangeSummary, ApiError> {
        let note = AuditNote {
            at_ms: now_ms(),
            actor: Actor::Technician,
            detail: "retry requested".into(),
        };
        let c = self
            .with_store(move |s| s.outbox().retry(&change_id, note))
            .await?;
        self.wake.notify_one();
        Ok(summary(c))
    }

    /// Append an audit record (masked data only: rule S3). Without a store
    /// the kiosk keeps no audit trail and nothing is recorded.
    pub async fn audit(&self, entry: store::AuditEntry) -> Result<(), ApiError> {
        if self.store.is_none() {
            return Ok(());
        }
        self.with_store(move |s| s.audit().audit_append(&entry).map(|_| ()))
            .await
    }

    /// Audit a technician's call of a technician-only method (actor
    /// technician, the method and uid in the detail).
    pub async fn audit_technician(&self, method: &'static str, uid: u32) -> Result<(), ApiError> {
        self.audit(technician_entry(method, uid)).await
    }

    /// A technician PIN was tried at the UI: right or wrong, never the PIN.
    pub async fn audit_pin(&self, outcome: &'static str, uid: u32) -> Result<(), ApiError> {
        self.audit(store::AuditEntry {
            at_ms: now_ms(),
            actor: Actor::Technician,
            action: store::AuditAction::TechnicianPin,
            subject: None,
            detail: format!("outcome={outcome} uid={uid}"),
        })
        .await
    }

    pub async fn audit_verify(&self) -> Result<AuditReport, ApiError> {
        let r = self.with_store(|s| s.audit().audit_verify()).await?;
        Ok(AuditReport {
            records: r.records,
            ok: r.ok(),
            first_bad_seq: r.first_bad.as_ref().map(|b| b.seq),
            problem: r.first_bad.map(|b| b.reason),
        })
    }

    fn on_sync_event(&self, event: SyncEvent) {
        match event {
            SyncEvent::Delivered {
                change_id,
                status,
                core_ref,
                replayed,
            } => {
                let outcome = delivery(status);
                tracing::info!(%change_id, %outcome, %core_ref, replayed, "change delivered");
                self.set_link(true, None);
                self.bus.emit(Event::ChangeDelivered {
                    change_id,
                    outcome,
                    core_ref,
                });
            }
            SyncEvent::Rejected {
                change_id,
                code,
                message,
            } => {
                tracing::warn!(%change_id, %code, %message, "change rejected by the core bank");
                self.bus.emit(Event::ChangeRejected {
                    change_id,
                    code,
                    message,
                });
            }
            SyncEvent::Retrying {
                change_id,
                at_ms,
                reason,
            } => {
                tracing::info!(%change_id, at_ms, %reason, "delivery will be retried");
            }
            SyncEvent::Purged { count } => self.bus.emit(Event::PayloadsPurged {
                count: count as u64,
            }),
            SyncEvent::CoreBankLink { reachable, detail } => self.set_link(reachable, detail),
        }
    }
}

/// The audit record of a technician's call (actor technician, the method
/// and uid in the detail).
fn technician_entry(method: &'static str, uid: u32) -> store::AuditEntry {
    store::AuditEntry {
        at_ms: now_ms(),
        actor: Actor::Technician,
        action: store::AuditAction::TechnicianRequest,
        subject: None,
        detail: format!("method={method} uid={uid}"),
    }
}

fn summary(c: store::ChangeSummary) -> ChangeSummary {
    ChangeSummary {
        change_id: c.change_id,
        kind: c.kind,
        customer_id: c.customer_id,
        state: c.state.as_str().to_string(),
        attempts: c.attempts,
        created_at_ms: c.created_at_ms,
        last_error: c.last_error,
        outcome: c.outcome.map(delivery),
        core_ref: c.core_ref,
        rejection_code: c.rejection_code,
        rejection_message: c.rejection_message,
    }
}

/// Open the store of the config, if any (on the blocking pool).
pub async fn open_store(
    config: &crate::config::Config,
) -> Result<Option<Arc<Store>>, crate::Error> {
    let Some(section) = config.store.clone() else {
        return Ok(None);
    };
    let store = tokio::task::spawn_blocking(move || Store::open_config(&section))
        .await
        .map_err(|e| crate::Error::Io(std::io::Error::other(e)))??;
    Ok(Some(Arc::new(store)))
}

impl Changes {
    /// Start the sync worker (on `tasks`) when the kiosk has a store and a
    /// core bank; it stops when `shutdown` is cancelled.
    pub fn start_sync(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, crate::Error> {
        let (Some(store), Some(bank), Some(store_section)) = (
            self.store.clone(),
            self.config.corebank.as_ref(),
            self.config.store.as_ref(),
        ) else {
            return Ok(None);
        };
        let client = CoreBankClient::new(bank, &self.config.kiosk.id)
            .map_err(|e| crate::Error::CoreBank(e.to_string()))?;
        let options = SyncOptions::from_config(&self.config.sync, store_section);
        let (changes, wake) = (self.clone(), self.wake.clone());
        let task = tasks.spawn(async move {
            // Learn the clock skew once at start, beside the worker (which
            // reports reachability from then on).
            let health = async {
                tokio::select! {
                    _ = changes.check_health(&client) => {}
                    _ = shutdown.cancelled() => {}
                }
            };
            let events = changes.clone();
            let worker = sync::run(
                store,
                client.clone(),
                wake,
                shutdown.clone(),
                SteadyClock::start(),
                options,
                move |event| events.on_sync_event(event),
            );
            tokio::join!(health, worker);
        });
        Ok(Some(task))
    }

    async fn check_health(&self, client: &CoreBankClient) {
        match client.health().await {
            Ok(h) => {
                if h.skew_exceeds_limit {
                    tracing::error!(
                        skew_ms = h.skew_ms,
                        "CLOCK SKEW with the core bank exceeds the limit"
                    );
                }
                let mut link = self.link_mut();
                link.clock_skew_ms = Some(-h.skew_ms);
                link.reachable.get_or_insert(true);
            }
            Err(e) => self.set_link(false, Some(e.to_string())),
        }
    }
}

/// The bank's status of a delivered change, as the local API says it.
pub(crate) fn delivery(status: kiosk_corebank::ChangeStatus) -> kiosk_proto::Delivery {
    match status {
        kiosk_corebank::ChangeStatus::Applied => kiosk_proto::Delivery::Applied,
        kiosk_corebank::ChangeStatus::Superseded => kiosk_proto::Delivery::Superseded,
    }
}
