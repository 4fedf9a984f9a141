//! The tickets' life at the counters in the store (rules Q5, Q8, Q9), and
//! the reading of the append-only log of queue events (`queue_event`,
//! written by [`super::queue::log_event`]) the branch stream replays from.
//!
//! Every counter action is ONE transaction: read the ticket, let
//! the [`LifecycleRules`] (`crate::flows::ticket::RULES`) decide, update the ticket, append
//! the queue event and the audit record. Only once it has committed
//! (`synchronous=FULL`) does the caller announce the event: a call the
//! hall heard is never lost by a crash, and a crash before the commit
//! leaves nothing half done.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};

use super::audit::{self, Actor, AuditAction, AuditEntry};
use super::queue::{
    EventKind, QueueEventRow, TICKET_COLUMNS, WaitingCounts, day_in_use, day_text, log_event,
    ticket_row, waiting_counts,
};
use super::{Result, Store, TicketRow};
use crate::Error;

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketState {
    Waiting,
    Called,
    Served,
    Skipped,
}

impl TicketState {
    /// The store's and the wire's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Waiting => "waiting",
            TicketState::Called => "called",
            TicketState::Served => "served",
            TicketState::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<TicketState> {
        Some(match text {
            "waiting" => TicketState::Waiting,
            "called" => TicketState::Called,
            "served" => TicketState::Served,
            "skipped" => TicketState::Skipped,
            _ => return None,
        })
    }
}

/// What a counter asks for. Recall, skip, serve and transfer act on the
/// counter's current ticket; reactivate names a skipped ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterAction {
    CallNext,
    Recall,
    Skip,
    Serve,
    Transfer { to_service: String },
    Reactivate,
}

impl CounterAction {
    /// The action's name on the wire and in the audit trail.
    pub fn as_str(&self) -> &'static str {
        match self {
            CounterAction::CallNext => "call_next",
            CounterAction::Recall => "recall",
            CounterAction::Skip => "skip",
            CounterAction::Serve => "serve",
            CounterAction::Transfer { .. } => "transfer",
            CounterAction::Reactivate => "reactivate",
        }
    }
}

/// What the decisions need to know of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub state: TicketState,
    pub service_id: String,
    pub business_day: NaiveDate,
    /// The counter that called it last (while called: its counter).
    pub counter: Option<String>,
}

/// A waiting ticket "call next" may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub service_id: String,
    pub issued_at_ms: i64,
    /// The store's issue order (ties on the same millisecond).
    pub seq: i64,
}

/// Why a counter's action is refused. Each has a stable code for the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("counter {counter} has no current ticket")]
    NoCurrentTicket { counter: String },
    #[error("counter {counter} is still serving {number}: serve, skip or transfer it first")]
    StillServing { counter: String, number: String },
    #[error("nobody is waiting for the services of counter {counter}")]
    NobodyWaiting { counter: String },
    #[error("ticket {number} is {state}, not skipped")]
    NotSkipped { number: String, state: &'static str },
    #[error("ticket {number} was skipped on another business day and cannot be reactivated")]
    OtherDay { number: String },
    #[error("ticket {number} is already in service {service}")]
    SameService { number: String, service: String },
    #[error("no queue service {service:?} is configured")]
    UnknownService { service: String },
    #[error("no ticket {number} today")]
    NoSuchTicket { number: String },
}

impl LifecycleError {
    /// The stable code (the branch API's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::NoCurrentTicket { .. } => "no_current_ticket",
            LifecycleError::StillServing { .. } => "still_serving",
            LifecycleError::NobodyWaiting { .. } => "nobody_waiting",
            LifecycleError::NotSkipped { .. } => "not_skipped",
            LifecycleError::OtherDay { .. } => "other_day",
            LifecycleError::SameService { .. } => "same_service",
            LifecycleError::UnknownService { .. } => "unknown_service",
            LifecycleError::NoSuchTicket { .. } => "no_such_ticket",
        }
    }

    /// A ticket or service that does not exist (rather than a conflict).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            LifecycleError::UnknownService { .. } | LifecycleError::NoSuchTicket { .. }
        )
    }
}

