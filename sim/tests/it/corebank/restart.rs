//! State survives a restart of the simulator on the same file; the
//! `kiosk-sim corebank` command serves the same thing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults};
use serde_json::json;

use super::*;

#[test]
fn state_survives_a_restart_on_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("corebank.sqlite");
    let start = || CoreBankSim::start(CoreBankConfig::new(&db, key())).unwrap();

    let sim = start();
    let c = Client::new(&sim.base_url());
    let id = new_id();
    let body = resident_change(&id);
    let first = c.change(&body);
    assert_eq!(first.status, 201);
    c.post(
        "/v1/customers/C000004/security-answer",
        &json!({"answer": "错"}),
    );
    let replayed = Signing {
        nonce: Some(new_id()),
        timestamp_ms: Some(now_ms()),
        ..Signing::default()
    };
    assert_eq!(
        c.send("GET", "/v1/changes/none", b"", &replayed, &[])
            .unwrap()
            .status,
        404
    );
    sim.stop();

    let sim = start();
    let c = Client::new(&sim.base_url());
    // The change, its answer and its count are still there.
    assert_eq!(sim.applied_count(&id), 1);
    let r = c.change(&body);
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(r.body, first.body);
    assert_eq!(sim.applied_count(&id), 1);
    assert_eq!(
        sim.customer("C000001").unwrap().record.valid_until,
        "2040-03-07"
    );
    // So are the security failures and the nonces seen.
    assert_eq!(sim.customer("C000004").unwrap().security_failures, 1);
    c.send("GET", "/v1/changes/none", b"", &replayed, &[])
        .unwrap()
        .assert_error(401, "bad_signature");
    drop(sim);
}

#[test]
fn the_same_port_can_be_reused_after_a_stop() {
    let t = TestSim::start();
    let addr = t.sim.addr();
    let db = t.dir.path().join("corebank.sqlite");
    let TestSim { sim, dir } = t;
    sim.stop();
    let mut config = CoreBankConfig::new(&db, key());
    config.listen = addr;
    let sim = CoreBankSim::start(config).unwrap();
    assert_eq!(Client::new(&sim.base_url()).get("/v1/health").status, 200);
    drop(dir);
}

#[test]
fn only_loopback_addresses_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = CoreBankConfig::new(dir.path().join("db"), key());
    config.listen = "0.0.0.0:0".parse().unwrap();
    assert!(CoreBankSim::start(config).is_err());
}

#[test]
fn the_corebank_command_serves_and_is_controlled() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, hex::encode(b"corebank-sim-test-key-0123456789")).unwrap();
    let exe = env!("CARGO_BIN_EXE_kiosk-sim");
    let mut child = Command::new(exe)
        .args([
            "corebank",
            "--listen",
            "127.0.0.1:0",
            "--synthetic",
            "10",
            "--faults",
        ])
        .arg(r#"{"retry_after_s":2}"#)
        .arg("--db")
        .arg(dir.path().join("cb.sqlite"))
        .arg("--key-file")
        .arg(&key_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");

    let c = Client::new(&url);
    assert_eq!(c.change(&resident_change(&new_id())).status, 201);
    let ctl = |args: &[&str]| {
        let out = Command::new(exe)
            .args(["corebank-ctl", "--url", &url])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(ctl(&["stats"])["applied_total"], 1);
    assert_eq!(
        ctl(&["customer", "S000010"])["record"]["customer_id"],
        "S000010"
    );
    assert_eq!(ctl(&["faults"])["retry_after_s"], 2);
    let out = Command::new(exe)
        .args(["corebank-faults", "--url", &url, r#"{"rate_limit_rate":1}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    c.get("/v1/health").assert_error(429, "rate_limited");
    assert_eq!(
        serde_json::from_value::<Faults>(ctl(&["faults"]))
            .unwrap()
            .rate_limit_rate,
        1.0
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}
