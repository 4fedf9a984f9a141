//! The printer simulator over a real pty, driven by kiosk-escpos's
//! `SerialPrinter` as the kiosk drives its ticket printer: tickets built
//! with the escpos builder come out decoded field by field; paper, cover,
//! offline and unplug faults give the kiosk typed errors.
//!
//! Waiting is on the simulator's condition variable or on the printer's
//! own replies; no test sleeps to synchronise.

use std::time::{Duration, Instant};

use kiosk_escpos::{
    Align as EAlign, BarcodeOptions, CharSize, Cut, Document, EscposError, HriPosition, PaperState,
    PrinterConfig, PrinterFault, QrOptions, QueueTicket, SerialPrinter, StatusQuery, Warning,
};
use kiosk_sim::printer::{
    Align, CutKind, DecodedTicket, PrinterSim, PrinterSimConfig, PrinterState,
};
use kiosk_sim::sam::wire_time;

const WAIT: Duration = Duration::from_secs(5);
const QR: &str = "https://例子.cn/q?n=A023&b=西城";

fn start(dir: &tempfile::TempDir) -> PrinterSim {
    start_with(dir, |_| {})
}

fn start_with(dir: &tempfile::TempDir, f: impl FnOnce(&mut PrinterSimConfig)) -> PrinterSim {
    let mut config = PrinterSimConfig::new(dir.path().join("by-id/usb-1a86_USB_Serial-if00-port0"));
    f(&mut config);
    PrinterSim::start(config).unwrap()
}

fn config(sim: &PrinterSim) -> PrinterConfig {
    let mut c = PrinterConfig::new(sim.link());
    c.baud = sim.baud();
    c.status_timeout_ms = 2000;
    c
}

fn open(sim: &PrinterSim) -> SerialPrinter {
    SerialPrinter::open(config(sim)).unwrap()
}

fn ticket() -> Document {
    Document::builder()
        .align(EAlign::Center)
        .bold(true)
        .line("某某银行 西城支行")
        .bold(false)
        .size(CharSize::DOUBLE)
        .line("个人业务")
        .size(CharSize::new(4, 4).unwrap())
        .line("A023")
        .size(CharSize::NORMAL)
        .align(EAlign::Left)
        .line("您前面还有 5 人等候")
        .qr(QR, QrOptions::default())
        .barcode(
            "A023",
            BarcodeOptions {
                hri: HriPosition::Below,
                ..BarcodeOptions::default()
            },
        )
        .align(EAlign::Right)
        .line("2025-03-14 09:31")
        .feed(3)
        .cut(Cut::FeedPartial(0))
        .build()
        .unwrap()
}

fn check_ticket(t: &DecodedTicket) {
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
    let line = |i: usize| {
        let l = &t.lines[i];
        (l.align, l.bold, l.width, l.height)
    };
    assert_eq!(line(0), (Align::Center, true, 1, 1));
    assert_eq!(line(1), (Align::Center, false, 2, 2));
    assert_eq!(line(2), (Align::Center, false, 4, 4));
    assert_eq!(line(3), (Align::Left, false, 1, 1));
    assert_eq!(line(4), (Align::Right, false, 1, 1));
    assert_eq!(t.qr, vec![QR]);
    assert_eq!(t.barcodes, vec!["A023"]);
    assert_eq!(t.cut, Some(CutKind::Partial));
    assert_eq!(t.feed_lines, 3);
    assert_eq!(t.resets, 1);
    assert!(t.unknown.is_empty(), "unknown commands: {:02X?}", t.unknown);
}

