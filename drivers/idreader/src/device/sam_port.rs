//! A reader's own SAM (on a serial port, or behind the vendor's library),
//! and when to try it again after it failed.

use std::time::{Duration, Instant};

use kiosk_device::Backoff;

use super::reporter::Reporter;
use crate::channel::{
    CardRead, ReadOptions, SamLink, card_still_there, find_card, read_card, sam_id, sam_status,
};
use crate::config::ReaderConfig;
use crate::error::{ReadFailure, ReaderError};
use crate::sdtapi::SdtapiSam;
use crate::serial::SerialSam;
use crate::usb::UsbSam;

/// Reopening a failed or unplugged SAM: first wait...
const REOPEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(3);

/// The SAM of a reader (SAM-only, or reading for a PC/SC reader that
/// only tells presence), over any [`SamLink`]: a serial port or the
/// vendor's library. When it fails it is closed and reopened by its
/// configuration once its backoff has passed, the next time it is needed
/// ([`SamPort::ready`]); the loops sleep until then
/// ([`SamPort::until_retry`]). What it does to the reader's state goes
/// through the [`Reporter`].
#[derive(Debug)]
pub(crate) struct SamPort {
    sam: Box<dyn SamLink>,
    backoff: Backoff,
    retry_at: Instant,
    /// Reopened, answered, and not failed since.
    online: bool,
    /// Answer timeout of the SAM's own exchanges (id, status).
    timeout: Duration,
}

impl SamPort {
    /// The SAM `config` names (`[sam]`, `[sdtapi]` or `[usb]`), closed until first
    /// [`SamPort::ready`]; `None` when it names none.
    pub fn for_reader(config: &ReaderConfig, timeout: Duration) -> Option<SamPort> {
        let link: Box<dyn SamLink> = match (&config.sam, &config.sdtapi, &config.usb) {
            (Some(sam), _, _) => Box::new(SerialSam::new(sam)),
            (None, Some(sdtapi), _) => Box::new(SdtapiSam::new(sdtapi)),
            (None, None, Some(usb)) => Box::new(UsbSam::new(usb)),
            (None, None, None) => return None,
        };
        Some(SamPort::new(link, timeout))
    }

    /// The SAM behind `link`, closed until first [`SamPort::ready`].
    pub fn new(link: Box<dyn SamLink>, timeout: Duration) -> SamPort {
        SamPort {
            sam: link,
            backoff: Backoff::new(REOPEN_BACKOFF_MIN, REOPEN_BACKOFF_MAX),
            retry_at: Instant::now(),
            online: false,
            timeout,
        }
    }

    pub fn is_open(&self) -> bool {
        self.sam.is_open()
    }

    /// The baud rate of an open serial port.
    pub fn baud(&self) -> Option<u32> {
        self.sam.baud()
    }

    /// Have `arrived` called when the SAM's device may be back
    /// ([`SamLink::watch_arrivals`]).
    pub fn watch_arrivals(&mut self, arrived: Box<dyn Fn() + Send + 'static>) {
        self.sam.watch_arrivals(arrived);
    }

    /// The device may be back: reopen at the next [`SamPort::ready`], not
    /// at the end of the backoff (which keeps growing if it is not).
    pub fn retry_now(&mut self) {
        self.retry_at = Instant::now();
    }

    /// How long until a closed SAM may be reopened.
    pub fn until_retry(&self) -> Duration {
        self.retry_at.saturating_duration_since(Instant::now())
    }

    /// Is the SAM usable? Reopens it when it is closed and its backoff has
    /// passed (and reads its id, to report it).
    pub fn ready(&mut self, report: &mut Reporter) -> bool {
        if self.sam.is_open() && self.online {
            return true;
        }
        if Instant::now() < self.retry_at {
            return false;
        }
        match self.sam.reopen() {
            Ok(()) => {
                tracing::debug!(baud = self.sam.baud(), at = %self.sam.location(), "SAM online");
                self.backoff.reset();
                self.online = true;
                let id = sam_id(&mut *self.sam, self.timeout);
                let (id, error) = match id {
                    Ok(id) => (Some(id), None),
                    Err(e) => (None, Some(e)),
                };
                report.apply(|p| p.sam_online(id));
                if let Some(e) = error {
                    tracing::debug!(error = %e, "SAM id not read");
                }
                true
            }
            Err(e) => {
                self.down(&e, report);
                false
            }
        }
    }

    /// The SAM failed with `e`: close it, say so, retry after the backoff.
    pub fn down(&mut self, e: &ReaderError, report: &mut Reporter) {
        self.sam.close();
        self.online = false;
        let delay = self.backoff.next_delay();
        self.retry_at = Instant::now() + delay;
        tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "SAM unavailable");
        report.apply(|p| p.sam_down(e));
    }

    /// Does this failed read say that the SAM itself is gone or silent
    /// (rather than the card)?
    pub fn lost_by(e: &ReaderError) -> bool {
        e.is_unplugged() || matches!(e, ReaderError::NoSamAnswer { .. })
    }

    /// Is a card in the SAM's field? (For a SAM-only reader's polling.)
    pub fn find_card(&mut self, options: &ReadOptions) -> Result<bool, ReaderError> {
        find_card(&mut *self.sam, options)
    }

    /// After a good read: does that card still answer
    /// ([`crate::channel::card_still_there`])?
    pub fn card_still_there(&mut self, options: &ReadOptions) -> Result<bool, ReaderError> {
        card_still_there(&mut *self.sam, options)
    }

    /// Read the card in the SAM's field.
    pub fn read_card(&mut self, options: &ReadOptions) -> Result<CardRead, ReaderError> {
        read_card(&mut *self.sam, options)
    }

    /// [`crate::ReaderCommand::SamId`]: ask the SAM, and report the id even
    /// when unchanged.
    pub fn sam_id(&mut self, report: &mut Reporter) -> Result<String, ReaderError> {
        if !self.ready(report) {
            return Err(ReaderError::Unavailable("the SAM is not available"));
        }
        match sam_id(&mut *self.sam, self.timeout) {
            Ok(id) => {
                report.apply(|p| p.sam_id_answered(id.clone()));
                Ok(id)
            }
            Err(e) => {
                if e.is_unplugged() {
                    self.down(&e, report);
                }
                Err(e)
            }
        }
    }

    /// The SAM status request of [`crate::ReaderCommand::Check`].
    pub fn status(&mut self, report: &mut Reporter) -> Result<(), ReadFailure> {
        if !self.ready(report) {
            return Err(ReadFailure {
                code: "unavailable",
                message: "the SAM is not available".into(),
            });
        }
        let result = sam_status(&mut *self.sam, self.timeout);
        if let Err(e) = &result
            && e.is_unplugged()
        {
            self.down(e, report);
        }
        result.map_err(|e| ReadFailure::from(&e))
    }

    /// The reader stops.
    pub fn close(&mut self) {
        self.sam.close();
    }
}
