//! Branch-queue figures for `cargo xtask bench` (rules Q6, Q7):
//!
//! * a counter's "call next" → the call on every display, with 10 counters
//!   configured and 3 displays following `GET /api/v1/stream`. The
//!   displays are 3 HTTP stream clients here, not browsers (the browser's
//!   own part is the page's handling of one event). Baseline, in the same
//!   run: the time "call next" takes to be answered (it is answered once
//!   the call is committed, and only committed calls are streamed).
//! * the primary's numbering rate while two secondary queue machines take
//!   tickets at once (each prints on its own printer simulator, without
//!   wire time), against the same primary numbering for two HTTP clients
//!   posting `/api/v1/numbers` directly.
//!
//! The branch API runs over plain HTTP on loopback here
//! (`insecure_loopback_http`): the same server without TLS.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kiosk_proto::Client;
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig};
use tokio::sync::mpsc;

use crate::bench_tools::stats;
use crate::processes::{Guard, bin, start_kioskd};

const COUNTERS: usize = 10;
const DISPLAYS: usize = 3;
const CALLS: usize = 60;
/// Tickets per machine in each rate phase.
const RATE_TICKETS: usize = 100;

pub struct BranchFigures {
    /// "call next" sent → answered.
    answered: Vec<Duration>,
    /// "call next" sent → the call on the last of the displays.
    displayed: Vec<Duration>,
    /// Tickets per second, two HTTP clients posting `/api/v1/numbers`.
    direct_rate: f64,
    /// Tickets per second, two secondaries taking and printing at once.
    secondaries_rate: f64,
}

/// A token and its `token_sha256` line from `kioskctl branch-token`.
fn branch_token() -> Result<(String, String)> {
    let out = std::process::Command::new(bin("kioskctl", true))
        .arg("branch-token")
        .output()
        .context("kioskctl branch-token")?;
    ensure!(out.status.success(), "kioskctl branch-token failed");
    let text = String::from_utf8(out.stdout)?;
    let mut token = None;
    let mut line = None;
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("token ") {
            token = Some(t.trim().to_string());
        } else if l.starts_with("token_sha256") {
            line = Some(l.to_string());
        }
    }
    match (token, line) {
        (Some(t), Some(l)) => Ok((t, l)),
        _ => bail!("unexpected kioskctl branch-token output: {text}"),
    }
}

fn store_key(dir: &Path) -> Result<()> {
    let status = std::process::Command::new(bin("kioskd", true))
        .arg("--generate-store-key")
        .arg(dir.join("store.key"))
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "cannot create a store key");
    Ok(())
}

