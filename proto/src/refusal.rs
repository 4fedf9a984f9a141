//! Why a customer flow refused or stopped, as data: the `refusal` of a
//! session's state (`docs/local-api.md`). The words the customer reads
//! are the daemon's (`kiosk::flows::messages`); this is what every client
//! can match on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a customer is sent to the counter.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "counter_reason", rename_all = "snake_case")]
pub enum CounterReason {
    /// Rule I5: the document type on file is not the card's (a record
    /// opened with a temporary ID card or another document).
    DocumentTypeMismatch,
    /// Rule I6: the name on file is not the name on the card.
    NameMismatch,
    /// Rule I3: the ID number on file does not match the card's (neither
    /// equal nor the old 15-digit form of it).
    IdNumberMismatch,
    /// The core bank has no customer with this card.
    CustomerNotFound,
    /// Rule P2: no security question is set for this customer.
    NoSecurityQuestion,
    /// Rule P2: three wrong answers (from any channel) locked
    /// self-service changes.
    Locked,
    /// Rule P5 (or `self_service.id_update` false): the bank does not allow
    /// this at self-service; `reason` is the bank's.
    NotAllowed { reason: Option<String> },
    /// The bank's record cannot be read by the kiosk (a validity date it
    /// does not understand) or the bank answered in a way the kiosk does
    /// not expect: `code` is for the technician.
    BankRecord { code: String },
}

impl fmt::Debug for CounterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())?;
        if let CounterReason::NotAllowed { reason: Some(r) } = self {
            write!(f, "({r:?})")?;
        }
        if let CounterReason::BankRecord { code } = self {
            write!(f, "({code:?})")?;
        }
        Ok(())
    }
}

impl CounterReason {
    /// `counter_document_type_mismatch`, ...
    pub fn code(&self) -> &'static str {
        match self {
            CounterReason::DocumentTypeMismatch => "counter_document_type_mismatch",
            CounterReason::NameMismatch => "counter_name_mismatch",
            CounterReason::IdNumberMismatch => "counter_id_number_mismatch",
            CounterReason::CustomerNotFound => "counter_customer_not_found",
            CounterReason::NoSecurityQuestion => "counter_no_security_question",
            CounterReason::Locked => "counter_locked",
            CounterReason::NotAllowed { .. } => "counter_not_allowed",
            CounterReason::BankRecord { .. } => "counter_bank_record",
        }
    }
}

/// Everything a flow refuses (what the customer is told is the daemon's).
///
/// Some refusals end the flow (an expired card, a counter referral, the
/// bank unreachable); others let the customer try again in the same step
/// (a wrong answer with attempts left, numbers that differ, a wrong code):
/// which is which is the flow's decision, not the message's.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// Go to the counter, and why.
    Counter(CounterReason),
    /// Rule I1: a card the kiosk does not accept.
    UnsupportedCard,
    /// Rule I1: the card could not be read (take it away and place it
    /// again).
    UnreadableCard,
    /// Rule I2: the number fails its check digit, birth date or region.
    BadCard,
    /// Rule I4: validity ended before today (branch time zone).
    ExpiredCard { valid_until: String },
    /// Rule I7: the bank already holds this validity period.
    AlreadyUpToDate,
    /// Rule I7: the bank holds a newer card than this one.
    OldCard,
    /// Rule I9: outside the update window around the old card's expiry;
    /// the dates are the window's first and last day.
    OutsideUpdateWindow { opens: String, closes: String },
    /// Rule C3: the core bank cannot be reached and the step needs it.
    BankUnreachable,
    /// Rule P1: the ID card must be read in this session first.
    CardRequired,
    /// Rule P2: a wrong answer; attempts left before the lock, when the
    /// bank said.
    WrongAnswer { attempts_left: Option<u32> },
    /// Rule P3: the two entries differ.
    NumbersDiffer,
    /// Rule P3: not an 11-digit mainland mobile number.
    InvalidNumber,
    /// Rule P3: the number is the one on file.
    SameAsOnFile,
    /// Rule P4: a wrong code; attempts left today, when the bank said.
    WrongCode { attempts_left: Option<u32> },
    /// Rule P4: the code expired; ask for a new one.
    CodeExpired,
    /// Rule P4: ten wrong codes today: locked until tomorrow.
    TooManyCodesToday,
    /// Rule P4: a new code can be sent in `retry_after_s` seconds.
    ResendTooSoon { retry_after_s: u64 },
    /// Rule P4: no more codes in this session.
    ResendLimit,
    /// Rule C4: the bank rejected the recorded change; `code` and
    /// `message` are the bank's.
    ChangeRejected { code: String, message: String },
    /// Rule C1: the change could not be recorded on this kiosk; nothing
    /// was sent to the bank.
    NotRecorded,
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Counter(reason) => write!(f, "Counter({reason:?})"),
            Refusal::WrongAnswer { attempts_left } | Refusal::WrongCode { attempts_left } => {
                write!(f, "{}(attempts_left: {attempts_left:?})", self.code())
            }
            Refusal::ChangeRejected { code, message } => {
                write!(f, "change_rejected({code:?}, {message:?})")
            }
            _ => f.write_str(self.code()),
        }
    }
}

impl Refusal {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Counter(reason) => reason.code(),
            Refusal::UnsupportedCard => "unsupported_card",
            Refusal::UnreadableCard => "unreadable_card",
            Refusal::BadCard => "bad_card",
            Refusal::ExpiredCard { .. } => "expired_card",
            Refusal::AlreadyUpToDate => "already_up_to_date",
            Refusal::OldCard => "old_card",
            Refusal::OutsideUpdateWindow { .. } => "outside_update_window",
            Refusal::BankUnreachable => "bank_unreachable",
            Refusal::CardRequired => "card_required",
            Refusal::WrongAnswer { .. } => "wrong_answer",
            Refusal::NumbersDiffer => "numbers_differ",
            Refusal::InvalidNumber => "invalid_number",
            Refusal::SameAsOnFile => "same_as_on_file",
            Refusal::WrongCode { .. } => "wrong_code",
            Refusal::CodeExpired => "code_expired",
            Refusal::TooManyCodesToday => "too_many_codes_today",
            Refusal::ResendTooSoon { .. } => "resend_too_soon",
            Refusal::ResendLimit => "resend_limit",
            Refusal::ChangeRejected { .. } => "change_rejected",
            Refusal::NotRecorded => "not_recorded",
        }
    }

    /// Is the customer sent to the counter?
    pub fn is_counter_referral(&self) -> bool {
        matches!(self, Refusal::Counter(_))
    }
}
