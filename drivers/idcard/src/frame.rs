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
//!
//! Everything here is a pure function over bytes: the transport (serial port,
//! PC/SC tunnel, simulator) writes [`Command::request_frame`], feeds what it
//! reads into a [`FrameDecoder`] and parses the payload with
//! [`Response::from_payload`].

use thiserror::Error;

/// The five-byte preamble that starts every frame.
pub const PREAMBLE: [u8; 5] = [0xAA, 0xAA, 0xAA, 0x96, 0x69];

/// Largest `LEN` the two length bytes can carry (payload + checksum byte).
pub const MAX_LEN: usize = 0xFFFF;

/// Largest `LEN` a [`FrameDecoder::new`] accepts. Real frames stay below
/// 4 KiB (the biggest, `30 10`, is 2314 bytes); a lower cap means a corrupted
/// length does not make the decoder sit on 64 KiB of input before resyncing.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// Bytes before the payload: preamble and the two length bytes.
const HEADER_LEN: usize = PREAMBLE.len() + 2;

/// Length of the text block in a read response.
pub const TEXT_LEN: usize = 256;
/// Length of the photo (WLT) in a read response.
pub const PHOTO_LEN: usize = 1024;
/// Length of the fingerprint data a `30 10` response usually carries.
pub const FINGERPRINT_LEN: usize = 1024;
/// Length of the SAM id in a `12 FF` response.
pub const SAM_ID_LEN: usize = 16;

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
        match self {
            Command::ResetSam => (0x10, 0xFF),
            Command::SamStatus => (0x11, 0xFF),
            Command::SamId => (0x12, 0xFF),
            Command::FindCard => (0x20, 0x01),
            Command::SelectCard => (0x20, 0x02),
            Command::ReadTextPhoto => (0x30, 0x01),
            Command::ReadTextPhotoFingerprint => (0x30, 0x10),
            Command::ReadAppendedAddress => (0x30, 0x03),
        }
    }
    /// The command for `(CMD, PARA)`, if known.
    pub fn from_code(cmd: u8, para: u8) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.code() == (cmd, para))
    }
    /// The full request frame for this command (no data).
    pub fn request_frame(self) -> Vec<u8> {
        self.request().to_frame()
    }
    /// The request for this command (no data).
    pub fn request(self) -> Request {
        let (cmd, para) = self.code();
        Request {
            cmd,
            para,
            data: Vec::new(),
        }
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
        match payload {
            [cmd, para, data @ ..] => Ok(Request {
                cmd: *cmd,
                para: *para,
                data: data.to_vec(),
            }),
            _ => Err(FrameError::ShortPayload(payload.len())),
        }
    }
    /// The full frame.
    ///
    /// # Panics
    /// If `data` is longer than a frame can carry (65 532 bytes).
    pub fn to_frame(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(2 + self.data.len());
        payload.extend_from_slice(&[self.cmd, self.para]);
        payload.extend_from_slice(&self.data);
        encode_frame(&payload)
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
        f.debug_struct("Response")
            .field("sw1", &format_args!("{:02X}", self.sw1))
            .field("sw2", &format_args!("{:02X}", self.sw2))
            .field("sw3", &format_args!("{:02X}", self.sw3))
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl Response {
    /// A response with `SW1 SW2 = 00 00` (what SAMs send) and `status` as
    /// SW3; for simulators and tests.
    pub fn new(status: crate::status::SamStatus, data: Vec<u8>) -> Response {
        Response {
            sw1: 0,
            sw2: 0,
            sw3: status.sw3(),
            data,
        }
    }
    /// Parse a response payload (`SW1 SW2 SW3 DATA..`).
    pub fn from_payload(payload: &[u8]) -> Result<Response, FrameError> {
        match payload {
            [sw1, sw2, sw3, data @ ..] => Ok(Response {
                sw1: *sw1,
                sw2: *sw2,
                sw3: *sw3,
                data: data.to_vec(),
            }),
            _ => Err(FrameError::ShortPayload(payload.len())),
        }
    }
    /// The full frame.
    ///
    /// # Panics
    /// If `data` is longer than a frame can carry (65 531 bytes).
    pub fn to_frame(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(3 + self.data.len());
        payload.extend_from_slice(&[self.sw1, self.sw2, self.sw3]);
        payload.extend_from_slice(&self.data);
        encode_frame(&payload)
    }
    /// `SW3` as a typed status.
    pub fn status(&self) -> crate::status::SamStatus {
        crate::status::SamStatus::from_sw3(self.sw3)
    }
}

/// Build a full frame around `payload` (adds preamble, length and checksum).
///
/// # Panics
/// If `payload` is longer than a frame can carry (`MAX_LEN - 1` bytes); use
/// [`try_encode_frame`] where the payload size is not under your control.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    match try_encode_frame(payload) {
        Ok(frame) => frame,
        Err(e) => panic!("cannot encode GA 467 frame: {e}"),
    }
}

