//! Requests, responses and events of the local API.

use kiosk_idcard::CardType;
use serde::{Deserialize, Serialize};

/// A request line as it travels: an id chosen by the client (echoed in the
/// answer), the method's name and its parameters (omitted, `null` or `{}`
/// for methods without parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLine {
    pub id: u64,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
}

/// The methods, with their parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Protocol and daemon versions.
    Hello,
    /// Daemon and device status.
    Status,
    /// The ID readers and what they see.
    Readers,
    /// Wait for a card read; answers at once with a card already read and
    /// still on a reader.
    ReadCard(ReadCardParams),
    /// Start receiving events on this connection.
    Subscribe,
    /// The sync backlog and the link to the core bank.
    SyncStatus,
    /// Changes in the outbox (no personal data).
    SyncList(SyncListParams),
    /// Put a rejected or backing-off change back in the queue now.
    SyncRetry(ChangeIdParams),
    /// Changes the bank rejected for good, with its reasons.
    SyncRejected,
    /// Check the audit trail's hash chain.
    AuditVerify,
    /// Technician self-test: readers, SAM, printer, core bank, database,
    /// audit chain; a pass/fail/skip result per check.
    Selftest(SelftestParams),
    /// Record a confirmed change directly (demo and test kiosks only:
    /// `api.allow_direct_changes`); the customer flows do this for real.
    SubmitChange(SubmitChangeParams),
    /// The queue's services (rule Q1).
    QueueServices,
    /// Take a ticket: commit the number, print it (rules Q1–Q4).
    QueueTake(QueueTakeParams),
    /// Print a ticket again (default: the last one), same number (rule Q4).
    QueueReprint(QueueReprintParams),
    /// Counter staff: call the next waiting ticket of a service.
    QueueCall(QueueServiceParams),
    /// Per service: waiting, last called, last issued.
    QueueStatus,
    /// Rule Q9: the day's queue statistics.
    QueueReport(QueueReportParams),
    /// Start a customer session (`id_update` or `phone_change`).
    SessionStart(SessionStartParams),
    /// The customer's input to the running session.
    SessionInput(SessionInputParams),
    /// End the running session (the customer walked away, the UI's cancel).
    SessionCancel,
    /// The running session's stage and screen (or the last one's end).
    SessionState,
    /// The UI's technician screen: check the PIN against `[ui]
    /// technician_pin_hash`; right, this connection has the technician
    /// role until `technician_lock` or `[ui] technician_unlock_s`.
    /// Wrong PINs are rate-limited and audited.
    TechnicianUnlock(TechnicianUnlockParams),
    /// Drop the technician role this connection got from a PIN.
    TechnicianLock,
}

/// `technician_unlock` params. `Debug` never shows the PIN.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TechnicianUnlockParams {
    pub pin: String,
}

impl std::fmt::Debug for TechnicianUnlockParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TechnicianUnlockParams(<redacted>)")
    }
}

/// `technician_unlock` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechnicianUnlocked {
    /// Seconds the technician role lasts on this connection.
    pub valid_s: u64,
}

/// `session_start` params.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionStartParams {
    /// `id_update` (rules I1–I9) or `phone_change` (rules P1–P7).
    pub flow: String,
    /// Rule A2/A4: the customer chose the elderly-friendly mode, so the
    /// session's idle times are `[session] elderly_idle_factor` longer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub elderly: bool,
}

/// `session_input` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionInputParams {
    pub input: SessionInput,
}

/// What the customer did on the screen. `Debug` never shows what was typed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionInput {
    /// Confirm the change shown.
    Confirm,
    /// Cancel the session.
    Cancel,
    /// The answer to the security question (rule P2).
    Answer { answer: String },
    /// The new mobile number, typed twice (rule P3).
    Numbers { first: String, second: String },
    /// The SMS code (rule P4).
    Code { code: String },
    /// Send a new SMS code (rule P4).
    Resend,
    /// Type another new number.
    ChangeNumber,
    /// Rule A4: the customer asked for more time (the idle warning's
    /// button): the idle clock starts again, nothing else changes.
    MoreTime,
    /// Rule A2: the customer switched the elderly-friendly mode during the
    /// session: its idle times become those of the mode (longer when
    /// `on`), and the idle clock restarts as with `MoreTime`.
    Elderly { on: bool },
}

