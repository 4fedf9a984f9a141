//! Integration tests of kiosk-idcard, one module per topic. Vectors are
//! written out byte by byte so a change in the codec shows up as a diff here.

mod frame;
mod identity;
mod idnumber;
mod mask;
mod props;
mod status;
mod usb;

/// Hex string (`"AA AA 00"`) to bytes; test vectors read like trace logs.
pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("test vector is hex"))
        .collect()
}
