//! Property tests: the parsers never panic, status bits round-trip, and a
//! rendered document never carries a real-time command or a stray control
//! byte in its text.

use kiosk_escpos::{
    Align, AsbStatus, BarcodeOptions, CharSize, Cut, Document, GlyphRaster, HriPosition, Inbound,
    InboundDemux, PaperState, PrinterStatus, QrErrorCorrection, QrOptions, StatusQuery,
    TextEncoding,
};
use proptest::prelude::*;

fn any_query() -> impl Strategy<Value = StatusQuery> {
    prop::sample::select(StatusQuery::ALL.to_vec())
}

fn any_status() -> impl Strategy<Value = PrinterStatus> {
    (
        prop::array::uniform9(any::<bool>()),
        prop::sample::select(vec![
            PaperState::Present,
            PaperState::NearEnd,
            PaperState::Out,
        ]),
    )
        .prop_map(|(b, paper)| PrinterStatus {
            online: b[0],
            drawer_pin3_high: b[1],
            cover_open: b[2],
            feed_button: b[3],
            paper_end_stop: b[4],
            error: b[5],
            cutter_error: b[6],
            unrecoverable_error: b[7],
            auto_recoverable_error: b[8],
            paper,
        })
}

fn any_encoding() -> impl Strategy<Value = TextEncoding> {
    prop::sample::select(vec![
        TextEncoding::Gb18030,
        TextEncoding::Gbk,
        TextEncoding::Big5,
        TextEncoding::Cp437,
        TextEncoding::Ascii,
    ])
}

/// Bits a reply to `q` leaves undefined.
fn undefined(q: StatusQuery) -> u8 {
    match q {
        StatusQuery::ErrorCause => 0x04,
        _ => 0,
    }
}

/// Does `bytes` contain a real-time command a printer would act on?
fn real_time_command_at(bytes: &[u8]) -> Option<usize> {
    bytes.windows(3).position(|w| {
        w[0] == 0x10
            && match w[1] {
                0x04 => matches!(w[2], 1..=4 | 7 | 8),
                0x05 => w[2] <= 2,
                0x14 => (1..=8).contains(&w[2]),
                _ => false,
            }
    })
}

