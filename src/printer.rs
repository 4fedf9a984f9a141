//! The ticket printer in kioskd: one `kiosk-escpos` device loop (its own
//! thread, which reopens the port by its path after an unplug), supervised
//! and restarted like the readers, whose events become the printer's state
//! in `status` and `device_state` events.
//! The [`Printer`] service owns the running printer's handle and its
//! state, and prints tickets and slips for the queue and the sessions
//! (rule Q4: faults show in `kioskctl status`; paper near end is a warning
//! for the technician).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kiosk_escpos::{
    Document, EscposError, Printed, PrinterDevice, PrinterEvent, PrinterHandle, Warning,
};
use kiosk_proto::{DeviceInfo, DeviceState, Event};
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::config::PrinterSection;
use crate::devices::{Lifecycle, run_supervised};
use crate::flows::queue::PrintOutcome;

/// What the daemon knows of the printer.
#[derive(Debug, Clone)]
pub struct PrinterState {
    pub name: String,
    pub state: DeviceState,
    /// Why it is not online (the fault), if known.
    pub fault_detail: Option<String>,
    pub warnings: Vec<Warning>,
    /// What the driver says of an online printer (e.g. that a printer
    /// without a back channel gives no status).
    pub online_detail: Option<String>,
    pub last_error: Option<String>,
}

impl PrinterState {
    pub fn new(name: &str) -> PrinterState {
        PrinterState {
            name: name.to_string(),
            state: DeviceState::Starting,
            fault_detail: None,
            warnings: Vec::new(),
            online_detail: None,
            last_error: None,
        }
    }

