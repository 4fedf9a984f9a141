//! Fault injection (issue 8): one test per fault. Each injects its fault a
//! number of times, then shows the kiosk serving again (a card read, a
//! ticket, a change delivered) and counts the changes and tickets lost or
//! recorded twice, which must be zero.
//!
//! The size of every scenario is multiplied by `KIOSK_SOAK_SCALE` (1 when
//! unset: the bounded run of `cargo test` and `cargo xtask test`;
//! `cargo xtask soak` runs them larger). Each test prints one JSON line
//! (`fault`, `injected`, `lost`, `duplicated`, `recover_ms`) and appends it
//! to the file named by `KIOSK_FAULT_REPORT`, if set, before asserting.
//! `recover_ms` holds, per injection, the time from the end of the fault
//! to the kiosk serving again: measured and reported, never asserted.
//!
//! The only sleeps hold a fault for its duration (the bank down, the
//! unplug landing some milliseconds into a read); everything else waits for
//! kioskd's events and states.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiosk_proto::{ClientError, DeviceState, ErrorCode, Event, SessionInput};
use kiosk_sim::corebank::Faults;
use kiosk_sim::{CardProfile, Pcscd, ViccConfig, VirtualCard};

use super::flows::{DEFAULT_SESSION, Kiosk, READER, kiosk_full, resident};
use super::harness::{DEADLINE, Kioskd, Lcg, next_read, wait_absent, wait_state};
use super::{queue, sync};

/// `KIOSK_SOAK_SCALE`: 1 (bounded) when unset.
pub(crate) fn scale() -> u64 {
    match std::env::var("KIOSK_SOAK_SCALE") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| panic!("KIOSK_SOAK_SCALE must be a positive integer, not {v:?}")),
        Err(_) => 1,
    }
}

/// What one scenario measured.
struct Outcome {
    fault: &'static str,
    /// How many times the fault was injected.
    injected: u64,
    /// Changes or tickets acknowledged and then lost (for the reader
    /// faults: card placements never read once the reader was back).
    lost: u64,
    /// Changes applied or recorded twice, ticket numbers issued or printed
    /// twice.
    duplicated: u64,
    /// Per injection: from the end of the fault to serving again.
    recover: Vec<Duration>,
}

impl Outcome {
    /// Report (stdout and `KIOSK_FAULT_REPORT`), then assert.
    fn finish(self) {
        let recover_ms: Vec<u64> = self
            .recover
            .iter()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .collect();
        let line = serde_json::json!({
            "fault": self.fault,
            "scale": scale(),
            "injected": self.injected,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "recover_ms": recover_ms,
        });
        println!("fault report: {line}");
        if let Some(path) = std::env::var_os("KIOSK_FAULT_REPORT") {
            // One write of one line with O_APPEND: tests running in
            // parallel do not interleave.
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", Path::new(&path).display()));
            f.write_all(format!("{line}\n").as_bytes())
                .expect("write the fault report");
        }
        assert!(self.injected > 0, "{}: nothing injected", self.fault);
        assert_eq!(self.lost, 0, "{}: lost", self.fault);
        assert_eq!(self.duplicated, 0, "{}: duplicated", self.fault);
        assert!(
            !self.recover.is_empty(),
            "{}: never shown serving again",
            self.fault
        );
    }
}

/// Wait until `reader` is reported gone (no device, or offline).
async fn wait_gone(client: &mut kiosk_proto::Client, reader: &str) {
    client
        .wait_event(DEADLINE, |e| match e {
            Event::DeviceState {
                device,
                state: DeviceState::NoDevice | DeviceState::Offline,
                ..
            } if device == reader => Some(()),
            _ => None,
        })
        .await
        .unwrap_or_else(|e| panic!("{reader} never reported gone: {e}"));
}

/// Wait for a good read of the card just placed. A read cut by the fault
/// itself may still report its failure first (at most two are let by).
/// `None`: no good read.
async fn read_after_fault(client: &mut kiosk_proto::Client) -> Option<()> {
    for _ in 0..3 {
        if next_read(client).await.is_ok() {
            return Some(());
        }
    }
    None
}

