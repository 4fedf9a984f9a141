//! Text encodings per printer model (vectors from Python's codecs).

use kiosk_escpos::TextEncoding;

#[test]
fn gb18030_two_and_four_byte_characters() {
    let enc = TextEncoding::Gb18030;
    assert_eq!(enc.encode("测试"), vec![0xB2, 0xE2, 0xCA, 0xD4]);
    assert_eq!(
        enc.encode("A023号"),
        vec![b'A', b'0', b'2', b'3', 0xBA, 0xC5]
    );
    assert_eq!(enc.encode("¥"), vec![0x81, 0x30, 0x84, 0x36]);
    assert_eq!(enc.encode("𠀀"), vec![0x95, 0x32, 0x82, 0x36]);
    assert_eq!(enc.encode("€"), vec![0xA2, 0xE3]);
    assert_eq!(enc.decode(&enc.encode("欢迎光临 A023")), "欢迎光临 A023");
}

#[test]
fn gbk_has_no_four_byte_codes() {
    let enc = TextEncoding::Gbk;
    assert_eq!(enc.encode("测试"), vec![0xB2, 0xE2, 0xCA, 0xD4]);
    assert_eq!(enc.encode("𠀀"), b"?".to_vec());
}

#[test]
fn big5_traditional() {
    let enc = TextEncoding::Big5;
    assert_eq!(enc.encode("測試"), vec![0xB4, 0xFA, 0xB8, 0xD5]);
    assert_eq!(enc.decode(&[0xB4, 0xFA, 0xB8, 0xD5]), "測試");
}

#[test]
fn cp437_and_ascii_replace_what_they_lack_with_a_question_mark() {
    assert_eq!(
        TextEncoding::Cp437.encode("Café £5"),
        vec![0x43, 0x61, 0x66, 0x82, 0x20, 0x9C, 0x35]
    );
    assert_eq!(TextEncoding::Cp437.encode("号码A023"), b"??A023".to_vec());
    assert_eq!(TextEncoding::Ascii.encode("Café 号"), b"Caf? ?".to_vec());
    assert_eq!(
        TextEncoding::Cp437.decode(&[0x82, 0xC4, 0xDB, 0xE1, 0xF8]),
        "é─█ß°"
    );
}

#[test]
fn control_characters_cannot_reach_the_printer() {
    for enc in [
        TextEncoding::Gb18030,
        TextEncoding::Gbk,
        TextEncoding::Big5,
        TextEncoding::Cp437,
        TextEncoding::Ascii,
    ] {
        assert_eq!(enc.encode("a\u{1B}@b"), b"a?@b".to_vec(), "{enc:?}");
        assert_eq!(enc.encode("\u{10}\u{4}\u{1}"), b"???".to_vec(), "{enc:?}");
        assert_eq!(enc.encode("a\tb"), b"a b".to_vec(), "{enc:?}");
        assert_eq!(enc.encode("\u{85}\u{7F}"), b"??".to_vec(), "{enc:?}");
    }
}

#[test]
fn chinese_mode_by_encoding() {
    assert!(TextEncoding::Gb18030.chinese_mode());
    assert!(TextEncoding::Gbk.chinese_mode());
    assert!(TextEncoding::Big5.chinese_mode());
    assert!(!TextEncoding::Cp437.chinese_mode());
    assert!(!TextEncoding::Ascii.chinese_mode());
}