/// Build a full frame around `payload`, or [`FrameError::Length`] if the
/// payload is too long for the two length bytes.
pub fn try_encode_frame(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = payload.len() + 1;
    let len16 = u16::try_from(len).map_err(|_| FrameError::Length(len))?;
    let len_bytes = len16.to_be_bytes();
    let mut frame = Vec::with_capacity(HEADER_LEN + len);
    frame.extend_from_slice(&PREAMBLE);
    frame.extend_from_slice(&len_bytes);
    frame.extend_from_slice(payload);
    frame.push(checksum(len_bytes, payload));
    Ok(frame)
}

/// XOR over the length bytes and the payload.
fn checksum(len_bytes: [u8; 2], payload: &[u8]) -> u8 {
    payload
        .iter()
        .fold(len_bytes[0] ^ len_bytes[1], |acc, b| acc ^ b)
}

/// Errors of frame parsing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The frame's checksum byte does not match its contents; the frame was
    /// dropped.
    #[error("frame checksum mismatch: computed {computed:#04x}, frame says {received:#04x}")]
    Checksum { computed: u8, received: u8 },
    /// A `LEN` outside `2..=max`, a payload too long to encode, or data whose
    /// size disagrees with the lengths it declares.
    #[error("frame length {0} is invalid")]
    Length(usize),
    /// A payload or data part shorter than its fixed header.
    #[error("payload too short: {0} bytes")]
    ShortPayload(usize),
}

/// Streaming decoder: feed bytes in any chunking with [`FrameDecoder::push`],
/// take whole frames' payloads with [`FrameDecoder::next_frame`].
/// Garbage before a preamble is skipped (and counted); a frame with a bad
/// checksum is reported once as an error and skipped.
///
/// A preamble followed by a `LEN` below 2 (no room for a payload) or above
/// the decoder's cap is reported once as [`FrameError::Length`]; decoding
/// then resumes right after that preamble, so a real frame hiding in the
/// bytes that followed it is still found. Call `next_frame` until it answers
/// `Incomplete` after each `push`: the buffer only shrinks when frames and
/// garbage are taken out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    skipped: usize,
    max_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            buf: Vec::new(),
            skipped: 0,
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

/// What [`FrameDecoder::next_frame`] found.
#[derive(Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame's payload (without preamble, length, checksum).
    Frame(Vec<u8>),
    /// More bytes are needed.
    Incomplete,
}

