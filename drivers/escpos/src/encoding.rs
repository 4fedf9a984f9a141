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
    /// two or four bytes); the printer's font decides what shows.
    #[default]
    Gb18030,
    /// GBK in Chinese mode: GB18030's one- and two-byte part.
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

    /// Encode one piece of text (no line breaks: [`crate::Document`]
    /// splits lines). Control characters and characters without a code
    /// become `?`; a tab becomes a space.
    pub fn encode(self, text: &str) -> Vec<u8> {
        let clean: String = text.chars().map(sanitise).collect();
        match self {
            TextEncoding::Gb18030 => encode_with(GB18030, &clean),
            TextEncoding::Gbk => encode_with(GBK, &clean),
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
