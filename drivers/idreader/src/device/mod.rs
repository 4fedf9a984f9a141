//! The device loop: one thread per reader, owning its serial port and/or
//! its PC/SC context, reporting [`ReaderEvent`]s.

use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pcsc::{
    Context, Disposition, PNP_NOTIFICATION, Protocols, ReaderState, Scope, ShareMode, State,
};

use kiosk_device::Backoff;
pub use kiosk_device::DeviceState;

use crate::channel::{CardRead, ReadOptions, find_card, read_card, sam_id, sam_status};
use crate::config::{ReaderConfig, SamConfig};
use crate::error::{PullCause, ReadFailure, ReaderError, pcsc_card_gone};
use crate::serial::SerialSam;
use crate::smartcard::{PcscTunnel, TunnelMode, card_uid, list_readers, match_reader};

/// Reconnection backoff (serial reopen, PC/SC context): from this...
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(3);
/// Re-list readers this often when pcscd cannot notify reader hot-plug.
const PNP_FALLBACK_INTERVAL: Duration = Duration::from_secs(1);

/// What a reader reports. `reader` is the configured [`ReaderConfig::name`].
///
/// Every [`ReaderEvent::CardPresent`] is followed by exactly one
/// [`ReaderEvent::CardRead`] or [`ReaderEvent::ReadFailed`], then by one
/// [`ReaderEvent::CardAbsent`] (also when the reader or pcscd goes away
/// while the card lies on it).
#[derive(Debug, Clone)]
pub enum ReaderEvent {
    /// The device's state changed. `detail` says why (no personal data).
    State {
        reader: String,
        state: DeviceState,
        detail: Option<String>,
    },
    /// The PC/SC reader (or, for a SAM-only reader, the serial SAM) appeared.
    Attached { reader: String },
    /// ... and went away.
    Detached { reader: String },
    /// A card was placed (detected at the `started` of the read that follows).
    CardPresent { reader: String },
    /// The card was taken away.
    CardAbsent { reader: String },
    /// The card placed was read. `started` is when its presence was detected.
    CardRead {
        reader: String,
        read: Box<CardRead>,
        started: Instant,
    },
    /// The card placed could not be read.
    ReadFailed { reader: String, reason: ReadFailure },
    /// The SAM's id, when first learnt or changed, and on request.
    SamId { reader: String, sam_id: String },
}

/// Requests to a running reader ([`ReaderHandle::request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderCommand {
    /// The SAM's id (a serial SAM, or a tunnelled SAM when a card lies on
    /// the reader or the tunnel is `control`; otherwise the id learnt at
    /// the last read).
    SamId,
    /// Check the reader: state, PC/SC reader, SAM status.
    Check,
}

/// The answer to a [`ReaderCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandReply {
    SamId(String),
    Check(ReaderCheck),
}

/// What [`ReaderCommand::Check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderCheck {
    pub state: DeviceState,
    pub detail: Option<String>,
    /// The PC/SC reader in use, if attached.
    pub pcsc_reader: Option<String>,
    pub card_present: bool,
    /// The serial SAM's baud rate, if its port is open.
    pub baud: Option<u32>,
    /// A SAM status request (`11 FF`): `None` when the SAM cannot be reached
    /// now (a pseudo-APDU tunnel with no card on the reader).
    pub sam_status: Option<Result<(), ReadFailure>>,
    /// The SAM id, if known.
    pub sam_id: Option<String>,
}

/// Where a reader's events go (a channel, or a callback, e.g. one that
/// forwards into an async channel), called on the reader's thread.
pub type EventSink = kiosk_device::EventSink<ReaderEvent>;

type Reply = Sender<Result<CommandReply, ReaderError>>;

struct Pending {
    command: ReaderCommand,
    reply: Reply,
}

/// What the device thread and its handle share.
struct Shared {
    inbox: Mutex<Inbox>,
    cond: Condvar,
}

#[derive(Default)]
struct Inbox {
    stop: bool,
    exited: bool,
    commands: VecDeque<Pending>,
    /// The PC/SC context of the device thread, to cancel its wait.
    ctx: Option<Context>,
    /// The device thread is in (or about to enter) `get_status_change`.
    in_wait: bool,
    pushed: u64,
    taken: u64,
}

