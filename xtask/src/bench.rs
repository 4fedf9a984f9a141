//! `cargo xtask bench`: the kiosk's figures, written to docs/BENCHMARKS.md.
//!
//! * Card read latency through kioskd with a serial SAM at 115200 baud (the
//!   simulator emulates the wire time of every byte): from the find-card
//!   request that finds the card to the identity event on the local API,
//!   as a ratio to the wire time of every byte of find, select and read.
//!   The polling interval (a serial SAM has no presence events) is stated
//!   on its own, with the measured wait from placement to that request.
//! * kioskd's idle CPU over 10 s and its RSS, with a PC/SC reader (event
//!   driven, no polling) and with a serial SAM (polling find-card).
//! * The branch queue (`bench_branch`): a counter's call on 3 displays,
//!   and the primary's numbering for two secondaries.

use std::fmt::Write as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kiosk_proto::{Client, Event};
use kiosk_sim::{CardProfile, Pcscd, SamSim, SamSimConfig, ViccConfig, VirtualCard};

use crate::bench_tools::{config, stats, subscribed};
use crate::processes::{Guard, start_kioskd};
use crate::root;

const BAUD: u32 = 115_200;
const POLL_MS: u64 = 100;
const SAMPLES: usize = 30;
const IDLE: Duration = Duration::from_secs(10);
/// Bytes on the wire for one read: find (10 + 15), select (10 + 19),
/// read text+photo (10 + 1295).
const READ_WIRE_BYTES: usize = 10 + 15 + 10 + 19 + 10 + 1295;

/// The sections `cargo xtask bench [SECTION...]` can run; all by default.
/// Each owns its part of docs/BENCHMARKS.md (found by its heading), and a
/// run of some sections rewrites only theirs.
const SECTIONS: [&str; 6] = ["read", "idle", "sync", "queue", "branch", "ui"];

