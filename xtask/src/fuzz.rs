//! `cargo xtask fuzz [--seconds N] [TARGET...]`: run the cargo-fuzz targets
//! of `fuzz/` one after another, each for a bounded time, and record the
//! figures in the "Fuzzing" section of docs/RELIABILITY.md.
//!
//! * cargo-fuzz is installed (`cargo install --locked cargo-fuzz`) when
//!   missing. With `-s none` cargo-fuzz 0.13 passes rustc no `-Z` flag (the
//!   sancov passes are `-C` options), so the stable toolchain builds the
//!   targets; `RUSTC_BOOTSTRAP=1` is set for the fuzz build only (never the
//!   workspace) so that cargo-fuzz versions or options that do use `-Z`
//!   flags work on stable too.
//! * No sanitizer (`-s none`): the code under test forbids `unsafe`, so
//!   AddressSanitizer would mostly halve the executions. What is looked for
//!   is panics (debug assertions and overflow checks are on), hangs
//!   (`-timeout`) and runaway memory (`-rss_limit_mb`).
//! * Each target reads, in this order, its growing corpus
//!   `fuzz/corpus/TARGET` (not committed), its seeds `fuzz/seeds/TARGET`
//!   (small real vectors from the tests) and its regressions
//!   `fuzz/regressions/TARGET`, so every earlier crash is replayed first.
//! * A crash, hang or OOM: the input is copied to `fuzz/regressions/TARGET/`
//!   with what to do next, and the command exits non-zero.
//! * Fuzzers run under `nice -n 19`, one at a time (machines are shared).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::root;

/// The targets, with what each one checks (for the table).
pub const TARGETS: &[(&str, &str)] = &[
    (
        "frame_decoder",
        "GA 467 frames pushed in arbitrary chunks; every frame parsed as request, response, SAM id and card data (round trips)",
    ),
    (
        "text_block",
        "ID card text blocks (all card types) and the appended-address block; decode/encode round trip",
    ),
    (
        "escpos_status",
        "`DLE EOT n` replies to each query and as a 4-byte status (byte round trip); printer text in every encoding has no control byte",
    ),
    (
        "api_line",
        "local API bytes framed as kioskd reads them (`LinesCodec`, arbitrary reads, over-long and non-UTF-8 lines), parsed as kioskd does (`RequestLine`, `Request::from_line`, request round trip) and as clients do (`ServerLine`); framing checked with a small limit",
    ),
    (
        "config",
        "`Config::parse` and `Config::problems` on any text: agree on validity, every problem names a key or a line",
    ),
];

const DEFAULT_SECONDS: u64 = 600;
const SECTION: &str = "## Fuzzing";

