//! Printer configuration.
//!
//! ```toml
//! [printer]
//! transport = "serial"          # default; usb | tcp
//! path = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
//! baud = 115200                 # default 9600 (serial only)
//! flow_control = "hardware"     # none (default) | software | hardware (serial only)
//! encoding = "gbk"              # default; gb18030 | big5 | cp437 | ascii
//! raster_fonts = ["/usr/share/fonts/truetype/hanazono/HanaMinA.ttf"]
//! write_timeout_ms = 5000       # default
//! status_timeout_ms = 1000      # default
//! status = true                 # default; false: the printer never answers DLE EOT
//! automatic_status_back = true  # default; use GS a (ASB) when status = true
//! low_latency = true            # default; serial: lower a USB-serial adapter's latency timer
//! ```
//!
//! A USB printer-class device: `transport = "usb"` and `path =
//! "/dev/usb/lp0"`. A network printer: `transport = "tcp"` and `address =
//! "192.0.2.10:9100"` (no `path`), with `connect_timeout_ms` (default
//! 3000).
//!
//! Unknown keys are rejected; [`PrinterConfig::validate`] checks what
//! serde cannot ([`crate::SerialPrinter::new`] calls it).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::encoding::TextEncoding;
use crate::error::EscposError;

/// How the printer holds the kiosk off when its buffer fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    #[default]
    None,
    /// XON/XOFF. Safe with status replies: every valid reply is even, and
    /// XON (0x11) and XOFF (0x13) are odd.
    Software,
    /// RTS/CTS (the printer's BUSY line).
    Hardware,
}

impl From<FlowControl> for serialport::FlowControl {
    fn from(f: FlowControl) -> Self {
        match f {
            FlowControl::None => serialport::FlowControl::None,
            FlowControl::Software => serialport::FlowControl::Software,
            FlowControl::Hardware => serialport::FlowControl::Hardware,
        }
    }
}

/// How the kiosk reaches the printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A tty (`path`, `baud`, `flow_control`).
    #[default]
    Serial,
    /// A USB printer-class node, `/dev/usb/lpN` (`path`), opened as a file.
    Usb,
    /// A network printer's raw port (`address`, `connect_timeout_ms`).
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Serial => "serial",
            Transport::Usb => "usb",
            Transport::Tcp => "tcp",
        }
    }
}

/// One ticket printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// Default serial, so configs written before the other transports keep
    /// their meaning.
    #[serde(default)]
    pub transport: Transport,
    /// Serial and USB: a stable path (`/dev/serial/by-id/...`, a udev
    /// symlink to `/dev/usb/lpN`): the device is reopened by it after an
    /// unplug. Empty (unset) for TCP.
    #[serde(default)]
    pub path: PathBuf,
    /// TCP: `host:port`, e.g. `192.0.2.10:9100`.
    #[serde(default)]
    pub address: Option<String>,
    /// Default 9600.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Default none.
    #[serde(default)]
    pub flow_control: FlowControl,
    /// What the printer model prints. Default GBK (two-byte safe).
    #[serde(default)]
    pub encoding: TextEncoding,
    /// Fonts for characters that neither the code table nor the bundled
    /// WenQuanYi Micro Hei has, tried in order when such a line is
    /// printed as a raster image. A file that is missing or not a font is
    /// skipped with a warning. Default: Debian's `fonts-hanazono`
    /// (CJK Extensions A and B).
    #[serde(default = "default_raster_fonts")]
    pub raster_fonts: Vec<PathBuf>,
    /// How long the printer may take no data (flow control, full buffer)
    /// before a print fails with [`EscposError::WriteTimeout`], in ms.
    /// Default 5000.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// How long to wait for a status reply, in ms, on top of the wire time
    /// of what is still queued ahead of the request. Default 1000.
    #[serde(default = "default_status_timeout_ms")]
    pub status_timeout_ms: u64,
    /// Does the printer answer `DLE EOT`? False for a unidirectional
    /// printer: printing just writes and the status is unknown. Default
    /// true.
    #[serde(default = "default_status")]
    pub status: bool,
    /// Ask the printer to report its status by itself (automatic status
    /// back, `GS a`), so a ticket needs no status round trip before it
    /// while the printer's own reports say it can print
    /// ([`crate::printer`] says when they are trusted). Only with
    /// `status = true`; a printer that ignores `GS a` is asked with `DLE
    /// EOT` as without it. Default true.
    #[serde(default = "default_automatic_status_back")]
    pub automatic_status_back: bool,
    /// TCP: how long a connection attempt may take, in ms. Default 3000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Serial: ask a USB-serial adapter for its lowest latency when the
    /// port opens (its `latency_timer` to 1 ms; FTDI-like adapters hold
    /// each short answer, such as a status byte, 16 ms). Default true.
    #[serde(default = "default_low_latency")]
    pub low_latency: bool,
    /// Where sysfs is mounted. Default `/sys`; tests point it at a
    /// simulated one.
    #[serde(default = "default_sysfs")]
    pub sysfs: PathBuf,
}

