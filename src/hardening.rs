//! Process hardening done once, first thing at start: kioskd holds
//! customers' full card data in memory during a session and the store
//! key all the time, so its memory must never land on disk in a core dump
//! (rule S1).
//!
//! * `RLIMIT_CORE` 0 (soft and hard): no core file, and the limit cannot
//!   be raised again by this process.
//! * `PR_SET_DUMPABLE` 0: no core dump even through a `core_pattern` pipe
//!   (systemd-coredump ignores the limit), and other processes of the same
//!   user cannot `ptrace` kioskd or read its `/proc/PID/mem`; the kernel
//!   makes `/proc/PID/*` belong to root.
//!
//! Both only lower privileges, so they cannot fail on Linux short of a
//! kernel without them; if they do, kioskd does not start.

use nix::sys::resource::{Resource, setrlimit};

use crate::Error;

/// Disable core dumps for this process (see the module docs).
pub fn disable_core_dumps() -> Result<(), Error> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|source| Error::Hardening {
        what: "setrlimit(RLIMIT_CORE, 0)",
        source,
    })?;
    nix::sys::prctl::set_dumpable(false).map_err(|source| Error::Hardening {
        what: "prctl(PR_SET_DUMPABLE, 0)",
        source,
    })
}
