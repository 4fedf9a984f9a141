//! What every simulated serial device shares: a pseudo-terminal behind a
//! stable symlink (as udev makes `/dev/serial/by-id/...`) that can be
//! unplugged and plugged in again, the worker thread that reads what the
//! kiosk writes while obeying control messages, and the handle that drives
//! that thread.
//!
//! # Design
//!
//! A simulator is two halves joined by a channel of [`PortCtrl`]s:
//!
//! * the handle ([`PtyHandle`], inside `SamSim` and `PrinterSim`) starts
//!   the worker, asks it to unplug, replug or do something of the device's
//!   own and waits for the answer; dropping it stops the worker and
//!   removes the link;
//! * the worker (a [`PtyDevice`], driven by [`run`] on its own thread) owns
//!   the [`PtyPort`] and the device's protocol.
//!
//! Stopping, unplugging and replugging are carried out here, once, for
//! every device. A device adds only its protocol ([`PtyDevice::on_bytes`]),
//! its own control messages ([`PtyDevice::control`]: the printer's
//! injected bytes) and what it does when its pty goes or comes
//! ([`PtyDevice::unplugged`], [`PtyDevice::plugged`]: the SAM forgets a
//! half-read frame, the printer interrupts its ticket).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};
use tracing::{info, warn};

use crate::error::{Result, SimError};

/// How often a worker looks at its control channel while idle.
const POLL: Duration = Duration::from_millis(50);

/// What a worker does next.
pub(crate) enum Flow {
    /// Go on reading.
    Go,
    /// The pty went away (unplugged, replugged): drop what was read.
    Abandon,
    /// The simulator is being dropped.
    Stop,
}

/// The pty pair: the master we talk through, and our own slave fd, kept
/// open so the pty survives the kiosk closing it (and so its termios, i.e.
/// the kiosk's baud rate, can be read).
pub(crate) struct Pty {
    pub(crate) master: TTYPort,
    pub(crate) slave: TTYPort,
    pub(crate) path: PathBuf,
}

impl Pty {
    fn open(baud: u32) -> Result<Pty> {
        let serial = |context: &str| {
            let context = context.to_string();
            move |source| SimError::Serial { context, source }
        };
        let (master, mut slave) = TTYPort::pair().map_err(serial("creating a pty pair"))?;
        // `pair` opens the master without close-on-exec: a kioskd the test
        // starts would inherit it and keep the pty alive after an unplug.
        // The clone is close-on-exec; the original closes here.
        let mut master = master
            .try_clone_native()
            .map_err(serial("making the pty master close-on-exec"))?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| SimError::Io {
                context: "pty slave has no name".into(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        // The kiosk's serial port sets the speed it wants; start at ours.
        slave
            .set_baud_rate(baud)
            .map_err(serial("setting the pty's baud rate"))?;
        master
            .set_timeout(POLL)
            .map_err(serial("setting the pty read timeout"))?;
        Ok(Pty {
            master,
            slave,
            path,
        })
    }

    /// Send `bytes` to the kiosk, flushed.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.master.write_all(bytes)?;
        self.master.flush()
    }
}

/// Where the worker answers a request of the handle's.
pub(crate) type Done = SyncSender<Result<()>>;

/// A message from a simulator's handle to its worker: the port's own
/// (stop, unplug, replug), or one of the device's ([`PtyDevice::Ctrl`]).
#[derive(Debug)]
pub(crate) enum PortCtrl<X> {
    /// The handle is being dropped.
    Stop,
    /// Unplug; answered once the link is gone and the pty closed.
    Unplug(Done),
    /// Plug in (again); answered once the link points to the new pty.
    Replug(Done),
    /// The device's own request, for [`PtyDevice::control`].
    Device(X),
}

/// The worker's end of a simulated device: a pty behind `link`, or nothing
/// while unplugged, and the control channel from the handle. The pty's
/// path is shared with the handle.
pub(crate) struct PtyPort<X> {
    /// `SAM`, `printer`: for the log.
    what: &'static str,
    link: PathBuf,
    baud: u32,
    pty: Option<Pty>,
    shown: Arc<Mutex<Option<PathBuf>>>,
    ctrl: Receiver<PortCtrl<X>>,
}

impl<X> PtyPort<X> {
    /// A new pty at `baud`, `link` pointing to it.
    fn plug_in(
        what: &'static str,
        link: &Path,
        baud: u32,
        ctrl: Receiver<PortCtrl<X>>,
    ) -> Result<PtyPort<X>> {
        let mut port = PtyPort {
            what,
            link: link.to_path_buf(),
            baud,
            pty: None,
            shown: Arc::new(Mutex::new(None)),
            ctrl,
        };
        port.replug()?;
        Ok(port)
    }

