//! The USB bulk transport under the device loop. This machine has no USB
//! bus, so what runs here is the supervision: a reader that is not
//! attached is reported `noDevice` and the loop keeps serving and stops.
//! (The packet framing is tested in kiosk-idcard, endpoint discovery in
//! this crate's unit tests.)

use std::sync::mpsc;
use std::time::Duration;

use kiosk_idreader::{DeviceState, ReaderConfig, ReaderDevice, UsbConfig};

use crate::util::Events;

#[test]
fn a_usb_reader_that_is_not_attached_is_no_device_and_stops_cleanly() {
    let (tx, rx) = mpsc::channel();
    let config = ReaderConfig::usb(
        "usb",
        UsbConfig {
            serial: Some("NOT-HERE".into()),
            ..UsbConfig::default()
        },
    );
    let handle = ReaderDevice::spawn(config, tx).unwrap();
    let mut events = Events::new(rx);
    let detail = events
        .wait_state(Duration::from_secs(20), DeviceState::NoDevice)
        .unwrap_or_default();
    assert!(detail.contains("0400:C35A"), "{detail}");
    let check = handle.check(Duration::from_secs(20)).unwrap();
    assert_eq!(check.state, DeviceState::NoDevice);
    handle.stop();
}
