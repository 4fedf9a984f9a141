//! Printer configuration.

use kiosk_escpos::{FlowControl, PrinterConfig, TextEncoding};

#[test]
fn defaults_and_every_key() {
    let c: PrinterConfig = toml::from_str(r#"path = "/dev/serial/by-id/usb-printer""#).unwrap();
    assert_eq!(c, PrinterConfig::new("/dev/serial/by-id/usb-printer"));
    assert_eq!(c.baud, 9600);
    assert_eq!(c.flow_control, FlowControl::None);
    assert_eq!(c.encoding, TextEncoding::Gb18030);
    c.validate().unwrap();

    let c: PrinterConfig = toml::from_str(
        r#"
        path = "/dev/ttyUSB0"
        baud = 115200
        flow_control = "hardware"
        encoding = "big5"
        write_timeout_ms = 100
        status_timeout_ms = 200
        "#,
    )
    .unwrap();
    assert_eq!(c.flow_control, FlowControl::Hardware);
    assert_eq!(c.encoding, TextEncoding::Big5);
    assert_eq!(c.status_timeout().as_millis(), 200);
}

#[test]
fn unknown_keys_and_zero_values_are_refused() {
    assert!(toml::from_str::<PrinterConfig>("path = \"/x\"\nspeed = 9600").is_err());
    assert!(toml::from_str::<PrinterConfig>("path = \"/x\"\nflow_control = \"rts\"").is_err());
    let mut c = PrinterConfig::new("/x");
    c.baud = 0;
    assert!(c.validate().is_err());
    let mut c = PrinterConfig::new("/x");
    c.status_timeout_ms = 0;
    assert!(c.validate().is_err());
    assert!(PrinterConfig::new("").validate().is_err());
}
