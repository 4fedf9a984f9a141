//! The virtual card over TCP, with the test listening as vpcd does.

use std::time::{Duration, Instant};

use kiosk_idcard::frame::{CardData, format_sam_id};
use kiosk_idcard::{Command, Identity, SamStatus};
use kiosk_sim::vicc::ATR;
use kiosk_sim::{CardProfile, Fault, ViccConfig, VirtualCard};

use crate::support::{FakeVpcd, Vpcd, decode_response, split_sw, tunnel_extended, tunnel_short};

/// Long enough for a connection that should come to have come.
const QUIET: Duration = Duration::from_millis(300);

fn start(vpcd: &FakeVpcd) -> VirtualCard {
    VirtualCard::start(ViccConfig::new(vpcd.port)).unwrap()
}

fn start_with(vpcd: &FakeVpcd, profile: &str) -> (VirtualCard, Vpcd) {
    let card = start(vpcd);
    card.place(CardProfile::builtin(profile).unwrap());
    let mut v = vpcd.accept();
    // Power up as vpcd does: `01` (no answer), then `04` → ATR.
    v.send(&[0x01]);
    assert_eq!(v.transmit(&[0x04]), ATR);
    (card, v)
}

fn tunnel_ext(v: &mut Vpcd, command: Command) -> kiosk_idcard::Response {
    let r = v.transmit(&tunnel_extended(&command.request_frame()));
    let (frame, sw) = split_sw(&r);
    assert_eq!(sw, [0x90, 0x00], "{command:?}");
    decode_response(frame)
}

#[test]
fn no_card_no_connection_then_a_card_connects_and_answers_atr() {
    let vpcd = FakeVpcd::bind();
    let card = start(&vpcd);
    assert_eq!(card.ports(), [vpcd.port, vpcd.port + 1]);
    assert!(
        vpcd.accept_within(0, QUIET).is_none(),
        "no card: no connection"
    );

    card.place(CardProfile::builtin("resident").unwrap());
    let mut v = vpcd.accept();
    // Presence polls on one connection.
    for _ in 0..3 {
        assert_eq!(v.transmit(&[0x04]), ATR);
    }
    // Power off / reset need no answer; the connection stays usable.
    v.send(&[0x00]);
    v.send(&[0x02]);
    assert_eq!(v.transmit(&[0x04]), ATR);
    assert!(card.is_connected(0));
    assert_eq!(card.stats().connections, 1);
    // Slot 1 stays an empty reader.
    assert!(vpcd.accept_within(1, QUIET).is_none());
}

#[test]
fn slot_one_takes_a_card_of_its_own() {
    let vpcd = FakeVpcd::bind();
    let card = start(&vpcd);
    card.place_in(1, CardProfile::builtin("foreign-2017").unwrap());
    let mut v = vpcd
        .accept_within(1, Duration::from_secs(5))
        .expect("slot 1 connects");
    let r = v.transmit(&[0x00, 0x36, 0x00, 0x00, 0x08]);
    assert_eq!(
        split_sw(&r).0,
        CardProfile::builtin("foreign-2017").unwrap().uid
    );
    assert!(vpcd.accept_within(0, QUIET).is_none(), "slot 0 still empty");
}

#[test]
fn uid_and_unknown_apdus() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "resident");
    let uid = CardProfile::builtin("resident").unwrap().uid;
    let r = v.transmit(&[0x00, 0x36, 0x00, 0x00, 0x08]);
    assert_eq!(split_sw(&r), (&uid[..], [0x90, 0x00]));
    let r = v.transmit(&[0xFF, 0xCA, 0x00, 0x00, 0x00]);
    assert_eq!(split_sw(&r), (&uid[..], [0x90, 0x00]));
    assert_eq!(
        v.transmit(&[0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00]),
        [0x6D, 0x00]
    );
    assert_eq!(
        v.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x10]),
        [0x69, 0x85],
        "GET RESPONSE with nothing pending"
    );
    assert_eq!(
        v.transmit(&[0xFF, 0x69, 0x96, 0x00, 0x05, 0x01]),
        [0x67, 0x00],
        "Lc mismatch"
    );
    assert_eq!(card.stats().apdus, 5);
}

