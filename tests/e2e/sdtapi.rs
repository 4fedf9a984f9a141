//! kioskd reading through a reader vendor's `sdtapi` library
//! (`[readers.sdtapi]`): the stand-in library of `sim/sdtapi`, loaded by
//! kioskd with a real `dlopen`, speaks GA 467 to the SAM simulator on a
//! pseudo-terminal. Every card type, the reader unplugged and replugged,
//! a card pulled mid-read, and libraries that are missing or lack a
//! function.

use kiosk_idcard::CardType;
use kiosk_proto::DeviceState;
use kiosk_sim::{CardProfile, DEFAULT_SAM_ID, SamSim, SamSimConfig};

use super::harness::{Kioskd, next_read, wait_absent, wait_state};

const PORT: i32 = 1001;

fn sdtapi_reader(library: &std::path::Path, port: i32) -> String {
    format!(
        "[[readers]]\nname = \"vendor\"\nread_appended_address = true\n\n[readers.sdtapi]\nlibrary = \"{}\"\nport = {port}\npoll_interval_ms = 50\n",
        library.display()
    )
}

/// A SAM simulator and kioskd reading it through the stand-in library.
fn start(dir: &std::path::Path) -> (SamSim, Kioskd) {
    let link = dir.join("by-id").join("usb-sim-reader-if00");
    let sam = SamSim::start(SamSimConfig::new(&link)).expect("SAM simulator");
    let library = kiosk_sim::sdtapi::library().expect("the sdtapi stand-in library");
    let env = [(
        kiosk_sim::sdtapi::port_env(PORT),
        link.display().to_string(),
    )];
    let kioskd = Kioskd::start_env(&sdtapi_reader(&library, PORT), &env);
    (sam, kioskd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_card_type_is_read_through_the_vendor_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sam, kioskd) = start(dir.path());
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "vendor", DeviceState::Online).await;

    for (profile, card_type) in [
        ("resident", CardType::Resident),
        ("resident-appended", CardType::Resident),
        ("foreign-2017", CardType::ForeignPermanent2017),
        ("foreign-2023", CardType::ForeignPermanent2023),
        ("hkmotw", CardType::HkMoTwResidence),
    ] {
        sam.place(CardProfile::builtin(profile).expect("profile"));
        let read = next_read(&mut events)
            .await
            .unwrap_or_else(|(code, message)| panic!("{profile}: {code}: {message}"));
        assert_eq!(read.reader, "vendor");
        assert_eq!(read.identity.card_type, card_type, "{profile}");
        assert!(read.identity.has_photo, "{profile}");
        sam.remove();
        wait_absent(&mut events).await;
    }

    let mut client = kioskd.client().await;
    let readers = client.readers().await.expect("readers");
    assert_eq!(readers[0].transport, "sdtapi");
    assert_eq!(readers[0].reads_ok, 5);
    let sam_id = kiosk_idcard::frame::format_sam_id(&DEFAULT_SAM_ID).expect("SAM id");
    assert_eq!(readers[0].sam_id.as_deref(), Some(sam_id.as_str()));
    // The SAM simulator saw every read in full: the library moved them.
    assert!(sam.stats().reads_completed >= 5);

    let log = kioskd.log();
    for name in ["resident", "foreign-2017", "foreign-2023", "hkmotw"] {
        let card = CardProfile::builtin(name).expect("profile");
        assert!(
            !log.contains(&card.identity.number),
            "full ID number of {name} in kioskd's log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_unplugged_and_replugged_reads_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sam, mut kioskd) = start(dir.path());
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "vendor", DeviceState::Online).await;

    for _ in 0..2 {
        sam.unplug().expect("unplug");
        wait_state(&mut events, "vendor", DeviceState::NoDevice).await;
        sam.replug().expect("replug");
        wait_state(&mut events, "vendor", DeviceState::Online).await;
        sam.place(CardProfile::builtin("resident").expect("profile"));
        next_read(&mut events)
            .await
            .unwrap_or_else(|(code, message)| panic!("{code}: {message}"));
        sam.remove();
        wait_absent(&mut events).await;
    }
    assert!(kioskd.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_pulled_mid_read_is_reported_and_the_next_card_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sam, mut kioskd) = start(dir.path());
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "vendor", DeviceState::Online).await;

    sam.place(CardProfile::builtin("fault-pulled").expect("profile"));
    let (code, message) = next_read(&mut events)
        .await
        .expect_err("a pulled card does not read");
    assert_eq!(code, "card_pulled", "{message}");
    wait_absent(&mut events).await;

    sam.place(CardProfile::builtin("resident").expect("profile"));
    next_read(&mut events)
        .await
        .unwrap_or_else(|(code, message)| panic!("{code}: {message}"));
    assert!(kioskd.is_running());
}

#[test]
fn a_library_that_does_not_exist_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("kiosk.toml");
    std::fs::write(
        &config,
        format!(
            "[kiosk]\nid = \"K-1\"\nbranch_id = \"0101\"\nbranch_name = \"Test\"\nprofile = \"smart_teller\"\n\n{}",
            sdtapi_reader(&dir.path().join("no-such-libsdtapi.so"), 0)
        ),
    )
    .expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kioskctl"))
        .args(["config", "check"])
        .arg(&config)
        .output()
        .expect("kioskctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("readers[0].sdtapi.library") && stdout.contains("no-such-libsdtapi.so"),
        "{stdout}"
    );
    assert!(stdout.contains("sdtapi.port 0"), "{stdout}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kioskd"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("kioskd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("readers[0].sdtapi.library"), "{stderr}");
}

/// A shared library this test process has loaded that is no sdtapi
/// library (the C library).
fn some_other_library() -> std::path::PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so") || path.contains("/libc-"))
        .map(std::path::PathBuf::from)
        .expect("libc among the mapped files")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_without_the_sdtapi_functions_is_a_hardware_error_not_a_crash() {
    let library = some_other_library();
    let kioskd = Kioskd::start(&sdtapi_reader(&library, PORT));
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "vendor", DeviceState::HardwareError).await;
    let mut client = kioskd.client().await;
    let readers = client.readers().await.expect("readers");
    let detail = readers[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("SDT_OpenPort"), "{detail}");
    // The daemon serves on.
    client.status().await.expect("status");
}
