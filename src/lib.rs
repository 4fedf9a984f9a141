//! The kiosk daemon `kioskd` and the technician CLI `kioskctl`.
//!
//! kioskd owns the hardware and is the only process that ever holds a
//! customer's full card data. Its shape:
//!
//! * [`config`]: the TOML configuration, checked at start.
//! * [`devices`]: one supervised thread per ID reader (from `kiosk-idreader`);
//!   each reports state changes and card reads as events. A reader thread
//!   that dies is restarted; unplugging is an event, not an error path.
//! * [`daemon`]: the shared state (device states, the card currently on
//!   each reader) and the event bus.
//! * [`api`]: the local API on a Unix socket, JSON lines (`kiosk-proto`).
//! * [`masking`]: the only road from a full identity to what leaves the
//!   daemon (rule S1).
//!
//! Personal data never reaches a log line: device code logs reader names,
//! states and masked forms only.

pub mod api;
pub mod config;
pub mod daemon;
pub mod devices;
pub mod logging;
pub mod masking;

use std::path::PathBuf;

/// Errors of the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {} is invalid:\n  {}", path.display(), problems.join("\n  "))]
    Config {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("cannot listen on {}: {source}", path.display())]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another kioskd is already listening on {}", path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