impl std::fmt::Debug for SessionInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionInput::Confirm => "Confirm",
            SessionInput::Cancel => "Cancel",
            SessionInput::Answer { .. } => "Answer(<redacted>)",
            SessionInput::Numbers { .. } => "Numbers(<redacted>)",
            SessionInput::Code { .. } => "Code(<redacted>)",
            SessionInput::Resend => "Resend",
            SessionInput::ChangeNumber => "ChangeNumber",
            SessionInput::MoreTime => "MoreTime",
            SessionInput::Elderly { on: true } => "Elderly(on)",
            SessionInput::Elderly { on: false } => "Elderly(off)",
        })
    }
}

/// A message for the customer, in Chinese and English, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowMessage {
    pub code: String,
    pub zh: String,
    pub en: String,
}

/// A session's state: what the screen must show. Masked data only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session's id (a UUID), `None` before any session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// A session is running.
    pub active: bool,
    /// `id_update` or `phone_change`; `None` before any session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// The flow's stage, `none` before any session.
    pub stage: Stage,
    /// What to show (masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<Screen>,
    /// The last message for the customer (a refusal, a notice, the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<FlowMessage>,
    /// How the session ended, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The refusal, when refused or noticed: `{"refusal": "counter",
    /// "counter_reason": "not_allowed", "reason": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<crate::Refusal>,
    /// The change recorded in this session, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
}

/// What the core bank did with a delivered change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Applied by this delivery (or an earlier one with the same key).
    Applied,
    /// A newer change for the same customer was applied first.
    Superseded,
}

impl Delivery {
    /// The wire's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Applied => "applied",
            Delivery::Superseded => "superseded",
        }
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session's stage: both flows' stages, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before any session.
    None,
    AwaitingCard,
    LookingUp,
    /// `phone_change` only, from here to `verifying_code`.
    AwaitingAnswer,
    CheckingAnswer,
    AwaitingNumber,
    SendingCode,
    AwaitingCode,
    VerifyingCode,
    AwaitingConfirmation,
    Recording,
    AwaitingBank,
    Finished,
}

impl Stage {
    /// The wire's spelling (`awaiting_card`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "none",
            Stage::AwaitingCard => "awaiting_card",
            Stage::LookingUp => "looking_up",
            Stage::AwaitingAnswer => "awaiting_answer",
            Stage::CheckingAnswer => "checking_answer",
            Stage::AwaitingNumber => "awaiting_number",
            Stage::SendingCode => "sending_code",
            Stage::AwaitingCode => "awaiting_code",
            Stage::VerifyingCode => "verifying_code",
            Stage::AwaitingConfirmation => "awaiting_confirmation",
            Stage::Recording => "recording",
            Stage::AwaitingBank => "awaiting_bank",
            Stage::Finished => "finished",
        }
    }

    /// The session waits for the kiosk (the reader, the bank, the store),
    /// not for the customer.
    pub fn is_working(self) -> bool {
        matches!(
            self,
            Stage::LookingUp
                | Stage::CheckingAnswer
                | Stage::SendingCode
                | Stage::VerifyingCode
                | Stage::Recording
                | Stage::AwaitingBank
        )
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a session's screen shows (`screen`, tagged by `kind`), masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Screen {
    /// Place the card.
    PlaceCard,
    /// Rule I8: what will change; then `confirm` or `cancel`.
    ConfirmId(Box<IdConfirmation>),
    /// Rule P2: the security question; then `answer`.
    Question { question: String },
    /// Rule P3: the new number twice; then `numbers`.
    NewNumber,
    /// Rule P4: the SMS code; then `code`, `resend` or `change_number`.
    Code {
        masked_mobile: String,
        expires_in_s: u64,
        resend_in_s: u64,
    },
    /// Rule P6: the old and the new number; then `confirm` or `cancel`.
    ConfirmPhone(PhoneConfirmation),
}

