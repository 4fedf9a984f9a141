//! A Chinese ESC/POS thermal ticket printer: [`PrinterCore`], the sans-IO
//! printer (bytes in, status replies out, decoded tickets kept), and
//! [`PrinterSim`], the printer on a pseudo-terminal.
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
//! sets A, B and C decoded) are recorded by their data. `ESC @` resets the
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
//! kernel buffer (tens of KiB) is full. [`PrinterSim::last_byte_at`] is
//! when the last byte was handled (for benchmarks). As with the SAM, the
//! speed the kiosk set on its end is read from the pty; at another speed
//! the bytes count as [`PrinterSimStats::garbled_bytes`] and get no answer.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use encoding_rs::GB18030;
use serde::{Deserialize, Serialize};
use serialport::{SerialPort, TTYPort};
use tracing::{debug, info, warn};

use crate::error::{Result, SimError};
use crate::sam::{point_link, remove_link, wire_time};

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
        self.lines.is_empty() && self.qr.is_empty() && self.barcodes.is_empty()
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
    /// Status replies sent.
    pub bytes_out: u64,
    /// `DLE EOT n` answered.
    pub status_queries: u64,
    /// Tickets cut.
    pub tickets: u64,
    /// Tickets left unfinished by a state change or an unplug.
    pub interrupted_tickets: u64,
    pub unplugs: u64,
}

/// Print modes (reset by `ESC @`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mode {
    align: Align,
    bold: bool,
    width: u8,
    height: u8,
    chinese: bool,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            align: Align::Left,
            bold: false,
            width: 1,
            height: 1,
            chinese: false,
        }
    }
}

/// The ESC/POS stream decoder: incomplete commands wait in `pending`.
#[derive(Debug, Default)]
struct Decoder {
    pending: Vec<u8>,
    mode: Mode,
    /// Text of the current line decoded so far, and the mode at its first
    /// character.
    line: String,
    line_mode: Option<Mode>,
    /// Undecoded text bytes (in the current character mode).
    segment: Vec<u8>,
    qr_data: Vec<u8>,
    ticket: DecodedTicket,
}

impl Decoder {
    /// Take bytes in; finished tickets go to `done`.
    fn push(&mut self, bytes: &[u8], done: &mut Vec<DecodedTicket>) {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while at < self.pending.len() {
            let real_time = self.pending[at] == 0x10;
            let cut_before = done.len();
            let Some(n) = self.step(at, done) else { break };
            at += n;
            // Bytes count for the ticket they belong to (the cut for the
            // one it ends); real-time commands for none.
            if !real_time {
                if done.len() > cut_before
                    && let Some(cut) = done.last_mut()
                {
                    cut.bytes += n;
                } else {
                    self.ticket.bytes += n;
                }
            }
        }
        self.pending.drain(..at);
    }

    /// Whether anything is on the current ticket.
    fn has_content(&self) -> bool {
        !self.ticket.is_blank() || !self.line.is_empty() || !self.segment.is_empty()
    }

    /// Stop: the unfinished ticket (with its unprinted line) if it has
    /// anything on it; forget the rest.
    fn interrupt(&mut self) -> Option<DecodedTicket> {
        let ticket = if self.has_content() {
            self.flush_line(false);
            Some(std::mem::take(&mut self.ticket))
        } else {
            None
        };
        *self = Decoder::default();
        ticket
    }

    fn text_mode(&mut self) {
        if self.line_mode.is_none() {
            self.line_mode = Some(self.mode);
        }
    }

    fn decode_segment(&mut self) {
        if self.segment.is_empty() {
            return;
        }
        let text = if self.mode.chinese {
            GB18030
                .decode_without_bom_handling(&self.segment)
                .0
                .into_owned()
        } else {
            self.segment.iter().map(|&b| cp437(b)).collect()
        };
        self.line.push_str(&text);
        self.segment.clear();
    }

    /// End the current line; `always`: even when nothing is on it (LF).
    fn flush_line(&mut self, always: bool) {
        self.decode_segment();
        if !always && self.line.is_empty() && self.line_mode.is_none() {
            return;
        }
        let mode = self.line_mode.take().unwrap_or(self.mode);
        self.ticket.lines.push(Line {
            text: std::mem::take(&mut self.line),
            align: mode.align,
            bold: mode.bold,
            width: mode.width,
            height: mode.height,
        });
    }

