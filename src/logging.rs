//! tracing to stderr, one line per event (journald adds the timestamp and
//! unit). `KIOSK_LOG` overrides the configured filter.

use crate::config::{LogFormat, LogSection};
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call once per process.
pub fn init(log: &LogSection) {
    let filter = std::env::var("KIOSK_LOG")
        .ok()
        .and_then(|f| f.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
