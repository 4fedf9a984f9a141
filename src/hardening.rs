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
//! [`become_owner_of`] is the other direction of the same care: a root
//! tool that writes kioskd's files does it as kioskd's user.
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

/// For tools run as root on kioskd's files (`kioskd --restore`): when the
/// directory holding `store` belongs to another user (kioskd's, as the
/// package makes it), copy `input` (often root's own, e.g. a backup in
/// `/var/backups/kiosk`) into that directory as that user's, then drop to
/// that user and group for good. Returns the copy to read instead of
/// `input` (`None` when nothing changed: not root, or root's directory).
pub fn become_owner_of(
    store: &std::path::Path,
    input: &std::path::Path,
) -> Result<Option<std::path::PathBuf>, Error> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    use std::os::unix::fs::MetadataExt;
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let dir = store
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let owner = std::fs::metadata(dir)?;
    if owner.uid() == 0 {
        return Ok(None);
    }
    let (uid, gid) = (Uid::from_raw(owner.uid()), Gid::from_raw(owner.gid()));
    let copy = dir.join(".restore-incoming.db");
    let _ = std::fs::remove_file(&copy);
    std::fs::copy(input, &copy)?;
    std::os::unix::fs::chown(&copy, Some(uid.as_raw()), Some(gid.as_raw()))?;
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let drop_err = |what, source| Error::Hardening { what, source };
    setgroups(&[gid]).map_err(|e| drop_err("setgroups", e))?;
    setgid(gid).map_err(|e| drop_err("setgid", e))?;
    setuid(uid).map_err(|e| drop_err("setuid", e))?;
    Ok(Some(copy))
}