    fn cut(&mut self, kind: CutKind, done: &mut Vec<DecodedTicket>) {
        self.flush_line(false);
        let mut ticket = std::mem::take(&mut self.ticket);
        ticket.cut = Some(kind);
        done.push(ticket);
    }

    fn unknown(&mut self, bytes: &[u8]) {
        debug!(bytes = ?bytes, "printer: unknown command");
        self.ticket.unknown.push(bytes.to_vec());
    }

    /// Decode one command or text run at `pending[at..]`; how many bytes
    /// it took, or `None` until more arrive.
    fn step(&mut self, at: usize, done: &mut Vec<DecodedTicket>) -> Option<usize> {
        let p = &self.pending[at..];
        let need = |n: usize| (p.len() >= n).then_some(());
        let b0 = p[0];
        match b0 {
            0x0A => {
                self.flush_line(true);
                Some(1)
            }
            0x0D | 0x0C | 0x00 => Some(1),
            0x09 => {
                self.text_mode();
                self.segment.push(b' ');
                Some(1)
            }
            0x10 => {
                need(2)?;
                match p[1] {
                    // Real-time commands: answered by the scanner on
                    // receipt; nothing to do in the stream.
                    0x04 | 0x05 => {
                        need(3)?;
                        Some(3)
                    }
                    0x14 => {
                        need(5)?;
                        Some(5)
                    }
                    _ => {
                        let b = [p[0], p[1]];
                        self.unknown(&b);
                        Some(2)
                    }
                }
            }
            0x1B => self.esc(at),
            0x1D => self.gs(at, done),
            0x1C => self.fs(at),
            b if b < 0x20 => {
                self.unknown(&[b]);
                Some(1)
            }
            _ => {
                let run = p.iter().take_while(|&&b| b >= 0x20).count();
                self.text_mode();
                let p = &self.pending[at..at + run];
                self.segment.extend_from_slice(p);
                Some(run)
            }
        }
    }

    fn esc(&mut self, at: usize) -> Option<usize> {
        let p = &self.pending[at..];
        if p.len() < 2 {
            return None;
        }
        let need = |n: usize| (p.len() >= n).then_some(());
        let n = p.get(2).copied();
        match p[1] {
            b'@' => {
                // Clears the print buffer: an unprinted line is lost.
                self.segment.clear();
                self.line.clear();
                self.line_mode = None;
                self.mode = Mode::default();
                self.ticket.resets += 1;
                Some(2)
            }
            b'2' | b'<' | b'L' | b'S' | 0x0C => Some(2),
            b'!' => {
                need(3)?;
                let n = n?;
                self.mode.bold = n & 0x08 != 0;
                self.mode.height = if n & 0x10 != 0 { 2 } else { 1 };
                self.mode.width = if n & 0x20 != 0 { 2 } else { 1 };
                Some(3)
            }
            b'E' => {
                need(3)?;
                self.mode.bold = n? & 1 != 0;
                Some(3)
            }
            b'a' => {
                need(3)?;
                self.mode.align = match n? {
                    1 | b'1' => Align::Center,
                    2 | b'2' => Align::Right,
                    _ => Align::Left,
                };
                Some(3)
            }
            b'd' => {
                need(3)?;
                self.flush_line(false);
                self.ticket.feed_lines += u32::from(n?);
                Some(3)
            }
            b'J' => {
                need(3)?;
                self.flush_line(false);
                Some(3)
            }
            b'3' | b'G' | b'-' | b't' | b'M' | b'R' | b'V' | b'{' | b' ' | b'c' | b'U' | b'r' => {
                need(3)?;
                if p[1] == b'c' {
                    // ESC c 3 n / ESC c 4 n / ESC c 5 n: 4 bytes.
                    need(4)?;
                    return Some(4);
                }
                Some(3)
            }
            b'$' | b'\\' => {
                need(4)?;
                Some(4)
            }
            b'p' => {
                need(5)?;
                Some(5)
            }
            b'D' => {
                // Tab positions, NUL-terminated.
                let end = p[2..].iter().position(|&b| b == 0)?;
                Some(2 + end + 1)
            }
            b'*' => {
                need(5)?;
                let dots = usize::from(p[3]) + 256 * usize::from(p[4]);
                let per = if p[2] >= 32 { 3 } else { 1 };
                let len = 5 + dots * per;
                need(len)?;
                self.flush_line(false);
                Some(len)
            }
            _ => {
                let b = [p[0], p[1]];
                self.unknown(&b);
                Some(2)
            }
        }
    }

