//! Queue tickets through kioskd to the printer simulator on the transports
//! beside the serial one: a USB printer-class node (a pty standing in for
//! `/dev/usb/lpN`, opened as a file) and a network printer's raw port (a
//! TCP listener on 127.0.0.1). Each runs out of paper, goes away (node
//! gone; listener closed; connection reset) and comes back, and every
//! number comes out exactly once (rule Q4). A USB printer without a back
//! channel prints and says its status is unknown.

use kiosk_proto::{Client, DeviceState};
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig, PrinterState};

use super::harness::{DEADLINE, Kioskd, wait_device};
use super::queue::queue_toml;

const PRINTER: &str = "ticket";

struct Rig {
    // Field order: kioskd stops before the simulator goes.
    kioskd: Kioskd,
    events: Client,
    c: Client,
    printer: PrinterSim,
    _dir: tempfile::TempDir,
}

/// kioskd with the queue, a store and `printer` configured by `table` (the
/// `[printer]` keys after `name`).
async fn rig(dir: tempfile::TempDir, printer: PrinterSim, table: &str) -> Rig {
    kiosk::store::generate_key_file(&dir.path().join("store.key")).expect("store key");
    let toml = format!(
        "{}\n[printer]\nname = \"{PRINTER}\"\nwrite_timeout_ms = 3000\nstatus_timeout_ms = 1000\n{table}",
        queue_toml(dir.path(), None)
    );
    let kioskd = Kioskd::start(&toml);
    let events = kioskd.subscriber().await;
    let c = kioskd.client().await;
    Rig {
        kioskd,
        events,
        c,
        printer,
        _dir: dir,
    }
}

async fn usb_rig(answers_status: bool) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let printer = PrinterSim::start(PrinterSimConfig {
        answers_status,
        ..PrinterSimConfig::usb_lp(dir.path().join("usb/lp0"))
    })
    .expect("printer simulator");
    let table = format!(
        "transport = \"usb\"\npath = \"{}\"\nstatus = {answers_status}\n",
        printer.link().display()
    );
    rig(dir, printer, &table).await
}

async fn tcp_rig() -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let printer = PrinterSim::start(PrinterSimConfig::tcp()).expect("printer simulator");
    let address = printer.address().expect("a TCP printer has an address");
    assert!(address.ip().is_loopback());
    let table =
        format!("transport = \"tcp\"\naddress = \"{address}\"\nconnect_timeout_ms = 2000\n");
    rig(dir, printer, &table).await
}

impl Rig {
    async fn wait(&mut self, state: DeviceState) {
        wait_device(&mut self.events, PRINTER, state).await;
    }

    /// Take a ticket that must print; its number.
    async fn take_printed(&mut self) -> String {
        let t = self.c.queue_take("personal", false).await.expect("take");
        assert!(t.printed, "{} not printed: {:?}", t.number, t.message);
        t.number
    }

    /// Take a ticket that must not print (printer fault); its ticket id
    /// and number.
    async fn take_not_printed(&mut self) -> (String, String) {
        let t = self.c.queue_take("personal", false).await.expect("take");
        assert!(
            !t.printed,
            "{} printed; kioskd's log:\n{}",
            t.number,
            self.kioskd.log()
        );
        assert_eq!(t.message.code, "printer_fault");
        (t.ticket_id, t.number)
    }

    async fn reprint(&mut self, ticket_id: &str, number: &str) {
        let r = self
            .c
            .queue_reprint(Some(ticket_id))
            .await
            .expect("reprint");
        assert_eq!((r.number.as_str(), r.printed), (number, true));
    }

    /// Every ticket the printer cut, by number, once each and in order.
    fn numbers(&self, n: usize) -> Vec<String> {
        self.printer
            .wait_for_tickets(n, DEADLINE)
            .expect("tickets")
            .iter()
            .map(|t| t.texts()[3].to_string())
            .collect()
    }
}

/// Paper out and back, gone and back (unplugged while idle, and in the
/// middle of a ticket), whatever carries the bytes.
async fn paper_out_and_unplug_keep_every_number(mut r: Rig) {
    r.wait(DeviceState::Online).await;
    assert_eq!(r.take_printed().await, "A001");

    // Paper out: nothing sent; the refill is noticed by itself.
    r.printer.set_state(PrinterState::PaperOut);
    let (id, number) = r.take_not_printed().await;
    r.wait(DeviceState::Offline).await;
    let out = r.kioskd.kioskctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("paper out"), "{text}");
    r.printer.set_state(PrinterState::Ready);
    r.wait(DeviceState::Online).await;
    r.reprint(&id, &number).await;

    // Unplugged while idle (node gone; listener and connection closed).
    r.printer.unplug().expect("unplug");
    let (id, number) = r.take_not_printed().await;
    r.wait(DeviceState::NoDevice).await;
    r.printer.replug().expect("replug");
    r.wait(DeviceState::Online).await;
    r.reprint(&id, &number).await;

    // Gone 60 bytes into the ticket: cut short, kept, reprinted.
    r.printer.unplug_after(60);
    let (id, number) = r.take_not_printed().await;
    r.wait(DeviceState::NoDevice).await;
    assert_eq!(r.printer.interrupted().len(), 1, "one ticket cut short");
    r.printer.replug().expect("replug");
    r.wait(DeviceState::Online).await;
    r.reprint(&id, &number).await;

    assert_eq!(r.take_printed().await, "A005");
    assert_eq!(r.numbers(5), ["A001", "A002", "A003", "A004", "A005"]);
    assert!(r.kioskd.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usb_printer_class_tickets_survive_paper_out_and_unplug() {
    paper_out_and_unplug_keep_every_number(usb_rig(true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_9100_tickets_survive_paper_out_and_the_listener_closing() {
    paper_out_and_unplug_keep_every_number(tcp_rig().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_9100_connection_reset_reconnects_and_prints_once() {
    let mut r = tcp_rig().await;
    r.wait(DeviceState::Online).await;
    assert_eq!(r.take_printed().await, "A001");
    // The printer reboots while the kiosk is idle: the next ticket finds
    // the connection reset before sending anything, reconnects and prints.
    r.printer.reset_connection().expect("reset");
    assert_eq!(r.take_printed().await, "A002");
    assert_eq!(r.numbers(2), ["A001", "A002"]);
    assert!(r.printer.interrupted().is_empty());
    assert!(r.kioskd.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usb_printer_without_status_prints_and_status_says_unknown() {
    let mut r = usb_rig(false).await;
    r.wait(DeviceState::Online).await;
    let out = r.kioskd.kioskctl(&["status", "--json"]);
    let st: kiosk_proto::StatusInfo = serde_json::from_slice(&out.stdout).expect("JSON");
    let p = st
        .devices
        .iter()
        .find(|d| d.name == PRINTER)
        .expect("the printer in status");
    assert_eq!(p.state, DeviceState::Online);
    assert!(
        p.detail.as_deref().unwrap_or("").contains("status unknown"),
        "{p:?}"
    );
    assert_eq!(r.take_printed().await, "A001");
    assert_eq!(r.numbers(1), ["A001"]);
    assert_eq!(r.printer.stats().status_queries, 0, "never asked");

    // Gone: the write fails, the number is kept; back: reprinted once.
    r.printer.unplug().expect("unplug");
    let (id, number) = r.take_not_printed().await;
    r.wait(DeviceState::NoDevice).await;
    r.printer.replug().expect("replug");
    r.wait(DeviceState::Online).await;
    r.reprint(&id, &number).await;
    assert_eq!(r.numbers(2), ["A001", "A002"]);
}
