//! Rules I2 (check digit, birth date, region) and I3 (15-digit numbers on file).

use chrono::NaiveDate;
use kiosk_idcard::idnumber::{
    IdNumberError, birth_date, check_char, convert15to18, matches_on_file, validate18,
};

#[test]
fn rule_i2_standard_example_is_valid() {
    // The worked example of GB 11643-1999.
    assert_eq!(check_char("11010519491231002"), Ok('X'));
    assert_eq!(validate18("11010519491231002X"), Ok(()));
}

#[test]
fn rule_i2_valid_numbers_of_every_kind() {
    for number in [
        "440304199001011233", // Shenzhen, Guangdong
        "310115198511240030", // Pudong, Shanghai
        "13010219780203451X", // Shijiazhuang, Hebei
        "810000199001011230", // Hong Kong residence permit
        "82000019850505002X", // Macao residence permit
        "830000199203150048", // Taiwan residence permit
        "931840198001011239", // 2023 foreign permanent resident card
        "910110202401010014",
    ] {
        assert_eq!(validate18(number), Ok(()), "{number}");
    }
}

#[test]
fn rule_i2_wrong_check_digit() {
    assert_eq!(
        validate18("110105194912310021"),
        Err(IdNumberError::CheckDigit)
    );
    assert_eq!(
        validate18("440304199001011234"),
        Err(IdNumberError::CheckDigit)
    );
    // One changed digit always changes the check character.
    assert_eq!(
        validate18("11010519491231003X"),
        Err(IdNumberError::CheckDigit)
    );
}

#[test]
fn rule_i2_check_chars_cover_every_remainder() {
    // Sums 0..=10 give 1 0 X 9 8 7 6 5 4 3 2: walk the last digit's weight (2).
    let mut seen = std::collections::HashSet::new();
    for a in 0..10 {
        for b in 0..10 {
            seen.insert(check_char(&format!("000000000000000{a}{b}")).unwrap());
        }
    }
    assert_eq!(seen.len(), 11);
    assert_eq!(check_char("00000000000000000"), Ok('1'));
    assert_eq!(check_char("00000000000000001"), Ok('X')); // sum 2
    assert_eq!(check_char("00000000000000010"), Ok('8')); // sum 4
}

#[test]
fn rule_i2_lower_case_x_is_not_valid() {
    assert_eq!(
        validate18("11010519491231002x"),
        Err(IdNumberError::Character(18))
    );
}

#[test]
fn rule_i2_length_and_characters() {
    assert_eq!(validate18(""), Err(IdNumberError::Length(0)));
    assert_eq!(
        validate18("11010519491231002"),
        Err(IdNumberError::Length(17))
    );
    assert_eq!(
        validate18("11010519491231002X1"),
        Err(IdNumberError::Length(19))
    );
    assert_eq!(
        validate18("1101051949123100XX"),
        Err(IdNumberError::Character(17))
    );
    assert_eq!(
        validate18("X1010519491231002X"),
        Err(IdNumberError::Character(1))
    );
    assert_eq!(
        validate18("11010519491231002Y"),
        Err(IdNumberError::Character(18))
    );
    // Characters, not bytes: full-width digits are 3 bytes each.
    assert_eq!(
        validate18("１1010519491231002X"),
        Err(IdNumberError::Character(1))
    );
    assert_eq!(
        validate18("11010519491231002Ｘ"),
        Err(IdNumberError::Character(18))
    );
    assert_eq!(
        check_char("1101051949123100"),
        Err(IdNumberError::Length(16))
    );
    assert_eq!(
        check_char("1101051949123100a"),
        Err(IdNumberError::Character(17))
    );
}

fn with_check(first17: &str) -> String {
    format!("{first17}{}", check_char(first17).unwrap())
}

