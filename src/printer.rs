//! The ticket printer in kioskd: one `kiosk-escpos` device loop (its own
//! thread, which reopens the port by its path after an unplug), whose
//! events become the printer's state in `status` and `device_state` events.
//! The handle is kept in [`Shared`] for printing (rule Q4: faults show in
//! `kioskctl status`; paper near end is a warning for the technician).

use std::sync::{Arc, Weak};

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

/// The printer driver's state as the local API shows it.
pub fn map_state(state: kiosk_escpos::DeviceState) -> DeviceState {
    use kiosk_escpos::DeviceState as S;
    match state {
        S::Starting => DeviceState::Starting,
        S::Online => DeviceState::Online,
        S::Offline => DeviceState::Offline,
        S::NoDevice => DeviceState::NoDevice,
        S::HardwareError => DeviceState::HardwareError,
        S::Busy => DeviceState::Busy,
    }
}

/// Start the configured printer, if any; its handle goes into `shared`.
pub fn start(shared: &Arc<Shared>) {
    let Some(section) = shared.config.printer.clone() else {
        return;
    };
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let sink = kiosk_escpos::device::EventSink::from_fn(move |event| {
        if let Some(shared) = weak.upgrade() {
            shared.printer_event(event);
        }
    });
    match PrinterDevice::spawn(section.name.clone(), section.driver_config(), sink) {
        Ok(handle) => shared.set_printer_handle(Some(Arc::new(handle))),
        Err(e) => {
            tracing::error!(printer = %section.name, error = %e, "cannot start the printer");
            shared.printer_event(PrinterEvent::State {
                printer: section.name.clone(),
                state: kiosk_escpos::DeviceState::HardwareError,
                detail: Some(e.to_string()),
            });
        }
    }
}

/// Stop the printer's device loop (waits for a print in progress).
pub async fn stop(shared: &Arc<Shared>) {
    let Some(handle) = shared.take_printer_handle() else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || match Arc::try_unwrap(handle) {
        Ok(h) => h.stop(),
        // A print still holds it: dropping the last reference stops it.
        Err(shared_handle) => drop(shared_handle),
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
                    p.state = map_state(state);
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