    fn gs(&mut self, at: usize, done: &mut Vec<DecodedTicket>) -> Option<usize> {
        let p = &self.pending[at..];
        if p.len() < 2 {
            return None;
        }
        let need = |n: usize| (p.len() >= n).then_some(());
        match p[1] {
            b'!' => {
                need(3)?;
                let n = p[2];
                let (w, h) = (n >> 4, n & 0x0F);
                if w <= 7 && h <= 7 {
                    self.mode.width = w + 1;
                    self.mode.height = h + 1;
                } else {
                    let b = [p[0], p[1], p[2]];
                    self.unknown(&b);
                }
                Some(3)
            }
            b'V' => {
                need(3)?;
                let (kind, len) = match p[2] {
                    0 | b'0' => (CutKind::Full, 3),
                    1 | b'1' => (CutKind::Partial, 3),
                    65 => (CutKind::Full, 4),
                    66 => (CutKind::Partial, 4),
                    _ => {
                        let b = [p[0], p[1], p[2]];
                        self.unknown(&b);
                        return Some(3);
                    }
                };
                need(len)?;
                self.cut(kind, done);
                Some(len)
            }
            b'(' => {
                need(5)?;
                let len = usize::from(p[3]) + 256 * usize::from(p[4]);
                need(5 + len)?;
                let body = p[5..5 + len].to_vec();
                if p[2] == b'k' && body.len() >= 2 && body[0] == 49 {
                    self.qr(&body);
                } else {
                    let b = p[..5].to_vec();
                    self.unknown(&b);
                }
                Some(5 + len)
            }
            b'k' => {
                need(3)?;
                let m = p[2];
                let (data, len) = if m <= 6 {
                    let end = p[3..].iter().position(|&b| b == 0)?;
                    (p[3..3 + end].to_vec(), 3 + end + 1)
                } else {
                    need(4)?;
                    let n = usize::from(p[3]);
                    need(4 + n)?;
                    (p[4..4 + n].to_vec(), 4 + n)
                };
                self.flush_line(false);
                let text = if m == 73 {
                    decode_code128(&data)
                } else {
                    String::from_utf8_lossy(&data).into_owned()
                };
                self.ticket.barcodes.push(text);
                Some(len)
            }
            b'h' | b'w' | b'H' | b'f' | b'B' | b'a' | b'r' | b'I' | b'b' | b'E' => {
                need(3)?;
                Some(3)
            }
            b'L' | b'W' | b'P' => {
                need(4)?;
                Some(4)
            }
            b'v' => {
                need(8)?;
                let x = usize::from(p[4]) + 256 * usize::from(p[5]);
                let y = usize::from(p[6]) + 256 * usize::from(p[7]);
                need(8 + x * y)?;
                self.flush_line(false);
                Some(8 + x * y)
            }
            _ => {
                let b = [p[0], p[1]];
                self.unknown(&b);
                Some(2)
            }
        }
    }

    fn fs(&mut self, at: usize) -> Option<usize> {
        let p = &self.pending[at..];
        if p.len() < 2 {
            return None;
        }
        match p[1] {
            b'&' | b'.' => {
                let on = p[1] == b'&';
                if on != self.mode.chinese {
                    self.decode_segment();
                    self.mode.chinese = on;
                }
                Some(2)
            }
            b'!' | b'-' | b'C' | b'W' => (p.len() >= 3).then_some(3),
            b'S' | b'p' => (p.len() >= 4).then_some(4),
            _ => {
                let b = [p[0], p[1]];
                self.unknown(&b);
                Some(2)
            }
        }
    }

    /// `GS ( k` with cn = 49: `body` is `cn fn params...`.
    fn qr(&mut self, body: &[u8]) {
        match body[1] {
            // Model, module size, error correction, size info: settings.
            65 | 66 | 67 | 69 | 82 => {}
            80 => self.qr_data = body.get(3..).unwrap_or_default().to_vec(),
            81 => {
                self.flush_line(false);
                let data = String::from_utf8_lossy(&self.qr_data).into_owned();
                self.ticket.qr.push(data);
            }
            _ => self.unknown(&[0x1D, b'(', b'k', body[0], body[1]]),
        }
    }
}

