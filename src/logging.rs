//! tracing, one line per event. Under systemd (stderr is the journal:
//! `JOURNAL_STREAM` names stderr's device and inode) events go to journald
//! as structured entries whose priority follows the level (error → 3 err,
//! warn → 4 warning, info → 5 notice, debug → 6, trace → 7), so
//! `journalctl -p warning -u kioskd` shows the problems only. Elsewhere they
//! go to stderr as text or JSON. `KIOSK_LOG` overrides the configured
//! filter.

use crate::config::{LogFormat, LogSection};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Install the global subscriber. Safe to call once per process.
pub fn init(log: &LogSection) {
    let filter = std::env::var("KIOSK_LOG")
        .ok()
        .and_then(|f| f.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| EnvFilter::new(&log.level));
    if stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref())
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(journald.with_syslog_identifier("kioskd".into()))
            .try_init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Whether `journal_stream` (`JOURNAL_STREAM`, "DEVICE:INODE") is this
/// process's stderr: systemd sets it for a unit whose output goes to the
/// journal, and a child with redirected stderr inherits it, hence the
/// comparison.
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse::<u64>().is_ok_and(|d| d == stat.st_dev)
        && ino.parse::<u64>().is_ok_and(|i| i == stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::stderr_is_journal;

    #[test]
    fn journal_stream_must_name_stderr_itself() {
        let stat = nix::sys::stat::fstat(std::io::stderr()).expect("fstat stderr");
        let own = format!("{}:{}", stat.st_dev, stat.st_ino);
        assert!(stderr_is_journal(Some(&own)));
        let other = format!("{}:{}", stat.st_dev, stat.st_ino.wrapping_add(1));
        assert!(!stderr_is_journal(Some(&other)));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(None));
    }
}
