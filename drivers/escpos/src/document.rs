//! Tickets and slips as values: a [`Document`] is a checked list of
//! [`Element`]s, built with [`DocumentBuilder`] and rendered to bytes for a
//! printer's [`TextEncoding`].

use serde::{Deserialize, Serialize};

use crate::command::{
    self, Align, CODE128_MAX_LEN, CharSize, Cut, HriPosition, QR_MAX_DATA, QrErrorCorrection,
};
use crate::encoding::TextEncoding;
use crate::error::EscposError;
use crate::raster::GlyphRaster;

/// How a QR code is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QrOptions {
    /// Module (dot square) size, 1 to 16 dots. Default 6.
    pub module_size: u8,
    /// Default M.
    pub error_correction: QrErrorCorrection,
}

impl Default for QrOptions {
    fn default() -> Self {
        QrOptions {
            module_size: 6,
            error_correction: QrErrorCorrection::M,
        }
    }
}

/// How a CODE128 barcode is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BarcodeOptions {
    /// Bar height in dots, 1 to 255. Default 80.
    pub height: u8,
    /// Module width, 2 to 6. Default 2.
    pub width: u8,
    /// Default below.
    pub hri: HriPosition,
}

impl Default for BarcodeOptions {
    fn default() -> Self {
        BarcodeOptions {
            height: 80,
            width: 2,
            hri: HriPosition::Below,
        }
    }
}

/// One step of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Element {
    /// Text without a line break (added to the current line).
    Text(String),
    /// End the current line (`LF`).
    LineFeed,
    Align(Align),
    Bold(bool),
    Size(CharSize),
    /// `Some(n)`: `ESC 3 n`; `None`: the default spacing (`ESC 2`).
    LineSpacing(Option<u8>),
    /// `ESC d n`.
    Feed(u8),
    Qr {
        data: String,
        options: QrOptions,
    },
    Barcode {
        data: String,
        options: BarcodeOptions,
    },
    Cut(Cut),
}

/// A ticket or slip: what to print, independent of the printer. Build it
/// with [`Document::builder`]; [`Document::render`] makes the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Document {
    elements: Vec<Element>,
}

impl Document {
    pub fn builder() -> DocumentBuilder {
        DocumentBuilder::default()
    }

    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// The bytes for a printer that prints `encoding`: `ESC @`, then the
    /// character mode (`FS &` for the Chinese encodings; `FS .` and
    /// `ESC t 0` otherwise), then the elements in order.
    ///
    /// The result never contains a real-time command (`DLE EOT n`,
    /// `DLE ENQ n`, `DLE DC4`): text cannot hold control characters and
    /// QR / barcode data cannot hold `DLE` ([`DocumentBuilder::build`]).
    ///
    /// A character the encoding lacks becomes `?`; see
    /// [`Document::render_with`] to print it as an image instead.
    pub fn render(&self, encoding: TextEncoding) -> Vec<u8> {
        self.render_with(encoding, None)
    }

    /// Like [`Document::render`]; with `raster`, a line holding a
    /// character the encoding lacks ([`TextEncoding::has_char`]) is
    /// printed whole as a raster image (`GS v 0`, which prints at the
    /// start of a line) drawn with `raster`'s fonts in the size and
    /// boldness in force, its alignment kept. The line's settings
    /// (alignment, bold, size) are sent as usual, so the lines after it
    /// are unchanged.
    pub fn render_with(&self, encoding: TextEncoding, raster: Option<&GlyphRaster>) -> Vec<u8> {
        let mut out = command::init();
        if encoding.chinese_mode() {
            out.extend(command::chinese_mode(true));
        } else {
            out.extend(command::chinese_mode(false));
            out.extend(command::code_page(0));
        }
        let mut size = CharSize::NORMAL;
        let mut bold = false;
        let mut at = 0;
        while at < self.elements.len() {
            if let Some(raster) = raster
                && let Some(line) = self.line_at(at)
                && line.needs_image(encoding)
            {
                for element in &self.elements[at..at + line.settings_and_text] {
                    match element {
                        Element::Text(_) => continue,
                        Element::Size(s) => size = *s,
                        Element::Bold(b) => bold = *b,
                        _ => {}
                    }
                    out.extend(render_element(element, encoding));
                }
                let image = raster.render(&line.text, size, bold);
                if image.missing() > 0 {
                    // Never the characters themselves: names are personal.
                    tracing::warn!(
                        characters = image.missing(),
                        "no font has these characters: printed as boxes"
                    );
                }
                out.extend(command::raster_image(
                    u16::try_from(image.bytes_per_row()).unwrap_or(u16::MAX),
                    u16::try_from(image.height()).unwrap_or(u16::MAX),
                    image.data(),
                ));
                // The image leaves the position at the start of a line:
                // its line feed is not sent.
                at += line.len;
                continue;
            }
            let element = &self.elements[at];
            match element {
                Element::Size(s) => size = *s,
                Element::Bold(b) => bold = *b,
                _ => {}
            }
            out.extend(render_element(element, encoding));
            at += 1;
        }
        out
    }

