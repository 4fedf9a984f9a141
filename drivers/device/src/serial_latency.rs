//! A USB-serial adapter's latency timer. FTDI adapters (and others with the
//! same sysfs attribute) hold short answers for up to `latency_timer` ms
//! (16 by default) before they pass them on: every GA 467 exchange, and
//! every printer status reply, then waits that long. The driver exposes the
//! timer as `/sys/class/tty/<tty>/device/latency_timer`; writing `1` asks
//! for the lowest latency. Ports without it (a UART, a pty, an adapter
//! whose driver has no such attribute) are left as they are.

use std::path::{Path, PathBuf};

/// What [`request_low_latency`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatencyTimer {
    /// It was `from_ms` and is now 1 ms.
    Lowered { from_ms: u32 },
    /// It already was 1 ms (or less).
    AlreadyLow,
    /// The port has no latency timer to set, or it could not be written
    /// (the reason, for the log).
    NotAdjustable(String),
}

/// The latency timer's file for the tty behind `port` (a by-id link is
/// followed to its `/dev/ttyUSBn`), under the sysfs mounted at `sysfs`.
pub fn latency_timer_file(port: &Path, sysfs: &Path) -> Option<PathBuf> {
    let tty = std::fs::canonicalize(port).ok()?;
    let name = tty.file_name()?;
    Some(
        sysfs
            .join("class/tty")
            .join(name)
            .join("device/latency_timer"),
    )
}

/// Ask the adapter behind `port` for its lowest latency (1 ms).
pub fn request_low_latency(port: &Path, sysfs: &Path) -> LatencyTimer {
    let Some(file) = latency_timer_file(port, sysfs) else {
        return LatencyTimer::NotAdjustable(format!("{} has no tty behind it", port.display()));
    };
    let current = match std::fs::read_to_string(&file) {
        Ok(text) => text.trim().parse::<u32>().ok(),
        Err(_) => {
            return LatencyTimer::NotAdjustable(
                "no latency timer (not an FTDI-like adapter)".into(),
            );
        }
    };
    match current {
        Some(ms) if ms <= 1 => LatencyTimer::AlreadyLow,
        Some(ms) => match std::fs::write(&file, "1") {
            Ok(()) => LatencyTimer::Lowered { from_ms: ms },
            Err(e) => LatencyTimer::NotAdjustable(format!("{}: {e}", file.display())),
        },
        None => LatencyTimer::NotAdjustable(format!("{} holds no number", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake sysfs: the tty behind a by-id link, its timer at 16 ms,
    /// lowered to 1; asked again, already low; a port without a timer is
    /// left alone.
    #[test]
    fn the_timer_behind_a_by_id_link_is_lowered_once() {
        let dir = tempfile::tempdir().expect("dir");
        let dev = dir.path().join("dev");
        std::fs::create_dir_all(dev.join("serial/by-id")).expect("dirs");
        std::fs::write(dev.join("ttyUSB0"), b"").expect("tty");
        let link = dev.join("serial/by-id/usb-FTDI-if00-port0");
        std::os::unix::fs::symlink(dev.join("ttyUSB0"), &link).expect("link");
        let sysfs = dir.path().join("sys");
        let timer = sysfs.join("class/tty/ttyUSB0/device/latency_timer");
        std::fs::create_dir_all(timer.parent().expect("parent")).expect("dirs");
        std::fs::write(&timer, "16\n").expect("timer");

        assert_eq!(latency_timer_file(&link, &sysfs), Some(timer.clone()));
        assert_eq!(
            request_low_latency(&link, &sysfs),
            LatencyTimer::Lowered { from_ms: 16 }
        );
        assert_eq!(std::fs::read_to_string(&timer).expect("read"), "1");
        assert_eq!(request_low_latency(&link, &sysfs), LatencyTimer::AlreadyLow);

        std::fs::write(dev.join("ttyS0"), b"").expect("uart");
        assert!(matches!(
            request_low_latency(&dev.join("ttyS0"), &sysfs),
            LatencyTimer::NotAdjustable(_)
        ));
    }
}