enum Wake {
    Stop,
    Work,
    Timeout,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wait until `deadline`, a command or stop.
    fn wait(&self, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        let mut inbox = self.lock();
        loop {
            if inbox.stop {
                return Wake::Stop;
            }
            if !inbox.commands.is_empty() {
                return Wake::Work;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wake::Timeout;
            }
            inbox = self
                .cond
                .wait_timeout(inbox, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Until the device thread has reacted: wake it (notify; cancel its
    /// PC/SC wait, again until it has left it, since a cancel sent just
    /// before the wait begins is lost).
    fn nudge_until(&self, mut done: impl FnMut(&Inbox) -> bool) {
        let mut inbox = self.lock();
        self.cond.notify_all();
        while !done(&inbox) && !inbox.exited {
            if inbox.in_wait
                && let Some(ctx) = &inbox.ctx
            {
                let _ = ctx.cancel();
            }
            inbox = self
                .cond
                .wait_timeout(inbox, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            self.cond.notify_all();
        }
    }
}

/// Starts device loops.
#[derive(Debug)]
pub struct ReaderDevice;

impl ReaderDevice {
    /// Validate `config` and start its device loop in a thread of its own.
    /// Events go to `sink` (a `std::sync::mpsc::Sender<ReaderEvent>` or an
    /// [`EventSink::from_fn`] callback), the first being
    /// `State { state: Starting }`.
    pub fn spawn(
        config: ReaderConfig,
        sink: impl Into<EventSink>,
    ) -> Result<ReaderHandle, ReaderError> {
        config.validate()?;
        let name = config.name.clone();
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            cond: Condvar::new(),
        });
        let sink = sink.into();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("reader {name}"))
            .spawn(move || {
                let span = tracing::debug_span!("reader", name = %config.name);
                let _enter = span.enter();
                let name = config.name.clone();
                let last_words = sink.clone();
                let mut device = Device::new(config, sink, Arc::clone(&thread_shared));
                // A bug must not leave kioskd waiting for events that never come.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || device.run()));
                if outcome.is_err() {
                    tracing::error!("reader thread failed");
                    last_words.send(ReaderEvent::State {
                        reader: name,
                        state: DeviceState::HardwareError,
                        detail: Some("the reader's thread failed; restart the reader".into()),
                    });
                }
                let mut inbox = thread_shared.lock();
                inbox.exited = true;
                inbox.ctx = None;
                // Commands that came too late.
                for pending in inbox.commands.drain(..) {
                    let _ = pending.reply.send(Err(ReaderError::Stopped));
                }
                thread_shared.cond.notify_all();
            })?;
        Ok(ReaderHandle {
            name,
            shared,
            thread: Some(thread),
        })
    }
}

/// A running reader. Dropping it stops it, like [`ReaderHandle::stop`].
pub struct ReaderHandle {
    name: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ReaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderHandle")
            .field("name", &self.name)
            .field("running", &self.is_running())
            .finish()
    }
}

impl ReaderHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Queue `command`; the answer comes on the returned channel once the
    /// device thread gets to it (between two exchanges, or at once when it
    /// is waiting for cards). Returns when the device thread has taken the
    /// command, which is at once unless it is busy with a card.
    pub fn request(&self, command: ReaderCommand) -> Receiver<Result<CommandReply, ReaderError>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let seq = {
            let mut inbox = self.shared.lock();
            if inbox.exited || inbox.stop {
                let _ = tx.send(Err(ReaderError::Stopped));
                return rx;
            }
            inbox.commands.push_back(Pending { command, reply: tx });
            inbox.pushed += 1;
            inbox.pushed
        };
        // Wait only while the thread sits in a PC/SC wait that must be
        // cancelled; otherwise it looks at its inbox before waiting again.
        self.shared
            .nudge_until(|inbox| inbox.taken >= seq || !inbox.in_wait);
        rx
    }

    /// [`ReaderCommand::SamId`], waiting up to `timeout`.
    pub fn sam_id(&self, timeout: Duration) -> Result<String, ReaderError> {
        match self.request_blocking(ReaderCommand::SamId, timeout)? {
            CommandReply::SamId(id) => Ok(id),
            CommandReply::Check(_) => Err(ReaderError::Protocol {
                command: "sam id",
                detail: "wrong reply".into(),
            }),
        }
    }

    /// [`ReaderCommand::Check`], waiting up to `timeout`.
    pub fn check(&self, timeout: Duration) -> Result<ReaderCheck, ReaderError> {
        match self.request_blocking(ReaderCommand::Check, timeout)? {
            CommandReply::Check(check) => Ok(check),
            CommandReply::SamId(_) => Err(ReaderError::Protocol {
                command: "check",
                detail: "wrong reply".into(),
            }),
        }
    }

    fn request_blocking(
        &self,
        command: ReaderCommand,
        timeout: Duration,
    ) -> Result<CommandReply, ReaderError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        match self.request(command).recv_timeout(timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(ReaderError::Timeout {
                command: "reader command",
                timeout_ms,
                received: 0,
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(ReaderError::Stopped),
        }
    }

    /// Stop the device loop (cancelling a blocking PC/SC wait) and join its
    /// thread. A read in progress finishes first.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.lock().stop = true;
        self.shared.nudge_until(|inbox| inbox.exited);
        if thread.join().is_err() {
            tracing::error!(reader = %self.name, "reader thread panicked");
        }
    }
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The two parts a reader can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Pcsc,
    Sam,
}

