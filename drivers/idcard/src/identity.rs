//! The 256-byte UCS-2 LE text block of each card type.
//!
//! The card type flag is the UCS-2 character at byte offset 248:
//! space for a mainland resident card, `I` for the 2017 foreign permanent
//! resident card, `Y` for the 2023 one, `J` for the Hong Kong/Macao/Taiwan
//! residence permit. Field layouts (byte offsets, lengths) are documented on
//! each decoder.
//!
//! Fields are UCS-2 little-endian, padded with spaces (`20 00`); decoding
//! trims trailing spaces and NULs, encoding pads with spaces. Each layout is
//! a table of `(field, offset, length)` so [`Identity::decode`] and
//! [`Identity::encode`] read the same table and cannot disagree.

use chrono::{Datelike, NaiveDate};
use thiserror::Error;
use zeroize::Zeroize;

use crate::mask::MaskPolicy;

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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
    // Rule S1: Debug output ends up in logs, so personal fields are masked
    // with the default policy; the card type and validity (which flows and
    // technicians need to see) are shown as they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = MaskPolicy::default();
        let hide = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("Identity")
            .field("card_type", &self.card_type)
            .field("name", &mask.name(&self.name))
            .field(
                "english_name",
                &self.english_name.as_deref().map(|n| mask.name(n)),
            )
            .field("sex", &self.sex)
            .field("ethnic_code", &hide(&self.ethnic_code))
            .field("nationality", &hide(&self.nationality))
            .field("birth_date", &mask.birth_date())
            .field("address", &self.address.as_deref().map(|a| mask.address(a)))
            .field("number", &mask.id_number(&self.number))
            .field("issuer", &self.issuer)
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .field(
                "pass_number",
                &self.pass_number.as_deref().map(|n| mask.id_number(n)),
            )
            .field("issue_count", &self.issue_count)
            .finish()
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
    ///
    /// Required fields (number; name on resident cards and residence
    /// permits; dates) that are blank give [`IdentityError::Missing`];
    /// optional ones that are blank decode to `None`. The sex code is read
    /// leniently (anything but `1`/`2` is [`Sex::Unknown`]): no rule uses it,
    /// so a smudged code should not refuse an otherwise good card.
    pub fn decode(text: &[u8]) -> Result<Identity, IdentityError> {
        let block: &[u8; TEXT_BLOCK_LEN] = text
            .try_into()
            .map_err(|_| IdentityError::Length(text.len()))?;
        let card_type = card_type_of(block)?;
        let layout = Layout::of(card_type);
        let get = |field: Field| -> Result<Option<String>, IdentityError> {
            match layout.range(field) {
                Some(range) => {
                    let s = decode_ucs2(&block[range], field.name())?;
                    Ok((!s.is_empty()).then_some(s))
                }
                None => Ok(None),
            }
        };
        let required = |field: Field| {
            get(field)?.ok_or(IdentityError::Missing {
                field: field.name(),
            })
        };

        let name = if card_type.is_foreign() {
            get(Field::Name)?.unwrap_or_default()
        } else {
            required(Field::Name)?
        };
        let birth_date = required(Field::BirthDate)?;
        parse_date(&birth_date).ok_or(IdentityError::Date {
            field: Field::BirthDate.name(),
        })?;
        let valid_from = required(Field::ValidFrom)?;
        let valid_from = parse_date(&valid_from).ok_or(IdentityError::Date {
            field: Field::ValidFrom.name(),
        })?;
        let valid_until = required(Field::ValidUntil)?;
        let valid_until = parse_validity(&valid_until).ok_or(IdentityError::Date {
            field: Field::ValidUntil.name(),
        })?;

        Ok(Identity {
            card_type,
            name,
            english_name: english_name(block, &layout)?,
            sex: Sex::from_code(get(Field::Sex)?.as_deref()),
            ethnic_code: get(Field::Ethnic)?,
            nationality: get(Field::Nationality)?,
            birth_date,
            address: get(Field::Address)?,
            number: required(Field::Number)?,
            issuer: get(Field::Issuer)?.unwrap_or_default(),
            valid_from,
            valid_until,
            pass_number: get(Field::PassNumber)?,
            issue_count: get(Field::IssueCount)?,
        })
    }
    /// Encode into a 256-byte text block (simulators, round-trip tests).
    ///
    /// The inverse of [`Identity::decode`] for identities that fit their
    /// card's layout. Values too long for their field are cut at the field's
    /// end; fields the card type has no room for are not written.
    pub fn encode(&self) -> [u8; 256] {
        let mut block = [0u8; TEXT_BLOCK_LEN];
        for pair in block.chunks_exact_mut(2) {
            pair.copy_from_slice(&[0x20, 0x00]);
        }
        let layout = Layout::of(self.card_type);
        let valid_from = format_date(self.valid_from);
        let valid_until = match self.valid_until {
            Validity::Until(date) => format_date(date),
            Validity::LongTerm => LONG_TERM.to_string(),
        };
        let sex = self.sex.code().to_string();
        let flag = self.card_type.flag().to_string();
        let values: [(Field, Option<&str>); 14] = [
            (Field::Name, Some(&self.name)),
            (Field::EnglishName, self.english_name.as_deref()),
            (Field::Sex, Some(&sex)),
            (Field::Ethnic, self.ethnic_code.as_deref()),
            (Field::Nationality, self.nationality.as_deref()),
            (Field::BirthDate, Some(&self.birth_date)),
            (Field::Address, self.address.as_deref()),
            (Field::Number, Some(&self.number)),
            (Field::Issuer, Some(&self.issuer)),
            (Field::ValidFrom, Some(&valid_from)),
            (Field::ValidUntil, Some(&valid_until)),
            (Field::PassNumber, self.pass_number.as_deref()),
            (Field::IssueCount, self.issue_count.as_deref()),
            (Field::Flag, Some(&flag)),
        ];
        for (field, value) in values {
            if let (Some(range), Some(value)) = (layout.range(field), value) {
                encode_ucs2(value, &mut block[range]);
            }
        }
        // A long English name runs on from its first field into the second,
        // as one UTF-16 text (a surrogate pair may straddle the seam).
        if let (Some(head), Some(tail), Some(name)) = (
            layout.range(Field::EnglishName),
            layout.range(Field::EnglishNameTail),
            self.english_name.as_deref(),
        ) {
            let mut both = vec![0u8; head.len() + tail.len()];
            encode_ucs2(name, &mut both);
            let (first, rest) = both.split_at(head.len());
            block[head].copy_from_slice(first);
            block[tail].copy_from_slice(rest);
        }
        block
    }
    /// Name of the ethnic group, e.g. `汉` for `01`.
    pub fn ethnic_name(&self) -> Option<&'static str> {
        self.ethnic_code.as_deref().and_then(ethnic_name)
    }
    /// A fictitious identity of each card type, with numbers that pass
    /// [`crate::idnumber::validate18`] (the 2017 foreign card's 15-character
    /// number has no check digit rule here). For simulators and tests in
    /// every crate; never real people.
    pub fn sample(card_type: CardType) -> Identity {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        let s = |v: &str| v.to_string();
        match card_type {
            // The check-digit example of GB 11643-1999.
            CardType::Resident => Identity {
                card_type,
                name: s("张三"),
                english_name: None,
                sex: Sex::Female,
                ethnic_code: Some(s("01")),
                nationality: None,
                birth_date: s("19491231"),
                address: Some(s("北京市朝阳区示例路1号")),
                number: s("11010519491231002X"),
                issuer: s("北京市公安局朝阳分局"),
                valid_from: date(2020, 1, 1),
                valid_until: Validity::Until(date(2040, 1, 1)),
                pass_number: None,
                issue_count: None,
            },
            CardType::ForeignPermanent2017 => Identity {
                card_type,
                name: s("多伊"),
                english_name: Some(s("DOE, JANE")),
                sex: Sex::Female,
                ethnic_code: None,
                nationality: Some(s("CAN")),
                birth_date: s("19810101"),
                address: None,
                number: s("CAN310081010112"),
                issuer: s("3100"),
                valid_from: date(2017, 6, 1),
                valid_until: Validity::Until(date(2027, 6, 1)),
                pass_number: None,
                issue_count: Some(s("01")),
            },
            CardType::ForeignPermanent2023 => Identity {
                card_type,
                name: s("多伊"),
                english_name: Some(s("DOE, JOHN")),
                sex: Sex::Male,
                ethnic_code: None,
                nationality: Some(s("USA")),
                birth_date: s("19800101"),
                address: None,
                number: s("931840198001011239"),
                issuer: String::new(),
                valid_from: date(2023, 12, 1),
                valid_until: Validity::Until(date(2033, 12, 1)),
                pass_number: None,
                issue_count: Some(s("02")),
            },
            CardType::HkMoTwResidence => Identity {
                card_type,
                name: s("陈大文"),
                english_name: None,
                sex: Sex::Male,
                ethnic_code: None,
                nationality: None,
                birth_date: s("19900101"),
                address: Some(s("广东省深圳市福田区示例路2号")),
                number: s("810000199001011230"),
                issuer: s("深圳市公安局福田分局"),
                valid_from: date(2021, 3, 15),
                valid_until: Validity::Until(date(2026, 3, 15)),
                pass_number: Some(s("H01234567")),
                issue_count: Some(s("01")),
            },
        }
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
    let n: usize = match code.as_bytes() {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => usize::from(a - b'0') * 10 + usize::from(b - b'0'),
        _ => return None,
    };
    match n {
        1..=56 => Some(ETHNIC_GROUPS[n - 1]),
        97 => Some("其他"),
        98 => Some("外国血统中国籍人士"),
        _ => None,
    }
}