#[test]
fn tunnelled_read_with_extended_apdus() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "hkmotw");
    let id = tunnel_ext(&mut v, Command::SamId);
    assert_eq!(
        format_sam_id(&id.data).unwrap(),
        "05.01-20101216-0011223344-1234567890"
    );
    assert_eq!(
        tunnel_ext(&mut v, Command::FindCard).status(),
        SamStatus::CardFound
    );
    assert_eq!(
        tunnel_ext(&mut v, Command::SelectCard).status(),
        SamStatus::Ok
    );
    let read = tunnel_ext(&mut v, Command::ReadTextPhoto);
    assert_eq!(read.status(), SamStatus::Ok);
    let data = CardData::parse(&read.data, false).unwrap();
    assert_eq!(
        Identity::decode(&data.text).unwrap(),
        CardProfile::builtin("hkmotw").unwrap().identity
    );
    let stats = card.stats();
    assert_eq!((stats.tunnelled, stats.sam.reads_completed), (4, 1));
}

#[test]
fn tunnelled_read_with_short_apdus_chains_with_get_response() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "resident-fingerprint");
    let profile = CardProfile::builtin("resident-fingerprint").unwrap();
    for c in [Command::FindCard, Command::SelectCard] {
        let r = v.transmit(&tunnel_short(&c.request_frame()));
        assert_eq!(
            split_sw(&r).1,
            [0x90, 0x00],
            "short answers fit in one APDU"
        );
    }
    let r = v.transmit(&tunnel_short(
        &Command::ReadTextPhotoFingerprint.request_frame(),
    ));
    let (first, mut sw) = split_sw(&r);
    assert_eq!(first.len(), 256);
    assert_eq!(sw[0], 0x61);
    let mut frame = first.to_vec();
    while sw[0] == 0x61 {
        let r = v.transmit(&[0x00, 0xC0, 0x00, 0x00, sw[1]]);
        let (chunk, next) = split_sw(&r);
        assert!(chunk.len() <= 256);
        frame.extend_from_slice(chunk);
        sw = next;
    }
    assert_eq!(sw, [0x90, 0x00]);
    let read = decode_response(&frame);
    let data = CardData::parse(&read.data, true).unwrap();
    assert_eq!(Identity::decode(&data.text).unwrap(), profile.identity);
    assert_eq!(data.fingerprint.unwrap(), profile.fingerprint().unwrap());
    assert_eq!(card.stats().sam.reads_completed, 1);
}

#[test]
fn short_apdu_without_le_gets_61xx_and_no_data() {
    let vpcd = FakeVpcd::bind();
    let (_card, mut v) = start_with(&vpcd, "resident");
    let frame = Command::SamId.request_frame();
    let mut apdu = vec![0xFF, 0x69, 0x96, 0x00, frame.len() as u8];
    apdu.extend_from_slice(&frame);
    let r = v.transmit(&apdu);
    assert_eq!(r, [0x61, 27], "a 16-byte SAM id in a 27-byte frame");
    let r = v.transmit(&[0x00, 0xC0, 0x00, 0x00, 27]);
    let (frame, sw) = split_sw(&r);
    assert_eq!(sw, [0x90, 0x00]);
    assert_eq!(decode_response(frame).data.len(), 16);
}

#[test]
fn custom_tunnel_header() {
    let vpcd = FakeVpcd::bind();
    let card = VirtualCard::start(ViccConfig {
        tunnel_header: [0x80, 0xB0, 0x00, 0x00],
        ..ViccConfig::new(vpcd.port)
    })
    .unwrap();
    card.place(CardProfile::builtin("resident").unwrap());
    let mut v = vpcd.accept();
    assert_eq!(
        v.transmit(&tunnel_extended(&Command::SamId.request_frame())),
        [0x6D, 0x00]
    );
    let mut apdu = tunnel_extended(&Command::SamId.request_frame());
    apdu[..4].copy_from_slice(&[0x80, 0xB0, 0x00, 0x00]);
    assert_eq!(split_sw(&v.transmit(&apdu)).1, [0x90, 0x00]);
}

#[test]
fn removing_the_card_closes_the_connection() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "resident");
    card.remove();
    v.send(&[0x04]);
    assert_eq!(v.recv(), None);
    assert!(
        vpcd.accept_within(0, QUIET).is_none(),
        "no card: no new connection"
    );
    // Another card: a new connection.
    card.place(CardProfile::builtin("foreign-2023").unwrap());
    let mut v = vpcd.accept();
    let r = v.transmit(&[0x00, 0x36, 0x00, 0x00, 0x08]);
    assert_eq!(
        split_sw(&r).0,
        CardProfile::builtin("foreign-2023").unwrap().uid
    );
}

