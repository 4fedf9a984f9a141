//! The 256-byte UCS-2 LE text block of each card type.
//!
//! The card type flag is the UCS-2 character at byte offset 248:
//! space for a mainland resident card, `I` for the 2017 foreign permanent
//! resident card, `Y` for the 2023 one, `J` for the Hong Kong/Macao/Taiwan
//! residence permit. Field layouts (byte offsets, lengths) are documented on
//! each decoder.

use chrono::NaiveDate;
use thiserror::Error;
use zeroize::Zeroize;

/// Card types the kiosk reads (rule I1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardType {
    /// 居民身份证
    Resident,
    /// 外国人永久居留身份证 (2017 layout, flag `I`, 15-character number)
    ForeignPermanent2017,
    /// 外国人永久居留身份证 (2023 layout, flag `Y`, 18-digit number starting with 9)
    ForeignPermanent2023,
    /// 港澳台居民居住证 (flag `J`)
    HkMoTwResidence,
}

impl CardType {
    /// The core bank's `id_type` for this card (shared/corebank-api.md).
    pub fn corebank_id_type(self) -> &'static str {
        match self {
            CardType::Resident => "resident",
            CardType::ForeignPermanent2017 | CardType::ForeignPermanent2023 => "foreign_permanent",
            CardType::HkMoTwResidence => "hk_mo_tw_residence",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
    Unknown,
}

/// End of a card's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Until(NaiveDate),
    /// 长期
    LongTerm,
}

/// Everything the text block says. Personal fields are zeroized on drop and
/// `Debug` prints them masked.
#[derive(Clone, PartialEq, Eq, Zeroize)]
#[zeroize(drop)]
pub struct Identity {
    #[zeroize(skip)]
    pub card_type: CardType,
    /// Chinese name (may be empty on a foreign card without one).
    pub name: String,
    /// English name (foreign permanent resident cards).
    pub english_name: Option<String>,
    #[zeroize(skip)]
    pub sex: Sex,
    /// Ethnic group code (mainland cards), e.g. `01`.
    pub ethnic_code: Option<String>,
    /// Nationality code, ISO 3166-1 alpha-3 (foreign cards).
    pub nationality: Option<String>,
    /// Birth date, `YYYYMMDD` as on the card.
    pub birth_date: String,
    /// Address (resident card, residence permit).
    pub address: Option<String>,
    /// Card number (18 characters, or 15 on a 2017 foreign card).
    pub number: String,
    /// Issuing authority (name, or authority code on foreign cards).
    pub issuer: String,
    #[zeroize(skip)]
    pub valid_from: NaiveDate,
    #[zeroize(skip)]
    pub valid_until: Validity,
    /// Pass number (通行证号码, residence permit).
    pub pass_number: Option<String>,
    /// Issue count (签发次数, residence permit) or card version (foreign).
    pub issue_count: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    #[error("text block must be 256 bytes, got {0}")]
    Length(usize),
    #[error("unsupported card type flag {0:?}")]
    UnsupportedCardType(char),
    #[error("field {field} is not valid UCS-2 text")]
    Encoding { field: &'static str },
    #[error("field {field} holds no valid date")]
    Date { field: &'static str },
    #[error("field {field} is missing")]
    Missing { field: &'static str },
}

impl Identity {
    /// Decode a 256-byte text block; the type flag chooses the layout.
    pub fn decode(text: &[u8]) -> Result<Identity, IdentityError> {
        todo!()
    }
    /// Encode into a 256-byte text block (simulators, round-trip tests).
    pub fn encode(&self) -> [u8; 256] {
        todo!()
    }
    /// Name of the ethnic group, e.g. `汉` for `01`.
    pub fn ethnic_name(&self) -> Option<&'static str> {
        self.ethnic_code.as_deref().and_then(ethnic_name)
    }
    /// Is the card expired on `today` (rule I4)?
    pub fn is_expired(&self, today: NaiveDate) -> bool {
        match self.valid_until {
            Validity::LongTerm => false,
            Validity::Until(end) => end < today,
        }
    }
}

/// Name of an ethnic group code (GB 3304), e.g. `01` → `汉`.
pub fn ethnic_name(code: &str) -> Option<&'static str> {
    todo!()
}

/// Decode a 70-byte appended-address block (`30 03`).
pub fn decode_appended_address(data: &[u8]) -> Result<String, IdentityError> {
    todo!()
}
