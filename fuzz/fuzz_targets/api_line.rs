//! Feed arbitrary bytes to the local API the way kioskd reads them
//! (`src/api.rs`: tokio-util's `LinesCodec` with `MAX_LINE`, fed in
//! arbitrary chunks; an over-long or non-UTF-8 line is answered and the
//! connection goes on; blank lines skipped; `RequestLine` then
//! `Request::from_line`) and the way a client reads the daemon's lines
//! (`ServerLine`). Never a panic; every request that parses survives
//! `to_line` / JSON / `from_line` unchanged, and every error answer
//! serialises. A second pass with a small line limit checks the framing
//! itself: no line over the limit, the buffer stays bounded, and the codec
//! goes on framing after an over-long line.
//! Run: `cargo xtask fuzz api_line`.
#![no_main]

use kiosk_proto::{MAX_LINE, Request, RequestLine, ResponseEnvelope, ServerLine};
use libfuzzer_sys::fuzz_target;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size (how reads cut the stream) and
    // the small limit of the second pass.
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    frame(bytes, chunk, MAX_LINE, &mut |item| {
        let Some(line) = item else { return };
        request(line);
        if let Ok(server) = serde_json::from_str::<ServerLine>(line) {
            let again = serde_json::to_string(&server).expect("a server line serialises");
            let _ = serde_json::from_str::<ServerLine>(&again);
        }
    });
    let small = usize::from(first % 32) + 1;
    let mut items = 0usize;
    frame(bytes, chunk, small, &mut |item| {
        if let Some(line) = item {
            assert!(line.len() <= small, "{} > {small}", line.len());
        }
        items += 1;
    });
    // One item (a line, or an over-long or non-UTF-8 one kioskd answers)
    // per newline, and one for a last unterminated line: an over-long line
    // never swallows the lines after it.
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    let tail = bytes.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    let expected = newlines + usize::from(!tail.is_empty() && tail != b"\r");
    assert_eq!(items, expected);
});

/// The daemon's reading loop, without the socket: each line goes to
/// `each`, and `None` for an over-long or non-UTF-8 line (kioskd answers
/// those and reads on).
fn frame(bytes: &[u8], chunk: usize, max: usize, each: &mut dyn FnMut(Option<&str>)) {
    let mut codec = LinesCodec::new_with_max_length(max);
    let mut buf = BytesMut::new();
    let pieces = bytes.chunks(chunk);
    let count = pieces.len();
    for (i, piece) in pieces.enumerate() {
        buf.extend_from_slice(piece);
        let eof = i + 1 == count;
        loop {
            let next = if eof {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            };
            match next {
                Ok(Some(line)) => each(Some(&line)),
                Ok(None) => break,
                Err(LinesCodecError::MaxLineLengthExceeded) => each(None),
                Err(LinesCodecError::Io(e)) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
                    each(None);
                }
            }
        }
        // Memory stays bounded: between reads, at most one line's limit.
        assert!(buf.len() <= max, "{} buffered", buf.len());
    }
}

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
