//! The GA 467 SAM: [`SamCore`], the sans-IO state machine, and [`SamSim`],
//! a SAM module on a pseudo-terminal.
//!
//! # What the SAM answers
//!
//! | request | card placed | no card |
//! |---|---|---|
//! | `10 FF` reset | `90` (forgets the selection) | `90` |
//! | `11 FF` status | `90` | `90` |
//! | `12 FF` SAM id | `90` + 16 bytes | same |
//! | `20 01` find | `9F` + `00 00 00 00` | `80` |
//! | `20 02` select | `90` + 8 zero bytes | `81` |
//! | `30 01` read text+photo | `90` + `CardData` (text 256, photo 1024) | `80` |
//! | `30 10` read with fingerprint | `90` + `CardData` with FP_LEN (0 without fingerprints) | `80` |
//! | `30 03` appended address | `90` + 70 bytes, or `91` without data when none | `80` |
//! | a read before a successful select | `41` (read failed) | `80` |
//! | bad request checksum | `10` | `10` |
//! | short request payload / bad length | `11` | `11` |
//! | unknown command | `21` | `21` |
//!
//! Every response has `SW1 SW2 = 00 00`. A selection lasts until the card is
//! removed or replaced, or the SAM is reset; reads may be repeated.
//!
//! Some readers answer find-card only once per placement: after a read the
//! card is halted and find-card says `80` while it still lies there, until
//! it is taken away and placed again (the selection, and so `30 03`, still
//! answers). [`SamCore::set_find_once`] makes the SAM one of those.
//!
//! # Faults
//! The device's fault ([`SamCore::set_fault`]) wins over the placed card's
//! own ([`CardProfile::fault`]); see [`Fault`] for what each does.

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kiosk_idcard::Command;
use kiosk_idcard::frame::{Decoded, FrameDecoder, FrameError, Request, Response};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::Result;
use crate::profile::{CardProfile, Fault, command_name, is_read};
use crate::pty::{self, Flow, PtyDevice, PtyHandle, PtyPort};

/// A SAM id from its printed parts (`%02d.%02d-%08d-%010d-%010d` over
/// little-endian u16, u16, u32, u32, u32).
pub const fn sam_id_from_parts(a: u16, b: u16, c: u32, d: u32, e: u32) -> [u8; 16] {
    let (a, b, c, d, e) = (
        a.to_le_bytes(),
        b.to_le_bytes(),
        c.to_le_bytes(),
        d.to_le_bytes(),
        e.to_le_bytes(),
    );
    [
        a[0], a[1], b[0], b[1], c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3], e[0], e[1], e[2],
        e[3],
    ]
}

/// The default SAM id, printed `05.01-20101216-0011223344-1234567890`.
pub const DEFAULT_SAM_ID: [u8; 16] = sam_id_from_parts(5, 1, 20101216, 11223344, 1234567890);

/// SW3 codes the simulator answers.
pub mod sw3 {
    pub const OK: u8 = 0x90;
    pub const CARD_FOUND: u8 = 0x9F;
    pub const NO_APPENDED_ADDRESS: u8 = 0x91;
    pub const CHECKSUM: u8 = 0x10;
    pub const LENGTH: u8 = 0x11;
    pub const BAD_COMMAND: u8 = 0x21;
    pub const READ_FAILED: u8 = 0x41;
    pub const NO_CARD: u8 = 0x80;
    pub const SELECT_FAILED: u8 = 0x81;
}

/// Counters of one simulated SAM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamStats {
    /// Requests seen (whole frames, including ones with a bad checksum).
    pub requests: u64,
    /// Bytes received from the kiosk.
    pub bytes_in: u64,
    /// Bytes sent to the kiosk.
    pub bytes_out: u64,
    /// Successful read responses (`30 01`, `30 10`, `30 03` with SW3 90)
    /// delivered in full.
    pub reads_completed: u64,
}

