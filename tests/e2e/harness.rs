//! Start kioskd as a real process on a temporary config and talk to it.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kiosk_proto::{CardReadInfo, Client, DeviceState, Event};

/// How long a test waits for anything before failing.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Write `text` to a new file at `path` with mode 0600, as a key file
/// must be (kioskd refuses a key open to its group or others).
pub fn write_secret(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("open key file");
    f.write_all(text.as_bytes()).expect("write key file");
}

/// A tiny deterministic generator for fault and kill schedules.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number below `below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// A running kioskd on its own temporary directory.
pub struct Kioskd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    log_path: PathBuf,
    /// Run kioskd as this uid and gid (no supplementary groups).
    run_as: Option<(u32, u32)>,
    /// Extra environment variables for kioskd.
    env: Vec<(String, String)>,
    /// The service manager's end of `NOTIFY_SOCKET` for the current run.
    notify: Option<UnixDatagram>,
}

impl Kioskd {
    /// Write a config with these extra tables (readers, store, ...) and
    /// start kioskd, returning once it reports ready (sd_notify protocol,
    /// no polling).
    pub fn start(extra_toml: &str) -> Kioskd {
        Kioskd::start_with(extra_toml, false)
    }

    /// Like [`Kioskd::start`]; `allow_direct_changes` opens the test-only
    /// `submit_change` method.
    pub fn start_with(extra_toml: &str, allow_direct_changes: bool) -> Kioskd {
        Kioskd::start_full("", extra_toml, allow_direct_changes)
    }

    /// Like [`Kioskd::start_with`], with `api_toml` lines added to `[api]`.
    pub fn start_full(api_toml: &str, extra_toml: &str, allow_direct_changes: bool) -> Kioskd {
        Kioskd::start_config(
            "smart_teller",
            api_toml,
            extra_toml,
            allow_direct_changes,
            None,
            &[],
        )
    }

    /// Like [`Kioskd::start_full`], as a kiosk of `profile`.
    pub fn start_profile(
        profile: &str,
        api_toml: &str,
        extra_toml: &str,
        allow_direct_changes: bool,
    ) -> Kioskd {
        Kioskd::start_config(
            profile,
            api_toml,
            extra_toml,
            allow_direct_changes,
            None,
            &[],
        )
    }

    /// Like [`Kioskd::start`], with these environment variables.
    pub fn start_env(extra_toml: &str, env: &[(String, String)]) -> Kioskd {
        Kioskd::start_config("smart_teller", "", extra_toml, false, None, env)
    }

    /// Like [`Kioskd::start`], run as `uid`:`gid` (the test runs as root).
    /// Its directory is opened to everyone so that user can work in it.
    pub fn start_as(extra_toml: &str, uid: u32, gid: u32) -> Kioskd {
        Kioskd::start_config("smart_teller", "", extra_toml, false, Some((uid, gid)), &[])
    }

    fn start_config(
        profile: &str,
        api_toml: &str,
        extra_toml: &str,
        allow_direct_changes: bool,
        run_as: Option<(u32, u32)>,
        env: &[(String, String)],
    ) -> Kioskd {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("kioskd.sock");
        let config_path = dir.path().join("kiosk.toml");
        let config = format!(
            r#"[kiosk]
id = "K-TEST-01"
branch_id = "0101"
branch_name = "Test branch"
profile = "{profile}"

[api]
socket = "{}"
allow_direct_changes = {allow_direct_changes}
{api_toml}

[log]
level = "trace"

{extra_toml}
"#,
            socket.display()
        );
        std::fs::write(&config_path, config).expect("write config");
        let mut k = Kioskd {
            child: None,
            dir,
            socket,
            config_path,
            log_path: PathBuf::new(),
            run_as,
            env: env.to_vec(),
            notify: None,
        };
        if run_as.is_some() {
            let open = std::fs::Permissions::from_mode(0o777);
            std::fs::set_permissions(k.dir.path(), open).expect("chmod dir");
        }
        k.spawn();
        k
    }

