//! Queue-machine figure for `cargo xtask bench queue`: from a swipe (the
//! `card_read` event on the local API) to the last byte of the ticket
//! received by the printer, as a ratio to the serial wire time of exactly
//! the bytes exchanged with the printer until then (the status requests
//! and replies before printing, any automatic status back block received
//! meanwhile, and the ticket), at the configured baud
//! (the printer simulator emulates that wire time both ways and stamps
//! each byte with its arrival). Measured three ways: plain serial ports,
//! and the SAM and the printer each behind an emulated FTDI-like
//! USB-serial adapter (every answer held for its 16 ms latency timer)
//! with kioskd's `low_latency` off and on. kioskd runs with its default
//! `automatic_status_back = true` and the simulator honours `GS a`, so a
//! ticket is normally sent without a status round trip before it. A plain
//! SQLite commit (the ticket number's) is measured in the same directory,
//! for comparison.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kiosk_proto::Event;
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig};
use kiosk_sim::{CardProfile, SamSim, SamSimConfig};

use crate::bench_tools::{config, stats, subscribed};
use crate::processes::{Guard, start_kioskd};

pub const HEADING: &str = "## Queue ticket: swipe to last ticket byte";

const BAUD: u32 = 115_200;
const SAMPLES: usize = 20;
/// Changes committed before the tickets: well past the 1000 WAL pages of
/// SQLite's first automatic checkpoint.
const WARM_UP_CHANGES: usize = 300;
/// `DLE EOT n` is 3 bytes; its answer 1.
const STATUS_QUERY_WIRE_BYTES: u64 = 4;
/// An automatic status back block.
const ASB_BLOCK_BYTES: u64 = 4;
/// The latency timer of an emulated adapter: its default, and what kioskd
/// sets with `low_latency`.
const ADAPTER_SLOW_MS: f64 = 16.0;
const ADAPTER_LOW_MS: f64 = 1.0;

pub struct QueueFigures {
    /// `None`: plain serial ports; `Some(low_latency)`: behind adapters.
    adapter: Option<bool>,
    elapsed: Vec<Duration>,
    ticket_bytes: u64,
    /// Status queries before the ticket's last byte (the check before it).
    queries_before: u64,
    /// Status queries per ticket in all (the check after it included).
    queries_total: u64,
    /// ASB blocks received by kioskd's side before the ticket's last byte
    /// (from the swipe on; 4 bytes each on the wire).
    asb_before: u64,
    /// ASB blocks per ticket in all (the one answering the `GS a` that
    /// ends each ticket included).
    asb_total: u64,
    /// Did kioskd enable automatic status back?
    asb_enabled: bool,
    /// Plain SQLite commits (WAL, FULL) in the same directory: median.
    plain_commit: Duration,
}