/// The SAM's answer to one request, before the transport delivers it.
#[derive(Clone, PartialEq, Eq)]
pub struct SamReply {
    /// The request's command, if it was a known one.
    pub command: Option<Command>,
    /// The SW3 answered.
    pub sw3: u8,
    /// The bytes to send: a whole response frame, or its first part when
    /// the card was pulled ([`SamReply::pulled`]).
    pub bytes: Vec<u8>,
    /// Extra delay before answering (the `Slow` fault).
    pub delay: Duration,
    /// The card was pulled during this read: `bytes` is cut off and the
    /// card is gone.
    pub pulled: bool,
    /// Delivering this reply in full completes a successful read.
    pub completes_read: bool,
}

impl fmt::Debug for SamReply {
    // The bytes hold card data: print only their length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamReply")
            .field("command", &self.command)
            .field("sw3", &format_args!("{:02X}", self.sw3))
            .field("len", &self.bytes.len())
            .field("delay", &self.delay)
            .field("pulled", &self.pulled)
            .finish()
    }
}

/// The GA 467 SAM as a state machine: requests in, replies out, no I/O.
/// Shared by the pty SAM ([`SamSim`]) and the reader-with-SAM of the
/// virtual card ([`crate::vicc`]).
#[derive(Debug)]
pub struct SamCore {
    sam_id: [u8; 16],
    card: Option<CardProfile>,
    fault: Fault,
    selected: bool,
    /// Find-card answers only until a read of this placement (above).
    find_once: bool,
    /// A read of the card placed last succeeded.
    read_done: bool,
    stats: SamStats,
}

impl SamCore {
    pub fn new(sam_id: [u8; 16]) -> SamCore {
        SamCore {
            sam_id,
            card: None,
            fault: Fault::None,
            selected: false,
            find_once: false,
            read_done: false,
            stats: SamStats::default(),
        }
    }

    /// Put a card in the field (replacing any); it must be found and selected again.
    pub fn place(&mut self, card: CardProfile) {
        info!(profile = %card.name, "card placed");
        self.card = Some(card);
        self.selected = false;
        self.read_done = false;
    }

    /// Answer find-card only once per placement (module docs).
    pub fn set_find_once(&mut self, on: bool) {
        self.find_once = on;
    }

    /// Take the card away.
    pub fn remove(&mut self) {
        if let Some(card) = self.card.take() {
            info!(profile = %card.name, "card removed");
        }
        self.selected = false;
        self.read_done = false;
    }

    /// The card in the field.
    pub fn card(&self) -> Option<&CardProfile> {
        self.card.as_ref()
    }

    /// Set the device's fault (`Fault::None` falls back to the card's own).
    pub fn set_fault(&mut self, fault: Fault) {
        info!(?fault, "fault set");
        self.fault = fault;
    }

    /// The fault in force: the device's, else the placed card's.
    pub fn effective_fault(&self) -> Fault {
        match (self.fault, &self.card) {
            (Fault::None, Some(card)) => card.fault,
            (fault, _) => fault,
        }
    }

    pub fn stats(&self) -> SamStats {
        self.stats
    }

    /// Count bytes received by the transport.
    pub fn record_in(&mut self, bytes: usize) {
        self.stats.bytes_in += bytes as u64;
    }

    /// Count bytes the transport sent; `completed_read` when that was a
    /// whole successful read response.
    pub fn record_out(&mut self, bytes: usize, completed_read: bool) {
        self.stats.bytes_out += bytes as u64;
        if completed_read {
            self.stats.reads_completed += 1;
        }
    }

    /// Count a request the transport answered itself (e.g. with garbage at
    /// the wrong baud rate).
    pub fn record_request(&mut self) {
        self.stats.requests += 1;
    }

    /// Answer one whole request frame (tunnelled requests); `None` if
    /// `frame` holds no whole frame.
    pub fn handle_frame(&mut self, frame: &[u8]) -> Option<SamReply> {
        let mut decoder = FrameDecoder::new();
        decoder.push(frame);
        match decoder.next_frame() {
            Ok(Decoded::Frame(payload)) => Some(self.handle_payload(&payload)),
            Ok(Decoded::Incomplete) => None,
            Err(e) => Some(self.handle_frame_error(&e)),
        }
    }

