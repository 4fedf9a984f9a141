//! The printer device loop against the printer simulator on a pty: prints,
//! faults reported as events, a refill and a replug noticed by themselves,
//! no polling while healthy.
//!
//! Waiting is on the event channel and the simulator's condition variable,
//! each with a deadline; no test sleeps to synchronise.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use kiosk_escpos::device::{FAULT_CHECK_MAX, REOPEN_BACKOFF_MAX};
use kiosk_escpos::{
    DeviceState, Document, EscposError, PaperState, PrinterConfig, PrinterDevice, PrinterEvent,
    PrinterFault, PrinterHandle, QueueTicket, Warning,
};
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig, PrinterState};

/// A request's time limit.
const CALL: Duration = Duration::from_secs(10);
/// How long a state the device reaches by itself may take: the longest
/// backoff plus a status exchange and slack.
const NOTICE: Duration = Duration::from_secs(15);
const WAIT: Duration = Duration::from_secs(5);

pub(crate) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

struct Rig {
    // Field order: the device stops before the simulator goes.
    printer: PrinterHandle,
    events: Events,
    sim: PrinterSim,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    rig_with(|_| {})
}

/// A simulator; `before` runs before the device is spawned.
fn rig_with(before: impl FnOnce(&PrinterSim)) -> Rig {
    rig_custom(|_| {}, before, |_| {})
}

/// The device with automatic status back off: every print asks first.
fn rig_without_asb() -> Rig {
    rig_custom(|_| {}, |_| {}, |c| c.automatic_status_back = false)
}

/// A simulator set up by `sim_config`, `before` run before the device is
/// spawned with the config `configure` changes.
fn rig_custom(
    sim_config: impl FnOnce(&mut PrinterSimConfig),
    before: impl FnOnce(&PrinterSim),
    configure: impl FnOnce(&mut PrinterConfig),
) -> Rig {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut sim_cfg =
        PrinterSimConfig::new(dir.path().join("by-id/usb-1a86_USB_Serial-if00-port0"));
    sim_config(&mut sim_cfg);
    let sim = PrinterSim::start(sim_cfg).unwrap();
    before(&sim);
    let mut config = PrinterConfig::new(sim.link());
    config.baud = sim.baud();
    config.status_timeout_ms = 2000;
    configure(&mut config);
    let (tx, rx) = mpsc::channel();
    let printer = PrinterDevice::spawn("ticket".into(), config, tx).unwrap();
    Rig {
        printer,
        events: Events::new(rx),
        sim,
        _dir: dir,
    }
}

pub(crate) fn ticket(number: &str) -> Document {
    QueueTicket {
        branch: "某某银行 西城支行".into(),
        service: "个人业务".into(),
        number: number.into(),
        waiting: "您前面还有 2 人等候".into(),
        issued_at: "2025-03-14 09:31".into(),
        masked_name: None,
        qr: Some("0b4a2c9e-3f1d-4d55-9a7e-6c1f2b3d4e5f".into()),
    }
    .document()
    .unwrap()
}

/// Events received so far, for failure messages.
pub(crate) struct Events {
    rx: Receiver<PrinterEvent>,
    seen: Vec<String>,
}

impl Events {
    pub(crate) fn new(rx: Receiver<PrinterEvent>) -> Events {
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next event matching `pred` within `within`; others are skipped.
    pub(crate) fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        mut pred: impl FnMut(&PrinterEvent) -> bool,
    ) -> PrinterEvent {
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "no {what} within {within:?}; events seen:\n{}",
                    self.seen.join("\n")
                );
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(event) => {
                    self.seen.push(format!("{event:?}"));
                    if pred(&event) {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(e) => panic!(
                    "event channel closed ({e}) waiting for {what}; events seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub(crate) fn state(&mut self, within: Duration, want: DeviceState) -> Option<String> {
        match self.wait_for(
            within,
            &format!("state {want}"),
            |e| matches!(e, PrinterEvent::State { state, .. } if *state == want),
        ) {
            PrinterEvent::State { detail, .. } => detail,
            _ => unreachable!(),
        }
    }

    pub(crate) fn fault(&mut self, within: Duration, want: PrinterFault) {
        self.wait_for(
            within,
            &format!("fault {want}"),
            |e| matches!(e, PrinterEvent::Fault { fault, .. } if *fault == want),
        );
    }

    /// Every event that comes within `within` (waits all of it).
    fn all_within(&mut self, within: Duration) -> Vec<PrinterEvent> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return got;
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(event) => {
                    self.seen.push(format!("{event:?}"));
                    got.push(event);
                }
                Err(_) => return got,
            }
        }
    }
}

