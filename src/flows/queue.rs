//! The queue ticket flow (rules Q1–Q4), and what a queue machine does with
//! a swiped card (rule Q3: the ID update's own rules from
//! [`super::id_rules`], applied without a confirmation screen): decisions
//! only, no I/O, no clock (the time is passed in).
//!
//! # Issuing a ticket
//!
//! 1. The customer picks a service; [`number_request`] says which counter
//!    to take the next number from: the service's letter on the business
//!    day of `now` ([`business_day`]).
//! 2. The daemon takes the number from the store
//!    (`Store::next_ticket_number(&request.counter, request.business_day)`),
//!    which commits it before returning: from then on the number is never
//!    issued again, even after a crash or power loss (rule Q2).
//! 3. [`plan_ticket`] turns the number, a fresh random ticket id, the
//!    people waiting ahead and the optional masked name into a
//!    [`TicketPlan`] holding the [`QueueTicket`] to print (rule Q1).
//! 4. The printer's answer becomes a [`PrintOutcome`];
//!    [`print_decision`] says what the customer is told, whether the ticket
//!    must be kept for a reprint, and what the technician sees (rule Q4).
//!
//! # Business day (rule Q2)
//!
//! Numbers restart every business day, per service letter. Business day
//! `D` starts at `business_day_starts_at` (default `00:00`) local time on
//! date `D` in the branch's time zone, and lasts until day `D + 1` starts.
//! A branch whose day starts at `06:00` still numbers a ticket taken at
//! `05:30` on the 15th in the day of the 14th. The start is an instant, so
//! the business day never goes back: where clocks fall back, the start is
//! the first of the two local times; where the start falls in a gap
//! (clocks jump forward past it), the day starts at the jump.
//!
//! The counters are kept per **letter** (not per service id): the number
//! printed, `A023`, is what must never be issued twice, also when a
//! configuration change gives a letter to another service.
//!
//! # Configuration
//!
//! ```toml
//! [queue]
//! timezone = "Asia/Shanghai"          # IANA name
//! business_day_starts_at = "06:00"    # HH:MM, default 00:00
//! number_digits = 3                   # default 3: A023
//! qr_base = "https://q.example.cn/t/" # optional; the QR holds qr_base + ticket id
//!
//! [[queue.services]]
//! id = "personal"
//! letter = "A"
//! name_zh = "个人业务"
//! name_en = "Personal banking"
//! ```
//!
//! # Personal data (rule S1)
//!
//! A ticket may show the customer's name only as a [`MaskedName`], which
//! can only be made by masking. The QR code holds the ticket id (a random
//! UUID) behind an optional fixed prefix: nothing about the customer.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use kiosk_corebank::{CardEvidence, ChangeKind, Customer, LookupRequest};
use kiosk_escpos::command::QR_MAX_DATA;
use kiosk_escpos::{EscposError, Printed, PrinterFault, QueueTicket, Warning};
use kiosk_idcard::Identity;
use kiosk_idcard::mask::MaskPolicy;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::id_rules::{
    BankFailure, UpdateWindow, ValidityDecision, check_card, id_validity_change, lookup_refusal,
    lookup_request, scrub, update_allowed,
};
use super::messages::{CounterReason, Refusal};

/// `number_digits` when not configured.
pub const DEFAULT_NUMBER_DIGITS: u8 = 3;
/// The longest `number_digits`.
pub const MAX_NUMBER_DIGITS: u8 = 6;
/// The date and time format on the ticket (branch time).
pub const TICKET_TIME_FORMAT: &str = "%Y-%m-%d %H:%M";
/// The length of a hyphenated UUID.
const UUID_LEN: usize = 36;

/// `[queue]`: the services a queue machine issues tickets for and how the
/// tickets are numbered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The branch's time zone, an IANA name (`Asia/Shanghai`): the business
    /// day and the time on the ticket are the branch's.
    #[serde(deserialize_with = "de_timezone")]
    pub timezone: Tz,
    /// When a business day starts, local time, `HH:MM`. Default `00:00`.
    #[serde(default = "midnight", deserialize_with = "de_hh_mm")]
    pub business_day_starts_at: NaiveTime,
    /// The services, each with its own letter.
    pub services: Vec<Service>,
    /// Digits of the number after the letter (zero-padded): 3 gives
    /// `A023`. A number that needs more digits gets them (`A1000`).
    #[serde(default = "default_number_digits")]
    pub number_digits: u8,
    /// A prefix for the QR payload (e.g. a URL to follow the queue). The
    /// payload is `qr_base` followed by the ticket id; without it, the
    /// ticket id alone.
    #[serde(default)]
    pub qr_base: Option<String>,
}

/// One service customers queue for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// A stable id the UI and the API use (`personal`, `corporate`, ...).
    pub id: String,
    /// One ASCII capital letter, unique among the services: `A` in `A023`.
    pub letter: char,
    /// `个人业务`.
    pub name_zh: String,
    /// `Personal banking`.
    pub name_en: String,
}

fn midnight() -> NaiveTime {
    NaiveTime::MIN
}

fn default_number_digits() -> u8 {
    DEFAULT_NUMBER_DIGITS
}

/// An optional IANA time zone name (`[kiosk] timezone`).
pub fn de_optional_timezone<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Tz>, D::Error> {
    de_timezone(de).map(Some)
}

fn de_timezone<'de, D: Deserializer<'de>>(de: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(de)?;
    name.parse::<Tz>().map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown time zone {name:?} (an IANA name such as \"Asia/Shanghai\")"
        ))
    })
}

fn de_hh_mm<'de, D: Deserializer<'de>>(de: D) -> Result<NaiveTime, D::Error> {
    let text = String::deserialize(de)?;
    parse_hh_mm(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a time of day as HH:MM")))
}

/// `06:00` → 06:00; exactly two digits, a colon, two digits.
fn parse_hh_mm(text: &str) -> Option<NaiveTime> {
    let b = text.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return None;
    }
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

/// Where `key` was first seen, if before `at`; remembers `at` if not.
fn first_use<K: Ord>(seen: &mut BTreeMap<K, usize>, key: K, at: usize) -> Option<usize> {
    match seen.entry(key) {
        std::collections::btree_map::Entry::Occupied(e) => Some(*e.get()),
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(at);
            None
        }
    }
}

