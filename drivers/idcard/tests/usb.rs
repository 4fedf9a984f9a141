//! GA 467 frames in USB bulk packets: recorded packet sequences (the frames
//! are the documented ones: find card `AA AA AA 96 69 00 03 20 01 22`, its
//! answers `... 00 08 00 00 9F 00 00 00 00 97` and `... 00 04 00 00 80 84`,
//! a read answer `... 05 08 00 00 90 01 00 04 00` + text + photo) and
//! property tests over any frame.

use kiosk_idcard::frame::encode_frame;
use kiosk_idcard::usb::{InPackets, PACKET_LEN, Reassembled, out_packets};
use kiosk_idcard::{FrameError, Response};
use proptest::prelude::*;

use crate::hex;

fn push_all(packets: &[Vec<u8>]) -> Vec<Result<Reassembled, FrameError>> {
    let mut reassembler = InPackets::new();
    packets.iter().map(|p| reassembler.push(p)).collect()
}

#[test]
fn a_request_fits_one_packet() {
    let frame = hex("AA AA AA 96 69 00 03 20 01 22");
    assert_eq!(out_packets(&frame), vec![frame.as_slice()]);
}

#[test]
fn short_answers_come_in_one_packet() {
    let found = hex("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97");
    assert_eq!(
        push_all(&[found]),
        [Ok(Reassembled::Frame(hex("00 00 9F 00 00 00 00")))]
    );
    let none = hex("AA AA AA 96 69 00 04 00 00 80 84");
    assert_eq!(push_all(&[none]), [Ok(Reassembled::Frame(hex("00 00 80")))]);
}

/// The recorded read answer: 1295 bytes, 20 full packets and one of 15.
fn read_answer_packets() -> Vec<Vec<u8>> {
    let mut frame = hex("AA AA AA 96 69 05 08 00 00 90 01 00 04 00");
    frame.extend(std::iter::repeat_n(0u8, 256 + 1024));
    frame.push(0x98);
    assert_eq!(frame.len(), 1295);
    frame.chunks(PACKET_LEN).map(<[u8]>::to_vec).collect()
}

#[test]
fn a_read_answer_is_whole_at_its_last_packet() {
    let packets = read_answer_packets();
    assert_eq!(packets.len(), 21);
    let results = push_all(&packets);
    for result in &results[..20] {
        assert_eq!(result, &Ok(Reassembled::NeedMore));
    }
    match &results[20] {
        Ok(Reassembled::Frame(payload)) => {
            assert_eq!(payload.len(), 1287);
            assert_eq!(&payload[..7], hex("00 00 90 01 00 04 00").as_slice());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn padding_after_the_frame_is_ignored() {
    let mut packets = read_answer_packets();
    packets[20].resize(PACKET_LEN, 0);
    assert!(matches!(
        push_all(&packets)[20],
        Ok(Reassembled::Frame(ref payload)) if payload.len() == 1287
    ));
}

#[test]
fn a_transfer_that_ends_early_is_cut_off() {
    let mut packets = read_answer_packets();
    packets.truncate(10);
    packets.push(Vec::new());
    assert_eq!(
        push_all(&packets)[10],
        Ok(Reassembled::Ended { received: 640 })
    );
}

#[test]
fn a_frame_that_fills_its_last_packet_is_followed_by_an_empty_one() {
    // LEN 0x0039: 7 header bytes + 57 = 64.
    let frame = encode_frame(&[0u8; 56]);
    assert_eq!(frame.len(), PACKET_LEN);
    let packets = out_packets(&frame);
    assert_eq!(packets, vec![frame.as_slice(), &[][..]]);
}

#[test]
fn a_bad_checksum_is_an_error() {
    let mut found = hex("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97");
    *found.last_mut().unwrap() = 0x00;
    assert!(matches!(
        push_all(&[found])[0],
        Err(FrameError::Checksum { .. })
    ));
}

proptest! {
    #[test]
    fn any_answer_reassembles_from_its_packets(
        sw3 in any::<u8>(),
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        zero_packets in 0usize..3,
    ) {
        let response = Response { sw1: 0, sw2: 0, sw3, data };
        let frame = response.to_frame();
        // Full packets of zeros before the frame (a reader's idle noise).
        let mut packets: Vec<Vec<u8>> = vec![vec![0; PACKET_LEN]; zero_packets];
        packets.extend(out_packets(&frame).into_iter().map(<[u8]>::to_vec));
        let mut reassembler = InPackets::new();
        let mut payload = None;
        for (i, packet) in packets.iter().enumerate() {
            match reassembler.push(packet).unwrap() {
                Reassembled::Frame(p) => {
                    payload = Some(p);
                    // Whole at the packet holding the frame's last byte.
                    prop_assert!(i + 2 >= packets.len());
                    break;
                }
                Reassembled::NeedMore => {}
                Reassembled::Ended { .. } => prop_assert!(false, "ended at packet {i}"),
            }
        }
        let payload = payload.expect("a frame");
        prop_assert_eq!(Response::from_payload(&payload).unwrap(), response);
    }

    #[test]
    fn a_cut_off_answer_never_makes_a_frame(
        data in proptest::collection::vec(any::<u8>(), 60..3000),
        keep in 0usize..50,
    ) {
        let frame = Response { sw1: 0, sw2: 0, sw3: 0x90, data }.to_frame();
        let packets = out_packets(&frame);
        let keep = keep % (packets.len() - 1).max(1);
        let mut reassembler = InPackets::new();
        for packet in &packets[..keep] {
            prop_assert_eq!(reassembler.push(packet).unwrap(), Reassembled::NeedMore);
        }
        prop_assert_eq!(
            reassembler.push(&[]).unwrap(),
            Reassembled::Ended { received: keep * PACKET_LEN }
        );
    }
}
