//! The loop of a PC/SC reader.

use std::ffi::CString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiosk_device::{Backoff, DeviceState, Wake};
use pcsc::{Context, Disposition, PNP_NOTIFICATION, ReaderState, Scope, State};

use super::messages::{CommandReply, Inbox, ReaderCheck, ReaderCommand};
use super::pcsc_card::{connect, read_through_tunnel, tunnelled_sam_id, tunnelled_status};
use super::presence::{Part, Presence};
use super::reporter::Reporter;
use super::sam_port::SamPort;
use crate::channel::{CardRead, ReadOptions};
use crate::config::PcscConfig;
use crate::error::{ReadFailure, ReaderError};
use crate::smartcard::{TunnelMode, card_uid, list_readers, match_reader};

/// Establishing a PC/SC context again after pcscd went away: first wait...
const CONTEXT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const CONTEXT_BACKOFF_MAX: Duration = Duration::from_secs(3);
/// Re-list readers this often when pcscd cannot notify reader hot-plug.
const PNP_FALLBACK_INTERVAL: Duration = Duration::from_secs(1);

/// How a PC/SC watch on one context ended.
enum WatchEnd {
    Stop,
    Lost(pcsc::Error),
}

/// A PC/SC reader: presence from pcscd, the card's data through the
/// reader's tunnel, or through a serial SAM (`tunnel = "none"` plus
/// `[sam]`).
///
/// It never polls: it blocks in `SCardGetStatusChange` on reader hot-plug
/// (`\\?PnP?\Notification`, or re-listing every second where pcscd cannot
/// notify it) and on the configured reader's card events, inside its
/// mailbox's [`kiosk_device::Mailbox::blocking`], so that commands and
/// stop cancel the wait (`SCardCancel`). A context that dies (pcscd
/// stopped or restarted) is dropped, the reader detached, and a new one
/// established after a capped backoff.
#[derive(Debug)]
pub(crate) struct PcscLoop {
    /// The configured reader name (matched by [`match_reader`]).
    reader_wanted: String,
    tunnel: Option<TunnelMode>,
    options: ReadOptions,
    inbox: Arc<Inbox>,
    report: Reporter,
    /// The serial SAM that reads for this reader, if any.
    sam: Option<SamPort>,
    /// The PC/SC reader in use, while attached.
    pcsc_reader: Option<CString>,
    context_backoff: Backoff,
}

impl PcscLoop {
    pub fn new(
        pcsc: &PcscConfig,
        sam: Option<SamPort>,
        options: ReadOptions,
        report: Reporter,
        inbox: Arc<Inbox>,
    ) -> PcscLoop {
        PcscLoop {
            reader_wanted: pcsc.reader.clone(),
            tunnel: TunnelMode::from_config(pcsc),
            sam,
            options,
            inbox,
            report,
            pcsc_reader: None,
            context_backoff: Backoff::new(CONTEXT_BACKOFF_MIN, CONTEXT_BACKOFF_MAX),
        }
    }

    /// Until stopped.
    pub fn run(mut self) {
        self.serve();
        if let Some(sam) = &mut self.sam {
            sam.close();
        }
    }

