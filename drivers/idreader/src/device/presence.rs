//! What a reader reports, as a pure state machine: no I/O, no clock, no
//! thread. The device loops tell it what they saw (a part's state, the
//! reader attached, a card placed, a read's outcome, the SAM's id) and
//! send on the [`ReaderEvent`]s it answers, in that order.
//!
//! # What it keeps
//!
//! * **The state of each part.** A reader has up to two parts, a PC/SC
//!   reader and a serial SAM ([`Parts`]); each has a [`DeviceState`] and a
//!   detail. The reader reports one state: that of its worse configured
//!   part ([`DeviceState::severity`]; of two equally bad parts, the SAM's),
//!   and only when it (or its detail) changed. A part that is not
//!   configured never counts.
//! * **Attached.** The PC/SC reader is listed by pcscd, or, for a
//!   SAM-only reader, the serial SAM's port is open. Reported on change.
//!   Detaching takes a card on the reader with it (`CardAbsent` first).
//! * **The card.** When the card on the reader was detected. A placement
//!   is reported once (`CardPresent`) until the card is reported absent.
//! * **The SAM id.** Learnt from a read or the SAM coming online, reported
//!   when new or changed; asked for, reported every time.
//!
//! The promise of [`ReaderEvent`]: `CardPresent`, then `CardRead` or
//! `ReadFailed`, then `CardAbsent`, also when the reader goes away while
//! the card lies on it. The loops read at once after `CardPresent`, so
//! the machine only has to make sure that `CardAbsent` comes once.

use std::mem;
use std::time::Instant;

use kiosk_device::DeviceState;
use kiosk_idcard::SamError;

use super::messages::{ReaderCheck, ReaderEvent};
use crate::channel::CardRead;
use crate::config::ReaderConfig;
use crate::error::{ReadFailure, ReaderError};

/// What a transition reports, to be sent in this order.
pub(crate) type Events = Vec<ReaderEvent>;

/// One part of a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Pcsc,
    Sam,
}

/// The parts a reader is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    pub pcsc: bool,
    pub sam: bool,
}

impl Parts {
    pub fn of(config: &ReaderConfig) -> Parts {
        Parts {
            pcsc: config.pcsc.is_some(),
            sam: config.has_sam_link(),
        }
    }
}

type PartState = (DeviceState, Option<String>);

/// What a reader has reported, and what it reports next; see the
/// [module documentation](self).
#[derive(Debug)]
pub(crate) struct Presence {
    reader: String,
    parts: Parts,
    pcsc: PartState,
    sam: PartState,
    /// The state last reported (`None` before the first).
    reported: Option<PartState>,
    attached: bool,
    /// When the card on the reader was detected.
    card: Option<Instant>,
    sam_id: Option<String>,
    /// What the transition under way reports.
    out: Events,
}

impl Presence {
    /// A reader named `reader` that has reported nothing yet.
    pub fn new(reader: impl Into<String>, parts: Parts) -> Presence {
        Presence {
            reader: reader.into(),
            parts,
            pcsc: (DeviceState::Starting, None),
            sam: (DeviceState::Starting, None),
            reported: None,
            attached: false,
            card: None,
            sam_id: None,
            out: Events::new(),
        }
    }

    // ---- transitions ----

    /// The first report: `State { Starting }`.
    pub fn start(&mut self) -> Events {
        self.report_state();
        self.take()
    }

    /// `part` is now in `state`, for the reason `detail`.
    pub fn set_state(&mut self, part: Part, state: DeviceState, detail: Option<String>) -> Events {
        self.part(part, state, detail);
        self.take()
    }

    /// The reader appeared.
    pub fn attach(&mut self) -> Events {
        self.attached();
        self.take()
    }

    /// The reader went away, with any card on it.
    pub fn detach(&mut self) -> Events {
        self.detached();
        self.take()
    }

    /// A card was detected on the reader `at`; its read follows. Nothing
    /// while a card is already there.
    pub fn card_present(&mut self, at: Instant) -> Events {
        if self.card.is_none() {
            self.card = Some(at);
            tracing::debug!("card present");
            self.emit(|reader| ReaderEvent::CardPresent { reader });
        }
        self.take()
    }

    /// The card was taken away (nothing if none was there).
    pub fn card_absent(&mut self) -> Events {
        self.absent();
        self.take()
    }