/// Rule I8: what the customer confirms at the smart teller, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdConfirmation {
    pub card_type: CardType,
    /// `110***********002X`.
    pub masked_number: String,
    /// `张*`.
    pub masked_name: String,
    pub old_valid_from: String,
    pub old_valid_until: String,
    pub new_valid_from: String,
    pub new_valid_until: String,
}

/// Rule P6: the number change the customer confirms, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneConfirmation {
    /// As the bank gave it: `138****5678`.
    pub old_masked: String,
    /// `139****1234`.
    pub new_masked: String,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The bank applied the change.
    Applied,
    /// Rule C3: an ID validity change recorded, to be delivered later.
    AcceptedWillSync,
    /// Rule P6: a mobile change recorded, not yet applied by the bank.
    Pending,
    /// Rule C4: the bank rejected the change.
    Rejected,
    /// The kiosk refused (the reason in `refusal`).
    Refused,
    Cancelled,
    TimedOut,
}

impl Outcome {
    /// The wire's spelling (`accepted_will_sync`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::AcceptedWillSync => "accepted_will_sync",
            Outcome::Pending => "pending",
            Outcome::Rejected => "rejected",
            Outcome::Refused => "refused",
            Outcome::Cancelled => "cancelled",
            Outcome::TimedOut => "timed_out",
        }
    }
}

/// `queue_take` params.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueTakeParams {
    /// A service id from `queue_services`.
    pub service: String,
    /// Use the ID card on the reader, if one was read: its masked name goes
    /// on the ticket and rule I7 applies (rule Q3).
    #[serde(default)]
    pub use_card: bool,
}

/// `queue_reprint` params.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueReprintParams {
    /// The ticket to print again; the last ticket issued without it.
    #[serde(default)]
    pub ticket_id: Option<String>,
}

/// `queue_call` params.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueServiceParams {
    pub service: String,
}

/// One service of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueServiceInfo {
    pub id: String,
    pub letter: String,
    pub name_zh: String,
    pub name_en: String,
}

/// What the customer is told, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketMessage {
    /// `printed`, `printed_with_warning` or `printer_fault`.
    pub code: String,
    pub zh: String,
    pub en: String,
}

/// A ticket taken or reprinted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTicketInfo {
    pub ticket_id: String,
    /// `A001`.
    pub number: String,
    /// The service id.
    pub service: String,
    pub waiting_ahead: u32,
    /// The ticket came out of the printer. `false`: the number is kept and
    /// can be reprinted (rule Q4).
    pub printed: bool,
    pub message: TicketMessage,
    /// The masked name printed, when a card was used (rule Q3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_name: Option<String>,
    /// Rule I7 on the swiped card: `newer` (a change was recorded),
    /// `up_to_date`, `older_card`, or `not_checked` (no bank, bank
    /// unreachable, no match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
    /// The id-validity change recorded for a newer card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
}

/// `queue_call` answer: the ticket called, or none waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCalled {
    pub service: String,
    /// `None` when nobody is waiting.
    pub ticket_id: Option<String>,
    pub number: Option<String>,
    /// Still waiting after this call.
    pub waiting: u32,
}

/// One service in `queue_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueServiceStatus {
    pub service: String,
    pub letter: String,
    pub waiting: u32,
    pub last_called: Option<String>,
    pub last_issued: Option<String>,
}

/// `queue_status` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatusInfo {
    /// `YYYY-MM-DD`, the branch's business day now.
    pub business_day: String,
    pub services: Vec<QueueServiceStatus>,
}

/// `queue_report` params.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueReportParams {
    /// `YYYY-MM-DD`; the queue's business day now without it.
    #[serde(default)]
    pub date: Option<String>,
}

/// Median, p90 and maximum of some durations, in whole seconds
/// (nearest-rank); `null` without any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spread {
    pub median_s: Option<u64>,
    pub p90_s: Option<u64>,
    pub max_s: Option<u64>,
}

