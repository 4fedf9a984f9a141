//! Read arbitrary bytes as `DLE EOT n` replies, one by one to every query
//! and four at a time as a full status: never a panic, a byte is accepted
//! exactly when it parses, and what parses gives its byte back (bar the
//! one undefined bit); the same bytes as a printer's stream with
//! automatic status back: blocks and replies come apart without a panic.
//! Run: `cargo xtask fuzz escpos_status`.
#![no_main]

use kiosk_escpos::{AsbStatus, Inbound, InboundDemux, PrinterStatus, StatusQuery, TextEncoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for &byte in data {
        let _ = StatusQuery::from_n(byte);
        for query in StatusQuery::ALL {
            match query.parse(byte) {
                Some(reply) => {
                    assert!(query.accepts(byte));
                    assert_eq!(reply.query(), query);
                    // Every bit means something except bit 2 of the error
                    // cause (undefined: written as 0).
                    let undefined = if query == StatusQuery::ErrorCause {
                        0x04
                    } else {
                        0
                    };
                    assert_eq!(reply.to_byte(), byte & !undefined, "{query:?} {byte:#04x}");
                    assert_eq!(query.parse(reply.to_byte()), Some(reply));
                    let mut status = PrinterStatus::READY;
                    status.apply(reply);
                    let _ = (status.fault(), status.warnings());
                }
                None => assert!(!query.accepts(byte)),
            }
        }
    }
    for window in data.windows(4) {
        let bytes = [window[0], window[1], window[2], window[3]];
        if let Some(status) = PrinterStatus::from_bytes(bytes) {
            let _ = (status.fault(), status.warnings());
            // The canonical replies mean the same status.
            assert_eq!(PrinterStatus::from_bytes(status.to_bytes()), Some(status));
        }
    }
    let mut demux = InboundDemux::new();
    for &byte in data {
        match demux.push(byte) {
            Inbound::Asb(block) => {
                assert_eq!(AsbStatus::parse(block.bytes()), Some(block));
                let status = block.status();
                let _ = (status.fault(), status.warnings());
            }
            Inbound::Reply(b) => assert!(StatusQuery::Printer.accepts(b)),
            Inbound::FlowControl(_) | Inbound::Partial | Inbound::Other(_) => {}
        }
    }
    // Printer text in every encoding: no panic either way, and no control
    // byte (ESC, GS, DLE...) ever reaches the printer from text.
    let text = String::from_utf8_lossy(data);
    for encoding in [
        TextEncoding::Gb18030,
        TextEncoding::Gbk,
        TextEncoding::Big5,
        TextEncoding::Cp437,
        TextEncoding::Ascii,
    ] {
        let bytes = encoding.encode(&text);
        assert!(
            !bytes.iter().any(|&b| b < 0x20 || b == 0x7F),
            "{encoding:?} {text:?} -> {bytes:02X?}"
        );
        let _ = encoding.decode(data);
    }
});
