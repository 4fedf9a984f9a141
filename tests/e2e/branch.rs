//! The branch queue end to end (rules Q5, Q7, Q8, Q9): two kioskd
//! processes, a primary queue machine serving the branch API over HTTPS
//! (a certificate from a CA made for the test) and a secondary taking its
//! numbers from it, each with its ticket printer simulator; counters
//! acting over the API with their own tokens; a display following the
//! server-sent event stream, also across a SIGKILL of the primary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiosk_proto::branch::{ActionResult, ErrorBody, QueueState, StreamEvent};
use kiosk_proto::{ClientError, DeviceState, ErrorCode, QueueReport, QueueStatusInfo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use reqwest::StatusCode;

use super::harness::{DEADLINE, Kioskd, wait_device, write_secret};
use super::queue::{Setup, queue_toml, setup, wait_printer};

/// The counters: id, services in order.
const COUNTERS: [(&str, &str); 3] = [
    ("1", r#"["vip", "personal"]"#),
    ("2", r#"["personal"]"#),
    ("3", r#"["corporate", "personal"]"#),
];

/// A CA and a server certificate for 127.0.0.1, written as PEM files.
pub(super) struct Pki {
    pub(super) ca: PathBuf,
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) ca_pem: Vec<u8>,
}

pub(super) fn pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Test branch CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = params.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "queue primary");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("sign");
    let p = Pki {
        ca: dir.join("branch-ca.pem"),
        cert: dir.join("branch.pem"),
        key: dir.join("branch.key"),
        ca_pem: ca.pem().into_bytes(),
    };
    std::fs::write(&p.ca, &p.ca_pem).expect("write CA");
    std::fs::write(&p.cert, cert.pem()).expect("write cert");
    write_secret(&p.key, &key.serialize_pem());
    p
}

pub(super) fn token(seed: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!(
        "{seed}-{}",
        uuid::Uuid::new_v4()
    )))
}

/// A free loopback port (the primary restarts on the same one).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The two queue machines, their printers, the counters' tokens and an
/// HTTPS client trusting the test CA.
struct BranchRig {
    primary: Kioskd,
    secondary: Kioskd,
    p_setup: Setup,
    s_setup: Setup,
    url: String,
    http: reqwest::Client,
    /// Counter id → its token.
    tokens: BTreeMap<String, String>,
    machine_token: String,
    /// The primary's `[metrics] listen` port.
    metrics_port: u16,
}

async fn rig() -> BranchRig {
    let p_setup = setup();
    let s_setup = setup();
    let pki = pki(p_setup.dir.path());
    let port = free_port();
    let metrics_port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let mut tokens = BTreeMap::new();
    let mut counters = String::new();
    for (id, services) in COUNTERS {
        let t = token(id);
        counters.push_str(&format!(
            "\n[[branch.counters]]\nid = \"{id}\"\nservices = {services}\ntoken_sha256 = \"{}\"\n",
            kiosk::config::token_hash(&t)
        ));
        tokens.insert(id.to_string(), t);
    }
    let machine_token = token("machine");
    let primary_toml = format!(
        r#"{queue}
[branch]
role = "primary"
listen = "127.0.0.1:{port}"
tls_cert = "{cert}"
tls_key = "{key}"
{counters}
[[branch.machines]]
id = "Q-2"
token_sha256 = "{machine}"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        queue = queue_toml(p_setup.dir.path(), Some(p_setup.printer.link())),
        cert = pki.cert.display(),
        key = pki.key.display(),
        machine = kiosk::config::token_hash(&machine_token),
    );
    let primary = Kioskd::start_profile("queue_machine", "", &primary_toml, false);
    let token_file = s_setup.dir.path().join("branch.token");
    write_secret(&token_file, &format!("{machine_token}\n"));
    let secondary_toml = format!(
        r#"{queue}
[branch]
role = "secondary"
primary_url = "{url}"
primary_ca = "{ca}"
token_file = "{token}"
primary_timeout_ms = 2000
probe_interval_ms = 200
"#,
        queue = queue_toml(s_setup.dir.path(), Some(s_setup.printer.link())),
        ca = pki.ca.display(),
        token = token_file.display(),
    );
    let secondary = Kioskd::start_profile("queue_machine", "", &secondary_toml, false);
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pki.ca_pem).expect("CA"))
        .timeout(DEADLINE)
        .build()
        .expect("client");
    for k in [&primary, &secondary] {
        let mut events = k.subscriber().await;
        wait_printer(&mut events, DeviceState::Online).await;
    }
    let mut events = secondary.subscriber().await;
    wait_device(&mut events, kiosk::primary::DEVICE, DeviceState::Online).await;
    BranchRig {
        primary,
        secondary,
        p_setup,
        s_setup,
        url,
        http,
        tokens,
        machine_token,
        metrics_port,
    }
}

