//! A Chinese ESC/POS thermal ticket printer: [`PrinterCore`], the sans-IO
//! printer (bytes in, status replies out, decoded tickets kept), and
//! [`PrinterSim`], the printer on a pseudo-terminal or a TCP listener.
//!
//! # Transports
//!
//! * **Serial** ([`PrinterSimConfig::new`]): a pty behind a stable
//!   symlink, which the kiosk opens as a serial port.
//! * **USB printer class** ([`PrinterSimConfig::usb_lp`]): the same pty
//!   stands in for `/dev/usb/lpN`. The kiosk opens it as a plain file and
//!   configures nothing (the pty is created raw and at the printer's own
//!   speed, so nothing needs configuring); unplugging closes the master
//!   (the kiosk's reads and writes fail) and removes the node's link, as
//!   `usblp` fails with `ENODEV` and the node goes. What a pty cannot
//!   stand in for: `usblp`'s own ioctls (`LPGETSTATUS`, device id), which
//!   the kiosk does not use. With [`PrinterSimConfig::answers_status`]
//!   false the printer is unidirectional: it never answers `DLE EOT`.
//! * **TCP** ([`PrinterSimConfig::tcp`]): a listener on 127.0.0.1 (port 0:
//!   [`PrinterSim::address`] says which port; anything but loopback is
//!   refused), as a network printer's raw port 9100, one connection at a
//!   time. Unplugging closes the connection and the listener; replugging
//!   listens on the same address again; [`PrinterSim::reset_connection`]
//!   aborts the connection with a reset (RST) and keeps listening, as a
//!   printer that rebooted.
//!
//! # What it understands
//!
//! The core decodes the byte stream with its own parser (it shares no code
//! with `kiosk-escpos`, so the two check each other) into
//! [`DecodedTicket`]s: one per cut (`GS V`). Text is decoded from GB18030
//! while the Chinese mode is on (`FS &`, off with `FS .`), from PC437
//! otherwise; each [`Line`] (ended by `LF`, `ESC d` or a cut) carries the
//! alignment (`ESC a`), bold (`ESC E`, `ESC !`) and size (`GS !`, `ESC !`)
//! in force at its first character. QR codes (`GS ( k`, model / size /
//! error correction / store / print) and barcodes (`GS k`, CODE128 code
//! sets A, B and C decoded) are recorded by their data; raster images
//! (`GS v 0`) as [`RasterImage`]s that know which line they follow. `ESC @` resets the
//! modes and drops an unprinted line. Other common commands are skipped
//! by their length; commands it does not know are kept in
//! [`DecodedTicket::unknown`].
//!
//! # Status and states
//!
//! Real-time commands are acted on as they arrive, wherever they are in
//! the stream, as printers do (a scanner ahead of the parser): `DLE EOT n`
//! is answered at once from the current [`PrinterState`], in Epson's bit
//! layout; `DLE ENQ 1/2` clears a cutter error.
//!
//! | state | n=1 | n=2 | n=3 | n=4 | prints |
//! |---|---|---|---|---|---|
//! | `Ready` | 12 | 12 | 12 | 12 | yes |
//! | `PaperNearEnd` | 12 | 12 | 12 | 1E | yes |
//! | `PaperOut` | 1A | 32 | 12 | 7E | no |
//! | `CoverOpen` | 1A | 16 | 12 | 12 | no |
//! | `Offline` | 1A | 12 | 12 | 12 | no |
//! | `CutterError` | 1A | 52 | 1A | 12 | no |
//!
//! **Automatic status back.** `GS a n` (n ≠ 0) is executed in order with
//! the print data (so not by a printer that cannot print, which discards
//! it): the printer sends its 4-byte block at once and then whenever the
//! block changes ([`PrinterState::asb_block`]: a state set by
//! [`PrinterSim::set_state`], paper running out by
//! [`PrinterSim::paper_out_after`], `DLE ENQ` clearing a cutter error).
//! Blocks take their wire time and the adapter's hold like any answer and
//! are counted in [`PrinterSimStats::asb_blocks`]; `GS a` counts for no
//! ticket. An unplug forgets it (power-on default: off). With
//! [`PrinterSimConfig::honours_asb`] false, `GS a` is skipped, as by a
//! printer without ASB.
//!
//! A printer that cannot print **discards** what it receives and counts it
//! in [`PrinterSimStats::rejected_bytes`] (real-time commands excepted).
//! Real printers buffer and go busy instead; discarding makes "nothing was
//! printed" observable, which is what the kiosk must cope with. Switching
//! to such a state, or unplugging, mid-ticket moves the ticket so far to
//! [`PrinterSim::interrupted`].
//!
//! # Wire time
//!
//! A pty has no baud rate. With [`PrinterSimConfig::emulate_wire_time`]
//! the simulator reads at most about 10 ms worth of bytes at a time and
//! waits their wire time at the configured baud (10 bits a byte) before
//! handling them. So a status reply comes only after everything sent
//! before it has "arrived", and a writer is throttled once the pty's
//! kernel buffer (tens of KiB) is full. Each byte is given the time it
//! finished arriving (the end of its chunk's wire time, less the wire time
//! of the bytes after it): [`PrinterSim::last_byte_at`] is that of the
//! last byte received, [`PrinterSim::last_ticket_byte_at`] that of the
//! last byte of the last ticket cut (not of a status query after it), for
//! benchmarks. The status replies take their own wire time too before
//! they are sent (then an emulated adapter holds them for its latency
//! timer), so both directions cost what they would on a serial line. As with the SAM, the
//! speed the kiosk set on its end is read from the pty; at another speed
//! the bytes count as [`PrinterSimStats::garbled_bytes`] and get no answer.

