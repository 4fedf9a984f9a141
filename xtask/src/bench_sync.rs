//! Durability and sync figures for `cargo xtask bench`:
//!
//! * commit rate of confirmed changes through kioskd's local API (each
//!   durable in SQLite, WAL, `synchronous=FULL`, before the answer), as a
//!   ratio to the raw fsync rate of the same disk measured in the same run;
//! * time to drain a backlog of 10,000 changes to the core-bank simulator
//!   over loopback;
//! * latency from commit to the bank's acknowledgement (median, p99).

use std::fmt::Write as _;
use std::io::{Seek, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kiosk_proto::{Client, Event, SubmitChangeParams};
use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, fixtures};

use crate::bench_tools::{config, stats, subscribed};
use crate::processes::{Guard, start_kioskd, write_random_hex_key};

const FSYNC_SAMPLES: usize = 300;
const COMMITS: usize = 1000;
const BACKLOG: usize = 10_000;
const ACK_SAMPLES: usize = 300;

pub struct Durability {
    fsyncs_per_s: f64,
    commits_per_s: f64,
    drain: Duration,
    ack: Vec<Duration>,
}

/// Write 4 KiB and `fdatasync`, over and over: the disk's own limit.
fn raw_fsync_rate(dir: &Path) -> Result<f64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.join("fsync.bin"))?;
    let block = [0x5Au8; 4096];
    let start = Instant::now();
    for _ in 0..FSYNC_SAMPLES {
        f.rewind()?;
        f.write_all(&block)?;
        f.sync_data()?;
    }
    Ok(FSYNC_SAMPLES as f64 / start.elapsed().as_secs_f64())
}

fn change(i: usize) -> SubmitChangeParams {
    let c = fixtures::synthetic_customer(i);
    SubmitChangeParams {
        customer_id: c.customer_id,
        change: serde_json::json!({
            "kind": "id_validity",
            "id_validity": {
                "id_type": "resident", "id_number": c.id_number,
                "valid_from": "2025-01-01", "valid_until": "2045-01-01",
                "issuer": c.issuer,
                "card_evidence": {"sam_id": "05.01-20101216-0011223344-1234567890", "card_uid": "5A01000000000001"}
            }
        }),
    }
}

fn store_toml(dir: &Path, bank_url: Option<&str>) -> String {
    let mut s = format!(
        "[store]\npath = \"{}\"\nkey_file = \"{}\"\n\n[sync]\nbackoff_min_ms = 10\nbackoff_max_ms = 1000\n",
        dir.join("kiosk.db").display(),
        dir.join("store.key").display()
    );
    if let Some(url) = bank_url {
        let _ = write!(
            s,
            "\n[corebank]\nurl = \"{url}\"\nkey_file = \"{}\"\nallow_plain_http = true\n",
            dir.join("bank.key").display()
        );
    }
    s
}

async fn wait_delivered(c: &mut Client, n: usize) -> Result<()> {
    let mut seen = 0;
    while seen < n {
        c.wait_event(Duration::from_secs(120), |e| {
            matches!(e, Event::ChangeDelivered { .. }).then_some(())
        })
        .await
        .context("waiting for deliveries")?;
        seen += 1;
    }
    Ok(())
}