    /// The card detected at `started` was read.
    pub fn card_read(&mut self, started: Instant, read: CardRead) -> Events {
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            ?read,
            "card read"
        );
        self.emit(|reader| ReaderEvent::CardRead {
            reader,
            read: Box::new(read),
            started,
        });
        self.take()
    }

    /// The card placed could not be read. The card stays present until it
    /// is reported absent: a failed read is not tried again.
    pub fn read_failed(&mut self, e: &ReaderError) -> Events {
        tracing::debug!(code = e.code(), error = %e, "card read failed");
        self.emit(|reader| ReaderEvent::ReadFailed {
            reader,
            reason: ReadFailure::from(e),
        });
        self.take()
    }

    /// The SAM's id, learnt in passing: reported when new or changed.
    pub fn learnt_sam_id(&mut self, id: String) -> Events {
        self.learnt(id);
        self.take()
    }

    /// The SAM's id, asked for: reported even when unchanged.
    pub fn sam_id_answered(&mut self, id: String) -> Events {
        self.sam_id = Some(id.clone());
        self.emit(|reader| ReaderEvent::SamId { reader, sam_id: id });
        self.take()
    }

    /// The serial SAM's port was (re)opened and the SAM answers; `id` when
    /// it told its id. A SAM-only reader is attached by that.
    pub fn sam_online(&mut self, id: Option<String>) -> Events {
        if !self.parts.pcsc {
            self.attached();
        }
        self.part(Part::Sam, DeviceState::Online, None);
        if let Some(id) = id {
            self.learnt(id);
        }
        self.take()
    }

    /// The serial SAM failed with `e` (its port is closed now). A SAM-only
    /// reader whose SAM was unplugged is detached by that.
    pub fn sam_down(&mut self, e: &ReaderError) -> Events {
        if !self.parts.pcsc && e.is_unplugged() {
            self.detached();
        }
        self.part(Part::Sam, sam_state_after(e), Some(e.to_string()));
        self.take()
    }

    // ---- what it knows ----

    /// Does a card lie on the reader?
    pub fn has_card(&self) -> bool {
        self.card.is_some()
    }

    /// The SAM's id, if known.
    pub fn sam_id(&self) -> Option<&str> {
        self.sam_id.as_deref()
    }

    /// The answer to [`crate::ReaderCommand::Check`]: what was reported,
    /// plus what the loop found.
    pub fn check(
        &self,
        pcsc_reader: Option<String>,
        baud: Option<u32>,
        sam_status: Option<Result<(), ReadFailure>>,
    ) -> ReaderCheck {
        let (state, detail) = self
            .reported
            .clone()
            .unwrap_or((DeviceState::Starting, None));
        ReaderCheck {
            state,
            detail,
            pcsc_reader,
            card_present: self.has_card(),
            baud,
            sam_status,
            sam_id: self.sam_id.clone(),
        }
    }

    // ---- the steps transitions are made of ----

    fn take(&mut self) -> Events {
        mem::take(&mut self.out)
    }

    fn emit(&mut self, event: impl FnOnce(String) -> ReaderEvent) {
        self.out.push(event(self.reader.clone()));
    }

    fn part(&mut self, part: Part, state: DeviceState, detail: Option<String>) {
        match part {
            Part::Pcsc => self.pcsc = (state, detail),
            Part::Sam => self.sam = (state, detail),
        }
        self.report_state();
    }

    /// Report the worse of the configured parts, if it changed.
    fn report_state(&mut self) {
        let mut parts = Vec::new();
        if self.parts.pcsc {
            parts.push(&self.pcsc);
        }
        if self.parts.sam {
            parts.push(&self.sam);
        }
        // `max_by_key` keeps the last of equals: the SAM's.
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
            let (state, detail) = worst;
            self.emit(|reader| ReaderEvent::State {
                reader,
                state,
                detail,
            });
        }
    }

    fn attached(&mut self) {
        if !self.attached {
            self.attached = true;
            self.emit(|reader| ReaderEvent::Attached { reader });
        }
    }

    fn detached(&mut self) {
        self.absent();
        if self.attached {
            self.attached = false;
            self.emit(|reader| ReaderEvent::Detached { reader });
        }
    }

    fn absent(&mut self) {
        if self.card.take().is_some() {
            tracing::debug!("card absent");
            self.emit(|reader| ReaderEvent::CardAbsent { reader });
        }
    }

    fn learnt(&mut self, id: String) {
        if self.sam_id.as_deref() != Some(id.as_str()) {
            self.sam_id = Some(id.clone());
            self.emit(|reader| ReaderEvent::SamId { reader, sam_id: id });
        }
    }
}

