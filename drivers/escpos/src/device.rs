//! The device loop: one thread per ticket printer, owning its
//! [`Printer`], reporting [`PrinterEvent`]s, answering
//! [`PrinterHandle`] requests.
//!
//! # When the printer is asked for its status
//!
//! * when the port is opened (at start, and each reopen by path; `GS a`
//!   is sent first when automatic status back is configured);
//! * before and after every print ([`Printer::print`]); before it only
//!   when the printer's automatic status back is not trusted (see
//!   [`crate::printer`]: then its latest block, read from the input when
//!   the print starts, decides);
//! * when asked ([`PrinterHandle::status`]: the technician's check, or
//!   `kioskctl status` wanting a fresh reading);
//! * **while the printer cannot print, and only then**: when it is absent
//!   (path missing, unplugged) the port is reopened by its configured path
//!   after 100 ms, then twice as long each time up to 3 s (a failed open
//!   costs one system call); when it is there but faulted (paper out,
//!   cover open, offline, cutter error) or does not answer, its status is
//!   asked after 1 s, then twice as long each time up to 10 s, so a refill
//!   or a closed cover is noticed without a print. The wait is on a
//!   condition variable, so commands and stop are served at once.
//!
//! Between prints a healthy printer is **not polled**: the thread sleeps
//! until a command comes, and uses no CPU. The price: an unplug (or paper
//! running out by hand) while idle is noticed at the next print or status
//! request, not before. With automatic status back the printer's blocks
//! wait in the port's input meanwhile and are read at that next request
//! (the ticket is then refused from them, without a round trip). The next print reopens a port found dead by its
//! path first, so a printer replugged while idle just prints.
//!
//! # Events
//!
//! Reported when they change, first `State { Starting }`:
//!
//! * [`PrinterEvent::State`]: `Online` (prints, perhaps with a warning),
//!   `Offline` (there but cannot print: cover open, paper out, offline, or
//!   no answer), `HardwareError` (needs a technician: cutter jam,
//!   unrecoverable error), `NoDevice` (absent).
//! * [`PrinterEvent::Status`]: the four status replies and their warnings
//!   ([`Warning::PaperNearEnd`]: tickets still print, the technician is
//!   warned).
//! * [`PrinterEvent::Fault`]: a new reason the printer cannot print (rule
//!   Q4: the technician sees it). Its end shows as `State { Online }`.
//!
//! After `NoDevice` what was known of the status is forgotten: the first
//! status after the printer comes back is reported again, and so is a
//! fault that is still there.
//!
//! # Requests
//!
//! [`PrinterHandle::print`], [`PrinterHandle::status`] and
//! [`PrinterHandle::test_page`] queue a request to the thread and wait
//! for its answer at most `timeout`. A request still queued at its
//! deadline is dropped unrun (a ticket the customer was told did not print
//! never comes out later); one already running finishes, and its caller
//! gets [`EscposError::DeviceTimeout`]: it may have printed, so offer a
//! reprint (rule Q4). Requests travel through a [`kiosk_device::Mailbox`],
//! the same as the ID readers'.

use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use kiosk_device::DeviceState;
use kiosk_device::{Backoff, Mailbox, Wake};

use crate::command::{Align, CharSize, Cut};
use crate::config::{PrinterConfig, Transport};
use crate::document::{Document, QrOptions};
use crate::error::EscposError;
use crate::printer::{Printed, Printer};
use crate::status::{PrinterFault, PrinterStatus, Warning};

/// Reopening an absent printer: first wait...
pub const REOPEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...doubling up to this.
pub const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(3);
/// Asking a faulted or silent printer for its status: first wait...
pub const FAULT_CHECK_MIN: Duration = Duration::from_secs(1);
/// ...doubling up to this.
pub const FAULT_CHECK_MAX: Duration = Duration::from_secs(10);

/// The detail of an online printer configured with `status = false`.
pub const STATUS_UNKNOWN: &str = "status unknown: the printer gives no status (status = false)";

