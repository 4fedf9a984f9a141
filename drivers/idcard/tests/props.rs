//! Property tests: the codec round-trips and survives anything.

use chrono::NaiveDate;
use kiosk_idcard::frame::{Decoded, PREAMBLE, encode_frame};
use kiosk_idcard::idnumber::{check_char, convert15to18, matches_on_file, validate18};
use kiosk_idcard::{CardType, FrameDecoder, FrameError, Identity, Sex, Validity};
use proptest::prelude::*;

/// Everything the decoder hands out until it needs more bytes.
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

/// Push `bytes` cut at `cuts` (positions, any order, may repeat), draining
/// after every chunk as a transport would.
fn feed_in_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    for pair in cuts.windows(2) {
        decoder.push(&bytes[pair[0]..pair[1]]);
        out.extend(drain(&mut decoder));
    }
    out
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..600)
}

/// Garbage that looks like frames: lots of preamble bytes, never a whole
/// preamble (a whole one would be a frame start, which the decoder must
/// believe).
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0xAA), Just(0x96), Just(0x69), Just(0x00), any::<u8>()],
        0..200,
    )
    .prop_filter("no whole preamble", |g| {
        !g.windows(5).any(|w| w == PREAMBLE)
    })
}

proptest! {
    #[test]
    fn frame_round_trip(payload in payload()) {
        let mut decoder = FrameDecoder::new();
        decoder.push(&encode_frame(&payload));
        prop_assert_eq!(drain(&mut decoder), vec![Ok(payload)]);
        prop_assert_eq!(decoder.skipped(), 0);
    }

    #[test]
    fn any_chunking_gives_the_same_frames(
        payloads in prop::collection::vec(payload(), 1..5),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let stream: Vec<u8> = payloads.iter().flat_map(|p| encode_frame(p)).collect();
        let expected: Vec<_> = payloads.into_iter().map(Ok).collect();
        prop_assert_eq!(feed_in_chunks(&stream, &cuts), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let frames = feed_in_chunks(&bytes, &cuts);
        for frame in frames.into_iter().flatten() {
            let _ = kiosk_idcard::Response::from_payload(&frame);
            let _ = kiosk_idcard::Request::from_payload(&frame);
            let _ = kiosk_idcard::frame::CardData::parse(&frame, true);
        }
    }

    #[test]
    fn a_frame_after_garbage_is_found(
        garbage in garbage(),
        payload in payload(),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut stream = garbage.clone();
        stream.extend(encode_frame(&payload));
        prop_assert_eq!(feed_in_chunks(&stream, &cuts), vec![Ok(payload)]);
    }

    #[test]
    fn a_frame_after_a_false_preamble_is_found(
        bad_len in prop_oneof![0u16..2, 4097u16..=u16::MAX],
        payload in payload(),
    ) {
        let mut stream = PREAMBLE.to_vec();
        stream.extend(bad_len.to_be_bytes());
        stream.extend(encode_frame(&payload));
        let mut decoder = FrameDecoder::new();
        decoder.push(&stream);
        prop_assert_eq!(
            drain(&mut decoder),
            vec![Err(FrameError::Length(usize::from(bad_len))), Ok(payload)]
        );
    }

    #[test]
    fn a_corrupted_frame_is_one_error(payload in payload(), flip in any::<usize>(), bit in 0u8..8) {
        // Corrupt a payload or checksum byte (not the length: that changes
        // which bytes belong to the frame).
        let mut frame = encode_frame(&payload);
        let i = 7 + flip % (frame.len() - 7);
        frame[i] ^= 1 << bit;
        frame.extend(encode_frame(&[0x20, 0x01]));
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame);
        let found = drain(&mut decoder);
        prop_assert_eq!(found.len(), 2);
        prop_assert!(matches!(found[0], Err(FrameError::Checksum { .. })), "{:?}", found[0]);
        prop_assert_eq!(&found[1], &Ok(vec![0x20, 0x01]));
    }

    #[test]
    fn text_blocks_never_panic(text in prop::collection::vec(any::<u8>(), 256)) {
        if let Ok(identity) = Identity::decode(&text) {
            let _ = format!("{identity:?}");
            // What decodes encodes to a block that decodes the same.
            prop_assert_eq!(Identity::decode(&identity.encode()), Ok(identity));
        }
    }

    #[test]
    fn damaged_text_blocks_never_panic(
        card_type in prop::sample::select(CardType::ALL.to_vec()),
        damage in prop::collection::vec((0usize..256, any::<u8>()), 1..8),
    ) {
        let mut text = Identity::sample(card_type).encode();
        for (i, byte) in damage {
            text[i] = byte;
        }
        if let Ok(identity) = Identity::decode(&text) {
            let _ = format!("{identity:?}");
            prop_assert_eq!(Identity::decode(&identity.encode()), Ok(identity));
        }
    }

    #[test]
    fn identity_round_trip(identity in identity()) {
        let block = identity.encode();
        prop_assert_eq!(Identity::decode(&block), Ok(identity));
    }

    #[test]
    fn debug_never_shows_the_number(identity in identity()) {
        let debug = format!("{identity:?}");
        prop_assert!(!debug.contains(&identity.number));
        prop_assert!(!debug.contains(&identity.birth_date));
    }

    #[test]
    fn rule_i2_a_valid_number_with_one_digit_changed_is_invalid(
        first17 in "[1-6][0-9]{16}", pos in 0usize..17, delta in 1u32..10,
    ) {
        let number = format!("{first17}{}", check_char(&first17).unwrap());
        let mut digits: Vec<char> = number.chars().collect();
        digits[pos] = char::from_digit((digits[pos].to_digit(10).unwrap() + delta) % 10, 10).unwrap();
        let changed: String = digits.into_iter().collect();
        prop_assert_ne!(check_char(&changed[..17]).unwrap(), number.chars().last().unwrap());
    }

    #[test]
    fn rule_i3_converted_numbers_are_valid_and_match(
        region in prop::sample::select(vec!["110105", "310115", "440304", "510107", "650102"]),
        birth in date_in(1900, 1999),
        seq in 0u32..1000,
        lower in any::<bool>(),
    ) {
        let n15 = format!("{region}{}{seq:03}", birth.format("%y%m%d"));
        let n18 = convert15to18(&n15).unwrap();
        prop_assert_eq!(validate18(&n18), Ok(()));
        prop_assert_eq!(&n18[..6], region);
        prop_assert_eq!(&n18[6..14], birth.format("%Y%m%d").to_string());
        let card = if lower { n18.to_lowercase() } else { n18.clone() };
        prop_assert!(matches_on_file(&card, &n15));
        prop_assert!(matches_on_file(&card, &n18));
    }
}