    pub(crate) fn pty(&self) -> Option<&Pty> {
        self.pty.as_ref()
    }

    pub(crate) fn pty_mut(&mut self) -> Option<&mut Pty> {
        self.pty.as_mut()
    }

    /// The speed the kiosk set on its end, if plugged in.
    pub(crate) fn kiosk_baud(&self) -> Option<u32> {
        self.pty.as_ref().and_then(|p| p.slave.baud_rate().ok())
    }

    /// Take the device away: the link goes, then the pty is handed back
    /// for the caller to close once its own bookkeeping is done (the kiosk
    /// sees the hang-up only when it is dropped). `None` if unplugged.
    fn unplug(&mut self) -> Option<Pty> {
        let pty = self.pty.take()?;
        remove_link(&self.link);
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = None;
        info!(link = %self.link.display(), "{} simulator unplugged", self.what);
        Some(pty)
    }

    /// Plug in on a new pty (replacing a pty still there: the device
    /// reappears on another `/dev/pts/N` behind the same link).
    fn replug(&mut self) -> Result<()> {
        let pty = Pty::open(self.baud)?;
        point_link(&self.link, &pty.path)?;
        info!(link = %self.link.display(), pty = %pty.path.display(), baud = self.baud, "{} simulator plugged in", self.what);
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = Some(pty.path.clone());
        self.pty = Some(pty);
        Ok(())
    }
}

/// A simulated serial device: the worker half, served by [`run`].
pub(crate) trait PtyDevice: Send + 'static {
    /// The device's own control messages ([`std::convert::Infallible`]
    /// when it has none).
    type Ctrl: Send + 'static;
    /// `SAM`, `printer`: for the log and error messages.
    const WHAT: &'static str;
    /// `sam`, `printer`: names the worker thread (`kiosk-sim-{ID}`) and the
    /// handle's [`SimError::Stopped`].
    const ID: &'static str;
    /// Whether a replug while still plugged in moves the device to a new
    /// pty (the SAM: the kiosk must follow it behind the link) or leaves it
    /// as it is (the printer: only an unplugged printer is plugged in).
    const REPLUG_MOVES: bool;

    fn port(&mut self) -> &mut PtyPort<Self::Ctrl>;
    /// One of the device's own control messages.
    fn control(&mut self, msg: Self::Ctrl) -> Flow;
    /// What the kiosk wrote (at most [`PtyDevice::chunk`] bytes at a time).
    fn on_bytes(&mut self, bytes: &[u8]) -> Flow;

    /// The most bytes one read takes.
    fn chunk(&self) -> usize {
        4096
    }

    /// The pty was taken away. It is closed once this returns, so the
    /// kiosk sees the hang-up only after the device's bookkeeping.
    fn unplugged(&mut self) {}

    /// Plugged in on a new pty: what the old one carried is gone.
    fn plugged(&mut self) {}
}

