//! What `kiosk-sim serve` runs: devices from a config file (or flags) and
//! the control socket.
//!
//! ```toml
//! control = "/tmp/kiosk-sim.sock"
//! pcscd = true                     # optional: run a private pcscd (own network
//!                                  # namespace) with a vpcd reader per [[card]]
//!
//! [[sam]]                          # a SAM module on a pty (names default to sam0, sam1, ...)
//! name = "sam0"
//! link = "/tmp/kiosk-sim/sam0"     # the symlink the kiosk opens
//! baud = 115200
//! emulate_wire_time = true
//! sam_id = "05000100E0B83201B041AB00D2029649"   # optional, 16 bytes hex
//! profile = "resident"             # optional: a card placed at start
//!
//! [[card]]                         # a virtual card for vpcd (card0, card1, ...)
//! port = 35963                     # vpcd's port; slot 1 is port + 1
//! netns = "/run/netns/NAME"        # optional: connect from that network namespace
//! tunnel_header = "FF 69 96 00"
//! emulate_baud = 115200
//! profile = "resident"
//! fault = { kind = "none" }
//!
//! [[printer]]                      # an ESC/POS ticket printer on a pty (printer0, printer1, ...)
//! link = "/tmp/kiosk-sim/printer0" # the symlink the kiosk opens
//! baud = 115200
//! emulate_wire_time = false
//! state = "ready"                  # optional: paper_near_end, paper_out, cover_open, ...
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::control::{ControlServer, Device, Devices};
use crate::error::{Result, SimError};
use crate::pcscd::Pcscd;
use crate::printer::{PrinterSim, PrinterSimConfig, PrinterState};
use crate::profile::{CardProfile, Fault};
use crate::sam::{DEFAULT_SAM_ID, SamSim, SamSimConfig};
use crate::vicc::{DEFAULT_TUNNEL_HEADER, ViccConfig, VirtualCard};

/// The control socket used when none is configured.
pub const DEFAULT_CONTROL: &str = "/tmp/kiosk-sim.sock";

/// The devices to run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The control socket's path ([`DEFAULT_CONTROL`] if unset).
    pub control: Option<PathBuf>,
    /// Run a private pcscd with a vpcd reader for each card (the cards
    /// then connect inside its network namespace).
    #[serde(default)]
    pub pcscd: bool,
    #[serde(default)]
    pub sam: Vec<SamEntry>,
    #[serde(default)]
    pub card: Vec<CardEntry>,
    #[serde(default)]
    pub printer: Vec<PrinterEntry>,
}

/// One SAM module on a pty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamEntry {
    pub name: Option<String>,
    pub link: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default)]
    pub emulate_wire_time: bool,
    pub sam_id: Option<String>,
    pub profile: Option<String>,
    pub fault: Option<Fault>,
}

/// One virtual card (vpcd, two slots).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardEntry {
    pub name: Option<String>,
    pub port: u16,
    pub tunnel_header: Option<String>,
    pub emulate_baud: Option<u32>,
    pub sam_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub profile: Option<String>,
    pub fault: Option<Fault>,
}

/// One ESC/POS ticket printer on a pty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterEntry {
    pub name: Option<String>,
    /// The pty's symlink (unset for a network printer).
    #[serde(default)]
    pub link: PathBuf,
    /// A network printer's raw port instead of a pty, e.g.
    /// `127.0.0.1:9100` (loopback only).
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default)]
    pub emulate_wire_time: bool,
    /// The state at start (default `ready`).
    pub state: Option<PrinterState>,
}

fn default_baud() -> u32 {
    115_200
}

/// Running devices, their control socket and the optional pcscd; drop
/// stops everything, and when it returns the devices are stopped and their
/// links and the control socket removed.
///
/// Fields drop in order: the control socket first (it joins its
/// connection threads, which hold the devices too), then the devices (stopped
/// here unless another clone of the `Arc` is still held), then pcscd.
#[derive(Debug)]
pub struct Running {
    pub control: ControlServer,
    pub devices: Arc<Devices>,
    pub pcscd: Option<Pcscd>,
}

