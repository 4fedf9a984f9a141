//! The simulator's customers: a TOML fixture file (the built-in one is
//! `sim/fixtures/customers.toml`), synthetic customers for load tests, and
//! the cards of the fixture's special cases (`sim/fixtures/cards/*.toml`).
//!
//! Customers are loaded into the database when it is created and whenever
//! the simulator starts (`INSERT OR IGNORE` by customer id, so a restart
//! never undoes what the simulator has changed since), and again by a reset.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{Days, NaiveDate};
use kiosk_corebank::IdType;
use serde::{Deserialize, Serialize};

use crate::profile::CardProfile;
use crate::{Result, SimError};

/// The built-in fixture file.
pub const BUILTIN_CUSTOMERS: &str = include_str!("../../fixtures/customers.toml");

/// Cards of the built-in fixture's special cases: profile name and file.
const SPECIAL_CARDS: &[(&str, &str)] = &[
    (
        "temporary-on-file",
        include_str!("../../fixtures/cards/temporary-on-file.toml"),
    ),
    (
        "name-mismatch",
        include_str!("../../fixtures/cards/name-mismatch.toml"),
    ),
    (
        "no-question",
        include_str!("../../fixtures/cards/no-question.toml"),
    ),
    (
        "mobile-restricted",
        include_str!("../../fixtures/cards/mobile-restricted.toml"),
    ),
    (
        "superseded",
        include_str!("../../fixtures/cards/superseded.toml"),
    ),
    (
        "stale-card",
        include_str!("../../fixtures/cards/stale-card.toml"),
    ),
    (
        "id-update-restricted",
        include_str!("../../fixtures/cards/id-update-restricted.toml"),
    ),
];

/// One customer record as the bank holds it at the start.
///
/// `Debug` shows the id, document type, validity and flags, never the name,
/// number, mobile or security answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRecord {
    pub customer_id: String,
    /// The card profile this customer goes with (documentation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// What the customer is for (documentation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub name: String,
    pub id_type: IdType,
    /// The number on file: 18 digits, an old 15-digit one, or a foreign
    /// card's number.
    pub id_number: String,
    /// `YYYY-MM-DD`.
    pub valid_from: String,
    /// `YYYY-MM-DD` or `long_term` (`长期` is accepted on input).
    pub valid_until: String,
    #[serde(default)]
    pub issuer: String,
    /// 11 digits.
    pub mobile: String,
    #[serde(default)]
    pub security_question: Option<String>,
    #[serde(default)]
    pub security_answer: Option<String>,
    #[serde(default = "yes")]
    pub id_update: bool,
    #[serde(default = "yes")]
    pub mobile_change: bool,
    /// Why `id_update` or `mobile_change` is false.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default = "standard")]
    pub tier: String,
}

fn yes() -> bool {
    true
}

fn standard() -> String {
    "standard".into()
}

impl fmt::Debug for CustomerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerRecord")
            .field("customer_id", &self.customer_id)
            .field("profile", &self.profile)
            .field("id_type", &self.id_type)
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .field("id_update", &self.id_update)
            .field("mobile_change", &self.mobile_change)
            .finish_non_exhaustive()
    }
}

/// A set of customers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(rename = "customer", default)]
    pub customers: Vec<CustomerRecord>,
}

/// Where the simulator's customers come from.
#[derive(Debug, Clone, Default)]
pub enum FixtureSource {
    /// `sim/fixtures/customers.toml`, built in.
    #[default]
    Builtin,
    /// A fixture file in the same format.
    File(PathBuf),
    /// Customers built by the caller.
    Inline(Fixtures),
}

impl FixtureSource {
    /// Load and check the customers.
    pub fn load(&self) -> Result<Fixtures> {
        match self {
            FixtureSource::Builtin => Ok(Fixtures::builtin()),
            FixtureSource::File(path) => Fixtures::load(path),
            FixtureSource::Inline(f) => {
                f.validate()?;
                Ok(f.clone())
            }
        }
    }
}

impl Fixtures {
    /// The built-in customers (`sim/fixtures/customers.toml`).
    pub fn builtin() -> Fixtures {
        Fixtures::from_toml(BUILTIN_CUSTOMERS).expect("the built-in fixture file is valid (tested)")
    }

