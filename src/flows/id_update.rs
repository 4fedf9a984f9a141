//! The ID validity update at a smart teller (rules I1–I9, C1, C3, S1–S3)
//! as a state machine without I/O, in the style of rumqttc's `state.rs`:
//! [`IdUpdateFlow::handle`] takes what happened ([`Input`]) and the time,
//! changes the flow's state and returns what the daemon must do
//! ([`Effect`]). It never touches the card reader, the core bank, the
//! store or the printer, and reads no clock.
//!
//! # Steps
//!
//! 1. [`Input::CardRead`]: the card is checked: its type (I1), its number
//!    (I2: [`kiosk_idcard::idnumber::validate18`] on 18-character numbers), its expiry in the
//!    branch's time zone (I4). Then [`Effect::LookUp`].
//! 2. [`Input::LookupAnswered`]: the record on file is checked: ID number
//!    (I3: [`kiosk_idcard::idnumber::matches_on_file`], so an old 15-digit number matches), document
//!    type (I5), name (I6), `self_service.id_update`; its validity is
//!    compared with the card's (I7, [`super::id_rules::validity_update_decision`]) and, when
//!    configured, the update window is checked (I9). Then
//!    [`Effect::Show`] ([`Screen::ConfirmId`]) with masked data only (I8).
//! 3. [`Input::CustomerConfirmed`]: only now [`Effect::RecordChange`] (I8,
//!    C1). The daemon commits it (`Shared::record_change`) and answers
//!    [`Input::ChangeRecorded`] (or [`Input::ChangeRecordFailed`]).
//! 4. The sync worker's news: [`Input::ChangeDelivered`] (applied or
//!    superseded), [`Input::ChangeRejected`] (C4) or [`Input::ChangeQueued`]
//!    (the bank is unreachable: "accepted, will be synced", C3). A slip is
//!    printed when [`FlowSettings::print_slip`] says so; then
//!    [`Effect::Finish`].
//!
//! Every step that affects the customer is an [`Effect::Audit`] with
//! masked data (S3); the recorded change's own audit record is written by
//! the store with the change (its text is [`ChangeToRecord::audit_detail`]).
//!
//! # The bank unreachable (rule C3)
//!
//! A confirmed change is stored and forwarded later. But when the
//! **lookup** fails because the bank cannot be reached, the kiosk does not
//! know the validity on file, the document type or the name, so rules I5–I7
//! cannot be checked: the flow ends with [`Refusal::BankUnreachable`]. No
//! change is recorded without those checks.
//!
//! # Sessions and personal data (rule S2)
//!
//! The card ([`Identity`], zeroized on drop by its crate) and the customer
//! id are held only while the flow runs and are dropped the moment it
//! finishes (any [`Effect::Finish`]). The lookup answer's personal strings
//! are zeroized as soon as they have been compared. `Debug` of the flow,
//! its inputs and its effects shows masked data only. What leaves the flow
//! unmasked is what the daemon must send: [`Effect::LookUp`] and
//! [`Effect::RecordChange`] (both with redacting `Debug` impls).
//!
//! Idle time: every input other than [`Input::Tick`] counts as activity.
//! [`Input::Tick`] (call it at [`IdUpdateFlow::next_wakeup`] or
//! periodically) gives one [`Effect::IdleWarning`]
//! [`FlowSettings::idle_warning`] before the end, then ends the flow as
//! timed out. While a confirmed change is being recorded the flow does not
//! time out (rule C1: the customer is told after the store answers); once
//! recorded, a timeout while waiting for the bank finishes as "accepted,
//! will be synced".
//!
//! The inputs, effects and pieces both customer flows share are
//! [`super::flow`]'s; the card and record checks are [`super::id_rules`]'s.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use kiosk_corebank::{CardEvidence, Customer};
use kiosk_idcard::{Identity, Validity};
use kiosk_proto::{Screen, Stage};
use zeroize::Zeroizing;

use super::flow::{
    AuditNote, BankFailure, ChangeToRecord, Effect, Flow, FlowSettings, Idle, IdleCheck, Input,
    Outcome, OutcomeKind, Slip, row,
};
use super::id_rules::{
    check_card, id_validity_change, lookup_refusal, lookup_request, masked_name, refusal_action,
    scrub, update_allowed, validity_display, validity_text,
};
use super::messages::{self, CustomerMessage, Explained, Refusal};
use crate::store::AuditAction;

/// Rule I8: what the customer confirms, masked (the screen's own type).
pub use kiosk_proto::IdConfirmation;

/// What the flow keeps of the record on file.
struct OnFile {
    customer_id: Zeroizing<String>,
    valid_from: NaiveDate,
    valid_until: Validity,
}

/// The card read in this flow and the evidence of the read.
struct Card {
    identity: Identity,
    evidence: CardEvidence,
}

/// A card whose record on file allows the update.
struct Checked {
    card: Card,
    on_file: OnFile,
}

/// Where the flow is, with what it holds there. Rule S2: the card and the
/// record live in the state and go (zeroized) when it is `Finished`.
enum State {
    AwaitingCard,
    LookingUp(Card),
    AwaitingConfirmation(Checked),
    Recording(Checked),
    AwaitingBank { checked: Checked, change_id: String },
    Finished,
}

