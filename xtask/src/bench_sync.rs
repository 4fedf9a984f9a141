//! Durability and sync figures for `cargo xtask bench sync`, each beside
//! a baseline measured in the same run:
//!
//! * confirmed changes committed through kioskd's local API (each durable
//!   in SQLite, WAL, `synchronous=FULL`, before the answer), one client
//!   and eight at once, against plain SQLite commits (WAL, `FULL`, one
//!   row a commit) in the same directory;
//! * the drain of a backlog of 10,000 changes to the core-bank simulator
//!   over loopback, against one plain client's request rate (the same
//!   signed `POST /v1/changes`, one at a time, no store) to the same
//!   simulator;
//! * commit → the bank's acknowledgement, one change at a time, against
//!   one plain commit plus one plain request;
//! * where one confirmation's time goes: kioskd's commits, timed by its
//!   own `kiosk_store_commit_duration_seconds` (read from `/metrics` on
//!   loopback), against the whole confirmation at the client.
//!
//! The simulator runs in this (release) process with its state in an
//! in-memory SQLite database: it writes nothing to disk.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kiosk_corebank::{ChangeKind, ChangeRequest, CoreBankClient, Source};
use kiosk_proto::{Client, Event, SubmitChangeParams};
use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, fixtures};

use crate::bench_tools::{config, stats, subscribed};
use crate::processes::{Guard, start_kioskd, write_random_hex_key};

pub const HEADING: &str = "## Durable changes and sync to the core bank";

const COMMITS: usize = 2000;
const ROUNDS: usize = 50;
const CLIENTS: usize = 8;
const BACKLOG: usize = 10_000;
const ACK_SAMPLES: usize = 300;
const PLAIN_REQUESTS: usize = 2000;

pub struct Durability {
    plain_commits_per_s: f64,
    plain_commit: Vec<Duration>,
    /// The same rows as one confirmation, written by plain SQLite.
    shaped_per_s: f64,
    /// One local-API round trip that touches no store (`hello`).
    api_round_trip: Vec<Duration>,
    commits_per_s: f64,
    concurrent_per_s: f64,
    plain_requests_per_s: f64,
    plain_request: Vec<Duration>,
    drain: Duration,
    ack: Vec<Duration>,
    fsync_calls: Option<String>,
    split: CommitSplit,
}

/// One client's confirmations, one at a time, as the client saw them and
/// as kioskd's `kiosk_store_commit_duration_seconds` timed their commits.
struct CommitSplit {
    changes: usize,
    at_client: Duration,
    /// Commits kioskd counted meanwhile, and their summed time.
    commits: u64,
    committing: Duration,
}

/// The sum and count of kioskd's commit-time histogram, from `/metrics`.
async fn commit_times(port: u16) -> Result<(Duration, u64)> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .with_context(|| format!("no {name} in kioskd's metrics"))
    };
    let sum = value("kiosk_store_commit_duration_seconds_sum")?;
    let count = value("kiosk_store_commit_duration_seconds_count")?;
    Ok((Duration::from_secs_f64(sum), count as u64))
}

/// Plain SQLite: WAL, `synchronous=FULL`, one small row per commit, in
/// `dir` (the disk kioskd's store is on).
fn plain_sqlite(dir: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(dir.join("plain.db"))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL);",
    )?;
    // Warm up past the first checkpoint: from then on the WAL is written
    // over in place, as kioskd's is, instead of growing (a growing file
    // makes each sync flush its size too, several times slower here).
    plain_commits(&conn, WARM_UP, &mut Vec::new())?;
    Ok(conn)
}

/// Commits before the plain baseline is measured: more than the 1000
/// pages of SQLite's automatic checkpoint.
pub const WARM_UP: usize = 1200;

