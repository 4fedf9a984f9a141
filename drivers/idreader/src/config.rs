//! Reader configuration (one [`ReaderConfig`] per physical reader).
//!
//! ```toml
//! # A PC/SC reader for presence and the card UID, a SAM module on a
//! # serial port for the data (the common case: tunnel = "none")
//! name = "counter-1"
//! read_appended_address = true
//! [pcsc]
//! reader = "Virtual PCD 00"     # exact name, or a prefix of it
//! tunnel = "none"               # none (default) | apdu | control
//! # For tunnel = "apdu" only, and required then: the reader model's own
//! # pseudo-APDU (CLA INS P1 P2, from its manual; there is no standard one)
//! # apdu_header = "FF699600"
//! extended_apdu = true          # default
//! [sam]
//! path = "/dev/serial/by-id/usb-Prolific_PL2303-if00-port0"
//! baud = "auto"                 # or 115200, 57600, 38400, 19200, 9600
//! poll_interval_ms = 250        # default; only without PC/SC presence
//! response_timeout_ms = 2000    # default
//! retries = 2                   # default
//! ```
//!
//! Instead of `[sam]`, the vendor's `sdtapi` library may reach the SAM:
//!
//! ```toml
//! [sdtapi]
//! library = "/opt/reader/lib/libsdtapi.so"
//! port = 1001                   # 1001-1016 USB, 1-16 serial
//! ```
//!
//! Unknown keys are rejected. [`ReaderConfig::validate`] checks what serde
//! cannot ([`crate::ReaderDevice::spawn`] calls it).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ReaderError;

/// Baud rates tried by auto-detection, in this order (after the last rate
/// found, which is tried first).
pub const AUTO_BAUD_RATES: [u32; 5] = [115_200, 57_600, 38_400, 19_200, 9_600];

/// One ID reader: PC/SC for presence (and data through a tunnel), a serial
/// SAM for data, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// The name events carry (`ReaderEvent::*::reader`); not the PC/SC name.
    pub name: String,
    /// PC/SC reader: presence, card UID, and (unless `tunnel = "none"`) the
    /// SAM frames.
    #[serde(default)]
    pub pcsc: Option<PcscConfig>,
    /// SAM module on a serial port.
    #[serde(default)]
    pub sam: Option<SamConfig>,
    /// The SAM reached through the reader vendor's `sdtapi` library
    /// (instead of `sam`).
    #[serde(default)]
    pub sdtapi: Option<SdtapiConfig>,
    /// A USB reader carrying GA 467 frames in bulk packets (instead of
    /// `sam` or `sdtapi`).
    #[serde(default)]
    pub usb: Option<UsbConfig>,
    /// Read text + photo + fingerprint (`30 10`) instead of text + photo
    /// (`30 01`). Default `false`.
    #[serde(default)]
    pub read_fingerprint: bool,
    /// Also read the appended address (`30 03`). Default `false`.
    #[serde(default)]
    pub read_appended_address: bool,
}

/// How GA 467 frames reach the SAM of a PC/SC reader.
///
/// How a PC/SC reader passes frames to its built-in SAM is specific to the
/// reader's model: a generic CCID reader has no SAM at all, and vendors
/// differ. So the default is `None`, and a tunnel is only used when the
/// configuration names it with the model's own header or control code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tunnel {
    /// Wrapped in a pseudo-APDU (`apdu_header` + Lc + frame + Le) sent
    /// with `SCardTransmit` to the card in the reader.
    Apdu,
    /// Sent raw with `SCardControl(control_code)`.
    Control,
    /// The PC/SC reader only tells presence (and the UID); a `[sam]` reads.
    /// The default.
    #[default]
    None,
}

/// A PC/SC reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcscConfig {
    /// The reader's exact PC/SC name, or a prefix of it (the first reader,
    /// in pcscd's order, whose name starts with it is used; an exact match
    /// wins).
    pub reader: String,
    /// Default `none`.
    #[serde(default)]
    pub tunnel: Tunnel,
    /// CLA INS P1 P2 of the pseudo-APDU, as 8 hex digits: required with
    /// `tunnel = "apdu"` (the reader model's own; there is no default).
    #[serde(default, with = "hex4", skip_serializing_if = "Option::is_none")]
    pub apdu_header: Option<[u8; 4]>,
    /// Use extended-length pseudo-APDUs for answers longer than 256 bytes
    /// (the reads). Default `true`; `false` for readers that only take
    /// short APDUs: long answers then come in `61 XX` / `GET RESPONSE`
    /// pieces.
    #[serde(default = "default_true")]
    pub extended_apdu: bool,
    /// The control code for `tunnel = "control"`, as passed to
    /// `SCardControl` (on pcsc-lite, `SCARD_CTL_CODE(n)` is `0x42000000 + n`).
    #[serde(default)]
    pub control_code: Option<u32>,
}

