//! What every simulated serial device shares: a pseudo-terminal behind a
//! stable symlink (as udev makes `/dev/serial/by-id/...`) that can be
//! unplugged and plugged in again, and the worker loop that reads what the
//! kiosk writes while obeying control messages. The SAM and the printer
//! simulators add only their protocol ([`PtyDevice::on_bytes`]) and their
//! own control messages.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serialport::{SerialPort, TTYPort};
use tracing::{info, warn};

use crate::error::{Result, SimError};

/// How often a worker looks at its control channel while idle.
pub(crate) const POLL: Duration = Duration::from_millis(50);

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
        let (mut master, mut slave) = TTYPort::pair().map_err(serial("creating a pty pair"))?;
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
}

/// A simulated device's port: a pty behind `link`, or nothing while
/// unplugged. The pty's path is shared with the simulator's handle.
pub(crate) struct PtyPort {
    /// `SAM`, `printer`: for the log.
    what: &'static str,
    link: PathBuf,
    baud: u32,
    pty: Option<Pty>,
    shown: Arc<Mutex<Option<PathBuf>>>,
}

impl PtyPort {
    /// A new pty at `baud`, `link` pointing to it.
    pub(crate) fn plug_in(what: &'static str, link: &Path, baud: u32) -> Result<PtyPort> {
        let mut port = PtyPort {
            what,
            link: link.to_path_buf(),
            baud,
            pty: None,
            shown: Arc::new(Mutex::new(None)),
        };
        port.replug()?;
        Ok(port)
    }

    /// The pty the link points to now (`None` while unplugged), as the
    /// simulator's handle sees it.
    pub(crate) fn shown_path(&self) -> Arc<Mutex<Option<PathBuf>>> {
        self.shown.clone()
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
    pub(crate) fn unplug(&mut self) -> Option<Pty> {
        let pty = self.pty.take()?;
        remove_link(&self.link);
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = None;
        info!(link = %self.link.display(), "{} simulator unplugged", self.what);
        Some(pty)
    }

    /// Plug in on a new pty (replacing a pty still there: the device
    /// reappears on another `/dev/pts/N` behind the same link).
    pub(crate) fn replug(&mut self) -> Result<()> {
        let pty = Pty::open(self.baud)?;
        point_link(&self.link, &pty.path)?;
        info!(link = %self.link.display(), pty = %pty.path.display(), baud = self.baud, "{} simulator plugged in", self.what);
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = Some(pty.path.clone());
        self.pty = Some(pty);
        Ok(())
    }
}

/// A simulated serial device served by [`run`].
pub(crate) trait PtyDevice {
    type Ctrl;
    fn port(&mut self) -> &mut PtyPort;
    fn ctrl(&self) -> &Receiver<Self::Ctrl>;
    fn control(&mut self, msg: Self::Ctrl) -> Flow;
    /// What the kiosk wrote (at most `chunk` bytes at a time).
    fn on_bytes(&mut self, bytes: &[u8]) -> Flow;
}

/// The worker loop: control messages first, then what the kiosk wrote, in
/// reads of at most `chunk` bytes; while unplugged only control messages.
/// Returns when told to stop or when the handle is gone.
pub(crate) fn run<D: PtyDevice>(device: &mut D, chunk: usize) {
    let mut buf = vec![0u8; chunk];
    loop {
        loop {
            match device.ctrl().try_recv() {
                Ok(msg) => {
                    if let Flow::Stop = device.control(msg) {
                        return;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let what = device.port().what;
        let Some(pty) = device.port().pty_mut() else {
            // Unplugged: nothing to do until told.
            let flow = match device.ctrl().recv() {
                Ok(msg) => device.control(msg),
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
                warn!(error = %e, "{what} pty read failed");
                idle(device)
            }
        };
        if let Flow::Stop = flow {
            return;
        }
    }
}

/// Wait one poll period for a control message (instead of spinning on a
/// broken pty).
pub(crate) fn idle<D: PtyDevice>(device: &mut D) -> Flow {
    match device.ctrl().recv_timeout(POLL) {
        Ok(msg) => device.control(msg),
        Err(RecvTimeoutError::Timeout) => Flow::Go,
        Err(RecvTimeoutError::Disconnected) => Flow::Stop,
    }
}

/// Create or atomically replace the symlink `link` → `target`.
pub(crate) fn point_link(link: &Path, target: &Path) -> Result<()> {
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
pub(crate) fn remove_link(link: &Path) {
    if std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
        let _ = std::fs::remove_file(link);
    }
}

/// Time `bytes` take on a UART at `baud` (8N1: 10 bits a byte).
pub fn wire_time(bytes: usize, baud: u32) -> Duration {
    if baud == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(bytes as u64 * 10 * 1_000_000 / u64::from(baud))
}