/// The state of a printer that reports `fault`.
pub fn state_of_fault(fault: PrinterFault) -> DeviceState {
    match fault {
        PrinterFault::CutterError | PrinterFault::UnrecoverableError => DeviceState::HardwareError,
        PrinterFault::CoverOpen
        | PrinterFault::PaperOut
        | PrinterFault::AutoRecoverableError
        | PrinterFault::Offline => DeviceState::Offline,
    }
}

/// What a printer reports. `printer` is the name it was spawned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterEvent {
    /// The printer's state changed. `detail` says why (the fault, the
    /// error); `None` when online.
    State {
        printer: String,
        state: DeviceState,
        detail: Option<String>,
    },
    /// The printer's status changed (or was read for the first time since
    /// it appeared). `warnings` are [`PrinterStatus::warnings`].
    Status {
        printer: String,
        status: PrinterStatus,
        warnings: Vec<Warning>,
    },
    /// The printer cannot print, for this new reason.
    Fault {
        printer: String,
        fault: PrinterFault,
    },
}

impl PrinterEvent {
    /// The printer's name.
    pub fn printer(&self) -> &str {
        match self {
            PrinterEvent::State { printer, .. }
            | PrinterEvent::Status { printer, .. }
            | PrinterEvent::Fault { printer, .. } => printer,
        }
    }
}

/// Where the printer's events go (a channel, or a callback), called on
/// the printer's thread.
pub type EventSink = kiosk_device::EventSink<PrinterEvent>;

/// What was last reported, without asking the printer
/// ([`PrinterHandle::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterSnapshot {
    pub state: DeviceState,
    pub detail: Option<String>,
    /// The last status read (`None` before the first, and while absent).
    pub status: Option<PrinterStatus>,
    /// Why it cannot print, when that is known.
    pub fault: Option<PrinterFault>,
    pub warnings: Vec<Warning>,
}

impl Default for PrinterSnapshot {
    fn default() -> Self {
        PrinterSnapshot {
            state: DeviceState::Starting,
            detail: None,
            status: None,
            fault: None,
            warnings: Vec::new(),
        }
    }
}

enum Command {
    Print(Box<Document>),
    /// Check the printer now; print the document that comes through the
    /// gate (see [`PrinterHandle::reserve`]).
    GatedPrint(std::sync::mpsc::Receiver<Document>),
    Status,
    TestPage,
}

enum Answer {
    Printed(Printed),
    Status(PrinterStatus),
}

/// A command with the deadline its caller waits for.
struct Job {
    command: Command,
    /// Not started after this: the caller has given up.
    deadline: Instant,
    timeout_ms: u64,
}

/// What the device thread and its handle share.
struct Shared {
    mailbox: Mailbox<Job, Result<Answer, EscposError>>,
    /// What was last reported, for [`PrinterHandle::snapshot`].
    snapshot: Mutex<PrinterSnapshot>,
}

impl Shared {
    fn snapshot(&self) -> MutexGuard<'_, PrinterSnapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks the thread as exited and fails what is still queued, also when
/// the thread panics.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.mailbox.close(|| Err(EscposError::DeviceStopped));
    }
}

/// Starts printer device loops.
#[derive(Debug)]
pub struct PrinterDevice;