    /// Load a fixture file.
    pub fn load(path: impl AsRef<Path>) -> Result<Fixtures> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(SimError::io(format!("reading {}", path.display())))?;
        Fixtures::from_toml(&text)
    }

    /// Parse and check fixture TOML.
    pub fn from_toml(text: &str) -> Result<Fixtures> {
        let mut f: Fixtures = toml::from_str(text).map_err(|e| SimError::Config(e.to_string()))?;
        for c in &mut f.customers {
            if c.valid_until.trim() == "长期" {
                c.valid_until = kiosk_corebank::LONG_TERM.to_string();
            }
        }
        f.validate()?;
        Ok(f)
    }

    /// `n` synthetic customers for load tests: ids `S000001`..., valid
    /// 18-digit resident numbers (region 110101, born from 1960-01-01 on,
    /// a thousand per birth date), names `合成客户N`, mobiles `139` + 8
    /// digits, validity 2005-01-01..2025-01-01 on file (so any card valid
    /// from 2025-01-01 on applies), security question `合成问题?` with the
    /// answer `答案`. Customer `i` (from 0) is `synthetic_customer(i)`.
    pub fn synthetic(n: usize) -> Fixtures {
        Fixtures {
            customers: (0..n).map(synthetic_customer).collect(),
        }
    }

    /// These customers followed by `other`'s.
    pub fn extend(&mut self, other: Fixtures) {
        self.customers.extend(other.customers);
    }

    /// The customer with this id.
    pub fn get(&self, customer_id: &str) -> Option<&CustomerRecord> {
        self.customers.iter().find(|c| c.customer_id == customer_id)
    }

    /// The customer that goes with this card profile.
    pub fn for_profile(&self, profile: &str) -> Option<&CustomerRecord> {
        self.customers
            .iter()
            .find(|c| c.profile.as_deref() == Some(profile))
    }

    /// Check every record: unique ids and numbers, dates, mobiles.
    pub fn validate(&self) -> Result<()> {
        let mut ids = HashSet::new();
        let mut numbers = HashSet::new();
        for c in &self.customers {
            let bad =
                |reason: &str| SimError::Config(format!("customer {}: {reason}", c.customer_id));
            if c.customer_id.trim().is_empty() {
                return Err(SimError::Config("a customer has no customer_id".into()));
            }
            if !ids.insert(c.customer_id.as_str()) {
                return Err(bad("duplicate customer_id"));
            }
            if c.id_number.trim().is_empty() {
                return Err(bad("empty id_number"));
            }
            if !numbers.insert(number_key(&c.id_number)) {
                return Err(bad("another customer has the same id_number"));
            }
            if c.name.trim().is_empty() {
                return Err(bad("empty name"));
            }
            NaiveDate::parse_from_str(&c.valid_from, "%Y-%m-%d")
                .map_err(|_| bad("valid_from is not YYYY-MM-DD"))?;
            ValidUntil::parse(&c.valid_until)
                .ok_or_else(|| bad("valid_until is neither YYYY-MM-DD nor long_term"))?;
            if !is_mobile(&c.mobile) {
                return Err(bad("mobile is not an 11-digit mainland number"));
            }
            if c.security_question.is_some() != c.security_answer.is_some() {
                return Err(bad("security_question and security_answer go together"));
            }
        }
        Ok(())
    }

    /// Cards of the built-in fixture's special cases (`sim/fixtures/cards/`):
    /// `temporary-on-file`, `name-mismatch`, `no-question`,
    /// `mobile-restricted`, `superseded`, `stale-card`,
    /// `id-update-restricted`. The built-in card profiles
    /// (`CardProfile::builtins`) go with customers C000001..C000013.
    pub fn special_cards() -> Vec<CardProfile> {
        SPECIAL_CARDS
            .iter()
            .map(|(n, t)| CardProfile::from_toml(n, t).expect("special cards parse (tested)"))
            .collect()
    }

    /// One card of [`Fixtures::special_cards`] by name.
    pub fn special_card(name: &str) -> Result<CardProfile> {
        let (name, text) = SPECIAL_CARDS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| SimError::UnknownProfile(name.to_string()))?;
        CardProfile::from_toml(name, text)
    }
}