/// A ticket's new state, service and counter after an action, and the
/// event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: EventKind,
    pub state: TicketState,
    pub service_id: String,
    /// The counter holding it afterwards (`None` once it waits again).
    pub counter: Option<String>,
    /// The ticket's first call (rule Q9: waiting time ends here).
    pub first_call: bool,
}

/// One ticket's facts for the statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTimes {
    pub service_id: String,
    /// The counter that called it last, if any did.
    pub counter: Option<String>,
    pub state: TicketState,
    pub issued_at_ms: i64,
    pub first_called_at_ms: Option<i64>,
    /// The last call (the one that was served).
    pub called_at_ms: Option<i64>,
    pub served_at_ms: Option<i64>,
}

/// The ticket rules the store applies inside its transaction (given by
/// `crate::flows::ticket::RULES`; the store imports nothing above it).
#[derive(Debug, Clone, Copy)]
pub struct LifecycleRules {
    pub pick_next: fn(&[String], &[Candidate]) -> Option<usize>,
    pub may_call_next: fn(&str, Option<&str>) -> std::result::Result<(), LifecycleError>,
    #[allow(clippy::type_complexity)]
    pub transition: fn(
        &TicketFacts,
        &str,
        &CounterAction,
        &str,
        NaiveDate,
        &dyn Fn(&str) -> bool,
    ) -> std::result::Result<Transition, LifecycleError>,
}

/// A counter's action as the store applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActRequest {
    /// The counter; `None` for a technician's call from the local API
    /// (it belongs to no counter, so it is no counter's current ticket).
    pub counter: Option<String>,
    /// The counter's services, in its order ("call next").
    pub services: Vec<String>,
    pub action: CounterAction,
    /// Reactivate: the skipped ticket, by printed number (today's) ...
    pub number: Option<String>,
    /// ... or by ticket id.
    pub ticket_id: Option<String>,
    /// The business day of the wall clock (the store keeps to the
    /// numbering's day when the clock is behind it, rule Q2).
    pub business_day: NaiveDate,
    pub now_ms: i64,
    /// Every configured service id (a transfer's target must be one).
    pub known_services: Vec<String>,
}

/// What an action did: the ticket afterwards and its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acted {
    pub ticket: TicketRow,
    pub event: QueueEventRow,
}

/// The queue's life at the counters. A view of the [`Store`]:
/// `store.calls()`.
#[derive(Debug, Clone, Copy)]
pub struct Calls<'s> {
    pub(super) store: &'s Store,
}

const EVENT_COLUMNS: &str = "seq, at_ms, business_day, kind, ticket_id, number_text, service_id, \
     from_service, counter_id, waiting";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueEventRow> {
    let bad = |i, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad {what}").into(),
        )
    };
    let day: String = r.get(2)?;
    let kind: String = r.get(3)?;
    let waiting: String = r.get(9)?;
    Ok(QueueEventRow {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        business_day: NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|_| bad(2, "day"))?,
        kind: EventKind::parse(&kind).ok_or_else(|| bad(3, "kind"))?,
        ticket_id: r.get(4)?,
        number: r.get(5)?,
        service_id: r.get(6)?,
        from_service: r.get(7)?,
        counter: r.get(8)?,
        waiting: serde_json::from_str(&waiting).map_err(|_| bad(9, "waiting"))?,
    })
}

fn audit_action(kind: EventKind) -> AuditAction {
    match kind {
        EventKind::Issued => AuditAction::TicketIssued,
        EventKind::Called => AuditAction::TicketCalled,
        EventKind::Recalled => AuditAction::TicketRecalled,
        EventKind::Skipped => AuditAction::TicketSkipped,
        EventKind::Reactivated => AuditAction::TicketReactivated,
        EventKind::Transferred => AuditAction::TicketTransferred,
        EventKind::Served => AuditAction::TicketServed,
    }
}

fn facts(t: &TicketRow) -> TicketFacts {
    TicketFacts {
        state: TicketState::parse(&t.state).unwrap_or(TicketState::Served),
        service_id: t.service_id.clone(),
        business_day: t.business_day,
        counter: t.counter.clone(),
    }
}

