//! Start kioskd as a real process on a temporary config and talk to it.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use kiosk_proto::{CardReadInfo, Client, DeviceState, Event};

/// How long a test waits for anything before failing.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running kioskd on its own temporary directory.
pub struct Kioskd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    log_path: PathBuf,
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
        Kioskd::start_profile("smart_teller", api_toml, extra_toml, allow_direct_changes)
    }

    /// Like [`Kioskd::start_full`], as a kiosk of `profile`.
    pub fn start_profile(
        profile: &str,
        api_toml: &str,
        extra_toml: &str,
        allow_direct_changes: bool,
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
        };
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
        let child = Command::new(env!("CARGO_BIN_EXE_kioskd"))
            .arg("--config")
            .arg(&self.config_path)
            .env("NOTIFY_SOCKET", &notify_path)
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
    }

    /// Stop with SIGKILL (no chance to clean up) and start again on the
    /// same config.
    pub fn restart_hard(&mut self) {
        self.kill();
        self.spawn();
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

/// Wait until `reader` is in `state` (the client must be subscribed, so
/// nothing between the check and the wait is missed).
pub async fn wait_state(client: &mut Client, reader: &str, state: DeviceState) {
    let readers = client.readers().await.expect("readers");
    if readers.iter().any(|r| r.name == reader && r.state == state) {
        return;
    }
    let r = client
        .wait_event(DEADLINE, |e| match e {
            Event::DeviceState {
                device, state: s, ..
            } if device == reader && *s == state => Some(()),
            _ => None,
        })
        .await;
    r.unwrap_or_else(|e| panic!("{reader} never became {state}: {e}"));
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