/// A database with tables shaped like kioskd's store (an outbox with its
/// indexes, an audit table, a one-row head marker), in `dir`, warmed
/// up like [`plain_sqlite`].
fn shaped_sqlite(dir: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(dir.join("shaped.db"))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE o (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, customer TEXT NOT NULL,
                         state TEXT NOT NULL, payload BLOB, at INTEGER NOT NULL, acked INTEGER);
         CREATE INDEX o_open ON o (customer, seq) WHERE state IN ('pending', 'reconcile');
         CREATE INDEX o_delivered ON o (seq) WHERE state = 'delivered';
         CREATE INDEX o_rejected ON o (seq) WHERE state = 'rejected';
         CREATE INDEX o_open_seq ON o (seq) WHERE state IN ('pending', 'reconcile');
         CREATE TABLE a (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, action TEXT NOT NULL,
                         subject TEXT, detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
         CREATE TABLE m (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    shaped_commits(&conn, 0, WARM_UP, &mut Vec::new())?;
    Ok(conn)
}

/// `n` commits of what one confirmation through `submit_change` writes:
/// an outbox row (a sealed payload's size), two audit records, the head
/// marker; each one's time.
fn shaped_commits(
    conn: &rusqlite::Connection,
    first: usize,
    n: usize,
    each: &mut Vec<Duration>,
) -> Result<()> {
    let payload = vec![0x5Au8; 560];
    let hash = "0".repeat(64);
    for i in first..first + n {
        let t = Instant::now();
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO o (id, customer, state, payload, at) VALUES (?1, ?2, 'pending', ?3, ?4)",
            rusqlite::params![format!("{i:036}"), format!("S{i:06}"), payload, i as i64],
        )?;
        for action in ["technician_request", "change_recorded"] {
            tx.execute(
                "INSERT INTO a (at, action, subject, detail, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                rusqlite::params![i as i64, action, format!("{i:036}"), "id_validity: recorded through submit_change", hash],
            )?;
        }
        tx.execute(
            "INSERT INTO m (key, value) VALUES ('head', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [format!("{i}:{hash}")],
        )?;
        tx.commit()?;
        each.push(t.elapsed());
    }
    Ok(())
}

/// `n` plain commits; each one's time.
fn plain_commits(conn: &rusqlite::Connection, n: usize, each: &mut Vec<Duration>) -> Result<()> {
    for i in 0..n {
        let t = Instant::now();
        conn.execute(
            "INSERT INTO t (at, body) VALUES (?1, ?2)",
            rusqlite::params![i as i64, "a change of about this size"],
        )?;
        each.push(t.elapsed());
    }
    Ok(())
}

/// `n` signed `POST /v1/changes` one after the other, for the synthetic
/// customers from `first`; each one's time.
async fn plain_requests(
    client: &CoreBankClient,
    first: usize,
    n: usize,
    each: &mut Vec<Duration>,
) -> Result<()> {
    for i in first..first + n {
        let kind: ChangeKind = serde_json::from_value(change_json(i))?;
        let r = ChangeRequest {
            change_id: uuid()?,
            customer_id: fixtures::synthetic_customer(i).customer_id,
            occurred_at_ms: chrono_now_ms(),
            source: Source {
                kiosk_id: "K-BENCH".into(),
                branch_id: "0101".into(),
                channel: "smart_teller".into(),
            },
            kind,
        };
        let t = Instant::now();
        client.submit_change(&r).await?;
        each.push(t.elapsed());
    }
    Ok(())
}

fn change_json(i: usize) -> serde_json::Value {
    let c = fixtures::synthetic_customer(i);
    serde_json::json!({
        "kind": "id_validity",
        "id_validity": {
            "id_type": "resident", "id_number": c.id_number,
            "valid_from": "2025-01-01", "valid_until": "2045-01-01",
            "issuer": c.issuer,
            "card_evidence": {"sam_id": "05.01-20101216-0011223344-1234567890", "card_uid": "5A01000000000001"}
        }
    })
}

pub fn change(i: usize) -> SubmitChangeParams {
    SubmitChangeParams {
        customer_id: fixtures::synthetic_customer(i).customer_id,
        change: change_json(i),
    }
}

/// A random UUID (v4) as text.
fn uuid() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
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

/// How many `fsync` and `fdatasync` calls a release kioskd makes for 200
/// commits (strace attached to it once started), if strace is installed.
async fn count_syncs(dir: &Path) -> Result<Option<String>> {
    use std::io::BufRead;
    if std::process::Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Ok(None);
    }
    let sub = dir.join("strace");
    std::fs::create_dir_all(&sub)?;
    std::fs::copy(dir.join("store.key"), sub.join("store.key"))?;
    let cfg = config(&sub, &store_toml(&sub, None))?;
    let kioskd = start_kioskd(&cfg, &sub, true, Stdio::inherit())?;
    let pid = kioskd.id();
    let _guard = Guard(vec![("kioskd".into(), kioskd)]);
    let out = sub.join("strace.txt");
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&out)
        .arg("-p")
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // Wait until strace says it has attached ("Process N attached with M
    // threads": all of them at once).
    let stderr = strace.stderr.take().context("strace stderr")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(line) => {
                if line?.contains("attached") {
                    break;
                }
            }
            None => anyhow::bail!("strace ended before attaching"),
        }
    }
    let n = 200;
    let mut c = Client::connect(sub.join("kioskd.sock")).await?;
    for i in 0..n {
        c.submit_change(change(BACKLOG + ACK_SAMPLES + PLAIN_REQUESTS + i))
            .await?;
    }
    drop(c);
    // SIGINT: strace detaches and writes its summary.
    std::process::Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status()?;
    strace.wait()?;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let calls = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().last() == Some(name))
            .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
            .unwrap_or_else(|| "0".into())
    };
    Ok(Some(format!(
        "{n} commits through the local API: {} `fdatasync` and {} `fsync` calls (`strace -f -c` attached to kioskd)",
        calls("fdatasync"),
        calls("fsync")
    )))
}

