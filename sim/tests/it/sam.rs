//! The SAM simulator over a real pty, driven with serialport as the kiosk would.

use std::io::Write;
use std::time::{Duration, Instant};

use kiosk_idcard::frame::{CardData, FrameError, Request, format_sam_id};
use kiosk_idcard::identity::decode_appended_address;
use kiosk_idcard::{Command, Identity, SamError, SamStatus};
use kiosk_sim::sam::wire_time;
use kiosk_sim::{CardProfile, Fault, SamSim, SamSimConfig};
use serialport::SerialPort;

use crate::support::{ANSWER, Got, ask, exchange, open, read_frame};

fn start(dir: &tempfile::TempDir) -> SamSim {
    SamSim::start(SamSimConfig::new(dir.path().join("by-id/usb-SAM-if00"))).unwrap()
}

/// find → select → read, as the kiosk does it.
fn find_select(port: &mut serialport::TTYPort) {
    assert_eq!(ask(port, Command::FindCard).status(), SamStatus::CardFound);
    assert_eq!(ask(port, Command::SelectCard).status(), SamStatus::Ok);
}

#[test]
fn every_card_type_is_found_selected_read_and_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    let mut reads = 0;
    for profile in CardProfile::builtins()
        .into_iter()
        .filter(|p| p.fault == Fault::None)
    {
        reads += 2 + u64::from(profile.appended_address.is_some());
        sam.place(profile.clone());
        find_select(&mut port);
        let read = ask(&mut port, Command::ReadTextPhoto);
        assert_eq!(read.status(), SamStatus::Ok, "{}", profile.name);
        let data = CardData::parse(&read.data, false).unwrap();
        assert_eq!(
            Identity::decode(&data.text).unwrap(),
            profile.identity,
            "{}",
            profile.name
        );
        assert_eq!(data.photo, profile.photo());

        let fp = ask(&mut port, Command::ReadTextPhotoFingerprint);
        let data = CardData::parse(&fp.data, true).unwrap();
        assert_eq!(
            data.fingerprint.unwrap_or_default(),
            profile.fingerprint().unwrap_or_default(),
            "{}",
            profile.name
        );

        let appended = ask(&mut port, Command::ReadAppendedAddress);
        match &profile.appended_address {
            Some(addr) => {
                assert_eq!(appended.status(), SamStatus::Ok);
                assert_eq!(&decode_appended_address(&appended.data).unwrap(), addr);
            }
            None => assert_eq!((appended.sw3, appended.data.len()), (0x91, 0)),
        }
    }
    let fingerprinted = CardProfile::builtin("resident-fingerprint").unwrap();
    assert_eq!(fingerprinted.fingerprint().unwrap().len(), 1024);
    assert_eq!(sam.stats().reads_completed, reads);
}

#[test]
fn sam_id_status_reset_and_no_card_answers() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    let id = ask(&mut port, Command::SamId);
    assert_eq!(
        format_sam_id(&id.data).unwrap(),
        "05.01-20101216-0011223344-1234567890"
    );
    assert_eq!(ask(&mut port, Command::SamStatus).status(), SamStatus::Ok);
    assert_eq!(ask(&mut port, Command::ResetSam).status(), SamStatus::Ok);
    assert_eq!(
        ask(&mut port, Command::FindCard).status(),
        SamStatus::Error(SamError::NoCard)
    );
    assert_eq!(
        ask(&mut port, Command::SelectCard).status(),
        SamStatus::Error(SamError::SelectFailed)
    );
    assert_eq!(
        ask(&mut port, Command::ReadTextPhoto).status(),
        SamStatus::Error(SamError::NoCard)
    );

    // A read without a select fails with SW3 41 (documented choice).
    sam.place(CardProfile::builtin("resident").unwrap());
    assert_eq!(
        ask(&mut port, Command::ReadTextPhoto).status(),
        SamStatus::Error(SamError::ReadFailed)
    );
    find_select(&mut port);
    assert_eq!(
        ask(&mut port, Command::ReadTextPhoto).status(),
        SamStatus::Ok
    );
    // Removing the card ends the selection.
    sam.remove();
    assert_eq!(
        ask(&mut port, Command::ReadTextPhoto).status(),
        SamStatus::Error(SamError::NoCard)
    );
}

