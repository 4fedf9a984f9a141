//! The printer simulator's ESC/POS decoder (module docs of
//! [`super`]: what it understands): a stream parser of its own, which
//! shares no code with `kiosk-escpos`, so the two check each other; and the
//! scanner that finds real-time commands wherever they are in the stream.

use super::*;

/// Print modes (reset by `ESC @`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mode {
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
pub(super) struct Decoder {
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
    /// `GS a n` executed, their `n`, for the core to act on.
    pub(super) asb_requests: Vec<u8>,
}

impl Decoder {
    /// Take bytes in; finished tickets go to `done`.
    pub(super) fn push(&mut self, bytes: &[u8], done: &mut Vec<DecodedTicket>) {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while at < self.pending.len() {
            // Real-time commands and `GS a` (a setting, not print data)
            // count for no ticket.
            let real_time = self.pending[at] == 0x10
                || (self.pending[at] == 0x1D && self.pending.get(at + 1) == Some(&b'a'));
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
    pub(super) fn interrupt(&mut self) -> Option<DecodedTicket> {
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
            b'a' => {
                // GS a n: automatic status back, acted on by the core.
                need(3)?;
                self.asb_requests.push(p[2]);
                Some(3)
            }
            b'h' | b'w' | b'H' | b'f' | b'B' | b'r' | b'I' | b'b' | b'E' => {
                need(3)?;
                Some(3)
            }
            b'L' | b'W' | b'P' => {
                need(4)?;
                Some(4)
            }
            b'v' => {
                // GS v 0 m xL xH yL yH d1...dk: a raster bit image, x
                // bytes (8 dots each, MSB leftmost) by y dots, k = x * y.
                need(8)?;
                let x = usize::from(p[4]) + 256 * usize::from(p[5]);
                let y = usize::from(p[6]) + 256 * usize::from(p[7]);
                need(8 + x * y)?;
                if p[2] != 0 && p[2] != b'0' {
                    let b = p[..3].to_vec();
                    self.unknown(&b);
                    return Some(8 + x * y);
                }
                let image = RasterImage {
                    after_lines: 0,
                    scale: p[3],
                    width_dots: x * 8,
                    height_dots: y,
                    align: self.mode.align,
                    data: p[8..8 + x * y].to_vec(),
                };
                self.flush_line(false);
                self.ticket.images.push(RasterImage {
                    after_lines: self.ticket.lines.len(),
                    ..image
                });
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
pub(super) enum RealTime {
    Status(u8),
    Recover(u8),
}

/// Finds `DLE EOT n` and `DLE ENQ n` in the raw stream, across reads.
#[derive(Debug, Default)]
pub(super) struct RealTimeScanner {
    /// 0 idle, 1 after DLE, 2 after DLE EOT, 3 after DLE ENQ.
    state: u8,
}

impl RealTimeScanner {
    pub(super) fn step(&mut self, b: u8) -> Option<RealTime> {
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
