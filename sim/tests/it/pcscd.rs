//! The virtual card through a real pcscd and vpcd.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use kiosk_idcard::frame::{CardData, format_sam_id};
use kiosk_idcard::{Command, Identity, SamStatus};
use kiosk_sim::{CardProfile, Pcscd, ViccConfig, VirtualCard};
use pcsc::{Context, Protocols, ReaderState, Scope, ShareMode, State};

use crate::support::{decode_response, split_sw, tunnel_extended, tunnel_short};

const DEADLINE: Duration = Duration::from_secs(20);

fn establish() -> Context {
    Context::establish(Scope::User).expect("pcscd accepts a context")
}

/// Wait until pcscd lists `n` readers.
fn wait_readers(ctx: &Context, n: usize) -> Vec<CString> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match ctx.list_readers_owned() {
            Ok(r) if r.len() >= n => return r,
            Ok(_) | Err(pcsc::Error::NoReadersAvailable) => {}
            Err(e) => panic!("listing readers: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "pcscd did not list {n} readers in {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait (on pcscd's own change notification) until `reader`'s state has `want`.
fn wait_state(ctx: &Context, reader: &CStr, want: State) {
    let deadline = Instant::now() + DEADLINE;
    let mut rs = [ReaderState::new(reader.to_owned(), State::UNAWARE)];
    loop {
        match ctx.get_status_change(Duration::from_millis(500), &mut rs) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => panic!("waiting for {want:?} on {reader:?}: {e}"),
        }
        if rs[0].event_state().contains(want) {
            return;
        }
        rs[0].sync_current_state();
        assert!(
            Instant::now() < deadline,
            "{reader:?} never reached {want:?} (state {:?})",
            rs[0].event_state()
        );
    }
}

fn transmit(card: &pcsc::Card, apdu: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    card.transmit(apdu, &mut buf).expect("transmit").to_vec()
}

#[test]
fn pcscd_vpcd_end_to_end() {
    // The card first, with no namespace given: it follows this process's
    // pcscd harness into its network namespace, where vpcd listens on
    // 35963/35964 (and nowhere else).
    let vcard = VirtualCard::start(ViccConfig::default()).unwrap();
    let profile = CardProfile::builtin("resident-longterm").unwrap();
    vcard.place(profile.clone());
    let mut pcscd = Pcscd::start(&[vcard.ports()[0]]).unwrap_or_else(|e| panic!("{e}"));

    let ctx = establish();
    let readers = wait_readers(&ctx, 2);
    let names: Vec<String> = readers
        .iter()
        .map(|r| r.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["Virtual PCD 00 00", "Virtual PCD 00 01"],
        "log: {}",
        pcscd.log_path().display()
    );
    let reader = readers[0].as_c_str();

    wait_state(&ctx, reader, State::PRESENT);
    {
        let card = ctx
            .connect(reader, ShareMode::Shared, Protocols::ANY)
            .expect("connect");
        let (uid, sw) = {
            let r = transmit(&card, &[0x00, 0x36, 0x00, 0x00, 0x08]);
            let (d, sw) = split_sw(&r);
            (d.to_vec(), sw)
        };
        assert_eq!((uid.as_slice(), sw), (&profile.uid[..], [0x90, 0x00]));

        // The reader's SAM, tunnelled: short APDU.
        let r = transmit(&card, &tunnel_short(&Command::SamId.request_frame()));
        let (frame, sw) = split_sw(&r);
        assert_eq!(sw, [0x90, 0x00]);
        assert_eq!(
            format_sam_id(&decode_response(frame).data).unwrap(),
            "05.01-20101216-0011223344-1234567890"
        );

        // A whole read in one extended APDU.
        for c in [Command::FindCard, Command::SelectCard] {
            let r = transmit(&card, &tunnel_extended(&c.request_frame()));
            assert_eq!(split_sw(&r).1, [0x90, 0x00]);
        }
        let r = transmit(
            &card,
            &tunnel_extended(&Command::ReadTextPhoto.request_frame()),
        );
        let (frame, sw) = split_sw(&r);
        assert_eq!(sw, [0x90, 0x00]);
        let read = decode_response(frame);
        assert_eq!(read.status(), SamStatus::Ok);
        let data = CardData::parse(&read.data, false).unwrap();
        assert_eq!(Identity::decode(&data.text).unwrap(), profile.identity);
    }

    // Removal and a new card are seen by pcscd.
    vcard.remove();
    wait_state(&ctx, reader, State::EMPTY);
    vcard.place(CardProfile::builtin("foreign-2017").unwrap());
    wait_state(&ctx, reader, State::PRESENT);

    // After a restart the old context is dead; a new one sees the readers again.
    pcscd.restart().unwrap();
    drop(ctx);
    let ctx = establish();
    let readers = wait_readers(&ctx, 2);
    wait_state(&ctx, &readers[0], State::PRESENT);
    let card = ctx
        .connect(&readers[0], ShareMode::Shared, Protocols::ANY)
        .expect("connect after restart");
    let r = transmit(&card, &[0x00, 0x36, 0x00, 0x00, 0x08]);
    assert_eq!(
        split_sw(&r).0,
        CardProfile::builtin("foreign-2017").unwrap().uid
    );
    drop(card);

    // Removing the card while pcscd holds it is a removal, not a crash.
    vcard.remove();
    wait_state(&ctx, &readers[0], State::EMPTY);
    drop(ctx);
    assert!(pcscd.is_running(), "pcscd died; log: {}", pcscd.log());
    let netns = pcscd.netns().to_path_buf();
    drop(vcard);
    drop(pcscd);
    assert!(!netns.exists(), "network namespace deleted");
}