fn one_ticket(
    tx: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Option<TicketRow>> {
    tx.query_row(
        &format!("SELECT {TICKET_COLUMNS} FROM ticket WHERE numbered_by IS NULL AND {filter}"),
        args,
        ticket_row,
    )
    .optional()
}

/// The counter's current ticket on `day`: called by it and not yet done.
fn current_of(tx: &Connection, counter: &str, day: &str) -> rusqlite::Result<Option<TicketRow>> {
    one_ticket(
        tx,
        "counter_id = ?1 AND business_day = ?2 AND state = 'called' ORDER BY called_at_ms DESC LIMIT 1",
        params![counter, day],
    )
}

fn waiting_candidates(tx: &Connection, day: &str) -> rusqlite::Result<Vec<(TicketRow, Candidate)>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {TICKET_COLUMNS}, seq FROM ticket
         WHERE business_day = ?1 AND state = 'waiting' AND numbered_by IS NULL"
    ))?;
    let rows = stmt.query_map([day], |r| {
        let t = ticket_row(r)?;
        let seq: i64 = r.get(13)?;
        let c = Candidate {
            service_id: t.service_id.clone(),
            issued_at_ms: t.issued_at_ms,
            seq,
        };
        Ok((t, c))
    })?;
    rows.collect()
}

