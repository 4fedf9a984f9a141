//! kioskd with a GA 467 SAM module on a serial port (the simulator on a
//! pseudo-terminal): every card type read through kioskd and seen through
//! `kioskctl read-card --json`; the port unplugged and replugged.

use kiosk_idcard::CardType;
use kiosk_idcard::mask::MaskPolicy;
use kiosk_proto::{CardReadInfo, DeviceState, Event};
use kiosk_sim::{CardProfile, SamSim, SamSimConfig};

use super::harness::{DEADLINE, Kioskd, next_read, wait_absent, wait_state};

fn sam_reader(link: &std::path::Path) -> String {
    format!(
        "[[readers]]\nname = \"swipe\"\nread_appended_address = true\n\n[readers.sam]\npath = \"{}\"\npoll_interval_ms = 50\n",
        link.display()
    )
}

async fn wait_card_read(client: &mut kiosk_proto::Client) -> CardReadInfo {
    next_read(client)
        .await
        .unwrap_or_else(|(code, message)| panic!("read failed: {code}: {message}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_card_type_read_through_kioskd_and_kioskctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("by-id").join("usb-sim-sam-if00");
    let sam = SamSim::start(SamSimConfig::new(&link)).expect("SAM simulator");
    let kioskd = Kioskd::start(&sam_reader(&link));
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "swipe", DeviceState::Online).await;

    let policy = MaskPolicy::default();
    for (profile, card_type) in [
        ("resident", CardType::Resident),
        ("resident-longterm", CardType::Resident),
        ("resident-appended", CardType::Resident),
        ("foreign-2017", CardType::ForeignPermanent2017),
        ("foreign-2023", CardType::ForeignPermanent2023),
        ("hkmotw", CardType::HkMoTwResidence),
    ] {
        let card = CardProfile::builtin(profile).expect("profile");
        let expected_number = policy.id_number(&card.identity.number);
        let expected_name = policy.name(&card.identity.name);
        sam.place(card.clone());
        let event = wait_card_read(&mut events).await;
        assert_eq!(event.identity.card_type, card_type, "{profile}");

        let out = kioskd.kioskctl(&["read-card", "--json", "--timeout", "10"]);
        assert!(
            out.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: CardReadInfo = serde_json::from_slice(&out.stdout).expect("kioskctl JSON");
        assert_eq!(seen.reader, "swipe");
        assert_eq!(seen.identity.card_type, card_type, "{profile}");
        assert_eq!(seen.identity.number, expected_number, "{profile}");
        assert_eq!(seen.identity.name, expected_name, "{profile}");
        assert_eq!(seen.identity.birth_date, "****-**-**");
        assert!(seen.identity.has_photo);
        assert_eq!(
            seen.identity.valid_until,
            kiosk::masking::validity_text(card.identity.valid_until),
            "{profile}"
        );
        // Nothing personal in what kioskctl printed (rule S1).
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            !printed.contains(&card.identity.number),
            "{profile}: full number printed"
        );
        assert!(!printed.contains(&card.identity.name) || card.identity.name.is_empty());

        sam.remove();
        wait_absent(&mut events).await;
    }
    let log = kioskd.log();
    for name in CardProfile::builtin_names() {
        let card = CardProfile::builtin(name).expect("profile");
        assert!(
            !log.contains(&card.identity.number),
            "full ID number of {name} in kioskd's log"
        );
        if card.identity.name.chars().count() > 1 {
            assert!(
                !log.contains(&card.identity.name),
                "full name of {name} in kioskd's log"
            );
        }
        if let Some(address) = &card.identity.address {
            assert!(
                !log.contains(address.as_str()),
                "address of {name} in kioskd's log"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_cards_are_reported_with_a_reason_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("sam0");
    let sam = SamSim::start(SamSimConfig::new(&link)).expect("SAM simulator");
    let mut kioskd = Kioskd::start(&sam_reader(&link));
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "swipe", DeviceState::Online).await;

    for profile in ["fault-sw3-41", "fault-pulled"] {
        sam.place(CardProfile::builtin(profile).expect("profile"));
        let (code, message) = events
            .wait_event(DEADLINE, |e| match e {
                Event::ReadFailed { code, message, .. } => Some((code.clone(), message.clone())),
                Event::CardRead { .. } => panic!("{profile} should not read"),
                _ => None,
            })
            .await
            .expect("read_failed event");
        assert!(!code.is_empty() && !message.is_empty(), "{profile}");
        sam.remove();
        wait_absent(&mut events).await;
    }
    // A good card reads afterwards.
    sam.place(CardProfile::builtin("resident").expect("profile"));
    wait_card_read(&mut events).await;
    assert!(kioskd.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_port_unplugged_and_replugged_reads_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("sam0");
    let sam = SamSim::start(SamSimConfig::new(&link)).expect("SAM simulator");
    let mut kioskd = Kioskd::start(&sam_reader(&link));
    let mut events = kioskd.subscriber().await;
    wait_state(&mut events, "swipe", DeviceState::Online).await;

    for _ in 0..3 {
        sam.unplug().expect("unplug");
        events
            .wait_event(DEADLINE, |e| match e {
                Event::DeviceState {
                    state: DeviceState::NoDevice | DeviceState::Offline,
                    ..
                } => Some(()),
                _ => None,
            })
            .await
            .expect("reader reported gone");
        sam.replug().expect("replug");
        wait_state(&mut events, "swipe", DeviceState::Online).await;
        sam.place(CardProfile::builtin("resident").expect("profile"));
        wait_card_read(&mut events).await;
        sam.remove();
        wait_absent(&mut events).await;
    }
    assert!(kioskd.is_running());
    let mut client = kioskd.client().await;
    let readers = client.readers().await.expect("readers");
    assert_eq!(readers[0].state, DeviceState::Online);
    assert!(readers[0].reads_ok >= 3);
}