use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use encoding_rs::GB18030;
use serde::{Deserialize, Serialize};
use serialport::SerialPort;
use tracing::{debug, info, warn};

mod decoder;
mod tcp;

use self::decoder::{Decoder, RealTime, RealTimeScanner};
use self::tcp::TcpPort;
use crate::error::{Result, SimError};
use crate::pty::{self, Done, Flow, PortCtrl, PtyDevice, PtyHandle, PtyPort, wire_time};

/// What the printer is doing, as the technician would see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    #[default]
    Ready,
    /// Prints; the paper sensor reports near end.
    PaperNearEnd,
    PaperOut,
    CoverOpen,
    /// Offline without a cause (e.g. the offline button).
    Offline,
    /// Paper jammed at the cutter; `DLE ENQ 1` / `DLE ENQ 2` clears it.
    CutterError,
}

impl PrinterState {
    pub const ALL: [PrinterState; 6] = [
        PrinterState::Ready,
        PrinterState::PaperNearEnd,
        PrinterState::PaperOut,
        PrinterState::CoverOpen,
        PrinterState::Offline,
        PrinterState::CutterError,
    ];

    /// Does a printer in this state print what it receives?
    pub fn prints(self) -> bool {
        matches!(self, PrinterState::Ready | PrinterState::PaperNearEnd)
    }

    /// The reply to `DLE EOT n` (n = 1 to 4).
    pub fn status_byte(self, n: u8) -> Option<u8> {
        let [printer, offline, error, paper] = match self {
            PrinterState::Ready => [0x12, 0x12, 0x12, 0x12],
            PrinterState::PaperNearEnd => [0x12, 0x12, 0x12, 0x1E],
            PrinterState::PaperOut => [0x1A, 0x32, 0x12, 0x7E],
            PrinterState::CoverOpen => [0x1A, 0x16, 0x12, 0x12],
            PrinterState::Offline => [0x1A, 0x12, 0x12, 0x12],
            PrinterState::CutterError => [0x1A, 0x52, 0x1A, 0x12],
        };
        match n {
            1 => Some(printer),
            2 => Some(offline),
            3 => Some(error),
            4 => Some(paper),
            _ => None,
        }
    }

    /// The automatic status back block (`GS a`) of this state, in Epson's
    /// layout: byte 1 printer (bit 3 offline, bit 5 cover open, bit 4
    /// fixed on), byte 2 errors (bit 3 autocutter), byte 3 paper (bits
    /// 0+1 near end, 2+3 end), byte 4 reserved.
    pub fn asb_block(self) -> [u8; 4] {
        match self {
            PrinterState::Ready => [0x10, 0x00, 0x00, 0x00],
            PrinterState::PaperNearEnd => [0x10, 0x00, 0x03, 0x00],
            PrinterState::PaperOut => [0x18, 0x00, 0x0F, 0x00],
            PrinterState::CoverOpen => [0x38, 0x00, 0x00, 0x00],
            PrinterState::Offline => [0x18, 0x00, 0x00, 0x00],
            PrinterState::CutterError => [0x18, 0x08, 0x00, 0x00],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PrinterState::Ready => "ready",
            PrinterState::PaperNearEnd => "paper_near_end",
            PrinterState::PaperOut => "paper_out",
            PrinterState::CoverOpen => "cover_open",
            PrinterState::Offline => "offline",
            PrinterState::CutterError => "cutter_error",
        }
    }
}

impl fmt::Display for PrinterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PrinterState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().replace('-', "_").to_ascii_lowercase();
        PrinterState::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = PrinterState::ALL.iter().map(|s| s.name()).collect();
                format!("unknown printer state {s:?} (one of {})", names.join(", "))
            })
    }
}

/// Horizontal alignment of a printed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    #[default]
    Left,
    Center,
    Right,
}

/// How a ticket was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutKind {
    Full,
    Partial,
}

/// One printed line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub text: String,
    pub align: Align,
    pub bold: bool,
    /// Character width multiple, 1 to 8.
    pub width: u8,
    /// Character height multiple, 1 to 8.
    pub height: u8,
}

