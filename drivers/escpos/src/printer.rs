//! A ticket printer over any [`Link`]: the status exchange, printing and
//! the reading of unplugs, written once for every transport.
//!
//! * **Status exchange.** Each `DLE EOT n` drops the input first (bytes
//!   left from earlier replies are stale), writes the request, and reads
//!   until a byte that [`StatusQuery::accepts`] arrives or the deadline
//!   passes; other bytes are skipped and reported with the timeout. After
//!   a timeout the next exchange first reads the line until it is quiet
//!   (a late reply to the request that timed out would otherwise arrive
//!   after the flush and be taken for the next reply).
//! * **Several queries at once.** Real-time requests are answered in the
//!   order they arrive, so several `DLE EOT n` go out in one write and
//!   their replies are read in that order: one round trip (one latency
//!   timer of a USB-serial adapter) for all of them.
//! * **Printing** ([`Printer::print`]) first checks the printer
//!   ([`Printer::preflight`]): from its automatic status back when that is
//!   trusted (below: no round trip), else by asking the printer status
//!   (`DLE EOT 1`, one round trip); only an offline printer is asked why
//!   (offline cause, error cause, paper: one more round trip), and nothing
//!   is sent to a printer that cannot print. Then it sends the document
//!   and asks the printer and paper statuses together (one round trip).
//!   Those replies come after the document has been received (the printer
//!   handles its input in order), so their deadline adds the document's
//!   wire time.
//! * **Automatic status back** (`automatic_status_back = true`, the
//!   default with `status = true`; [`crate::asb`]): `GS a` is sent when
//!   the link opens and again at the end of every document (some printers
//!   turn ASB off at the `ESC @` a document starts with). The printer
//!   then sends a 4-byte status block when it executes `GS a` and
//!   whenever its status changes. Everything the printer sends goes
//!   through one [`InboundDemux`]: blocks update [`Printer::last_status`]
//!   wherever they arrive (read before each request and each print
//!   instead of being dropped, between and amid `DLE EOT` replies), and
//!   replies are matched to their queries as before.
//!
//!   **When ASB stands in for the check before printing** (rule Q4:
//!   nothing is sent to a printer that cannot print). The status is
//!   *fresh*, and used without a round trip, only when all of these hold:
//!   1. since the link was last opened, a block has come after the last
//!      `GS a` sent (at the open, at the end of each document): the
//!      printer honours `GS a`, and has re-enabled ASB after the last
//!      document's `ESC @` and reported the status it had then (a `GS a`
//!      sent to a printer that could not print may be discarded by it;
//!      the next document's is answered);
//!   2. a block has arrived since the last thing that breaks the chain:
//!      opening or closing the link, a link error, a status timeout (the
//!      line is unsettled) or the writing of a document (each document
//!      ends with `GS a`, whose block restores trust);
//!   3. the device node is still there, and every byte already received
//!      has been read (blocks pushed while idle are applied first).
//!
//!   Then the status is what the blocks since said, with the replies to
//!   the previous document's post-print check applied in order: a fault
//!   there refuses the print at once (nothing sent, the fault reported,
//!   the customer told). Otherwise the `DLE EOT` round trip is made as
//!   without ASB: a printer that ignores `GS a` (no block ever comes) is
//!   checked exactly as before, plus three bytes a document. The
//!   post-print check is kept in every case: it is what finds a printer
//!   that died or was unplugged while idle (a dead printer pushes
//!   nothing). Limits, as with the round trip: a change less than one
//!   block's wire time (plus a USB-serial adapter's hold) before the
//!   ticket is not seen before it, and is reported by the post-print
//!   check (`sent: true`: the customer is told and offered a reprint); a
//!   printer power-cycled on a link that stays open (RS-232) forgets `GS
//!   a` until the next document re-sends it, and the post-print check is
//!   then what sees a fault.
//! * **No status** (`status = false`, a printer that never answers, e.g. a
//!   unidirectional USB one): printing just writes, and
//!   [`Printer::status`] gives [`EscposError::NoStatus`]: unknown, not a
//!   fault.
//! * **Writes** go in chunks of at most 256 bytes, each waiting at most
//!   the configured write timeout for the device to take data.
//! * **Unplug.** End-of-file, an error the link calls gone
//!   ([`Link::is_gone`]: `EIO`, a hang-up, a reset connection), or a
//!   timeout while the device node no longer exists, means the device is
//!   gone: the link is closed and [`EscposError::Unplugged`] returned. The
//!   next [`Printer::print`] reopens it (once); the device loop can call
//!   [`Printer::reconnect`], which retries with capped exponential backoff.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::asb::{self, AsbStatus, Inbound, InboundDemux};
use crate::config::{PrinterConfig, Transport};
use crate::document::Document;
use crate::error::EscposError;
use crate::link::Link;
use crate::raster::GlyphRaster;
use crate::serial::SerialLink;
use crate::status::{PrinterStatus, StatusQuery, StatusReply, Warning};
use crate::tcp::TcpLink;
use crate::usb::UsbLpLink;