/// The figures of one set-up: `adapter` as in [`QueueFigures::adapter`].
pub async fn measure(adapter: Option<bool>) -> Result<QueueFigures> {
    let dir = tempfile::tempdir_in(crate::processes::target_dir())?;
    let plain_commit = plain_commit(dir.path())?;
    let sam_link = dir.path().join("sam0");
    let printer_link = dir.path().join("printer0");
    let sysfs = dir.path().join("sys");
    let adapter_sysfs = adapter.map(|_| sysfs.clone());
    let sam = SamSim::start(SamSimConfig {
        adapter_sysfs: adapter_sysfs.clone(),
        ..SamSimConfig::new(&sam_link)
    })?;
    let printer = PrinterSim::start(PrinterSimConfig {
        baud: BAUD,
        emulate_wire_time: true,
        adapter_sysfs,
        ..PrinterSimConfig::new(&printer_link)
    })?;
    let latency = match adapter {
        Some(low) => format!("low_latency = {low}\nsysfs = \"{}\"\n", sysfs.display()),
        None => String::new(),
    };
    let status = std::process::Command::new(crate::processes::bin("kioskd", true))
        .arg("--generate-store-key")
        .arg(dir.path().join("store.key"))
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "cannot create a store key");
    let extra = format!(
        "[[readers]]\nname = \"swipe\"\n\n[readers.sam]\npath = \"{sam}\"\nbaud = 115200\npoll_interval_ms = 50\n{latency}\n\
         [store]\npath = \"{db}\"\nkey_file = \"{key}\"\n\n\
         [queue]\ntimezone = \"Asia/Shanghai\"\n\n[[queue.services]]\nid = \"personal\"\nletter = \"A\"\nname_zh = \"个人业务\"\nname_en = \"Personal banking\"\n\n\
         [printer]\nname = \"ticket\"\npath = \"{printer}\"\nbaud = {BAUD}\n{latency}",
        sam = sam_link.display(),
        db = dir.path().join("kiosk.db").display(),
        key = dir.path().join("store.key").display(),
        printer = printer_link.display(),
    );
    let cfg = config(dir.path(), &extra)?;
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let _guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = subscribed(dir.path()).await?;
    // The store as on a machine that has been running: its WAL past the
    // first checkpoint and written over in place (a new store's WAL grows
    // at every commit, and each fsync then also writes its size).
    for i in 0..WARM_UP_CHANGES {
        c.submit_change(crate::bench_sync::change(i)).await?;
    }
    let card = CardProfile::builtin("resident")?;
    let mut elapsed = Vec::new();
    let mut ticket_bytes = 0;
    let mut queries_before = 0;
    let mut queries_total = 0;
    let mut asb_before = 0;
    let mut asb_total = 0;
    for i in 0..SAMPLES + 2 {
        sam.place(card.clone());
        c.wait_event(Duration::from_secs(30), |e| {
            matches!(e, Event::CardRead { .. }).then_some(())
        })
        .await
        .context("card read")?;
        let swiped = Instant::now();
        let before = printer.stats();
        let ticket = c.queue_take("personal", true).await?;
        anyhow::ensure!(
            ticket.printed,
            "the ticket did not print: {}",
            ticket.message.en
        );
        let after = printer.stats();
        let last = printer
            .last_ticket_byte_at()
            .context("no ticket reached the printer")?;
        let at_cut = printer
            .stats_at_last_ticket()
            .context("no ticket reached the printer")?;
        if i >= 2 {
            elapsed.push(last.saturating_duration_since(swiped));
            queries_before = at_cut.status_queries - before.status_queries;
            queries_total = after.status_queries - before.status_queries;
            asb_before = at_cut.asb_blocks - before.asb_blocks;
            asb_total = after.asb_blocks - before.asb_blocks;
            ticket_bytes = at_cut.bytes_in - before.bytes_in - queries_before * 3;
        }
        sam.remove();
        c.wait_event(Duration::from_secs(30), |e| {
            matches!(e, Event::CardAbsent { .. }).then_some(())
        })
        .await?;
    }
    let asb_enabled = printer.asb_enabled();
    Ok(QueueFigures {
        adapter,
        elapsed,
        ticket_bytes,
        queries_before,
        queries_total,
        asb_before,
        asb_total,
        asb_enabled,
        plain_commit,
    })
}

/// The median time of 200 plain SQLite commits (WAL, `synchronous=FULL`,
/// one row each) in `dir`, after a warm-up.
fn plain_commit(dir: &std::path::Path) -> Result<Duration> {
    let conn = rusqlite::Connection::open(dir.join("plain.db"))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous=FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);",
    )?;
    // Warmed up past the first checkpoint, as in the sync section.
    for i in 0..crate::bench_sync::WARM_UP {
        conn.execute("INSERT INTO t (n) VALUES (?1)", [i])?;
    }
    let mut each = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        conn.execute("INSERT INTO t (n) VALUES (?1)", [i])?;
        each.push(t.elapsed());
    }
    each.sort();
    Ok(each[each.len() / 2])
}

