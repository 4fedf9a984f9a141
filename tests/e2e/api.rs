//! The local API itself: answers, refusals with stable codes, graceful stop.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use kiosk_proto::{ClientError, ErrorCode, ResponseEnvelope};

use super::harness::Kioskd;

fn raw_exchange(kioskd: &Kioskd, line: &[u8]) -> ResponseEnvelope {
    let mut s = UnixStream::connect(&kioskd.socket).expect("connect");
    // kioskd answers an over-long line and closes the connection as soon as
    // the limit is passed, so the rest of such a line may not be accepted.
    let written = s.write_all(line).and_then(|()| s.write_all(b"\n"));
    if line.len() <= kiosk_proto::MAX_LINE {
        written.expect("write");
    }
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("read");
    serde_json::from_str(&answer).expect("answer is JSON")
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
    let cases: [(&[u8], ErrorCode); 5] = [
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
    ];
    for (line, code) in cases {
        let answer = raw_exchange(&kioskd, line);
        assert!(!answer.ok);
        assert_eq!(
            answer.error.expect("error").code,
            code,
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    let long = vec![b'x'; kiosk_proto::MAX_LINE + 10];
    let answer = raw_exchange(&kioskd, &long);
    assert_eq!(answer.error.expect("error").code, ErrorCode::LineTooLong);
    // The daemon still serves.
    let mut c = kioskd.client().await;
    c.hello().await.expect("hello after bad input");
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
