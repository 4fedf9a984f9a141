//! The SAM on a serial port, against the SAM simulator on a pseudo-terminal.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use kiosk_idcard::{Command, FrameError, Request, Response, SamError};
use kiosk_idreader::{
    Baud, DeviceState, PullCause, ReadOptions, ReaderConfig, ReaderDevice, ReaderError,
    ReaderEvent, SamChannel, SamConfig, SerialSam, read_card, sam_id,
};
use kiosk_sim::{CardProfile, Fault, SamSim, SamSimConfig};
use tempfile::TempDir;

use crate::util::{Events, LogBuffer, init_logs, wait_until};

const SECS: Duration = Duration::from_secs(10);

/// A SAM simulator behind `DIR/serial/by-id/usb-KIOSK_SIM_SAM-if00`.
pub(crate) fn start_sim(baud: u32) -> (TempDir, SamSim) {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let link: PathBuf = dir.path().join("serial/by-id/usb-KIOSK_SIM_SAM-if00");
    let sim = SamSim::start(SamSimConfig {
        baud,
        ..SamSimConfig::new(link)
    })
    .unwrap();
    (dir, sim)
}

pub(crate) fn sam_config(sim: &SamSim) -> SamConfig {
    SamConfig {
        response_timeout_ms: 1000,
        poll_interval_ms: 50,
        ..SamConfig::new(sim.link())
    }
}

fn options() -> ReadOptions {
    ReadOptions {
        timeout: Duration::from_millis(1000),
        ..ReadOptions::default()
    }
}

#[test]
fn reads_every_card_type() {
    let (_dir, sim) = start_sim(115_200);
    let mut sam = SerialSam::open(&sam_config(&sim)).unwrap();
    assert_eq!(sam.baud(), Some(115_200));
    assert_eq!(
        sam_id(&mut sam, Duration::from_secs(1)).unwrap(),
        "05.01-20101216-0011223344-1234567890"
    );
    for name in crate::channel_profiles() {
        let profile = CardProfile::builtin(name).unwrap();
        sim.place(profile.clone());
        let options = ReadOptions {
            read_fingerprint: true,
            read_appended_address: true,
            ..options()
        };
        let read = read_card(&mut sam, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read.identity, profile.identity, "{name}");
        assert_eq!(read.photo, profile.photo(), "{name}");
        assert_eq!(read.fingerprint, profile.fingerprint(), "{name}");
        assert_eq!(read.appended_address, profile.appended_address, "{name}");
        sim.remove();
    }
    // A read without fingerprint: exactly the frames of find, select, read.
    sim.place(CardProfile::builtin("resident").unwrap());
    let read = read_card(&mut sam, &options()).unwrap();
    assert_eq!(read.wire_bytes, 25 + 29 + 1305);
}

#[test]
fn no_personal_data_in_logs() {
    let (_dir, sim) = start_sim(115_200);
    let profile = CardProfile::builtin("resident-appended").unwrap();
    sim.place(profile.clone());
    let logs = LogBuffer::default();
    tracing::subscriber::with_default(logs.subscriber(), || {
        let mut sam = SerialSam::open(&sam_config(&sim)).unwrap();
        let options = ReadOptions {
            read_appended_address: true,
            ..options()
        };
        read_card(&mut sam, &options).unwrap();
    });
    let text = logs.text();
    assert!(text.contains(">>> 30 01"), "frames are traced:\n{text}");
    assert!(
        text.contains("redacted"),
        "read answers are redacted:\n{text}"
    );
    for secret in [
        &profile.identity.name,
        &profile.identity.number,
        profile.appended_address.as_ref().unwrap(),
    ] {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} in the logs:\n{text}"
        );
    }
}