/// CODE128 data of `GS k 73`: `{A` / `{B` / `{C` select code sets (in C
/// each byte is two digits), `{{` is a brace, other `{x` are functions.
fn decode_code128(data: &[u8]) -> String {
    let mut out = String::new();
    let mut set_c = false;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == b'{' && i + 1 < data.len() {
            match data[i + 1] {
                b'A' | b'B' => set_c = false,
                b'C' => set_c = true,
                b'{' => out.push('{'),
                _ => {}
            }
            i += 2;
            continue;
        }
        if set_c {
            out.push_str(&format!("{b:02}"));
        } else {
            out.push(char::from(b));
        }
        i += 1;
    }
    out
}

/// PC437 high half.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{A0}";

fn cp437(b: u8) -> char {
    if b.is_ascii() {
        char::from(b)
    } else {
        CP437_HIGH
            .chars()
            .nth(usize::from(b - 0x80))
            .unwrap_or('\u{FFFD}')
    }
}

/// Real-time commands found in the raw stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RealTime {
    Status(u8),
    Recover(u8),
}

/// Finds `DLE EOT n` and `DLE ENQ n` in the raw stream, across reads.
#[derive(Debug, Default)]
struct RealTimeScanner {
    /// 0 idle, 1 after DLE, 2 after DLE EOT, 3 after DLE ENQ.
    state: u8,
}

impl RealTimeScanner {
    fn step(&mut self, b: u8) -> Option<RealTime> {
        let (next, found) = match (self.state, b) {
            (1, 0x04) => (2, None),
            (1, 0x05) => (3, None),
            (2, n) => (0, (1..=4).contains(&n).then_some(RealTime::Status(n))),
            (3, n) => (0, (1..=2).contains(&n).then_some(RealTime::Recover(n))),
            (_, 0x10) => (1, None),
            _ => (0, None),
        };
        self.state = next;
        found
    }
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
    /// Unplug once `bytes_in` reaches this.
    unplug_at: Option<u64>,
    /// Run out of paper once `bytes_in` reaches this.
    paper_out_at: Option<u64>,
}

impl PrinterCore {
    pub fn new() -> PrinterCore {
        PrinterCore::default()
    }

    pub fn state(&self) -> PrinterState {
        self.state
    }

