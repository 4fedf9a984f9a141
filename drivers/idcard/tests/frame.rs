use kiosk_idcard::frame::{
    CardData, Decoded, PHOTO_LEN, TEXT_LEN, encode_frame, format_sam_id, try_encode_frame,
};
use kiosk_idcard::{
    CardType, Command, FrameDecoder, FrameError, Identity, Request, Response, SamError, SamStatus,
};

use crate::hex;

/// Decode one whole frame (all bytes pushed at once) into a response.
fn response_of(frame: &[u8]) -> Response {
    let mut decoder = FrameDecoder::new();
    decoder.push(frame);
    match decoder.next_frame() {
        Ok(Decoded::Frame(payload)) => Response::from_payload(&payload).expect("response payload"),
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[test]
fn request_frames_of_every_command() {
    let expected = [
        (Command::ResetSam, "AA AA AA 96 69 00 03 10 FF EC"),
        (Command::SamStatus, "AA AA AA 96 69 00 03 11 FF ED"),
        (Command::SamId, "AA AA AA 96 69 00 03 12 FF EE"),
        (Command::FindCard, "AA AA AA 96 69 00 03 20 01 22"),
        (Command::SelectCard, "AA AA AA 96 69 00 03 20 02 21"),
        (Command::ReadTextPhoto, "AA AA AA 96 69 00 03 30 01 32"),
        (
            Command::ReadTextPhotoFingerprint,
            "AA AA AA 96 69 00 03 30 10 23",
        ),
        (
            Command::ReadAppendedAddress,
            "AA AA AA 96 69 00 03 30 03 30",
        ),
    ];
    assert_eq!(expected.len(), Command::ALL.len());
    for (command, frame) in expected {
        assert_eq!(command.request_frame(), hex(frame), "{command:?}");
    }
}

#[test]
fn command_codes_round_trip() {
    for command in Command::ALL {
        let (cmd, para) = command.code();
        assert_eq!(Command::from_code(cmd, para), Some(command));
        let request = Request::from_payload(&[cmd, para]).unwrap();
        assert_eq!(request.command(), Some(command));
        assert_eq!(request.to_frame(), command.request_frame());
    }
    assert_eq!(Command::from_code(0x30, 0x02), None);
    assert_eq!(Command::from_code(0x10, 0x00), None);
}

#[test]
fn request_decoded_from_its_frame() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&hex("AA AA AA 96 69 00 03 30 01 32"));
    let Ok(Decoded::Frame(payload)) = decoder.next_frame() else {
        panic!("no frame")
    };
    let request = Request::from_payload(&payload).unwrap();
    assert_eq!(
        request,
        Request {
            cmd: 0x30,
            para: 0x01,
            data: vec![]
        }
    );
    assert_eq!(request.command(), Some(Command::ReadTextPhoto));
}

#[test]
fn short_payloads_are_errors() {
    assert_eq!(
        Request::from_payload(&[0x20]),
        Err(FrameError::ShortPayload(1))
    );
    assert_eq!(Request::from_payload(&[]), Err(FrameError::ShortPayload(0)));
    assert_eq!(
        Response::from_payload(&[0, 0]),
        Err(FrameError::ShortPayload(2))
    );
}

#[test]
fn reset_and_sam_status_responses() {
    let ok = hex("AA AA AA 96 69 00 04 00 00 90 94");
    let response = response_of(&ok);
    assert_eq!(response.status(), SamStatus::Ok);
    assert!(response.data.is_empty());
    assert_eq!(Response::new(SamStatus::Ok, vec![]).to_frame(), ok);

    let self_test = response_of(&hex("AA AA AA 96 69 00 04 00 00 60 64"));
    assert_eq!(
        self_test.status(),
        SamStatus::Error(SamError::SelfTestFailed)
    );
}

#[test]
fn sam_id_response() {
    let frame =
        hex("AA AA AA 96 69 00 14 00 00 90 05 00 01 00 60 B8 32 01 30 41 AB 00 D2 02 96 49 BE");
    let response = response_of(&frame);
    assert_eq!(response.status(), SamStatus::Ok);
    assert_eq!(
        format_sam_id(&response.data).unwrap(),
        "05.01-20101216-0011223344-1234567890"
    );
    assert_eq!(
        Response::new(SamStatus::Ok, response.data.clone()).to_frame(),
        frame
    );
}

#[test]
fn sam_id_of_wrong_length_is_an_error() {
    assert_eq!(format_sam_id(&[0; 15]), Err(FrameError::ShortPayload(15)));
    assert_eq!(format_sam_id(&[0; 17]), Err(FrameError::Length(17)));
    assert_eq!(
        format_sam_id(&[0; 16]).unwrap(),
        "00.00-00000000-0000000000-0000000000"
    );
    assert_eq!(
        format_sam_id(&[0xFF; 16]).unwrap(),
        "65535.65535-4294967295-4294967295-4294967295"
    );
}

