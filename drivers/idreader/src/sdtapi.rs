//! The SAM reached through a reader vendor's `sdtapi` library
//! ([`kiosk_sdtapi`]). Each GA 467 request becomes the matching `SDT_`
//! call, and its return code and data become the answer frame, so
//! [`crate::read_card`] and the device loops work on it unchanged.
//!
//! | request | call |
//! |---|---|
//! | `10 FF` reset | `SDT_ResetSAM` |
//! | `11 FF` status | `SDT_GetSAMStatus` |
//! | `12 FF` SAM id | `SDT_GetSAMID` |
//! | `20 01` find | `SDT_StartFindIDCard` |
//! | `20 02` select | `SDT_SelectIDCard` |
//! | `30 01` read | `SDT_ReadBaseMsg` |
//! | `30 10` read with fingerprint | `SDT_ReadBaseFPMsg` |
//! | `30 03` appended address | `SDT_ReadNewAppMsg` |
//!
//! The return code is the SAM's SW3 (`90`, `9F`, `80`, `81`, `41`, ...) and
//! becomes the answer's SW3, typed by [`kiosk_idcard::SamStatus`]. Codes
//! below `10` are the library's own: `01` (the port cannot be opened, is
//! not open, or went away) and `05` (the SAM's port is unusable) are
//! [`ReaderError::Unplugged`], so the port is reopened with backoff; `02`
//! (no answer in time) is [`ReaderError::Timeout`]; the others are
//! [`ReaderError::LibraryCode`]. A function the library lacks (the
//! optional `SDT_ResetSAM`, `SDT_ReadBaseFPMsg`, `SDT_ReadNewAppMsg`) is
//! answered `21` (command unknown); a library that cannot be loaded or
//! lacks a required function is [`ReaderError::Library`].
//!
//! The library's calls block for its own timeouts; the `timeout` given to
//! [`SamChannel::transact`] is not the library's to obey.

use std::time::Duration;

use kiosk_idcard::frame::CardData;
use kiosk_idcard::{Command, Request, Response, SamError};
use kiosk_sdtapi::{CardParts, SdtApi};
use zeroize::Zeroize;

use crate::channel::{SamChannel, SamLink};
use crate::config::SdtapiConfig;
use crate::error::ReaderError;
use crate::trace::{self, command_name};

const OK: i32 = 0x90;
/// What a function the library lacks is answered: command unknown.
const MISSING: i32 = 0x21;

/// A SAM behind the vendor's library; a [`SamChannel`] and a [`SamLink`].
/// The library is loaded at the first [`SamLink::reopen`] and kept.
#[derive(Debug)]
pub struct SdtapiSam {
    config: SdtapiConfig,
    api: Option<SdtApi>,
    open: bool,
    wire_bytes: u64,
}

impl SdtapiSam {
    /// Closed, the library not loaded yet.
    pub fn new(config: &SdtapiConfig) -> SdtapiSam {
        SdtapiSam {
            config: config.clone(),
            api: None,
            open: false,
            wire_bytes: 0,
        }
    }

    /// Load the library, open the port, check the SAM's status.
    pub fn open(config: &SdtapiConfig) -> Result<SdtapiSam, ReaderError> {
        let mut sam = SdtapiSam::new(config);
        sam.reopen()?;
        Ok(sam)
    }

    /// The return code and data of the call for `request`.
    fn call(api: &SdtApi, port: i32, request: &Request) -> Result<(i32, Vec<u8>), ReaderError> {
        let read = |result: Result<(i32, CardParts), kiosk_sdtapi::SdtapiError>| {
            let (code, parts) = result?;
            let mut card = CardData {
                text: parts.text.to_vec(),
                photo: parts.photo.to_vec(),
                fingerprint: parts.fingerprint.as_ref().map(|fp| fp.to_vec()),
            };
            let data = card.to_data();
            card.zeroize();
            Ok::<_, ReaderError>((code, data))
        };
        Ok(match request.command() {
            Some(Command::ResetSam) => (api.reset_sam(port).unwrap_or(MISSING), Vec::new()),
            Some(Command::SamStatus) => (api.sam_status(port), Vec::new()),
            Some(Command::SamId) => {
                let (code, id) = api.sam_id(port);
                (code, id.to_vec())
            }
            Some(Command::FindCard) => {
                let (code, info) = api.find_card(port);
                (code, info.to_vec())
            }
            Some(Command::SelectCard) => {
                let (code, serial) = api.select_card(port);
                (code, serial.to_vec())
            }
            Some(Command::ReadTextPhoto) => read(api.read_base(port))?,
            Some(Command::ReadTextPhotoFingerprint) => match api.read_base_fingerprint(port) {
                Some(result) => read(result)?,
                None => (MISSING, Vec::new()),
            },
            Some(Command::ReadAppendedAddress) => match api.read_appended_address(port) {
                Some(result) => {
                    let (code, block) = result?;
                    (code, block.to_vec())
                }
                None => (MISSING, Vec::new()),
            },
            None => (MISSING, Vec::new()),
        })
    }
}