pub async fn measure() -> Result<Durability> {
    let dir = tempfile::tempdir_in(crate::processes::target_dir())?;
    let fsyncs_per_s = raw_fsync_rate(dir.path())?;
    let status = std::process::Command::new(crate::processes::bin("kioskd", true))
        .arg("--generate-store-key")
        .arg(dir.path().join("store.key"))
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "cannot create a store key");
    write_random_hex_key(&dir.path().join("bank.key"))?;
    let key = std::fs::read_to_string(dir.path().join("bank.key"))?;
    let key = kiosk_corebank::SigningKey::from_file_contents(key.as_bytes());

    // 1. Commits without a core bank: the backlog for step 2.
    let cfg = config(dir.path(), &store_toml(dir.path(), None))?;
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = Client::connect(dir.path().join("kioskd.sock")).await?;
    let start = Instant::now();
    for i in 0..COMMITS {
        c.submit_change(change(i)).await?;
    }
    let commits_per_s = COMMITS as f64 / start.elapsed().as_secs_f64();
    for i in COMMITS..BACKLOG {
        c.submit_change(change(i)).await?;
    }
    drop(c);
    drop(guard);

    // 2. The same kiosk, now with the core bank: drain 10,000.
    let mut bank_config = CoreBankConfig::new(dir.path().join("bank.db"), key);
    bank_config.synthetic = BACKLOG + ACK_SAMPLES;
    bank_config.faults = Faults::none();
    let bank = CoreBankSim::start(bank_config)?;
    std::fs::remove_file(dir.path().join("notify.sock")).ok();
    let cfg = config(dir.path(), &store_toml(dir.path(), Some(&bank.base_url())))?;
    let start = Instant::now();
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let _guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = subscribed(dir.path()).await?;
    // Count delivery events (cheap) rather than asking for the status
    // after each one (a scan of the outbox); confirm with the status.
    let mut left = c.sync_status().await?.backlog;
    while left > 0 {
        wait_delivered(&mut c, left as usize).await?;
        left = c.sync_status().await?.backlog;
    }
    let drain = start.elapsed();
    anyhow::ensure!(
        bank.stats().applied_total as usize >= BACKLOG,
        "not every change was applied"
    );

    // 3. Commit → acknowledgement, one change at a time.
    let mut ack = Vec::new();
    for i in BACKLOG..BACKLOG + ACK_SAMPLES {
        let done = c.submit_change(change(i)).await?;
        let committed = Instant::now();
        let id = done.change_id.clone();
        c.wait_event(Duration::from_secs(60), |e| match e {
            Event::ChangeDelivered { change_id, .. } if *change_id == id => Some(()),
            _ => None,
        })
        .await?;
        ack.push(committed.elapsed());
    }
    Ok(Durability {
        fsyncs_per_s,
        commits_per_s,
        drain,
        ack,
    })
}

pub fn report(d: &Durability) -> String {
    let mut ms: Vec<f64> = d.ack.iter().map(|x| x.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let p99 = ms[(ms.len() * 99 / 100).min(ms.len() - 1)];
    let (median, _, mean) = stats(&d.ack);
    let mut s = String::new();
    let _ = writeln!(s, "\n## Durable changes and sync to the core bank\n");
    let _ = writeln!(
        s,
        "The disk under the target directory, in the same run: 4 KiB write + `fdatasync`, {FSYNC_SAMPLES} times: \
         **{:.0} fsyncs/s** (the physical limit for durable commits).\n",
        d.fsyncs_per_s
    );
    let _ = writeln!(s, "| figure | value | ratio |");
    let _ = writeln!(s, "|---|---|---|");
    let _ = writeln!(
        s,
        "| confirmed changes committed through kioskd's local API, one client, one at a time (each durable: outbox + audit in one transaction, WAL, `synchronous=FULL`) | {:.0} changes/s | **{:.2}** of the raw fsync rate |",
        d.commits_per_s,
        d.commits_per_s / d.fsyncs_per_s
    );
    let _ = writeln!(
        s,
        "| drain a backlog of {BACKLOG} changes to the core-bank simulator over loopback (from kioskd's start) | {:.1} s | {:.0} changes/s |",
        d.drain.as_secs_f64(),
        BACKLOG as f64 / d.drain.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| commit → the bank's acknowledgement, {ACK_SAMPLES} changes one at a time | median {median:.1} ms, p99 {p99:.1} ms, mean {mean:.1} ms | |"
    );
    let _ = writeln!(
        s,
        "\nThe simulator commits each change to its own SQLite file, so a delivery costs a durable write on \
         both sides of the loopback link; both run on the same two cores."
    );
    s
}