/// GB 3304 codes 01..=56, in code order, ten a row.
#[rustfmt::skip]
const ETHNIC_GROUPS: [&str; 56] = [
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜",
    "满", "侗", "瑶", "白", "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳",
    "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土",
    "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米",
    "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔",
    "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
];

/// Decode an appended-address block (`30 03`, normally 70 bytes). A SAM
/// answers with no data, or a blank block, when the card has no appended
/// address: both give an empty string.
pub fn decode_appended_address(data: &[u8]) -> Result<String, IdentityError> {
    decode_ucs2(data, "appended_address")
}

/// Encode an appended address as a 70-byte block (simulators, tests); cut
/// at 35 characters.
pub fn encode_appended_address(address: &str) -> [u8; APPENDED_ADDRESS_LEN] {
    let mut block = [0u8; APPENDED_ADDRESS_LEN];
    encode_ucs2(address, &mut block);
    block
}

/// Length of the text block.
pub const TEXT_BLOCK_LEN: usize = 256;
/// Length of an appended-address block.
pub const APPENDED_ADDRESS_LEN: usize = 70;
/// Byte offset of the card type flag.
pub const FLAG_OFFSET: usize = 248;
/// What the card says for a validity without end.
pub const LONG_TERM: &str = "长期";

impl CardType {
    /// All card types, for tests and simulators.
    pub const ALL: [CardType; 4] = [
        CardType::Resident,
        CardType::ForeignPermanent2017,
        CardType::ForeignPermanent2023,
        CardType::HkMoTwResidence,
    ];
    /// The type flag character at [`FLAG_OFFSET`] (a space for a resident card).
    pub fn flag(self) -> char {
        match self {
            CardType::Resident => ' ',
            CardType::ForeignPermanent2017 => 'I',
            CardType::ForeignPermanent2023 => 'Y',
            CardType::HkMoTwResidence => 'J',
        }
    }
    /// The card type of a flag character, if the kiosk reads that type.
    pub fn from_flag(flag: char) -> Option<CardType> {
        match flag {
            ' ' | '\0' => Some(CardType::Resident),
            'I' => Some(CardType::ForeignPermanent2017),
            'Y' => Some(CardType::ForeignPermanent2023),
            'J' => Some(CardType::HkMoTwResidence),
            _ => None,
        }
    }
    fn is_foreign(self) -> bool {
        matches!(
            self,
            CardType::ForeignPermanent2017 | CardType::ForeignPermanent2023
        )
    }
}