/// The state of a SAM that failed with `e`: gone when unplugged, a
/// technician's case when its self-test failed or the vendor's library
/// cannot be used, else there but unusable.
fn sam_state_after(e: &ReaderError) -> DeviceState {
    match e {
        ReaderError::Unplugged { .. } => DeviceState::NoDevice,
        ReaderError::Sam(SamError::SelfTestFailed) | ReaderError::Library(_) => {
            DeviceState::HardwareError
        }
        _ => DeviceState::Offline,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kiosk_sim::CardProfile;

    use super::*;
    use crate::error::PullCause;

    const PCSC_ONLY: Parts = Parts {
        pcsc: true,
        sam: false,
    };
    const SAM_ONLY: Parts = Parts {
        pcsc: false,
        sam: true,
    };
    const BOTH: Parts = Parts {
        pcsc: true,
        sam: true,
    };

    /// Events as short lines, so that a test reads like the log of a
    /// reader; each must be about reader "desk".
    fn lines(events: Events) -> Vec<String> {
        events
            .into_iter()
            .map(|event| {
                let (reader, line) = match event {
                    ReaderEvent::State {
                        reader,
                        state,
                        detail,
                    } => match detail {
                        Some(detail) => (reader, format!("state {state}: {detail}")),
                        None => (reader, format!("state {state}")),
                    },
                    ReaderEvent::Attached { reader } => (reader, "attached".into()),
                    ReaderEvent::Detached { reader } => (reader, "detached".into()),
                    ReaderEvent::CardPresent { reader } => (reader, "card present".into()),
                    ReaderEvent::CardAbsent { reader } => (reader, "card absent".into()),
                    ReaderEvent::CardRead { reader, read, .. } => {
                        (reader, format!("card read {}", read.identity.number))
                    }
                    ReaderEvent::ReadFailed { reader, reason } => {
                        (reader, format!("read failed {}", reason.code))
                    }
                    ReaderEvent::SamId { reader, sam_id } => (reader, format!("sam id {sam_id}")),
                };
                assert_eq!(reader, "desk");
                line
            })
            .collect()
    }

    /// A reader of `parts` that has reported `State { Starting }`.
    fn started(parts: Parts) -> Presence {
        let mut p = Presence::new("desk", parts);
        assert_eq!(lines(p.start()), ["state starting"]);
        p
    }

    fn a_read() -> CardRead {
        let profile = CardProfile::builtin("resident").expect("profile");
        CardRead {
            identity: profile.identity.clone(),
            photo: profile.photo(),
            fingerprint: None,
            appended_address: None,
            card_uid: Some(profile.uid),
            wire_bytes: 1295,
        }
    }

    fn unplugged() -> ReaderError {
        ReaderError::Unplugged {
            detail: "EIO".into(),
        }
    }

    fn no_answer() -> ReaderError {
        ReaderError::Timeout {
            command: "sam status",
            timeout_ms: 500,
            received: 0,
        }
    }

    #[test]
    fn starts_once() {
        let mut p = started(PCSC_ONLY);
        assert!(p.start().is_empty(), "Starting is not said twice");
        let check = p.check(None, None, None);
        assert_eq!(check.state, DeviceState::Starting);
        assert_eq!(check.detail, None);
    }

    #[test]
    fn a_reader_without_parts_reports_no_state() {
        let mut p = Presence::new(
            "desk",
            Parts {
                pcsc: false,
                sam: false,
            },
        );
        assert!(p.start().is_empty());
        assert!(
            p.set_state(Part::Pcsc, DeviceState::Online, None)
                .is_empty()
        );
    }

    #[test]
    fn a_state_is_reported_when_it_or_its_detail_changes() {
        let mut p = started(PCSC_ONLY);
        let gone = || Some("PC/SC reader \"X\" is not attached".to_string());
        assert_eq!(
            lines(p.set_state(Part::Pcsc, DeviceState::NoDevice, gone())),
            ["state noDevice: PC/SC reader \"X\" is not attached"]
        );
        assert!(
            p.set_state(Part::Pcsc, DeviceState::NoDevice, gone())
                .is_empty(),
            "the same state again is not reported"
        );
        assert_eq!(
            lines(p.set_state(Part::Pcsc, DeviceState::NoDevice, Some("other".into()))),
            ["state noDevice: other"]
        );
        assert_eq!(
            lines(p.set_state(Part::Pcsc, DeviceState::Online, None)),
            ["state online"]
        );
        assert!(
            p.set_state(Part::Pcsc, DeviceState::Online, None)
                .is_empty()
        );
        let check = p.check(Some("Virtual PCD 00 00".into()), None, None);
        assert_eq!(check.state, DeviceState::Online);
        assert_eq!(check.pcsc_reader.as_deref(), Some("Virtual PCD 00 00"));
    }

    #[test]
    fn a_part_that_is_not_configured_does_not_count() {
        let mut p = started(PCSC_ONLY);
        assert_eq!(
            lines(p.set_state(Part::Pcsc, DeviceState::Online, None)),
            ["state online"]
        );
        assert!(p.sam_down(&unplugged()).is_empty());
        assert!(
            p.set_state(Part::Sam, DeviceState::Offline, None)
                .is_empty()
        );

        let mut p = started(SAM_ONLY);
        assert!(
            p.set_state(Part::Pcsc, DeviceState::HardwareError, None)
                .is_empty()
        );
    }

    #[test]
    fn the_worse_part_is_the_readers_state() {
        let mut p = started(BOTH);
        // PC/SC online, the SAM still starting: still starting.
        assert!(
            p.set_state(Part::Pcsc, DeviceState::Online, None)
                .is_empty()
        );
        assert_eq!(lines(p.sam_online(None)), ["state online"]);

        // The SAM goes down while the PC/SC part is online.
        assert_eq!(
            lines(p.sam_down(&no_answer())),
            ["state offline: no complete answer to sam status within 500 ms (0 bytes received)"]
        );
        // PC/SC news that changes nothing of the worse part: silence.
        assert!(
            p.set_state(Part::Pcsc, DeviceState::Online, None)
                .is_empty()
        );
        // A worse PC/SC part wins over the offline SAM...
        assert_eq!(
            lines(p.set_state(
                Part::Pcsc,
                DeviceState::NoDevice,
                Some("not attached".into())
            )),
            ["state noDevice: not attached"]
        );
        // ...and when it is back, the SAM's state shows again.
        assert_eq!(
            lines(p.set_state(Part::Pcsc, DeviceState::Online, None)),
            ["state offline: no complete answer to sam status within 500 ms (0 bytes received)"]
        );
        assert_eq!(lines(p.sam_online(None)), ["state online"]);
    }

    #[test]
    fn of_two_equally_bad_parts_the_sams_detail_is_reported() {
        let mut p = started(BOTH);
        assert_eq!(
            lines(p.set_state(
                Part::Pcsc,
                DeviceState::Offline,
                Some("pcscd is not running".into())
            )),
            ["state offline: pcscd is not running"]
        );
        assert_eq!(
            lines(p.set_state(Part::Sam, DeviceState::Offline, Some("silent".into()))),
            ["state offline: silent"]
        );
    }

    #[test]
    fn attach_and_detach_are_reported_on_change() {
        let mut p = started(PCSC_ONLY);
        assert!(p.detach().is_empty(), "never attached");
        assert_eq!(lines(p.attach()), ["attached"]);
        assert!(p.attach().is_empty());
        assert_eq!(lines(p.detach()), ["detached"]);
        assert!(p.detach().is_empty());
        assert_eq!(lines(p.attach()), ["attached"]);
    }

    #[test]
    fn a_placement_is_present_read_then_absent_once() {
        let mut p = started(PCSC_ONLY);
        let at = Instant::now();
        assert_eq!(lines(p.card_present(at)), ["card present"]);
        assert!(p.has_card());
        assert!(
            p.card_present(at + Duration::from_secs(1)).is_empty(),
            "one placement, one CardPresent"
        );
        let events = p.card_read(at, a_read());
        assert!(
            matches!(&events[..], [ReaderEvent::CardRead { started, .. }] if *started == at),
            "{events:?}"
        );
        assert_eq!(lines(p.card_absent()), ["card absent"]);
        assert!(!p.has_card());
        assert!(p.card_absent().is_empty(), "absent once");
    }

    #[test]
    fn a_card_removed_mid_read_fails_the_read_then_goes_absent() {
        let mut p = started(PCSC_ONLY);
        assert_eq!(lines(p.card_present(Instant::now())), ["card present"]);
        let pulled = ReaderError::CardPulled {
            cause: PullCause::CutOff { received: 300 },
        };
        assert_eq!(lines(p.read_failed(&pulled)), ["read failed card_pulled"]);
        // Still "present" until the loop sees it gone: the read is not
        // tried again for this placement.
        assert!(p.has_card());
        assert!(p.card_present(Instant::now()).is_empty());
        assert_eq!(lines(p.card_absent()), ["card absent"]);
    }

    #[test]
    fn a_reader_going_away_takes_its_card_with_it() {
        let mut p = started(PCSC_ONLY);
        assert_eq!(lines(p.attach()), ["attached"]);
        assert_eq!(lines(p.card_present(Instant::now())), ["card present"]);
        assert_eq!(lines(p.detach()), ["card absent", "detached"]);
        assert!(!p.has_card());
        // Back, with the card still on it: a new placement.
        assert_eq!(lines(p.attach()), ["attached"]);
        assert_eq!(lines(p.card_present(Instant::now())), ["card present"]);
    }

    #[test]
    fn a_sam_id_is_reported_when_new_or_changed_and_when_asked() {
        let mut p = started(PCSC_ONLY);
        assert_eq!(p.sam_id(), None);
        assert_eq!(lines(p.learnt_sam_id("A".into())), ["sam id A"]);
        assert!(p.learnt_sam_id("A".into()).is_empty());
        assert_eq!(lines(p.learnt_sam_id("B".into())), ["sam id B"]);
        assert_eq!(lines(p.sam_id_answered("B".into())), ["sam id B"]);
        assert_eq!(lines(p.sam_id_answered("C".into())), ["sam id C"]);
        assert_eq!(p.sam_id(), Some("C"));
        assert_eq!(p.check(None, None, None).sam_id.as_deref(), Some("C"));
    }

    #[test]
    fn a_sam_only_reader_is_attached_by_its_sam() {
        let mut p = started(SAM_ONLY);
        assert_eq!(
            lines(p.sam_online(Some("A".into()))),
            ["attached", "state online", "sam id A"]
        );
        // Reopened after a failure that was not an unplug: still attached,
        // and the same id is not said again.
        assert_eq!(
            lines(p.sam_down(&no_answer())),
            ["state offline: no complete answer to sam status within 500 ms (0 bytes received)"]
        );
        assert_eq!(lines(p.sam_online(Some("A".into()))), ["state online"]);

        // Unplugged with a card on it: absent, detached, no device.
        assert_eq!(lines(p.card_present(Instant::now())), ["card present"]);
        assert_eq!(
            lines(p.sam_down(&unplugged())),
            [
                "card absent",
                "detached",
                "state noDevice: the device is unplugged or gone: EIO"
            ]
        );
        // Failing again while unplugged: nothing new.
        assert!(p.sam_down(&unplugged()).is_empty());
        assert_eq!(lines(p.sam_online(None)), ["attached", "state online"]);
    }

    #[test]
    fn a_sam_behind_a_pcsc_reader_does_not_attach_or_detach_it() {
        let mut p = started(BOTH);
        assert_eq!(lines(p.attach()), ["attached"]);
        assert!(
            p.set_state(Part::Pcsc, DeviceState::Online, None)
                .is_empty()
        );
        assert_eq!(
            lines(p.sam_online(Some("A".into()))),
            ["state online", "sam id A"]
        );
        assert_eq!(lines(p.card_present(Instant::now())), ["card present"]);
        // The SAM unplugged while a card lies on the PC/SC reader: the card
        // and the reader are still there.
        assert_eq!(
            lines(p.sam_down(&unplugged())),
            ["state noDevice: the device is unplugged or gone: EIO"]
        );
        assert!(p.has_card());
    }

    #[test]
    fn a_failed_self_test_needs_a_technician() {
        let mut p = started(SAM_ONLY);
        assert_eq!(
            lines(p.sam_down(&ReaderError::Sam(SamError::SelfTestFailed))),
            [format!(
                "state hardwareError: {}",
                ReaderError::Sam(SamError::SelfTestFailed)
            )]
        );
        assert_eq!(sam_state_after(&unplugged()), DeviceState::NoDevice);
        assert_eq!(sam_state_after(&no_answer()), DeviceState::Offline);
        assert_eq!(
            sam_state_after(&ReaderError::NoSamAnswer {
                path: "/dev/ttyUSB0".into(),
                tried: vec![115_200],
            }),
            DeviceState::Offline
        );
        // A vendor library that lacks a function is a technician's case too.
        let missing = kiosk_sdtapi::SdtApi::load(std::path::Path::new("/nonexistent/libsdtapi.so"))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            sam_state_after(&ReaderError::Library(missing)),
            DeviceState::HardwareError
        );
    }

    #[test]
    fn the_check_says_what_was_reported_and_what_the_loop_found() {
        let mut p = started(SAM_ONLY);
        let _ = p.sam_online(Some("A".into()));
        let _ = p.card_present(Instant::now());
        let check = p.check(None, Some(38_400), Some(Ok(())));
        assert_eq!(
            check,
            ReaderCheck {
                state: DeviceState::Online,
                detail: None,
                pcsc_reader: None,
                card_present: true,
                baud: Some(38_400),
                sam_status: Some(Ok(())),
                sam_id: Some("A".into()),
            }
        );
    }
}