/// One row of the queue report: a service over all counters (`counter`
/// null) or a counter over all services (`service` null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReportRow {
    pub service: Option<String>,
    pub counter: Option<String>,
    /// A service's row: tickets in it; a counter's row: tickets it called.
    pub tickets: u32,
    pub served: u32,
    pub skipped: u32,
    /// Issued → first call.
    pub waiting: Spread,
    /// The call → served.
    pub service_time: Spread,
}

/// `queue_report` answer (rule Q9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReport {
    /// `YYYY-MM-DD`.
    pub business_day: String,
    pub rows: Vec<QueueReportRow>,
}

/// Parameters of `sync_list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncListParams {
    /// Only changes in this state (`pending`, `in_flight`, `delivered`, `rejected`).
    #[serde(default)]
    pub state: Option<String>,
    /// At most this many, newest first; default 100.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A change id parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeIdParams {
    pub change_id: String,
}

/// Parameters of `submit_change`: the change as the core bank will get it,
/// without `change_id`, `occurred_at_ms` and `source` (kioskd sets them).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitChangeParams {
    pub customer_id: String,
    /// `{"kind": "id_validity", "id_validity": {...}}` or `{"kind": "mobile", "mobile": {...}}`.
    pub change: serde_json::Value,
}

impl std::fmt::Debug for SubmitChangeParams {
    // The change holds personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmitChangeParams")
            .field("customer_id", &self.customer_id)
            .finish_non_exhaustive()
    }
}

/// Answer to `submit_change`: the change is durable in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedChange {
    pub change_id: String,
}

/// Answer to `sync_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatusInfo {
    /// Changes not yet acknowledged by the bank (pending or in flight).
    pub backlog: u64,
    /// Age of the oldest of them, in seconds.
    pub oldest_pending_age_s: Option<u64>,
    /// Changes the bank rejected for good.
    pub rejected: u64,
    /// Changes the bank acknowledged.
    pub delivered: u64,
    pub last_error: Option<String>,
    pub last_delivery_at_ms: Option<i64>,
    /// Whether the last contact with the core bank succeeded.
    pub core_reachable: Option<bool>,
    /// Our clock minus the bank's, from the last health check.
    pub clock_skew_ms: Option<i64>,
}

/// One change in `sync_list` / `sync_rejected`: no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub change_id: String,
    /// `id_validity` or `mobile`.
    pub kind: String,
    /// The bank's customer id (opaque, not personal data).
    pub customer_id: String,
    /// `pending`, `in_flight`, `delivered` or `rejected`.
    pub state: String,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub last_error: Option<String>,
    /// What the bank did, once delivered.
    pub outcome: Option<Delivery>,
    pub core_ref: Option<String>,
    /// The bank's rejection code and message.
    pub rejection_code: Option<String>,
    pub rejection_message: Option<String>,
}

/// Answer to `audit_verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub records: u64,
    pub ok: bool,
    /// The first record that breaks the chain, and why.
    pub first_bad_seq: Option<u64>,
    pub problem: Option<String>,
}