impl PrinterDevice {
    /// Check `config` and start the device loop of printer `name` in a
    /// thread of its own. Events go to `sink` (a
    /// `std::sync::mpsc::Sender<PrinterEvent>` or an
    /// [`EventSink::from_fn`] callback), the first being
    /// `State { Starting }`; the thread then opens the port and reports
    /// what it found.
    pub fn spawn(
        name: String,
        config: PrinterConfig,
        sink: impl Into<EventSink>,
    ) -> Result<PrinterHandle, EscposError> {
        let printer = Printer::new(config)?;
        let shared = Arc::new(Shared {
            mailbox: Mailbox::new(),
            snapshot: Mutex::new(PrinterSnapshot::default()),
        });
        let mut device = Device {
            name: name.clone(),
            printer,
            sink: sink.into(),
            shared: shared.clone(),
            reported: None,
            status: None,
            fault: None,
            reopen_backoff: Backoff::new(REOPEN_BACKOFF_MIN, REOPEN_BACKOFF_MAX),
            check_backoff: Backoff::new(FAULT_CHECK_MIN, FAULT_CHECK_MAX),
            retry_at: None,
        };
        let guard = ExitGuard(shared.clone());
        let span_name = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("printer-{name}"))
            .spawn(move || {
                let _guard = guard;
                let span = tracing::info_span!("printer", printer = %span_name);
                let _enter = span.enter();
                device.run();
            })?;
        Ok(PrinterHandle {
            name,
            shared,
            thread: Some(thread),
        })
    }
}

/// Asks a running printer for things, and stops it (also on drop).
///
/// `Send + Sync`: share it (`Arc`) and call it from any thread; requests
/// are served one at a time, in order.
#[derive(Debug)]
pub struct PrinterHandle {
    name: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("mailbox", &self.mailbox)
            .field("state", &self.snapshot().state)
            .finish()
    }
}

impl PrinterHandle {
    /// The name the printer was spawned with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Print `document`, checking the printer before and after
    /// ([`Printer::print`]); wait at most `timeout` for the outcome.
    ///
    /// Errors: the printer's faults (`PaperOut`, `CoverOpen`, `Offline`,
    /// `Fault`, each saying whether the document had been sent),
    /// `Unplugged`, `WriteTimeout`, `StatusTimeout`, and
    /// [`EscposError::DeviceTimeout`] / [`EscposError::DeviceStopped`].
    /// Any error means: tell the customer, keep the number, offer a
    /// reprint (rule Q4).
    pub fn print(&self, document: Document, timeout: Duration) -> Result<Printed, EscposError> {
        match self.request(Command::Print(Box::new(document)), timeout)? {
            Answer::Printed(printed) => Ok(printed),
            Answer::Status(_) => Err(EscposError::DeviceStopped),
        }
    }

    /// Take the printer's next turn for a document not ready yet, and
    /// check the printer's status now ([`Printer::preflight`]: its
    /// trusted automatic status back, else one round trip) while the
    /// caller gets the document ready
    /// (a queue ticket's number is committed meanwhile): the check costs
    /// the ticket no time of its own. Requests are served in order, so the
    /// order of `reserve` calls is the order of printing. Send the
    /// document with [`PrintGate::print`]; dropping the gate prints
    /// nothing. `timeout` covers the whole: the check, the wait for the
    /// document and the print.
    pub fn reserve(&self, timeout: Duration) -> Result<PrintGate, EscposError> {
        let (document, gate) = std::sync::mpsc::sync_channel(1);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let deadline = Instant::now() + timeout;
        let answer = self
            .shared
            .mailbox
            .request(Job {
                command: Command::GatedPrint(gate),
                deadline,
                timeout_ms,
            })
            .map_err(|_| EscposError::DeviceStopped)?;
        Ok(PrintGate {
            document,
            answer,
            deadline,
            timeout_ms,
        })
    }

    /// Ask the printer for its four statuses now (reopening it by its path
    /// when it is closed). A printer that answers gives `Ok` even when it
    /// cannot print: see [`PrinterStatus::fault`]. Events report what
    /// changed.
    pub fn status(&self, timeout: Duration) -> Result<PrinterStatus, EscposError> {
        match self.request(Command::Status, timeout)? {
            Answer::Status(status) => Ok(status),
            Answer::Printed(printed) => Ok(printed.status),
        }
    }

    /// Print a short test page (the technician's self-test): the printer's
    /// name, its settings and a QR code. No personal data.
    pub fn test_page(&self, timeout: Duration) -> Result<Printed, EscposError> {
        match self.request(Command::TestPage, timeout)? {
            Answer::Printed(printed) => Ok(printed),
            Answer::Status(_) => Err(EscposError::DeviceStopped),
        }
    }

