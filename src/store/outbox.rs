//! The outbox: confirmed changes on their way to the core bank.
//!
//! A row's life (`state`, plus the `in_flight` mark):
//!
//! ```text
//! commit ─► pending ──begin_attempt(Deliver)──► pending+in_flight ──POST──► outcome
//!              ▲                                                              │
//!              │ Deliver (reconcile found nothing)       RetryAt{then} ◄──────┤
//!              │                                          Reconcile  ◄────────┤ (ambiguous)
//!           reconcile ◄──begin_attempt(Reconcile)── ...   Done ─► delivered ◄─┤
//!                                                         Rejected ─► rejected┘
//! ```
//!
//! The decisions come from [`crate::sync`]'s state machine; this module only
//! applies them, each in one transaction with its audit record, and keeps
//! two invariants whatever the caller does: a row in `reconcile` (or still
//! marked in flight) is never handed out for a plain `POST`, and a final row
//! (`delivered`, `rejected`) never changes again except by a technician's
//! [`Outbox::retry`](crate::store::Outbox::retry) or a purge of its payload.

use std::time::Duration;

use kiosk_corebank::{ChangeRequest, ChangeStatus};
use rusqlite::{Connection, OptionalExtension, params};

use super::audit::{self, Actor, AuditAction, AuditEntry, AuditNote};
use super::crypto::{SecretChange, kind_name};
use super::{Failure, Inner, Result, Store, bounded, millis};
use crate::Error;

/// The request a change needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `POST /v1/changes` (with `Idempotency-Key` = the change id).
    Deliver,
    /// `GET /v1/changes/{id}`: what became of an earlier send.
    Reconcile,
}

/// What to do with a change after an outcome. Carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// POST it now (again: same idempotency key).
    Deliver,
    /// GET its result now, before sending anything again.
    Reconcile,
    /// Wait until `at_ms` (Unix ms), then make `then`.
    RetryAt {
        at_ms: i64,
        then: Call,
        reason: String,
    },
    /// The bank has it: applied, or superseded (counts as done).
    Done {
        status: ChangeStatus,
        core_ref: String,
    },
    /// The bank refused it for good (rule C4).
    Rejected { code: String, message: String },
}

impl Decision {
    /// `Done` or `Rejected`: nothing more is sent for this change.
    pub fn is_final(&self) -> bool {
        matches!(self, Decision::Done { .. } | Decision::Rejected { .. })
    }
}

/// Longest error reason or bank message kept, in characters.
const MAX_TEXT: usize = 500;

/// What [`Outbox::commit_change`](crate::store::Outbox::commit_change) recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredId {
    /// Commit order in this kiosk.
    pub seq: u64,
    /// The change's UUID (the idempotency key).
    pub change_id: String,
}

/// Where a change is, as the technician sees it (the local API's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeState {
    /// Waiting to be sent (maybe backing off after a failure).
    Pending,
    /// Sent, or being sent, and the bank's answer is not known yet: it is
    /// asked for (`GET /v1/changes/{id}`) before anything is sent again.
    InFlight,
    /// The bank applied it (or already held that data).
    Delivered,
    /// The bank refused it for good (rule C4).
    Rejected,
}

impl ChangeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Pending => "pending",
            ChangeState::InFlight => "in_flight",
            ChangeState::Delivered => "delivered",
            ChangeState::Rejected => "rejected",
        }
    }

    /// The local API's spelling back to a state.
    pub fn parse(text: &str) -> Option<ChangeState> {
        Some(match text {
            "pending" => ChangeState::Pending,
            "in_flight" => ChangeState::InFlight,
            "delivered" => ChangeState::Delivered,
            "rejected" => ChangeState::Rejected,
            _ => return None,
        })
    }

    /// The rows in this state (a constant: safe to put in SQL).
    fn condition(self) -> &'static str {
        match self {
            ChangeState::Pending => "state = 'pending' AND in_flight = 0",
            ChangeState::InFlight => {
                "(state = 'reconcile' OR (state = 'pending' AND in_flight = 1))"
            }
            ChangeState::Delivered => "state = 'delivered'",
            ChangeState::Rejected => "state = 'rejected'",
        }
    }

    fn from_row(state: &str, in_flight: bool) -> Option<ChangeState> {
        Some(match (state, in_flight) {
            ("pending", false) => ChangeState::Pending,
            ("pending", true) | ("reconcile", _) => ChangeState::InFlight,
            ("delivered", _) => ChangeState::Delivered,
            ("rejected", _) => ChangeState::Rejected,
            _ => return None,
        })
    }
}

/// One change without its personal data: what lists, the technician and the
/// logs may see. The customer id is the bank's opaque id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSummary {
    pub change_id: String,
    pub seq: u64,
    /// `id_validity` or `mobile`.
    pub kind: String,
    pub customer_id: String,
    pub state: ChangeState,
    /// Requests made for it (sends and reconciliations).
    pub attempts: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When the next request is due; `None` once final.
    pub next_attempt_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Once delivered: `applied` or `superseded`.
    pub outcome: Option<ChangeStatus>,
    pub core_ref: Option<String>,
    /// Once rejected: the bank's code and message.
    pub rejection_code: Option<String>,
    pub rejection_message: Option<String>,
    /// When the bank's final answer was recorded.
    pub final_at_ms: Option<i64>,
    /// Whether the personal data was purged (rule S2).
    pub purged: bool,
}

/// What [`Outbox::advance`](crate::store::Outbox::advance) did.
#[derive(Debug)]
pub struct Advance {
    /// The changes now marked in flight: send them.
    pub taken: Vec<PendingChange>,
    /// Outcomes not recorded (change id, why): the row was no longer open.
    pub refused: Vec<(String, String)>,
    /// Changes rejected on the spot: their payload failed authentication.
    pub unreadable: Vec<String>,
}

/// The change to work on next, decrypted.
#[derive(Debug)]
pub struct PendingChange {
    pub seq: u64,
    /// The request (redacted in `Debug`, wiped on drop).
    pub change: SecretChange,
    /// What to do: `Deliver` (POST) or `Reconcile` (GET first).
    pub call: Call,
    /// An attempt was in flight when the process stopped: its outcome is
    /// unknown (then `call` is `Reconcile`).
    pub interrupted: bool,
    pub attempts: u32,
    /// Transient failures so far (the backoff's exponent).
    pub failures: u32,
    pub created_at_ms: i64,
    pub last_error: Option<String>,
}

impl PendingChange {
    pub fn change_id(&self) -> &str {
        &self.change.change_id
    }
}

/// The backlog at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// Changes not yet answered for good by the bank.
    pub pending: u64,
    pub oldest_pending_age: Option<Duration>,
    pub rejected: u64,
    pub delivered: u64,
    /// The latest failure of a change still waiting.
    pub last_error: Option<String>,
    pub last_delivery_at_ms: Option<i64>,
}

/// Which changes [`Outbox::list`](crate::store::Outbox::list) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    pub state: Option<ChangeState>,
    pub customer_id: Option<String>,
    /// At most this many, newest first.
    pub limit: u32,
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter {
            state: None,
            customer_id: None,
            limit: 100,
        }
    }
}

const OPEN: &str = "state IN ('pending', 'reconcile')";

/// The sync status in one statement. Asked at every supervision tick and
/// scrape, holding the store: the last delivery's time comes from the
/// `outbox_delivered_at` index, not from every delivered row; only the
/// counts walk an index.
fn sync_status_sql() -> String {
    format!(
        "SELECT
           (SELECT count(*) FROM outbox WHERE {OPEN}),
           (SELECT min(created_at_ms) FROM outbox WHERE {OPEN}),
           (SELECT count(*) FROM outbox WHERE state = 'rejected'),
           (SELECT count(*) FROM outbox WHERE state = 'delivered'),
           (SELECT last_error FROM outbox WHERE {OPEN} AND last_error IS NOT NULL
            ORDER BY updated_at_ms DESC, seq DESC LIMIT 1),
           (SELECT max(acked_at_ms) FROM outbox WHERE state = 'delivered')"
    )
}

const SUMMARY: &str = "SELECT seq, change_id, kind, customer_id, state, in_flight, attempts,
    created_at_ms, updated_at_ms, next_attempt_at_ms, last_error, outcome, core_ref,
    rejection_code, rejection_message, acked_at_ms, payload IS NULL FROM outbox";

fn read_summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeSummary> {
    let bad = |i, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let state: String = row.get(4)?;
    let state = ChangeState::from_row(&state, row.get(5)?).ok_or_else(|| bad(4, "state"))?;
    let outcome = match row.get::<_, Option<String>>(11)?.as_deref() {
        None => None,
        Some("applied") => Some(ChangeStatus::Applied),
        Some("superseded") => Some(ChangeStatus::Superseded),
        Some(_) => return Err(bad(11, "outcome")),
    };
    let open = matches!(state, ChangeState::Pending | ChangeState::InFlight);
    Ok(ChangeSummary {
        seq: row.get::<_, i64>(0)? as u64,
        change_id: row.get(1)?,
        kind: row.get(2)?,
        customer_id: row.get(3)?,
        state,
        attempts: row.get(6)?,
        created_at_ms: row.get(7)?,
        updated_at_ms: row.get(8)?,
        next_attempt_at_ms: if open { Some(row.get(9)?) } else { None },
        last_error: row.get(10)?,
        outcome,
        core_ref: row.get(12)?,
        rejection_code: row.get(13)?,
        rejection_message: row.get(14)?,
        final_at_ms: row.get(15)?,
        purged: row.get(16)?,
    })
}