impl State {
    fn stage(&self) -> Stage {
        match self {
            State::AwaitingCard => Stage::AwaitingCard,
            State::LookingUp(_) => Stage::LookingUp,
            State::AwaitingConfirmation(_) => Stage::AwaitingConfirmation,
            State::Recording(_) => Stage::Recording,
            State::AwaitingBank { .. } => Stage::AwaitingBank,
            State::Finished => Stage::Finished,
        }
    }
}

/// A step's result: the next state and what to do.
type Step = (State, Vec<Effect>);

/// The ID validity update flow (module docs).
pub struct IdUpdateFlow {
    settings: FlowSettings,
    state: State,
    idle: Idle,
}

impl fmt::Debug for IdUpdateFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdUpdateFlow")
            .field("stage", &self.state.stage())
            .finish_non_exhaustive()
    }
}

impl Flow for IdUpdateFlow {
    fn name(&self) -> &'static str {
        "id_update"
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

impl IdUpdateFlow {
    pub fn new(settings: FlowSettings) -> IdUpdateFlow {
        IdUpdateFlow {
            idle: Idle::new(&settings),
            settings,
            state: State::AwaitingCard,
        }
    }

    /// Whether the flow still holds a card or a record (rule S2: not once
    /// it is finished).
    pub fn holds_personal_data(&self) -> bool {
        !matches!(self.state, State::AwaitingCard | State::Finished)
    }

    fn transition(&mut self, state: State, input: Input, now: DateTime<Utc>) -> Step {
        match (state, input) {
            (state, Input::Tick) => self.tick(state, now),
            (State::AwaitingCard, Input::CardRead { identity, evidence }) => {
                self.card_read(Card { identity, evidence }, now)
            }
            (State::AwaitingCard, Input::CardUnsupported) => {
                self.refuse(Refusal::UnsupportedCard, None)
            }
            (State::AwaitingCard, Input::CardUnreadable) => {
                self.refuse(Refusal::UnreadableCard, None)
            }
            (State::LookingUp(card), Input::LookupAnswered(answer)) => {
                self.looked_up(card, answer, now)
            }
            (State::AwaitingConfirmation(checked), Input::CustomerConfirmed) => {
                self.confirmed(checked)
            }
            (State::Recording(checked), Input::ChangeRecorded { change_id }) => {
                (State::AwaitingBank { checked, change_id }, Vec::new())
            }
            (State::Recording(_), Input::ChangeRecordFailed) => {
                self.refuse(Refusal::NotRecorded, None)
            }
            (State::AwaitingBank { checked, change_id }, Input::ChangeDelivered { status, .. }) => {
                let kind = OutcomeKind::Applied {
                    change_id: change_id.clone(),
                    status,
                };
                self.end_with_slip(
                    &checked,
                    &change_id,
                    kind,
                    messages::id_updated(),
                    "已更新 Updated",
                    now,
                )
            }
            (
                State::AwaitingBank { checked, change_id },
                Input::ChangeQueued | Input::CustomerCancelled,
            ) => self.accepted_will_sync(&checked, change_id, now),
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
            // Cancelling while the change is being committed: the store
            // answers first (rule C1).
            (state @ State::Recording(_), Input::CustomerCancelled) => (state, Vec::new()),
            (_, Input::CustomerCancelled) => finish(Outcome {
                kind: OutcomeKind::Cancelled,
                message: messages::cancelled(),
            }),
            // Anything else is out of turn (a second card, a late answer,
            // an input of the phone flow): ignored.
            (state, _) => (state, Vec::new()),
        }
    }

    fn tick(&mut self, state: State, now: DateTime<Utc>) -> Step {
        if matches!(state, State::Recording(_)) {
            return (state, Vec::new());
        }
        match (self.idle.check(now), state) {
            (IdleCheck::Fine, state) => (state, Vec::new()),
            (IdleCheck::Warn { seconds_left }, state) => (
                state,
                vec![Effect::IdleWarning(messages::idle_warning(seconds_left))],
            ),
            (IdleCheck::Expired, State::AwaitingBank { checked, change_id }) => {
                self.accepted_will_sync(&checked, change_id, now)
            }
            (IdleCheck::Expired, _) => finish(Outcome {
                kind: OutcomeKind::TimedOut,
                message: messages::timed_out(),
            }),
        }
    }

    fn card_read(&mut self, card: Card, now: DateTime<Utc>) -> Step {
        let mask = &self.settings.mask;
        let identity = &card.identity;
        let detail = format!(
            "smart teller, id validity update: {:?} {} {}",
            identity.card_type,
            mask.id_number(&identity.number),
            masked_name(identity, mask)
        );
        let mut effects = vec![Effect::Audit(AuditNote {
            action: AuditAction::CardRead,
            subject: None,
            detail,
        })];
        if let Err(refusal) = check_card(identity, self.settings.today(now)) {
            let (state, refused) = self.refuse(refusal, None);
            effects.extend(refused);
            return (state, effects);
        }
        effects.push(Effect::LookUp(lookup_request(identity)));
        (State::LookingUp(card), effects)
    }