/// What one ticket (paper up to a cut) shows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DecodedTicket {
    pub lines: Vec<Line>,
    /// QR payloads, in print order (UTF-8, lossy).
    pub qr: Vec<String>,
    /// Raster images (`GS v 0`), in print order, each knowing which line
    /// it follows.
    pub images: Vec<RasterImage>,
    /// Barcode data, in print order (CODE128 without its code-set codes).
    pub barcodes: Vec<String>,
    /// The cut that ended the ticket; `None` for an interrupted one.
    pub cut: Option<CutKind>,
    /// Lines fed with `ESC d`.
    pub feed_lines: u32,
    /// `ESC @` seen.
    pub resets: u32,
    /// Commands the simulator does not know, as received (prefix bytes).
    pub unknown: Vec<Vec<u8>>,
    /// Bytes received for this ticket.
    pub bytes: usize,
}

impl DecodedTicket {
    /// The lines' texts.
    pub fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.text.as_str()).collect()
    }

    /// The first line with exactly this text.
    pub fn line(&self, text: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.text == text)
    }

    /// Nothing printed on it (yet).
    pub fn is_blank(&self) -> bool {
        self.lines.is_empty()
            && self.qr.is_empty()
            && self.barcodes.is_empty()
            && self.images.is_empty()
    }
}

/// A raster bit image (`GS v 0`) as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RasterImage {
    /// How many of the ticket's lines were printed before it: it sits
    /// between `lines[after_lines - 1]` and `lines[after_lines]`.
    pub after_lines: usize,
    /// `m`: 0 normal, 1 double width, 2 double height, 3 both.
    pub scale: u8,
    pub width_dots: usize,
    pub height_dots: usize,
    /// The alignment in force (`ESC a` applies to it).
    pub align: Align,
    /// Rows of `width_dots / 8` bytes, top first, MSB the leftmost dot.
    pub data: Vec<u8>,
}

impl RasterImage {
    /// Is the dot at (`x`, `y`) black?
    pub fn dot(&self, x: usize, y: usize) -> bool {
        let row = self.width_dots / 8;
        x < self.width_dots
            && y < self.height_dots
            && self.data[y * row + x / 8] & (0x80 >> (x % 8)) != 0
    }

    /// Black dots in all.
    pub fn black_dots(&self) -> usize {
        self.data.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The columns that have a black dot: from the leftmost to the
    /// rightmost (`None` for a blank image).
    pub fn inked_columns(&self) -> Option<(usize, usize)> {
        let inked = |x: usize| (0..self.height_dots).any(|y| self.dot(x, y));
        let first = (0..self.width_dots).find(|&x| inked(x))?;
        let last = (0..self.width_dots).rev().find(|&x| inked(x))?;
        Some((first, last))
    }
}

/// Counters of one simulated printer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterSimStats {
    /// Bytes received (all of them).
    pub bytes_in: u64,
    /// Bytes discarded because the printer could not print (real-time
    /// commands not counted).
    pub rejected_bytes: u64,
    /// Bytes received at a speed other than the printer's.
    pub garbled_bytes: u64,
    /// Status replies and automatic status back blocks sent.
    pub bytes_out: u64,
    /// `DLE EOT n` answered.
    pub status_queries: u64,
    /// Automatic status back blocks sent (4 bytes each).
    pub asb_blocks: u64,
    /// Tickets cut.
    pub tickets: u64,
    /// Tickets left unfinished by a state change or an unplug.
    pub interrupted_tickets: u64,
    pub unplugs: u64,
}

/// The printer without I/O: bytes in, replies out.
#[derive(Debug, Default)]
pub struct PrinterCore {
    state: PrinterState,
    decoder: Decoder,
    scanner: RealTimeScanner,
    tickets: Vec<DecodedTicket>,
    interrupted: Vec<DecodedTicket>,
    stats: PrinterSimStats,
    last_byte_at: Option<Instant>,
    /// When the last byte of the last ticket cut arrived.
    last_ticket_byte_at: Option<Instant>,
    /// The counters then.
    stats_at_last_ticket: Option<PrinterSimStats>,
    /// The arrival time of the byte being handled ([`PrinterCore::receive_at`]);
    /// `None`: now.
    arrival: Option<Instant>,
    /// Unplug once `bytes_in` reaches this.
    unplug_at: Option<u64>,
    /// Run out of paper once `bytes_in` reaches this.
    paper_out_at: Option<u64>,
    /// A unidirectional printer: `DLE EOT` gets no answer.
    mute_status: bool,
    /// A printer without automatic status back: `GS a` is skipped.
    ignore_asb: bool,
    /// The `n` of the last `GS a` (0: ASB off, as at power-on).
    asb_items: u8,
    /// The last block sent, so a block goes only on a change.
    asb_sent: Option<[u8; 4]>,
    /// What to send the kiosk next (replies and blocks, in order).
    outgoing: Vec<u8>,
}

impl PrinterCore {
    pub fn new() -> PrinterCore {
        PrinterCore::default()
    }

    pub fn state(&self) -> PrinterState {
        self.state
    }

    /// Answer `DLE EOT` (a bidirectional printer, the default) or not.
    pub fn set_answers_status(&mut self, answers: bool) {
        self.mute_status = !answers;
    }

