//! `>>>` / `<<<` frame traces with personal data redacted.
//!
//! Requests are traced as `>>> 20 01` (command and parameter; requests the
//! kiosk sends carry no data). Answers are traced as `<<< 00 00 9F` plus
//! their data, in hex only for the answers that hold no personal data
//! (SAM status, SAM id, find, select); for read answers only the length.

use kiosk_idcard::{Command, Request, Response};

/// The command a request is, for messages: `find card (20 01)`.
pub(crate) fn command_name(command: Option<Command>) -> &'static str {
    match command {
        Some(Command::ResetSam) => "reset SAM (10 FF)",
        Some(Command::SamStatus) => "SAM status (11 FF)",
        Some(Command::SamId) => "SAM id (12 FF)",
        Some(Command::FindCard) => "find card (20 01)",
        Some(Command::SelectCard) => "select card (20 02)",
        Some(Command::ReadTextPhoto) => "read text+photo (30 01)",
        Some(Command::ReadTextPhotoFingerprint) => "read text+photo+fingerprint (30 10)",
        Some(Command::ReadAppendedAddress) => "read appended address (30 03)",
        None => "unknown command",
    }
}

/// Does an answer to this command hold personal data?
pub(crate) fn answer_is_personal(command: Option<Command>) -> bool {
    !matches!(
        command,
        Some(
            Command::ResetSam
                | Command::SamStatus
                | Command::SamId
                | Command::FindCard
                | Command::SelectCard
        )
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

pub(crate) fn request(via: &'static str, request: &Request) {
    tracing::trace!(
        via,
        ">>> {:02X} {:02X}{}",
        request.cmd,
        request.para,
        if request.data.is_empty() {
            String::new()
        } else {
            format!(" [{} data bytes]", request.data.len())
        }
    );
}

pub(crate) fn response(via: &'static str, request: &Request, response: &Response) {
    let data = if response.data.is_empty() {
        String::new()
    } else if answer_is_personal(request.command()) {
        format!(" [{} data bytes redacted]", response.data.len())
    } else {
        format!(" {}", hex(&response.data))
    };
    tracing::trace!(
        via,
        "<<< {:02X} {:02X} {:02X}{data}",
        response.sw1,
        response.sw2,
        response.sw3
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_spaced_upper_case() {
        assert_eq!(hex(&[0x20, 0x01, 0xab]), "20 01 AB");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn read_answers_are_personal() {
        assert!(answer_is_personal(Some(Command::ReadTextPhoto)));
        assert!(answer_is_personal(Some(Command::ReadTextPhotoFingerprint)));
        assert!(answer_is_personal(Some(Command::ReadAppendedAddress)));
        assert!(answer_is_personal(None));
        assert!(!answer_is_personal(Some(Command::FindCard)));
    }
}
