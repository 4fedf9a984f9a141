//! Card profiles: the card a simulator holds, and how it misbehaves.
//!
//! A profile is a TOML file (see `sim/profiles/*.toml`, all of them built in
//! through `include_str!`):
//!
//! ```toml
//! description = "mainland resident card, valid until 2040"
//! uid = "5A01000000000001"        # card UID (8 bytes, hex), answered to `00 36 00 00 08`
//! photo_seed = 1                   # the 1024-byte photo is generated from this seed
//! fingerprint_seed = 106           # optional: 1024 bytes of fingerprint data
//! appended_address = "..."         # optional: the `30 03` appended address
//!
//! [fault]                          # optional, see [`Fault`]
//! kind = "slow"
//! delay_ms = 1500
//!
//! [identity]                       # every field of kiosk_idcard::Identity
//! card_type = "resident"           # resident | foreign_2017 | foreign_2023 | hkmotw
//! name = "张测试"
//! sex = "male"                     # male | female | unknown
//! ethnic_code = "01"
//! birth_date = "1990-03-07"        # YYYY-MM-DD
//! address = "..."
//! number = "110101199003070011"
//! issuer = "北京市公安局东城分局"
//! valid_from = "2020-03-07"
//! valid_until = "2040-03-07"       # or "long_term" (长期)
//! ```
//!
//! Every shipped person and number is fictional; names and numbers differ
//! between profiles so a test can tell which card a log line is about (and
//! check that it is *not* in a log).

use std::fmt;
use std::path::Path;

use chrono::NaiveDate;
use kiosk_idcard::frame::CardData;
use kiosk_idcard::identity::{APPENDED_ADDRESS_LEN, encode_appended_address};
use kiosk_idcard::{CardType, Command, Identity, Sex, Validity};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SimError};

/// Length of the photo (WLT) block.
pub const PHOTO_LEN: usize = 1024;
/// Length of the fingerprint block.
pub const FINGERPRINT_LEN: usize = 1024;

/// How a simulated SAM (or the card in it) misbehaves.
///
/// In files and on the control socket it is a table/object tagged by
/// `kind`: `{kind = "none"}`, `{kind = "bad_checksum"}`,
/// `{kind = "slow", delay_ms = 1500}`, `{kind = "pull_mid_read"}`,
/// `{kind = "sw3", command = "read_text_photo", sw3 = 0x41}` (the command by
/// name, as in [`command_name`], or by code, `"30 01"`; `sw3` a number or a
/// hex string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Behaves.
    #[default]
    None,
    /// Responses to read commands (`30 01`, `30 10`, `30 03`) carry a corrupted checksum.
    BadChecksum,
    /// Read commands are answered after `delay_ms`.
    Slow { delay_ms: u64 },
    /// The card is pulled during a read: only part of the read response is
    /// sent (the pty SAM), or the connection is closed without an answer
    /// (the virtual card); afterwards no card is present.
    PullMidRead,
    /// `command` is answered with `sw3` and no data.
    Sw3 {
        #[serde(with = "command_serde")]
        command: Command,
        #[serde(with = "sw3_serde")]
        sw3: u8,
    },
}

