//! PC/SC: a private pcscd (the kiosk-sim harness, one at a time machine-wide)
//! with a vpcd reader holding the virtual ID card. Few test functions,
//! many checks each: they run one after another.

use std::ffi::CString;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kiosk_idreader::{
    DeviceState, PcscConfig, PcscTunnel, ReadOptions, ReaderConfig, ReaderDevice, ReaderError,
    ReaderEvent, Tunnel, TunnelMode, card_uid, list_readers, read_card, sam_id,
};
use kiosk_sim::{CardProfile, Fault, Pcscd, ViccConfig, VirtualCard};
use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

use crate::util::{Events, init_logs};

const SECS: Duration = Duration::from_secs(15);
const READER: &str = "Virtual PCD 00 00";
const SAM_ID: &str = "05.01-20101216-0011223344-1234567890";

/// Wait (blocking in `get_status_change`) until `reader`'s state has `want`.
fn wait_reader_state(ctx: &Context, reader: &CString, want: State) {
    let deadline = Instant::now() + SECS;
    let mut states = [ReaderState::new(reader.clone(), State::UNAWARE)];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{reader:?} never {want:?}");
        match ctx.get_status_change(left, &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => panic!("get_status_change: {e}"),
        }
        if states[0].event_state().contains(want) {
            return;
        }
        states[0].sync_current_state();
    }
}

/// The transport functions, without the device loop: UID, the tunnel with
/// extended and with short APDUs (`61 XX` chaining), a wrong header.
fn direct_checks(card: &VirtualCard) {
    let ctx = Context::establish(Scope::User).unwrap();
    let readers = list_readers(&ctx).unwrap();
    let names: Vec<String> = readers
        .iter()
        .map(|r| r.to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == READER), "{names:?}");
    let reader = CString::new(READER).unwrap();

    let profile = CardProfile::builtin("resident-fingerprint").unwrap();
    card.place(profile.clone());
    wait_reader_state(&ctx, &reader, State::PRESENT);
    let connection = ctx
        .connect(&reader, ShareMode::Shared, Protocols::ANY)
        .unwrap();
    assert_eq!(card_uid(&connection).unwrap(), profile.uid);

    let options = ReadOptions {
        read_fingerprint: true,
        ..ReadOptions::default()
    };
    let mut bytes = Vec::new();
    for extended in [true, false] {
        let apdus = card.stats().apdus;
        let mut tunnel = PcscTunnel::new(
            &connection,
            TunnelMode::Apdu {
                header: kiosk_sim::vicc::DEFAULT_TUNNEL_HEADER,
                extended,
            },
        );
        let read =
            read_card(&mut tunnel, &options).unwrap_or_else(|e| panic!("extended {extended}: {e}"));
        assert_eq!(read.identity, profile.identity);
        assert_eq!(read.photo, profile.photo());
        assert_eq!(read.fingerprint, profile.fingerprint());
        bytes.push(read.wire_bytes);
        let used = card.stats().apdus - apdus;
        if extended {
            assert_eq!(used, 3, "find, select, read");
        } else {
            // The ~2.3 KiB answer comes in 256-byte pieces.
            assert!(used >= 3 + 9, "{used} APDUs");
        }
        assert_eq!(sam_id(&mut tunnel, Duration::from_secs(1)).unwrap(), SAM_ID);
    }
    assert!(bytes[1] > bytes[0], "GET RESPONSE costs bytes: {bytes:?}");

    // A header the reader does not know.
    let mut tunnel = PcscTunnel::new(
        &connection,
        TunnelMode::Apdu {
            header: [0xFF, 0x69, 0x96, 0x01],
            extended: true,
        },
    );
    let err = read_card(&mut tunnel, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ReaderError::Apdu { sw: 0x6D00 }), "{err:?}");

    connection
        .disconnect(Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .unwrap();
    card.remove();
    // vpcd notices at its next presence poll.
    wait_reader_state(&ctx, &reader, State::EMPTY);
}