type PartState = (DeviceState, Option<String>);

/// How a PC/SC watch on one context ended.
enum WatchEnd {
    Stop,
    Lost(pcsc::Error),
}

/// The device thread's state.
struct Device {
    name: String,
    config: ReaderConfig,
    options: ReadOptions,
    sink: EventSink,
    shared: Arc<Shared>,

    sam: Option<SerialSam>,
    sam_backoff: Backoff,
    sam_retry_at: Instant,

    pcsc_part: PartState,
    sam_part: PartState,
    reported: Option<PartState>,
    attached: bool,
    /// Presence detected at (a card lies on the reader).
    card: Option<Instant>,
    sam_id: Option<String>,
    pcsc_reader: Option<CString>,
}

impl Device {
    fn new(config: ReaderConfig, sink: EventSink, shared: Arc<Shared>) -> Device {
        let options = ReadOptions::from_config(&config);
        let sam = config.sam.as_ref().map(SerialSam::new);
        Device {
            name: config.name.clone(),
            options,
            sink,
            shared,
            sam,
            sam_backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            sam_retry_at: Instant::now(),
            pcsc_part: (DeviceState::Starting, None),
            sam_part: (DeviceState::Starting, None),
            reported: None,
            attached: false,
            card: None,
            sam_id: None,
            pcsc_reader: None,
            config,
        }
    }

    fn run(&mut self) {
        self.report_state();
        if self.config.pcsc.is_some() {
            self.run_pcsc();
        } else {
            self.run_serial();
        }
        if let Some(sam) = &mut self.sam {
            sam.close();
        }
        tracing::debug!("reader stopped");
    }

    // ---- events ----

    fn emit(&self, event: ReaderEvent) {
        self.sink.send(event);
    }

    fn set_state(&mut self, part: Part, state: DeviceState, detail: Option<String>) {
        match part {
            Part::Pcsc => self.pcsc_part = (state, detail),
            Part::Sam => self.sam_part = (state, detail),
        }
        self.report_state();
    }

    /// Report the worse of the configured parts, if it changed.
    fn report_state(&mut self) {
        let mut parts = Vec::new();
        if self.config.pcsc.is_some() {
            parts.push(&self.pcsc_part);
        }
        if self.config.sam.is_some() {
            parts.push(&self.sam_part);
        }
        let Some(worst) = parts
            .into_iter()
            .max_by_key(|(state, _)| state.severity())
            .cloned()
        else {
            return;
        };
        if self.reported.as_ref() != Some(&worst) {
            tracing::debug!(
                state = worst.0.as_str(),
                detail = worst.1.as_deref(),
                "reader state"
            );
            self.reported = Some(worst.clone());
            self.emit(ReaderEvent::State {
                reader: self.name.clone(),
                state: worst.0,
                detail: worst.1,
            });
        }
    }

