//! Printer configuration.
//!
//! ```toml
//! [printer]
//! path = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
//! baud = 115200                 # default 9600
//! flow_control = "hardware"     # none (default) | software | hardware
//! encoding = "gb18030"          # default; gbk | big5 | cp437 | ascii
//! write_timeout_ms = 5000       # default
//! status_timeout_ms = 1000      # default
//! ```
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

/// One ticket printer on a serial port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// A stable path (`/dev/serial/by-id/...`): the port is reopened by it
    /// after an unplug.
    pub path: PathBuf,
    /// Default 9600.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Default none.
    #[serde(default)]
    pub flow_control: FlowControl,
    /// What the printer model prints. Default GB18030.
    #[serde(default)]
    pub encoding: TextEncoding,
    /// How long the printer may take no data (flow control, full buffer)
    /// before a print fails with [`EscposError::WriteTimeout`], in ms.
    /// Default 5000.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// How long to wait for a status reply, in ms, on top of the wire time
    /// of what is still queued ahead of the request. Default 1000.
    #[serde(default = "default_status_timeout_ms")]
    pub status_timeout_ms: u64,
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

impl PrinterConfig {
    /// A config for `path` with every default.
    pub fn new(path: impl Into<PathBuf>) -> PrinterConfig {
        PrinterConfig {
            path: path.into(),
            baud: default_baud(),
            flow_control: FlowControl::None,
            encoding: TextEncoding::Gb18030,
            write_timeout_ms: default_write_timeout_ms(),
            status_timeout_ms: default_status_timeout_ms(),
        }
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn status_timeout(&self) -> Duration {
        Duration::from_millis(self.status_timeout_ms)
    }

    /// Check what serde cannot: a baud rate and timeouts above zero.
    pub fn validate(&self) -> Result<(), EscposError> {
        if self.path.as_os_str().is_empty() {
            return Err(EscposError::Config("path is empty".into()));
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