fn wait_read(events: &mut Events, what: &str) -> (Box<kiosk_idreader::CardRead>, Instant) {
    events.wait_for(SECS, &format!("{what}: card present"), |e| {
        matches!(e, ReaderEvent::CardPresent { .. })
    });
    match events.wait_for(SECS, &format!("{what}: read"), |e| {
        matches!(
            e,
            ReaderEvent::CardRead { .. } | ReaderEvent::ReadFailed { .. }
        )
    }) {
        ReaderEvent::CardRead { read, started, .. } => (read, started),
        other => panic!("{what}: {other:?}"),
    }
}

fn wait_absent(events: &mut Events, what: &str) {
    events.wait_for(SECS, &format!("{what}: card absent"), |e| {
        matches!(e, ReaderEvent::CardAbsent { .. })
    });
}

#[test]
fn pcsc_reader_end_to_end() {
    init_logs();
    // The card listens before pcscd starts (vpcd connects to it).
    let card = VirtualCard::start(ViccConfig::new(0)).unwrap();
    let mut pcscd = Pcscd::start(&[card.ports()[0]]).unwrap();

    direct_checks(&card);

    let (tx, rx) = mpsc::channel();
    // The virtual card's pseudo-APDU, named as a real reader's must be.
    let mut config = ReaderConfig::pcsc(
        "pcsc-desk",
        PcscConfig::apdu(READER, kiosk_sim::vicc::DEFAULT_TUNNEL_HEADER),
    );
    config.read_fingerprint = true;
    config.read_appended_address = true;
    let handle = ReaderDevice::spawn(config, tx).unwrap();
    let mut events = Events::new(rx);
    events.wait_for(
        SECS,
        "attached",
        |e| matches!(e, ReaderEvent::Attached { reader } if reader == "pcsc-desk"),
    );
    events.wait_state(SECS, DeviceState::Online);

    // Commands reach the thread while it blocks in get_status_change.
    let check = handle.check(SECS).unwrap();
    assert_eq!(check.state, DeviceState::Online);
    assert_eq!(check.pcsc_reader.as_deref(), Some(READER));
    assert!(!check.card_present);
    assert_eq!(check.sam_status, None, "the tunnelled SAM needs a card");
    assert_eq!(handle.sam_id(SECS).unwrap_err().code(), "unavailable");

    // Every card type, with its UID; one read per placement.
    for name in crate::channel_profiles() {
        let profile = CardProfile::builtin(name).unwrap();
        card.place(profile.clone());
        let (read, started) = wait_read(&mut events, name);
        assert_eq!(read.identity, profile.identity, "{name}");
        assert_eq!(read.photo, profile.photo(), "{name}");
        assert_eq!(read.fingerprint, profile.fingerprint(), "{name}");
        assert_eq!(read.appended_address, profile.appended_address, "{name}");
        assert_eq!(read.card_uid, Some(profile.uid), "{name}");
        assert!(started.elapsed() < SECS);
        let check = handle.check(SECS).unwrap();
        assert!(check.card_present);
        assert_eq!(check.sam_status, Some(Ok(())));
        card.remove();
        wait_absent(&mut events, name);
    }
    assert!(
        events
            .seen
            .iter()
            .any(|e| e.contains("SamId") && e.contains(SAM_ID)),
        "SAM id reported"
    );
    assert_eq!(
        handle.sam_id(SECS).unwrap(),
        SAM_ID,
        "remembered from the reads"
    );
    let reads_so_far = card.stats().sam.reads_completed;

    // The card taken away in the middle of the read.
    card.set_fault(Fault::PullMidRead);
    card.place(CardProfile::builtin("resident").unwrap());
    events.wait_for(SECS, "pulled: present", |e| {
        matches!(e, ReaderEvent::CardPresent { .. })
    });
    match events.wait_for(SECS, "pulled: outcome", |e| {
        matches!(
            e,
            ReaderEvent::CardRead { .. } | ReaderEvent::ReadFailed { .. }
        )
    }) {
        ReaderEvent::ReadFailed { reason, .. } => {
            assert_eq!(reason.code, "card_pulled", "{reason}")
        }
        other => panic!("expected a failed read, got {other:?}"),
    }
    wait_absent(&mut events, "pulled");
    card.set_fault(Fault::None);
    assert_eq!(card.stats().sam.reads_completed, reads_so_far);

    // pcscd restarts while a card lies on the reader: the reader goes and
    // comes back, and the card is read again.
    card.place(CardProfile::builtin("hkmotw").unwrap());
    wait_read(&mut events, "before restart");
    pcscd.restart().unwrap();
    wait_absent(&mut events, "restart");
    events.wait_for(SECS, "restart: detached", |e| {
        matches!(e, ReaderEvent::Detached { .. })
    });
    events.wait_for(SECS, "restart: attached again", |e| {
        matches!(e, ReaderEvent::Attached { .. })
    });
    events.wait_state(SECS, DeviceState::Online);
    let (read, _) = wait_read(&mut events, "after restart");
    assert_eq!(
        read.identity,
        CardProfile::builtin("hkmotw").unwrap().identity
    );
    card.remove();
    wait_absent(&mut events, "after restart");

    // pcscd killed (as a crash), then started again.
    pcscd.kill().unwrap();
    let detail = events.wait_state(SECS, DeviceState::Offline);
    assert!(detail.is_some());
    pcscd.restart().unwrap();
    events.wait_state(SECS, DeviceState::Online);
    card.place(CardProfile::builtin("foreign-2023").unwrap());
    let (read, _) = wait_read(&mut events, "after crash");
    assert_eq!(
        read.identity,
        CardProfile::builtin("foreign-2023").unwrap().identity
    );

    // Stop cancels the blocking wait at once.
    let started = Instant::now();
    handle.stop();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        started.elapsed()
    );

    combined_presence_and_serial_sam(&card);
    drop(pcscd);
    drop(card);
}