pub fn run(args: &[String]) -> Result<()> {
    // Every simulator the benchmarks start in this process (core bank,
    // SAM, printer, card) must be a release build too: run again as one.
    if cfg!(debug_assertions) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = vec!["run", "--release", "--quiet", "-p", "xtask", "--", "bench"];
        cmd.extend(args.iter().map(String::as_str));
        return crate::run_in_root(&cargo, &cmd);
    }
    // `--only SECTION` is accepted too.
    let args: Vec<String> = args.iter().filter(|a| *a != "--only").cloned().collect();
    let selected: Vec<&str> = if args.is_empty() {
        SECTIONS.to_vec()
    } else {
        for a in &args {
            anyhow::ensure!(
                SECTIONS.contains(&a.as_str()),
                "unknown section {a:?}: one of {}",
                SECTIONS.join(", ")
            );
        }
        SECTIONS
            .iter()
            .copied()
            .filter(|s| args.iter().any(|a| a == s))
            .collect()
    };
    let want = |s: &str| selected.contains(&s);
    crate::processes::build_release_binaries(want("ui"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // (heading the section starts with, its text)
    let mut parts: Vec<(&str, String)> = Vec::new();
    if want("read") {
        let latency = rt.block_on(read_latency(None))?;
        // Behind an emulated FTDI-like adapter (16 ms per answer), as kioskd
        // finds it with low latency off and with it on (the default).
        let adapter_slow = rt.block_on(read_latency(Some(false)))?;
        let adapter_low = rt.block_on(read_latency(Some(true)))?;
        parts.push((READ_HEADING, read_report(&latency)));
        parts.push((ADAPTER_HEADING, adapter_report(&adapter_slow, &adapter_low)));
    }
    if want("idle") {
        let idle_pcsc = rt.block_on(idle_pcsc())?;
        let idle_sam = rt.block_on(idle_sam())?;
        parts.push((IDLE_HEADING, idle_report(&idle_pcsc, &idle_sam)));
    }
    if want("sync") {
        let durability = rt.block_on(crate::bench_sync::measure())?;
        parts.push((
            crate::bench_sync::HEADING,
            crate::bench_sync::report(&durability),
        ));
    }
    if want("queue") {
        let mut queue = Vec::new();
        for adapter in [None, Some(false), Some(true)] {
            queue.push(rt.block_on(crate::bench_queue::measure(adapter))?);
        }
        parts.push((
            crate::bench_queue::HEADING,
            crate::bench_queue::report(&queue),
        ));
    }
    if want("branch") {
        let branch = rt.block_on(crate::bench_branch::measure())?;
        parts.push((
            crate::bench_branch::HEADING,
            crate::bench_branch::report(&branch),
        ));
    }
    if want("ui") {
        let ui = crate::bench_ui::measure()?;
        parts.push((crate::bench_ui::HEADING, crate::bench_ui::report(&ui)));
    }
    let path = root().join("docs/BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let report = splice(&old, &header(), &parts);
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("{report}");
    println!("written to {}", path.display());
    Ok(())
}

const READ_HEADING: &str = "## Card read latency";
const IDLE_HEADING: &str = "## Idle kioskd";
const ADAPTER_HEADING: &str = "## Card read behind a USB-serial adapter";

/// `old` with its header replaced and each of `parts` in place of the
/// section that starts with its heading (appended when there is none);
/// the other sections are kept as they were.
fn splice(old: &str, header: &str, parts: &[(&str, String)]) -> String {
    // Split into the header and sections, each starting at a "## " line.
    let mut sections: Vec<String> = Vec::new();
    for line in old.lines() {
        if line.starts_with("## ") || sections.is_empty() {
            sections.push(String::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    let mut body: Vec<String> = sections
        .into_iter()
        .filter(|s| s.starts_with("## "))
        .collect();
    for (heading, text) in parts {
        let text = format!("{}\n\n", text.trim());
        match body.iter_mut().find(|s| s.starts_with(heading)) {
            Some(section) => *section = text,
            None => body.push(text),
        }
    }
    let mut out = format!("{}\n\n", header.trim());
    for section in body {
        out.push_str(&format!("{}\n\n", section.trim()));
    }
    format!("{}\n", out.trim_end())
}

fn header() -> String {
    format!(
        "# Benchmarks\n\nWritten by `cargo xtask bench [read idle sync queue branch ui]` (release builds of kioskd \
         and of every simulator; a run of some sections rewrites only those).\n\nMachine: {}.\n",
        machine()
    )
}

struct Latency {
    /// Find-card request that found the card → identity event, per sample.
    read: Vec<Duration>,
    /// Placement → that find-card request.
    poll_wait: Vec<Duration>,
    /// Placement → identity event.
    total: Vec<Duration>,
}

struct Idle {
    cpu: Duration,
    rss_kib: u64,
}

async fn wait_online(c: &mut Client, reader: &str) -> Result<()> {
    if c.readers()
        .await?
        .iter()
        .any(|r| r.name == reader && r.state == kiosk_proto::DeviceState::Online)
    {
        return Ok(());
    }
    c.wait_event(Duration::from_secs(30), |e| match e {
        Event::DeviceState {
            device,
            state: kiosk_proto::DeviceState::Online,
            ..
        } if device == reader => Some(()),
        _ => None,
    })
    .await?;
    Ok(())
}

/// Card reads through kioskd; with `adapter = Some(low_latency)`, the SAM
/// sits behind an emulated FTDI-like USB-serial adapter and kioskd asks it
/// for low latency or not.
async fn read_latency(adapter: Option<bool>) -> Result<Latency> {
    let dir = tempfile::tempdir()?;
    let link = dir.path().join("sam0");
    let sysfs = dir.path().join("sys");
    let sam = SamSim::start(SamSimConfig {
        emulate_wire_time: true,
        adapter_sysfs: adapter.map(|_| sysfs.clone()),
        ..SamSimConfig::new(&link)
    })?;
    let mut readers = format!(
        "[[readers]]\nname = \"swipe\"\n\n[readers.sam]\npath = \"{}\"\nbaud = {BAUD}\npoll_interval_ms = {POLL_MS}\n",
        link.display()
    );
    if let Some(low_latency) = adapter {
        readers.push_str(&format!(
            "low_latency = {low_latency}\nsysfs = \"{}\"\n",
            sysfs.display()
        ));
    }
    let cfg = config(dir.path(), &readers)?;
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let _guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = subscribed(dir.path()).await?;
    wait_online(&mut c, "swipe").await?;
    let card = CardProfile::builtin("resident")?;
    let mut out = Latency {
        read: Vec::new(),
        poll_wait: Vec::new(),
        total: Vec::new(),
    };
    for i in 0..SAMPLES + 2 {
        // Place at a varying phase of the polling cycle.
        tokio::time::sleep(Duration::from_millis((i as u64 * 37) % POLL_MS)).await;
        let placed = Instant::now();
        sam.place(card.clone());
        c.wait_event(Duration::from_secs(30), |e| match e {
            Event::CardRead { .. } => Some(Ok(())),
            Event::ReadFailed { message, .. } => Some(Err(message.clone())),
            _ => None,
        })
        .await?
        .map_err(|m| anyhow::anyhow!("read failed: {m}"))?;
        let done = Instant::now();
        let found = sam
            .card_found_at()
            .context("the simulator saw no find-card")?;
        if i >= 2 {
            // The first reads warm up caches and the allocator.
            out.read.push(done - found);
            out.poll_wait.push(found.saturating_duration_since(placed));
            out.total.push(done - placed);
        }
        sam.remove();
        c.wait_event(Duration::from_secs(30), |e| {
            matches!(e, Event::CardAbsent { .. }).then_some(())
        })
        .await?;
    }
    Ok(out)
}

/// CPU time (user + system) of a process so far.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    let hz = 100; // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

fn measure_idle(kioskd: &Child) -> Result<Idle> {
    let pid = kioskd.id();
    let before = cpu_time(pid)?;
    std::thread::sleep(IDLE);
    let cpu = cpu_time(pid)? - before;
    Ok(Idle {
        cpu,
        rss_kib: rss_kib(pid)?,
    })
}

async fn idle_pcsc() -> Result<Idle> {
    let dir = tempfile::tempdir()?;
    let card = VirtualCard::start(ViccConfig::default())?;
    let _pcscd = Pcscd::start(&[card.ports()[0]])?;
    let cfg = config(
        dir.path(),
        "[[readers]]\nname = \"desk\"\n\n[readers.pcsc]\nreader = \"Virtual PCD 00 00\"\ntunnel = \"apdu\"\napdu_header = \"FF699600\"\n",
    )?;
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = subscribed(dir.path()).await?;
    wait_online(&mut c, "desk").await?;
    // One read first, so the figure is of a kiosk that has worked.
    card.place(CardProfile::builtin("resident")?);
    c.wait_event(Duration::from_secs(30), |e| {
        matches!(e, Event::CardRead { .. }).then_some(())
    })
    .await?;
    card.remove();
    c.wait_event(Duration::from_secs(30), |e| {
        matches!(e, Event::CardAbsent { .. }).then_some(())
    })
    .await?;
    drop(c);
    let Some((_, child)) = guard.0.first() else {
        bail!("kioskd missing")
    };
    measure_idle(child)
}

async fn idle_sam() -> Result<Idle> {
    let dir = tempfile::tempdir()?;
    let link = dir.path().join("sam0");
    let _sam = SamSim::start(SamSimConfig {
        emulate_wire_time: true,
        ..SamSimConfig::new(&link)
    })?;
    let readers = format!(
        "[[readers]]\nname = \"swipe\"\n\n[readers.sam]\npath = \"{}\"\nbaud = {BAUD}\n",
        link.display()
    );
    let cfg = config(dir.path(), &readers)?;
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let guard = Guard(vec![("kioskd".into(), kioskd)]);
    let mut c = subscribed(dir.path()).await?;
    wait_online(&mut c, "swipe").await?;
    drop(c);
    let Some((_, child)) = guard.0.first() else {
        bail!("kioskd missing")
    };
    measure_idle(child)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| format!("{} GiB", kib / 1024 / 1024))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}, Linux {}", kernel.trim())
}

/// The read behind an emulated USB-serial adapter, low latency off and on.
fn adapter_report(slow: &Latency, low: &Latency) -> String {
    let wire_ms = READ_WIRE_BYTES as f64 * 10.0 * 1000.0 / f64::from(BAUD);
    let mut s = String::new();
    let _ = writeln!(s, "{ADAPTER_HEADING}, {BAUD} baud\n");
    let _ = writeln!(
        s,
        "The same read with the SAM behind an emulated FTDI-like adapter: it holds every answer for its \
         latency timer (16 ms, the driver's default) before passing it on. kioskd lowers the timer to \
         1 ms when it opens the port (`[readers.sam] low_latency`, default on); the first row is with \
         it off. Wire time {wire_ms:.1} ms as above; {SAMPLES} cards each.\n"
    );
    let _ = writeln!(
        s,
        "| low latency | find-card that found the card → identity event, median | p95 | ratio to wire time (median) |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for (name, lat) in [("off (16 ms timer)", slow), ("on (1 ms timer)", low)] {
        let (med, p95, _) = stats(&lat.read);
        let _ = writeln!(
            s,
            "| {name} | {med:.1} ms | {p95:.1} ms | **{:.3}** |",
            med / wire_ms
        );
    }
    s.push('\n');
    s
}

fn read_report(lat: &Latency) -> String {
    let wire_ms = READ_WIRE_BYTES as f64 * 10.0 * 1000.0 / f64::from(BAUD);
    let (read_med, read_p95, read_mean) = stats(&lat.read);
    let (wait_med, wait_p95, wait_mean) = stats(&lat.poll_wait);
    let (total_med, total_p95, _) = stats(&lat.total);
    let mut s = String::new();
    let _ = writeln!(s, "{READ_HEADING}, serial SAM at {BAUD} baud\n");
    let _ = writeln!(
        s,
        "The SAM simulator on a pseudo-terminal delays every answer by the wire time of the request and \
         the answer at {BAUD} baud (8N1, 10 bits a byte). One read exchanges {READ_WIRE_BYTES} bytes \
         (find, select, read text+photo): **{wire_ms:.1} ms on the wire**, the physical limit. \
         kioskd polls find-card every {POLL_MS} ms (a serial SAM has no presence events). \
         {SAMPLES} cards placed at varying phases of the polling cycle.\n"
    );
    let _ = writeln!(
        s,
        "| figure | median | p95 | mean | ratio to wire time (median) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| find-card that found the card → identity event on the local API | {read_med:.1} ms | {read_p95:.1} ms | {read_mean:.1} ms | **{:.3}** (goal ≤ 1.05) |",
        read_med / wire_ms
    );
    let _ = writeln!(
        s,
        "| placement → that find-card (polling wait, interval {POLL_MS} ms) | {wait_med:.1} ms | {wait_p95:.1} ms | {wait_mean:.1} ms | stated on its own |"
    );
    let _ = writeln!(
        s,
        "| placement → identity event (all of it) | {total_med:.1} ms | {total_p95:.1} ms | | |\n"
    );
    let _ = writeln!(
        s,
        "Software (kioskd's decoding, masking, event bus and socket, plus the simulator's own work) adds \
         {:.1} ms at the median, {:.1}% of the wire time.",
        read_med - wire_ms,
        (read_med / wire_ms - 1.0) * 100.0
    );
    s
}

fn idle_report(pcsc: &Idle, sam: &Idle) -> String {
    let pct = |cpu: Duration| cpu.as_secs_f64() / IDLE.as_secs_f64() * 100.0;
    let mut s = String::new();
    let _ = writeln!(s, "{IDLE_HEADING}\n");
    let _ = writeln!(
        s,
        "CPU time used by an idle kioskd over {} s, and its resident memory.\n",
        IDLE.as_secs()
    );
    let _ = writeln!(
        s,
        "| reader | CPU over {} s | share of one core | RSS |",
        IDLE.as_secs()
    );
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| PC/SC (pcscd + vpcd, events, no polling) | {} ms | {:.2}% | {} KiB |",
        pcsc.cpu.as_millis(),
        pct(pcsc.cpu),
        pcsc.rss_kib
    );
    let _ = writeln!(
        s,
        "| serial SAM (find-card every 250 ms) | {} ms | {:.2}% | {} KiB |\n",
        sam.cpu.as_millis(),
        pct(sam.cpu),
        sam.rss_kib
    );
    let _ = writeln!(
        s,
        "CPU time comes from `/proc/PID/stat` (10 ms ticks), so a figure of 0 ms means under one tick. \
         With a PC/SC reader kioskd blocks in `SCardGetStatusChange` and on its socket: the goal is ~0; \
         the RSS goal is under 20 MB."
    );
    s
}

#[cfg(test)]
mod splice_tests {
    use super::splice;

    #[test]
    fn a_run_of_some_sections_rewrites_only_theirs() {
        let doc = "# Benchmarks\n\nold header\n\n## Queue\n\nq\n\n## Touchscreen UI (kiosk-ui)\n\nold\n\n## Later\n\nl\n";
        let new = splice(
            doc,
            "# Benchmarks\n\nnew header",
            &[(
                "## Touchscreen UI (kiosk-ui)",
                "## Touchscreen UI (kiosk-ui)\n\nnew".to_string(),
            )],
        );
        assert_eq!(
            new,
            "# Benchmarks\n\nnew header\n\n## Queue\n\nq\n\n## Touchscreen UI (kiosk-ui)\n\nnew\n\n## Later\n\nl\n"
        );
        let appended = splice("# B\n", "# B", &[("## New", "## New\n\nx".to_string())]);
        assert_eq!(appended, "# B\n\n## New\n\nx\n");
    }
}
