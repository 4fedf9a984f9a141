//! The mobile number change at a smart teller (rules P1–P7, C1, C3,
//! S1–S3) as a state machine without I/O, like [`super::id_update`]:
//! [`PhoneFlow::handle`] takes an [`Input`] and the time and returns the
//! [`Effect`]s the daemon must carry out.
//!
//! # Steps
//!
//! 1. Rule P1: nothing happens before [`Input::CardRead`] in this flow
//!    (other inputs get [`Refusal::CardRequired`]). The card is checked as
//!    for an ID update (I1, I2, I4), then [`Effect::LookUp`].
//! 2. The record must be the card's (I3, I5, I6, each a referral to the
//!    counter); rule P5: `self_service.mobile_change` false sends the
//!    customer to the counter with the bank's reason; rule P2: no security
//!    question sends them to the counter too. Otherwise
//!    [`Effect::Show`] of the security question.
//! 3. Rule P2: [`Input::AnswerGiven`] → [`Effect::CheckAnswer`] →
//!    [`Input::AnswerChecked`]: a wrong answer is told with the attempts
//!    left ([`Effect::Notice`]), `attempts_left: 0` or `423 locked` sends
//!    the customer to the counter. Then the new number's keypad.
//! 4. Rule P3: [`Input::NumberEntered`] with both entries: identical, an
//!    11-digit mainland mobile number (`1[3-9]` and nine digits), not the
//!    number on file (see below). Then [`Effect::SendCode`] to the new
//!    number.
//! 5. Rule P4: [`Input::CodeSent`] → the code's keypad;
//!    [`Input::CodeEntered`] → [`Effect::VerifyCode`] →
//!    [`Input::CodeChecked`]: wrong codes with the attempts left, expired
//!    codes (the bank's `410`, or the kiosk's own clock past
//!    `expires_in_s`) ask for a new one, `423` or `attempts_left: 0` (ten
//!    wrong codes today) end the flow. [`Input::ResendCode`] is limited by
//!    [`FlowSettings::otp_resend_interval`],
//!    [`FlowSettings::otp_max_sends`] and the bank's `429 Retry-After`.
//!    [`Input::ChangeNumber`] goes back to step 4.
//! 6. Rule P6: the confirmation with the old and the new number,
//!    masked; on [`Input::CustomerConfirmed`] [`Effect::RecordChange`]
//!    with the code's proof and `notify_old_and_new: true` (rule P7).
//! 7. The sync worker's answer: applied → done, with a slip showing both
//!    numbers masked; rejected → the bank's reason.
//!
//! # The bank unreachable (rule C3)
//!
//! A phone change needs the bank live: any transient failure of the
//! lookup, the answer check or the code steps ends the flow with
//! [`Refusal::BankUnreachable`]. Only once the code is verified and the
//! customer has confirmed is the change recorded (rule C1); if the bank
//! becomes unreachable after that, the change stays in the outbox and is
//! delivered later, but the customer is told it is **pending**, not done
//! ([`OutcomeKind::Pending`], rule P6).
//!
//! # "Differs from the number on file" (rule P3)
//!
//! The bank gives the kiosk only the masked number on file
//! (`mobile_masked`, e.g. `138****5678`). The new number is refused as
//! [`Refusal::SameAsOnFile`] when it has the masked number's length and
//! every visible digit of it at the same place: it is then almost
//! certainly the number on file (a different number sharing the first
//! three and last four digits is refused too; the customer goes to the
//! counter). When the masked form cannot be compared (another length,
//! nothing visible), the kiosk lets it pass and the bank is the judge
//! (it rejects the change).
//!
//! # Personal data (rule S2)
//!
//! The card is dropped as soon as the lookup is checked; the answer, the
//! numbers, the code and the code's proof are held in [`Zeroizing`]
//! strings and dropped when the flow finishes. `Debug` shows none of them.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use kiosk_corebank::{
    ChangeKind, CheckResult, CoreBankError, Customer, MobileChange, OtpIssued, OtpRequest,
};
use kiosk_idcard::Identity;
use kiosk_proto::{Screen, Stage};
use zeroize::Zeroizing;

use super::flow::{
    AuditNote, ChangeToRecord, Effect, Flow, FlowSettings, Idle, IdleCheck, Input, Outcome,
    OutcomeKind, Slip, row,
};
use super::id_rules::{
    BankFailure, check_card, check_record, lookup_refusal, lookup_request, masked_name,
    refusal_action, scrub,
};
use super::messages::{self, CounterReason, CustomerMessage, Explained, Refusal};
use crate::store::AuditAction;

/// `purpose` of the codes this flow asks for.
pub const OTP_PURPOSE: &str = "mobile_change";

/// Rule P6: what the customer confirms (the screen's own type).
pub use kiosk_proto::PhoneConfirmation;

/// A code the bank sent.
struct Otp {
    otp_id: String,
    expires_at: DateTime<Utc>,
}

/// The customer, once the record on file is checked: what the flow keeps
/// of them until it ends (the card itself is dropped after the check).
struct Holder {
    customer_id: Zeroizing<String>,
    masked_name: String,
    old_masked: String,
}

/// Where the flow is, with what it holds there. Rule S2: every personal
/// value lives in the state and goes (zeroized) when it is `Finished`.
enum State {
    AwaitingCard,
    LookingUp {
        card: Identity,
        masked_name: String,
    },
    AwaitingAnswer(Holder),
    CheckingAnswer(Holder),
    AwaitingNumber(Holder),
    SendingCode {
        holder: Holder,
        number: Zeroizing<String>,
        /// The code sent before, still valid if this one cannot be sent.
        previous: Option<Otp>,
    },
    AwaitingCode {
        holder: Holder,
        number: Zeroizing<String>,
        /// `None`: expired, or none could be sent yet.
        otp: Option<Otp>,
    },
    VerifyingCode {
        holder: Holder,
        number: Zeroizing<String>,
        otp: Otp,
    },
    AwaitingConfirmation {
        holder: Holder,
        number: Zeroizing<String>,
        proof: Zeroizing<String>,
    },
    Recording {
        holder: Holder,
        number: Zeroizing<String>,
    },
    AwaitingBank {
        holder: Holder,
        number: Zeroizing<String>,
        change_id: String,
    },
    Finished,
}

impl State {
    fn stage(&self) -> Stage {
        match self {
            State::AwaitingCard => Stage::AwaitingCard,
            State::LookingUp { .. } => Stage::LookingUp,
            State::AwaitingAnswer(_) => Stage::AwaitingAnswer,
            State::CheckingAnswer(_) => Stage::CheckingAnswer,
            State::AwaitingNumber(_) => Stage::AwaitingNumber,
            State::SendingCode { .. } => Stage::SendingCode,
            State::AwaitingCode { .. } => Stage::AwaitingCode,
            State::VerifyingCode { .. } => Stage::VerifyingCode,
            State::AwaitingConfirmation { .. } => Stage::AwaitingConfirmation,
            State::Recording { .. } => Stage::Recording,
            State::AwaitingBank { .. } => Stage::AwaitingBank,
            State::Finished => Stage::Finished,
        }
    }