/// Parameters of `read_card`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadCardParams {
    /// How long to wait for a card; default 30000, at most 600000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl Request {
    /// The method's name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Request::Hello => "hello",
            Request::Status => "status",
            Request::Readers => "readers",
            Request::ReadCard(_) => "read_card",
            Request::Subscribe => "subscribe",
            Request::SyncStatus => "sync_status",
            Request::SyncList(_) => "sync_list",
            Request::SyncRetry(_) => "sync_retry",
            Request::SyncRejected => "sync_rejected",
            Request::AuditVerify => "audit_verify",
            Request::Selftest(_) => "selftest",
            Request::SubmitChange(_) => "submit_change",
            Request::QueueServices => "queue_services",
            Request::QueueTake(_) => "queue_take",
            Request::QueueReprint(_) => "queue_reprint",
            Request::QueueCall(_) => "queue_call",
            Request::QueueStatus => "queue_status",
            Request::QueueReport(_) => "queue_report",
            Request::SessionStart(_) => "session_start",
            Request::SessionInput(_) => "session_input",
            Request::SessionCancel => "session_cancel",
            Request::SessionState => "session_state",
            Request::TechnicianUnlock(_) => "technician_unlock",
            Request::TechnicianLock => "technician_lock",
        }
    }

    /// The request as a line with this id.
    pub fn to_line(&self, id: u64) -> RequestLine {
        let params = match self {
            Request::ReadCard(p) => serde_json::to_value(p).ok(),
            Request::SyncList(p) => serde_json::to_value(p).ok(),
            Request::SyncRetry(p) => serde_json::to_value(p).ok(),
            Request::Selftest(p) => serde_json::to_value(p).ok(),
            Request::SubmitChange(p) => serde_json::to_value(p).ok(),
            Request::QueueTake(p) => serde_json::to_value(p).ok(),
            Request::QueueReprint(p) => serde_json::to_value(p).ok(),
            Request::QueueCall(p) => serde_json::to_value(p).ok(),
            Request::QueueReport(p) => serde_json::to_value(p).ok(),
            Request::SessionStart(p) => serde_json::to_value(p).ok(),
            Request::SessionInput(p) => serde_json::to_value(p).ok(),
            Request::TechnicianUnlock(p) => serde_json::to_value(p).ok(),
            _ => None,
        };
        RequestLine {
            id,
            method: self.method().to_string(),
            params,
        }
    }

    /// Parse a request line's method and parameters.
    pub fn from_line(line: &RequestLine) -> Result<Request, ApiError> {
        fn params<T: serde::de::DeserializeOwned + Default>(
            method: &str,
            value: &Option<serde_json::Value>,
        ) -> Result<T, ApiError> {
            match value {
                None | Some(serde_json::Value::Null) => Ok(T::default()),
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| ApiError {
                    code: ErrorCode::BadRequest,
                    message: format!("invalid params for {method}: {e}"),
                }),
            }
        }
        fn required<T: serde::de::DeserializeOwned>(
            method: &str,
            value: &Option<serde_json::Value>,
        ) -> Result<T, ApiError> {
            let v = value.clone().unwrap_or(serde_json::Value::Null);
            serde_json::from_value(v).map_err(|e| ApiError {
                code: ErrorCode::BadRequest,
                message: format!("invalid params for {method}: {e}"),
            })
        }
        fn no_params(method: &str, value: &Option<serde_json::Value>) -> Result<(), ApiError> {
            match value {
                None | Some(serde_json::Value::Null) => Ok(()),
                Some(serde_json::Value::Object(m)) if m.is_empty() => Ok(()),
                Some(_) => Err(ApiError {
                    code: ErrorCode::BadRequest,
                    message: format!("{method} takes no params"),
                }),
            }
        }
        let m = line.method.as_str();
        Ok(match m {
            "hello" => no_params(m, &line.params).map(|()| Request::Hello)?,
            "status" => no_params(m, &line.params).map(|()| Request::Status)?,
            "readers" => no_params(m, &line.params).map(|()| Request::Readers)?,
            "subscribe" => no_params(m, &line.params).map(|()| Request::Subscribe)?,
            "read_card" => Request::ReadCard(params(m, &line.params)?),
            "sync_status" => no_params(m, &line.params).map(|()| Request::SyncStatus)?,
            "sync_list" => Request::SyncList(params(m, &line.params)?),
            "sync_retry" => Request::SyncRetry(required(m, &line.params)?),
            "sync_rejected" => no_params(m, &line.params).map(|()| Request::SyncRejected)?,
            "audit_verify" => no_params(m, &line.params).map(|()| Request::AuditVerify)?,
            "selftest" => Request::Selftest(params(m, &line.params)?),
            "submit_change" => Request::SubmitChange(required(m, &line.params)?),
            "queue_services" => no_params(m, &line.params).map(|()| Request::QueueServices)?,
            "queue_take" => Request::QueueTake(required(m, &line.params)?),
            "queue_reprint" => Request::QueueReprint(params(m, &line.params)?),
            "queue_call" => Request::QueueCall(required(m, &line.params)?),
            "queue_status" => no_params(m, &line.params).map(|()| Request::QueueStatus)?,
            "queue_report" => Request::QueueReport(params(m, &line.params)?),
            "session_start" => Request::SessionStart(required(m, &line.params)?),
            "session_input" => Request::SessionInput(required(m, &line.params)?),
            "session_cancel" => no_params(m, &line.params).map(|()| Request::SessionCancel)?,
            "session_state" => no_params(m, &line.params).map(|()| Request::SessionState)?,
            "technician_unlock" => Request::TechnicianUnlock(required(m, &line.params)?),
            "technician_lock" => no_params(m, &line.params).map(|()| Request::TechnicianLock)?,
            other => {
                return Err(ApiError {
                    code: ErrorCode::UnknownMethod,
                    message: format!("unknown method {other:?}"),
                });
            }
        })
    }
}

