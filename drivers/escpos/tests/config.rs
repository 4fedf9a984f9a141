//! Printer configuration.

use kiosk_escpos::{FlowControl, PrinterConfig, TextEncoding, Transport};

#[test]
fn defaults_and_every_key() {
    let c: PrinterConfig = toml::from_str(r#"path = "/dev/serial/by-id/usb-printer""#).unwrap();
    assert_eq!(c, PrinterConfig::new("/dev/serial/by-id/usb-printer"));
    assert_eq!(c.baud, 9600);
    assert_eq!(c.flow_control, FlowControl::None);
    // Two-byte safe: GBK firmware is the common ground.
    assert_eq!(c.encoding, TextEncoding::Gbk);
    assert_eq!(
        c.raster_fonts,
        [
            "/usr/share/fonts/truetype/hanazono/HanaMinA.ttf",
            "/usr/share/fonts/truetype/hanazono/HanaMinB.ttf"
        ]
        .map(std::path::PathBuf::from)
    );
    c.validate().unwrap();

    let c: PrinterConfig = toml::from_str(
        r#"
        path = "/dev/ttyUSB0"
        baud = 115200
        flow_control = "hardware"
        encoding = "big5"
        write_timeout_ms = 100
        status_timeout_ms = 200
        raster_fonts = ["/opt/fonts/a.ttf"]
        "#,
    )
    .unwrap();
    assert_eq!(c.flow_control, FlowControl::Hardware);
    assert_eq!(c.encoding, TextEncoding::Big5);
    assert_eq!(c.status_timeout().as_millis(), 200);
    assert_eq!(
        c.raster_fonts,
        [std::path::PathBuf::from("/opt/fonts/a.ttf")]
    );
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

#[test]
fn transports_take_their_own_fields_and_serial_stays_the_default() {
    let c: PrinterConfig = toml::from_str(r#"path = "/dev/ttyUSB0""#).unwrap();
    assert_eq!(c.transport, Transport::Serial);
    assert!(c.status);

    let c: PrinterConfig = toml::from_str(
        r#"
        transport = "tcp"
        address = "192.0.2.10:9100"
        connect_timeout_ms = 500
        "#,
    )
    .unwrap();
    assert_eq!(c, {
        let mut want = PrinterConfig::tcp("192.0.2.10:9100");
        want.connect_timeout_ms = 500;
        want
    });
    c.validate().unwrap();

    let c: PrinterConfig = toml::from_str(
        r#"
        transport = "usb"
        path = "/dev/usb/lp0"
        status = false
        "#,
    )
    .unwrap();
    assert_eq!(c.transport, Transport::Usb);
    assert!(!c.status);
    c.validate().unwrap();

    // Each transport refuses the other's field, and wants its own.
    let mut c = PrinterConfig::tcp("192.0.2.10:9100");
    c.path = "/dev/usb/lp0".into();
    assert!(c.validate().is_err());
    let mut c = PrinterConfig::usb("/dev/usb/lp0");
    c.address = Some("192.0.2.10:9100".into());
    assert!(c.validate().is_err());
    assert!(PrinterConfig::usb("").validate().is_err());
    for bad in ["192.0.2.10", "192.0.2.10:0", ":9100", "printer:port"] {
        assert!(PrinterConfig::tcp(bad).validate().is_err(), "{bad}");
    }
    let mut c = PrinterConfig::new("/dev/ttyUSB0");
    c.transport = Transport::Tcp;
    assert!(c.validate().is_err(), "tcp without an address");
    assert!(toml::from_str::<PrinterConfig>("transport = \"lpt\"\npath = \"/x\"").is_err());
}