/// The end of every smart-teller scenario: a whole ID update through a
/// session (card read, lookup, confirmation, delivery). Returns the
/// changes lost and recorded or applied more than once.
async fn id_update_applied_once(k: &mut Kiosk) -> (u64, u64) {
    let info = k.start_with_card("id_update", resident()).await;
    assert_eq!(
        info.stage,
        kiosk_proto::Stage::AwaitingConfirmation,
        "{info:?}"
    );
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(
        done.outcome,
        Some(kiosk_proto::Outcome::Applied),
        "{done:?}"
    );
    let id = done.change_id.expect("the change's id");
    let recorded =
        k.c.sync_list(Default::default())
            .await
            .expect("sync list")
            .len() as u64;
    let applied = u64::from(k.bank().applied_count(&id));
    let lost = u64::from(applied == 0 || recorded == 0);
    let duplicated = applied.saturating_sub(1) + recorded.saturating_sub(1);
    (lost, duplicated)
}

/// The SAM's serial port unplugged at a random moment of a card read
/// (0-40 ms after the card is placed) and plugged back in, `10 × scale`
/// times; each time a card placed afterwards reads, and at the end an ID
/// update is recorded and applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_unplugged_and_replugged_during_reads() {
    let n = 10 * scale();
    let mut k = kiosk_full(DEFAULT_SESSION, false, false, "").await;
    let mut rng = Lcg(8001);
    let mut recover = Vec::new();
    let mut lost = 0;
    for _ in 0..n {
        k.sam.place(resident());
        // Fault injection: the unplug lands somewhere in the read.
        tokio::time::sleep(Duration::from_millis(rng.next(40))).await;
        k.sam.unplug().expect("unplug");
        wait_gone(&mut k.c, READER).await;
        k.sam.remove();
        k.sam.replug().expect("replug");
        let back = Instant::now();
        wait_state(&mut k.c, READER, DeviceState::Online).await;
        k.sam.place(resident());
        match read_after_fault(&mut k.c).await {
            Some(()) => recover.push(back.elapsed()),
            None => lost += 1,
        }
        k.sam.remove();
        wait_absent(&mut k.c).await;
    }
    let (changes_lost, duplicated) = id_update_applied_once(&mut k).await;
    Outcome {
        fault: "reader unplugged during a read",
        injected: n,
        lost: lost + changes_lost,
        duplicated,
        recover,
    }
    .finish();
}

/// The SAM's serial device vanishes and comes back under another name
/// (`/dev/pts/N` changes) behind the same stable by-id link, `3 × scale`
/// times; each time the reader comes back by itself and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_device_comes_back_under_a_new_name_behind_its_by_id_link() {
    let n = 3 * scale();
    let mut k = kiosk_full(DEFAULT_SESSION, false, false, "").await;
    assert!(
        k.sam.link().to_string_lossy().contains("/by-id/"),
        "{}",
        k.sam.link().display()
    );
    let mut recover = Vec::new();
    let mut lost = 0;
    for _ in 0..n {
        let old = k.sam.pty_path().expect("plugged in");
        // Keep the old device's number taken (an open slave keeps it
        // allocated; nothing is read from it) so the device comes back
        // under a new name, as a USB adapter replugged as ttyUSB1 would.
        let hold = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
            .open(&old)
            .expect("open the old device");
        k.sam.unplug().expect("unplug");
        wait_gone(&mut k.c, READER).await;
        k.sam.replug().expect("replug");
        let back = Instant::now();
        drop(hold);
        let new = k.sam.pty_path().expect("plugged in");
        assert_ne!(old, new, "the device came back under its old name");
        wait_state(&mut k.c, READER, DeviceState::Online).await;
        k.sam.place(resident());
        match read_after_fault(&mut k.c).await {
            Some(()) => recover.push(back.elapsed()),
            None => lost += 1,
        }
        k.sam.remove();
        wait_absent(&mut k.c).await;
    }
    let (changes_lost, duplicated) = id_update_applied_once(&mut k).await;
    Outcome {
        fault: "SAM device renamed behind its by-id link",
        injected: n,
        lost: lost + changes_lost,
        duplicated,
        recover,
    }
    .finish();
}

