//! Queue ticket counters (rule Q2): numbers restart every business day per
//! service and are never issued twice, even across a crash or power loss.
//!
//! Also the writing end of the append-only log of queue events
//! (`queue_event`, [`log_event`]): issuing a ticket here and every counter
//! action in [`super::calls`] append to it in their own transaction.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};

use super::audit::{self, Actor, AuditAction, AuditEntry};
use super::{Result, Store};
use crate::Error;

/// `A` and 23 with 3 digits → `A023`; a number too long for `digits`
/// keeps all its digits (`A1000`).
pub fn format_ticket_number(letter: char, n: u32, digits: u8) -> String {
    format!("{letter}{n:0width$}", width = usize::from(digits))
}

/// The queue tickets and their numbering (rules Q1–Q4).
/// A view of the [`Store`]: `store.tickets()`.
#[derive(Debug, Clone, Copy)]
pub struct Tickets<'s> {
    pub(super) store: &'s Store,
}

impl Tickets<'_> {
    /// Take the next ticket number of `service` (its letter, e.g. `A`) on
    /// `business_day`: 1 for the day's first ticket. Durable when it
    /// returns, so a number handed out is never handed out again.
    pub fn next_ticket_number(&self, service: &str, business_day: NaiveDate) -> Result<u32> {
        if service.trim().is_empty() {
            return Err(Error::InvalidChange("queue service is empty".into()));
        }
        self.store.write(|tx| {
            let (_, n) = take_number(tx, service, business_day)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }
}

/// The business day numbering is on: `asked`, or the latest business day
/// any counter has used when `asked` is earlier (the clock was stepped
/// back; rule Q2: a business day never goes back).
pub(super) fn day_in_use(tx: &Connection, asked: NaiveDate) -> rusqlite::Result<NaiveDate> {
    let latest: Option<String> = tx
        .prepare_cached("SELECT MAX(business_day) FROM queue_counter")?
        .query_row([], |r| r.get(0))?;
    let latest = latest.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
    Ok(match latest {
        Some(latest) if latest > asked => {
            tracing::warn!(
                %asked,
                kept = %latest,
                "the clock is behind the last business day used: the queue stays on that day (rule Q2)"
            );
            latest
        }
        _ => asked,
    })
}

/// Take the next number of `letter`'s counter (rule Q2), inside the
/// caller's transaction: on `asked` (the business day of the wall clock),
/// or on the latest business day any counter has used when `asked` is
/// earlier (the clock was stepped back): a day's numbers only go up and a
/// business day never goes back, so no number printed today comes out
/// again. Returns the day used and the number.
fn take_number(
    tx: &Connection,
    letter: &str,
    asked: NaiveDate,
) -> rusqlite::Result<(NaiveDate, i64)> {
    let day = day_in_use(tx, asked)?;
    // Cached statements, as below: each ticket's commit runs them all.
    let n: i64 = tx
        .prepare_cached(
            "INSERT INTO queue_counter (service, business_day, last_number)
             VALUES (?1, ?2, 1)
             ON CONFLICT (service, business_day)
             DO UPDATE SET last_number = last_number + 1
             RETURNING last_number",
        )?
        .query_row([letter, day_text(day).as_str()], |r| r.get(0))?;
    Ok((day, n))
}

/// A ticket to issue: everything but its number, which the store takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub ticket_id: String,
    pub service_id: String,
    /// The counter: the service's letter.
    pub letter: char,
    pub business_day: NaiveDate,
    pub issued_at_ms: i64,
    /// Digits of the printed number (`A023`: 3).
    pub number_digits: u8,
    /// Masked only (rule S1).
    pub masked_name: Option<String>,
    /// The queue machine that asked for it (rule Q7); `None`: this one.
    pub issued_for: Option<String>,
}

