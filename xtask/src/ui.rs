//! Starting kiosk-ui from the xtask: on the desktop's display when there is
//! one, else on an Xvfb virtual display (headless machines, CI).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::processes::bin;

/// A display for kiosk-ui: the session's own, or an Xvfb this owns.
pub struct Display {
    pub name: String,
    /// Our Xvfb, stopped when the guard holding it drops.
    pub xvfb: Option<Child>,
}

/// The desktop's display if there is one; otherwise start Xvfb.
pub fn display(force_virtual: bool) -> Result<Display> {
    if !force_virtual {
        if let Ok(name) = std::env::var("DISPLAY")
            && !name.is_empty()
        {
            return Ok(Display { name, xvfb: None });
        }
        if std::env::var_os("WAYLAND_DISPLAY").is_some() {
            return Ok(Display {
                name: String::new(),
                xvfb: None,
            });
        }
    }
    start_xvfb()
}

/// Xvfb on the first free display number from :90, loopback only.
pub fn start_xvfb() -> Result<Display> {
    for n in 90..140 {
        let lock = format!("/tmp/.X{n}-lock");
        if Path::new(&lock).exists() {
            continue;
        }
        let name = format!(":{n}");
        let mut child = Command::new("Xvfb")
            .args([&name, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting Xvfb (apt package xvfb)")?;
        let socket = format!("/tmp/.X11-unix/X{n}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !Path::new(&socket).exists() {
            if let Ok(Some(status)) = child.try_wait() {
                // Another one took the number meanwhile: try the next.
                if status.success() || Path::new(&lock).exists() {
                    break;
                }
                bail!("Xvfb {name} exited ({status})");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("Xvfb {name} did not start within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if Path::new(&socket).exists() && child.try_wait()?.is_none() {
            return Ok(Display {
                name,
                xvfb: Some(child),
            });
        }
    }
    bail!("no free X display number between :90 and :139")
}

/// Start kiosk-ui on `display` against kioskd's `socket`; its log (debug
/// level for kiosk-ui) goes to `log`.
pub fn start_ui(
    socket: &Path,
    display: &Display,
    release: bool,
    log: &Path,
    extra_args: &[&str],
) -> Result<Child> {
    let log_file = std::fs::File::create(log)?;
    let mut cmd = Command::new(bin("kiosk-ui", release));
    cmd.arg("--socket")
        .arg(socket)
        .args(extra_args)
        .env("RUST_LOG", "info,kiosk_ui=debug")
        // librime's user directory goes beside the log, in the run's own
        // directory: a kiosk-ui killed outright leaves nothing in /tmp.
        .env("TMPDIR", log.parent().unwrap_or(Path::new(".")))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    if !display.name.is_empty() {
        cmd.env("DISPLAY", &display.name);
    }
    cmd.spawn().context("starting kiosk-ui")
}

/// Wait until kiosk-ui's log has a line containing every one of `needles`;
/// the line.
pub fn wait_log(
    log: &Path,
    needles: &[&str],
    child: &mut Child,
    within: Duration,
) -> Result<String> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return Ok(line.to_string());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("kiosk-ui exited ({status}) before logging {needles:?}:\n{text}");
        }
        if Instant::now() > deadline {
            bail!("kiosk-ui did not log {needles:?} within {within:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number after `key=` in a log line.
pub fn field(line: &str, key: &str) -> Option<f64> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