/// pcscd SIGKILLed and started again, `2 × scale` times, under a kioskd
/// reading through it (the shared pcscd lock of `pcsc.rs` serialises this
/// with the other PC/SC tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcscd_killed_and_restarted() {
    let n = 2 * scale();
    let card = VirtualCard::start(ViccConfig::default()).expect("virtual card");
    let mut pcscd = Pcscd::start(&[card.ports()[0]]).expect("pcscd");
    let kioskd = Kioskd::start(
        "[[readers]]\nname = \"desk\"\n\n[readers.pcsc]\nreader = \"Virtual PCD 00 00\"\ntunnel = \"apdu\"\napdu_header = \"FF699600\"\n",
    );
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "desk", DeviceState::Online).await;
    let mut recover = Vec::new();
    let mut lost = 0;
    for _ in 0..n {
        pcscd.kill().expect("SIGKILL pcscd");
        pcscd.restart().expect("start pcscd again");
        let back = Instant::now();
        card.place(CardProfile::builtin("resident").expect("profile"));
        match read_after_fault(&mut events).await {
            Some(()) => recover.push(back.elapsed()),
            None => lost += 1,
        }
        card.remove();
        wait_absent(&mut events).await;
    }
    Outcome {
        fault: "pcscd SIGKILLed and restarted",
        injected: n,
        lost,
        duplicated: 0,
        recover,
    }
    .finish();
}

/// The printer unplugged in the middle of a ticket (after a random 20-120
/// bytes of it), `3 × scale` times: the number is kept, reprinted once the
/// printer is back, and every number comes out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_unplugged_mid_ticket() {
    let n = 3 * scale();
    let s = queue::setup();
    let kioskd = Kioskd::start(&queue::queue_toml(s.dir.path(), Some(s.printer.link())));
    let mut events = kioskd.subscriber().await;
    queue::wait_printer(&mut events, DeviceState::Online).await;
    let mut c = kioskd.client().await;
    let mut rng = Lcg(8004);
    let mut recover = Vec::new();
    let mut taken = Vec::new();
    for round in 0..n {
        s.printer.unplug_after(20 + rng.next(100));
        let t = c.queue_take("personal", false).await.expect("take");
        assert!(!t.printed, "round {round}: {t:?}");
        assert_eq!(t.message.code, "printer_fault", "round {round}");
        queue::wait_printer(&mut events, DeviceState::NoDevice).await;
        s.printer.replug().expect("replug");
        let back = Instant::now();
        queue::wait_printer(&mut events, DeviceState::Online).await;
        let r = c.queue_reprint(Some(&t.ticket_id)).await.expect("reprint");
        assert!(r.printed, "round {round}: {r:?}");
        assert_eq!(r.number, t.number);
        recover.push(back.elapsed());
        taken.push(t.number);
    }
    let cut = s
        .printer
        .wait_for_tickets(taken.len(), DEADLINE)
        .expect("tickets");
    let mut printed: BTreeMap<String, u64> = BTreeMap::new();
    for t in &cut {
        *printed.entry(t.texts()[3].to_string()).or_default() += 1;
    }
    let lost = taken.iter().filter(|n| !printed.contains_key(*n)).count() as u64;
    let mut duplicated: u64 = printed.values().map(|n| n - 1).sum();
    taken.sort();
    let issued = taken.len();
    taken.dedup();
    duplicated += (issued - taken.len()) as u64;
    Outcome {
        fault: "printer unplugged mid-ticket",
        injected: n,
        lost,
        duplicated,
        recover,
    }
    .finish();
}