/// Largest write handed to the kernel at once.
const WRITE_CHUNK: usize = 256;
/// After a status timeout: how long the line must stay quiet, and how
/// long to wait for that at most.
const SETTLE_QUIET: Duration = Duration::from_millis(20);
const SETTLE_MAX: Duration = Duration::from_millis(250);
/// Most reads when taking in what arrived while idle (64 bytes each).
const PENDING_MAX_READS: usize = 64;
/// [`Printer::reconnect`]'s first and longest wait between attempts.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(3);

/// The name the serial-only printer had; every transport is a [`Printer`]
/// now.
pub type SerialPrinter = Printer;

/// A document the printer took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// Bytes sent.
    pub bytes: usize,
    /// The status after printing (printer and paper replies; the offline
    /// and error causes as they were before). [`PrinterStatus::READY`]
    /// when `status_known` is false.
    pub status: PrinterStatus,
    /// e.g. paper near end: printed, but the roll wants changing.
    pub warnings: Vec<Warning>,
    /// False for a printer configured with `status = false`: the bytes
    /// were written, whether they printed is unknown.
    pub status_known: bool,
}

/// A ticket printer on the link its configuration names.
pub struct Printer {
    config: PrinterConfig,
    link: Box<dyn Link>,
    /// A status request timed out: its reply may still come.
    unsettled: bool,
    wire_bytes: u64,
    /// What the printer said last (see [`Printer::last_status`]).
    last_status: Option<PrinterStatus>,
    /// Splits what the printer sends into ASB blocks and replies.
    demux: InboundDemux,
    /// `GS a` sent on this opening of the link since the last block.
    asb_pending: u32,
    /// A block came since the last thing that breaks trust in ASB (see
    /// the module docs).
    asb_trusted: bool,
    /// ASB blocks received in all.
    asb_blocks: u64,
}

impl std::fmt::Debug for Printer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer")
            .field("link", &self.link)
            .field("wire_bytes", &self.wire_bytes)
            .finish()
    }
}

impl Printer {
    /// A closed printer for `config` (checked); [`Printer::reopen`] opens
    /// it.
    pub fn new(config: PrinterConfig) -> Result<Printer, EscposError> {
        config.validate()?;
        let link: Box<dyn Link> = match config.transport {
            Transport::Serial => Box::new(SerialLink::new(&config)),
            Transport::Usb => Box::new(UsbLpLink::new(config.path.clone())),
            Transport::Tcp => Box::new(TcpLink::new(
                config.address.clone().unwrap_or_default(),
                config.connect_timeout(),
            )),
        };
        Ok(Printer::with_link(config, link))
    }

    /// A closed printer on a link of the caller's (`config` says how to
    /// talk to it: encoding, timeouts, status; its transport fields are
    /// not used).
    pub fn with_link(config: PrinterConfig, link: Box<dyn Link>) -> Printer {
        Printer {
            config,
            link,
            unsettled: false,
            wire_bytes: 0,
            last_status: None,
            demux: InboundDemux::new(),
            asb_pending: 0,
            asb_trusted: false,
            asb_blocks: 0,
        }
    }

    /// Open the link and ask the printer's status (all four queries): a
    /// printer must answer. A missing device gives
    /// [`EscposError::Unplugged`].
    pub fn open(config: PrinterConfig) -> Result<Printer, EscposError> {
        let mut printer = Printer::new(config)?;
        printer.reopen()?;
        Ok(printer)
    }

    pub fn config(&self) -> &PrinterConfig {
        &self.config
    }

    /// The device's path or address.
    pub fn device_name(&self) -> String {
        self.link.name()
    }

    pub fn path(&self) -> &std::path::Path {
        &self.config.path
    }

    pub fn is_open(&self) -> bool {
        self.link.is_open()
    }

