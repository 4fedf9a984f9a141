//! The ID readers as the daemon knows them: each reader's state, its SAM,
//! and the card on it (the full read stays here, and is dropped, its
//! identity zeroized, when the card leaves or the session ends: rule S2).
//! The device supervisors ([`crate::devices`]) feed it the readers' events
//! through `Readers::apply`; the API, the sessions and the queue machine
//! read it. Only masked data leaves it (rule S1).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kiosk_idcard::mask::MaskPolicy;
use kiosk_idreader::{CardRead, ReaderConfig, ReaderEvent, ReaderHandle};
use kiosk_proto::{CardReadInfo, DeviceInfo, DeviceState, Event, MaskedIdentity, ReaderInfo};

use crate::bus::Bus;

/// A running reader's handle, held by its supervisor (and borrowed by the
/// selftest).
pub(crate) type Slot = Arc<Mutex<Option<ReaderHandle>>>;

/// The readers service.
#[derive(Debug)]
pub struct Readers {
    bus: Arc<Bus>,
    masking: MaskPolicy,
    state: Mutex<BTreeMap<String, ReaderState>>,
    /// Card reads so far (each read's serial number).
    card_reads: AtomicU64,
    slots: BTreeMap<String, Slot>,
}

/// What the daemon knows of one ID reader.
#[derive(Debug)]
struct ReaderState {
    transport: String,
    state: DeviceState,
    detail: Option<String>,
    attached: bool,
    sam_id: Option<String>,
    card_present: bool,
    /// The card on the reader, as read. The full read stays in the daemon
    /// and is dropped (its identity zeroized) when the card leaves.
    current: Option<CurrentCard>,
    reads_ok: u64,
    reads_failed: u64,
    last_error: Option<String>,
}

#[derive(Debug)]
struct CurrentCard {
    info: CardReadInfo,
    read: Box<CardRead>,
    /// Which read this was, kiosk-wide (a new placement is a new read).
    serial: u64,
    /// Handed to a `read_card` caller or a session already: each read is
    /// handed out once (rule S2: not to the next customer).
    handed: bool,
}