/// An answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    /// The request's id; 0 when the request line could not be parsed.
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// A refusal or failure, with a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// Stable error codes of the local API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not a JSON request of this protocol.
    BadRequest,
    /// The method is not known.
    UnknownMethod,
    /// The line exceeds [`crate::MAX_LINE`].
    LineTooLong,
    /// Waiting ended without the awaited event.
    Timeout,
    /// The kiosk has no ID reader configured.
    NoReader,
    /// A card was placed but could not be read; the message says why.
    ReadFailed,
    /// The daemon is stopping.
    ShuttingDown,
    /// No such change.
    NotFound,
    /// This kiosk does not allow the request (e.g. `submit_change` without
    /// `api.allow_direct_changes`).
    NotAllowed,
    /// The local store refused to record (disk full, read-only): nothing
    /// was recorded, nothing already stored is lost.
    StoreUnavailable,
    /// A customer session is already running (`session_start`).
    SessionActive,
    /// No customer session is running (`session_input`, `session_cancel`).
    NoSession,
    /// The caller's role (from its credentials on the socket) may not call
    /// this method; the message names the method and the role needed.
    Forbidden,
    /// `technician_unlock`: the PIN is wrong; the message says how many
    /// tries are left before the lockout.
    WrongPin,
    /// `technician_unlock`: too many wrong PINs; the message says when to
    /// try again.
    Locked,
    /// The daemon already serves `api.max_clients` connections: this one
    /// is closed after this answer (id 0); the client may try again later.
    TooManyClients,
    /// The same long check is already running (`audit_verify`): try again
    /// when it is done.
    Busy,
    /// A secondary queue machine cannot reach the branch's primary, which
    /// keeps the numbering (rule Q7): no number was issued; the message
    /// says so in Chinese and English.
    PrimaryUnreachable,
    /// Anything else; details are in the daemon's log.
    Internal,
}

/// A line from the daemon: either an answer or an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerLine {
    Event(EventEnvelope),
    Response(ResponseEnvelope),
}

/// An event line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// Increases by one per event the daemon emits.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub at_ms: i64,
    #[serde(flatten)]
    pub event: Event,
}

/// What happens on the kiosk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// A device's state changed.
    DeviceState {
        device: String,
        state: DeviceState,
        detail: Option<String>,
    },
    /// The reader's hardware appeared (PC/SC reader attached, serial SAM
    /// port present).
    ReaderAttached { reader: String },
    /// The reader's hardware went away.
    ReaderDetached { reader: String },
    /// A card entered the reader's field.
    CardPresent { reader: String },
    /// The card left.
    CardAbsent { reader: String },
    /// A card was read.
    CardRead {
        reader: String,
        identity: MaskedIdentity,
        read_ms: u64,
    },
    /// A card was placed but could not be read.
    ReadFailed {
        reader: String,
        code: String,
        message: String,
    },
    /// A confirmed change is durable in the outbox.
    ChangeRecorded { change_id: String, kind: String },
    /// The core bank acknowledged a change (`applied` or `superseded`).
    ChangeDelivered {
        change_id: String,
        outcome: Delivery,
        core_ref: String,
    },
    /// The core bank rejected a change for good (rule C4).
    ChangeRejected {
        change_id: String,
        code: String,
        message: String,
    },
    /// The sync link changed: the core bank became reachable or not.
    CoreBankLink {
        reachable: bool,
        detail: Option<String>,
    },
    /// A customer session changed stage or screen (masked data only).
    Session(SessionInfo),
    /// A queue ticket's number was committed (and printed, or not).
    TicketIssued {
        ticket_id: String,
        number: String,
        service: String,
        printed: bool,
    },
    /// The personal data of `count` settled changes was purged after the
    /// bank's answer and `store.retention_hours` (rule S2; audited).
    PayloadsPurged { count: u64 },
}