/// Synthetic customer `i` (from 0); see [`Fixtures::synthetic`].
pub fn synthetic_customer(i: usize) -> CustomerRecord {
    let birth = NaiveDate::from_ymd_opt(1960, 1, 1)
        .and_then(|d| d.checked_add_days(Days::new((i / 1000) as u64)))
        .expect("synthetic birth dates stay in range");
    let first17 = format!("110101{}{:03}", birth.format("%Y%m%d"), i % 1000);
    let check = kiosk_idcard::idnumber::check_char(&first17)
        .expect("17 digits always have a check character");
    CustomerRecord {
        customer_id: format!("S{:06}", i + 1),
        profile: None,
        note: Some("synthetic (load tests)".into()),
        name: format!("合成客户{}", i + 1),
        id_type: IdType::Resident,
        id_number: format!("{first17}{check}"),
        valid_from: "2005-01-01".into(),
        valid_until: "2025-01-01".into(),
        issuer: "北京市公安局东城分局".into(),
        mobile: format!("139{:08}", (i + 1) % 100_000_000),
        security_question: Some("合成问题?".into()),
        security_answer: Some("答案".into()),
        id_update: true,
        mobile_change: true,
        reason: None,
        tier: "standard".into(),
    }
}

/// An 11-digit mainland mobile number: `1[3-9]` then 9 digits.
pub fn is_mobile(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

/// The key a number is indexed by: upper case, and an old 15-digit number
/// converted to its 18-digit form (rule I3), so a card's 18-digit number
/// finds a 15-digit one on file with one index look-up.
pub fn number_key(number: &str) -> String {
    let n = number.trim().to_ascii_uppercase();
    if n.len() == 15
        && n.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n18) = kiosk_idcard::idnumber::convert15to18(&n)
    {
        return n18.to_ascii_uppercase();
    }
    n
}

/// A card's validity end as the interface writes it: `YYYY-MM-DD` or
/// `long_term`.
pub fn card_valid_until(v: kiosk_idcard::Validity) -> String {
    match v {
        kiosk_idcard::Validity::Until(d) => d.format("%Y-%m-%d").to_string(),
        kiosk_idcard::Validity::LongTerm => kiosk_corebank::LONG_TERM.to_string(),
    }
}

/// The end of a validity period; `LongTerm` is later than any date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ValidUntil {
    Date(NaiveDate),
    LongTerm,
}