    /// Honour `GS a` (the default) or skip it, as a printer without
    /// automatic status back does.
    pub fn set_honours_asb(&mut self, honours: bool) {
        self.ignore_asb = !honours;
    }

    /// Is automatic status back on (a `GS a` with items was executed)?
    pub fn asb_enabled(&self) -> bool {
        self.asb_items != 0
    }

    /// Change the state; a ticket in progress is interrupted when the
    /// printer stops printing. With automatic status back on, a changed
    /// status is queued as a block ([`PrinterCore::take_outgoing`]).
    pub fn set_state(&mut self, state: PrinterState) {
        if self.state != state {
            info!(from = %self.state, to = %state, "printer state");
        }
        if !state.prints() {
            self.interrupt();
        }
        self.state = state;
        self.push_asb(false);
    }

    /// What the printer has queued to send by itself (automatic status
    /// back blocks after a state change made from outside).
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outgoing)
    }

    /// Queue the status block if ASB is on and it changed (or `always`:
    /// the block sent when `GS a` is executed).
    fn push_asb(&mut self, always: bool) {
        if !self.asb_enabled() {
            return;
        }
        let block = self.state.asb_block();
        if always || self.asb_sent != Some(block) {
            debug!(?block, "printer: automatic status back");
            self.asb_sent = Some(block);
            self.outgoing.extend_from_slice(&block);
            self.stats.asb_blocks += 1;
            self.stats.bytes_out += 4;
        }
    }

    /// Receive bytes whose last one finished arriving at `last_at`, each
    /// taking `byte_time` on the wire: each byte is stamped with its own
    /// arrival time. The status replies to send back, in order.
    pub fn receive_at(&mut self, bytes: &[u8], last_at: Instant, byte_time: Duration) -> Vec<u8> {
        let mut replies = Vec::new();
        let n = bytes.len();
        for (i, byte) in bytes.iter().enumerate() {
            let later = u32::try_from(n - 1 - i).unwrap_or(u32::MAX);
            self.arrival = Some(
                last_at
                    .checked_sub(byte_time.saturating_mul(later))
                    .unwrap_or(last_at),
            );
            replies.extend(self.receive(std::slice::from_ref(byte)));
        }
        self.arrival = None;
        replies
    }

    fn arrived(&self) -> Instant {
        self.arrival.unwrap_or_else(Instant::now)
    }

    /// Receive bytes: the status replies to send back, in order.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<u8> {
        // A pending paper-out falls at its exact byte, whatever the reads'
        // sizes: the bytes after it arrive at a printer without paper.
        if let Some(at) = self.paper_out_at {
            let left = at.saturating_sub(self.stats.bytes_in);
            if left <= bytes.len() as u64 {
                let (before, after) = bytes.split_at(left as usize);
                let mut replies = self.receive_bytes(before);
                self.paper_out_at = None;
                self.set_state(PrinterState::PaperOut);
                replies.extend(self.receive_bytes(after));
                return replies;
            }
        }
        self.receive_bytes(bytes)
    }

    fn receive_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        if bytes.is_empty() {
            return self.take_outgoing();
        }
        self.stats.bytes_in += bytes.len() as u64;
        self.last_byte_at = Some(self.arrived());
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(rt) = self.scanner.step(b) {
                self.consume(&bytes[start..=i]);
                start = i + 1;
                if !self.state.prints() {
                    // The command's own bytes are not rejected data.
                    self.stats.rejected_bytes = self.stats.rejected_bytes.saturating_sub(3);
                }
                match rt {
                    RealTime::Status(n) => {
                        if self.mute_status {
                            continue;
                        }
                        if let Some(reply) = self.state.status_byte(n) {
                            self.stats.status_queries += 1;
                            self.stats.bytes_out += 1;
                            self.outgoing.push(reply);
                        }
                    }
                    RealTime::Recover(_) => {
                        if self.state == PrinterState::CutterError {
                            info!("printer: DLE ENQ clears the cutter error");
                            self.state = PrinterState::Ready;
                            self.push_asb(false);
                        }
                    }
                }
            }
        }
        self.consume(&bytes[start..]);
        self.take_outgoing()
    }

    fn consume(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.state.prints() {
            let before = self.tickets.len();
            self.decoder.push(bytes, &mut self.tickets);
            for n in std::mem::take(&mut self.decoder.asb_requests) {
                if self.ignore_asb {
                    debug!(n, "printer: GS a ignored (no automatic status back)");
                    continue;
                }
                self.asb_items = n;
                // Sent when the command is executed, then on each change.
                self.push_asb(true);
            }
            let cut = self.tickets.len() - before;
            if cut > 0 {
                self.last_ticket_byte_at = Some(self.arrived());
                self.stats.tickets += cut as u64;
                self.stats_at_last_ticket = Some(self.stats);
                debug!(tickets = self.stats.tickets, "printer: ticket cut");
            }
        } else {
            self.stats.rejected_bytes += bytes.len() as u64;
        }
    }

    /// The ticket in progress (if any) is abandoned as interrupted.
    fn interrupt(&mut self) {
        if let Some(ticket) = self.decoder.interrupt() {
            info!(lines = ticket.lines.len(), "printer: ticket interrupted");
            self.interrupted.push(ticket);
            self.stats.interrupted_tickets += 1;
        }
    }

    /// The device went away: the ticket in progress is interrupted.
    pub fn unplugged(&mut self) {
        self.interrupt();
        self.scanner = RealTimeScanner::default();
        // Power-on defaults again: ASB off, nothing left to send.
        self.asb_items = 0;
        self.asb_sent = None;
        self.outgoing.clear();
        self.stats.unplugs += 1;
        self.unplug_at = None;
        self.paper_out_at = None;
    }

    /// Tickets cut so far.
    pub fn tickets(&self) -> &[DecodedTicket] {
        &self.tickets
    }

    /// Tickets left unfinished.
    pub fn interrupted(&self) -> &[DecodedTicket] {
        &self.interrupted
    }

    /// Forget the tickets (cut and interrupted) and the counters.
    pub fn clear(&mut self) {
        self.tickets.clear();
        self.interrupted.clear();
        self.stats = PrinterSimStats::default();
        self.last_byte_at = None;
        self.last_ticket_byte_at = None;
        self.stats_at_last_ticket = None;
    }

    pub fn stats(&self) -> PrinterSimStats {
        self.stats
    }

    pub fn last_byte_at(&self) -> Option<Instant> {
        self.last_byte_at
    }

    /// When the last byte of the last ticket cut arrived.
    pub fn last_ticket_byte_at(&self) -> Option<Instant> {
        self.last_ticket_byte_at
    }

    /// The counters as they were when the last ticket was cut.
    pub fn stats_at_last_ticket(&self) -> Option<PrinterSimStats> {
        self.stats_at_last_ticket
    }

    /// How many more bytes may be received before a pending
    /// [`PrinterSim::unplug_after`] unplugs.
    fn bytes_until_unplug(&self) -> Option<u64> {
        self.unplug_at
            .map(|at| at.saturating_sub(self.stats.bytes_in))
    }
}