impl QueueConfig {
    /// Check what serde cannot; every problem found, each naming its key
    /// under `section` (e.g. `queue.services[1].letter: ...`).
    pub fn check(&self, section: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.services.is_empty() {
            problems.push(format!(
                "{section}.services: at least one service is needed"
            ));
        }
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        let mut letters: BTreeMap<char, usize> = BTreeMap::new();
        for (i, service) in self.services.iter().enumerate() {
            let key = format!("{section}.services[{i}]");
            if service.id.trim().is_empty() {
                problems.push(format!("{key}.id: must not be empty"));
            } else if service.id.trim() != service.id || service.id.chars().any(char::is_control) {
                problems.push(format!(
                    "{key}.id: {:?} has spaces around it or control characters",
                    service.id
                ));
            } else if let Some(first) = first_use(&mut ids, service.id.as_str(), i) {
                problems.push(format!(
                    "{key}.id: {:?} is already the id of services[{first}]",
                    service.id
                ));
            }
            if !service.letter.is_ascii_uppercase() {
                problems.push(format!(
                    "{key}.letter: {:?} is not one ASCII capital letter (A to Z)",
                    service.letter
                ));
            } else if let Some(first) = first_use(&mut letters, service.letter, i) {
                problems.push(format!(
                    "{key}.letter: {:?} is already the letter of services[{first}]",
                    service.letter
                ));
            }
            for (field, value) in [("name_zh", &service.name_zh), ("name_en", &service.name_en)] {
                if value.trim().is_empty() {
                    problems.push(format!("{key}.{field}: must not be empty"));
                } else if value.chars().any(char::is_control) {
                    problems.push(format!(
                        "{key}.{field}: must not contain control characters"
                    ));
                }
            }
        }
        if !(1..=MAX_NUMBER_DIGITS).contains(&self.number_digits) {
            problems.push(format!(
                "{section}.number_digits: {} is not 1 to {MAX_NUMBER_DIGITS}",
                self.number_digits
            ));
        }
        if let Some(base) = &self.qr_base {
            if base.is_empty() {
                problems.push(format!(
                    "{section}.qr_base: must not be empty (leave it out instead)"
                ));
            } else if base.chars().any(char::is_control) {
                problems.push(format!(
                    "{section}.qr_base: must not contain control characters"
                ));
            } else if base.len() + UUID_LEN > QR_MAX_DATA {
                problems.push(format!(
                    "{section}.qr_base: {} bytes is too long for a QR code",
                    base.len()
                ));
            }
        }
        problems
    }

    /// The service with this id.
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    /// The local date and time of `at` in the branch's time zone.
    pub fn local_time(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.timezone).naive_local()
    }

    /// When business day `day` starts (see the module docs: the first of
    /// two local times when clocks fall back, the jump when the start
    /// falls in a gap).
    pub fn business_day_start(&self, day: NaiveDate) -> DateTime<Utc> {
        let local = day.and_time(self.business_day_starts_at);
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => {
                // In a gap: the first local minute that exists is the jump.
                // Gaps are whole minutes and at most a day long.
                (1..=24 * 60)
                    .find_map(|m| {
                        self.timezone
                            .from_local_datetime(&(local + Duration::minutes(m)))
                            .earliest()
                    })
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|| local.and_utc())
            }
        }
    }
}

/// The business day `now_utc` belongs to, in the branch's time zone, with
/// the configured start of day (rule Q2).
pub fn business_day(now_utc: DateTime<Utc>, config: &QueueConfig) -> NaiveDate {
    let date = config.local_time(now_utc).date();
    if config.business_day_start(date) <= now_utc {
        date
    } else {
        // Before today's start: yesterday's business day (it started
        // before local midnight, so before now).
        date.pred_opt().unwrap_or(date)
    }
}

/// The printed number (`A023`), as the store numbers tickets.
pub use crate::store::format_ticket_number;

/// Why a ticket cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The service id is not configured.
    #[error("no queue service {service_id:?} is configured")]
    UnknownService { service_id: String },
    /// Ticket numbers start at 1.
    #[error("ticket number {number} is not a number the store hands out")]
    InvalidNumber { number: u32 },
}

/// Where to take a ticket's number from (step 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRequest {
    pub service_id: String,
    /// The store's counter: the service's letter (`A`).
    pub counter: String,
    pub business_day: NaiveDate,
}

/// The counter and business day for a ticket of `service_id` taken at
/// `now_utc`.
pub fn number_request(
    config: &QueueConfig,
    service_id: &str,
    now_utc: DateTime<Utc>,
) -> Result<NumberRequest, QueueError> {
    let service = config
        .service(service_id)
        .ok_or_else(|| QueueError::UnknownService {
            service_id: service_id.to_string(),
        })?;
    Ok(NumberRequest {
        service_id: service.id.clone(),
        counter: service.letter.to_string(),
        business_day: business_day(now_utc, config),
    })
}

/// A customer's name masked for a ticket or a screen (rule S1: `张*`).
/// Only made by masking, so a ticket cannot carry a full name.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct MaskedName(String);

