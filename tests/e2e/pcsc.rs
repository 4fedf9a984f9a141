//! kioskd with a PC/SC reader: a real pcscd (in its own network namespace)
//! with the vpcd virtual reader and the virtual ID card, GA 467 frames
//! tunnelled through pseudo-APDUs. One test, because pcscd is machine-wide
//! and PC/SC tests run one at a time.

use kiosk_idcard::CardType;
use kiosk_idcard::mask::MaskPolicy;
use kiosk_proto::{CardReadInfo, DeviceState};
use kiosk_sim::{CardProfile, Pcscd, SamSim, SamSimConfig, ViccConfig, VirtualCard};

use super::harness::{Kioskd, next_read, wait_absent, wait_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcsc_reader_reads_every_card_type_and_survives_removal_and_pcscd_restart() {
    let card = VirtualCard::start(ViccConfig::default()).expect("virtual card");
    let mut pcscd = Pcscd::start(&[card.ports()[0]]).expect("pcscd");
    let kioskd = Kioskd::start(
        "[[readers]]\nname = \"desk\"\nread_appended_address = true\n\n[readers.pcsc]\nreader = \"Virtual PCD 00 00\"\ntunnel = \"apdu\"\napdu_header = \"FF699600\"\n",
    );
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "desk", DeviceState::Online).await;

    // Every card type, read through kioskd and seen through kioskctl.
    let policy = MaskPolicy::default();
    for (profile, card_type) in [
        ("resident", CardType::Resident),
        ("resident-appended", CardType::Resident),
        ("foreign-2017", CardType::ForeignPermanent2017),
        ("foreign-2023", CardType::ForeignPermanent2023),
        ("hkmotw", CardType::HkMoTwResidence),
    ] {
        let p = CardProfile::builtin(profile).expect("profile");
        let expected_number = policy.id_number(&p.identity.number);
        card.place(p);
        let read = next_read(&mut events)
            .await
            .unwrap_or_else(|e| panic!("{profile}: {e:?}"));
        assert_eq!(read.identity.card_type, card_type, "{profile}");
        let out = kioskd.kioskctl(&["read-card", "--json", "--timeout", "10"]);
        assert!(
            out.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: CardReadInfo = serde_json::from_slice(&out.stdout).expect("kioskctl JSON");
        assert_eq!(seen.reader, "desk");
        assert_eq!(seen.identity.card_type, card_type, "{profile}");
        assert_eq!(seen.identity.number, expected_number, "{profile}");
        card.remove();
        wait_absent(&mut events).await;
    }

    // A card pulled in the middle of the read: a clear reason, nothing read.
    card.place(CardProfile::builtin("fault-pulled").expect("profile"));
    let (code, message) = next_read(&mut events)
        .await
        .expect_err("a pulled card must not read");
    assert!(!code.is_empty() && !message.is_empty());
    card.remove();

    // pcscd restarts under kioskd: it reconnects and reads again.
    for _ in 0..2 {
        pcscd.restart().expect("restart pcscd");
        card.place(CardProfile::builtin("resident").expect("profile"));
        // A read cut by the restart itself may fail once; the next succeeds.
        let mut failures = Vec::new();
        let read = loop {
            match next_read(&mut events).await {
                Ok(r) => break r,
                Err(e) if failures.len() < 2 => failures.push(e),
                Err(e) => panic!("no read after a pcscd restart: {failures:?} then {e:?}"),
            }
        };
        assert_eq!(read.identity.card_type, CardType::Resident);
        card.remove();
        wait_absent(&mut events).await;
    }

    let mut client = kioskd.client().await;
    let readers = client.readers().await.expect("readers");
    assert_eq!(readers[0].state, DeviceState::Online);
    assert!(readers[0].reads_failed >= 1);
    let log = kioskd.log();
    for name in CardProfile::builtin_names() {
        let p = CardProfile::builtin(name).expect("profile");
        assert!(
            !log.contains(&p.identity.number),
            "full ID number of {name} in kioskd's log"
        );
    }
}

/// The common branch set-up (`kiosk-config/smart-teller.toml`): a PC/SC
/// reader tells presence (`tunnel = "none"`, the default: no pseudo-APDU
/// is sent to it) and a serial SAM reads. Every card type is read through
/// kioskd from the SAM when the PC/SC reader sees the card, and taking the
/// card away is seen through PC/SC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcsc_presence_with_a_serial_sam_reads_every_card_type() {
    let card = VirtualCard::start(ViccConfig::default()).expect("virtual card");
    let _pcscd = Pcscd::start(&[card.ports()[0]]).expect("pcscd");
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("by-id").join("usb-sim-sam-if00");
    let sam = SamSim::start(SamSimConfig::new(&link)).expect("SAM simulator");
    let kioskd = Kioskd::start(&format!(
        "[[readers]]\nname = \"desk\"\n\n[readers.pcsc]\nreader = \"Virtual PCD 00 00\"\n\n[readers.sam]\npath = \"{}\"\n",
        link.display()
    ));
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "desk", DeviceState::Online).await;

    let policy = MaskPolicy::default();
    for (profile, card_type) in [
        ("resident", CardType::Resident),
        ("resident-longterm", CardType::Resident),
        ("foreign-2017", CardType::ForeignPermanent2017),
        ("foreign-2023", CardType::ForeignPermanent2023),
        ("hkmotw", CardType::HkMoTwResidence),
    ] {
        let p = CardProfile::builtin(profile).expect("profile");
        // The same card lies on the reader's antenna and the SAM's.
        sam.place(p.clone());
        card.place(p.clone());
        let read = next_read(&mut events)
            .await
            .unwrap_or_else(|e| panic!("{profile}: {e:?}"));
        assert_eq!(read.reader, "desk");
        assert_eq!(read.identity.card_type, card_type, "{profile}");
        assert_eq!(
            read.identity.number,
            policy.id_number(&p.identity.number),
            "{profile}"
        );
        card.remove();
        wait_absent(&mut events).await;
        sam.remove();
    }
    assert!(
        sam.stats().reads_completed >= 5,
        "the data came from the serial SAM"
    );
}