pub async fn measure() -> Result<Durability> {
    let dir = tempfile::tempdir_in(crate::processes::target_dir())?;
    let plain_db = plain_sqlite(dir.path())?;
    let status = std::process::Command::new(crate::processes::bin("kioskd", true))
        .arg("--generate-store-key")
        .arg(dir.path().join("store.key"))
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "cannot create a store key");
    write_random_hex_key(&dir.path().join("bank.key"))?;
    let key = std::fs::read_to_string(dir.path().join("bank.key"))?;
    let key = kiosk_corebank::SigningKey::from_file_contents(key.as_bytes());

    // 1. Commits without a core bank, in rounds that alternate plain
    //    SQLite, one client and eight clients (so a disk that another job
    //    slows down slows all three alike); then the rest of the backlog
    //    for step 3.
    // kioskd's own commit times, from its metrics endpoint (loopback).
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = config(
        dir.path(),
        &format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            store_toml(dir.path(), None)
        ),
    )?;
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = Client::connect(dir.path().join("kioskd.sock")).await?;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Client::connect(dir.path().join("kioskd.sock")).await?);
    }
    let shaped_db = shaped_sqlite(dir.path())?;
    let mut shaped_commit = Vec::new();
    let mut plain_commit = Vec::new();
    let mut api_round_trip = Vec::new();
    let (mut one_time, mut many_time) = (Duration::ZERO, Duration::ZERO);
    let mut next = 0usize;
    let per_round = COMMITS / ROUNDS;
    for _ in 0..ROUNDS {
        plain_commits(&plain_db, per_round, &mut plain_commit)?;
        shaped_commits(
            &shaped_db,
            WARM_UP + shaped_commit.len(),
            per_round,
            &mut shaped_commit,
        )?;
        for _ in 0..per_round {
            let t = Instant::now();
            c.hello().await?;
            api_round_trip.push(t.elapsed());
        }
        let start = Instant::now();
        for _ in 0..per_round {
            c.submit_change(change(next)).await?;
            next += 1;
        }
        one_time += start.elapsed();
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut client in clients.drain(..) {
            let first = next;
            next += per_round / CLIENTS;
            tasks.spawn(async move {
                for j in first..first + per_round / CLIENTS {
                    client.submit_change(change(j)).await?;
                }
                anyhow::Ok(client)
            });
        }
        while let Some(done) = tasks.join_next().await {
            clients.push(done??);
        }
        many_time += start.elapsed();
    }
    let plain_commits_per_s =
        plain_commit.len() as f64 / plain_commit.iter().sum::<Duration>().as_secs_f64();
    let shaped_per_s =
        shaped_commit.len() as f64 / shaped_commit.iter().sum::<Duration>().as_secs_f64();
    let commits_per_s = COMMITS as f64 / one_time.as_secs_f64();
    let concurrent_per_s =
        (ROUNDS * (per_round / CLIENTS) * CLIENTS) as f64 / many_time.as_secs_f64();
    eprintln!(
        "bench sync: plain SQLite {plain_commits_per_s:.0} commits/s; shaped {shaped_per_s:.0}/s; kioskd, one client: \
         {commits_per_s:.0} changes/s; {CLIENTS} clients: {concurrent_per_s:.0} changes/s"
    );
    // The rest of the backlog, one at a time: where a confirmation's time
    // goes, kioskd's commit against the whole of it at the client.
    let (committing_before, commits_before) = commit_times(metrics_port).await?;
    let start = Instant::now();
    for i in next..BACKLOG {
        c.submit_change(change(i)).await?;
    }
    let at_client = start.elapsed();
    let (committing_after, commits_after) = commit_times(metrics_port).await?;
    let split = CommitSplit {
        changes: BACKLOG - next,
        at_client,
        commits: commits_after - commits_before,
        committing: committing_after.saturating_sub(committing_before),
    };
    drop(clients);
    drop(c);
    drop(guard);

    // 2. The simulator, in memory; one plain client's request rate (half
    //    now, half after the drain).
    let mut bank_config = CoreBankConfig::new(":memory:", key);
    bank_config.synthetic = BACKLOG + ACK_SAMPLES + PLAIN_REQUESTS + 200;
    bank_config.faults = Faults::none();
    let bank = CoreBankSim::start(bank_config)?;
    let mut client_config =
        kiosk_corebank::CoreBankConfig::new(bank.base_url(), dir.path().join("bank.key"));
    client_config.allow_plain_http = true;
    let plain = CoreBankClient::new(&client_config, "K-BENCH")?;
    let mut plain_request = Vec::with_capacity(PLAIN_REQUESTS);
    let first_plain = BACKLOG + ACK_SAMPLES;
    plain_requests(&plain, first_plain, PLAIN_REQUESTS / 2, &mut plain_request).await?;

    // 3. The same kiosk, now with the core bank: drain 10,000.
    std::fs::remove_file(dir.path().join("notify.sock")).ok();
    let cfg = config(dir.path(), &store_toml(dir.path(), Some(&bank.base_url())))?;
    let start = Instant::now();
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let _guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = subscribed(dir.path()).await?;
    // Count delivery events (cheap) rather than asking for the status
    // after each one; confirm with the status.
    let mut left = c.sync_status().await?.backlog;
    while left > 0 {
        wait_delivered(&mut c, left as usize).await?;
        left = c.sync_status().await?.backlog;
    }
    let drain = start.elapsed();
    eprintln!(
        "bench sync: drain of {BACKLOG}: {:.2} s",
        drain.as_secs_f64()
    );
    plain_requests(
        &plain,
        first_plain + PLAIN_REQUESTS / 2,
        PLAIN_REQUESTS / 2,
        &mut plain_request,
    )
    .await?;
    let plain_requests_per_s =
        plain_request.len() as f64 / plain_request.iter().sum::<Duration>().as_secs_f64();
    eprintln!("bench sync: one plain client: {plain_requests_per_s:.0} requests/s");
    anyhow::ensure!(
        bank.stats().applied_total as usize >= BACKLOG,
        "not every change was applied"
    );
    anyhow::ensure!(
        bank.stats().duplicates.is_empty(),
        "a change was applied twice"
    );

    // 4. Commit → acknowledgement, one change at a time.
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
    drop(c);
    let fsync_calls = count_syncs(dir.path()).await?;
    Ok(Durability {
        plain_commits_per_s,
        plain_commit,
        shaped_per_s,
        api_round_trip,
        commits_per_s,
        concurrent_per_s,
        plain_requests_per_s,
        plain_request,
        drain,
        ack,
        fsync_calls,
        split,
    })
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn report(d: &Durability) -> String {
    let mut ms: Vec<f64> = d.ack.iter().map(|x| x.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let p99 = ms[(ms.len() * 99 / 100).min(ms.len() - 1)];
    let (median, _, mean) = stats(&d.ack);
    let (commit_med, _, _) = stats(&d.plain_commit);
    let (request_med, _, _) = stats(&d.plain_request);
    let drain_rate = BACKLOG as f64 / d.drain.as_secs_f64();
    let mut s = String::new();
    let _ = writeln!(s, "{HEADING}\n");
    let _ = writeln!(
        s,
        "Baselines, measured in the same run: **plain SQLite** ({COMMITS} commits of one row each, WAL, \
         `synchronous=FULL`, the bundled SQLite kioskd uses, in the directory of kioskd's store, after \
         {WARM_UP} commits to warm it up (its WAL then written over in place, as kioskd's is), in {ROUNDS} \
         rounds alternating with kioskd's one-client and {CLIENTS}-client rounds): **{:.0} commits/s**, median \
         {commit_med:.2} ms; **one plain client** (the kiosk's core-bank client with no store: {PLAIN_REQUESTS} \
         signed `POST /v1/changes` one after the other, keep-alive, to the same simulator, half before the \
         drain and half after): **{:.0} requests/s**, median {request_med:.2} ms.\n",
        d.plain_commits_per_s, d.plain_requests_per_s
    );
    let _ = writeln!(s, "| figure | value | ratio |");
    let _ = writeln!(s, "|---|---|---|");
    let _ = writeln!(
        s,
        "| confirmed changes through kioskd's local API (`submit_change`), one client, one at a time (each durable before the answer: the technician call's audit record, the outbox row and its audit record in one transaction, WAL, `synchronous=FULL`) | {:.0} changes/s | **{:.2}** of plain SQLite commits (goal ≥ 0.8) |",
        d.commits_per_s,
        d.commits_per_s / d.plain_commits_per_s
    );
    let _ = writeln!(
        s,
        "| for comparison: plain SQLite writing the same rows as one confirmation (an outbox row with a 560-byte payload and the three indexes a new row enters (its change id, its customer's line, the open rows in order), two audit records, the chain's head marker) in one transaction, no kioskd | {:.0} transactions/s | {:.2} of plain SQLite commits; kioskd's one client reaches **{:.2}** of it |",
        d.shaped_per_s,
        d.shaped_per_s / d.plain_commits_per_s,
        d.commits_per_s / d.shaped_per_s
    );
    let api_mean = d.api_round_trip.iter().sum::<Duration>().as_secs_f64()
        / d.api_round_trip.len().max(1) as f64;
    let floor_per_s = 1.0 / (1.0 / d.plain_commits_per_s + api_mean);
    let _ = writeln!(
        s,
        "| for comparison: one plain SQLite commit plus one local-API round trip that touches no store (`hello`, {} of them in the same rounds, mean {:.3} ms), one after the other | {floor_per_s:.0}/s | {:.2} of plain SQLite commits; kioskd's one client reaches **{:.2}** of it |",
        d.api_round_trip.len(),
        api_mean * 1000.0,
        floor_per_s / d.plain_commits_per_s,
        d.commits_per_s / floor_per_s
    );
    let _ = writeln!(
        s,
        "| confirmed changes as in the first row, {CLIENTS} clients at once (group commit) | {:.0} changes/s | **{:.2}** × the one-client rate (goal ≥ 2); {:.2} of plain SQLite commits |",
        d.concurrent_per_s,
        d.concurrent_per_s / d.commits_per_s,
        d.concurrent_per_s / d.plain_commits_per_s
    );
    let _ = writeln!(
        s,
        "| drain a backlog of {BACKLOG} changes to the simulator over loopback (from kioskd's start) | {:.2} s, {drain_rate:.0} changes/s | **{:.2}** of one plain client's request rate (goal ≥ 0.8, under 5 s) |",
        d.drain.as_secs_f64(),
        drain_rate / d.plain_requests_per_s
    );
    let _ = writeln!(
        s,
        "| commit → the bank's acknowledgement, {ACK_SAMPLES} changes one at a time | median {median:.2} ms, p99 {p99:.2} ms, mean {mean:.2} ms | **{:.2}** × (one plain commit + one plain request, medians: {:.2} ms) |",
        median / (commit_med + request_med),
        commit_med + request_med
    );
    let _ = writeln!(
        s,
        "\nThe core-bank simulator runs in the benchmark's process (a release build) with its state in an \
         in-memory SQLite database: it writes nothing to disk. Per `POST /v1/changes` it checks the HMAC \
         signature, the timestamp and the nonce, looks the idempotency key up, applies the change to the \
         customer and keeps the idempotency answer, in one in-memory transaction. kioskd, the simulator and \
         the clients share the machine's cores.\n"
    );
    let _ = writeln!(
        s,
        "kioskd's sync worker sends up to 16 requests at once (`[sync] concurrency`), each for a different \
         customer; each step records the answers that came back and marks the next changes in flight in one \
         transaction, committed before their requests leave (at most one fsync per delivered change; fewer \
         when answers come back together). Confirmations that wait for the store at the same time share one \
         commit (group commit), each still durable before its answer."
    );
    if d.commits_per_s > d.plain_commits_per_s {
        let _ = writeln!(
            s,
            "\n**This run's commit baselines are not a limit**: plain SQLite measured slower than kioskd's \
             whole confirmation path, in the same interleaved rounds on the same disk. On this machine that \
             happens while other jobs keep the disk busy (not understood yet: the same SQLite build, WAL and \
             `synchronous=FULL` on both sides, one `fdatasync` per commit); the commit ratios above say \
             nothing about kioskd then. Run `cargo xtask bench sync` again on a quiet machine."
        );
    }
    let shaped = d.shaped_per_s / d.plain_commits_per_s;
    let floor = floor_per_s / d.plain_commits_per_s;
    if (shaped < 0.8 || floor < 0.8) && d.commits_per_s <= d.plain_commits_per_s {
        let _ = writeln!(
            s,
            "\nThe rows one confirmation must write (the outbox row and its indexes, the audit records, \
             the chain's head) bring plain SQLite down to {shaped:.2} of its one-row commit rate on this \
             disk, without kioskd; one plain commit followed by one local-API round trip that does nothing \
             else reaches {floor:.2} of it. Either is a ceiling for a confirmation made through the local \
             API and recorded with its audit trail: the goal of 0.8 of one-row commits is above both here. \
             What kioskd adds on top of them (sealing the payload, hashing the audit records, its \
             statements, its request handling) is the gap between those rows and the first."
        );
    }
    let split = &d.split;
    let per_change_ms = split.at_client.as_secs_f64() * 1000.0 / split.changes.max(1) as f64;
    let commit_ms = split.committing.as_secs_f64() * 1000.0 / split.commits.max(1) as f64;
    let api_ms = api_mean * 1000.0;
    let _ = writeln!(
        s,
        "\nWhere one confirmation's time goes: the rest of the backlog ({} changes, one client, one at a \
         time, after the rounds) took **{per_change_ms:.3} ms** each at the client. kioskd's commits \
         ({} of them, timed by its `kiosk_store_commit_duration_seconds`: the WAL write and its \
         `fdatasync`) took **{commit_ms:.3} ms** on average, {:.0}% of it; in the rounds plain SQLite \
         wrote the same rows in {:.3} ms a transaction and one row in {:.3} ms a commit. A local-API round \
         trip that does nothing (`hello`) took {api_ms:.3} ms. The other {:.3} ms are the work around \
         the commit: the bigger request and answer, checking the request, sealing the payload, hashing \
         the audit records and running the statements, and the hand-off to a thread of the blocking pool \
         and back (the store's calls stay off the runtime's two workers, so a slow disk holds up no \
         device).",
        split.changes,
        split.commits,
        100.0 * commit_ms / per_change_ms,
        1000.0 / d.shaped_per_s,
        1000.0 / d.plain_commits_per_s,
        (per_change_ms - commit_ms - api_ms).max(0.0),
    );
    if let Some(calls) = &d.fsync_calls {
        let _ = writeln!(
            s,
            "\nSystem calls: {calls}. The bundled SQLite is built with `HAVE_FDATASYNC` \
             (`.cargo/config.toml`); without it, it calls `fsync` for every sync."
        );
    }
    s
}