#[test]
fn starts_online_and_prints_a_ticket_with_status_checked_around_it() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Starting);
    let status = match r.events.wait_for(WAIT, "first status", |e| {
        matches!(e, PrinterEvent::Status { .. })
    }) {
        PrinterEvent::Status {
            status, warnings, ..
        } => {
            assert!(warnings.is_empty());
            status
        }
        _ => unreachable!(),
    };
    assert_eq!(status.fault(), None);
    assert_eq!(r.events.state(WAIT, DeviceState::Online), None);
    let before = r.sim.stats().status_queries;
    assert_eq!(before, 4, "all four statuses asked on open");

    let printed = r.printer.print(ticket("A001"), CALL).unwrap();
    assert!(printed.warnings.is_empty());
    assert_eq!(printed.status.paper, PaperState::Present);
    let tickets = r.sim.wait_for_tickets(1, WAIT).unwrap();
    assert_eq!(tickets[0].texts()[2], "A001");
    assert_eq!(
        tickets[0].qr,
        vec!["0b4a2c9e-3f1d-4d55-9a7e-6c1f2b3d4e5f".to_string()]
    );
    // Automatic status back is on (the open sent `GS a`, the printer
    // answered with a block): nothing asked before the ticket; printer
    // and paper after it (issue 16: one round trip).
    assert!(r.sim.asb_enabled());
    assert_eq!(r.sim.stats().status_queries, before + 2);

    let snapshot = r.printer.snapshot();
    assert_eq!(snapshot.state, DeviceState::Online);
    assert_eq!(snapshot.fault, None);
    r.printer.stop();
}

/// Issue 16: a reserved turn checks the printer at once, before its
/// document exists (without automatic status back: one status query), and
/// prints once the document comes;
/// turns print in the order taken; a dropped turn prints nothing.
#[test]
fn reserved_turns_check_first_and_print_in_the_order_taken() {
    let mut r = rig_without_asb();
    r.events.state(WAIT, DeviceState::Online);
    let queries = r.sim.stats().status_queries;
    let bytes = r.sim.stats().bytes_in;
    let first = r.printer.reserve(CALL).unwrap();
    // The check of the first turn: `DLE EOT 1`, answered.
    r.sim.wait_for_bytes(bytes + 3, WAIT).unwrap();
    let second = r.printer.reserve(CALL).unwrap();
    let dropped = r.printer.reserve(CALL).unwrap();
    let later = std::thread::spawn(move || second.print(ticket("A002")));
    first.print(ticket("A001")).unwrap();
    later.join().unwrap().unwrap();
    drop(dropped);
    r.printer.print(ticket("A003"), CALL).unwrap();
    let tickets = r.sim.wait_for_tickets(3, WAIT).unwrap();
    let numbers: Vec<_> = tickets.iter().map(|t| t.texts()[2].to_string()).collect();
    assert_eq!(numbers, ["A001", "A002", "A003"]);
    // Each print: one query before, two after (the dropped turn may have
    // checked the printer before it was dropped).
    let asked = r.sim.stats().status_queries - queries;
    assert!((9..=10).contains(&asked), "{asked} status queries");
}