    /// Answer a frame the decoder refused (bad checksum → SW3 10, bad length → SW3 11).
    pub fn handle_frame_error(&mut self, err: &FrameError) -> SamReply {
        self.stats.requests += 1;
        refuse(err)
    }

    /// Answer one request payload (`CMD PARA DATA..`).
    pub fn handle_payload(&mut self, payload: &[u8]) -> SamReply {
        self.stats.requests += 1;
        let request = match Request::from_payload(payload) {
            Ok(r) => r,
            Err(e) => return refuse(&e),
        };
        let Some(command) = request.command() else {
            debug!(
                cmd = format_args!("{:02X} {:02X}", request.cmd, request.para),
                "SAM: unknown command"
            );
            return plain(None, sw3::BAD_COMMAND, Vec::new());
        };
        let fault = self.effective_fault();
        if let Fault::Sw3 { command: c, sw3 } = fault
            && c == command
        {
            debug!(
                command = command_name(command),
                sw3 = format_args!("{sw3:02X}"),
                "SAM: injected SW3"
            );
            return plain(Some(command), sw3, Vec::new());
        }
        let (sw3, data) = self.answer(command);
        let mut reply = plain(Some(command), sw3, data);
        if is_read(command) {
            reply.completes_read = sw3 == sw3::OK;
            match fault {
                Fault::BadChecksum => {
                    if let Some(last) = reply.bytes.last_mut() {
                        *last ^= 0xFF;
                    }
                    reply.completes_read = false;
                }
                Fault::Slow { delay_ms } => reply.delay = Duration::from_millis(delay_ms),
                Fault::PullMidRead if sw3 == sw3::OK => {
                    reply.bytes.truncate(reply.bytes.len() / 2);
                    reply.pulled = true;
                    reply.completes_read = false;
                    info!(command = command_name(command), "card pulled mid-read");
                    self.remove();
                }
                _ => {}
            }
        }
        debug!(
            command = command_name(command),
            sw3 = format_args!("{sw3:02X}"),
            len = reply.bytes.len(),
            "SAM answer"
        );
        reply
    }

    fn answer(&mut self, command: Command) -> (u8, Vec<u8>) {
        match command {
            Command::ResetSam => {
                self.selected = false;
                (sw3::OK, Vec::new())
            }
            Command::SamStatus => (sw3::OK, Vec::new()),
            Command::SamId => (sw3::OK, self.sam_id.to_vec()),
            Command::FindCard => match self.card {
                Some(_) if !(self.find_once && self.read_done) => (sw3::CARD_FOUND, vec![0; 4]),
                _ => (sw3::NO_CARD, Vec::new()),
            },
            Command::SelectCard => match self.card {
                Some(_) => {
                    self.selected = true;
                    (sw3::OK, vec![0; 8])
                }
                None => (sw3::SELECT_FAILED, Vec::new()),
            },
            Command::ReadTextPhoto
            | Command::ReadTextPhotoFingerprint
            | Command::ReadAppendedAddress => {
                let Some(card) = &self.card else {
                    return (sw3::NO_CARD, Vec::new());
                };
                if !self.selected {
                    return (sw3::READ_FAILED, Vec::new());
                }
                match command {
                    Command::ReadTextPhoto | Command::ReadTextPhotoFingerprint => {
                        let data = card
                            .card_data(command == Command::ReadTextPhotoFingerprint)
                            .to_data();
                        self.read_done = true;
                        (sw3::OK, data)
                    }
                    _ => match card.appended_address_block() {
                        Some(block) => (sw3::OK, block.to_vec()),
                        None => (sw3::NO_APPENDED_ADDRESS, Vec::new()),
                    },
                }
            }
        }
    }
}

fn plain(command: Option<Command>, sw3: u8, data: Vec<u8>) -> SamReply {
    let bytes = Response {
        sw1: 0,
        sw2: 0,
        sw3,
        data,
    }
    .to_frame();
    SamReply {
        command,
        sw3,
        bytes,
        delay: Duration::ZERO,
        pulled: false,
        completes_read: false,
    }
}

