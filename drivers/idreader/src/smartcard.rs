//! PC/SC: the card UID, GA 467 frames tunnelled through a reader, and
//! finding the configured reader.
//!
//! Tunnels:
//! * pseudo-APDU (`tunnel = "apdu"`): `HEADER Lc frame Le` with short
//!   lengths when the frame fits 255 bytes and the answer 256 bytes
//!   (`Le = 00`), otherwise extended lengths (`HEADER 00 Lc1 Lc2 frame
//!   00 00`). The answer is the whole GA 467 answer frame followed by
//!   `90 00`; `61 XX` is followed by `GET RESPONSE` (`00 C0 00 00 XX`)
//!   until `90 00`, and `6C XX` repeats the command with `Le = XX`.
//! * `SCardControl` (`tunnel = "control"`): the frame goes out and comes
//!   back raw.
//!
//! PC/SC has no per-exchange timeout: the reader driver's applies.

use std::ffi::{CStr, CString};
use std::time::Duration;

use kiosk_idcard::frame::Decoded;
use kiosk_idcard::{FrameDecoder, Request, Response};

use crate::channel::{SamChannel, max_answer_len, plausible_answer};
use crate::config::{PcscConfig, Tunnel};
use crate::error::ReaderError;
use crate::trace::{self, command_name};

/// The UID request, `GET UID` of the ID card (`00 36 00 00 08`).
pub const UID_APDU: [u8; 5] = [0x00, 0x36, 0x00, 0x00, 0x08];

/// How GA 467 frames travel through the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelMode {
    /// Pseudo-APDU with this CLA INS P1 P2; `extended`: extended lengths
    /// for long answers (else short APDUs and `GET RESPONSE`).
    Apdu { header: [u8; 4], extended: bool },
    /// `SCardControl` with this control code.
    Control(u32),
}

impl TunnelMode {
    /// The tunnel a reader's configuration asks for (`None` for
    /// `tunnel = "none"`).
    pub fn from_config(config: &PcscConfig) -> Option<TunnelMode> {
        match config.tunnel {
            // Checked by `ReaderConfig::validate`: an apdu tunnel has its header.
            Tunnel::Apdu => config.apdu_header.map(|header| TunnelMode::Apdu {
                header,
                extended: config.extended_apdu,
            }),
            Tunnel::Control => config.control_code.map(TunnelMode::Control),
            Tunnel::None => None,
        }
    }
}

/// A [`SamChannel`] through a connected PC/SC card (or, for
/// [`TunnelMode::Control`], a direct connection to the reader).
pub struct PcscTunnel<'c> {
    card: &'c pcsc::Card,
    mode: TunnelMode,
    wire_bytes: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for PcscTunnel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscTunnel")
            .field("mode", &self.mode)
            .field("wire_bytes", &self.wire_bytes)
            .finish()
    }
}

