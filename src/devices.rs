//! Device supervision: one thread per ID reader, owned by
//! `kiosk-idreader`'s `ReaderDevice`, and one supervisor thread per reader
//! that turns its events into daemon state and API events, and restarts the
//! device if its thread ever ends while the daemon runs.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiosk_idreader::{ReaderConfig, ReaderDevice, ReaderEvent, ReaderHandle};
use kiosk_proto::DeviceState;

use crate::daemon::Shared;

/// Longest wait before restarting a reader whose thread ended.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

pub(crate) type Slot = Arc<Mutex<Option<ReaderHandle>>>;

/// The running devices.
#[derive(Debug)]
pub struct Devices {
    slots: Vec<Slot>,
    supervisors: Vec<std::thread::JoinHandle<()>>,
}

/// Start every configured reader.
pub fn start(shared: Arc<Shared>) -> Devices {
    let mut slots = Vec::new();
    let mut supervisors = Vec::new();
    for config in shared.config.readers.clone() {
        let slot: Slot = Arc::new(Mutex::new(None));
        shared
            .reader_slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(config.name.clone(), slot.clone());
        let (shared, thread_slot) = (shared.clone(), slot.clone());
        let runtime = tokio::runtime::Handle::current();
        let name = format!("supervise-{}", config.name);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || supervise(config, shared, thread_slot, runtime));
        match spawned {
            Ok(t) => supervisors.push(t),
            Err(e) => tracing::error!(error = %e, "cannot start a reader supervisor"),
        }
        slots.push(slot);
    }
    Devices { slots, supervisors }
}

impl Devices {
    /// Stop every device and wait for the threads to end.
    pub async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || {
            for slot in &self.slots {
                let handle = lock(slot).take();
                if let Some(h) = handle {
                    h.stop();
                }
            }
            for t in self.supervisors {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<ReaderHandle>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

fn supervise(
    config: ReaderConfig,
    shared: Arc<Shared>,
    slot: Slot,
    runtime: tokio::runtime::Handle,
) {
    let reader = config.name.clone();
    let mut delay = Duration::from_millis(250);
    loop {
        let (tx, rx) = mpsc::channel();
        {
            let mut guard = lock(&slot);
            if shared.shutdown.is_cancelled() {
                return;
            }
            match ReaderDevice::spawn(config.clone(), tx) {
                Ok(handle) => *guard = Some(handle),
                Err(e) => {
                    // Checked at config load; a failure here is permanent.
                    drop(guard);
                    shared.set_device_state(
                        &reader,
                        DeviceState::HardwareError,
                        Some(e.to_string()),
                    );
                    return;
                }
            }
        }
        let mut saw_events = false;
        for event in rx {
            saw_events = true;
            apply(&shared, &reader, event);
        }
        // The device thread ended: on shutdown that is expected.
        if shared.shutdown.is_cancelled() {
            return;
        }
        if let Some(h) = lock(&slot).take() {
            h.stop();
        }
        shared.set_device_state(
            &reader,
            DeviceState::HardwareError,
            Some("reader thread stopped; restarting".into()),
        );
        tracing::error!(reader = %reader, ?delay, "reader thread ended; restarting");
        if saw_events {
            delay = Duration::from_millis(250);
        }
        // Wait, but wake at once on shutdown.
        let _ = runtime.block_on(tokio::time::timeout(delay, shared.shutdown.cancelled()));
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
}

fn apply(shared: &Shared, reader: &str, event: ReaderEvent) {
    match event {
        ReaderEvent::State { state, detail, .. } => {
            shared.set_device_state(reader, map_state(state), detail)
        }
        ReaderEvent::Attached { .. } => shared.set_attached(reader, true),
        ReaderEvent::Detached { .. } => shared.set_attached(reader, false),
        ReaderEvent::CardPresent { .. } => shared.card_present(reader, true),
        ReaderEvent::CardAbsent { .. } => shared.card_present(reader, false),
        ReaderEvent::CardRead { read, started, .. } => {
            let read_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            shared.card_read(reader, read, read_ms);
        }
        ReaderEvent::ReadFailed { reason, .. } => {
            shared.read_failed(reader, reason.code, &reason.message)
        }
        ReaderEvent::SamId { sam_id, .. } => shared.set_sam_id(reader, sam_id),
    }
}

pub(crate) fn map_state(state: kiosk_idreader::DeviceState) -> DeviceState {
    use kiosk_idreader::DeviceState as S;
    match state {
        S::Starting => DeviceState::Starting,
        S::Online => DeviceState::Online,
        S::Offline => DeviceState::Offline,
        S::NoDevice => DeviceState::NoDevice,
        S::HardwareError => DeviceState::HardwareError,
        S::Busy => DeviceState::Busy,
    }
}