    /// Change the state; a ticket in progress is interrupted when the
    /// printer stops printing.
    pub fn set_state(&mut self, state: PrinterState) {
        if self.state != state {
            info!(from = %self.state, to = %state, "printer state");
        }
        if !state.prints() {
            self.interrupt();
        }
        self.state = state;
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
            return Vec::new();
        }
        self.stats.bytes_in += bytes.len() as u64;
        self.last_byte_at = Some(Instant::now());
        let mut replies = Vec::new();
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
                        if let Some(reply) = self.state.status_byte(n) {
                            self.stats.status_queries += 1;
                            self.stats.bytes_out += 1;
                            replies.push(reply);
                        }
                    }
                    RealTime::Recover(_) => {
                        if self.state == PrinterState::CutterError {
                            info!("printer: DLE ENQ clears the cutter error");
                            self.state = PrinterState::Ready;
                        }
                    }
                }
            }
        }
        self.consume(&bytes[start..]);
        replies
    }

    fn consume(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.state.prints() {
            let before = self.tickets.len();
            self.decoder.push(bytes, &mut self.tickets);
            let cut = self.tickets.len() - before;
            if cut > 0 {
                self.stats.tickets += cut as u64;
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
    }

    pub fn stats(&self) -> PrinterSimStats {
        self.stats
    }

    pub fn last_byte_at(&self) -> Option<Instant> {
        self.last_byte_at
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
}

impl PrinterSimConfig {
    /// 115200 baud, no wire-time emulation.
    pub fn new(link: impl Into<PathBuf>) -> PrinterSimConfig {
        PrinterSimConfig {
            link: link.into(),
            baud: 115_200,
            emulate_wire_time: false,
        }
    }
}

enum Ctrl {
    Unplug(SyncSender<Result<()>>),
    Replug(SyncSender<Result<()>>),
    Inject(Vec<u8>, SyncSender<Result<()>>),
    Stop,
}

type Shared = Arc<(Mutex<PrinterCore>, Condvar)>;

/// An ESC/POS printer on a pseudo-terminal, served by a background thread.
///
/// The kiosk opens [`PrinterSim::link`] (a symlink to the pty slave) as a
/// serial port. Control methods take `&self` and may be called from any
/// thread. Dropping the handle stops the thread and removes the symlink.
#[derive(Debug)]
pub struct PrinterSim {
    link: PathBuf,
    baud: u32,
    shared: Shared,
    pty_path: Arc<Mutex<Option<PathBuf>>>,
    ctrl: Sender<Ctrl>,
    thread: Option<JoinHandle<()>>,
}

impl PrinterSim {
    /// Create the pty, point the link at it and start listening.
    pub fn start(config: PrinterSimConfig) -> Result<PrinterSim> {
        let shared: Shared = Arc::new((Mutex::new(PrinterCore::new()), Condvar::new()));
        let pty = Pty::open(config.baud)?;
        point_link(&config.link, &pty.path)?;
        info!(link = %config.link.display(), pty = %pty.path.display(), baud = config.baud, "printer simulator plugged in");
        let pty_path = Arc::new(Mutex::new(Some(pty.path.clone())));
        let (ctrl, ctrl_rx) = mpsc::channel();
        let worker = Worker {
            config: config.clone(),
            shared: shared.clone(),
            ctrl: ctrl_rx,
            pty: Some(pty),
            pty_path: pty_path.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("kiosk-sim-printer".into())
            .spawn(move || worker.run())
            .map_err(SimError::io("spawning the printer thread"))?;
        Ok(PrinterSim {
            link: config.link,
            baud: config.baud,
            shared,
            pty_path,
            ctrl,
            thread: Some(thread),
        })
    }

    /// The stable path the kiosk opens.
    pub fn link(&self) -> &Path {
        &self.link
    }

    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// The pty slave the link points to now (`None` while unplugged).
    pub fn pty_path(&self) -> Option<PathBuf> {
        self.pty_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_plugged(&self) -> bool {
        self.pty_path().is_some()
    }

    pub fn state(&self) -> PrinterState {
        self.core().state()
    }

    /// Paper near end, paper out, cover open, offline, cutter error, or
    /// ready again. Takes effect for the next byte received.
    pub fn set_state(&self, state: PrinterState) {
        self.core().set_state(state);
        self.shared.1.notify_all();
    }

    /// Unplug: the pty master is closed (the kiosk's reads and writes see
    /// a hang-up / EIO) and the link removed. Returns once done.
    pub fn unplug(&self) -> Result<()> {
        self.call(Ctrl::Unplug)
    }

    /// Plug back in: a new pty behind the same link. Returns once the link
    /// is in place.
    pub fn replug(&self) -> Result<()> {
        self.call(Ctrl::Replug)
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
    pub fn inject(&self, bytes: &[u8]) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.ctrl
            .send(Ctrl::Inject(bytes.to_vec(), tx))
            .map_err(|_| SimError::Stopped("printer"))?;
        rx.recv().map_err(|_| SimError::Stopped("printer"))?
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

    fn call(&self, make: fn(SyncSender<Result<()>>) -> Ctrl) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.ctrl
            .send(make(tx))
            .map_err(|_| SimError::Stopped("printer"))?;
        rx.recv().map_err(|_| SimError::Stopped("printer"))?
    }

    fn core(&self) -> MutexGuard<'_, PrinterCore> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for PrinterSim {
    fn drop(&mut self) {
        let _ = self.ctrl.send(Ctrl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        remove_link(&self.link);
    }
}

/// The pty pair: the master we talk through, and our own slave fd, kept
/// open so the pty survives the kiosk closing it (and so its termios, i.e.
/// the kiosk's baud rate, can be read).
struct Pty {
    master: TTYPort,
    slave: TTYPort,
    path: PathBuf,
}

impl Pty {
    fn open(baud: u32) -> Result<Pty> {
        let serial = |context: &str| {
            let context = context.to_string();
            move |source| SimError::Serial { context, source }
        };
        let (mut master, mut slave) = TTYPort::pair().map_err(serial("creating a pty pair"))?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| SimError::Io {
                context: "pty slave has no name".into(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        slave
            .set_baud_rate(baud)
            .map_err(serial("setting the pty's baud rate"))?;
        master
            .set_timeout(POLL)
            .map_err(serial("setting the pty read timeout"))?;
        Ok(Pty {
            master,
            slave,
            path,
        })
    }
}

/// How often the worker looks at its control channel while idle.
const POLL: Duration = Duration::from_millis(50);

enum Flow {
    Go,
    Abandon,
    Stop,
}

struct Worker {
    config: PrinterSimConfig,
    shared: Shared,
    ctrl: Receiver<Ctrl>,
    pty: Option<Pty>,
    pty_path: Arc<Mutex<Option<PathBuf>>>,
}

impl Worker {
    fn run(mut self) {
        // About 10 ms of the line at a time when emulating wire time.
        let chunk = if self.config.emulate_wire_time {
            (self.config.baud as usize / 1000).clamp(16, 4096)
        } else {
            4096
        };
        let mut buf = vec![0u8; chunk];
        loop {
            loop {
                match self.ctrl.try_recv() {
                    Ok(msg) => {
                        if let Flow::Stop = self.control(msg) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let Some(pty) = self.pty.as_mut() else {
                match self.ctrl.recv() {
                    Ok(msg) => {
                        if let Flow::Stop = self.control(msg) {
                            return;
                        }
                    }
                    Err(_) => return,
                }
                continue;
            };
            let flow = match pty.master.read(&mut buf) {
                Ok(0) => self.idle(),
                Ok(n) => self.on_bytes(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    Flow::Go
                }
                Err(e) => {
                    warn!(error = %e, "printer pty read failed");
                    self.idle()
                }
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    fn idle(&mut self) -> Flow {
        match self.ctrl.recv_timeout(POLL) {
            Ok(msg) => self.control(msg),
            Err(RecvTimeoutError::Timeout) => Flow::Go,
            Err(RecvTimeoutError::Disconnected) => Flow::Stop,
        }
    }

    fn control(&mut self, msg: Ctrl) -> Flow {
        match msg {
            Ctrl::Stop => Flow::Stop,
            Ctrl::Unplug(done) => {
                self.unplug();
                let _ = done.send(Ok(()));
                Flow::Abandon
            }
            Ctrl::Replug(done) => {
                let result = self.replug();
                let _ = done.send(result);
                Flow::Abandon
            }
            Ctrl::Inject(bytes, done) => {
                let _ = done.send(self.inject(&bytes));
                Flow::Go
            }
        }
    }

    fn core(&self) -> MutexGuard<'_, PrinterCore> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unplug(&mut self) {
        if let Some(pty) = self.pty.take() {
            // Bookkeeping first, then close the master: the kiosk sees the
            // hang-up only once the simulator reports itself unplugged.
            remove_link(&self.config.link);
            *self.pty_path.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.core().unplugged();
            self.shared.1.notify_all();
            drop(pty);
            info!(link = %self.config.link.display(), "printer simulator unplugged");
        }
    }

    fn replug(&mut self) -> Result<()> {
        if self.pty.is_some() {
            return Ok(());
        }
        let pty = Pty::open(self.config.baud)?;
        point_link(&self.config.link, &pty.path)?;
        info!(link = %self.config.link.display(), pty = %pty.path.display(), "printer simulator plugged in again");
        *self.pty_path.lock().unwrap_or_else(|e| e.into_inner()) = Some(pty.path.clone());
        self.pty = Some(pty);
        Ok(())
    }

    fn inject(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(pty) = self.pty.as_mut() else {
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

    fn on_bytes(&mut self, bytes: &[u8]) -> Flow {
        if self.config.emulate_wire_time
            && let flow @ (Flow::Stop | Flow::Abandon) =
                self.wait(wire_time(bytes.len(), self.config.baud))
        {
            return flow;
        }
        let kiosk_baud = self.pty.as_ref().and_then(|p| p.slave.baud_rate().ok());
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
            let replies = core.receive(&bytes[..take]);
            (replies, core.bytes_until_unplug() == Some(0))
        };
        self.shared.1.notify_all();
        if unplug {
            // The replies to the last requests go nowhere either.
            self.unplug();
            return Flow::Abandon;
        }
        if !replies.is_empty()
            && let Some(pty) = self.pty.as_mut()
            && let Err(e) = pty
                .master
                .write_all(&replies)
                .and_then(|()| pty.master.flush())
        {
            warn!(error = %e, "printer pty write failed");
        }
        Flow::Go
    }

    /// Sleep for `d` (emulated wire time), still obeying control messages;
    /// `Abandon` if the pty went away meanwhile.
    fn wait(&mut self, d: Duration) -> Flow {
        let deadline = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Flow::Go;
            }
            match self.ctrl.recv_timeout(deadline - now) {
                Ok(msg) => {
                    if let flow @ (Flow::Stop | Flow::Abandon) = self.control(msg) {
                        return flow;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Flow::Stop,
            }
        }
    }
}
