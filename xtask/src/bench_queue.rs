//! Queue-machine figure for `cargo xtask bench`: from a swipe (the
//! `card_read` event on the local API) to the last byte of the ticket
//! written to the printer, as a ratio to the serial wire time of the
//! ticket's bytes at the configured baud (the printer simulator emulates
//! that wire time). Measured three ways: plain serial ports, and the SAM
//! and the printer each behind an emulated FTDI-like USB-serial adapter
//! (every answer held for its 16 ms latency timer) with kioskd's
//! `low_latency` off and on.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kiosk_proto::Event;
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig};
use kiosk_sim::{CardProfile, SamSim, SamSimConfig};

use crate::bench_tools::{config, stats, subscribed};
use crate::processes::{Guard, start_kioskd};

const BAUD: u32 = 115_200;
const SAMPLES: usize = 20;
/// `DLE EOT n` is 3 bytes; its answer 1.
const STATUS_QUERY_WIRE_BYTES: u64 = 4;

pub struct QueueFigures {
    /// `None`: plain serial ports; `Some(low_latency)`: behind adapters.
    adapter: Option<bool>,
    elapsed: Vec<Duration>,
    ticket_bytes: u64,
    status_queries_per_ticket: u64,
}

/// The figures of one set-up: `adapter` as in [`QueueFigures::adapter`].
pub async fn measure(adapter: Option<bool>) -> Result<QueueFigures> {
    let dir = tempfile::tempdir()?;
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
    let card = CardProfile::builtin("resident")?;
    let mut elapsed = Vec::new();
    let mut ticket_bytes = 0;
    let mut status_queries_per_ticket = 0;
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
            .last_byte_at()
            .context("no byte reached the printer")?;
        let queries = after.status_queries - before.status_queries;
        if i >= 2 {
            elapsed.push(last.saturating_duration_since(swiped));
            ticket_bytes = after.bytes_in - before.bytes_in - queries * 3;
            status_queries_per_ticket = queries;
        }
        sam.remove();
        c.wait_event(Duration::from_secs(30), |e| {
            matches!(e, Event::CardAbsent { .. }).then_some(())
        })
        .await?;
    }
    Ok(QueueFigures {
        adapter,
        elapsed,
        ticket_bytes,
        status_queries_per_ticket,
    })
}

/// The section for the three set-ups measured by [`measure`].
pub fn report(figures: &[QueueFigures]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Queue ticket: swipe to last ticket byte\n");
    let Some(first) = figures.first() else {
        return s;
    };
    let ticket_ms = wire_ms(first.ticket_bytes);
    let status_ms = wire_ms_of_status(first.status_queries_per_ticket);
    let _ = writeln!(
        s,
        "A queue machine with a serial SAM and a ticket printer at {BAUD} baud (the printer simulator reads at \
         the wire speed of that baud). The client takes a ticket with the swiped card as soon as the `card_read` \
         event arrives. One ticket is {} bytes: **{ticket_ms:.1} ms on the wire**. kioskd also checks the \
         printer's status before and after printing ({} `DLE EOT` queries, {status_ms:.1} ms of wire time). \
         No core bank is configured here, so no lookup is made (with one, the rule-I7 lookup runs beside the \
         printing and does not hold the ticket back). {SAMPLES} tickets per row.\n\n\
         *Behind adapters*: the SAM and the printer each sit behind an emulated FTDI-like USB-serial adapter \
         that holds every answer (a status byte, a SAM frame) for its latency timer, 16 ms until kioskd lowers \
         it to 1 ms (`low_latency`, `[readers.sam]` and `[printer]`, default on). The swipe's own read is \
         before the `card_read` event, so what the adapter costs here is the printer's status answers.\n",
        first.ticket_bytes, first.status_queries_per_ticket
    );
    let _ = writeln!(
        s,
        "| set-up | median | p95 | mean | ratio to the ticket's wire time (median) | ratio to the wire time of the ticket and its status bytes (median) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for q in figures {
        let (median, p95, mean) = stats(&q.elapsed);
        let wire = wire_ms(q.ticket_bytes);
        let with_status = wire + wire_ms_of_status(q.status_queries_per_ticket);
        let setup = match q.adapter {
            None => "serial ports",
            Some(false) => "behind adapters, low latency off (16 ms per answer)",
            Some(true) => "behind adapters, low latency on (1 ms)",
        };
        let _ = writeln!(
            s,
            "| {setup} | {median:.1} ms | {p95:.1} ms | {mean:.1} ms | **{:.2}** | {:.2} |",
            median / wire,
            median / with_status
        );
    }
    s
}

fn wire_ms(bytes: u64) -> f64 {
    bytes as f64 * 10.0 * 1000.0 / f64::from(BAUD)
}

fn wire_ms_of_status(queries: u64) -> f64 {
    wire_ms(queries * STATUS_QUERY_WIRE_BYTES)
}
