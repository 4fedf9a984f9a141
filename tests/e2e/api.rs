//! The local API itself: answers, refusals with stable codes, graceful stop.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use kiosk_proto::{ClientError, ErrorCode, ResponseEnvelope};

use super::harness::{DEADLINE, Kioskd};

/// A raw connection: lines out, answers in.
struct Raw {
    out: UnixStream,
    answers: BufReader<UnixStream>,
}

impl Raw {
    fn connect(kioskd: &Kioskd) -> Raw {
        let out = UnixStream::connect(&kioskd.socket).expect("connect");
        out.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let answers = BufReader::new(out.try_clone().expect("clone"));
        Raw { out, answers }
    }

    /// Send `line` and a newline; read the answer.
    fn exchange(&mut self, line: &[u8]) -> ResponseEnvelope {
        self.out.write_all(line).expect("write");
        self.out.write_all(b"\n").expect("write");
        self.answer()
    }

    fn answer(&mut self) -> ResponseEnvelope {
        let mut answer = String::new();
        self.answers.read_line(&mut answer).expect("read");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
    }

    fn hello(&mut self, id: u64) {
        let a = self.exchange(format!(r#"{{"id":{id},"method":"hello"}}"#).as_bytes());
        assert!(a.ok, "{a:?}");
        assert_eq!(a.id, id);
    }
}

fn error_code(a: ResponseEnvelope) -> ErrorCode {
    assert!(!a.ok, "{a:?}");
    a.error.expect("error").code
}

#[tokio::test]
async fn hello_status_and_readers_answer() {
    let kioskd = Kioskd::start("");
    let mut c = kioskd.client().await;
    let hello = c.hello().await.expect("hello");
    assert_eq!(hello.protocol, kiosk_proto::PROTOCOL_VERSION);
    assert_eq!(hello.kiosk_id, "K-TEST-01");
    let status = c.status().await.expect("status");
    assert_eq!(status.profile, "smart_teller");
    assert!(status.devices.is_empty());
    assert!(c.readers().await.expect("readers").is_empty());
    match c.read_card(Some(10)).await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, ErrorCode::NoReader),
        other => panic!("read_card without a reader: {other:?}"),
    }
}