    fn attach(&mut self) {
        if !self.attached {
            self.attached = true;
            self.emit(ReaderEvent::Attached {
                reader: self.name.clone(),
            });
        }
    }

    fn detach(&mut self) {
        self.card_absent();
        if self.attached {
            self.attached = false;
            self.emit(ReaderEvent::Detached {
                reader: self.name.clone(),
            });
        }
    }

    fn card_present(&mut self) -> Instant {
        let now = Instant::now();
        self.card = Some(now);
        tracing::debug!("card present");
        self.emit(ReaderEvent::CardPresent {
            reader: self.name.clone(),
        });
        now
    }

    fn card_absent(&mut self) {
        if self.card.take().is_some() {
            tracing::debug!("card absent");
            self.emit(ReaderEvent::CardAbsent {
                reader: self.name.clone(),
            });
        }
    }

    fn learnt_sam_id(&mut self, id: String) {
        if self.sam_id.as_deref() != Some(id.as_str()) {
            self.sam_id = Some(id.clone());
            self.emit(ReaderEvent::SamId {
                reader: self.name.clone(),
                sam_id: id,
            });
        }
    }

    fn report_read(&mut self, started: Instant, result: Result<CardRead, ReaderError>) {
        match result {
            Ok(read) => {
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    ?read,
                    "card read"
                );
                self.emit(ReaderEvent::CardRead {
                    reader: self.name.clone(),
                    read: Box::new(read),
                    started,
                });
            }
            Err(e) => {
                tracing::debug!(code = e.code(), error = %e, "card read failed");
                self.emit(ReaderEvent::ReadFailed {
                    reader: self.name.clone(),
                    reason: ReadFailure::from(&e),
                });
                if e.is_unplugged() || matches!(e, ReaderError::NoSamAnswer { .. }) {
                    self.sam_down(&e);
                }
            }
        }
    }

    // ---- the serial SAM ----

    fn sam_config(&self) -> Option<&SamConfig> {
        self.config.sam.as_ref()
    }

    /// Whether the serial SAM reads cards alone (no PC/SC presence).
    fn sam_only(&self) -> bool {
        self.config.pcsc.is_none()
    }

    /// Is the serial SAM usable? Reopens it when it is closed and its
    /// backoff has passed.
    fn sam_ready(&mut self) -> bool {
        let Some(sam) = &mut self.sam else {
            return false;
        };
        if sam.is_open() && self.sam_part.0 == DeviceState::Online {
            return true;
        }
        if Instant::now() < self.sam_retry_at {
            return false;
        }
        match sam.reopen() {
            Ok(baud) => {
                tracing::debug!(baud, path = %sam.path().display(), "SAM online");
                self.sam_backoff.reset();
                let timeout = self.options.timeout;
                let id = sam_id(sam, timeout);
                if self.sam_only() {
                    self.attach();
                }
                self.set_state(Part::Sam, DeviceState::Online, None);
                match id {
                    Ok(id) => self.learnt_sam_id(id),
                    Err(e) => tracing::debug!(error = %e, "SAM id not read"),
                }
                true
            }
            Err(e) => {
                self.sam_down(&e);
                false
            }
        }
    }

    /// The serial SAM failed: close it, say so, retry after the backoff.
    fn sam_down(&mut self, e: &ReaderError) {
        let state = match e {
            ReaderError::Unplugged { .. } => DeviceState::NoDevice,
            ReaderError::Sam(kiosk_idcard::SamError::SelfTestFailed) => DeviceState::HardwareError,
            _ => DeviceState::Offline,
        };
        if let Some(sam) = &mut self.sam {
            sam.close();
        }
        let delay = self.sam_backoff.next_delay();
        self.sam_retry_at = Instant::now() + delay;
        tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "SAM unavailable");
        if self.sam_only() && e.is_unplugged() {
            self.detach();
        }
        self.set_state(Part::Sam, state, Some(e.to_string()));
    }

    fn until_sam_retry(&self) -> Duration {
        self.sam_retry_at.saturating_duration_since(Instant::now())
    }

    /// The loop of a serial-SAM-only reader: presence by polling find-card
    /// every `poll_interval_ms` (the one polling loop of this crate; a SAM
    /// cannot tell when a card arrives).
    fn run_serial(&mut self) {
        let poll = self
            .sam_config()
            .map(SamConfig::poll_interval)
            .unwrap_or(Duration::from_millis(250));
        loop {
            if self.handle_inbox(None) {
                return;
            }
            let wait = if self.sam_ready() {
                self.poll_card();
                poll
            } else {
                self.until_sam_retry()
            };
            if matches!(self.shared.wait(wait), Wake::Stop) {
                return;
            }
        }
    }

    fn poll_card(&mut self) {
        let options = self.options.clone();
        let Some(sam) = &mut self.sam else { return };
        match find_card(sam, &options) {
            Ok(true) if self.card.is_none() => {
                let started = self.card_present();
                let Some(sam) = &mut self.sam else { return };
                let result = read_card(sam, &options);
                self.report_read(started, result);
            }
            Ok(true) => {}
            Ok(false) => self.card_absent(),
            Err(e @ (ReaderError::Unplugged { .. } | ReaderError::Timeout { .. })) => {
                if e.is_unplugged() {
                    self.card_absent();
                }
                self.sam_down(&e);
            }
            Err(e) => tracing::debug!(error = %e, "find card failed"),
        }
    }

    // ---- PC/SC ----

    fn run_pcsc(&mut self) {
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            if self.handle_inbox(None) {
                return;
            }
            let ctx = match Context::establish(Scope::User) {
                Ok(ctx) => ctx,
                Err(e) => {
                    self.pcsc_lost(e);
                    let delay = backoff.next_delay();
                    if matches!(self.shared.wait(delay), Wake::Stop) {
                        return;
                    }
                    continue;
                }
            };
            tracing::debug!("PC/SC context established");
            self.shared.lock().ctx = Some(ctx.clone());
            let end = self.watch(&ctx, &mut backoff);
            self.shared.lock().ctx = None;
            drop(ctx);
            match end {
                WatchEnd::Stop => return,
                WatchEnd::Lost(e) => {
                    self.pcsc_lost(e);
                    let delay = backoff.next_delay();
                    tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "PC/SC context lost");
                    if matches!(self.shared.wait(delay), Wake::Stop) {
                        return;
                    }
                }
            }
        }
    }

    fn pcsc_lost(&mut self, e: pcsc::Error) {
        self.pcsc_reader = None;
        self.detach();
        let detail = match e {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => {
                "pcscd is not running".to_string()
            }
            e => format!("PC/SC: {e}"),
        };
        self.set_state(Part::Pcsc, DeviceState::Offline, Some(detail));
    }

    fn reader_wanted(&self) -> &str {
        self.config
            .pcsc
            .as_ref()
            .map(|p| p.reader.as_str())
            .unwrap_or("")
    }

    /// Block on reader and card events of one context until it dies or the
    /// device stops. Waits are cancelled (`SCardCancel`) for commands and
    /// stop.
    fn watch(&mut self, ctx: &Context, backoff: &mut Backoff) -> WatchEnd {
        let mut pnp: Option<ReaderState> =
            Some(ReaderState::new(PNP_NOTIFICATION(), State::UNAWARE));
        let mut reader: Option<ReaderState> = None;
        let mut placement_count = 0u32;
        self.pcsc_reader = None;
        loop {
            if self.handle_inbox(Some(ctx)) {
                return WatchEnd::Stop;
            }
            if reader.is_none() {
                let readers = match list_readers(ctx) {
                    Ok(readers) => readers,
                    Err(ReaderError::Pcsc(e)) => return WatchEnd::Lost(e),
                    Err(_) => return WatchEnd::Lost(pcsc::Error::InternalError),
                };
                match match_reader(readers.iter().map(|r| r.as_c_str()), self.reader_wanted()) {
                    Some(name) => {
                        tracing::debug!(pcsc_reader = %name.to_string_lossy(), "PC/SC reader attached");
                        reader = Some(ReaderState::new(name.clone(), State::UNAWARE));
                        self.pcsc_reader = Some(name);
                        self.attach();
                        self.set_state(Part::Pcsc, DeviceState::Online, None);
                    }
                    None => {
                        let detail =
                            format!("PC/SC reader {:?} is not attached", self.reader_wanted());
                        self.set_state(Part::Pcsc, DeviceState::NoDevice, Some(detail));
                    }
                }
            }
            // A serial SAM that reads for this reader: reopen when due.
            if self.sam.as_ref().is_some_and(|s| !s.is_open()) {
                self.sam_ready();
            }

            let mut timeout: Option<Duration> = None;
            if pnp.is_none() && reader.is_none() {
                timeout = Some(PNP_FALLBACK_INTERVAL);
            }
            if self.sam.as_ref().is_some_and(|s| !s.is_open()) {
                let until = self.until_sam_retry().max(Duration::from_millis(10));
                timeout = Some(timeout.map_or(until, |t| t.min(until)));
            }

            let mut states: Vec<ReaderState> =
                pnp.take().into_iter().chain(reader.take()).collect();
            for state in &mut states {
                state.sync_current_state();
            }
            let has_pnp = states
                .first()
                .is_some_and(|s| s.name() == PNP_NOTIFICATION());
            let result = self.blocking_status_change(ctx, timeout, &mut states);
            let mut states = states.into_iter();
            if has_pnp {
                pnp = states.next();
            }
            reader = states.next();

            match result {
                None => continue, // work in the inbox
                Some(Ok(())) => backoff.reset(),
                Some(Err(pcsc::Error::Timeout | pcsc::Error::Cancelled)) => continue,
                Some(Err(pcsc::Error::UnknownReader)) => {
                    reader = None;
                    self.pcsc_reader = None;
                    self.detach();
                    continue;
                }
                Some(Err(e)) => return WatchEnd::Lost(e),
            }

            if pnp
                .as_ref()
                .is_some_and(|p| p.event_state().intersects(State::UNKNOWN | State::IGNORE))
            {
                tracing::debug!(
                    "pcscd does not notify reader hot-plug: re-listing readers every second"
                );
                pnp = None;
            }
            let Some(state) = reader.as_ref() else {
                continue;
            };
            let event = state.event_state();
            let count = state.event_count();
            if event.intersects(State::UNKNOWN | State::IGNORE) {
                tracing::debug!("PC/SC reader detached");
                reader = None;
                self.pcsc_reader = None;
                self.detach();
                self.set_state(
                    Part::Pcsc,
                    DeviceState::NoDevice,
                    Some(format!(
                        "PC/SC reader {:?} is not attached",
                        self.reader_wanted()
                    )),
                );
                continue;
            }
            if event.contains(State::PRESENT) {
                // Taken away and put back while we were busy: two events.
                if self.card.is_some() && (count.wrapping_sub(placement_count) & 0xFFFF) >= 2 {
                    self.card_absent();
                }
                if self.card.is_none() {
                    placement_count = count;
                    let started = self.card_present();
                    self.read_pcsc_card(ctx, started);
                }
            } else if event.contains(State::EMPTY) {
                self.card_absent();
            }
        }
    }

    /// `get_status_change`, unless a command or stop is waiting (`None`).
    fn blocking_status_change(
        &self,
        ctx: &Context,
        timeout: Option<Duration>,
        states: &mut [ReaderState],
    ) -> Option<Result<(), pcsc::Error>> {
        {
            let mut inbox = self.shared.lock();
            if inbox.stop || !inbox.commands.is_empty() {
                return None;
            }
            inbox.in_wait = true;
        }
        let result = ctx.get_status_change(timeout, states);
        let mut inbox = self.shared.lock();
        inbox.in_wait = false;
        self.shared.cond.notify_all();
        Some(result)
    }

    fn tunnel(&self) -> Option<TunnelMode> {
        self.config.pcsc.as_ref().and_then(TunnelMode::from_config)
    }

    /// Read the card on the PC/SC reader: UID through PC/SC, data through
    /// the tunnel or the serial SAM.
    fn read_pcsc_card(&mut self, ctx: &Context, started: Instant) {
        let Some(reader) = self.pcsc_reader.clone() else {
            return;
        };
        let options = self.options.clone();
        match self.tunnel() {
            Some(mode) => {
                let want_sam_id = self.sam_id.is_none();
                let (result, id) = read_through_tunnel(ctx, &reader, mode, &options, want_sam_id);
                if let Some(id) = id {
                    self.learnt_sam_id(id);
                }
                self.report_read(started, result);
            }
            None => {
                let uid = connect(ctx, &reader).ok().and_then(|card| {
                    let uid = card_uid(&card)
                        .map_err(|e| tracing::debug!(error = %e, "card UID not read"))
                        .ok();
                    let _ = card.disconnect(Disposition::LeaveCard);
                    uid
                });
                let result = if self.sam_ready() {
                    match &mut self.sam {
                        Some(sam) => read_card(sam, &options),
                        None => Err(ReaderError::Unavailable("no SAM configured")),
                    }
                } else {
                    Err(ReaderError::Unavailable("the serial SAM is not available"))
                };
                self.report_read(
                    started,
                    result.map(|mut read| {
                        read.card_uid = uid;
                        read
                    }),
                );
            }
        }
    }

    // ---- commands ----

    /// Run queued commands; `true` when the device must stop.
    fn handle_inbox(&mut self, ctx: Option<&Context>) -> bool {
        loop {
            let pending = {
                let mut inbox = self.shared.lock();
                if inbox.stop {
                    return true;
                }
                let pending = inbox.commands.pop_front();
                if pending.is_some() {
                    inbox.taken += 1;
                    self.shared.cond.notify_all();
                }
                pending
            };
            let Some(pending) = pending else { return false };
            let result = match pending.command {
                ReaderCommand::SamId => self.command_sam_id(ctx).map(CommandReply::SamId),
                ReaderCommand::Check => Ok(CommandReply::Check(self.command_check(ctx))),
            };
            let _ = pending.reply.send(result);
        }
    }

    fn command_sam_id(&mut self, ctx: Option<&Context>) -> Result<String, ReaderError> {
        if self.sam.is_some() {
            if !self.sam_ready() {
                return Err(ReaderError::Unavailable("the serial SAM is not available"));
            }
            let timeout = self.options.timeout;
            let result = match &mut self.sam {
                Some(sam) => sam_id(sam, timeout),
                None => Err(ReaderError::Unavailable("no SAM configured")),
            };
            return match result {
                Ok(id) => {
                    // Answer on request even when unchanged.
                    self.sam_id = Some(id.clone());
                    self.emit(ReaderEvent::SamId {
                        reader: self.name.clone(),
                        sam_id: id.clone(),
                    });
                    Ok(id)
                }
                Err(e) => {
                    if e.is_unplugged() {
                        self.sam_down(&e);
                    }
                    Err(e)
                }
            };
        }
        let (Some(ctx), Some(reader), Some(mode)) = (ctx, self.pcsc_reader.clone(), self.tunnel())
        else {
            return self
                .sam_id
                .clone()
                .ok_or(ReaderError::NoReader(self.reader_wanted().to_string()));
        };
        match tunnelled_sam_id(
            ctx,
            &reader,
            mode,
            self.card.is_some(),
            self.options.timeout,
        ) {
            Ok(id) => {
                self.sam_id = Some(id.clone());
                self.emit(ReaderEvent::SamId {
                    reader: self.name.clone(),
                    sam_id: id.clone(),
                });
                Ok(id)
            }
            Err(e) => self.sam_id.clone().ok_or(e),
        }
    }

    fn command_check(&mut self, ctx: Option<&Context>) -> ReaderCheck {
        let timeout = self.options.timeout;
        let sam_status = if self.sam.is_some() {
            if self.sam_ready() {
                let result = match &mut self.sam {
                    Some(sam) => sam_status(sam, timeout),
                    None => Ok(()),
                };
                if let Err(e) = &result
                    && e.is_unplugged()
                {
                    self.sam_down(e);
                }
                Some(result.map_err(|e| ReadFailure::from(&e)))
            } else {
                Some(Err(ReadFailure {
                    code: "unavailable",
                    message: "the serial SAM is not available".into(),
                }))
            }
        } else if let (Some(ctx), Some(reader), Some(mode)) =
            (ctx, self.pcsc_reader.clone(), self.tunnel())
        {
            tunnelled_status(ctx, &reader, mode, self.card.is_some(), timeout)
                .map(|r| r.map_err(|e| ReadFailure::from(&e)))
        } else {
            None
        };
        let (state, detail) = self
            .reported
            .clone()
            .unwrap_or((DeviceState::Starting, None));
        ReaderCheck {
            state,
            detail,
            pcsc_reader: self
                .pcsc_reader
                .as_ref()
                .map(|r| r.to_string_lossy().into_owned()),
            card_present: self.card.is_some(),
            baud: self
                .sam
                .as_ref()
                .filter(|s| s.is_open())
                .and_then(SerialSam::baud),
            sam_status,
            sam_id: self.sam_id.clone(),
        }
    }
}