/// Issue 16: a turn on a printer that cannot print says why at once, and
/// its document is never sent.
#[test]
fn a_reserved_turn_on_a_printer_without_paper_sends_nothing() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.sim.set_state(PrinterState::PaperOut);
    let turn = r.printer.reserve(CALL).unwrap();
    let err = turn.print(ticket("A001")).unwrap_err();
    assert_eq!(err.printer_fault(), Some(PrinterFault::PaperOut), "{err}");
    assert_eq!(r.sim.stats().tickets, 0);
    assert_eq!(r.sim.stats().rejected_bytes, 0, "nothing was sent");
}

/// Issue 16 with automatic status back (the default): the printer's own
/// blocks vouch for it, so a reserved turn asks nothing before the ticket;
/// the check after it stays (printer and paper, one round trip).
#[test]
fn rule_q4_asb_ticket_prints_with_no_status_round_trip_before_it() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    assert!(r.sim.asb_enabled(), "GS a sent on open");
    for number in ["A001", "A002", "A003"] {
        let before = r.sim.stats();
        let turn = r.printer.reserve(CALL).unwrap();
        let printed = turn.print(ticket(number)).unwrap();
        assert!(printed.status_known);
        let at_cut = r.sim.stats_at_last_ticket().unwrap();
        assert_eq!(
            at_cut.status_queries, before.status_queries,
            "no DLE EOT before {number}"
        );
        let after = r.sim.stats();
        assert_eq!(after.status_queries, before.status_queries + 2);
        // Each document ends with GS a, answered by a block.
        assert!(after.asb_blocks > before.asb_blocks);
    }
    let numbers: Vec<_> = r
        .sim
        .wait_for_tickets(3, WAIT)
        .unwrap()
        .iter()
        .map(|t| t.texts()[2].to_string())
        .collect();
    assert_eq!(numbers, ["A001", "A002", "A003"]);
}

/// Rule Q4 with automatic status back: paper running out while idle is
/// pushed by the printer; the next ticket is refused from that block
/// alone (nothing sent, not even a status query), the technician sees the
/// fault; a refill, pushed too, lets the next ticket print.
#[test]
fn rule_q4_asb_paper_out_pushed_refuses_the_next_ticket_and_sends_nothing() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.printer.print(ticket("A001"), CALL).unwrap();
    // Returns once the block waits in the kiosk's input queue.
    r.sim.set_state(PrinterState::PaperOut);
    let before = r.sim.stats();
    let turn = r.printer.reserve(CALL).unwrap();
    let err = turn.print(ticket("A002")).unwrap_err();
    assert_eq!(err.printer_fault(), Some(PrinterFault::PaperOut), "{err}");
    assert!(
        matches!(err, EscposError::PaperOut { sent: false }),
        "{err:?}"
    );
    let after = r.sim.stats();
    assert_eq!(after.bytes_in, before.bytes_in, "nothing at all was sent");
    assert_eq!(after.rejected_bytes, 0);
    r.events.fault(WAIT, PrinterFault::PaperOut);
    assert_eq!(r.printer.snapshot().fault, Some(PrinterFault::PaperOut));

    r.sim.set_state(PrinterState::Ready);
    r.printer.print(ticket("A003"), CALL).unwrap();
    let tickets = r.sim.wait_for_tickets(2, WAIT).unwrap();
    assert_eq!(tickets[1].texts()[2], "A003");
}

/// A printer that ignores `GS a` never sends a block: every ticket is
/// checked with the `DLE EOT` round trip, as without ASB.
#[test]
fn a_printer_ignoring_gs_a_falls_back_to_the_status_round_trip() {
    let mut r = rig_custom(|c| c.honours_asb = false, |_| {}, |_| {});
    r.events.state(WAIT, DeviceState::Online);
    assert!(!r.sim.asb_enabled());
    for number in ["A001", "A002"] {
        let before = r.sim.stats();
        let turn = r.printer.reserve(CALL).unwrap();
        turn.print(ticket(number)).unwrap();
        let at_cut = r.sim.stats_at_last_ticket().unwrap();
        assert_eq!(
            at_cut.status_queries,
            before.status_queries + 1,
            "DLE EOT 1 before {number}"
        );
        assert_eq!(r.sim.stats().status_queries, before.status_queries + 3);
    }
    assert_eq!(r.sim.stats().asb_blocks, 0);
    // And paper out is still refused before anything is sent.
    r.sim.set_state(PrinterState::PaperOut);
    let turn = r.printer.reserve(CALL).unwrap();
    let err = turn.print(ticket("A003")).unwrap_err();
    assert_eq!(err.printer_fault(), Some(PrinterFault::PaperOut), "{err}");
    assert_eq!(r.sim.stats().rejected_bytes, 0);
}