/// A SAM module on a serial port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamConfig {
    /// A stable path (`/dev/serial/by-id/...`): the port is reopened by it
    /// after an unplug.
    pub path: PathBuf,
    /// `"auto"` (the default) or a fixed rate.
    #[serde(default)]
    pub baud: Baud,
    /// How often a SAM-only reader sends find-card to detect presence, in
    /// ms. Default 250. Not used when a PC/SC reader tells presence.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How long to wait for an answer, in ms, on top of the time the answer
    /// needs on the wire at the current baud rate. Default 2000.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// How often a failed exchange (bad checksum, no answer) is tried again.
    /// Default 2.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Ask a USB-serial adapter for its lowest latency when the port is
    /// opened (its `latency_timer` to 1 ms; FTDI adapters hold each short
    /// answer 16 ms by default). Default `true`.
    #[serde(default = "default_true")]
    pub low_latency: bool,
    /// Where sysfs is mounted. Default `/sys`; tests point it at a
    /// simulated one.
    #[serde(default = "default_sysfs")]
    pub sysfs: PathBuf,
}

/// The reader vendor's `sdtapi` shared library, loaded at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdtapiConfig {
    /// The library's path (`libsdtapi.so` or the vendor's name for it).
    pub library: PathBuf,
    /// The library's port number: 1001-1016 for USB readers, 1-16 for
    /// serial ones.
    pub port: i32,
    /// How often a reader without PC/SC presence asks for a card, in ms.
    /// Default 250.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How often a failed exchange (no answer) is tried again. Default 2.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

/// A USB reader that carries raw GA 467 frames on two bulk endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbConfig {
    /// Default `0x0400`.
    #[serde(default = "default_usb_vendor_id")]
    pub vendor_id: u16,
    /// Default `0xC35A`.
    #[serde(default = "default_usb_product_id")]
    pub product_id: u16,
    /// The reader's USB serial number, to tell two readers of one model
    /// apart; without it the first reader found is used.
    #[serde(default)]
    pub serial: Option<String>,
    /// How often a reader without PC/SC presence asks for a card, in ms.
    /// Default 250.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How long to wait for an answer, in ms. Default 2000.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// How often a failed exchange is tried again. Default 2.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

impl Default for UsbConfig {
    fn default() -> Self {
        UsbConfig {
            vendor_id: default_usb_vendor_id(),
            product_id: default_usb_product_id(),
            serial: None,
            poll_interval_ms: default_poll_interval_ms(),
            response_timeout_ms: default_response_timeout_ms(),
            retries: default_retries(),
        }
    }
}

impl UsbConfig {
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
    /// `0400:C35A`, with the serial number when given.
    pub fn describe(&self) -> String {
        match &self.serial {
            Some(serial) => format!(
                "USB {:04X}:{:04X} serial {serial}",
                self.vendor_id, self.product_id
            ),
            None => format!("USB {:04X}:{:04X}", self.vendor_id, self.product_id),
        }
    }
}

fn default_usb_vendor_id() -> u16 {
    0x0400
}
fn default_usb_product_id() -> u16 {
    0xC35A
}

impl SdtapiConfig {
    /// A config for `library` on `port` with every default.
    pub fn new(library: impl Into<PathBuf>, port: i32) -> SdtapiConfig {
        SdtapiConfig {
            library: library.into(),
            port,
            poll_interval_ms: default_poll_interval_ms(),
            retries: default_retries(),
        }
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    /// Is `port` one the library numbers (1-16 serial, 1001-1016 USB)?
    pub fn valid_port(port: i32) -> bool {
        (1..=16).contains(&port) || (1001..=1016).contains(&port)
    }
}

impl SamConfig {
    /// A config for `path` with every default.
    pub fn new(path: impl Into<PathBuf>) -> SamConfig {
        SamConfig {
            path: path.into(),
            baud: Baud::Auto,
            poll_interval_ms: default_poll_interval_ms(),
            response_timeout_ms: default_response_timeout_ms(),
            retries: default_retries(),
            low_latency: true,
            sysfs: default_sysfs(),
        }
    }
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

impl PcscConfig {
    /// A config for `reader` with every default (presence only: no
    /// tunnel).
    pub fn new(reader: impl Into<String>) -> PcscConfig {
        PcscConfig {
            reader: reader.into(),
            tunnel: Tunnel::None,
            apdu_header: None,
            extended_apdu: true,
            control_code: None,
        }
    }