#[test]
fn baud_rate_is_detected() {
    let (_dir, sim) = start_sim(57_600);
    let mut sam = SerialSam::open(&sam_config(&sim)).unwrap();
    assert_eq!(sam.baud(), Some(57_600));
    sim.place(CardProfile::builtin("foreign-2023").unwrap());
    read_card(&mut sam, &options()).unwrap();
    // Reopening tries the rate found first: one status request, no garbage.
    let before = sim.stats().requests;
    assert_eq!(sam.reopen().unwrap(), 57_600);
    assert_eq!(sim.stats().requests, before + 1);

    // A fixed rate the SAM does not speak.
    let fixed = SamConfig {
        baud: Baud::Fixed(9600),
        ..sam_config(&sim)
    };
    drop(sam);
    let err = SerialSam::open(&fixed).unwrap_err();
    assert!(
        matches!(&err, ReaderError::NoSamAnswer { tried, .. } if tried == &[9600]),
        "{err:?}"
    );
    // And the right one.
    let fixed = SamConfig {
        baud: Baud::Fixed(57_600),
        ..sam_config(&sim)
    };
    assert_eq!(SerialSam::open(&fixed).unwrap().baud(), Some(57_600));
}

#[test]
fn slow_sam_at_9600_with_wire_time() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("sam");
    let sim = SamSim::start(SamSimConfig {
        baud: 9600,
        emulate_wire_time: true,
        ..SamSimConfig::new(&link)
    })
    .unwrap();
    // The answer takes ~1.4 s on the wire at 9600: the timeout allows for it.
    let mut sam = SerialSam::open(&SamConfig {
        response_timeout_ms: 500,
        ..SamConfig::new(&link)
    })
    .unwrap();
    assert_eq!(sam.baud(), Some(9600));
    sim.place(CardProfile::builtin("resident").unwrap());
    let options = ReadOptions {
        timeout: Duration::from_millis(500),
        ..ReadOptions::default()
    };
    read_card(&mut sam, &options).unwrap();
    // The fault-slow card answers reads after 1.5 s: within the default 2 s.
    sim.place(CardProfile::builtin("fault-slow").unwrap());
    let options = ReadOptions {
        timeout: Duration::from_millis(2000),
        ..ReadOptions::default()
    };
    read_card(&mut sam, &options).unwrap();
}

#[test]
fn card_pulled_mid_read() {
    let (_dir, sim) = start_sim(115_200);
    let mut sam = SerialSam::open(&sam_config(&sim)).unwrap();

    sim.place(CardProfile::builtin("fault-pulled").unwrap());
    let err = read_card(&mut sam, &options()).unwrap_err();
    assert!(
        matches!(err, ReaderError::CardPulled { cause: PullCause::CutOff { received } } if received > 0),
        "{err:?}"
    );
    assert_eq!(err.code(), "card_pulled");

    // SW3 80 to the read: the card left between select and read.
    sim.place(CardProfile::builtin("resident").unwrap());
    sim.set_fault(Fault::Sw3 {
        command: Command::ReadTextPhoto,
        sw3: 0x80,
    });
    let err = read_card(&mut sam, &options()).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::CardPulled {
                cause: PullCause::Sam(SamError::NoCard)
            }
        ),
        "{err:?}"
    );

    // SW3 41, the card's own fault.
    sim.set_fault(Fault::None);
    sim.place(CardProfile::builtin("fault-sw3-41").unwrap());
    let err = read_card(&mut sam, &options()).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::CardPulled {
                cause: PullCause::Sam(SamError::ReadFailed)
            }
        ),
        "{err:?}"
    );

    // The port still works.
    sim.place(CardProfile::builtin("resident").unwrap());
    read_card(&mut sam, &options()).unwrap();
}

