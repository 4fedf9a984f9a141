//! Integration tests of kiosk-idreader against the simulators of kiosk-sim:
//! the SAM on a pseudo-terminal, and a virtual card in pcscd's vpcd reader.
//!
//! One test binary; the modules run in parallel, except that PC/SC tests
//! take pcscd's machine-wide lock through the harness.

mod channel;
mod config;
mod pcsc_reader;
mod sdtapi;
mod serial;
mod usb;
mod util;

/// Profiles of readable cards, one of each kind.
pub fn channel_profiles() -> [&'static str; 9] {
    [
        "resident",
        "resident-longterm",
        "resident-expired",
        "resident-badcheck",
        "resident-appended",
        "resident-fingerprint",
        "foreign-2017",
        "foreign-2023",
        "hkmotw",
    ]
}
