//! Documents: building, checking, rendering.

use kiosk_escpos::{
    Align, BarcodeOptions, CharSize, Cut, Document, Element, EscposError, HriPosition,
    QrErrorCorrection, QrOptions, QueueTicket, TextEncoding,
};

#[test]
fn a_ticket_renders_to_these_bytes() {
    let doc = Document::builder()
        .align(Align::Center)
        .bold(true)
        .size(CharSize::new(4, 4).unwrap())
        .line("A023")
        .size(CharSize::NORMAL)
        .bold(false)
        .line_spacing(Some(40))
        .line("测试")
        .line_spacing(None)
        .qr(
            "Q1",
            QrOptions {
                module_size: 5,
                error_correction: QrErrorCorrection::H,
            },
        )
        .barcode(
            "A023",
            BarcodeOptions {
                height: 60,
                width: 3,
                hri: HriPosition::Below,
            },
        )
        .feed(2)
        .cut(Cut::Partial)
        .build()
        .unwrap();
    let mut expected = vec![
        0x1B, 0x40, // ESC @
        0x1C, 0x26, // FS &
        0x1B, 0x61, 0x01, // ESC a 1
        0x1B, 0x45, 0x01, // ESC E 1
        0x1D, 0x21, 0x33, // GS ! 0x33
        b'A', b'0', b'2', b'3', 0x0A, //
        0x1D, 0x21, 0x00, // GS ! 0
        0x1B, 0x45, 0x00, // ESC E 0
        0x1B, 0x33, 40, // ESC 3 40
        0xB2, 0xE2, 0xCA, 0xD4, 0x0A, // 测试 LF
        0x1B, 0x32, // ESC 2
    ];
    expected.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]);
    expected.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, 0x05]);
    expected.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x33]);
    expected.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x05, 0x00, 0x31, 0x50, 0x30, b'Q', b'1']);
    expected.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]);
    expected.extend_from_slice(&[0x1D, 0x68, 60, 0x1D, 0x77, 3, 0x1D, 0x48, 2]);
    expected.extend_from_slice(&[0x1D, 0x6B, 0x49, 0x06, b'{', b'B', b'A', b'0', b'2', b'3']);
    expected.extend_from_slice(&[0x1B, 0x64, 0x02, 0x1D, 0x56, 0x01]);
    assert_eq!(doc.render(TextEncoding::Gb18030), expected);
}

#[test]
fn a_code_page_printer_gets_chinese_mode_off_and_pc437() {
    let doc = Document::builder().line("号A023").build().unwrap();
    assert_eq!(
        doc.render(TextEncoding::Ascii),
        vec![
            0x1B, 0x40, 0x1C, 0x2E, 0x1B, 0x74, 0x00, b'?', b'A', b'0', b'2', b'3', 0x0A
        ]
    );
    assert_eq!(
        doc.render(TextEncoding::Gb18030),
        vec![
            0x1B, 0x40, 0x1C, 0x26, 0xBA, 0xC5, b'A', b'0', b'2', b'3', 0x0A
        ]
    );
}

#[test]
fn line_breaks_in_text_become_line_feeds() {
    let doc = Document::builder().text("a\nb\r\n\nc").build().unwrap();
    assert_eq!(
        doc.elements(),
        &[
            Element::Text("a".into()),
            Element::LineFeed,
            Element::Text("b".into()),
            Element::LineFeed,
            Element::LineFeed,
            Element::Text("c".into()),
        ]
    );
    let empty = Document::builder().newline().build().unwrap();
    assert_eq!(
        empty.render(TextEncoding::Gb18030),
        vec![0x1B, 0x40, 0x1C, 0x26, 0x0A]
    );
}

fn refused(doc: kiosk_escpos::DocumentBuilder, what_expected: &str) {
    match doc.build() {
        Err(EscposError::InvalidArgument { what, .. }) => assert_eq!(what, what_expected),
        other => panic!("expected an invalid {what_expected}, got {other:?}"),
    }
}

#[test]
fn bad_qr_codes_are_refused() {
    let qr = |data: &str, module_size| {
        Document::builder().qr(
            data,
            QrOptions {
                module_size,
                ..QrOptions::default()
            },
        )
    };
    refused(qr("", 6), "QR code");
    refused(qr(&"x".repeat(7090), 6), "QR code");
    refused(qr("a\u{10}\u{4}\u{1}", 6), "QR code");
    refused(qr("ok", 0), "QR code");
    refused(qr("ok", 17), "QR code");
    assert!(qr(&"x".repeat(7089), 16).build().is_ok());
    assert!(qr("https://例子.cn/q?n=A023", 1).build().is_ok());
}

#[test]
fn bad_barcodes_are_refused() {
    let bc = |data: &str, height, width| {
        Document::builder().barcode(
            data,
            BarcodeOptions {
                height,
                width,
                hri: HriPosition::None,
            },
        )
    };
    refused(bc("", 80, 2), "CODE128 barcode");
    refused(bc("号码", 80, 2), "CODE128 barcode");
    refused(bc("a\nb", 80, 2), "CODE128 barcode");
    refused(bc(&"1".repeat(254), 80, 2), "CODE128 barcode");
    refused(bc(&"{".repeat(127), 80, 2), "CODE128 barcode");
    refused(bc("A023", 0, 2), "CODE128 barcode");
    refused(bc("A023", 80, 1), "CODE128 barcode");
    refused(bc("A023", 80, 7), "CODE128 barcode");
    assert!(bc(&"1".repeat(253), 255, 6).build().is_ok());
    assert!(bc("{A}~ ", 1, 2).build().is_ok());
}

#[test]
fn queue_ticket_layout() {
    let ticket = QueueTicket {
        branch: "某某银行 西城支行".into(),
        service: "个人业务".into(),
        number: "A023".into(),
        waiting: "您前面还有 5 人等候".into(),
        issued_at: "2025-03-14 09:31".into(),
        masked_name: Some("张*".into()),
        qr: Some("https://example.cn/q/A023".into()),
    };
    let doc = ticket.document().unwrap();
    let e = doc.elements();
    let number = e
        .iter()
        .position(|x| *x == Element::Text("A023".into()))
        .unwrap();
    assert_eq!(e[number - 2], Element::Size(CharSize::new(4, 4).unwrap()));
    assert!(e.contains(&Element::Text("张*".into())));
    assert!(
        e.iter()
            .any(|x| matches!(x, Element::Qr { data, .. } if data == "https://example.cn/q/A023"))
    );
    assert_eq!(e.last(), Some(&Element::Cut(Cut::FeedPartial(0))));
}

#[test]
fn a_qr_length_whose_bytes_spell_dle_eot_is_not_a_real_time_command() {
    // 1037 bytes of data: pL pH = 0x10 0x04, followed by cn = 0x31, which
    // is not a DLE EOT n (n = 1 to 4, 7, 8).
    let doc = Document::builder()
        .qr(&"x".repeat(1037), QrOptions::default())
        .build()
        .unwrap();
    let bytes = doc.render(TextEncoding::Gb18030);
    let at = bytes.windows(2).position(|w| w == [0x10, 0x04]).unwrap();
    assert_eq!(bytes[at + 2], 0x31);
}
