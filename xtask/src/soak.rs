//! `cargo xtask soak [--scale N]`: the fault-injection suite
//! (`tests/e2e/faults.rs`) at scale N (default 10), its summary table
//! printed and written to the "Fault injection" section of
//! docs/RELIABILITY.md (between the markers below; the rest of the file,
//! e.g. the fuzzing section, is kept as it is).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::root;

const BEGIN: &str = "<!-- fault-injection:begin (written by `cargo xtask soak`) -->";
const END: &str = "<!-- fault-injection:end -->";
const DEFAULT_SCALE: u64 = 10;

/// What each scenario does and counts (sizes at scale 1).
const LEGEND: &str = "\
What each row is (sizes at scale 1, multiplied by the scale):

- *reader unplugged during a read*: the SAM's serial port unplugged 0-40 ms after a card \
is placed, plugged back in, the card read again (10); then an ID update through a session. \
Recovery: replug to the next good read.
- *SAM device renamed behind its by-id link*: the SAM vanishes and comes back as another \
`/dev/pts/N` behind the same `by-id` link (3); then an ID update. Recovery: replug to a read.
- *pcscd SIGKILLed and restarted*: under a kioskd reading through it (2). Recovery: pcscd \
accepting clients again to the next good read.
- *printer unplugged mid-ticket*: after 20-120 bytes of a ticket (3); the number is kept \
and reprinted. Recovery: replug to the reprint printed.
- *core bank down / slow / 429 and 5xx / loses answers*: a change submitted every 250 ms \
while the fault lasts (down 6 s, slow 6 s with answers after 2.5 s against a 2 s timeout, \
429/5xx 3 s, lost answers 3 s); injected counts the requests the simulator faulted \
(closed, slowed, refused, answer dropped). Recovery: fault lifted to a change submitted \
then being delivered (behind the backlog).
- *database disk full*: the database's tmpfs filled until kioskd refuses a change \
(`store_unavailable`, \"the local database ... is full: nothing was recorded\") (1). \
Recovery: space freed to the next change acknowledged.
- *kioskd SIGKILL during changes*: the C1/C2 crash test with 100 changes through a flaky \
bank, a kill every 5-25 submissions and 3 while the backlog drains. Recovery: kill to the \
next change acknowledged (kills during submissions only).
- *kioskd SIGKILL during tickets*: the Q2 crash test, 20 kills 0-6 ms into a ticket. \
Recovery: kill to the restarted daemon answering.
- *local API flood by a read-only user during a session*: a read-only local user (a foreign \
process, perl under `setpriv`) opens 64 idle connections and then makes 100 connection \
attempts one after another, each asking `hello`, while a customer's ID update waits on its \
confirmation screen; the technician and the UI's own connection are answered, the customer \
confirms during the attempts and the change is applied once. Injected: connections opened \
and attempted. Recovery: the flood's end to the UI's next answer.
- *kiosk-ui SIGKILL during a session*: the real `kiosk-ui` under Xvfb killed before the \
card, during its read, or on the confirmation screen (3); the session times out with \
nothing recorded; then an ID update. Recovery: the app's restart to connected to kioskd.
";

