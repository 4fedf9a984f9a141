//! kiosk-ui figures for `cargo xtask bench`, on an Xvfb display with the
//! default backend (winit, femtovg on Mesa's software OpenGL):
//!
//! * time to first frame and RSS, against the smallest Slint window
//!   (`ui/examples/first-frame-baseline.rs`) started the same way;
//! * from kioskd emitting a `card_read` event to the end of the frame that
//!   shows it, against one frame at 60 Hz (a screen cannot show anything
//!   sooner than its next refresh);
//! * in process (`kiosk-ui-bench`, Slint's software renderer on the CPU,
//!   1920 x 1080): a pinyin keystroke and a handwriting stroke's end to
//!   the frame showing their candidates, against one frame at 60 Hz; the
//!   RSS with both keyboard engines loaded and used, against the same
//!   screens without them.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use kiosk_sim::{CardProfile, SamSim, SamSimConfig};

use crate::bench_tools::{config, stats, subscribed};
use crate::processes::{Guard, start_kioskd};
use crate::ui::{field, start_ui, start_xvfb, wait_log};

const STARTS: usize = 5;
const EVENTS: usize = 20;
const FRAME_60HZ_MS: f64 = 1000.0 / 60.0;

pub struct UiFigures {
    first_frame_ms: Vec<f64>,
    baseline_first_frame_ms: Vec<f64>,
    rss_kib: u64,
    baseline_rss_kib: u64,
    event_to_frame_ms: Vec<f64>,
    input: InputFigures,
}

/// What `kiosk-ui-bench` printed.
struct InputRun {
    keystroke_ms: Vec<f64>,
    stroke_ms: Vec<f64>,
    rss_kib: u64,
}

struct InputFigures {
    keystroke_ms: Vec<f64>,
    stroke_ms: Vec<f64>,
    rss_kib: u64,
    baseline_rss_kib: u64,
}

/// The keyboard's figures: `kiosk-ui-bench` with its engines, then
/// without them (the RSS baseline).
fn measure_input() -> Result<InputFigures> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run_in_root(
        &cargo,
        &[
            "build",
            "--quiet",
            "--release",
            "-p",
            "kiosk-ui",
            "--features",
            "testing",
            "--bin",
            "kiosk-ui-bench",
        ],
    )?;
    let bench = crate::processes::target_dir().join("release/kiosk-ui-bench");
    let run = |args: &[&str]| -> Result<InputRun> {
        let dir = tempfile::tempdir()?;
        let out = Command::new(&bench)
            .args(args)
            // librime's user directory: removed with `dir`.
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running kiosk-ui-bench")?;
        anyhow::ensure!(out.status.success(), "kiosk-ui-bench failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with('{'))
            .with_context(|| format!("kiosk-ui-bench printed no figures:\n{text}"))?;
        let v: serde_json::Value = serde_json::from_str(line)?;
        let list = |k: &str| -> Vec<f64> {
            v[k].as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                .unwrap_or_default()
        };
        Ok(InputRun {
            keystroke_ms: list("keystroke_ms"),
            stroke_ms: list("stroke_ms"),
            rss_kib: v["rss_kib"].as_u64().unwrap_or(0),
        })
    };
    let with = run(&[])?;
    let without = run(&["--no-engines"])?;
    anyhow::ensure!(
        !with.keystroke_ms.is_empty() && !with.stroke_ms.is_empty(),
        "kiosk-ui-bench measured no keystroke or stroke"
    );
    Ok(InputFigures {
        keystroke_ms: with.keystroke_ms,
        stroke_ms: with.stroke_ms,
        rss_kib: with.rss_kib,
        baseline_rss_kib: without.rss_kib,
    })
}

pub fn build() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run_in_root(
        &cargo,
        &[
            "build",
            "--quiet",
            "--release",
            "-p",
            "kiosk-ui",
            "--bin",
            "kiosk-ui",
            "--example",
            "first-frame-baseline",
        ],
    )
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn measure() -> Result<UiFigures> {
    build()?;
    let input = measure_input()?;
    let mut display = start_xvfb()?;
    let _xvfb = Guard(
        display
            .xvfb
            .take()
            .map(|c| ("Xvfb".to_string(), c))
            .into_iter()
            .collect(),
    );
    measure_on(&display, input)
}

