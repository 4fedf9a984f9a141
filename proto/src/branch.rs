//! The branch API's messages (HTTPS + JSON, and the event stream), shared
//! by kioskd (the primary queue machine serves them, a secondary one asks
//! for numbers with them), kioskctl and the tests. `docs/branch-api.md` is
//! the reference.
//!
//! Rule Q10: nothing here carries personal data: ticket numbers, service
//! ids, counter ids, times and counts only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The path prefix of every endpoint.
pub const PREFIX: &str = "/api/v1";

/// An error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `store_unavailable`, `internal`, or a lifecycle refusal
    /// (`no_current_ticket`, `still_serving`, `nobody_waiting`,
    /// `not_skipped`, `other_day`, `same_service`, `unknown_service`,
    /// `no_such_ticket`).
    pub code: String,
    pub message: String,
}

/// A ticket as the branch sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchTicket {
    pub ticket_id: String,
    /// `A001`.
    pub number: String,
    /// The service it is in now.
    pub service: String,
    /// `waiting`, `called`, `served` or `skipped`.
    pub state: String,
    /// The counter that called it last.
    pub counter: Option<String>,
    pub issued_at_ms: i64,
    pub called_at_ms: Option<i64>,
}

/// The body of `transfer` (`service`) and `reactivate` (`number`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// `transfer`: the service to move the current ticket to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `reactivate`: the skipped ticket's number (today's), e.g. `A001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// What a counter's action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub counter: String,
    /// `call_next`, `recall`, `skip`, `serve`, `transfer`, `reactivate`.
    pub action: String,
    /// The ticket acted on, as it is now.
    pub ticket: BranchTicket,
    /// The stream event that records it.
    pub event: StreamEvent,
}

/// One event of the stream (`event:` is [`StreamEvent::kind`], `id:` is
/// [`StreamEvent::seq`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEvent {
    /// Only grows, never reused: resume with `Last-Event-ID` or `?since=`.
    pub seq: i64,
    pub at_ms: i64,
    /// `YYYY-MM-DD`.
    pub business_day: String,
    /// `issued`, `called`, `recalled`, `skipped`, `reactivated`,
    /// `transferred`, `served`.
    pub kind: String,
    /// `A001`.
    pub number: String,
    pub ticket_id: String,
    /// The service it is in after the event.
    pub service: String,
    /// `transferred`: the service it left.
    pub from_service: Option<String>,
    /// The counter (none for `issued`, `reactivated`, a technician's call).
    pub counter: Option<String>,
    /// Waiting tickets per service right after the event (every
    /// configured service, zeros included).
    pub waiting: BTreeMap<String, u32>,
}

/// A service in [`QueueState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub id: String,
    pub letter: String,
    pub name_zh: String,
    pub name_en: String,
    pub waiting: u32,
}

/// A counter in [`QueueState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterState {
    pub id: String,
    /// `3号窗口`.
    pub label_zh: String,
    /// `Counter 3`.
    pub label_en: String,
    /// The services it calls, in its order.
    pub services: Vec<String>,
    /// Its current ticket's number, if it has one.
    pub current: Option<String>,
}

/// The queue now (`GET /api/v1/state`, the stream's `state` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    pub branch_name: String,
    pub business_day: String,
    /// The last event's seq: the stream continues after it.
    pub last_seq: i64,
    pub services: Vec<ServiceState>,
    pub counters: Vec<CounterState>,
    /// The latest calls (`called` and `recalled`), the newest first.
    pub recent_calls: Vec<StreamEvent>,
}

/// `POST /api/v1/numbers` (a secondary queue machine, rule Q7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRequest {
    pub service: String,
}

/// A number the primary issued for a secondary queue machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberGrant {
    pub ticket_id: String,
    pub service: String,
    pub letter: String,
    pub number: u32,
    /// `A001`.
    pub number_text: String,
    pub business_day: String,
    pub issued_at_ms: i64,
    pub waiting_ahead: u32,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `primary`.
    pub role: String,
    pub kiosk_id: String,
}

/// `GET /api/v1/counters/{id}`: what a counter's page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterView {
    pub counter: CounterState,
    /// Its current ticket.
    pub current: Option<BranchTicket>,
    /// Its services (in its order) and how many wait for each.
    pub services: Vec<ServiceState>,
    /// The last event's seq when this was read.
    pub last_seq: i64,
}