/// One line of the report the tests append (`KIOSK_FAULT_REPORT`).
#[derive(Debug, Default)]
struct Row {
    injected: u64,
    lost: u64,
    duplicated: u64,
    recover_ms: Vec<u64>,
    runs: u64,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut scale = DEFAULT_SCALE;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scale" => {
                scale = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n >= 1)
                    .context("--scale needs a positive integer")?;
            }
            other => {
                bail!("soak: unknown argument {other:?} (usage: cargo xtask soak [--scale N])")
            }
        }
    }
    let report = tempfile::NamedTempFile::new().context("report file")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The UI scenario SIGKILLs the real kiosk-ui binary.
    crate::run_in_root(&cargo, &["build", "-p", "kiosk-ui", "--bin", "kiosk-ui"])?;
    eprintln!("xtask: cargo test --test tests e2e::faults (KIOSK_SOAK_SCALE={scale})");
    let started = Instant::now();
    let status = Command::new(&cargo)
        .args([
            "test",
            "--test",
            "tests",
            "e2e::faults",
            "--",
            "--nocapture",
        ])
        .env("KIOSK_SOAK_SCALE", scale.to_string())
        .env("KIOSK_FAULT_REPORT", report.path())
        .current_dir(root())
        .status()
        .context("running cargo test")?;
    let elapsed = started.elapsed();
    let rows = read_report(report.path())?;
    let table = table(&rows);
    println!(
        "\nFault injection at scale {scale} ({} s):\n\n{table}",
        elapsed.as_secs()
    );
    if rows.is_empty() {
        bail!("no scenario reported anything");
    }
    let section = format!(
        "{BEGIN}\n## Fault injection\n\n\
         `cargo xtask soak --scale {scale}` ({} s wall clock on this 2-core machine, test build included, debug; \
         `cargo xtask test` runs the same scenarios at scale 1). Each scenario is a \
         test in `tests/e2e/faults.rs`; its size is multiplied by the scale. \
         *Lost*: changes or tickets acknowledged and then missing (for the reader \
         faults also card placements never read once the reader was back); \
         *duplicated*: changes applied or recorded twice, ticket numbers issued or \
         printed twice. *Time to recover*: per injection, from the end of the fault \
         (device back, daemon restarted, bank or disk space back) to the kiosk \
         serving again (a card read, a ticket printed, a change acknowledged or \
         delivered); measured, never asserted.{}\n\n{table}\n{LEGEND}\n{END}",
        elapsed.as_secs(),
        if status.success() {
            String::new()
        } else {
            format!(" **The run failed ({status}): see the test output.**")
        }
    );
    let path = root().join("docs/RELIABILITY.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, replace_section(&old, &section))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    if !status.success() {
        bail!("the fault-injection tests failed ({status})");
    }
    let bad: Vec<_> = rows
        .iter()
        .filter(|(_, r)| r.lost + r.duplicated > 0)
        .map(|(f, _)| f.as_str())
        .collect();
    if !bad.is_empty() {
        bail!("lost or duplicated under: {}", bad.join(", "));
    }
    Ok(())
}

fn read_report(path: &Path) -> Result<BTreeMap<String, Row>> {
    let text = std::fs::read_to_string(path).context("reading the fault report")?;
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("report line {line:?}"))?;
        let fault = v["fault"].as_str().context("fault")?.to_string();
        let row = rows.entry(fault).or_default();
        row.injected += v["injected"].as_u64().unwrap_or(0);
        row.lost += v["lost"].as_u64().unwrap_or(0);
        row.duplicated += v["duplicated"].as_u64().unwrap_or(0);
        row.runs += 1;
        if let Some(ms) = v["recover_ms"].as_array() {
            row.recover_ms
                .extend(ms.iter().filter_map(serde_json::Value::as_u64));
        }
    }
    Ok(rows)
}

fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

fn table(rows: &BTreeMap<String, Row>) -> String {
    let mut t = String::from(
        "| fault | injected | lost | duplicated | time to recover (median / max) |\n\
         |---|---:|---:|---:|---|\n",
    );
    for (fault, r) in rows {
        let mut ms = r.recover_ms.clone();
        ms.sort_unstable();
        let recover = match (ms.get(ms.len() / 2), ms.last()) {
            (Some(median), Some(max)) => format!("{} / {}", seconds(*median), seconds(*max)),
            _ => "never served again".into(),
        };
        t.push_str(&format!(
            "| {fault} | {} | {} | {} | {recover} |\n",
            r.injected, r.lost, r.duplicated
        ));
    }
    t
}

/// `old` with the section between the markers replaced by `section`, or
/// with `section` appended (after a title when the file is new).
fn replace_section(old: &str, section: &str) -> String {
    if let (Some(b), Some(e)) = (old.find(BEGIN), old.find(END))
        && b < e
    {
        return format!("{}{section}{}", &old[..b], &old[e + END.len()..]);
    }
    let mut out = if old.trim().is_empty() {
        "# Reliability\n".to_string()
    } else {
        old.trim_end().to_string() + "\n"
    };
    out.push('\n');
    out.push_str(section);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fault_section_is_replaced() {
        let first = replace_section("", &format!("{BEGIN}\nA\n{END}"));
        assert!(first.starts_with("# Reliability\n"));
        let with_fuzz = format!("{first}\n## Fuzzing\n\nkept\n");
        let second = replace_section(&with_fuzz, &format!("{BEGIN}\nB\n{END}"));
        assert!(second.contains("\nB\n") && !second.contains("\nA\n"));
        assert!(second.contains("## Fuzzing\n\nkept\n"));
        let fuzz_only = "# Reliability\n\n## Fuzzing\n\nkept\n";
        let third = replace_section(fuzz_only, &format!("{BEGIN}\nC\n{END}"));
        assert!(third.starts_with(fuzz_only.trim_end()));
        assert!(third.ends_with(&format!("{END}\n")));
    }
}