    /// Would [`Document::render_with`] print a line as an image (a
    /// character `encoding` lacks)?
    pub fn needs_raster(&self, encoding: TextEncoding) -> bool {
        (0..self.elements.len())
            .filter_map(|at| self.line_at(at))
            .any(|line| line.needs_image(encoding))
    }

    /// The text line starting at `at`: text and settings up to a line
    /// feed (included) or another element; `None` if it holds no text.
    fn line_at(&self, at: usize) -> Option<TextLine> {
        let mut text = String::new();
        let mut settings_and_text = 0;
        for element in &self.elements[at..] {
            match element {
                Element::Text(t) => text.push_str(t),
                Element::Align(_)
                | Element::Bold(_)
                | Element::Size(_)
                | Element::LineSpacing(_) => {}
                _ => break,
            }
            settings_and_text += 1;
        }
        if text.is_empty() {
            return None;
        }
        let ends_with_feed = matches!(
            self.elements.get(at + settings_and_text),
            Some(Element::LineFeed)
        );
        Some(TextLine {
            text,
            settings_and_text,
            len: settings_and_text + usize::from(ends_with_feed),
        })
    }
}

/// One line of text as [`Document::render_with`] sees it.
struct TextLine {
    text: String,
    /// Elements of text and settings.
    settings_and_text: usize,
    /// The same plus the line feed that ends it, if one does.
    len: usize,
}

impl TextLine {
    fn needs_image(&self, encoding: TextEncoding) -> bool {
        self.text
            .chars()
            .any(|c| !c.is_control() && !encoding.has_char(c))
    }
}

/// One element's bytes.
fn render_element(element: &Element, encoding: TextEncoding) -> Vec<u8> {
    let mut out = Vec::new();
    match element {
        Element::Text(text) => out.extend(encoding.encode(text)),
        Element::LineFeed => out.extend(command::line_feed()),
        Element::Align(a) => out.extend(command::align(*a)),
        Element::Bold(on) => out.extend(command::bold(*on)),
        Element::Size(s) => out.extend(command::char_size(*s)),
        Element::LineSpacing(Some(n)) => out.extend(command::line_spacing(*n)),
        Element::LineSpacing(None) => out.extend(command::default_line_spacing()),
        Element::Feed(n) => out.extend(command::feed(*n)),
        Element::Qr { data, options } => {
            out.extend(command::qr_model2());
            out.extend(command::qr_module_size(options.module_size));
            out.extend(command::qr_error_correction(options.error_correction));
            out.extend(command::qr_store(data.as_bytes()));
            out.extend(command::qr_print());
        }
        Element::Barcode { data, options } => {
            out.extend(command::barcode_height(options.height));
            out.extend(command::barcode_width(options.width));
            out.extend(command::barcode_hri(options.hri));
            out.extend(command::code128(data));
        }
        Element::Cut(c) => out.extend(command::cut(*c)),
    }
    out
}

/// Builds a [`Document`]; methods chain, [`DocumentBuilder::build`]
/// checks what they were given.
#[derive(Debug, Clone, Default)]
pub struct DocumentBuilder {
    elements: Vec<Element>,
}

impl DocumentBuilder {
    /// Text added to the current line; `\n` in it ends lines.
    pub fn text(mut self, text: &str) -> Self {
        let mut parts = text.split('\n');
        if let Some(first) = parts.next().filter(|p| !p.is_empty()) {
            self.elements.push(Element::Text(first.replace('\r', "")));
        }
        for part in parts {
            self.elements.push(Element::LineFeed);
            if !part.is_empty() {
                self.elements.push(Element::Text(part.replace('\r', "")));
            }
        }
        self
    }

