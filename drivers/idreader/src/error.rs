//! The crate's one error type, and the personal-data-free failure report
//! that goes into [`crate::ReaderEvent::ReadFailed`].

use kiosk_idcard::{FrameError, IdentityError, SamError};

/// Everything that can go wrong between the kiosk and an ID card.
///
/// No variant carries personal data: frames are never included, only
/// lengths and status bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// The SAM (or reader) did not answer in time. `received` counts the
    /// bytes that did arrive after the request: more than zero means the
    /// answer was cut off.
    #[error("no complete answer to {command} within {timeout_ms} ms ({received} bytes received)")]
    Timeout {
        command: &'static str,
        timeout_ms: u64,
        received: usize,
    },
    /// The answer ended before its frame did (e.g. a PC/SC reader that
    /// lost the card returns a short or empty answer).
    #[error("the answer to {command} ended early ({received} bytes received)")]
    Truncated {
        command: &'static str,
        received: usize,
    },
    /// The serial device went away (`read` gave end-of-file, `EIO`, a
    /// hang-up, or its path disappeared). The device loop reopens it by its
    /// configured path.
    #[error("the device is unplugged or gone: {detail}")]
    Unplugged { detail: String },
    /// Find and select succeeded, then the read failed the way a card that
    /// leaves the field makes it fail.
    #[error("the card was taken away during the read ({cause})")]
    CardPulled { cause: PullCause },
    /// The SAM answered a failure status (SW3).
    #[error("SAM: {0}")]
    Sam(#[from] SamError),
    /// A frame that does not decode (bad checksum, bad length).
    #[error("bad SAM frame: {0}")]
    Frame(#[from] FrameError),
    /// The card's data does not decode (bad text block, unsupported type).
    #[error("card data: {0}")]
    Identity(#[from] IdentityError),
    /// A well-formed answer that does not fit the request.
    #[error("unexpected answer to {command}: {detail}")]
    Protocol {
        command: &'static str,
        detail: String,
    },
    /// No SAM answered a status request at any baud rate tried.
    #[error("no SAM answers on {path} at any of {tried:?} baud")]
    NoSamAnswer { path: String, tried: Vec<u32> },
    /// An error of the PC/SC stack (pcscd, the reader driver, the card).
    #[error("PC/SC: {0}")]
    Pcsc(#[from] pcsc::Error),
    /// The reader answered a tunnelled frame with a status word other than
    /// `90 00` / `61 XX`.
    #[error("reader answered status word {sw:04X} to a tunnelled SAM frame")]
    Apdu { sw: u16 },
    /// The configured PC/SC reader is not attached.
    #[error("PC/SC reader {0:?} is not attached")]
    NoReader(String),
    /// The operation needs something that is not there right now (e.g. the
    /// SAM id of a reader whose SAM is only reachable through a card).
    #[error("not available: {0}")]
    Unavailable(&'static str),
    /// Opening or configuring a serial port failed (not an unplug).
    #[error("serial port: {0}")]
    Serial(#[from] serialport::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The vendor's `sdtapi` library cannot be used (cannot be loaded,
    /// lacks a function, misbehaves).
    #[error("{0}")]
    Library(#[from] kiosk_sdtapi::SdtapiError),
    /// The vendor's library returned one of its own codes that says
    /// neither "unplugged" nor "timeout".
    #[error("the sdtapi library answered {command} with its code {code:02X} ({meaning})")]
    LibraryCode {
        command: &'static str,
        code: i32,
        meaning: &'static str,
    },
    /// The configuration is not valid.
    #[error("invalid reader configuration: {0}")]
    Config(String),
    /// The reader's device loop has stopped.
    #[error("the reader has stopped")]
    Stopped,
}

/// How a card pulled mid-read showed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullCause {
    /// The read answer stopped after this many bytes.
    CutOff { received: usize },
    /// No byte of the read answer came.
    NoAnswer,
    /// The SAM answered SW3 `41` (read failed) or `80` (no card) to the read.
    Sam(SamError),
    /// PC/SC reported the card removed, reset or unpowered.
    Removed(pcsc::Error),
}

impl std::fmt::Display for PullCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PullCause::CutOff { received } => write!(f, "answer cut off after {received} bytes"),
            PullCause::NoAnswer => f.write_str("no answer to the read"),
            PullCause::Sam(e) => write!(f, "{e}"),
            PullCause::Removed(e) => write!(f, "PC/SC: {e}"),
        }
    }
}

impl ReaderError {
    /// A stable, machine-readable code: `timeout`, `truncated`, `unplugged`,
    /// `card_pulled`, `bad_frame`, `unsupported_card_type`, `bad_card_data`,
    /// `protocol`, `no_sam_answer`, `pcsc`, `apdu`, `no_reader`,
    /// `unavailable`, `io`, `library`, `library_code`, `config`, `stopped`, or for a SAM failure status
    /// the [`SamError::reason`] (`no_card`, `read_failed`, `wrong_card_type`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ReaderError::Timeout { .. } => "timeout",
            ReaderError::Truncated { .. } => "truncated",
            ReaderError::Unplugged { .. } => "unplugged",
            ReaderError::CardPulled { .. } => "card_pulled",
            ReaderError::Sam(e) => e.reason(),
            ReaderError::Frame(_) => "bad_frame",
            ReaderError::Identity(IdentityError::UnsupportedCardType(_)) => "unsupported_card_type",
            ReaderError::Identity(_) => "bad_card_data",
            ReaderError::Protocol { .. } => "protocol",
            ReaderError::NoSamAnswer { .. } => "no_sam_answer",
            ReaderError::Pcsc(_) => "pcsc",
            ReaderError::Apdu { .. } => "apdu",
            ReaderError::NoReader(_) => "no_reader",
            ReaderError::Unavailable(_) => "unavailable",
            ReaderError::Serial(_) | ReaderError::Io(_) => "io",
            ReaderError::Library(_) => "library",
            ReaderError::LibraryCode { .. } => "library_code",
            ReaderError::Config(_) => "config",
            ReaderError::Stopped => "stopped",
        }
    }

    /// Is the device gone (serial unplug)?
    pub fn is_unplugged(&self) -> bool {
        matches!(self, ReaderError::Unplugged { .. })
    }

    /// Has pcscd gone away, so that the context must be established anew?
    pub fn is_pcsc_service_lost(&self) -> bool {
        matches!(self, ReaderError::Pcsc(e) if pcsc_service_lost(*e))
    }
}

/// PC/SC errors after which a context is dead for good (pcscd restarted or
/// stopped): drop it and establish a new one.
pub(crate) fn pcsc_service_lost(e: pcsc::Error) -> bool {
    matches!(
        e,
        pcsc::Error::NoService
            | pcsc::Error::ServiceStopped
            | pcsc::Error::InvalidHandle
            | pcsc::Error::CommError
            | pcsc::Error::Shutdown
    )
}

/// PC/SC errors that mean the card left (or was reset) during an exchange.
pub(crate) fn pcsc_card_gone(e: pcsc::Error) -> bool {
    matches!(
        e,
        pcsc::Error::RemovedCard
            | pcsc::Error::ResetCard
            | pcsc::Error::NoSmartcard
            | pcsc::Error::UnpoweredCard
            | pcsc::Error::UnresponsiveCard
    )
}

/// Why a read failed, as reported in [`crate::ReaderEvent::ReadFailed`]: a
/// stable code (see [`ReaderError::code`]) and a message for people. Neither
/// holds personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    pub code: &'static str,
    pub message: String,
}

impl From<&ReaderError> for ReadFailure {
    fn from(e: &ReaderError) -> Self {
        ReadFailure {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