// --- generated identities ---

fn date_in(from: i32, to: i32) -> impl Strategy<Value = NaiveDate> {
    let start = NaiveDate::from_ymd_opt(from, 1, 1).unwrap();
    let days = (NaiveDate::from_ymd_opt(to, 12, 31).unwrap() - start).num_days();
    (0..=days).prop_map(move |d| start + chrono::Duration::days(d))
}

fn ymd(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// Chinese text of 1..=max characters, now and then one outside the BMP.
fn chinese(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![9 => prop::char::range('\u{4E00}', '\u{9FA5}'), 1 => Just('𠮷')],
        1..=max / 2,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn sex() -> impl Strategy<Value = Sex> {
    prop_oneof![Just(Sex::Male), Just(Sex::Female), Just(Sex::Unknown)]
}

fn validity() -> impl Strategy<Value = Validity> {
    prop_oneof![
        Just(Validity::LongTerm),
        date_in(2000, 2099).prop_map(Validity::Until)
    ]
}

fn ethnic_code() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..=56).prop_map(|c| format!("{c:02}")),
        Just("97".into()),
        Just("98".into())
    ]
}

/// Sex, birth date, validity start and end, an 18-character number.
fn common() -> impl Strategy<Value = (Sex, NaiveDate, NaiveDate, Validity, String)> {
    (
        sex(),
        date_in(1900, 2099),
        date_in(2000, 2099),
        validity(),
        "[0-9]{17}[0-9X]",
    )
}

fn identity() -> impl Strategy<Value = Identity> {
    let resident = (
        common(),
        chinese(15),
        ethnic_code(),
        chinese(35),
        chinese(15),
    )
        .prop_map(
            |((sex, birth, from, until, number), name, ethnic, address, issuer)| Identity {
                card_type: CardType::Resident,
                name,
                english_name: None,
                sex,
                ethnic_code: Some(ethnic),
                nationality: None,
                birth_date: ymd(birth),
                address: Some(address),
                number,
                issuer,
                valid_from: from,
                valid_until: until,
                pass_number: None,
                issue_count: None,
            },
        );
    let permit = (
        common(),
        chinese(15),
        chinese(35),
        chinese(15),
        "8[123][0-9]{15}[0-9X]",
        "[HM][0-9]{8}",
        "[0-9]{2}",
    )
        .prop_map(
            |((sex, birth, from, until, _), name, address, issuer, number, pass, count)| Identity {
                card_type: CardType::HkMoTwResidence,
                name,
                english_name: None,
                sex,
                ethnic_code: None,
                nationality: None,
                birth_date: ymd(birth),
                address: Some(address),
                number,
                issuer,
                valid_from: from,
                valid_until: until,
                pass_number: Some(pass),
                issue_count: Some(count),
            },
        );
    let english = "[A-Z]{1,25}(, [A-Z]{1,25}( [A-Z]{1,5})?)?";
    let foreign = (
        common(),
        prop_oneof![Just(String::new()), chinese(15)],
        english,
        "[A-Z]{3}",
        "[0-9]{2}",
        any::<bool>(),
        "[A-Z]{3}[0-9]{12}",
        "9[0-9]{16}[0-9X]",
        "[0-9]{4}",
    )
        .prop_map(
            |(
                (sex, birth, from, until, _),
                name,
                english,
                nationality,
                version,
                new,
                n15,
                n18,
                issuer,
            )| {
                Identity {
                    card_type: if new {
                        CardType::ForeignPermanent2023
                    } else {
                        CardType::ForeignPermanent2017
                    },
                    name,
                    // The 2023 card holds 46 characters, the 2017 one 60.
                    english_name: Some(if new {
                        english
                            .chars()
                            .take(46)
                            .collect::<String>()
                            .trim_end()
                            .to_string()
                    } else {
                        english
                    }),
                    sex,
                    ethnic_code: None,
                    nationality: Some(nationality),
                    birth_date: ymd(birth),
                    address: None,
                    number: if new { n18 } else { n15 },
                    issuer: if new { String::new() } else { issuer },
                    valid_from: from,
                    valid_until: until,
                    pass_number: None,
                    issue_count: Some(version),
                }
            },
        );
    prop_oneof![resident, permit, foreign]
}