fn refuse(err: &FrameError) -> SamReply {
    let sw3 = match err {
        FrameError::Checksum { .. } => sw3::CHECKSUM,
        FrameError::Length(_) | FrameError::ShortPayload(_) => sw3::LENGTH,
    };
    debug!(error = %err, sw3 = format_args!("{sw3:02X}"), "SAM request refused");
    plain(None, sw3, Vec::new())
}

pub use crate::pty::wire_time;

/// Configuration of a [`SamSim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamSimConfig {
    /// The symlink the simulator creates (or replaces) pointing to the pty
    /// slave, like `/dev/serial/by-id/...`; its directory is created if missing.
    pub link: PathBuf,
    /// The SAM's line speed; a reader at another speed gets garbage.
    pub baud: u32,
    /// Delay each answer by the wire time of request and response at `baud`.
    pub emulate_wire_time: bool,
    /// The SAM's 16-byte id (`12 FF`).
    pub sam_id: [u8; 16],
    /// Sit behind an emulated FTDI-like USB-serial adapter whose latency
    /// timer lives in this simulated sysfs (`class/tty/<pty>/device/
    /// latency_timer`, 16 ms when plugged in, as the real default): every
    /// answer waits the timer's value, as a short answer waits in the
    /// adapter. A kiosk that asks for low latency writes 1 there.
    pub adapter_sysfs: Option<PathBuf>,
}

impl SamSimConfig {
    /// 115200 baud, no wire-time emulation, [`DEFAULT_SAM_ID`].
    pub fn new(link: impl Into<PathBuf>) -> SamSimConfig {
        SamSimConfig {
            link: link.into(),
            baud: 115_200,
            emulate_wire_time: false,
            sam_id: DEFAULT_SAM_ID,
            adapter_sysfs: None,
        }
    }
}

/// A GA 467 SAM module on a pseudo-terminal, served by a background thread.
///
/// The kiosk opens [`SamSim::link`] (a symlink to the pty slave) as a
/// serial port. Control methods take `&self` and may be called from any
/// thread. Dropping the handle stops the thread and removes the symlink.
#[derive(Debug)]
pub struct SamSim {
    core: Arc<Mutex<SamCore>>,
    found_at: FoundAt,
    /// The worker thread and the link; the SAM sends no requests of its
    /// own, only the port's (unplug, replug).
    pty: PtyHandle<Infallible>,
}

/// When the first find-card request after a placement arrived that found
/// the card: the start of the kiosk's read on the wire (for benchmarks).
type FoundAt = Arc<Mutex<Option<Instant>>>;

impl SamSim {
    /// Create the pty, point the link at it and start answering.
    pub fn start(config: SamSimConfig) -> Result<SamSim> {
        let core = Arc::new(Mutex::new(SamCore::new(config.sam_id)));
        let found_at = FoundAt::default();
        let pty = PtyHandle::start(&config.link, config.baud, |port| Worker {
            config: config.clone(),
            core: core.clone(),
            found_at: found_at.clone(),
            port,
            decoder: FrameDecoder::new(),
            garbage_seed: 0x5EED,
        })?;
        // The adapter of the first plug-in (a replug makes its own).
        if let (Some(sysfs), Some(path)) = (&config.adapter_sysfs, pty.pty_path()) {
            pty::new_adapter_timer(sysfs, &path);
        }
        Ok(SamSim {
            core,
            found_at,
            pty,
        })
    }

    /// Place a card on the reader.
    pub fn place(&self, card: CardProfile) {
        *self.found_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.core().place(card);
    }