#[test]
fn find_card_responses() {
    let found = response_of(&hex("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97"));
    assert_eq!(found.status(), SamStatus::CardFound);
    assert_eq!(found.data, vec![0; 4]);
    assert_eq!(found.status().into_result(), Ok(()));

    let none = response_of(&hex("AA AA AA 96 69 00 04 00 00 80 84"));
    assert_eq!(none.status().into_result(), Err(SamError::NoCard));
}

#[test]
fn select_card_responses() {
    let selected = response_of(&hex(
        "AA AA AA 96 69 00 0C 00 00 90 00 00 00 00 00 00 00 00 9C",
    ));
    assert_eq!(selected.status(), SamStatus::Ok);
    assert_eq!(selected.data, vec![0; 8]);

    let failed = response_of(&hex("AA AA AA 96 69 00 04 00 00 81 85"));
    assert_eq!(failed.status(), SamStatus::Error(SamError::SelectFailed));
}

#[test]
fn read_text_photo_response() {
    let text = Identity::sample(CardType::Resident).encode();
    let photo: Vec<u8> = (0..PHOTO_LEN).map(|i| (i % 251) as u8).collect();
    let data = CardData {
        text: text.to_vec(),
        photo: photo.clone(),
        fingerprint: None,
    };
    let frame = Response::new(SamStatus::Ok, data.to_data()).to_frame();

    // LEN 0x0508: SW1-3, two lengths, text, photo, checksum.
    assert_eq!(
        &frame[..12],
        &hex("AA AA AA 96 69 05 08 00 00 90 01 00")[..]
    );
    assert_eq!(&frame[12..14], &[0x04, 0x00]);
    assert_eq!(frame.len(), 7 + 0x0508);

    let response = response_of(&frame);
    let parsed = CardData::parse(&response.data, false).unwrap();
    assert_eq!(parsed.text.len(), TEXT_LEN);
    assert_eq!(parsed.photo, photo);
    assert_eq!(parsed.fingerprint, None);
    assert_eq!(
        Identity::decode(&parsed.text).unwrap(),
        Identity::sample(CardType::Resident)
    );
}

#[test]
fn read_text_photo_fingerprint_response() {
    let text = Identity::sample(CardType::HkMoTwResidence).encode();
    let data = CardData {
        text: text.to_vec(),
        photo: vec![0x11; 1024],
        fingerprint: Some(vec![0x22; 1024]),
    };
    let frame = Response::new(SamStatus::Ok, data.to_data()).to_frame();
    assert_eq!(
        &frame[..16],
        &hex("AA AA AA 96 69 09 0A 00 00 90 01 00 04 00 04 00")[..]
    );

    let response = response_of(&frame);
    let parsed = CardData::parse(&response.data, true).unwrap();
    assert_eq!(parsed, data);
    assert_eq!(
        Identity::decode(&parsed.text).unwrap().card_type,
        CardType::HkMoTwResidence
    );
}

#[test]
fn read_failures() {
    let failed = response_of(&hex("AA AA AA 96 69 00 04 00 00 41 45"));
    assert_eq!(failed.status().into_result(), Err(SamError::ReadFailed));
    let wrong_card = response_of(&hex("AA AA AA 96 69 00 04 00 00 40 44"));
    assert_eq!(
        wrong_card.status().into_result(),
        Err(SamError::WrongCardType)
    );
}

#[test]
fn card_data_lengths_are_checked() {
    // Header cut short.
    assert_eq!(
        CardData::parse(&[0x01, 0x00, 0x04], false),
        Err(FrameError::ShortPayload(3))
    );
    assert_eq!(
        CardData::parse(&[0; 4], true),
        Err(FrameError::ShortPayload(4))
    );
    // Declares 256 + 1024 bytes, carries fewer.
    let mut data = hex("01 00 04 00");
    data.extend_from_slice(&[0; 100]);
    assert_eq!(
        CardData::parse(&data, false),
        Err(FrameError::ShortPayload(104))
    );
    // Carries more than declared.
    let data = hex("00 01 00 01 AA BB CC");
    assert_eq!(CardData::parse(&data, false), Err(FrameError::Length(7)));
    // Exactly as declared.
    let data = hex("00 01 00 01 AA BB");
    let parsed = CardData::parse(&data, false).unwrap();
    assert_eq!((parsed.text, parsed.photo), (vec![0xAA], vec![0xBB]));
    // A 30 10 answer for a card without fingerprints.
    let parsed = CardData::parse(&hex("00 01 00 01 00 00 AA BB"), true).unwrap();
    assert_eq!(parsed.fingerprint, Some(vec![]));
}

#[test]
fn appended_address_response() {
    let block = kiosk_idcard::identity::encode_appended_address("北京市海淀区示例街3号");
    let frame = Response::new(SamStatus::Ok, block.to_vec()).to_frame();
    assert_eq!(&frame[..10], &hex("AA AA AA 96 69 00 4A 00 00 90")[..]);
    let response = response_of(&frame);
    assert_eq!(
        kiosk_idcard::identity::decode_appended_address(&response.data).unwrap(),
        "北京市海淀区示例街3号"
    );
}