impl Fault {
    /// Does this fault touch `command`'s answer?
    pub fn applies_to(&self, command: Command) -> bool {
        match self {
            Fault::None => false,
            Fault::BadChecksum | Fault::Slow { .. } | Fault::PullMidRead => is_read(command),
            Fault::Sw3 { command: c, .. } => *c == command,
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = SimError;

    /// A fault from the command line: `none`, `bad_checksum`,
    /// `pull_mid_read`, `slow:MS`, `sw3:COMMAND:SW3` (command by name or
    /// code, SW3 in hex), or the JSON form (`{"kind":...}`).
    fn from_str(s: &str) -> Result<Fault> {
        let s = s.trim();
        if s.starts_with('{') {
            return serde_json::from_str(s).map_err(|e| SimError::Fault(format!("{s}: {e}")));
        }
        let bad = || {
            SimError::Fault(format!(
                "{s:?}: expected none, bad_checksum, pull_mid_read, slow:MS or sw3:COMMAND:HEX"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["none"] => Ok(Fault::None),
            ["bad_checksum" | "bad-checksum"] => Ok(Fault::BadChecksum),
            ["pull_mid_read" | "pull-mid-read" | "pulled"] => Ok(Fault::PullMidRead),
            ["slow", ms] => Ok(Fault::Slow {
                delay_ms: ms.parse().map_err(|_| bad())?,
            }),
            ["sw3", command, sw3] => Ok(Fault::Sw3 {
                command: parse_command(command).ok_or_else(bad)?,
                sw3: u8::from_str_radix(sw3.trim_start_matches("0x"), 16).map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

/// Is `command` one of the three card reads?
pub fn is_read(command: Command) -> bool {
    matches!(
        command,
        Command::ReadTextPhoto | Command::ReadTextPhotoFingerprint | Command::ReadAppendedAddress
    )
}

/// The snake_case name of a command, as profiles and the control socket spell it.
pub fn command_name(command: Command) -> &'static str {
    match command {
        Command::ResetSam => "reset_sam",
        Command::SamStatus => "sam_status",
        Command::SamId => "sam_id",
        Command::FindCard => "find_card",
        Command::SelectCard => "select_card",
        Command::ReadTextPhoto => "read_text_photo",
        Command::ReadTextPhotoFingerprint => "read_text_photo_fingerprint",
        Command::ReadAppendedAddress => "read_appended_address",
    }
}

/// A command by name (`read_text_photo`) or by code (`30 01`, `3001`).
pub fn parse_command(s: &str) -> Option<Command> {
    if let Some(c) = Command::ALL.into_iter().find(|c| command_name(*c) == s) {
        return Some(c);
    }
    let hex: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if hex.len() == 4 && hex.is_ascii() {
        let cmd = u8::from_str_radix(&hex[0..2], 16).ok()?;
        let para = u8::from_str_radix(&hex[2..4], 16).ok()?;
        return Command::from_code(cmd, para);
    }
    None
}

mod command_serde {
    use kiosk_idcard::Command;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &Command, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::command_name(*c))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Command, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_command(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown GA 467 command {s:?}")))
    }
}

mod sw3_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Sw3 {
        Num(u8),
        Hex(String),
    }

    pub fn serialize<S: Serializer>(v: &u8, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(*v)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        match Sw3::deserialize(d)? {
            Sw3::Num(n) => Ok(n),
            Sw3::Hex(s) => u8::from_str_radix(s.trim_start_matches("0x"), 16)
                .map_err(|_| serde::de::Error::custom(format!("sw3 {s:?} is not a hex byte"))),
        }
    }
}

/// One simulated card: who it says it is, its photo and fingerprint, its
/// UID, and an optional fault.
///
/// `Debug` prints only the profile name, card type and fault: profiles hold
/// (fictional) personal data and logs must not.
#[derive(Clone, PartialEq, Eq)]
pub struct CardProfile {
    /// Profile name (file stem, or the built-in name).
    pub name: String,
    /// One line saying what the profile is for.
    pub description: String,
    /// The text block's content.
    pub identity: Identity,
    /// Seed of the generated photo.
    pub photo_seed: u64,
    /// Seed of the generated fingerprint data; `None` for a card without.
    pub fingerprint_seed: Option<u64>,
    /// Appended address (追加住址), if the card has one.
    pub appended_address: Option<String>,
    /// The card's UID (answer to `00 36 00 00 08`).
    pub uid: [u8; 8],
    /// How the card misbehaves (a fault set on the device takes precedence).
    pub fault: Fault,
}

impl fmt::Debug for CardProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardProfile")
            .field("name", &self.name)
            .field("card_type", &self.identity.card_type)
            .field("fingerprint", &self.fingerprint_seed.is_some())
            .field("appended_address", &self.appended_address.is_some())
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

/// The built-in profiles: name and file content.
const BUILTIN: &[(&str, &str)] = &[
    ("resident", include_str!("../profiles/resident.toml")),
    (
        "resident-longterm",
        include_str!("../profiles/resident-longterm.toml"),
    ),
    (
        "resident-expired",
        include_str!("../profiles/resident-expired.toml"),
    ),
    (
        "resident-badcheck",
        include_str!("../profiles/resident-badcheck.toml"),
    ),
    (
        "resident-appended",
        include_str!("../profiles/resident-appended.toml"),
    ),
    (
        "resident-fingerprint",
        include_str!("../profiles/resident-fingerprint.toml"),
    ),
    (
        "foreign-2017",
        include_str!("../profiles/foreign-2017.toml"),
    ),
    (
        "foreign-2023",
        include_str!("../profiles/foreign-2023.toml"),
    ),
    ("hkmotw", include_str!("../profiles/hkmotw.toml")),
    (
        "fault-bad-checksum",
        include_str!("../profiles/fault-bad-checksum.toml"),
    ),
    ("fault-slow", include_str!("../profiles/fault-slow.toml")),
    (
        "fault-pulled",
        include_str!("../profiles/fault-pulled.toml"),
    ),
    (
        "fault-sw3-41",
        include_str!("../profiles/fault-sw3-41.toml"),
    ),
];

impl CardProfile {
    /// Names of the built-in profiles, in a stable order.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<CardProfile> {
        let (name, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| SimError::UnknownProfile(name.to_string()))?;
        CardProfile::from_toml(name, text)
    }

    /// Every built-in profile.
    pub fn builtins() -> Vec<CardProfile> {
        BUILTIN
            .iter()
            .map(|(n, t)| CardProfile::from_toml(n, t).expect("built-in profiles parse (tested)"))
            .collect()
    }

    /// Load a profile file; its name is the `name` key or else the file stem.
    pub fn load(path: impl AsRef<Path>) -> Result<CardProfile> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(SimError::io(format!("reading {}", path.display())))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("profile");
        CardProfile::from_toml(stem, &text)
    }

    /// A built-in profile if `name_or_path` names one, else the file at that path.
    pub fn resolve(name_or_path: &str) -> Result<CardProfile> {
        if BUILTIN.iter().any(|(n, _)| *n == name_or_path) {
            return CardProfile::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.exists() {
            return CardProfile::load(path);
        }
        Err(SimError::UnknownProfile(name_or_path.to_string()))
    }

    /// Parse profile TOML; `default_name` is used when the file has no `name`.
    pub fn from_toml(default_name: &str, text: &str) -> Result<CardProfile> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| SimError::Profile {
            name: default_name.to_string(),
            reason: e.to_string(),
        })?;
        let name = raw.name.clone().unwrap_or_else(|| default_name.to_string());
        raw.into_profile(name)
    }

    /// The 256-byte text block the SAM returns.
    pub fn text_block(&self) -> [u8; 256] {
        self.identity.encode()
    }

    /// The 1024-byte photo (opaque WLT bytes, generated from the seed).
    pub fn photo(&self) -> Vec<u8> {
        generate(self.photo_seed, PHOTO_LEN)
    }

    /// The 1024 bytes of fingerprint data, if the card has fingerprints.
    pub fn fingerprint(&self) -> Option<Vec<u8>> {
        self.fingerprint_seed
            .map(|seed| generate(seed ^ 0xF1F1_F1F1_F1F1_F1F1, FINGERPRINT_LEN))
    }

    /// The 70-byte appended-address block (`30 03`), if the card has one.
    pub fn appended_address_block(&self) -> Option<[u8; APPENDED_ADDRESS_LEN]> {
        self.appended_address
            .as_deref()
            .map(encode_appended_address)
    }

    /// What a read returns: `with_fingerprint` for `30 10` (a card without
    /// fingerprints then gives an empty fingerprint, FP_LEN 0, as real SAMs do).
    pub fn card_data(&self, with_fingerprint: bool) -> CardData {
        CardData {
            text: self.text_block().to_vec(),
            photo: self.photo(),
            fingerprint: with_fingerprint.then(|| self.fingerprint().unwrap_or_default()),
        }
    }
}

/// Deterministic bytes from a seed (splitmix64).
fn generate(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Option<String>,
    #[serde(default)]
    description: String,
    uid: String,
    photo_seed: u64,
    fingerprint_seed: Option<u64>,
    appended_address: Option<String>,
    #[serde(default)]
    fault: Fault,
    identity: RawIdentity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    card_type: RawCardType,
    #[serde(default)]
    name: String,
    english_name: Option<String>,
    sex: Sex,
    ethnic_code: Option<String>,
    nationality: Option<String>,
    birth_date: String,
    address: Option<String>,
    number: String,
    #[serde(default)]
    issuer: String,
    valid_from: String,
    valid_until: String,
    pass_number: Option<String>,
    issue_count: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawCardType {
    Resident,
    #[serde(rename = "foreign_2017", alias = "foreign_permanent_2017")]
    Foreign2017,
    #[serde(rename = "foreign_2023", alias = "foreign_permanent_2023")]
    Foreign2023,
    #[serde(alias = "hk_mo_tw_residence")]
    Hkmotw,
}

impl From<RawCardType> for CardType {
    fn from(t: RawCardType) -> CardType {
        match t {
            RawCardType::Resident => CardType::Resident,
            RawCardType::Foreign2017 => CardType::ForeignPermanent2017,
            RawCardType::Foreign2023 => CardType::ForeignPermanent2023,
            RawCardType::Hkmotw => CardType::HkMoTwResidence,
        }
    }
}

impl RawProfile {
    fn into_profile(self, name: String) -> Result<CardProfile> {
        let bad = |reason: String| SimError::Profile {
            name: name.clone(),
            reason,
        };
        let uid = parse_uid(&self.uid)
            .ok_or_else(|| bad(format!("uid {:?} is not 8 hex bytes", self.uid)))?;
        let date = |field: &str, s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| bad(format!("{field} {s:?} is not YYYY-MM-DD")))
        };
        let id = self.identity;
        let birth = date("birth_date", &id.birth_date)?;
        let valid_from = date("valid_from", &id.valid_from)?;
        let valid_until = match id.valid_until.as_str() {
            "long_term" | "长期" => Validity::LongTerm,
            s => Validity::Until(date("valid_until", s)?),
        };
        if let Some(addr) = &self.appended_address
            && addr.chars().map(char::len_utf16).sum::<usize>() * 2 > APPENDED_ADDRESS_LEN
        {
            return Err(bad(format!(
                "appended_address longer than {} characters",
                APPENDED_ADDRESS_LEN / 2
            )));
        }
        let identity = Identity {
            card_type: id.card_type.into(),
            name: id.name,
            english_name: id.english_name,
            sex: id.sex,
            ethnic_code: id.ethnic_code,
            nationality: id.nationality,
            birth_date: birth.format("%Y%m%d").to_string(),
            address: id.address,
            number: id.number,
            issuer: id.issuer,
            valid_from,
            valid_until,
            pass_number: id.pass_number,
            issue_count: id.issue_count,
        };
        Ok(CardProfile {
            name,
            description: self.description,
            identity,
            photo_seed: self.photo_seed,
            fingerprint_seed: self.fingerprint_seed,
            appended_address: self.appended_address,
            uid,
            fault: self.fault,
        })
    }
}

fn parse_uid(s: &str) -> Option<[u8; 8]> {
    let hex: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if hex.len() != 16 || !hex.is_ascii() {
        return None;
    }
    let mut uid = [0u8; 8];
    for (i, b) in uid.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GB 11643 check character, independent of kiosk-idcard.
    fn check_char(first17: &str) -> char {
        const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = first17
            .chars()
            .zip(W)
            .map(|(c, w)| c.to_digit(10).unwrap() * w)
            .sum();
        b"10X98765432"[(sum % 11) as usize] as char
    }

    #[test]
    fn every_builtin_parses_and_round_trips_through_the_text_block() {
        for p in CardProfile::builtins() {
            let decoded =
                Identity::decode(&p.text_block()).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(decoded, p.identity, "{}", p.name);
            assert_eq!(p.photo().len(), PHOTO_LEN);
        }
    }

    #[test]
    fn check_digits_are_valid_except_on_the_badcheck_profile() {
        for p in CardProfile::builtins() {
            let n = &p.identity.number;
            if n.len() != 18 {
                assert_eq!(
                    p.identity.card_type,
                    CardType::ForeignPermanent2017,
                    "{}",
                    p.name
                );
                assert_eq!(n.len(), 15);
                continue;
            }
            let good = check_char(&n[..17]) == n.chars().last().unwrap();
            assert_eq!(good, p.name != "resident-badcheck", "{}: {n}", p.name);
        }
    }

    #[test]
    fn names_numbers_and_uids_are_distinct() {
        let all = CardProfile::builtins();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.identity.name, b.identity.name, "{} / {}", a.name, b.name);
                assert_ne!(
                    a.identity.number, b.identity.number,
                    "{} / {}",
                    a.name, b.name
                );
                assert_ne!(a.uid, b.uid, "{} / {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn generated_bytes_are_deterministic_and_differ_by_seed() {
        let a = CardProfile::builtin("resident").unwrap();
        let b = CardProfile::builtin("resident").unwrap();
        assert_eq!(a.photo(), b.photo());
        assert_ne!(
            a.photo(),
            CardProfile::builtin("resident-expired").unwrap().photo()
        );
        let fp = CardProfile::builtin("resident-fingerprint")
            .unwrap()
            .fingerprint()
            .unwrap();
        assert_eq!(fp.len(), FINGERPRINT_LEN);
        assert!(a.fingerprint().is_none());
    }

    #[test]
    fn faults_parse_from_toml_and_json() {
        #[derive(Deserialize)]
        struct W {
            fault: Fault,
        }
        let w: W =
            toml::from_str("fault = { kind = \"sw3\", command = \"30 10\", sw3 = 0x33 }").unwrap();
        assert_eq!(
            w.fault,
            Fault::Sw3 {
                command: Command::ReadTextPhotoFingerprint,
                sw3: 0x33
            }
        );
        let f: Fault =
            serde_json::from_str(r#"{"kind":"sw3","command":"read_text_photo","sw3":"41"}"#)
                .unwrap();
        assert_eq!(
            f,
            Fault::Sw3 {
                command: Command::ReadTextPhoto,
                sw3: 0x41
            }
        );
        let f: Fault = serde_json::from_str(r#"{"kind":"slow","delay_ms":20}"#).unwrap();
        assert_eq!(f, Fault::Slow { delay_ms: 20 });
        let json = serde_json::to_string(&Fault::PullMidRead).unwrap();
        assert_eq!(json, r#"{"kind":"pull_mid_read"}"#);
        assert!(
            serde_json::from_str::<Fault>(r#"{"kind":"sw3","command":"nope","sw3":1}"#).is_err()
        );
        assert_eq!(
            "slow:250".parse::<Fault>().unwrap(),
            Fault::Slow { delay_ms: 250 }
        );
        assert_eq!(
            "sw3:30 03:33".parse::<Fault>().unwrap(),
            Fault::Sw3 {
                command: Command::ReadAppendedAddress,
                sw3: 0x33
            }
        );
        assert_eq!(
            "pull_mid_read".parse::<Fault>().unwrap(),
            Fault::PullMidRead
        );
        assert_eq!(
            r#"{"kind":"bad_checksum"}"#.parse::<Fault>().unwrap(),
            Fault::BadChecksum
        );
        assert!("slow".parse::<Fault>().is_err());
    }

    #[test]
    fn profile_debug_shows_no_personal_data() {
        let p = CardProfile::builtin("resident-appended").unwrap();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("钱追址") && !dbg.contains("110108199202150051"),
            "{dbg}"
        );
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let text = CardProfile::BUILTIN_FOR_TESTS.replace("5A01000000000001", "XYZ");
        let err = CardProfile::from_toml("x", &text).unwrap_err().to_string();
        assert!(err.contains("uid"), "{err}");
        let text = CardProfile::BUILTIN_FOR_TESTS.replace("1990-03-07", "1990-13-07");
        let err = CardProfile::from_toml("x", &text).unwrap_err().to_string();
        assert!(err.contains("birth_date"), "{err}");
    }

    impl CardProfile {
        const BUILTIN_FOR_TESTS: &'static str = include_str!("../profiles/resident.toml");
    }
}
