//! A printer on a serial port: a tty opened with the configured baud rate
//! and flow control.
//!
//! Writes block only while the port takes no data: `poll` says the port
//! takes data, with the stall as its timeout, then at most one chunk is
//! written (UART and USB-serial drivers report room only while fewer than
//! 256 bytes wait, and their buffers are kilobytes, so a chunk does not
//! block). Nothing calls `tcdrain`, which has no timeout. A USB-serial
//! adapter that is pulled reads end-of-file, `EIO` or a hang-up; a timeout
//! while the configured path no longer exists means the same.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serialport::{ClearBuffer, SerialPort, TTYPort};

use kiosk_device::serial_latency::LatencyTimer;

use crate::config::{FlowControl, PrinterConfig};
use crate::error::EscposError;
use crate::link::{Link, not_connected};

// Kept at their old paths.
pub use crate::printer::{BACKOFF_MAX, BACKOFF_START, Printed, SerialPrinter};

/// A serial port opened by its stable path (`/dev/serial/by-id/...`).
#[derive(Debug)]
pub struct SerialLink {
    path: PathBuf,
    baud: u32,
    flow_control: FlowControl,
    /// Where sysfs is, when a USB-serial adapter is to be asked for low
    /// latency on every open ([`PrinterConfig::low_latency`]).
    low_latency: Option<PathBuf>,
    port: Option<TTYPort>,
}

impl SerialLink {
    /// A closed link for `config`'s serial port; [`Link::open`] opens it.
    pub fn new(config: &PrinterConfig) -> SerialLink {
        SerialLink {
            path: config.path.clone(),
            baud: config.baud,
            flow_control: config.flow_control,
            low_latency: config.low_latency.then(|| config.sysfs.clone()),
            port: None,
        }
    }

    fn port(&mut self) -> io::Result<&mut TTYPort> {
        self.port.as_mut().ok_or_else(not_connected)
    }
}

impl Link for SerialLink {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn open(&mut self) -> Result<(), EscposError> {
        self.close();
        let port = serialport::new(self.path.to_string_lossy(), self.baud)
            .flow_control(self.flow_control.into())
            .open_native()
            .map_err(|e| {
                if kiosk_device::serial_errors::open_means_unplugged(e.kind()) {
                    EscposError::Unplugged {
                        detail: format!("cannot open {}: {e}", self.path.display()),
                    }
                } else {
                    EscposError::Serial(e)
                }
            })?;
        let _ = port.clear(ClearBuffer::All);
        tracing::debug!(path = %self.path.display(), baud = self.baud, "printer port opened");
        // Every status answer is short: an adapter would hold each one for
        // its latency timer (16 ms on FTDI-like adapters).
        if let Some(sysfs) = &self.low_latency {
            match kiosk_device::serial_latency::request_low_latency(&self.path, sysfs) {
                LatencyTimer::Lowered { from_ms } => {
                    tracing::info!(path = %self.path.display(), from_ms, "adapter latency timer lowered to 1 ms");
                }
                LatencyTimer::AlreadyLow => {}
                LatencyTimer::NotAdjustable(why) => {
                    tracing::debug!(path = %self.path.display(), why, "adapter latency left as it is");
                }
            }
        }
        self.port = Some(port);
        Ok(())
    }

    fn close(&mut self) {
        if self.port.take().is_some() {
            tracing::debug!(path = %self.path.display(), "printer port closed");
        }
    }

    fn is_open(&self) -> bool {
        self.port.is_some()
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.port()?
            .clear(ClearBuffer::Input)
            .map_err(io::Error::from)
    }

    fn write(&mut self, bytes: &[u8], stall: Duration) -> io::Result<usize> {
        let port = self.port()?;
        port.set_timeout(stall)?;
        port.write(bytes)
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let port = self.port()?;
        port.set_timeout(timeout)?;
        port.read(buf)
    }

    fn is_gone(&self, e: &io::Error) -> bool {
        kiosk_device::serial_errors::is_gone(e.kind())
    }

    fn vanished(&self) -> Option<String> {
        (!self.path.exists()).then(|| format!("{} disappeared", self.path.display()))
    }

    /// 10 bits a byte, plus 10 % for gaps.
    fn wire_time(&self, bytes: usize) -> Duration {
        let rate = u64::from(self.baud.max(1));
        Duration::from_micros(bytes as u64 * 11 * 1_000_000 / rate)
    }
}