    fn looked_up(
        &mut self,
        card: Card,
        answer: Result<Customer, BankFailure>,
        now: DateTime<Utc>,
    ) -> Step {
        let mut customer = match answer {
            Ok(c) => c,
            Err(e) => {
                let refusal = lookup_refusal(&e);
                let mut effects = vec![Effect::Audit(AuditNote {
                    action: AuditAction::Lookup,
                    subject: None,
                    detail: format!("lookup failed: {}", e.code().unwrap_or("transport")),
                })];
                let (state, refused) = self.refuse(refusal, None);
                effects.extend(refused);
                return (state, effects);
            }
        };
        // Rules I3, I5, I6, `self_service.id_update`, I7, I9.
        let decision = update_allowed(
            &card.identity,
            &customer,
            self.settings.today(now),
            self.settings.update_window,
        );
        scrub(&mut customer);
        let customer_id = Zeroizing::new(std::mem::take(&mut customer.customer_id));
        let mut effects = vec![Effect::Audit(AuditNote {
            action: AuditAction::Lookup,
            subject: Some(customer_id.to_string()),
            detail: "customer found (id validity update)".into(),
        })];
        match decision {
            Err(refusal) => {
                let (state, refused) = self.refuse(refusal, Some(customer_id.to_string()));
                effects.extend(refused);
                (state, effects)
            }
            Ok(on_file) => {
                let on_file = OnFile {
                    customer_id,
                    valid_from: on_file.valid_from,
                    valid_until: on_file.valid_until,
                };
                let identity = &card.identity;
                let mask = &self.settings.mask;
                effects.push(Effect::Show(Screen::ConfirmId(Box::new(IdConfirmation {
                    card_type: identity.card_type,
                    masked_number: mask.id_number(&identity.number),
                    masked_name: masked_name(identity, mask),
                    old_valid_from: on_file.valid_from.format("%Y-%m-%d").to_string(),
                    old_valid_until: validity_display(on_file.valid_until),
                    new_valid_from: identity.valid_from.format("%Y-%m-%d").to_string(),
                    new_valid_until: validity_display(identity.valid_until),
                }))));
                (
                    State::AwaitingConfirmation(Checked { card, on_file }),
                    effects,
                )
            }
        }
    }

    fn confirmed(&mut self, checked: Checked) -> Step {
        let Checked { card, on_file } = &checked;
        let mask = &self.settings.mask;
        let kind = id_validity_change(&card.identity, &card.evidence);
        let audit_detail = format!(
            "id validity confirmed by the customer at the smart teller (rule I8): {} {}, {} → {}",
            mask.id_number(&card.identity.number),
            masked_name(&card.identity, mask),
            validity_text(on_file.valid_until),
            validity_text(card.identity.valid_until),
        );
        let effects = vec![Effect::RecordChange(ChangeToRecord {
            customer_id: on_file.customer_id.to_string(),
            kind,
            audit_detail,
        })];
        (State::Recording(checked), effects)
    }

    fn accepted_will_sync(
        &mut self,
        checked: &Checked,
        change_id: String,
        now: DateTime<Utc>,
    ) -> Step {
        let kind = OutcomeKind::AcceptedWillSync {
            change_id: change_id.clone(),
        };
        self.end_with_slip(
            checked,
            &change_id,
            kind,
            messages::id_accepted_will_sync(),
            "已受理，待同步 Accepted, will be synced",
            now,
        )
    }

