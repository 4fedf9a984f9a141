//! The kiosk's processes as the xtask starts them (demo, bench, tests):
//! where the binaries are, starting kioskd and waiting until it is ready,
//! and stopping every child when done.

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::root;

/// Children that are stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Guard(pub Vec<(String, Child)>);

impl Drop for Guard {
    fn drop(&mut self) {
        for (name, child) in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        eprintln!("xtask: {name} did not stop; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub fn build_binaries(release: bool) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "build",
        "--quiet",
        "-p",
        "kiosk",
        "-p",
        "kiosk-sim",
        "-p",
        "kiosk-ui",
        "--bins",
    ];
    if release {
        args.push("--release");
    }
    crate::run_in_root(&cargo, &args)
}

/// The release binaries the benchmarks start (kiosk-ui only when its
/// section runs).
pub fn build_release_binaries(with_ui: bool) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "build",
        "--quiet",
        "--release",
        "-p",
        "kiosk",
        "-p",
        "kiosk-sim",
    ];
    if with_ui {
        args.extend(["-p", "kiosk-ui"]);
    }
    args.push("--bins");
    crate::run_in_root(&cargo, &args)
}

pub fn bin(name: &str, release: bool) -> PathBuf {
    target_dir()
        .join(if release { "release" } else { "debug" })
        .join(name)
}

/// Wait until something accepts connections on a Unix socket.
pub fn wait_for_socket(path: &Path, what: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(path).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{what} exited ({status}) before it was ready");
        }
        if Instant::now() > deadline {
            bail!("{what} did not open {} within 30 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Start kioskd on `config` and wait for its sd_notify READY=1.
pub fn start_kioskd(config: &Path, dir: &Path, release: bool, log: Stdio) -> Result<Child> {
    let notify_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).context("notify socket")?;
    notify.set_read_timeout(Some(Duration::from_secs(30)))?;
    let child = Command::new(bin("kioskd", release))
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting kioskd")?;
    let mut buf = [0u8; 32];
    match notify.recv(&mut buf) {
        Ok(n) if buf[..n].starts_with(b"READY=1") => Ok(child),
        other => bail!("kioskd did not report ready: {other:?}"),
    }
}

/// A 32-byte key as hex, mode 0600 (the core bank's shared key).
pub fn write_random_hex_key(path: &Path) -> Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(hex.as_bytes())?;
    Ok(())
}

/// Wait until something accepts TCP connections at `addr`.
pub fn wait_for_tcp(addr: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the process for {addr} exited ({status}) before it listened");
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
