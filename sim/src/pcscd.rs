//! A private pcscd for tests, with vpcd readers for virtual cards.
//!
//! pcscd's client socket (`/run/pcscd/pcscd.comm`) is machine-wide, so only
//! one pcscd can serve at a time. [`Pcscd::start`] first takes an exclusive
//! lock on [`LOCK_PATH`] (held until the handle drops: other tests wait
//! their turn) and refuses to start while a pcscd it did not start is alive.
//!
//! vpcd listens for virtual cards on `INADDR_ANY` (see [`crate::vicc`] for
//! why it cannot be the other way round with the installed vpcd), so pcscd
//! runs in a network namespace of its own, made with `ip netns add` and
//! holding only loopback: vpcd's ports exist nowhere else. Clients still
//! reach pcscd through its Unix socket, which network namespaces do not
//! separate. A [`crate::VirtualCard`] reaches vpcd by joining the namespace
//! (by default it follows this process's running `Pcscd`, see
//! [`harness_netns`]). Needs root (or
//! CAP_SYS_ADMIN and CAP_NET_ADMIN), `ip` (iproute2) and `nsenter` (util-linux).

use std::fs::{File, OpenOptions};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tracing::{info, warn};

use crate::error::{Result, SimError};

/// pcscd's client socket.
pub const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";
/// pcscd's pid file.
pub const PCSCD_PID_FILE: &str = "/run/pcscd/pcscd.pid";
/// The machine-wide lock serialising users of pcscd.
pub const LOCK_PATH: &str = "/tmp/kiosk-pcscd.lock";
/// The vpcd driver (Debian's vsmartcard-vpcd).
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// The friendly name of the vpcd readers; pcscd names them
/// `Virtual PCD 00 00`, `Virtual PCD 00 01` (then `01 00`, `01 01` for a
/// second configured port, and so on).
pub const FRIENDLY_NAME: &str = "Virtual PCD";

/// How long to wait for the lock, for pcscd to come up, and for it to stop.
const LOCK_DEADLINE: Duration = Duration::from_secs(300);
const READY_DEADLINE: Duration = Duration::from_secs(15);
const STOP_DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// A pcscd started by this process (`pcscd -f -d -c DIR` in a private
/// network namespace), its config directory and log in a temporary directory.
#[derive(Debug)]
pub struct Pcscd {
    netns: Netns,
    dir: TempDir,
    conf_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    _lock: File,
}

impl Pcscd {
    /// Start pcscd with one vpcd reader entry per port (each entry gives
    /// two readers, listening on `port` and `port + 1` inside the
    /// namespace), and wait until it accepts clients.
    ///
    /// [`crate::VirtualCard`]s of this process without an explicit
    /// [`crate::ViccConfig::netns`] follow it into [`Pcscd::netns`]; they may
    /// start before or after pcscd (they connect, and retry until vpcd
    /// listens).
    ///
    /// pcscd inherits the calling thread's signal mask: do not start (or
    /// restart) it from a thread that blocks SIGTERM, or it cannot be
    /// stopped cleanly (the stop then falls back to SIGKILL after 5 s).
    pub fn start(conf_ports: &[u16]) -> Result<Pcscd> {
        let lock = take_lock()?;
        let netns = Netns::create()?;
        let dir = tempfile::Builder::new()
            .prefix("kiosk-pcscd-")
            .tempdir()
            .map_err(SimError::io("creating pcscd's temporary directory"))?;
        let conf_dir = dir.path().join("reader.conf.d");
        std::fs::create_dir(&conf_dir).map_err(SimError::io("creating reader.conf.d"))?;
        for port in conf_ports {
            let conf = format!(
                "FRIENDLYNAME \"{FRIENDLY_NAME}\"\nDEVICENAME /dev/null:0x{port:04X}\nLIBPATH {VPCD_DRIVER}\nCHANNELID 0x{port:04X}\n"
            );
            let path = conf_dir.join(format!("vpcd-{port}"));
            std::fs::write(&path, conf)
                .map_err(SimError::io(format!("writing {}", path.display())))?;
        }
        let log_path = dir.path().join("pcscd.log");
        let mut pcscd = Pcscd {
            netns,
            dir,
            conf_dir,
            log_path,
            child: None,
            _lock: lock,
        };
        pcscd.launch()?;
        set_harness_netns(Some(pcscd.netns.path.clone()));
        Ok(pcscd)
    }

    /// The network namespace pcscd runs in (`/run/netns/NAME`).
    pub fn netns(&self) -> &Path {
        &self.netns.path
    }