#[test]
fn sam_failure_statuses() {
    let (_dir, sim) = start_sim(115_200);
    let mut sam = SerialSam::open(&sam_config(&sim)).unwrap();
    let err = read_card(&mut sam, &options()).unwrap_err();
    assert!(matches!(err, ReaderError::Sam(SamError::NoCard)), "{err:?}");

    sim.place(CardProfile::builtin("resident").unwrap());
    for (command, sw3, want) in [
        (Command::FindCard, 0x24, SamError::Unrecognised),
        (Command::SelectCard, 0x81, SamError::SelectFailed),
        (Command::ReadTextPhoto, 0x40, SamError::WrongCardType),
        (Command::ReadTextPhoto, 0x33, SamError::Verification),
    ] {
        sim.set_fault(Fault::Sw3 { command, sw3 });
        let err = read_card(&mut sam, &options()).unwrap_err();
        assert!(
            matches!(err, ReaderError::Sam(e) if e == want),
            "{command:?} {sw3:02X}: {err:?}"
        );
        assert_eq!(err.code(), want.reason());
    }
}

#[test]
fn bad_checksum_is_read_again_or_reported() {
    let (_dir, sim) = start_sim(115_200);
    let mut sam = SerialSam::open(&sam_config(&sim)).unwrap();

    // Every read answer garbled: reported after the retries.
    sim.place(CardProfile::builtin("fault-bad-checksum").unwrap());
    let err = read_card(
        &mut sam,
        &ReadOptions {
            retries: 2,
            ..options()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ReaderError::Frame(FrameError::Checksum { .. })),
        "{err:?}"
    );
    assert_eq!(sim.stats().reads_completed, 0);

    // Garbled once (the fault is cleared when the first garbled answer
    // arrives): read again.
    sim.place(CardProfile::builtin("resident").unwrap());
    sim.set_fault(Fault::BadChecksum);
    let mut once = ClearFaultOnError {
        sam: &mut sam,
        sim: &sim,
        errors: 0,
    };
    let read = read_card(&mut once, &options()).unwrap();
    assert_eq!(once.errors, 1);
    assert_eq!(
        read.identity,
        CardProfile::builtin("resident").unwrap().identity
    );
}

/// Clears the simulator's fault after the first failed exchange.
struct ClearFaultOnError<'a> {
    sam: &'a mut SerialSam,
    sim: &'a SamSim,
    errors: u32,
}

impl SamChannel for ClearFaultOnError<'_> {
    fn transact(&mut self, request: &Request, timeout: Duration) -> Result<Response, ReaderError> {
        let result = self.sam.transact(request, timeout);
        if result.is_err() {
            self.errors += 1;
            self.sim.set_fault(Fault::None);
        }
        result
    }
    fn wire_bytes(&self) -> u64 {
        self.sam.wire_bytes()
    }
}

#[test]
fn unplug_is_reported_and_the_port_reopened() {
    let (_dir, sim) = start_sim(57_600);
    let mut sam = SerialSam::open(&sam_config(&sim)).unwrap();
    sim.place(CardProfile::builtin("resident").unwrap());
    read_card(&mut sam, &options()).unwrap();

    sim.unplug().unwrap();
    let err = read_card(&mut sam, &options()).unwrap_err();
    assert!(err.is_unplugged(), "{err:?}");
    assert_eq!(err.code(), "unplugged");
    assert!(!sam.is_open());
    assert!(sam.reopen().unwrap_err().is_unplugged(), "the link is gone");

    sim.replug().unwrap();
    assert_eq!(sam.reopen().unwrap(), 57_600);
    sim.place(CardProfile::builtin("hkmotw").unwrap());
    read_card(&mut sam, &options()).unwrap();
}