proptest! {
    #[test]
    fn parsing_any_byte_never_panics(n in any::<u8>(), byte in any::<u8>()) {
        if let Some(q) = StatusQuery::from_n(n) {
            let _ = q.parse(byte);
        }
    }

    #[test]
    fn parsing_any_four_bytes_never_panics(bytes in any::<[u8; 4]>()) {
        let _ = PrinterStatus::from_bytes(bytes);
    }

    #[test]
    fn an_accepted_byte_has_the_fixed_bits_and_round_trips(q in any_query(), byte in any::<u8>()) {
        if let Some(reply) = q.parse(byte) {
            prop_assert_eq!(byte & 0x93, 0x12);
            prop_assert_eq!(reply.query(), q);
            prop_assert_eq!(reply.to_byte(), byte & !undefined(q));
        }
    }

    #[test]
    fn status_round_trips_through_bytes(status in any_status()) {
        let bytes = status.to_bytes();
        for (q, b) in StatusQuery::ALL.into_iter().zip(bytes) {
            prop_assert!(q.accepts(b), "{:?} {:02X}", q, b);
        }
        prop_assert_eq!(PrinterStatus::from_bytes(bytes).unwrap(), status);
    }

    #[test]
    fn encoded_text_has_no_control_bytes(text in any::<String>(), enc in any_encoding()) {
        let bytes = enc.encode(&text);
        prop_assert!(bytes.iter().all(|&b| b >= 0x20 && b != 0x7F), "{:02X?}", bytes);
    }

    #[test]
    fn gb18030_text_round_trips(text in "[^\\p{Cc}]*") {
        let enc = TextEncoding::Gb18030;
        prop_assert_eq!(enc.decode(&enc.encode(&text)), text);
    }

    #[test]
    fn rendered_documents_carry_no_real_time_command(
        texts in prop::collection::vec(any::<String>(), 0..4),
        n in any::<u8>(),
        qr in "[ -~\\u{4e00}-\\u{4e20}]{1,40}",
        qr_len in 0usize..1200,
        code in "[ -~]{1,30}",
        enc in any_encoding(),
    ) {
        let mut b = Document::builder()
            .align(Align::Right)
            .line_spacing(Some(n))
            .feed(n)
            .size(CharSize::new(n % 8 + 1, (n / 8) % 8 + 1).unwrap());
        for t in &texts {
            b = b.line(t);
        }
        let long_qr = "x".repeat(qr_len);
        let doc = b
            .qr(&qr, QrOptions { module_size: n % 16 + 1, error_correction: QrErrorCorrection::L })
            .qr(&format!("{long_qr}1"), QrOptions::default())
            .barcode(&code, BarcodeOptions { height: n.max(1), width: 2 + n % 5, hri: HriPosition::Both })
            .feed(n)
            .cut(Cut::FeedPartial(n))
            .build()
            .unwrap();
        let bytes = doc.render(enc);
        prop_assert_eq!(real_time_command_at(&bytes), None, "{:02X?}", bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn documents_with_raster_lines_carry_no_real_time_command(
        texts in prop::collection::vec("[ -~\u{4e00}-\u{4e20}\u{4d80}-\u{4dbf}\u{20000}-\u{20100}\u{10}]{0,8}", 1..4),
        n in any::<u8>(),
        enc in any_encoding(),
    ) {
        let mut b = Document::builder()
            .size(CharSize::new(n % 3 + 1, (n / 3) % 3 + 1).unwrap())
            .bold(n % 2 == 0);
        for t in &texts {
            b = b.line(t);
        }
        let doc = b.cut(Cut::FeedPartial(n)).build().unwrap();
        let bytes = doc.render_with(enc, Some(&GlyphRaster::bundled()));
        prop_assert_eq!(real_time_command_at(&bytes), None, "{:02X?}", bytes);
    }
}

/// What a printer sends: an ASB block (with XON / XOFF at the given
/// offsets inside it, which software flow control may interleave) or a
/// `DLE EOT` reply, each with its documented fixed bits and random others.
#[derive(Debug, Clone)]
enum Sent {
    Block([u8; 4], Vec<(usize, u8)>),
    Reply(u8),
}

fn any_sent() -> impl Strategy<Value = Sent> {
    prop_oneof![
        (
            any::<[u8; 4]>(),
            prop::collection::vec((1usize..4, prop::sample::select(vec![0x11u8, 0x13])), 0..3)
        )
            .prop_map(|(r, flow)| Sent::Block(
                [r[0] & 0x6C | 0x10, r[1] & 0x6F, r[2] & 0x6F, r[3] & 0x6F],
                flow
            )),
        any::<u8>().prop_map(|r| Sent::Reply(r & 0x6C | 0x12)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any interleaving of blocks and replies comes apart as it was sent,
    /// also when the stream is read in arbitrary pieces.
    #[test]
    fn asb_blocks_and_dle_eot_replies_demultiplex(
        sent in prop::collection::vec(any_sent(), 0..40),
        cut in 1usize..9,
    ) {
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for s in &sent {
            match s {
                Sent::Block(b, flow) => {
                    for (i, &byte) in b.iter().enumerate() {
                        for &(at, f) in flow {
                            if at == i {
                                bytes.push(f);
                            }
                        }
                        bytes.push(byte);
                    }
                    want.push(Inbound::Asb(AsbStatus(*b)));
                }
                Sent::Reply(r) => {
                    bytes.push(*r);
                    want.push(Inbound::Reply(*r));
                }
            }
        }
        let mut d = InboundDemux::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(cut) {
            got.extend(
                d.push_all(piece)
                    .into_iter()
                    .filter(|i| !matches!(i, Inbound::FlowControl(_))),
            );
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(d.dropped(), 0);
        prop_assert!(!d.in_block());
    }

    /// Garbage never panics; whatever comes out has the right fixed bits,
    /// and no more blocks than four bytes each allow.
    #[test]
    fn asb_demux_survives_garbage(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut d = InboundDemux::new();
        let out = d.push_all(&bytes);
        let blocks = out.iter().filter(|i| matches!(i, Inbound::Asb(_))).count();
        prop_assert!(blocks <= bytes.len() / 4);
        for i in out {
            match i {
                Inbound::Asb(a) => {
                    prop_assert_eq!(AsbStatus::parse(a.bytes()), Some(a));
                    let _ = a.status().fault();
                }
                Inbound::Reply(r) => prop_assert!(StatusQuery::Printer.accepts(r)),
                Inbound::FlowControl(b) => prop_assert!(b == 0x11 || b == 0x13),
                Inbound::Partial | Inbound::Other(_) => {}
            }
        }
    }

    /// The block of any status decodes to it (the bits the block layout
    /// has; a cause-less error reads as a mechanical one).
    #[test]
    fn asb_block_of_a_status_round_trips(status in any_status()) {
        let decoded = AsbStatus::of(&status).status();
        prop_assert_eq!(decoded.online, status.online);
        prop_assert_eq!(decoded.cover_open, status.cover_open);
        prop_assert_eq!(decoded.paper, status.paper);
        prop_assert_eq!(decoded.cutter_error, status.cutter_error);
        prop_assert_eq!(
            decoded.error,
            status.error || status.cutter_error || status.unrecoverable_error || status.auto_recoverable_error
        );
    }
}