/// Submit changes every 250 ms while the bank has `faults` for `hold`,
/// then lift them; serving again is a change submitted after the fault
/// being delivered. Every change acknowledged must be applied once.
async fn bank_fault(fault: &'static str, faults: Faults, hold: Duration) {
    let customers = usize::try_from(hold.as_millis() / 250).expect("count") + 10;
    let s = sync::setup(customers, Faults::none());
    let kioskd = Kioskd::start_with(&sync::kiosk_toml(s.dir.path(), &s.bank.base_url()), true);
    let mut c = kioskd.subscriber().await;
    let slow = faults.latency_ms > 0;
    let before = s.bank.stats();
    s.bank.set_faults(faults);
    let mut ids = Vec::new();
    let started = Instant::now();
    while started.elapsed() < hold && ids.len() + 1 < customers {
        let done = c
            .submit_change(sync::synthetic_change(ids.len()))
            .await
            .unwrap_or_else(|e| panic!("{fault}: a change refused during the fault: {e}"));
        ids.push(done.change_id);
        // Holds the fault: a customer every 250 ms.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let during = s.bank.stats();
    s.bank.set_faults(Faults::none());
    let ended = Instant::now();
    let probe = c
        .submit_change(sync::synthetic_change(ids.len()))
        .await
        .expect("a change after the fault")
        .change_id;
    c.wait_event(Duration::from_secs(600), |e| match e {
        Event::ChangeDelivered { change_id, .. } if *change_id == probe => Some(()),
        _ => None,
    })
    .await
    .unwrap_or_else(|e| panic!("{fault}: the change after the fault was not delivered: {e}"));
    let recover = ended.elapsed();
    ids.push(probe);
    let status = sync::wait_drained(&kioskd, Duration::from_secs(600)).await;
    assert_eq!((status.backlog, status.rejected), (0, 0), "{fault}");

    let injected = if slow {
        // Every request is slowed: deliveries, reconciliations
        // (`change_status`) and health checks.
        let requests = |s: &kiosk_sim::corebank::SimStats| s.requests.values().sum::<u64>();
        requests(&during) - requests(&before)
    } else {
        let f = |s: &kiosk_sim::corebank::SimStats| {
            let f = &s.faults_injected;
            f.errors + f.drops + f.lost_answers + f.rate_limited
        };
        f(&during) - f(&before)
    };
    let stats = s.bank.stats();
    let lost = ids
        .iter()
        .filter(|id| s.bank.applied_count(id) == 0)
        .count() as u64;
    let duplicated = stats.duplicates.len() as u64;
    println!(
        "{fault}: {} changes, bank stats {:?}",
        ids.len(),
        stats.faults_injected
    );
    Outcome {
        fault,
        injected,
        lost,
        duplicated,
        recover: vec![recover],
    }
    .finish();
}

/// The core bank down (every connection closed unanswered) for
/// `6 × scale` seconds (a minute in the soak).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_down() {
    let faults = Faults {
        down: true,
        ..Faults::none()
    };
    bank_fault("core bank down", faults, Duration::from_secs(6 * scale())).await;
}

/// The core bank answering after 2.5 s, past kioskd's 2 s request timeout,
/// having applied the change, for `6 × scale` seconds: every delivery
/// times out and is retried (injected: the requests slowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_slow() {
    let faults = Faults {
        latency_ms: 2500,
        ..Faults::none()
    };
    bank_fault(
        "core bank slow (2.5 s, past the timeout)",
        faults,
        Duration::from_secs(6 * scale()),
    )
    .await;
}

/// The core bank answering `429` (Retry-After 1 s) and `500/502/503`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_429_and_5xx() {
    let faults = Faults {
        rate_limit_rate: 0.4,
        retry_after_s: 1,
        error_rate: 0.4,
        seed: Some(8006),
        ..Faults::none()
    };
    bank_fault(
        "core bank 429 and 5xx",
        faults,
        Duration::from_secs(3 * scale()),
    )
    .await;
}

/// The core bank applying changes and losing the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_loses_answers_after_applying() {
    let faults = Faults {
        lost_answer_rate: 0.6,
        endpoints: vec!["changes".into()],
        seed: Some(8007),
        ..Faults::none()
    };
    bank_fault(
        "core bank loses answers after applying",
        faults,
        Duration::from_secs(3 * scale()),
    )
    .await;
}