/// The error a library's own (non-SW3) return code means, if it is one.
pub(crate) fn library_code_error(
    code: i32,
    command: &'static str,
    port: i32,
    timeout: Duration,
) -> Option<ReaderError> {
    match code {
        0x01 | 0x05 => Some(ReaderError::Unplugged {
            detail: format!("the sdtapi library cannot reach port {port} (code {code:02X})"),
        }),
        0x02 => Some(ReaderError::Timeout {
            command,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            received: 0,
        }),
        0x00..=0x0F => Some(ReaderError::LibraryCode {
            command,
            code,
            meaning: match code {
                0x03 => "data transfer error",
                0x09 => "cannot open a file",
                _ => "a transport error",
            },
        }),
        0x10..=0xFF => None,
        _ => Some(ReaderError::LibraryCode {
            command,
            code,
            meaning: "not a status byte",
        }),
    }
}

impl SamLink for SdtapiSam {
    fn reopen(&mut self) -> Result<(), ReaderError> {
        self.close();
        let api = match &mut self.api {
            Some(api) => api,
            none => none.insert(SdtApi::load(&self.config.library)?),
        };
        let port = self.config.port;
        let timeout = Duration::ZERO;
        let opened = api.open_port(port);
        if opened != OK {
            return Err(library_code_error(opened, "SDT_OpenPort", port, timeout)
                .unwrap_or_else(|| SamError::from_sw3(opened as u8).into()));
        }
        self.open = true;
        let status = api.sam_status(port);
        let error = library_code_error(
            status,
            command_name(Some(Command::SamStatus)),
            port,
            timeout,
        )
        .or_else(|| (status != OK).then(|| SamError::from_sw3(status as u8).into()));
        if let Some(e) = error {
            self.close();
            return Err(e);
        }
        tracing::debug!(library = %self.config.library.display(), port, "sdtapi port opened");
        Ok(())
    }

    fn close(&mut self) {
        if self.open {
            self.open = false;
            if let Some(api) = &self.api {
                api.close_port(self.config.port);
            }
            tracing::debug!(port = self.config.port, "sdtapi port closed");
        }
    }

    fn is_open(&self) -> bool {
        self.open
    }

    fn location(&self) -> String {
        format!(
            "{} port {}",
            self.config.library.display(),
            self.config.port
        )
    }
}

impl SamChannel for SdtapiSam {
    fn transact(&mut self, request: &Request, timeout: Duration) -> Result<Response, ReaderError> {
        let port = self.config.port;
        let api = match (&self.api, self.open) {
            (Some(api), true) => api,
            _ => {
                return Err(ReaderError::Unplugged {
                    detail: "the sdtapi port is closed".into(),
                });
            }
        };
        trace::request("sdtapi", request);
        let command = command_name(request.command());
        let (code, mut data) = Self::call(api, port, request)?;
        self.wire_bytes += request.to_frame().len() as u64;
        if let Some(e) = library_code_error(code, command, port, timeout) {
            data.zeroize();
            if e.is_unplugged() {
                self.close();
            }
            return Err(e);
        }
        let sw3 = code as u8;
        if !matches!(sw3, 0x90 | 0x9F) {
            data.zeroize();
            data.clear();
        }
        let response = Response {
            sw1: 0,
            sw2: 0,
            sw3,
            data,
        };
        // What the answer frame would have been on a serial line.
        self.wire_bytes += (7 + 3 + response.data.len() + 1) as u64;
        trace::response("sdtapi", request, &response);
        Ok(response)
    }

    fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_codes_and_sw3_are_told_apart() {
        let t = Duration::from_millis(5);
        for code in [0x01, 0x05] {
            assert!(
                library_code_error(code, "x", 1001, t)
                    .unwrap()
                    .is_unplugged()
            );
        }
        assert!(matches!(
            library_code_error(0x02, "x", 1001, t),
            Some(ReaderError::Timeout { received: 0, .. })
        ));
        assert!(matches!(
            library_code_error(0x03, "x", 1001, t),
            Some(ReaderError::LibraryCode { code: 0x03, .. })
        ));
        assert!(matches!(
            library_code_error(-1, "x", 1001, t),
            Some(ReaderError::LibraryCode { code: -1, .. })
        ));
        assert!(matches!(
            library_code_error(0x100, "x", 1001, t),
            Some(ReaderError::LibraryCode { .. })
        ));
        // Every SW3 from 10 up is the SAM's, typed by kiosk-idcard.
        for sw3 in 0x10..=0xFF {
            assert!(library_code_error(sw3, "x", 1001, t).is_none(), "{sw3:02X}");
        }
    }
}