    /// Text and a line break.
    pub fn line(self, text: &str) -> Self {
        self.text(text).newline()
    }

    /// End the current line (an empty line if nothing is on it).
    pub fn newline(mut self) -> Self {
        self.elements.push(Element::LineFeed);
        self
    }

    pub fn align(mut self, align: Align) -> Self {
        self.elements.push(Element::Align(align));
        self
    }

    pub fn bold(mut self, on: bool) -> Self {
        self.elements.push(Element::Bold(on));
        self
    }

    pub fn size(mut self, size: CharSize) -> Self {
        self.elements.push(Element::Size(size));
        self
    }

    /// `Some(dots)` or `None` for the printer's default.
    pub fn line_spacing(mut self, dots: Option<u8>) -> Self {
        self.elements.push(Element::LineSpacing(dots));
        self
    }

    pub fn feed(mut self, lines: u8) -> Self {
        self.elements.push(Element::Feed(lines));
        self
    }

    /// A QR code (model 2) of `data`'s UTF-8 bytes.
    pub fn qr(mut self, data: &str, options: QrOptions) -> Self {
        self.elements.push(Element::Qr {
            data: data.to_owned(),
            options,
        });
        self
    }

    /// A CODE128 barcode (code set B: printable ASCII).
    pub fn barcode(mut self, data: &str, options: BarcodeOptions) -> Self {
        self.elements.push(Element::Barcode {
            data: data.to_owned(),
            options,
        });
        self
    }

    pub fn cut(mut self, cut: Cut) -> Self {
        self.elements.push(Element::Cut(cut));
        self
    }