impl MaskedName {
    /// Mask `full_name` with `policy`; `None` for an empty name (a foreign
    /// card without a Chinese name, say).
    pub fn new(full_name: &str, policy: &MaskPolicy) -> Option<MaskedName> {
        let name = full_name.trim();
        if name.is_empty() {
            return None;
        }
        Some(MaskedName(policy.name(name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MaskedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MaskedName({:?})", self.0)
    }
}

impl fmt::Display for MaskedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything a ticket needs once its number is committed (step 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    pub service_id: String,
    /// The business day the number was taken for ([`NumberRequest`]).
    pub business_day: NaiveDate,
    /// The number the store handed out (1 for the day's first).
    pub number: u32,
    /// A fresh random (v4) id: the QR code's payload and the audit key.
    pub ticket_id: Uuid,
    pub issued_at: DateTime<Utc>,
    /// People waiting ahead in this service's queue.
    pub waiting_ahead: u32,
    /// When a card was swiped (rule Q3).
    pub masked_name: Option<MaskedName>,
}

/// A ticket ready to print, and what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPlan {
    pub ticket_id: Uuid,
    pub service_id: String,
    pub letter: char,
    pub number: u32,
    /// `A023`.
    pub number_text: String,
    pub business_day: NaiveDate,
    pub issued_at: DateTime<Utc>,
    pub waiting_ahead: u32,
    /// The QR code's content: `qr_base` + ticket id.
    pub qr_payload: String,
    /// What to print.
    pub ticket: QueueTicket,
}

impl TicketPlan {
    /// The same ticket printed again after a fault (rule Q4: the number
    /// was kept), with the people waiting ahead now, marked as a reprint.
    pub fn reprint(&self, waiting_ahead: u32) -> QueueTicket {
        let mut ticket = self.ticket.clone();
        ticket.waiting = waiting_text(waiting_ahead);
        ticket.issued_at = format!("{} 补打 Reprint", ticket.issued_at);
        ticket
    }
}

/// The two lines about the people waiting ahead.
fn waiting_text(ahead: u32) -> String {
    match ahead {
        0 => "您前面没有人等候\nNo one is waiting ahead of you".to_string(),
        1 => "您前面还有 1 人等候\n1 person is waiting ahead of you".to_string(),
        n => format!("您前面还有 {n} 人等候\n{n} people are waiting ahead of you"),
    }
}

/// The ticket for `request` (rule Q1): `branch_name`, the service in
/// Chinese and English (two lines), the number, the people waiting ahead
/// (two lines), the masked name if any, a QR code of the ticket id, and
/// the local date and time of issue.
pub fn plan_ticket(
    config: &QueueConfig,
    branch_name: &str,
    request: &IssueRequest,
) -> Result<TicketPlan, QueueError> {
    let service =
        config
            .service(&request.service_id)
            .ok_or_else(|| QueueError::UnknownService {
                service_id: request.service_id.clone(),
            })?;
    if request.number == 0 {
        return Err(QueueError::InvalidNumber { number: 0 });
    }
    let number_text = format_ticket_number(service.letter, request.number, config.number_digits);
    let qr_payload = format!(
        "{}{}",
        config.qr_base.as_deref().unwrap_or(""),
        request.ticket_id.hyphenated()
    );
    let issued_local = config.local_time(request.issued_at);
    let ticket = QueueTicket {
        branch: branch_name.to_string(),
        service: format!("{}\n{}", service.name_zh, service.name_en),
        number: number_text.clone(),
        waiting: waiting_text(request.waiting_ahead),
        issued_at: issued_local.format(TICKET_TIME_FORMAT).to_string(),
        masked_name: request.masked_name.as_ref().map(|n| n.as_str().to_string()),
        qr: Some(qr_payload.clone()),
    };
    Ok(TicketPlan {
        ticket_id: request.ticket_id,
        service_id: service.id.clone(),
        letter: service.letter,
        number: request.number,
        number_text,
        business_day: request.business_day,
        issued_at: request.issued_at,
        waiting_ahead: request.waiting_ahead,
        qr_payload,
        ticket,
    })
}

/// What came of printing a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintOutcome {
    /// The printer took the ticket and reported no fault after it.
    Printed { warnings: Vec<Warning> },
    /// No usable ticket came out, or it is unknown whether one did.
    /// `fault`: what the printer said, if it said; `reason`: the error
    /// for the technician (no personal data).
    NotPrinted {
        fault: Option<PrinterFault>,
        reason: String,
    },
}

impl PrintOutcome {
    /// From the printer's answer. A fault found after the ticket was sent,
    /// an unplug, a timeout: all `NotPrinted` (the ticket may be cut
    /// short; reprint it).
    pub fn from_result(result: &Result<Printed, EscposError>) -> PrintOutcome {
        match result {
            Ok(printed) => PrintOutcome::Printed {
                warnings: printed.warnings.clone(),
            },
            Err(e) => PrintOutcome::NotPrinted {
                fault: e.printer_fault(),
                reason: e.to_string(),
            },
        }
    }
}

/// What the customer is told, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerMessage {
    /// `printed`, `printed_with_warning` or `printer_fault`.
    pub code: &'static str,
    pub zh: String,
    pub en: String,
}

/// What the technician sees (`kioskctl status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TechnicianNotice {
    /// `printer_fault` or `paper_near_end`.
    pub code: &'static str,
    pub detail: String,
}

/// Rule Q4's decision after a print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrintDecision {
    pub message: CustomerMessage,
    /// The ticket was not (fully) printed: its number stays reserved for
    /// this customer and it can be reprinted ([`TicketPlan::reprint`]).
    pub reprint_needed: bool,
    pub technician: Option<TechnicianNotice>,
}

/// What the customer is told after printing ticket `number_text`.
pub fn customer_message(number_text: &str, outcome: &PrintOutcome) -> CustomerMessage {
    let printed = |code| CustomerMessage {
        code,
        zh: format!("请取走您的排队号 {number_text}，留意叫号"),
        en: format!("Please take your ticket {number_text} and wait to be called"),
    };
    match outcome {
        PrintOutcome::Printed { warnings } if warnings.is_empty() => printed("printed"),
        // The customer has the ticket; the warning is for the technician.
        PrintOutcome::Printed { .. } => printed("printed_with_warning"),
        PrintOutcome::NotPrinted { .. } => CustomerMessage {
            code: "printer_fault",
            zh: format!("请联系工作人员：您的号码 {number_text} 已为您保留"),
            en: format!("Please ask our staff: your number {number_text} is kept"),
        },
    }
}

/// Rule Q4: the customer is told at once, a ticket not printed keeps its
/// number for a reprint, and the technician sees the fault (or the
/// warning, when the ticket printed with the paper near its end).
pub fn print_decision(plan: &TicketPlan, outcome: &PrintOutcome) -> PrintDecision {
    let message = customer_message(&plan.number_text, outcome);
    let (reprint_needed, technician) = match outcome {
        PrintOutcome::Printed { warnings } => (
            false,
            warnings.first().map(|w| match w {
                Warning::PaperNearEnd => TechnicianNotice {
                    code: "paper_near_end",
                    detail: "the ticket printer's paper roll is near its end".into(),
                },
            }),
        ),
        PrintOutcome::NotPrinted { fault, reason } => (
            true,
            Some(TechnicianNotice {
                code: "printer_fault",
                detail: match fault {
                    Some(fault) => format!(
                        "ticket {} not printed: {fault} ({reason})",
                        plan.number_text
                    ),
                    None => format!("ticket {} not printed: {reason}", plan.number_text),
                },
            }),
        ),
    };
    PrintDecision {
        message,
        reprint_needed,
        technician,
    }
}

// ---- A swiped card (rule Q3) ----