    fn spawn(&mut self) {
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        self.log_path = self.dir.path().join(format!("kioskd-{n}.log"));
        let notify_path = self.dir.path().join(format!("notify-{n}.sock"));
        let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
        notify.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let log = std::fs::File::create(&self.log_path).expect("log file");
        let mut command = if self.env.iter().any(|(k, _)| k == "WATCHDOG_USEC") {
            // systemd names the watched process in WATCHDOG_PID: the
            // shell's pid is kioskd's once it execs.
            let mut sh = Command::new("/bin/sh");
            sh.arg("-c")
                .arg(r#"export WATCHDOG_PID=$$; exec "$0" "$@""#)
                .arg(env!("CARGO_BIN_EXE_kioskd"));
            sh
        } else {
            Command::new(env!("CARGO_BIN_EXE_kioskd"))
        };
        if let Some((uid, gid)) = self.run_as {
            let open = std::fs::Permissions::from_mode(0o777);
            std::fs::set_permissions(&notify_path, open).expect("chmod notify socket");
            command.uid(uid).gid(gid);
        }
        let child = command
            .arg("--config")
            .arg(&self.config_path)
            .env("NOTIFY_SOCKET", &notify_path)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("KIOSK_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kioskd");
        self.child = Some(child);
        let mut buf = [0u8; 64];
        match notify.recv(&mut buf) {
            Ok(n) if buf[..n].starts_with(b"READY=1") => {}
            other => panic!("kioskd did not get ready: {other:?}\n{}", self.log()),
        }
        self.notify = Some(notify);
    }

    /// The next datagram kioskd sends the service manager after `READY=1`
    /// (waiting up to [`DEADLINE`]).
    pub fn next_notification(&self) -> String {
        let notify = self.notify.as_ref().expect("running");
        let mut buf = [0u8; 4096];
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification from kioskd: {e}\n{}", self.log()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// A datagram already sent to the service manager, if any (for after
    /// the process has exited: nothing more can come).
    pub fn next_notification_now(&self) -> Option<String> {
        let notify = self.notify.as_ref()?;
        notify.set_nonblocking(true).ok()?;
        let mut buf = [0u8; 4096];
        let got = notify.recv(&mut buf).ok();
        let _ = notify.set_nonblocking(false);
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Stop with SIGKILL (no chance to clean up) and start again on the
    /// same config.
    pub fn restart_hard(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Start kioskd again on the same config after [`Kioskd::kill`]
    /// (returning once it reports ready).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "kioskd is still running");
        self.spawn();
    }

    /// kioskd's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A line of `/proc/PID/FILE` of kioskd starting with `key` (e.g.
    /// `status`, `VmRSS:`), without the key.
    pub fn proc_line(&self, file: &str, key: &str) -> String {
        let path = format!("/proc/{}/{file}", self.pid());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {path}:\n{text}"))
            .trim()
            .to_string()
    }

    /// A `kB` value of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
    pub fn memory_bytes(&self, key: &str) -> u64 {
        let v = self.proc_line("status", &format!("{key}:"));
        let kib: u64 = v
            .strip_suffix(" kB")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key}: {v:?}"));
        kib * 1024
    }

    /// SIGKILL, and wait until the process is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket)
            .await
            .expect("connect to kioskd")
    }

    /// A client subscribed to events.
    pub async fn subscriber(&self) -> Client {
        let mut c = self.client().await;
        c.subscribe().await.expect("subscribe");
        c
    }

    /// Run kioskctl against this daemon.
    /// kioskd's socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    pub fn kioskctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kioskctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run kioskctl")
    }

    /// Start `kioskctl events ARGS` as a child process and return once it
    /// has subscribed (it says so on stderr), so no later event is missed.
    pub fn kioskctl_events(&self, args: &[&str]) -> EventsProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kioskctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .arg("events")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kioskctl events");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        stderr.read_line(&mut first).expect("kioskctl stderr");
        assert!(
            first.contains("subscribed"),
            "kioskctl events did not subscribe: {first:?}"
        );
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        EventsProcess {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Send SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        child.wait().expect("wait")
    }

    /// Is the process still running?
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything kioskd has logged (all runs).
    pub fn log(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for p in paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
            {
                let mut s = String::new();
                if let Ok(mut f) = std::fs::File::open(p) {
                    let _ = f.read_to_string(&mut s);
                }
                all.push_str(&s);
            }
        }
        all
    }
}

impl Drop for Kioskd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `kioskctl events` (see [`Kioskd::kioskctl_events`]); killed
/// when dropped.
pub struct EventsProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl EventsProcess {
    /// Read lines until one matches `pred` and return it (fails after
    /// [`DEADLINE`] or when kioskctl ends).
    pub fn line_matching(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "kioskctl events: no matching line ({e}); seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Kill kioskctl and return everything it printed.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe is closed now: the reader thread ends after the rest.
        while let Ok(line) = self.lines.recv_timeout(DEADLINE) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

impl Drop for EventsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `[printer]` table for the printer simulator at `path`.
pub fn printer_toml(name: &str, path: &Path, baud: u32) -> String {
    format!(
        "\n[printer]\nname = \"{name}\"\npath = \"{}\"\nbaud = {baud}\nwrite_timeout_ms = 3000\nstatus_timeout_ms = 1000\n",
        path.display()
    )
}

/// Wait until `device` (a reader or the printer, by name) is in `state`
/// as `status` reports it (the client must be subscribed, so nothing
/// between the check and the wait is missed). An event of the device only
/// sends the wait back to `status`: the subscriber's buffer may still hold
/// an old event naming `state` (the start's `online` while the printer is
/// unplugged again now).
pub async fn wait_device(client: &mut Client, device: &str, state: DeviceState) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let status = client.status().await.expect("status");
        if status
            .devices
            .iter()
            .any(|d| d.name == device && d.state == state)
        {
            return;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        client
            .wait_event(left, |e| match e {
                Event::DeviceState { device: d, .. } if d == device => Some(()),
                _ => None,
            })
            .await
            .unwrap_or_else(|e| panic!("{device} never became {state}: {e}"));
    }
}

/// Wait until `reader` is in `state` (see [`wait_device`]).
pub async fn wait_state(client: &mut Client, reader: &str, state: DeviceState) {
    wait_device(client, reader, state).await;
}

/// The next card read (`Ok`) or read failure (`Err((code, message))`).
pub async fn next_read(client: &mut kiosk_proto::Client) -> Result<CardReadInfo, (String, String)> {
    client
        .wait_event(DEADLINE, |e| match e {
            Event::CardRead {
                reader,
                identity,
                read_ms,
            } => Some(Ok(CardReadInfo {
                reader: reader.clone(),
                identity: identity.clone(),
                read_ms: *read_ms,
            })),
            Event::ReadFailed { code, message, .. } => Some(Err((code.clone(), message.clone()))),
            _ => None,
        })
        .await
        .expect("a card_read or read_failed event")
}

/// Wait for the card to leave the reader.
pub async fn wait_absent(client: &mut kiosk_proto::Client) {
    client
        .wait_event(DEADLINE, |e| {
            matches!(e, Event::CardAbsent { .. }).then_some(())
        })
        .await
        .expect("card absent event");
}
