//! The device loop over the other transports: a network printer on TCP
//! (the simulator listening on 127.0.0.1) and a USB printer-class node
//! (a pty standing in for `/dev/usb/lpN`, opened as a file), each
//! printing, refusing to print without paper, going away and coming
//! back; and a unidirectional printer without status.
//!
//! Waiting is on the event channel and the simulator's condition variable,
//! each with a deadline; no test sleeps to synchronise.

use std::sync::mpsc;
use std::time::Duration;

use kiosk_escpos::device::STATUS_UNKNOWN;
use kiosk_escpos::{
    DeviceState, EscposError, Printer, PrinterConfig, PrinterDevice, PrinterFault, PrinterHandle,
};
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig, PrinterState};

use crate::device::{Events, init_logs, ticket};

const CALL: Duration = Duration::from_secs(10);
/// The longest backoff plus a status exchange and slack.
const NOTICE: Duration = Duration::from_secs(15);
const WAIT: Duration = Duration::from_secs(5);

struct Rig {
    // Field order: the device stops before the simulator goes.
    printer: PrinterHandle,
    events: Events,
    sim: PrinterSim,
    _dir: tempfile::TempDir,
}

fn spawn(sim: PrinterSim, mut config: PrinterConfig, dir: tempfile::TempDir) -> Rig {
    config.status_timeout_ms = 2000;
    let (tx, rx) = mpsc::channel();
    let printer = PrinterDevice::spawn("ticket".into(), config, tx).unwrap();
    Rig {
        printer,
        events: Events::new(rx),
        sim,
        _dir: dir,
    }
}

fn tcp_rig() -> Rig {
    init_logs();
    let sim = PrinterSim::start(PrinterSimConfig::tcp()).unwrap();
    let address = sim.address().expect("a TCP printer has an address");
    assert!(address.ip().is_loopback());
    let config = PrinterConfig::tcp(address.to_string());
    spawn(sim, config, tempfile::tempdir().unwrap())
}

fn usb_rig(answers_status: bool) -> Rig {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let sim = PrinterSim::start(PrinterSimConfig {
        answers_status,
        ..PrinterSimConfig::usb_lp(dir.path().join("usb/lp0"))
    })
    .unwrap();
    let mut config = PrinterConfig::usb(sim.link());
    config.status = answers_status;
    spawn(sim, config, dir)
}

/// Print, paper out and back, unplug and back, print again: the same
/// story whatever carries the bytes.
fn prints_faults_goes_and_comes_back(mut r: Rig) {
    r.events.state(WAIT, DeviceState::Online);
    let printed = r.printer.print(ticket("A001"), CALL).unwrap();
    assert!(printed.status_known);
    let tickets = r.sim.wait_for_tickets(1, WAIT).unwrap();
    assert_eq!(tickets[0].texts()[2], "A001");

    // No paper: nothing is sent, and the refill is noticed by itself.
    r.sim.set_state(PrinterState::PaperOut);
    let err = r.printer.print(ticket("A002"), CALL).unwrap_err();
    assert!(
        matches!(err, EscposError::PaperOut { sent: false }),
        "{err}"
    );
    r.events.fault(WAIT, PrinterFault::PaperOut);
    r.events.state(WAIT, DeviceState::Offline);
    assert_eq!(r.sim.stats().rejected_bytes, 0, "nothing sent");
    r.sim.set_state(PrinterState::Ready);
    r.events.state(NOTICE, DeviceState::Online);

    // Gone: the print fails as unplugged, the device says so, and finds
    // the printer again by itself once it is back.
    r.sim.unplug().unwrap();
    let err = r.printer.print(ticket("A003"), CALL).unwrap_err();
    assert!(err.is_unplugged(), "{err}");
    r.events.state(WAIT, DeviceState::NoDevice);
    r.sim.replug().unwrap();
    r.events.state(NOTICE, DeviceState::Online);
    r.printer.print(ticket("A004"), CALL).unwrap();
    let tickets = r.sim.wait_for_tickets(2, WAIT).unwrap();
    assert_eq!(tickets[1].texts()[2], "A004");
    assert_eq!(tickets.len(), 2, "A002 and A003 never printed");
    r.printer.stop();
}

#[test]
fn tcp_printer_prints_refuses_without_paper_and_reconnects_after_the_peer_goes() {
    prints_faults_goes_and_comes_back(tcp_rig());
}

#[test]
fn usb_printer_class_node_prints_refuses_without_paper_and_reopens_after_replug() {
    prints_faults_goes_and_comes_back(usb_rig(true));
}