    /// Does the printer answer status queries (`status = true`)?
    pub fn answers_status(&self) -> bool {
        self.config.status
    }

    /// Bytes written and read so far.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// The status the printer reported last: all four replies from the
    /// last [`Printer::status`] (or open), updated with the replies read
    /// after the last print and with every automatic status back block
    /// received. `None` before the first answer. Kept when the link
    /// closes (it is what was known last).
    pub fn last_status(&self) -> Option<PrinterStatus> {
        self.last_status
    }

    /// Automatic status back blocks received so far.
    pub fn asb_blocks(&self) -> u64 {
        self.asb_blocks
    }

    /// The status automatic status back vouches for now without asking
    /// (see the module docs for when), from what has been read so far.
    /// `None`: ask the printer.
    pub fn fresh_status(&self) -> Option<PrinterStatus> {
        let fresh = self.config.uses_asb()
            && self.link.is_open()
            && !self.unsettled
            && self.asb_trusted
            && self.asb_pending == 0;
        if fresh { self.last_status } else { None }
    }

    /// Close the link (reopened by [`Printer::reopen`] or the next print).
    pub fn close(&mut self) {
        self.link.close();
        self.asb_trusted = false;
    }

    /// (Re)open the link, drop whatever was buffered, and ask the four
    /// statuses. If the printer does not answer the link stays open and
    /// the error is returned; a printer without status gives
    /// [`EscposError::NoStatus`] once open.
    pub fn reopen(&mut self) -> Result<PrinterStatus, EscposError> {
        self.asb_trusted = false;
        self.link.open()?;
        self.unsettled = false;
        self.demux.reset();
        self.asb_pending = 0;
        if self.config.uses_asb() {
            // Answered by a block, read amid the replies that follow.
            let request = asb::enable_request();
            self.write_all(&request)?;
            self.asb_pending += 1;
            tracing::trace!(">>> GS a (automatic status back)");
        }
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
                Err(e @ EscposError::NoStatus) => return Err(e),
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

    /// Ask all four statuses, one after the other (at open and when asked:
    /// a printer that does not answer the first is not sent the others).
    pub fn status(&mut self) -> Result<PrinterStatus, EscposError> {
        let mut status = PrinterStatus::READY;
        for query in StatusQuery::ALL {
            status.apply(self.query(query)?);
        }
        self.last_status = Some(status);
        Ok(status)
    }

    /// Take in what the printer sent while nobody was reading (ASB blocks
    /// pushed while idle), without waiting; replies left from earlier
    /// requests are stale and dropped.
    fn take_pending(&mut self) -> Result<(), EscposError> {
        let mut buf = [0u8; 64];
        for _ in 0..PENDING_MAX_READS {
            match self.link.read_pending(&mut buf) {
                Ok(0) => return Err(self.end_of_file()),
                Ok(n) => {
                    self.wire_bytes += n as u64;
                    for &byte in &buf[..n] {
                        if let Inbound::Reply(b) | Inbound::Other(b) = self.take_byte(byte) {
                            tracing::debug!(byte = format_args!("{b:02X}"), "dropped a stale byte");
                        }
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                    return Ok(());
                }
                Err(e) if kiosk_device::serial_errors::is_transient(&e) => {}
                Err(e) => return Err(self.gone_or_io(e)),
            }
        }
        Ok(())
    }

    /// One received byte through the demultiplexer; a completed ASB block
    /// is applied at once.
    fn take_byte(&mut self, byte: u8) -> Inbound {
        let inbound = self.demux.push(byte);
        if let Inbound::Asb(block) = inbound {
            self.on_asb(block);
        }
        inbound
    }

    fn on_asb(&mut self, block: AsbStatus) {
        let status = block.status();
        if self.last_status != Some(status) {
            tracing::debug!(block = ?block.bytes(), fault = ?status.fault(), "<<< automatic status back");
        } else {
            tracing::trace!(block = ?block.bytes(), "<<< automatic status back");
        }
        self.last_status = Some(status);
        self.asb_blocks += 1;
        // Answers the last `GS a` (one lost to a printer that could not
        // print then must not block trust for good).
        self.asb_pending = 0;
        self.asb_trusted = true;
    }

    /// The check before printing, in as few round trips as the printer
    /// allows: the printer status alone (`DLE EOT 1`) when it is online
    /// (online means no offline cause and no error; the paper's near-end
    /// warning, if any, is read after printing); the three causes too, in
    /// one more round trip, when it is offline. Reopens a closed link, or
    /// one found dead, once. `Ok` also for a printer that cannot print:
    /// see [`PrinterStatus::fault`].
    pub fn preflight(&mut self) -> Result<PrinterStatus, EscposError> {
        if !self.config.status {
            return Err(EscposError::NoStatus);
        }
        if !self.link.is_open() {
            return self.reopen();
        }
        if self.config.uses_asb() {
            // A device node that went away while idle pushes nothing.
            if let Some(detail) = self.link.vanished() {
                tracing::debug!(%detail, "printer link gone before printing; reopening");
                self.close();
                return self.reopen();
            }
            match self.take_pending() {
                Err(EscposError::Unplugged { detail }) => {
                    tracing::debug!(%detail, "printer link dead before printing; reopening");
                    return self.reopen();
                }
                Err(e) => {
                    self.asb_trusted = false;
                    return Err(e);
                }
                Ok(()) => {}
            }
            // Blocks that arrived meanwhile (the one answering the last
            // document's `GS a` included) are in now.
            if let Some(status) = self.fresh_status() {
                tracing::trace!(fault = ?status.fault(), "status from automatic status back; no round trip");
                return Ok(status);
            }
        }
        let reply = match self.query(StatusQuery::Printer) {
            Err(EscposError::Unplugged { detail }) => {
                tracing::debug!(%detail, "printer link dead before printing; reopening");
                return self.reopen();
            }
            other => other?,
        };
        let mut status = PrinterStatus::READY;
        if self
            .last_status
            .is_some_and(|s| s.paper == crate::status::PaperState::NearEnd)
        {
            status.paper = crate::status::PaperState::NearEnd;
        }
        status.apply(reply);
        if !status.online {
            for reply in self.exchange_many(
                &[
                    StatusQuery::OfflineCause,
                    StatusQuery::ErrorCause,
                    StatusQuery::PaperSensor,
                ],
                Duration::ZERO,
            )? {
                status.apply(reply);
            }
        }
        self.last_status = Some(status);
        Ok(status)
    }

    /// Print `document` in the configured encoding, a line with a
    /// character the encoding lacks as an image
    /// ([`Document::render_with`]); see [`Printer::print_bytes`].
    pub fn print(&mut self, document: &Document) -> Result<Printed, EscposError> {
        let encoding = self.config.encoding;
        let raster = document
            .needs_raster(encoding)
            .then(|| raster_fonts(&self.config.raster_fonts));
        self.print_bytes(&document.render_with(encoding, raster.as_deref()))
    }

    /// Send rendered ESC/POS bytes, checking the printer before and after.
    ///
    /// * Closed link: reopened once first. A link found dead before
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
    /// * Without status: the bytes are written, and [`Printed`] says the
    ///   status is unknown.
    pub fn print_bytes(&mut self, bytes: &[u8]) -> Result<Printed, EscposError> {
        if !self.config.status {
            return self.print_blind(bytes);
        }
        let before = self.preflight()?;
        self.print_bytes_checked(bytes, before)
    }

    /// [`Printer::print`] after [`Printer::preflight`] answered `before`
    /// (just now: nothing else was sent since).
    pub fn print_checked(
        &mut self,
        document: &Document,
        before: PrinterStatus,
    ) -> Result<Printed, EscposError> {
        let encoding = self.config.encoding;
        let raster = document
            .needs_raster(encoding)
            .then(|| raster_fonts(&self.config.raster_fonts));
        let bytes = document.render_with(encoding, raster.as_deref());
        if !self.config.status {
            return self.print_blind(&bytes);
        }
        self.print_bytes_checked(&bytes, before)
    }

    fn print_bytes_checked(
        &mut self,
        bytes: &[u8],
        mut before: PrinterStatus,
    ) -> Result<Printed, EscposError> {
        let result = self.print_bytes_checked_inner(bytes, &mut before);
        if result.is_err() {
            self.asb_trusted = false;
        }
        result
    }

    fn print_bytes_checked_inner(
        &mut self,
        bytes: &[u8],
        before: &mut PrinterStatus,
    ) -> Result<Printed, EscposError> {
        let asb = self.config.uses_asb();
        if asb && self.link.is_open() {
            // A block pushed since the check (while the document was being
            // made) is newer than it.
            let seen = self.asb_blocks;
            self.take_pending()?;
            if self.asb_blocks != seen
                && let Some(status) = self.last_status
            {
                *before = status;
            }
        }
        if let Some(fault) = before.fault() {
            tracing::info!(%fault, "printer cannot print; nothing sent");
            return Err(EscposError::from_fault(fault, false));
        }

        let mut sent = bytes.to_vec();
        if asb {
            // After the document's `ESC @`, which turns ASB off on some
            // printers; its block says the status once the document is in.
            sent.extend(asb::enable_request());
        }
        tracing::debug!(bytes = bytes.len(), ">>> document");
        self.asb_trusted = false;
        self.write_all(&sent)?;
        if asb {
            self.asb_pending += 1;
        }

        let mut after = *before;
        for reply in self.exchange_many(
            &[StatusQuery::Printer, StatusQuery::PaperSensor],
            self.link.wire_time(sent.len()),
        )? {
            after.apply(reply);
        }
        if !after.online {
            for reply in self.exchange_many(
                &[StatusQuery::OfflineCause, StatusQuery::ErrorCause],
                Duration::ZERO,
            )? {
                after.apply(reply);
            }
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
            status_known: true,
        })
    }

    /// Printing without status: open if closed, write. A write that finds
    /// the device gone before anything was sent reopens it once (it was
    /// replugged while idle).
    fn print_blind(&mut self, bytes: &[u8]) -> Result<Printed, EscposError> {
        // Without replies, a node that vanished (the printer was pulled)
        // is the only sign before writing into the void.
        if let Some(detail) = self.link.vanished() {
            tracing::debug!(%detail, "printer link gone before printing");
            self.close();
        }
        if !self.link.is_open() {
            self.link.open()?;
        }
        tracing::debug!(bytes = bytes.len(), ">>> document (no status)");
        let before = self.wire_bytes;
        match self.write_all(bytes) {
            Err(EscposError::Unplugged { detail }) if self.wire_bytes == before => {
                tracing::debug!(%detail, "printer link dead before printing; reopening");
                self.link.open()?;
                self.write_all(bytes)?;
            }
            other => other?,
        }
        Ok(Printed {
            bytes: bytes.len(),
            status: PrinterStatus::READY,
            warnings: Vec::new(),
            status_known: false,
        })
    }

    /// One status request and its reply; `queued` is the wire time of what
    /// was written just before and is still ahead of the request.
    fn exchange(
        &mut self,
        query: StatusQuery,
        queued: Duration,
    ) -> Result<StatusReply, EscposError> {
        let mut replies = self.exchange_many(&[query], queued)?;
        replies.pop().ok_or(EscposError::NoStatus)
    }

    /// Status requests written together, their replies read in the same
    /// order (one round trip); `queued` as in [`Printer::exchange`].
    fn exchange_many(
        &mut self,
        queries: &[StatusQuery],
        queued: Duration,
    ) -> Result<Vec<StatusReply>, EscposError> {
        let result = self.exchange_many_inner(queries, queued);
        if result.is_err() {
            // No longer sure what the printer is doing: ask next time.
            self.asb_trusted = false;
        }
        result
    }

    fn exchange_many_inner(
        &mut self,
        queries: &[StatusQuery],
        queued: Duration,
    ) -> Result<Vec<StatusReply>, EscposError> {
        if !self.config.status {
            return Err(EscposError::NoStatus);
        }
        let request: Vec<u8> = queries.iter().flat_map(|q| q.request()).collect();
        let timeout = self.config.status_timeout()
            + queued
            + self.link.wire_time(request.len() + queries.len());
        if !self.link.is_open() {
            return Err(closed());
        }
        if self.unsettled {
            self.settle()?;
        }
        if self.config.uses_asb() {
            // Blocks that came meanwhile are news, not stale replies.
            self.take_pending()?;
        } else {
            if let Err(e) = self.link.discard_input() {
                return Err(self.gone_or_io(e));
            }
            self.demux.reset();
        }
        self.write_all(&request)?;
        tracing::trace!(queries = queries.len(), ">>> status requests");

        let deadline = Instant::now() + timeout;
        let mut replies = Vec::with_capacity(queries.len());
        for &query in queries {
            let mut skipped = Vec::new();
            let mut buf = [0u8; 1];
            loop {
                let now = Instant::now();
                if now >= deadline {
                    if let Some(detail) = self.link.vanished() {
                        self.close();
                        return Err(EscposError::Unplugged { detail });
                    }
                    self.unsettled = true;
                    tracing::debug!(query = query.name(), skipped = ?skipped, "no status reply in time");
                    return Err(EscposError::StatusTimeout {
                        query,
                        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        received: skipped,
                    });
                }
                // One byte at a time: bytes after the replies stay queued
                // (and are dropped before the next request).
                match self.link.read(&mut buf, deadline - now) {
                    Ok(0) => return Err(self.end_of_file()),
                    Ok(_) => {
                        self.wire_bytes += 1;
                        let byte = buf[0];
                        // ASB blocks amid the replies are applied as they
                        // complete; only a `DLE EOT` reply can be one.
                        let parsed = match self.take_byte(byte) {
                            Inbound::Reply(b) => query.parse(b),
                            _ => None,
                        };
                        match parsed {
                            Some(reply) => {
                                tracing::trace!(
                                    query = query.name(),
                                    byte = format_args!("{byte:02X}"),
                                    "<<< status reply"
                                );
                                if !skipped.is_empty() {
                                    tracing::debug!(query = query.name(), skipped = ?skipped, "skipped bytes that are not a reply to it");
                                }
                                replies.push(reply);
                                break;
                            }
                            // Not a reply to it: kept for the timeout's report.
                            None => skipped.push(byte),
                        }
                    }
                    Err(e) if kiosk_device::serial_errors::is_transient(&e) => {}
                    Err(e) => return Err(self.gone_or_io(e)),
                }
            }
        }
        Ok(replies)
    }

    /// Read until the line has been quiet for [`SETTLE_QUIET`] (at most
    /// [`SETTLE_MAX`]), dropping what comes.
    fn settle(&mut self) -> Result<(), EscposError> {
        let until = Instant::now() + SETTLE_MAX;
        let mut buf = [0u8; 64];
        loop {
            let now = Instant::now();
            if now >= until {
                break;
            }
            match self.link.read(&mut buf, SETTLE_QUIET.min(until - now)) {
                Ok(0) => return Err(self.end_of_file()),
                Ok(n) => {
                    // Late replies are dropped; ASB blocks still count.
                    for &byte in &buf[..n] {
                        self.take_byte(byte);
                    }
                    tracing::debug!(bytes = n, "dropped late bytes")
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => break,
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
            if !self.link.is_open() {
                return Err(closed());
            }
            let end = (written + WRITE_CHUNK).min(bytes.len());
            match self.link.write(&bytes[written..end], stall) {
                Ok(0) => {
                    self.close();
                    return Err(EscposError::Unplugged {
                        detail: format!("{} takes no more data", self.link.name()),
                    });
                }
                Ok(n) => {
                    written += n;
                    self.wire_bytes += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    if let Some(detail) = self.link.vanished() {
                        self.close();
                        return Err(EscposError::Unplugged { detail });
                    }
                    return Err(EscposError::WriteTimeout {
                        written,
                        total: bytes.len(),
                        timeout_ms: self.config.write_timeout_ms,
                    });
                }
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(e) => return Err(self.gone_or_io(e)),
            }
        }
        Ok(())
    }

    fn end_of_file(&mut self) -> EscposError {
        self.close();
        EscposError::Unplugged {
            detail: format!("end of file on {}", self.link.name()),
        }
    }

    /// After an I/O error: was that the device going away? Closes the link
    /// if so.
    fn gone_or_io(&mut self, e: std::io::Error) -> EscposError {
        if self.link.is_gone(&e) {
            self.close();
            EscposError::Unplugged {
                detail: e.to_string(),
            }
        } else {
            EscposError::Io(e)
        }
    }
}

/// The bundled font and the configured fallbacks, read for the ticket
/// that needs them and dropped after it: the fallback files are tens of
/// megabytes, most tickets never need them, and kioskd stays small.
fn raster_fonts(paths: &[PathBuf]) -> Arc<GlyphRaster> {
    let mut fonts = Vec::new();
    for path in paths {
        match std::fs::read(path) {
            Ok(bytes) => fonts.push(bytes),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "raster font not read; skipped")
            }
        }
    }
    match GlyphRaster::with_fallbacks(fonts) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::warn!(error = %e, "raster fonts not usable; only the bundled font");
            GlyphRaster::bundled()
        }
    }
}

fn closed() -> EscposError {
    EscposError::Unplugged {
        detail: "the printer link is closed".into(),
    }
}