impl Calls<'_> {
    /// Rule Q5 and Q8: apply a counter's action in one transaction with
    /// its queue event and audit record. Durable when it returns; a
    /// refusal ([`crate::Error::Lifecycle`]) changes nothing.
    pub fn act(&self, req: &ActRequest, rules: &LifecycleRules) -> Result<Acted> {
        let counter_name = req.counter.as_deref().unwrap_or("");
        self.store.write(|tx| {
            let day = day_in_use(tx, req.business_day)?;
            let day_s = day_text(day);
            let target = match &req.action {
                CounterAction::CallNext => {
                    if let Some(counter) = &req.counter {
                        let current = current_of(tx, counter, &day_s)?;
                        (rules.may_call_next)(
                            counter,
                            current.as_ref().map(|t| t.number_text.as_str()),
                        )
                        .map_err(Error::from)?;
                    }
                    let mut waiting = waiting_candidates(tx, &day_s)?;
                    let cands: Vec<Candidate> = waiting.iter().map(|(_, c)| c.clone()).collect();
                    match (rules.pick_next)(&req.services, &cands) {
                        Some(i) => waiting.swap_remove(i).0,
                        None => {
                            return Err(Error::from(LifecycleError::NobodyWaiting {
                                counter: counter_name.to_string(),
                            })
                            .into());
                        }
                    }
                }
                CounterAction::Reactivate => {
                    let found = match (&req.ticket_id, &req.number) {
                        (Some(id), _) => one_ticket(tx, "ticket_id = ?1", [id])?,
                        (None, Some(n)) => one_ticket(
                            tx,
                            "number_text = ?1 AND business_day = ?2",
                            params![n, day_s],
                        )?,
                        (None, None) => None,
                    };
                    found.ok_or_else(|| {
                        Error::from(LifecycleError::NoSuchTicket {
                            number: req
                                .number
                                .clone()
                                .or_else(|| req.ticket_id.clone())
                                .unwrap_or_default(),
                        })
                    })?
                }
                _ => current_of(tx, counter_name, &day_s)?.ok_or_else(|| {
                    Error::from(LifecycleError::NoCurrentTicket {
                        counter: counter_name.to_string(),
                    })
                })?,
            };
            let change = (rules.transition)(
                &facts(&target),
                &target.number_text,
                &req.action,
                counter_name,
                day,
                &|s| req.known_services.iter().any(|k| k == s),
            )
            .map_err(Error::from)?;
            let now = req.now_ms;
            let counter_after = match (&change.counter, &req.counter) {
                // A technician's call (no counter) names none.
                (Some(_), None) => None,
                (Some(c), Some(_)) => Some(c.clone()),
                // Waiting again: the last caller stays on record (rule Q9).
                (None, _) => target.counter.clone(),
            };
            tx.execute(
                "UPDATE ticket SET
                    state = ?2,
                    service_id = ?3,
                    counter_id = ?4,
                    called_at_ms = CASE WHEN ?5 = 'called' THEN ?6 ELSE called_at_ms END,
                    first_called_at_ms = CASE WHEN ?5 = 'called'
                        THEN COALESCE(first_called_at_ms, ?6) ELSE first_called_at_ms END,
                    recalls = recalls + (?5 = 'recalled'),
                    served_at_ms = CASE WHEN ?5 = 'served' THEN ?6 ELSE served_at_ms END,
                    skipped_at_ms = CASE WHEN ?5 = 'skipped' THEN ?6 ELSE skipped_at_ms END
                 WHERE ticket_id = ?1",
                params![
                    target.ticket_id,
                    change.state.as_str(),
                    change.service_id,
                    counter_after,
                    change.kind.as_str(),
                    now
                ],
            )?;
            let mut after = target.clone();
            after.state = change.state.as_str().to_string();
            after.service_id = change.service_id.clone();
            after.counter = counter_after;
            if change.kind == EventKind::Called {
                after.called_at_ms = Some(now);
            }
            let from =
                (change.kind == EventKind::Transferred).then_some(target.service_id.as_str());
            let event = log_event(tx, change.kind, &after, from, now)?;
            let who = match &req.counter {
                Some(c) => format!("counter {c}"),
                None => "technician".to_string(),
            };
            let detail = match from {
                Some(from) => format!(
                    "{who}: {} {} from {from} to {} (rule Q8)",
                    change.kind.as_str(),
                    after.number_text,
                    after.service_id
                ),
                None => format!(
                    "{who}: {} {} ({}) (rule Q8)",
                    change.kind.as_str(),
                    after.number_text,
                    after.service_id
                ),
            };
            audit::append(
                tx,
                &AuditEntry {
                    at_ms: now,
                    actor: if req.counter.is_some() {
                        Actor::Counter
                    } else {
                        Actor::Technician
                    },
                    action: audit_action(change.kind),
                    subject: Some(after.ticket_id.clone()),
                    detail,
                },
            )?;
            Ok(Acted {
                ticket: after,
                event,
            })
        })
    }

    /// Queue events after `seq`, oldest first, at most `limit`.
    pub fn events_since(&self, seq: i64, limit: u32) -> Result<Vec<QueueEventRow>> {
        self.store.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM queue_event WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![seq, limit], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The last event's seq (0 before any).
    pub fn last_seq(&self) -> Result<i64> {
        self.store.read(|tx| {
            Ok(
                tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM queue_event", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    /// The last `n` calls (first calls and recalls) of the queue's day,
    /// the newest first.
    pub fn recent_calls(&self, asked: NaiveDate, n: u32) -> Result<Vec<QueueEventRow>> {
        self.store.read(|tx| {
            let day = day_text(day_in_use(tx, asked)?);
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM queue_event
                 WHERE business_day = ?1 AND kind IN ('called', 'recalled')
                 ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![day, n], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The queue's day, its waiting counts and every counter's current
    /// ticket (counter id → ticket).
    pub fn snapshot(
        &self,
        asked: NaiveDate,
    ) -> Result<(NaiveDate, WaitingCounts, BTreeMap<String, TicketRow>)> {
        self.store.read(|tx| {
            let day = day_in_use(tx, asked)?;
            let day_s = day_text(day);
            let waiting = waiting_counts(tx, &day_s)?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {TICKET_COLUMNS} FROM ticket
                 WHERE business_day = ?1 AND state = 'called' AND counter_id IS NOT NULL
                    AND numbered_by IS NULL
                 ORDER BY called_at_ms"
            ))?;
            let current = stmt
                .query_map([day_s.as_str()], ticket_row)?
                .filter_map(|r| r.ok())
                .filter_map(|t| Some((t.counter.clone()?, t)))
                .collect();
            Ok((day, waiting, current))
        })
    }

    /// The issue time of the oldest waiting ticket per service on the
    /// queue's day (the longest current wait).
    pub fn oldest_waiting(&self, asked: NaiveDate) -> Result<BTreeMap<String, i64>> {
        self.store.read(|tx| {
            let day = day_text(day_in_use(tx, asked)?);
            let mut stmt = tx.prepare_cached(
                "SELECT service_id, MIN(issued_at_ms) FROM ticket
                 WHERE business_day = ?1 AND state = 'waiting' AND numbered_by IS NULL
                 GROUP BY service_id",
            )?;
            let rows = stmt
                .query_map([day], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }

    /// Every ticket of `day` as the statistics need it (rule Q9).
    pub fn day_times(&self, day: NaiveDate) -> Result<Vec<TicketTimes>> {
        self.store.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT service_id, counter_id, state, issued_at_ms, first_called_at_ms,
                    called_at_ms, served_at_ms
                 FROM ticket WHERE business_day = ?1 AND numbered_by IS NULL ORDER BY seq",
            )?;
            let rows = stmt
                .query_map([day_text(day)], |r| {
                    let state: String = r.get(2)?;
                    Ok(TicketTimes {
                        service_id: r.get(0)?,
                        counter: r.get(1)?,
                        state: TicketState::parse(&state).unwrap_or(TicketState::Waiting),
                        issued_at_ms: r.get(3)?,
                        first_called_at_ms: r.get(4)?,
                        called_at_ms: r.get(5)?,
                        served_at_ms: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{NewTicket, Store};
    use super::*;
    use crate::flows::ticket::RULES;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).expect("date")
    }

    const SERVICES: [&str; 3] = ["personal", "corporate", "vip"];

    fn issue(store: &Store, id: &str, service: &str, letter: char, at: i64) -> TicketRow {
        store
            .tickets()
            .issue_ticket(&NewTicket {
                ticket_id: id.into(),
                service_id: service.into(),
                letter,
                business_day: day(),
                issued_at_ms: at,
                number_digits: 3,
                masked_name: Some("张*".into()),
                issued_for: None,
            })
            .expect("issue")
    }

    fn act(
        store: &Store,
        counter: &str,
        services: &[&str],
        action: CounterAction,
        at: i64,
    ) -> Result<Acted> {
        store.calls().act(
            &ActRequest {
                counter: Some(counter.into()),
                services: services.iter().map(|s| s.to_string()).collect(),
                action,
                number: None,
                ticket_id: None,
                business_day: day(),
                now_ms: at,
                known_services: SERVICES.iter().map(|s| s.to_string()).collect(),
            },
            &RULES,
        )
    }

    /// Add past business days' tickets until `tickets` are behind today:
    /// each issued, called and served at counter 1, with its three events
    /// and its day's numbering, written directly.
    fn fill_queue_history(store: &Store, tickets: i64) {
        raw(store, |c| {
            let tx = c.unchecked_transaction().expect("begin");
            let from: i64 = tx
                .query_row("SELECT count(*) FROM ticket", [], |r| r.get(0))
                .expect("count");
            let per_day = 500;
            for i in from..tickets {
                let past = day() - chrono::Days::new(1 + (i / per_day) as u64);
                let day_s = past.format("%Y-%m-%d").to_string();
                let number = i % per_day + 1;
                let (id, text) = (format!("h{i}"), format!("A{number:03}"));
                let at = 1_000 + i;
                tx.execute(
                    "INSERT INTO ticket (ticket_id, service_id, letter, business_day, number,
                         number_text, issued_at_ms, waiting_ahead, state, printed, called_at_ms,
                         first_called_at_ms, counter_id, served_at_ms)
                     VALUES (?1, 'personal', 'A', ?2, ?3, ?4, ?5, 0, 'served', 1, ?5, ?5, '1', ?5)",
                    rusqlite::params![id, day_s, number, text, at],
                )
                .expect("ticket");
                for kind in ["issued", "called", "served"] {
                    tx.execute(
                        "INSERT INTO queue_event (at_ms, business_day, kind, ticket_id,
                             number_text, service_id, counter_id, waiting)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'personal', '1', '{}')",
                        rusqlite::params![at, day_s, kind, id, text],
                    )
                    .expect("event");
                }
                tx.execute(
                    "INSERT INTO queue_counter (service, business_day, last_number)
                     VALUES ('A', ?1, ?2)
                     ON CONFLICT (service, business_day) DO UPDATE SET last_number = ?2",
                    rusqlite::params![day_s, number],
                )
                .expect("numbering");
            }
            tx.commit().expect("commit");
        });
    }

    /// With `tickets` served on past days behind it, a ticket issued
    /// today, called and served, each with the SQLite VM instructions it
    /// ran.
    fn queue_hot_path_steps(store: &Store, tickets: i64) -> Vec<(&'static str, u64)> {
        fill_queue_history(store, tickets);
        let id = format!("t{tickets}");
        let (ticket, issued) = vm_steps(store, || issue(store, &id, "personal", 'A', 5_000));
        let (_, ahead) = vm_steps(store, || {
            store.tickets().waiting_ahead(&ticket).expect("ahead")
        });
        let (called, call) = vm_steps(store, || {
            act(store, "1", &["personal"], CounterAction::CallNext, 6_000).expect("call")
        });
        assert_eq!(called.ticket.ticket_id, id);
        let (_, serve) = vm_steps(store, || {
            act(store, "1", &["personal"], CounterAction::Serve, 7_000).expect("serve")
        });
        let (_, snapshot) = vm_steps(store, || store.calls().snapshot(day()).expect("snapshot"));
        vec![
            ("issue_ticket", issued),
            ("waiting_ahead", ahead),
            ("call next", call),
            ("serve", serve),
            ("snapshot", snapshot),
        ]
    }

    /// Issue 16: the queue's hot path does not grow with history. With
    /// twenty times as many tickets served on past days behind it, taking
    /// a ticket, calling it and serving it run about as many SQLite VM
    /// instructions.
    #[test]
    fn queue_work_does_not_grow_with_history() {
        let t = TestDir::new();
        assert_steps_flat(&t.open(), (1_000, 20_000), queue_hot_path_steps);
    }

    fn code(r: Result<Acted>) -> &'static str {
        match r {
            Err(crate::Error::Lifecycle(e)) => e.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn rule_q5_counters_call_recall_skip_reactivate_transfer_and_serve_durably() {
        let t = TestDir::new();
        let store = t.open();
        issue(&store, "a1", "personal", 'A', 1_000);
        issue(&store, "a2", "personal", 'A', 2_000);
        issue(&store, "v1", "vip", 'V', 3_000);
        let vip_first = ["vip", "personal"];
        // Counter 1 serves VIP first.
        let c = act(&store, "1", &vip_first, CounterAction::CallNext, 10_000).expect("call");
        assert_eq!(
            (c.ticket.number_text.as_str(), c.event.kind),
            ("V001", EventKind::Called)
        );
        assert_eq!(c.event.counter.as_deref(), Some("1"));
        assert_eq!(
            code(act(
                &store,
                "1",
                &vip_first,
                CounterAction::CallNext,
                10_500
            )),
            "still_serving"
        );
        let r = act(&store, "1", &vip_first, CounterAction::Recall, 11_000).expect("recall");
        assert_eq!(r.event.kind, EventKind::Recalled);
        act(&store, "1", &vip_first, CounterAction::Serve, 70_000).expect("serve");
        // Counter 2 calls A001, skips it; counter 1 calls A002.
        let a1 = act(&store, "2", &["personal"], CounterAction::CallNext, 20_000).expect("call");
        assert_eq!(a1.ticket.number_text, "A001");
        // Another counter cannot act on counter 2's ticket.
        assert_eq!(
            code(act(&store, "3", &["personal"], CounterAction::Skip, 20_100)),
            "no_current_ticket"
        );
        act(&store, "2", &["personal"], CounterAction::Skip, 21_000).expect("skip");
        let a2 = act(&store, "1", &vip_first, CounterAction::CallNext, 22_000).expect("call");
        assert_eq!(a2.ticket.number_text, "A002");
        // A001 comes back and waits again; with its issue time it is next.
        let back = store
            .calls()
            .act(
                &ActRequest {
                    counter: Some("2".into()),
                    services: vec!["personal".into()],
                    action: CounterAction::Reactivate,
                    number: Some("A001".into()),
                    ticket_id: None,
                    business_day: day(),
                    now_ms: 23_000,
                    known_services: SERVICES.iter().map(|s| s.to_string()).collect(),
                },
                &RULES,
            )
            .expect("reactivate");
        assert_eq!(
            (back.event.kind, back.ticket.state.as_str()),
            (EventKind::Reactivated, "waiting")
        );
        assert_eq!(back.event.waiting.get("personal"), Some(&1));
        // Counter 1 transfers A002 to corporate: same number, waits there.
        let moved = act(
            &store,
            "1",
            &vip_first,
            CounterAction::Transfer {
                to_service: "corporate".into(),
            },
            24_000,
        )
        .expect("transfer");
        assert_eq!(
            (
                moved.ticket.number_text.as_str(),
                moved.ticket.service_id.as_str()
            ),
            ("A002", "corporate")
        );
        assert_eq!(moved.event.from_service.as_deref(), Some("personal"));
        assert_eq!(moved.event.waiting.get("corporate"), Some(&1));
        let again =
            act(&store, "4", &["corporate"], CounterAction::CallNext, 25_000).expect("call");
        assert_eq!(again.ticket.number_text, "A002");
        drop(store);
        // Everything above survived a reopen, in order, with growing seqs.
        let store = t.open();
        let events = store.calls().events_since(0, 100).expect("events");
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "issued",
                "issued",
                "issued",
                "called",
                "recalled",
                "served",
                "called",
                "skipped",
                "called",
                "reactivated",
                "transferred",
                "called"
            ]
        );
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            store
                .calls()
                .events_since(events[9].seq, 100)
                .expect("tail")
                .len(),
            2
        );
        assert_eq!(store.calls().last_seq().expect("last"), events[11].seq);
        let (_, waiting, current) = store.calls().snapshot(day()).expect("snapshot");
        assert_eq!(waiting.get("personal"), Some(&1));
        assert_eq!(
            current.get("4").map(|t| t.number_text.as_str()),
            Some("A002")
        );
        let calls = store.calls().recent_calls(day(), 2).expect("calls");
        assert_eq!(calls[0].number, "A002");
    }

    #[test]
    fn rule_q8_every_counter_action_is_audited_with_counter_and_ticket_and_no_name() {
        let t = TestDir::new();
        let store = t.open();
        issue(&store, "a1", "personal", 'A', 1_000);
        act(&store, "3", &["personal"], CounterAction::CallNext, 2_000).expect("call");
        act(&store, "3", &["personal"], CounterAction::Recall, 3_000).expect("recall");
        act(&store, "3", &["personal"], CounterAction::Serve, 4_000).expect("serve");
        // A refusal writes nothing.
        assert!(act(&store, "3", &["personal"], CounterAction::Serve, 5_000).is_err());
        let records = store.audit().audit_records(0, 100).expect("audit");
        let acts: Vec<_> = records
            .iter()
            .filter(|r| r.actor == "counter")
            .map(|r| (r.action.as_str(), r.subject.as_deref(), r.detail.as_str()))
            .collect();
        assert_eq!(acts.len(), 3, "{acts:?}");
        assert_eq!(acts[0].0, "ticket_called");
        assert_eq!(acts[1].0, "ticket_recalled");
        assert_eq!(acts[2].0, "ticket_served");
        for (_, subject, detail) in &acts {
            assert_eq!(*subject, Some("a1"));
            assert!(detail.contains("counter 3") && detail.contains("A001"));
            assert!(!detail.contains('张'));
        }
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    #[test]
    fn rule_q9_day_times_feed_the_report() {
        let t = TestDir::new();
        let store = t.open();
        issue(&store, "a1", "personal", 'A', 0);
        issue(&store, "a2", "personal", 'A', 0);
        act(&store, "1", &["personal"], CounterAction::CallNext, 30_000).expect("call");
        act(&store, "1", &["personal"], CounterAction::Recall, 40_000).expect("recall");
        act(&store, "1", &["personal"], CounterAction::Serve, 90_000).expect("serve");
        let oldest = store.calls().oldest_waiting(day()).expect("oldest");
        assert_eq!(oldest.get("personal"), Some(&0));
        let times = store.calls().day_times(day()).expect("times");
        let rows = crate::flows::queue_report::daily_report(&["personal".into()], &times);
        assert_eq!((rows[0].tickets, rows[0].served), (2, 1));
        // Waiting to the first call; service time from the call (a recall
        // is the same call announced again).
        assert_eq!(rows[0].waiting.max_s, Some(30));
        assert_eq!(rows[0].service_time.max_s, Some(60));
    }
}