/// The section for the three set-ups measured by [`measure`].
pub fn report(figures: &[QueueFigures]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADING}\n");
    let Some(first) = figures.first() else {
        return s;
    };
    let ticket_ms = wire_ms(first.ticket_bytes);
    let commit_ms = first.plain_commit.as_secs_f64() * 1000.0;
    let asb_text = if figures.iter().all(|q| q.asb_enabled) {
        "kioskd runs with its default `automatic_status_back = true` and the simulator honours it: kioskd \
         sends `GS a` when it opens the printer and again at the end of every ticket, and the printer \
         answers each with a 4-byte status block (and sends one by itself whenever its status changes). \
         While those blocks are trusted (a block has come since the last `GS a`, ticket, link error or \
         reopen; rule Q4) kioskd reads what has arrived and sends the ticket without asking the printer \
         first."
    } else {
        "Automatic status back was NOT enabled in every set-up of this run (kioskd or the simulator did \
         not use `GS a`): those tickets are preceded by a `DLE EOT` round trip."
    };
    let _ = writeln!(
        s,
        "A queue machine with a serial SAM and a ticket printer at {BAUD} baud. The printer simulator reads at \
         the wire speed of that baud, sends each status reply and status block after its own wire time, and \
         stamps every byte with the time it finished arriving; the figure ends at the last byte of the ticket \
         (not at a status query after it). The client takes a ticket with the swiped card as soon as the \
         `card_read` event arrives. One ticket is {} bytes: **{ticket_ms:.2} ms on the wire**. {asb_text} \
         The ticket number is committed before the ticket is sent (rule Q2: on disk before anything is \
         printed); a plain SQLite commit (WAL, `synchronous=FULL`, same directory, warmed up, median of 200, \
         same run) takes {commit_ms:.2} ms. kioskd's store is first brought to the state of a machine that has been running: \
         {WARM_UP_CHANGES} changes committed through `submit_change` take its WAL past SQLite's first \
         checkpoint, after which it is written over in place (while a new store's WAL grows, each \
         commit's fsync also writes the file's size). No core bank is configured here, so no lookup is made (with one, \
         the rule-I7 lookup runs beside the printing and does not hold the ticket back). {SAMPLES} tickets \
         per row.\n\n\
         Exchanged with the printer, counted by the simulator: before the ticket's last byte, the `DLE EOT` \
         queries and the status blocks in the table's columns (a query is 3 bytes out and 1 back, a block 4 \
         bytes back; all of them are in the wire time of the ratio, the ticket's bytes too); after it, \
         outside the queue's lock, the `GS a` ending the ticket and {} `DLE EOT` queries in one round trip \
         (printer and paper status: the check that notices a printer that died or was unplugged while idle), \
         and {} status block(s) per ticket in all.\n\n\
         *Behind adapters*: the SAM and the printer each sit behind an emulated FTDI-like USB-serial adapter \
         that holds every answer (a status byte, a status block, a SAM frame) for its latency timer, \
         {ADAPTER_SLOW_MS:.0} ms until kioskd lowers it to {ADAPTER_LOW_MS:.0} ms (`low_latency`, \
         `[readers.sam]` and `[printer]`, default on). The swipe's own read is before the `card_read` event, \
         and a status block is pushed by the printer, not waited for: with trusted blocks no adapter hold lies \
         between the swipe and the ticket's last byte, and the wire time is the limit behind adapters too.\n",
        first.ticket_bytes,
        first.queries_total.saturating_sub(first.queries_before),
        first.asb_total,
    );
    // The floor of a round trip before printing applies only where one
    // was made.
    let any_round_trip = figures.iter().any(|q| q.queries_before > 0);
    if any_round_trip {
        let _ = writeln!(
            s,
            "Where a status query is made before the ticket (the rows with `DLE EOT` before it), its answer \
             is held for the adapter's latency timer before kioskd sees it, and the printer must be asked \
             before a ticket is sent to it (rule Q4): with the timer at {ADAPTER_SLOW_MS:.0} ms such a ticket \
             cannot end before {ADAPTER_SLOW_MS:.0} ms plus the wire time, {:.2} × the wire time alone. The \
             last column is the ratio to that floor.\n",
            (ADAPTER_SLOW_MS + ticket_ms + wire_ms_of_status(1))
                / (ticket_ms + wire_ms_of_status(1))
        );
        let _ = writeln!(
            s,
            "| set-up | `DLE EOT` before the ticket | status blocks before it | median | p95 | mean | ratio to the wire time of the bytes exchanged (median) | ratio to that wire time plus the adapter's hold of the answer waited for (median) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    } else {
        let _ = writeln!(
            s,
            "| set-up | `DLE EOT` before the ticket | status blocks before it | median | p95 | mean | ratio to the wire time of the bytes exchanged (median) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    }
    for q in figures {
        let (median, p95, mean) = stats(&q.elapsed);
        let wire = wire_ms(q.ticket_bytes)
            + wire_ms_of_status(q.queries_before)
            + wire_ms(q.asb_before * ASB_BLOCK_BYTES);
        let (setup, hold) = match q.adapter {
            None => ("serial ports", 0.0),
            Some(false) => (
                "behind adapters, low latency off (16 ms per answer)",
                ADAPTER_SLOW_MS,
            ),
            Some(true) => ("behind adapters, low latency on (1 ms)", ADAPTER_LOW_MS),
        };
        let _ = write!(
            s,
            "| {setup} | {} | {} | {median:.2} ms | {p95:.2} ms | {mean:.2} ms | **{:.3}** (goal ≤ 1.10) |",
            q.queries_before,
            q.asb_before,
            median / wire,
        );
        if any_round_trip {
            let held = wire + hold * if q.queries_before > 0 { 1.0 } else { 0.0 };
            let _ = write!(s, " {:.3} |", median / held);
        }
        let _ = writeln!(s);
    }
    s
}

fn wire_ms(bytes: u64) -> f64 {
    bytes as f64 * 10.0 * 1000.0 / f64::from(BAUD)
}

fn wire_ms_of_status(queries: u64) -> f64 {
    wire_ms(queries * STATUS_QUERY_WIRE_BYTES)
}