#[test]
fn a_ticket_prints_and_decodes_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut printer = open(&sim);
    let doc = ticket();
    let printed = printer.print(&doc).unwrap();
    assert!(printed.warnings.is_empty());
    assert_eq!(printed.status.paper, PaperState::Present);
    assert_eq!(printed.bytes, doc.render(printer.config().encoding).len());

    let tickets = sim.wait_for_tickets(1, WAIT).unwrap();
    assert_eq!(tickets.len(), 1);
    check_ticket(&tickets[0]);
    assert_eq!(tickets[0].bytes, printed.bytes);

    // A second ticket: the rule Q1 layout.
    let queue = QueueTicket {
        branch: "某某银行 西城支行".into(),
        service: "对公业务".into(),
        number: "B007".into(),
        waiting: "您前面还有 0 人等候".into(),
        issued_at: "2025-03-14 09:32".into(),
        masked_name: Some("欧**".into()),
        qr: None,
    };
    printer.print(&queue.document().unwrap()).unwrap();
    let tickets = sim.wait_for_tickets(2, WAIT).unwrap();
    let t = &tickets[1];
    let number = t.line("B007").unwrap();
    assert_eq!(
        (number.width, number.height, number.bold, number.align),
        (4, 4, true, Align::Center)
    );
    assert!(t.line("欧**").is_some());
    assert!(t.qr.is_empty());
    assert_eq!(t.cut, Some(CutKind::Partial));

    let stats = sim.stats();
    assert_eq!(stats.tickets, 2);
    assert_eq!(stats.rejected_bytes, 0);
    assert_eq!(stats.garbled_bytes, 0);
    // open: 4 queries; each print: none before (automatic status back
    // vouches for the printer), 2 after (issue 16).
    assert_eq!(stats.status_queries, 4 + 2 + 2);
}

#[test]
fn paper_out_before_printing_is_an_error_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut printer = open(&sim);
    sim.set_state(PrinterState::PaperOut);
    let err = printer.print(&ticket()).unwrap_err();
    assert!(
        matches!(err, EscposError::PaperOut { sent: false }),
        "{err:?}"
    );
    assert_eq!(err.printer_fault(), Some(PrinterFault::PaperOut));
    // Only what the open sent reached the printer (`GS a` and the 4
    // status requests): the block the printer pushed refused the print,
    // with no request and no document byte.
    let stats = sim.stats();
    assert_eq!(stats.bytes_in, 3 + 4 * 3);
    assert_eq!(stats.rejected_bytes, 0);
    assert!(sim.tickets().is_empty());

    let status = printer.status().unwrap();
    assert_eq!(status.paper, PaperState::Out);
    assert!(!status.online && status.paper_end_stop);

    // A new roll: the same ticket prints (the number is not lost, Q4).
    sim.set_state(PrinterState::Ready);
    printer.print(&ticket()).unwrap();
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);
}

#[test]
fn paper_near_end_prints_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    sim.set_state(PrinterState::PaperNearEnd);
    let mut printer = open(&sim);
    let printed = printer.print(&ticket()).unwrap();
    assert_eq!(printed.warnings, vec![Warning::PaperNearEnd]);
    assert_eq!(printed.status.paper, PaperState::NearEnd);
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);
}

#[test]
fn cover_open_offline_and_cutter_error_refuse_the_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut printer = open(&sim);

    sim.set_state(PrinterState::CoverOpen);
    let err = printer.print(&ticket()).unwrap_err();
    assert!(
        matches!(err, EscposError::CoverOpen { sent: false }),
        "{err:?}"
    );

    sim.set_state(PrinterState::Offline);
    let err = printer.print(&ticket()).unwrap_err();
    assert!(
        matches!(err, EscposError::Offline { sent: false }),
        "{err:?}"
    );

    sim.set_state(PrinterState::CutterError);
    let err = printer.print(&ticket()).unwrap_err();
    assert!(
        matches!(
            err,
            EscposError::Fault {
                fault: PrinterFault::CutterError,
                sent: false
            }
        ),
        "{err:?}"
    );
    assert!(sim.tickets().is_empty());
    assert_eq!(sim.stats().rejected_bytes, 0);

    sim.set_state(PrinterState::Ready);
    printer.print(&ticket()).unwrap();
    assert_eq!(sim.wait_for_tickets(1, WAIT).unwrap().len(), 1);
}

#[test]
fn unplug_mid_ticket_is_an_error_and_after_replug_it_prints_again() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut printer = open(&sim);
    // The four status requests before printing, then 60 bytes of the
    // ticket, then the cable is pulled.
    sim.unplug_after(4 * 3 + 60);
    let err = printer.print(&ticket()).unwrap_err();
    assert!(err.is_unplugged(), "{err:?}");
    assert!(!printer.is_open());
    assert!(!sim.is_plugged());
    assert!(sim.tickets().is_empty());
    let interrupted = sim.interrupted();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].cut, None);
    assert_eq!(interrupted[0].texts()[0], "某某银行 西城支行");
    assert!(interrupted[0].qr.is_empty());

    // Still unplugged: the next print says so at once.
    assert!(printer.print(&ticket()).unwrap_err().is_unplugged());

    sim.replug().unwrap();
    let printed = printer.print(&ticket()).unwrap();
    assert!(printed.warnings.is_empty());
    let tickets = sim.wait_for_tickets(1, WAIT).unwrap();
    check_ticket(&tickets[0]);
    assert_eq!(sim.stats().unplugs, 1);
}