/// A printer without paper when the port opens discards the `GS a` sent
/// then: after the refill the first ticket is checked with the round trip,
/// and its own `GS a` (at its end) is answered, so the next one is not.
#[test]
fn asb_lost_at_open_is_enabled_by_the_next_ticket() {
    let mut r = rig_with(|sim| sim.set_state(PrinterState::PaperOut));
    r.events.fault(NOTICE, PrinterFault::PaperOut);
    assert!(!r.sim.asb_enabled());
    r.sim.set_state(PrinterState::Ready);
    r.events.state(NOTICE, DeviceState::Online);
    let before = r.sim.stats();
    r.printer.print(ticket("A001"), CALL).unwrap();
    let at_cut = r.sim.stats_at_last_ticket().unwrap();
    assert_eq!(
        at_cut.status_queries,
        before.status_queries + 1,
        "asked first"
    );
    assert!(r.sim.asb_enabled());
    let before = r.sim.stats();
    r.printer.print(ticket("A002"), CALL).unwrap();
    let at_cut = r.sim.stats_at_last_ticket().unwrap();
    assert_eq!(at_cut.status_queries, before.status_queries, "trusted now");
}

/// A real printer answers the `GS a` that ends a ticket once it has
/// printed it, after the replies to the check that follows: that block is
/// read when the next ticket starts, before deciding whether to ask.
#[test]
fn asb_block_arriving_after_the_post_print_check_is_read_before_the_next_ticket() {
    // The simulator skips `GS a`; the block is sent by hand, late.
    let mut r = rig_custom(|c| c.honours_asb = false, |_| {}, |_| {});
    r.events.state(WAIT, DeviceState::Online);
    r.printer.print(ticket("A001"), CALL).unwrap();
    // Epson's "all well" block (see tests/asb.rs for the source).
    r.sim.inject(&[0x10, 0x00, 0x00, 0x00]).unwrap();
    let before = r.sim.stats();
    r.printer.print(ticket("A002"), CALL).unwrap();
    let at_cut = r.sim.stats_at_last_ticket().unwrap();
    assert_eq!(at_cut.status_queries, before.status_queries, "no DLE EOT");
    // That ticket's own `GS a` goes unanswered: the next one asks again.
    let before = r.sim.stats();
    r.printer.print(ticket("A003"), CALL).unwrap();
    let at_cut = r.sim.stats_at_last_ticket().unwrap();
    assert_eq!(at_cut.status_queries, before.status_queries + 1);
}

/// Paper near end pushed by the printer: tickets still print, with the
/// warning, and no round trip before them.
#[test]
fn asb_paper_near_end_pushed_prints_and_warns() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.printer.print(ticket("A001"), CALL).unwrap();
    r.sim.set_state(PrinterState::PaperNearEnd);
    let before = r.sim.stats();
    let printed = r
        .printer
        .reserve(CALL)
        .unwrap()
        .print(ticket("A002"))
        .unwrap();
    assert_eq!(printed.warnings, vec![Warning::PaperNearEnd]);
    assert_eq!(
        r.sim.stats_at_last_ticket().unwrap().status_queries,
        before.status_queries
    );
}