impl<'c> PcscTunnel<'c> {
    /// A tunnel over `card` (a `pcsc::Transaction` derefs to a card).
    pub fn new(card: &'c pcsc::Card, mode: TunnelMode) -> PcscTunnel<'c> {
        PcscTunnel {
            card,
            mode,
            wire_bytes: 0,
            buf: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
        }
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ReaderError> {
        let answer = self.card.transmit(apdu, &mut self.buf)?;
        self.wire_bytes += (apdu.len() + answer.len()) as u64;
        Ok(answer.to_vec())
    }

    /// One pseudo-APDU exchange with GET RESPONSE chaining; the answer
    /// without its status word.
    fn apdu_exchange(
        &mut self,
        command: &'static str,
        header: [u8; 4],
        frame: &[u8],
        extended: bool,
    ) -> Result<Vec<u8>, ReaderError> {
        let mut apdu = build_apdu(header, frame, extended, None);
        let mut out = Vec::new();
        let mut answer = self.transmit(&apdu)?;
        for _ in 0..512 {
            let Some((sw, data)) = split_sw(&answer) else {
                // vpcd answers nothing when the card went away mid-APDU.
                return Err(ReaderError::Truncated {
                    command,
                    received: out.len() + answer.len(),
                });
            };
            out.extend_from_slice(data);
            match sw {
                0x9000 => return Ok(out),
                sw if sw >> 8 == 0x61 => {
                    answer = self.transmit(&[0x00, 0xC0, 0x00, 0x00, (sw & 0xFF) as u8])?;
                }
                sw if sw >> 8 == 0x6C && !extended => {
                    out.clear();
                    apdu = build_apdu(header, frame, false, Some((sw & 0xFF) as u8));
                    answer = self.transmit(&apdu)?;
                }
                sw => return Err(ReaderError::Apdu { sw }),
            }
        }
        Err(ReaderError::Protocol {
            command: "tunnelled frame",
            detail: "endless GET RESPONSE chain".into(),
        })
    }
}

/// `header Lc frame Le`: short when `extended` is false (Le `00` = 256, or
/// `le`), else extended (`00 Lc1 Lc2 frame 00 00`).
pub fn build_apdu(header: [u8; 4], frame: &[u8], extended: bool, le: Option<u8>) -> Vec<u8> {
    let mut apdu = Vec::with_capacity(frame.len() + 9);
    apdu.extend_from_slice(&header);
    if extended || frame.len() > 255 {
        let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
        apdu.push(0x00);
        apdu.extend_from_slice(&len.to_be_bytes());
        apdu.extend_from_slice(frame);
        apdu.extend_from_slice(&[0x00, 0x00]);
    } else {
        apdu.push(frame.len() as u8);
        apdu.extend_from_slice(frame);
        apdu.push(le.unwrap_or(0x00));
    }
    apdu
}

fn split_sw(answer: &[u8]) -> Option<(u16, &[u8])> {
    if answer.len() < 2 {
        return None;
    }
    let (data, sw) = answer.split_at(answer.len() - 2);
    Some((u16::from_be_bytes([sw[0], sw[1]]), data))
}

/// Decode exactly one answer frame from `bytes`.
fn decode_answer(request: &Request, bytes: &[u8]) -> Result<Response, ReaderError> {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    let command = command_name(request.command());
    loop {
        match decoder.next_frame() {
            Ok(Decoded::Frame(payload)) => {
                let response = Response::from_payload(&payload)?;
                if !plausible_answer(request, &response) {
                    return Err(ReaderError::Protocol {
                        command,
                        detail: format!(
                            "answer SW3 {:02X} with {} data bytes does not fit",
                            response.sw3,
                            response.data.len()
                        ),
                    });
                }
                return Ok(response);
            }
            Ok(Decoded::Incomplete) => {
                return Err(ReaderError::Truncated {
                    command,
                    received: bytes.len(),
                });
            }
            Err(kiosk_idcard::FrameError::Length(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl SamChannel for PcscTunnel<'_> {
    /// `timeout` is not used: PC/SC exchanges end when the driver says so.
    fn transact(&mut self, request: &Request, _timeout: Duration) -> Result<Response, ReaderError> {
        let frame = request.to_frame();
        trace::request("pcsc", request);
        let bytes = match self.mode {
            TunnelMode::Apdu { header, extended } => {
                let extended =
                    frame.len() > 255 || (extended && max_answer_len(request.command()) > 256);
                self.apdu_exchange(command_name(request.command()), header, &frame, extended)?
            }
            TunnelMode::Control(code) => {
                let answer = self.card.control(code.into(), &frame, &mut self.buf)?;
                self.wire_bytes += (frame.len() + answer.len()) as u64;
                answer.to_vec()
            }
        };
        let response = decode_answer(request, &bytes)?;
        trace::response("pcsc", request, &response);
        Ok(response)
    }

    fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }
}

/// The card's 8-byte UID (`00 36 00 00 08`).
pub fn card_uid(card: &pcsc::Card) -> Result<[u8; 8], ReaderError> {
    let mut buf = [0u8; 64];
    let answer = card.transmit(&UID_APDU, &mut buf)?;
    match split_sw(answer) {
        Some((0x9000, data)) if data.len() == 8 => {
            let mut uid = [0u8; 8];
            uid.copy_from_slice(data);
            Ok(uid)
        }
        Some((0x9000, data)) => Err(ReaderError::Protocol {
            command: "get UID (00 36)",
            detail: format!("{} bytes", data.len()),
        }),
        Some((sw, _)) => Err(ReaderError::Apdu { sw }),
        None => Err(ReaderError::Protocol {
            command: "get UID (00 36)",
            detail: "answer shorter than a status word".into(),
        }),
    }
}

/// The reader `wanted` names among `readers`: an exact match, else the
/// first whose name starts with `wanted`.
pub fn match_reader<'a>(
    readers: impl IntoIterator<Item = &'a CStr>,
    wanted: &str,
) -> Option<CString> {
    let mut prefix_match = None;
    for reader in readers {
        let name = reader.to_string_lossy();
        if name == wanted {
            return Some(reader.to_owned());
        }
        if prefix_match.is_none() && name.starts_with(wanted) {
            prefix_match = Some(reader.to_owned());
        }
    }
    prefix_match
}

/// The readers pcscd knows (none when it has none).
pub fn list_readers(ctx: &pcsc::Context) -> Result<Vec<CString>, ReaderError> {
    match ctx.list_readers_owned() {
        Ok(readers) => Ok(readers),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_extended_apdus() {
        let h = [0xFF, 0x69, 0x96, 0x00];
        assert_eq!(
            build_apdu(h, &[1, 2, 3], false, None),
            vec![0xFF, 0x69, 0x96, 0x00, 3, 1, 2, 3, 0]
        );
        assert_eq!(
            build_apdu(h, &[1, 2, 3], false, Some(0x20)),
            vec![0xFF, 0x69, 0x96, 0x00, 3, 1, 2, 3, 0x20]
        );
        assert_eq!(
            build_apdu(h, &[1, 2, 3], true, None),
            vec![0xFF, 0x69, 0x96, 0x00, 0, 0, 3, 1, 2, 3, 0, 0]
        );
        let long = vec![7u8; 300];
        let apdu = build_apdu(h, &long, false, None);
        assert_eq!(&apdu[4..7], &[0, 0x01, 0x2C]);
        assert_eq!(apdu.len(), 4 + 3 + 300 + 2);
    }

    #[test]
    fn reader_names_match_exactly_or_by_prefix() {
        let a = CString::new("Virtual PCD 00 00").unwrap();
        let b = CString::new("Virtual PCD 00 01").unwrap();
        let names = [a.as_c_str(), b.as_c_str()];
        assert_eq!(match_reader(names, "Virtual PCD 00 01"), Some(b.clone()));
        assert_eq!(match_reader(names, "Virtual PCD"), Some(a.clone()));
        assert_eq!(match_reader(names, "ACS"), None);
    }

    #[test]
    fn status_words_split() {
        assert_eq!(split_sw(&[1, 2, 0x90, 0x00]), Some((0x9000, &[1u8, 2][..])));
        assert_eq!(split_sw(&[0x61]), None);
    }
}