#[test]
fn rule_i2_birth_date_must_be_real() {
    assert_eq!(
        validate18(&with_check("11010519490230002")),
        Err(IdNumberError::BirthDate)
    );
    assert_eq!(
        validate18(&with_check("11010519491301002")),
        Err(IdNumberError::BirthDate)
    );
    assert_eq!(
        validate18(&with_check("11010519490100002")),
        Err(IdNumberError::BirthDate)
    );
    // Leap days.
    assert_eq!(validate18(&with_check("11010520000229002")), Ok(()));
    assert_eq!(
        validate18(&with_check("11010519000229002")),
        Err(IdNumberError::BirthDate)
    );
}

#[test]
fn rule_i2_birth_date_range() {
    assert_eq!(
        validate18(&with_check("11010518991231002")),
        Err(IdNumberError::BirthDate)
    );
    assert_eq!(validate18(&with_check("11010519000101002")), Ok(()));
    assert_eq!(validate18(&with_check("11010521001231002")), Ok(()));
    assert_eq!(
        validate18(&with_check("11010521010101002")),
        Err(IdNumberError::BirthDate)
    );
}

#[test]
fn rule_i2_birth_date_is_read_from_the_number() {
    assert_eq!(
        birth_date("11010519491231002X"),
        Ok(NaiveDate::from_ymd_opt(1949, 12, 31).unwrap())
    );
    assert_eq!(birth_date("11010519491231"), Err(IdNumberError::Length(14)));
    assert_eq!(
        birth_date("1101051949A231002X"),
        Err(IdNumberError::Character(11))
    );
}

#[test]
fn rule_i2_region_must_be_plausible() {
    for region in [
        "00", "10", "16", "20", "24", "30", "38", "40", "47", "49", "55", "60", "66", "70", "72",
        "80", "84", "89",
    ] {
        let number = with_check(&format!("{region}010519491231002"));
        assert_eq!(validate18(&number), Err(IdNumberError::Region), "{number}");
    }
    for region in [
        "11", "15", "21", "23", "31", "37", "41", "46", "50", "54", "61", "65", "71", "81", "82",
        "83", "90", "91", "99",
    ] {
        let number = with_check(&format!("{region}010519491231002"));
        assert_eq!(validate18(&number), Ok(()), "{number}");
    }
}

#[test]
fn rule_i3_fifteen_digit_numbers_convert() {
    assert_eq!(
        convert15to18("110105491231002").as_deref(),
        Ok("11010519491231002X")
    );
    assert_eq!(
        convert15to18("440304800101123").as_deref(),
        Ok("440304198001011239")
    );
}

#[test]
fn rule_i3_fifteen_digit_numbers_must_be_real() {
    assert_eq!(
        convert15to18("11010549123100"),
        Err(IdNumberError::Length(14))
    );
    assert_eq!(
        convert15to18("11010549123100X"),
        Err(IdNumberError::Character(15))
    );
    assert_eq!(
        convert15to18("110105490230002"),
        Err(IdNumberError::BirthDate)
    );
    assert_eq!(convert15to18("990105491231002").map(|_| ()), Ok(()));
    assert_eq!(convert15to18("000105491231002"), Err(IdNumberError::Region));
}

#[test]
fn rule_i3_card_matches_the_old_number_on_file() {
    assert!(matches_on_file("11010519491231002X", "110105491231002"));
    assert!(matches_on_file("440304198001011239", "440304800101123"));
    // Another person's old number.
    assert!(!matches_on_file("11010519491231002X", "110105491231003"));
    // The same digits but not a 1900s birth year.
    assert!(!matches_on_file("11010520491231002X", "110105491231002"));
}

#[test]
fn rule_i3_card_matches_the_same_number_on_file() {
    assert!(matches_on_file("11010519491231002X", "11010519491231002X"));
    assert!(matches_on_file("11010519491231002X", "11010519491231002x"));
    assert!(matches_on_file("11010519491231002x", "11010519491231002X"));
    assert!(matches_on_file(
        "11010519491231002X",
        " 11010519491231002X\n"
    ));
    assert!(!matches_on_file("11010519491231002X", "110105194912310021"));
    assert!(!matches_on_file("11010519491231002X", ""));
    assert!(!matches_on_file("", ""));
    // A 2017 foreign card's 15-character number matches itself.
    assert!(matches_on_file("CAN310081010112", "can310081010112"));
}