/// Configuration of a [`PrinterSim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterSimConfig {
    /// The symlink the simulator creates (or replaces) pointing to the pty
    /// slave, like `/dev/serial/by-id/...`; its directory is created if
    /// missing.
    pub link: PathBuf,
    /// The printer's line speed; a kiosk at another speed is not understood.
    pub baud: u32,
    /// Read at the speed of the line (see the module docs).
    pub emulate_wire_time: bool,
    /// Answer `DLE EOT` (default); false: a unidirectional printer.
    pub answers_status: bool,
    /// Honour `GS a` (automatic status back, default); false: a printer
    /// that skips it, so the kiosk must fall back to asking.
    pub honours_asb: bool,
    /// Serve over TCP on this address instead of a pty (`link` is then
    /// not used); port 0 picks a free one.
    pub listen: Option<SocketAddr>,
    /// Sit behind an emulated FTDI-like USB-serial adapter, as the SAM
    /// simulator can ([`crate::SamSimConfig::adapter_sysfs`]): every
    /// status answer is held for the adapter's latency timer, kept in this
    /// simulated sysfs (16 ms until the kiosk lowers it).
    pub adapter_sysfs: Option<PathBuf>,
}

impl PrinterSimConfig {
    /// A serial printer behind `link`: 115200 baud, no wire-time
    /// emulation.
    pub fn new(link: impl Into<PathBuf>) -> PrinterSimConfig {
        PrinterSimConfig {
            link: link.into(),
            baud: 115_200,
            emulate_wire_time: false,
            answers_status: true,
            honours_asb: true,
            listen: None,
            adapter_sysfs: None,
        }
    }

    /// A USB printer-class device behind `link` (a pty the kiosk opens as
    /// a file; see the module docs).
    pub fn usb_lp(link: impl Into<PathBuf>) -> PrinterSimConfig {
        PrinterSimConfig::new(link)
    }

    /// A network printer on 127.0.0.1, on a free port.
    pub fn tcp() -> PrinterSimConfig {
        PrinterSimConfig {
            listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            ..PrinterSimConfig::new(PathBuf::new())
        }
    }
}

/// The printer's own control message ([`PrinterSim::inject`]); stop,
/// unplug and replug are the port's ([`PortCtrl`]).
#[derive(Debug)]
struct Inject {
    bytes: Vec<u8>,
    /// Sent by the printer itself (an ASB block): after its wire time and
    /// the adapter's hold, like any answer.
    timed: bool,
    done: Done,
}

type Shared = Arc<(Mutex<PrinterCore>, Condvar)>;

/// Where the kiosk reaches the simulated printer.
#[derive(Debug)]
enum Port {
    /// The worker thread and the link.
    Pty(PtyHandle<Inject>),
    Tcp(TcpPort),
}