#[test]
fn replacing_the_card_closes_the_old_connection_first() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "resident");
    card.place(CardProfile::builtin("resident-expired").unwrap());
    v.send(&[0x04]);
    assert_eq!(
        v.recv(),
        None,
        "vpcd must see the old card go before the new one comes"
    );
    let mut v = vpcd.accept();
    let r = v.transmit(&[0x00, 0x36, 0x00, 0x00, 0x08]);
    assert_eq!(
        split_sw(&r).0,
        CardProfile::builtin("resident-expired").unwrap().uid
    );
}

#[test]
fn when_vpcd_hangs_up_the_card_connects_again() {
    let vpcd = FakeVpcd::bind();
    let (card, v) = start_with(&vpcd, "resident");
    drop(v); // pcscd restarting
    let mut v = vpcd.accept();
    assert_eq!(v.transmit(&[0x04]), ATR);
    assert_eq!(card.stats().connections, 2);
}

#[test]
fn pull_mid_read_closes_the_connection_without_an_answer() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "fault-pulled");
    tunnel_ext(&mut v, Command::SelectCard);
    v.send(&tunnel_extended(&Command::ReadTextPhoto.request_frame()));
    assert_eq!(v.recv(), None);
    assert!(!card.is_present(0));
    assert!(vpcd.accept_within(0, QUIET).is_none(), "card gone");
}

#[test]
fn faults_bad_checksum_sw3_and_slow() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "resident");
    tunnel_ext(&mut v, Command::SelectCard);

    card.set_fault(Fault::BadChecksum);
    let r = v.transmit(&tunnel_extended(&Command::ReadTextPhoto.request_frame()));
    let (frame, _) = split_sw(&r);
    let mut d = kiosk_idcard::FrameDecoder::new();
    d.push(frame);
    assert!(d.next_frame().is_err(), "corrupted checksum");

    card.set_fault(Fault::Sw3 {
        command: Command::ReadTextPhoto,
        sw3: 0x41,
    });
    let read = tunnel_ext(&mut v, Command::ReadTextPhoto);
    assert_eq!((read.sw3, read.data.len()), (0x41, 0));

    card.set_fault(Fault::Slow { delay_ms: 200 });
    let t = Instant::now();
    assert_eq!(
        tunnel_ext(&mut v, Command::ReadTextPhoto).status(),
        SamStatus::Ok
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[test]
fn emulated_baud_delays_tunnelled_answers() {
    let vpcd = FakeVpcd::bind();
    let card = VirtualCard::start(ViccConfig {
        emulate_baud: Some(38_400),
        ..ViccConfig::new(vpcd.port)
    })
    .unwrap();
    card.place(CardProfile::builtin("resident").unwrap());
    let mut v = vpcd.accept();
    tunnel_ext(&mut v, Command::SelectCard);
    let t = Instant::now();
    tunnel_ext(&mut v, Command::ReadTextPhoto);
    assert!(t.elapsed() >= kiosk_sim::sam::wire_time(10 + 1295, 38_400));
}

#[test]
fn the_card_waits_for_vpcd_to_listen() {
    // Find a port pair, then free it: nobody listens yet.
    let port = FakeVpcd::bind().port;
    let card = VirtualCard::start(ViccConfig::new(port)).unwrap();
    card.place(CardProfile::builtin("resident").unwrap());
    assert!(!card.is_connected(0));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (stream, _) = listener.accept().unwrap();
    let mut v = Vpcd { stream };
    v.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(v.transmit(&[0x04]), ATR);
}

#[test]
fn drop_closes_the_connection_and_stops() {
    let vpcd = FakeVpcd::bind();
    let (card, mut v) = start_with(&vpcd, "resident");
    let t = Instant::now();
    drop(card);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        t.elapsed()
    );
    v.send(&[0x04]);
    assert_eq!(v.recv(), None);
}

#[test]
fn port_zero_means_vpcds_default_port() {
    let card = VirtualCard::start(ViccConfig::new(0)).unwrap();
    assert_eq!(card.ports(), [0x8C7B, 0x8C7C]);
    assert!(
        VirtualCard::start(ViccConfig::new(u16::MAX)).is_err(),
        "slot 1 needs port + 1"
    );
}
