//! A ticket printer on a serial port.
//!
//! * **Status exchange.** Each `DLE EOT n` flushes the input first (bytes
//!   left from earlier replies are stale), writes the request, and reads
//!   until a byte that [`StatusQuery::accepts`] arrives or the deadline
//!   passes; other bytes are skipped and reported with the timeout. After
//!   a timeout the next exchange first reads the line until it is quiet
//!   (a late reply to the request that timed out would otherwise arrive
//!   after the flush and be taken for the next reply).
//! * **Printing** ([`SerialPrinter::print`]) asks all four statuses and
//!   refuses to send anything to a printer that cannot print; sends the
//!   document; then asks the printer and paper statuses again. The replies
//!   come after the document has been received (the printer handles its
//!   input in order), so their deadline adds the document's wire time.
//! * **Writes** go in chunks of at most 256 bytes, each after `poll` says
//!   the port takes data, with the configured write timeout as the
//!   longest stall. (A tty write blocks until it is done once started;
//!   UART and USB-serial drivers report room only while fewer than 256
//!   bytes wait, and their buffers are kilobytes, so a chunk does not
//!   block.) Nothing calls `tcdrain`, which has no timeout.
//! * **Unplug.** `read` giving end-of-file, `EIO`, a hang-up, or a timeout
//!   while the configured path no longer exists, means the device is gone:
//!   the port is closed and [`EscposError::Unplugged`] returned. The next
//!   [`SerialPrinter::print`] reopens it by its path (once); the device
//!   loop can call [`SerialPrinter::reconnect`], which retries with capped
//!   exponential backoff.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, SerialPort, TTYPort};

use crate::config::PrinterConfig;
use crate::document::Document;
use crate::error::EscposError;
use crate::status::{PrinterStatus, StatusQuery, StatusReply, Warning};

/// Largest write handed to the kernel at once.
const WRITE_CHUNK: usize = 256;
/// After a status timeout: how long the line must stay quiet, and how
/// long to wait for that at most.
const SETTLE_QUIET: Duration = Duration::from_millis(20);
const SETTLE_MAX: Duration = Duration::from_millis(250);
/// [`SerialPrinter::reconnect`]'s first and longest wait between attempts.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(3);

/// A document the printer took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// Bytes sent.
    pub bytes: usize,
    /// The status after printing (printer and paper replies; the offline
    /// and error causes as they were before).
    pub status: PrinterStatus,
    /// e.g. paper near end: printed, but the roll wants changing.
    pub warnings: Vec<Warning>,
}

/// A ticket printer on a serial port.
pub struct SerialPrinter {
    config: PrinterConfig,
    port: Option<TTYPort>,
    /// A status request timed out: its reply may still come.
    unsettled: bool,
    wire_bytes: u64,
    /// What the printer said last (see [`SerialPrinter::last_status`]).
    last_status: Option<PrinterStatus>,
}

impl std::fmt::Debug for SerialPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialPrinter")
            .field("path", &self.config.path)
            .field("baud", &self.config.baud)
            .field("open", &self.port.is_some())
            .field("wire_bytes", &self.wire_bytes)
            .finish()
    }
}

impl SerialPrinter {
    /// A closed printer port for `config` (checked);
    /// [`SerialPrinter::reopen`] opens it.
    pub fn new(config: PrinterConfig) -> Result<SerialPrinter, EscposError> {
        config.validate()?;
        Ok(SerialPrinter {
            config,
            port: None,
            unsettled: false,
            wire_bytes: 0,
            last_status: None,
        })
    }

    /// Open the port and ask the printer's status (all four queries): a
    /// printer must answer. A missing path gives
    /// [`EscposError::Unplugged`].
    pub fn open(config: PrinterConfig) -> Result<SerialPrinter, EscposError> {
        let mut printer = SerialPrinter::new(config)?;
        printer.reopen()?;
        Ok(printer)
    }