    /// The customer, once known.
    fn holder(&self) -> Option<&Holder> {
        match self {
            State::AwaitingAnswer(h) | State::CheckingAnswer(h) | State::AwaitingNumber(h) => {
                Some(h)
            }
            State::SendingCode { holder, .. }
            | State::AwaitingCode { holder, .. }
            | State::VerifyingCode { holder, .. }
            | State::AwaitingConfirmation { holder, .. }
            | State::Recording { holder, .. }
            | State::AwaitingBank { holder, .. } => Some(holder),
            State::AwaitingCard | State::LookingUp { .. } | State::Finished => None,
        }
    }
}

/// What personal data the flow holds now (rule S2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Holding {
    card: bool,
    customer: bool,
    number: bool,
    otp: bool,
    proof: bool,
}

/// A step's result: the next state and what to do.
type Step = (State, Vec<Effect>);

/// The mobile number change flow (module docs).
pub struct PhoneFlow {
    settings: FlowSettings,
    state: State,
    idle: Idle,
    /// Rule P4: codes sent in this session, and when the last one was.
    sends: u32,
    last_sent_at: Option<DateTime<Utc>>,
    /// The bank's `Retry-After`, as a time.
    bank_retry_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for PhoneFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneFlow")
            .field("stage", &self.state.stage())
            .field("old_masked", &self.state.holder().map(|h| &h.old_masked))
            .field("sends", &self.sends)
            .field("holding", &self.holding())
            .finish_non_exhaustive()
    }
}

/// Rule P3: `1[3-9]` then nine digits.
pub fn is_mainland_mobile(number: &str) -> bool {
    let b = number.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

/// Rule P3: could `number` be the number masked as `masked` (same length,
/// every visible digit in place)? `false` when the masked form shows no
/// digit or has another length: the kiosk cannot tell (module docs).
pub fn may_be_on_file(number: &str, masked: &str) -> bool {
    let masked = masked.trim();
    if masked.chars().count() != number.chars().count()
        || !masked.chars().any(|c| c.is_ascii_digit())
    {
        return false;
    }
    masked
        .chars()
        .zip(number.chars())
        .all(|(m, n)| !m.is_ascii_digit() || m == n)
}

/// An OTP's life as the kiosk counts it: the bank's `expires_in_s`, at
/// most this (codes last minutes; an answer of years is nonsense and must
/// not overflow the clock).
const MAX_OTP_LIFE: Duration = Duration::from_secs(3600);
/// The longest `Retry-After` the kiosk waits before a code's resend.
const MAX_RESEND_WAIT: Duration = Duration::from_secs(3600);

/// `now + d`, saturating instead of overflowing the calendar.
fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn secs_until(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    ((to - from).num_milliseconds().max(0) as u64).div_ceil(1000)
}

impl Flow for PhoneFlow {
    fn name(&self) -> &'static str {
        "phone_change"
    }

    fn stage(&self) -> Stage {
        self.state.stage()
    }

    fn idle(&self) -> &Idle {
        &self.idle
    }

    fn idle_mut(&mut self) -> &mut Idle {
        &mut self.idle
    }

    fn step(&mut self, input: Input, now: DateTime<Utc>) -> Vec<Effect> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let (state, effects) = self.transition(state, input, now);
        self.state = state;
        effects
    }
}

impl PhoneFlow {
    pub fn new(settings: FlowSettings) -> PhoneFlow {
        PhoneFlow {
            idle: Idle::new(&settings),
            settings,
            state: State::AwaitingCard,
            sends: 0,
            last_sent_at: None,
            bank_retry_at: None,
        }
    }

    fn holding(&self) -> Holding {
        let mut h = Holding {
            customer: self.state.holder().is_some(),
            ..Holding::default()
        };
        match &self.state {
            State::LookingUp { .. } => h.card = true,
            State::SendingCode { previous, .. } => (h.number, h.otp) = (true, previous.is_some()),
            State::AwaitingCode { otp, .. } => (h.number, h.otp) = (true, otp.is_some()),
            State::VerifyingCode { .. } => (h.number, h.otp) = (true, true),
            State::AwaitingConfirmation { .. } => (h.number, h.proof) = (true, true),
            State::Recording { .. } | State::AwaitingBank { .. } => h.number = true,
            _ => {}
        }
        h
    }

    fn transition(&mut self, state: State, input: Input, now: DateTime<Utc>) -> Step {
        match (state, input) {
            (state, Input::Tick) => self.tick(state, now),
            (State::AwaitingCard, Input::CardRead { identity, .. }) => {
                self.card_read(identity, now)
            }
            (State::AwaitingCard, Input::CardUnsupported) => {
                self.refuse(None, Refusal::UnsupportedCard)
            }
            (State::AwaitingCard, Input::CardUnreadable) => {
                self.refuse(None, Refusal::UnreadableCard)
            }
            (state @ State::Recording { .. }, Input::CustomerCancelled) => (state, Vec::new()),
            (
                State::AwaitingBank {
                    holder,
                    number,
                    change_id,
                },
                Input::CustomerCancelled | Input::ChangeQueued,
            ) => self.pending(&holder, &number, change_id, now),
            (_, Input::CustomerCancelled) => finish(Outcome {
                kind: OutcomeKind::Cancelled,
                message: messages::cancelled(),
            }),
            // Rule P1: nothing before the card.
            (State::AwaitingCard, _) => (
                State::AwaitingCard,
                vec![Effect::Notice(Refusal::CardRequired)],
            ),
            (State::LookingUp { card, masked_name }, Input::LookupAnswered(answer)) => {
                self.looked_up(card, masked_name, answer)
            }
            (State::AwaitingAnswer(holder), Input::AnswerGiven(answer)) => {
                let effects = vec![Effect::CheckAnswer {
                    customer_id: holder.customer_id.to_string(),
                    answer,
                }];
                (State::CheckingAnswer(holder), effects)
            }
            (State::CheckingAnswer(holder), Input::AnswerChecked(result)) => {
                self.answer_checked(holder, result)
            }
            (State::AwaitingNumber(holder), Input::NumberEntered { first, second }) => {
                self.number_entered(holder, first, second, now)
            }
            (
                State::SendingCode {
                    holder,
                    number,
                    previous,
                },
                Input::CodeSent(result),
            ) => self.code_sent(holder, number, previous, result, now),
            (
                State::AwaitingCode {
                    holder,
                    number,
                    otp,
                },
                Input::ResendCode,
            ) => self.resend(holder, number, otp, now),
            (State::AwaitingCode { holder, .. }, Input::ChangeNumber) => (
                State::AwaitingNumber(holder),
                vec![Effect::Show(Screen::NewNumber)],
            ),
            (
                State::AwaitingCode {
                    holder,
                    number,
                    otp,
                },
                Input::CodeEntered(code),
            ) => code_entered(holder, number, otp, code, now),
            (
                State::VerifyingCode {
                    holder,
                    number,
                    otp,
                },
                Input::CodeChecked(result),
            ) => self.code_checked(holder, number, otp, result),
            (
                State::AwaitingConfirmation {
                    holder,
                    number,
                    proof,
                },
                Input::CustomerConfirmed,
            ) => confirmed(self.new_masked(&number), holder, number, &proof),
            (State::Recording { holder, number }, Input::ChangeRecorded { change_id }) => (
                State::AwaitingBank {
                    holder,
                    number,
                    change_id,
                },
                Vec::new(),
            ),
            (State::Recording { holder, .. }, Input::ChangeRecordFailed) => {
                self.refuse(Some(&holder), Refusal::NotRecorded)
            }
            (
                State::AwaitingBank {
                    holder,
                    number,
                    change_id,
                },
                Input::ChangeDelivered { status, .. },
            ) => {
                let new_masked = self.new_masked(&number);
                let kind = OutcomeKind::Applied {
                    change_id: change_id.clone(),
                    status,
                };
                self.end_with_slip(
                    &holder,
                    &new_masked,
                    &change_id,
                    kind,
                    messages::mobile_changed(&new_masked),
                    "已变更 Changed",
                    now,
                )
            }
            (State::AwaitingBank { change_id, .. }, Input::ChangeRejected { code, message }) => {
                let refusal = Refusal::ChangeRejected {
                    code: code.clone(),
                    message,
                };
                finish(Outcome {
                    message: refusal.message(),
                    kind: OutcomeKind::Rejected { change_id, code },
                })
            }
            // Out of turn: ignored.
            (state, _) => (state, Vec::new()),
        }
    }

