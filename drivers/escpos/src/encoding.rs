//! Text encodings of printer models.
//!
//! Chinese printers print two-byte characters in their "Chinese mode"
//! (`FS &`), in the encoding their firmware was built for: GB18030 on
//! mainland models (which also print GBK, a subset), Big5 on Taiwanese and
//! Hong Kong ones. Other printers print one byte a character from a code
//! page (PC437 after `ESC @`). Which one a printer speaks is a property of
//! the model, so it is configured per printer ([`crate::PrinterConfig`]).
//!
//! Characters the encoding has no code for become `?` (never the HTML
//! numeric reference `encoding_rs` would write), and control characters in
//! text become `?` too, so text can never smuggle a command into the
//! stream.

use encoding_rs::{BIG5, EncoderResult, Encoding, GB18030, GBK};
use serde::{Deserialize, Serialize};

/// The character encoding a printer model prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextEncoding {
    /// GB18030 in Chinese mode: every Unicode character has a code (one,
    /// two or four bytes). Only for a printer whose font has GB18030's
    /// four-byte part: many firmwares have just GB2312 / GBK and print a
    /// four-byte sequence as garbage.
    Gb18030,
    /// GBK in Chinese mode (the default): one- and two-byte codes only,
    /// which every Chinese printer's firmware has. What GBK firmware
    /// lacks ([`TextEncoding::has_char`]) is printed as a raster image.
    #[default]
    Gbk,
    /// Big5 in Chinese mode (traditional characters).
    Big5,
    /// Code page PC437 (`ESC t 0`), Chinese mode off.
    Cp437,
    /// ASCII only, Chinese mode off.
    Ascii,
}

impl TextEncoding {
    /// Does this encoding print in the printer's Chinese (two-byte) mode?
    pub fn chinese_mode(self) -> bool {
        matches!(
            self,
            TextEncoding::Gb18030 | TextEncoding::Gbk | TextEncoding::Big5
        )
    }

    /// Does the printer's code table have `c` (so it prints as text)?
    /// Control characters are never text.
    ///
    /// GBK: the one- and two-byte codes of the 1995 GBK table as printer
    /// firmware has it (Windows code page 936): not its user-defined
    /// areas, and not the codes GB18030-2005 gave new characters
    /// (`A6D9`–`A6F5`, `A8BC`, `A8BF`, `A989`–`A995`, `FE50`–`FEA0`, e.g.
    /// "䶮" U+4DAE at `FE9F`), which such firmware prints as blanks or
    /// other glyphs.
    pub fn has_char(self, c: char) -> bool {
        if c.is_control() {
            return false;
        }
        match self {
            TextEncoding::Gb18030 => true,
            TextEncoding::Gbk => {
                let mut buf = [0u8; 4];
                match encode_with(GBK, c.encode_utf8(&mut buf)).as_slice() {
                    [b] => b.is_ascii() && *b != b'?' || c == '?',
                    &[lead, trail] => gbk_firmware_has(lead, trail),
                    _ => false,
                }
            }
            TextEncoding::Big5 => {
                let mut buf = [0u8; 4];
                c == '?' || encode_with(BIG5, c.encode_utf8(&mut buf)) != b"?"
            }
            TextEncoding::Cp437 => c == '?' || cp437_byte(c) != b'?',
            TextEncoding::Ascii => c.is_ascii(),
        }
    }

    /// Encode one piece of text (no line breaks: [`crate::Document`]
    /// splits lines). Control characters and characters the code table
    /// lacks ([`TextEncoding::has_char`]) become `?`; a tab becomes a
    /// space.
    pub fn encode(self, text: &str) -> Vec<u8> {
        let clean: String = text.chars().map(sanitise).collect();
        match self {
            TextEncoding::Gb18030 => encode_with(GB18030, &clean),
            TextEncoding::Gbk => {
                let table: String = clean
                    .chars()
                    .map(|c| if self.has_char(c) { c } else { '?' })
                    .collect();
                encode_with(GBK, &table)
            }
            TextEncoding::Big5 => encode_with(BIG5, &clean),
            TextEncoding::Cp437 => clean.chars().map(cp437_byte).collect(),
            TextEncoding::Ascii => clean
                .chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect(),
        }
    }

    /// Decode what [`TextEncoding::encode`] wrote (for tests and traces).
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            TextEncoding::Gb18030 => GB18030.decode_without_bom_handling(bytes).0.into_owned(),
            TextEncoding::Gbk => GBK.decode_without_bom_handling(bytes).0.into_owned(),
            TextEncoding::Big5 => BIG5.decode_without_bom_handling(bytes).0.into_owned(),
            TextEncoding::Cp437 => bytes.iter().map(|&b| cp437_char(b)).collect(),
            TextEncoding::Ascii => bytes
                .iter()
                .map(|&b| if b.is_ascii() { b as char } else { '\u{FFFD}' })
                .collect(),
        }
    }
}

/// Is the two-byte code `lead trail` printable on GBK firmware (see
/// [`TextEncoding::has_char`])?
fn gbk_firmware_has(lead: u8, trail: u8) -> bool {
    let code = u16::from_be_bytes([lead, trail]);
    // The three user-defined areas: AAA1–AFFE, F8A1–FEFE, A140–A7A0.
    let user_defined = matches!((lead, trail), (0xAA..=0xAF | 0xF8..=0xFE, 0xA1..=0xFE))
        || matches!((lead, trail), (0xA1..=0xA7, 0x40..=0xA0));
    let new_in_2005 =
        matches!(code, 0xA6D9..=0xA6F5 | 0xA8BC | 0xA8BF | 0xA989..=0xA995 | 0xFE50..=0xFEA0);
    !user_defined && !new_in_2005
}

fn sanitise(c: char) -> char {
    match c {
        '\t' => ' ',
        c if c.is_control() => '?',
        c => c,
    }
}

fn encode_with(encoding: &'static Encoding, text: &str) -> Vec<u8> {
    let mut encoder = encoding.new_encoder();
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut rest = text;
    let mut buf = [0u8; 1024];
    loop {
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut buf, true);
        out.extend_from_slice(&buf[..written]);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
}

/// PC437, 0x80 to 0xFF.
const CP437_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐', //
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧', //
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀', //
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩', //
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{A0}',
];

fn cp437_byte(c: char) -> u8 {
    if c.is_ascii() {
        return c as u8;
    }
    CP437_HIGH
        .iter()
        .position(|&x| x == c)
        .map_or(b'?', |i| 0x80 + i as u8)
}

fn cp437_char(b: u8) -> char {
    if b.is_ascii() {
        b as char
    } else {
        CP437_HIGH[usize::from(b - 0x80)]
    }
}
