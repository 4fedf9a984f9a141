//! The technician's `kioskctl` commands against a running kioskd with the
//! SAM, printer and core-bank simulators and a store: `selftest` with
//! every check passing, and failing correctly (exit 1, a reason naming what
//! failed) with the SAM or the printer unplugged, the bank down, the bank's
//! clock skewed or the database corrupt; `selftest --print-test-page`;
//! `status --json`; `events` showing a card read masked; `queue reprint`.

use kiosk_corebank::SigningKey;
use kiosk_idcard::mask::MaskPolicy;
use kiosk_proto::{CheckOutcome, DeviceState, Event, ReaderInfo, SelftestReport, StatusInfo};
use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, FixtureSource};
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig};
use kiosk_sim::{CardProfile, SamSim, SamSimConfig};

use super::harness::{DEADLINE, Kioskd, printer_toml, wait_device, wait_state};
use super::queue::QUEUE_SERVICES_TOML;

const PRINTER: &str = "ticket";

struct Rig {
    dir: tempfile::TempDir,
    sam: SamSim,
    printer: Option<PrinterSim>,
    _bank: CoreBankSim,
    kioskd: Kioskd,
}

fn rig(faults: Faults) -> Rig {
    rig_with(faults, false)
}

/// `printer`: with the ticket printer simulator and a ticket queue.
fn rig_with(faults: Faults, printer: bool) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_bytes: [u8; 32] = rand::random();
    super::harness::write_secret(&dir.path().join("bank.key"), &hex::encode(key_bytes));
    kiosk::store::generate_key_file(&dir.path().join("store.key")).expect("store key");
    let mut config = CoreBankConfig::new(
        dir.path().join("bank.db"),
        SigningKey::new(key_bytes.to_vec()),
    );
    config.fixtures = FixtureSource::Builtin;
    config.faults = faults;
    let bank = CoreBankSim::start(config).expect("core-bank simulator");
    let link = dir.path().join("by-id").join("usb-sim-sam-if00");
    let sam = SamSim::start(SamSimConfig::new(&link)).expect("SAM simulator");
    let printer = printer.then(|| {
        PrinterSim::start(PrinterSimConfig::new(dir.path().join("by-id/printer0")))
            .expect("printer simulator")
    });
    let mut toml = format!(
        r#"
[[readers]]
name = "swipe"
read_appended_address = true

[readers.sam]
path = "{link}"
poll_interval_ms = 50

[store]
path = "{db}"
key_file = "{key}"

[corebank]
url = "{url}"
key_file = "{bank_key}"
allow_plain_http = true
request_timeout_ms = 10000
"#,
        link = link.display(),
        db = dir.path().join("kiosk.db").display(),
        key = dir.path().join("store.key").display(),
        url = bank.base_url(),
        bank_key = dir.path().join("bank.key").display(),
    );
    if let Some(p) = &printer {
        toml.push_str(&printer_toml(PRINTER, p.link(), 115_200));
        toml.push_str(QUEUE_SERVICES_TOML);
    }
    let kioskd = Kioskd::start(&toml);
    Rig {
        dir,
        sam,
        printer,
        _bank: bank,
        kioskd,
    }
}

impl Rig {
    fn printer(&self) -> &PrinterSim {
        self.printer.as_ref().expect("a rig with a printer")
    }

    /// A subscribed client, once the reader (and the printer) are online.
    async fn ready(&self) -> kiosk_proto::Client {
        let mut events = self.kioskd.subscriber().await;
        wait_state(&mut events, "swipe", DeviceState::Online).await;
        if self.printer.is_some() {
            wait_device(&mut events, PRINTER, DeviceState::Online).await;
        }
        events
    }
}

fn selftest(kioskd: &Kioskd) -> (Option<i32>, SelftestReport) {
    selftest_args(kioskd, &[])
}