    /// What was last reported (state, status, fault, warnings), without
    /// asking the printer.
    pub fn snapshot(&self) -> PrinterSnapshot {
        self.shared.snapshot().clone()
    }

    /// Stop the device loop and wait for its thread. A request being
    /// served finishes first; queued ones fail with
    /// [`EscposError::DeviceStopped`].
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn request(&self, command: Command, timeout: Duration) -> Result<Answer, EscposError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let job = Job {
            command,
            deadline: Instant::now() + timeout,
            timeout_ms,
        };
        let rx = self
            .shared
            .mailbox
            .request(job)
            .map_err(|_| EscposError::DeviceStopped)?;
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(EscposError::DeviceTimeout { timeout_ms }),
            Err(RecvTimeoutError::Disconnected) => Err(EscposError::DeviceStopped),
        }
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.mailbox.stop();
        if thread.join().is_err() {
            tracing::error!(printer = %self.name, "printer thread panicked");
        }
    }
}

impl Drop for PrinterHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A turn at the printer taken by [`PrinterHandle::reserve`]: its status
/// check runs (or ran) already; the document follows.
#[derive(Debug)]
pub struct PrintGate {
    document: std::sync::mpsc::SyncSender<Document>,
    answer: std::sync::mpsc::Receiver<Result<Answer, EscposError>>,
    deadline: Instant,
    timeout_ms: u64,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Printed(p) => f.debug_tuple("Printed").field(p).finish(),
            Answer::Status(s) => f.debug_tuple("Status").field(s).finish(),
        }
    }
}

