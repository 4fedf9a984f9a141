//! What every customer flow shares: the [`Input`]s the session gives a
//! flow, the [`Effect`]s a flow asks of the session, the [`Flow`] trait
//! the session runner drives, and the pieces both flows build with
//! ([`FlowSettings`], [`Outcome`], [`Slip`], [`AuditNote`],
//! [`ChangeToRecord`], the idle clock).
//!
//! A flow is a state machine without I/O ([`super::id_update`],
//! [`super::phone`]): it takes one input and the time, and returns its
//! effects in order. An input a flow has no use for in its current stage
//! (a security answer in the ID update, a second card) changes nothing.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use kiosk_corebank::{
    CardEvidence, ChangeKind, CheckResult, Customer, LookupRequest, OtpIssued, OtpRequest,
};
use kiosk_idcard::Identity;
use kiosk_idcard::mask::MaskPolicy;
use kiosk_proto::{Delivery, Screen, Stage};
use serde::Serialize;
use zeroize::Zeroizing;

pub use super::id_rules::{BankFailure, UpdateWindow};
use super::messages::{CustomerMessage, Explained, Refusal};
use crate::store::AuditAction;

/// A customer flow as the session runner drives it. A flow supplies its
/// name, its stage, its idle clock and one [`Flow::step`]; the rest (the
/// idle clock's bookkeeping, nothing after the end) is the same for every
/// flow and written once here.
pub trait Flow: Send + Sync {
    /// `id_update`, `phone_change`: the flow's name on the local API.
    fn name(&self) -> &'static str;
    /// Where the flow is, as the local API says it.
    fn stage(&self) -> Stage;
    fn idle(&self) -> &Idle;
    fn idle_mut(&mut self) -> &mut Idle;
    /// One input of a flow that is not finished (the idle clock is
    /// already touched): the flow's own transitions.
    fn step(&mut self, input: Input, now: DateTime<Utc>) -> Vec<Effect>;

    /// Start the idle clock when the session starts: a session nobody
    /// ever touches (the touchscreen app died right after starting it)
    /// still times out.
    fn start_idle_clock(&mut self, now: DateTime<Utc>) {
        self.idle_mut().touch(now);
    }

    /// When to send the next [`Input::Tick`] (`None`: finished).
    fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        if self.is_finished() {
            None
        } else {
            self.idle().next_wakeup()
        }
    }

    /// Take one input at `now`; what to do, in order. Every input but
    /// [`Input::Tick`] counts as activity; a finished flow does nothing.
    fn handle(&mut self, input: Input, now: DateTime<Utc>) -> Vec<Effect> {
        if self.is_finished() {
            return Vec::new();
        }
        if !matches!(input, Input::Tick) {
            self.idle_mut().touch(now);
        }
        if matches!(input, Input::MoreTime) {
            // Rule A4: the touch above is the whole point; every flow in
            // every stage takes it and stays where it is.
            return vec![Effect::MoreTime(super::messages::more_time())];
        }
        self.step(input, now)
    }

    fn is_finished(&self) -> bool {
        self.stage() == Stage::Finished
    }
    /// The flow waits for a card read.
    fn awaiting_card(&self) -> bool {
        self.stage() == Stage::AwaitingCard
    }
    /// The flow waits for the sync worker's news of its change.
    fn awaiting_bank(&self) -> bool {
        self.stage() == Stage::AwaitingBank
    }
}