    /// A config for `reader` that tunnels frames in pseudo-APDUs with
    /// `header`.
    pub fn apdu(reader: impl Into<String>, header: [u8; 4]) -> PcscConfig {
        PcscConfig {
            tunnel: Tunnel::Apdu,
            apdu_header: Some(header),
            ..PcscConfig::new(reader)
        }
    }
}

/// A serial baud rate: detected, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Baud {
    /// Try [`AUTO_BAUD_RATES`] with a SAM-status request until a valid
    /// frame answers; the rate found is remembered and tried first next time.
    #[default]
    Auto,
    Fixed(u32),
}

impl Serialize for Baud {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Baud::Auto => s.serialize_str("auto"),
            Baud::Fixed(rate) => s.serialize_u32(*rate),
        }
    }
}

impl<'de> Deserialize<'de> for Baud {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Baud;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\" or a baud rate")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Baud, E> {
                if v.eq_ignore_ascii_case("auto") {
                    Ok(Baud::Auto)
                } else {
                    v.parse::<u32>()
                        .map(Baud::Fixed)
                        .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Baud, E> {
                u32::try_from(v)
                    .map(Baud::Fixed)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Baud, E> {
                u32::try_from(v)
                    .map(Baud::Fixed)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

fn default_true() -> bool {
    true
}
fn default_sysfs() -> PathBuf {
    PathBuf::from("/sys")
}
fn default_poll_interval_ms() -> u64 {
    250
}
fn default_response_timeout_ms() -> u64 {
    2000
}
fn default_retries() -> u32 {
    2
}

/// `[u8; 4]` as 8 hex digits (spaces allowed when reading).
mod hex4 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 4]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.iter().map(|b| format!("{b:02X}")).collect::<String>()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 4]>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not 4 bytes of hex, e.g. \"FF699600\""))
        })
    }

    pub fn parse(text: &str) -> Option<[u8; 4]> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if digits.len() != 8 {
            return None;
        }
        let mut out = [0u8; 4];
        for (i, pair) in digits.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(out)
    }
}

impl ReaderConfig {
    /// A serial-SAM-only reader.
    pub fn serial(name: impl Into<String>, sam: SamConfig) -> ReaderConfig {
        ReaderConfig {
            name: name.into(),
            pcsc: None,
            sam: Some(sam),
            sdtapi: None,
            usb: None,
            read_fingerprint: false,
            read_appended_address: false,
        }
    }

    /// A reader whose SAM the vendor's `sdtapi` library reaches.
    pub fn sdtapi(name: impl Into<String>, sdtapi: SdtapiConfig) -> ReaderConfig {
        ReaderConfig {
            name: name.into(),
            pcsc: None,
            sam: None,
            sdtapi: Some(sdtapi),
            usb: None,
            read_fingerprint: false,
            read_appended_address: false,
        }
    }

    /// A USB reader carrying GA 467 frames in bulk packets.
    pub fn usb(name: impl Into<String>, usb: UsbConfig) -> ReaderConfig {
        ReaderConfig {
            name: name.into(),
            pcsc: None,
            sam: None,
            sdtapi: None,
            usb: Some(usb),
            read_fingerprint: false,
            read_appended_address: false,
        }
    }

    /// How many SAMs of its own (`[sam]`, `[sdtapi]`, `[usb]`) it names.
    fn sam_links(&self) -> usize {
        usize::from(self.sam.is_some())
            + usize::from(self.sdtapi.is_some())
            + usize::from(self.usb.is_some())
    }

    /// Has it a SAM of its own (`[sam]`, `[sdtapi]` or `[usb]`), not one
    /// tunnelled through PC/SC?
    pub fn has_sam_link(&self) -> bool {
        self.sam_links() > 0
    }

    /// How often a reader without PC/SC presence asks for a card.
    pub fn poll_interval(&self) -> Duration {
        let ms = match (&self.sam, &self.sdtapi, &self.usb) {
            (Some(sam), _, _) => sam.poll_interval_ms,
            (None, Some(sdtapi), _) => sdtapi.poll_interval_ms,
            (None, None, Some(usb)) => usb.poll_interval_ms,
            (None, None, None) => default_poll_interval_ms(),
        };
        Duration::from_millis(ms)
    }

