//! `DLE EOT n` replies: documented example bytes, rejection of bytes that
//! are not replies (fixed bits) or not replies to *this* query (stale).

use kiosk_escpos::{
    EscposError, PaperState, PrinterFault, PrinterStatus, StatusQuery, StatusReply, Warning,
};

use StatusQuery::*;

#[test]
fn requests_are_dle_eot_n() {
    assert_eq!(Printer.request(), vec![0x10, 0x04, 0x01]);
    assert_eq!(OfflineCause.request(), vec![0x10, 0x04, 0x02]);
    assert_eq!(ErrorCause.request(), vec![0x10, 0x04, 0x03]);
    assert_eq!(PaperSensor.request(), vec![0x10, 0x04, 0x04]);
    for q in StatusQuery::ALL {
        assert_eq!(StatusQuery::from_n(q.n()), Some(q));
    }
    assert_eq!(StatusQuery::from_n(0), None);
    assert_eq!(StatusQuery::from_n(5), None);
}

#[test]
fn printer_status_n1() {
    let p = |b| Printer.parse(b).unwrap();
    let reply = |online, drawer, waiting, feed| StatusReply::Printer {
        online,
        drawer_pin3_high: drawer,
        waiting_online_recovery: waiting,
        feed_button_pressed: feed,
    };
    assert_eq!(p(0x12), reply(true, false, false, false));
    assert_eq!(p(0x16), reply(true, true, false, false));
    assert_eq!(p(0x1A), reply(false, false, false, false));
    assert_eq!(p(0x3A), reply(false, false, true, false));
    assert_eq!(p(0x52), reply(true, false, false, true));
}

#[test]
fn offline_cause_n2() {
    let p = |b| OfflineCause.parse(b).unwrap();
    let reply = |cover, feed, end, error| StatusReply::OfflineCause {
        cover_open: cover,
        feed_button: feed,
        paper_end_stop: end,
        error,
    };
    assert_eq!(p(0x12), reply(false, false, false, false));
    assert_eq!(p(0x16), reply(true, false, false, false));
    assert_eq!(p(0x1A), reply(false, true, false, false));
    assert_eq!(p(0x32), reply(false, false, true, false));
    assert_eq!(p(0x52), reply(false, false, false, true));
    assert_eq!(p(0x56), reply(true, false, false, true));
}

#[test]
fn error_cause_n3() {
    let p = |b| ErrorCause.parse(b).unwrap();
    let reply = |cutter, unrec, auto| StatusReply::ErrorCause {
        cutter_error: cutter,
        unrecoverable_error: unrec,
        auto_recoverable_error: auto,
    };
    assert_eq!(p(0x12), reply(false, false, false));
    assert_eq!(p(0x1A), reply(true, false, false));
    assert_eq!(p(0x32), reply(false, true, false));
    assert_eq!(p(0x52), reply(false, false, true));
    // Bit 2 is undefined: accepted, ignored.
    assert_eq!(p(0x16), reply(false, false, false));
}

#[test]
fn paper_sensor_n4() {
    let paper = |b| {
        let mut s = PrinterStatus::READY;
        s.apply(PaperSensor.parse(b).unwrap());
        s.paper
    };
    assert_eq!(paper(0x12), PaperState::Present);
    assert_eq!(paper(0x1E), PaperState::NearEnd);
    assert_eq!(paper(0x72), PaperState::Out);
    assert_eq!(paper(0x7E), PaperState::Out);
}

#[test]
fn bytes_with_wrong_fixed_bits_are_no_reply_to_anything() {
    // 0x00/0x08: automatic-status-back style; 0x0F: a GS r "paper out"
    // answer; 0x11/0x13: XON/XOFF; 0x92/0xFF: bit 7 set; 0x10: bit 1 off;
    // 0x02: bit 4 off; 0x13: bit 0 on.
    for byte in [
        0x00, 0x02, 0x08, 0x0F, 0x10, 0x11, 0x13, 0x92, 0x93, 0xFF, 0x7F, 0x80,
    ] {
        for q in StatusQuery::ALL {
            assert!(q.parse(byte).is_none(), "{byte:02X} accepted for {q:?}");
        }
    }
}