fn measure_on(display: &crate::ui::Display, input: InputFigures) -> Result<UiFigures> {
    let dir = tempfile::tempdir()?;
    // The baseline window.
    let mut baseline_first_frame_ms = Vec::new();
    let mut baseline_rss_kib = 0;
    let example = crate::processes::target_dir().join("release/examples/first-frame-baseline");
    for _ in 0..STARTS {
        let out = Command::new(&example)
            .env("DISPLAY", &display.name)
            .stdin(Stdio::null())
            .output()
            .context("running first-frame-baseline")?;
        let text = String::from_utf8_lossy(&out.stderr);
        let line = text
            .lines()
            .find(|l| l.contains("first frame"))
            .with_context(|| format!("the baseline printed no first frame:\n{text}"))?;
        baseline_first_frame_ms.push(field(line, "first_frame_ms").context("first_frame_ms")?);
        baseline_rss_kib = line
            .split("rss=")
            .nth(1)
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
    }
    // kioskd: a queue machine with a serial SAM (a swipe shows the masked
    // name on the service screen).
    let sam_link = dir.path().join("sam0");
    let sam = SamSim::start(SamSimConfig::new(&sam_link))?;
    let status = Command::new(crate::processes::bin("kioskd", true))
        .arg("--generate-store-key")
        .arg(dir.path().join("store.key"))
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "cannot create a store key");
    let extra = format!(
        "[[readers]]\nname = \"swipe\"\n\n[readers.sam]\npath = \"{sam}\"\nbaud = 115200\npoll_interval_ms = 50\n\n\
         [store]\npath = \"{db}\"\nkey_file = \"{key}\"\n\n\
         [queue]\ntimezone = \"Asia/Shanghai\"\n\n[[queue.services]]\nid = \"personal\"\nletter = \"A\"\nname_zh = \"个人业务\"\nname_en = \"Personal banking\"\n",
        sam = sam_link.display(),
        db = dir.path().join("kiosk.db").display(),
        key = dir.path().join("store.key").display(),
    );
    let cfg = config(dir.path(), &extra)?;
    let text = std::fs::read_to_string(&cfg)?.replace("smart_teller", "queue_machine");
    std::fs::write(&cfg, text)?;
    let kioskd = start_kioskd(&cfg, dir.path(), true, Stdio::inherit())?;
    let mut guard = Guard(vec![("kioskd".into(), kioskd)]);
    // The bench's own client: a card is only read again once kioskd has
    // seen the last one go.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut events = rt.block_on(subscribed(dir.path()))?;
    let socket = dir.path().join("kioskd.sock");
    let mut first_frame_ms = Vec::new();
    for i in 0..STARTS {
        let log = dir.path().join(format!("ui-{i}.log"));
        let mut ui = start_ui(&socket, display, true, &log, &[])?;
        let line = wait_log(&log, &["first frame"], &mut ui, Duration::from_secs(60))?;
        first_frame_ms.push(field(&line, "first_frame_ms").context("first_frame_ms")?);
        wait_log(
            &log,
            &["connected to kioskd"],
            &mut ui,
            Duration::from_secs(60),
        )?;
        if i + 1 < STARTS {
            let _ = ui.kill();
            let _ = ui.wait();
            continue;
        }
        // The last one stays: swipes, alternating two cards so every swipe
        // changes the screen.
        let rss = rss_kib(ui.id());
        let cards = [
            CardProfile::builtin("resident")?,
            CardProfile::builtin("foreign-2023")?,
        ];
        let mut latencies = Vec::new();
        for n in 0..EVENTS + 2 {
            sam.place(cards[n % 2].clone());
            let needle = "event shown";
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let shown: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
                if shown.len() > n {
                    if n >= 2 {
                        latencies.push(field(shown[n], "latency_ms").context("latency_ms")?);
                    }
                    break;
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "kiosk-ui did not show swipe {n}:\n{text}"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            sam.remove();
            rt.block_on(events.wait_event(Duration::from_secs(30), |e| {
                matches!(e, kiosk_proto::Event::CardAbsent { .. }).then_some(())
            }))?;
        }
        guard.0.push(("kiosk-ui".into(), ui));
        return Ok(UiFigures {
            first_frame_ms,
            baseline_first_frame_ms,
            rss_kib: rss,
            baseline_rss_kib,
            event_to_frame_ms: latencies,
            input,
        });
    }
    anyhow::bail!("no kiosk-ui start was measured")
}