/// `[pcsc] tunnel = "none"` + `[sam]`: PC/SC tells presence and the UID,
/// the serial SAM reads; the SAM unplugged and back.
fn combined_presence_and_serial_sam(card: &VirtualCard) {
    // The foreign-2023 card still lies on the PC/SC reader; the SAM sees it too.
    let profile = CardProfile::builtin("foreign-2023").unwrap();
    let (_dir, sim) = crate::serial::start_sim(115_200);
    sim.place(profile.clone());
    let (tx, rx) = mpsc::channel();
    let config = ReaderConfig {
        pcsc: Some(PcscConfig {
            tunnel: Tunnel::None,
            ..PcscConfig::new(READER)
        }),
        sam: Some(crate::serial::sam_config(&sim)),
        ..ReaderConfig::pcsc("combo", PcscConfig::new(READER))
    };
    let handle = ReaderDevice::spawn(config, tx).unwrap();
    let mut events = Events::new(rx);
    let (read, _) = wait_read(&mut events, "combined");
    assert_eq!(read.identity, profile.identity);
    assert_eq!(read.card_uid, Some(profile.uid), "UID through PC/SC");
    assert!(
        events
            .seen
            .iter()
            .any(|e| e.contains("SamId") && e.contains(SAM_ID)),
        "SAM id reported when the serial SAM came online"
    );
    let check = handle.check(SECS).unwrap();
    assert_eq!(check.state, DeviceState::Online);
    assert_eq!(check.baud, Some(115_200));
    assert_eq!(check.sam_status, Some(Ok(())));
    card.remove();
    wait_absent(&mut events, "combined");

    // The SAM goes away: the next card cannot be read; the SAM comes back.
    sim.unplug().unwrap();
    card.place(profile.clone());
    events.wait_for(SECS, "unplugged: present", |e| {
        matches!(e, ReaderEvent::CardPresent { .. })
    });
    match events.wait_for(SECS, "unplugged: outcome", |e| {
        matches!(
            e,
            ReaderEvent::CardRead { .. } | ReaderEvent::ReadFailed { .. }
        )
    }) {
        ReaderEvent::ReadFailed { reason, .. } => {
            assert!(
                ["unplugged", "unavailable"].contains(&reason.code),
                "{reason}"
            )
        }
        other => panic!("expected a failed read, got {other:?}"),
    }
    events.wait_state(SECS, DeviceState::NoDevice);
    sim.replug().unwrap();
    events.wait_state(SECS, DeviceState::Online);
    card.remove();
    wait_absent(&mut events, "unplugged");
    card.place(profile.clone());
    let (read, _) = wait_read(&mut events, "replugged");
    assert_eq!(read.identity, profile.identity);
    card.remove();
    wait_absent(&mut events, "replugged");
    handle.stop();
}