#[tokio::test]
async fn bad_lines_get_stable_error_codes_and_the_connection_survives() {
    let kioskd = Kioskd::start("");
    // All on one connection: each bad line is answered, the next is served.
    let mut raw = Raw::connect(&kioskd);
    let cases: [(&[u8], ErrorCode); 6] = [
        (b"this is not json", ErrorCode::BadRequest),
        (
            br#"{"id":5,"method":"format_disk"}"#,
            ErrorCode::UnknownMethod,
        ),
        (
            br#"{"id":6,"method":"status","params":{"x":1}}"#,
            ErrorCode::BadRequest,
        ),
        (
            br#"{"id":7,"method":"read_card","params":{"timeout_ms":"soon"}}"#,
            ErrorCode::BadRequest,
        ),
        (
            br#"{"id":8,"method":"status","extra":true}"#,
            ErrorCode::BadRequest,
        ),
        (b"{\"id\":9,\"method\":\"st\xffus\"}", ErrorCode::BadRequest),
    ];
    for (i, (line, code)) in cases.into_iter().enumerate() {
        assert_eq!(
            error_code(raw.exchange(line)),
            code,
            "{}",
            String::from_utf8_lossy(line)
        );
        raw.hello(100 + i as u64);
    }
    // Over-long lines, just past the limit and far past it: one answer
    // each, the rest of the line skipped, and the connection goes on.
    for len in [kiosk_proto::MAX_LINE + 1, 16 * kiosk_proto::MAX_LINE] {
        let mut long = br#"{"id":3,"method":"hello","pad":""#.to_vec();
        long.resize(len, b'x');
        assert_eq!(error_code(raw.exchange(&long)), ErrorCode::LineTooLong);
        raw.hello(200);
    }
    // Exactly at the limit is a line like any other (here: a bad one).
    let mut max = b"{".to_vec();
    max.resize(kiosk_proto::MAX_LINE, b' ');
    assert_eq!(error_code(raw.exchange(&max)), ErrorCode::BadRequest);
    raw.hello(300);
    // Another client is served too.
    let mut c = kioskd.client().await;
    c.hello().await.expect("hello after bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_clients_are_refused_while_the_others_are_served() {
    let kioskd = Kioskd::start_full("max_clients = 4", "", false);
    let mut served: Vec<Raw> = (0..4).map(|_| Raw::connect(&kioskd)).collect();
    for (i, raw) in served.iter_mut().enumerate() {
        raw.hello(i as u64 + 1);
    }
    for _ in 0..32 {
        let mut extra = Raw::connect(&kioskd);
        let a = extra.answer();
        assert_eq!(a.id, 0);
        let err = a.error.clone().expect("error");
        assert_eq!(err.code, ErrorCode::TooManyClients, "{a:?}");
        assert!(err.message.contains("api.max_clients"), "{a:?}");
        // ... and closed: end of stream, nothing more.
        let mut rest = Vec::new();
        let _ = extra.answers.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
    for (i, raw) in served.iter_mut().enumerate() {
        raw.hello(i as u64 + 10);
    }
    // A slot freed is a slot taken: once kioskd has seen the close, a new
    // connection is served (each attempt is refused or served at once).
    drop(served.pop());
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let mut raw = Raw::connect(&kioskd);
        let a = raw.exchange(br#"{"id":42,"method":"hello"}"#);
        if a.ok {
            assert_eq!(a.id, 42);
            break;
        }
        assert_eq!(error_code(a), ErrorCode::TooManyClients);
        assert!(std::time::Instant::now() < deadline, "the slot never freed");
    }
}

/// A client pipelining requests without reading its answers is slowed
/// down by the socket (kioskd stops reading it), not buffered: kioskd's
/// memory stays bounded, another client is answered meanwhile, and every
/// request is answered once the flooding client reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_requests_without_reading_answers_does_not_grow_memory() {
    const REQUESTS: u64 = 100_000;
    const BATCH: u64 = 1_000;
    let kioskd = Kioskd::start("");
    let rss_before = kioskd.memory_bytes("VmRSS");

    let flood = UnixStream::connect(&kioskd.socket).expect("connect");
    let mut writer = flood.try_clone().expect("clone");
    // Non-blocking until the first write that would block: from then on
    // kioskd holds as much of this client's work as it will take (the
    // rest waits in the socket) and the flooder simply blocks.
    writer.set_nonblocking(true).expect("non-blocking");
    let (pushing_tx, pushing) = mpsc::channel::<()>();
    let flooder = std::thread::spawn(move || {
        for batch in 0..REQUESTS / BATCH {
            let mut lines = String::new();
            for i in batch * BATCH..(batch + 1) * BATCH {
                lines.push_str(&format!("{{\"id\":{i},\"method\":\"hello\"}}\n"));
            }
            let mut bytes = lines.as_bytes();
            while !bytes.is_empty() {
                match writer.write(bytes) {
                    Ok(n) => bytes = &bytes[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        writer.set_nonblocking(false).expect("blocking");
                        let _ = pushing_tx.send(());
                    }
                    Err(e) => panic!("flood: {e}"),
                }
            }
        }
        let _ = pushing_tx.send(());
    });
    pushing
        .recv_timeout(DEADLINE)
        .expect("the flood fills the socket");

    // Meanwhile another client is answered.
    let mut other = kioskd.client().await;
    for _ in 0..20 {
        other.hello().await.expect("hello during the flood");
        other.status().await.expect("status during the flood");
    }
    let rss_during = kioskd.memory_bytes("VmRSS");

    // The flooding client reads now: every request is answered, in full.
    let reader = std::thread::spawn(move || {
        let mut answers = BufReader::new(flood);
        let mut seen = vec![false; REQUESTS as usize];
        let mut line = String::new();
        for _ in 0..REQUESTS {
            line.clear();
            answers.read_line(&mut line).expect("answer");
            let a: ResponseEnvelope = serde_json::from_str(&line).expect("JSON answer");
            assert!(a.ok, "{a:?}");
            seen[a.id as usize] = true;
        }
        seen.iter().all(|s| *s)
    });
    flooder.join().expect("flooder");
    assert!(
        reader.join().expect("reader"),
        "every request answered once"
    );
    other.hello().await.expect("hello after the flood");

    // Peak resident memory over the whole flood (VmHWM), against a
    // generous bound: without backpressure each of the 100 000 requests
    // would be held as a task and an answer.
    let bound = 64 * 1024 * 1024;
    let peak = kioskd.memory_bytes("VmHWM");
    assert!(
        peak.saturating_sub(rss_before) < bound,
        "kioskd's resident memory grew from {rss_before} to a peak of {peak} bytes (during: {rss_during})"
    );
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_removes_the_socket() {
    let mut kioskd = Kioskd::start("");
    let mut c = kioskd.client().await;
    c.hello().await.expect("hello");
    let status = kioskd.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(!kioskd.socket.exists(), "socket left behind");
}

#[test]
fn kioskctl_reports_an_unreachable_daemon_with_exit_code_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kioskctl"))
        .args(["--socket"])
        .arg(dir.path().join("none.sock"))
        .arg("status")
        .output()
        .expect("kioskctl");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn kioskd_refuses_a_malformed_config_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[kiosk]\nid = \"K\"\nbranch_id = \"1\"\nbranch_name = \"b\"\nprofile = \"smart_teller\"\n[api]\nmax_clients = -1\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kioskd"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("kioskd");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api.max_clients"), "{err}");
}