/// An issued ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    pub ticket_id: String,
    pub service_id: String,
    pub letter: char,
    pub business_day: NaiveDate,
    pub number: u32,
    pub number_text: String,
    pub issued_at_ms: i64,
    /// People waiting ahead when it was issued.
    pub waiting_ahead: u32,
    pub masked_name: Option<String>,
    /// `waiting`, `called`, `served` or `skipped`
    /// ([`super::TicketState`]).
    pub state: String,
    pub printed: bool,
    /// The last call.
    pub called_at_ms: Option<i64>,
    /// The counter that called it last (rule Q5).
    pub counter: Option<String>,
}

/// One service letter's queue on a business day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    pub letter: char,
    pub waiting: u32,
    pub last_called: Option<u32>,
    pub last_issued: Option<u32>,
}

pub(super) const TICKET_COLUMNS: &str = "ticket_id, service_id, letter, business_day, number, \
     number_text, issued_at_ms, waiting_ahead, masked_name, state, printed, called_at_ms, counter_id";

pub(super) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

pub(super) fn ticket_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketRow> {
    let letter: String = r.get(2)?;
    let day: String = r.get(3)?;
    let bad = |i, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad {what}").into(),
        )
    };
    Ok(TicketRow {
        ticket_id: r.get(0)?,
        service_id: r.get(1)?,
        letter: letter.chars().next().ok_or_else(|| bad(2, "letter"))?,
        business_day: NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|_| bad(3, "day"))?,
        number: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
        number_text: r.get(5)?,
        issued_at_ms: r.get(6)?,
        waiting_ahead: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(u32::MAX),
        masked_name: r.get(8)?,
        state: r.get(9)?,
        printed: r.get::<_, i64>(10)? != 0,
        called_at_ms: r.get(11)?,
        counter: r.get(12)?,
    })
}

