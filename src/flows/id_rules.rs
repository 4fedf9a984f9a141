//! The ID card rules in one place: the card itself (I1, I2, I4), the
//! record the bank found for it (I3, I5, I6, the bank's
//! `self_service.id_update`), the validity comparison (I7) and the update
//! window (I9). The smart teller's ID update ([`super::id_update`]), the
//! phone change ([`super::phone`], which needs the card's holder) and the
//! queue machine's swipe ([`super::queue`], rule Q3) all check cards and
//! records here and nowhere else. Pure functions: no I/O, no clock (the
//! branch's date is passed in).

use chrono::{Days, NaiveDate};
use kiosk_corebank::{
    CardEvidence, ChangeKind, CoreBankError, Customer, IdType, IdValidityChange, LONG_TERM,
    LookupRequest,
};
use kiosk_idcard::idnumber::{matches_on_file, validate18};
use kiosk_idcard::mask::MaskPolicy;
use kiosk_idcard::{CardType, Identity, Validity};
use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use super::messages::{CounterReason, Refusal};
use crate::store::AuditAction;

/// A failed call to the core bank, as the daemon's client reports it.
pub type BankFailure = CoreBankError;

/// Rule I9: updates accepted only from `days_before` the old card's
/// expiry to `days_after` it (one large bank: 30 and 90).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateWindow {
    pub days_before: u32,
    pub days_after: u32,
}

/// The core bank's `id_type` for a card.
pub fn id_type(card: CardType) -> IdType {
    match card {
        CardType::Resident => IdType::Resident,
        CardType::ForeignPermanent2017 | CardType::ForeignPermanent2023 => IdType::ForeignPermanent,
        CardType::HkMoTwResidence => IdType::HkMoTwResidence,
    }
}

/// `2040-01-01` or `long_term`, as the core bank writes it.
pub fn validity_text(v: Validity) -> String {
    match v {
        Validity::Until(d) => d.format("%Y-%m-%d").to_string(),
        Validity::LongTerm => LONG_TERM.to_string(),
    }
}

/// `2040-01-01` or `长期 long-term`, for screens and slips.
pub fn validity_display(v: Validity) -> String {
    match v {
        Validity::Until(d) => d.format("%Y-%m-%d").to_string(),
        Validity::LongTerm => "长期 long-term".to_string(),
    }
}

pub fn parse_validity(text: &str) -> Option<Validity> {
    if text.trim() == LONG_TERM {
        Some(Validity::LongTerm)
    } else {
        parse_date(text).map(Validity::Until)
    }
}

pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// The name the card is looked up and compared by: the Chinese name, or
/// the English one on a foreign card without a Chinese name.
pub fn card_name(identity: &Identity) -> &str {
    let name = identity.name.trim();
    if name.is_empty() {
        identity.english_name.as_deref().unwrap_or("").trim()
    } else {
        name
    }
}

/// The card's name, masked.
pub fn masked_name(identity: &Identity, mask: &MaskPolicy) -> String {
    mask.name(card_name(identity))
}

/// Rules I1, I2, I4 on a card read by the reader.
pub fn check_card(identity: &Identity, today: NaiveDate) -> Result<(), Refusal> {
    // Rule I2: 18-digit numbers (resident cards, residence permits, the
    // 2023 foreign card); the 2017 foreign card's 15 characters are three
    // letters (nationality) and twelve digits, without a check digit.
    let number_ok = match identity.card_type {
        CardType::Resident | CardType::HkMoTwResidence | CardType::ForeignPermanent2023 => {
            validate18(&identity.number).is_ok()
        }
        CardType::ForeignPermanent2017 => {
            let b = identity.number.as_bytes();
            b.len() == 15
                && b[..3].iter().all(u8::is_ascii_uppercase)
                && b[3..].iter().all(u8::is_ascii_digit)
        }
    };
    if !number_ok {
        return Err(Refusal::BadCard);
    }
    // Rule I4: in the branch's time zone; long-term never expires.
    if identity.is_expired(today) {
        return Err(Refusal::ExpiredCard {
            valid_until: validity_text(identity.valid_until),
        });
    }
    Ok(())
}

/// The lookup for a card.
pub fn lookup_request(identity: &Identity) -> LookupRequest {
    LookupRequest {
        id_type: id_type(identity.card_type),
        id_number: identity.number.clone(),
        name: card_name(identity).to_string(),
    }
}

/// Names compare after trimming, with runs of white space as one space
/// and Latin letters in any case.
pub(super) fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        Zeroizing::new(
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase(),
        )
    };
    let (a, b) = (norm(a), norm(b));
    !a.is_empty() && a == b
}

/// Rules I3, I5, I6 on the record the bank found for a card.
pub fn check_record(identity: &Identity, customer: &Customer) -> Result<(), CounterReason> {
    // Rule I5 first: a record of another document type (a temporary ID
    // card, "other") is never changed here.
    if customer.id_type != id_type(identity.card_type) {
        return Err(CounterReason::DocumentTypeMismatch);
    }
    // Rule I3: the bank matched the number; check it anyway, the 15-digit
    // form included.
    if !matches_on_file(&identity.number, &customer.id_number_on_file) {
        return Err(CounterReason::IdNumberMismatch);
    }
    // Rule I6.
    if !same_name(card_name(identity), &customer.name) {
        return Err(CounterReason::NameMismatch);
    }
    Ok(())
}

/// Wipe the personal strings of a lookup answer (rule S2).
pub fn scrub(customer: &mut Customer) {
    customer.name.zeroize();
    customer.id_number_on_file.zeroize();
    customer.mobile_masked.zeroize();
    if let Some(q) = customer.security_question.as_mut() {
        q.zeroize();
    }
}