/// What the session tells a flow (the phone-only inputs are ignored by
/// the ID update).
pub enum Input {
    /// Rule P1: the reader read a card in this session.
    CardRead {
        identity: Identity,
        evidence: CardEvidence,
    },
    /// Rule I1: a card of a type the kiosk does not accept.
    CardUnsupported,
    /// A card that could not be read.
    CardUnreadable,
    /// The answer to [`Effect::LookUp`].
    LookupAnswered(Result<Customer, BankFailure>),
    /// The customer's answer to the security question.
    AnswerGiven(Zeroizing<String>),
    /// The answer to [`Effect::CheckAnswer`].
    AnswerChecked(Result<CheckResult, BankFailure>),
    /// Rule P3: the new number, typed twice.
    NumberEntered {
        first: Zeroizing<String>,
        second: Zeroizing<String>,
    },
    /// The answer to [`Effect::SendCode`].
    CodeSent(Result<OtpIssued, BankFailure>),
    /// The customer asks for a new code.
    ResendCode,
    /// The customer wants to type another number.
    ChangeNumber,
    /// The code the customer typed.
    CodeEntered(Zeroizing<String>),
    /// The answer to [`Effect::VerifyCode`].
    CodeChecked(Result<CheckResult, BankFailure>),
    CustomerConfirmed,
    CustomerCancelled,
    /// The change of [`Effect::RecordChange`] is committed (rule C1).
    ChangeRecorded {
        change_id: String,
    },
    ChangeRecordFailed,
    ChangeDelivered {
        status: Delivery,
        core_ref: String,
    },
    ChangeRejected {
        code: String,
        message: String,
    },
    /// The bank is unreachable; the change waits in the outbox.
    ChangeQueued,
    /// Rule A4: the customer asked for more time; the idle clock restarts.
    MoreTime,
    Tick,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::CardRead { identity, .. } => f
                .debug_tuple("CardRead")
                .field(&identity.card_type)
                .finish(),
            Input::CardUnsupported => f.write_str("CardUnsupported"),
            Input::CardUnreadable => f.write_str("CardUnreadable"),
            Input::LookupAnswered(r) => f.debug_tuple("LookupAnswered").field(r).finish(),
            Input::AnswerGiven(_) => f.write_str("AnswerGiven(<redacted>)"),
            Input::AnswerChecked(r) => f.debug_tuple("AnswerChecked").field(r).finish(),
            Input::NumberEntered { .. } => f.write_str("NumberEntered(<redacted>)"),
            Input::CodeSent(r) => f.debug_tuple("CodeSent").field(r).finish(),
            Input::ResendCode => f.write_str("ResendCode"),
            Input::ChangeNumber => f.write_str("ChangeNumber"),
            Input::CodeEntered(_) => f.write_str("CodeEntered(<redacted>)"),
            Input::CodeChecked(r) => f.debug_tuple("CodeChecked").field(r).finish(),
            Input::CustomerConfirmed => f.write_str("CustomerConfirmed"),
            Input::CustomerCancelled => f.write_str("CustomerCancelled"),
            Input::ChangeRecorded { change_id } => {
                f.debug_tuple("ChangeRecorded").field(change_id).finish()
            }
            Input::ChangeRecordFailed => f.write_str("ChangeRecordFailed"),
            Input::ChangeDelivered { status, core_ref } => f
                .debug_tuple("ChangeDelivered")
                .field(status)
                .field(core_ref)
                .finish(),
            Input::ChangeRejected { code, message } => f
                .debug_tuple("ChangeRejected")
                .field(code)
                .field(message)
                .finish(),
            Input::ChangeQueued => f.write_str("ChangeQueued"),
            Input::MoreTime => f.write_str("MoreTime"),
            Input::Tick => f.write_str("Tick"),
        }
    }
}

/// What a flow asks the session to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// `POST /v1/customers/lookup`; answer with [`Input::LookupAnswered`].
    LookUp(LookupRequest),
    /// `POST /v1/customers/{customer_id}/security-answer`; answer with
    /// [`Input::AnswerChecked`] (rule P2).
    CheckAnswer {
        customer_id: String,
        answer: Zeroizing<String>,
    },
    /// `POST /v1/otp`; answer with [`Input::CodeSent`] (rule P4).
    SendCode(OtpRequest),
    /// `POST /v1/otp/{otp_id}/verify`; answer with [`Input::CodeChecked`].
    VerifyCode {
        otp_id: String,
        code: Zeroizing<String>,
    },
    /// Show a screen (masked data only) and wait for the customer: the
    /// confirmation (rules I8, P6), the security question (P2), the new
    /// number's keypad (P3), the code's keypad (P4).
    Show(Screen),
    /// Tell the customer and stay in the step (try again).
    Notice(Refusal),
    /// Rule C1: commit the change; answer with [`Input::ChangeRecorded`].
    RecordChange(ChangeToRecord),
    /// Print a slip (masked).
    PrintSlip(Slip),
    /// Rule S3.
    Audit(AuditNote),
    /// The session ends soon without an input.
    IdleWarning(CustomerMessage),
    /// Rule A4: the idle clock was restarted at the customer's request.
    MoreTime(CustomerMessage),
    /// The flow is over; its personal data is gone.
    Finish(Outcome),
}

/// What the flows need of the configuration; the daemon maps its config
/// to this.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSettings {
    /// The branch's time zone: "today" for rule I4 and I9, the slip's time.
    pub timezone: Tz,
    /// The session ends after this long without an input.
    pub idle_timeout: Duration,
    /// The warning comes this long before the end (0: none).
    pub idle_warning: Duration,
    /// Rule I9; `None` (the default): no window.
    pub update_window: Option<UpdateWindow>,
    /// Rule S1: how numbers and names are masked.
    pub mask: MaskPolicy,
    /// A printer is configured: print a slip at the end of a change.
    pub print_slip: bool,
    /// Rule P4: the least time between two codes sent by this kiosk (the
    /// bank's own `429 Retry-After` applies too).
    pub otp_resend_interval: Duration,
    /// Rule P4: codes this kiosk sends in one session at most.
    pub otp_max_sends: u32,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            timezone: chrono_tz::Asia::Shanghai,
            idle_timeout: Duration::from_secs(120),
            idle_warning: Duration::from_secs(20),
            update_window: None,
            mask: MaskPolicy::default(),
            print_slip: false,
            otp_resend_interval: Duration::from_secs(60),
            otp_max_sends: 3,
        }
    }
}

