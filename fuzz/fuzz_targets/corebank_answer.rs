//! Arbitrary answers of the core bank (a status, a `Retry-After`, a body)
//! through the client's decoders, and on into the customer flows that take
//! them: the ID update gets the lookup, the phone change gets the lookup,
//! the answer check, the OTP and the code check. Never a panic: not for a
//! body that is not JSON, nor for numbers and dates a real bank would not
//! send (an OTP "expiring" in 2^64 seconds, a Retry-After of centuries, a
//! validity at the calendar's edge).
//! Run: `cargo xtask fuzz corebank_answer`.
#![no_main]

use chrono::{TimeZone, Utc};
use kiosk::flows::flow::{Flow, FlowSettings, Input, UpdateWindow};
use kiosk::flows::id_update::IdUpdateFlow;
use kiosk::flows::phone::PhoneFlow;
use kiosk_corebank::CardEvidence;
use kiosk_corebank::client::decode;
use kiosk_idcard::{CardType, Identity};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fn evidence() -> CardEvidence {
    CardEvidence {
        sam_id: "05.01-20250101-0000001-1234567890".into(),
        card_uid: "0102030405060708".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let status = 100 + u16::from_be_bytes([head[0], head[1]]) % 500;
    let (retry_after, body) = rest.split_at(usize::from(head[2]).min(rest.len()));
    let retry_after = std::str::from_utf8(retry_after).ok();
    let now = Utc.with_ymd_and_hms(2025, 3, 14, 2, 0, 0).unwrap();
    let settings = FlowSettings {
        update_window: Some(UpdateWindow {
            days_before: 30,
            days_after: 90,
        }),
        ..FlowSettings::default()
    };
    let card = Identity::sample(CardType::Resident);

    let _ = decode::change_result(status, retry_after, body);
    let _ = decode::stored_change(status, retry_after, body);

    // The ID update: the lookup answered with this answer.
    let mut id = IdUpdateFlow::new(settings.clone());
    id.handle(
        Input::CardRead {
            identity: card.clone(),
            evidence: evidence(),
        },
        now,
    );
    id.handle(
        Input::LookupAnswered(decode::lookup(status, retry_after, body)),
        now,
    );
    id.handle(Input::CustomerConfirmed, now);
    id.handle(Input::Tick, now + chrono::TimeDelta::days(1));

    // The phone change: every bank step answered with this answer.
    let mut phone = PhoneFlow::new(settings);
    phone.handle(
        Input::CardRead {
            identity: card,
            evidence: evidence(),
        },
        now,
    );
    phone.handle(
        Input::LookupAnswered(decode::lookup(status, retry_after, body)),
        now,
    );
    phone.handle(Input::AnswerGiven(Zeroizing::new("答案".into())), now);
    phone.handle(
        Input::AnswerChecked(decode::check(status, retry_after, body)),
        now,
    );
    phone.handle(
        Input::NumberEntered {
            first: Zeroizing::new("13912345678".into()),
            second: Zeroizing::new("13912345678".into()),
        },
        now,
    );
    phone.handle(Input::CodeSent(decode::otp(status, retry_after, body)), now);
    phone.handle(Input::CodeEntered(Zeroizing::new("123456".into())), now);
    phone.handle(
        Input::CodeChecked(decode::check(status, retry_after, body)),
        now,
    );
    phone.handle(Input::ResendCode, now + chrono::TimeDelta::hours(2));
    let _ = phone.next_wakeup();
    phone.handle(Input::Tick, now + chrono::TimeDelta::days(1));
});