impl Sex {
    /// The GB/T 2261.1 code written on cards: `1`, `2`, `0` for unknown.
    pub fn code(self) -> char {
        match self {
            Sex::Male => '1',
            Sex::Female => '2',
            Sex::Unknown => '0',
        }
    }
    fn from_code(code: Option<&str>) -> Sex {
        match code {
            Some("1") => Sex::Male,
            Some("2") => Sex::Female,
            _ => Sex::Unknown,
        }
    }
}

fn card_type_of(block: &[u8; TEXT_BLOCK_LEN]) -> Result<CardType, IdentityError> {
    let unit = u16::from_le_bytes([block[FLAG_OFFSET], block[FLAG_OFFSET + 1]]);
    let flag = char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER);
    CardType::from_flag(flag).ok_or(IdentityError::UnsupportedCardType(flag))
}

/// The text fields; each layout says where (if anywhere) a card keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    EnglishName,
    /// The rest of an English name too long for [`Field::EnglishName`].
    EnglishNameTail,
    Sex,
    Ethnic,
    Nationality,
    BirthDate,
    Address,
    Number,
    Issuer,
    ValidFrom,
    ValidUntil,
    PassNumber,
    IssueCount,
    Flag,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::EnglishName | Field::EnglishNameTail => "english_name",
            Field::Sex => "sex",
            Field::Ethnic => "ethnic_code",
            Field::Nationality => "nationality",
            Field::BirthDate => "birth_date",
            Field::Address => "address",
            Field::Number => "number",
            Field::Issuer => "issuer",
            Field::ValidFrom => "valid_from",
            Field::ValidUntil => "valid_until",
            Field::PassNumber => "pass_number",
            Field::IssueCount => "issue_count",
            Field::Flag => "flag",
        }
    }
}