fn summary(conn: &Connection, change_id: &str) -> Inner<ChangeSummary> {
    conn.query_row(
        &format!("{SUMMARY} WHERE change_id = ?1"),
        [change_id],
        read_summary,
    )
    .optional()?
    .ok_or_else(|| {
        Error::ChangeNotFound {
            change_id: change_id.to_string(),
        }
        .into()
    })
}

/// Why an update matched no row: no such change, or the wrong state.
fn refused(conn: &Connection, change_id: &str, action: &'static str) -> Failure {
    match summary(conn, change_id) {
        Ok(s) => Error::ChangeState {
            change_id: change_id.to_string(),
            state: s.state.as_str(),
            action,
        }
        .into(),
        Err(e) => e,
    }
}

fn status_str(status: ChangeStatus) -> &'static str {
    match status {
        ChangeStatus::Applied => "applied",
        ChangeStatus::Superseded => "superseded",
    }
}

/// A row's `(nonce, payload)`; both `NULL` once purged.
type Sealed = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A row that may be worked on next, still sealed.
struct Candidate {
    seq: u64,
    change_id: String,
    state: String,
    in_flight: bool,
    nonce: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    attempts: u32,
    failures: u32,
    created_at_ms: i64,
    last_error: Option<String>,
}

/// Open rows that are first in their customer's line (rule: a customer's
/// later change waits while an earlier one is open).
const HEADS: &str = "FROM outbox o INDEXED BY outbox_open_seq
    WHERE o.state IN ('pending', 'reconcile')
    AND NOT EXISTS (SELECT 1 FROM outbox e
                    WHERE e.customer_id = o.customer_id
                      AND e.state IN ('pending', 'reconcile') AND e.seq < o.seq)";

/// The outbox of confirmed changes (rules C1, C2, C4): what the sync worker delivers.
/// A view of the [`Store`]: `store.outbox()`.
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'s> {
    pub(super) store: &'s Store,
}