/// The worker loop: control messages first, then what the kiosk wrote, in
/// reads of at most [`PtyDevice::chunk`] bytes; while unplugged only
/// control messages. Returns when told to stop or when the handle is gone.
fn run<D: PtyDevice>(device: &mut D) {
    let mut buf = vec![0u8; device.chunk()];
    loop {
        loop {
            match device.port().ctrl.try_recv() {
                Ok(msg) => {
                    if let Flow::Stop = obey(device, msg) {
                        return;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let Some(pty) = device.port().pty.as_mut() else {
            // Unplugged: nothing to do until told.
            let flow = match device.port().ctrl.recv() {
                Ok(msg) => obey(device, msg),
                Err(_) => return,
            };
            if let Flow::Stop = flow {
                return;
            }
            continue;
        };
        let flow = match pty.master.read(&mut buf) {
            Ok(0) => idle(device),
            Ok(n) => device.on_bytes(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Flow::Go
            }
            Err(e) => {
                warn!(error = %e, "{} pty read failed", D::WHAT);
                idle(device)
            }
        };
        if let Flow::Stop = flow {
            return;
        }
    }
}

/// Carry out one control message: stopping, unplugging and replugging
/// here, the device's own messages in [`PtyDevice::control`].
fn obey<D: PtyDevice>(device: &mut D, msg: PortCtrl<D::Ctrl>) -> Flow {
    match msg {
        PortCtrl::Stop => Flow::Stop,
        PortCtrl::Unplug(done) => {
            unplug(device);
            let _ = done.send(Ok(()));
            Flow::Abandon
        }
        PortCtrl::Replug(done) => {
            let _ = done.send(replug(device));
            Flow::Abandon
        }
        PortCtrl::Device(msg) => device.control(msg),
    }
}

/// Unplug, if plugged in: the link goes, the device does its bookkeeping
/// ([`PtyDevice::unplugged`]), then the pty is closed.
pub(crate) fn unplug<D: PtyDevice>(device: &mut D) {
    if let Some(pty) = device.port().unplug() {
        device.unplugged();
        drop(pty);
    }
}

/// Plug in on a new pty (see [`PtyDevice::REPLUG_MOVES`] for a device
/// still plugged in).
fn replug<D: PtyDevice>(device: &mut D) -> Result<()> {
    if !D::REPLUG_MOVES && device.port().pty.is_some() {
        return Ok(());
    }
    device.port().replug()?;
    device.plugged();
    Ok(())
}

/// Wait one poll period for a control message (instead of spinning on a
/// broken pty).
fn idle<D: PtyDevice>(device: &mut D) -> Flow {
    match device.port().ctrl.recv_timeout(POLL) {
        Ok(msg) => obey(device, msg),
        Err(RecvTimeoutError::Timeout) => Flow::Go,
        Err(RecvTimeoutError::Disconnected) => Flow::Stop,
    }
}

/// Let `d` pass (a slow answer, emulated wire time), still obeying control
/// messages: `Abandon` if the pty went away meanwhile (what was being
/// handled is lost with the old pty), `Stop` if told to stop.
pub(crate) fn wait<D: PtyDevice>(device: &mut D, d: Duration) -> Flow {
    let deadline = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Flow::Go;
        }
        match device.port().ctrl.recv_timeout(deadline - now) {
            Ok(msg) => {
                if let flow @ (Flow::Stop | Flow::Abandon) = obey(device, msg) {
                    return flow;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Flow::Stop,
        }
    }
}

/// The handle's half of a simulated serial device: the worker thread, the
/// channel to it and the link it keeps. Requests return once the worker has
/// carried them out; dropping the handle stops the worker and removes the
/// link.
#[derive(Debug)]
pub(crate) struct PtyHandle<X> {
    /// [`PtyDevice::ID`], for [`SimError::Stopped`].
    id: &'static str,
    link: PathBuf,
    baud: u32,
    shown: Arc<Mutex<Option<PathBuf>>>,
    ctrl: Sender<PortCtrl<X>>,
    thread: Option<JoinHandle<()>>,
}

impl<X: Send + 'static> PtyHandle<X> {
    /// Plug a new pty in behind `link` at `baud`, and serve it on a thread
    /// of its own with the worker `device` builds around the port.
    pub(crate) fn start<D: PtyDevice<Ctrl = X>>(
        link: &Path,
        baud: u32,
        device: impl FnOnce(PtyPort<X>) -> D,
    ) -> Result<PtyHandle<X>> {
        let (ctrl, ctrl_rx) = mpsc::channel();
        let port = PtyPort::plug_in(D::WHAT, link, baud, ctrl_rx)?;
        let shown = port.shown.clone();
        let mut device = device(port);
        let thread = std::thread::Builder::new()
            .name(format!("kiosk-sim-{}", D::ID))
            .spawn(move || run(&mut device))
            .map_err(SimError::io(format!("spawning the {} thread", D::WHAT)))?;
        Ok(PtyHandle {
            id: D::ID,
            link: link.to_path_buf(),
            baud,
            shown,
            ctrl,
            thread: Some(thread),
        })
    }
}

impl<X> PtyHandle<X> {
    /// The stable path the kiosk opens.
    pub(crate) fn link(&self) -> &Path {
        &self.link
    }

    /// The device's configured line speed.
    pub(crate) fn baud(&self) -> u32 {
        self.baud
    }

    /// The pty slave the link points to now (`None` while unplugged).
    pub(crate) fn pty_path(&self) -> Option<PathBuf> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn is_plugged(&self) -> bool {
        self.pty_path().is_some()
    }

    /// Unplug: the link is removed and the pty master closed. Returns once
    /// that is done.
    pub(crate) fn unplug(&self) -> Result<()> {
        self.call(PortCtrl::Unplug)
    }

    /// Plug in: a new pty behind the same link. Returns once the link is
    /// in place.
    pub(crate) fn replug(&self) -> Result<()> {
        self.call(PortCtrl::Replug)
    }

    /// Send the worker the request `make` builds around a reply channel,
    /// and wait for its answer.
    pub(crate) fn call(&self, make: impl FnOnce(Done) -> PortCtrl<X>) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.ctrl
            .send(make(tx))
            .map_err(|_| SimError::Stopped(self.id))?;
        rx.recv().map_err(|_| SimError::Stopped(self.id))?
    }
}

impl<X> Drop for PtyHandle<X> {
    fn drop(&mut self) {
        let _ = self.ctrl.send(PortCtrl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        remove_link(&self.link);
    }
}

/// Create or atomically replace the symlink `link` → `target`.
fn point_link(link: &Path, target: &Path) -> Result<()> {
    if let Some(parent) = link.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(SimError::io(format!("creating {}", parent.display())))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(link)
        && !meta.file_type().is_symlink()
    {
        return Err(SimError::LinkOccupied(link.to_path_buf()));
    }
    let file_name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = link.with_file_name(format!(".{file_name}.kiosk-sim-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .map_err(SimError::io(format!("creating symlink {}", tmp.display())))?;
    std::fs::rename(&tmp, link).map_err(SimError::io(format!(
        "moving symlink to {}",
        link.display()
    )))
}

/// Remove `link` if it is a symlink.
fn remove_link(link: &Path) {
    if std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
        let _ = std::fs::remove_file(link);
    }
}

// An FTDI-like USB-serial adapter in front of a simulated device: it
// holds every answer for its latency timer, which lives in a simulated
// sysfs (`class/tty/<pty>/device/latency_timer`) the kiosk may lower.

/// The emulated adapter's latency timer file for the pty at `pty`.
pub fn adapter_timer_file(sysfs: &Path, pty: &Path) -> Option<PathBuf> {
    let name = pty.file_name()?;
    Some(
        sysfs
            .join("class/tty")
            .join(name)
            .join("device/latency_timer"),
    )
}

/// Make the latency timer of an adapter plugged in on `pty`, at the
/// default 16 ms.
pub(crate) fn new_adapter_timer(sysfs: &Path, pty: &Path) {
    let Some(file) = adapter_timer_file(sysfs, pty) else {
        return;
    };
    let made = file
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| std::fs::write(&file, "16"));
    if let Err(e) = made {
        warn!(error = %e, "cannot make the adapter's latency timer");
    }
}

/// How long an emulated adapter on `pty` holds an answer: its latency
/// timer (16 ms if unreadable, as a fresh FTDI adapter).
pub(crate) fn adapter_latency(sysfs: &Path, pty: &Path) -> Duration {
    let ms = adapter_timer_file(sysfs, pty)
        .and_then(|file| std::fs::read_to_string(file).ok())
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(16);
    Duration::from_millis(ms)
}

/// Time `bytes` take on a UART at `baud` (8N1: 10 bits a byte).
pub fn wire_time(bytes: usize, baud: u32) -> Duration {
    if baud == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(bytes as u64 * 10 * 1_000_000 / u64::from(baud))
}
