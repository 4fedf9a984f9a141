//! Every command as exact bytes.

use kiosk_escpos::command::*;
use kiosk_escpos::{
    Align, CharSize, Cut, EscposError, HriPosition, QrErrorCorrection, StatusQuery,
};

#[test]
fn init_is_esc_at() {
    assert_eq!(init(), vec![0x1B, 0x40]);
}

#[test]
fn chinese_mode_on_is_fs_ampersand_off_is_fs_dot() {
    assert_eq!(chinese_mode(true), vec![0x1C, 0x26]);
    assert_eq!(chinese_mode(false), vec![0x1C, 0x2E]);
}

#[test]
fn code_page_is_esc_t_n() {
    assert_eq!(code_page(0), vec![0x1B, 0x74, 0x00]);
}

#[test]
fn align_is_esc_a_n() {
    assert_eq!(align(Align::Left), vec![0x1B, 0x61, 0x00]);
    assert_eq!(align(Align::Center), vec![0x1B, 0x61, 0x01]);
    assert_eq!(align(Align::Right), vec![0x1B, 0x61, 0x02]);
}

#[test]
fn bold_is_esc_e_n() {
    assert_eq!(bold(true), vec![0x1B, 0x45, 0x01]);
    assert_eq!(bold(false), vec![0x1B, 0x45, 0x00]);
}

#[test]
fn char_size_is_gs_bang_with_width_high_nibble() {
    assert_eq!(char_size(CharSize::NORMAL), vec![0x1D, 0x21, 0x00]);
    assert_eq!(char_size(CharSize::DOUBLE), vec![0x1D, 0x21, 0x11]);
    assert_eq!(
        char_size(CharSize::new(2, 1).unwrap()),
        vec![0x1D, 0x21, 0x10]
    );
    assert_eq!(
        char_size(CharSize::new(1, 2).unwrap()),
        vec![0x1D, 0x21, 0x01]
    );
    assert_eq!(
        char_size(CharSize::new(4, 4).unwrap()),
        vec![0x1D, 0x21, 0x33]
    );
    assert_eq!(
        char_size(CharSize::new(8, 8).unwrap()),
        vec![0x1D, 0x21, 0x77]
    );
}

#[test]
fn char_size_out_of_range_is_refused() {
    for (w, h) in [(0, 1), (1, 0), (9, 1), (1, 9), (0, 0), (255, 255)] {
        assert!(
            matches!(CharSize::new(w, h), Err(EscposError::InvalidSize { width, height }) if width == w && height == h),
            "{w}x{h}"
        );
    }
}

#[test]
fn char_size_code_round_trips() {
    for w in 1..=8 {
        for h in 1..=8 {
            let s = CharSize::new(w, h).unwrap();
            assert_eq!(CharSize::from_code(s.code()), Some(s));
        }
    }
    assert_eq!(CharSize::from_code(0x08), None);
    assert_eq!(CharSize::from_code(0x80), None);
}

#[test]
fn line_spacing_is_esc_3_n_and_default_is_esc_2() {
    assert_eq!(line_spacing(30), vec![0x1B, 0x33, 30]);
    assert_eq!(default_line_spacing(), vec![0x1B, 0x32]);
}

#[test]
fn feed_is_esc_d_n_and_lf_is_0a() {
    assert_eq!(feed(3), vec![0x1B, 0x64, 0x03]);
    assert_eq!(line_feed(), vec![0x0A]);
}

#[test]
fn cuts_are_gs_v() {
    assert_eq!(cut(Cut::Full), vec![0x1D, 0x56, 0x00]);
    assert_eq!(cut(Cut::Partial), vec![0x1D, 0x56, 0x01]);
    assert_eq!(cut(Cut::FeedFull(3)), vec![0x1D, 0x56, 0x41, 0x03]);
    assert_eq!(cut(Cut::FeedPartial(0)), vec![0x1D, 0x56, 0x42, 0x00]);
}

#[test]
fn qr_model_2() {
    assert_eq!(
        qr_model2(),
        vec![0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]
    );
}

#[test]
fn qr_module_size_is_function_167() {
    assert_eq!(
        qr_module_size(6),
        vec![0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, 0x06]
    );
}

#[test]
fn qr_error_correction_levels() {
    for (level, n) in [
        (QrErrorCorrection::L, 0x30),
        (QrErrorCorrection::M, 0x31),
        (QrErrorCorrection::Q, 0x32),
        (QrErrorCorrection::H, 0x33),
    ] {
        assert_eq!(
            qr_error_correction(level),
            vec![0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, n]
        );
    }
}

#[test]
fn qr_store_counts_data_plus_three() {
    assert_eq!(
        qr_store(b"A023"),
        vec![
            0x1D, 0x28, 0x6B, 0x07, 0x00, 0x31, 0x50, 0x30, b'A', b'0', b'2', b'3'
        ]
    );
    // pL pH little-endian above 255.
    let long = vec![b'x'; 300];
    let bytes = qr_store(&long);
    assert_eq!(
        &bytes[..8],
        &[0x1D, 0x28, 0x6B, 0x2F, 0x01, 0x31, 0x50, 0x30]
    );
    assert_eq!(bytes.len(), 8 + 300);
}

#[test]
fn qr_print_is_function_181() {
    assert_eq!(
        qr_print(),
        vec![0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]
    );
}

#[test]
fn barcode_settings() {
    assert_eq!(barcode_height(80), vec![0x1D, 0x68, 80]);
    assert_eq!(barcode_width(2), vec![0x1D, 0x77, 0x02]);
    assert_eq!(barcode_hri(HriPosition::None), vec![0x1D, 0x48, 0x00]);
    assert_eq!(barcode_hri(HriPosition::Above), vec![0x1D, 0x48, 0x01]);
    assert_eq!(barcode_hri(HriPosition::Below), vec![0x1D, 0x48, 0x02]);
    assert_eq!(barcode_hri(HriPosition::Both), vec![0x1D, 0x48, 0x03]);
}

#[test]
fn code128_selects_code_set_b_and_escapes_braces() {
    assert_eq!(
        code128("A023"),
        vec![0x1D, 0x6B, 0x49, 0x06, b'{', b'B', b'A', b'0', b'2', b'3']
    );
    assert_eq!(
        code128("a{b"),
        vec![0x1D, 0x6B, 0x49, 0x06, b'{', b'B', b'a', b'{', b'{', b'b']
    );
}

#[test]
fn status_request_is_dle_eot_n() {
    for n in 1..=4 {
        let query = StatusQuery::from_n(n).expect("n = 1 to 4");
        assert_eq!(query.request(), vec![0x10, 0x04, n]);
    }
}