impl Outbox<'_> {
    /// Record a change the customer confirmed, with its audit record
    /// (`change_recorded`), in one transaction that is on disk when this
    /// returns (rule C1). Only then may the customer hear "accepted".
    ///
    /// `change.change_id` must be a UUID (it is the idempotency key).
    /// [`Error::StoreFull`] / [`Error::StoreReadOnly`]: nothing was recorded.
    pub fn commit_change(&self, change: &ChangeRequest, note: AuditNote) -> Result<StoredId> {
        self.commit_change_with(change, note, None)
    }

    /// [`Outbox::commit_change`], with `also` appended to the audit trail
    /// first in the same transaction (the technician's call that recorded
    /// the change): one commit for both, and neither without the other.
    pub fn commit_change_with(
        &self,
        change: &ChangeRequest,
        note: AuditNote,
        also: Option<AuditEntry>,
    ) -> Result<StoredId> {
        if uuid::Uuid::parse_str(&change.change_id).is_err() {
            return Err(Error::InvalidChange("change_id must be a UUID".into()));
        }
        if change.customer_id.trim().is_empty() {
            return Err(Error::InvalidChange("customer_id is empty".into()));
        }
        let (nonce, sealed) = self.store.cipher.seal_change(change)?;
        let kind = kind_name(&change.kind);
        let change_id = change.change_id.clone();
        let customer_id = change.customer_id.clone();
        // Group commit: confirmations arriving together share one fsync,
        // each still durable before its caller hears of it.
        self.store.write_grouped(move |tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM outbox WHERE change_id = ?1")?
                .query_row([&change_id], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                return Err(Error::ChangeExists { change_id }.into());
            }
            if let Some(entry) = &also {
                audit::append(tx, entry)?;
            }
            tx.prepare_cached(
                "INSERT INTO outbox (change_id, kind, customer_id, state, nonce, payload,
                                     created_at_ms, updated_at_ms, next_attempt_at_ms)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?6, ?6)",
            )?
            .execute(params![
                change_id,
                kind,
                customer_id,
                &nonce[..],
                sealed,
                note.at_ms
            ])?;
            let seq = tx.last_insert_rowid() as u64;
            audit::append(
                tx,
                &AuditEntry {
                    at_ms: note.at_ms,
                    actor: note.actor,
                    action: AuditAction::ChangeRecorded,
                    subject: Some(change_id.clone()),
                    detail: with_prefix(kind, &note.detail),
                },
            )?;
            Ok(StoredId { seq, change_id })
        })
    }

    /// One change without personal data.
    pub fn get(&self, change_id: &str) -> Result<ChangeSummary> {
        self.store.read(|tx| summary(tx, change_id))
    }

    /// A change's request, decrypted. [`Error::PayloadPurged`] after a
    /// purge, [`Error::PayloadUnreadable`] if it fails authentication.
    pub fn load_change(&self, change_id: &str) -> Result<SecretChange> {
        let sealed: Option<Sealed> = self.store.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT nonce, payload FROM outbox WHERE change_id = ?1",
                    [change_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?)
        })?;
        let id = || change_id.to_string();
        match sealed {
            None => Err(Error::ChangeNotFound { change_id: id() }),
            Some((Some(nonce), Some(payload))) => self
                .store
                .cipher
                .open_change(change_id, &nonce, &payload)
                .ok_or(Error::PayloadUnreadable { change_id: id() }),
            Some(_) => Err(Error::PayloadPurged { change_id: id() }),
        }
    }

    /// The change to work on now: the oldest open change that is first in
    /// its customer's line and due at `now_ms` (or was in flight when the
    /// process stopped). `None` if nothing is due.
    ///
    /// A payload that fails authentication can never be sent: its change is
    /// rejected on the spot (`payload_unreadable`, audited, logged) so that
    /// it neither blocks the customer's later changes nor the loop.
    pub fn next_deliverable(&self, now_ms: i64) -> Result<Option<PendingChange>> {
        loop {
            let candidate = self
                .store
                .read(|tx| Ok(candidates(tx, now_ms, 1)?.into_iter().next()))?;
            let Some(c) = candidate else {
                return Ok(None);
            };
            match self.open_candidate(c) {
                Ok(p) => return Ok(Some(p)),
                Err(change_id) => self.reject_unreadable(&change_id, now_ms)?,
            }
        }
    }

    /// Decrypt a candidate; its change id when the payload does not open.
    fn open_candidate(&self, c: Candidate) -> std::result::Result<PendingChange, String> {
        let change = match (&c.nonce, &c.payload) {
            (Some(nonce), Some(payload)) => {
                self.store.cipher.open_change(&c.change_id, nonce, payload)
            }
            _ => None,
        };
        let Some(change) = change else {
            return Err(c.change_id);
        };
        let reconcile = c.in_flight || c.state == "reconcile";
        Ok(PendingChange {
            seq: c.seq,
            change,
            call: if reconcile {
                Call::Reconcile
            } else {
                Call::Deliver
            },
            interrupted: c.in_flight,
            attempts: c.attempts,
            failures: c.failures,
            created_at_ms: c.created_at_ms,
            last_error: c.last_error,
        })
    }

    /// One step of the sync worker, in one transaction (one fsync): record
    /// the decisions on the changes whose requests came back, then mark up
    /// to `room` due changes in flight (each first in its customer's line;
    /// none of `busy`, the changes whose requests are still out) and hand
    /// them out to be sent. A change is still marked in flight, committed,
    /// before its request leaves (a crash then costs a reconcile, never a
    /// blind resend); folding the mark into the commit of the previous
    /// outcomes saves a transaction per change, and several outcomes share
    /// one commit. Waits for other writes as [`Outbox::commit_change`] does
    /// and may share their commit.
    ///
    /// An outcome the row refuses (it is no longer open: nothing to record)
    /// is reported in [`Advance::refused`] and does not stop the others. A
    /// payload that fails authentication is rejected on the spot, as in
    /// [`Outbox::next_deliverable`].
    pub fn advance(
        &self,
        outcomes: Vec<(String, Decision)>,
        busy: std::collections::HashSet<String>,
        room: usize,
        now_ms: i64,
    ) -> Result<Advance> {
        let store = self.store;
        let cipher = std::sync::Arc::clone(&store.cipher);
        let taken = store.write_grouped(move |tx| {
            let mut refused_ids = Vec::new();
            for (change_id, decision) in &outcomes {
                match apply_outcome(tx, change_id, decision, now_ms) {
                    Ok(()) => {}
                    Err(Failure::Kiosk(e)) => refused_ids.push((change_id.clone(), e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            let mut taken = Vec::new();
            let mut unreadable = Vec::new();
            if room > 0 {
                let limit = room.saturating_add(busy.len());
                for c in candidates(tx, now_ms, limit)? {
                    if taken.len() == room {
                        break;
                    }
                    if busy.contains(&c.change_id) {
                        continue;
                    }
                    let sealed = (c.nonce.clone(), c.payload.clone());
                    let opened = match sealed {
                        (Some(nonce), Some(payload)) => {
                            cipher.open_change(&c.change_id, &nonce, &payload)
                        }
                        _ => None,
                    };
                    let Some(change) = opened else {
                        unreadable.push(c.change_id.clone());
                        reject_unreadable_in(tx, &c.change_id, now_ms)?;
                        continue;
                    };
                    let reconcile = c.in_flight || c.state == "reconcile";
                    let call = if reconcile {
                        Call::Reconcile
                    } else {
                        Call::Deliver
                    };
                    mark_in_flight(tx, &c.change_id, call, now_ms)?;
                    taken.push(PendingChange {
                        seq: c.seq,
                        change,
                        call,
                        interrupted: c.in_flight,
                        attempts: c.attempts,
                        failures: c.failures,
                        created_at_ms: c.created_at_ms,
                        last_error: c.last_error,
                    });
                }
            }
            Ok(Advance {
                taken,
                refused: refused_ids,
                unreadable,
            })
        })?;
        Ok(taken)
    }

    fn reject_unreadable(&self, change_id: &str, now_ms: i64) -> Result<()> {
        tracing::error!(
            change_id,
            "stored payload failed authentication (damaged or tampered with): change rejected"
        );
        self.store
            .write(|tx| reject_unreadable_in(tx, change_id, now_ms))
    }

    /// When the next open change (first in its customer's line) is due;
    /// `None` if nothing is open. A change left in flight is due at once.
    pub fn next_due_at(&self) -> Result<Option<i64>> {
        self.store.read(|tx| {
            Ok(tx.query_row(
                &format!(
                    "SELECT MIN(CASE WHEN o.in_flight = 1 THEN 0 ELSE o.next_attempt_at_ms END)
                     {HEADS}"
                ),
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Mark an attempt as begun, durably, before its request goes out: if
    /// the process dies now, the change is reconciled (never blindly sent
    /// again) on restart.
    ///
    /// `Deliver` is refused unless the change is plainly pending: a change
    /// whose last outcome is unknown must be reconciled first.
    pub fn begin_attempt(&self, change_id: &str, call: Call, now_ms: i64) -> Result<()> {
        self.store
            .write(|tx| mark_in_flight(tx, change_id, call, now_ms))
    }

    /// Apply the sync worker's decision about an open change (clearing the
    /// in-flight mark), in one transaction; `Done` and `Rejected` are
    /// audited (`change_applied`, `change_rejected`) in it.
    pub fn record_outcome(&self, change_id: &str, decision: &Decision, now_ms: i64) -> Result<()> {
        self.store
            .write(|tx| apply_outcome(tx, change_id, decision, now_ms))
    }

    /// The backlog, for `sync_status`.
    pub fn sync_status(&self, now_ms: i64) -> Result<SyncStatus> {
        self.store.read(|tx| {
            Ok(tx.query_row(&sync_status_sql(), [], |r| {
                let oldest: Option<i64> = r.get(1)?;
                Ok(SyncStatus {
                    pending: r.get::<_, i64>(0)? as u64,
                    oldest_pending_age: oldest
                        .map(|t| Duration::from_millis(u64::try_from(now_ms - t).unwrap_or(0))),
                    rejected: r.get::<_, i64>(2)? as u64,
                    delivered: r.get::<_, i64>(3)? as u64,
                    last_error: r.get(4)?,
                    last_delivery_at_ms: r.get(5)?,
                })
            })?)
        })
    }

    /// How many changes the bank has not answered for good yet: what the
    /// status line and `status` show every few seconds. Counts the open
    /// changes only, not the history [`Outbox::sync_status`] also counts.
    pub fn backlog(&self) -> Result<u64> {
        self.store.read(|tx| {
            let n: i64 = tx
                .prepare_cached(&format!("SELECT count(*) FROM outbox WHERE {OPEN}"))?
                .query_row([], |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    /// Changes matching `filter`, newest first; no personal data.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<ChangeSummary>> {
        let state = filter.state.map_or("1", ChangeState::condition);
        self.store.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "{SUMMARY} WHERE {state} AND (?1 IS NULL OR customer_id = ?1)
                 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![filter.customer_id, filter.limit], read_summary)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Changes the bank rejected for good (rule C4), newest first.
    pub fn rejected(&self) -> Result<Vec<ChangeSummary>> {
        self.list(&ListFilter {
            state: Some(ChangeState::Rejected),
            customer_id: None,
            limit: u32::MAX,
        })
    }

    /// A technician puts a change back in the queue now (audited,
    /// `change_retried`): a rejected one becomes pending again, a backing-off
    /// one is due at once (and its backoff starts over). Refused for a
    /// delivered change, and for a rejected one whose payload was purged.
    /// Wake the sync worker afterwards.
    ///
    /// Note that the core bank answers a resent change with the same
    /// idempotency key with its first answer for 7 days (spec): retrying a
    /// change it rejected gets that rejection again. Retrying helps for
    /// backing-off changes and for rejections that the kiosk made itself.
    pub fn retry(&self, change_id: &str, note: AuditNote) -> Result<ChangeSummary> {
        let now_ms = note.at_ms;
        self.store.write(|tx| {
            let before = summary(tx, change_id)?;
            let was = match before.state {
                ChangeState::Delivered => {
                    return Err(refused(tx, change_id, "retry it"));
                }
                ChangeState::Rejected if before.purged => {
                    return Err(Error::PayloadPurged {
                        change_id: change_id.to_string(),
                    }
                    .into());
                }
                ChangeState::Rejected => {
                    tx.execute(
                        "UPDATE outbox SET state = 'pending', in_flight = 0, failures = 0,
                            next_attempt_at_ms = ?2, updated_at_ms = ?2, acked_at_ms = NULL,
                            last_error = 'rejected (' || coalesce(rejection_code, '?')
                                         || '), retried by a technician',
                            rejection_code = NULL, rejection_message = NULL
                         WHERE change_id = ?1",
                        params![change_id, now_ms],
                    )?;
                    format!(
                        "was rejected ({})",
                        before.rejection_code.as_deref().unwrap_or("?")
                    )
                }
                ChangeState::Pending | ChangeState::InFlight => {
                    tx.execute(
                        "UPDATE outbox SET failures = 0, updated_at_ms = ?2,
                            next_attempt_at_ms = min(next_attempt_at_ms, ?2)
                         WHERE change_id = ?1",
                        params![change_id, now_ms],
                    )?;
                    format!("was {}", before.state.as_str())
                }
            };
            audit::append(
                tx,
                &AuditEntry {
                    at_ms: now_ms,
                    actor: note.actor,
                    action: AuditAction::ChangeRetried,
                    subject: Some(change_id.to_string()),
                    detail: with_prefix(&was, &note.detail),
                },
            )?;
            summary(tx, change_id)
        })
    }

    /// Delete the sealed payload of every change whose final answer is
    /// older than `retention` (rule S2), keeping its row; each purge is
    /// audited (`payload_purged`). Returns how many were purged.
    pub fn purge(&self, now_ms: i64, retention: Duration) -> Result<usize> {
        let cutoff = now_ms.saturating_sub(millis(retention));
        let purged = self.store.write(|tx| {
            let ids: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT change_id FROM outbox INDEXED BY outbox_purge
                     WHERE state IN ('delivered', 'rejected') AND payload IS NOT NULL
                       AND acked_at_ms <= ?1
                     ORDER BY seq",
                )?;
                let rows = stmt.query_map([cutoff], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for id in &ids {
                tx.execute(
                    "UPDATE outbox SET nonce = NULL, payload = NULL, purged_at_ms = ?2,
                        updated_at_ms = ?2
                     WHERE change_id = ?1",
                    params![id, now_ms],
                )?;
                audit::append(
                    tx,
                    &AuditEntry {
                        at_ms: now_ms,
                        actor: Actor::Kiosk,
                        action: AuditAction::PayloadPurged,
                        subject: Some(id.clone()),
                        detail: "personal data purged after the bank's answer and retention".into(),
                    },
                )?;
            }
            Ok(ids.len())
        })?;
        if purged > 0 {
            // secure_delete zeroed the pages in the database; move the WAL's
            // copies in too and truncate it. Best effort: a reader may hold
            // the WAL, the next purge tries again.
            let conn = self.store.lock();
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "checkpoint after purge");
            }
        }
        Ok(purged)
    }

    /// When the next purge is due, with this retention: [`purge_due_at`]
    /// of the oldest settled payload still kept.
    pub fn next_purge_at(&self, retention: Duration) -> Result<Option<i64>> {
        self.store.read(|tx| {
            let oldest: Option<i64> = tx.query_row(
                "SELECT min(acked_at_ms) FROM outbox INDEXED BY outbox_purge
                 WHERE state IN ('delivered', 'rejected') AND payload IS NOT NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(oldest.map(|t| purge_due_at(t, retention)))
        })
    }
}

/// The longest a payload waits past its retention for the batch it is
/// purged with ([`purge_due_at`]).
const MAX_PURGE_SLACK_MS: i64 = 10 * 60 * 1000;

/// When the payload of a change settled at `settled_at_ms` is due to be
/// purged (rule S2): after the retention, plus 1% of it (at most 10
/// minutes), so that payloads settled one after another are purged
/// together instead of each on its own. Each purge ends with a checkpoint
/// that empties the WAL, and the commits after it are slower until the
/// WAL has grown back. A retention of 0 purges at once.
pub fn purge_due_at(settled_at_ms: i64, retention: Duration) -> i64 {
    let retention = millis(retention);
    let slack = (retention / 100).min(MAX_PURGE_SLACK_MS);
    settled_at_ms
        .saturating_add(retention)
        .saturating_add(slack)
}

/// Apply the sync worker's decision about an open change (clearing the
/// in-flight mark) inside the caller's transaction; `Done` and `Rejected`
/// are audited in it.
fn apply_outcome(tx: &Connection, change_id: &str, decision: &Decision, now_ms: i64) -> Inner<()> {
    let kiosk_audit = |action, detail: String| AuditEntry {
        at_ms: now_ms,
        actor: Actor::Kiosk,
        action,
        subject: Some(change_id.to_string()),
        detail,
    };
    {
        let updated = match decision {
            Decision::Deliver => tx.execute(
                &format!(
                    "UPDATE outbox SET state = 'pending', in_flight = 0,
                            next_attempt_at_ms = ?2, updated_at_ms = ?2
                         WHERE change_id = ?1 AND {OPEN}"
                ),
                params![change_id, now_ms],
            )?,
            Decision::Reconcile => tx.execute(
                &format!(
                    "UPDATE outbox SET state = 'reconcile', in_flight = 0,
                            next_attempt_at_ms = ?2, updated_at_ms = ?2
                         WHERE change_id = ?1 AND {OPEN}"
                ),
                params![change_id, now_ms],
            )?,
            Decision::RetryAt {
                at_ms,
                then,
                reason,
            } => tx.execute(
                &format!(
                    "UPDATE outbox SET state = ?3, in_flight = 0, failures = failures + 1,
                            next_attempt_at_ms = ?4, last_error = ?5, updated_at_ms = ?2
                         WHERE change_id = ?1 AND {OPEN}"
                ),
                params![
                    change_id,
                    now_ms,
                    match then {
                        Call::Deliver => "pending",
                        Call::Reconcile => "reconcile",
                    },
                    at_ms,
                    bounded(reason, MAX_TEXT)
                ],
            )?,
            Decision::Done { status, core_ref } => {
                let n = tx.execute(
                    &format!(
                        "UPDATE outbox SET state = 'delivered', in_flight = 0, outcome = ?3,
                                core_ref = ?4, last_error = NULL, acked_at_ms = ?2,
                                updated_at_ms = ?2
                             WHERE change_id = ?1 AND {OPEN}"
                    ),
                    params![
                        change_id,
                        now_ms,
                        status_str(*status),
                        bounded(core_ref, MAX_TEXT)
                    ],
                )?;
                if n > 0 {
                    audit::append(
                        tx,
                        &kiosk_audit(
                            AuditAction::ChangeApplied,
                            format!("{}; core_ref {core_ref}", status_str(*status)),
                        ),
                    )?;
                }
                n
            }
            Decision::Rejected { code, message } => {
                let n = tx.execute(
                    &format!(
                        "UPDATE outbox SET state = 'rejected', in_flight = 0,
                                rejection_code = ?3, rejection_message = ?4,
                                acked_at_ms = ?2, updated_at_ms = ?2
                             WHERE change_id = ?1 AND {OPEN}"
                    ),
                    params![
                        change_id,
                        now_ms,
                        bounded(code, MAX_TEXT),
                        bounded(message, MAX_TEXT)
                    ],
                )?;
                if n > 0 {
                    audit::append(
                        tx,
                        &kiosk_audit(
                            AuditAction::ChangeRejected,
                            format!("rejected by the core bank: {}", bounded(code, 100)),
                        ),
                    )?;
                }
                n
            }
        };
        if updated == 0 {
            return Err(refused(tx, change_id, "record an outcome for it"));
        }
        Ok(())
    }
}

/// Mark an attempt as begun inside the caller's transaction (see
/// [`Outbox::begin_attempt`]).
fn mark_in_flight(tx: &Connection, change_id: &str, call: Call, now_ms: i64) -> Inner<()> {
    let (sql, action) = match call {
        Call::Deliver => (
            "UPDATE outbox SET in_flight = 1, attempts = attempts + 1, updated_at_ms = ?2
             WHERE change_id = ?1 AND state = 'pending' AND in_flight = 0",
            "send it",
        ),
        Call::Reconcile => (
            "UPDATE outbox SET state = 'reconcile', in_flight = 1,
                attempts = attempts + 1, updated_at_ms = ?2
             WHERE change_id = ?1 AND state IN ('pending', 'reconcile')",
            "reconcile it",
        ),
    };
    if tx
        .prepare_cached(sql)?
        .execute(params![change_id, now_ms])?
        == 0
    {
        return Err(refused(tx, change_id, action));
    }
    Ok(())
}

/// Reject a change whose payload failed authentication, audited, inside
/// the caller's transaction.
fn reject_unreadable_in(tx: &Connection, change_id: &str, now_ms: i64) -> Inner<()> {
    tracing::error!(
        change_id,
        "stored payload failed authentication (damaged or tampered with): change rejected"
    );
    tx.execute(
        &format!(
            "UPDATE outbox SET state = 'rejected', in_flight = 0,
                rejection_code = 'payload_unreadable',
                rejection_message = 'the stored payload is damaged or was tampered with',
                updated_at_ms = ?2, acked_at_ms = ?2
             WHERE change_id = ?1 AND {OPEN}"
        ),
        params![change_id, now_ms],
    )?;
    audit::append(
        tx,
        &AuditEntry {
            at_ms: now_ms,
            actor: Actor::Kiosk,
            action: AuditAction::ChangeRejected,
            subject: Some(change_id.to_string()),
            detail: "payload_unreadable (local: the stored payload failed authentication)".into(),
        },
    )?;
    Ok(())
}

/// Up to `limit` changes that may be worked on at `now_ms`, oldest first:
/// first in their customer's line, and due (or left in flight). Walks the
/// open changes in commit order through the `outbox_open_seq` index, so
/// its cost grows with the changes it skips, not with history.
fn candidates(tx: &Connection, now_ms: i64, limit: usize) -> Inner<Vec<Candidate>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT o.seq, o.change_id, o.state, o.in_flight, o.nonce, o.payload,
                o.attempts, o.failures, o.created_at_ms, o.last_error
         {HEADS} AND (o.next_attempt_at_ms <= ?1 OR o.in_flight = 1)
         ORDER BY o.seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(
        params![now_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(Candidate {
                seq: r.get::<_, i64>(0)? as u64,
                change_id: r.get(1)?,
                state: r.get(2)?,
                in_flight: r.get(3)?,
                nonce: r.get(4)?,
                payload: r.get(5)?,
                attempts: r.get(6)?,
                failures: r.get(7)?,
                created_at_ms: r.get(8)?,
                last_error: r.get(9)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn with_prefix(prefix: &str, detail: &str) -> String {
    if detail.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::OpenFlags;

    use super::super::StoreOptions;
    use super::super::testutil::*;
    use super::*;

    const T0: i64 = 1_763_880_000_000;

    fn done(core_ref: &str) -> Decision {
        Decision::Done {
            status: ChangeStatus::Applied,
            core_ref: core_ref.into(),
        }
    }

    /// Add settled changes to the history until it holds `settled`: each
    /// delivered, its payload purged, with its two audit records (as the
    /// sync worker and the purge leave them), written directly.
    fn fill_history(store: &Store, settled: i64) {
        raw(store, |c| {
            let tx = c.unchecked_transaction().expect("begin");
            let from: i64 = tx
                .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
                .expect("count");
            let mut change = tx
                .prepare(
                    "INSERT INTO outbox (change_id, kind, customer_id, state, outcome, core_ref,
                         created_at_ms, updated_at_ms, next_attempt_at_ms, acked_at_ms, purged_at_ms)
                     VALUES (?1, 'id_validity', ?2, 'delivered', 'applied', 'CR', ?3, ?3, ?3, ?3, ?3)",
                )
                .expect("insert change");
            let mut audit = tx
                .prepare(
                    "INSERT INTO audit (at_ms, actor, action, subject, detail, prev_hash, hash)
                     VALUES (?1, 'kiosk', ?2, ?3, 'history', ?4, ?4)",
                )
                .expect("insert audit");
            for i in from..settled {
                let id = uuid::Uuid::from_u128(i as u128).to_string();
                let at = T0 - 1_000_000_000 + i;
                change
                    .execute(params![id, format!("H{}", i % 3000), at])
                    .expect("change");
                for action in ["change_recorded", "change_applied"] {
                    audit
                        .execute(params![at, action, id, "0".repeat(64)])
                        .expect("audit");
                }
            }
            drop((change, audit));
            tx.commit().expect("commit");
        });
    }

    /// With `settled` changes behind it, one confirmation and the sync
    /// worker's calls for it, each with the SQLite VM instructions it ran.
    fn hot_path_steps(store: &Store, settled: i64) -> Vec<(&'static str, u64)> {
        fill_history(store, settled);
        let outbox = store.outbox();
        let now = T0 + settled;
        let change = id_change(&format!("N{settled}"));
        let ((), commit) = vm_steps(store, || {
            outbox.commit_change(&change, note(now)).expect("commit");
        });
        let (_, due) = vm_steps(store, || outbox.next_due_at().expect("due"));
        let (pending, backlog) = vm_steps(store, || outbox.backlog().expect("backlog"));
        assert_eq!(pending, 1);
        let (next, deliverable) = vm_steps(store, || outbox.next_deliverable(now).expect("next"));
        assert!(next.is_some());
        let (taken, mark) = vm_steps(store, || {
            outbox
                .advance(Vec::new(), Default::default(), 1, now)
                .expect("advance")
        });
        assert_eq!(taken.taken.len(), 1);
        let outcome = vec![(change.change_id.clone(), done("CR"))];
        let (_, record) = vm_steps(store, || {
            outbox
                .advance(outcome, Default::default(), 1, now)
                .expect("advance")
        });
        let (purge_at, purge) = vm_steps(store, || {
            outbox
                .next_purge_at(Duration::from_secs(3600))
                .expect("purge")
        });
        assert!(purge_at.is_some());
        vec![
            ("commit_change", commit),
            ("next_due_at", due),
            ("backlog (status line)", backlog),
            ("next_deliverable", deliverable),
            ("advance (mark in flight)", mark),
            ("advance (record the outcome)", record),
            ("next_purge_at", purge),
        ]
    }

    /// Issue 16: no statement on the hot path grows with history. With
    /// twenty times as many settled changes (and audit records) behind
    /// it, a confirmation, the status line's backlog and each of the sync
    /// worker's calls run about as many SQLite VM instructions.
    #[test]
    fn hot_path_work_does_not_grow_with_history() {
        let t = TestDir::new();
        assert_steps_flat(&t.open(), (1_000, 20_000), hot_path_steps);
    }

    fn deliver_now(store: &Store, now: i64) -> PendingChange {
        let p = store
            .outbox()
            .next_deliverable(now)
            .expect("next")
            .expect("something due");
        store
            .outbox()
            .begin_attempt(p.change_id(), p.call, now)
            .expect("begin");
        p
    }

    /// Every file of the database (main, WAL, shared memory).
    fn all_bytes(t: &TestDir) -> Vec<u8> {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = t.db().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(&p) {
                bytes.extend(b);
            }
        }
        bytes
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[test]
    fn a_committed_change_reads_back_decrypted_and_is_audited() {
        let t = TestDir::new();
        let store = t.open();
        let change = id_change("C000123");
        let id = store
            .outbox()
            .commit_change(&change, note(T0))
            .expect("commit");
        assert_eq!(id.change_id, change.change_id);
        assert_eq!(id.seq, 1);
        drop(store);

        let store = t.open();
        let back = store.outbox().load_change(&change.change_id).expect("load");
        assert_eq!(*back, change);
        let s = store.outbox().get(&change.change_id).expect("summary");
        assert_eq!(s.state, ChangeState::Pending);
        assert_eq!(s.kind, "id_validity");
        assert_eq!(s.customer_id, "C000123");
        assert_eq!(s.created_at_ms, T0);
        assert_eq!(s.next_attempt_at_ms, Some(T0));
        let audit = store.audit().audit_records(0, 10).expect("audit");
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, "change_recorded");
        assert_eq!(audit[0].subject.as_deref(), Some(change.change_id.as_str()));
        assert!(audit[0].detail.starts_with("id_validity: "));
    }

    #[test]
    fn personal_data_is_not_in_the_database_files() {
        let t = TestDir::new();
        let store = t.open();
        store
            .outbox()
            .commit_change(&id_change("C1"), note(T0))
            .expect("commit");
        store
            .outbox()
            .commit_change(&mobile_change("C2"), note(T0))
            .expect("commit");
        let bytes = all_bytes(&t);
        assert!(bytes.len() > 4096);
        // The customer id is in clear (the bank's opaque id): the check
        // below can see rows at all.
        assert!(contains(&bytes, "C1"));
        for personal in [
            ID_NUMBER,
            MOBILE,
            "北京市公安局",
            "proof-abc",
            "0123456789ABCDEF",
        ] {
            assert!(!contains(&bytes, personal), "{personal} found in the file");
        }
        // Nor in anything listed.
        let listed = format!(
            "{:?}",
            store.outbox().list(&ListFilter::default()).expect("list")
        );
        assert!(!listed.contains(ID_NUMBER) && !listed.contains(MOBILE));
        let pending = format!("{:?}", store.outbox().next_deliverable(T0).expect("next"));
        assert!(!pending.contains(ID_NUMBER), "{pending}");
    }

    #[test]
    fn tampered_or_swapped_payloads_do_not_open() {
        let t = TestDir::new();
        let store = t.open();
        let a = id_change("C1");
        let b = id_change("C2");
        store.outbox().commit_change(&a, note(T0)).expect("commit");
        store.outbox().commit_change(&b, note(T0)).expect("commit");
        // Flip one byte of a's ciphertext.
        raw(&store, |c| {
            let mut p: Vec<u8> = c
                .query_row("SELECT payload FROM outbox WHERE seq = 1", [], |r| r.get(0))
                .expect("payload");
            p[5] ^= 0x40;
            c.execute("UPDATE outbox SET payload = ?1 WHERE seq = 1", [p])
                .expect("tamper");
        });
        let e = store
            .outbox()
            .load_change(&a.change_id)
            .expect_err("tampered");
        assert!(matches!(e, Error::PayloadUnreadable { .. }), "{e}");
        // Copy b's sealed payload onto a third row: the change id is the
        // associated data, so it does not open there.
        let c3 = id_change("C3");
        store.outbox().commit_change(&c3, note(T0)).expect("commit");
        raw(&store, |c| {
            c.execute(
                "UPDATE outbox SET (nonce, payload) =
                   (SELECT nonce, payload FROM outbox WHERE seq = 2) WHERE seq = 3",
                [],
            )
            .expect("swap");
        });
        let e = store
            .outbox()
            .load_change(&c3.change_id)
            .expect_err("swapped");
        assert!(matches!(e, Error::PayloadUnreadable { .. }), "{e}");
        assert_eq!(
            *store.outbox().load_change(&b.change_id).expect("b intact"),
            b
        );

        // The worker never gets them: they are rejected, audited, and the
        // intact change is handed out.
        let next = store
            .outbox()
            .next_deliverable(T0)
            .expect("next")
            .expect("b");
        assert_eq!(next.change_id(), b.change_id);
        store
            .outbox()
            .begin_attempt(&b.change_id, Call::Deliver, T0)
            .expect("begin");
        store
            .outbox()
            .record_outcome(&b.change_id, &done("CR-B"), T0)
            .expect("done");
        assert!(store.outbox().next_deliverable(T0).expect("next").is_none());
        let rejected = store.outbox().rejected().expect("rejected");
        assert_eq!(rejected.len(), 2);
        assert!(
            rejected
                .iter()
                .all(|s| s.rejection_code.as_deref() == Some("payload_unreadable"))
        );
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    #[test]
    fn invalid_and_duplicate_changes_are_refused() {
        let t = TestDir::new();
        let store = t.open();
        let mut bad = id_change("C1");
        bad.change_id = "not-a-uuid".into();
        let e = store
            .outbox()
            .commit_change(&bad, note(T0))
            .expect_err("id");
        assert!(matches!(e, Error::InvalidChange(_)), "{e}");
        let mut bad = id_change(" ");
        bad.customer_id = " ".into();
        assert!(store.outbox().commit_change(&bad, note(T0)).is_err());

        let c = id_change("C1");
        store.outbox().commit_change(&c, note(T0)).expect("first");
        let e = store
            .outbox()
            .commit_change(&c, note(T0))
            .expect_err("second");
        assert!(matches!(e, Error::ChangeExists { .. }), "{e}");
        assert_eq!(
            store
                .outbox()
                .list(&ListFilter::default())
                .expect("list")
                .len(),
            1
        );
        assert_eq!(store.audit().audit_verify().expect("verify").records, 1);
    }

    #[test]
    fn a_full_database_refuses_new_changes_and_keeps_the_old() {
        let t = TestDir::new();
        let store = t.open();
        let old: Vec<_> = (0..3).map(|i| id_change(&format!("C{i}"))).collect();
        for c in &old {
            store.outbox().commit_change(c, note(T0)).expect("commit");
        }
        raw(&store, |c| {
            let pages: i64 = c
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .expect("page_count");
            c.pragma_update(None, "max_page_count", pages).expect("cap");
        });
        let mut full = None;
        for i in 0..1000 {
            match store
                .outbox()
                .commit_change(&id_change(&format!("D{i}")), note(T0))
            {
                Ok(_) => continue,
                Err(e) => {
                    full = Some(e);
                    break;
                }
            }
        }
        let e = full.expect("the cap is reached");
        assert!(matches!(e, Error::StoreFull { .. }), "{e}");
        assert!(e.is_store_unavailable());
        assert!(e.to_string().contains("nothing was recorded"), "{e}");
        assert!(
            matches!(
                store
                    .tickets()
                    .next_ticket_number("A", chrono::NaiveDate::MIN),
                Ok(_) | Err(Error::StoreFull { .. })
            ),
            "counters fail the same way"
        );
        // Everything stored before is intact and readable.
        for c in &old {
            assert_eq!(
                *store.outbox().load_change(&c.change_id).expect("old row"),
                *c
            );
        }
        let report = store.audit().audit_verify().expect("verify");
        assert!(report.ok(), "{report:?}");
        let n = store
            .outbox()
            .list(&ListFilter::default())
            .expect("list")
            .len();
        assert_eq!(report.records as usize, n, "one audit record per change");
        // Room again: it works again.
        raw(&store, |c| {
            c.pragma_update(None, "max_page_count", 1_000_000)
                .expect("uncap")
        });
        store
            .outbox()
            .commit_change(&id_change("E"), note(T0))
            .expect("commit after");
        drop(store);
        let store = t.open();
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    #[test]
    fn a_read_only_database_refuses_new_changes_and_keeps_the_old() {
        let t = TestDir::new();
        let writer = t.open();
        let old = id_change("C1");
        writer
            .outbox()
            .commit_change(&old, note(T0))
            .expect("commit");

        // A connection that may not write (query_only), then one opened
        // read-only: both refuse with StoreReadOnly and read everything.
        raw(&writer, |c| {
            c.pragma_update(None, "query_only", true).expect("ro")
        });
        let ro = Store::open_with_flags(
            &t.db(),
            &t.key(),
            &StoreOptions::default(),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open read-only");
        for store in [&writer, &ro] {
            let e = store
                .outbox()
                .commit_change(&id_change("C2"), note(T0))
                .expect_err("read-only");
            assert!(matches!(e, Error::StoreReadOnly { .. }), "{e}");
            assert!(e.is_store_unavailable());
            assert_eq!(
                *store.outbox().load_change(&old.change_id).expect("read"),
                old
            );
            assert_eq!(
                store
                    .outbox()
                    .list(&ListFilter::default())
                    .expect("list")
                    .len(),
                1
            );
            assert!(store.audit().audit_verify().expect("verify").ok());
            assert!(
                store
                    .tickets()
                    .next_ticket_number("A", chrono::NaiveDate::MIN)
                    .is_err()
            );
        }
        drop(ro);
        raw(&writer, |c| {
            c.pragma_update(None, "query_only", false).expect("rw")
        });
        writer
            .outbox()
            .commit_change(&id_change("C3"), note(T0))
            .expect("writable again");
    }

    #[test]
    fn a_customers_later_change_waits_for_the_earlier_one() {
        let t = TestDir::new();
        let store = t.open();
        let a1 = id_change("A");
        let a2 = mobile_change("A");
        let b1 = id_change("B");
        for c in [&a1, &a2, &b1] {
            store.outbox().commit_change(c, note(T0)).expect("commit");
        }
        assert_eq!(store.outbox().next_due_at().expect("due"), Some(T0));
        // Nothing due before its time.
        assert!(
            store
                .outbox()
                .next_deliverable(T0 - 1)
                .expect("next")
                .is_none()
        );

        let p = deliver_now(&store, T0);
        assert_eq!(p.change_id(), a1.change_id);
        assert_eq!(p.call, Call::Deliver);
        let retry = Decision::RetryAt {
            at_ms: T0 + 5_000,
            then: Call::Deliver,
            reason: "core bank answered 503".into(),
        };
        store
            .outbox()
            .record_outcome(&a1.change_id, &retry, T0)
            .expect("retry");

        // a1 backs off: a2 must wait behind it, b1 goes.
        let p = deliver_now(&store, T0 + 1);
        assert_eq!(p.change_id(), b1.change_id);
        store
            .outbox()
            .record_outcome(&b1.change_id, &done("R-B1"), T0 + 2)
            .expect("done");
        assert!(
            store
                .outbox()
                .next_deliverable(T0 + 3)
                .expect("next")
                .is_none()
        );
        assert_eq!(store.outbox().next_due_at().expect("due"), Some(T0 + 5_000));

        let p = deliver_now(&store, T0 + 5_000);
        assert_eq!(p.change_id(), a1.change_id);
        assert_eq!(p.failures, 1);
        assert_eq!(p.attempts, 1);
        store
            .outbox()
            .record_outcome(&a1.change_id, &done("R-A1"), T0 + 5_001)
            .expect("done");
        let p = deliver_now(&store, T0 + 5_002);
        assert_eq!(p.change_id(), a2.change_id);

        // A rejected earlier change does not block: final is final.
        let a3 = id_change("A");
        store.outbox().commit_change(&a3, note(T0)).expect("commit");
        let rejected = Decision::Rejected {
            code: "stale_card".into(),
            message: "older card".into(),
        };
        store
            .outbox()
            .record_outcome(&a2.change_id, &rejected, T0 + 5_003)
            .expect("rejected");
        assert_eq!(
            store
                .outbox()
                .next_deliverable(T0 + 5_004)
                .expect("next")
                .expect("a3")
                .change_id(),
            a3.change_id
        );
    }

    #[test]
    fn an_attempt_in_flight_at_a_crash_is_reconciled_first() {
        let t = TestDir::new();
        let store = t.open();
        let c = id_change("C1");
        store.outbox().commit_change(&c, note(T0)).expect("commit");
        let p = deliver_now(&store, T0);
        assert_eq!(p.call, Call::Deliver);
        assert!(!p.interrupted);
        assert_eq!(
            store.outbox().get(&c.change_id).expect("get").state,
            ChangeState::InFlight
        );
        // The process dies with the POST out.
        drop(p);
        drop(store);

        let store = t.open();
        assert_eq!(store.outbox().next_due_at().expect("due"), Some(0));
        let p = store
            .outbox()
            .next_deliverable(T0 + 1)
            .expect("next")
            .expect("due");
        assert_eq!(p.change_id(), c.change_id);
        assert_eq!(p.call, Call::Reconcile);
        assert!(p.interrupted);
        // A plain resend is refused by the store itself.
        let e = store
            .outbox()
            .begin_attempt(&c.change_id, Call::Deliver, T0 + 1)
            .expect_err("no blind resend");
        assert!(matches!(e, Error::ChangeState { .. }), "{e}");
        store
            .outbox()
            .begin_attempt(&c.change_id, Call::Reconcile, T0 + 1)
            .expect("reconcile");
        // The bank never saw it: deliver again.
        store
            .outbox()
            .record_outcome(&c.change_id, &Decision::Deliver, T0 + 2)
            .expect("deliver");
        let p = store
            .outbox()
            .next_deliverable(T0 + 2)
            .expect("next")
            .expect("due");
        assert_eq!(p.call, Call::Deliver);
        assert!(!p.interrupted);
        assert_eq!(p.attempts, 2);
    }

    #[test]
    fn a_retry_after_an_ambiguous_failure_stays_a_reconciliation() {
        let t = TestDir::new();
        let store = t.open();
        let c = id_change("C1");
        store.outbox().commit_change(&c, note(T0)).expect("commit");
        deliver_now(&store, T0);
        let decision = Decision::RetryAt {
            at_ms: T0 + 500,
            then: Call::Reconcile,
            reason: "timeout after send".into(),
        };
        store
            .outbox()
            .record_outcome(&c.change_id, &decision, T0)
            .expect("record");
        let s = store.outbox().get(&c.change_id).expect("get");
        assert_eq!(s.state, ChangeState::InFlight);
        assert_eq!(s.last_error.as_deref(), Some("timeout after send"));
        assert!(
            store
                .outbox()
                .next_deliverable(T0 + 499)
                .expect("next")
                .is_none()
        );
        let p = store
            .outbox()
            .next_deliverable(T0 + 500)
            .expect("next")
            .expect("due");
        assert_eq!(p.call, Call::Reconcile);
        assert!(!p.interrupted);
        let status = store.outbox().sync_status(T0 + 1_000).expect("status");
        assert_eq!(status.pending, 1);
        assert_eq!(status.oldest_pending_age, Some(Duration::from_secs(1)));
        assert_eq!(status.last_error.as_deref(), Some("timeout after send"));
    }

    /// Issue 16: the sync status (asked at every supervision tick and
    /// scrape, holding the store) takes the last delivery's time from an
    /// index instead of walking every delivered row (27 ms of the status's
    /// 32 at 300,000 rows before), and it is the latest acknowledgement,
    /// whichever change it was for.
    #[test]
    fn the_last_delivery_is_the_latest_acknowledgement_read_from_an_index() {
        let t = TestDir::new();
        let store = t.open();
        let older = id_change("C1");
        let newer = id_change("C2");
        store
            .outbox()
            .commit_change(&older, note(T0))
            .expect("commit");
        store
            .outbox()
            .commit_change(&newer, note(T0))
            .expect("commit");
        for (change, acked_at) in [(&older, T0 + 30), (&newer, T0 + 20)] {
            let p = deliver_now(&store, T0);
            assert_eq!(p.change_id(), change.change_id);
            store
                .outbox()
                .record_outcome(&change.change_id, &done("CR"), acked_at)
                .expect("done");
        }
        let status = store.outbox().sync_status(T0 + 40).expect("status");
        assert_eq!(status.delivered, 2);
        assert_eq!(status.last_delivery_at_ms, Some(T0 + 30));

        let plan: Vec<String> = raw(&store, |c| {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sync_status_sql()))
                .expect("plan");
            stmt.query_map([], |r| r.get(3))
                .expect("plan rows")
                .collect::<rusqlite::Result<_>>()
                .expect("plan rows")
        });
        assert!(
            plan.iter()
                .any(|l| l == "SEARCH outbox USING COVERING INDEX outbox_delivered_at"),
            "{plan:#?}"
        );
    }

    #[test]
    fn final_outcomes_are_audited_and_final() {
        let t = TestDir::new();
        let store = t.open();
        let ok = id_change("C1");
        let ko = id_change("C2");
        store.outbox().commit_change(&ok, note(T0)).expect("commit");
        store.outbox().commit_change(&ko, note(T0)).expect("commit");
        deliver_now(&store, T0);
        store
            .outbox()
            .record_outcome(&ok.change_id, &done("CR-1"), T0 + 10)
            .expect("done");
        deliver_now(&store, T0);
        let rejected = Decision::Rejected {
            code: "stale_card".into(),
            message: "the card is older than the one on file".into(),
        };
        store
            .outbox()
            .record_outcome(&ko.change_id, &rejected, T0 + 20)
            .expect("rejected");

        let s = store.outbox().get(&ok.change_id).expect("get");
        assert_eq!(s.state, ChangeState::Delivered);
        assert_eq!(s.outcome, Some(ChangeStatus::Applied));
        assert_eq!(s.core_ref.as_deref(), Some("CR-1"));
        assert_eq!(s.final_at_ms, Some(T0 + 10));
        assert_eq!(s.next_attempt_at_ms, None);
        let r = store.outbox().rejected().expect("rejected");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].rejection_code.as_deref(), Some("stale_card"));

        let actions: Vec<_> = store
            .audit()
            .audit_records(0, 10)
            .expect("audit")
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            [
                "change_recorded",
                "change_recorded",
                "change_applied",
                "change_rejected"
            ]
        );
        // Nothing moves a final change.
        for (id, d) in [
            (&ok.change_id, Decision::Deliver),
            (&ko.change_id, done("X")),
        ] {
            let e = store
                .outbox()
                .record_outcome(id, &d, T0 + 30)
                .expect_err("final");
            assert!(matches!(e, Error::ChangeState { .. }), "{e}");
        }
        let e = store
            .outbox()
            .record_outcome("00000000-0000-0000-0000-000000000000", &done("X"), 0)
            .expect_err("unknown");
        assert!(matches!(e, Error::ChangeNotFound { .. }), "{e}");

        let status = store.outbox().sync_status(T0 + 30).expect("status");
        assert_eq!(
            status,
            SyncStatus {
                pending: 0,
                oldest_pending_age: None,
                rejected: 1,
                delivered: 1,
                last_error: None,
                last_delivery_at_ms: Some(T0 + 10),
            }
        );
    }

    #[test]
    fn payloads_are_purged_after_the_answer_and_the_retention() {
        let t = TestDir::new();
        let store = t.open();
        let retention = Duration::from_secs(3600);
        let delivered = id_change("C1");
        let rejected = id_change("C2");
        let open = id_change("C3");
        for c in [&delivered, &rejected, &open] {
            store.outbox().commit_change(c, note(T0)).expect("commit");
        }
        assert_eq!(store.outbox().next_purge_at(retention).expect("next"), None);
        deliver_now(&store, T0);
        store
            .outbox()
            .record_outcome(&delivered.change_id, &done("CR-1"), T0 + 1_000)
            .expect("done");
        deliver_now(&store, T0);
        let reject = Decision::Rejected {
            code: "not_allowed".into(),
            message: String::new(),
        };
        store
            .outbox()
            .record_outcome(&rejected.change_id, &reject, T0 + 2_000)
            .expect("rejected");
        // Due after the retention and the batch's slack (1% of it) ...
        assert_eq!(
            store.outbox().next_purge_at(retention).expect("next"),
            Some(T0 + 1_000 + 3_600_000 + 36_000)
        );

        // ... and never before the retention has passed.
        assert_eq!(
            store
                .outbox()
                .purge(T0 + 3_600_999, retention)
                .expect("purge"),
            0
        );
        assert_eq!(
            store
                .outbox()
                .purge(T0 + 3_601_000, retention)
                .expect("purge"),
            1
        );
        let e = store
            .outbox()
            .load_change(&delivered.change_id)
            .expect_err("purged");
        assert!(matches!(e, Error::PayloadPurged { .. }), "{e}");
        assert!(store.outbox().load_change(&rejected.change_id).is_ok());
        assert_eq!(
            store
                .outbox()
                .purge(T0 + 3_602_000, retention)
                .expect("purge"),
            1
        );
        assert_eq!(
            store
                .outbox()
                .purge(T0 + 99_999_999, retention)
                .expect("purge"),
            0
        );
        assert_eq!(store.outbox().next_purge_at(retention).expect("next"), None);

        // The non-personal row stays; the open change keeps its payload.
        let s = store.outbox().get(&delivered.change_id).expect("row kept");
        assert!(s.purged);
        assert_eq!(s.state, ChangeState::Delivered);
        assert_eq!(s.core_ref.as_deref(), Some("CR-1"));
        assert_eq!(s.kind, "id_validity");
        assert!(store.outbox().get(&rejected.change_id).expect("row").purged);
        assert_eq!(
            *store.outbox().load_change(&open.change_id).expect("open"),
            open
        );
        raw(&store, |c| {
            let sealed: i64 = c
                .query_row(
                    "SELECT count(*) FROM outbox WHERE payload IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .expect("count");
            assert_eq!(sealed, 1);
        });
        let purges = store
            .audit()
            .audit_records(0, 100)
            .expect("audit")
            .into_iter()
            .filter(|r| r.action == "payload_purged")
            .count();
        assert_eq!(purges, 2);
        assert!(store.audit().audit_verify().expect("verify").ok());
        // A purged rejected change cannot be retried.
        let e = store
            .outbox()
            .retry(&rejected.change_id, technician(T0))
            .expect_err("purged");
        assert!(matches!(e, Error::PayloadPurged { .. }), "{e}");
    }

    fn technician(at_ms: i64) -> AuditNote {
        AuditNote {
            at_ms,
            actor: Actor::Technician,
            detail: "kioskctl sync retry".into(),
        }
    }

    #[test]
    fn a_technician_retries_rejected_and_backing_off_changes() {
        let t = TestDir::new();
        let store = t.open();
        let a = id_change("A");
        let b = id_change("B");
        store.outbox().commit_change(&a, note(T0)).expect("commit");
        store.outbox().commit_change(&b, note(T0)).expect("commit");
        deliver_now(&store, T0);
        let conflict = Decision::Rejected {
            code: "idempotency_conflict".into(),
            message: String::new(),
        };
        store
            .outbox()
            .record_outcome(&a.change_id, &conflict, T0)
            .expect("rejected");
        deliver_now(&store, T0);
        let backoff = Decision::RetryAt {
            at_ms: T0 + 60_000,
            then: Call::Reconcile,
            reason: "connection lost".into(),
        };
        store
            .outbox()
            .record_outcome(&b.change_id, &backoff, T0)
            .expect("backoff");

        let s = store
            .outbox()
            .retry(&a.change_id, technician(T0 + 5))
            .expect("retry");
        assert_eq!(s.state, ChangeState::Pending);
        assert_eq!(s.rejection_code, None);
        assert_eq!(s.next_attempt_at_ms, Some(T0 + 5));
        let s = store
            .outbox()
            .retry(&b.change_id, technician(T0 + 5))
            .expect("retry");
        assert_eq!(s.state, ChangeState::InFlight, "still to be reconciled");
        assert_eq!(s.next_attempt_at_ms, Some(T0 + 5));

        let p = store
            .outbox()
            .next_deliverable(T0 + 5)
            .expect("next")
            .expect("a");
        assert_eq!(
            (p.change_id(), p.call, p.failures),
            (a.change_id.as_str(), Call::Deliver, 0)
        );
        drop(p);
        store
            .outbox()
            .record_outcome(&a.change_id, &done("R"), T0 + 6)
            .expect("done");
        let p = store
            .outbox()
            .next_deliverable(T0 + 6)
            .expect("next")
            .expect("b");
        assert_eq!(
            (p.change_id(), p.call, p.failures),
            (b.change_id.as_str(), Call::Reconcile, 0)
        );

        let e = store
            .outbox()
            .retry(&a.change_id, technician(T0 + 7))
            .expect_err("delivered");
        assert!(
            matches!(
                e,
                Error::ChangeState {
                    state: "delivered",
                    ..
                }
            ),
            "{e}"
        );
        let e = store
            .outbox()
            .retry("00000000-0000-0000-0000-000000000000", technician(T0))
            .expect_err("unknown");
        assert!(matches!(e, Error::ChangeNotFound { .. }), "{e}");

        let retried: Vec<_> = store
            .audit()
            .audit_records(0, 100)
            .expect("audit")
            .into_iter()
            .filter(|r| r.action == "change_retried")
            .collect();
        assert_eq!(retried.len(), 2);
        assert_eq!(retried[0].actor, "technician");
        assert!(
            retried[0].detail.contains("idempotency_conflict"),
            "{:?}",
            retried[0]
        );
    }

    #[test]
    fn lists_filter_by_state_and_customer_newest_first() {
        let t = TestDir::new();
        let store = t.open();
        let ids: Vec<_> = ["A", "B", "A"]
            .iter()
            .map(|c| {
                let c = id_change(c);
                store.outbox().commit_change(&c, note(T0)).expect("commit");
                c.change_id.clone()
            })
            .collect();
        deliver_now(&store, T0);
        let all = store.outbox().list(&ListFilter::default()).expect("list");
        assert_eq!(
            all.iter().map(|s| s.change_id.clone()).collect::<Vec<_>>(),
            [ids[2].clone(), ids[1].clone(), ids[0].clone()]
        );
        let of = |state, customer: Option<&str>| {
            store
                .outbox()
                .list(&ListFilter {
                    state,
                    customer_id: customer.map(str::to_string),
                    limit: 10,
                })
                .expect("list")
                .len()
        };
        assert_eq!(of(Some(ChangeState::InFlight), None), 1);
        assert_eq!(of(Some(ChangeState::Pending), None), 2);
        assert_eq!(of(Some(ChangeState::Pending), Some("A")), 1);
        assert_eq!(of(None, Some("A")), 2);
        assert_eq!(of(Some(ChangeState::Delivered), None), 0);
        assert_eq!(
            store
                .outbox()
                .list(&ListFilter {
                    limit: 1,
                    ..ListFilter::default()
                })
                .expect("list")
                .len(),
            1
        );
        for s in ["pending", "in_flight", "delivered", "rejected"] {
            assert_eq!(ChangeState::parse(s).expect("parse").as_str(), s);
        }
        assert_eq!(ChangeState::parse("done"), None);
    }

    #[test]
    fn outbox_rows_are_never_deleted() {
        let t = TestDir::new();
        let store = t.open();
        store
            .outbox()
            .commit_change(&id_change("A"), note(T0))
            .expect("commit");
        raw(&store, |c| {
            c.execute("DELETE FROM outbox", []).expect_err("refused");
        });
    }

    /// Issue 16: one transaction records the outcomes that came back and
    /// marks the next changes in flight (one fsync per step), a customer's
    /// later change still waits for the earlier one, and a crash after the
    /// mark leaves every change marked in flight to be reconciled (never
    /// blindly sent again).
    #[test]
    fn advance_records_outcomes_marks_the_next_in_flight_and_a_crash_reconciles_them() {
        let t = TestDir::new();
        let store = t.open();
        let a1 = id_change("A");
        let a2 = mobile_change("A");
        let b1 = id_change("B");
        for c in [&a1, &a2, &b1] {
            store.outbox().commit_change(c, note(T0)).expect("commit");
        }
        let none = std::collections::HashSet::new();
        let step = store
            .outbox()
            .advance(Vec::new(), none.clone(), 8, T0)
            .expect("advance");
        let taken: Vec<_> = step
            .taken
            .iter()
            .map(|p| p.change_id().to_string())
            .collect();
        assert_eq!(
            taken,
            [a1.change_id.clone(), b1.change_id.clone()],
            "a2 waits behind a1"
        );
        assert!(step.taken.iter().all(|p| p.call == Call::Deliver));
        assert_eq!(
            store.outbox().get(&a1.change_id).expect("a1").state,
            ChangeState::InFlight
        );

        // a1 answered; b1 still out: a1's outcome and a2's mark together.
        let busy: std::collections::HashSet<String> = [b1.change_id.clone()].into();
        let step = store
            .outbox()
            .advance(vec![(a1.change_id.clone(), done("R-A1"))], busy, 8, T0 + 1)
            .expect("advance");
        assert!(step.refused.is_empty());
        let taken: Vec<_> = step
            .taken
            .iter()
            .map(|p| p.change_id().to_string())
            .collect();
        assert_eq!(taken, std::slice::from_ref(&a2.change_id));
        assert_eq!(
            store.outbox().get(&a1.change_id).expect("a1").state,
            ChangeState::Delivered
        );
        assert_eq!(
            store.outbox().get(&a2.change_id).expect("a2").state,
            ChangeState::InFlight
        );

        // A crash with b1 and a2 out: both are asked about, not resent.
        drop(store);
        let store = t.open();
        let step = store
            .outbox()
            .advance(Vec::new(), none, 8, T0 + 2)
            .expect("advance");
        let calls: Vec<_> = step
            .taken
            .iter()
            .map(|p| (p.change_id().to_string(), p.call, p.interrupted))
            .collect();
        assert_eq!(
            calls,
            [
                (a2.change_id.clone(), Call::Reconcile, true),
                (b1.change_id.clone(), Call::Reconcile, true)
            ]
        );
        let actions: Vec<_> = store
            .audit()
            .audit_records(0, 10)
            .expect("audit")
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            [
                "change_recorded",
                "change_recorded",
                "change_recorded",
                "change_applied"
            ]
        );
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    /// Issue 16: an outcome for a change that is no longer open is
    /// refused on its own; the others in the step are recorded.
    #[test]
    fn advance_refuses_a_stale_outcome_alone() {
        let t = TestDir::new();
        let store = t.open();
        let a = id_change("A");
        let b = id_change("B");
        for c in [&a, &b] {
            store.outbox().commit_change(c, note(T0)).expect("commit");
        }
        let none = std::collections::HashSet::new();
        store
            .outbox()
            .advance(Vec::new(), none.clone(), 8, T0)
            .expect("advance");
        store
            .outbox()
            .advance(
                vec![(a.change_id.clone(), done("R-A"))],
                none.clone(),
                0,
                T0,
            )
            .expect("advance");
        let step = store
            .outbox()
            .advance(
                vec![
                    (a.change_id.clone(), done("R-A again")),
                    (b.change_id.clone(), done("R-B")),
                ],
                none,
                0,
                T0,
            )
            .expect("advance");
        assert_eq!(step.refused.len(), 1);
        assert_eq!(step.refused[0].0, a.change_id);
        let sa = store.outbox().get(&a.change_id).expect("a");
        assert_eq!(sa.core_ref.as_deref(), Some("R-A"));
        assert_eq!(
            store.outbox().get(&b.change_id).expect("b").state,
            ChangeState::Delivered
        );
    }

    /// Issue 16 (group commit): confirmations waiting for the store at the
    /// same time share one transaction; each is durable and audited in
    /// order, a failing one (a change id already there) fails alone, and
    /// the audit chain stays whole.
    #[test]
    fn waiting_confirmations_share_one_commit_and_keep_the_audit_chain() {
        let t = TestDir::new();
        let store = std::sync::Arc::new(t.open());
        let existing = id_change("X");
        store
            .outbox()
            .commit_change(&existing, note(T0))
            .expect("commit");
        let commits_before = store.group_commits();
        let timed_before = commits_timed(&store);
        let writers = 6;
        let handles = {
            // Hold the connection so that every writer queues up.
            let held = store.lock();
            let mut handles = Vec::new();
            for k in 0..writers {
                let store = std::sync::Arc::clone(&store);
                let change = if k == 3 {
                    existing.clone()
                } else {
                    id_change(&format!("C{}", k % 2))
                };
                handles.push(std::thread::spawn(move || {
                    store
                        .outbox()
                        .commit_change(&change, note(T0 + 1))
                        .map(|_| change)
                }));
            }
            while store.waiting_jobs().len() < writers {
                std::thread::yield_now();
            }
            drop(held);
            handles
        };
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect();
        assert_eq!(
            store.group_commits(),
            commits_before + 1,
            "one commit for all"
        );
        assert_eq!(commits_timed(&store), timed_before + 1, "timed once");
        for (k, r) in results.iter().enumerate() {
            if k == 3 {
                assert!(matches!(r, Err(Error::ChangeExists { .. })), "{r:?}");
            } else {
                let change = r.as_ref().expect("committed");
                assert_eq!(
                    store.outbox().get(&change.change_id).expect("get").state,
                    ChangeState::Pending
                );
            }
        }
        // Each committed change has its record, in the outbox's order.
        let records = store.audit().audit_records(0, 100).expect("audit");
        let recorded: Vec<_> = records
            .iter()
            .filter(|r| r.action == "change_recorded")
            .filter_map(|r| r.subject.clone())
            .collect();
        let in_outbox: Vec<_> = store
            .outbox()
            .list(&ListFilter::default())
            .expect("list")
            .into_iter()
            .rev()
            .map(|c| c.change_id)
            .collect();
        assert_eq!(recorded, in_outbox);
        assert_eq!(recorded.len(), writers);
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    /// Issue 16: the technician call that records a change (`submit_change`)
    /// is audited in the change's own transaction, before its
    /// `change_recorded`; when the change is refused, neither is kept.
    #[test]
    fn a_change_and_the_call_that_recorded_it_are_audited_in_one_commit() {
        let t = TestDir::new();
        let store = t.open();
        let call = AuditEntry {
            at_ms: T0,
            actor: Actor::Technician,
            action: AuditAction::TechnicianRequest,
            subject: None,
            detail: "method=submit_change uid=0".into(),
        };
        let c = id_change("A");
        store
            .outbox()
            .commit_change_with(&c, note(T0), Some(call.clone()))
            .expect("commit");
        let actions = |store: &Store| -> Vec<String> {
            store
                .audit()
                .audit_records(0, 10)
                .expect("audit")
                .into_iter()
                .map(|r| r.action)
                .collect()
        };
        assert_eq!(actions(&store), ["technician_request", "change_recorded"]);
        let err = store
            .outbox()
            .commit_change_with(&c, note(T0), Some(call))
            .expect_err("the same change twice");
        assert!(matches!(err, Error::ChangeExists { .. }), "{err:?}");
        assert_eq!(actions(&store), ["technician_request", "change_recorded"]);
        assert!(store.audit().audit_verify().expect("verify").ok());
    }
}