#[test]
fn a_printer_replugged_while_idle_is_reopened_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut printer = open(&sim);
    let first_pty = sim.pty_path().unwrap();
    sim.unplug().unwrap();
    sim.replug().unwrap();
    assert_ne!(sim.pty_path().unwrap(), first_pty);
    // The old port is dead; print notices before sending and reopens.
    printer.print(&ticket()).unwrap();
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);

    // reconnect() waits for the device with backoff.
    sim.unplug().unwrap();
    assert!(
        printer
            .reconnect(Duration::from_millis(150))
            .unwrap_err()
            .is_unplugged()
    );
    sim.replug().unwrap();
    assert_eq!(printer.reconnect(WAIT).unwrap().fault(), None);
}

#[test]
fn a_stale_status_byte_in_the_input_is_flushed_before_asking() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut printer = open(&sim);
    // A leftover "paper out" paper-sensor reply (0x7E) waits in the
    // kiosk's input; read as the answer to DLE EOT 1 it would mean
    // "offline".
    sim.inject(&[0x7E]).unwrap();
    let printed = printer.print(&ticket()).unwrap();
    assert!(printed.warnings.is_empty());
    assert!(printed.status.online);
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);

    sim.inject(&[0x72, 0x1A]).unwrap();
    assert_eq!(printer.status().unwrap().fault(), None);
}

/// A byte that comes back but is no reply to the query (here 0x00: its
/// fixed bits are wrong for every `DLE EOT n`) is not taken for one: the
/// query times out, and the timeout reports the byte.
#[test]
fn a_byte_that_is_no_reply_is_skipped_and_reported_with_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(&dir, |c| c.answers_status = false);
    let mut config = config(&sim);
    config.automatic_status_back = false;
    let opening = std::thread::spawn(move || SerialPrinter::open(config));
    // `DLE EOT 1` has reached the printer: the junk comes after it.
    sim.wait_for_bytes(3, WAIT).unwrap();
    sim.inject(&[0x00]).unwrap();
    match opening.join().unwrap() {
        Err(EscposError::StatusTimeout {
            query, received, ..
        }) => {
            assert_eq!(query, StatusQuery::Printer);
            assert_eq!(received, [0x00]);
        }
        other => panic!("expected a status timeout, got {other:?}"),
    }
}

#[test]
fn at_the_wrong_speed_the_printer_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut config = config(&sim);
    config.baud = 9600;
    config.status_timeout_ms = 200;
    match SerialPrinter::open(config) {
        Err(EscposError::StatusTimeout {
            query, received, ..
        }) => {
            assert_eq!(query, StatusQuery::Printer);
            assert!(received.is_empty());
        }
        other => panic!("expected a status timeout, got {other:?}"),
    }
    // `GS a` and `DLE EOT 1`.
    assert_eq!(sim.stats().garbled_bytes, 6);
    assert_eq!(sim.stats().status_queries, 0);
}

/// Issue 16: the last byte of a ticket is stamped apart from the status
/// queries after it (each byte gets the time it finished arriving), and
/// the counters at that moment say what was exchanged until then.
#[test]
fn the_last_ticket_byte_is_stamped_apart_from_later_status_queries() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(&dir, |c| {
        c.baud = 19_200;
        c.emulate_wire_time = true;
    });
    let mut printer = open(&sim);
    printer.print(&ticket()).unwrap();
    let ticket_end = sim.last_ticket_byte_at().unwrap();
    let last = sim.last_byte_at().unwrap();
    // `GS a` ending the document, then printer and paper status: 9
    // bytes on the wire after the ticket.
    assert!(last.duration_since(ticket_end) >= wire_time(1, 19_200) * 9);
    let at_cut = sim.stats_at_last_ticket().unwrap();
    assert_eq!(sim.stats().status_queries - at_cut.status_queries, 2);
    assert_eq!(sim.stats().bytes_in - at_cut.bytes_in, 9);
}