/// A tmpfs mounted for the test (the tests run as root), unmounted when
/// dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs (the fault-injection tests need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }

    /// Fill the file system with `file` until it is full.
    fn fill(&self, file: &Path) {
        let mut f = std::fs::File::create(file).expect("filler");
        let chunk = vec![0u8; 4096];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOSPC),
                    "filling {}: {e}",
                    self.0.display()
                );
                return;
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The database's disk full, `scale` times: kioskd refuses new changes
/// with `store_unavailable` naming the full database, keeps serving, loses
/// nothing already stored, and records changes again once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_disk_full() {
    let rounds = scale();
    let s = sync::setup(
        usize::try_from(rounds).expect("rounds") * 400 + 10,
        Faults::none(),
    );
    let disk = Tmpfs::mount(&s.dir.path().join("db-disk"), "4m");
    let toml = sync::kiosk_toml(s.dir.path(), &s.bank.base_url()).replace(
        &s.dir.path().join("kiosk.db").display().to_string(),
        &disk.0.join("kiosk.db").display().to_string(),
    );
    let kioskd = Kioskd::start_with(&toml, true);
    let mut c = kioskd.subscriber().await;
    let mut ids = Vec::new();
    let mut recover = Vec::new();
    let filler = disk.0.join("filler");
    for round in 0..rounds {
        for _ in 0..5 {
            let done = c
                .submit_change(sync::synthetic_change(ids.len()))
                .await
                .expect("recorded");
            ids.push(done.change_id);
        }
        disk.fill(&filler);
        // The database may still have room in pages it already holds:
        // changes go on being recorded until it needs more.
        let refusal = loop {
            match c.submit_change(sync::synthetic_change(ids.len())).await {
                Ok(done) => ids.push(done.change_id),
                Err(ClientError::Api(e)) => break e,
                Err(e) => panic!("round {round}: kioskd did not answer: {e}"),
            }
            assert!(
                ids.len() < 400 * (round as usize + 1),
                "round {round}: still recording on a full disk"
            );
        };
        assert_eq!(refusal.code, ErrorCode::StoreUnavailable, "{refusal:?}");
        assert!(refusal.message.contains("full"), "{}", refusal.message);
        // Still serving: status and the technician's view answer.
        let st = c.sync_status().await.expect("sync status on a full disk");
        assert!(st.backlog <= ids.len() as u64);
        let out = kioskd.kioskctl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&filler).expect("free the space");
        let freed = Instant::now();
        let done = c
            .submit_change(sync::synthetic_change(ids.len()))
            .await
            .expect("recorded once space is freed");
        recover.push(freed.elapsed());
        ids.push(done.change_id);
    }
    let status = sync::wait_drained(&kioskd, Duration::from_secs(600)).await;
    assert_eq!((status.backlog, status.rejected), (0, 0));
    assert!(c.audit_verify().await.expect("audit").ok);
    let lost = ids
        .iter()
        .filter(|id| s.bank.applied_count(id) == 0)
        .count() as u64;
    let duplicated = s.bank.stats().duplicates.len() as u64;
    drop(c);
    drop(kioskd);
    Outcome {
        fault: "database disk full",
        injected: rounds,
        lost,
        duplicated,
        recover,
    }
    .finish();
}

/// kioskd SIGKILLed at random moments while `100 × scale` confirmed
/// changes are submitted and delivered through a flaky bank (the C1/C2
/// crash test of `sync.rs`, sized by the scale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kioskd_sigkill_during_changes() {
    let changes = usize::try_from(100 * scale()).expect("count");
    let r = sync::sigkill_during_changes(changes, (5, 20), 8008).await;
    assert_eq!(r.acknowledged, changes);
    assert_eq!((r.status.backlog, r.status.rejected), (0, 0));
    assert!(r.audit_ok);
    Outcome {
        fault: "kioskd SIGKILL during changes",
        injected: r.kills as u64,
        lost: r.lost as u64,
        duplicated: (r.duplicated + r.bank_duplicates.len()) as u64,
        recover: r.recover,
    }
    .finish();
}

/// kioskd SIGKILLed `20 × scale` times at random moments of ticket issuing
/// (the Q2 crash test of `queue.rs`, sized by the scale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kioskd_sigkill_during_tickets() {
    let kills = usize::try_from(20 * scale()).expect("count");
    let r = queue::sigkill_during_ticket_issuing(kills, 8009).await;
    Outcome {
        fault: "kioskd SIGKILL during tickets",
        injected: r.kills as u64,
        lost: r.lost as u64,
        duplicated: r.duplicated as u64,
        recover: r.recover,
    }
    .finish();
}

