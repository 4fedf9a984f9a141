//! The loop of a SAM-only reader (serial, or the vendor's library).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiosk_device::Wake;

use super::messages::{CommandReply, Inbox, ReaderCheck, ReaderCommand};
use super::reporter::Reporter;
use super::sam_port::SamPort;
use crate::channel::{CardRead, ReadOptions};
use crate::error::ReaderError;

/// A reader that is only a SAM, on a serial port or behind the vendor's
/// library ([`SamPort`] holds either). The SAM cannot tell when
/// a card arrives, so this loop sends find-card every `poll_interval_ms`
/// (the one polling loop of this crate) and reads a card found once. A
/// card read well is then watched through its selection
/// ([`SamPort::card_still_there`]), not find-card: some readers answer
/// find-card only once per placement, and the card is reported absent
/// only when it stops answering. Between polls, and
/// while the SAM waits for its reopen backoff, it sleeps in its mailbox,
/// so commands and stop are served at once, and a link with hot-plug news
/// (USB) is reopened as soon as its device arrives.
#[derive(Debug)]
pub(crate) struct SerialLoop {
    options: ReadOptions,
    poll: Duration,
    inbox: Arc<Inbox>,
    report: Reporter,
    sam: SamPort,
    /// The card present was read well: watch it through its selection.
    read_well: bool,
}

impl SerialLoop {
    pub fn new(
        sam: SamPort,
        poll: Duration,
        options: ReadOptions,
        report: Reporter,
        inbox: Arc<Inbox>,
    ) -> SerialLoop {
        let mut sam = sam;
        let nudge = Arc::clone(&inbox);
        sam.watch_arrivals(Box::new(move || nudge.nudge()));
        SerialLoop {
            poll,
            sam,
            options,
            inbox,
            report,
            read_well: false,
        }
    }

    /// Until stopped.
    pub fn run(mut self) {
        loop {
            if self.handle_inbox() {
                break;
            }
            let wait = if self.sam.ready(&mut self.report) {
                self.poll_card();
                self.poll
            } else {
                self.sam.until_retry()
            };
            match self.inbox.wait_for(wait) {
                Wake::Stop => break,
                // A hot-plug watch saw the device arrive.
                Wake::Nudged => self.sam.retry_now(),
                Wake::Command | Wake::Timeout => {}
            }
        }
        self.sam.close();
    }

    fn poll_card(&mut self) {
        let present = if self.read_well && self.report.presence().has_card() {
            self.sam.card_still_there(&self.options)
        } else {
            self.sam.find_card(&self.options)
        };
        match present {
            Ok(true) if !self.report.presence().has_card() => {
                let started = Instant::now();
                self.report.apply(|p| p.card_present(started));
                let result = self.sam.read_card(&self.options);
                self.report_read(started, result);
            }
            Ok(true) => {}
            Ok(false) => {
                self.read_well = false;
                self.report.apply(|p| p.card_absent());
            }
            Err(e @ (ReaderError::Unplugged { .. } | ReaderError::Timeout { .. })) => {
                if e.is_unplugged() {
                    self.read_well = false;
                    self.report.apply(|p| p.card_absent());
                }
                self.sam.down(&e, &mut self.report);
            }
            Err(e) => tracing::debug!(error = %e, "find card failed"),
        }
    }

    fn report_read(&mut self, started: Instant, result: Result<CardRead, ReaderError>) {
        self.read_well = result.is_ok();
        match result {
            Ok(read) => self.report.apply(|p| p.card_read(started, read)),
            Err(e) => {
                self.report.apply(|p| p.read_failed(&e));
                if SamPort::lost_by(&e) {
                    self.sam.down(&e, &mut self.report);
                }
            }
        }
    }

    /// Answer queued commands; `true` when the reader must stop.
    fn handle_inbox(&mut self) -> bool {
        let inbox = self.inbox.clone();
        inbox.answer_queued(|command| match command {
            ReaderCommand::SamId => self.sam.sam_id(&mut self.report).map(CommandReply::SamId),
            ReaderCommand::Check => Ok(CommandReply::Check(self.check())),
        })
    }

    fn check(&mut self) -> ReaderCheck {
        let sam_status = self.sam.status(&mut self.report);
        self.report
            .presence()
            .check(None, self.sam.baud(), Some(sam_status))
    }
}