#[test]
fn wire_time_is_emulated_at_the_configured_speed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(&dir, |c| {
        c.baud = 19_200;
        c.emulate_wire_time = true;
    });
    let mut printer = open(&sim);
    let doc = ticket();
    let started = Instant::now();
    let printed = printer.print(&doc).unwrap();
    let took = started.elapsed();
    // The reply after the ticket comes once the whole ticket has crossed
    // the emulated line.
    let wire = wire_time(printed.bytes, 19_200);
    assert!(
        took >= wire,
        "printing took {took:?}, the wire needs {wire:?}"
    );
    let last = sim.last_byte_at().unwrap();
    assert!(
        last >= started + wire,
        "last byte {:?} after start",
        last - started
    );
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);
}

/// The sans-IO printer, fed raw bytes (its decoder is independent of
/// kiosk-escpos, so these vectors are written out by hand).
mod core {
    use kiosk_sim::printer::{Align, CutKind, DecodedTicket, PrinterCore, PrinterState};

    fn ticket_bytes() -> Vec<u8> {
        let mut b = vec![0x1B, 0x40, 0x1C, 0x26, 0x1B, 0x61, 0x01, 0x1D, 0x21, 0x33];
        b.extend_from_slice(b"A023\n");
        b.extend_from_slice(&[0x1D, 0x21, 0x00, 0x1B, 0x45, 0x01]);
        b.extend_from_slice(&[0xB2, 0xE2, 0xCA, 0xD4, 0x0A]); // 测试
        b.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x05, 0x00, 0x31, 0x50, 0x30, b'Q', b'1']);
        b.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]);
        b.extend_from_slice(&[0x1D, 0x6B, 0x49, 0x06, b'{', b'B', b'A', b'0', b'2', b'3']);
        b.extend_from_slice(&[0x1B, 0x64, 0x02, 0x1D, 0x56, 0x42, 0x00]);
        b
    }

    fn check(t: &DecodedTicket) {
        assert_eq!(t.texts(), vec!["A023", "测试"]);
        let number = &t.lines[0];
        assert_eq!(
            (number.align, number.bold, number.width, number.height),
            (Align::Center, false, 4, 4)
        );
        let chinese = &t.lines[1];
        assert_eq!((chinese.bold, chinese.width), (true, 1));
        assert_eq!(t.qr, vec!["Q1"]);
        assert_eq!(t.barcodes, vec!["A023"]);
        assert_eq!(t.cut, Some(CutKind::Partial));
        assert_eq!(t.feed_lines, 2);
        assert_eq!(t.resets, 1);
        assert!(t.unknown.is_empty(), "{:?}", t.unknown);
    }

    #[test]
    fn decodes_a_ticket_whole_and_byte_by_byte() {
        let mut core = PrinterCore::new();
        assert!(core.receive(&ticket_bytes()).is_empty());
        check(&core.tickets()[0]);
        assert_eq!(core.tickets()[0].bytes, ticket_bytes().len());

        let mut core = PrinterCore::new();
        for b in ticket_bytes() {
            core.receive(&[b]);
        }
        assert_eq!(core.tickets().len(), 1);
        check(&core.tickets()[0]);
        assert_eq!(core.tickets()[0].bytes, ticket_bytes().len());
    }

    #[test]
    fn status_queries_are_answered_mid_stream_and_split_across_reads() {
        let mut core = PrinterCore::new();
        let bytes = ticket_bytes();
        // DLE EOT 4 split over two reads, between two commands of the
        // ticket. (Inside a command's parameters it would be answered too,
        // and also taken as the parameters, as printers do: the builder
        // never puts one there.)
        let (head, tail) = bytes.split_at(18);
        assert!(core.receive(&[head, &[0x10, 0x04][..]].concat()).is_empty());
        let replies = core.receive(&[&[0x04][..], tail, &[0x10, 0x04, 0x01]].concat());
        assert_eq!(replies, vec![0x12, 0x12]);
        check(&core.tickets()[0]);
        assert_eq!(core.stats().status_queries, 2);

        core.set_state(PrinterState::PaperNearEnd);
        assert_eq!(
            core.receive(&[0x10, 0x04, 0x04, 0x10, 0x04, 0x01]),
            vec![0x1E, 0x12]
        );
        // n outside 1..4 is no status request.
        assert!(
            core.receive(&[0x10, 0x04, 0x05, 0x10, 0x04, 0x00])
                .is_empty()
        );
    }

    #[test]
    fn every_state_answers_as_documented() {
        for state in PrinterState::ALL {
            let mut core = PrinterCore::new();
            core.set_state(state);
            let replies =
                core.receive(&[0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 3, 0x10, 0x04, 4]);
            let expected: Vec<u8> = (1..=4).map(|n| state.status_byte(n).unwrap()).collect();
            assert_eq!(replies, expected, "{state}");
            assert!(replies.iter().all(|b| b & 0x93 == 0x12));
            assert_eq!(state.name().parse::<PrinterState>(), Ok(state));
        }
        assert_eq!(PrinterState::Ready.status_byte(1), Some(0x12));
        assert_eq!(PrinterState::PaperOut.status_byte(4), Some(0x7E));
        assert_eq!(PrinterState::CoverOpen.status_byte(2), Some(0x16));
        assert!("jammed".parse::<PrinterState>().is_err());
        assert_eq!(
            "paper-out".parse::<PrinterState>(),
            Ok(PrinterState::PaperOut)
        );
    }

    #[test]
    fn a_printer_that_cannot_print_discards_and_counts() {
        let mut core = PrinterCore::new();
        core.set_state(PrinterState::PaperOut);
        let bytes = ticket_bytes();
        assert_eq!(
            core.receive(&[&bytes[..], &[0x10, 0x04, 0x04]].concat()),
            vec![0x7E]
        );
        assert!(core.tickets().is_empty());
        assert_eq!(core.stats().rejected_bytes, bytes.len() as u64);
    }

    #[test]
    fn a_state_change_mid_ticket_interrupts_it() {
        let mut core = PrinterCore::new();
        let bytes = ticket_bytes();
        core.receive(&bytes[..30]);
        core.set_state(PrinterState::CoverOpen);
        core.receive(&bytes[30..]);
        assert!(core.tickets().is_empty());
        assert_eq!(core.interrupted().len(), 1);
        assert_eq!(core.interrupted()[0].texts(), vec!["A023", "测试"]);
        assert_eq!(core.interrupted()[0].cut, None);
        assert_eq!(core.stats().interrupted_tickets, 1);
        core.set_state(PrinterState::Ready);
        core.receive(&bytes);
        check(&core.tickets()[0]);
    }

    #[test]
    fn dle_enq_clears_a_cutter_error() {
        let mut core = PrinterCore::new();
        core.set_state(PrinterState::CutterError);
        assert_eq!(core.receive(&[0x10, 0x04, 0x03]), vec![0x1A]);
        core.receive(&[0x10, 0x05, 0x01]);
        assert_eq!(core.state(), PrinterState::Ready);
    }

    #[test]
    fn code128_code_sets_pc437_and_full_cut() {
        let mut core = PrinterCore::new();
        let mut b = vec![0x1B, 0x40, b'C', b'a', b'f', 0x82, b' ', 0x9C, 0x0A];
        b.extend_from_slice(&[0x1D, 0x6B, 0x49, 0x06, b'{', b'B', b'a', b'{', b'{', b'b']);
        b.extend_from_slice(&[0x1D, 0x6B, 0x49, 0x05, b'{', b'C', 12, 34, 5]);
        b.extend_from_slice(&[0x1D, 0x6B, 0x04]);
        b.extend_from_slice(b"*A1*\0");
        b.extend_from_slice(&[0x1D, 0x56, 0x00]);
        core.receive(&b);
        let t = &core.tickets()[0];
        assert_eq!(t.texts(), vec!["Café £"]);
        assert_eq!(t.barcodes, vec!["a{b", "123405", "*A1*"]);
        assert_eq!(t.cut, Some(CutKind::Full));
    }

    #[test]
    fn esc_at_drops_an_unprinted_line_and_the_modes() {
        let mut core = PrinterCore::new();
        core.receive(&[
            0x1B, 0x45, 0x01, b'x', 0x1B, 0x40, b'y', 0x0A, 0x1D, 0x56, 0x01,
        ]);
        let t = &core.tickets()[0];
        assert_eq!(t.texts(), vec!["y"]);
        assert!(!t.lines[0].bold);
        assert_eq!(t.resets, 1);
    }

    #[test]
    fn esc_bang_print_mode_and_unknown_commands() {
        let mut core = PrinterCore::new();
        // ESC ! 0x38: bold, double height and width. ESC ~ is unknown.
        core.receive(&[0x1B, 0x21, 0x38, b'B', 0x0A, 0x1B, b'~', 0x1D, 0x56, 0x30]);
        let t = &core.tickets()[0];
        assert_eq!(
            (t.lines[0].bold, t.lines[0].width, t.lines[0].height),
            (true, 2, 2)
        );
        assert_eq!(t.unknown, vec![vec![0x1B, b'~']]);
    }

    /// Epson's `GS v 0 m xL xH yL yH d1...dk` (k = (xL + xH × 256) ×
    /// (yL + yH × 256), MSB the leftmost dot), between two lines of text;
    /// its data holds bytes that look like commands (LF, ESC, GS V).
    #[test]
    fn a_raster_image_is_kept_between_the_lines_around_it() {
        let mut core = PrinterCore::new();
        let mut b = vec![0x1B, 0x40, 0x1B, 0x61, 0x01];
        b.extend_from_slice(b"before\n");
        // 2 bytes (16 dots) by 3 rows.
        b.extend_from_slice(&[0x1D, 0x76, 0x30, 0x00, 0x02, 0x00, 0x03, 0x00]);
        b.extend_from_slice(&[0x80, 0x0A, 0x1B, 0x1D, 0x56, 0x01]);
        b.extend_from_slice(b"after\n");
        b.extend_from_slice(&[0x1D, 0x56, 0x01]);
        for chunk in b.chunks(3) {
            core.receive(chunk);
        }
        let t = &core.tickets()[0];
        assert_eq!(t.texts(), vec!["before", "after"]);
        assert_eq!(t.images.len(), 1);
        let image = &t.images[0];
        assert_eq!(image.after_lines, 1);
        assert_eq!(
            (image.width_dots, image.height_dots, image.scale),
            (16, 3, 0)
        );
        assert_eq!(image.align, Align::Center);
        assert_eq!(image.data, vec![0x80, 0x0A, 0x1B, 0x1D, 0x56, 0x01]);
        assert!(image.dot(0, 0) && !image.dot(1, 0));
        // Row 1 is 1B 1D: dots 3, 4, 6, 7 and 11, 12, 13, 15.
        assert!(image.dot(3, 1) && image.dot(15, 1) && !image.dot(14, 1));
        assert_eq!(image.black_dots(), 1 + 2 + 4 + 4 + 4 + 1);
        assert_eq!(image.inked_columns(), Some((0, 15)));
        assert!(t.unknown.is_empty(), "{:?}", t.unknown);
    }
}

