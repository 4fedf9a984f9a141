//! GB 11643-1999 citizen identity numbers (rules I2, I3).

use chrono::NaiveDate;
use thiserror::Error;

/// GB 11643-1999 weights of the first 17 digits.
pub const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check characters indexed by the weighted sum mod 11.
pub const CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Earliest birth date accepted (no clock in sans-IO code: a fixed, generous
/// range instead of "not in the future").
pub const EARLIEST_BIRTH: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
/// Latest birth date accepted.
pub const LATEST_BIRTH: NaiveDate = NaiveDate::from_ymd_opt(2100, 12, 31).unwrap();

/// Why a number is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdNumberError {
    /// The number of characters is wrong (for the 17- and 15-digit inputs of
    /// [`check_char`] and [`convert15to18`] too: the count given is the
    /// input's).
    #[error("ID number must have 18 characters, has {0}")]
    Length(usize),
    /// A character that is not allowed there; the position counts from 1.
    #[error("ID number has a character that is not allowed at position {0}")]
    Character(usize),
    #[error("ID number check digit is wrong")]
    CheckDigit,
    #[error("ID number holds no real birth date")]
    BirthDate,
    #[error("ID number region code is not plausible")]
    Region,
}

/// ISO 7064 MOD 11-2 check character of the first 17 digits.
pub fn check_char(first17: &str) -> Result<char, IdNumberError> {
    let digits = ascii_digits(first17, 17)?;
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    Ok(CHECK_CHARS[(sum % 11) as usize])
}

/// The digit values of `s`, which must be exactly `len` ASCII digits.
fn ascii_digits(s: &str, len: usize) -> Result<Vec<u8>, IdNumberError> {
    let n = s.chars().count();
    if n != len {
        return Err(IdNumberError::Length(n));
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            c.to_digit(10)
                .map(|d| d as u8)
                .ok_or(IdNumberError::Character(i + 1))
        })
        .collect()
}

/// Is the leading two-digit region code a province-level code (or a
/// residence permit's 81/82/83, or a 2023 foreign card's leading 9)?
fn plausible_region(code: u8) -> bool {
    matches!(
        code,
        // Provinces, autonomous regions, municipalities (71: Taiwan).
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71
        // Residence permits of Hong Kong, Macao and Taiwan residents.
        | 81..=83
        // 2023 foreign permanent resident cards: 9, then a province code.
        | 90..=99
    )
}

/// Validate an 18-character number: digits, check char (`X` upper-case),
/// birth date, region (rule I2). Foreign permanent resident numbers of the
/// 2023 card (leading `9`) and residence-permit numbers (81/82/83) pass.
pub fn validate18(number: &str) -> Result<(), IdNumberError> {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() != 18 {
        return Err(IdNumberError::Length(chars.len()));
    }
    if let Some(i) = chars[..17].iter().position(|c| !c.is_ascii_digit()) {
        return Err(IdNumberError::Character(i + 1));
    }
    let last = chars[17];
    if !(last.is_ascii_digit() || last == 'X') {
        return Err(IdNumberError::Character(18));
    }
    // All 18 characters are ASCII now, so byte slicing is character slicing.
    if check_char(&number[..17])? != last {
        return Err(IdNumberError::CheckDigit);
    }
    let region = number[..2].parse().map_err(|_| IdNumberError::Region)?;
    if !plausible_region(region) {
        return Err(IdNumberError::Region);
    }
    birth_date(number).map(|_| ())
}

/// Birth date encoded in an 18-digit number.
pub fn birth_date(number: &str) -> Result<NaiveDate, IdNumberError> {
    let n = number.chars().count();
    if n != 18 {
        return Err(IdNumberError::Length(n));
    }
    let digits: Vec<char> = number.chars().collect();
    let field = |from: usize, to: usize| -> Result<u32, IdNumberError> {
        (from..to).try_fold(0u32, |acc, i| {
            digits[i]
                .to_digit(10)
                .map(|d| acc * 10 + d)
                .ok_or(IdNumberError::Character(i + 1))
        })
    };
    let (year, month, day) = (field(6, 10)?, field(10, 12)?, field(12, 14)?);
    let year = i32::try_from(year).map_err(|_| IdNumberError::BirthDate)?;
    NaiveDate::from_ymd_opt(year, month, day)
        .filter(|d| (EARLIEST_BIRTH..=LATEST_BIRTH).contains(d))
        .ok_or(IdNumberError::BirthDate)
}

/// Convert an old 15-digit number to 18 digits (insert `19`, append check).
/// The result must be a valid 18-digit number (real birth date, plausible
/// region), otherwise the 15-digit number was not a real one.
pub fn convert15to18(number15: &str) -> Result<String, IdNumberError> {
    ascii_digits(number15, 15)?;
    let first17 = format!("{}19{}", &number15[..6], &number15[6..]);
    let check = check_char(&first17)?;
    let number18 = format!("{first17}{check}");
    validate18(&number18)?;
    Ok(number18)
}

/// Does the card's 18-digit number match a number on file, which may be the
/// same 18-digit number or an old 15-digit one (rule I3)? Case-insensitive `x`.
///
/// Numbers are compared as written, after trimming surrounding whitespace;
/// equal numbers of any other length (a 2017 foreign card's 15 characters)
/// match too. Blank numbers never match.
pub fn matches_on_file(card18: &str, on_file: &str) -> bool {
    let card = card18.trim();
    let on_file = on_file.trim();
    if card.is_empty() {
        return false;
    }
    if card.eq_ignore_ascii_case(on_file) {
        return true;
    }
    card.chars().count() == 18
        && on_file.len() == 15
        && convert15to18(on_file).is_ok_and(|converted| converted.eq_ignore_ascii_case(card))
}
