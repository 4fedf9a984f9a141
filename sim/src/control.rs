//! Runtime control of running simulators over a Unix socket, one JSON
//! object a line each way.
//!
//! Requests (`device` may be left out: the first configured device is meant):
//!
//! ```json
//! {"cmd":"place","device":"sam0","profile":"resident-expired"}
//! {"cmd":"remove","device":"sam0"}
//! {"cmd":"fault","device":"sam0","fault":{"kind":"slow","delay_ms":1500}}
//! {"cmd":"unplug","device":"sam0"}
//! {"cmd":"replug","device":"sam0"}
//! {"cmd":"stats"}
//! {"cmd":"devices"}
//! {"cmd":"printer_state","device":"printer0","state":"paper_out"}
//! {"cmd":"tickets","device":"printer0","clear":false}
//! ```
//!
//! `profile` is a built-in profile name or a path to a profile file.
//! `unplug` and `replug` work on SAM modules and printers; `place`,
//! `remove` and `fault` on card devices (SAMs and virtual cards);
//! `printer_state` and `tickets` on printers, and without a `device` they
//! mean the first printer. `state` is one of `ready`, `paper_near_end`,
//! `paper_out`, `cover_open`, `offline`, `cutter_error`. `tickets` answers
//! the tickets decoded so far (and, in `interrupted`, those left unfinished
//! by a state change or an unplug); `clear` forgets them once answered.
//! Answers: `{"ok":true}`, `{"ok":false,"error":"..."}`, with `stats` (by
//! device name), `devices` or `tickets` where asked.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::error::{Result, SimError};
use crate::printer::{DecodedTicket, PrinterSim, PrinterSimStats, PrinterState};
use crate::profile::{CardProfile, Fault};
use crate::sam::{SamSim, SamStats};
use crate::vicc::{ViccStats, VirtualCard};

