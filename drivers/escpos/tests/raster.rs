//! Characters the code table lacks, printed as raster images: the
//! `GS v 0` bytes (layout from Epson's ESC/POS reference), GBK's limits,
//! the glyph rasterizer with the bundled and the fallback fonts, where the
//! image goes in a document, and a ticket with such a name through the
//! printer simulator, which decodes the image at its place.

use std::path::Path;
use std::time::Duration;

use kiosk_escpos::command::raster_image;
use kiosk_escpos::{
    CharSize, Document, GlyphRaster, PrinterConfig, QueueTicket, SerialPrinter, TextEncoding,
};
use kiosk_sim::printer::{Align, PrinterSim, PrinterSimConfig};

/// Debian's `fonts-hanazono` (installed by `cargo xtask setup`).
const HANAZONO_A: &str = "/usr/share/fonts/truetype/hanazono/HanaMinA.ttf";

fn with_hanazono() -> GlyphRaster {
    let bytes = std::fs::read(HANAZONO_A).unwrap_or_else(|e| {
        panic!("{HANAZONO_A}: {e} (cargo xtask setup installs fonts-hanazono)")
    });
    GlyphRaster::with_fallbacks(vec![bytes]).expect("Hanazono is a font")
}

#[test]
fn gs_v_0_is_gs_v_0_m_xl_xh_yl_yh_then_the_rows() {
    // Epson: GS v 0 m xL xH yL yH d1...dk = 1D 76 30 m ..., k = (xL + xH ×
    // 256) × (yL + yH × 256), m = 0 normal.
    assert_eq!(
        raster_image(2, 3, &[0x80, 0x01, 0xFF, 0x00, 0x0F, 0xF0]),
        vec![
            0x1D, 0x76, 0x30, 0x00, 0x02, 0x00, 0x03, 0x00, 0x80, 0x01, 0xFF, 0x00, 0x0F, 0xF0
        ]
    );
    // 72 bytes (576 dots) by 300 dots: yL = 0x2C, yH = 0x01.
    let bytes = raster_image(72, 300, &vec![0xAA; 72 * 300]);
    assert_eq!(
        &bytes[..8],
        &[0x1D, 0x76, 0x30, 0x00, 0x48, 0x00, 0x2C, 0x01]
    );
    assert_eq!(bytes.len(), 8 + 72 * 300);
}

#[test]
fn a_real_time_command_inside_image_data_is_broken_up() {
    // DLE EOT 1, DLE ENQ 2, DLE DC4 1 and a DLE at the very end would be
    // acted on by the printer; a DLE before anything else is a dot row.
    let data = [
        0x10, 0x04, 0x01, 0x10, 0x05, 0x02, 0x10, 0x14, 0x01, 0x10, 0x41, 0x10,
    ];
    assert_eq!(
        &raster_image(12, 1, &data)[8..],
        &[
            0x00, 0x04, 0x01, 0x00, 0x05, 0x02, 0x00, 0x14, 0x01, 0x10, 0x41, 0x00
        ]
    );
}

#[test]
fn gbk_firmware_lacks_extension_a_and_b_and_the_codes_gb18030_2005_reassigned() {
    let gbk = TextEncoding::Gbk;
    assert_eq!(TextEncoding::default(), gbk, "two-byte safe by default");
    for c in ['张', '王', 'A', '号', '·', '?'] {
        assert!(gbk.has_char(c), "{c}");
    }
    // U+4DAE has GB18030 code FE9F, which GBK firmware (CP936) leaves to
    // private use; Extension B needs four bytes.
    for c in ['䶮', '𠇔', '𠀀', '\u{E000}', '\n'] {
        assert!(!gbk.has_char(c), "{c:?}");
    }
    assert_eq!(gbk.encode("张䶮𠇔"), vec![0xD5, 0xC5, b'?', b'?']);
    assert!(TextEncoding::Gb18030.has_char('𠇔'));
    assert!(!TextEncoding::Ascii.has_char('张'));
}

#[test]
fn the_bundled_font_has_common_ideographs_but_not_these_extension_characters() {
    let bundled = GlyphRaster::bundled();
    assert!(bundled.has_glyph('张') && bundled.has_glyph('A'));
    // WenQuanYi Micro Hei covers GB 18030's common range only.
    assert!(!bundled.has_glyph('䶮') && !bundled.has_glyph('𠇔'));

    let image = bundled.render("张A", CharSize::NORMAL, false);
    assert_eq!(image.height(), 24);
    assert!((24..=64).contains(&image.width()), "{}", image.width());
    assert!(image.black_dots() > 40, "{}", image.black_dots());
    assert_eq!(image.missing(), 0);

    // What no font has is a box, counted.
    let boxed = bundled.render("𠇔", CharSize::NORMAL, false);
    assert_eq!(boxed.missing(), 1);
    assert!(boxed.black_dots() > 40);
    assert!(!boxed.get(boxed.width() / 2, 12), "a box is hollow");
}