/// Waiting tickets of `service` on `day` issued before the ticket with
/// `issued_at_ms` and `ticket_id` (a transferred ticket keeps its issue
/// time, so it waits ahead of younger ones in its new service).
fn count_waiting_before(
    tx: &Connection,
    service: &str,
    day: &str,
    issued_at_ms: i64,
    ticket_id: &str,
) -> rusqlite::Result<u32> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM ticket
             WHERE service_id = ?1 AND business_day = ?2 AND state = 'waiting'
                AND numbered_by IS NULL AND ticket_id <> ?4
                AND (issued_at_ms < ?3 OR (issued_at_ms = ?3 AND seq < COALESCE(
                    (SELECT seq FROM ticket WHERE ticket_id = ?4), 9223372036854775807)))",
        )?
        .query_row(params![service, day, issued_at_ms, ticket_id], |r| r.get(0))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl Tickets<'_> {
    /// The business day the queue is on when the clock says `asked` (see
    /// `day_in_use`): calls and counts follow the numbering's day.
    pub fn queue_day(&self, asked: NaiveDate) -> Result<NaiveDate> {
        self.store.read(|tx| Ok(day_in_use(tx, asked)?))
    }

    /// Issue a ticket (rule Q2): in ONE transaction, take the next number
    /// of its letter on its business day, count the people waiting ahead,
    /// write the ticket row and the `ticket_issued` audit record (masked
    /// data only). Durable when it returns: the number is committed before
    /// anything is printed, and never handed out again.
    pub fn issue_ticket(&self, t: &NewTicket) -> Result<TicketRow> {
        if !t.letter.is_ascii_uppercase() || t.service_id.trim().is_empty() {
            return Err(Error::InvalidChange("queue service is invalid".into()));
        }
        let letter = t.letter.to_string();
        self.store.write(|tx| {
            let (business_day, n) = take_number(tx, &letter, t.business_day)?;
            let day = day_text(business_day);
            let number = u32::try_from(n).unwrap_or(u32::MAX);
            let number_text =
                format_ticket_number(t.letter, number, t.number_digits);
            let waiting_ahead =
                count_waiting_before(tx, &t.service_id, &day, t.issued_at_ms, &t.ticket_id)?;
            tx.prepare_cached(
                "INSERT INTO ticket (ticket_id, service_id, letter, business_day, number,
                    number_text, issued_at_ms, waiting_ahead, masked_name, issued_for)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                t.ticket_id,
                t.service_id,
                letter,
                day,
                n,
                number_text,
                t.issued_at_ms,
                i64::from(waiting_ahead),
                t.masked_name,
                t.issued_for,
            ])?;
            let row = TicketRow {
                ticket_id: t.ticket_id.clone(),
                service_id: t.service_id.clone(),
                letter: t.letter,
                business_day,
                number,
                number_text: number_text.clone(),
                issued_at_ms: t.issued_at_ms,
                waiting_ahead,
                masked_name: t.masked_name.clone(),
                state: "waiting".into(),
                printed: false,
                called_at_ms: None,
                counter: None,
            };
            // The halls' displays learn of it from the queue's log.
            log_event(tx, EventKind::Issued, &row, None, t.issued_at_ms)?;
            audit::append(
                tx,
                &AuditEntry {
                    at_ms: t.issued_at_ms,
                    actor: if t.issued_for.is_some() {
                        Actor::QueueMachine
                    } else if t.masked_name.is_some() {
                        Actor::CustomerSession
                    } else {
                        Actor::Kiosk
                    },
                    action: AuditAction::TicketIssued,
                    subject: Some(t.ticket_id.clone()),
                    detail: format!(
                        "ticket {number_text} service {} business day {day}, {waiting_ahead} waiting ahead{}{}",
                        t.service_id,
                        if t.masked_name.is_some() {
                            ", ID card swiped"
                        } else {
                            ""
                        },
                        match &t.issued_for {
                            Some(m) => format!(", for queue machine {m} (rule Q7)"),
                            None => String::new(),
                        }
                    ),
                },
            )?;
            Ok(row)
        })
    }

    /// On a secondary queue machine (rule Q7): keep a copy of a ticket the
    /// primary numbered (`row`, as the primary granted it), with its
    /// audit record, so it can be reprinted here (rule Q4). The copy is
    /// never numbered, called or counted here (`numbered_by`).
    pub fn record_granted(&self, row: &TicketRow, primary: &str) -> Result<()> {
        self.store.write(|tx| {
            let day = day_text(row.business_day);
            tx.execute(
                "INSERT INTO ticket (ticket_id, service_id, letter, business_day, number,
                    number_text, issued_at_ms, waiting_ahead, masked_name, numbered_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    row.ticket_id,
                    row.service_id,
                    row.letter.to_string(),
                    day,
                    i64::from(row.number),
                    row.number_text,
                    row.issued_at_ms,
                    i64::from(row.waiting_ahead),
                    row.masked_name,
                    primary,
                ],
            )?;
            audit::append(
                tx,
                &AuditEntry {
                    at_ms: row.issued_at_ms,
                    actor: if row.masked_name.is_some() {
                        Actor::CustomerSession
                    } else {
                        Actor::Kiosk
                    },
                    action: AuditAction::TicketIssued,
                    subject: Some(row.ticket_id.clone()),
                    detail: format!(
                        "ticket {} service {} business day {day}, numbered by the primary queue machine {primary} (rule Q7)",
                        row.number_text, row.service_id
                    ),
                },
            )?;
            Ok(())
        })
    }

    /// Record that a ticket came out of the printer.
    pub fn mark_ticket_printed(&self, ticket_id: &str) -> Result<()> {
        self.store.write(|tx| {
            tx.execute(
                "UPDATE ticket SET printed = 1 WHERE ticket_id = ?1",
                [ticket_id],
            )?;
            Ok(())
        })
    }

    /// A ticket by id.
    pub fn ticket(&self, ticket_id: &str) -> Result<Option<TicketRow>> {
        self.store.read(|tx| {
            Ok(tx
                .query_row(
                    &format!("SELECT {TICKET_COLUMNS} FROM ticket WHERE ticket_id = ?1"),
                    [ticket_id],
                    ticket_row,
                )
                .optional()?)
        })
    }

    /// The last ticket issued, if any.
    pub fn last_ticket(&self) -> Result<Option<TicketRow>> {
        self.store.read(|tx| {
            Ok(tx
                .query_row(
                    &format!("SELECT {TICKET_COLUMNS} FROM ticket ORDER BY seq DESC LIMIT 1"),
                    [],
                    ticket_row,
                )
                .optional()?)
        })
    }

    /// People still waiting ahead of `ticket` in its queue now.
    pub fn waiting_ahead(&self, ticket: &TicketRow) -> Result<u32> {
        let day = day_text(ticket.business_day);
        self.store.read(|tx| {
            Ok(count_waiting_before(
                tx,
                &ticket.service_id,
                &day,
                ticket.issued_at_ms,
                &ticket.ticket_id,
            )?)
        })
    }

    /// Every ticket of a business day, in number order per letter (tests,
    /// technicians).
    pub fn tickets_of_day(&self, business_day: NaiveDate) -> Result<Vec<TicketRow>> {
        let day = day_text(business_day);
        self.store.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {TICKET_COLUMNS} FROM ticket WHERE business_day = ?1 ORDER BY letter, number"
            ))?;
            let rows = stmt
                .query_map([day.as_str()], ticket_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The queue of service `service_id` (letter `letter`) on
    /// `business_day`: waiting, last called, last issued.
    pub fn queue_counts(
        &self,
        letter: char,
        service_id: &str,
        business_day: NaiveDate,
    ) -> Result<QueueCounts> {
        let (l, day) = (letter.to_string(), day_text(business_day));
        self.store.read(|tx| {
            let (waiting, last_called, last_issued): (i64, Option<i64>, Option<i64>) = tx
                .query_row(
                    "SELECT
                        (SELECT COUNT(*) FROM ticket WHERE service_id = ?3 AND business_day = ?2
                            AND state = 'waiting' AND numbered_by IS NULL),
                        (SELECT number FROM ticket WHERE letter = ?1 AND business_day = ?2
                            AND state <> 'waiting' AND called_at_ms IS NOT NULL
                            AND numbered_by IS NULL
                            ORDER BY called_at_ms DESC, number DESC LIMIT 1),
                        (SELECT last_number FROM queue_counter WHERE service = ?1
                            AND business_day = ?2)",
                    params![l, day, service_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            let num = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
            Ok(QueueCounts {
                letter,
                waiting: num(waiting),
                last_called: last_called.map(num),
                last_issued: last_issued.map(num),
            })
        })
    }
}

/// What happened to a ticket: the kind of a queue event (the stream's
/// `event:` field, the audit record's action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Issued,
    Called,
    Recalled,
    Skipped,
    Reactivated,
    Transferred,
    Served,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Issued,
        EventKind::Called,
        EventKind::Recalled,
        EventKind::Skipped,
        EventKind::Reactivated,
        EventKind::Transferred,
        EventKind::Served,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Issued => "issued",
            EventKind::Called => "called",
            EventKind::Recalled => "recalled",
            EventKind::Skipped => "skipped",
            EventKind::Reactivated => "reactivated",
            EventKind::Transferred => "transferred",
            EventKind::Served => "served",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// A call the hall announces (a first call or a recall).
    pub fn is_call(self) -> bool {
        matches!(self, EventKind::Called | EventKind::Recalled)
    }
}

/// Waiting tickets per service id (services without any are absent).
pub type WaitingCounts = BTreeMap<String, u32>;

/// One committed queue event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEventRow {
    /// Only grows; never reused (the stream's `id:`).
    pub seq: i64,
    pub at_ms: i64,
    pub business_day: NaiveDate,
    pub kind: EventKind,
    pub ticket_id: String,
    /// `A001`.
    pub number: String,
    /// The service it is in after the event.
    pub service_id: String,
    /// A transfer: the service it left.
    pub from_service: Option<String>,
    pub counter: Option<String>,
    /// Waiting per service right after the event.
    pub waiting: WaitingCounts,
}

