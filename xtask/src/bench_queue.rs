//! Queue-machine figure for `cargo xtask bench`: from a swipe (the
//! `card_read` event on the local API) to the last byte of the ticket
//! written to the printer, as a ratio to the serial wire time of the
//! ticket's bytes at the configured baud (the printer simulator emulates
//! that wire time).

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
    elapsed: Vec<Duration>,
    ticket_bytes: u64,
    status_queries_per_ticket: u64,
}

pub async fn measure() -> Result<QueueFigures> {
    let dir = tempfile::tempdir()?;
    let sam_link = dir.path().join("sam0");
    let printer_link = dir.path().join("printer0");
    let sam = SamSim::start(SamSimConfig::new(&sam_link))?;
    let printer = PrinterSim::start(PrinterSimConfig {
        baud: BAUD,
        emulate_wire_time: true,
        ..PrinterSimConfig::new(&printer_link)
    })?;
    let status = std::process::Command::new(crate::processes::bin("kioskd", true))
        .arg("--generate-store-key")
        .arg(dir.path().join("store.key"))
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "cannot create a store key");
    let extra = format!(
        "[[readers]]\nname = \"swipe\"\n\n[readers.sam]\npath = \"{sam}\"\nbaud = 115200\npoll_interval_ms = 50\n\n\
         [store]\npath = \"{db}\"\nkey_file = \"{key}\"\n\n\
         [queue]\ntimezone = \"Asia/Shanghai\"\n\n[[queue.services]]\nid = \"personal\"\nletter = \"A\"\nname_zh = \"个人业务\"\nname_en = \"Personal banking\"\n\n\
         [printer]\nname = \"ticket\"\npath = \"{printer}\"\nbaud = {BAUD}\n",
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
        elapsed,
        ticket_bytes,
        status_queries_per_ticket,
    })
}

pub fn report(q: &QueueFigures) -> String {
    let wire_ms = q.ticket_bytes as f64 * 10.0 * 1000.0 / f64::from(BAUD);
    let status_ms = (q.status_queries_per_ticket * STATUS_QUERY_WIRE_BYTES) as f64 * 10.0 * 1000.0
        / f64::from(BAUD);
    let (median, p95, mean) = stats(&q.elapsed);
    let mut s = String::new();
    let _ = writeln!(s, "\n## Queue ticket: swipe to last ticket byte\n");
    let _ = writeln!(
        s,
        "A queue machine with a serial SAM and a ticket printer at {BAUD} baud (the printer simulator reads at \
         the wire speed of that baud). The client takes a ticket with the swiped card as soon as the `card_read` \
         event arrives. One ticket is {} bytes: **{wire_ms:.1} ms on the wire**. kioskd also checks the \
         printer's status before and after printing ({} `DLE EOT` queries, {status_ms:.1} ms of wire time). \
         No core bank is configured here, so no lookup is made (with one, the rule-I7 lookup runs beside the \
         printing and does not hold the ticket back). {SAMPLES} tickets.\n",
        q.ticket_bytes, q.status_queries_per_ticket
    );
    let _ = writeln!(
        s,
        "| figure | median | p95 | mean | ratio to the ticket's wire time (median) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| `card_read` event → last ticket byte written | {median:.1} ms | {p95:.1} ms | {mean:.1} ms | **{:.2}** |",
        median / wire_ms
    );
    s
}