    /// When the first find-card request that found the card placed last
    /// arrived (the kiosk's read starts on the wire then).
    pub fn card_found_at(&self) -> Option<Instant> {
        *self.found_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the card away.
    pub fn remove(&self) {
        self.core().remove();
    }

    /// Set the device's fault (wins over the card profile's own; `Fault::None` clears it).
    pub fn set_fault(&self, fault: Fault) {
        self.core().set_fault(fault);
    }

    /// Answer find-card only once per placement, as some readers do
    /// ([`SamCore::set_find_once`]).
    pub fn set_find_once(&self, on: bool) {
        self.core().set_find_once(on);
    }

    /// Counters so far.
    pub fn stats(&self) -> SamStats {
        self.core().stats()
    }

    /// The stable path the kiosk opens.
    pub fn link(&self) -> &Path {
        self.pty.link()
    }

    /// The SAM's configured line speed.
    pub fn baud(&self) -> u32 {
        self.pty.baud()
    }

    /// The pty slave the link points to now (`None` while unplugged).
    pub fn pty_path(&self) -> Option<PathBuf> {
        self.pty.pty_path()
    }

    /// Is the simulated module plugged in?
    pub fn is_plugged(&self) -> bool {
        self.pty.is_plugged()
    }

    /// Unplug the module: the pty master is closed (the kiosk's reads see
    /// EOF/EIO) and the link is removed. Returns once that is done.
    pub fn unplug(&self) -> Result<()> {
        self.pty.unplug()
    }

    /// Plug the module back in: a new pty pair, the link re-pointed to it
    /// (same path, another `/dev/pts/N`), also while it is plugged in.
    /// Returns once the link is in place.
    pub fn replug(&self) -> Result<()> {
        self.pty.replug()
    }

    fn core(&self) -> MutexGuard<'_, SamCore> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Worker {
    found_at: FoundAt,
    config: SamSimConfig,
    core: Arc<Mutex<SamCore>>,
    port: PtyPort<Infallible>,
    decoder: FrameDecoder,
    garbage_seed: u64,
}

impl PtyDevice for Worker {
    type Ctrl = Infallible;
    const WHAT: &'static str = "SAM";
    const ID: &'static str = "sam";
    // Replugging a module that is plugged in moves it to another
    // `/dev/pts/N` behind the same link, as a device renamed under its
    // by-id link: the kiosk must follow the link.
    const REPLUG_MOVES: bool = true;

    fn port(&mut self) -> &mut PtyPort<Infallible> {
        &mut self.port
    }

    fn control(&mut self, msg: Infallible) -> Flow {
        match msg {}
    }

    /// A frame half-read from the old pty does not continue on the new one
    /// (nothing is read while unplugged, so clearing here is enough).
    fn plugged(&mut self) {
        self.decoder.clear();
        self.new_adapter();
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Flow {
        self.core().record_in(bytes.len());
        self.decoder.push(bytes);
        loop {
            let (reply, request_len) = match self.decoder.next_frame() {
                Ok(Decoded::Incomplete) => return Flow::Go,
                Ok(Decoded::Frame(payload)) => {
                    let request_len = payload.len() + 8;
                    match self.reader_baud() {
                        Some(b) if b == self.config.baud => {
                            let reply = self.core().handle_payload(&payload);
                            if reply.command == Some(Command::FindCard)
                                && reply.sw3 == sw3::CARD_FOUND
                            {
                                let mut found =
                                    self.found_at.lock().unwrap_or_else(|e| e.into_inner());
                                found.get_or_insert_with(Instant::now);
                            }
                            (reply, request_len)
                        }
                        other => (self.garbage(other), request_len),
                    }
                }
                Err(e) => (self.core().handle_frame_error(&e), 0),
            };
            if let flow @ (Flow::Stop | Flow::Abandon) = self.deliver(reply, request_len) {
                return flow;
            }
        }
    }
}

impl Worker {
    fn core(&self) -> MutexGuard<'_, SamCore> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The speed the kiosk set on its end of the pty.
    fn reader_baud(&self) -> Option<u32> {
        self.port.kiosk_baud()
    }

    /// What a UART at the wrong speed makes of the SAM's answer: bytes
    /// without any preamble, about as many as the kiosk's speed makes of an
    /// 11-byte frame.
    fn garbage(&mut self, reader_baud: Option<u32>) -> SamReply {
        self.core().record_request();
        let reader = u64::from(reader_baud.unwrap_or(self.config.baud / 2).max(1));
        let len = (11 * reader)
            .div_ceil(u64::from(self.config.baud.max(1)))
            .clamp(1, 64) as usize;
        debug!(reader_baud = ?reader_baud, sam_baud = self.config.baud, len, "baud mismatch: answering garbage");
        const NOISE: [u8; 8] = [0x00, 0xFF, 0x80, 0xF8, 0xE0, 0xFE, 0x78, 0x06];
        let bytes = (0..len)
            .map(|_| {
                self.garbage_seed = self
                    .garbage_seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                NOISE[(self.garbage_seed >> 61) as usize]
            })
            .collect();
        SamReply {
            command: None,
            sw3: 0,
            bytes,
            delay: Duration::ZERO,
            pulled: false,
            completes_read: false,
        }
    }