#[test]
fn a_healthy_printer_is_not_polled_between_prints() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.printer.print(ticket("A001"), CALL).unwrap();
    let queries = r.sim.stats().status_queries;
    // Idle for a while: nothing is asked and nothing reported.
    let events = r.events.all_within(Duration::from_millis(2500));
    assert!(events.is_empty(), "events while idle: {events:?}");
    assert_eq!(r.sim.stats().status_queries, queries);
    // A technician's check asks all four.
    let status = r.printer.status(CALL).unwrap();
    assert_eq!(status.fault(), None);
    assert_eq!(r.sim.stats().status_queries, queries + 4);
}

#[test]
fn paper_out_fails_the_print_reports_the_fault_and_a_refill_is_noticed() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    // The paper runs out while idle: noticed at the next print.
    r.sim.set_state(PrinterState::PaperOut);
    let started = Instant::now();
    let err = r.printer.print(ticket("A002"), CALL).unwrap_err();
    assert!(
        matches!(err, EscposError::PaperOut { sent: false }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "told at once");
    assert_eq!(err.printer_fault(), Some(PrinterFault::PaperOut));
    r.events.fault(WAIT, PrinterFault::PaperOut);
    assert_eq!(
        r.events.state(WAIT, DeviceState::Offline).as_deref(),
        Some("paper out")
    );
    let snapshot = r.printer.snapshot();
    assert_eq!(snapshot.state, DeviceState::Offline);
    assert_eq!(snapshot.fault, Some(PrinterFault::PaperOut));
    assert_eq!(snapshot.status.map(|s| s.paper), Some(PaperState::Out));
    // Nothing was sent.
    assert!(r.sim.tickets().is_empty());
    assert_eq!(r.sim.stats().rejected_bytes, 0);

    // While faulted the device looks again by itself: a refill brings it
    // back without a print.
    r.sim.set_state(PrinterState::Ready);
    r.events.state(NOTICE, DeviceState::Online);
    assert_eq!(r.printer.snapshot().fault, None);
    r.printer.print(ticket("A002"), CALL).unwrap();
    let tickets = r.sim.wait_for_tickets(1, WAIT).unwrap();
    assert_eq!(tickets[0].texts()[2], "A002");
}

#[test]
fn paper_near_end_prints_and_warns() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.sim.set_state(PrinterState::PaperNearEnd);
    let printed = r.printer.print(ticket("A003"), CALL).unwrap();
    assert_eq!(printed.warnings, vec![Warning::PaperNearEnd]);
    r.events
        .wait_for(WAIT, "a status with the near-end warning", |e| {
            matches!(e, PrinterEvent::Status { warnings, status, .. }
            if warnings == &[Warning::PaperNearEnd] && status.paper == PaperState::NearEnd)
        });
    assert_eq!(r.sim.wait_for_tickets(1, WAIT).unwrap().len(), 1);
    let snapshot = r.printer.snapshot();
    assert_eq!(snapshot.state, DeviceState::Online);
    assert_eq!(snapshot.warnings, vec![Warning::PaperNearEnd]);
    // Still online: not a fault, and no polling.
    let events = r.events.all_within(Duration::from_millis(1500));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PrinterEvent::State { .. } | PrinterEvent::Fault { .. })),
        "{events:?}"
    );
}

#[test]
fn cover_open_and_cutter_jam_are_faults_the_technician_sees() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.sim.set_state(PrinterState::CoverOpen);
    let err = r.printer.print(ticket("B001"), CALL).unwrap_err();
    assert!(
        matches!(err, EscposError::CoverOpen { sent: false }),
        "{err:?}"
    );
    r.events.fault(WAIT, PrinterFault::CoverOpen);
    r.events.state(WAIT, DeviceState::Offline);

    // Another fault while faulted: reported as a new fault, found by the
    // device's own check.
    r.sim.set_state(PrinterState::CutterError);
    r.events.fault(NOTICE, PrinterFault::CutterError);
    assert_eq!(
        r.events.state(WAIT, DeviceState::HardwareError).as_deref(),
        Some("autocutter error")
    );
    let err = r.printer.print(ticket("B001"), CALL).unwrap_err();
    assert_eq!(err.printer_fault(), Some(PrinterFault::CutterError));
    assert!(r.sim.tickets().is_empty());
}

