//! The technician's `kioskctl selftest` and `kioskctl status --json`
//! against a running kioskd with the SAM and core-bank simulators and a
//! store: every check passing, and failing correctly (exit 1, a reason
//! naming what failed) with the SAM unplugged or the bank down.

use kiosk_corebank::SigningKey;
use kiosk_proto::{CheckOutcome, DeviceState, Event, SelftestReport, StatusInfo};
use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, FixtureSource};
use kiosk_sim::{SamSim, SamSimConfig};

use super::harness::{DEADLINE, Kioskd, wait_state};

struct Rig {
    _dir: tempfile::TempDir,
    sam: SamSim,
    _bank: CoreBankSim,
    kioskd: Kioskd,
}

fn rig(faults: Faults) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_bytes: [u8; 32] = rand::random();
    std::fs::write(dir.path().join("bank.key"), hex::encode(key_bytes)).expect("bank key");
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
    let toml = format!(
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
request_timeout_ms = 2000
"#,
        link = link.display(),
        db = dir.path().join("kiosk.db").display(),
        key = dir.path().join("store.key").display(),
        url = bank.base_url(),
        bank_key = dir.path().join("bank.key").display(),
    );
    let kioskd = Kioskd::start(&toml);
    Rig {
        _dir: dir,
        sam,
        _bank: bank,
        kioskd,
    }
}

fn selftest(kioskd: &Kioskd) -> (Option<i32>, SelftestReport) {
    let out = kioskd.kioskctl(&["selftest", "--json"]);
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