/// An X server for the touchscreen app: Xvfb on a display number it picks
/// itself (`-displayfd`), no TCP; stopped when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "1280x800x24",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb (package xvfb; `cargo xtask setup` installs it)");
        // Xvfb writes its display number once it accepts clients.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("Xvfb's display number");
        assert!(!line.trim().is_empty(), "Xvfb did not start");
        Xvfb {
            child,
            display: format!(":{}", line.trim()),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `kiosk-ui` binary, built (a no-op when up to date: `cargo xtask
/// test` and `soak` build it first) next to this test binary's directory.
fn kiosk_ui_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "kiosk-ui", "--bin", "kiosk-ui"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p kiosk-ui failed");
    // target/debug/deps/tests-HASH -> target/debug/kiosk-ui
    let exe = std::env::current_exe().expect("test binary");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("kiosk-ui");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// A running kiosk-ui, SIGKILLed when dropped.
struct Ui {
    child: Child,
    /// kiosk-ui's TMPDIR: librime's user directory is made there, and a
    /// SIGKILLed kiosk-ui cannot remove it itself.
    _tmp: tempfile::TempDir,
}

impl Ui {
    /// Start kiosk-ui against `socket` on `display`, returning once it
    /// says it is connected to kioskd (it logs that on stderr).
    fn start(bin: &Path, display: &str, socket: &Path) -> Ui {
        let tmp = tempfile::tempdir().expect("kiosk-ui's temporary directory");
        let mut child = Command::new(bin)
            .env("TMPDIR", tmp.path())
            .env("DISPLAY", display)
            .env("SLINT_BACKEND", "winit-software")
            .env("KIOSK_SOCKET", socket)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kiosk-ui");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let connected = line.contains("connected to kioskd");
                if connected && tx.send(()).is_err() {
                    return;
                }
            }
        });
        let ui = Ui { child, _tmp: tmp };
        rx.recv_timeout(DEADLINE)
            .expect("kiosk-ui connected to kioskd");
        ui
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real kiosk-ui (under Xvfb) SIGKILLed at random moments of a
/// customer session it shows, `3 × scale` times: kioskd keeps serving, the
/// session ends by its idle timeout with nothing recorded, a new kiosk-ui
/// connects (time to recover: from its start to connected); at the end an ID update is recorded and applied once.
///
/// The session is driven through kioskd's API (kiosk-ui shows any
/// client's session): the test has no way to touch the real window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_ui_sigkill_during_sessions() {
    let n = 3 * scale();
    let bin = kiosk_ui_binary();
    let x = Xvfb::start();
    // The orphaned session ends by its idle timeout; 5 s leaves a busy
    // machine time to read the card and ask the bank before it (3 s timed
    // out a round under a soak beside two builds).
    let mut k = kiosk_full(
        "idle_timeout_s = 5\nidle_warning_s = 1\nbank_wait_ms = 5000\n",
        false,
        false,
        "",
    )
    .await;
    let socket = k.kioskd.socket().to_path_buf();
    let mut rng = Lcg(8010);
    let mut recover = Vec::new();
    let mut ui = Ui::start(&bin, &x.display, &socket);
    for round in 0..n {
        let started = k.c.session_start("id_update").await.expect("session");
        let id = started.session_id.clone().expect("session id");
        // A random moment: before the card, during its read and lookup, or
        // on the confirmation screen.
        match rng.next(3) {
            0 => {}
            1 => {
                k.sam.place(resident());
                tokio::time::sleep(Duration::from_millis(rng.next(300))).await;
            }
            _ => {
                k.sam.place(resident());
                let info = k.settled(&id).await;
                assert_eq!(
                    info.stage,
                    kiosk_proto::Stage::AwaitingConfirmation,
                    "{info:?}"
                );
            }
        }
        ui.kill();
        // kioskd serves on, and the orphaned session times out.
        k.c.status().await.expect("kioskd answers with the UI dead");
        let ended =
            k.c.wait_event(DEADLINE, |e| match e {
                Event::Session(info) if info.session_id.as_deref() == Some(&id) && !info.active => {
                    Some(info.clone())
                }
                _ => None,
            })
            .await
            .unwrap_or_else(|e| panic!("round {round}: the session never ended: {e}"));
        assert!(ended.change_id.is_none(), "round {round}: {ended:?}");
        k.sam.remove();
        // The supervisor starts the UI again: it serves once connected.
        let restarted = Instant::now();
        ui = Ui::start(&bin, &x.display, &socket);
        recover.push(restarted.elapsed());
    }
    let recorded_before =
        k.c.sync_list(Default::default())
            .await
            .expect("sync list")
            .len() as u64;
    let (lost, duplicated) = id_update_applied_once(&mut k).await;
    ui.kill();
    Outcome {
        fault: "kiosk-ui SIGKILL during a session",
        injected: n,
        lost,
        duplicated: duplicated + recorded_before,
        recover,
    }
    .finish();
}

