//! Backup and restore of the whole store, for upgrades and repairs.
//!
//! * [`backup`] copies a live database with SQLite's online backup API in a
//!   single step, i.e. inside one read transaction: the copy is the state
//!   after some commit, never half of one, and kioskd keeps committing
//!   meanwhile (WAL readers do not block writers). The copy is written to a
//!   temporary file (mode 0600), checked, synced, and renamed into place.
//!   It is the database as it is: the outbox's personal data stay sealed
//!   under the store key, which is not in the copy.
//! * [`restore`] checks a backup before it touches anything (SQLite's
//!   integrity check, a schema this kioskd knows or can migrate, the store
//!   key that sealed its payloads, an unbroken audit chain), then puts it in
//!   place of the current database, which is kept beside it under a dated
//!   name. kioskd must not be running (the caller checks).

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{Result, Store, StoreOptions, classify};
use crate::Error;

/// What a backup or a restore found in the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy's schema version (`PRAGMA user_version`).
    pub schema_version: i64,
    /// Changes in the outbox.
    pub changes: u64,
    /// Records in the audit trail.
    pub audit_records: u64,
    /// Where a restore put the database it replaced (`None` for a backup,
    /// or when there was no database).
    pub replaced: Option<PathBuf>,
}

/// Copy the database at `source` (open by kioskd or not) to `dest`.
/// `dest` must not exist.
pub fn backup(source: &Path, dest: &Path) -> Result<BackupReport> {
    if dest.exists() {
        return Err(restore_error(dest, "already exists; choose a new file"));
    }
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(source, e))?;
    from.busy_timeout(Duration::from_secs(10))
        .map_err(|e| classify(source, e))?;
    let partial = partial_path(dest);
    copy(&from, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    let report = inspect(&partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, dest)?;
    sync_dir(dest)?;
    Ok(report)
}

/// Put the backup at `backup_file` in place of the database `target`,
/// after checking it with `key_file`. The current database (if any) is
/// kept as `TARGET.replaced-UNIXTIME`. kioskd must not be running.
pub fn restore(backup_file: &Path, target: &Path, key_file: &Path) -> Result<BackupReport> {
    let from = Connection::open_with_flags(backup_file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| classify(backup_file, e))?;
    let incoming = partial_path(target);
    let _ = std::fs::remove_file(&incoming);
    copy(&from, &incoming)?;
    drop(from);
    let mut report = match check_restorable(&incoming, key_file) {
        Ok(report) => report,
        Err(e) => {
            remove_database(&incoming);
            return Err(e);
        }
    };
    if target.exists() {
        // Fold the current database's WAL into it first, so the file kept
        // aside is whole on its own.
        let current = Connection::open(target).map_err(|e| classify(target, e))?;
        current
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| classify(target, e))?;
        drop(current);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = with_suffix(target, &format!(".replaced-{now}"));
        std::fs::rename(target, &aside)?;
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(target, side));
        }
        report.replaced = Some(aside);
    }
    std::fs::rename(&incoming, target)?;
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&incoming, side));
    }
    sync_dir(target)?;
    Ok(report)
}

/// Open the copy as kioskd would (migrating an older schema, refusing a
/// newer one or another key) and walk its audit chain.
fn check_restorable(path: &Path, key_file: &Path) -> Result<BackupReport> {
    let store = Store::open(path, key_file, &StoreOptions::default())?;
    let problems = store.audit().integrity_check()?;
    if !problems.is_empty() {
        return Err(restore_error(path, &problems.join("; ")));
    }
    let audit = store.audit().audit_verify()?;
    if let Some(broken) = audit.first_bad {
        return Err(restore_error(
            path,
            &format!("the audit chain breaks at record {}", broken.seq),
        ));
    }
    // Leave a single file behind, without WAL.
    store.checkpoint()?;
    drop(store);
    inspect(path)
}

/// One-step online backup of `from` into a new file at `to` (mode 0600).
fn copy(from: &Connection, to: &Path) -> Result<()> {
    File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    let mut dest = Connection::open(to).map_err(|e| classify(to, e))?;
    {
        let backup = Backup::new(from, &mut dest).map_err(|e| classify(to, e))?;
        // -1: every page in one step, i.e. in one read transaction.
        loop {
            match backup.step(-1).map_err(|e| classify(to, e))? {
                StepResult::Done => break,
                StepResult::More => {}
                // A writer holds the source's lock for a moment (SQLite's
                // own busy handler does not cover backup steps).
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    dest.execute_batch("PRAGMA journal_mode=DELETE;")
        .map_err(|e| classify(to, e))?;
    drop(dest);
    File::open(to)?.sync_all()?;
    Ok(())
}

/// Integrity check and counts of a copy.
fn inspect(path: &Path) -> Result<BackupReport> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| classify(path, e))?;
    let err = |e| classify(path, e);
    let check: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(err)?;
    if check != "ok" {
        return Err(restore_error(path, &check));
    }
    let count = |table: &str| -> Result<u64> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(err)
    };
    Ok(BackupReport {
        schema_version: conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?,
        changes: count("outbox")?,
        audit_records: count("audit")?,
        replaced: None,
    })
}