/// `kioskctl selftest --json ARGS`: the exit code and the report.
fn selftest_args(kioskd: &Kioskd, args: &[&str]) -> (Option<i32>, SelftestReport) {
    let mut all = vec!["selftest", "--json"];
    all.extend_from_slice(args);
    let out = kioskd.kioskctl(&all);
    let report: SelftestReport = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "selftest JSON: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

fn outcome<'a>(report: &'a SelftestReport, name: &str) -> &'a kiosk_proto::SelftestCheck {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_passes_with_the_simulators_and_status_shows_sam_backlog_and_disk() {
    let r = rig(Faults::none());
    let mut events = r.kioskd.subscriber().await;
    wait_state(&mut events, "swipe", DeviceState::Online).await;

    let (code, report) = selftest(&r.kioskd);
    assert_eq!(code, Some(0), "{report:#?}");
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.failed, 0);
    for name in [
        "reader:swipe",
        "sam:swipe",
        "corebank",
        "database",
        "audit_chain",
    ] {
        assert_eq!(
            outcome(&report, name).outcome,
            CheckOutcome::Pass,
            "{report:#?}"
        );
    }
    assert_eq!(outcome(&report, "printer").outcome, CheckOutcome::Skip);
    // The technician's call is audited.
    let mut c = r.kioskd.client().await;
    assert!(c.audit_verify().await.expect("audit").records >= 1);

    let text = r.kioskd.kioskctl(&["selftest"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("selftest passed"));

    let out = r.kioskd.kioskctl(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: StatusInfo = serde_json::from_slice(&out.stdout).expect("status JSON");
    let reader = status
        .devices
        .iter()
        .find(|d| d.name == "swipe")
        .expect("reader in status");
    assert_eq!(reader.state, DeviceState::Online);
    assert!(
        reader.sam_id.as_deref().is_some_and(|s| !s.is_empty()),
        "{status:#?}"
    );
    assert_eq!(status.sync_backlog, Some(0));
    assert!(status.disk_free_bytes.is_some_and(|b| b > 0), "{status:#?}");
    assert!(status.disk_total_bytes >= status.disk_free_bytes);
    assert_eq!(status.kiosk_id, "K-TEST-01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_fails_naming_the_reader_when_the_sam_is_unplugged() {
    let r = rig(Faults::none());
    let mut events = r.kioskd.subscriber().await;
    wait_state(&mut events, "swipe", DeviceState::Online).await;
    r.sam.unplug().expect("unplug");
    events
        .wait_event(DEADLINE, |e| match e {
            Event::DeviceState {
                device,
                state: DeviceState::NoDevice | DeviceState::Offline,
                ..
            } if device == "swipe" => Some(()),
            _ => None,
        })
        .await
        .expect("the reader goes offline");

    let (code, report) = selftest(&r.kioskd);
    assert_eq!(code, Some(1), "{report:#?}");
    assert!(!report.ok);
    let reader = outcome(&report, "reader:swipe");
    assert_eq!(reader.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(reader.reason.contains("swipe"), "{}", reader.reason);
    // The rest still ran.
    assert_eq!(outcome(&report, "database").outcome, CheckOutcome::Pass);
    assert_eq!(outcome(&report, "corebank").outcome, CheckOutcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_fails_when_the_core_bank_is_down() {
    let r = rig(Faults {
        down: true,
        ..Faults::none()
    });
    let mut events = r.kioskd.subscriber().await;
    wait_state(&mut events, "swipe", DeviceState::Online).await;

    let (code, report) = selftest(&r.kioskd);
    assert_eq!(code, Some(1), "{report:#?}");
    let bank = outcome(&report, "corebank");
    assert_eq!(bank.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(bank.reason.contains("core bank"), "{}", bank.reason);
    assert_eq!(outcome(&report, "reader:swipe").outcome, CheckOutcome::Pass);
    assert_eq!(outcome(&report, "audit_chain").outcome, CheckOutcome::Pass);
    let text = r.kioskd.kioskctl(&["selftest"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stdout).contains("FAILED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_fails_naming_the_clock_skew_with_the_core_bank() {
    // Two minutes: beyond kioskd's limit (max_clock_skew_ms, 60 s), within
    // the 300 s the bank accepts on signatures.
    let r = rig(Faults {
        clock_skew_ms: 120_000,
        ..Faults::none()
    });
    let _events = r.ready().await;

    let (code, report) = selftest(&r.kioskd);
    assert_eq!(code, Some(1), "{report:#?}");
    let bank = outcome(&report, "corebank");
    assert_eq!(bank.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(
        bank.reason.contains("clock skew") && bank.reason.contains("exceeds the limit"),
        "{}",
        bank.reason
    );
    assert_eq!(outcome(&report, "reader:swipe").outcome, CheckOutcome::Pass);
    assert_eq!(outcome(&report, "database").outcome, CheckOutcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_checks_the_printer_prints_a_test_page_and_fails_when_it_is_unplugged() {
    let r = rig_with(Faults::none(), true);
    let _events = r.ready().await;
    let printer_check = format!("printer:{PRINTER}");
    let page_check = format!("test_page:{PRINTER}");

    let (code, report) = selftest(&r.kioskd);
    assert_eq!(code, Some(0), "{report:#?}");
    let p = outcome(&report, &printer_check);
    assert_eq!(p.outcome, CheckOutcome::Pass, "{report:#?}");
    assert!(p.reason.contains(PRINTER), "{}", p.reason);
    assert_eq!(outcome(&report, &page_check).outcome, CheckOutcome::Skip);
    assert!(r.printer().tickets().is_empty(), "nothing printed unasked");

    // The test page: what the printer received, decoded.
    let (code, report) = selftest_args(&r.kioskd, &["--print-test-page"]);
    assert_eq!(code, Some(0), "{report:#?}");
    assert_eq!(
        outcome(&report, &page_check).outcome,
        CheckOutcome::Pass,
        "{report:#?}"
    );
    let pages = r
        .printer()
        .wait_for_tickets(1, DEADLINE)
        .expect("test page");
    assert_eq!(pages.len(), 1);
    let texts = pages[0].texts();
    assert_eq!(texts[0], "打印测试 Test page", "{texts:?}");
    assert!(
        texts.contains(&format!("printer {PRINTER}").as_str()),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("115200 baud")),
        "{texts:?}"
    );
    assert!(texts.contains(&"中文 ABC abc 0123456789"), "{texts:?}");
    assert_eq!(pages[0].qr, vec!["kiosk-escpos test page".to_string()]);

    // Unplugged: the printer check fails naming the printer, and no test
    // page is attempted.
    // (The selftest asks the printer itself, not what was last reported.)
    r.printer().unplug().expect("unplug");
    let (code, report) = selftest_args(&r.kioskd, &["--print-test-page"]);
    assert_eq!(code, Some(1), "{report:#?}");
    assert!(!report.ok);
    let p = outcome(&report, &printer_check);
    assert_eq!(p.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(p.reason.contains(PRINTER), "{}", p.reason);
    let page = outcome(&report, &page_check);
    assert_eq!(page.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(page.reason.contains("cannot print"), "{}", page.reason);
    assert_eq!(outcome(&report, "reader:swipe").outcome, CheckOutcome::Pass);
    let text = r.kioskd.kioskctl(&["selftest"]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("FAILED") && text.contains(PRINTER), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kioskctl_queue_reprint_prints_the_same_number_again() {
    let r = rig_with(Faults::none(), true);
    let mut c = r.ready().await;
    let t = c.queue_take("personal", false).await.expect("take");
    assert!(t.printed, "{t:?}");
    let first = r.printer().wait_for_tickets(1, DEADLINE).expect("ticket");
    assert_eq!(first[0].texts()[3], t.number);

    let out = r.kioskd.kioskctl(&["queue", "reprint"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&t.number), "{text}");
    let both = r.printer().wait_for_tickets(2, DEADLINE).expect("reprint");
    assert_eq!(both[1].texts()[3], t.number, "{:?}", both[1].texts());
    assert_eq!(both[1].qr, vec![t.ticket_id.clone()]);
    assert!(
        both[1].texts().iter().any(|l| l.ends_with("补打 Reprint")),
        "{:?}",
        both[1].texts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kioskctl_events_shows_a_card_read_masked() {
    let r = rig(Faults::none());
    let _events = r.ready().await;
    let mut live = r.kioskd.kioskctl_events(&[]);
    let card = CardProfile::builtin("resident").expect("profile");
    let policy = MaskPolicy::default();
    r.sam.place(card.clone());
    let line = live.line_matching(|l| l.contains("card read on swipe"));
    assert!(
        line.contains(&policy.id_number(&card.identity.number)),
        "{line}"
    );
    assert!(line.contains(&policy.name(&card.identity.name)), "{line}");
    let all = live.stop();
    assert!(
        !all.contains(&card.identity.number),
        "full ID number shown: {all}"
    );
    assert!(!all.contains(&card.identity.name), "full name shown: {all}");

    // kioskctl readers: the read counted, the card still on the reader.
    let out = r.kioskd.kioskctl(&["readers", "--json"]);
    assert!(out.status.success());
    let readers: Vec<ReaderInfo> = serde_json::from_slice(&out.stdout).expect("readers JSON");
    assert_eq!(readers.len(), 1, "{readers:?}");
    let swipe = &readers[0];
    assert_eq!(
        (
            swipe.name.as_str(),
            swipe.state,
            swipe.attached,
            swipe.card_present
        ),
        ("swipe", DeviceState::Online, true, true),
        "{swipe:?}"
    );
    assert_eq!((swipe.reads_ok, swipe.reads_failed), (1, 0));
    assert!(swipe.sam_id.is_some(), "{swipe:?}");
    let out = r.kioskd.kioskctl(&["readers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("swipe") && text.contains("card:yes") && text.contains("1/0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_fails_naming_the_devices_missing_when_kioskd_starts() {
    let mut r = rig_with(Faults::none(), true);
    drop(r.ready().await);
    r.kioskd.kill();
    r.sam.unplug().expect("unplug the SAM");
    r.printer().unplug().expect("unplug the printer");
    r.kioskd.start_again();

    let (code, report) = selftest(&r.kioskd);
    assert_eq!(code, Some(1), "{report:#?}");
    let reader = outcome(&report, "reader:swipe");
    assert_eq!(reader.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(reader.reason.contains("swipe"), "{}", reader.reason);
    let printer = outcome(&report, &format!("printer:{PRINTER}"));
    assert_eq!(printer.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(printer.reason.contains(PRINTER), "{}", printer.reason);
    let sam = outcome(&report, "sam:swipe");
    assert_eq!(sam.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(sam.reason.contains("swipe"), "{}", sam.reason);
    assert_eq!(report.failed, 3, "{report:#?}");
    assert_eq!(outcome(&report, "corebank").outcome, CheckOutcome::Pass);
    assert_eq!(outcome(&report, "database").outcome, CheckOutcome::Pass);
    assert_eq!(outcome(&report, "audit_chain").outcome, CheckOutcome::Pass);
}

/// Flip the last byte of index `index`'s root page in the SQLite file `db`
/// (no process has it open): the last byte of a record of a small index
/// (one leaf page), so the file stays readable but the index no longer
/// matches its table.
fn corrupt_index(db: &std::path::Path, index: &str) {
    let conn = rusqlite::Connection::open(db).expect("open the store");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let root: u64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND name = ?1",
            [index],
            |r| r.get(0),
        )
        .expect("the index");
    drop(conn);
    let mut bytes = std::fs::read(db).expect("read the store");
    let start = usize::try_from((root - 1) * page_size).expect("offset");
    let end = usize::try_from(root * page_size).expect("offset");
    assert_eq!(bytes[start], 0x0a, "{index} is one leaf page");
    bytes[end - 1] ^= 0x01;
    std::fs::write(db, bytes).expect("write the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_fails_on_a_corrupt_database_index() {
    let mut r = rig_with(Faults::none(), true);
    let mut c = r.ready().await;
    for _ in 0..3 {
        c.queue_take("personal", false).await.expect("take");
    }
    drop(c);
    r.kioskd.kill();
    corrupt_index(&r.dir.path().join("kiosk.db"), "ticket_waiting");
    r.kioskd.start_again();
    let _events = r.ready().await;

    let (code, report) = selftest(&r.kioskd);
    assert_eq!(code, Some(1), "{report:#?}");
    let db = outcome(&report, "database");
    assert_eq!(db.outcome, CheckOutcome::Fail, "{report:#?}");
    assert!(
        db.reason.starts_with("integrity_check: ") && db.reason.contains("ticket_waiting"),
        "{}",
        db.reason
    );
    assert_eq!(outcome(&report, "reader:swipe").outcome, CheckOutcome::Pass);
}
