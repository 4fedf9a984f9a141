//! A GA 467 SAM module on a serial port.
//!
//! * Every exchange flushes the input first, writes the request frame, and
//!   feeds what comes back into a [`FrameDecoder`] (garbage before a frame
//!   is skipped) until a frame that fits the request arrives
//!   ([`crate::channel::plausible_answer`]) or the deadline passes. The
//!   deadline is the configured answer timeout plus the time the longest
//!   answer to that command needs on the wire at the current baud rate.
//! * `read` giving end-of-file, an I/O error or a hang-up means the device
//!   is gone: the port is closed and [`ReaderError::Unplugged`] returned. A
//!   timeout while the configured path no longer exists means the same.
//!   [`SerialSam::reopen`] opens the port again by its configured path; the
//!   device loop calls it with capped exponential backoff.
//! * With `baud = "auto"`, opening tries the rate found last, then
//!   115200, 57600, 38400, 19200, 9600 with a SAM-status request (`11 FF`)
//!   until a valid frame answers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiosk_device::serial_latency::LatencyTimer;
use kiosk_idcard::frame::Decoded;
use kiosk_idcard::{Command, FrameDecoder, FrameError, Request, Response};
use serialport::{ClearBuffer, SerialPort, TTYPort};

use crate::channel::{SamChannel, SamLink, max_answer_len, plausible_answer, request};
use crate::config::{AUTO_BAUD_RATES, Baud, SamConfig};
use crate::error::ReaderError;
use crate::trace::{self, command_name};

/// How long one baud rate is given to answer the status request during
/// auto-detection (plus wire time), at most.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// A SAM on a serial port; a [`SamChannel`].
pub struct SerialSam {
    path: PathBuf,
    setting: Baud,
    /// The rate in use, or found last (tried first on reopen).
    baud: Option<u32>,
    response_timeout: Duration,
    /// Ask the adapter for low latency at each open, with sysfs here.
    low_latency: Option<PathBuf>,
    port: Option<TTYPort>,
    decoder: FrameDecoder,
    wire_bytes: u64,
}

impl std::fmt::Debug for SerialSam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialSam")
            .field("path", &self.path)
            .field("setting", &self.setting)
            .field("baud", &self.baud)
            .field("open", &self.port.is_some())
            .field("wire_bytes", &self.wire_bytes)
            .finish()
    }
}

impl SerialSam {
    /// A closed SAM port for `config`; [`SerialSam::reopen`] opens it.
    pub fn new(config: &SamConfig) -> SerialSam {
        SerialSam {
            path: config.path.clone(),
            setting: config.baud,
            baud: match config.baud {
                Baud::Fixed(rate) => Some(rate),
                Baud::Auto => None,
            },
            response_timeout: config.response_timeout(),
            low_latency: config.low_latency.then(|| config.sysfs.clone()),
            port: None,
            decoder: FrameDecoder::new(),
            wire_bytes: 0,
        }
    }

    /// Open the port and find the SAM's baud rate (or check the fixed one
    /// with a status request).
    pub fn open(config: &SamConfig) -> Result<SerialSam, ReaderError> {
        let mut sam = SerialSam::new(config);
        sam.reopen()?;
        Ok(sam)
    }

    /// The configured path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The baud rate in use (or found last, while closed).
    pub fn baud(&self) -> Option<u32> {
        self.baud
    }

    pub fn is_open(&self) -> bool {
        self.port.is_some()
    }

    /// Close the port (it is reopened by [`SerialSam::reopen`]).
    pub fn close(&mut self) {
        if self.port.take().is_some() {
            tracing::debug!(path = %self.path.display(), "serial port closed");
        }
        self.decoder.clear();
    }

    /// (Re)open the port by its configured path and make sure a SAM
    /// answers: with `baud = "auto"` by detecting the rate, with a fixed
    /// rate by a status request. Returns the rate in use.
    ///
    /// A missing path gives [`ReaderError::Unplugged`]; a port where no SAM
    /// answers gives [`ReaderError::NoSamAnswer`] (the port stays open).
    pub fn reopen(&mut self) -> Result<u32, ReaderError> {
        self.close();
        let first = self.baud.unwrap_or(AUTO_BAUD_RATES[0]);
        let port = serialport::new(self.path.to_string_lossy(), first)
            .timeout(self.response_timeout)
            .open_native()
            .map_err(|e| open_error(&self.path, e))?;
        // Bytes that arrived before the settings applied are noise.
        let _ = port.clear(ClearBuffer::All);
        self.port = Some(port);
        self.baud = Some(first);
        tracing::debug!(path = %self.path.display(), "serial port opened");
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
        match self.setting {
            Baud::Auto => self.detect_baud(),
            Baud::Fixed(rate) => {
                let timeout = self.response_timeout;
                self.transact(&request(Command::SamStatus), timeout)
                    .map_err(|e| match e {
                        e @ ReaderError::Unplugged { .. } => e,
                        _ => ReaderError::NoSamAnswer {
                            path: self.path.display().to_string(),
                            tried: vec![rate],
                        },
                    })?;
                Ok(rate)
            }
        }
    }