    fn end_with_slip(
        &mut self,
        checked: &Checked,
        change_id: &str,
        kind: OutcomeKind,
        message: CustomerMessage,
        status: &str,
        now: DateTime<Utc>,
    ) -> Step {
        let mut effects = Vec::new();
        if self.settings.print_slip {
            let (identity, on_file) = (&checked.card.identity, &checked.on_file);
            let mask = &self.settings.mask;
            effects.push(Effect::PrintSlip(Slip {
                title: "证件有效期更新 ID validity update".into(),
                rows: vec![
                    row("证件号码 ID number", mask.id_number(&identity.number)),
                    row("姓名 Name", masked_name(identity, mask)),
                    row(
                        "原有效期 Old validity",
                        format!(
                            "{} – {}",
                            on_file.valid_from.format("%Y-%m-%d"),
                            validity_display(on_file.valid_until)
                        ),
                    ),
                    row(
                        "新有效期 New validity",
                        format!(
                            "{} – {}",
                            identity.valid_from.format("%Y-%m-%d"),
                            validity_display(identity.valid_until)
                        ),
                    ),
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

    /// End with a refusal, audited (rule S3).
    fn refuse(&mut self, refusal: Refusal, subject: Option<String>) -> Step {
        let detail = format!("id validity update refused: {}", refusal.code());
        let mut effects = vec![Effect::Audit(AuditNote {
            action: refusal_action(&refusal),
            subject,
            detail,
        })];
        let (state, finished) = finish(Outcome::refused(refusal));
        effects.extend(finished);
        (state, effects)
    }
}

/// Rule S2: the state that held the card and the record is dropped
/// (zeroized) as the flow finishes.
fn finish(outcome: Outcome) -> Step {
    (State::Finished, vec![Effect::Finish(outcome)])
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::flows::flow::UpdateWindow;
    use crate::flows::id_rules::{card_name, id_type, same_name};
    use crate::flows::messages::CounterReason;
    use kiosk_corebank::{ChangeKind, CoreBankError, IdType, LONG_TERM, SelfService};
    use kiosk_idcard::CardType;
    use kiosk_proto::Delivery;

    pub(in crate::flows) fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339")
            .with_timezone(&Utc)
    }

    pub(in crate::flows) fn evidence() -> CardEvidence {
        CardEvidence {
            sam_id: "05.01-20250101-0000001-1234567890".into(),
            card_uid: "0102030405060708".into(),
        }
    }

    /// The sample resident card (2020-01-01 to 2040-01-01) and a record
    /// holding its previous card (2000-01-01 to 2020-01-01).
    pub(in crate::flows) fn customer_for(identity: &Identity) -> Customer {
        Customer {
            customer_id: "C000123".into(),
            name: card_name(identity).to_string(),
            id_type: id_type(identity.card_type),
            id_number_on_file: identity.number.clone(),
            id_valid_from: "2000-01-01".into(),
            id_valid_until: "2020-01-01".into(),
            mobile_masked: "138****5678".into(),
            security_question: Some("我母亲的名字?".into()),
            self_service: SelfService {
                id_update: true,
                mobile_change: true,
                reason: None,
            },
            tier: "standard".into(),
        }
    }

    const NOW: &str = "2025-03-14T02:00:00Z";

    fn card() -> Identity {
        Identity::sample(CardType::Resident)
    }

    fn started(identity: Identity) -> (IdUpdateFlow, Vec<Effect>) {
        let mut flow = IdUpdateFlow::new(FlowSettings::default());
        let effects = flow.handle(
            Input::CardRead {
                identity,
                evidence: evidence(),
            },
            utc(NOW),
        );
        (flow, effects)
    }

    fn finish(effects: &[Effect]) -> &Outcome {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Finish(o) => Some(o),
                _ => None,
            })
            .expect("the flow finished")
    }

    fn refusal(effects: &[Effect]) -> Refusal {
        finish(effects).refusal().expect("refused").clone()
    }

    fn audits(effects: &[Effect]) -> Vec<&AuditNote> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Audit(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// Card read, then the lookup answer `customer`.
    fn looked_up(
        settings: FlowSettings,
        identity: Identity,
        customer: Customer,
        now: &str,
    ) -> (IdUpdateFlow, Vec<Effect>) {
        let mut flow = IdUpdateFlow::new(settings);
        let effects = flow.handle(
            Input::CardRead {
                identity,
                evidence: evidence(),
            },
            utc(now),
        );
        assert!(
            matches!(effects.last(), Some(Effect::LookUp(_))),
            "{effects:?}"
        );
        let effects = flow.handle(Input::LookupAnswered(Ok(customer)), utc(now));
        (flow, effects)
    }

    fn counter(reason: CounterReason) -> Refusal {
        Refusal::Counter(reason)
    }

    #[test]
    fn rule_i1_every_accepted_card_type_is_looked_up() {
        for card_type in CardType::ALL {
            let identity = Identity::sample(card_type);
            let expected = id_type(card_type);
            let (flow, effects) = started(identity);
            assert_eq!(flow.stage(), Stage::LookingUp, "{card_type:?}");
            match effects.last() {
                Some(Effect::LookUp(r)) => assert_eq!(r.id_type, expected),
                other => panic!("{other:?}"),
            }
            assert_eq!(audits(&effects)[0].action, AuditAction::CardRead);
        }
    }

    #[test]
    fn rule_i1_unsupported_card_gets_a_clear_message() {
        let mut flow = IdUpdateFlow::new(FlowSettings::default());
        let effects = flow.handle(Input::CardUnsupported, utc(NOW));
        let o = finish(&effects);
        assert_eq!(o.refusal(), Some(&Refusal::UnsupportedCard));
        assert_eq!(o.message.code, "unsupported_card");
        assert!(o.message.zh.contains("居民身份证"));
        assert!(flow.is_finished());
        let mut flow = IdUpdateFlow::new(FlowSettings::default());
        let effects = flow.handle(Input::CardUnreadable, utc(NOW));
        assert_eq!(refusal(&effects), Refusal::UnreadableCard);
    }

    #[test]
    fn rule_i2_bad_check_digit_is_refused() {
        let mut identity = card();
        identity.number = "110105194912310021".into();
        let (flow, effects) = started(identity);
        assert_eq!(refusal(&effects), Refusal::BadCard);
        assert!(flow.is_finished());
        assert!(!effects.iter().any(|e| matches!(e, Effect::LookUp(_))));
        // Birth date and region count too.
        for number in ["110105194902300025", "001105194912310021"] {
            let mut identity = card();
            identity.number = number.into();
            let (_, effects) = started(identity);
            assert_eq!(refusal(&effects), Refusal::BadCard, "{number}");
        }
    }

    #[test]
    fn rule_i3_a_15_digit_number_on_file_matches() {
        let mut identity = card();
        identity.number = "110101198001011232".into();
        identity.birth_date = "19800101".into();
        let mut customer = customer_for(&identity);
        customer.id_number_on_file = "110101800101123".into();
        let (flow, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        assert!(
            matches!(effects.last(), Some(Effect::Show(Screen::ConfirmId(_)))),
            "{effects:?}"
        );
        assert_eq!(flow.stage(), Stage::AwaitingConfirmation);
    }

    #[test]
    fn rule_i3_another_number_on_file_is_sent_to_the_counter() {
        let identity = card();
        let mut customer = customer_for(&identity);
        customer.id_number_on_file = "110101800101123".into();
        let (_, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        assert_eq!(refusal(&effects), counter(CounterReason::IdNumberMismatch));
    }

    #[test]
    fn rule_i4_expired_card_is_refused() {
        let mut identity = card();
        identity.valid_until = Validity::Until(NaiveDate::from_ymd_opt(2025, 3, 13).expect("d"));
        let (_, effects) = started(identity);
        let r = refusal(&effects);
        assert_eq!(
            r,
            Refusal::ExpiredCard {
                valid_until: "2025-03-13".into()
            }
        );
        assert!(r.message().en.contains("2025-03-13"));
    }

    #[test]
    fn rule_i4_expiry_is_in_the_branch_time_zone() {
        // 2025-03-13T17:00Z is already the 14th in Shanghai: a card valid
        // until the 13th has expired there, not in London.
        let mut identity = card();
        identity.valid_until = Validity::Until(NaiveDate::from_ymd_opt(2025, 3, 13).expect("d"));
        let mut flow = IdUpdateFlow::new(FlowSettings::default());
        let effects = flow.handle(
            Input::CardRead {
                identity: identity.clone(),
                evidence: evidence(),
            },
            utc("2025-03-13T17:00:00Z"),
        );
        assert!(matches!(refusal(&effects), Refusal::ExpiredCard { .. }));
        let mut flow = IdUpdateFlow::new(FlowSettings {
            timezone: chrono_tz::Europe::London,
            ..FlowSettings::default()
        });
        let effects = flow.handle(
            Input::CardRead {
                identity,
                evidence: evidence(),
            },
            utc("2025-03-13T17:00:00Z"),
        );
        assert!(matches!(effects.last(), Some(Effect::LookUp(_))));
        // Valid on its last day; long-term never expires.
        let mut identity = card();
        identity.valid_until = Validity::Until(NaiveDate::from_ymd_opt(2025, 3, 14).expect("d"));
        assert!(matches!(
            started(identity).1.last(),
            Some(Effect::LookUp(_))
        ));
        let mut identity = card();
        identity.valid_until = Validity::LongTerm;
        assert!(matches!(
            started(identity).1.last(),
            Some(Effect::LookUp(_))
        ));
    }

    #[test]
    fn rule_i5_document_type_mismatch_is_sent_to_the_counter() {
        for on_file in [IdType::Temporary, IdType::Other, IdType::ForeignPermanent] {
            let identity = card();
            let mut customer = customer_for(&identity);
            customer.id_type = on_file;
            let (flow, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
            let r = refusal(&effects);
            assert_eq!(
                r,
                counter(CounterReason::DocumentTypeMismatch),
                "{on_file:?}"
            );
            assert_eq!(r.message().code, "counter_document_type_mismatch");
            assert!(r.message().en.contains("document type"));
            assert!(r.message().zh.contains("证件类型"));
            assert!(
                audits(&effects)
                    .iter()
                    .any(|a| a.action == AuditAction::SentToCounter
                        && a.subject.as_deref() == Some("C000123"))
            );
            assert!(!effects.iter().any(|e| matches!(e, Effect::RecordChange(_))));
            assert!(flow.is_finished());
        }
    }

    #[test]
    fn rule_i6_name_mismatch_is_sent_to_the_counter_and_audited() {
        let identity = card();
        let mut customer = customer_for(&identity);
        customer.name = "张四".into();
        let (_, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        let r = refusal(&effects);
        assert_eq!(r, counter(CounterReason::NameMismatch));
        assert_eq!(r.message().code, "counter_name_mismatch");
        assert!(r.message().en.contains("name"));
        let audit = audits(&effects);
        assert!(
            audit.iter().any(|a| a.action == AuditAction::SentToCounter
                && a.detail.contains("counter_name_mismatch")),
            "{audit:?}"
        );
        // The bank's own name check (422 name_mismatch) too.
        let mut flow = IdUpdateFlow::new(FlowSettings::default());
        flow.handle(
            Input::CardRead {
                identity: card(),
                evidence: evidence(),
            },
            utc(NOW),
        );
        let effects = flow.handle(
            Input::LookupAnswered(Err(CoreBankError::Rejected {
                status: 422,
                code: "name_mismatch".into(),
                message: String::new(),
            })),
            utc(NOW),
        );
        assert_eq!(refusal(&effects), counter(CounterReason::NameMismatch));
        // Latin names compare in any case and spacing.
        assert!(same_name("DOE,  JANE", "Doe, Jane"));
        assert!(!same_name("", ""));
    }

    #[test]
    fn rule_i7_newer_card_is_confirmed_then_recorded() {
        let identity = card();
        let customer = customer_for(&identity);
        let (mut flow, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        let Some(Effect::Show(Screen::ConfirmId(c))) = effects.last() else {
            panic!("{effects:?}")
        };
        assert_eq!(c.old_valid_until, "2020-01-01");
        assert_eq!(c.new_valid_until, "2040-01-01");
        let effects = flow.handle(Input::CustomerConfirmed, utc(NOW));
        let Some(Effect::RecordChange(change)) = effects.first() else {
            panic!("{effects:?}")
        };
        assert_eq!(change.customer_id, "C000123");
        let ChangeKind::IdValidity { id_validity } = &change.kind else {
            panic!("kind")
        };
        assert_eq!(id_validity.id_number, "11010519491231002X");
        assert_eq!(id_validity.valid_from, "2020-01-01");
        assert_eq!(id_validity.valid_until, "2040-01-01");
        assert_eq!(id_validity.card_evidence, evidence());
        assert_eq!(flow.stage(), Stage::Recording);
        assert!(
            flow.handle(
                Input::ChangeRecorded {
                    change_id: "ch-1".into()
                },
                utc(NOW)
            )
            .is_empty()
        );
        let effects = flow.handle(
            Input::ChangeDelivered {
                status: Delivery::Applied,
                core_ref: "R1".into(),
            },
            utc(NOW),
        );
        let o = finish(&effects);
        assert_eq!(
            o.kind,
            OutcomeKind::Applied {
                change_id: "ch-1".into(),
                status: Delivery::Applied
            }
        );
        assert_eq!(o.message.code, "id_updated");
        assert!(flow.is_finished());
    }

    #[test]
    fn rule_i7_same_validity_is_already_up_to_date() {
        let identity = card();
        let mut customer = customer_for(&identity);
        customer.id_valid_from = "2020-01-01".into();
        customer.id_valid_until = "2040-01-01".into();
        let (_, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        assert_eq!(refusal(&effects), Refusal::AlreadyUpToDate);
    }

    #[test]
    fn rule_i7_older_card_is_refused() {
        let identity = card();
        let mut customer = customer_for(&identity);
        customer.id_valid_from = "2024-01-01".into();
        customer.id_valid_until = LONG_TERM.into();
        let (_, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        assert_eq!(refusal(&effects), Refusal::OldCard);
    }

    #[test]
    fn rule_i8_nothing_is_recorded_before_the_customer_confirms() {
        let identity = card();
        let customer = customer_for(&identity);
        let (mut flow, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        assert!(!effects.iter().any(|e| matches!(e, Effect::RecordChange(_))));
        let Some(Effect::Show(Screen::ConfirmId(c))) = effects.last() else {
            panic!("{effects:?}")
        };
        assert_eq!(
            c.as_ref(),
            &IdConfirmation {
                card_type: CardType::Resident,
                masked_number: "110***********002X".into(),
                masked_name: "张*".into(),
                old_valid_from: "2000-01-01".into(),
                old_valid_until: "2020-01-01".into(),
                new_valid_from: "2020-01-01".into(),
                new_valid_until: "2040-01-01".into(),
            }
        );
        // Out-of-turn inputs record nothing either.
        assert!(flow.handle(Input::ChangeQueued, utc(NOW)).is_empty());
        let effects = flow.handle(Input::CustomerCancelled, utc(NOW));
        assert_eq!(finish(&effects).kind, OutcomeKind::Cancelled);
        assert!(!effects.iter().any(|e| matches!(e, Effect::RecordChange(_))));
        assert!(flow.handle(Input::CustomerConfirmed, utc(NOW)).is_empty());
    }

    #[test]
    fn rule_i9_window_is_off_by_default_and_refuses_outside_it() {
        let window = FlowSettings {
            update_window: Some(UpdateWindow {
                days_before: 30,
                days_after: 90,
            }),
            ..FlowSettings::default()
        };
        let identity = card();
        let mut customer = customer_for(&identity);
        // Old card expires 2025-06-01: the window is 2025-05-02 to 2025-08-30.
        customer.id_valid_until = "2025-06-01".into();
        let (_, effects) = looked_up(
            window.clone(),
            card(),
            customer.clone(),
            "2025-03-14T02:00:00Z",
        );
        let r = refusal(&effects);
        assert_eq!(
            r,
            Refusal::OutsideUpdateWindow {
                opens: "2025-05-02".into(),
                closes: "2025-08-30".into()
            }
        );
        assert!(r.message().zh.contains("2025-05-02"));
        // Inside (both ends).
        for at in ["2025-05-02T02:00:00Z", "2025-08-30T02:00:00Z"] {
            let (_, effects) = looked_up(window.clone(), card(), customer.clone(), at);
            assert!(
                matches!(effects.last(), Some(Effect::Show(Screen::ConfirmId(_)))),
                "{at}"
            );
        }
        let (_, effects) = looked_up(window, card(), customer.clone(), "2025-08-31T02:00:00Z");
        assert!(matches!(
            refusal(&effects),
            Refusal::OutsideUpdateWindow { .. }
        ));
        // Off by default.
        let (_, effects) = looked_up(FlowSettings::default(), card(), customer, NOW);
        assert!(matches!(
            effects.last(),
            Some(Effect::Show(Screen::ConfirmId(_)))
        ));
    }

    #[test]
    fn self_service_id_update_off_is_sent_to_the_counter_with_the_reason() {
        let identity = card();
        let mut customer = customer_for(&identity);
        customer.self_service.id_update = false;
        customer.self_service.reason = Some("账户已冻结".into());
        let (_, effects) = looked_up(FlowSettings::default(), identity, customer, NOW);
        let r = refusal(&effects);
        assert_eq!(
            r,
            counter(CounterReason::NotAllowed {
                reason: Some("账户已冻结".into())
            })
        );
        assert!(r.message().zh.contains("账户已冻结"));
    }

    #[test]
    fn rule_c3_lookup_with_the_bank_unreachable_is_refused() {
        for error in [
            CoreBankError::Unreachable {
                reason: "refused".into(),
            },
            CoreBankError::Timeout { sent: true },
            CoreBankError::Server {
                status: 503,
                code: None,
            },
        ] {
            let mut flow = IdUpdateFlow::new(FlowSettings::default());
            flow.handle(
                Input::CardRead {
                    identity: card(),
                    evidence: evidence(),
                },
                utc(NOW),
            );
            let effects = flow.handle(Input::LookupAnswered(Err(error)), utc(NOW));
            let r = refusal(&effects);
            assert_eq!(r, Refusal::BankUnreachable);
            assert_eq!(r.message().code, "bank_unreachable");
        }
        let mut flow = IdUpdateFlow::new(FlowSettings::default());
        flow.handle(
            Input::CardRead {
                identity: card(),
                evidence: evidence(),
            },
            utc(NOW),
        );
        let effects = flow.handle(
            Input::LookupAnswered(Err(CoreBankError::NotFound {
                code: "customer_not_found".into(),
            })),
            utc(NOW),
        );
        assert_eq!(refusal(&effects), counter(CounterReason::CustomerNotFound));
    }

    fn recorded(settings: FlowSettings) -> IdUpdateFlow {
        let identity = card();
        let customer = customer_for(&identity);
        let (mut flow, _) = looked_up(settings, identity, customer, NOW);
        flow.handle(Input::CustomerConfirmed, utc(NOW));
        flow.handle(
            Input::ChangeRecorded {
                change_id: "ch-1".into(),
            },
            utc(NOW),
        );
        assert_eq!(flow.stage(), Stage::AwaitingBank);
        flow
    }

    #[test]
    fn rule_c3_bank_unreachable_after_confirmation_is_accepted_and_will_sync() {
        let mut flow = recorded(FlowSettings {
            print_slip: true,
            ..FlowSettings::default()
        });
        let effects = flow.handle(Input::ChangeQueued, utc(NOW));
        let Some(Effect::PrintSlip(slip)) = effects.first() else {
            panic!("{effects:?}")
        };
        assert!(slip.rows.iter().any(|r| r.value.contains("待同步")));
        assert!(slip.rows.iter().any(|r| r.value == "110***********002X"));
        assert!(slip.rows.iter().any(|r| r.value == "2025-03-14 10:00"));
        let o = finish(&effects);
        assert_eq!(
            o.kind,
            OutcomeKind::AcceptedWillSync {
                change_id: "ch-1".into()
            }
        );
        assert_eq!(o.message.code, "accepted_will_sync");
    }

    #[test]
    fn rule_c4_bank_rejection_is_shown_with_its_reason() {
        let mut flow = recorded(FlowSettings::default());
        let effects = flow.handle(
            Input::ChangeRejected {
                code: "stale_card".into(),
                message: "a newer card is on file".into(),
            },
            utc(NOW),
        );
        let o = finish(&effects);
        assert_eq!(
            o.kind,
            OutcomeKind::Rejected {
                change_id: "ch-1".into(),
                code: "stale_card".into()
            }
        );
        assert_eq!(o.message.code, "change_rejected");
        assert!(o.message.en.contains("a newer card is on file"));
    }

    #[test]
    fn rule_c1_a_change_that_cannot_be_recorded_is_not_reported_as_done() {
        let identity = card();
        let customer = customer_for(&identity);
        let (mut flow, _) = looked_up(FlowSettings::default(), identity, customer, NOW);
        flow.handle(Input::CustomerConfirmed, utc(NOW));
        // Neither cancel nor the idle timeout interrupt the commit.
        assert!(flow.handle(Input::CustomerCancelled, utc(NOW)).is_empty());
        assert!(
            flow.handle(Input::Tick, utc("2025-03-14T03:00:00Z"))
                .is_empty()
        );
        let effects = flow.handle(Input::ChangeRecordFailed, utc(NOW));
        assert_eq!(refusal(&effects), Refusal::NotRecorded);
    }

    /// A session nobody touches after its start (no card, no input: the
    /// touchscreen app died) still times out once its clock was started.
    #[test]
    fn rule_s2_an_untouched_session_times_out_from_its_start() {
        let mut flow = IdUpdateFlow::new(FlowSettings::default());
        assert_eq!(flow.next_wakeup(), None, "no clock before the start");
        flow.start_idle_clock(utc("2025-03-14T02:00:00Z"));
        assert_eq!(flow.next_wakeup(), Some(utc("2025-03-14T02:01:40Z")));
        flow.handle(Input::Tick, utc("2025-03-14T02:01:45Z"));
        let effects = flow.handle(Input::Tick, utc("2025-03-14T02:02:00Z"));
        assert_eq!(finish(&effects).kind, OutcomeKind::TimedOut);
    }

    /// Rule A2: the elderly-friendly mode switched on during the session
    /// gives it the mode's longer idle times from the next input on.
    #[test]
    fn rule_a2_elderly_idle_times_set_during_the_session_count_from_the_next_input() {
        let (mut flow, _) = started(card());
        flow.start_idle_clock(utc("2025-03-14T02:00:00Z"));
        assert_eq!(flow.next_wakeup(), Some(utc("2025-03-14T02:01:40Z")));
        flow.idle_mut().set_times(&FlowSettings {
            idle_timeout: std::time::Duration::from_secs(240),
            idle_warning: std::time::Duration::from_secs(40),
            ..FlowSettings::default()
        });
        flow.handle(Input::MoreTime, utc("2025-03-14T02:00:10Z"));
        assert_eq!(flow.next_wakeup(), Some(utc("2025-03-14T02:03:30Z")));
    }

    /// Rule A4: "more time" after the warning restarts the idle clock
    /// in the stage the customer is in, and says so; the next warning
    /// comes a whole timeout later.
    #[test]
    fn rule_a4_more_time_after_the_warning_restarts_the_idle_clock() {
        let (mut flow, _) = started(card());
        let identity = card();
        flow.handle(
            Input::LookupAnswered(Ok(customer_for(&identity))),
            utc("2025-03-14T02:00:00Z"),
        );
        let stage = flow.stage();
        let effects = flow.handle(Input::Tick, utc("2025-03-14T02:01:45Z"));
        assert!(matches!(effects.as_slice(), [Effect::IdleWarning(_)]));
        let effects = flow.handle(Input::MoreTime, utc("2025-03-14T02:01:50Z"));
        let [Effect::MoreTime(m)] = effects.as_slice() else {
            panic!("{effects:?}")
        };
        assert_eq!(m.code, "more_time");
        assert_eq!(flow.stage(), stage, "the customer stays where they were");
        assert_eq!(flow.next_wakeup(), Some(utc("2025-03-14T02:03:30Z")));
        assert!(
            flow.handle(Input::Tick, utc("2025-03-14T02:02:00Z"))
                .is_empty(),
            "no end at the old deadline"
        );
    }

    #[test]
    fn rule_s2_idle_timeout_warns_then_ends_and_wipes_the_card() {
        let (mut flow, _) = started(card());
        let identity = card();
        flow.handle(
            Input::LookupAnswered(Ok(customer_for(&identity))),
            utc("2025-03-14T02:00:00Z"),
        );
        assert_eq!(flow.next_wakeup(), Some(utc("2025-03-14T02:01:40Z")));
        assert!(
            flow.handle(Input::Tick, utc("2025-03-14T02:01:00Z"))
                .is_empty()
        );
        let effects = flow.handle(Input::Tick, utc("2025-03-14T02:01:45Z"));
        let [Effect::IdleWarning(m)] = effects.as_slice() else {
            panic!("{effects:?}")
        };
        assert_eq!(m.code, "idle_warning");
        assert!(m.en.contains("15 s"));
        assert_eq!(flow.next_wakeup(), Some(utc("2025-03-14T02:02:00Z")));
        let effects = flow.handle(Input::Tick, utc("2025-03-14T02:02:00Z"));
        assert_eq!(finish(&effects).kind, OutcomeKind::TimedOut);
        assert!(!flow.holds_personal_data());
        assert_eq!(flow.next_wakeup(), None);
        // Waiting for the bank, a timeout is "accepted, will be synced".
        let mut flow = recorded(FlowSettings::default());
        let effects = flow.handle(Input::Tick, utc("2025-03-14T03:00:00Z"));
        assert!(matches!(
            finish(&effects).kind,
            OutcomeKind::AcceptedWillSync { .. }
        ));
    }

    #[test]
    fn rule_s1_no_effect_or_debug_output_holds_the_full_number_or_name() {
        let identity = card();
        let number = identity.number.clone();
        let name = identity.name.clone();
        let mut all = Vec::new();
        let customer = customer_for(&identity);
        let settings = FlowSettings {
            print_slip: true,
            ..FlowSettings::default()
        };
        let mut flow = IdUpdateFlow::new(settings);
        let inputs = vec![
            Input::CardRead {
                identity,
                evidence: evidence(),
            },
            Input::LookupAnswered(Ok(customer)),
            Input::CustomerConfirmed,
            Input::ChangeRecorded {
                change_id: "ch-1".into(),
            },
            Input::ChangeDelivered {
                status: Delivery::Applied,
                core_ref: "R1".into(),
            },
        ];
        for input in inputs {
            all.push(format!("{input:?}"));
            all.push(format!("{flow:?}"));
            for effect in flow.handle(input, utc(NOW)) {
                all.push(format!("{effect:?}"));
                if let Effect::Audit(a) = &effect {
                    all.push(a.detail.clone());
                }
                if let Effect::PrintSlip(s) = &effect {
                    all.push(serde_json::to_string(s).expect("json"));
                }
                if let Effect::Finish(o) = &effect {
                    all.push(format!("{} {}", o.message.zh, o.message.en));
                }
                if let Effect::RecordChange(c) = &effect {
                    all.push(c.audit_detail.clone());
                }
            }
        }
        let text = all.join("\n");
        assert!(text.contains("110***********002X"), "{text}");
        assert!(!text.contains(&number), "{text}");
        assert!(!text.contains(&name), "{text}");
    }
}
