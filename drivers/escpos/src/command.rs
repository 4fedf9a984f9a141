//! ESC/POS commands as bytes: one function per command, no state, no I/O.
//!
//! Every function returns the exact bytes of one command (see the Epson
//! *ESC/POS Command Reference*; the Chinese thermal printers this kiosk
//! uses implement the same commands, plus `FS &` / `FS .` for their
//! two-byte character mode). Parameters are typed where a wrong value
//! would be a different command ([`CharSize`], [`Cut`]); plain numbers are
//! passed through as they are, and [`crate::Document`] checks their ranges
//! before it renders.

use serde::{Deserialize, Serialize};

use crate::error::EscposError;

/// `ESC` (0x1B).
pub const ESC: u8 = 0x1B;
/// `GS` (0x1D).
pub const GS: u8 = 0x1D;
/// `FS` (0x1C).
pub const FS: u8 = 0x1C;
/// `DLE` (0x10): starts the real-time commands (`DLE EOT`, `DLE ENQ`,
/// `DLE DC4`), which a printer acts on as soon as it receives them,
/// wherever they appear in the stream.
pub const DLE: u8 = 0x10;
/// `EOT` (0x04).
pub const EOT: u8 = 0x04;
/// `LF` (0x0A): print the line buffer and feed one line.
pub const LF: u8 = 0x0A;

/// Horizontal alignment (`ESC a n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    #[default]
    Left,
    Center,
    Right,
}

impl Align {
    /// The `n` of `ESC a n`.
    pub fn code(self) -> u8 {
        match self {
            Align::Left => 0,
            Align::Center => 1,
            Align::Right => 2,
        }
    }
}

/// Character magnification (`GS ! n`): width and height, each 1 to 8
/// times the normal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CharSize {
    width: u8,
    height: u8,
}

impl Default for CharSize {
    fn default() -> Self {
        CharSize::NORMAL
    }
}

impl CharSize {
    /// 1 × 1.
    pub const NORMAL: CharSize = CharSize {
        width: 1,
        height: 1,
    };

    /// 2 × 2.
    pub const DOUBLE: CharSize = CharSize {
        width: 2,
        height: 2,
    };

    /// `width` and `height` must each be 1 to 8.
    pub fn new(width: u8, height: u8) -> Result<CharSize, EscposError> {
        CharSize::checked(width, height).ok_or(EscposError::InvalidSize { width, height })
    }

    /// [`CharSize::new`] for constants.
    pub const fn checked(width: u8, height: u8) -> Option<CharSize> {
        if width >= 1 && width <= 8 && height >= 1 && height <= 8 {
            Some(CharSize { width, height })
        } else {
            None
        }
    }

    pub fn width(self) -> u8 {
        self.width
    }

    pub fn height(self) -> u8 {
        self.height
    }

    /// The `n` of `GS ! n`: width − 1 in the high nibble, height − 1 in the
    /// low one.
    pub fn code(self) -> u8 {
        ((self.width - 1) << 4) | (self.height - 1)
    }

    /// The size a `GS ! n` selects (bits 3 and 7 are not part of it on
    /// any printer: `None` when they are set, or a nibble is above 7).
    pub fn from_code(n: u8) -> Option<CharSize> {
        let (w, h) = (n >> 4, n & 0x0F);
        (w <= 7 && h <= 7).then_some(CharSize {
            width: w + 1,
            height: h + 1,
        })
    }
}

/// How the paper is cut (`GS V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cut {
    /// `GS V 0`: cut at once, all the way.
    Full,
    /// `GS V 1`: cut at once, leaving a hinge (the ticket stays in the
    /// mouth until the customer takes it).
    Partial,
    /// `GS V 65 n`: feed to the cutter plus `n` motion units, then cut
    /// all the way: the last line is not left under the print head.
    FeedFull(u8),
    /// `GS V 66 n`: same, leaving a hinge.
    FeedPartial(u8),
}