#[test]
fn the_network_printer_listens_on_loopback_only() {
    let config = PrinterSimConfig {
        listen: Some("0.0.0.0:0".parse().unwrap()),
        ..PrinterSimConfig::tcp()
    };
    let err = PrinterSim::start(config).unwrap_err();
    assert!(err.to_string().contains("loopback only"), "{err}");
}

#[test]
fn over_tcp_the_printer_answers_on_its_connection_and_unplug_closes_the_listener() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let sim = PrinterSim::start(PrinterSimConfig::tcp()).unwrap();
    let addr = sim.address().expect("listening");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert!(sim.is_plugged());
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(&[0x10, 0x04, 0x01]).unwrap();
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], PrinterState::Ready.status_byte(1).unwrap());
    conn.write_all(&ticket().render(kiosk_escpos::TextEncoding::Gb18030))
        .unwrap();
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);

    // Unplugged: the connection ends and no new one is taken.
    sim.unplug().unwrap();
    assert!(!sim.is_plugged());
    assert_eq!(conn.read(&mut reply).unwrap(), 0, "end of file");
    assert!(TcpStream::connect(addr).is_err(), "refused while unplugged");
    sim.replug().unwrap();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(&[0x10, 0x04, 0x04]).unwrap();
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], PrinterState::Ready.status_byte(4).unwrap());
    assert_eq!(sim.stats().unplugs, 1);
}