fn default_raster_fonts() -> Vec<PathBuf> {
    ["HanaMinA.ttf", "HanaMinB.ttf"]
        .iter()
        .map(|f| PathBuf::from("/usr/share/fonts/truetype/hanazono").join(f))
        .collect()
}
fn default_baud() -> u32 {
    9600
}
fn default_write_timeout_ms() -> u64 {
    5000
}
fn default_status_timeout_ms() -> u64 {
    1000
}
fn default_status() -> bool {
    true
}
fn default_automatic_status_back() -> bool {
    true
}
fn default_connect_timeout_ms() -> u64 {
    3000
}
fn default_low_latency() -> bool {
    true
}
fn default_sysfs() -> PathBuf {
    PathBuf::from("/sys")
}

impl PrinterConfig {
    /// A serial printer at `path` with every default.
    pub fn new(path: impl Into<PathBuf>) -> PrinterConfig {
        PrinterConfig {
            transport: Transport::Serial,
            path: path.into(),
            address: None,
            baud: default_baud(),
            flow_control: FlowControl::None,
            encoding: TextEncoding::Gbk,
            raster_fonts: default_raster_fonts(),
            write_timeout_ms: default_write_timeout_ms(),
            status_timeout_ms: default_status_timeout_ms(),
            status: default_status(),
            automatic_status_back: default_automatic_status_back(),
            connect_timeout_ms: default_connect_timeout_ms(),
            low_latency: default_low_latency(),
            sysfs: default_sysfs(),
        }
    }

    /// A USB printer-class device at `path` with every default.
    pub fn usb(path: impl Into<PathBuf>) -> PrinterConfig {
        PrinterConfig {
            transport: Transport::Usb,
            ..PrinterConfig::new(path)
        }
    }

    /// A network printer at `address` (`host:port`) with every default.
    pub fn tcp(address: impl Into<String>) -> PrinterConfig {
        PrinterConfig {
            transport: Transport::Tcp,
            address: Some(address.into()),
            ..PrinterConfig::new(PathBuf::new())
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The device as the config names it: its path, or its address.
    pub fn device(&self) -> String {
        match self.transport {
            Transport::Tcp => self.address.clone().unwrap_or_default(),
            Transport::Serial | Transport::Usb => self.path.display().to_string(),
        }
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    /// Is automatic status back used (configured, and the printer answers
    /// status at all)?
    pub fn uses_asb(&self) -> bool {
        self.status && self.automatic_status_back
    }

    pub fn status_timeout(&self) -> Duration {
        Duration::from_millis(self.status_timeout_ms)
    }

    /// Check what serde cannot: the fields the transport needs (and not
    /// the other transport's), a baud rate and timeouts above zero.
    pub fn validate(&self) -> Result<(), EscposError> {
        match self.transport {
            Transport::Serial | Transport::Usb => {
                if self.path.as_os_str().is_empty() {
                    return Err(EscposError::Config(format!(
                        "path is empty (transport = \"{}\" needs one)",
                        self.transport.name()
                    )));
                }
                if self.address.is_some() {
                    return Err(EscposError::Config(format!(
                        "address is for transport = \"tcp\", not \"{}\"",
                        self.transport.name()
                    )));
                }
            }
            Transport::Tcp => {
                if !self.path.as_os_str().is_empty() {
                    return Err(EscposError::Config(
                        "path is not for transport = \"tcp\" (it takes address)".into(),
                    ));
                }
                let Some(address) = &self.address else {
                    return Err(EscposError::Config(
                        "transport = \"tcp\" needs address = \"host:port\"".into(),
                    ));
                };
                let port_ok = address.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !port_ok {
                    return Err(EscposError::Config(format!(
                        "address {address:?} is not host:port"
                    )));
                }
                if self.connect_timeout_ms == 0 {
                    return Err(EscposError::Config(
                        "connect_timeout_ms must be above 0".into(),
                    ));
                }
            }
        }
        if self.baud == 0 {
            return Err(EscposError::Config("baud must be above 0".into()));
        }
        if self.write_timeout_ms == 0 || self.status_timeout_ms == 0 {
            return Err(EscposError::Config(
                "write_timeout_ms and status_timeout_ms must be above 0".into(),
            ));
        }
        Ok(())
    }
}
