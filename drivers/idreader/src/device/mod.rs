//! The device loop: one thread per reader, owning its serial port and/or
//! its PC/SC context, reporting [`ReaderEvent`]s.
//!
//! # Shape
//!
//! One job per module, each depending only on those below it:
//!
//! * this module: [`ReaderDevice::spawn`] starts the thread and hands back
//!   the [`ReaderHandle`], which asks the thread for things and stops it
//!   through a [`kiosk_device::Mailbox`];
//! * `pcsc_loop` ([`PcscLoop`]) and `serial_loop` ([`SerialLoop`]): the
//!   thread's loop, one per kind of reader; a reader with a PC/SC part
//!   runs the PC/SC loop (with its serial SAM, if any), a SAM-only reader
//!   the serial loop;
//! * `sam_port` ([`SamPort`]): the reader's own SAM over any
//!   [`SamLink`](crate::SamLink) (a serial port, the vendor's library) and
//!   its reopen backoff, used by both loops; `pcsc_card`: what the PC/SC loop
//!   does with one connection (read through the tunnel, ask the tunnelled
//!   SAM);
//! * `reporter` ([`Reporter`]) and `presence` ([`Presence`]): what the
//!   loops saw becomes the events the reader reports, in a pure state
//!   machine (the worse part's state, attached, card present and absent,
//!   the SAM id, de-duplicated), unit-tested without a device;
//! * `messages`: the events, commands and replies themselves.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

pub use kiosk_device::DeviceState;
use kiosk_device::Stopped;

use crate::channel::ReadOptions;
use crate::config::ReaderConfig;
use crate::error::ReaderError;

mod messages;
mod pcsc_card;
mod pcsc_loop;
mod presence;
mod reporter;
mod sam_port;
mod serial_loop;

pub use messages::{CommandReply, EventSink, ReaderCheck, ReaderCommand, ReaderEvent};

use messages::Inbox;
use pcsc_loop::PcscLoop;
use presence::{Parts, Presence};
use reporter::Reporter;
use sam_port::SamPort;
use serial_loop::SerialLoop;

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
        let inbox = Arc::new(Inbox::new());
        let sink = sink.into();
        let thread_inbox = Arc::clone(&inbox);
        let thread = std::thread::Builder::new()
            .name(format!("reader {name}"))
            .spawn(move || {
                let span = tracing::debug_span!("reader", name = %config.name);
                let _enter = span.enter();
                let name = config.name.clone();
                let last_words = sink.clone();
                let loop_inbox = Arc::clone(&thread_inbox);
                // A bug must not leave kioskd waiting for events that never come.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    run(config, sink, loop_inbox)
                }));
                if outcome.is_err() {
                    tracing::error!("reader thread failed");
                    last_words.send(ReaderEvent::State {
                        reader: name,
                        state: DeviceState::HardwareError,
                        detail: Some("the reader's thread failed; restart the reader".into()),
                    });
                }
                // Commands that came too late.
                thread_inbox.close(|| Err(ReaderError::Stopped));
            })?;
        Ok(ReaderHandle {
            name,
            inbox,
            thread: Some(thread),
        })
    }
}

/// A running reader. Dropping it stops it, like [`ReaderHandle::stop`].
pub struct ReaderHandle {
    name: String,
    inbox: Arc<Inbox>,
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
    /// is waiting for cards). Returns at once, unless the thread sits in a
    /// PC/SC wait: then once it has left it (the wait is cancelled) or
    /// taken the command.
    pub fn request(&self, command: ReaderCommand) -> Receiver<Result<CommandReply, ReaderError>> {
        self.inbox.request(command).unwrap_or_else(|Stopped| {
            let (tx, rx) = std::sync::mpsc::channel();
            let _ = tx.send(Err(ReaderError::Stopped));
            rx
        })
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
        self.inbox.stop();
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

/// The reader's thread: its loop, until stopped.
fn run(config: ReaderConfig, sink: EventSink, inbox: Arc<Inbox>) {
    let options = ReadOptions::from_config(&config);
    let mut report = Reporter::new(Presence::new(&config.name, Parts::of(&config)), sink);
    report.apply(Presence::start);
    let sam = SamPort::for_reader(&config, options.timeout);
    match (&config.pcsc, sam) {
        (Some(pcsc), sam) => PcscLoop::new(pcsc, sam, options, report, inbox).run(),
        (None, Some(sam)) => {
            SerialLoop::new(sam, config.poll_interval(), options, report, inbox).run()
        }
        // `ReaderConfig::validate` refuses a reader with neither.
        (None, None) => {}
    }
    tracing::debug!("reader stopped");
}
