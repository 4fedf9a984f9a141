//! Reader configuration: defaults, unknown keys, validation.

use kiosk_idreader::{Baud, PcscConfig, ReaderConfig, ReaderError, SamConfig, Tunnel};

fn parse(text: &str) -> Result<ReaderConfig, toml::de::Error> {
    toml::from_str(text)
}

#[test]
fn serial_reader_defaults() {
    let config = parse(
        r#"
        name = "counter-1"
        [sam]
        path = "/dev/serial/by-id/usb-SAM"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    let sam = config.sam.as_ref().unwrap();
    assert_eq!(sam.baud, Baud::Auto);
    assert_eq!(sam.poll_interval_ms, 250);
    assert_eq!(sam.response_timeout_ms, 2000);
    assert_eq!(sam.retries, 2);
    assert!(config.pcsc.is_none());
    assert!(!config.read_fingerprint && !config.read_appended_address);
    assert_eq!(sam, &SamConfig::new("/dev/serial/by-id/usb-SAM"));
}

#[test]
fn pcsc_reader_defaults_and_hex_header() {
    let config = parse(
        r#"
        name = "counter-2"
        read_fingerprint = true
        [pcsc]
        reader = "Virtual PCD 00"
        "#,
    )
    .unwrap();
    let pcsc = config.pcsc.as_ref().unwrap();
    assert_eq!(pcsc, &PcscConfig::new("Virtual PCD 00"));
    // No invented tunnel: presence only, which needs a SAM for the data.
    assert_eq!(pcsc.tunnel, Tunnel::None);
    assert_eq!(pcsc.apdu_header, None);
    assert!(pcsc.extended_apdu);
    let e = config.validate().unwrap_err().to_string();
    assert!(
        e.contains("needs a [sam]") && e.contains("apdu_header"),
        "{e}"
    );

    let config = parse(
        r#"
        name = "x"
        [pcsc]
        reader = "ACS"
        tunnel = "apdu"
        apdu_header = "ff 69 96 01"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.pcsc.unwrap().apdu_header,
        Some([0xFF, 0x69, 0x96, 0x01])
    );
    // An apdu tunnel names its reader model's header: there is no default.
    let e = parse("name = \"x\"\n[pcsc]\nreader = \"ACS\"\ntunnel = \"apdu\"\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("apdu_header"), "{e}");
    assert!(parse("name = \"x\"\n[pcsc]\nreader = \"ACS\"\napdu_header = \"FF69\"\n").is_err());
}

#[test]
fn baud_is_auto_or_a_number() {
    let with = |baud: &str| {
        parse(&format!(
            "name = \"x\"\n[sam]\npath = \"/dev/ttyS0\"\nbaud = {baud}\n"
        ))
    };
    assert_eq!(with("\"auto\"").unwrap().sam.unwrap().baud, Baud::Auto);
    assert_eq!(with("57600").unwrap().sam.unwrap().baud, Baud::Fixed(57600));
    assert!(with("\"fast\"").is_err());
    assert!(with("-1").is_err());
    assert!(with("0").unwrap().validate().is_err());
    // Round trip through serde.
    let config = with("9600").unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains("\"baud\":9600"), "{json}");
    assert_eq!(serde_json::from_str::<ReaderConfig>(&json).unwrap(), config);
}

#[test]
fn unknown_keys_are_refused() {
    assert!(parse("name = \"x\"\ncolour = \"red\"\n[sam]\npath = \"/dev/ttyS0\"\n").is_err());
    assert!(parse("name = \"x\"\n[sam]\npath = \"/dev/ttyS0\"\nbaudrate = 9600\n").is_err());
    assert!(parse("name = \"x\"\n[pcsc]\nreader = \"A\"\ntunel = \"apdu\"\n").is_err());
    assert!(parse("name = \"x\"\n[pcsc]\nreader = \"A\"\ntunnel = \"usb\"\n").is_err());
}

#[test]
fn validation() {
    let invalid = |text: &str| match parse(text).unwrap().validate() {
        Err(ReaderError::Config(msg)) => msg,
        other => panic!("{text}: expected a config error, got {other:?}"),
    };
    assert!(invalid("name = \"x\"\n").contains("[pcsc], [sam], [sdtapi] or [usb]"));
    assert!(invalid("name = \"\"\n[sam]\npath = \"/dev/ttyS0\"\n").contains("name"));
    assert!(
        invalid("name = \"x\"\n[pcsc]\nreader = \"A\"\ntunnel = \"none\"\n")
            .contains("needs a [sam]")
    );
    assert!(
        invalid("name = \"x\"\n[pcsc]\nreader = \"A\"\ntunnel = \"control\"\n")
            .contains("control_code")
    );
    assert!(
        invalid("name = \"x\"\n[pcsc]\nreader = \"A\"\ntunnel = \"apdu\"\napdu_header = \"FF699600\"\n[sam]\npath = \"/dev/ttyS0\"\n")
            .contains("tunnel = \"none\"")
    );
    assert!(
        invalid("name = \"x\"\n[sam]\npath = \"/dev/ttyS0\"\npoll_interval_ms = 0\n")
            .contains("poll_interval_ms")
    );

    // PC/SC presence + serial SAM data.
    let both = parse(
        "name = \"x\"\n[pcsc]\nreader = \"A\"\ntunnel = \"none\"\n[sam]\npath = \"/dev/ttyS0\"\n",
    )
    .unwrap();
    both.validate().unwrap();
    let control = parse(
        "name = \"x\"\n[pcsc]\nreader = \"A\"\ntunnel = \"control\"\ncontrol_code = 0x42000DAC\n",
    )
    .unwrap();
    control.validate().unwrap();
    assert_eq!(control.pcsc.unwrap().control_code, Some(0x4200_0DAC));
}

#[test]
fn usb_reader_defaults_and_checks() {
    let config = parse("name = \"usb\"\n[usb]\n").unwrap();
    config.validate().unwrap();
    let usb = config.usb.as_ref().unwrap();
    assert_eq!((usb.vendor_id, usb.product_id), (0x0400, 0xC35A));
    assert_eq!(usb.describe(), "USB 0400:C35A");
    assert_eq!(usb, &kiosk_idreader::UsbConfig::default());

    let config = parse(
        "name = \"usb\"\n[usb]\nvendor_id = 0x1234\nproduct_id = 0xABCD\nserial = \"R-0001\"\n",
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.usb.as_ref().unwrap().describe(),
        "USB 1234:ABCD serial R-0001"
    );
    assert!(
        parse("name = \"usb\"\n[usb]\npid = 1\n")
            .unwrap_err()
            .to_string()
            .contains("pid")
    );
    let two = parse("name = \"usb\"\n[usb]\n[sam]\npath = \"/dev/ttyS0\"\n").unwrap();
    assert!(two.validate().unwrap_err().to_string().contains("give one"));
}