/// QR error-correction level (`GS ( k` function 169).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum QrErrorCorrection {
    /// 7 %.
    L,
    /// 15 %.
    #[default]
    M,
    /// 25 %.
    Q,
    /// 30 %.
    H,
}

impl QrErrorCorrection {
    /// The `n` of function 169 (48 to 51).
    pub fn code(self) -> u8 {
        match self {
            QrErrorCorrection::L => 48,
            QrErrorCorrection::M => 49,
            QrErrorCorrection::Q => 50,
            QrErrorCorrection::H => 51,
        }
    }
}

/// Where a barcode's human-readable digits go (`GS H n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HriPosition {
    #[default]
    None,
    Above,
    Below,
    Both,
}

impl HriPosition {
    pub fn code(self) -> u8 {
        match self {
            HriPosition::None => 0,
            HriPosition::Above => 1,
            HriPosition::Below => 2,
            HriPosition::Both => 3,
        }
    }
}

/// `ESC @`: initialise the printer (clears the print buffer and resets
/// the modes: alignment, bold, size, line spacing, code page).
pub fn init() -> Vec<u8> {
    vec![ESC, b'@']
}

/// `FS &` (on) / `FS .` (off): the two-byte (Chinese) character mode of
/// Chinese printers. On, a byte from 0x81 up starts a GB18030 (or GBK /
/// Big5, by model) character; off, each byte is one character of the code
/// page.
pub fn chinese_mode(on: bool) -> Vec<u8> {
    if on { vec![FS, b'&'] } else { vec![FS, b'.'] }
}

/// `ESC t n`: select the one-byte code page (0 = PC437).
pub fn code_page(n: u8) -> Vec<u8> {
    vec![ESC, b't', n]
}

/// `ESC a n`.
pub fn align(align: Align) -> Vec<u8> {
    vec![ESC, b'a', align.code()]
}

/// `ESC E n`: emphasised (bold) on or off.
pub fn bold(on: bool) -> Vec<u8> {
    vec![ESC, b'E', u8::from(on)]
}

/// `GS ! n`.
pub fn char_size(size: CharSize) -> Vec<u8> {
    vec![GS, b'!', size.code()]
}

/// `ESC 3 n`: line spacing of `n` motion units (usually dots).
pub fn line_spacing(n: u8) -> Vec<u8> {
    vec![ESC, b'3', n]
}

/// `ESC 2`: the default line spacing (about 1/6 inch).
pub fn default_line_spacing() -> Vec<u8> {
    vec![ESC, b'2']
}

/// `LF`.
pub fn line_feed() -> Vec<u8> {
    vec![LF]
}

/// `ESC d n`: print the line buffer and feed `n` lines.
pub fn feed(lines: u8) -> Vec<u8> {
    vec![ESC, b'd', lines]
}

/// `GS V m` / `GS V m n`.
pub fn cut(cut: Cut) -> Vec<u8> {
    match cut {
        Cut::Full => vec![GS, b'V', 0],
        Cut::Partial => vec![GS, b'V', 1],
        Cut::FeedFull(n) => vec![GS, b'V', 65, n],
        Cut::FeedPartial(n) => vec![GS, b'V', 66, n],
    }
}

/// `GS ( k` with `cn = 49` (QR code) and the given function and parameters.
fn qr_function(function: u8, params: &[u8]) -> Vec<u8> {
    let len = params.len() + 2;
    let mut out = Vec::with_capacity(len + 5);
    out.extend_from_slice(&[
        GS,
        b'(',
        b'k',
        (len & 0xFF) as u8,
        (len >> 8) as u8,
        49,
        function,
    ]);
    out.extend_from_slice(params);
    out
}

/// `GS ( k` function 165: select QR model 2.
pub fn qr_model2() -> Vec<u8> {
    qr_function(65, &[50, 0])
}