/// A failed lookup as a refusal: the bank unreachable (C3), no such
/// customer, or the bank's own name check (I6).
pub fn lookup_refusal(error: &BankFailure) -> Refusal {
    match error {
        e if e.is_transient() => Refusal::BankUnreachable,
        CoreBankError::NotFound { .. } => Refusal::Counter(CounterReason::CustomerNotFound),
        CoreBankError::Rejected { code, .. } if code == "name_mismatch" => {
            Refusal::Counter(CounterReason::NameMismatch)
        }
        CoreBankError::Locked => Refusal::Counter(CounterReason::Locked),
        other => Refusal::Counter(CounterReason::BankRecord {
            code: other.code().unwrap_or("bank_error").to_string(),
        }),
    }
}

/// The audit action of a refusal.
pub fn refusal_action(refusal: &Refusal) -> AuditAction {
    if refusal.is_counter_referral() {
        AuditAction::SentToCounter
    } else {
        AuditAction::VerificationFailed
    }
}

/// Rules I3, I5, I6, the bank's `self_service.id_update`, I7 and I9 on
/// the record the bank found for a card: may the card's validity replace
/// the one on file? `Ok` holds the validity on file. The smart teller asks
/// the customer to confirm; a queue machine records it at once (rule Q3).
pub fn update_allowed(
    identity: &Identity,
    customer: &Customer,
    today: NaiveDate,
    window: Option<UpdateWindow>,
) -> Result<ValidityOnFile, Refusal> {
    check_record(identity, customer).map_err(Refusal::Counter)?;
    if !customer.self_service.id_update {
        return Err(Refusal::Counter(CounterReason::NotAllowed {
            reason: customer.self_service.reason.clone(),
        }));
    }
    let (Some(valid_from), Some(valid_until)) = (
        parse_date(&customer.id_valid_from),
        parse_validity(&customer.id_valid_until),
    ) else {
        return Err(Refusal::Counter(CounterReason::BankRecord {
            code: "validity_on_file_unreadable".into(),
        }));
    };
    // Rule I7.
    match validity_update_decision(
        identity.valid_until,
        identity.valid_from,
        valid_until,
        valid_from,
    ) {
        ValidityDecision::Newer => {}
        ValidityDecision::Same => return Err(Refusal::AlreadyUpToDate),
        ValidityDecision::Older => return Err(Refusal::OldCard),
    }
    // Rule I9: around the old card's expiry. A long-term record (a
    // reissued long-term card) has no expiry to be near: no window.
    if let (Some(window), Validity::Until(expiry)) = (window, valid_until) {
        // A date at the calendar's edge (the bank's answer) saturates.
        let opens = expiry
            .checked_sub_days(Days::new(u64::from(window.days_before)))
            .unwrap_or(NaiveDate::MIN);
        let closes = expiry
            .checked_add_days(Days::new(u64::from(window.days_after)))
            .unwrap_or(NaiveDate::MAX);
        if today < opens || today > closes {
            return Err(Refusal::OutsideUpdateWindow {
                opens: opens.format("%Y-%m-%d").to_string(),
                closes: closes.format("%Y-%m-%d").to_string(),
            });
        }
    }
    Ok(ValidityOnFile {
        valid_from,
        valid_until,
    })
}

/// The validity period on file, as [`update_allowed`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidityOnFile {
    pub valid_from: NaiveDate,
    pub valid_until: Validity,
}

/// The change that records a card's validity (what the bank receives;
/// `Debug` redacts it).
pub fn id_validity_change(identity: &Identity, evidence: &CardEvidence) -> ChangeKind {
    ChangeKind::IdValidity {
        id_validity: IdValidityChange {
            id_type: id_type(identity.card_type),
            id_number: identity.number.clone(),
            valid_from: identity.valid_from.format("%Y-%m-%d").to_string(),
            valid_until: validity_text(identity.valid_until),
            issuer: identity.issuer.clone(),
            card_evidence: evidence.clone(),
        },
    }
}

/// Rule I7: how a card's validity period compares with the one on file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidityDecision {
    /// The card is newer: record the update (at a queue machine at once,
    /// without a confirmation screen, rule Q3) and sync it.
    Newer,
    /// The same period: already up to date, nothing to record.
    Same,
    /// An old card: refused, nothing recorded.
    Older,
}

impl ValidityDecision {
    /// `newer`, `up_to_date`, `older_card`.
    pub fn code(self) -> &'static str {
        match self {
            ValidityDecision::Newer => "newer",
            ValidityDecision::Same => "up_to_date",
            ValidityDecision::Older => "older_card",
        }
    }

    /// Is an update recorded?
    pub fn records_update(self) -> bool {
        self == ValidityDecision::Newer
    }
}

/// Rule I7: compare a card's validity period with the one on file.
/// `long_term` (长期) is later than any date.
///
/// * **Older** when the card's period starts before the one on file (an
///   old card, replaced since: the core bank answers `stale_card`) or
///   ends before it.
/// * **Same** when both ends are equal.
/// * **Newer** otherwise: neither end earlier, at least one later (a
///   reissued long-term card has a later start and the same end).
pub fn validity_update_decision(
    card_valid_until: Validity,
    card_valid_from: NaiveDate,
    on_file_valid_until: Validity,
    on_file_valid_from: NaiveDate,
) -> ValidityDecision {
    if card_valid_from < on_file_valid_from || card_valid_until < on_file_valid_until {
        ValidityDecision::Older
    } else if card_valid_from == on_file_valid_from && card_valid_until == on_file_valid_until {
        ValidityDecision::Same
    } else {
        ValidityDecision::Newer
    }
}