/// An ESC/POS printer on a pseudo-terminal or a TCP listener, served by a
/// background thread.
///
/// The kiosk opens [`PrinterSim::link`] (a symlink to the pty slave) as a
/// serial port or a file, or connects to [`PrinterSim::address`]. Control
/// methods take `&self` and may be called from any thread. Dropping the
/// handle stops the thread and removes the symlink.
#[derive(Debug)]
pub struct PrinterSim {
    shared: Shared,
    config: PrinterSimConfig,
    port: Port,
}

impl PrinterSim {
    /// Create the pty and point the link at it, or listen on
    /// [`PrinterSimConfig::listen`]; start serving.
    pub fn start(config: PrinterSimConfig) -> Result<PrinterSim> {
        let mut core = PrinterCore::new();
        core.set_answers_status(config.answers_status);
        core.set_honours_asb(config.honours_asb);
        let shared: Shared = Arc::new((Mutex::new(core), Condvar::new()));
        let port = match config.listen {
            // A simulator never serves the network: loopback only.
            Some(listen) if !listen.ip().is_loopback() => {
                return Err(SimError::Io {
                    context: format!(
                        "listening on {listen}: the printer simulator listens on loopback only"
                    ),
                    source: std::io::ErrorKind::InvalidInput.into(),
                });
            }
            Some(listen) => Port::Tcp(TcpPort::start(listen, shared.clone())?),
            None => {
                let pty = PtyHandle::start(&config.link, config.baud, |port| Worker {
                    config: config.clone(),
                    shared: shared.clone(),
                    port,
                })?;
                // The adapter of the first plug-in (a replug makes its own).
                if let (Some(sysfs), Some(path)) = (&config.adapter_sysfs, pty.pty_path()) {
                    pty::new_adapter_timer(sysfs, &path);
                }
                Port::Pty(pty)
            }
        };
        Ok(PrinterSim {
            shared,
            config,
            port,
        })
    }

    /// The stable path the kiosk opens (empty for a TCP printer).
    pub fn link(&self) -> &Path {
        match &self.port {
            Port::Pty(pty) => pty.link(),
            Port::Tcp(_) => &self.config.link,
        }
    }

    /// The address a TCP printer listens on (`None` on a pty).
    pub fn address(&self) -> Option<SocketAddr> {
        match &self.port {
            Port::Pty(_) => None,
            Port::Tcp(tcp) => Some(tcp.addr()),
        }
    }

    pub fn baud(&self) -> u32 {
        match &self.port {
            Port::Pty(pty) => pty.baud(),
            Port::Tcp(_) => self.config.baud,
        }
    }

    /// The pty slave the link points to now (`None` while unplugged, and
    /// on TCP).
    pub fn pty_path(&self) -> Option<PathBuf> {
        match &self.port {
            Port::Pty(pty) => pty.pty_path(),
            Port::Tcp(_) => None,
        }
    }

    pub fn is_plugged(&self) -> bool {
        match &self.port {
            Port::Pty(pty) => pty.is_plugged(),
            Port::Tcp(tcp) => tcp.is_plugged(),
        }
    }

    pub fn state(&self) -> PrinterState {
        self.core().state()
    }

    /// Paper near end, paper out, cover open, offline, cutter error, or
    /// ready again. Takes effect for the next byte received. With
    /// automatic status back on (the kiosk sent `GS a`), the changed status
    /// is sent as a block, after its wire time and the adapter's hold like
    /// any answer; this returns once it waits in the kiosk side's input
    /// queue (as [`PrinterSim::inject`]).
    pub fn set_state(&self, state: PrinterState) {
        let pushed = {
            let mut core = self.core();
            core.set_state(state);
            core.take_outgoing()
        };
        self.shared.1.notify_all();
        if pushed.is_empty() {
            return;
        }
        let sent = match &self.port {
            Port::Pty(pty) => pty.call(|done| {
                PortCtrl::Device(Inject {
                    bytes: pushed,
                    timed: true,
                    done,
                })
            }),
            Port::Tcp(tcp) => tcp.inject(&pushed),
        };
        if let Err(e) = sent {
            debug!(error = %e, "printer: automatic status back not delivered");
        }
    }

    /// Is automatic status back on (the kiosk sent `GS a` since the
    /// printer was plugged in)?
    pub fn asb_enabled(&self) -> bool {
        self.core().asb_enabled()
    }

    /// Unplug: the pty master is closed (the kiosk's reads and writes see
    /// a hang-up / EIO) and the link removed; on TCP the connection and
    /// the listener are closed. Returns once done.
    pub fn unplug(&self) -> Result<()> {
        match &self.port {
            Port::Pty(pty) => pty.unplug(),
            Port::Tcp(tcp) => tcp.unplug(),
        }
    }

    /// Plug back in: a new pty behind the same link, or listening again on
    /// the same address (nothing if still plugged in). Returns once the
    /// link is in place or the listener bound.
    pub fn replug(&self) -> Result<()> {
        match &self.port {
            Port::Pty(pty) => pty.replug(),
            Port::Tcp(tcp) => tcp.replug(),
        }
    }