impl ValidUntil {
    /// `YYYY-MM-DD`, `long_term` or `长期`.
    pub fn parse(s: &str) -> Option<ValidUntil> {
        let s = s.trim();
        if s == kiosk_corebank::LONG_TERM || s == "长期" {
            return Some(ValidUntil::LongTerm);
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(ValidUntil::Date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_numbers_are_valid_and_distinct() {
        let f = Fixtures::synthetic(3000);
        f.validate().unwrap();
        for c in &f.customers {
            kiosk_idcard::idnumber::validate18(&c.id_number).unwrap();
        }
        let mut all = Fixtures::builtin();
        all.extend(f);
        all.validate().unwrap();
    }

    #[test]
    fn fifteen_digit_numbers_are_indexed_by_their_18_digit_form() {
        assert_eq!(number_key("110102500512002"), "110102195005120025");
        assert_eq!(number_key("11010119880808001x"), "11010119880808001X");
        assert_eq!(number_key("USA110090010112"), "USA110090010112");
    }

    fn card_until(p: &CardProfile) -> ValidUntil {
        ValidUntil::parse(&card_valid_until(p.identity.valid_until)).unwrap()
    }

    fn record_until(c: &CustomerRecord) -> ValidUntil {
        ValidUntil::parse(&c.valid_until).unwrap()
    }

    #[test]
    fn every_built_in_card_has_a_customer_holding_an_older_validity() {
        let f = Fixtures::builtin();
        for p in CardProfile::builtins() {
            let c = f
                .for_profile(&p.name)
                .unwrap_or_else(|| panic!("no customer for {}", p.name));
            assert!(
                kiosk_idcard::idnumber::matches_on_file(&p.identity.number, &c.id_number),
                "{}",
                p.name
            );
            assert_eq!(c.name, p.identity.name, "{}", p.name);
            assert_eq!(c.id_type, id_type_of(&p), "{}", p.name);
            assert!(record_until(c) < card_until(&p), "{}", p.name);
            assert!(
                c.valid_from < p.identity.valid_from.to_string(),
                "{}",
                p.name
            );
        }
        let fifteen = f.for_profile("resident-longterm").unwrap();
        assert_eq!(fifteen.id_number.len(), 15);
    }

    fn id_type_of(p: &CardProfile) -> IdType {
        serde_json::from_value(serde_json::Value::String(
            p.identity.card_type.corebank_id_type().into(),
        ))
        .unwrap()
    }

    #[test]
    fn every_special_card_has_its_customer() {
        let f = Fixtures::builtin();
        let cards = Fixtures::special_cards();
        assert_eq!(cards.len(), SPECIAL_CARDS.len());
        for p in &cards {
            let c = f
                .for_profile(&p.name)
                .unwrap_or_else(|| panic!("no customer for {}", p.name));
            kiosk_idcard::idnumber::validate18(&p.identity.number).unwrap();
            assert!(kiosk_idcard::idnumber::matches_on_file(
                &p.identity.number,
                &c.id_number
            ));
            let from = p.identity.valid_from.to_string();
            match p.name.as_str() {
                "name-mismatch" => assert_ne!(c.name, p.identity.name),
                _ => assert_eq!(c.name, p.identity.name, "{}", p.name),
            }
            match p.name.as_str() {
                "temporary-on-file" => assert_eq!(c.id_type, IdType::Temporary),
                _ => assert_eq!(c.id_type, IdType::Resident, "{}", p.name),
            }
            match p.name.as_str() {
                "superseded" => {
                    assert_eq!(record_until(c), card_until(p));
                    assert_eq!(c.valid_from, from);
                }
                "stale-card" => assert!(c.valid_from > from),
                _ => assert!(record_until(c) < card_until(p), "{}", p.name),
            }
        }
        assert!(
            f.for_profile("no-question")
                .unwrap()
                .security_question
                .is_none()
        );
        let restricted = f.for_profile("mobile-restricted").unwrap();
        assert!(!restricted.mobile_change && restricted.reason.is_some());
        let restricted = f.for_profile("id-update-restricted").unwrap();
        assert!(!restricted.id_update && restricted.reason.is_some());
        // Every customer has a mobile and, but one, a security question.
        assert_eq!(
            f.customers
                .iter()
                .filter(|c| c.security_question.is_none())
                .count(),
            1
        );
    }

    /// The cards' validity is fixed in their files, while the kiosk checks
    /// it against today (rule I4): a card meant to be valid that expires
    /// turns flow and UI tests red with a screen that says nothing of why.
    /// This test fails first, a quarter ahead, naming the file to change.
    #[test]
    fn rule_i4_every_card_meant_to_be_valid_stays_valid_for_another_quarter() {
        let today = chrono::Utc::now().date_naive();
        let horizon = today + chrono::Days::new(90);
        for p in CardProfile::builtins()
            .into_iter()
            .chain(Fixtures::special_cards())
        {
            let kiosk_idcard::Validity::Until(until) = p.identity.valid_until else {
                continue;
            };
            if p.name == "resident-expired" {
                assert!(until < today, "{} must stay expired", p.name);
                continue;
            }
            assert!(
                until > horizon,
                "card {} is valid until {until}, less than 90 days from now: move its \
                 valid_from and valid_until (sim/profiles/ or sim/fixtures/cards/) forward \
                 by whole years, and its customer's validity on file \
                 (sim/fixtures/customers.toml) with them",
                p.name
            );
        }
    }

    #[test]
    fn long_term_is_later_than_any_date() {
        let d = ValidUntil::parse("2099-12-31").unwrap();
        assert!(ValidUntil::parse("long_term").unwrap() > d);
        assert_eq!(ValidUntil::parse("长期"), Some(ValidUntil::LongTerm));
        assert_eq!(ValidUntil::parse("2099-13-01"), None);
    }
}
