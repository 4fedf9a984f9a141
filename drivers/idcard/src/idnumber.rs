//! GB 11643-1999 citizen identity numbers (rules I2, I3).

use chrono::NaiveDate;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdNumberError {
    #[error("ID number must have 18 characters, has {0}")]
    Length(usize),
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
    todo!()
}

/// Validate an 18-character number: digits, check char (`X` upper-case),
/// birth date, region (rule I2). Foreign permanent resident numbers of the
/// 2023 card (leading `9`) and residence-permit numbers (81/82/83) pass.
pub fn validate18(number: &str) -> Result<(), IdNumberError> {
    todo!()
}

/// Birth date encoded in an 18-digit number.
pub fn birth_date(number: &str) -> Result<NaiveDate, IdNumberError> {
    todo!()
}

/// Convert an old 15-digit number to 18 digits (insert `19`, append check).
pub fn convert15to18(number15: &str) -> Result<String, IdNumberError> {
    todo!()
}

/// Does the card's 18-digit number match a number on file, which may be the
/// same 18-digit number or an old 15-digit one (rule I3)? Case-insensitive `x`.
pub fn matches_on_file(card18: &str, on_file: &str) -> bool {
    todo!()
}