#[test]
fn unplug_is_no_device_and_a_replug_is_noticed_and_prints() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.sim.unplug().unwrap();
    // Idle unplug: noticed at the next print, which fails at once.
    let err = r.printer.print(ticket("A004"), CALL).unwrap_err();
    assert!(err.is_unplugged(), "{err:?}");
    r.events.state(WAIT, DeviceState::NoDevice);
    assert_eq!(r.printer.snapshot().status, None);

    r.sim.replug().unwrap();
    r.events.wait_for(WAIT, "the status after the replug", |e| {
        matches!(e, PrinterEvent::Status { .. })
    });
    r.events.state(
        REOPEN_BACKOFF_MAX + Duration::from_secs(5),
        DeviceState::Online,
    );
    r.printer.print(ticket("A004"), CALL).unwrap();
    let tickets = r.sim.wait_for_tickets(1, WAIT).unwrap();
    assert_eq!(tickets[0].texts()[2], "A004");
}

#[test]
fn a_printer_absent_at_start_is_found_when_plugged_in() {
    let mut r = rig_with(|sim| sim.unplug().unwrap());
    r.events.state(WAIT, DeviceState::Starting);
    let detail = r.events.state(WAIT, DeviceState::NoDevice).unwrap();
    assert!(detail.contains("by-id"), "{detail}");
    r.sim.replug().unwrap();
    r.events.state(
        REOPEN_BACKOFF_MAX + Duration::from_secs(5),
        DeviceState::Online,
    );
    r.printer.test_page(CALL).unwrap();
    let tickets = r.sim.wait_for_tickets(1, WAIT).unwrap();
    assert_eq!(tickets[0].texts()[0], "打印测试 Test page");
    assert_eq!(tickets[0].texts()[1], "printer ticket");
}

#[test]
fn a_replug_while_idle_just_prints() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.sim.unplug().unwrap();
    r.sim.replug().unwrap();
    // The old port is dead: the print reopens by path and goes through.
    r.printer.print(ticket("A005"), CALL).unwrap();
    assert_eq!(r.sim.wait_for_tickets(1, WAIT).unwrap().len(), 1);
}

#[test]
fn an_unplug_mid_ticket_fails_the_print() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    // The four status requests before the ticket (3 bytes each), then 20
    // bytes of the ticket.
    r.sim.unplug_after(12 + 20);
    let err = r.printer.print(ticket("A006"), CALL).unwrap_err();
    assert!(err.is_unplugged(), "{err:?}");
    r.events.state(WAIT, DeviceState::NoDevice);
    assert!(r.sim.tickets().is_empty());
}

#[test]
fn stop_is_prompt_while_waiting_to_retry() {
    let mut r = rig();
    r.events.state(WAIT, DeviceState::Online);
    r.sim.set_state(PrinterState::Offline);
    let _ = r.printer.status(CALL).unwrap();
    r.events.fault(WAIT, PrinterFault::Offline);
    // The device waits up to FAULT_CHECK_MAX between checks; stop does
    // not wait for that.
    let started = Instant::now();
    let Rig { printer, .. } = r;
    printer.stop();
    assert!(
        started.elapsed() < FAULT_CHECK_MAX / 4,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_absent_printer_fails_requests_at_once_and_a_late_request_is_dropped() {
    let mut r = rig_with(|sim| sim.unplug().unwrap());
    r.events.state(WAIT, DeviceState::NoDevice);
    // Absent: a print says so at once (it tries the path once).
    let started = Instant::now();
    let err = r.printer.print(ticket("A007"), CALL).unwrap_err();
    assert!(err.is_unplugged(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = r.printer.status(CALL).unwrap_err();
    assert!(err.is_unplugged(), "{err:?}");
    // A zero time limit: the request is dropped unrun.
    let err = r.printer.print(ticket("A007"), Duration::ZERO).unwrap_err();
    assert!(
        matches!(err, EscposError::DeviceTimeout { timeout_ms: 0 }),
        "{err:?}"
    );
}