/// One request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    Place {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        profile: String,
    },
    Remove {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    Fault {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        fault: Fault,
    },
    Unplug {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    Replug {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    Stats {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    Devices,
    /// Set a printer's state (paper, cover, offline, cutter).
    PrinterState {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        state: PrinterState,
    },
    /// The tickets a printer has decoded.
    Tickets {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// Forget them once answered.
        #[serde(default)]
        clear: bool,
    },
}

/// Counters of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceStats {
    Sam(SamStats),
    Card(ViccStats),
    Printer(PrinterSimStats),
}

/// The answer to a [`ControlRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResponse {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<BTreeMap<String, DeviceStats>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// The tickets cut, in order (`tickets` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tickets: Option<Vec<DecodedTicket>>,
    /// The tickets left unfinished (`tickets` requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Vec<DecodedTicket>>,
}

impl ControlResponse {
    fn ok() -> ControlResponse {
        ControlResponse {
            ok: true,
            ..Default::default()
        }
    }
    fn error(e: impl ToString) -> ControlResponse {
        ControlResponse {
            ok: false,
            error: Some(e.to_string()),
            ..Default::default()
        }
    }
}

/// A simulated device.
#[derive(Debug)]
pub enum Device {
    Sam(SamSim),
    Card(VirtualCard),
    Printer(PrinterSim),
}

impl Device {
    fn place(&self, name: &str, p: CardProfile) -> std::result::Result<(), String> {
        match self {
            Device::Sam(s) => s.place(p),
            Device::Card(c) => c.place(p),
            Device::Printer(_) => return Err(no_card(name)),
        }
        Ok(())
    }
    fn remove(&self, name: &str) -> std::result::Result<(), String> {
        match self {
            Device::Sam(s) => s.remove(),
            Device::Card(c) => c.remove(),
            Device::Printer(_) => return Err(no_card(name)),
        }
        Ok(())
    }
    fn set_fault(&self, name: &str, f: Fault) -> std::result::Result<(), String> {
        match self {
            Device::Sam(s) => s.set_fault(f),
            Device::Card(c) => c.set_fault(f),
            Device::Printer(_) => {
                return Err(format!(
                    "device {name} is a printer: set its state with printer_state"
                ));
            }
        }
        Ok(())
    }
    fn stats(&self) -> DeviceStats {
        match self {
            Device::Sam(s) => DeviceStats::Sam(s.stats()),
            Device::Card(c) => DeviceStats::Card(c.stats()),
            Device::Printer(p) => DeviceStats::Printer(p.stats()),
        }
    }
}

fn no_card(name: &str) -> String {
    format!("device {name} is a printer: it takes no card")
}

/// Named devices, in configuration order.
#[derive(Debug, Default)]
pub struct Devices {
    list: Vec<(String, Device)>,
}

impl Devices {
    pub fn new() -> Devices {
        Devices::default()
    }

    /// Add a device under `name` (names must be unique).
    pub fn add(&mut self, name: impl Into<String>, device: Device) -> Result<()> {
        let name = name.into();
        if self.get(&name).is_some() {
            return Err(SimError::Io {
                context: format!("device name {name} used twice"),
                source: std::io::ErrorKind::AlreadyExists.into(),
            });
        }
        self.list.push((name, device));
        Ok(())
    }

    /// A device by name.
    pub fn get(&self, name: &str) -> Option<&Device> {
        self.list.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// Device names in order.
    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|(n, _)| n.clone()).collect()
    }

    fn pick(&self, name: Option<&str>) -> std::result::Result<(&str, &Device), String> {
        match name {
            Some(n) => self
                .list
                .iter()
                .find(|(d, _)| d == n)
                .map(|(n, d)| (n.as_str(), d)),
            None => self.list.first().map(|(n, d)| (n.as_str(), d)),
        }
        .ok_or_else(|| {
            format!(
                "no device {:?} (devices: {})",
                name.unwrap_or("<first>"),
                self.names().join(", ")
            )
        })
    }

    /// A printer by name, or the first printer.
    fn pick_printer(&self, name: Option<&str>) -> std::result::Result<&PrinterSim, String> {
        if let Some(n) = name {
            return match self.pick(Some(n))? {
                (_, Device::Printer(p)) => Ok(p),
                _ => Err(format!("device {n} is not a printer")),
            };
        }
        self.list
            .iter()
            .find_map(|(_, d)| match d {
                Device::Printer(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| {
                format!(
                    "no printer configured (devices: {})",
                    self.names().join(", ")
                )
            })
    }

    /// Carry out one request.
    pub fn handle(&self, req: &ControlRequest) -> ControlResponse {
        match self.try_handle(req) {
            Ok(r) => r,
            Err(e) => ControlResponse::error(e),
        }
    }

    fn try_handle(&self, req: &ControlRequest) -> std::result::Result<ControlResponse, String> {
        match req {
            ControlRequest::Place { device, profile } => {
                let (name, d) = self.pick(device.as_deref())?;
                if matches!(d, Device::Printer(_)) {
                    return Err(no_card(name));
                }
                let p = CardProfile::resolve(profile).map_err(|e| e.to_string())?;
                d.place(name, p)?;
            }
            ControlRequest::Remove { device } => {
                let (name, d) = self.pick(device.as_deref())?;
                d.remove(name)?;
            }
            ControlRequest::Fault { device, fault } => {
                let (name, d) = self.pick(device.as_deref())?;
                d.set_fault(name, *fault)?;
            }
            ControlRequest::Unplug { device } | ControlRequest::Replug { device } => {
                let (name, d) = self.pick(device.as_deref())?;
                let unplug = matches!(req, ControlRequest::Unplug { .. });
                let r = match d {
                    Device::Sam(sam) if unplug => sam.unplug(),
                    Device::Sam(sam) => sam.replug(),
                    Device::Printer(p) if unplug => p.unplug(),
                    Device::Printer(p) => p.replug(),
                    Device::Card(_) => {
                        return Err(format!(
                            "device {name} is not a serial device: it cannot be unplugged"
                        ));
                    }
                };
                r.map_err(|e| e.to_string())?;
            }
            ControlRequest::PrinterState { device, state } => {
                self.pick_printer(device.as_deref())?.set_state(*state);
            }
            ControlRequest::Tickets { device, clear } => {
                let printer = self.pick_printer(device.as_deref())?;
                let (tickets, interrupted) = if *clear {
                    printer.take_tickets()
                } else {
                    (printer.tickets(), printer.interrupted())
                };
                return Ok(ControlResponse {
                    tickets: Some(tickets),
                    interrupted: Some(interrupted),
                    ..ControlResponse::ok()
                });
            }
            ControlRequest::Stats { device } => {
                let stats = match device {
                    Some(_) => {
                        let (name, d) = self.pick(device.as_deref())?;
                        BTreeMap::from([(name.to_string(), d.stats())])
                    }
                    None => self
                        .list
                        .iter()
                        .map(|(n, d)| (n.clone(), d.stats()))
                        .collect(),
                };
                return Ok(ControlResponse {
                    stats: Some(stats),
                    ..ControlResponse::ok()
                });
            }
            ControlRequest::Devices => {
                return Ok(ControlResponse {
                    devices: Some(self.names()),
                    ..ControlResponse::ok()
                });
            }
        }
        Ok(ControlResponse::ok())
    }
}

/// The control socket's server: a thread accepting connections, one thread
/// per connection. Drop stops it, closes the open connections, waits for
/// their threads (so none of them still holds the devices) and removes the
/// socket file.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    conns: Conns,
}

/// The open connections: a handle to shut each down, and its thread.
type Conns = Arc<Mutex<Vec<(UnixStream, JoinHandle<()>)>>>;

impl ControlServer {
    /// Listen on `path` (a stale socket file there is replaced; a live one is an error).
    pub fn start(path: impl Into<PathBuf>, devices: Arc<Devices>) -> Result<ControlServer> {
        let path = path.into();
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(SimError::Io {
                    context: format!(
                        "control socket {} is in use by another kiosk-sim",
                        path.display()
                    ),
                    source: std::io::ErrorKind::AddrInUse.into(),
                });
            }
            let _ = std::fs::remove_file(&path);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(SimError::io(format!("creating {}", parent.display())))?;
        }
        let listener = UnixListener::bind(&path)
            .map_err(SimError::io(format!("binding {}", path.display())))?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Conns::default();
        let thread = {
            let stop = stop.clone();
            let conns = conns.clone();
            std::thread::Builder::new()
                .name("kiosk-sim-control".into())
                .spawn(move || accept_loop(listener, devices, stop, conns))
                .map_err(SimError::io("spawning the control thread"))?
        };
        info!(socket = %path.display(), "control socket listening");
        Ok(ControlServer {
            path,
            stop,
            thread: Some(thread),
            conns,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The accept thread is gone: no connection is added any more. A
        // connection thread holds the devices until it returns, and a client
        // may keep its connection open: close each, then wait for its thread.
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(PoisonError::into_inner));
        for (conn, thread) in conns {
            let _ = conn.shutdown(Shutdown::Both);
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, devices: Arc<Devices>, stop: Arc<AtomicBool>, conns: Conns) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // A second handle on the socket, to shut it down from `Drop`.
        let (conn, handle) = match conn.and_then(|c| c.try_clone().map(|h| (c, h))) {
            Ok(pair) => pair,
            Err(e) => {
                warn!(error = %e, "control accept");
                continue;
            }
        };
        let devices = devices.clone();
        let spawned = std::thread::Builder::new()
            .name("kiosk-sim-control-conn".into())
            .spawn(move || serve(conn, &devices));
        match spawned {
            Ok(thread) => {
                let mut conns = conns.lock().unwrap_or_else(PoisonError::into_inner);
                conns.retain(|(_, t)| !t.is_finished());
                conns.push((handle, thread));
            }
            Err(e) => warn!(error = %e, "control connection thread"),
        }
    }
}