/// Where a card type keeps its fields: `(field, byte offset, byte length)`.
/// Bytes no entry covers are reserved and written as spaces.
struct Layout {
    fields: &'static [(Field, usize, usize)],
}

/// 居民身份证 (flag space or NUL).
const RESIDENT: &[(Field, usize, usize)] = &[
    (Field::Name, 0, 30),
    (Field::Sex, 30, 2),
    (Field::Ethnic, 32, 4),
    (Field::BirthDate, 36, 16),
    (Field::Address, 52, 70),
    (Field::Number, 122, 36),
    (Field::Issuer, 158, 30),
    (Field::ValidFrom, 188, 16),
    (Field::ValidUntil, 204, 16),
    (Field::Flag, 248, 2),
];

/// 外国人永久居留身份证, 2017 layout (flag `I`): the card version goes to
/// `issue_count`, the issuing authority's code to `issuer`.
const FOREIGN_2017: &[(Field, usize, usize)] = &[
    (Field::EnglishName, 0, 120),
    (Field::Sex, 120, 2),
    (Field::Number, 122, 30),
    (Field::Nationality, 152, 6),
    (Field::Name, 158, 30),
    (Field::ValidFrom, 188, 16),
    (Field::ValidUntil, 204, 16),
    (Field::BirthDate, 220, 16),
    (Field::IssueCount, 236, 4),
    (Field::Issuer, 240, 8),
    (Field::Flag, 248, 2),
];

/// 外国人永久居留身份证, 2023 layout (flag `Y`), as public reader code lays
/// it out (the `t_idforeigner2023` struct of Johann356/readinfo, the
/// yzfuture SDK's `ForeignerInfoNew`): the resident card's shape, with the
/// renewal count where the ethnic group is (it goes to `issue_count`), the
/// English name in two pieces (characters 1-35 at 52, 36-46 at 220), the
/// country or region code at 242. Bytes 158-188 are reserved, 250-256
/// link to the holder's previous 15-character number (not read). The card
/// carries no issuer code (`issuer` is empty).
const FOREIGN_2023: &[(Field, usize, usize)] = &[
    (Field::Name, 0, 30),
    (Field::Sex, 30, 2),
    (Field::IssueCount, 32, 4),
    (Field::BirthDate, 36, 16),
    (Field::EnglishName, 52, 70),
    (Field::Number, 122, 36),
    (Field::ValidFrom, 188, 16),
    (Field::ValidUntil, 204, 16),
    (Field::EnglishNameTail, 220, 22),
    (Field::Nationality, 242, 6),
    (Field::Flag, 248, 2),
];