    /// Find the baud rate at which the SAM answers a status request: the
    /// rate found last first, then [`AUTO_BAUD_RATES`]. Any valid frame
    /// counts as an answer (even a failure status).
    pub fn detect_baud(&mut self) -> Result<u32, ReaderError> {
        let mut candidates: Vec<u32> = self.baud.into_iter().collect();
        candidates.extend(
            AUTO_BAUD_RATES
                .iter()
                .copied()
                .filter(|r| Some(*r) != self.baud),
        );
        let probe = PROBE_TIMEOUT.min(self.response_timeout);
        for &rate in &candidates {
            self.set_baud(rate)?;
            match self.transact(&request(Command::SamStatus), probe) {
                Ok(response) => {
                    tracing::debug!(
                        rate,
                        sw3 = format_args!("{:02X}", response.sw3),
                        "SAM answers at this baud rate"
                    );
                    return Ok(rate);
                }
                Err(e @ ReaderError::Unplugged { .. }) => return Err(e),
                Err(e) => tracing::trace!(rate, error = %e, "no SAM at this baud rate"),
            }
        }
        Err(ReaderError::NoSamAnswer {
            path: self.path.display().to_string(),
            tried: candidates,
        })
    }

    fn set_baud(&mut self, rate: u32) -> Result<(), ReaderError> {
        let port = self.port.as_mut().ok_or_else(closed)?;
        if let Err(e) = port.set_baud_rate(rate) {
            let e = std::io::Error::from(e);
            return Err(self.gone_or_io(e));
        }
        self.baud = Some(rate);
        Ok(())
    }

    /// The wire time of `bytes` at the current rate (10 bits a byte, plus
    /// 10% for gaps).
    fn wire_time(&self, bytes: usize) -> Duration {
        let rate = u64::from(self.baud.unwrap_or(9600).max(1));
        Duration::from_micros(bytes as u64 * 11 * 1_000_000 / rate)
    }

    /// After an I/O error: was that the device going away? Closes the port
    /// if so.
    fn gone_or_io(&mut self, e: std::io::Error) -> ReaderError {
        if kiosk_device::serial_errors::is_gone(e.kind()) {
            self.close();
            ReaderError::Unplugged {
                detail: e.to_string(),
            }
        } else {
            ReaderError::Io(e)
        }
    }
}

fn closed() -> ReaderError {
    ReaderError::Unplugged {
        detail: "port is closed".into(),
    }
}

fn open_error(path: &Path, e: serialport::Error) -> ReaderError {
    if kiosk_device::serial_errors::open_means_unplugged(e.kind()) {
        ReaderError::Unplugged {
            detail: format!("cannot open {}: {e}", path.display()),
        }
    } else {
        ReaderError::Serial(e)
    }
}

impl SamLink for SerialSam {
    fn reopen(&mut self) -> Result<(), ReaderError> {
        SerialSam::reopen(self).map(|_| ())
    }
    fn close(&mut self) {
        SerialSam::close(self);
    }
    fn is_open(&self) -> bool {
        SerialSam::is_open(self)
    }
    fn baud(&self) -> Option<u32> {
        if self.is_open() { self.baud } else { None }
    }
    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

impl SamChannel for SerialSam {
    fn transact(&mut self, request: &Request, timeout: Duration) -> Result<Response, ReaderError> {
        let command = request.command();
        let frame = request.to_frame();
        let deadline =
            Instant::now() + timeout + self.wire_time(frame.len() + max_answer_len(command));
        trace::request("serial", request);

        let port = self.port.as_mut().ok_or_else(closed)?;
        // Flush what is left of earlier answers.
        if let Err(e) = port.clear(ClearBuffer::Input) {
            return Err(self.gone_or_io(e.into()));
        }
        self.decoder.clear();
        if let Err(e) = port.write_all(&frame).and_then(|()| port.flush()) {
            return Err(self.gone_or_io(e));
        }
        self.wire_bytes += frame.len() as u64;

        let mut received = 0usize;
        let mut buf = [0u8; 1024];
        loop {
            // Take every whole frame out of the decoder.
            loop {
                match self.decoder.next_frame() {
                    Ok(Decoded::Frame(payload)) => match Response::from_payload(&payload) {
                        Ok(response) if plausible_answer(request, &response) => {
                            trace::response("serial", request, &response);
                            return Ok(response);
                        }
                        Ok(response) => tracing::trace!(
                            sw3 = format_args!("{:02X}", response.sw3),
                            data_len = response.data.len(),
                            "<<< skipped an answer that does not fit {}",
                            command_name(command)
                        ),
                        Err(e) => tracing::trace!(error = %e, "<<< skipped a frame"),
                    },
                    Ok(Decoded::Incomplete) => break,
                    Err(FrameError::Length(len)) => {
                        tracing::trace!(len, "<<< skipped a bad frame length")
                    }
                    Err(e) => {
                        tracing::debug!(command = command_name(command), error = %e, "<<< garbled answer");
                        return Err(ReaderError::Frame(e));
                    }
                }
            }

            let now = Instant::now();
            if now >= deadline {
                if !self.path.exists() {
                    self.close();
                    return Err(ReaderError::Unplugged {
                        detail: format!("{} disappeared", self.path.display()),
                    });
                }
                tracing::debug!(
                    command = command_name(command),
                    received,
                    "no complete answer in time"
                );
                return Err(ReaderError::Timeout {
                    command: command_name(command),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    received,
                });
            }
            let port = self.port.as_mut().ok_or_else(closed)?;
            if let Err(e) = port.set_timeout(deadline - now) {
                return Err(self.gone_or_io(e.into()));
            }
            match port.read(&mut buf) {
                Ok(0) => {
                    self.close();
                    return Err(ReaderError::Unplugged {
                        detail: "end of file on the serial port".into(),
                    });
                }
                Ok(n) => {
                    received += n;
                    self.wire_bytes += n as u64;
                    self.decoder.push(&buf[..n]);
                }
                Err(e) if kiosk_device::serial_errors::is_transient(&e) => {}
                Err(e) => return Err(self.gone_or_io(e)),
            }
        }
    }

    fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }
}
