//! GA 467 frames.
//!
//! Wire format (both directions):
//! `AA AA AA 96 69 | LEN_HI LEN_LO | payload | CHK`
//! where `LEN` counts the payload plus the checksum byte and
//! `CHK` is the XOR of the two length bytes and every payload byte.
//! A request payload is `CMD PARA DATA..`; a response payload is
//! `SW1 SW2 SW3 DATA..`.
//!
//! Example: find card = `AA AA AA 96 69 00 03 20 01 22`.

use thiserror::Error;

/// The five-byte preamble that starts every frame.
pub const PREAMBLE: [u8; 5] = [0xAA, 0xAA, 0xAA, 0x96, 0x69];

/// Commands the kiosk sends to a SAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `10 FF`
    ResetSam,
    /// `11 FF`
    SamStatus,
    /// `12 FF`
    SamId,
    /// `20 01`
    FindCard,
    /// `20 02`
    SelectCard,
    /// `30 01`: text (256 bytes) + photo (1024 bytes WLT)
    ReadTextPhoto,
    /// `30 10`: text + photo + fingerprint
    ReadTextPhotoFingerprint,
    /// `30 03`: appended address (追加住址)
    ReadAppendedAddress,
}

impl Command {
    /// All commands, for tests and simulators.
    pub const ALL: [Command; 8] = [
        Command::ResetSam,
        Command::SamStatus,
        Command::SamId,
        Command::FindCard,
        Command::SelectCard,
        Command::ReadTextPhoto,
        Command::ReadTextPhotoFingerprint,
        Command::ReadAppendedAddress,
    ];
    /// `(CMD, PARA)`.
    pub fn code(self) -> (u8, u8) {
        todo!()
    }
    /// The command for `(CMD, PARA)`, if known.
    pub fn from_code(cmd: u8, para: u8) -> Option<Command> {
        todo!()
    }
    /// The full request frame for this command (no data).
    pub fn request_frame(self) -> Vec<u8> {
        todo!()
    }
}

/// A request as a SAM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cmd: u8,
    pub para: u8,
    pub data: Vec<u8>,
}

impl Request {
    /// Parse a request payload (`CMD PARA DATA..`, without preamble/len/chk).
    pub fn from_payload(payload: &[u8]) -> Result<Request, FrameError> {
        todo!()
    }
    /// The full frame.
    pub fn to_frame(&self) -> Vec<u8> {
        todo!()
    }
    pub fn command(&self) -> Option<Command> {
        Command::from_code(self.cmd, self.para)
    }
}

/// A response from a SAM.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub sw1: u8,
    pub sw2: u8,
    pub sw3: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Response {
    // Data may hold personal data: print only its length.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!()
    }
}

impl Response {
    /// Parse a response payload (`SW1 SW2 SW3 DATA..`).
    pub fn from_payload(payload: &[u8]) -> Result<Response, FrameError> {
        todo!()
    }
    /// The full frame.
    pub fn to_frame(&self) -> Vec<u8> {
        todo!()
    }
    /// `SW3` as a typed status.
    pub fn status(&self) -> crate::status::SamStatus {
        crate::status::SamStatus::from_sw3(self.sw3)
    }
}

/// Build a full frame around `payload` (adds preamble, length and checksum).
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    todo!()
}

/// Errors of frame parsing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame checksum mismatch: computed {computed:#04x}, frame says {received:#04x}")]
    Checksum { computed: u8, received: u8 },
    #[error("frame length {0} is invalid")]
    Length(usize),
    #[error("payload too short: {0} bytes")]
    ShortPayload(usize),
}

/// Streaming decoder: feed bytes in any chunking with [`FrameDecoder::push`],
/// take whole frames' payloads with [`FrameDecoder::next_frame`].
/// Garbage before a preamble is skipped (and counted); a frame with a bad
/// checksum is reported once as an error and skipped.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    skipped: usize,
}

/// What [`FrameDecoder::next_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame's payload (without preamble, length, checksum).
    Frame(Vec<u8>),
    /// More bytes are needed.
    Incomplete,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, bytes: &[u8]) {
        todo!()
    }
    pub fn next_frame(&mut self) -> Result<Decoded, FrameError> {
        todo!()
    }
    /// Bytes discarded while resynchronising on the preamble.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
    /// Drop any buffered bytes (e.g. after a timeout).
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Data of a `30 01` / `30 10` response: the text block, the photo and the
/// optional fingerprint, as the SAM returned them (lengths from the response).
#[derive(Clone, PartialEq, Eq)]
pub struct CardData {
    pub text: Vec<u8>,
    pub photo: Vec<u8>,
    pub fingerprint: Option<Vec<u8>>,
}

impl CardData {
    /// Parse the DATA part of a read response; `with_fingerprint` for `30 10`.
    pub fn parse(data: &[u8], with_fingerprint: bool) -> Result<CardData, FrameError> {
        todo!()
    }
    /// Encode as response DATA (for simulators).
    pub fn to_data(&self) -> Vec<u8> {
        todo!()
    }
}

/// The SAM id of a `12 FF` response (16 bytes) formatted as readers print
/// it: `%02d.%02d-%08d-%010d-%010d` over little-endian u16,u16,u32,u32,u32,
/// e.g. `05.01-20101216-0011223344-1234567890`.
pub fn format_sam_id(data: &[u8]) -> Result<String, FrameError> {
    todo!()
}