fn connect(ctx: &Context, reader: &CString) -> Result<pcsc::Card, ReaderError> {
    ctx.connect(reader, ShareMode::Shared, Protocols::ANY)
        .map_err(|e| {
            if pcsc_card_gone(e) {
                ReaderError::CardPulled {
                    cause: PullCause::Removed(e),
                }
            } else {
                e.into()
            }
        })
}

/// A connection the tunnel can use: to the card, or for `control` without
/// a card, directly to the reader. `None` when the SAM cannot be reached.
fn connect_for_tunnel(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    card_present: bool,
) -> Option<Result<pcsc::Card, ReaderError>> {
    if card_present {
        Some(connect(ctx, reader))
    } else if matches!(mode, TunnelMode::Control(_)) {
        Some(
            ctx.connect(reader, ShareMode::Direct, Protocols::UNDEFINED)
                .map_err(ReaderError::from),
        )
    } else {
        None
    }
}

fn tunnelled_sam_id(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    card_present: bool,
    timeout: Duration,
) -> Result<String, ReaderError> {
    let card = connect_for_tunnel(ctx, reader, mode, card_present).ok_or(
        ReaderError::Unavailable("the tunnelled SAM answers only while a card lies on the reader"),
    )??;
    let result = sam_id(&mut PcscTunnel::new(&card, mode), timeout);
    let _ = card.disconnect(Disposition::LeaveCard);
    result
}