    fn tick(&mut self, state: State, now: DateTime<Utc>) -> Step {
        if matches!(state, State::Recording { .. }) {
            return (state, Vec::new());
        }
        match (self.idle.check(now), state) {
            (IdleCheck::Fine, state) => (state, Vec::new()),
            (IdleCheck::Warn { seconds_left }, state) => (
                state,
                vec![Effect::IdleWarning(messages::idle_warning(seconds_left))],
            ),
            (
                IdleCheck::Expired,
                State::AwaitingBank {
                    holder,
                    number,
                    change_id,
                },
            ) => self.pending(&holder, &number, change_id, now),
            (IdleCheck::Expired, _) => finish(Outcome {
                kind: OutcomeKind::TimedOut,
                message: messages::timed_out(),
            }),
        }
    }

    fn new_masked(&self, number: &str) -> String {
        self.settings.mask.phone(number)
    }

    fn card_read(&mut self, identity: Identity, now: DateTime<Utc>) -> Step {
        let mask = &self.settings.mask;
        let masked_name = masked_name(&identity, mask);
        let mut effects = vec![audit(
            None,
            AuditAction::CardRead,
            format!(
                "smart teller, mobile change: {:?} {} {}",
                identity.card_type,
                mask.id_number(&identity.number),
                masked_name
            ),
        )];
        if let Err(refusal) = check_card(&identity, self.settings.today(now)) {
            let (state, refused) = self.refuse(None, refusal);
            effects.extend(refused);
            return (state, effects);
        }
        effects.push(Effect::LookUp(lookup_request(&identity)));
        (
            State::LookingUp {
                card: identity,
                masked_name,
            },
            effects,
        )
    }

    fn looked_up(
        &mut self,
        card: Identity,
        masked_name: String,
        answer: Result<Customer, BankFailure>,
    ) -> Step {
        let mut customer = match answer {
            Ok(c) => c,
            Err(e) => {
                let mut effects = vec![audit(
                    None,
                    AuditAction::Lookup,
                    format!("lookup failed: {}", e.code().unwrap_or("transport")),
                )];
                let (state, refused) = self.refuse(None, lookup_refusal(&e));
                effects.extend(refused);
                return (state, effects);
            }
        };
        // Rule S2: the card is not needed after this check.
        let checked = check_record(&card, &customer);
        drop(card);
        let holder = Holder {
            customer_id: Zeroizing::new(std::mem::take(&mut customer.customer_id)),
            masked_name,
            old_masked: customer.mobile_masked.clone(),
        };
        let question = customer.security_question.clone().map(Zeroizing::new);
        let self_service = customer.self_service.clone();
        scrub(&mut customer);
        let mut effects = vec![audit(
            Some(&holder),
            AuditAction::Lookup,
            "customer found (mobile change)",
        )];
        let refusal = if let Err(reason) = checked {
            Some(reason)
        } else if !self_service.mobile_change {
            // Rule P5.
            Some(CounterReason::NotAllowed {
                reason: self_service.reason,
            })
        } else if question.as_ref().is_none_or(|q| q.trim().is_empty()) {
            // Rule P2.
            Some(CounterReason::NoSecurityQuestion)
        } else {
            None
        };
        match (refusal, question) {
            (Some(reason), _) => {
                let (state, refused) = self.refuse(Some(&holder), Refusal::Counter(reason));
                effects.extend(refused);
                (state, effects)
            }
            (None, Some(question)) => {
                effects.push(Effect::Show(Screen::Question {
                    question: question.to_string(),
                }));
                (State::AwaitingAnswer(holder), effects)
            }
            // Cannot happen (no question is a refusal above).
            (None, None) => (State::AwaitingAnswer(holder), effects),
        }
    }

    /// A failure of a step that needs the bank live (rule C3).
    fn bank_failed(&mut self, holder: &Holder, error: &BankFailure) -> Step {
        let refusal = match error {
            e if e.is_transient() => Refusal::BankUnreachable,
            other => Refusal::Counter(CounterReason::BankRecord {
                code: other.code().unwrap_or("bank_error").to_string(),
            }),
        };
        self.refuse(Some(holder), refusal)
    }

    /// Rule P4: ten wrong codes today; `detail` for the audit trail.
    fn codes_locked(&mut self, holder: &Holder, detail: &str) -> Step {
        let effects = vec![audit(Some(holder), AuditAction::VerificationFailed, detail)];
        self.refuse_after(effects, holder, Refusal::TooManyCodesToday)
    }

    /// End with a refusal of `refusal`, audited (rule S3), after what is
    /// in `effects`.
    fn refuse_after(
        &mut self,
        mut effects: Vec<Effect>,
        holder: &Holder,
        refusal: Refusal,
    ) -> Step {
        let (state, refused) = self.refuse(Some(holder), refusal);
        effects.extend(refused);
        (state, effects)
    }

    fn answer_checked(&mut self, holder: Holder, result: Result<CheckResult, BankFailure>) -> Step {
        match result {
            Ok(r) if r.ok => (
                State::AwaitingNumber(holder),
                vec![Effect::Show(Screen::NewNumber)],
            ),
            Ok(r) if r.attempts_left == Some(0) => {
                let effects = vec![audit(
                    Some(&holder),
                    AuditAction::VerificationFailed,
                    "wrong security answer: locked (rule P2)",
                )];
                self.refuse_after(effects, &holder, Refusal::Counter(CounterReason::Locked))
            }
            Ok(r) => {
                let effects = vec![
                    audit(
                        Some(&holder),
                        AuditAction::VerificationFailed,
                        format!(
                            "wrong security answer (rule P2), attempts left {:?}",
                            r.attempts_left
                        ),
                    ),
                    Effect::Notice(Refusal::WrongAnswer {
                        attempts_left: r.attempts_left,
                    }),
                ];
                (State::AwaitingAnswer(holder), effects)
            }
            Err(CoreBankError::Locked) => {
                self.refuse(Some(&holder), Refusal::Counter(CounterReason::Locked))
            }
            Err(e) => self.bank_failed(&holder, &e),
        }
    }

