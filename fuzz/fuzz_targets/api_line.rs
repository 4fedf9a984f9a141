//! Feed arbitrary bytes to the local API's line parser the way kioskd does
//! (`src/api.rs`: lines of at most `MAX_LINE` bytes, blank lines skipped,
//! `RequestLine` then `Request::from_line`) and the way a client reads the
//! daemon's lines (`ServerLine`). Never a panic; every request that parses
//! survives `to_line` / JSON / `from_line` unchanged, and every error
//! answer serialises.
//! Run: `cargo xtask fuzz api_line`.
#![no_main]

use kiosk_proto::{MAX_LINE, Request, RequestLine, ResponseEnvelope, ServerLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // tokio-util's LinesCodec: split at '\n', drop one trailing '\r', refuse
    // lines over the limit and lines that are not UTF-8.
    for raw in data.split(|&b| b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE {
            continue;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            continue;
        };
        request(line);
        if let Ok(server) = serde_json::from_str::<ServerLine>(line) {
            let again = serde_json::to_string(&server).expect("a server line serialises");
            let _ = serde_json::from_str::<ServerLine>(&again);
        }
    }
});

fn request(line: &str) {
    if line.trim().is_empty() {
        return;
    }
    let parsed: Result<RequestLine, _> = serde_json::from_str(line);
    let req_line = match parsed {
        Ok(l) => l,
        Err(e) => {
            // The daemon answers id 0 with this message.
            let _ = format!("not a request line: {e}");
            return;
        }
    };
    match Request::from_line(&req_line) {
        Ok(request) => {
            assert_eq!(request.method(), req_line.method);
            let wire = serde_json::to_string(&request.to_line(req_line.id))
                .expect("a request line serialises");
            let back: RequestLine = serde_json::from_str(&wire).expect("our own line parses");
            assert_eq!(back.id, req_line.id);
            assert_eq!(Request::from_line(&back).ok(), Some(request), "{wire}");
        }
        Err(err) => {
            assert!(!err.message.is_empty());
            let answer = ResponseEnvelope {
                id: req_line.id,
                ok: false,
                result: None,
                error: Some(err),
            };
            serde_json::to_string(&answer).expect("an error answer serialises");
        }
    }
}