    /// TCP only: abort the kiosk's connection with a reset (the listener
    /// stays open, so the kiosk can reconnect at once). Returns once done;
    /// an error on a pty or with no kiosk connected.
    pub fn reset_connection(&self) -> Result<()> {
        match &self.port {
            Port::Pty(_) => Err(SimError::Io {
                context: "resetting a connection: the printer is on a pty".into(),
                source: std::io::ErrorKind::Unsupported.into(),
            }),
            Port::Tcp(tcp) => tcp.reset(),
        }
    }

    /// Unplug by itself once `bytes` more bytes have been received (the
    /// rest of that read is lost with the pty): an unplug at an exact
    /// point of a ticket, without racing the writer.
    pub fn unplug_after(&self, bytes: u64) {
        let mut core = self.core();
        core.unplug_at = Some(core.stats.bytes_in + bytes);
    }

    /// Run out of paper by itself once `bytes` more bytes have been
    /// received: paper out at an exact point of a ticket, without racing
    /// the writer (a watcher thread can be descheduled past the ticket's
    /// end on a loaded machine).
    pub fn paper_out_after(&self, bytes: u64) {
        let mut core = self.core();
        core.paper_out_at = Some(core.stats.bytes_in + bytes);
    }

    /// Send bytes the kiosk did not ask for (e.g. a stale status reply).
    /// Returns once they wait in the kiosk side's input queue (polled on
    /// the pty: the tty layer has no notification for it; 1 s at most).
    ///
    /// On TCP: returns once written to the kiosk's connection.
    pub fn inject(&self, bytes: &[u8]) -> Result<()> {
        match &self.port {
            Port::Pty(pty) => pty.call(|done| {
                PortCtrl::Device(Inject {
                    bytes: bytes.to_vec(),
                    timed: false,
                    done,
                })
            }),
            Port::Tcp(tcp) => tcp.inject(bytes),
        }
    }

    /// Tickets cut so far.
    pub fn tickets(&self) -> Vec<DecodedTicket> {
        self.core().tickets().to_vec()
    }

    /// Tickets left unfinished (state change or unplug mid-ticket).
    pub fn interrupted(&self) -> Vec<DecodedTicket> {
        self.core().interrupted().to_vec()
    }

    /// Forget tickets and counters.
    pub fn clear(&self) {
        self.core().clear();
    }

    /// The tickets cut and the tickets interrupted so far, forgotten at
    /// once (under one lock, so none is lost or returned twice); the
    /// counters are kept.
    pub fn take_tickets(&self) -> (Vec<DecodedTicket>, Vec<DecodedTicket>) {
        let mut core = self.core();
        (
            std::mem::take(&mut core.tickets),
            std::mem::take(&mut core.interrupted),
        )
    }

    /// Wait until at least `n` tickets have been cut; returns them all.
    pub fn wait_for_tickets(&self, n: usize, timeout: Duration) -> Result<Vec<DecodedTicket>> {
        let core = self
            .wait_until(timeout, |c| c.tickets.len() >= n)
            .map_err(|have| SimError::Timeout {
                what: format!("{n} printed tickets ({} so far)", have.tickets),
                after: timeout,
            })?;
        Ok(core.tickets().to_vec())
    }

    /// Wait until at least `n` bytes have been received in all.
    pub fn wait_for_bytes(&self, n: u64, timeout: Duration) -> Result<PrinterSimStats> {
        let core = self
            .wait_until(timeout, |c| c.stats.bytes_in >= n)
            .map_err(|have| SimError::Timeout {
                what: format!("{n} bytes received ({} so far)", have.bytes_in),
                after: timeout,
            })?;
        Ok(core.stats())
    }

    pub fn stats(&self) -> PrinterSimStats {
        self.core().stats()
    }

    /// When the last byte was received (after its emulated wire time).
    pub fn last_byte_at(&self) -> Option<Instant> {
        self.core().last_byte_at()
    }

    /// When the last byte of the last ticket cut was received (after its
    /// emulated wire time): the end of a ticket, not a status query sent
    /// after it.
    pub fn last_ticket_byte_at(&self) -> Option<Instant> {
        self.core().last_ticket_byte_at()
    }

    /// The counters as they were when the last ticket was cut: what was
    /// exchanged up to its last byte.
    pub fn stats_at_last_ticket(&self) -> Option<PrinterSimStats> {
        self.core().stats_at_last_ticket()
    }

    fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&PrinterCore) -> bool,
    ) -> std::result::Result<MutexGuard<'_, PrinterCore>, PrinterSimStats> {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.shared;
        let mut core = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if done(&core) {
                return Ok(core);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(core.stats());
            }
            core = cvar
                .wait_timeout(core, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn core(&self) -> MutexGuard<'_, PrinterCore> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Worker {
    config: PrinterSimConfig,
    shared: Shared,
    port: PtyPort<Inject>,
}