impl PrintGate {
    /// Print `document` in the turn taken (blocking until the outcome, at
    /// most until the reservation's deadline). A printer found unable to
    /// print by the check gives its fault (`sent: false`) and the document
    /// is not sent; otherwise as [`PrinterHandle::print`].
    pub fn print(self, document: Document) -> Result<Printed, EscposError> {
        // The device may have answered already (a fault): then nobody
        // takes the document, and its answer says why.
        let _ = self.document.send(document);
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.answer.recv_timeout(left) {
            Ok(Ok(Answer::Printed(printed))) => Ok(printed),
            Ok(Ok(Answer::Status(_))) => Err(EscposError::DeviceStopped),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Err(EscposError::DeviceTimeout {
                timeout_ms: self.timeout_ms,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(EscposError::DeviceStopped),
        }
    }
}

/// The device thread's state.
struct Device {
    name: String,
    printer: Printer,
    sink: EventSink,
    shared: Arc<Shared>,
    /// The state and detail last reported.
    reported: Option<(DeviceState, Option<String>)>,
    /// The status last reported (`None`: unknown).
    status: Option<PrinterStatus>,
    /// The fault last reported, while it lasts.
    fault: Option<PrinterFault>,
    reopen_backoff: Backoff,
    check_backoff: Backoff,
    /// When to look at the printer again by itself; `None` while it is
    /// online (no polling).
    retry_at: Option<Instant>,
}

impl Device {
    fn run(&mut self) {
        self.set_state(DeviceState::Starting, None);
        let _ = self.check();
        loop {
            match self.shared.mailbox.wait_until(self.retry_at) {
                Wake::Stop => break,
                Wake::Command => self.handle_inbox(),
                // Nothing nudges a printer.
                Wake::Nudged => {}
                Wake::Timeout => {
                    self.retry_at = None;
                    let _ = self.check();
                }
            }
        }
        self.printer.close();
        tracing::debug!("printer stopped");
    }

    // ---- requests ----

    fn handle_inbox(&mut self) {
        let shared = self.shared.clone();
        // A stop is seen again by the wait.
        shared.mailbox.answer_queued(|job| {
            if Instant::now() >= job.deadline {
                tracing::debug!("request dropped unrun: its caller gave up");
                return Err(EscposError::DeviceTimeout {
                    timeout_ms: job.timeout_ms,
                });
            }
            match job.command {
                Command::Print(document) => self.print(&document).map(Answer::Printed),
                Command::GatedPrint(gate) => {
                    self.gated_print(&gate, job.deadline).map(Answer::Printed)
                }
                Command::TestPage => match self.test_page() {
                    Ok(document) => self.print(&document).map(Answer::Printed),
                    Err(e) => Err(e),
                },
                Command::Status => self.check().map(Answer::Status),
            }
        });
    }

    fn print(&mut self, document: &Document) -> Result<Printed, EscposError> {
        let result = self.printer.print(document);
        self.after_print(&result);
        result
    }

    /// Check the printer, wait for the document (until `deadline`), print
    /// it unless the check found a fault.
    fn gated_print(
        &mut self,
        gate: &std::sync::mpsc::Receiver<Document>,
        deadline: Instant,
    ) -> Result<Printed, EscposError> {
        let before = if self.printer.answers_status() {
            match self.printer.preflight() {
                Ok(status) => {
                    if let Some(fault) = status.fault() {
                        tracing::info!(%fault, "printer cannot print; nothing sent");
                        let result = Err(EscposError::from_fault(fault, false));
                        self.after_print(&result);
                        return result;
                    }
                    Some(status)
                }
                Err(e) => {
                    let result = Err(e);
                    self.after_print(&result);
                    return result;
                }
            }
        } else {
            None
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let document = match gate.recv_timeout(left) {
            Ok(document) => document,
            Err(e) => {
                // The caller gave up (its commit failed, or it is gone):
                // nothing to print, and the printer was not touched.
                tracing::debug!(error = %e, "reserved print cancelled");
                return Err(EscposError::DeviceTimeout {
                    timeout_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
                });
            }
        };
        let result = match before {
            Some(status) => self.printer.print_checked(&document, status),
            None => self.printer.print(&document),
        };
        self.after_print(&result);
        result
    }

    /// Report what a print found.
    fn after_print(&mut self, result: &Result<Printed, EscposError>) {
        match result {
            Ok(printed) if printed.status_known => self.on_status(printed.status),
            Ok(_) => self.on_status_unknown(),
            Err(e) => match e.printer_fault() {
                Some(fault) => {
                    // The status read before (or after) the document,
                    // when it tells the same fault; else the fault alone.
                    match self.printer.last_status() {
                        Some(status) if status.fault() == Some(fault) => self.on_status(status),
                        _ => self.on_fault(fault),
                    }
                }
                None => self.on_error(e),
            },
        }
    }

    fn test_page(&self) -> Result<Document, EscposError> {
        let config = self.printer.config();
        Document::builder()
            .align(Align::Center)
            .bold(true)
            .size(CharSize::DOUBLE)
            .line("打印测试 Test page")
            .size(CharSize::NORMAL)
            .bold(false)
            .line(&format!("printer {}", self.name))
            .line(&match config.transport {
                Transport::Serial => format!(
                    "{} baud, flow control {:?}, {:?}",
                    config.baud, config.flow_control, config.encoding
                ),
                transport => format!(
                    "{} {}, {:?}",
                    transport.name(),
                    config.device(),
                    config.encoding
                ),
            })
            .line("中文 ABC abc 0123456789")
            .qr("kiosk-escpos test page", QrOptions::default())
            .feed(2)
            .cut(Cut::FeedPartial(0))
            .build()
    }

    // ---- looking at the printer ----

    /// Open the port if closed, else ask the four statuses (reopening once
    /// when the port turns out dead); report what was found.
    fn check(&mut self) -> Result<PrinterStatus, EscposError> {
        // Without status, opening again is the only sign of life there is.
        let result = if self.printer.is_open() && self.printer.answers_status() {
            match self.printer.status() {
                Err(e) if e.is_unplugged() => {
                    tracing::debug!(error = %e, "printer port dead; reopening");
                    self.printer.reopen()
                }
                other => other,
            }
        } else {
            self.printer.reopen()
        };
        match &result {
            Ok(status) => self.on_status(*status),
            Err(EscposError::NoStatus) => self.on_status_unknown(),
            Err(e) => self.on_error(e),
        }
        result
    }

    /// The printer is there (open, or it took a document) but gives no
    /// status: online as far as anyone can tell, and the detail says so.
    fn on_status_unknown(&mut self) {
        self.status = None;
        self.fault = None;
        self.reopen_backoff.reset();
        self.check_backoff.reset();
        self.retry_at = None;
        self.set_state(DeviceState::Online, Some(STATUS_UNKNOWN.into()));
    }

    /// The printer answered with `status`.
    fn on_status(&mut self, status: PrinterStatus) {
        if self.status != Some(status) {
            self.status = Some(status);
            let warnings = status.warnings();
            if !warnings.is_empty() {
                tracing::warn!(?warnings, "printer warning");
            }
            self.emit(PrinterEvent::Status {
                printer: self.name.clone(),
                status,
                warnings,
            });
        }
        match status.fault() {
            Some(fault) => self.on_fault(fault),
            None => {
                self.fault = None;
                self.reopen_backoff.reset();
                self.check_backoff.reset();
                self.retry_at = None;
                self.set_state(DeviceState::Online, None);
            }
        }
    }

    /// The printer cannot print because of `fault`.
    fn on_fault(&mut self, fault: PrinterFault) {
        if self.fault != Some(fault) {
            self.fault = Some(fault);
            self.check_backoff.reset();
            tracing::warn!(%fault, "printer fault");
            self.emit(PrinterEvent::Fault {
                printer: self.name.clone(),
                fault,
            });
        }
        self.reopen_backoff.reset();
        self.set_state(state_of_fault(fault), Some(fault.to_string()));
        self.schedule_check();
    }

    /// The printer did not answer, or is gone.
    fn on_error(&mut self, e: &EscposError) {
        if e.is_unplugged() {
            // What was known of it is unknown now.
            self.status = None;
            self.fault = None;
            self.check_backoff.reset();
            self.set_state(DeviceState::NoDevice, Some(e.to_string()));
            let delay = self.reopen_backoff.next_delay();
            tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "printer absent");
            self.retry_at = Some(Instant::now() + delay);
        } else {
            self.reopen_backoff.reset();
            self.set_state(DeviceState::Offline, Some(e.to_string()));
            self.schedule_check();
        }
    }

    fn schedule_check(&mut self) {
        let delay = self.check_backoff.next_delay();
        tracing::debug!(
            retry_in_ms = delay.as_millis() as u64,
            "printer cannot print; checking again later"
        );
        self.retry_at = Some(Instant::now() + delay);
    }

    // ---- events ----

    fn set_state(&mut self, state: DeviceState, detail: Option<String>) {
        let now = (state, detail);
        if self.reported.as_ref() != Some(&now) {
            tracing::info!(
                state = now.0.as_str(),
                detail = now.1.as_deref(),
                "printer state"
            );
            self.reported = Some(now.clone());
            self.emit(PrinterEvent::State {
                printer: self.name.clone(),
                state: now.0,
                detail: now.1,
            });
        }
    }

    fn emit(&self, event: PrinterEvent) {
        {
            let mut snapshot = self.shared.snapshot();
            match &event {
                PrinterEvent::State { state, detail, .. } => {
                    snapshot.state = *state;
                    snapshot.detail = detail.clone();
                }
                PrinterEvent::Status {
                    status, warnings, ..
                } => {
                    snapshot.status = Some(*status);
                    snapshot.warnings = warnings.clone();
                }
                PrinterEvent::Fault { fault, .. } => snapshot.fault = Some(*fault),
            }
            snapshot.fault = self.fault;
            if self.status.is_none() {
                snapshot.status = None;
                snapshot.warnings.clear();
            }
        }
        self.sink.send(event);
    }
}