    fn number_entered(
        &mut self,
        holder: Holder,
        first: Zeroizing<String>,
        second: Zeroizing<String>,
        now: DateTime<Utc>,
    ) -> Step {
        // Rule P3, in the order the customer can act on.
        let problem = if *first != *second {
            Some(Refusal::NumbersDiffer)
        } else if !is_mainland_mobile(&first) {
            Some(Refusal::InvalidNumber)
        } else if may_be_on_file(&first, &holder.old_masked) {
            Some(Refusal::SameAsOnFile)
        } else {
            None
        };
        if let Some(refusal) = problem {
            return (State::AwaitingNumber(holder), vec![Effect::Notice(refusal)]);
        }
        self.send_code(holder, first, None, now)
    }

    fn send_code(
        &mut self,
        holder: Holder,
        number: Zeroizing<String>,
        previous: Option<Otp>,
        now: DateTime<Utc>,
    ) -> Step {
        let request = OtpRequest {
            customer_id: holder.customer_id.to_string(),
            mobile: number.to_string(),
            purpose: OTP_PURPOSE.into(),
        };
        self.sends += 1;
        self.last_sent_at = Some(now);
        (
            State::SendingCode {
                holder,
                number,
                previous,
            },
            vec![Effect::SendCode(request)],
        )
    }