    /// A (new) adapter plugged in: its latency timer at the default 16 ms.
    fn new_adapter(&self) {
        if let (Some(sysfs), Some(pty)) = (&self.config.adapter_sysfs, self.port.pty()) {
            pty::new_adapter_timer(sysfs, &pty.path);
        }
    }

    /// How long the emulated adapter holds an answer: its latency timer.
    fn adapter_latency(&self) -> Duration {
        match (&self.config.adapter_sysfs, self.port.pty()) {
            (Some(sysfs), Some(pty)) => pty::adapter_latency(sysfs, &pty.path),
            _ => Duration::ZERO,
        }
    }

    fn deliver(&mut self, reply: SamReply, request_len: usize) -> Flow {
        let mut delay = reply.delay;
        if self.config.emulate_wire_time {
            delay += wire_time(request_len + reply.bytes.len(), self.config.baud);
        }
        delay += self.adapter_latency();
        // Unplugged or replugged meanwhile: the answer is lost with the old pty.
        if !delay.is_zero()
            && let flow @ (Flow::Stop | Flow::Abandon) = pty::wait(self, delay)
        {
            return flow;
        }
        if self.port.pty().is_none() {
            return Flow::Abandon;
        }
        // Counted before it is sent: whoever reacts to the answer (the kiosk,
        // a test reading the stats after the kiosk's event) finds it counted.
        self.core()
            .record_out(reply.bytes.len(), reply.completes_read);
        if let Some(pty) = self.port.pty_mut()
            && let Err(e) = pty.send(&reply.bytes)
        {
            warn!(error = %e, "SAM pty write failed");
        }
        Flow::Go
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiosk_idcard::Identity;
    use kiosk_idcard::frame::CardData;

    fn answer(core: &mut SamCore, command: Command) -> Response {
        let reply = core.handle_frame(&command.request_frame()).unwrap();
        let mut d = FrameDecoder::new();
        d.push(&reply.bytes);
        match d.next_frame().unwrap() {
            Decoded::Frame(p) => Response::from_payload(&p).unwrap(),
            Decoded::Incomplete => panic!("incomplete reply"),
        }
    }

    #[test]
    fn default_sam_id_prints_as_documented() {
        assert_eq!(
            kiosk_idcard::frame::format_sam_id(&DEFAULT_SAM_ID).unwrap(),
            "05.01-20101216-0011223344-1234567890"
        );
    }

    #[test]
    fn find_select_read_then_decode() {
        let mut core = SamCore::new(DEFAULT_SAM_ID);
        assert_eq!(answer(&mut core, Command::FindCard).sw3, sw3::NO_CARD);
        assert_eq!(
            answer(&mut core, Command::SelectCard).sw3,
            sw3::SELECT_FAILED
        );
        let card = CardProfile::builtin("resident").unwrap();
        core.place(card.clone());
        assert_eq!(
            answer(&mut core, Command::ReadTextPhoto).sw3,
            sw3::READ_FAILED,
            "read before select"
        );
        let found = answer(&mut core, Command::FindCard);
        assert_eq!((found.sw3, found.data.len()), (sw3::CARD_FOUND, 4));
        assert_eq!(answer(&mut core, Command::SelectCard).sw3, sw3::OK);
        let read = answer(&mut core, Command::ReadTextPhoto);
        assert_eq!(read.sw3, sw3::OK);
        let data = CardData::parse(&read.data, false).unwrap();
        assert_eq!(Identity::decode(&data.text).unwrap(), card.identity);
        assert_eq!(data.photo, card.photo());
        assert_eq!(
            answer(&mut core, Command::ReadAppendedAddress).sw3,
            sw3::NO_APPENDED_ADDRESS
        );
        let fp = answer(&mut core, Command::ReadTextPhotoFingerprint);
        let data = CardData::parse(&fp.data, true).unwrap();
        assert_eq!(data.fingerprint.as_deref().map(<[u8]>::len).unwrap_or(0), 0);
    }

    /// A reader that finds a card once per placement: after the read,
    /// find-card says no card while the selection still answers; taken
    /// away and placed again, it is found again.
    #[test]
    fn find_once_per_placement() {
        let mut core = SamCore::new(DEFAULT_SAM_ID);
        core.set_find_once(true);
        core.place(CardProfile::builtin("resident").unwrap());
        for _ in 0..2 {
            assert_eq!(answer(&mut core, Command::FindCard).sw3, sw3::CARD_FOUND);
        }
        assert_eq!(answer(&mut core, Command::SelectCard).sw3, sw3::OK);
        assert_eq!(answer(&mut core, Command::ReadTextPhoto).sw3, sw3::OK);
        assert_eq!(answer(&mut core, Command::FindCard).sw3, sw3::NO_CARD);
        assert_eq!(
            answer(&mut core, Command::ReadAppendedAddress).sw3,
            sw3::NO_APPENDED_ADDRESS
        );
        core.remove();
        assert_eq!(
            answer(&mut core, Command::ReadAppendedAddress).sw3,
            sw3::NO_CARD
        );
        core.place(CardProfile::builtin("resident").unwrap());
        assert_eq!(answer(&mut core, Command::FindCard).sw3, sw3::CARD_FOUND);
        // The default SAM finds the card every time.
        core.set_find_once(false);
        assert_eq!(answer(&mut core, Command::SelectCard).sw3, sw3::OK);
        assert_eq!(answer(&mut core, Command::ReadTextPhoto).sw3, sw3::OK);
        assert_eq!(answer(&mut core, Command::FindCard).sw3, sw3::CARD_FOUND);
    }

    #[test]
    fn bad_checksum_and_unknown_commands() {
        let mut core = SamCore::new(DEFAULT_SAM_ID);
        let mut frame = Command::SamStatus.request_frame();
        *frame.last_mut().unwrap() ^= 1;
        assert_eq!(core.handle_frame(&frame).unwrap().sw3, sw3::CHECKSUM);
        let unknown = Request {
            cmd: 0x55,
            para: 0x01,
            data: vec![],
        }
        .to_frame();
        assert_eq!(core.handle_frame(&unknown).unwrap().sw3, sw3::BAD_COMMAND);
        assert_eq!(core.stats().requests, 2);
    }

    #[test]
    fn device_fault_wins_over_card_fault() {
        let mut core = SamCore::new(DEFAULT_SAM_ID);
        core.place(CardProfile::builtin("fault-sw3-41").unwrap());
        assert_eq!(
            core.effective_fault(),
            Fault::Sw3 {
                command: Command::ReadTextPhoto,
                sw3: 0x41
            }
        );
        core.set_fault(Fault::Slow { delay_ms: 5 });
        assert_eq!(core.effective_fault(), Fault::Slow { delay_ms: 5 });
        core.set_fault(Fault::None);
        answer(&mut core, Command::SelectCard);
        assert_eq!(answer(&mut core, Command::ReadTextPhoto).sw3, 0x41);
    }

    #[test]
    fn pull_mid_read_cuts_the_answer_and_removes_the_card() {
        let mut core = SamCore::new(DEFAULT_SAM_ID);
        core.place(CardProfile::builtin("fault-pulled").unwrap());
        answer(&mut core, Command::SelectCard);
        let reply = core
            .handle_frame(&Command::ReadTextPhoto.request_frame())
            .unwrap();
        assert!(reply.pulled && !reply.completes_read);
        assert!(reply.bytes.len() < 1295 && reply.bytes.len() > 10);
        assert!(core.card().is_none());
        assert_eq!(answer(&mut core, Command::FindCard).sw3, sw3::NO_CARD);
    }

    #[test]
    fn wire_time_is_ten_bits_a_byte() {
        assert_eq!(wire_time(960, 9600), Duration::from_secs(1));
        assert_eq!(wire_time(10, 0), Duration::ZERO);
    }
}
