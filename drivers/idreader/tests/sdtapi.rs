//! The vendor-library transport ([`SdtapiSam`]) with real `dlopen`s: a
//! missing library, a library without the `SDT_` functions, and the
//! stand-in library of `sim/sdtapi` on a port that has no device. (Reading
//! cards through the stand-in is tested end to end through kioskd, which
//! can be handed the environment that maps its ports.)

use std::sync::mpsc;
use std::time::Duration;

use kiosk_idreader::{
    DeviceState, ReaderConfig, ReaderDevice, ReaderError, SamLink, SdtapiConfig, SdtapiSam,
};

use crate::util::Events;

const WITHIN: Duration = Duration::from_secs(20);

/// A shared library this process has loaded that is no sdtapi library.
fn some_other_library() -> std::path::PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so") || path.contains("/libc-"))
        .map(std::path::PathBuf::from)
        .expect("libc among the mapped files")
}

#[test]
fn a_missing_library_is_a_library_error_naming_the_file() {
    let err = SdtapiSam::open(&SdtapiConfig::new("/nonexistent/libsdtapi.so", 1001)).unwrap_err();
    assert!(matches!(err, ReaderError::Library(_)), "{err}");
    assert_eq!(err.code(), "library");
    assert!(
        err.to_string().contains("/nonexistent/libsdtapi.so"),
        "{err}"
    );
}

#[test]
fn a_library_without_the_functions_names_the_first_one_missing() {
    let err = SdtapiSam::open(&SdtapiConfig::new(some_other_library(), 1001)).unwrap_err();
    assert!(matches!(err, ReaderError::Library(_)), "{err}");
    assert!(err.to_string().contains("SDT_OpenPort"), "{err}");
}

#[test]
fn the_stand_in_library_on_a_port_without_a_device_is_unplugged() {
    let library = kiosk_sim::sdtapi::library().unwrap();
    // No KIOSK_SDTAPI_SIM_PORT_16 in this process: nothing behind port 16.
    let mut sam = SdtapiSam::new(&SdtapiConfig::new(library, 16));
    let err = sam.reopen().unwrap_err();
    assert!(err.is_unplugged(), "{err}");
    assert!(!sam.is_open());
    assert!(sam.location().ends_with("port 16"));
}

#[test]
fn a_reader_with_an_unusable_library_reports_a_hardware_error_and_stops_cleanly() {
    let (tx, rx) = mpsc::channel();
    let config = ReaderConfig::sdtapi("vendor", SdtapiConfig::new(some_other_library(), 1001));
    let handle = ReaderDevice::spawn(config, tx).unwrap();
    let mut events = Events::new(rx);
    let detail = events.wait_state(WITHIN, DeviceState::HardwareError);
    assert!(
        detail
            .as_deref()
            .unwrap_or_default()
            .contains("SDT_OpenPort"),
        "{detail:?}"
    );
    assert!(handle.is_running());
    let check = handle.check(WITHIN).unwrap();
    assert_eq!(check.state, DeviceState::HardwareError);
    handle.stop();
}

#[test]
fn sdtapi_config_defaults_and_checks() {
    let config: ReaderConfig = toml::from_str(
        r#"
        name = "vendor"
        [sdtapi]
        library = "/opt/reader/libsdtapi.so"
        port = 1001
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.sdtapi,
        Some(SdtapiConfig::new("/opt/reader/libsdtapi.so", 1001))
    );
    assert_eq!(config.poll_interval(), Duration::from_millis(250));

    let unknown = toml::from_str::<ReaderConfig>(
        "name = \"v\"\n[sdtapi]\nlibrary = \"/x.so\"\nport = 1\nbaud = 9600\n",
    );
    assert!(unknown.unwrap_err().to_string().contains("baud"));

    for port in [0, 17, 1000, 1017, -1] {
        let config = ReaderConfig::sdtapi("v", SdtapiConfig::new("/x.so", port));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains(&format!("sdtapi.port {port}")), "{err}");
    }
    for port in [1, 16, 1001, 1016] {
        ReaderConfig::sdtapi("v", SdtapiConfig::new("/x.so", port))
            .validate()
            .unwrap();
    }
    let both = ReaderConfig {
        sam: Some(kiosk_idreader::SamConfig::new("/dev/ttyS0")),
        ..ReaderConfig::sdtapi("v", SdtapiConfig::new("/x.so", 1))
    };
    assert!(
        both.validate()
            .unwrap_err()
            .to_string()
            .contains("give one")
    );
}