/// The device loop of a SAM-only reader: presence by polling, one read per
/// placement, unplug and replug, commands, stop.
#[test]
fn device_loop() {
    let (_dir, sim) = start_sim(38_400);
    let (tx, rx) = mpsc::channel();
    let mut config = ReaderConfig::serial("desk", sam_config(&sim));
    config.read_appended_address = true;
    let handle = ReaderDevice::spawn(config, tx).unwrap();
    let mut events = Events::new(rx);

    events.wait_state(SECS, DeviceState::Online);
    events.wait_for(SECS, "SAM id", |e| matches!(e, ReaderEvent::SamId { sam_id, .. } if sam_id == "05.01-20101216-0011223344-1234567890"));
    let check = handle.check(SECS).unwrap();
    assert_eq!(check.state, DeviceState::Online);
    assert_eq!(check.baud, Some(38_400));
    assert_eq!(check.sam_status, Some(Ok(())));
    assert!(!check.card_present);

    // A card: present, read once, absent.
    let profile = CardProfile::builtin("resident-appended").unwrap();
    sim.place(profile.clone());
    events.wait_for(SECS, "card present", |e| {
        matches!(e, ReaderEvent::CardPresent { .. })
    });
    let read = events.wait_for(SECS, "card read", |e| {
        matches!(e, ReaderEvent::CardRead { .. })
    });
    let ReaderEvent::CardRead {
        reader,
        read,
        started,
    } = read
    else {
        unreachable!()
    };
    assert_eq!(reader, "desk");
    assert_eq!(read.identity, profile.identity);
    assert_eq!(read.appended_address, profile.appended_address);
    assert!(started.elapsed() < SECS);
    // Several more polls while the card stays: no second read.
    let reads = sim.stats().reads_completed;
    let requests = sim.stats().requests;
    wait_until(SECS, "more polls", || sim.stats().requests >= requests + 5);
    assert_eq!(sim.stats().reads_completed, reads);
    assert!(!events.drain().iter().any(|e| matches!(
        e,
        ReaderEvent::CardRead { .. } | ReaderEvent::CardAbsent { .. }
    )));
    sim.remove();
    events.wait_for(SECS, "card absent", |e| {
        matches!(e, ReaderEvent::CardAbsent { .. })
    });

    // A card the SAM refuses: ReadFailed with a stable code, then absent.
    sim.set_fault(Fault::Sw3 {
        command: Command::ReadTextPhoto,
        sw3: 0x40,
    });
    sim.place(CardProfile::builtin("resident").unwrap());
    let failed = events.wait_for(SECS, "read failed", |e| {
        matches!(e, ReaderEvent::ReadFailed { .. })
    });
    let ReaderEvent::ReadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert_eq!(reason.code, "wrong_card_type");
    sim.remove();
    events.wait_for(SECS, "card absent", |e| {
        matches!(e, ReaderEvent::CardAbsent { .. })
    });
    sim.set_fault(Fault::None);

    // Pulled mid-read.
    sim.place(CardProfile::builtin("fault-pulled").unwrap());
    let failed = events.wait_for(SECS, "read failed", |e| {
        matches!(e, ReaderEvent::ReadFailed { .. })
    });
    let ReaderEvent::ReadFailed { reason, .. } = failed else {
        unreachable!()
    };
    assert_eq!(reason.code, "card_pulled");
    events.wait_for(SECS, "card absent", |e| {
        matches!(e, ReaderEvent::CardAbsent { .. })
    });

    // Unplug with a card on the reader: absent, detached, no device.
    sim.place(CardProfile::builtin("foreign-2017").unwrap());
    events.wait_for(SECS, "card read", |e| {
        matches!(e, ReaderEvent::CardRead { .. })
    });
    sim.unplug().unwrap();
    events.wait_for(SECS, "card absent", |e| {
        matches!(e, ReaderEvent::CardAbsent { .. })
    });
    events.wait_for(SECS, "detached", |e| {
        matches!(e, ReaderEvent::Detached { .. })
    });
    events.wait_state(SECS, DeviceState::NoDevice);
    // While unplugged, commands answer at once that the SAM is not there.
    let err = handle.sam_id(SECS).unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err:?}");

    sim.replug().unwrap();
    events.wait_for(SECS, "attached", |e| {
        matches!(e, ReaderEvent::Attached { .. })
    });
    events.wait_state(SECS, DeviceState::Online);
    // The card still lies there: a new placement for the reopened port.
    events.wait_for(SECS, "card read after replug", |e| {
        matches!(e, ReaderEvent::CardRead { .. })
    });
    assert_eq!(
        handle.sam_id(SECS).unwrap(),
        "05.01-20101216-0011223344-1234567890"
    );

    let started = std::time::Instant::now();
    handle.stop();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        started.elapsed()
    );
}