/// A queue machine's config in `dir` with `extra` appended.
fn queue_config(dir: &Path, id: &str, extra: &str) -> Result<std::path::PathBuf> {
    store_key(dir)?;
    let path = dir.join("kiosk.toml");
    std::fs::write(
        &path,
        format!(
            "[kiosk]\nid = \"{id}\"\nbranch_id = \"0101\"\nbranch_name = \"Bench\"\nprofile = \"queue_machine\"\n\n\
             [api]\nsocket = \"{sock}\"\n\n[log]\nlevel = \"warn\"\n\n\
             [store]\npath = \"{db}\"\nkey_file = \"{key}\"\n\n\
             [queue]\ntimezone = \"Asia/Shanghai\"\n\n[[queue.services]]\nid = \"personal\"\nletter = \"A\"\nname_zh = \"个人业务\"\nname_en = \"Personal banking\"\n\n{extra}",
            sock = dir.join("kioskd.sock").display(),
            db = dir.join("kiosk.db").display(),
            key = dir.join("store.key").display(),
        ),
    )?;
    Ok(path)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A number for a queue machine (`POST /api/v1/numbers`).
async fn take(http: &reqwest::Client, url: &str, token: &str) -> Result<()> {
    let r = http
        .post(format!("{url}/api/v1/numbers"))
        .bearer_auth(token)
        .json(&serde_json::json!({"service": "personal"}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "numbers: {}", r.status());
    Ok(())
}

/// One display: follows the stream at `url`, reports every `called` number.
async fn display(http: reqwest::Client, url: String, tx: mpsc::UnboundedSender<(String, Instant)>) {
    let Ok(mut r) = http.get(url).send().await else {
        return;
    };
    let mut buf = String::new();
    let mut event = String::new();
    while let Ok(Some(chunk)) = r.chunk().await {
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find('\n') {
            let line: String = buf.drain(..=end).collect();
            let line = line.trim_end();
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(data) = line.strip_prefix("data: ")
                && event == "called"
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(n) = v["number"].as_str()
                && tx.send((n.to_string(), now)).is_err()
            {
                return;
            }
        }
    }
}

pub async fn measure() -> Result<BranchFigures> {
    let dir = tempfile::tempdir()?;
    let p_dir = dir.path().join("primary");
    std::fs::create_dir_all(&p_dir)?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut branch = format!(
        "[branch]\nrole = \"primary\"\nlisten = \"127.0.0.1:{port}\"\ninsecure_loopback_http = true\n"
    );
    let mut counter_tokens = Vec::new();
    for i in 1..=COUNTERS {
        let (t, line) = branch_token()?;
        let _ = write!(
            branch,
            "\n[[branch.counters]]\nid = \"{i}\"\nservices = [\"personal\"]\n{line}\n"
        );
        counter_tokens.push(t);
    }
    let mut machine_tokens = Vec::new();
    for i in 1..=2 {
        let (t, line) = branch_token()?;
        let _ = write!(branch, "\n[[branch.machines]]\nid = \"Q-{i}\"\n{line}\n");
        machine_tokens.push(t);
    }
    let cfg = queue_config(&p_dir, "K-PRIMARY", &branch)?;
    let primary = start_kioskd(&cfg, &p_dir, true, Stdio::inherit())?;
    let mut guard = Guard(vec![("kioskd (primary)".into(), primary)]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;

    for _ in 0..CALLS + 2 {
        take(&http, &url, &machine_tokens[0]).await?;
    }

    // The displays start where the log is now: a call made before one
    // of them is connected is replayed to it, none is missed.
    let state: serde_json::Value = http
        .get(format!("{url}/api/v1/state"))
        .send()
        .await?
        .json()
        .await?;
    let since = state["last_seq"].as_i64().context("no last_seq")?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut displays = Vec::new();
    for _ in 0..DISPLAYS {
        // A client each: its own connection, as a display has.
        let client = reqwest::Client::builder().build()?;
        displays.push(tokio::spawn(display(
            client,
            format!("{url}/api/v1/stream?since={since}"),
            tx.clone(),
        )));
    }
    drop(tx);
    // The first two calls warm up (connections, caches), not samples.
    let mut answered = Vec::new();
    let mut displayed = Vec::new();
    for i in 0..CALLS + 2 {
        let counter = i % COUNTERS;
        let token = &counter_tokens[counter];
        let id = counter + 1;
        if i >= COUNTERS {
            let r = http
                .post(format!("{url}/api/v1/counters/{id}/serve"))
                .bearer_auth(token)
                .send()
                .await?;
            ensure!(r.status().is_success(), "serve: {}", r.status());
        }
        let sent = Instant::now();
        let r = http
            .post(format!("{url}/api/v1/counters/{id}/call-next"))
            .bearer_auth(token)
            .send()
            .await?;
        let answer_at = Instant::now();
        ensure!(r.status().is_success(), "call-next: {}", r.status());
        let v: serde_json::Value = r.json().await?;
        let number = v["ticket"]["number"]
            .as_str()
            .context("no number in the answer")?
            .to_string();
        let mut seen = 0;
        let mut last = sent;
        while seen < DISPLAYS {
            let (n, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .context("a display did not get the call")?
                .context("the displays stopped")?;
            if n == number {
                seen += 1;
                last = last.max(at);
            }
        }
        if i >= 2 {
            answered.push(answer_at - sent);
            displayed.push(last - sent);
        }
    }
    for d in displays {
        d.abort();
    }

    // The primary's numbering for two HTTP clients at once.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in &machine_tokens {
        let (t, http, url) = (t.clone(), http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..RATE_TICKETS {
                take(&http, &url, &t).await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let direct_rate = (2 * RATE_TICKETS) as f64 / started.elapsed().as_secs_f64();

    // Two secondaries, each with its printer, taking tickets at once.
    let mut printers = Vec::new();
    let mut sockets = Vec::new();
    for (i, token) in machine_tokens.iter().enumerate() {
        let s_dir = dir.path().join(format!("secondary{i}"));
        std::fs::create_dir_all(&s_dir)?;
        let link = s_dir.join("printer0");
        printers.push(PrinterSim::start(PrinterSimConfig::new(&link))?);
        let token_file = s_dir.join("branch.token");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&token_file)?;
            writeln!(f, "{token}")?;
        }
        let extra = format!(
            "[printer]\nname = \"ticket\"\npath = \"{}\"\nbaud = 115200\n\n\
             [branch]\nrole = \"secondary\"\nprimary_url = \"{url}\"\ntoken_file = \"{}\"\n",
            link.display(),
            token_file.display()
        );
        let cfg = queue_config(&s_dir, &format!("K-SECONDARY-{i}"), &extra)?;
        let child = start_kioskd(&cfg, &s_dir, true, Stdio::inherit())?;
        guard.0.push((format!("kioskd (secondary {i})"), child));
        sockets.push(s_dir.join("kioskd.sock"));
    }
    let mut clients = Vec::new();
    for s in &sockets {
        let mut c = Client::connect(s).await?;
        // The printer and the primary link are up once a ticket prints.
        let t = c.queue_take("personal", false).await?;
        ensure!(t.printed, "the secondary did not print: {}", t.message.en);
        clients.push(c);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        tasks.push(tokio::spawn(async move {
            for _ in 0..RATE_TICKETS {
                let t = c.queue_take("personal", false).await?;
                ensure!(t.printed, "not printed: {}", t.message.en);
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secondaries_rate = (2 * RATE_TICKETS) as f64 / started.elapsed().as_secs_f64();
    drop(guard);
    drop(printers);
    Ok(BranchFigures {
        answered,
        displayed,
        direct_rate,
        secondaries_rate,
    })
}

/// The heading of this section in docs/BENCHMARKS.md.
pub const HEADING: &str = "## Branch queue: a call on the displays, numbering for secondaries";

pub fn report(f: &BranchFigures) -> String {
    let mut s = String::new();
    let (a_med, a_p95, a_mean) = stats(&f.answered);
    let (d_med, d_p95, d_mean) = stats(&f.displayed);
    let _ = writeln!(s, "\n{HEADING}\n");
    let _ = writeln!(
        s,
        "A primary queue machine with {COUNTERS} counters configured (branch API over plain HTTP on loopback, \
         the same server without TLS) and {DISPLAYS} displays following `GET /api/v1/stream`. The displays are \
         {DISPLAYS} HTTP stream clients, not browsers. {CALLS} calls, the counters in turn (each serves its \
         previous ticket first, not timed). *On the displays*: from sending `call-next` to the `called` event \
         having reached the last of the {DISPLAYS}. Baseline, same run: `call-next` answered (the call is \
         committed, with its event and audit record, before it is answered or streamed).\n"
    );
    let _ = writeln!(s, "| | median | p95 | mean |");
    let _ = writeln!(s, "|---|---|---|---|");
    let _ = writeln!(
        s,
        "| `call-next` answered (baseline) | {a_med:.2} ms | {a_p95:.2} ms | {a_mean:.2} ms |"
    );
    let _ = writeln!(
        s,
        "| on all {DISPLAYS} displays | {d_med:.2} ms | {d_p95:.2} ms | {d_mean:.2} ms |"
    );
    let _ = writeln!(
        s,
        "\nOn the displays / answered (median): **{:.2}**.\n",
        d_med / a_med
    );
    let _ = writeln!(
        s,
        "The primary's numbering: two secondary queue machines (kioskd, each printing on its own printer \
         simulator without wire time) taking {RATE_TICKETS} tickets each at once, through `queue_take` on their \
         local API; baseline, same run: the same primary numbering for two HTTP clients posting \
         `/api/v1/numbers` at once ({RATE_TICKETS} each). Every number is committed (with its event and audit \
         record) before it is answered.\n"
    );
    let _ = writeln!(s, "| | tickets/s |");
    let _ = writeln!(s, "|---|---|");
    let _ = writeln!(s, "| two HTTP clients (baseline) | {:.0} |", f.direct_rate);
    let _ = writeln!(
        s,
        "| two secondaries, printing | {:.0} |",
        f.secondaries_rate
    );
    let _ = writeln!(
        s,
        "\nTwo secondaries / baseline: **{:.2}**.",
        f.secondaries_rate / f.direct_rate
    );
    s
}