#[test]
fn bad_checksum_and_unknown_command_requests() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    let mut frame = Command::SamStatus.request_frame();
    *frame.last_mut().unwrap() ^= 0x5A;
    match exchange(&mut port, &frame) {
        Got::Frame(r) => assert_eq!(r.status(), SamStatus::Error(SamError::Checksum)),
        other => panic!("{other:?}"),
    }
    match exchange(
        &mut port,
        &Request {
            cmd: 0x77,
            para: 0x01,
            data: vec![],
        }
        .to_frame(),
    ) {
        Got::Frame(r) => assert_eq!(r.status(), SamStatus::Error(SamError::BadCommand)),
        other => panic!("{other:?}"),
    }
    // The SAM is still in step afterwards.
    assert_eq!(ask(&mut port, Command::SamStatus).status(), SamStatus::Ok);
    let stats = sam.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.bytes_in, 3 * 10);
}

#[test]
fn requests_split_across_writes_are_reassembled() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    let frame = Command::SamId.request_frame();
    for b in &frame {
        port.write_all(&[*b]).unwrap();
        port.flush().unwrap();
    }
    match read_frame(&mut port, ANSWER) {
        Got::Frame(r) => assert_eq!(r.data.len(), 16),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_baud_gives_garbage_and_the_right_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    sam.place(CardProfile::builtin("resident").unwrap());
    {
        let mut port = open(sam.link(), 9600);
        port.write_all(&Command::FindCard.request_frame()).unwrap();
        match read_frame(&mut port, Duration::from_millis(500)) {
            Got::Nothing(bytes) => {
                assert!(!bytes.is_empty(), "garbage expected");
                assert!(
                    !bytes.contains(&0xAA),
                    "garbage must not hold a preamble byte"
                );
            }
            other => panic!("expected garbage at the wrong baud, got {other:?}"),
        }
    }
    // Auto-detection's next try, at the SAM's speed.
    let mut port = open(sam.link(), 115_200);
    assert_eq!(
        ask(&mut port, Command::FindCard).status(),
        SamStatus::CardFound
    );
    // Changing speed on an open port is seen too.
    port.set_baud_rate(57_600).unwrap();
    port.write_all(&Command::SamStatus.request_frame()).unwrap();
    assert!(
        matches!(read_frame(&mut port, Duration::from_millis(500)), Got::Nothing(b) if !b.is_empty())
    );
}

#[test]
fn unplug_and_replug_keep_the_link_path() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let link = sam.link().to_path_buf();
    let first = std::fs::read_link(&link).unwrap();
    assert_eq!(Some(first.clone()), sam.pty_path());
    let mut port = open(&link, 115_200);
    assert_eq!(ask(&mut port, Command::SamStatus).status(), SamStatus::Ok);

    sam.unplug().unwrap();
    assert!(!sam.is_plugged());
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link removed on unplug"
    );
    // The kiosk's open port now fails instead of hanging.
    let _ = port.write_all(&Command::SamStatus.request_frame());
    assert!(matches!(read_frame(&mut port, ANSWER), Got::Closed));
    drop(port);

    sam.replug().unwrap();
    assert!(sam.is_plugged());
    assert_eq!(std::fs::read_link(&link).unwrap(), sam.pty_path().unwrap());
    let mut port = open(&link, 115_200);
    assert_eq!(ask(&mut port, Command::SamStatus).status(), SamStatus::Ok);

    // Replugging while plugged moves to a new /dev/pts/N behind the same path.
    let before = sam.pty_path().unwrap();
    sam.replug().unwrap();
    assert_ne!(sam.pty_path().unwrap(), before);
    assert_eq!(std::fs::read_link(&link).unwrap(), sam.pty_path().unwrap());

    drop(sam);
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link removed on drop"
    );
}

#[test]
fn the_pty_survives_the_kiosk_closing_it() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    for _ in 0..3 {
        let mut port = open(sam.link(), 115_200);
        assert_eq!(ask(&mut port, Command::SamStatus).status(), SamStatus::Ok);
    }
}