fn serve(conn: UnixStream, devices: &Devices) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let resp = match serde_json::from_str::<ControlRequest>(&line) {
            Ok(req) => {
                debug!(?req, "control request");
                devices.handle(&req)
            }
            Err(e) => ControlResponse::error(format!("bad request: {e}")),
        };
        let Ok(mut text) = serde_json::to_string(&resp) else {
            return;
        };
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// Send one request to a control socket and wait (up to `timeout`) for the answer.
pub fn send(
    path: impl AsRef<Path>,
    req: &ControlRequest,
    timeout: Duration,
) -> Result<ControlResponse> {
    let path = path.as_ref();
    let mut conn = UnixStream::connect(path)
        .map_err(SimError::io(format!("connecting to {}", path.display())))?;
    conn.set_read_timeout(Some(timeout))
        .map_err(SimError::io("setting a read timeout"))?;
    let mut text = serde_json::to_string(req).map_err(|e| SimError::Io {
        context: "encoding the request".into(),
        source: e.into(),
    })?;
    text.push('\n');
    conn.write_all(text.as_bytes())
        .map_err(SimError::io("sending the request"))?;
    let mut line = String::new();
    BufReader::new(conn)
        .read_line(&mut line)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => SimError::Timeout {
                what: "the control socket's answer".into(),
                after: timeout,
            },
            _ => SimError::io("reading the answer")(e),
        })?;
    serde_json::from_str(&line).map_err(|e| SimError::Io {
        context: format!("bad answer {line:?}"),
        source: e.into(),
    })
}