/// The flooder: a foreign process (perl, which every Debian has) run as a
/// read-only local user. It opens `idle` connections and holds them
/// without a word, then makes `attempts` connections one after another,
/// each asking `hello`, and says how each went; it holds the idle ones
/// until its stdin closes.
const FLOODER: &str = r#"
use strict; use IO::Socket::UNIX; use Socket;
$| = 1;
$SIG{PIPE} = "IGNORE";
my ($path, $idle, $attempts) = @ARGV;
my @held;
for (1..$idle) {
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path);
    push @held, $s if $s;
}
print "held ", scalar(@held), "\n";
my ($answered, $refused, $failed) = (0, 0, 0);
for (1..$attempts) {
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path);
    if (!$s) { $failed++; next; }
    print $s "{\"id\":1,\"method\":\"hello\"}\n";
    my $line = <$s>;
    if (defined $line && $line =~ /"result"/) { $answered++ } else { $refused++ }
    close $s;
}
print "attempts answered=$answered refused=$refused failed=$failed\n";
my $wait = <STDIN>;
"#;

/// Local API flood (hardening, second round, item 1): while a customer
/// session runs through the UI's connection, a read-only local user holds
/// 64 idle connections and makes `100 × scale` connection attempts (1,000
/// at scale 10). The UI and a technician still get in and get answers,
/// the session completes, and its change is applied once. Recovery: from
/// the flood's end to the UI's next answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_api_flood_by_a_read_only_user_during_a_session() {
    use std::os::unix::fs::PermissionsExt;
    if !super::access::tools_available() {
        eprintln!("skipped: needs root, useradd/groupadd and setpriv");
        return;
    }
    const IDLE: u64 = 64;
    let attempts = 100 * scale();
    let tag = std::process::id() % 100_000;
    let mut accounts = super::access::Accounts::new();
    let group = format!("kf-sock-{tag}");
    let gid = accounts.group(&group);
    let uid = accounts.user(&format!("kf-ro-{tag}"), &group);
    let mut k = super::flows::kiosk_with_api(
        "smart_teller",
        &format!("group = \"{group}\"\nidle_timeout_ms = 2000\n"),
        DEFAULT_SESSION,
        false,
        false,
        "",
    )
    .await;
    std::fs::set_permissions(k.kioskd.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod dir");
    let info = k.start_with_card("id_update", resident()).await;
    assert_eq!(
        info.stage,
        kiosk_proto::Stage::AwaitingConfirmation,
        "{info:?}"
    );
    let mut flooder = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .args(["perl", "-e", FLOODER])
        .arg(&k.kioskd.socket)
        .arg(IDLE.to_string())
        .arg(attempts.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv perl");
    let mut lines = std::io::BufReader::new(flooder.stdout.take().expect("stdout")).lines();
    let held = lines.next().expect("held line").expect("read");
    assert!(held.starts_with("held "), "{held}");
    // The idle connections are in; a technician and the UI still are.
    let technician = Command::new(env!("CARGO_BIN_EXE_kioskctl"))
        .arg("--socket")
        .arg(&k.kioskd.socket)
        .args(["--json", "status"])
        .output()
        .expect("kioskctl status");
    assert!(technician.status.success(), "{technician:?}");
    let flood = std::thread::spawn(move || lines.next().expect("attempts line").expect("read"));
    // The customer confirms while the attempts go on.
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(
        done.outcome,
        Some(kiosk_proto::Outcome::Applied),
        "{done:?}"
    );
    let attempts_line = tokio::task::spawn_blocking(move || flood.join().expect("flood"))
        .await
        .expect("join");
    let flood_over = Instant::now();
    k.c.status().await.expect("the UI's connection answers");
    let recover = flood_over.elapsed();
    println!("local API flood: {held}, {attempts_line}");
    drop(flooder.stdin.take());
    let _ = flooder.wait();
    let id = done.change_id.expect("the change's id");
    let recorded =
        k.c.sync_list(Default::default())
            .await
            .expect("sync list")
            .len() as u64;
    let applied = u64::from(k.bank().applied_count(&id));
    Outcome {
        fault: "local API flood by a read-only user during a session",
        injected: IDLE + attempts,
        lost: u64::from(applied == 0 || recorded == 0),
        duplicated: applied.saturating_sub(1) + recorded.saturating_sub(1),
        recover: vec![recover],
    }
    .finish();
}