    /// One context after the other, until stopped.
    fn serve(&mut self) {
        loop {
            if self.handle_inbox(None) {
                return;
            }
            let ctx = match Context::establish(Scope::User) {
                Ok(ctx) => ctx,
                Err(e) => {
                    self.pcsc_lost(e);
                    let delay = self.context_backoff.next_delay();
                    if self.inbox.wait_for(delay) == Wake::Stop {
                        return;
                    }
                    continue;
                }
            };
            tracing::debug!("PC/SC context established");
            let end = self.watch(&ctx);
            drop(ctx);
            match end {
                WatchEnd::Stop => return,
                WatchEnd::Lost(e) => {
                    self.pcsc_lost(e);
                    let delay = self.context_backoff.next_delay();
                    tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "PC/SC context lost");
                    if self.inbox.wait_for(delay) == Wake::Stop {
                        return;
                    }
                }
            }
        }
    }

    fn pcsc_lost(&mut self, e: pcsc::Error) {
        self.pcsc_reader = None;
        self.report.apply(Presence::detach);
        let detail = match e {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => {
                "pcscd is not running".to_string()
            }
            e => format!("PC/SC: {e}"),
        };
        self.report
            .apply(|p| p.set_state(Part::Pcsc, DeviceState::Offline, Some(detail)));
    }

    fn not_attached(&self) -> Option<String> {
        Some(format!(
            "PC/SC reader {:?} is not attached",
            self.reader_wanted
        ))
    }

    /// Block on reader and card events of one context until it dies or the
    /// device stops. Waits are cancelled (`SCardCancel`) for commands and
    /// stop.
    fn watch(&mut self, ctx: &Context) -> WatchEnd {
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
                match match_reader(readers.iter().map(|r| r.as_c_str()), &self.reader_wanted) {
                    Some(name) => {
                        tracing::debug!(pcsc_reader = %name.to_string_lossy(), "PC/SC reader attached");
                        reader = Some(ReaderState::new(name.clone(), State::UNAWARE));
                        self.pcsc_reader = Some(name);
                        self.report.apply(Presence::attach);
                        self.report
                            .apply(|p| p.set_state(Part::Pcsc, DeviceState::Online, None));
                    }
                    None => {
                        let detail = self.not_attached();
                        self.report
                            .apply(|p| p.set_state(Part::Pcsc, DeviceState::NoDevice, detail));
                    }
                }
            }
            // A serial SAM that reads for this reader: reopen when due.
            if let Some(sam) = &mut self.sam
                && !sam.is_open()
            {
                sam.ready(&mut self.report);
            }

            let mut timeout: Option<Duration> = None;
            if pnp.is_none() && reader.is_none() {
                timeout = Some(PNP_FALLBACK_INTERVAL);
            }
            if let Some(sam) = &self.sam
                && !sam.is_open()
            {
                let until = sam.until_retry().max(Duration::from_millis(10));
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
                Some(Ok(())) => self.context_backoff.reset(),
                Some(Err(pcsc::Error::Timeout | pcsc::Error::Cancelled)) => continue,
                Some(Err(pcsc::Error::UnknownReader)) => {
                    reader = None;
                    self.pcsc_reader = None;
                    self.report.apply(Presence::detach);
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
                self.report.apply(Presence::detach);
                let detail = self.not_attached();
                self.report
                    .apply(|p| p.set_state(Part::Pcsc, DeviceState::NoDevice, detail));
                continue;
            }
            if event.contains(State::PRESENT) {
                // Taken away and put back while we were busy: two events.
                if self.report.presence().has_card()
                    && (count.wrapping_sub(placement_count) & 0xFFFF) >= 2
                {
                    self.report.apply(Presence::card_absent);
                }
                if !self.report.presence().has_card() {
                    placement_count = count;
                    let started = Instant::now();
                    self.report.apply(|p| p.card_present(started));
                    self.read_card(ctx, started);
                }
            } else if event.contains(State::EMPTY) {
                self.report.apply(Presence::card_absent);
            }
        }
    }

    /// `get_status_change`, unless a command or stop is waiting (`None`);
    /// commands and stop cancel it.
    fn blocking_status_change(
        &self,
        ctx: &Context,
        timeout: Option<Duration>,
        states: &mut [ReaderState],
    ) -> Option<Result<(), pcsc::Error>> {
        let canceller = ctx.clone();
        self.inbox.blocking(
            move || {
                let _ = canceller.cancel();
            },
            || ctx.get_status_change(timeout, states),
        )
    }

    /// Read the card on the PC/SC reader: UID through PC/SC, data through
    /// the tunnel or the serial SAM.
    fn read_card(&mut self, ctx: &Context, started: Instant) {
        let Some(reader) = self.pcsc_reader.clone() else {
            return;
        };
        let options = self.options.clone();
        match self.tunnel {
            Some(mode) => {
                let want_sam_id = self.report.presence().sam_id().is_none();
                let (result, id) = read_through_tunnel(ctx, &reader, mode, &options, want_sam_id);
                if let Some(id) = id {
                    self.report.apply(|p| p.learnt_sam_id(id));
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
                let ready = self
                    .sam
                    .as_mut()
                    .is_some_and(|sam| sam.ready(&mut self.report));
                let result = match &mut self.sam {
                    Some(sam) if ready => sam.read_card(&options),
                    _ => Err(ReaderError::Unavailable("the serial SAM is not available")),
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

    fn report_read(&mut self, started: Instant, result: Result<CardRead, ReaderError>) {
        match result {
            Ok(read) => self.report.apply(|p| p.card_read(started, read)),
            Err(e) => {
                self.report.apply(|p| p.read_failed(&e));
                if let Some(sam) = &mut self.sam
                    && SamPort::lost_by(&e)
                {
                    sam.down(&e, &mut self.report);
                }
            }
        }
    }

    // ---- commands ----

    /// Answer queued commands; `true` when the reader must stop.
    fn handle_inbox(&mut self, ctx: Option<&Context>) -> bool {
        let inbox = self.inbox.clone();
        inbox.answer_queued(|command| match command {
            ReaderCommand::SamId => self.command_sam_id(ctx).map(CommandReply::SamId),
            ReaderCommand::Check => Ok(CommandReply::Check(self.command_check(ctx))),
        })
    }

    /// The serial SAM's id; else the tunnelled SAM's (when it can be
    /// reached now); else the id learnt at the last read.
    fn command_sam_id(&mut self, ctx: Option<&Context>) -> Result<String, ReaderError> {
        if let Some(sam) = &mut self.sam {
            return sam.sam_id(&mut self.report);
        }
        let learnt = self.report.presence().sam_id().map(str::to_owned);
        let (Some(ctx), Some(reader), Some(mode)) = (ctx, self.pcsc_reader.clone(), self.tunnel)
        else {
            return learnt.ok_or(ReaderError::NoReader(self.reader_wanted.clone()));
        };
        let card_present = self.report.presence().has_card();
        match tunnelled_sam_id(ctx, &reader, mode, card_present, self.options.timeout) {
            Ok(id) => {
                self.report.apply(|p| p.sam_id_answered(id.clone()));
                Ok(id)
            }
            Err(e) => learnt.ok_or(e),
        }
    }

    fn command_check(&mut self, ctx: Option<&Context>) -> ReaderCheck {
        let sam_status = if let Some(sam) = &mut self.sam {
            Some(sam.status(&mut self.report))
        } else if let (Some(ctx), Some(reader), Some(mode)) =
            (ctx, self.pcsc_reader.clone(), self.tunnel)
        {
            let card_present = self.report.presence().has_card();
            tunnelled_status(ctx, &reader, mode, card_present, self.options.timeout)
                .map(|r| r.map_err(|e| ReadFailure::from(&e)))
        } else {
            None
        };
        self.report.presence().check(
            self.pcsc_reader
                .as_ref()
                .map(|r| r.to_string_lossy().into_owned()),
            self.sam.as_ref().and_then(SamPort::baud),
            sam_status,
        )
    }
}
