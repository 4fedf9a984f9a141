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
    pub fn from_sw3(sw3: u8) -> SamStatus {
        todo!()
    }
    pub fn sw3(self) -> u8 {
        todo!()
    }
    /// `Ok(())` for `90`/`9F`, the error otherwise.
    pub fn into_result(self) -> Result<(), SamError> {
        todo!()
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
    #[error("SAM reports an unrecognised error (SW3 24)")]
    Unrecognised,
    #[error("the card failed to authenticate the SAM (SW3 31)")]
    CardAuthenticatesSamFailed,
    #[error("the SAM failed to authenticate the card (SW3 32)")]
    SamAuthenticatesCardFailed,
    #[error("the card's data failed verification (SW3 33)")]
    Verification,
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
    #[error("SAM answered unknown status {0:02X}")]
    Unknown(u8),
}

impl SamError {
    /// A stable machine-readable reason, e.g. `no_card`, `read_failed`.
    pub fn reason(self) -> &'static str {
        todo!()
    }
}