impl BranchRig {
    /// `POST /api/v1/counters/{counter}/{action}` with `as_counter`'s token.
    async fn act(
        &self,
        as_counter: &str,
        counter: &str,
        action: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut req = self
            .http
            .post(format!("{}/api/v1/counters/{counter}/{action}", self.url))
            .bearer_auth(&self.tokens[as_counter]);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await
    }

    /// An action that must succeed.
    async fn ok(
        &self,
        counter: &str,
        action: &str,
        body: Option<serde_json::Value>,
    ) -> ActionResult {
        let r = self
            .act(counter, counter, action, body)
            .await
            .expect("send");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "{counter} {action}: {text}");
        serde_json::from_str(&text).expect("ActionResult")
    }

    /// An action that must be refused with `status` and `code`.
    async fn refused(
        &self,
        as_counter: &str,
        counter: &str,
        action: &str,
        status: StatusCode,
        code: &str,
    ) {
        let r = self
            .act(as_counter, counter, action, None)
            .await
            .expect("send");
        assert_eq!(r.status(), status, "{as_counter} as {counter}: {action}");
        let body: ErrorBody = r.json().await.expect("error body");
        assert_eq!(body.error.code, code, "{}", body.error.message);
    }
}

/// A server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<i64>,
    event: String,
    data: String,
}

/// Reads `GET /api/v1/stream` frame by frame.
struct SseReader {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl SseReader {
    async fn open(rig: &BranchRig, last_event_id: Option<i64>) -> SseReader {
        SseReader::try_open(&rig.http, &rig.url, last_event_id)
            .await
            .expect("stream")
    }

    /// `None` while the primary does not answer.
    async fn try_open(
        http: &reqwest::Client,
        url: &str,
        last_event_id: Option<i64>,
    ) -> Option<SseReader> {
        let mut req = http
            .get(format!("{url}/api/v1/stream"))
            // The stream stays open: no overall timeout.
            .timeout(std::time::Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.send().await.ok()?;
        assert_eq!(response.status(), StatusCode::OK);
        let ctype = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(ctype.starts_with("text/event-stream"), "{ctype}");
        Some(SseReader {
            response,
            buf: Vec::new(),
        })
    }

    /// The next event (keep-alive comments skipped); `None` when the
    /// stream ended (the primary went away).
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.buf.drain(..pos + 2).collect();
                let text = String::from_utf8(frame).expect("UTF-8");
                let mut sse = Sse {
                    id: None,
                    event: String::new(),
                    data: String::new(),
                };
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        sse.id = Some(v.trim().parse().expect("numeric id"));
                    } else if let Some(v) = line.strip_prefix("event:") {
                        sse.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        sse.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if sse.event.is_empty() && sse.data.is_empty() {
                    continue;
                }
                return Some(sse);
            }
            match tokio::time::timeout(DEADLINE, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.extend_from_slice(&bytes),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => panic!("no stream event within {DEADLINE:?}"),
            }
        }
    }

    async fn state(&mut self) -> QueueState {
        let e = self.next().await.expect("state event");
        assert_eq!(e.event, "state");
        assert!(e.id.is_none(), "the state event carries no id");
        serde_json::from_str(&e.data).expect("QueueState")
    }

    /// Queue events until the one with `seq` (inclusive).
    async fn until(&mut self, seq: i64) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        while out.last().is_none_or(|e: &StreamEvent| e.seq < seq) {
            let e = self.next().await.expect("the stream ended early");
            let ev: StreamEvent = serde_json::from_str(&e.data).expect("StreamEvent");
            assert_eq!(e.id, Some(ev.seq), "the SSE id is the seq");
            assert_eq!(e.event, ev.kind, "the SSE event name is the kind");
            out.push(ev);
        }
        out
    }
}