/// `GS ( k` function 167: module size in dots (1 to 16).
pub fn qr_module_size(dots: u8) -> Vec<u8> {
    qr_function(67, &[dots])
}

/// `GS ( k` function 169: error-correction level.
pub fn qr_error_correction(level: QrErrorCorrection) -> Vec<u8> {
    qr_function(69, &[level.code()])
}

/// The most data `GS ( k` function 180 can store (`pL pH` is at most
/// 7092 = data + 3).
pub const QR_MAX_DATA: usize = 7089;

/// `GS ( k` function 180: store `data` in the symbol save area
/// (at most [`QR_MAX_DATA`] bytes; longer data is cut there).
pub fn qr_store(data: &[u8]) -> Vec<u8> {
    let data = &data[..data.len().min(QR_MAX_DATA)];
    let mut params = Vec::with_capacity(data.len() + 1);
    params.push(48);
    params.extend_from_slice(data);
    qr_function(80, &params)
}

/// `GS ( k` function 181: print the stored symbol.
pub fn qr_print() -> Vec<u8> {
    qr_function(81, &[48])
}

/// `GS h n`: barcode height in dots (1 to 255).
pub fn barcode_height(dots: u8) -> Vec<u8> {
    vec![GS, b'h', dots]
}

/// `GS w n`: barcode module width (2 to 6).
pub fn barcode_width(n: u8) -> Vec<u8> {
    vec![GS, b'w', n]
}

/// `GS H n`: where the human-readable characters go.
pub fn barcode_hri(position: HriPosition) -> Vec<u8> {
    vec![GS, b'H', position.code()]
}

/// The most data characters [`code128`] takes: `n` is at most 255, two of
/// which select code set B, and each `{` counts twice.
pub const CODE128_MAX_LEN: usize = 253;

/// `GS k 73 n`: a CODE128 barcode in code set B (`{B` then the data, `{`
/// escaped as `{{`). `data` must be printable ASCII (0x20 to 0x7E) and at
/// most [`CODE128_MAX_LEN`] bytes once escaped; [`crate::Document`] checks.
pub fn code128(data: &str) -> Vec<u8> {
    let mut body = vec![b'{', b'B'];
    for b in data.bytes() {
        body.push(b);
        if b == b'{' {
            body.push(b'{');
        }
    }
    body.truncate(255);
    let mut out = vec![GS, b'k', 73, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// `GS a n`: enable automatic status back for the status items whose bits
/// are set in `n` (bit 0 drawer, 1 on-line/off-line, 2 errors, 3 paper
/// roll sensors; `n` = 0 disables it). See [`crate::asb`].
pub fn automatic_status_back(n: u8) -> Vec<u8> {
    vec![GS, b'a', n]
}

/// `GS v 0 m xL xH yL yH d1...dk`: print a raster bit image at normal
/// scale (`m` = 0), `bytes_per_row` bytes (8 dots each, the most
/// significant bit leftmost) by `height` dots, `k = bytes_per_row ×
/// height` (Epson ESC/POS reference, `GS v 0`). In standard mode it is
/// printed at the start of a line and leaves the print position there.
///
/// A `DLE` (0x10) in the image followed by `EOT`, `ENQ` or `DC4` (or at
/// its end) would be taken by the printer for a real-time command, so
/// that one dot-byte is left white: one to three dots, never a command.
pub fn raster_image(bytes_per_row: u16, height: u16, data: &[u8]) -> Vec<u8> {
    let [xl, xh] = bytes_per_row.to_le_bytes();
    let [yl, yh] = height.to_le_bytes();
    let mut out = vec![GS, b'v', b'0', 0, xl, xh, yl, yh];
    let start = out.len();
    out.extend_from_slice(data);
    for i in start..out.len() {
        let next = out.get(i + 1).copied();
        if out[i] == DLE && matches!(next, None | Some(EOT | 0x05 | 0x14)) {
            out[i] = 0;
        }
    }
    out
}