    /// The daemon's log (stdout and stderr, debug level).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The temporary directory holding the config and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Is the daemon still running?
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stop (SIGTERM, wait) and start again with the same readers.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// SIGKILL the daemon (as a crash would) and reap it; it leaves its
    /// socket and pid file behind, which the next start cleans up.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            info!(pid = child.id(), "killing pcscd");
            let _ = child.kill();
            child.wait().map_err(SimError::io("reaping pcscd"))?;
        }
        Ok(())
    }

    /// Stop the daemon: SIGTERM, wait, SIGKILL if it does not exit in time.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = Pid::from_raw(child.id() as i32);
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Ok(());
        }
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    info!(%status, "pcscd stopped");
                    return Ok(());
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Err(SimError::io("waiting for pcscd")(e)),
            }
        }
        warn!("pcscd ignored SIGTERM, killing it");
        let _ = child.kill();
        child.wait().map_err(SimError::io("reaping pcscd"))?;
        Ok(())
    }

    fn launch(&mut self) -> Result<()> {
        check_no_foreign_pcscd()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(SimError::io(format!("opening {}", self.log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(SimError::io("duplicating the log file"))?;
        let program = if Path::new("/usr/sbin/pcscd").exists() {
            "/usr/sbin/pcscd"
        } else {
            "pcscd"
        };
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.path.display()))
            .arg("--")
            .arg(program)
            .arg("--foreground")
            .arg("--debug")
            .arg("--config")
            .arg(&self.conf_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(SimError::io(format!("starting {program}")))?;
        info!(pid = child.id(), conf = %self.conf_dir.display(), "pcscd started");
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(SimError::Pcscd(format!(
                    "exited during start-up ({status}); log:\n{}",
                    tail(&self.log())
                )));
            }
            if UnixStream::connect(PCSCD_SOCKET).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.stop();
                return Err(SimError::Timeout {
                    what: format!("pcscd to accept clients on {PCSCD_SOCKET}"),
                    after: READY_DEADLINE,
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        set_harness_netns(None);
        if let Err(e) = self.stop() {
            warn!(error = %e, "stopping pcscd");
        }
    }
}

/// The network namespace of this process's running [`Pcscd`], if any.
/// Virtual cards without an explicit namespace connect inside it
/// ([`crate::ViccConfig::netns`]).
pub fn harness_netns() -> Option<PathBuf> {
    HARNESS_NETNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

static HARNESS_NETNS: Mutex<Option<PathBuf>> = Mutex::new(None);

fn set_harness_netns(path: Option<PathBuf>) {
    *HARNESS_NETNS.lock().unwrap_or_else(|e| e.into_inner()) = path;
}

/// A named network namespace with loopback up (`ip netns add`), deleted on drop.
#[derive(Debug)]
struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    fn create() -> Result<Netns> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        remove_stale_netns();
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NETNS_PREFIX}{}-{n}", std::process::id());
        let path = PathBuf::from("/run/netns").join(&name);
        if path.exists() {
            let _ = ip(&["netns", "delete", &name]);
        }
        ip(&["netns", "add", &name])?;
        let netns = Netns { name, path };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            warn!(error = %e, "deleting network namespace");
        }
    }
}

const NETNS_PREFIX: &str = "kiosk-pcscd-";

/// Delete namespaces left by harnesses whose process is gone.
fn remove_stale_netns() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(NETNS_PREFIX)
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 != std::process::id() && kill(Pid::from_raw(pid), None).is_err() {
            info!(netns = %name, "removing a stale network namespace");
            let _ = ip(&["netns", "delete", &name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(SimError::io(format!("running ip {}", args.join(" "))))?;
    if !out.status.success() {
        return Err(SimError::Pcscd(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn take_lock() -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(LOCK_PATH)
        .map_err(SimError::io(format!("opening {LOCK_PATH}")))?;
    let deadline = Instant::now() + LOCK_DEADLINE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(POLL * 5)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SimError::Timeout {
                    what: format!("the pcscd lock {LOCK_PATH}"),
                    after: LOCK_DEADLINE,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(SimError::io(format!("locking {LOCK_PATH}"))(e));
            }
        }
    }
}

/// Refuse if a pcscd this process did not start is alive; clean up what a
/// dead one left behind. Called with the lock held and no pcscd of ours running.
fn check_no_foreign_pcscd() -> Result<()> {
    // pcscd writes "PID\n\0".
    let pid = std::fs::read_to_string(PCSCD_PID_FILE).ok().and_then(|s| {
        s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .parse::<i32>()
            .ok()
    });
    let alive = pid.filter(|&p| is_pcscd(p));
    let listening = UnixStream::connect(PCSCD_SOCKET).is_ok();
    if alive.is_some() || listening {
        return Err(SimError::ForeignPcscd {
            pid: alive.or(pid),
            socket: PCSCD_SOCKET.into(),
        });
    }
    if Path::new(PCSCD_SOCKET).exists() {
        info!("removing a stale {PCSCD_SOCKET}");
        let _ = std::fs::remove_file(PCSCD_SOCKET);
    }
    if pid.is_some() {
        let _ = std::fs::remove_file(PCSCD_PID_FILE);
    }
    Ok(())
}

/// Is `pid` a live pcscd process?
fn is_pcscd(pid: i32) -> bool {
    let alive = match kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    };
    alive
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim() == "pcscd")
            .unwrap_or(true)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