#[test]
fn fault_bad_checksum_corrupts_read_responses_only() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    sam.place(CardProfile::builtin("fault-bad-checksum").unwrap());
    find_select(&mut port);
    match exchange(&mut port, &Command::ReadTextPhoto.request_frame()) {
        Got::BadFrame(FrameError::Checksum { .. }) => {}
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert_eq!(sam.stats().reads_completed, 0);
    // Set on the device, it applies to any card.
    sam.place(CardProfile::builtin("resident").unwrap());
    sam.set_fault(Fault::BadChecksum);
    find_select(&mut port);
    assert!(matches!(
        exchange(&mut port, &Command::ReadTextPhoto.request_frame()),
        Got::BadFrame(_)
    ));
    sam.set_fault(Fault::None);
    assert_eq!(
        ask(&mut port, Command::ReadTextPhoto).status(),
        SamStatus::Ok
    );
}

#[test]
fn fault_slow_delays_reads() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    sam.place(CardProfile::builtin("resident").unwrap());
    sam.set_fault(Fault::Slow { delay_ms: 300 });
    find_select(&mut port);
    let t = Instant::now();
    assert_eq!(
        ask(&mut port, Command::ReadTextPhoto).status(),
        SamStatus::Ok
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // The built-in slow profile carries its own delay.
    assert_eq!(
        CardProfile::builtin("fault-slow").unwrap().fault,
        Fault::Slow { delay_ms: 1500 }
    );
}

#[test]
fn fault_pulled_cuts_the_read_and_the_card_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    sam.place(CardProfile::builtin("fault-pulled").unwrap());
    find_select(&mut port);
    port.write_all(&Command::ReadTextPhoto.request_frame())
        .unwrap();
    match read_frame(&mut port, Duration::from_millis(500)) {
        Got::Nothing(bytes) => assert!(
            bytes.len() > 7 && bytes.len() < 1295,
            "{} bytes",
            bytes.len()
        ),
        other => panic!("expected a cut-off answer, got {other:?}"),
    }
    port.clear(serialport::ClearBuffer::Input).unwrap();
    assert_eq!(
        ask(&mut port, Command::FindCard).status(),
        SamStatus::Error(SamError::NoCard)
    );
}

#[test]
fn fault_sw3_answers_that_command_with_that_status() {
    let dir = tempfile::tempdir().unwrap();
    let sam = start(&dir);
    let mut port = open(sam.link(), 115_200);
    sam.place(CardProfile::builtin("fault-sw3-41").unwrap());
    find_select(&mut port);
    let r = ask(&mut port, Command::ReadTextPhoto);
    assert_eq!(
        (r.status(), r.data.len()),
        (SamStatus::Error(SamError::ReadFailed), 0)
    );
    sam.set_fault(Fault::Sw3 {
        command: Command::FindCard,
        sw3: 0x80,
    });
    assert_eq!(
        ask(&mut port, Command::FindCard).status(),
        SamStatus::Error(SamError::NoCard)
    );
}

#[test]
fn wire_time_is_emulated_at_the_configured_baud() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SamSimConfig::new(dir.path().join("sam"));
    config.baud = 38_400;
    config.emulate_wire_time = true;
    let sam = SamSim::start(config).unwrap();
    sam.place(CardProfile::builtin("resident").unwrap());
    let mut port = open(sam.link(), 38_400);
    find_select(&mut port);
    let t = Instant::now();
    let r = ask(&mut port, Command::ReadTextPhoto);
    let expected = wire_time(10 + 1295, 38_400);
    assert_eq!(r.status(), SamStatus::Ok);
    assert!(t.elapsed() >= expected, "{:?} < {expected:?}", t.elapsed());
}

#[test]
fn a_regular_file_at_the_link_path_is_not_clobbered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("occupied");
    std::fs::write(&path, b"keep me").unwrap();
    let err = SamSim::start(SamSimConfig::new(&path)).unwrap_err();
    assert!(err.to_string().contains("not a symlink"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}
