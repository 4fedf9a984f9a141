//! Decode arbitrary 256-byte text blocks (and the other fixed-size blocks):
//! never a panic, and whatever decodes survives an encode/decode round trip.
//! Run: `cargo xtask fuzz text_block`.
#![no_main]

use kiosk_idcard::Identity;
use kiosk_idcard::frame::format_sam_id;
use kiosk_idcard::identity::{decode_appended_address, encode_appended_address};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut text = [0x20u8; 256];
    let n = data.len().min(256);
    text[..n].copy_from_slice(&data[..n]);
    if let Ok(identity) = Identity::decode(&text) {
        let _ = format!("{identity:?}");
        let _ = identity.ethnic_name();
        assert_eq!(Identity::decode(&identity.encode()), Ok(identity));
    }
    // Lengths other than 256 too.
    let _ = Identity::decode(data);

    if let Ok(address) = decode_appended_address(data.get(..70).unwrap_or(data)) {
        if address.encode_utf16().count() <= 35 {
            assert_eq!(
                decode_appended_address(&encode_appended_address(&address)),
                Ok(address)
            );
        }
    }
    let _ = format_sam_id(data.get(..16).unwrap_or(data));
});
