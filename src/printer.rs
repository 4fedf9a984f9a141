//! The ticket printer in kioskd: one `kiosk-escpos` device loop (its own
//! thread, which reopens the port by its path after an unplug), supervised
//! and restarted like the readers, whose events become the printer's state
//! in `status` and `device_state` events.
//! The handle is kept in [`Shared`] for printing (rule Q4: faults show in
//! `kioskctl status`; paper near end is a warning for the technician).

use std::sync::Arc;

use kiosk_escpos::{PrinterDevice, PrinterEvent, Warning};
use kiosk_proto::DeviceState;

use crate::daemon::Shared;

/// What the daemon knows of the printer.
#[derive(Debug, Clone)]
pub struct PrinterState {
    pub name: String,
    pub state: DeviceState,
    /// Why it is not online (the fault), if known.
    pub fault_detail: Option<String>,
    pub warnings: Vec<Warning>,
    pub last_error: Option<String>,
}

impl PrinterState {
    pub fn new(name: &str) -> PrinterState {
        PrinterState {
            name: name.to_string(),
            state: DeviceState::Starting,
            fault_detail: None,
            warnings: Vec::new(),
            last_error: None,
        }
    }

    /// The detail shown in `status`: the fault, or the warning while it
    /// prints.
    pub fn detail(&self) -> Option<String> {
        if self.state == DeviceState::Online {
            self.warnings.first().map(|w| warning_text(*w).to_string())
        } else {
            self.fault_detail.clone()
        }
    }
}

/// The technician's text for a warning.
pub fn warning_text(w: Warning) -> &'static str {
    match w {
        Warning::PaperNearEnd => "paper_near_end: the paper roll is near its end",
    }
}

/// Start the configured printer, if any, under its supervisor thread
/// (restarted like the readers, [`crate::devices::run_supervised`]); the
/// running printer's handle is kept in `shared`.
pub fn start(shared: &Arc<Shared>) -> Option<std::thread::JoinHandle<()>> {
    let section = shared.config.printer.clone()?;
    let shared = shared.clone();
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name(format!("supervise-{}", section.name))
        .spawn(move || {
            let lifecycle = crate::devices::Lifecycle {
                stopping: || shared.shutdown.is_cancelled(),
                wait: |delay| {
                    let _ =
                        runtime.block_on(tokio::time::timeout(delay, shared.shutdown.cancelled()));
                },
            };
            let starting = &shared;
            crate::devices::run_supervised(
                &section.name,
                &lifecycle,
                |tx| {
                    let mut slot = starting.printer_slot();
                    if starting.shutdown.is_cancelled() {
                        return Ok(false);
                    }
                    let handle =
                        PrinterDevice::spawn(section.name.clone(), section.driver_config(), tx)
                            .map_err(|e| e.to_string())?;
                    *slot = Some(Arc::new(handle));
                    Ok(true)
                },
                || retire(starting.take_printer_handle()),
                |event| shared.printer_event(event),
                |state, detail| {
                    tracing::error!(printer = %section.name, detail, "printer");
                    shared.printer_event(PrinterEvent::State {
                        printer: section.name.clone(),
                        state,
                        detail: Some(detail),
                    });
                },
            );
        });
    match spawned {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the printer's supervisor");
            None
        }
    }
}

/// Stop a printer's device loop (waits for a print in progress; a print
/// still holding it stops it when done).
fn retire(handle: Option<Arc<kiosk_escpos::PrinterHandle>>) {
    if let Some(handle) = handle {
        match Arc::try_unwrap(handle) {
            Ok(h) => h.stop(),
            Err(shared_handle) => drop(shared_handle),
        }
    }
}

/// Stop the printer and its supervisor (the daemon is stopping).
pub async fn stop(shared: &Arc<Shared>, supervisor: Option<std::thread::JoinHandle<()>>) {
    let handle = shared.take_printer_handle();
    let _ = tokio::task::spawn_blocking(move || {
        retire(handle);
        if let Some(t) = supervisor {
            let _ = t.join();
        }
    })
    .await;
}

impl Shared {
    /// Apply one printer event (called on the printer's thread).
    pub(crate) fn printer_event(&self, event: PrinterEvent) {
        let changed = {
            let mut slot = self.printer_state_mut();
            let Some(p) = slot.as_mut() else {
                return;
            };
            let before = (p.state, p.detail());
            match event {
                PrinterEvent::State { state, detail, .. } => {
                    p.state = state;
                    if p.state != DeviceState::Online {
                        if let Some(d) = &detail {
                            p.last_error = Some(d.clone());
                        }
                        p.fault_detail = detail;
                    } else {
                        p.fault_detail = None;
                    }
                }
                PrinterEvent::Status { warnings, .. } => p.warnings = warnings,
                PrinterEvent::Fault { fault, .. } => {
                    p.last_error = Some(fault.to_string());
                }
            }
            let after = (p.state, p.detail());
            (before != after).then(|| (p.name.clone(), after))
        };
        if let Some((name, (state, detail))) = changed {
            tracing::info!(printer = %name, %state, detail = detail.as_deref().unwrap_or(""), "device state");
            self.emit(kiosk_proto::Event::DeviceState {
                device: name,
                state,
                detail,
            });
        }
    }
}
