//! Push arbitrary bytes into a `FrameDecoder` in arbitrary chunks, drain
//! every frame and parse it every way a transport or simulator would.
//! Run: `cargo xtask fuzz frame_decoder`.
#![no_main]

use kiosk_idcard::frame::{CardData, Decoded, FrameDecoder, format_sam_id};
use kiosk_idcard::{Identity, Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, so one input also explores
    // where frames are cut.
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = FrameDecoder::new();
    for piece in bytes.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Decoded::Frame(payload)) => parse(&payload),
                Ok(Decoded::Incomplete) => break,
                Err(_) => {}
            }
        }
        // Nothing buffered can exceed one capped frame plus a chunk.
        assert!(decoder.buffered() <= 7 + decoder.max_len() + chunk);
    }
});

fn parse(payload: &[u8]) {
    if let Ok(request) = Request::from_payload(payload) {
        let _ = request.command();
        assert_eq!(request.to_frame()[7..7 + payload.len()], *payload);
    }
    if let Ok(response) = Response::from_payload(payload) {
        let _ = format!("{response:?}");
        let _ = response.status().into_result();
        let _ = format_sam_id(&response.data);
        for with_fingerprint in [false, true] {
            if let Ok(card) = CardData::parse(&response.data, with_fingerprint) {
                assert_eq!(card.to_data(), response.data);
                let _ = Identity::decode(&card.text);
            }
        }
    }
}