/// Why the automatic update of a swiped card was withheld: the `validity`
/// of `queue_take` (the ticket is issued all the same).
fn withheld_code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::AlreadyUpToDate => "up_to_date",
        Refusal::OldCard => "older_card",
        // Nothing could be compared: no bank, no record, another document.
        Refusal::BankUnreachable
        | Refusal::Counter(CounterReason::CustomerNotFound | CounterReason::DocumentTypeMismatch) => {
            "not_checked"
        }
        other => other.code(),
    }
}

/// Rule Q3 before the bank is asked: the card itself (I1, I2, I4; an
/// expired card is not looked up). `Err` is the withheld update's code.
pub fn swipe_lookup(identity: &Identity, today: NaiveDate) -> Result<LookupRequest, &'static str> {
    check_card(identity, today).map_err(|r| withheld_code(&r))?;
    Ok(lookup_request(identity))
}

/// What a queue machine does with a swiped card once the bank answered.
pub enum SwipeDecision {
    /// Rule Q3: the card is newer and every ID rule holds: record its
    /// validity at once (no confirmation screen at a queue machine).
    Record {
        customer_id: String,
        change: ChangeKind,
    },
    /// The update is withheld; `code` says why (`up_to_date`,
    /// `older_card`, `expired_card`, `counter_not_allowed`, `not_checked`, ...).
    Withhold {
        customer_id: Option<String>,
        code: &'static str,
    },
}

impl SwipeDecision {
    /// The `validity` code: `newer` for a change to record.
    pub fn code(&self) -> &'static str {
        match self {
            SwipeDecision::Record { .. } => ValidityDecision::Newer.code(),
            SwipeDecision::Withhold { code, .. } => code,
        }
    }
}

impl fmt::Debug for SwipeDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwipeDecision::Record { customer_id, .. } => f
                .debug_struct("Record")
                .field("customer_id", customer_id)
                .finish_non_exhaustive(),
            SwipeDecision::Withhold { customer_id, code } => f
                .debug_struct("Withhold")
                .field("customer_id", customer_id)
                .field("code", code)
                .finish(),
        }
    }
}