/// A reader that answers find-card only once per placement (after the
/// read, find-card says no card while the card still lies there; the card
/// itself still answers, which public SDKs rely on: Routon's samples ask
/// it for its appended information after a read to tell whether it left). The kiosk neither reports a removal nor reads the card
/// again while it stays; taken away it is absent, placed again it is read
/// again. The same holds for a reader that finds the card every time.
#[test]
fn a_card_left_on_a_find_once_reader_is_neither_removed_nor_read_again() {
    for find_once in [true, false] {
        let (_dir, sim) = start_sim(115_200);
        sim.set_find_once(find_once);
        let (tx, rx) = mpsc::channel();
        let handle =
            ReaderDevice::spawn(ReaderConfig::serial("desk", sam_config(&sim)), tx).unwrap();
        let mut events = Events::new(rx);
        events.wait_state(SECS, DeviceState::Online);
        for placement in 0..2 {
            sim.place(CardProfile::builtin("resident").unwrap());
            events.wait_for(SECS, "card read", |e| {
                matches!(e, ReaderEvent::CardRead { .. })
            });
            let reads = sim.stats().reads_completed;
            let requests = sim.stats().requests;
            wait_until(SECS, "more polls", || sim.stats().requests >= requests + 5);
            assert_eq!(
                sim.stats().reads_completed,
                reads,
                "find_once {find_once}, placement {placement}: read again"
            );
            let seen = events.drain();
            assert!(
                !seen.iter().any(|e| matches!(
                    e,
                    ReaderEvent::CardRead { .. } | ReaderEvent::CardAbsent { .. }
                )),
                "find_once {find_once}, placement {placement}: {seen:?}"
            );
            sim.remove();
            events.wait_for(SECS, "card absent", |e| {
                matches!(e, ReaderEvent::CardAbsent { .. })
            });
        }
        handle.stop();
    }
}

/// A serial SAM behind a USB-serial adapter (FTDI-like: it holds each short
/// answer for its latency timer, 16 ms by default): the kiosk asks for the
/// lowest latency when it opens the port, so the emulated adapter's timer
/// goes to 1 ms; with `low_latency = false` it is left at 16. Replugged, the
/// new adapter is asked again.
#[test]
fn the_usb_serial_adapter_is_asked_for_low_latency() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let sysfs = dir.path().join("sys");
    let link = dir.path().join("serial/by-id/usb-FTDI_FT232R-if00-port0");
    let sim = SamSim::start(SamSimConfig {
        adapter_sysfs: Some(sysfs.clone()),
        ..SamSimConfig::new(&link)
    })
    .unwrap();
    let timer = || {
        let pty = sim.pty_path().expect("plugged in");
        let file = kiosk_sim::adapter_timer_file(&sysfs, &pty).expect("timer file");
        std::fs::read_to_string(file)
            .expect("timer")
            .trim()
            .to_string()
    };
    assert_eq!(timer(), "16");
    let left = SerialSam::open(&SamConfig {
        low_latency: false,
        sysfs: sysfs.clone(),
        ..sam_config(&sim)
    })
    .unwrap();
    drop(left);
    assert_eq!(timer(), "16");
    let mut sam = SerialSam::open(&SamConfig {
        sysfs: sysfs.clone(),
        ..sam_config(&sim)
    })
    .unwrap();
    assert_eq!(timer(), "1");
    sim.place(CardProfile::builtin("resident").unwrap());
    let read = kiosk_idreader::read_card(&mut sam, &options()).unwrap();
    assert_eq!(
        read.identity,
        CardProfile::builtin("resident").unwrap().identity
    );
    // A new adapter after a replug starts at 16 again and is lowered.
    sim.replug().unwrap();
    assert_eq!(timer(), "16");
    sam.reopen().unwrap();
    assert_eq!(timer(), "1");
}