#[test]
fn debug_of_card_data_shows_sizes_only() {
    let data = CardData {
        text: b"secret".to_vec(),
        photo: vec![1, 2],
        fingerprint: None,
    };
    assert_eq!(
        format!("{data:?}"),
        "CardData { text_len: 6, photo_len: 2, fingerprint_len: None }"
    );
    assert_eq!(
        format!("{:?}", Decoded::Frame(b"secret".to_vec())),
        "Frame(6 bytes)"
    );
    let response = Response::new(SamStatus::Ok, b"secret".to_vec());
    assert_eq!(
        format!("{response:?}"),
        "Response { sw1: 00, sw2: 00, sw3: 90, data_len: 6 }"
    );
}

#[test]
fn encode_limits() {
    assert_eq!(
        try_encode_frame(&vec![0; 0xFFFE]).map(|f| f.len()),
        Ok(7 + 0xFFFF)
    );
    assert_eq!(
        try_encode_frame(&vec![0; 0xFFFF]),
        Err(FrameError::Length(0x10000))
    );
    assert_eq!(
        encode_frame(&[0x20, 0x01]),
        hex("AA AA AA 96 69 00 03 20 01 22")
    );
}

// --- the streaming decoder ---

fn drain(decoder: &mut FrameDecoder) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut out = Vec::new();
    loop {
        match decoder.next_frame() {
            Ok(Decoded::Frame(payload)) => out.push(Ok(payload)),
            Ok(Decoded::Incomplete) => return out,
            Err(e) => out.push(Err(e)),
        }
    }
}

#[test]
fn decoder_reports_incomplete_until_whole() {
    let frame = hex("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97");
    let mut decoder = FrameDecoder::new();
    for (i, byte) in frame.iter().enumerate() {
        assert_eq!(
            decoder.next_frame(),
            Ok(Decoded::Incomplete),
            "before byte {i}"
        );
        decoder.push(&[*byte]);
    }
    assert_eq!(
        decoder.next_frame(),
        Ok(Decoded::Frame(hex("00 00 9F 00 00 00 00")))
    );
    assert_eq!(decoder.next_frame(), Ok(Decoded::Incomplete));
    assert_eq!(decoder.skipped(), 0);
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn decoder_resyncs_after_partial_preambles() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&hex("01 02 AA AA 96 AA AA AA 96 69 00 03 20 01 22"));
    assert_eq!(drain(&mut decoder), vec![Ok(hex("20 01"))]);
    assert_eq!(decoder.skipped(), 5);
}

#[test]
fn decoder_keeps_a_partial_preamble_at_the_end_of_a_chunk() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&hex("55 66 AA AA AA 96"));
    assert_eq!(decoder.next_frame(), Ok(Decoded::Incomplete));
    assert_eq!((decoder.skipped(), decoder.buffered()), (2, 4));
    decoder.push(&hex("69 00 03 20 02 21"));
    assert_eq!(drain(&mut decoder), vec![Ok(hex("20 02"))]);
}

#[test]
fn decoder_reports_a_bad_checksum_once_and_goes_on() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&hex("AA AA AA 96 69 00 03 20 01 23"));
    decoder.push(&hex("AA AA AA 96 69 00 03 20 02 21"));
    assert_eq!(
        drain(&mut decoder),
        vec![
            Err(FrameError::Checksum {
                computed: 0x22,
                received: 0x23
            }),
            Ok(hex("20 02"))
        ]
    );
}

#[test]
fn decoder_refuses_lengths_below_two_and_resyncs() {
    for len in ["00 00", "00 01"] {
        let mut decoder = FrameDecoder::new();
        decoder.push(&hex(&format!(
            "AA AA AA 96 69 {len} AA AA AA 96 69 00 03 20 01 22"
        )));
        let found = drain(&mut decoder);
        let len = usize::from_str_radix(&len.replace(' ', ""), 16).unwrap();
        assert_eq!(found, vec![Err(FrameError::Length(len)), Ok(hex("20 01"))]);
    }
}

#[test]
fn decoder_caps_the_length() {
    // A corrupted LEN (0xAAAA) does not make the decoder wait for 43 KiB:
    // the real frame right after the false preamble is found.
    let mut decoder = FrameDecoder::new();
    decoder.push(&hex("AA AA AA 96 69 AA AA AA 96 69 00 03 20 01 22"));
    assert_eq!(
        drain(&mut decoder),
        vec![Err(FrameError::Length(0xAAAA)), Ok(hex("20 01"))]
    );

    // The format's own maximum, when asked for.
    let payload = vec![0x5A; 0xFFFE];
    let mut decoder = FrameDecoder::with_max_len(usize::MAX);
    assert_eq!(decoder.max_len(), 0xFFFF);
    decoder.push(&encode_frame(&payload));
    assert_eq!(drain(&mut decoder), vec![Ok(payload)]);
}

#[test]
fn decoder_clear_drops_a_partial_frame() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&hex("AA AA AA 96 69 00 03 20"));
    decoder.clear();
    decoder.push(&hex("AA AA AA 96 69 00 03 20 01 22"));
    assert_eq!(drain(&mut decoder), vec![Ok(hex("20 01"))]);
}
