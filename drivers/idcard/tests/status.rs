use std::collections::HashSet;

use kiosk_idcard::{SamError, SamStatus};

#[test]
fn sw3_round_trips_for_all_256_values() {
    for sw3 in 0..=u8::MAX {
        assert_eq!(SamStatus::from_sw3(sw3).sw3(), sw3, "SW3 {sw3:02X}");
    }
}

#[test]
fn every_documented_sw3() {
    let expected = [
        (0x90, SamStatus::Ok),
        (0x9F, SamStatus::CardFound),
        (0x10, SamStatus::Error(SamError::Checksum)),
        (0x11, SamStatus::Error(SamError::Length)),
        (0x21, SamStatus::Error(SamError::BadCommand)),
        (0x23, SamStatus::Error(SamError::OutOfAuthority)),
        (0x24, SamStatus::Error(SamError::Unrecognised)),
        (0x31, SamStatus::Error(SamError::CardAuthenticatesSamFailed)),
        (0x32, SamStatus::Error(SamError::SamAuthenticatesCardFailed)),
        (0x33, SamStatus::Error(SamError::Verification)),
        (0x34, SamStatus::Error(SamError::Authentication)),
        (0x37, SamStatus::Error(SamError::FingerprintVerification)),
        (0x3F, SamStatus::Error(SamError::DataLength)),
        (0x40, SamStatus::Error(SamError::WrongCardType)),
        (0x41, SamStatus::Error(SamError::ReadFailed)),
        (0x47, SamStatus::Error(SamError::RandomFailed)),
        (0x60, SamStatus::Error(SamError::SelfTestFailed)),
        (0x66, SamStatus::Error(SamError::NotAuthorised)),
        (0x80, SamStatus::Error(SamError::NoCard)),
        (0x81, SamStatus::Error(SamError::SelectFailed)),
        (0x91, SamStatus::Error(SamError::NoSuchItem)),
    ];
    for (sw3, status) in expected {
        assert_eq!(SamStatus::from_sw3(sw3), status, "SW3 {sw3:02X}");
    }
    let known: HashSet<u8> = expected.iter().map(|(sw3, _)| *sw3).collect();
    for sw3 in (0..=u8::MAX).filter(|b| !known.contains(b)) {
        assert_eq!(
            SamStatus::from_sw3(sw3),
            SamStatus::Error(SamError::Unknown(sw3))
        );
    }
    assert_eq!(SamError::KNOWN.len(), expected.len() - 2);
    for e in SamError::KNOWN {
        assert_eq!(SamError::from_sw3(e.sw3()), e);
    }
}

#[test]
fn into_result() {
    assert_eq!(SamStatus::Ok.into_result(), Ok(()));
    assert_eq!(SamStatus::CardFound.into_result(), Ok(()));
    assert_eq!(
        SamStatus::from_sw3(0x80).into_result(),
        Err(SamError::NoCard)
    );
    assert_eq!(
        SamStatus::from_sw3(0x92).into_result(),
        Err(SamError::Unknown(0x92))
    );
}

#[test]
fn reasons_are_stable_snake_case_and_distinct() {
    let reasons: Vec<&str> = SamError::KNOWN.iter().map(|e| e.reason()).collect();
    for reason in &reasons {
        assert!(
            reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{reason}"
        );
    }
    assert_eq!(reasons.iter().collect::<HashSet<_>>().len(), reasons.len());
    assert_eq!(SamError::NoCard.reason(), "no_card");
    assert_eq!(SamError::ReadFailed.reason(), "read_failed");
    assert_eq!(SamError::Unknown(0x92).reason(), "unknown");
    assert!(!reasons.contains(&"unknown"));
}

#[test]
fn messages_name_the_code() {
    assert_eq!(
        SamError::Unknown(0x5A).to_string(),
        "SAM answered unknown status 5A"
    );
    for e in SamError::KNOWN {
        assert!(
            e.to_string().contains(&format!("SW3 {:02X}", e.sw3())),
            "{e}"
        );
    }
}