/// 港澳台居民居住证 (flag `J`): the resident layout without the ethnic
/// group (reserved), plus the pass number and the issue count.
const HK_MO_TW: &[(Field, usize, usize)] = &[
    (Field::Name, 0, 30),
    (Field::Sex, 30, 2),
    (Field::BirthDate, 36, 16),
    (Field::Address, 52, 70),
    (Field::Number, 122, 36),
    (Field::Issuer, 158, 30),
    (Field::ValidFrom, 188, 16),
    (Field::ValidUntil, 204, 16),
    (Field::PassNumber, 220, 18),
    (Field::IssueCount, 238, 4),
    (Field::Flag, 248, 2),
];

impl Layout {
    fn of(card_type: CardType) -> Layout {
        let fields = match card_type {
            CardType::Resident => RESIDENT,
            CardType::ForeignPermanent2017 => FOREIGN_2017,
            CardType::ForeignPermanent2023 => FOREIGN_2023,
            CardType::HkMoTwResidence => HK_MO_TW,
        };
        Layout { fields }
    }
    fn range(&self, field: Field) -> Option<std::ops::Range<usize>> {
        self.fields
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|&(_, off, len)| off..off + len)
    }
}

/// The English name: its field, and on the 2023 card the rest of it from
/// the second field, decoded as one text (a space at the seam belongs to
/// the name; so does a surrogate pair across it).
fn english_name(
    block: &[u8; TEXT_BLOCK_LEN],
    layout: &Layout,
) -> Result<Option<String>, IdentityError> {
    let Some(head) = layout.range(Field::EnglishName) else {
        return Ok(None);
    };
    let mut bytes = block[head].to_vec();
    if let Some(tail) = layout.range(Field::EnglishNameTail) {
        bytes.extend_from_slice(&block[tail]);
    }
    let mut name = decode_ucs2_untrimmed(&bytes, Field::EnglishName.name())?;
    trim_padding(&mut name);
    Ok((!name.is_empty()).then_some(name))
}

/// UCS-2 LE (read as UTF-16, a superset) with trailing spaces and NULs
/// trimmed. An odd length or an unpaired surrogate is an encoding error.
fn decode_ucs2(bytes: &[u8], field: &'static str) -> Result<String, IdentityError> {
    let mut s = decode_ucs2_untrimmed(bytes, field)?;
    trim_padding(&mut s);
    Ok(s)
}

fn decode_ucs2_untrimmed(bytes: &[u8], field: &'static str) -> Result<String, IdentityError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(IdentityError::Encoding { field });
    }
    let units = bytes
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| IdentityError::Encoding { field })
}

/// Drop the padding after a field's value: spaces and NULs.
fn trim_padding(s: &mut String) {
    let trimmed = s.trim_end_matches([' ', '\0']).len();
    s.truncate(trimmed);
}

/// Write `value` as UTF-16 LE into `out`, padded with spaces; cut at the
/// field's end, never inside a surrogate pair.
fn encode_ucs2(value: &str, out: &mut [u8]) {
    let mut units = Vec::with_capacity(out.len() / 2);
    for c in value.chars() {
        let mut buf = [0u16; 2];
        let encoded = c.encode_utf16(&mut buf);
        if units.len() + encoded.len() > out.len() / 2 {
            break;
        }
        units.extend_from_slice(encoded);
    }
    units.resize(out.len() / 2, 0x0020);
    for (pair, unit) in out.chunks_exact_mut(2).zip(units) {
        pair.copy_from_slice(&unit.to_le_bytes());
    }
}

/// `YYYYMMDD` → date, only for exactly eight ASCII digits.
fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = s[0..4].parse().ok()?;
    let month = s[4..6].parse().ok()?;
    let day = s[6..8].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

fn parse_validity(s: &str) -> Option<Validity> {
    if s == LONG_TERM {
        Some(Validity::LongTerm)
    } else {
        parse_date(s).map(Validity::Until)
    }
}

fn format_date(date: NaiveDate) -> String {
    format!("{:04}{:02}{:02}", date.year(), date.month(), date.day())
}
