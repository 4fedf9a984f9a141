//! Device supervision: one thread per device (each ID reader, owned by
//! `kiosk-idreader`'s `ReaderDevice`; the ticket printer, by
//! `kiosk-escpos`'s `PrinterDevice`), and one supervisor thread per device
//! (`run_supervised`) that turns its events into daemon state and API
//! events, and restarts the device if its thread ever ends while the
//! daemon runs.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use kiosk_device::Backoff;
use kiosk_idreader::{ReaderConfig, ReaderDevice, ReaderHandle};
use kiosk_proto::DeviceState;
use tokio_util::sync::CancellationToken;

use crate::readers::{Readers, Slot};

/// Shortest wait before restarting a device whose thread ended...
const MIN_RESTART_DELAY: Duration = Duration::from_millis(250);
/// ...and the longest.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// The running devices.
#[derive(Debug)]
pub struct Devices {
    slots: Vec<Slot>,
    supervisors: Vec<std::thread::JoinHandle<()>>,
}

/// Start every configured reader, each under its supervisor thread; their
/// events go to `readers`.
pub fn start(
    configs: &[ReaderConfig],
    readers: &Arc<Readers>,
    shutdown: &CancellationToken,
) -> Devices {
    let mut slots = Vec::new();
    let mut supervisors = Vec::new();
    for config in configs.iter().cloned() {
        let Some(slot) = readers.slot(&config.name).cloned() else {
            continue;
        };
        let (readers, thread_slot, shutdown) = (readers.clone(), slot.clone(), shutdown.clone());
        let runtime = tokio::runtime::Handle::current();
        let name = format!("supervise-{}", config.name);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || supervise(config, readers, thread_slot, shutdown, runtime));
        match spawned {
            Ok(t) => supervisors.push(t),
            Err(e) => tracing::error!(error = %e, "cannot start a reader supervisor"),
        }
        slots.push(slot);
    }
    Devices { slots, supervisors }
}

impl Devices {
    /// The names of the supervisor threads that have ended (none should
    /// before the shutdown: they restart their device forever).
    pub fn stopped(&self) -> Vec<String> {
        self.supervisors
            .iter()
            .filter(|t| t.is_finished())
            .map(|t| t.thread().name().unwrap_or("reader").to_string())
            .collect()
    }

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
    readers: Arc<Readers>,
    slot: Slot,
    shutdown: CancellationToken,
    runtime: tokio::runtime::Handle,
) {
    let reader = config.name.clone();
    let lifecycle = Lifecycle {
        stopping: || shutdown.is_cancelled(),
        wait: |delay| {
            // Wait, but wake at once on shutdown.
            let _ = runtime.block_on(tokio::time::timeout(delay, shutdown.cancelled()));
        },
    };
    run_supervised(
        &reader,
        &lifecycle,
        |tx| {
            let mut guard = lock(&slot);
            if shutdown.is_cancelled() {
                return Ok(false);
            }
            // Checked at config load; a failure here is permanent.
            *guard = Some(ReaderDevice::spawn(config.clone(), tx).map_err(|e| e.to_string())?);
            Ok(true)
        },
        || {
            if let Some(h) = lock(&slot).take() {
                h.stop();
            }
        },
        |event| readers.apply(&reader, event),
        |state, detail| readers.set_device_state(&reader, state, Some(detail)),
    );
}

/// When the daemon is stopping, and how a supervisor waits (waking at
/// once when it stops).
pub(crate) struct Lifecycle<S, W> {
    pub(crate) stopping: S,
    pub(crate) wait: W,
}

/// One owner per device, and never a device left dead: `start` spawns the
/// device's thread with the sending end of its events (`Ok(false)`: the
/// daemon is stopping, nothing started); its events go to `apply` until
/// the thread ends. When it ends while the daemon runs (a bug in a driver,
/// a panic), `retire` stops what is left of it, `report` tells the
/// technician, and it is started again after a growing delay (back to the
/// shortest once a restarted device worked). A device that cannot be
/// started at all (a configuration the driver refuses) is reported once.
pub(crate) fn run_supervised<E>(
    device: &str,
    lifecycle: &Lifecycle<impl Fn() -> bool, impl Fn(Duration)>,
    mut start: impl FnMut(mpsc::Sender<E>) -> Result<bool, String>,
    mut retire: impl FnMut(),
    mut apply: impl FnMut(E),
    mut report: impl FnMut(DeviceState, String),
) {
    let mut restart = Backoff::new(MIN_RESTART_DELAY, MAX_RESTART_DELAY);
    loop {
        let (tx, rx) = mpsc::channel();
        match start(tx) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                report(DeviceState::HardwareError, e);
                return;
            }
        }
        let mut saw_events = false;
        for event in rx {
            saw_events = true;
            apply(event);
        }
        // The device thread ended: on shutdown that is expected.
        if (lifecycle.stopping)() {
            return;
        }
        retire();
        report(
            DeviceState::HardwareError,
            "device thread stopped; restarting".into(),
        );
        if saw_events {
            restart.reset();
        }
        let delay = restart.next_delay();
        tracing::error!(device, ?delay, "device thread ended; restarting");
        (lifecycle.wait)(delay);
        if (lifecycle.stopping)() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A device whose thread dies twice (the first time before saying
    /// anything, the second after one event) is restarted each time, the
    /// technician is told, the wait grows and is back to the shortest once
    /// the device had worked; a stopping daemon starts nothing more.
    #[test]
    fn a_device_whose_thread_ends_is_reported_and_started_again() {
        let waits = RefCell::new(Vec::new());
        let lifecycle = Lifecycle {
            stopping: || false,
            wait: |d| waits.borrow_mut().push(d),
        };
        let (mut starts, mut retired, mut applied, mut reports) = (0, 0, Vec::new(), Vec::new());
        run_supervised(
            "printer",
            &lifecycle,
            |tx: mpsc::Sender<&'static str>| {
                starts += 1;
                match starts {
                    1 => drop(tx),
                    2 => tx.send("online").expect("send"),
                    3 => {
                        std::thread::spawn(move || {
                            let _ = tx.send("online again");
                        })
                        .join()
                        .expect("thread");
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            },
            || retired += 1,
            |e| applied.push(e),
            |state, detail| reports.push((state, detail)),
        );
        assert_eq!(starts, 4);
        assert_eq!(retired, 3);
        assert_eq!(applied, ["online", "online again"]);
        assert_eq!(reports.len(), 3);
        assert!(
            reports
                .iter()
                .all(|(s, d)| *s == DeviceState::HardwareError && d.contains("restarting"))
        );
        assert_eq!(
            waits.into_inner(),
            [MIN_RESTART_DELAY, MIN_RESTART_DELAY, MIN_RESTART_DELAY]
        );
    }

    /// A device the driver refuses to start is reported once, not retried.
    #[test]
    fn a_device_that_cannot_start_is_reported_once() {
        let lifecycle = Lifecycle {
            stopping: || false,
            wait: |_| panic!("no restart"),
        };
        let mut reports = Vec::new();
        run_supervised(
            "desk",
            &lifecycle,
            |_tx: mpsc::Sender<()>| Err("bad config".into()),
            || {},
            |_| {},
            |state, detail| reports.push((state, detail)),
        );
        assert_eq!(
            reports,
            [(DeviceState::HardwareError, "bad config".to_string())]
        );
    }
}