impl FlowSettings {
    /// The branch's date at `now`.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.timezone).date_naive()
    }

    pub(super) fn local_time(&self, now: DateTime<Utc>) -> String {
        now.with_timezone(&self.timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }
}

/// An audit record to append (rule S3): masked detail only; `subject` is
/// the core bank's customer id when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNote {
    pub action: AuditAction,
    pub subject: Option<String>,
    pub detail: String,
}

/// A confirmed change for `Shared::record_change` (rule C1). `Debug`
/// redacts the payload ([`ChangeKind`]'s own impl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeToRecord {
    pub customer_id: String,
    pub kind: ChangeKind,
    /// The text of the `change_recorded` audit record, masked.
    pub audit_detail: String,
}

/// One line of a slip: masked values only (rule S1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlipRow {
    /// `证件号码 ID number`.
    pub label: String,
    pub value: String,
}

/// A receipt for the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slip {
    /// `证件有效期更新 ID validity update`.
    pub title: String,
    pub rows: Vec<SlipRow>,
}

pub(super) fn row(label: &str, value: impl Into<String>) -> SlipRow {
    SlipRow {
        label: label.into(),
        value: value.into(),
    }
}

/// How a flow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    /// The bank applied the change (`superseded`: it already held it).
    Applied {
        change_id: String,
        status: Delivery,
    },
    /// Rule C3: recorded; the bank will get it when reachable (ID
    /// validity).
    AcceptedWillSync {
        change_id: String,
    },
    /// Recorded, not yet confirmed by the bank (mobile number, rule P6:
    /// not reported as done).
    Pending {
        change_id: String,
    },
    /// Rule C4: the bank rejected the recorded change.
    Rejected {
        change_id: String,
        code: String,
    },
    /// Refused before anything was recorded.
    Refused(Refusal),
    Cancelled,
    TimedOut,
}

/// The end of a flow and what the customer is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub message: CustomerMessage,
}

impl Outcome {
    pub(super) fn refused(refusal: Refusal) -> Outcome {
        Outcome {
            message: refusal.message(),
            kind: OutcomeKind::Refused(refusal),
        }
    }

    /// The refusal, when the flow refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.kind {
            OutcomeKind::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// Idle time of a session: when to warn and when to end.
#[derive(Debug, Clone)]
pub struct Idle {
    timeout: TimeDelta,
    warning: TimeDelta,
    last: Option<DateTime<Utc>>,
    warned: bool,
}

/// What the idle clock says at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleCheck {
    Fine,
    Warn { seconds_left: u64 },
    Expired,
}

impl Idle {
    pub fn new(settings: &FlowSettings) -> Idle {
        let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        Idle {
            timeout: delta(settings.idle_timeout),
            warning: delta(settings.idle_warning),
            last: None,
            warned: false,
        }
    }

    /// New idle times (rule A2: the elderly-friendly mode's, switched on
    /// or off during the session); they count from the next touch.
    pub fn set_times(&mut self, settings: &FlowSettings) {
        let fresh = Idle::new(settings);
        self.timeout = fresh.timeout;
        self.warning = fresh.warning;
    }

    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.last = Some(now);
        self.warned = false;
    }

    fn end(&self) -> Option<DateTime<Utc>> {
        self.last.map(|l| l + self.timeout)
    }

    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        let end = self.end()?;
        if !self.warned && self.warning > TimeDelta::zero() && self.warning < self.timeout {
            Some(end - self.warning)
        } else {
            Some(end)
        }
    }

    pub fn check(&mut self, now: DateTime<Utc>) -> IdleCheck {
        let Some(end) = self.end() else {
            self.touch(now);
            return IdleCheck::Fine;
        };
        if now >= end {
            return IdleCheck::Expired;
        }
        if !self.warned && self.warning > TimeDelta::zero() && now >= end - self.warning {
            self.warned = true;
            let left = (end - now).num_milliseconds().max(0) as u64;
            return IdleCheck::Warn {
                seconds_left: left.div_ceil(1000),
            };
        }
        IdleCheck::Fine
    }
}