impl ServeConfig {
    /// Read a config file.
    pub fn load(path: &Path) -> Result<ServeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(SimError::io(format!("reading {}", path.display())))?;
        toml::from_str(&text).map_err(|e| SimError::Io {
            context: format!("{}: {e}", path.display()),
            source: std::io::ErrorKind::InvalidData.into(),
        })
    }

    /// Start pcscd if configured, every device, place the configured cards,
    /// open the control socket.
    pub fn start(&self) -> Result<Running> {
        let pcscd = self.start_pcscd()?;
        self.start_with(pcscd)
    }

    /// The private pcscd, if `pcscd = true`: one vpcd entry per card port.
    pub fn start_pcscd(&self) -> Result<Option<Pcscd>> {
        if !self.pcscd {
            return Ok(None);
        }
        let ports: Vec<u16> = self.card.iter().map(|c| c.port).collect();
        Pcscd::start(&ports).map(Some)
    }

    /// Like [`ServeConfig::start`] with an already started pcscd (from
    /// [`ServeConfig::start_pcscd`]).
    pub fn start_with(&self, pcscd: Option<Pcscd>) -> Result<Running> {
        let mut devices = Devices::new();
        for (i, e) in self.sam.iter().enumerate() {
            let sam = SamSim::start(SamSimConfig {
                link: e.link.clone(),
                baud: e.baud,
                emulate_wire_time: e.emulate_wire_time,
                sam_id: sam_id(e.sam_id.as_deref())?,
                adapter_sysfs: None,
            })?;
            load_card(
                e.profile.as_deref(),
                e.fault,
                |c| sam.place(c),
                |f| sam.set_fault(f),
            )?;
            devices.add(device_name(e.name.as_deref(), "sam", i), Device::Sam(sam))?;
        }
        for (i, e) in self.card.iter().enumerate() {
            let card = VirtualCard::start(ViccConfig {
                port: e.port,
                tunnel_header: e
                    .tunnel_header
                    .as_deref()
                    .map(parse_header)
                    .transpose()?
                    .unwrap_or(DEFAULT_TUNNEL_HEADER),
                emulate_baud: e.emulate_baud,
                sam_id: sam_id(e.sam_id.as_deref())?,
                netns: e
                    .netns
                    .clone()
                    .or_else(|| pcscd.as_ref().map(|p| p.netns().to_path_buf())),
            })?;
            load_card(
                e.profile.as_deref(),
                e.fault,
                |c| card.place(c),
                |f| card.set_fault(f),
            )?;
            devices.add(
                device_name(e.name.as_deref(), "card", i),
                Device::Card(card),
            )?;
        }
        for (i, e) in self.printer.iter().enumerate() {
            let printer = PrinterSim::start(PrinterSimConfig {
                baud: e.baud,
                emulate_wire_time: e.emulate_wire_time,
                listen: e.listen,
                ..PrinterSimConfig::new(e.link.clone())
            })?;
            if let Some(state) = e.state {
                printer.set_state(state);
            }
            devices.add(
                device_name(e.name.as_deref(), "printer", i),
                Device::Printer(printer),
            )?;
        }
        let devices = Arc::new(devices);
        let control = ControlServer::start(
            self.control
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTROL.into()),
            devices.clone(),
        )?;
        Ok(Running {
            control,
            devices,
            pcscd,
        })
    }
}

/// The name a device is listed under: its own, else its kind and its
/// place among the devices of that kind (`sam0`, `card1`, `printer0`).
fn device_name(name: Option<&str>, kind: &str, i: usize) -> String {
    name.map_or_else(|| format!("{kind}{i}"), str::to_owned)
}

/// Put a card device (a SAM or a virtual card) in its configured state:
/// the profile's card placed, the fault set.
fn load_card(
    profile: Option<&str>,
    fault: Option<Fault>,
    place: impl FnOnce(CardProfile),
    set_fault: impl FnOnce(Fault),
) -> Result<()> {
    if let Some(p) = profile {
        place(CardProfile::resolve(p)?);
    }
    if let Some(f) = fault {
        set_fault(f);
    }
    Ok(())
}

/// Bytes from hex with optional spaces or colons.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let hex: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// Exactly `N` bytes from hex; `what` names the value in the error.
fn parse_hex_array<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    parse_hex(s)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| SimError::Io {
            context: format!("{what} {s:?} is not {N} hex bytes"),
            source: std::io::ErrorKind::InvalidInput.into(),
        })
}

/// A configured 16-byte SAM id from hex, else [`DEFAULT_SAM_ID`].
fn sam_id(hex: Option<&str>) -> Result<[u8; 16]> {
    hex.map_or(Ok(DEFAULT_SAM_ID), |s| parse_hex_array(s, "sam_id"))
}

/// A 4-byte APDU header from hex (`FF 69 96 00`).
pub fn parse_header(s: &str) -> Result<[u8; 4]> {
    parse_hex_array(s, "tunnel header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses() {
        let c: ServeConfig = toml::from_str(
            r#"
            control = "/tmp/x.sock"
            [[sam]]
            link = "/tmp/sam0"
            emulate_wire_time = true
            profile = "resident"
            [[card]]
            port = 40000
            tunnel_header = "FF 69 96 00"
            fault = { kind = "slow", delay_ms = 10 }
            [[printer]]
            link = "/tmp/printer0"
            state = "paper_near_end"
            "#,
        )
        .unwrap();
        assert_eq!(c.sam[0].baud, 115_200);
        assert_eq!(c.printer[0].baud, 115_200);
        assert_eq!(c.printer[0].state, Some(PrinterState::PaperNearEnd));
        assert_eq!(c.card[0].fault, Some(Fault::Slow { delay_ms: 10 }));
        assert_eq!(parse_header("FF699600").unwrap(), DEFAULT_TUNNEL_HEADER);
        assert!(parse_header("FF69").is_err());
    }

    #[test]
    fn sam_ids_and_names_default() {
        assert_eq!(sam_id(None).unwrap(), DEFAULT_SAM_ID);
        assert_eq!(
            sam_id(Some("05 01 00 00 00 00 00 00 00 00 00 00 00 00 00 FF")).unwrap()[15],
            0xFF
        );
        let err = sam_id(Some("0501")).unwrap_err().to_string();
        assert!(
            err.starts_with("sam_id \"0501\" is not 16 hex bytes"),
            "{err}"
        );
        assert_eq!(device_name(None, "card", 1), "card1");
        assert_eq!(device_name(Some("front"), "sam", 0), "front");
    }
}