fn calls(events: &[StreamEvent]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e.kind != "issued")
        .map(|e| {
            (
                e.kind.clone(),
                e.number.clone(),
                e.counter.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_q7_q5_q8_two_queue_machines_one_numbering_and_counters_over_https() {
    let rig = rig().await;
    let mut display = SseReader::open(&rig, None).await;
    let state = display.state().await;
    assert_eq!(state.branch_name, "Test branch");
    assert_eq!(state.counters.len(), 3);
    assert_eq!(state.counters[0].label_zh, "1号窗口");
    assert!(state.services.iter().all(|s| s.waiting == 0));

    // Rule Q7: tickets from both machines share one numbering.
    let mut p = rig.primary.client().await;
    let mut s = rig.secondary.client().await;
    let mut taken = Vec::new();
    for (machine, service) in [
        ("p", "personal"),
        ("s", "personal"),
        ("p", "personal"),
        ("s", "vip"),
        ("s", "personal"),
        ("p", "corporate"),
    ] {
        let c = if machine == "p" { &mut p } else { &mut s };
        let t = c.queue_take(service, false).await.expect("ticket");
        assert!(t.printed, "{machine} printed {}", t.number);
        taken.push((machine, t));
    }
    let numbers: Vec<&str> = taken.iter().map(|(_, t)| t.number.as_str()).collect();
    assert_eq!(numbers, ["A001", "A002", "A003", "V001", "A004", "B001"]);
    // Waiting ahead counts the other machine's tickets too.
    assert_eq!(taken[4].1.waiting_ahead, 3);
    // Each machine printed its own tickets.
    let printed = |setup: &Setup, n: usize| -> Vec<String> {
        setup
            .printer
            .wait_for_tickets(n, DEADLINE)
            .expect("tickets")
            .iter()
            .map(|t| t.texts()[3].to_string())
            .collect()
    };
    assert_eq!(printed(&rig.p_setup, 3), ["A001", "A003", "B001"]);
    assert_eq!(printed(&rig.s_setup, 3), ["A002", "V001", "A004"]);

    // Rule Q8: no token, a wrong token, another counter's token.
    let r = rig
        .http
        .post(format!("{}/api/v1/counters/1/call-next", rig.url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = rig
        .http
        .post(format!("{}/api/v1/counters/1/call-next", rig.url))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    rig.refused("2", "1", "call-next", StatusCode::FORBIDDEN, "forbidden")
        .await;
    let r = rig
        .http
        .post(format!("{}/api/v1/counters/1/call-next", rig.url))
        .bearer_auth(&rig.machine_token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a queue machine is no counter"
    );

    // Rule Q5: counter 1 serves VIP first.
    let v = rig.ok("1", "call-next", None).await;
    assert_eq!(
        (v.ticket.number.as_str(), v.event.kind.as_str()),
        ("V001", "called")
    );
    rig.refused("1", "1", "call-next", StatusCode::CONFLICT, "still_serving")
        .await;
    rig.refused("2", "1", "recall", StatusCode::FORBIDDEN, "forbidden")
        .await;
    rig.ok("1", "recall", None).await;
    rig.ok("1", "serve", None).await;
    // Counter 2 calls A001 and marks it skipped (过号); then A002.
    let a1 = rig.ok("2", "call-next", None).await;
    assert_eq!(a1.ticket.number, "A001");
    rig.refused("3", "3", "skip", StatusCode::CONFLICT, "no_current_ticket")
        .await;
    rig.ok("2", "skip", None).await;
    let a2 = rig.ok("2", "call-next", None).await;
    assert_eq!(a2.ticket.number, "A002");
    // A002 goes to corporate, keeping its number and issue time: counter 3
    // (corporate first) calls it before B001, which was issued later.
    let moved = rig
        .ok(
            "2",
            "transfer",
            Some(serde_json::json!({"service": "corporate"})),
        )
        .await;
    assert_eq!(
        (
            moved.ticket.number.as_str(),
            moved.ticket.service.as_str(),
            moved.ticket.state.as_str()
        ),
        ("A002", "corporate", "waiting")
    );
    assert_eq!(moved.ticket.issued_at_ms, a2.ticket.issued_at_ms);
    assert_eq!(moved.event.from_service.as_deref(), Some("personal"));
    let c3 = rig.ok("3", "call-next", None).await;
    assert_eq!(c3.ticket.number, "A002");
    rig.ok("3", "serve", None).await;
    // A001 comes back the same day and is called again (it is the oldest).
    let back = rig
        .ok(
            "2",
            "reactivate",
            Some(serde_json::json!({"number": "A001"})),
        )
        .await;
    assert_eq!(back.ticket.state, "waiting");
    let again = rig.ok("2", "call-next", None).await;
    assert_eq!(again.ticket.number, "A001");
    let last = rig.ok("2", "serve", None).await;
    let bad = rig
        .act(
            "2",
            "2",
            "reactivate",
            Some(serde_json::json!({"number": "A001"})),
        )
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::CONFLICT, "served is not skipped");

    // The display saw every issue and call, in order, with waiting counts.
    let seen = display.until(last.event.seq).await;
    assert_eq!(
        calls(&seen),
        [
            ("called", "V001", "1"),
            ("recalled", "V001", "1"),
            ("served", "V001", "1"),
            ("called", "A001", "2"),
            ("skipped", "A001", "2"),
            ("called", "A002", "2"),
            ("transferred", "A002", "2"),
            ("called", "A002", "3"),
            ("served", "A002", "3"),
            ("reactivated", "A001", "2"),
            ("called", "A001", "2"),
            ("served", "A001", "2"),
        ]
        .map(|(k, n, c)| (k.to_string(), n.to_string(), c.to_string()))
    );
    assert_eq!(seen.iter().filter(|e| e.kind == "issued").count(), 6);
    assert!(seen.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let after = seen.last().expect("events");
    assert_eq!(after.waiting["personal"], 2, "A003, A004");
    assert_eq!(after.waiting["corporate"], 1, "B001");
    assert_eq!(after.waiting["vip"], 0);
    // Rule Q10: nothing but numbers, services and counters on the wire.
    for e in &seen {
        assert!(!serde_json::to_string(e).expect("json").contains("name"));
    }

    // A display that reconnects with Last-Event-ID gets what it missed.
    let mid = seen[8].seq;
    let mut again_display = SseReader::open(&rig, Some(mid)).await;
    let state = again_display.state().await;
    assert_eq!(state.last_seq, last.event.seq);
    assert_eq!(state.recent_calls[0].number, "A001");
    let replayed = again_display.until(last.event.seq).await;
    assert_eq!(
        replayed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        seen[9..].iter().map(|e| e.seq).collect::<Vec<_>>()
    );

    // `kioskctl queue` works against either machine: the same status and
    // report (rule Q9) from the primary's numbering.
    let mut statuses = Vec::new();
    let mut reports = Vec::new();
    for k in [&rig.primary, &rig.secondary] {
        let out = k.kioskctl(&["--json", "queue", "status"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st: QueueStatusInfo = serde_json::from_slice(&out.stdout).expect("status");
        statuses.push(st);
        let out = k.kioskctl(&["queue", "report", "--csv"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        reports.push(String::from_utf8(out.stdout).expect("csv"));
    }
    assert_eq!(statuses[0], statuses[1]);
    let personal = &statuses[0].services[0];
    assert_eq!(
        (personal.service.as_str(), personal.waiting),
        ("personal", 2)
    );
    assert_eq!(reports[0], reports[1]);
    let csv: Vec<&str> = reports[0].lines().collect();
    assert!(
        csv[0].starts_with("business_day,service,counter,tickets,served,skipped,wait_median_s")
    );
    let row = |service: &str, counter: &str| -> Vec<String> {
        csv.iter()
            .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f[1] == service && f[2] == counter)
            .unwrap_or_else(|| panic!("no row {service}/{counter}: {csv:?}"))
    };
    // personal: A001 A003 A004 (A002 moved to corporate); served A001.
    assert_eq!(row("personal", "")[3..6], ["3", "1", "0"]);
    assert_eq!(row("corporate", "")[3..6], ["2", "1", "0"]);
    assert_eq!(row("vip", "")[3..6], ["1", "1", "0"]);
    // Counter 2 last called A001 (served); counter 3 A002 (served).
    assert_eq!(row("", "2")[3..6], ["1", "1", "0"]);
    assert_eq!(row("", "3")[3..6], ["1", "1", "0"]);
    let out = rig.secondary.kioskctl(&["--json", "queue", "report"]);
    let report: QueueReport = serde_json::from_slice(&out.stdout).expect("report");
    assert!(report.rows[0].waiting.max_s.is_some());

    // Rule Q9 in the metrics: waiting per service and the longest wait,
    // labelled by service only.
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", rig.metrics_port))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    for line in [
        "kiosk_queue_waiting{service=\"personal\"} 2",
        "kiosk_queue_waiting{service=\"corporate\"} 1",
        "kiosk_queue_waiting{service=\"vip\"} 0",
        "kiosk_queue_longest_wait_seconds{service=\"vip\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kiosk_queue_longest_wait_seconds{service=\"personal\"} ")),
        "{metrics}"
    );

    // Rule Q8: every counter action is in the primary's audit trail with
    // its counter and ticket (and the chain holds).
    drop(p);
    drop(s);
    let store = kiosk::store::Store::open(
        &rig.p_setup.dir.path().join("kiosk.db"),
        &rig.p_setup.dir.path().join("store.key"),
        &kiosk::store::StoreOptions::default(),
    )
    .expect("the primary's store");
    let records = store.audit().audit_records(0, 1000).expect("audit");
    let by_counters: Vec<_> = records.iter().filter(|r| r.actor == "counter").collect();
    assert_eq!(by_counters.len(), 12, "one record per action");
    assert!(
        by_counters
            .iter()
            .all(|r| r.subject.is_some() && r.detail.contains("counter "))
    );
    assert!(
        records
            .iter()
            .any(|r| r.actor == "queue_machine" && r.detail.contains("for queue machine Q-2"))
    );
    assert!(store.audit().audit_verify().expect("verify").ok());
}

/// A primary on plain loopback HTTP with `extra` in its `[branch]`.
fn plain_primary(s: &Setup, port: u16, extra: &str) -> Kioskd {
    let toml = format!(
        "{}\n[branch]\nrole = \"primary\"\nlisten = \"127.0.0.1:{port}\"\ninsecure_loopback_http = true\n{extra}\n",
        queue_toml(s.dir.path(), None),
    );
    Kioskd::start_profile("queue_machine", "", &toml, false)
}

/// Whether kioskd closes `conn` by itself (a read ends) before
/// [`DEADLINE`]; `false` if it keeps it open that long.
async fn closed_by_kioskd(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(DEADLINE, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (a 408): keep reading until it closes.
            Ok(Ok(_)) => {}
        }
    }
}

/// A LAN client opening connection after connection gets no more than
/// `branch.max_connections`: the one past the limit is closed at once
/// (the old primary accepted them all and kept each open for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_api_closes_connections_past_its_limit() {
    let s = setup();
    let port = free_port();
    let _k = plain_primary(
        &s,
        port,
        "max_connections = 2\nrequest_header_timeout_ms = 600000",
    );
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    // Two displays follow the stream: both places taken, and known to be
    // (their first event has arrived).
    let mut displays = Vec::new();
    for _ in 0..2 {
        let mut d = SseReader::try_open(&http, &url, None)
            .await
            .expect("stream");
        d.state().await;
        displays.push(d);
    }
    let mut third = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    assert!(
        closed_by_kioskd(&mut third).await,
        "a connection past branch.max_connections is closed at once"
    );
    assert!(
        http.get(format!("{url}/api/v1/health"))
            .send()
            .await
            .is_err(),
        "no request is served past the limit"
    );
    drop(displays);
}

/// A connection that sends no request (or half of one) is closed after
/// `branch.request_header_timeout_ms`, giving its place back (before, it
/// was kept open for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_api_closes_a_connection_that_sends_no_request() {
    use tokio::io::AsyncWriteExt;
    let s = setup();
    let port = free_port();
    let _k = plain_primary(
        &s,
        port,
        "max_connections = 3\nrequest_header_timeout_ms = 200",
    );
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut half = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    half.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    assert!(
        closed_by_kioskd(&mut silent).await,
        "a silent connection is closed"
    );
    assert!(
        closed_by_kioskd(&mut half).await,
        "half a request is closed"
    );
    // Served again (a third place was free all along: the two come back
    // as their tasks end, just after the sockets close).
    let health: kiosk_proto::branch::Health =
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health"))
            .await
            .expect("health")
            .json()
            .await
            .expect("health body");
    assert_eq!(health.role, "primary");
}

/// Plain HTTP only where the config allows it: on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_api_over_plain_http_on_loopback_when_configured() {
    let s = setup();
    let port = free_port();
    let t = token("c9");
    let toml = format!(
        "{}\n[branch]\nrole = \"primary\"\nlisten = \"127.0.0.1:{port}\"\ninsecure_loopback_http = true\n[[branch.counters]]\nid = \"9\"\nservices = [\"personal\"]\ntoken_sha256 = \"{}\"\n",
        queue_toml(s.dir.path(), None),
        kiosk::config::token_hash(&t)
    );
    let k = Kioskd::start_profile("queue_machine", "", &toml, false);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let health: kiosk_proto::branch::Health = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health body");
    assert_eq!(health.role, "primary");
    let view: kiosk_proto::branch::CounterView = http
        .get(format!("{base}/counters/9"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("counter")
        .json()
        .await
        .expect("counter body");
    assert_eq!(view.counter.label_en, "Counter 9");
    assert!(view.current.is_none());
    let r = http
        .post(format!("{base}/counters/9/call-next"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: ErrorBody = r.json().await.expect("error");
    assert_eq!(body.error.code, "nobody_waiting");
    // The same config on a LAN address is refused.
    let lan = std::fs::read_to_string(&k.config_path)
        .expect("config")
        .replace(&format!("127.0.0.1:{port}"), "0.0.0.0:8443");
    std::fs::write(&k.config_path, lan).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kioskd"))
        .arg("--check")
        .arg("--config")
        .arg(&k.config_path)
        .output()
        .expect("kioskd --check");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("branch.insecure_loopback_http"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_q7_the_secondary_refuses_in_both_languages_while_the_primary_is_down() {
    let mut rig = rig().await;
    let mut s = rig.secondary.client().await;
    let first = s.queue_take("personal", false).await.expect("ticket");
    assert_eq!(first.number, "A001");
    let mut events = rig.secondary.subscriber().await;
    rig.primary.kill();
    let e = s
        .queue_take("personal", false)
        .await
        .expect_err("no number without the primary");
    let ClientError::Api(api) = e else {
        panic!("{e}")
    };
    assert_eq!(api.code, ErrorCode::PrimaryUnreachable);
    assert!(
        api.message.contains("请使用其他取号机或咨询工作人员"),
        "{}",
        api.message
    );
    assert!(
        api.message
            .contains("Please use another queue machine or ask the staff")
    );
    // The technician sees it.
    wait_device(&mut events, kiosk::primary::DEVICE, DeviceState::Offline).await;
    let out = rig.secondary.kioskctl(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("queue_primary") && l.contains("offline")),
        "{text}"
    );
    // Only the one ticket was printed: the refusal printed nothing.
    assert_eq!(
        rig.s_setup
            .printer
            .wait_for_tickets(1, DEADLINE)
            .expect("ticket")
            .len(),
        1
    );
    rig.primary.start_again();
    wait_device(&mut events, kiosk::primary::DEVICE, DeviceState::Online).await;
    let next = s.queue_take("personal", false).await.expect("ticket");
    assert_eq!(next.number, "A002", "the refused attempt used no number");
    let tickets = rig
        .s_setup
        .printer
        .wait_for_tickets(2, DEADLINE)
        .expect("tickets");
    assert_eq!(tickets[1].texts()[3], "A002");
}

/// A counter at work: calls and serves until nobody waits, riding out the
/// primary's restart (a request that got no answer is tried again; a call
/// that was committed but not answered comes back as `still_serving`).
async fn counter_loop(
    http: reqwest::Client,
    url: String,
    id: String,
    token: String,
    answered: Arc<std::sync::Mutex<Vec<StreamEvent>>>,
    calls: Arc<AtomicUsize>,
    four_calls: Arc<tokio::sync::Notify>,
) {
    let post = |action: &'static str| {
        http.post(format!("{url}/api/v1/counters/{id}/{action}"))
            .bearer_auth(&token)
            .send()
    };
    let retry = || tokio::time::sleep(std::time::Duration::from_millis(20));
    loop {
        let r = match post("call-next").await {
            Ok(r) => r,
            Err(_) => {
                retry().await;
                continue;
            }
        };
        match r.status() {
            StatusCode::OK => {
                let Ok(done) = r.json::<ActionResult>().await else {
                    // Cut off mid-answer: the call may be committed; the
                    // next call-next says still_serving if so.
                    continue;
                };
                answered.lock().expect("lock").push(done.event);
                if calls.fetch_add(1, Ordering::SeqCst) + 1 == 4 {
                    four_calls.notify_one();
                }
            }
            StatusCode::CONFLICT => {
                let body: ErrorBody = r.json().await.expect("error body");
                match body.error.code.as_str() {
                    "still_serving" => {}
                    "nobody_waiting" => return,
                    other => panic!("counter {id}: {other}: {}", body.error.message),
                }
            }
            other => panic!("counter {id}: call-next answered {other}"),
        }
        // Serve the current ticket.
        loop {
            match post("serve").await {
                Err(_) => retry().await,
                Ok(r) if r.status() == StatusCode::OK => {
                    if let Ok(done) = r.json::<ActionResult>().await {
                        answered.lock().expect("lock").push(done.event);
                    }
                    break;
                }
                Ok(r) if r.status() == StatusCode::CONFLICT => break,
                Ok(r) => panic!("counter {id}: serve answered {}", r.status()),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_q8_sigkill_of_the_primary_during_calls_loses_no_call_and_repeats_no_number() {
    let mut rig = rig().await;
    let mut issued = BTreeSet::new();
    {
        let mut p = rig.primary.client().await;
        let mut s = rig.secondary.client().await;
        for i in 0..12 {
            let (c, service) = match i % 3 {
                0 => (&mut p, "personal"),
                1 => (&mut s, "personal"),
                _ => (&mut s, "vip"),
            };
            let t = c.queue_take(service, false).await.expect("ticket");
            assert!(issued.insert(t.number.clone()), "{} twice", t.number);
        }
    }
    // A display following the stream, reconnecting with Last-Event-ID.
    let mut display = SseReader::open(&rig, None).await;
    let start = display.state().await;
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(start.last_seq);
    let shown = Arc::new(std::sync::Mutex::new(Vec::<StreamEvent>::new()));
    let display_task = {
        let (http, url, shown) = (rig.http.clone(), rig.url.clone(), shown.clone());
        tokio::spawn(async move {
            let mut last = start.last_seq;
            let mut reader = Some(display);
            loop {
                let Some(r) = reader.as_mut() else {
                    reader = SseReader::try_open(&http, &url, Some(last)).await;
                    if reader.is_none() {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    continue;
                };
                match r.next().await {
                    None => reader = None,
                    Some(e) if e.event == "state" => {}
                    Some(e) => {
                        let ev: StreamEvent = serde_json::from_str(&e.data).expect("event");
                        last = ev.seq;
                        shown.lock().expect("lock").push(ev);
                        let _ = seen_tx.send(last);
                    }
                }
            }
        })
    };
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let four = Arc::new(tokio::sync::Notify::new());
    let counters: Vec<_> = COUNTERS
        .iter()
        .map(|(id, _)| {
            tokio::spawn(counter_loop(
                rig.http.clone(),
                rig.url.clone(),
                id.to_string(),
                rig.tokens[*id].clone(),
                answered.clone(),
                calls.clone(),
                four.clone(),
            ))
        })
        .collect();
    tokio::time::timeout(DEADLINE, four.notified())
        .await
        .expect("four calls");
    // SIGKILL while the counters keep calling, then start it again.
    tokio::task::block_in_place(|| {
        rig.primary.kill();
        rig.primary.start_again();
    });
    for c in counters {
        tokio::time::timeout(DEADLINE * 2, c)
            .await
            .expect("counters done")
            .expect("counter task");
    }
    let state: QueueState = rig
        .http
        .get(format!("{}/api/v1/state", rig.url))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("state body");
    assert!(state.services.iter().all(|s| s.waiting == 0), "all called");
    tokio::time::timeout(DEADLINE, seen_rx.wait_for(|s| *s >= state.last_seq))
        .await
        .expect("the display caught up")
        .expect("display task");
    display_task.abort();
    let shown = shown.lock().expect("lock").clone();
    // No gap, no repeat: every committed event reached the display once.
    let seqs: Vec<i64> = shown.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        ((start.last_seq + 1)..=state.last_seq).collect::<Vec<_>>()
    );
    // Every call a counter was told about is on the display, as told.
    for a in answered.lock().expect("lock").iter() {
        let e = shown
            .iter()
            .find(|e| e.seq == a.seq)
            .unwrap_or_else(|| panic!("call {} ({}) lost", a.number, a.seq));
        assert_eq!(
            (&e.kind, &e.number, &e.counter),
            (&a.kind, &a.number, &a.counter)
        );
    }
    // Each ticket was called exactly once and served once.
    let mut called = BTreeMap::<String, usize>::new();
    let mut served = BTreeSet::new();
    for e in &shown {
        match e.kind.as_str() {
            "called" => *called.entry(e.number.clone()).or_default() += 1,
            "served" => assert!(served.insert(e.number.clone()), "{} served twice", e.number),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(called.keys().cloned().collect::<BTreeSet<_>>(), issued);
    assert!(called.values().all(|n| *n == 1), "{called:?}");
    assert_eq!(served, issued);
    // Numbering goes on after the restart, from both machines.
    let mut p = rig.primary.client().await;
    let mut s = rig.secondary.client().await;
    for c in [&mut p, &mut s] {
        let t = c.queue_take("personal", false).await.expect("ticket");
        assert!(issued.insert(t.number.clone()), "{} issued again", t.number);
    }
}