/// Waiting tickets per service on `day` (this machine's numbering only).
pub(super) fn waiting_counts(tx: &Connection, day: &str) -> rusqlite::Result<WaitingCounts> {
    let mut stmt = tx.prepare_cached(
        "SELECT service_id, COUNT(*) FROM ticket
         WHERE business_day = ?1 AND state = 'waiting' AND numbered_by IS NULL
         GROUP BY service_id",
    )?;
    let rows = stmt.query_map([day], |r| {
        Ok((
            r.get::<_, String>(0)?,
            u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
        ))
    })?;
    rows.collect()
}

/// Append a queue event for `t` (as it is now) inside the caller's
/// transaction.
pub(super) fn log_event(
    tx: &Connection,
    kind: EventKind,
    t: &TicketRow,
    from_service: Option<&str>,
    at_ms: i64,
) -> rusqlite::Result<QueueEventRow> {
    let day = day_text(t.business_day);
    let waiting = waiting_counts(tx, &day)?;
    let waiting_json = serde_json::to_string(&waiting).unwrap_or_else(|_| "{}".into());
    tx.prepare_cached(
        "INSERT INTO queue_event (at_ms, business_day, kind, ticket_id, number_text,
            service_id, from_service, counter_id, waiting)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        at_ms,
        day,
        kind.as_str(),
        t.ticket_id,
        t.number_text,
        t.service_id,
        from_service,
        t.counter,
        waiting_json
    ])?;
    Ok(QueueEventRow {
        seq: tx.last_insert_rowid(),
        at_ms,
        business_day: t.business_day,
        kind,
        ticket_id: t.ticket_id.clone(),
        number: t.number_text.clone(),
        service_id: t.service_id.clone(),
        from_service: from_service.map(str::to_string),
        counter: t.counter.clone(),
        waiting,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn numbers_count_per_service_and_day_and_survive_a_restart() {
        let t = TestDir::new();
        let day1 = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let day2 = day1.succ_opt().expect("date");
        let store = t.open();
        assert_eq!(store.tickets().next_ticket_number("A", day1).expect("n"), 1);
        assert_eq!(store.tickets().next_ticket_number("A", day1).expect("n"), 2);
        assert_eq!(store.tickets().next_ticket_number("B", day1).expect("n"), 1);
        drop(store);
        let store = t.open();
        assert_eq!(store.tickets().next_ticket_number("A", day1).expect("n"), 3);
        // The next day starts again at 1 (asking for day 1 after that is a
        // clock stepped back: rule_q2_a_clock_stepped_back_never_reissues_a_number).
        assert_eq!(store.tickets().next_ticket_number("A", day2).expect("n"), 1);
        assert!(store.tickets().next_ticket_number(" ", day1).is_err());
    }

    #[test]
    fn concurrent_takers_never_get_the_same_number() {
        let t = TestDir::new();
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let store = std::sync::Arc::new(t.open());
        // Two stores on one file (two connections) and threads on each.
        let other = std::sync::Arc::new(t.open());
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 {
                    store.clone()
                } else {
                    other.clone()
                };
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| s.tickets().next_ticket_number("A", day).expect("n"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u32> = threads
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
    }

    /// A technician's call of the next `svc-A` ticket.
    fn call(store: &Store, day: NaiveDate, now_ms: i64) -> Option<TicketRow> {
        use crate::store::{CounterAction, LifecycleError};
        let req = crate::store::ActRequest {
            counter: None,
            services: vec!["svc-A".into()],
            action: CounterAction::CallNext,
            number: None,
            ticket_id: None,
            business_day: day,
            now_ms,
            known_services: vec!["svc-A".into()],
        };
        match store.calls().act(&req, &crate::flows::ticket::RULES) {
            Ok(acted) => Some(acted.ticket),
            Err(Error::Lifecycle(LifecycleError::NobodyWaiting { .. })) => None,
            Err(e) => panic!("call: {e}"),
        }
    }

    fn new_ticket(id: &str, letter: char, day: NaiveDate, name: Option<&str>) -> NewTicket {
        NewTicket {
            ticket_id: id.to_string(),
            service_id: format!("svc-{letter}"),
            letter,
            business_day: day,
            issued_at_ms: 1_000,
            number_digits: 3,
            masked_name: name.map(str::to_string),
            issued_for: None,
        }
    }

    #[test]
    fn rule_q2_tickets_are_numbered_waiting_counted_called_and_audited_in_one_transaction() {
        let t = TestDir::new();
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let store = t.open();
        let a1 = store
            .tickets()
            .issue_ticket(&new_ticket("t1", 'A', day, Some("张*")))
            .expect("a1");
        let a2 = store
            .tickets()
            .issue_ticket(&new_ticket("t2", 'A', day, None))
            .expect("a2");
        let b1 = store
            .tickets()
            .issue_ticket(&new_ticket("t3", 'B', day, None))
            .expect("b1");
        assert_eq!(
            (a1.number, a1.number_text.as_str(), a1.waiting_ahead),
            (1, "A001", 0)
        );
        assert_eq!((a2.number, a2.waiting_ahead), (2, 1));
        assert_eq!((b1.number, b1.waiting_ahead), (1, 0));
        assert!(
            store
                .tickets()
                .issue_ticket(&new_ticket("t1", 'A', day, None))
                .is_err(),
            "same id twice"
        );
        store.tickets().mark_ticket_printed("t2").expect("printed");
        assert!(
            store
                .tickets()
                .ticket("t2")
                .expect("read")
                .expect("row")
                .printed
        );
        assert!(
            !store
                .tickets()
                .ticket("t1")
                .expect("read")
                .expect("row")
                .printed
        );
        assert_eq!(
            store
                .tickets()
                .last_ticket()
                .expect("last")
                .expect("row")
                .ticket_id,
            "t3"
        );
        let called = call(&store, day, 5).expect("a ticket");
        assert_eq!(called.number, 1);
        assert_eq!(store.tickets().waiting_ahead(&a2).expect("ahead"), 0);
        let counts = store
            .tickets()
            .queue_counts('A', "svc-A", day)
            .expect("counts");
        assert_eq!(
            counts,
            QueueCounts {
                letter: 'A',
                waiting: 1,
                last_called: Some(1),
                last_issued: Some(2),
            }
        );
        call(&store, day, 6).expect("a ticket");
        assert!(call(&store, day, 7).is_none());
        // The number after a failed issue (same id) was not consumed.
        let a3 = store
            .tickets()
            .issue_ticket(&new_ticket("t4", 'A', day, None))
            .expect("a3");
        assert_eq!(a3.number, 3);
        drop(store);
        let store = t.open();
        assert_eq!(store.tickets().tickets_of_day(day).expect("day").len(), 4);
        let records = store.audit().audit_records(0, 100).expect("audit");
        let issued: Vec<_> = records
            .iter()
            .filter(|r| r.action == "ticket_issued")
            .collect();
        assert_eq!(issued.len(), 4);
        assert!(issued[0].detail.contains("A001") && !issued[0].detail.contains("张"));
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    /// Rule Q2 across a clock stepped back (NTP, a technician, a dead RTC
    /// battery): a ticket asked for on a business day before the last one
    /// used is numbered on that last day, after its numbers, never again
    /// from the earlier day's counter (which would repeat today's numbers
    /// in the hall).
    #[test]
    fn rule_q2_a_clock_stepped_back_never_reissues_a_number() {
        let t = TestDir::new();
        let store = t.open();
        let yesterday = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let mut issued = std::collections::BTreeSet::new();
        // Yesterday: two tickets; today: four.
        for (i, day) in [yesterday, yesterday, today, today, today, today]
            .into_iter()
            .enumerate()
        {
            let row = store
                .tickets()
                .issue_ticket(&new_ticket(&format!("t{i}"), 'A', day, None))
                .expect("issue");
            if day == today {
                issued.insert(row.number_text.clone());
            }
        }
        // The clock steps back to yesterday (and to a day never used).
        let before = NaiveDate::from_ymd_opt(2026, 11, 1).expect("date");
        for (i, day) in [yesterday, yesterday, before].into_iter().enumerate() {
            let row = store
                .tickets()
                .issue_ticket(&new_ticket(&format!("back{i}"), 'A', day, None))
                .expect("issue");
            assert_eq!(row.business_day, today, "the business day never goes back");
            assert!(
                issued.insert(row.number_text.clone()),
                "{} issued twice on {today}",
                row.number_text
            );
        }
        assert_eq!(
            issued.iter().cloned().collect::<Vec<_>>(),
            ["A001", "A002", "A003", "A004", "A005", "A006", "A007"]
        );
        // Another service follows the same day: its first number today.
        let b = store
            .tickets()
            .issue_ticket(&new_ticket("b", 'B', yesterday, None))
            .expect("issue");
        assert_eq!((b.business_day, b.number_text.as_str()), (today, "B001"));
        assert_eq!(
            store
                .tickets()
                .next_ticket_number("A", before)
                .expect("next"),
            8,
            "next_ticket_number keeps the same guard"
        );
        // Calls and counts stay on the numbering's day too.
        assert_eq!(store.tickets().queue_day(yesterday).expect("day"), today);
        let tomorrow = today.succ_opt().expect("date");
        assert_eq!(store.tickets().queue_day(tomorrow).expect("day"), tomorrow);
    }

    #[test]
    fn rule_q2_numbers_restart_on_a_new_business_day_with_the_flow_rule() {
        use crate::flows::queue::{QueueConfig, number_request};
        let config: QueueConfig = toml::from_str(
            r#"
timezone = "Asia/Shanghai"
business_day_starts_at = "06:00"
[[services]]
id = "personal"
letter = "A"
name_zh = "个人业务"
name_en = "Personal banking"
"#,
        )
        .expect("config");
        let t = TestDir::new();
        let store = t.open();
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&chrono::Utc)
        };
        let mut issued = Vec::new();
        // 05:30 and 05:59 local belong to the day before; 06:00 starts a new day.
        for (i, when) in [
            "2026-11-23T05:30:00+08:00",
            "2026-11-23T05:59:00+08:00",
            "2026-11-23T06:00:00+08:00",
            "2026-11-23T18:00:00+08:00",
            "2026-11-24T05:00:00+08:00",
            "2026-11-24T06:01:00+08:00",
        ]
        .iter()
        .enumerate()
        {
            let req = number_request(&config, "personal", at(when)).expect("request");
            let mut ticket = new_ticket(&format!("d{i}"), 'A', req.business_day, None);
            ticket.service_id = req.service_id.clone();
            let row = store.tickets().issue_ticket(&ticket).expect("issue");
            issued.push((row.business_day.to_string(), row.number_text));
        }
        let expected = [
            ("2026-11-22", "A001"),
            ("2026-11-22", "A002"),
            ("2026-11-23", "A001"),
            ("2026-11-23", "A002"),
            ("2026-11-23", "A003"),
            ("2026-11-24", "A001"),
        ];
        let got: Vec<(&str, &str)> = issued
            .iter()
            .map(|(d, n)| (d.as_str(), n.as_str()))
            .collect();
        assert_eq!(got, expected);
    }
}