#[test]
fn tcp_peer_closing_mid_ticket_is_an_unplug_with_the_ticket_unknown() {
    let mut r = tcp_rig();
    r.events.state(WAIT, DeviceState::Online);
    // The connection closes 100 bytes into the ticket (the four status
    // requests before it are 12 bytes).
    r.sim.unplug_after(12 + 100);
    let err = r.printer.print(ticket("A001"), CALL).unwrap_err();
    assert!(err.is_unplugged(), "{err}");
    r.events.state(WAIT, DeviceState::NoDevice);
    assert_eq!(r.sim.interrupted().len(), 1);
    assert!(r.sim.tickets().is_empty());
    r.sim.replug().unwrap();
    r.events.state(NOTICE, DeviceState::Online);
    r.printer.print(ticket("A001"), CALL).unwrap();
    r.sim.wait_for_tickets(1, WAIT).unwrap();
    r.printer.stop();
}

#[test]
fn a_usb_printer_without_status_prints_blind_and_says_its_status_is_unknown() {
    let mut r = usb_rig(false);
    let detail = r.events.state(WAIT, DeviceState::Online);
    assert_eq!(detail.as_deref(), Some(STATUS_UNKNOWN));

    let printed = r.printer.print(ticket("A001"), CALL).unwrap();
    assert!(!printed.status_known);
    let tickets = r.sim.wait_for_tickets(1, WAIT).unwrap();
    assert_eq!(tickets[0].texts()[2], "A001");
    assert_eq!(r.sim.stats().status_queries, 0, "never asked");
    let err = r.printer.status(CALL).unwrap_err();
    assert!(matches!(err, EscposError::NoStatus), "{err}");
    let snapshot = r.printer.snapshot();
    assert_eq!(snapshot.state, DeviceState::Online);
    assert_eq!(snapshot.status, None);
    assert_eq!(snapshot.fault, None);

    // Without status, a node that went away shows when written to.
    r.sim.unplug().unwrap();
    let err = r.printer.print(ticket("A002"), CALL).unwrap_err();
    assert!(err.is_unplugged(), "{err}");
    r.events.state(WAIT, DeviceState::NoDevice);
    r.sim.replug().unwrap();
    let detail = r.events.state(NOTICE, DeviceState::Online);
    assert_eq!(detail.as_deref(), Some(STATUS_UNKNOWN));
    r.printer.print(ticket("A003"), CALL).unwrap();
    let tickets = r.sim.wait_for_tickets(2, WAIT).unwrap();
    assert_eq!(tickets[1].texts()[2], "A003");
    r.printer.stop();
}

/// A serial printer behind a USB-serial adapter (FTDI-like: it holds each
/// short answer, such as a status byte, for its latency timer, 16 ms by
/// default): the printer asks for the lowest latency when it opens the
/// port, so the emulated adapter's timer goes to 1 ms; with `low_latency =
/// false` it is left at 16. Replugged, the new adapter is asked again.
#[test]
fn the_printers_usb_serial_adapter_is_asked_for_low_latency() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let sysfs = dir.path().join("sys");
    let link = dir.path().join("serial/by-id/usb-FTDI_FT232R-if00-port0");
    let sim = PrinterSim::start(PrinterSimConfig {
        adapter_sysfs: Some(sysfs.clone()),
        ..PrinterSimConfig::new(&link)
    })
    .unwrap();
    let timer = || {
        let pty = sim.pty_path().expect("plugged in");
        let file = kiosk_sim::adapter_timer_file(&sysfs, &pty).expect("timer file");
        std::fs::read_to_string(file)
            .expect("timer")
            .trim()
            .to_string()
    };
    let config = PrinterConfig {
        baud: sim.baud(),
        sysfs: sysfs.clone(),
        ..PrinterConfig::new(&link)
    };
    assert_eq!(timer(), "16");
    let mut left = Printer::new(PrinterConfig {
        low_latency: false,
        ..config.clone()
    })
    .unwrap();
    assert_eq!(left.reopen().unwrap().fault(), None);
    drop(left);
    assert_eq!(timer(), "16");
    let mut printer = Printer::new(config).unwrap();
    assert_eq!(printer.reopen().unwrap().fault(), None);
    assert_eq!(timer(), "1");
    // A new adapter after a replug starts at 16 again and is lowered.
    sim.unplug().unwrap();
    sim.replug().unwrap();
    assert_eq!(timer(), "16");
    assert_eq!(printer.reopen().unwrap().fault(), None);
    assert_eq!(timer(), "1");
}
