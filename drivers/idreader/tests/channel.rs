//! `read_card` and friends over a channel straight into the simulator's SAM
//! state machine (no I/O): decoding of every card, retries, errors.

use std::time::Duration;

use kiosk_idcard::frame::Decoded;
use kiosk_idcard::{
    CardType, Command, FrameDecoder, FrameError, IdentityError, Request, Response, SamError,
};
use kiosk_idreader::{
    PullCause, ReadOptions, ReaderError, SamChannel, find_card, read_card, sam_id, sam_status,
};
use kiosk_sim::{CardProfile, DEFAULT_SAM_ID, Fault, SamCore};

/// A channel into a `SamCore`, with tamper hooks.
struct CoreChannel {
    core: SamCore,
    wire: u64,
    /// Corrupt the checksum of this many read answers.
    corrupt_reads: u32,
    /// Rewrite the data of successful `30 01` answers.
    patch_read: Option<fn(&mut Vec<u8>)>,
    /// Requests seen.
    log: Vec<Command>,
}

impl CoreChannel {
    fn new() -> CoreChannel {
        CoreChannel {
            core: SamCore::new(DEFAULT_SAM_ID),
            wire: 0,
            corrupt_reads: 0,
            patch_read: None,
            log: Vec::new(),
        }
    }
    fn with(profile: &str) -> CoreChannel {
        let mut channel = CoreChannel::new();
        channel.core.place(CardProfile::builtin(profile).unwrap());
        channel
    }
    fn reads(&self) -> usize {
        self.log
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Command::ReadTextPhoto | Command::ReadTextPhotoFingerprint
                )
            })
            .count()
    }
}

impl SamChannel for CoreChannel {
    fn transact(&mut self, request: &Request, _timeout: Duration) -> Result<Response, ReaderError> {
        let frame = request.to_frame();
        self.log.push(request.command().unwrap());
        let reply = self
            .core
            .handle_frame(&frame)
            .expect("a whole request frame");
        let mut bytes = reply.bytes.clone();
        if reply.pulled {
            self.wire += (frame.len() + bytes.len()) as u64;
            return Err(ReaderError::Timeout {
                command: "read",
                timeout_ms: 0,
                received: bytes.len(),
            });
        }
        let is_read = matches!(
            request.command(),
            Some(Command::ReadTextPhoto | Command::ReadTextPhotoFingerprint)
        );
        if is_read && reply.sw3 == 0x90 {
            if let Some(patch) = self.patch_read {
                let mut response = decode(&bytes).unwrap();
                patch(&mut response.data);
                bytes = response.to_frame();
            }
            if self.corrupt_reads > 0 {
                self.corrupt_reads -= 1;
                *bytes.last_mut().unwrap() ^= 0xFF;
            }
        }
        self.wire += (frame.len() + bytes.len()) as u64;
        Ok(decode(&bytes)?)
    }

    fn wire_bytes(&self) -> u64 {
        self.wire
    }
}

fn decode(bytes: &[u8]) -> Result<Response, FrameError> {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    match decoder.next_frame()? {
        Decoded::Frame(payload) => Response::from_payload(&payload),
        Decoded::Incomplete => panic!("incomplete frame"),
    }
}

const GOOD_PROFILES: [&str; 9] = [
    "resident",
    "resident-longterm",
    "resident-expired",
    "resident-badcheck",
    "resident-appended",
    "resident-fingerprint",
    "foreign-2017",
    "foreign-2023",
    "hkmotw",
];