impl Readers {
    pub fn new(configs: &[ReaderConfig], masking: MaskPolicy, bus: Arc<Bus>) -> Readers {
        let state = configs
            .iter()
            .map(|r| {
                let reader = ReaderState {
                    transport: transport_name(r).to_string(),
                    state: DeviceState::Starting,
                    detail: None,
                    attached: false,
                    sam_id: None,
                    card_present: false,
                    current: None,
                    reads_ok: 0,
                    reads_failed: 0,
                    last_error: None,
                };
                (r.name.clone(), reader)
            })
            .collect();
        Readers {
            bus,
            masking,
            state: Mutex::new(state),
            card_reads: AtomicU64::new(0),
            slots: configs
                .iter()
                .map(|r| (r.name.clone(), Slot::default()))
                .collect(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ReaderState>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The slot of reader `name`'s running handle.
    pub(crate) fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.get(name)
    }

    /// Every reader as a device of `status`.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.lock()
            .iter()
            .map(|(name, r)| DeviceInfo {
                name: name.clone(),
                kind: "id_reader".into(),
                state: r.state,
                detail: r.detail.clone(),
                last_error: r.last_error.clone(),
                sam_id: r.sam_id.clone(),
            })
            .collect()
    }

    /// Apply one event of reader `reader`'s device thread.
    pub(crate) fn apply(&self, reader: &str, event: ReaderEvent) {
        match event {
            ReaderEvent::State { state, detail, .. } => {
                self.set_device_state(reader, state, detail)
            }
            ReaderEvent::Attached { .. } => self.set_attached(reader, true),
            ReaderEvent::Detached { .. } => self.set_attached(reader, false),
            ReaderEvent::CardPresent { .. } => self.card_present(reader, true),
            ReaderEvent::CardAbsent { .. } => self.card_present(reader, false),
            ReaderEvent::CardRead { read, started, .. } => {
                let read_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.card_read(reader, read, read_ms);
            }
            ReaderEvent::ReadFailed { reason, .. } => {
                self.read_failed(reader, reason.code, &reason.message)
            }
            ReaderEvent::SamId { sam_id, .. } => self.set_sam_id(reader, sam_id),
        }
    }

    pub fn readers(&self) -> Vec<ReaderInfo> {
        self.lock()
            .iter()
            .map(|(name, r)| ReaderInfo {
                name: name.clone(),
                transport: r.transport.clone(),
                state: r.state,
                detail: r.detail.clone(),
                attached: r.attached,
                sam_id: r.sam_id.clone(),
                card_present: r.card_present,
                reads_ok: r.reads_ok,
                reads_failed: r.reads_failed,
                last_error: r.last_error.clone(),
            })
            .collect()
    }

    pub fn has_readers(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The masked card on a reader that was not handed out yet, now
    /// handed to the caller (`read_card`): a card read is handed out once.
    pub fn take_current_card(&self) -> Option<CardReadInfo> {
        self.lock()
            .values_mut()
            .filter_map(|r| r.current.as_mut())
            .find(|c| !c.handed)
            .map(|c| {
                c.handed = true;
                c.info.clone()
            })
    }

    /// The card read on `reader` is handed out (a `read_card` caller got
    /// it from its event).
    pub fn hand_out(&self, reader: &str) {
        if let Some(c) = self.lock().get_mut(reader).and_then(|r| r.current.as_mut()) {
            c.handed = true;
        }
    }

    /// Rule S2: a session ended, and the cards it could have read go with
    /// it (a card still lying on a reader is not read again, nor handed to
    /// the next customer, until it is taken and placed again).
    pub(crate) fn wipe_cards(&self) {
        for r in self.lock().values_mut() {
            r.current = None;
        }
    }

    /// Run `f` on the full card on a reader (and that reader's SAM id),
    /// if one was read and is still there. The data stays in the daemon.
    pub(crate) fn with_current_card<T>(
        &self,
        f: impl FnOnce(&CardRead, Option<&str>, u64) -> T,
    ) -> Option<T> {
        let state = self.lock();
        state
            .values()
            .find_map(|r| r.current.as_ref().map(|c| (c, r.sam_id.as_deref())))
            .map(|(c, sam)| f(&c.read, sam, c.serial))
    }

    /// Like [`Readers::with_current_card`], for the card on `reader`, which
    /// is then handed out (to the session that asks).
    pub(crate) fn with_card_on<T>(
        &self,
        reader: &str,
        f: impl FnOnce(&CardRead, Option<&str>) -> T,
    ) -> Option<T> {
        let mut state = self.lock();
        let r = state.get_mut(reader)?;
        let sam_id = r.sam_id.as_deref();
        r.current.as_mut().map(|c| {
            c.handed = true;
            f(&c.read, sam_id)
        })
    }

    // ---- updates from the device supervisors ----

    pub(crate) fn set_device_state(&self, reader: &str, new: DeviceState, detail: Option<String>) {
        let changed = {
            let mut state = self.lock();
            let Some(r) = state.get_mut(reader) else {
                return;
            };
            let changed = r.state != new || r.detail != detail;
            let is_fault = matches!(
                new,
                DeviceState::HardwareError | DeviceState::NoDevice | DeviceState::Offline
            );
            if let (true, Some(d)) = (is_fault, &detail) {
                r.last_error = Some(d.clone());
            }
            if !matches!(new, DeviceState::Online | DeviceState::Busy) {
                r.card_present = false;
                r.current = None;
            }
            r.state = new;
            r.detail = detail.clone();
            changed
        };
        if changed {
            tracing::info!(reader, state = %new, detail = detail.as_deref().unwrap_or(""), "device state");
            self.bus.emit(Event::DeviceState {
                device: reader.to_string(),
                state: new,
                detail,
            });
        }
    }

    pub(crate) fn set_attached(&self, reader: &str, attached: bool) {
        {
            let mut state = self.lock();
            let Some(r) = state.get_mut(reader) else {
                return;
            };
            r.attached = attached;
        }
        tracing::info!(reader, attached, "reader hardware");
        let reader = reader.to_string();
        self.bus.emit(if attached {
            Event::ReaderAttached { reader }
        } else {
            Event::ReaderDetached { reader }
        });
    }

    pub(crate) fn set_sam_id(&self, reader: &str, sam_id: String) {
        let mut state = self.lock();
        if let Some(r) = state.get_mut(reader) {
            tracing::info!(reader, %sam_id, "SAM id");
            r.sam_id = Some(sam_id);
        }
    }

    pub(crate) fn card_present(&self, reader: &str, present: bool) {
        {
            let mut state = self.lock();
            let Some(r) = state.get_mut(reader) else {
                return;
            };
            if r.card_present == present {
                return;
            }
            r.card_present = present;
            if !present {
                // rule S2: the card's data goes with the card.
                r.current = None;
            }
        }
        tracing::debug!(reader, present, "card presence");
        let reader = reader.to_string();
        self.bus.emit(if present {
            Event::CardPresent { reader }
        } else {
            Event::CardAbsent { reader }
        });
    }

    pub(crate) fn card_read(&self, reader: &str, read: Box<CardRead>, read_ms: u64) {
        let identity: MaskedIdentity =
            crate::masking::mask_identity(&read.identity, &self.masking, !read.photo.is_empty());
        let info = CardReadInfo {
            reader: reader.to_string(),
            identity: identity.clone(),
            read_ms,
        };
        {
            let mut state = self.lock();
            let Some(r) = state.get_mut(reader) else {
                return;
            };
            r.reads_ok += 1;
            r.card_present = true;
            let serial = self.card_reads.fetch_add(1, Ordering::Relaxed) + 1;
            r.current = Some(CurrentCard {
                info,
                read,
                serial,
                handed: false,
            });
        }
        tracing::info!(
            reader,
            card_type = ?identity.card_type,
            number = %identity.number,
            valid_until = %identity.valid_until,
            read_ms,
            "card read"
        );
        self.bus.emit(Event::CardRead {
            reader: reader.to_string(),
            identity,
            read_ms,
        });
    }

    pub(crate) fn read_failed(&self, reader: &str, code: &str, message: &str) {
        {
            let mut state = self.lock();
            let Some(r) = state.get_mut(reader) else {
                return;
            };
            r.reads_failed += 1;
            r.last_error = Some(message.to_string());
        }
        tracing::warn!(reader, code, message, "card read failed");
        self.bus.emit(Event::ReadFailed {
            reader: reader.to_string(),
            code: code.to_string(),
            message: message.to_string(),
        });
    }
}

/// `pcsc`, `sam`, `sdtapi`, `usb`, or `pcsc+` one of the last three.
fn transport_name(r: &kiosk_idreader::ReaderConfig) -> &'static str {
    let link = if r.sdtapi.is_some() {
        "sdtapi"
    } else if r.usb.is_some() {
        "usb"
    } else if r.sam.is_some() {
        "sam"
    } else {
        return "pcsc";
    };
    match (r.pcsc.is_some(), link) {
        (false, link) => link,
        (true, "sdtapi") => "pcsc+sdtapi",
        (true, "usb") => "pcsc+usb",
        (true, _) => "pcsc+sam",
    }
}
