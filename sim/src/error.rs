//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Everything that can go wrong starting or driving a simulator.
#[derive(Debug, Error)]
pub enum SimError {
    /// An OS-level operation failed; `context` says which.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Creating or using a pseudo-terminal failed.
    #[error("{context}: {source}")]
    Serial {
        context: String,
        #[source]
        source: serialport::Error,
    },
    /// A profile file or value is invalid.
    #[error("card profile {name}: {reason}")]
    Profile { name: String, reason: String },
    /// No built-in profile has this name.
    #[error("unknown card profile {0:?} (see `kiosk-sim profiles`)")]
    UnknownProfile(String),
    /// A fault description could not be understood.
    #[error("invalid fault: {0}")]
    Fault(String),
    /// Building a stand-in (the sdtapi library) failed.
    #[error("building {0}")]
    Build(String),
    /// The link path exists and is not a symlink: the simulator refuses to clobber it.
    #[error("{0} exists and is not a symlink; refusing to replace it")]
    LinkOccupied(PathBuf),
    /// A pcscd that this process did not start is running (its socket is machine-wide).
    #[error(
        "another pcscd is running (pid {pid:?}, socket {socket}); stop it first (tests need their own)"
    )]
    ForeignPcscd { pid: Option<i32>, socket: PathBuf },
    /// pcscd failed to start or stop.
    #[error("pcscd: {0}")]
    Pcscd(String),
    /// A condition was not reached in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// The simulator's worker thread is gone.
    #[error("simulator thread {0} has stopped")]
    Stopped(&'static str),
    /// A configuration or fixture value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The core-bank simulator's database failed; `context` says where.
    #[error("{context}: {source}")]
    Db {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl SimError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
        let context = context.into();
        move |source| SimError::Io { context, source }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> SimError {
        let context = context.into();
        move |source| SimError::Db { context, source }
    }
}

/// Result with [`SimError`].
pub type Result<T, E = SimError> = std::result::Result<T, E>;