/// Device states, after XFS4IoT's `Common.Status.device` (one type for
/// readers and printers, from `kiosk-device`).
pub use kiosk_device::DeviceState;

/// An identity as it may leave the daemon (rule S1): card type and
/// validity in the clear, everything personal masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedIdentity {
    pub card_type: CardType,
    /// e.g. `张*`
    pub name: String,
    /// English name of a foreign card, masked, e.g. `T*** J***`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub english_name: Option<String>,
    /// e.g. `110***********1234`
    pub number: String,
    /// Always `****-**-**`.
    pub birth_date: String,
    /// `***` when the card has an address, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `YYYY-MM-DD`
    pub valid_from: String,
    /// `YYYY-MM-DD` or `long_term`
    pub valid_until: String,
    /// Whether the card carried a photo (the photo never leaves kioskd).
    pub has_photo: bool,
}

/// Answer to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloInfo {
    pub protocol: u32,
    pub daemon_version: String,
    pub kiosk_id: String,
}

/// Answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub daemon_version: String,
    pub kiosk_id: String,
    pub branch_id: String,
    /// `[kiosk] branch_name`: the touchscreen's header shows it.
    #[serde(default)]
    pub branch_name: String,
    /// The branch's time zone (IANA name, `Asia/Shanghai`): the clock in
    /// the touchscreen's header is the branch's.
    #[serde(default)]
    pub timezone: String,
    pub profile: String,
    pub uptime_s: u64,
    pub devices: Vec<DeviceInfo>,
    /// Changes not yet acknowledged by the bank (`None` without a store).
    #[serde(default)]
    pub sync_backlog: Option<u64>,
    /// Free space for kioskd on the store's filesystem, in bytes (`None`
    /// without a store or when it cannot be read).
    #[serde(default)]
    pub disk_free_bytes: Option<u64>,
    /// Size of that filesystem, in bytes.
    #[serde(default)]
    pub disk_total_bytes: Option<u64>,
}

/// One device in `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub name: String,
    /// `id_reader`, ...
    pub kind: String,
    pub state: DeviceState,
    pub detail: Option<String>,
    pub last_error: Option<String>,
    /// The SAM's id (ID readers, once known).
    #[serde(default)]
    pub sam_id: Option<String>,
}

/// One reader in `readers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaderInfo {
    pub name: String,
    /// `pcsc`, `sam`, `sdtapi`, `usb`, `pcsc+sam`, `pcsc+sdtapi` or `pcsc+usb`.
    pub transport: String,
    pub state: DeviceState,
    pub detail: Option<String>,
    /// Whether the reader's hardware is attached.
    pub attached: bool,
    pub sam_id: Option<String>,
    pub card_present: bool,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub last_error: Option<String>,
}

/// Answer to `read_card`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardReadInfo {
    pub reader: String,
    pub identity: MaskedIdentity,
    pub read_ms: u64,
}

/// Parameters of `selftest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelftestParams {
    /// Also print the printer's test page.
    #[serde(default)]
    pub print_test_page: bool,
}

/// The result of one self-test check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Pass,
    Fail,
    /// Not applicable on this kiosk (nothing configured).
    Skip,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Pass => "pass",
            CheckOutcome::Fail => "fail",
            CheckOutcome::Skip => "skip",
        }
    }
}

/// One check in `selftest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelftestCheck {
    /// e.g. `reader:front`, `sam:front`, `printer:tickets`, `corebank`,
    /// `database`, `audit_chain`.
    pub name: String,
    pub outcome: CheckOutcome,
    /// Why it passed, failed or was skipped.
    pub reason: String,
}

/// Answer to `selftest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelftestReport {
    /// No check failed.
    pub ok: bool,
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub checks: Vec<SelftestCheck>,
}