fn restore_error(path: &Path, reason: &str) -> Error {
    Error::Backup {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn partial_path(path: &Path) -> PathBuf {
    with_suffix(path, ".partial")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_database(path: &Path) {
    for side in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(path, side));
    }
}

/// Make a rename durable: fsync the directory holding `path`.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    /// A store with three committed changes, and a backup of it.
    fn store_and_backup(t: &TestDir) -> PathBuf {
        let store = t.open();
        for customer in ["C1", "C2", "C3"] {
            store
                .outbox()
                .commit_change(&id_change(customer), note(1))
                .expect("commit");
        }
        let file = t.dir.path().join("copy.db");
        let report = backup(&t.db(), &file).expect("backup");
        assert_eq!((report.changes, report.audit_records), (3, 3));
        file
    }

    #[test]
    fn a_backup_restores_in_place_of_a_newer_database_which_is_kept_aside() {
        let t = TestDir::new();
        let file = store_and_backup(&t);
        t.open()
            .outbox()
            .commit_change(&id_change("C4"), note(2))
            .expect("commit after the backup");
        let report = restore(&file, &t.db(), &t.key()).expect("restore");
        assert_eq!(report.changes, 3);
        let aside = report.replaced.expect("the replaced database is kept");
        assert_eq!(inspect(&aside).expect("kept copy").changes, 4);
        let store = t.open();
        assert!(store.audit().audit_verify().expect("verify").ok());
        // The payloads still open with the store key.
        let changes = store
            .outbox()
            .list(&super::super::ListFilter::default())
            .expect("list");
        assert_eq!(changes.len(), 3);
        for change in changes {
            store
                .outbox()
                .load_change(&change.change_id)
                .expect("payload opens");
        }
    }

    #[test]
    fn a_backup_refuses_to_overwrite_a_file() {
        let t = TestDir::new();
        let file = store_and_backup(&t);
        assert!(matches!(backup(&t.db(), &file), Err(Error::Backup { .. })));
    }

    /// Each bad copy is refused and the current database is left as it was.
    fn assert_refused(t: &TestDir, file: &Path, what: &str) {
        let before = std::fs::read(t.db()).expect("db");
        let refused = restore(file, &t.db(), &t.key());
        assert!(refused.is_err(), "{what}: restored");
        assert_eq!(std::fs::read(t.db()).expect("db"), before, "{what}");
        assert!(
            !partial_path(&t.db()).exists(),
            "{what}: left a partial file"
        );
    }

    #[test]
    fn a_copy_with_a_broken_audit_chain_is_refused() {
        let t = TestDir::new();
        let file = store_and_backup(&t);
        let edit = Connection::open(&file).expect("open copy");
        edit.execute_batch(
            "DROP TRIGGER audit_no_update; UPDATE audit SET detail = 'edited' WHERE seq = 2;",
        )
        .expect("edit");
        drop(edit);
        t.open().checkpoint().expect("checkpoint");
        assert_refused(&t, &file, "broken chain");
    }

    #[test]
    fn a_copy_sealed_under_another_key_is_refused() {
        let t = TestDir::new();
        let file = store_and_backup(&t);
        let other = TestDir::new();
        let moved = other.dir.path().join("copy.db");
        std::fs::copy(&file, &moved).expect("copy");
        other.open().checkpoint().expect("a database of its own");
        let before = std::fs::read(other.db()).expect("db");
        assert!(matches!(
            restore(&moved, &other.db(), &other.key()),
            Err(Error::WrongKey { .. })
        ));
        assert_eq!(std::fs::read(other.db()).expect("db"), before);
    }

    #[test]
    fn a_copy_from_a_newer_kioskd_is_refused() {
        let t = TestDir::new();
        let file = store_and_backup(&t);
        let edit = Connection::open(&file).expect("open copy");
        edit.pragma_update(None, "user_version", 999)
            .expect("version");
        drop(edit);
        t.open().checkpoint().expect("checkpoint");
        assert_refused(&t, &file, "too new");
    }
}