#[test]
fn a_unidirectional_printer_prints_and_never_answers_status() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_with(&dir, |c| c.answers_status = false);
    let mut c = PrinterConfig::usb(sim.link());
    c.status = false;
    let mut printer = SerialPrinter::new(c).unwrap();
    let printed = printer.print(&ticket()).unwrap();
    assert!(!printed.status_known);
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);
    assert_eq!(sim.stats().bytes_out, 0, "no reply ever sent");
}

/// `GS a`: the sans-IO printer sends its block when the command is
/// executed and then only when the block changes; a printer set to skip
/// `GS a` sends none, and one that cannot print discards the command with
/// the rest of its input.
#[test]
fn gs_a_sends_a_block_at_once_and_on_each_change() {
    use kiosk_sim::printer::PrinterCore;
    let gs_a = [0x1D, 0x61, 0x0E];
    let mut core = PrinterCore::new();
    assert_eq!(core.receive(&gs_a), vec![0x10, 0x00, 0x00, 0x00]);
    assert!(core.asb_enabled());
    core.set_state(PrinterState::PaperOut);
    assert_eq!(core.take_outgoing(), vec![0x18, 0x00, 0x0F, 0x00]);
    core.set_state(PrinterState::PaperOut);
    assert!(core.take_outgoing().is_empty(), "no change, no block");
    // A DLE EOT reply after a pushed block, in order.
    core.set_state(PrinterState::CoverOpen);
    assert_eq!(
        core.receive(&[0x10, 0x04, 0x01]),
        vec![0x38, 0x00, 0x00, 0x00, 0x1A]
    );
    assert_eq!(core.stats().asb_blocks, 3);
    assert_eq!(core.stats().status_queries, 1);
    // `GS a` belongs to no ticket.
    core.set_state(PrinterState::Ready);
    core.take_outgoing();
    let mut doc = ticket().render(kiosk_escpos::TextEncoding::Gb18030);
    let len = doc.len();
    doc.extend_from_slice(&gs_a);
    assert_eq!(core.receive(&doc), vec![0x10, 0x00, 0x00, 0x00]);
    assert_eq!(core.tickets()[0].bytes, len);
    // An unplug forgets it (power-on default: off).
    core.unplugged();
    assert!(!core.asb_enabled());
    core.set_state(PrinterState::PaperOut);
    assert!(core.take_outgoing().is_empty());

    let mut deaf = PrinterCore::new();
    deaf.set_honours_asb(false);
    assert!(deaf.receive(&gs_a).is_empty());
    deaf.set_state(PrinterState::PaperOut);
    assert!(deaf.take_outgoing().is_empty());
    assert_eq!(deaf.stats().asb_blocks, 0);

    let mut stopped = PrinterCore::new();
    stopped.set_state(PrinterState::CoverOpen);
    assert!(stopped.receive(&gs_a).is_empty(), "discarded, not executed");
    assert!(!stopped.asb_enabled());
}