    /// When the next code may be sent.
    fn resend_at(&self) -> Option<DateTime<Utc>> {
        let interval = TimeDelta::from_std(self.settings.otp_resend_interval).unwrap_or_default();
        let ours = self.last_sent_at.map(|t| t + interval);
        match (ours, self.bank_retry_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn code_sent(
        &mut self,
        holder: Holder,
        number: Zeroizing<String>,
        previous: Option<Otp>,
        result: Result<OtpIssued, BankFailure>,
        now: DateTime<Utc>,
    ) -> Step {
        match result {
            Ok(issued) => {
                let life = Duration::from_secs(issued.expires_in_s).min(MAX_OTP_LIFE);
                let otp = Otp {
                    otp_id: issued.otp_id,
                    expires_at: after(now, life),
                };
                let effects = vec![Effect::Show(Screen::Code {
                    masked_mobile: self.new_masked(&number),
                    expires_in_s: life.as_secs(),
                    resend_in_s: self.resend_at().map_or(0, |t| secs_until(now, t)),
                })];
                (
                    State::AwaitingCode {
                        holder,
                        number,
                        otp: Some(otp),
                    },
                    effects,
                )
            }
            Err(CoreBankError::RateLimited { retry_after }) => {
                // Not sent: it does not count, and the bank says when.
                self.sends = self.sends.saturating_sub(1);
                let wait = retry_after
                    .unwrap_or(self.settings.otp_resend_interval)
                    .min(MAX_RESEND_WAIT);
                self.bank_retry_at = Some(after(now, wait));
                (
                    State::AwaitingCode {
                        holder,
                        number,
                        otp: previous,
                    },
                    vec![Effect::Notice(Refusal::ResendTooSoon {
                        retry_after_s: wait.as_secs().max(1),
                    })],
                )
            }
            Err(CoreBankError::Locked) => {
                self.codes_locked(&holder, "code refused: ten wrong codes today (rule P4)")
            }
            Err(e) => self.bank_failed(&holder, &e),
        }
    }

    fn resend(
        &mut self,
        holder: Holder,
        number: Zeroizing<String>,
        otp: Option<Otp>,
        now: DateTime<Utc>,
    ) -> Step {
        let refusal = match self.resend_at().filter(|at| now < *at) {
            Some(at) => Some(Refusal::ResendTooSoon {
                retry_after_s: secs_until(now, at),
            }),
            None if self.sends >= self.settings.otp_max_sends => Some(Refusal::ResendLimit),
            None => None,
        };
        match refusal {
            Some(refusal) => (
                State::AwaitingCode {
                    holder,
                    number,
                    otp,
                },
                vec![Effect::Notice(refusal)],
            ),
            None => self.send_code(holder, number, otp, now),
        }
    }

    fn code_checked(
        &mut self,
        holder: Holder,
        number: Zeroizing<String>,
        otp: Otp,
        result: Result<CheckResult, BankFailure>,
    ) -> Step {
        match result {
            Ok(mut r) if r.ok => {
                let Some(proof) = r.proof.take().map(Zeroizing::new) else {
                    return self.refuse(
                        Some(&holder),
                        Refusal::Counter(CounterReason::BankRecord {
                            code: "otp_proof_missing".into(),
                        }),
                    );
                };
                let effects = vec![Effect::Show(Screen::ConfirmPhone(PhoneConfirmation {
                    old_masked: holder.old_masked.clone(),
                    new_masked: self.new_masked(&number),
                }))];
                (
                    State::AwaitingConfirmation {
                        holder,
                        number,
                        proof,
                    },
                    effects,
                )
            }
            Ok(r) if r.attempts_left == Some(0) => {
                self.codes_locked(&holder, "wrong code: ten wrong codes today (rule P4)")
            }
            Ok(r) => {
                let effects = vec![
                    audit(
                        Some(&holder),
                        AuditAction::VerificationFailed,
                        format!("wrong code (rule P4), attempts left {:?}", r.attempts_left),
                    ),
                    Effect::Notice(Refusal::WrongCode {
                        attempts_left: r.attempts_left,
                    }),
                ];
                (
                    State::AwaitingCode {
                        holder,
                        number,
                        otp: Some(otp),
                    },
                    effects,
                )
            }
            Err(CoreBankError::Expired) => (
                State::AwaitingCode {
                    holder,
                    number,
                    otp: None,
                },
                vec![Effect::Notice(Refusal::CodeExpired)],
            ),
            Err(CoreBankError::Locked) => {
                self.codes_locked(&holder, "code refused: ten wrong codes today (rule P4)")
            }
            Err(e) => self.bank_failed(&holder, &e),
        }
    }

    /// Rule P6: recorded, not yet applied.
    fn pending(
        &mut self,
        holder: &Holder,
        number: &str,
        change_id: String,
        now: DateTime<Utc>,
    ) -> Step {
        let kind = OutcomeKind::Pending {
            change_id: change_id.clone(),
        };
        self.end_with_slip(
            holder,
            &self.new_masked(number),
            &change_id,
            kind,
            messages::mobile_pending(),
            "已提交，待银行确认 Submitted, pending",
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn end_with_slip(
        &self,
        holder: &Holder,
        new_masked: &str,
        change_id: &str,
        kind: OutcomeKind,
        message: CustomerMessage,
        status: &str,
        now: DateTime<Utc>,
    ) -> Step {
        let mut effects = Vec::new();
        if self.settings.print_slip {
            effects.push(Effect::PrintSlip(Slip {
                title: "手机号码变更 Mobile number change".into(),
                rows: vec![
                    row("姓名 Name", holder.masked_name.clone()),
                    row("原手机号 Old number", holder.old_masked.clone()),
                    row("新手机号 New number", new_masked),
                    row("状态 Status", status),
                    row("流水号 Reference", change_id),
                    row("时间 Time", self.settings.local_time(now)),
                ],
            }));
        }
        let (state, finished) = finish(Outcome { kind, message });
        effects.extend(finished);
        (state, effects)
    }

    fn refuse(&mut self, holder: Option<&Holder>, refusal: Refusal) -> Step {
        let mut effects = vec![audit(
            holder,
            refusal_action(&refusal),
            format!("mobile change refused: {}", refusal.code()),
        )];
        let (state, finished) = finish(Outcome::refused(refusal));
        effects.extend(finished);
        (state, effects)
    }
}

/// An audit record (rule S3) about `holder` when known.
fn audit(holder: Option<&Holder>, action: AuditAction, detail: impl Into<String>) -> Effect {
    Effect::Audit(AuditNote {
        action,
        subject: holder.map(|h| h.customer_id.to_string()),
        detail: detail.into(),
    })
}

fn code_entered(
    holder: Holder,
    number: Zeroizing<String>,
    otp: Option<Otp>,
    code: Zeroizing<String>,
    now: DateTime<Utc>,
) -> Step {
    match otp {
        Some(otp) if now < otp.expires_at => {
            let effects = vec![Effect::VerifyCode {
                otp_id: otp.otp_id.clone(),
                code,
            }];
            (
                State::VerifyingCode {
                    holder,
                    number,
                    otp,
                },
                effects,
            )
        }
        // None sent, or expired: it goes.
        _ => (
            State::AwaitingCode {
                holder,
                number,
                otp: None,
            },
            vec![Effect::Notice(Refusal::CodeExpired)],
        ),
    }
}

fn confirmed(new_masked: String, holder: Holder, number: Zeroizing<String>, proof: &str) -> Step {
    let kind = ChangeKind::Mobile {
        mobile: MobileChange {
            new_mobile: number.to_string(),
            otp_proof: proof.to_string(),
            // Rule P7.
            notify_old_and_new: true,
        },
    };
    let audit_detail = format!(
        "mobile change confirmed by the customer at the smart teller (rule P6): {} → {}",
        holder.old_masked, new_masked
    );
    let effects = vec![Effect::RecordChange(ChangeToRecord {
        customer_id: holder.customer_id.to_string(),
        kind,
        audit_detail,
    })];
    (State::Recording { holder, number }, effects)
}

/// Rule S2: the state that held the customer's data is dropped (zeroized)
/// as the flow finishes.
fn finish(outcome: Outcome) -> Step {
    (State::Finished, vec![Effect::Finish(outcome)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::id_update::tests::{customer_for, evidence, utc};
    use kiosk_corebank::IdType;
    use kiosk_idcard::CardType;
    use kiosk_proto::Delivery;

    const NOW: &str = "2025-03-14T02:00:00Z";
    const NEW: &str = "13912345678";

    fn now() -> DateTime<Utc> {
        utc(NOW)
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        now() + TimeDelta::seconds(seconds)
    }

    fn z(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_string())
    }

    fn card() -> Identity {
        Identity::sample(CardType::Resident)
    }

    fn settings() -> FlowSettings {
        FlowSettings {
            print_slip: true,
            ..FlowSettings::default()
        }
    }

    fn finish(effects: &[Effect]) -> &Outcome {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Finish(o) => Some(o),
                _ => None,
            })
            .unwrap_or_else(|| panic!("the flow finished: {effects:?}"))
    }

    fn refusal(effects: &[Effect]) -> Refusal {
        finish(effects).refusal().expect("refused").clone()
    }

    fn notice(effects: &[Effect]) -> Refusal {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Notice(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("a notice: {effects:?}"))
    }

    fn read_card(flow: &mut PhoneFlow) -> Vec<Effect> {
        flow.handle(
            Input::CardRead {
                identity: card(),
                evidence: evidence(),
            },
            now(),
        )
    }

    /// Card read and looked up with `customer`.
    fn looked_up(customer: Customer) -> (PhoneFlow, Vec<Effect>) {
        let mut flow = PhoneFlow::new(settings());
        let effects = read_card(&mut flow);
        assert!(
            matches!(effects.last(), Some(Effect::LookUp(_))),
            "{effects:?}"
        );
        let effects = flow.handle(Input::LookupAnswered(Ok(customer)), now());
        (flow, effects)
    }

    fn at_question() -> PhoneFlow {
        let (flow, effects) = looked_up(customer_for(&card()));
        assert_eq!(
            effects.last(),
            Some(&Effect::Show(Screen::Question {
                question: "我母亲的名字?".into()
            }))
        );
        assert_eq!(flow.stage(), Stage::AwaitingAnswer);
        flow
    }

    fn check(ok: bool, attempts_left: Option<u32>, proof: Option<&str>) -> CheckResult {
        CheckResult {
            ok,
            attempts_left,
            proof: proof.map(str::to_string),
        }
    }

    fn at_number() -> PhoneFlow {
        let mut flow = at_question();
        let effects = flow.handle(Input::AnswerGiven(z("李四")), now());
        assert!(
            matches!(&effects[..], [Effect::CheckAnswer { customer_id, answer }]
                if customer_id == "C000123" && answer.as_str() == "李四"),
            "{effects:?}"
        );
        let effects = flow.handle(Input::AnswerChecked(Ok(check(true, None, None))), now());
        assert_eq!(effects, vec![Effect::Show(Screen::NewNumber)]);
        flow
    }

    fn enter(flow: &mut PhoneFlow, first: &str, second: &str, when: DateTime<Utc>) -> Vec<Effect> {
        flow.handle(
            Input::NumberEntered {
                first: z(first),
                second: z(second),
            },
            when,
        )
    }

    fn issued() -> OtpIssued {
        OtpIssued {
            otp_id: "otp-1".into(),
            expires_in_s: 300,
        }
    }

    fn at_code() -> PhoneFlow {
        let mut flow = at_number();
        let effects = enter(&mut flow, NEW, NEW, now());
        assert!(
            matches!(&effects[..], [Effect::SendCode(r)] if r.mobile == NEW),
            "{effects:?}"
        );
        let effects = flow.handle(Input::CodeSent(Ok(issued())), now());
        assert_eq!(
            effects,
            vec![Effect::Show(Screen::Code {
                masked_mobile: "139****5678".into(),
                expires_in_s: 300,
                resend_in_s: 60,
            })]
        );
        flow
    }

    /// The bank's numbers are not trusted to fit the clock: an OTP that
    /// "expires" in 2^63 seconds or a `Retry-After` of centuries is
    /// clamped, never a panic (chrono's `TimeDelta::seconds` and
    /// `DateTime + TimeDelta` panic on overflow).
    #[test]
    fn huge_expiry_and_retry_after_from_the_bank_do_not_panic() {
        for expires_in_s in [u64::MAX, i64::MAX as u64, 1 << 60, 1 << 50] {
            let mut flow = at_number();
            enter(&mut flow, NEW, NEW, now());
            let effects = flow.handle(
                Input::CodeSent(Ok(OtpIssued {
                    otp_id: "otp-1".into(),
                    expires_in_s,
                })),
                now(),
            );
            assert!(
                matches!(&effects[..], [Effect::Show(Screen::Code { .. })]),
                "{effects:?}"
            );
            // The code is still checked, well inside its (clamped) life.
            let effects = flow.handle(Input::CodeEntered(z("123456")), at(10));
            assert!(
                matches!(&effects[..], [Effect::VerifyCode { .. }]),
                "{effects:?}"
            );
        }
        let mut flow = at_number();
        enter(&mut flow, NEW, NEW, now());
        let effects = flow.handle(
            Input::CodeSent(Err(CoreBankError::RateLimited {
                retry_after: Some(Duration::MAX),
            })),
            now(),
        );
        assert!(
            matches!(
                &effects[..],
                [Effect::Notice(Refusal::ResendTooSoon { .. })]
            ),
            "{effects:?}"
        );
        assert!(flow.next_wakeup().is_some());
    }

    fn at_confirm() -> PhoneFlow {
        let mut flow = at_code();
        let effects = flow.handle(Input::CodeEntered(z("123456")), at(10));
        assert!(
            matches!(&effects[..], [Effect::VerifyCode { otp_id, code }]
                if otp_id == "otp-1" && code.as_str() == "123456"),
            "{effects:?}"
        );
        let effects = flow.handle(
            Input::CodeChecked(Ok(check(true, None, Some("proof-1")))),
            at(11),
        );
        assert_eq!(
            effects,
            vec![Effect::Show(Screen::ConfirmPhone(PhoneConfirmation {
                old_masked: "138****5678".into(),
                new_masked: "139****5678".into(),
            }))]
        );
        flow
    }

    fn at_bank() -> PhoneFlow {
        let mut flow = at_confirm();
        flow.handle(Input::CustomerConfirmed, at(20));
        flow.handle(
            Input::ChangeRecorded {
                change_id: "ch-9".into(),
            },
            at(21),
        );
        assert_eq!(flow.stage(), Stage::AwaitingBank);
        flow
    }

    #[test]
    fn rule_p1_nothing_happens_before_the_card_is_read() {
        let mut flow = PhoneFlow::new(settings());
        for input in [
            Input::AnswerGiven(z("李四")),
            Input::NumberEntered {
                first: z(NEW),
                second: z(NEW),
            },
            Input::CodeEntered(z("123456")),
            Input::CustomerConfirmed,
            Input::LookupAnswered(Ok(customer_for(&card()))),
        ] {
            let effects = flow.handle(input, now());
            assert_eq!(effects, vec![Effect::Notice(Refusal::CardRequired)]);
            assert_eq!(flow.stage(), Stage::AwaitingCard);
        }
        assert!(matches!(
            read_card(&mut flow).last(),
            Some(Effect::LookUp(_))
        ));
    }

    #[test]
    fn rule_p1_the_card_must_be_valid() {
        let mut flow = PhoneFlow::new(settings());
        let mut identity = card();
        identity.valid_until = kiosk_idcard::Validity::Until(
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
        );
        let effects = flow.handle(
            Input::CardRead {
                identity,
                evidence: evidence(),
            },
            now(),
        );
        assert!(matches!(refusal(&effects), Refusal::ExpiredCard { .. }));
        let mut flow = PhoneFlow::new(settings());
        let effects = flow.handle(Input::CardUnsupported, now());
        assert_eq!(refusal(&effects), Refusal::UnsupportedCard);
    }

    #[test]
    fn rule_i5_phone_document_type_mismatch_is_sent_to_the_counter() {
        let mut customer = customer_for(&card());
        customer.id_type = IdType::Temporary;
        let (flow, effects) = looked_up(customer);
        let r = refusal(&effects);
        assert_eq!(r, Refusal::Counter(CounterReason::DocumentTypeMismatch));
        assert!(r.message().en.contains("document type"));
        assert!(flow.is_finished());
    }

    #[test]
    fn rule_i6_phone_name_mismatch_is_sent_to_the_counter_and_audited() {
        let mut customer = customer_for(&card());
        customer.name = "李四".into();
        let (_, effects) = looked_up(customer);
        let r = refusal(&effects);
        assert_eq!(r, Refusal::Counter(CounterReason::NameMismatch));
        assert!(r.message().zh.contains("姓名"));
        assert!(effects.iter().any(|e| matches!(e, Effect::Audit(a)
            if a.action == AuditAction::SentToCounter && a.detail.contains("counter_name_mismatch"))));
    }

    #[test]
    fn rule_p5_not_allowed_is_sent_to_the_counter_with_the_banks_reason() {
        let mut customer = customer_for(&card());
        customer.self_service.mobile_change = false;
        customer.self_service.reason = Some("账户受限，请到柜台".into());
        let (_, effects) = looked_up(customer);
        let r = refusal(&effects);
        assert_eq!(
            r,
            Refusal::Counter(CounterReason::NotAllowed {
                reason: Some("账户受限，请到柜台".into())
            })
        );
        let m = finish(&effects).message.clone();
        assert_eq!(m.code, "counter_not_allowed");
        assert!(m.zh.contains("账户受限") && m.en.contains("账户受限"));
    }

    #[test]
    fn rule_p2_no_security_question_is_sent_to_the_counter() {
        for question in [None, Some("  ".to_string())] {
            let mut customer = customer_for(&card());
            customer.security_question = question;
            let (_, effects) = looked_up(customer);
            let r = refusal(&effects);
            assert_eq!(r, Refusal::Counter(CounterReason::NoSecurityQuestion));
            assert!(r.message().en.contains("no security question"));
            assert_eq!(r.message().code, "counter_no_security_question");
        }
    }

    #[test]
    fn rule_p2_wrong_answer_tells_the_attempts_left() {
        let mut flow = at_question();
        flow.handle(Input::AnswerGiven(z("王五")), now());
        let effects = flow.handle(Input::AnswerChecked(Ok(check(false, Some(2), None))), now());
        assert_eq!(
            notice(&effects),
            Refusal::WrongAnswer {
                attempts_left: Some(2)
            }
        );
        assert!(effects.iter().any(|e| matches!(e, Effect::Audit(a)
            if a.action == AuditAction::VerificationFailed)));
        assert_eq!(flow.stage(), Stage::AwaitingAnswer);
        // Answer again, right this time.
        flow.handle(Input::AnswerGiven(z("李四")), now());
        let effects = flow.handle(Input::AnswerChecked(Ok(check(true, None, None))), now());
        assert_eq!(effects, vec![Effect::Show(Screen::NewNumber)]);
    }

    #[test]
    fn rule_p2_locked_after_three_wrong_answers_is_sent_to_the_counter() {
        // The third wrong answer...
        let mut flow = at_question();
        flow.handle(Input::AnswerGiven(z("王五")), now());
        let effects = flow.handle(Input::AnswerChecked(Ok(check(false, Some(0), None))), now());
        let r = refusal(&effects);
        assert_eq!(r, Refusal::Counter(CounterReason::Locked));
        assert!(r.message().en.contains("locked"));
        // ... or locked already (423, other channels counted).
        let mut flow = at_question();
        flow.handle(Input::AnswerGiven(z("王五")), now());
        let effects = flow.handle(Input::AnswerChecked(Err(CoreBankError::Locked)), now());
        assert_eq!(refusal(&effects), Refusal::Counter(CounterReason::Locked));
        assert_eq!(finish(&effects).message.code, "counter_locked");
    }

    #[test]
    fn rule_p3_numbers_must_match() {
        let mut flow = at_number();
        let effects = enter(&mut flow, NEW, "13912345679", now());
        assert_eq!(effects, vec![Effect::Notice(Refusal::NumbersDiffer)]);
        assert_eq!(flow.stage(), Stage::AwaitingNumber);
        assert!(matches!(
            enter(&mut flow, NEW, NEW, now()).as_slice(),
            [Effect::SendCode(_)]
        ));
    }

    #[test]
    fn rule_p3_number_must_be_a_mainland_mobile() {
        let mut flow = at_number();
        for bad in [
            "12912345678",
            "1391234567",
            "139123456789",
            "+8613912345",
            "1391234567a",
            "",
        ] {
            assert_eq!(
                enter(&mut flow, bad, bad, now()),
                vec![Effect::Notice(Refusal::InvalidNumber)],
                "{bad}"
            );
        }
        for good in ["13012345678", "19999999999", "15000000000"] {
            assert!(is_mainland_mobile(good), "{good}");
        }
    }

    #[test]
    fn rule_p3_number_must_differ_from_the_one_on_file() {
        // On file: 138****5678.
        let mut flow = at_number();
        assert_eq!(
            enter(&mut flow, "13800005678", "13800005678", now()),
            vec![Effect::Notice(Refusal::SameAsOnFile)]
        );
        assert!(may_be_on_file("13812345678", "138****5678"));
        assert!(!may_be_on_file("13912345678", "138****5678"));
        assert!(!may_be_on_file("13812345679", "138****5678"));
        // Nothing to compare: the bank decides.
        assert!(!may_be_on_file("13812345678", "***********"));
        assert!(!may_be_on_file("13812345678", "138****567"));
    }

    #[test]
    fn rule_p4_code_is_sent_to_the_new_number_and_verified() {
        let mut flow = at_number();
        let effects = enter(&mut flow, NEW, NEW, now());
        assert_eq!(
            effects,
            vec![Effect::SendCode(OtpRequest {
                customer_id: "C000123".into(),
                mobile: NEW.into(),
                purpose: "mobile_change".into(),
            })]
        );
        let mut flow = at_confirm();
        assert_eq!(flow.stage(), Stage::AwaitingConfirmation);
        assert!(flow.holding().proof);
        assert!(flow.handle(Input::ResendCode, now()).is_empty());
    }

    #[test]
    fn rule_p4_wrong_code_tells_the_attempts_left() {
        let mut flow = at_code();
        flow.handle(Input::CodeEntered(z("000000")), at(5));
        let effects = flow.handle(Input::CodeChecked(Ok(check(false, Some(7), None))), at(6));
        let r = notice(&effects);
        assert_eq!(
            r,
            Refusal::WrongCode {
                attempts_left: Some(7)
            }
        );
        assert!(r.message().en.contains("7 attempts left today"));
        assert_eq!(flow.stage(), Stage::AwaitingCode);
    }

    #[test]
    fn rule_p4_expired_code_asks_for_a_new_one() {
        // The bank says so (410).
        let mut flow = at_code();
        flow.handle(Input::CodeEntered(z("123456")), at(5));
        let effects = flow.handle(Input::CodeChecked(Err(CoreBankError::Expired)), at(6));
        assert_eq!(effects, vec![Effect::Notice(Refusal::CodeExpired)]);
        assert_eq!(flow.stage(), Stage::AwaitingCode);
        // The kiosk's clock says so: not even sent to the bank.
        let mut flow = at_code();
        let effects = flow.handle(Input::CodeEntered(z("123456")), at(300));
        assert_eq!(effects, vec![Effect::Notice(Refusal::CodeExpired)]);
        // A new code, then it works.
        let effects = flow.handle(Input::ResendCode, at(301));
        assert!(
            matches!(effects.as_slice(), [Effect::SendCode(_)]),
            "{effects:?}"
        );
        flow.handle(Input::CodeSent(Ok(issued())), at(302));
        let effects = flow.handle(Input::CodeEntered(z("123456")), at(303));
        assert!(matches!(effects.as_slice(), [Effect::VerifyCode { .. }]));
    }

    #[test]
    fn rule_p4_resend_limits() {
        let mut flow = at_code();
        // Our own interval: 60 s.
        assert_eq!(
            flow.handle(Input::ResendCode, at(45)),
            vec![Effect::Notice(Refusal::ResendTooSoon { retry_after_s: 15 })]
        );
        // The bank's 429 Retry-After.
        assert!(matches!(
            flow.handle(Input::ResendCode, at(60)).as_slice(),
            [Effect::SendCode(_)]
        ));
        let effects = flow.handle(
            Input::CodeSent(Err(CoreBankError::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(120)),
            })),
            at(61),
        );
        assert_eq!(
            effects,
            vec![Effect::Notice(Refusal::ResendTooSoon {
                retry_after_s: 120
            })]
        );
        assert_eq!(flow.stage(), Stage::AwaitingCode);
        assert_eq!(
            flow.handle(Input::ResendCode, at(121)),
            vec![Effect::Notice(Refusal::ResendTooSoon { retry_after_s: 60 })]
        );
        // The first code still works meanwhile.
        let effects = flow.handle(Input::CodeEntered(z("123456")), at(122));
        assert!(matches!(effects.as_slice(), [Effect::VerifyCode { .. }]));
        flow.handle(Input::CodeChecked(Ok(check(false, Some(8), None))), at(123));
        // At most three codes a session.
        let mut flow = at_code();
        for i in 1..3 {
            assert!(matches!(
                flow.handle(Input::ResendCode, at(100 * i)).as_slice(),
                [Effect::SendCode(_)]
            ));
            flow.handle(Input::CodeSent(Ok(issued())), at(100 * i));
        }
        assert_eq!(
            flow.handle(Input::ResendCode, at(1000)),
            vec![Effect::Notice(Refusal::ResendLimit)]
        );
    }

    #[test]
    fn rule_p4_ten_wrong_codes_a_day_lock() {
        let mut flow = at_code();
        flow.handle(Input::CodeEntered(z("000000")), at(5));
        let effects = flow.handle(Input::CodeChecked(Ok(check(false, Some(0), None))), at(6));
        assert_eq!(refusal(&effects), Refusal::TooManyCodesToday);
        let mut flow = at_code();
        flow.handle(Input::CodeEntered(z("000000")), at(5));
        let effects = flow.handle(Input::CodeChecked(Err(CoreBankError::Locked)), at(6));
        assert_eq!(refusal(&effects), Refusal::TooManyCodesToday);
        // Locked already when the code is asked for.
        let mut flow = at_number();
        enter(&mut flow, NEW, NEW, now());
        let effects = flow.handle(Input::CodeSent(Err(CoreBankError::Locked)), now());
        let r = refusal(&effects);
        assert_eq!(r, Refusal::TooManyCodesToday);
        assert_eq!(r.message().code, "too_many_codes_today");
    }

    #[test]
    fn rule_p6_confirm_shows_both_numbers_and_the_slip_masks_them() {
        let mut flow = at_bank();
        let effects = flow.handle(
            Input::ChangeDelivered {
                status: Delivery::Applied,
                core_ref: "R9".into(),
            },
            at(30),
        );
        let Some(Effect::PrintSlip(slip)) = effects.first() else {
            panic!("{effects:?}")
        };
        let value = |label: &str| {
            slip.rows
                .iter()
                .find(|r| r.label.contains(label))
                .map(|r| r.value.clone())
        };
        assert_eq!(value("Old number").as_deref(), Some("138****5678"));
        assert_eq!(value("New number").as_deref(), Some("139****5678"));
        assert_eq!(value("Name").as_deref(), Some("张*"));
        assert_eq!(value("Reference").as_deref(), Some("ch-9"));
        let o = finish(&effects);
        assert_eq!(
            o.kind,
            OutcomeKind::Applied {
                change_id: "ch-9".into(),
                status: Delivery::Applied
            }
        );
        assert_eq!(o.message.code, "mobile_changed");
        assert!(o.message.zh.contains("139****5678"));
    }

    #[test]
    fn rule_p6_a_change_not_yet_applied_is_not_reported_as_done() {
        let mut flow = at_bank();
        let effects = flow.handle(Input::ChangeQueued, at(30));
        let o = finish(&effects);
        assert_eq!(
            o.kind,
            OutcomeKind::Pending {
                change_id: "ch-9".into()
            }
        );
        assert_eq!(o.message.code, "mobile_pending");
        // Nothing before confirmation is recorded.
        let mut flow = at_confirm();
        let effects = flow.handle(Input::CustomerCancelled, at(20));
        assert_eq!(finish(&effects).kind, OutcomeKind::Cancelled);
        assert!(!effects.iter().any(|e| matches!(e, Effect::RecordChange(_))));
    }

    #[test]
    fn rule_p7_the_change_asks_the_bank_to_notify_old_and_new() {
        let mut flow = at_confirm();
        let effects = flow.handle(Input::CustomerConfirmed, at(20));
        let [Effect::RecordChange(change)] = effects.as_slice() else {
            panic!("{effects:?}")
        };
        assert_eq!(change.customer_id, "C000123");
        assert_eq!(
            change.kind,
            ChangeKind::Mobile {
                mobile: MobileChange {
                    new_mobile: NEW.into(),
                    otp_proof: "proof-1".into(),
                    notify_old_and_new: true,
                }
            }
        );
        assert!(change.audit_detail.contains("138****5678 → 139****5678"));
        assert_eq!(flow.stage(), Stage::Recording);
    }

    #[test]
    fn rule_c3_phone_change_is_refused_when_the_bank_is_unreachable() {
        let down = || CoreBankError::Unreachable {
            reason: "connection refused".into(),
        };
        // At the lookup.
        let mut flow = PhoneFlow::new(settings());
        read_card(&mut flow);
        let effects = flow.handle(Input::LookupAnswered(Err(down())), now());
        assert_eq!(refusal(&effects), Refusal::BankUnreachable);
        // At the answer check.
        let mut flow = at_question();
        flow.handle(Input::AnswerGiven(z("李四")), now());
        let effects = flow.handle(
            Input::AnswerChecked(Err(CoreBankError::Timeout { sent: true })),
            now(),
        );
        assert_eq!(refusal(&effects), Refusal::BankUnreachable);
        // At the code request and the code check.
        let mut flow = at_number();
        enter(&mut flow, NEW, NEW, now());
        let effects = flow.handle(Input::CodeSent(Err(down())), now());
        assert_eq!(refusal(&effects), Refusal::BankUnreachable);
        let mut flow = at_code();
        flow.handle(Input::CodeEntered(z("123456")), at(5));
        let effects = flow.handle(
            Input::CodeChecked(Err(CoreBankError::Server {
                status: 502,
                code: None,
            })),
            at(6),
        );
        let r = refusal(&effects);
        assert_eq!(r, Refusal::BankUnreachable);
        assert_eq!(finish(&effects).message.code, "bank_unreachable");
    }

    #[test]
    fn rule_c4_a_rejected_change_gives_the_banks_reason() {
        let mut flow = at_bank();
        let effects = flow.handle(
            Input::ChangeRejected {
                code: "otp_proof_invalid".into(),
                message: "proof expired".into(),
            },
            at(30),
        );
        let o = finish(&effects);
        assert_eq!(
            o.kind,
            OutcomeKind::Rejected {
                change_id: "ch-9".into(),
                code: "otp_proof_invalid".into()
            }
        );
        assert!(o.message.en.contains("proof expired"));
    }

    #[test]
    fn rule_s2_the_session_data_is_wiped_at_the_end() {
        let mut flow = at_confirm();
        assert!(flow.holding().number && flow.holding().proof);
        assert!(!flow.holding().card, "the card is dropped after the lookup");
        // Idle: warning at 100 s, end at 120 s after the last input (at(11)).
        assert_eq!(flow.next_wakeup(), Some(at(111)));
        let effects = flow.handle(Input::Tick, at(111));
        assert!(matches!(effects.as_slice(), [Effect::IdleWarning(_)]));
        let effects = flow.handle(Input::Tick, at(131));
        assert_eq!(finish(&effects).kind, OutcomeKind::TimedOut);
        assert!(!flow.holding().number && !flow.holding().proof && !flow.holding().otp);
        assert!(!flow.holding().customer);
        assert!(flow.handle(Input::CustomerConfirmed, at(132)).is_empty());
    }

    #[test]
    fn rule_s1_no_effect_or_debug_output_holds_the_full_number_name_or_phone() {
        let identity = card();
        let (number, name) = (identity.number.clone(), identity.name.clone());
        let mut flow = PhoneFlow::new(settings());
        let inputs = vec![
            Input::CardRead {
                identity,
                evidence: evidence(),
            },
            Input::LookupAnswered(Ok(customer_for(&card()))),
            Input::AnswerGiven(z("秘密答案")),
            Input::AnswerChecked(Ok(check(true, None, None))),
            Input::NumberEntered {
                first: z(NEW),
                second: z(NEW),
            },
            Input::CodeSent(Ok(issued())),
            Input::CodeEntered(z("654321")),
            Input::CodeChecked(Ok(check(true, None, Some("proof-secret")))),
            Input::CustomerConfirmed,
            Input::ChangeRecorded {
                change_id: "ch-9".into(),
            },
            Input::ChangeDelivered {
                status: Delivery::Applied,
                core_ref: "R9".into(),
            },
        ];
        let mut all = Vec::new();
        for input in inputs {
            all.push(format!("{input:?}"));
            all.push(format!("{flow:?}"));
            for effect in flow.handle(input, now()) {
                all.push(format!("{effect:?}"));
                match &effect {
                    Effect::Audit(a) => all.push(a.detail.clone()),
                    Effect::PrintSlip(s) => all.push(serde_json::to_string(s).expect("json")),
                    Effect::Finish(o) => all.push(format!("{} {}", o.message.zh, o.message.en)),
                    Effect::RecordChange(c) => all.push(c.audit_detail.clone()),
                    Effect::Show(screen) => all.push(serde_json::to_string(screen).expect("json")),
                    _ => {}
                }
            }
        }
        assert!(flow.is_finished());
        let text = all.join("\n");
        assert!(text.contains("139****5678"), "{text}");
        for secret in [
            number.as_str(),
            name.as_str(),
            NEW,
            "秘密答案",
            "654321",
            "proof-secret",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
