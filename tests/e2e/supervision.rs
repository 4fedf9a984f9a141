//! kioskd under a service manager: `READY=1`, then `STATUS=` lines and
//! `WATCHDOG=1` pings every half `WATCHDOG_USEC` while its device and sync
//! tasks run, and `STOPPING=1` on SIGTERM (sd_notify protocol, as systemd
//! runs it with `Type=notify` and `WatchdogSec=`).

use kiosk_sim::{SamSim, SamSimConfig};

use super::harness::Kioskd;

#[test]
fn kioskd_pings_the_watchdog_with_a_status_line_and_says_when_it_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("by-id").join("usb-sim-sam-if00");
    let _sam = SamSim::start(SamSimConfig::new(&link)).expect("SAM simulator");
    kiosk::store::generate_key_file(&dir.path().join("store.key")).expect("store key");
    let toml = format!(
        r#"
[[readers]]
name = "desk"
read_appended_address = true

[readers.sam]
path = "{}"
poll_interval_ms = 50

[store]
path = "{}"
key_file = "{}"
"#,
        link.display(),
        dir.path().join("kiosk.db").display(),
        dir.path().join("store.key").display(),
    );
    // 200 ms: a ping every 100 ms.
    let env = [("WATCHDOG_USEC".to_string(), "200000".to_string())];
    let mut kioskd = Kioskd::start_env(&toml, &env);
    let mut pings = 0;
    let online = loop {
        let message = kioskd.next_notification();
        let lines: Vec<&str> = message.lines().collect();
        let status = lines
            .iter()
            .find_map(|l| l.strip_prefix("STATUS="))
            .unwrap_or_else(|| panic!("no STATUS= line in {message:?}"));
        assert!(
            lines.contains(&"WATCHDOG=1"),
            "every report pings while all tasks run: {message:?}"
        );
        pings += 1;
        if status == "1 of 1 readers online, backlog 0" {
            break status.to_string();
        }
        assert!(
            status.starts_with("0 of 1 readers online"),
            "unexpected status {status:?}"
        );
    };
    assert!(pings >= 1, "{online}");
    let exit = kioskd.terminate();
    assert!(exit.success(), "{exit:?}\n{}", kioskd.log());
    let rest: Vec<String> = std::iter::from_fn(|| {
        let m = kioskd.next_notification_now()?;
        Some(m)
    })
    .collect();
    assert!(
        rest.iter().any(|m| m.contains("STOPPING=1")),
        "no STOPPING=1 after SIGTERM: {rest:?}"
    );
}

/// A SIGTERM as soon as kioskd says READY=1 stops it gracefully (exit 0,
/// STOPPING=1): the signal handlers are in place before the readiness.
/// (They were installed by a task that could run after READY=1, and a
/// SIGTERM in between killed kioskd.) Ten starts make the old race show.
#[test]
fn sigterm_right_after_ready_stops_kioskd_gracefully() {
    for _ in 0..10 {
        let mut kioskd = Kioskd::start("");
        let exit = kioskd.terminate();
        assert!(exit.success(), "{exit:?}\n{}", kioskd.log());
        assert!(kioskd.log().contains("kioskd stopped"), "{}", kioskd.log());
    }
}