impl PtyDevice for Worker {
    type Ctrl = Inject;
    const WHAT: &'static str = "printer";
    const ID: &'static str = "printer";
    // Replugging a printer that is plugged in changes nothing: moving it
    // would hang up on the kiosk without an unplug's bookkeeping (the
    // interrupted ticket, the count).
    const REPLUG_MOVES: bool = false;

    fn port(&mut self) -> &mut PtyPort<Inject> {
        &mut self.port
    }

    fn control(&mut self, msg: Inject) -> Flow {
        if msg.timed {
            // The block's own wire time back, then the adapter's hold.
            let mut hold = if self.config.emulate_wire_time {
                wire_time(msg.bytes.len(), self.config.baud)
            } else {
                Duration::ZERO
            };
            if let (Some(sysfs), Some(pty)) = (&self.config.adapter_sysfs, self.port.pty()) {
                hold += pty::adapter_latency(sysfs, &pty.path);
            }
            if let flow @ (Flow::Stop | Flow::Abandon) = pty::wait(self, hold) {
                let _ = msg.done.send(Err(SimError::Io {
                    context: "sending automatic status back".into(),
                    source: std::io::ErrorKind::NotConnected.into(),
                }));
                return flow;
            }
        }
        let _ = msg.done.send(self.inject(&msg.bytes));
        Flow::Go
    }

    /// About 10 ms of the line at a time when emulating wire time.
    fn chunk(&self) -> usize {
        if self.config.emulate_wire_time {
            (self.config.baud as usize / 1000).clamp(16, 4096)
        } else {
            4096
        }
    }

    /// The ticket in progress is interrupted; the kiosk sees the hang-up
    /// only once the simulator reports itself unplugged.
    fn unplugged(&mut self) {
        self.core().unplugged();
        self.shared.1.notify_all();
    }

    /// A (new) adapter comes with the new pty: its timer at 16 ms.
    fn plugged(&mut self) {
        if let (Some(sysfs), Some(pty)) = (&self.config.adapter_sysfs, self.port.pty()) {
            pty::new_adapter_timer(sysfs, &pty.path);
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) -> Flow {
        if self.config.emulate_wire_time
            && let flow @ (Flow::Stop | Flow::Abandon) =
                pty::wait(self, wire_time(bytes.len(), self.config.baud))
        {
            return flow;
        }
        let kiosk_baud = self.port.kiosk_baud();
        if kiosk_baud != Some(self.config.baud) {
            let mut core = self.core();
            core.stats.bytes_in += bytes.len() as u64;
            core.stats.garbled_bytes += bytes.len() as u64;
            core.last_byte_at = Some(Instant::now());
            drop(core);
            self.shared.1.notify_all();
            debug!(kiosk_baud = ?kiosk_baud, printer_baud = self.config.baud, "baud mismatch: garbage received");
            return Flow::Go;
        }
        let (replies, unplug) = {
            let mut core = self.core();
            let take = core
                .bytes_until_unplug()
                .map_or(bytes.len(), |left| bytes.len().min(left as usize));
            let byte_time = if self.config.emulate_wire_time {
                wire_time(1, self.config.baud)
            } else {
                Duration::ZERO
            };
            let replies = core.receive_at(&bytes[..take], Instant::now(), byte_time);
            (replies, core.bytes_until_unplug() == Some(0))
        };
        self.shared.1.notify_all();
        if unplug {
            // The replies to the last requests go nowhere either.
            pty::unplug(self);
            return Flow::Abandon;
        }
        // The replies take their wire time back to the kiosk...
        if self.config.emulate_wire_time
            && !replies.is_empty()
            && let flow @ (Flow::Stop | Flow::Abandon) =
                pty::wait(self, wire_time(replies.len(), self.config.baud))
        {
            return flow;
        }
        // ...and the adapter holds them for its latency timer.
        if !replies.is_empty()
            && let (Some(sysfs), Some(pty)) = (&self.config.adapter_sysfs, self.port.pty())
        {
            let latency = pty::adapter_latency(sysfs, &pty.path);
            if let flow @ (Flow::Stop | Flow::Abandon) = pty::wait(self, latency) {
                return flow;
            }
        }
        if !replies.is_empty()
            && let Some(pty) = self.port.pty_mut()
            && let Err(e) = pty.send(&replies)
        {
            warn!(error = %e, "printer pty write failed");
        }
        Flow::Go
    }
}

impl Worker {
    fn core(&self) -> MutexGuard<'_, PrinterCore> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn inject(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(pty) = self.port.pty_mut() else {
            return Err(SimError::Io {
                context: "injecting bytes".into(),
                source: std::io::ErrorKind::NotConnected.into(),
            });
        };
        pty.master
            .write_all(bytes)
            .map_err(SimError::io("writing to the printer pty"))?;
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match pty.slave.bytes_to_read() {
                Ok(n) if n as usize >= bytes.len() => return Ok(()),
                Ok(_) => std::thread::yield_now(),
                Err(_) => break,
            }
        }
        debug!("injected bytes not seen queued (read already, or eaten as XON/XOFF)");
        Ok(())
    }
}