#[test]
fn a_stale_reply_of_another_query_is_not_taken_for_the_paper_status() {
    // The printer-status reply of an offline printer (0x1A), a drawer
    // reply (0x16), offline-cause / error-cause replies (0x32, 0x52): a
    // parser that only masks bits would read them as "near end" or "out".
    for stale in [0x16, 0x1A, 0x32, 0x52, 0x36, 0x5A] {
        assert!(!PaperSensor.accepts(stale), "{stale:02X}");
        assert_eq!(PaperSensor.parse(stale), None);
    }
}

#[test]
fn the_four_replies_together() {
    let s = |b| PrinterStatus::from_bytes(b).unwrap();
    assert_eq!(s([0x12, 0x12, 0x12, 0x12]), PrinterStatus::READY);
    assert_eq!(s([0x12, 0x12, 0x12, 0x12]).fault(), None);
    assert!(s([0x12, 0x12, 0x12, 0x12]).warnings().is_empty());

    let near_end = s([0x12, 0x12, 0x12, 0x1E]);
    assert_eq!(near_end.fault(), None);
    assert_eq!(near_end.warnings(), vec![Warning::PaperNearEnd]);

    let out = s([0x1A, 0x32, 0x12, 0x7E]);
    assert!(!out.online && out.paper_end_stop);
    assert_eq!(out.paper, PaperState::Out);
    assert_eq!(out.fault(), Some(PrinterFault::PaperOut));

    let cover = s([0x1A, 0x16, 0x12, 0x12]);
    assert!(cover.cover_open);
    assert_eq!(cover.fault(), Some(PrinterFault::CoverOpen));
    // Cover open wins over paper out.
    assert_eq!(
        s([0x1A, 0x36, 0x12, 0x7E]).fault(),
        Some(PrinterFault::CoverOpen)
    );

    assert_eq!(
        s([0x1A, 0x52, 0x1A, 0x12]).fault(),
        Some(PrinterFault::CutterError)
    );
    assert_eq!(
        s([0x1A, 0x52, 0x32, 0x12]).fault(),
        Some(PrinterFault::UnrecoverableError)
    );
    assert_eq!(
        s([0x1A, 0x52, 0x52, 0x12]).fault(),
        Some(PrinterFault::AutoRecoverableError)
    );
    assert_eq!(
        s([0x1A, 0x12, 0x12, 0x12]).fault(),
        Some(PrinterFault::Offline)
    );

    assert_eq!(PrinterStatus::READY.to_bytes(), [0x12, 0x12, 0x12, 0x12]);
    assert_eq!(out.to_bytes(), [0x1A, 0x32, 0x12, 0x7E]);
    // A reply in the wrong position is caught.
    assert_eq!(PaperSensor.parse(0x1A), None);
    assert_eq!(PrinterStatus::from_bytes([0x12, 0x12, 0x12, 0x1A]), None);
}

#[test]
fn faults_map_to_errors() {
    assert!(matches!(
        EscposError::from_fault(PrinterFault::PaperOut, false),
        EscposError::PaperOut { sent: false }
    ));
    assert!(matches!(
        EscposError::from_fault(PrinterFault::CoverOpen, true),
        EscposError::CoverOpen { sent: true }
    ));
    assert!(matches!(
        EscposError::from_fault(PrinterFault::Offline, false),
        EscposError::Offline { sent: false }
    ));
    let e = EscposError::from_fault(PrinterFault::CutterError, true);
    assert_eq!(e.printer_fault(), Some(PrinterFault::CutterError));
    assert_eq!(
        e.to_string(),
        "printer error: autocutter error (after the ticket was sent: it may be incomplete)"
    );
}
