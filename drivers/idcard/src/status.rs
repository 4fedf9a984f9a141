//! SW3, the SAM's status byte.

use thiserror::Error;

/// A SAM answer's SW3 as a result: success codes or a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamStatus {
    /// `90`: operation succeeded.
    Ok,
    /// `9F`: find card succeeded (a card is in the field).
    CardFound,
    /// Any failure.
    Error(SamError),
}

impl SamStatus {
    /// The typed status of an SW3 byte; every byte maps to exactly one status,
    /// unknown ones to [`SamError::Unknown`].
    pub fn from_sw3(sw3: u8) -> SamStatus {
        match sw3 {
            0x90 => SamStatus::Ok,
            0x9F => SamStatus::CardFound,
            other => SamStatus::Error(SamError::from_sw3(other)),
        }
    }
    /// The SW3 byte of this status (inverse of [`SamStatus::from_sw3`]).
    pub fn sw3(self) -> u8 {
        match self {
            SamStatus::Ok => 0x90,
            SamStatus::CardFound => 0x9F,
            SamStatus::Error(e) => e.sw3(),
        }
    }
    /// `Ok(())` for `90`/`9F`, the error otherwise.
    pub fn into_result(self) -> Result<(), SamError> {
        match self {
            SamStatus::Ok | SamStatus::CardFound => Ok(()),
            SamStatus::Error(e) => Err(e),
        }
    }
}

/// Every failure SW3 a SAM can answer, each with a clear message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum SamError {
    #[error("SAM reports a checksum error in the request (SW3 10)")]
    Checksum,
    #[error("SAM reports a length error in the request (SW3 11)")]
    Length,
    #[error("SAM does not know this command (SW3 21)")]
    BadCommand,
    #[error("the SAM refused an operation beyond its authority (SW3 23)")]
    OutOfAuthority,
    #[error("SAM reports an unrecognised error (SW3 24)")]
    Unrecognised,
    #[error("the card failed to authenticate the SAM (SW3 31)")]
    CardAuthenticatesSamFailed,
    #[error("the SAM failed to authenticate the card (SW3 32)")]
    SamAuthenticatesCardFailed,
    #[error("the card's data failed verification (SW3 33)")]
    Verification,
    #[error("the SAM reports an authentication error (SW3 34)")]
    Authentication,
    #[error("the card's fingerprint data failed verification (SW3 37)")]
    FingerprintVerification,
    #[error("the card's data has a wrong length (SW3 3F)")]
    DataLength,
    #[error("the card is not a supported ID card type (SW3 40)")]
    WrongCardType,
    #[error("reading the card failed (SW3 41)")]
    ReadFailed,
    #[error("the SAM could not get a random number from the card (SW3 47)")]
    RandomFailed,
    #[error("the SAM's self-test failed (SW3 60)")]
    SelfTestFailed,
    #[error("the SAM is not authorised (SW3 66)")]
    NotAuthorised,
    #[error("no card in the field (SW3 80)")]
    NoCard,
    #[error("selecting the card failed (SW3 81)")]
    SelectFailed,
    #[error("the card holds nothing for this item (SW3 91)")]
    NoSuchItem,
    #[error("SAM answered unknown status {0:02X}")]
    Unknown(u8),
}

impl SamError {
    /// Every failure with a code of its own (all but [`SamError::Unknown`]),
    /// for tests, simulators and technician screens.
    pub const KNOWN: [SamError; 19] = [
        SamError::Checksum,
        SamError::Length,
        SamError::BadCommand,
        SamError::OutOfAuthority,
        SamError::Unrecognised,
        SamError::CardAuthenticatesSamFailed,
        SamError::SamAuthenticatesCardFailed,
        SamError::Verification,
        SamError::Authentication,
        SamError::FingerprintVerification,
        SamError::DataLength,
        SamError::WrongCardType,
        SamError::ReadFailed,
        SamError::RandomFailed,
        SamError::SelfTestFailed,
        SamError::NotAuthorised,
        SamError::NoCard,
        SamError::SelectFailed,
        SamError::NoSuchItem,
    ];
    /// The error for a failure SW3; codes without a meaning of their own
    /// (including the success codes `90`/`9F`) become [`SamError::Unknown`].
    pub fn from_sw3(sw3: u8) -> SamError {
        match sw3 {
            0x10 => SamError::Checksum,
            0x11 => SamError::Length,
            0x21 => SamError::BadCommand,
            0x23 => SamError::OutOfAuthority,
            0x24 => SamError::Unrecognised,
            0x31 => SamError::CardAuthenticatesSamFailed,
            0x32 => SamError::SamAuthenticatesCardFailed,
            0x33 => SamError::Verification,
            0x34 => SamError::Authentication,
            0x37 => SamError::FingerprintVerification,
            0x3F => SamError::DataLength,
            0x40 => SamError::WrongCardType,
            0x41 => SamError::ReadFailed,
            0x47 => SamError::RandomFailed,
            0x60 => SamError::SelfTestFailed,
            0x66 => SamError::NotAuthorised,
            0x80 => SamError::NoCard,
            0x81 => SamError::SelectFailed,
            0x91 => SamError::NoSuchItem,
            other => SamError::Unknown(other),
        }
    }
    /// The SW3 byte of this error (inverse of [`SamError::from_sw3`]).
    pub fn sw3(self) -> u8 {
        match self {
            SamError::Checksum => 0x10,
            SamError::Length => 0x11,
            SamError::BadCommand => 0x21,
            SamError::OutOfAuthority => 0x23,
            SamError::Unrecognised => 0x24,
            SamError::CardAuthenticatesSamFailed => 0x31,
            SamError::SamAuthenticatesCardFailed => 0x32,
            SamError::Verification => 0x33,
            SamError::Authentication => 0x34,
            SamError::FingerprintVerification => 0x37,
            SamError::DataLength => 0x3F,
            SamError::WrongCardType => 0x40,
            SamError::ReadFailed => 0x41,
            SamError::RandomFailed => 0x47,
            SamError::SelfTestFailed => 0x60,
            SamError::NotAuthorised => 0x66,
            SamError::NoCard => 0x80,
            SamError::SelectFailed => 0x81,
            SamError::NoSuchItem => 0x91,
            SamError::Unknown(code) => code,
        }
    }
    /// A stable machine-readable reason, e.g. `no_card`, `read_failed`.
    pub fn reason(self) -> &'static str {
        match self {
            SamError::Checksum => "checksum",
            SamError::Length => "length",
            SamError::BadCommand => "bad_command",
            SamError::OutOfAuthority => "out_of_authority",
            SamError::Unrecognised => "unrecognised",
            SamError::CardAuthenticatesSamFailed => "card_authenticates_sam_failed",
            SamError::SamAuthenticatesCardFailed => "sam_authenticates_card_failed",
            SamError::Verification => "verification_failed",
            SamError::Authentication => "authentication_failed",
            SamError::FingerprintVerification => "fingerprint_verification_failed",
            SamError::DataLength => "data_length",
            SamError::WrongCardType => "wrong_card_type",
            SamError::ReadFailed => "read_failed",
            SamError::RandomFailed => "random_failed",
            SamError::SelfTestFailed => "self_test_failed",
            SamError::NotAuthorised => "not_authorised",
            SamError::NoCard => "no_card",
            SamError::SelectFailed => "select_failed",
            SamError::NoSuchItem => "no_such_item",
            SamError::Unknown(_) => "unknown",
        }
    }
}