impl std::fmt::Debug for Decoded {
    // A payload may be a read response full of personal data: size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decoded::Frame(payload) => f
                .debug_tuple("Frame")
                .field(&format_args!("{} bytes", payload.len()))
                .finish(),
            Decoded::Incomplete => f.write_str("Incomplete"),
        }
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    /// A decoder accepting `LEN` up to `max_len` (clamped to `2..=MAX_LEN`).
    pub fn with_max_len(max_len: usize) -> Self {
        FrameDecoder {
            max_len: max_len.clamp(2, MAX_LEN),
            ..Self::default()
        }
    }
    /// The largest `LEN` this decoder accepts.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
    /// Bytes held, waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// Append bytes as they arrive, in any chunking.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// The next whole frame's payload, `Incomplete` if more bytes are
    /// needed, or an error for one bad frame (call again to go on).
    pub fn next_frame(&mut self) -> Result<Decoded, FrameError> {
        if !self.sync() {
            return Ok(Decoded::Incomplete);
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(Decoded::Incomplete);
        }
        let len_bytes = [self.buf[PREAMBLE.len()], self.buf[PREAMBLE.len() + 1]];
        let len = usize::from(u16::from_be_bytes(len_bytes));
        if !(2..=self.max_len).contains(&len) {
            // Not a frame we believe in: drop the preamble only, the bytes
            // after it may hold the real start of a frame.
            self.buf.drain(..PREAMBLE.len());
            return Err(FrameError::Length(len));
        }
        let total = HEADER_LEN + len;
        if self.buf.len() < total {
            return Ok(Decoded::Incomplete);
        }
        let payload = &self.buf[HEADER_LEN..total - 1];
        let received = self.buf[total - 1];
        let computed = checksum(len_bytes, payload);
        let result = if computed == received {
            Ok(Decoded::Frame(payload.to_vec()))
        } else {
            Err(FrameError::Checksum { computed, received })
        };
        self.buf.drain(..total);
        result
    }
    /// Drop garbage so the buffer starts with a preamble; `false` if no whole
    /// preamble is buffered yet (a trailing partial one is kept).
    fn sync(&mut self) -> bool {
        if let Some(start) = self.buf.windows(PREAMBLE.len()).position(|w| w == PREAMBLE) {
            self.discard(start);
            return true;
        }
        // Keep the longest tail that could still become a preamble.
        let keep = (1..PREAMBLE.len())
            .rev()
            .find(|&k| self.buf.ends_with(&PREAMBLE[..k]))
            .unwrap_or(0);
        self.discard(self.buf.len() - keep);
        false
    }
    fn discard(&mut self, n: usize) {
        self.buf.drain(..n);
        self.skipped = self.skipped.saturating_add(n);
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
        let header = if with_fingerprint { 6 } else { 4 };
        if data.len() < header {
            return Err(FrameError::ShortPayload(data.len()));
        }
        let field = |i: usize| usize::from(u16::from_be_bytes([data[2 * i], data[2 * i + 1]]));
        let text_len = field(0);
        let photo_len = field(1);
        let fp_len = if with_fingerprint { field(2) } else { 0 };
        let expected = header + text_len + photo_len + fp_len;
        if data.len() < expected {
            return Err(FrameError::ShortPayload(data.len()));
        }
        if data.len() > expected {
            return Err(FrameError::Length(data.len()));
        }
        let (text, rest) = data[header..].split_at(text_len);
        let (photo, fingerprint) = rest.split_at(photo_len);
        Ok(CardData {
            text: text.to_vec(),
            photo: photo.to_vec(),
            fingerprint: with_fingerprint.then(|| fingerprint.to_vec()),
        })
    }
    /// Encode as response DATA (for simulators). A fingerprint (even an
    /// empty one) makes it the `30 10` layout.
    ///
    /// # Panics
    /// If a part is longer than 65 535 bytes.
    pub fn to_data(&self) -> Vec<u8> {
        let parts: Vec<&[u8]> = [
            Some(self.text.as_slice()),
            Some(self.photo.as_slice()),
            self.fingerprint.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut data = Vec::with_capacity(parts.iter().map(|p| 2 + p.len()).sum());
        for part in &parts {
            let len = u16::try_from(part.len()).expect("card data part longer than 65535 bytes");
            data.extend_from_slice(&len.to_be_bytes());
        }
        for part in &parts {
            data.extend_from_slice(part);
        }
        data
    }
}

impl std::fmt::Debug for CardData {
    // Text, photo and fingerprint are personal data: print only their sizes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardData")
            .field("text_len", &self.text.len())
            .field("photo_len", &self.photo.len())
            .field("fingerprint_len", &self.fingerprint.as_ref().map(Vec::len))
            .finish()
    }
}

impl zeroize::Zeroize for CardData {
    fn zeroize(&mut self) {
        self.text.zeroize();
        self.photo.zeroize();
        self.fingerprint.zeroize();
    }
}

/// The SAM id of a `12 FF` response (16 bytes) formatted as readers print
/// it: `%02d.%02d-%08d-%010d-%010d` over little-endian u16,u16,u32,u32,u32,
/// e.g. `05.01-20101216-0011223344-1234567890`.
pub fn format_sam_id(data: &[u8]) -> Result<String, FrameError> {
    let id: &[u8; SAM_ID_LEN] = match data.try_into() {
        Ok(id) => id,
        Err(_) if data.len() < SAM_ID_LEN => return Err(FrameError::ShortPayload(data.len())),
        Err(_) => return Err(FrameError::Length(data.len())),
    };
    let u16_at = |i: usize| u16::from_le_bytes([id[i], id[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([id[i], id[i + 1], id[i + 2], id[i + 3]]);
    Ok(format!(
        "{:02}.{:02}-{:08}-{:010}-{:010}",
        u16_at(0),
        u16_at(2),
        u32_at(4),
        u32_at(8),
        u32_at(12)
    ))
}