/// The simulator's blocks and its `DLE EOT` replies say the same thing to
/// the kiosk's decoder, in every state (the two sides share no code).
#[test]
fn asb_blocks_of_every_state_decode_as_its_dle_eot_replies() {
    use kiosk_escpos::{AsbStatus, PrinterStatus};
    for state in PrinterState::ALL {
        let replies = [1, 2, 3, 4].map(|n| state.status_byte(n).unwrap());
        let by_query = PrinterStatus::from_bytes(replies).unwrap();
        let block = AsbStatus::parse(state.asb_block())
            .unwrap_or_else(|| panic!("{state}: not a valid block"));
        assert_eq!(block.status(), by_query, "{state}");
    }
}

/// Over the pty: the kiosk's printer enables ASB on open, and a state
/// change pushed by the simulator decides the check before printing with
/// no query; a printer that ignores `GS a` is asked.
#[test]
fn a_pushed_block_is_the_check_before_printing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&dir);
    let mut printer = open(&sim);
    assert!(sim.asb_enabled());
    assert!(printer.asb_blocks() >= 1, "the block answering GS a");
    assert!(printer.fresh_status().is_some());
    sim.set_state(PrinterState::CoverOpen);
    let queries = sim.stats().status_queries;
    let status = printer.preflight().unwrap();
    assert_eq!(status.fault(), Some(PrinterFault::CoverOpen));
    assert_eq!(sim.stats().status_queries, queries, "no DLE EOT");
    let err = printer.print(&ticket()).unwrap_err();
    assert!(
        matches!(err, EscposError::CoverOpen { sent: false }),
        "{err:?}"
    );
    assert_eq!(sim.stats().rejected_bytes, 0);
    sim.set_state(PrinterState::Ready);
    printer.print(&ticket()).unwrap();
    check_ticket(&sim.wait_for_tickets(1, WAIT).unwrap()[0]);

    let dir = tempfile::tempdir().unwrap();
    let deaf = start_with(&dir, |c| c.honours_asb = false);
    let mut printer = open(&deaf);
    assert_eq!(printer.asb_blocks(), 0);
    assert_eq!(printer.fresh_status(), None);
    let queries = deaf.stats().status_queries;
    printer.preflight().unwrap();
    assert_eq!(deaf.stats().status_queries, queries + 1, "asked instead");
}
