//! Confirmed changes in the daemon: recording them durably (rule C1), the
//! sync worker that delivers them (rule C2), and what the local API shows
//! of the outbox and the audit trail.
//!
//! The store is synchronous (SQLite); every call runs on tokio's blocking
//! pool so the API and the devices never wait on a disk flush.

use std::sync::Arc;

use kiosk_corebank::{ChangeKind, ChangeRequest, CoreBankClient, Source};
use kiosk_proto::{
    ApiError, AuditReport, ChangeSummary, ErrorCode, Event, SubmitChangeParams, SubmittedChange,
    SyncListParams, SyncStatusInfo,
};

use crate::daemon::Shared;
use crate::store::{self, Actor, AuditNote, ChangeState, ListFilter, Store};
use crate::sync::{self, SyncEvent, SyncOptions, SystemClock};

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
        crate::Error::Busy(_) => ApiError::new(ErrorCode::Busy, e.to_string()),
        other => {
            tracing::error!(error = %other, "store failure");
            ApiError::new(ErrorCode::Internal, other.to_string())
        }
    }
}

impl Shared {
    fn store(&self) -> Result<Arc<Store>, ApiError> {
        self.store.clone().ok_or_else(|| {
            ApiError::new(ErrorCode::NotAllowed, "this kiosk has no store configured")
        })
    }

    async fn with_store<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, crate::Error> + Send + 'static,
    {
        let store = self.store()?;
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
        let kiosk = &self.config.kiosk;
        let change = ChangeRequest {
            change_id: uuid::Uuid::new_v4().to_string(),
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
            .with_store(move |s| s.commit_change(&change, note))
            .await?;
        tracing::info!(change_id = %stored.change_id, kind = kind_name, "change recorded");
        self.emit(Event::ChangeRecorded {
            change_id: stored.change_id.clone(),
            kind: kind_name.into(),
        });
        self.wake.notify_one();
        Ok(SubmittedChange {
            change_id: stored.change_id,
        })
    }

    /// `submit_change`: demo and test kiosks only.
    pub async fn submit_change(
        &self,
        params: SubmitChangeParams,
    ) -> Result<SubmittedChange, ApiError> {
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
        let kind: ChangeKind = serde_json::from_value(params.change.clone())
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid change: {e}")))?;
        self.record_change(
            params.customer_id,
            kind,
            Actor::Kiosk,
            "recorded through submit_change".into(),
        )
        .await
    }

    pub async fn sync_status(&self) -> Result<SyncStatusInfo, ApiError> {
        let st = self.with_store(|s| s.sync_status(now_ms())).await?;
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
        let list = self.with_store(move |s| s.list(&filter)).await?;
        Ok(list.into_iter().map(summary).collect())
    }

    pub async fn sync_rejected(&self) -> Result<Vec<ChangeSummary>, ApiError> {
        let list = self.with_store(|s| s.rejected()).await?;
        Ok(list.into_iter().map(summary).collect())
    }

    pub async fn sync_retry(&self, change_id: String) -> Result<ChangeSummary, ApiError> {
        let note = AuditNote {
            at_ms: now_ms(),
            actor: Actor::Technician,
            detail: "retry requested".into(),
        };
        let c = self.with_store(move |s| s.retry(&change_id, note)).await?;
        self.wake.notify_one();
        Ok(summary(c))
    }

    /// Audit a technician's call of a technician-only method (actor
    /// technician, the method and uid in the detail). Without a store the
    /// kiosk keeps no audit trail and nothing is recorded.
    pub async fn audit_technician(&self, method: &'static str, uid: u32) -> Result<(), ApiError> {
        if self.store.is_none() {
            return Ok(());
        }
        let entry = store::AuditEntry {
            at_ms: now_ms(),
            actor: Actor::Technician,
            action: store::AuditAction::TechnicianRequest,
            subject: None,
            detail: format!("method={method} uid={uid}"),
        };
        self.with_store(move |s| s.audit_append(&entry).map(|_| ()))
            .await
    }

    /// A technician PIN was tried at the UI: right or wrong, never the PIN.
    pub async fn audit_pin(&self, outcome: &'static str, uid: u32) -> Result<(), ApiError> {
        if self.store.is_none() {
            return Ok(());
        }
        let entry = store::AuditEntry {
            at_ms: now_ms(),
            actor: Actor::Technician,
            action: store::AuditAction::TechnicianPin,
            subject: None,
            detail: format!("outcome={outcome} uid={uid}"),
        };
        self.with_store(move |s| s.audit_append(&entry).map(|_| ()))
            .await
    }

    pub async fn audit_verify(&self) -> Result<AuditReport, ApiError> {
        let r = self.with_store(|s| s.audit_verify()).await?;
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
                self.emit(Event::ChangeDelivered {
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
                self.emit(Event::ChangeRejected {
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
            SyncEvent::Purged { count } => self.emit(Event::PayloadsPurged {
                count: count as u64,
            }),
            SyncEvent::CoreBankLink { reachable, detail } => self.set_link(reachable, detail),
        }
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

/// Start the sync worker when the kiosk has a store and a core bank.
pub fn start_sync(
    shared: &Arc<Shared>,
) -> Result<Option<tokio::task::JoinHandle<()>>, crate::Error> {
    let (Some(store), Some(bank), Some(store_section)) = (
        shared.store.clone(),
        shared.config.corebank.as_ref(),
        shared.config.store.as_ref(),
    ) else {
        return Ok(None);
    };
    let client = CoreBankClient::new(bank, &shared.config.kiosk.id)
        .map_err(|e| crate::Error::CoreBank(e.to_string()))?;
    // Learn the clock skew once at start; the worker reports reachability.
    let health_client = client.clone();
    let health_shared = shared.clone();
    tokio::spawn(async move {
        match health_client.health().await {
            Ok(h) => {
                if h.skew_exceeds_limit {
                    tracing::error!(
                        skew_ms = h.skew_ms,
                        "CLOCK SKEW with the core bank exceeds the limit"
                    );
                }
                let mut link = health_shared.link_mut();
                link.clock_skew_ms = Some(-h.skew_ms);
                link.reachable.get_or_insert(true);
            }
            Err(e) => health_shared.set_link(false, Some(e.to_string())),
        }
    });
    let options = SyncOptions::from_config(&shared.config.sync, store_section);
    let events = shared.clone();
    let task = tokio::spawn(sync::run(
        store,
        client,
        shared.wake.clone(),
        shared.shutdown.clone(),
        SystemClock,
        options,
        move |event| events.on_sync_event(event),
    ));
    Ok(Some(task))
}

/// The bank's status of a delivered change, as the local API says it.
pub(crate) fn delivery(status: kiosk_corebank::ChangeStatus) -> kiosk_proto::Delivery {
    match status {
        kiosk_corebank::ChangeStatus::Applied => kiosk_proto::Delivery::Applied,
        kiosk_corebank::ChangeStatus::Superseded => kiosk_proto::Delivery::Superseded,
    }
}