/// Rule Q3 with the bank's answer about the swiped card's holder: the same
/// checks as the smart teller's ID update ([`update_allowed`]: I3, I5, I6,
/// `self_service.id_update`, I7, I9). The answer's personal strings are
/// wiped once compared (rule S2).
pub fn swipe_decision(
    identity: &Identity,
    evidence: &CardEvidence,
    answer: Result<Customer, BankFailure>,
    today: NaiveDate,
    window: Option<UpdateWindow>,
) -> SwipeDecision {
    let mut customer = match answer {
        Ok(c) => c,
        Err(e) => {
            return SwipeDecision::Withhold {
                customer_id: None,
                code: withheld_code(&lookup_refusal(&e)),
            };
        }
    };
    let allowed = update_allowed(identity, &customer, today, window);
    scrub(&mut customer);
    let customer_id = std::mem::take(&mut customer.customer_id);
    match allowed {
        Ok(_) => SwipeDecision::Record {
            customer_id,
            change: id_validity_change(identity, evidence),
        },
        Err(refusal) => SwipeDecision::Withhold {
            customer_id: Some(customer_id),
            code: withheld_code(&refusal),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::id_rules::validity_update_decision;
    use kiosk_idcard::Validity;

    const CONFIG: &str = r#"
timezone = "Asia/Shanghai"
qr_base = "https://q.example.cn/t/"

[[services]]
id = "personal"
letter = "A"
name_zh = "个人业务"
name_en = "Personal banking"

[[services]]
id = "corporate"
letter = "B"
name_zh = "对公业务"
name_en = "Corporate banking"

[[services]]
id = "vip"
letter = "V"
name_zh = "贵宾业务"
name_en = "VIP"
"#;

    fn config() -> QueueConfig {
        let c: QueueConfig = toml::from_str(CONFIG).expect("valid config");
        assert_eq!(c.check("queue"), Vec::<String>::new());
        c
    }

    fn with(f: impl FnOnce(&mut QueueConfig)) -> QueueConfig {
        let mut c = config();
        f(&mut c);
        c
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339 time")
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    fn hh_mm(text: &str) -> NaiveTime {
        parse_hh_mm(text).expect("HH:MM")
    }

    const TICKET_ID: &str = "0b4a2c9e-3f1d-4d55-9a7e-6c1f2b3d4e5f";

    fn request(service_id: &str, number: u32, at: &str) -> IssueRequest {
        let config = config();
        let at = utc(at);
        IssueRequest {
            service_id: service_id.into(),
            business_day: business_day(at, &config),
            number,
            ticket_id: Uuid::parse_str(TICKET_ID).expect("uuid"),
            issued_at: at,
            waiting_ahead: 5,
            masked_name: None,
        }
    }

    // ---- configuration ----

    #[test]
    fn config_defaults_and_parsing() {
        let c = config();
        assert_eq!(c.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(c.business_day_starts_at, NaiveTime::MIN);
        assert_eq!(c.number_digits, 3);
        assert_eq!(c.services.len(), 3);
        assert_eq!(c.service("corporate").map(|s| s.letter), Some('B'));
        assert!(c.service("nope").is_none());

        let c: QueueConfig = toml::from_str(&format!(
            "business_day_starts_at = \"06:00\"\nnumber_digits = 4\n{CONFIG}"
        ))
        .expect("valid");
        assert_eq!(c.business_day_starts_at, hh_mm("06:00"));
        assert_eq!(c.number_digits, 4);
    }

    #[test]
    fn config_rejects_unknown_keys_zones_and_times() {
        let bad = |extra: &str, text: &str| {
            toml::from_str::<QueueConfig>(&format!("{extra}\n{text}"))
                .expect_err("invalid")
                .to_string()
        };
        assert!(bad("colour = \"red\"", CONFIG).contains("colour"));
        let no_zone = CONFIG.replace("Asia/Shanghai", "Asia/Beijing");
        assert!(bad("", &no_zone).contains("unknown time zone \"Asia/Beijing\""));
        for time in ["6:00", "24:00", "06:60", "0600", "06:00:00", " 6:00"] {
            assert!(
                bad(&format!("business_day_starts_at = \"{time}\""), CONFIG)
                    .contains("is not a time of day as HH:MM"),
                "{time}"
            );
        }
        assert!(bad("", &CONFIG.replace("letter = \"B\"", "letter = \"BB\"")).contains("letter"));
        assert!(parse_hh_mm("23:59").is_some());
    }

    #[test]
    fn config_check_names_every_problem() {
        let c = with(|c| {
            c.services[1].letter = 'A';
            c.services[2].letter = 'v';
            c.services.push(Service {
                id: "personal".into(),
                letter: 'Ｃ',
                name_zh: " ".into(),
                name_en: "Line\nbreak".into(),
            });
            c.number_digits = 0;
            c.qr_base = Some("x\u{10}".into());
        });
        assert_eq!(
            c.check("queue"),
            vec![
                "queue.services[1].letter: 'A' is already the letter of services[0]",
                "queue.services[2].letter: 'v' is not one ASCII capital letter (A to Z)",
                "queue.services[3].id: \"personal\" is already the id of services[0]",
                "queue.services[3].letter: 'Ｃ' is not one ASCII capital letter (A to Z)",
                "queue.services[3].name_zh: must not be empty",
                "queue.services[3].name_en: must not contain control characters",
                "queue.number_digits: 0 is not 1 to 6",
                "queue.qr_base: must not contain control characters",
            ]
        );
        let c = with(|c| {
            c.services.clear();
            c.number_digits = 7;
            c.qr_base = Some("x".repeat(QR_MAX_DATA));
        });
        assert_eq!(
            c.check("queue"),
            vec![
                "queue.services: at least one service is needed".to_string(),
                "queue.number_digits: 7 is not 1 to 6".to_string(),
                format!("queue.qr_base: {QR_MAX_DATA} bytes is too long for a QR code"),
            ]
        );
    }

    // ---- rule Q1 ----

    #[test]
    fn rule_q1_ticket_shows_branch_service_number_waiting_date_time_and_qr() {
        let config = config();
        // 09:31 in Shanghai.
        let plan = plan_ticket(
            &config,
            "某某银行 西城支行",
            &request("personal", 23, "2025-03-14T01:31:20Z"),
        )
        .expect("plan");
        assert_eq!(plan.number_text, "A023");
        assert_eq!(plan.letter, 'A');
        assert_eq!(plan.business_day, date(2025, 3, 14));
        assert_eq!(
            plan.ticket,
            QueueTicket {
                branch: "某某银行 西城支行".into(),
                service: "个人业务\nPersonal banking".into(),
                number: "A023".into(),
                waiting: "您前面还有 5 人等候\n5 people are waiting ahead of you".into(),
                issued_at: "2025-03-14 09:31".into(),
                masked_name: None,
                qr: Some(format!("https://q.example.cn/t/{TICKET_ID}")),
            }
        );
        // It lays out as a printable document.
        let doc = plan.ticket.document().expect("document");
        assert!(!doc.elements().is_empty());
    }

    #[test]
    fn rule_q1_services_and_letters_come_from_the_config() {
        let config = config();
        let at = utc("2025-03-14T01:31:00Z");
        let req = number_request(&config, "vip", at).expect("known service");
        assert_eq!(
            req,
            NumberRequest {
                service_id: "vip".into(),
                counter: "V".into(),
                business_day: date(2025, 3, 14),
            }
        );
        assert_eq!(
            number_request(&config, "mortgage", at),
            Err(QueueError::UnknownService {
                service_id: "mortgage".into()
            })
        );
        let mut r = request("corporate", 7, "2025-03-14T01:31:00Z");
        let plan = plan_ticket(&config, "B", &r).expect("plan");
        assert_eq!(plan.number_text, "B007");
        assert_eq!(plan.ticket.service, "对公业务\nCorporate banking");
        r.service_id = "gone".into();
        assert!(matches!(
            plan_ticket(&config, "B", &r),
            Err(QueueError::UnknownService { .. })
        ));
        r.service_id = "corporate".into();
        r.number = 0;
        assert_eq!(
            plan_ticket(&config, "B", &r),
            Err(QueueError::InvalidNumber { number: 0 })
        );
    }

    #[test]
    fn rule_q1_numbers_have_the_configured_digits() {
        assert_eq!(format_ticket_number('A', 23, 3), "A023");
        assert_eq!(format_ticket_number('A', 1, 3), "A001");
        assert_eq!(format_ticket_number('B', 999, 3), "B999");
        assert_eq!(format_ticket_number('B', 1000, 3), "B1000");
        assert_eq!(format_ticket_number('V', 5, 4), "V0005");
        assert_eq!(format_ticket_number('V', 5, 1), "V5");
        let config = with(|c| c.number_digits = 4);
        let plan =
            plan_ticket(&config, "B", &request("vip", 42, "2025-03-14T01:31:00Z")).expect("plan");
        assert_eq!(plan.number_text, "V0042");
    }

    #[test]
    fn rule_q1_people_waiting_ahead_in_both_languages() {
        let config = config();
        let mut r = request("personal", 1, "2025-03-14T01:31:00Z");
        r.waiting_ahead = 0;
        let plan = plan_ticket(&config, "B", &r).expect("plan");
        assert_eq!(
            plan.ticket.waiting,
            "您前面没有人等候\nNo one is waiting ahead of you"
        );
        r.waiting_ahead = 1;
        let plan = plan_ticket(&config, "B", &r).expect("plan");
        assert_eq!(
            plan.ticket.waiting,
            "您前面还有 1 人等候\n1 person is waiting ahead of you"
        );
    }

    // ---- rule Q2 ----

    #[test]
    fn rule_q2_numbers_restart_each_business_day_at_local_midnight() {
        let config = config();
        // Shanghai is UTC+8: local midnight is 16:00 UTC.
        assert_eq!(
            business_day(utc("2025-03-13T15:59:59Z"), &config),
            date(2025, 3, 13)
        );
        assert_eq!(
            business_day(utc("2025-03-13T16:00:00Z"), &config),
            date(2025, 3, 14)
        );
        // The counter key changes with the day: the store restarts at 1.
        let before = number_request(&config, "personal", utc("2025-03-13T15:59:59Z")).expect("A");
        let after = number_request(&config, "personal", utc("2025-03-13T16:00:00Z")).expect("A");
        assert_eq!(before.counter, after.counter);
        assert_ne!(before.business_day, after.business_day);
        // A year boundary.
        assert_eq!(
            business_day(utc("2025-12-31T16:00:00Z"), &config),
            date(2026, 1, 1)
        );
    }

    #[test]
    fn rule_q2_numbers_restart_each_business_day_starting_at_0600() {
        let config = with(|c| c.business_day_starts_at = hh_mm("06:00"));
        // 05:59 on the 15th in Shanghai is still the 14th's business day.
        assert_eq!(
            business_day(utc("2025-03-14T21:59:59Z"), &config),
            date(2025, 3, 14)
        );
        assert_eq!(
            business_day(utc("2025-03-14T22:00:00Z"), &config),
            date(2025, 3, 15)
        );
        // Local midnight is not a boundary any more.
        assert_eq!(
            business_day(utc("2025-03-14T15:59:59Z"), &config),
            date(2025, 3, 14)
        );
        assert_eq!(
            business_day(utc("2025-03-14T16:00:00Z"), &config),
            date(2025, 3, 14)
        );
        // The ticket shows the calendar date and time, the number counts
        // in the business day.
        let mut r = request("personal", 80, "2025-03-14T21:30:00Z");
        r.business_day = business_day(r.issued_at, &config);
        let plan = plan_ticket(&config, "B", &r).expect("plan");
        assert_eq!(plan.business_day, date(2025, 3, 14));
        assert_eq!(plan.ticket.issued_at, "2025-03-15 05:30");
    }

    #[test]
    fn rule_q2_numbers_restart_each_business_day_in_the_branch_time_zone() {
        // One instant, three branches: 20:00 UTC on the 14th.
        let at = utc("2025-03-14T20:00:00Z");
        let zone = |tz: Tz| with(|c| c.timezone = tz);
        // 04:00 on the 15th.
        assert_eq!(
            business_day(at, &zone(chrono_tz::Asia::Shanghai)),
            date(2025, 3, 15)
        );
        // 20:00 on the 14th.
        assert_eq!(
            business_day(at, &zone(chrono_tz::Europe::London)),
            date(2025, 3, 14)
        );
        // 13:00 on the 14th (PDT, UTC-7).
        assert_eq!(
            business_day(at, &zone(chrono_tz::America::Los_Angeles)),
            date(2025, 3, 14)
        );
        // East of the date line: 09:00 on the 15th (NZDT, UTC+13).
        assert_eq!(
            business_day(at, &zone(chrono_tz::Pacific::Auckland)),
            date(2025, 3, 15)
        );
        // The same day start, 06:00, in two zones.
        let six = |tz: Tz| {
            with(|c| {
                c.timezone = tz;
                c.business_day_starts_at = hh_mm("06:00");
            })
        };
        // Shanghai 04:00 on the 15th: before 06:00, still the 14th.
        assert_eq!(
            business_day(at, &six(chrono_tz::Asia::Shanghai)),
            date(2025, 3, 14)
        );
        assert_eq!(
            business_day(at, &six(chrono_tz::Europe::London)),
            date(2025, 3, 14)
        );
        // The ticket's time is the branch's.
        let mut r = request("personal", 1, "2025-03-14T20:00:00Z");
        let london = zone(chrono_tz::Europe::London);
        r.business_day = business_day(r.issued_at, &london);
        let plan = plan_ticket(&london, "B", &r).expect("plan");
        assert_eq!(plan.ticket.issued_at, "2025-03-14 20:00");
    }

    #[test]
    fn rule_q2_numbers_restart_each_business_day_and_never_go_back_across_clock_changes() {
        // Berlin, day starting at 02:30: a local time that does not exist
        // on 2025-03-30 (02:00 → 03:00) and exists twice on 2025-10-26
        // (03:00 → 02:00).
        let config = with(|c| {
            c.timezone = chrono_tz::Europe::Berlin;
            c.business_day_starts_at = hh_mm("02:30");
        });
        // Spring: the day starts at the jump, 01:00 UTC (03:00 CEST).
        assert_eq!(
            config.business_day_start(date(2025, 3, 30)),
            utc("2025-03-30T01:00:00Z")
        );
        assert_eq!(
            business_day(utc("2025-03-30T00:59:59Z"), &config),
            date(2025, 3, 29)
        );
        assert_eq!(
            business_day(utc("2025-03-30T01:00:00Z"), &config),
            date(2025, 3, 30)
        );
        // Autumn: the day starts at the first 02:30 (CEST, 00:30 UTC) and
        // stays when the clock shows 02:10 again an hour later (CET).
        assert_eq!(
            config.business_day_start(date(2025, 10, 26)),
            utc("2025-10-26T00:30:00Z")
        );
        assert_eq!(
            business_day(utc("2025-10-26T00:29:59Z"), &config),
            date(2025, 10, 25)
        );
        assert_eq!(
            business_day(utc("2025-10-26T00:30:00Z"), &config),
            date(2025, 10, 26)
        );
        assert_eq!(
            business_day(utc("2025-10-26T01:10:00Z"), &config),
            date(2025, 10, 26)
        );
        // Minute by minute over both weekends the business day never goes
        // back and moves on by at most one day.
        for start in ["2025-03-29T00:00:00Z", "2025-10-25T00:00:00Z"] {
            let mut at = utc(start);
            let mut last = business_day(at, &config);
            for _ in 0..(3 * 24 * 60) {
                at += Duration::minutes(1);
                let day = business_day(at, &config);
                assert!(
                    day == last || Some(day) == last.succ_opt(),
                    "{at}: {last} → {day}"
                );
                last = day;
            }
        }
    }

    // ---- rule Q3 / S1 ----

    #[test]
    fn rule_q3_a_swiped_card_puts_only_the_masked_name_on_the_ticket() {
        let config = config();
        let policy = MaskPolicy::default();
        let mut r = request("personal", 23, "2025-03-14T01:31:00Z");
        r.masked_name = MaskedName::new("张三", &policy);
        let plan = plan_ticket(&config, "B", &r).expect("plan");
        assert_eq!(plan.ticket.masked_name.as_deref(), Some("张*"));
        // The QR code is the ticket id only.
        assert_eq!(
            plan.qr_payload,
            format!("https://q.example.cn/t/{TICKET_ID}")
        );
        assert!(!format!("{plan:?}").contains("张三"));
        assert_eq!(
            MaskedName::new("欧阳娜娜", &policy).map(|n| n.to_string()),
            Some("欧***".to_string())
        );
        assert_eq!(MaskedName::new("  ", &policy), None);
        // Swiping is optional.
        let plan = plan_ticket(
            &config,
            "B",
            &request("personal", 24, "2025-03-14T01:31:00Z"),
        )
        .expect("plan");
        assert_eq!(plan.ticket.masked_name, None);
    }

    #[test]
    fn rule_q3_the_qr_code_is_the_ticket_id_without_a_base() {
        let config = with(|c| c.qr_base = None);
        let plan = plan_ticket(
            &config,
            "B",
            &request("personal", 1, "2025-03-14T01:31:00Z"),
        )
        .expect("plan");
        assert_eq!(plan.qr_payload, TICKET_ID);
        assert_eq!(plan.ticket.qr.as_deref(), Some(TICKET_ID));
    }

    // ---- rule Q4 ----

    fn plan() -> TicketPlan {
        plan_ticket(
            &config(),
            "B",
            &request("personal", 23, "2025-03-14T01:31:00Z"),
        )
        .expect("plan")
    }

    fn printed(warnings: Vec<Warning>) -> Result<Printed, EscposError> {
        Ok(Printed {
            bytes: 200,
            status: kiosk_escpos::PrinterStatus::READY,
            warnings,
            status_known: true,
        })
    }

    #[test]
    fn rule_q4_printed_ticket_tells_the_customer_to_take_it() {
        let outcome = PrintOutcome::from_result(&printed(vec![]));
        assert_eq!(outcome, PrintOutcome::Printed { warnings: vec![] });
        let d = print_decision(&plan(), &outcome);
        assert_eq!(d.message.code, "printed");
        assert!(d.message.zh.contains("A023"));
        assert!(d.message.en.contains("A023"));
        assert!(!d.reprint_needed);
        assert_eq!(d.technician, None);
    }

    #[test]
    fn rule_q4_paper_near_end_prints_and_warns_the_technician() {
        let outcome = PrintOutcome::from_result(&printed(vec![Warning::PaperNearEnd]));
        let d = print_decision(&plan(), &outcome);
        assert_eq!(d.message.code, "printed_with_warning");
        // The customer's message is the printed one.
        assert_eq!(
            d.message.zh,
            customer_message("A023", &PrintOutcome::Printed { warnings: vec![] }).zh
        );
        assert!(!d.reprint_needed);
        assert_eq!(d.technician.map(|t| t.code), Some("paper_near_end"));
    }

    #[test]
    fn rule_q4_printer_fault_tells_the_customer_to_ask_staff_and_keeps_the_number() {
        for (error, fault) in [
            (
                EscposError::PaperOut { sent: false },
                Some(PrinterFault::PaperOut),
            ),
            (
                EscposError::CoverOpen { sent: false },
                Some(PrinterFault::CoverOpen),
            ),
            (
                EscposError::Offline { sent: false },
                Some(PrinterFault::Offline),
            ),
            // Ran out mid-ticket: the ticket may be cut short.
            (
                EscposError::PaperOut { sent: true },
                Some(PrinterFault::PaperOut),
            ),
            (
                EscposError::Unplugged {
                    detail: "end of file on the serial port".into(),
                },
                None,
            ),
            (
                EscposError::WriteTimeout {
                    written: 10,
                    total: 200,
                    timeout_ms: 5000,
                },
                None,
            ),
            (EscposError::DeviceTimeout { timeout_ms: 10_000 }, None),
        ] {
            let outcome = PrintOutcome::from_result(&Err(error));
            assert!(
                matches!(&outcome, PrintOutcome::NotPrinted { fault: f, .. } if *f == fault),
                "{outcome:?}"
            );
            let d = print_decision(&plan(), &outcome);
            assert_eq!(
                d.message,
                CustomerMessage {
                    code: "printer_fault",
                    zh: "请联系工作人员：您的号码 A023 已为您保留".into(),
                    en: "Please ask our staff: your number A023 is kept".into(),
                }
            );
            assert!(d.reprint_needed);
            let notice = d.technician.expect("the technician sees it");
            assert_eq!(notice.code, "printer_fault");
            assert!(notice.detail.starts_with("ticket A023 not printed: "));
            if let Some(fault) = fault {
                assert!(
                    notice.detail.contains(&fault.to_string()),
                    "{}",
                    notice.detail
                );
            }
        }
    }

    #[test]
    fn rule_q4_a_reprint_is_the_same_number_marked_as_a_reprint() {
        let plan = plan();
        let again = plan.reprint(3);
        assert_eq!(again.number, "A023");
        assert_eq!(again.qr, plan.ticket.qr);
        assert_eq!(again.branch, plan.ticket.branch);
        assert_eq!(
            again.waiting,
            "您前面还有 3 人等候\n3 people are waiting ahead of you"
        );
        assert_eq!(again.issued_at, "2025-03-14 09:31 补打 Reprint");
        again.document().expect("printable");
    }

    // ---- rule I7 ----

    fn until(y: i32, m: u32, d: u32) -> Validity {
        Validity::Until(date(y, m, d))
    }

    #[test]
    fn rule_i7_a_newer_card_is_recorded() {
        // Renewed: new period after the old one.
        let d = validity_update_decision(
            until(2045, 3, 1),
            date(2025, 3, 1),
            until(2025, 3, 1),
            date(2005, 3, 1),
        );
        assert_eq!(d, ValidityDecision::Newer);
        assert!(d.records_update());
        assert_eq!(d.code(), "newer");
    }

    #[test]
    fn rule_i7_long_term_is_the_newest() {
        assert_eq!(
            validity_update_decision(
                Validity::LongTerm,
                date(2025, 3, 1),
                until(2025, 3, 1),
                date(2005, 3, 1)
            ),
            ValidityDecision::Newer
        );
        assert_eq!(
            validity_update_decision(
                until(9999, 12, 31),
                date(2025, 3, 1),
                Validity::LongTerm,
                date(2005, 3, 1)
            ),
            ValidityDecision::Older
        );
        // Both long-term, same start: up to date.
        assert_eq!(
            validity_update_decision(
                Validity::LongTerm,
                date(2015, 3, 1),
                Validity::LongTerm,
                date(2015, 3, 1)
            ),
            ValidityDecision::Same
        );
        // A long-term card reissued (lost card): later start, same end.
        assert_eq!(
            validity_update_decision(
                Validity::LongTerm,
                date(2024, 6, 1),
                Validity::LongTerm,
                date(2015, 3, 1)
            ),
            ValidityDecision::Newer
        );
    }

    #[test]
    fn rule_i7_the_same_period_is_already_up_to_date() {
        let d = validity_update_decision(
            until(2040, 3, 1),
            date(2020, 3, 1),
            until(2040, 3, 1),
            date(2020, 3, 1),
        );
        assert_eq!(d, ValidityDecision::Same);
        assert!(!d.records_update());
        assert_eq!(d.code(), "up_to_date");
    }

    #[test]
    fn rule_i7_an_older_card_is_refused() {
        // The bank holds the renewed card; an old one is swiped.
        let d = validity_update_decision(
            until(2025, 3, 1),
            date(2005, 3, 1),
            until(2045, 3, 1),
            date(2025, 3, 1),
        );
        assert_eq!(d, ValidityDecision::Older);
        assert!(!d.records_update());
        assert_eq!(d.code(), "older_card");
        // Starts earlier (replaced since), even with a later end.
        assert_eq!(
            validity_update_decision(
                until(2046, 1, 1),
                date(2019, 1, 1),
                until(2045, 3, 1),
                date(2025, 3, 1)
            ),
            ValidityDecision::Older
        );
        // Ends earlier with a later start: inconsistent, not recorded.
        assert_eq!(
            validity_update_decision(
                until(2030, 1, 1),
                date(2026, 1, 1),
                until(2045, 3, 1),
                date(2025, 3, 1)
            ),
            ValidityDecision::Older
        );
    }

    // ---- A swiped card (rule Q3 with the ID rules) ----

    mod swipe {
        use super::*;
        use crate::flows::id_update::tests::{customer_for, evidence};
        use kiosk_corebank::{CoreBankError, IdType, LONG_TERM};
        use kiosk_idcard::CardType;

        /// The branch's date in the sample's life: the card (2020-01-01 to
        /// 2040-01-01) is valid, the record holds the one before it.
        fn today() -> NaiveDate {
            NaiveDate::from_ymd_opt(2025, 3, 14).expect("date")
        }

        fn card() -> Identity {
            Identity::sample(CardType::Resident)
        }

        fn decide(identity: &Identity, customer: Customer) -> SwipeDecision {
            swipe_decision(identity, &evidence(), Ok(customer), today(), None)
        }

        fn code_of(identity: &Identity, customer: Customer) -> &'static str {
            decide(identity, customer).code()
        }

        #[test]
        fn rule_q3_i7_a_newer_card_is_recorded_for_the_customer_found() {
            let card = card();
            match decide(&card, customer_for(&card)) {
                SwipeDecision::Record {
                    customer_id,
                    change: ChangeKind::IdValidity { id_validity },
                } => {
                    assert_eq!(customer_id, "C000123");
                    assert_eq!(id_validity.valid_until, "2040-01-01");
                    assert_eq!(id_validity.card_evidence, evidence());
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn rule_q3_i7_the_same_or_an_older_card_is_not_recorded() {
            let card = card();
            let mut same = customer_for(&card);
            same.id_valid_from = "2020-01-01".into();
            same.id_valid_until = "2040-01-01".into();
            assert_eq!(code_of(&card, same), "up_to_date");
            let mut newer_on_file = customer_for(&card);
            newer_on_file.id_valid_from = "2021-01-01".into();
            newer_on_file.id_valid_until = LONG_TERM.into();
            assert_eq!(code_of(&card, newer_on_file), "older_card");
        }

        #[test]
        fn rule_q3_i4_an_expired_card_is_not_looked_up() {
            let mut card = card();
            card.valid_until = Validity::Until(today() - Duration::days(1));
            assert_eq!(swipe_lookup(&card, today()).unwrap_err(), "expired_card");
            card.valid_until = Validity::Until(today());
            assert!(
                swipe_lookup(&card, today()).is_ok(),
                "valid through its last day"
            );
        }

        #[test]
        fn rule_q3_i2_a_number_failing_its_check_digit_is_not_looked_up() {
            let mut card = card();
            let last = card.number.pop().expect("digit");
            card.number.push(if last == '0' { '1' } else { '0' });
            assert_eq!(swipe_lookup(&card, today()).unwrap_err(), "bad_card");
        }

        #[test]
        fn rule_q3_self_service_id_update_false_withholds_the_update() {
            let card = card();
            let mut customer = customer_for(&card);
            customer.self_service.id_update = false;
            assert_eq!(code_of(&card, customer), "counter_not_allowed");
        }

        #[test]
        fn rule_q3_i6_a_name_mismatch_withholds_the_update() {
            let card = card();
            let mut customer = customer_for(&card);
            customer.name = "李四".into();
            assert_eq!(code_of(&card, customer), "counter_name_mismatch");
        }

        #[test]
        fn rule_q3_i5_another_document_type_on_file_is_not_checked() {
            let card = card();
            let mut customer = customer_for(&card);
            customer.id_type = IdType::Temporary;
            assert_eq!(code_of(&card, customer), "not_checked");
        }

        #[test]
        fn rule_q3_i3_the_old_15_digit_number_on_file_matches() {
            let card = card();
            let mut customer = customer_for(&card);
            // 18 → 15: drop the century and the check digit.
            customer.id_number_on_file = format!("{}{}", &card.number[..6], &card.number[8..17]);
            assert_eq!(code_of(&card, customer), "newer");
            let mut other = customer_for(&card);
            other.id_number_on_file = "110101800101001".into();
            assert_eq!(code_of(&card, other), "counter_id_number_mismatch");
        }

        #[test]
        fn rule_q3_i9_outside_the_update_window_withholds_the_update() {
            let card = card();
            let window = Some(UpdateWindow {
                days_before: 30,
                days_after: 90,
            });
            // The record expired 2020-01-01; today is years after it.
            let d = swipe_decision(&card, &evidence(), Ok(customer_for(&card)), today(), window);
            assert_eq!(d.code(), "outside_update_window");
            let inside = NaiveDate::from_ymd_opt(2020, 2, 1).expect("date");
            let d = swipe_decision(&card, &evidence(), Ok(customer_for(&card)), inside, window);
            assert_eq!(d.code(), "newer");
        }

        #[test]
        fn rule_q3_a_lookup_that_failed_is_not_checked() {
            let card = card();
            for e in [
                CoreBankError::Timeout { sent: true },
                CoreBankError::NotFound {
                    code: "customer_not_found".into(),
                },
            ] {
                let d = swipe_decision(&card, &evidence(), Err(e), today(), None);
                assert_eq!(d.code(), "not_checked", "{d:?}");
            }
        }
    }
}