    pub fn config(&self) -> &PrinterConfig {
        &self.config
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    pub fn is_open(&self) -> bool {
        self.port.is_some()
    }

    /// Bytes written and read so far.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// The status the printer reported last: all four replies from the
    /// last [`SerialPrinter::status`] (or open), updated with the replies
    /// read after the last print. `None` before the first answer. Kept
    /// when the port closes (it is what was known last).
    pub fn last_status(&self) -> Option<PrinterStatus> {
        self.last_status
    }

    /// Close the port (reopened by [`SerialPrinter::reopen`] or the next
    /// print).
    pub fn close(&mut self) {
        if self.port.take().is_some() {
            tracing::debug!(path = %self.config.path.display(), "printer port closed");
        }
    }

    /// (Re)open the port by its configured path, drop whatever was
    /// buffered, and ask the four statuses. If the printer does not answer
    /// the port stays open and the error is returned.
    pub fn reopen(&mut self) -> Result<PrinterStatus, EscposError> {
        self.close();
        let port = serialport::new(self.config.path.to_string_lossy(), self.config.baud)
            .flow_control(self.config.flow_control.into())
            .timeout(self.config.status_timeout())
            .open_native()
            .map_err(|e| open_error(&self.config.path, e))?;
        let _ = port.clear(ClearBuffer::All);
        self.port = Some(port);
        self.unsettled = false;
        tracing::debug!(path = %self.config.path.display(), baud = self.config.baud, "printer port opened");
        self.status()
    }

    /// Reopen until it works or `give_up_after` passes, waiting 100 ms,
    /// then twice as long each time, at most 3 s, between attempts.
    pub fn reconnect(&mut self, give_up_after: Duration) -> Result<PrinterStatus, EscposError> {
        let deadline = Instant::now() + give_up_after;
        let mut delay = BACKOFF_START;
        loop {
            match self.reopen() {
                Ok(status) => return Ok(status),
                Err(e) => {
                    let now = Instant::now();
                    if now + delay >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "printer not back yet");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Ask one status.
    pub fn query(&mut self, query: StatusQuery) -> Result<StatusReply, EscposError> {
        self.exchange(query, Duration::ZERO)
    }

    /// Ask all four statuses.
    pub fn status(&mut self) -> Result<PrinterStatus, EscposError> {
        let mut status = PrinterStatus::READY;
        for query in StatusQuery::ALL {
            status.apply(self.query(query)?);
        }
        self.last_status = Some(status);
        Ok(status)
    }

    /// Print `document` in the configured encoding; see
    /// [`SerialPrinter::print_bytes`].
    pub fn print(&mut self, document: &Document) -> Result<Printed, EscposError> {
        self.print_bytes(&document.render(self.config.encoding))
    }

    /// Send rendered ESC/POS bytes, checking the printer before and after.
    ///
    /// * Closed port: reopened once first. A port found dead before
    ///   anything was sent is reopened once too (the printer was replugged
    ///   while idle).
    /// * Before: all four statuses; a fault gives its error with
    ///   `sent: false` and nothing is sent.
    /// * After: printer and paper status (plus the causes when offline); a
    ///   fault gives its error with `sent: true`; paper near its end gives
    ///   [`Warning::PaperNearEnd`].
    /// * Any other error once the document was being written
    ///   (`Unplugged`, `WriteTimeout`, `StatusTimeout`) leaves it unknown
    ///   how much printed: treat the ticket as not printed and offer a
    ///   reprint (rule Q4).
    pub fn print_bytes(&mut self, bytes: &[u8]) -> Result<Printed, EscposError> {
        let before = if self.port.is_none() {
            self.reopen()?
        } else {
            match self.status() {
                Err(EscposError::Unplugged { detail }) => {
                    tracing::debug!(%detail, "printer port dead before printing; reopening");
                    self.reopen()?
                }
                other => other?,
            }
        };
        if let Some(fault) = before.fault() {
            tracing::info!(%fault, "printer cannot print; nothing sent");
            return Err(EscposError::from_fault(fault, false));
        }

        tracing::debug!(bytes = bytes.len(), ">>> document");
        self.write_all(bytes)?;

        let mut after = before;
        after.apply(self.exchange(StatusQuery::Printer, self.wire_time(bytes.len()))?);
        after.apply(self.query(StatusQuery::PaperSensor)?);
        if !after.online {
            after.apply(self.query(StatusQuery::OfflineCause)?);
            after.apply(self.query(StatusQuery::ErrorCause)?);
        }
        self.last_status = Some(after);
        if let Some(fault) = after.fault() {
            tracing::info!(%fault, "printer fault after the document was sent");
            return Err(EscposError::from_fault(fault, true));
        }
        let warnings = after.warnings();
        if !warnings.is_empty() {
            tracing::info!(?warnings, "printed with warnings");
        }
        Ok(Printed {
            bytes: bytes.len(),
            status: after,
            warnings,
        })
    }

    /// The wire time of `bytes` at the configured rate (10 bits a byte,
    /// plus 10 % for gaps).
    fn wire_time(&self, bytes: usize) -> Duration {
        let rate = u64::from(self.config.baud.max(1));
        Duration::from_micros(bytes as u64 * 11 * 1_000_000 / rate)
    }

    /// One status request and its reply; `queued` is the wire time of what
    /// was written just before and is still ahead of the request.
    fn exchange(
        &mut self,
        query: StatusQuery,
        queued: Duration,
    ) -> Result<StatusReply, EscposError> {
        let request = query.request();
        let timeout = self.config.status_timeout() + queued + self.wire_time(request.len() + 1);
        if self.unsettled {
            self.settle()?;
        }
        let port = self.port.as_mut().ok_or_else(closed)?;
        if let Err(e) = port.clear(ClearBuffer::Input) {
            return Err(self.gone_or_io(e.into()));
        }
        self.write_all(&request)?;
        tracing::trace!(query = query.name(), ">>> status request");

        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let now = Instant::now();
            if now >= deadline {
                if !self.config.path.exists() {
                    self.close();
                    return Err(EscposError::Unplugged {
                        detail: format!("{} disappeared", self.config.path.display()),
                    });
                }
                self.unsettled = true;
                tracing::debug!(query = query.name(), skipped = ?skipped, "no status reply in time");
                return Err(EscposError::StatusTimeout {
                    query,
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    received: skipped,
                });
            }
            let port = self.port.as_mut().ok_or_else(closed)?;
            if let Err(e) = port.set_timeout(deadline - now) {
                return Err(self.gone_or_io(e.into()));
            }
            // One byte at a time: bytes after the reply stay queued (and
            // are flushed before the next request).
            match port.read(&mut buf[..1]) {
                Ok(0) => {
                    self.close();
                    return Err(EscposError::Unplugged {
                        detail: "end of file on the serial port".into(),
                    });
                }
                Ok(_) => {
                    self.wire_bytes += 1;
                    let byte = buf[0];
                    match query.parse(byte) {
                        Ok(reply) => {
                            tracing::trace!(
                                query = query.name(),
                                byte = format_args!("{byte:02X}"),
                                "<<< status reply"
                            );
                            if !skipped.is_empty() {
                                tracing::debug!(query = query.name(), skipped = ?skipped, "skipped bytes that are not a reply to it");
                            }
                            return Ok(reply);
                        }
                        Err(_) => skipped.push(byte),
                    }
                }
                Err(e) if kiosk_device::serial_errors::is_transient(&e) => {}
                Err(e) => return Err(self.gone_or_io(e)),
            }
        }
    }

    /// Read until the line has been quiet for [`SETTLE_QUIET`] (at most
    /// [`SETTLE_MAX`]), dropping what comes.
    fn settle(&mut self) -> Result<(), EscposError> {
        let until = Instant::now() + SETTLE_MAX;
        let mut buf = [0u8; 64];
        loop {
            let port = self.port.as_mut().ok_or_else(closed)?;
            let now = Instant::now();
            if now >= until {
                break;
            }
            if let Err(e) = port.set_timeout(SETTLE_QUIET.min(until - now)) {
                return Err(self.gone_or_io(e.into()));
            }
            match port.read(&mut buf) {
                Ok(0) => {
                    self.close();
                    return Err(EscposError::Unplugged {
                        detail: "end of file on the serial port".into(),
                    });
                }
                Ok(n) => tracing::debug!(bytes = n, "dropped late bytes"),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) if kiosk_device::serial_errors::is_transient(&e) => {}
                Err(e) => return Err(self.gone_or_io(e)),
            }
        }
        self.unsettled = false;
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), EscposError> {
        let stall = self.config.write_timeout();
        let mut written = 0;
        while written < bytes.len() {
            let port = self.port.as_mut().ok_or_else(closed)?;
            if let Err(e) = port.set_timeout(stall) {
                return Err(self.gone_or_io(e.into()));
            }
            let end = (written + WRITE_CHUNK).min(bytes.len());
            match port.write(&bytes[written..end]) {
                Ok(0) => {
                    self.close();
                    return Err(EscposError::Unplugged {
                        detail: "the serial port takes no more data".into(),
                    });
                }
                Ok(n) => {
                    written += n;
                    self.wire_bytes += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if !self.config.path.exists() {
                        self.close();
                        return Err(EscposError::Unplugged {
                            detail: format!("{} disappeared", self.config.path.display()),
                        });
                    }
                    return Err(EscposError::WriteTimeout {
                        written,
                        total: bytes.len(),
                        timeout_ms: self.config.write_timeout_ms,
                    });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(self.gone_or_io(e)),
            }
        }
        Ok(())
    }

    /// After an I/O error: was that the device going away? Closes the port
    /// if so.
    fn gone_or_io(&mut self, e: std::io::Error) -> EscposError {
        if kiosk_device::serial_errors::is_gone(e.kind()) {
            self.close();
            EscposError::Unplugged {
                detail: e.to_string(),
            }
        } else {
            EscposError::Io(e)
        }
    }
}

fn closed() -> EscposError {
    EscposError::Unplugged {
        detail: "port is closed".into(),
    }
}

fn open_error(path: &Path, e: serialport::Error) -> EscposError {
    if kiosk_device::serial_errors::open_means_unplugged(e.kind()) {
        EscposError::Unplugged {
            detail: format!("cannot open {}: {e}", path.display()),
        }
    } else {
        EscposError::Serial(e)
    }
}