fn tunnelled_status(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    card_present: bool,
    timeout: Duration,
) -> Option<Result<(), ReaderError>> {
    let card = match connect_for_tunnel(ctx, reader, mode, card_present)? {
        Ok(card) => card,
        Err(e) => return Some(Err(e)),
    };
    let result = sam_status(&mut PcscTunnel::new(&card, mode), timeout);
    let _ = card.disconnect(Disposition::LeaveCard);
    Some(result)
}

/// Connect, read the UID, then find → select → read through the tunnel in
/// one PC/SC transaction (plus the SAM id when asked).
fn read_through_tunnel(
    ctx: &Context,
    reader: &CString,
    mode: TunnelMode,
    options: &ReadOptions,
    want_sam_id: bool,
) -> (Result<CardRead, ReaderError>, Option<String>) {
    let mut card = match connect(ctx, reader) {
        Ok(card) => card,
        Err(e) => return (Err(e), None),
    };
    let uid = card_uid(&card)
        .map_err(|e| tracing::debug!(error = %e, "card UID not read"))
        .ok();
    let (result, id) = match card.transaction() {
        Ok(tx) => {
            let mut channel = PcscTunnel::new(&tx, mode);
            let result = read_card(&mut channel, options);
            let id = if want_sam_id && result.is_ok() {
                sam_id(&mut channel, options.timeout)
                    .map_err(|e| tracing::debug!(error = %e, "SAM id not read"))
                    .ok()
            } else {
                None
            };
            (result, id)
        }
        Err(e) if pcsc_card_gone(e) => (
            Err(ReaderError::CardPulled {
                cause: PullCause::Removed(e),
            }),
            None,
        ),
        Err(e) => (Err(e.into()), None),
    };
    let _ = card.disconnect(Disposition::LeaveCard);
    (
        result.map(|mut read| {
            read.card_uid = uid;
            read
        }),
        id,
    )
}