/// What one run gave.
#[derive(Debug, Clone)]
struct Outcome {
    target: String,
    seconds: u64,
    execs: u64,
    corpus: usize,
    coverage: Option<u64>,
    peak_rss_mb: Option<u64>,
    /// `None` when no crash; otherwise the input kept as a regression.
    crash: Option<String>,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets: Vec<String> = Vec::new();
    let mut write_doc = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().context("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--seconds {value:?} is not a number"))?;
                if seconds == 0 {
                    bail!("--seconds must be at least 1");
                }
            }
            "--no-doc" => write_doc = false,
            // Only type-check the targets (what `cargo xtask test` does).
            "--check" => return check(),
            "--list" => {
                for (name, what) in TARGETS {
                    println!("{name:15} {what}");
                }
                return Ok(());
            }
            name if TARGETS.iter().any(|(t, _)| *t == name) => targets.push(name.to_string()),
            other => bail!(
                "unknown fuzz target or option {other:?}; targets: {}; options: --seconds N, --no-doc, --list, --check",
                TARGETS
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    }

    ensure_cargo_fuzz()?;
    let fuzz_dir = root().join("fuzz");
    // One build for every target, before any clock starts.
    let mut build = cargo_fuzz(&fuzz_dir);
    build.args(["build", "-s", "none"]);
    eprintln!("xtask: cargo fuzz build -s none (RUSTC_BOOTSTRAP=1, nice -n 19)");
    let status = build.status().context("starting cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }

    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_one(&fuzz_dir, target, seconds)?);
    }

    println!();
    println!(
        "{:15} {:>8} {:>14} {:>8} {:>8}  result",
        "target", "seconds", "execs", "corpus", "cov"
    );
    for o in &outcomes {
        println!(
            "{:15} {:>8} {:>14} {:>8} {:>8}  {}",
            o.target,
            o.seconds,
            o.execs,
            o.corpus,
            o.coverage.map_or("-".into(), |c| c.to_string()),
            o.crash
                .as_deref()
                .map_or("no crash".to_string(), |c| format!("CRASH: {c}"))
        );
    }
    if write_doc {
        let doc = root().join("docs/RELIABILITY.md");
        write_section(&doc, &outcomes)?;
        eprintln!("xtask: wrote the Fuzzing section of {}", doc.display());
    }
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if !crashed.is_empty() {
        bail!(
            "{} target(s) crashed: {}. The inputs are in fuzz/regressions/ (see fuzz/regressions/README.md): \
             reproduce with `cargo xtask fuzz --seconds 1 TARGET`, add a regression test in the crate \
             that owns the code, fix it",
            crashed.len(),
            crashed
                .iter()
                .map(|o| o.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Type-check the fuzz project without fuzzing (for `cargo xtask test`):
/// without `link_libfuzzer` (no C++ build), in the workspace's target
/// directory so the dependencies checked by clippy are reused.
pub fn check() -> Result<()> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let manifest = root().join("fuzz/Cargo.toml");
    let target_dir = target_dir.to_string_lossy().into_owned();
    crate::run_in_root(
        &cargo(),
        &[
            "check",
            "--manifest-path",
            &manifest.to_string_lossy(),
            "--target-dir",
            &target_dir,
            "--no-default-features",
            "--bins",
        ],
    )
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo fuzz` in `fuzz/`, niced, with the bootstrap switch for stable.
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new("nice");
    cmd.args(["-n", "19"])
        .arg(cargo())
        .arg("fuzz")
        .current_dir(fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1");
    // `cargo run` gave this process xtask's CARGO_PKG_* and CARGO_MANIFEST_*;
    // build scripts that watch those (ring, via rerun-if-env-changed) would
    // rebuild on every switch between `cargo xtask fuzz` and `cargo fuzz`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*key,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&*key);
        }
    }
    cmd
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is missing: cargo install --locked cargo-fuzz");
    let status = Command::new("nice")
        .args(["-n", "19"])
        .arg(cargo())
        .args(["install", "--locked", "cargo-fuzz"])
        .status()
        .context("starting cargo install")?;
    if !status.success() {
        bail!("cargo install --locked cargo-fuzz failed ({status})");
    }
    Ok(())
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

fn run_one(fuzz_dir: &Path, target: &str, seconds: u64) -> Result<Outcome> {
    let corpus = fuzz_dir.join("corpus").join(target);
    let seeds = fuzz_dir.join("seeds").join(target);
    let regressions = fuzz_dir.join("regressions").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let before: Vec<PathBuf> = files_in(&artifacts);

    let mut cmd = cargo_fuzz(fuzz_dir);
    cmd.args(["run", "-s", "none", target]).arg(&corpus);
    for dir in [&seeds, &regressions] {
        if dir.is_dir() {
            cmd.arg(dir);
        }
    }
    cmd.args([
        "--",
        &format!("-max_total_time={seconds}"),
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-max_len=8192",
        "-print_final_stats=1",
    ]);
    cmd.stderr(Stdio::piped()).stdout(Stdio::inherit());
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting cargo fuzz run")?;
    let log_path = fuzz_dir.join("artifacts").join(format!("{target}.log"));
    let mut log = String::new();
    {
        use std::io::{BufRead, BufReader};
        let stderr = child.stderr.take().context("fuzzer stderr")?;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            // Progress lines are many; show the pulses and the end.
            if !line.starts_with('#') || line.contains("DONE") || line.contains("pulse") {
                eprintln!("{line}");
            }
            log.push_str(&line);
            log.push('\n');
        }
    }
    let status = child.wait()?;
    let elapsed = started.elapsed().as_secs();
    std::fs::write(&log_path, &log)?;

    let stat = |name: &str| -> Option<u64> {
        log.lines()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse().ok())
    };
    let execs = stat("number_of_executed_units")
        .or_else(|| last_progress(&log, "#"))
        .unwrap_or(0);
    let coverage = last_progress(&log, "cov: ");
    // libFuzzer's own clock ("Done 123 runs in 610 second(s)"); the wall
    // clock also counts cargo's up-to-date check.
    let fuzzed = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Done ")?.split(" runs in ").nth(1))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or(elapsed);
    let mut outcome = Outcome {
        target: target.to_string(),
        seconds: fuzzed,
        execs,
        corpus: files_in(&corpus).len(),
        coverage,
        peak_rss_mb: stat("peak_rss_mb"),
        crash: None,
    };
    if !status.success() {
        let new: Vec<PathBuf> = files_in(&artifacts)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if new.is_empty() {
            bail!(
                "cargo fuzz run {target} failed ({status}) without leaving an input; log: {}",
                log_path.display()
            );
        }
        std::fs::create_dir_all(&regressions)?;
        let mut kept = Vec::new();
        for input in &new {
            let name = input.file_name().unwrap_or_default();
            let dest = regressions.join(name);
            std::fs::copy(input, &dest)
                .with_context(|| format!("copying {} to {}", input.display(), dest.display()))?;
            kept.push(format!(
                "fuzz/regressions/{target}/{}",
                name.to_string_lossy()
            ));
        }
        eprintln!(
            "xtask: {target} CRASHED; input(s) kept: {}\n  \
             reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none {target} {}\n  \
             then: a regression test in the crate that owns the code (named after what it checks), \
             a fix, and keep the file (every later run replays it); log: {}",
            kept.join(", "),
            kept[0].trim_start_matches("fuzz/"),
            log_path.display()
        );
        outcome.crash = Some(kept.join(", "));
    }
    Ok(outcome)
}

/// The last value after `marker` on a libFuzzer progress line
/// (`#12345 pulse cov: 321 ft: ...`).
fn last_progress(log: &str, marker: &str) -> Option<u64> {
    log.lines()
        .rev()
        .filter(|l| l.starts_with('#'))
        .find_map(|l| {
            let at = l.find(marker)? + marker.len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
}

fn tool_version(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// One table row per target: this run's, or the row already in the file.
fn write_section(doc: &Path, outcomes: &[Outcome]) -> Result<()> {
    let old = std::fs::read_to_string(doc).unwrap_or_default();
    let (before, section, after) = split_section(&old);
    let mut rows: BTreeMap<String, String> = BTreeMap::new();
    for line in section.lines() {
        if let Some(name) = line
            .strip_prefix("| `")
            .and_then(|rest| rest.split('`').next())
            && TARGETS.iter().any(|(t, _)| *t == name)
        {
            rows.insert(name.to_string(), line.to_string());
        }
    }
    let today = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    for o in outcomes {
        let what = TARGETS
            .iter()
            .find(|(t, _)| *t == o.target)
            .map_or("", |(_, w)| *w);
        let rate = o.execs / o.seconds.max(1);
        let result = match &o.crash {
            None => "no crash".to_string(),
            Some(c) => format!("**crash** ({c})"),
        };
        rows.insert(
            o.target.clone(),
            format!(
                "| `{}` | {what} | {today} | {} | {} | {rate} | {} | {} | {} | {result} |",
                o.target,
                o.seconds,
                o.execs,
                o.corpus,
                o.coverage.map_or("-".into(), |c| c.to_string()),
                o.peak_rss_mb.map_or("-".into(), |c| c.to_string()),
            ),
        );
    }

    let mut s = String::new();
    writeln!(s, "{SECTION}")?;
    writeln!(s)?;
    writeln!(
        s,
        "<!-- Generated by `cargo xtask fuzz`; edits here are overwritten. -->"
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "`cargo xtask fuzz [--seconds N] [TARGET...]` runs the cargo-fuzz targets in \
         `fuzz/` one after another, {DEFAULT_SECONDS} s each by default, under `nice -n 19`. \
         It installs cargo-fuzz when missing and builds on the stable toolchain \
         (`RUSTC_BOOTSTRAP=1` for the fuzz build only), without a sanitizer (the code under test forbids `unsafe`; \
         debug assertions and overflow checks are on; a run fails on a panic, a 10 s hang \
         or 2 GiB of memory). Each target starts from its committed seeds \
         (`fuzz/seeds/TARGET`: vectors from the crates' tests and the shipped configs) and \
         replays every input in `fuzz/regressions/TARGET`. A crash exits non-zero and \
         copies the input to `fuzz/regressions/TARGET/`; `fuzz/regressions/README.md` says \
         what to do with it. The fuzz project is not a member of the workspace; \
         `cargo xtask test` only type-checks it."
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "Last runs (rustc: {}; {}; execs/s on a 2-core machine shared with other builds, so \
         they are a floor):",
        tool_version("rustc", &["--version"]),
        tool_version(&cargo(), &["fuzz", "--version"]),
    )?;
    writeln!(s)?;
    writeln!(
        s,
        "| target | what it checks | date | seconds | execs | execs/s | corpus | coverage | peak RSS MB | result |"
    )?;
    writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---|")?;
    for (name, _) in TARGETS {
        if let Some(row) = rows.get(*name) {
            writeln!(s, "{row}")?;
        }
    }
    writeln!(s)?;
    writeln!(
        s,
        "`corpus` is the number of inputs kept in `fuzz/corpus/TARGET` after the run (not \
         committed); `coverage` is libFuzzer's `cov` (edges reached)."
    )?;

    let mut out = String::new();
    out.push_str(before);
    if !before.is_empty() && !before.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(&s);
    if !after.is_empty() {
        out.push('\n');
        out.push_str(after);
    }
    if old.is_empty() {
        out = format!("# Reliability\n\n{out}");
    }
    std::fs::write(doc, out)?;
    Ok(())
}

/// The text before the Fuzzing section, the section (heading to the next
/// `## ` heading) and the text after it. Without the section, all of the
/// text is "before" and the section goes at the end.
fn split_section(text: &str) -> (&str, &str, &str) {
    let Some(start) = text.match_indices(SECTION).map(|(i, _)| i).find(|&i| {
        (i == 0 || text[..i].ends_with('\n')) && text[i..].starts_with(&format!("{SECTION}\n"))
    }) else {
        return (text, "", "");
    };
    let body = start + SECTION.len();
    let end = text[body..]
        .find("\n## ")
        .map_or(text.len(), |i| body + i + 1);
    (&text[..start], &text[start..end], &text[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_section_keeps_the_other_sections() {
        let text = "# Reliability\n\nintro\n\n## Fuzzing\n\nold\n\n## Fault injection\n\nkept\n";
        let (before, section, after) = split_section(text);
        assert_eq!(before, "# Reliability\n\nintro\n\n");
        assert_eq!(section, "## Fuzzing\n\nold\n\n");
        assert_eq!(after, "## Fault injection\n\nkept\n");
        let (before, section, after) = split_section("# R\n\n## Fault injection\n");
        assert_eq!(
            (before, section, after),
            ("# R\n\n## Fault injection\n", "", "")
        );
        // A heading that merely starts with the name is not the section.
        let (_, section, _) = split_section("# R\n\n## Fuzzing harness\n");
        assert_eq!(section, "");
    }

    #[test]
    fn progress_figures_are_read_from_the_last_line() {
        let log = "#2 INITED cov: 10 ft: 11 corp: 1/1b exec/s: 0\n\
                   #4096 pulse cov: 120 ft: 300 corp: 40/2Kb exec/s: 2048\n\
                   Done 5000 runs in 2 second(s)\n";
        assert_eq!(last_progress(log, "cov: "), Some(120));
        assert_eq!(last_progress(log, "#"), Some(4096));
    }
}
