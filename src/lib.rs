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
//! * [`hardening`]: core dumps off and the process not dumpable, before
//!   anything secret is read.
//! * [`store`]: the SQLite database: the outbox of confirmed changes
//!   (personal data encrypted at rest), the hash-chained audit trail and the
//!   queue counters (rules C1, S2, S3, Q2).
//! * [`session`]: one customer session at a time around the customer
//!   flows (ID validity update, mobile number change): the local API's
//!   `session_*` methods and `session` events.
//! * [`sync`]: delivers the outbox to the core bank: a state machine that
//!   decides (no I/O) and a thin loop that does the calls (rules C2, C4).
//!
//! Personal data never reaches a log line: device code logs reader names,
//! states and masked forms only.

pub mod access;
pub mod api;
pub mod branch;
pub mod bus;
pub mod changes;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod deps;
pub mod devices;
pub mod flows;
pub mod hardening;
pub mod logging;
pub mod masking;
pub mod metrics;
pub mod primary;
pub mod printer;
pub mod queue;
pub mod readers;
pub mod selftest;
pub mod services;
pub mod session;
pub mod store;
pub mod supervision;
pub mod sync;
pub mod technician;

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
    #[error("branch.listen: cannot listen on {addr}: {source}")]
    BranchListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The branch API's certificate or key cannot be used.
    #[error("branch: {0}")]
    BranchTls(String),
    #[error("metrics.listen: cannot listen on {addr}: {source}")]
    MetricsListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// `[api] group` or a role's group names a group this machine lacks.
    #[error("{key}: group {group:?} does not exist on this machine")]
    NoSuchGroup { key: &'static str, group: String },
    #[error("another kioskd is already listening on {}", path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("cannot disable core dumps: {what}: {source}")]
    Hardening {
        what: &'static str,
        source: nix::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The same long check is already running: try again when it is done.
    #[error("busy: {0}")]
    Busy(&'static str),
    #[error("core bank client: {0}")]
    CoreBank(String),

    // The store (`store`). No variant carries personal data: only paths,
    // change ids (UUIDs) and SQLite's own messages, which never quote values.
    /// The database (or its disk) is full: the write was rolled back,
    /// nothing was recorded, everything already stored is intact.
    #[error("the local database {} is full: nothing was recorded", path.display())]
    StoreFull { path: PathBuf },
    /// The database cannot be written (read-only file, file system or
    /// connection): nothing was recorded, what is stored can still be read.
    #[error("the local database {} is read-only: nothing was recorded", path.display())]
    StoreReadOnly { path: PathBuf },
    /// Another connection held the database longer than `store.busy_timeout_ms`.
    #[error("the local database {} stayed locked by another process", path.display())]
    StoreBusy { path: PathBuf },
    /// The database was migrated by a newer kioskd.
    #[error(
        "the local database {} has schema version {found}; this kioskd knows up to {known}",
        path.display()
    )]
    StoreTooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// Any other SQLite failure.
    #[error("local database {}: {source}", path.display())]
    Store {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A backup could not be made, or a file offered for restore is not a
    /// sound store (nothing was replaced).
    #[error("backup {}: {reason}", path.display())]
    Backup { path: PathBuf, reason: String },
    /// The store's key file is missing or malformed.
    #[error("store key file {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    /// The store's key file can be read by group or others.
    #[error(
        "store key file {} is accessible by group or others (mode {mode:03o}); run chmod 600 on it",
        path.display()
    )]
    KeyFileMode { path: PathBuf, mode: u32 },
    /// The key file is not the one the database's payloads were encrypted with.
    #[error("store key file {} does not match the database {}", key_file.display(), path.display())]
    WrongKey { key_file: PathBuf, path: PathBuf },
    /// A change with this id is already in the outbox.
    #[error("change {change_id} is already recorded")]
    ChangeExists { change_id: String },
    /// No change with this id in the outbox.
    #[error("no change {change_id} in the outbox")]
    ChangeNotFound { change_id: String },
    /// The change is not in a state that allows the operation.
    #[error("change {change_id} is {state}: cannot {action}")]
    ChangeState {
        change_id: String,
        state: &'static str,
        action: &'static str,
    },
    /// A stored payload failed authentication (damaged, edited, or moved to
    /// another row).
    #[error("change {change_id}: its stored payload is damaged or was tampered with")]
    PayloadUnreadable { change_id: String },
    /// The payload was purged after the bank's answer and retention (rule S2).
    #[error("change {change_id}: its payload was purged after the bank's answer (rule S2)")]
    PayloadPurged { change_id: String },
    /// A change that cannot be recorded as given (never quotes personal data).
    #[error("invalid change: {0}")]
    InvalidChange(String),
    /// A counter's action the ticket's life does not allow (rule Q5).
    #[error(transparent)]
    Lifecycle(#[from] crate::store::LifecycleError),
}

impl Error {
    /// The store could not record anything (full, read-only, locked): the
    /// local API's `store_unavailable`.
    pub fn is_store_unavailable(&self) -> bool {
        matches!(
            self,
            Error::StoreFull { .. } | Error::StoreReadOnly { .. } | Error::StoreBusy { .. }
        )
    }
}