    /// Check every element and make the document.
    ///
    /// QR data must be 1 to [`QR_MAX_DATA`] bytes without `DLE` (0x10:
    /// printers act on `DLE EOT` / `DLE ENQ` / `DLE DC4` wherever they
    /// appear, even inside another command's data); the module size 1 to
    /// 16. Barcode data must be printable ASCII, not empty, and fit
    /// `GS k`; height at least 1, width 2 to 6.
    pub fn build(self) -> Result<Document, EscposError> {
        for element in &self.elements {
            match element {
                Element::Qr { data, options } => {
                    let invalid = |detail: String| EscposError::InvalidArgument {
                        what: "QR code",
                        detail,
                    };
                    if data.is_empty() || data.len() > QR_MAX_DATA {
                        return Err(invalid(format!(
                            "data is {} bytes; 1 to {QR_MAX_DATA} fit",
                            data.len()
                        )));
                    }
                    if data.bytes().any(|b| b == command::DLE) {
                        return Err(invalid("data contains DLE (0x10)".into()));
                    }
                    if !(1..=16).contains(&options.module_size) {
                        return Err(invalid(format!(
                            "module size {} is not 1 to 16",
                            options.module_size
                        )));
                    }
                }
                Element::Barcode { data, options } => {
                    let invalid = |detail: String| EscposError::InvalidArgument {
                        what: "CODE128 barcode",
                        detail,
                    };
                    if let Some(c) = data.chars().find(|c| !(' '..='~').contains(c)) {
                        return Err(invalid(format!(
                            "{c:?} is not printable ASCII (code set B)"
                        )));
                    }
                    let escaped = data.len() + data.bytes().filter(|&b| b == b'{').count();
                    if data.is_empty() || escaped > CODE128_MAX_LEN {
                        return Err(invalid(format!(
                            "data is {escaped} bytes escaped; 1 to {CODE128_MAX_LEN} fit"
                        )));
                    }
                    if options.height == 0 || !(2..=6).contains(&options.width) {
                        return Err(invalid(format!(
                            "height {} / width {} out of range (1-255 / 2-6)",
                            options.height, options.width
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(Document {
            elements: self.elements,
        })
    }
}

/// A queue ticket as rule Q1 describes it, laid out for an 80 mm roll:
/// branch, service, the number in 4 × 4 characters, the people waiting
/// ahead, date and time, an optional (already masked, rule S1) name and an
/// optional QR code, then a partial cut after feeding past the cutter.
///
/// The kiosk fills in the texts (it owns the wording and the clock); this
/// only lays them out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTicket {
    /// e.g. `某某银行 北京西城支行`.
    pub branch: String,
    /// e.g. `个人业务`.
    pub service: String,
    /// e.g. `A023`.
    pub number: String,
    /// The line about people waiting ahead, e.g. `您前面还有 5 人等候`.
    pub waiting: String,
    /// e.g. `2025-03-14 09:31`.
    pub issued_at: String,
    /// The customer's name, masked (`张*`), when a card was swiped (Q3).
    pub masked_name: Option<String>,
    /// A QR payload (e.g. a link to follow the queue), if any.
    pub qr: Option<String>,
}

impl QueueTicket {
    /// The number's size: 4 × 4.
    pub const NUMBER_SIZE: CharSize = match CharSize::checked(4, 4) {
        Some(s) => s,
        None => CharSize::NORMAL,
    };

    pub fn document(&self) -> Result<Document, EscposError> {
        let mut b = Document::builder()
            .align(Align::Center)
            .bold(true)
            .line(&self.branch)
            .bold(false)
            .size(CharSize::DOUBLE)
            .line(&self.service)
            .size(Self::NUMBER_SIZE)
            .bold(true)
            .line(&self.number)
            .bold(false)
            .size(CharSize::NORMAL)
            .line(&self.waiting);
        if let Some(name) = &self.masked_name {
            b = b.line(name);
        }
        if let Some(qr) = &self.qr {
            b = b.qr(qr, QrOptions::default());
        }
        b.line(&self.issued_at)
            .feed(2)
            .cut(Cut::FeedPartial(0))
            .build()
    }
}

/// A customer receipt (slip) after a change at the smart teller, e.g.
/// "ID validity updated" or "mobile number changed" (rule P6: the old and
/// the new number, both masked).
///
/// Every value must already be masked by the caller: this type lays out
/// what it is given and cannot tell a full number from a masked one. The
/// kiosk builds slips only from its masking functions (rule S1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slip {
    /// e.g. `某某银行 北京西城支行`.
    pub branch: String,
    /// What happened, in Chinese and English, e.g. `手机号码变更\nMobile number changed`.
    pub title: String,
    /// Label and masked value, e.g. (`原号码 Old number`, `138****5678`).
    pub rows: Vec<(String, String)>,
    /// The outcome for the customer, e.g. `已生效 Applied` or
    /// `已受理，稍后同步 Accepted, will be synced`.
    pub outcome: String,
    /// The change id or the bank's reference, for the counter.
    pub reference: String,
    /// The kiosk id.
    pub kiosk_id: String,
    /// e.g. `2025-03-14 09:31`.
    pub at: String,
}

impl Slip {
    pub fn document(&self) -> Result<Document, EscposError> {
        let mut b = Document::builder()
            .align(Align::Center)
            .bold(true)
            .line(&self.branch)
            .size(CharSize::DOUBLE)
            .line(&self.title)
            .size(CharSize::NORMAL)
            .bold(false)
            .align(Align::Left);
        for (label, value) in &self.rows {
            b = b.line(&format!("{label}: {value}"));
        }
        b.bold(true)
            .line(&self.outcome)
            .bold(false)
            .line(&format!("Ref: {}", self.reference))
            .line(&format!("{}  {}", self.kiosk_id, self.at))
            .feed(2)
            .cut(Cut::FeedPartial(0))
            .build()
    }
}

#[cfg(test)]
mod slip_tests {
    use super::*;

    #[test]
    fn rule_p6_slip_shows_old_and_new_number_masked() {
        let slip = Slip {
            branch: "示例支行".into(),
            title: "手机号码变更\nMobile number changed".into(),
            rows: vec![
                ("原号码 Old".into(), "138****5678".into()),
                ("新号码 New".into(), "139****1234".into()),
            ],
            outcome: "已生效 Applied".into(),
            reference: "CR-000017".into(),
            kiosk_id: "K-0101-01".into(),
            at: "2026-11-23 09:31".into(),
        };
        let bytes = slip.document().expect("slip").render(TextEncoding::Gb18030);
        let text = TextEncoding::Gb18030.decode(&bytes);
        assert!(text.contains("138****5678"));
        assert!(text.contains("139****1234"));
        assert!(text.contains("手机号码变更"));
        assert!(text.contains("CR-000017"));
        // It ends with a cut.
        assert_eq!(
            &bytes[bytes.len() - 4..bytes.len() - 1],
            &[0x1D, 0x56, 66][..]
        );
    }
}