#[test]
fn every_card_type_decodes() {
    for name in GOOD_PROFILES {
        let profile = CardProfile::builtin(name).unwrap();
        for (fingerprint, appended) in [(false, false), (true, true)] {
            let mut channel = CoreChannel::with(name);
            let options = ReadOptions {
                read_fingerprint: fingerprint,
                read_appended_address: appended,
                ..ReadOptions::default()
            };
            let read = read_card(&mut channel, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(read.identity, profile.identity, "{name}");
            assert_eq!(read.photo, profile.photo(), "{name}");
            assert_eq!(
                read.fingerprint,
                if fingerprint {
                    profile.fingerprint()
                } else {
                    None
                },
                "{name}"
            );
            assert_eq!(
                read.appended_address,
                if appended {
                    profile.appended_address.clone()
                } else {
                    None
                },
                "{name}"
            );
            assert_eq!(read.card_uid, None);
        }
    }
    let types: Vec<CardType> = GOOD_PROFILES
        .iter()
        .map(|n| CardProfile::builtin(n).unwrap().identity.card_type)
        .collect();
    for t in CardType::ALL {
        assert!(types.contains(&t), "no profile of type {t:?}");
    }
}

#[test]
fn wire_bytes_count_find_select_read() {
    let mut channel = CoreChannel::with("resident");
    let read = read_card(&mut channel, &ReadOptions::default()).unwrap();
    // find: 10 + 15, select: 10 + 19, read 30 01: 10 + 1295.
    assert_eq!(read.wire_bytes, 25 + 29 + 1305);
    assert_eq!(
        channel.log,
        [
            Command::FindCard,
            Command::SelectCard,
            Command::ReadTextPhoto
        ]
    );
}

#[test]
fn a_bad_checksum_is_read_again() {
    let mut channel = CoreChannel::with("resident");
    channel.corrupt_reads = 1;
    let read = read_card(&mut channel, &ReadOptions::default()).unwrap();
    assert_eq!(
        read.identity,
        CardProfile::builtin("resident").unwrap().identity
    );
    assert_eq!(channel.reads(), 2);
    assert_eq!(
        channel.log[3],
        Command::FindCard,
        "a retry starts again from find"
    );
}

#[test]
fn a_bad_checksum_that_persists_is_reported() {
    let mut channel = CoreChannel::with("resident");
    channel.corrupt_reads = u32::MAX;
    let err = read_card(
        &mut channel,
        &ReadOptions {
            retries: 2,
            ..ReadOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ReaderError::Frame(FrameError::Checksum { .. })),
        "{err:?}"
    );
    assert_eq!(err.code(), "bad_frame");
    assert_eq!(channel.reads(), 3);
}

#[test]
fn invalid_card_data_is_an_error() {
    // An unknown card type flag (offset 248 of the text, after the 4-byte header).
    let mut channel = CoreChannel::with("resident");
    channel.patch_read = Some(|data| {
        data[4 + 248] = b'Z';
        data[4 + 249] = 0;
    });
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::Identity(IdentityError::UnsupportedCardType('Z'))
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "unsupported_card_type");

    // A name that is not UCS-2 (an unpaired surrogate).
    let mut channel = CoreChannel::with("resident");
    channel.patch_read = Some(|data| {
        data[4] = 0x00;
        data[5] = 0xD8;
    });
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ReaderError::Identity(_)), "{err:?}");
    assert_eq!(err.code(), "bad_card_data");

    // A text block of the wrong size.
    let mut channel = CoreChannel::with("resident");
    channel.patch_read = Some(|data| {
        data.truncate(100);
    });
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ReaderError::Frame(_)), "{err:?}");
}

#[test]
fn sam_failures() {
    let mut channel = CoreChannel::new();
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ReaderError::Sam(SamError::NoCard)), "{err:?}");
    assert_eq!(err.code(), "no_card");
    assert!(!find_card(&mut channel, &ReadOptions::default()).unwrap());

    let mut channel = CoreChannel::with("resident");
    channel.core.set_fault(Fault::Sw3 {
        command: Command::SelectCard,
        sw3: 0x81,
    });
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(err, ReaderError::Sam(SamError::SelectFailed)),
        "{err:?}"
    );

    let mut channel = CoreChannel::with("resident");
    channel.core.set_fault(Fault::Sw3 {
        command: Command::ReadTextPhoto,
        sw3: 0x40,
    });
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(err, ReaderError::Sam(SamError::WrongCardType)),
        "{err:?}"
    );
    assert_eq!(err.code(), "wrong_card_type");

    // SW3 41 to every read while the card stays: pulled (as a SAM says when
    // the card leaves), after the retries.
    let mut channel = CoreChannel::with("fault-sw3-41");
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::CardPulled {
                cause: PullCause::Sam(SamError::ReadFailed)
            }
        ),
        "{err:?}"
    );
    assert_eq!(channel.reads(), 3);
}

#[test]
fn a_card_pulled_mid_read() {
    let mut channel = CoreChannel::with("fault-pulled");
    let err = read_card(&mut channel, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ReaderError::CardPulled {
                cause: PullCause::CutOff { .. }
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "card_pulled");
    // One read, then find says the card is gone.
    assert_eq!(
        channel.log,
        [
            Command::FindCard,
            Command::SelectCard,
            Command::ReadTextPhoto,
            Command::FindCard
        ]
    );
}

#[test]
fn sam_id_and_status() {
    let mut channel = CoreChannel::new();
    assert_eq!(
        sam_id(&mut channel, Duration::from_secs(1)).unwrap(),
        "05.01-20101216-0011223344-1234567890"
    );
    sam_status(&mut channel, Duration::from_secs(1)).unwrap();
}

#[test]
fn card_read_debug_shows_no_personal_data() {
    let profile = CardProfile::builtin("resident-appended").unwrap();
    let mut channel = CoreChannel::with("resident-appended");
    let options = ReadOptions {
        read_appended_address: true,
        ..ReadOptions::default()
    };
    let read = read_card(&mut channel, &options).unwrap();
    let debug = format!("{read:?}");
    for secret in [
        &profile.identity.name,
        &profile.identity.number,
        profile.appended_address.as_ref().unwrap(),
    ] {
        assert!(!debug.contains(secret.as_str()), "{debug}");
    }
    assert!(
        !debug.contains(&profile.identity.number[6..14]),
        "birth date in {debug}"
    );
    assert!(debug.contains("Resident"), "{debug}");
}