    /// The detail shown in `status`: the fault, or while it prints the
    /// warning (else the driver's note, e.g. "status unknown").
    pub fn detail(&self) -> Option<String> {
        if self.state == DeviceState::Online {
            self.warnings
                .first()
                .map(|w| warning_text(*w).to_string())
                .or_else(|| self.online_detail.clone())
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

/// The printer service: the configured ticket printer (if any), its state
/// and its running handle.
#[derive(Debug)]
pub struct Printer {
    bus: Arc<Bus>,
    section: Option<PrinterSection>,
    state: Mutex<Option<PrinterState>>,
    /// The running printer (its supervisor puts each new handle in).
    handle: Mutex<Option<Arc<PrinterHandle>>>,
    shutdown: CancellationToken,
}

impl Printer {
    pub fn new(
        section: Option<PrinterSection>,
        bus: Arc<Bus>,
        shutdown: CancellationToken,
    ) -> Printer {
        Printer {
            bus,
            state: Mutex::new(section.as_ref().map(|p| PrinterState::new(&p.name))),
            section,
            handle: Mutex::new(None),
            shutdown,
        }
    }

    fn state_mut(&self) -> MutexGuard<'_, Option<PrinterState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self) -> MutexGuard<'_, Option<Arc<PrinterHandle>>> {
        self.handle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the kiosk has a printer configured.
    pub fn configured(&self) -> bool {
        self.section.is_some()
    }

    /// The printer's state as last reported.
    pub fn state(&self) -> Option<PrinterState> {
        self.state_mut().clone()
    }

    /// The printer as a device of `status`.
    pub fn device(&self) -> Option<DeviceInfo> {
        self.state().map(|p| DeviceInfo {
            detail: p.detail(),
            name: p.name,
            kind: "printer".into(),
            state: p.state,
            last_error: p.last_error,
            sam_id: None,
        })
    }

    /// The running printer, if any.
    pub fn handle(&self) -> Option<Arc<PrinterHandle>> {
        self.slot().clone()
    }

    /// Keep `detail` as the printer's last error (a print that failed).
    pub(crate) fn note_error(&self, detail: &str) {
        if let Some(p) = self.state_mut().as_mut() {
            p.last_error = Some(detail.to_string());
        }
    }

    /// Start the configured printer, if any, under its supervisor thread
    /// (restarted like the readers, `devices::run_supervised`).
    pub fn start(self: &Arc<Self>) -> Option<std::thread::JoinHandle<()>> {
        let section = self.section.clone()?;
        let printer = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let spawned = std::thread::Builder::new()
            .name(format!("supervise-{}", section.name))
            .spawn(move || {
                let lifecycle = Lifecycle {
                    stopping: || printer.shutdown.is_cancelled(),
                    wait: |delay| {
                        let _ = runtime
                            .block_on(tokio::time::timeout(delay, printer.shutdown.cancelled()));
                    },
                };
                run_supervised(
                    &section.name,
                    &lifecycle,
                    |tx| {
                        let mut slot = printer.slot();
                        if printer.shutdown.is_cancelled() {
                            return Ok(false);
                        }
                        let handle =
                            PrinterDevice::spawn(section.name.clone(), section.driver_config(), tx)
                                .map_err(|e| e.to_string())?;
                        *slot = Some(Arc::new(handle));
                        Ok(true)
                    },
                    || retire(printer.slot().take()),
                    |event| printer.apply(event),
                    |state, detail| {
                        tracing::error!(printer = %section.name, detail, "printer");
                        printer.apply(PrinterEvent::State {
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

    /// Stop the printer and its supervisor (the daemon is stopping).
    pub async fn stop(&self, supervisor: Option<std::thread::JoinHandle<()>>) {
        let handle = self.slot().take();
        let _ = tokio::task::spawn_blocking(move || {
            retire(handle);
            if let Some(t) = supervisor {
                let _ = t.join();
            }
        })
        .await;
    }

    /// Apply one printer event (called on the printer's supervisor thread).
    fn apply(&self, event: PrinterEvent) {
        let changed = {
            let mut slot = self.state_mut();
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
                        p.online_detail = None;
                    } else {
                        p.fault_detail = None;
                        p.online_detail = detail;
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
            self.bus.emit(Event::DeviceState {
                device: name,
                state,
                detail,
            });
        }
    }

    /// Print a customer's receipt (rule P6): the slip API of the customer
    /// flows. Every value on the slip must already be masked.
    pub async fn print_slip(&self, slip: &kiosk_escpos::Slip) -> PrintOutcome {
        self.print(slip.document()).await
    }

    /// How long a print may take at most (its status checks, its bytes).
    fn print_timeout(&self) -> Duration {
        self.section
            .as_ref()
            .map(|p| {
                let c = p.driver_config();
                let connect = match c.transport {
                    kiosk_escpos::Transport::Tcp => c.connect_timeout(),
                    _ => Duration::ZERO,
                };
                c.write_timeout() + c.status_timeout() * 4 + connect + Duration::from_secs(2)
            })
            .unwrap_or(Duration::from_secs(10))
    }

    /// Take the printer's next turn now and start its status check, for a
    /// document made ready meanwhile (a ticket whose number is being
    /// committed): see [`kiosk_escpos::PrinterHandle::reserve`]. Turns are
    /// served in the order taken. Cheap and non-blocking.
    pub fn reserve(&self) -> PrintTurn {
        let Some(handle) = self.handle() else {
            return PrintTurn(Err(PrintOutcome::NotPrinted {
                fault: None,
                reason: "no printer configured".into(),
            }));
        };
        // The wait for the document (a commit) is bounded by the store's
        // own timeout; a few seconds more than a print.
        let timeout = self.print_timeout() + Duration::from_secs(5);
        PrintTurn(
            handle
                .reserve(timeout)
                .map_err(|e| PrintOutcome::from_result(&Err(e))),
        )
    }

    /// Print `document` (blocking pool, bounded wait).
    pub async fn print(&self, document: Result<Document, EscposError>) -> PrintOutcome {
        let Some(handle) = self.handle() else {
            return PrintOutcome::NotPrinted {
                fault: None,
                reason: "no printer configured".into(),
            };
        };
        let document = match document {
            Ok(d) => d,
            Err(e) => {
                return PrintOutcome::NotPrinted {
                    fault: None,
                    reason: e.to_string(),
                };
            }
        };
        let timeout = self.print_timeout();
        let result: Result<Printed, EscposError> =
            tokio::task::spawn_blocking(move || handle.print(document, timeout))
                .await
                .unwrap_or(Err(EscposError::DeviceStopped));
        PrintOutcome::from_result(&result)
    }
}

/// A turn at the printer taken by [`Printer::reserve`]; dropping it
/// prints nothing.
#[derive(Debug)]
pub struct PrintTurn(Result<kiosk_escpos::PrintGate, PrintOutcome>);

impl PrintTurn {
    /// Print `document` in this turn (blocking pool, bounded wait).
    pub async fn print(self, document: Result<Document, EscposError>) -> PrintOutcome {
        let gate = match self.0 {
            Ok(gate) => gate,
            Err(outcome) => return outcome,
        };
        let document = match document {
            Ok(d) => d,
            Err(e) => {
                return PrintOutcome::NotPrinted {
                    fault: None,
                    reason: e.to_string(),
                };
            }
        };
        let result: Result<Printed, EscposError> =
            tokio::task::spawn_blocking(move || gate.print(document))
                .await
                .unwrap_or(Err(EscposError::DeviceStopped));
        PrintOutcome::from_result(&result)
    }
}

/// Stop a printer's device loop (waits for a print in progress; a print
/// still holding it stops it when done).
fn retire(handle: Option<Arc<PrinterHandle>>) {
    if let Some(handle) = handle {
        match Arc::try_unwrap(handle) {
            Ok(h) => h.stop(),
            Err(shared_handle) => drop(shared_handle),
        }
    }
}