pub fn report(f: &UiFigures) -> String {
    let ms = |v: &[f64]| -> Vec<Duration> {
        v.iter()
            .map(|m| Duration::from_secs_f64(m / 1000.0))
            .collect()
    };
    let (ff, ff95, _) = stats(&ms(&f.first_frame_ms));
    let (bf, bf95, _) = stats(&ms(&f.baseline_first_frame_ms));
    let (ev, ev95, evmean) = stats(&ms(&f.event_to_frame_ms));
    let mut s = String::new();
    let _ = writeln!(s, "\n## Touchscreen UI (kiosk-ui)\n");
    let _ = writeln!(
        s,
        "Release build on an Xvfb display with the default backend (winit, femtovg renderer on Mesa's \
         software OpenGL: no GPU here). Baseline: the smallest Slint window (`ui/examples/first-frame-baseline.rs`, \
         one line of text) with the same backend and display, measured in the same run. {STARTS} starts each; \
         {EVENTS} swipes on a queue machine, each showing the masked name of the card swiped.\n"
    );
    let _ = writeln!(s, "| figure | kiosk-ui | baseline | ratio |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| process start → first frame (median, p95) | {ff:.0} ms, {ff95:.0} ms | {bf:.0} ms, {bf95:.0} ms | **{:.2}** |",
        ff / bf
    );
    let _ = writeln!(
        s,
        "| RSS once connected | {:.1} MiB | {:.1} MiB | **{:.2}** |",
        f.rss_kib as f64 / 1024.0,
        f.baseline_rss_kib as f64 / 1024.0,
        f.rss_kib as f64 / f.baseline_rss_kib.max(1) as f64
    );
    let _ = writeln!(
        s,
        "| kioskd's `card_read` event → end of the frame showing it (median, p95, mean) | {ev:.1} ms, {ev95:.1} ms, {evmean:.1} ms | one frame at 60 Hz: {FRAME_60HZ_MS:.1} ms | **{:.2}** |",
        ev / FRAME_60HZ_MS
    );
    let i = &f.input;
    let (ks, ks95, _) = stats(&ms(&i.keystroke_ms));
    let (st, st95, _) = stats(&ms(&i.stroke_ms));
    let _ = writeln!(
        s,
        "\nThe on-screen keyboard (rule A1), in process (`ui/src/bin/kiosk-ui-bench.rs`, release build): the security \
         question's screen on a 1920 × 1080 panel, each frame rendered in full by Slint's software renderer on this \
         machine's CPU (no GPU), librime and Zinnia in the process. {} pinyin keystrokes (five phrases, {} rounds), each \
         timed from the key reaching the UI to the end of the frame showing librime's candidates; {} handwriting strokes \
         (实验小学 from recorded strokes), each from the finger leaving the pad to the end of the frame showing Zinnia's \
         candidates. RSS baseline: the same screens and keys in the same binary without the engines (Latin keys only).\n",
        i.keystroke_ms.len(),
        3,
        i.stroke_ms.len()
    );
    let _ = writeln!(s, "| figure | kiosk-ui | baseline | ratio |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| pinyin keystroke → candidates on screen (median, p95) | {ks:.1} ms, {ks95:.1} ms | one frame at 60 Hz: {FRAME_60HZ_MS:.1} ms | **{:.2}** (p95 {:.2}) |",
        ks / FRAME_60HZ_MS,
        ks95 / FRAME_60HZ_MS
    );
    let _ = writeln!(
        s,
        "| handwriting stroke end → candidates on screen (median, p95) | {st:.1} ms, {st95:.1} ms | one frame at 60 Hz: {FRAME_60HZ_MS:.1} ms | **{:.2}** (p95 {:.2}) |",
        st / FRAME_60HZ_MS,
        st95 / FRAME_60HZ_MS
    );
    let _ = writeln!(
        s,
        "| RSS with both engines loaded and used | {:.1} MiB | {:.1} MiB without them | **{:.2}** |",
        i.rss_kib as f64 / 1024.0,
        i.baseline_rss_kib as f64 / 1024.0,
        i.rss_kib as f64 / i.baseline_rss_kib.max(1) as f64
    );
    s
}

/// The heading of this section in docs/BENCHMARKS.md.
pub const HEADING: &str = "## Touchscreen UI (kiosk-ui)";