#[test]
fn the_fallback_font_draws_extension_a_and_b_at_the_character_size() {
    let raster = with_hanazono();
    assert!(raster.has_glyph('䶮') && raster.has_glyph('𠇔'));
    let image = raster.render("*䶮𠇔", CharSize::NORMAL, false);
    assert_eq!(image.missing(), 0);
    assert_eq!(image.height(), 24);
    let double = raster.render("*䶮𠇔", CharSize::DOUBLE, false);
    assert_eq!(double.height(), 48);
    assert!(double.black_dots() > 3 * image.black_dots());
    let bold = raster.render("*䶮𠇔", CharSize::NORMAL, true);
    assert!(bold.black_dots() > image.black_dots());
    // Each ideograph leaves ink in its own cell.
    let inked = |from: usize, to: usize| (from..to).any(|x| (0..24).any(|y| image.get(x, y)));
    let cell = (image.width() - 8) / 2;
    assert!(inked(image.width() - 2 * cell, image.width() - cell));
    assert!(inked(image.width() - cell, image.width()));
}

#[test]
fn a_line_with_a_missing_character_becomes_one_image_in_its_place() {
    let raster = with_hanazono();
    let doc = Document::builder()
        .line("A023")
        .bold(true)
        .text("*")
        .text("䶮𠇔")
        .newline()
        .bold(false)
        .line("2025-03-14 09:31")
        .build()
        .unwrap();
    assert!(doc.needs_raster(TextEncoding::Gbk));
    assert!(!doc.needs_raster(TextEncoding::Gb18030));
    let bytes = doc.render_with(TextEncoding::Gbk, Some(&raster));
    let at = bytes
        .windows(3)
        .position(|w| w == [0x1D, 0x76, 0x30])
        .expect("GS v 0");
    assert_eq!(
        bytes
            .windows(3)
            .filter(|w| *w == [0x1D, 0x76, 0x30])
            .count(),
        1
    );
    // Before it: the line before and its LF, then bold on (ESC E 1).
    assert!(
        bytes[..at].ends_with(b"A023\n\x1B\x45\x01"),
        "{:02X?}",
        &bytes[..at]
    );
    let (w, h) = (usize::from(bytes[at + 4]), usize::from(bytes[at + 6]));
    assert_eq!(h, 24);
    let after = at + 8 + w * h;
    // After it: no LF (the image ends at the start of a line), bold off,
    // the next line as text.
    assert_eq!(
        &bytes[after..],
        b"\x1B\x45\x00\x32\x30\x32\x35-03-14 09:31\n"
    );
    // Without fonts the line is text with `?`.
    let plain = doc.render(TextEncoding::Gbk);
    assert!(plain.windows(4).any(|w| w == b"*??\n"));
    // A document without such characters is as before.
    let ordinary = Document::builder().line("张*").build().unwrap();
    assert_eq!(
        ordinary.render_with(TextEncoding::Gbk, Some(&raster)),
        ordinary.render(TextEncoding::Gbk)
    );
}

#[test]
fn a_ticket_with_a_four_byte_name_character_prints_it_as_an_image_the_simulator_decodes_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let sim = PrinterSim::start(PrinterSimConfig::new(dir.path().join("by-id/printer0"))).unwrap();
    let mut config = PrinterConfig::new(sim.link());
    config.baud = sim.baud();
    config.raster_fonts = vec![Path::new(HANAZONO_A).to_path_buf()];
    let mut printer = SerialPrinter::open(config).unwrap();
    let ticket = QueueTicket {
        branch: "某某银行 西城支行".into(),
        service: "个人业务".into(),
        number: "A023".into(),
        waiting: "您前面还有 5 人等候".into(),
        issued_at: "2025-03-14 09:31".into(),
        masked_name: Some("*𠇔".into()),
        qr: None,
    };
    printer.print(&ticket.document().unwrap()).unwrap();
    let t = &sim.wait_for_tickets(1, Duration::from_secs(5)).unwrap()[0];
    assert_eq!(
        t.texts(),
        vec![
            "某某银行 西城支行",
            "个人业务",
            "A023",
            "您前面还有 5 人等候",
            "2025-03-14 09:31"
        ]
    );
    assert_eq!(t.images.len(), 1, "{:?}", t.unknown);
    let image = &t.images[0];
    // Between the waiting line and the time, centred, one character cell
    // high, two characters wide.
    assert_eq!(image.after_lines, 4);
    assert_eq!(image.align, Align::Center);
    assert_eq!((image.scale, image.height_dots), (0, 24));
    let (first, last) = image.inked_columns().expect("ink");
    assert!((20..=60).contains(&(last - first)), "{first}..{last}");
    assert!(image.black_dots() > 60, "{}", image.black_dots());
    assert!(t.unknown.is_empty(), "{:?}", t.unknown);
}