    /// A PC/SC reader (tunnel per `pcsc.tunnel`).
    pub fn pcsc(name: impl Into<String>, pcsc: PcscConfig) -> ReaderConfig {
        ReaderConfig {
            name: name.into(),
            pcsc: Some(pcsc),
            sam: None,
            sdtapi: None,
            usb: None,
            read_fingerprint: false,
            read_appended_address: false,
        }
    }

    /// Check what serde cannot: a name; at least one of `pcsc` / `sam`;
    /// `tunnel = "none"` only with a `sam`; `tunnel = "control"` only with a
    /// `control_code`; a non-empty reader name; positive baud, poll interval
    /// and timeout.
    pub fn validate(&self) -> Result<(), ReaderError> {
        let bad = |msg: String| Err(ReaderError::Config(msg));
        if self.name.trim().is_empty() {
            return bad("reader name is empty".into());
        }
        let name = &self.name;
        if self.pcsc.is_none() && !self.has_sam_link() {
            return bad(format!(
                "reader {name:?} needs [pcsc], [sam], [sdtapi] or [usb] (or [pcsc] with one of the others)"
            ));
        }
        if self.sam_links() > 1 {
            return bad(format!(
                "reader {name:?}: [sam], [sdtapi] and [usb] each reach a SAM; give one"
            ));
        }
        if let Some(pcsc) = &self.pcsc {
            if pcsc.reader.is_empty() {
                return bad(format!("reader {name:?}: pcsc.reader is empty"));
            }
            match pcsc.tunnel {
                Tunnel::None if !self.has_sam_link() => {
                    return bad(format!(
                        "reader {name:?}: pcsc.tunnel = \"none\" (the default) needs a [sam] to read the card's data; a reader with a built-in SAM needs tunnel = \"apdu\" with its model's apdu_header, or tunnel = \"control\""
                    ));
                }
                Tunnel::Apdu if pcsc.apdu_header.is_none() => {
                    return bad(format!(
                        "reader {name:?}: pcsc.tunnel = \"apdu\" needs pcsc.apdu_header, the reader model's own pseudo-APDU (CLA INS P1 P2, from its manual): there is no standard one"
                    ));
                }
                Tunnel::Control if pcsc.control_code.is_none() => {
                    return bad(format!(
                        "reader {name:?}: pcsc.tunnel = \"control\" needs pcsc.control_code"
                    ));
                }
                _ => {}
            }
            if pcsc.tunnel != Tunnel::None && self.has_sam_link() {
                return bad(format!(
                    "reader {name:?}: [sam], [sdtapi] or [usb] is given, so the PC/SC reader only tells presence: set pcsc.tunnel = \"none\""
                ));
            }
        }
        if let Some(sam) = &self.sam {
            if sam.path.as_os_str().is_empty() {
                return bad(format!("reader {name:?}: sam.path is empty"));
            }
            if sam.baud == Baud::Fixed(0) {
                return bad(format!(
                    "reader {name:?}: sam.baud must be \"auto\" or a positive rate"
                ));
            }
            if sam.poll_interval_ms == 0 {
                return bad(format!(
                    "reader {name:?}: sam.poll_interval_ms must be positive"
                ));
            }
            if sam.response_timeout_ms == 0 {
                return bad(format!(
                    "reader {name:?}: sam.response_timeout_ms must be positive"
                ));
            }
        }
        if let Some(usb) = &self.usb {
            if usb.poll_interval_ms == 0 || usb.response_timeout_ms == 0 {
                return bad(format!(
                    "reader {name:?}: usb.poll_interval_ms and usb.response_timeout_ms must be positive"
                ));
            }
            if usb.serial.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return bad(format!("reader {name:?}: usb.serial is empty"));
            }
        }
        if let Some(sdtapi) = &self.sdtapi {
            if sdtapi.library.as_os_str().is_empty() {
                return bad(format!("reader {name:?}: sdtapi.library is empty"));
            }
            if !SdtapiConfig::valid_port(sdtapi.port) {
                return bad(format!(
                    "reader {name:?}: sdtapi.port {} is not 1-16 (serial) or 1001-1016 (USB)",
                    sdtapi.port
                ));
            }
            if sdtapi.poll_interval_ms == 0 {
                return bad(format!(
                    "reader {name:?}: sdtapi.poll_interval_ms must be positive"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_header_parses() {
        assert_eq!(hex4::parse("FF699600"), Some([0xFF, 0x69, 0x96, 0x00]));
        assert_eq!(hex4::parse("ff 69 96 01"), Some([0xFF, 0x69, 0x96, 0x01]));
        assert_eq!(hex4::parse("FF6996"), None);
        assert_eq!(hex4::parse("GG699600"), None);
    }
}
