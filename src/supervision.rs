//! kioskd as systemd sees it (`Type=notify`, `WatchdogSec=`), through the
//! `sd-notify` crate:
//!
//! * `READY=1` once the local API accepts clients, `STOPPING=1` when the
//!   shutdown begins;
//! * `STATUS=` lines for `systemctl status` ("2 of 2 readers online,
//!   printer online, backlog 0");
//! * `WATCHDOG=1` from the daemon's main loop, every half watchdog period,
//!   and only while every device supervisor and the sync worker are still
//!   running. A task that has ended (a panic, a bug) stops the pings, and
//!   systemd restarts kioskd after `WatchdogSec`, the same as for a
//!   daemon that hangs. A restart costs nothing: every change and ticket
//!   is committed before anyone hears of it.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) all of this does nothing.

use std::time::Duration;

use kiosk_proto::{DeviceState, StatusInfo};
use sd_notify::NotifyState;

/// How often `STATUS=` is refreshed when systemd does not ask for a
/// watchdog.
const STATUS_PERIOD: Duration = Duration::from_secs(10);

/// Tell the service manager that the daemon is serving.
pub fn notify_ready() {
    send(&[NotifyState::Ready]);
}

/// Tell the service manager that the daemon is stopping.
pub fn notify_stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}

/// How often the main loop reports: half the watchdog period systemd asked
/// for (`WATCHDOG_USEC` for this process), or every 10 s (`STATUS_PERIOD`) for the
/// status line alone.
pub fn period() -> (Duration, bool) {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        (
            Duration::from_micros(usec / 2).max(Duration::from_millis(50)),
            true,
        )
    } else {
        (STATUS_PERIOD, false)
    }
}

/// One report of the main loop: the status line, with a watchdog ping
/// when `watchdog` and nothing in `stopped` (the names of the long-lived
/// tasks that have ended).
pub fn report(status: &StatusInfo, stopped: &[String], watchdog: bool) {
    let line = status_line(status, stopped);
    if stopped.is_empty() {
        if watchdog {
            send(&[NotifyState::Status(&line), NotifyState::Watchdog]);
        } else {
            send(&[NotifyState::Status(&line)]);
        }
    } else {
        tracing::error!(stopped = %stopped.join(", "), "a kioskd task has stopped; the watchdog will restart kioskd");
        send(&[NotifyState::Status(&line)]);
    }
}

/// The `STATUS=` text: readers online of configured, the printer, the
/// sync backlog, and any task that has stopped. No personal data: device
/// names and counts only.
pub fn status_line(status: &StatusInfo, stopped: &[String]) -> String {
    let readers: Vec<_> = status
        .devices
        .iter()
        .filter(|d| d.kind == "id_reader")
        .collect();
    let online = readers
        .iter()
        .filter(|d| d.state == DeviceState::Online)
        .count();
    let mut line = format!("{online} of {} readers online", readers.len());
    if let Some(printer) = status.devices.iter().find(|d| d.kind == "printer") {
        line.push_str(&format!(", printer {}", printer.state.as_str()));
    }
    if let Some(backlog) = status.sync_backlog {
        line.push_str(&format!(", backlog {backlog}"));
    }
    if !stopped.is_empty() {
        line.push_str(&format!("; STOPPED: {}", stopped.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::status_line;
    use kiosk_proto::{DeviceInfo, DeviceState, StatusInfo};

    fn device(name: &str, kind: &str, state: DeviceState) -> DeviceInfo {
        DeviceInfo {
            name: name.into(),
            kind: kind.into(),
            state,
            detail: None,
            last_error: None,
            sam_id: None,
        }
    }

    fn status(devices: Vec<DeviceInfo>, backlog: Option<u64>) -> StatusInfo {
        StatusInfo {
            daemon_version: "0".into(),
            kiosk_id: "K1".into(),
            branch_id: "B1".into(),
            profile: "smart_teller".into(),
            uptime_s: 1,
            devices,
            sync_backlog: backlog,
            disk_free_bytes: None,
            disk_total_bytes: None,
            branch_name: "Test branch".into(),
            timezone: "Asia/Shanghai".into(),
        }
    }

    #[test]
    fn the_status_line_counts_readers_and_shows_printer_and_backlog() {
        let s = status(
            vec![
                device("desk", "id_reader", DeviceState::Online),
                device("side", "id_reader", DeviceState::Offline),
                device("receipt", "printer", DeviceState::Online),
            ],
            Some(3),
        );
        let line = status_line(&s, &[]);
        assert!(
            line.starts_with("1 of 2 readers online, printer "),
            "{line}"
        );
        assert!(line.ends_with(", backlog 3"), "{line}");
    }

    #[test]
    fn the_status_line_names_a_stopped_task() {
        let s = status(vec![], None);
        assert_eq!(
            status_line(&s, &["sync".into()]),
            "0 of 0 readers online; STOPPED: sync"
        );
    }
}
