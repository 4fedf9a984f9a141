//! The kiosk's durable store: one SQLite file holding the outbox of confirmed
//! changes, the audit trail and the queue counters.
//!
//! # Shape
//!
//! [`Store`] is synchronous and small: one connection behind a mutex, every
//! method one short transaction. kioskd calls it from
//! `tokio::task::spawn_blocking` (as [`crate::sync::run`] does) or from a
//! thread of its own; `Arc<Store>` is shared by the local API, the flows and
//! the sync worker.
//!
//! * **Schema**: an append-only list of migrations (`migrations.rs`), tracked
//!   by `PRAGMA user_version` and applied in one exclusive transaction. A
//!   database from a newer kioskd is refused ([`Error::StoreTooNew`]).
//! * **Every connection** sets `journal_mode=WAL`, `synchronous=FULL`,
//!   `foreign_keys=ON`, `secure_delete=ON` and the configured busy timeout.
//! * **Outbox** (`outbox.rs`): one row per change, keyed by the change's
//!   UUID (the idempotency key towards the core bank). The personal part
//!   (the whole [`ChangeRequest`](kiosk_corebank::ChangeRequest) as JSON) is
//!   sealed with ChaCha20-Poly1305 under a key that lives in a separate file
//!   (`crypto.rs`), with a random nonce per row and the change id as
//!   associated data, so a payload moved to another row does not open. What
//!   stays in clear is not personal: id, kind, the bank's opaque customer id,
//!   state, counters, timestamps, the bank's answer. Once the bank has given
//!   its final answer and `store.retention_hours` have passed, [`Outbox::purge`](crate::store::Outbox::purge)
//!   deletes the sealed payload and keeps that row (rule S2).
//! * **Audit** (`audit.rs`): append-only (triggers refuse `UPDATE` and
//!   `DELETE`), each record carrying the SHA-256 of the previous one; the
//!   chain's head is also kept aside, so [`AuditTrail::audit_verify`](crate::store::AuditTrail::audit_verify) finds an
//!   edited, removed (also the last one) or reordered record.
//! * **Backup** (`backup.rs`): an online copy in one read transaction, and a
//!   restore that checks the copy (integrity, schema, key, audit chain) first.
//! * **Queue counters** (`queue.rs`): the last ticket number per service and
//!   business day, taken atomically (rule Q2).
//! * **Queue life** (`calls.rs`): counters' calls, recalls, skips,
//!   reactivations, transfers and serves, each one transaction with its
//!   entry in the append-only `queue_event` log and its audit record
//!   (rules Q5, Q8); the log's `seq` is the branch stream's resume point.
//!
//! # Crash safety
//!
//! A change is acknowledged to the customer only after
//! [`Outbox::commit_change`](crate::store::Outbox::commit_change) returns, and that returns only after SQLite has
//! committed the outbox row and its audit record in one transaction with
//! `synchronous=FULL`, i.e. after the WAL was fsync'd (rule C1): a power cut
//! after that point loses nothing, one before it loses the whole transaction
//! and the customer was never told "done". Every later state change (an
//! attempt begun, the bank's answer, a technician's retry, a purge) is again
//! one transaction together with its audit record, so the outbox and the
//! audit trail can never disagree. Before a request is sent the row is
//! marked in flight in a committed transaction (the sync worker's step,
//! [`Outbox::advance`](crate::store::Outbox::advance), which also records
//! the outcomes that came back just before); a process that dies
//! while the request is out leaves the mark behind, and the next
//! [`Outbox::next_deliverable`](crate::store::Outbox::next_deliverable) asks for reconciliation (`GET`) instead of a
//! blind resend.
//!
//! # Group commit
//!
//! Confirmations and sync steps that wait for the connection at the same
//! time run together in one transaction, each in its own savepoint, and
//! share one commit (one fsync); each caller still returns only once that
//! commit is on disk. The bundled SQLite is built with `HAVE_FDATASYNC`
//! (`.cargo/config.toml`), so it syncs with `fdatasync`, not `fsync`.
//!
//! A full disk or a read-only database fails the write with
//! [`Error::StoreFull`] / [`Error::StoreReadOnly`]; SQLite rolls the
//! transaction back, so what was stored before stays intact and readable.
//!
//! Nothing here logs or returns personal data: errors carry paths and change
//! ids, [`ChangeSummary`] has no payload, and the decrypted payload
//! ([`SecretChange`]) redacts itself in `Debug` and is zeroized on drop.

mod audit;
mod backup;
mod calls;
mod crypto;
mod migrations;
mod outbox;
mod queue;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

pub use audit::{
    Actor, AuditAction, AuditBreak, AuditEntry, AuditNote, AuditRecord, AuditReport, AuditTrail,
};
pub use backup::{BackupReport, backup, restore};
pub use calls::{
    ActRequest, Acted, Calls, Candidate, CounterAction, LifecycleError, LifecycleRules,
    TicketFacts, TicketState, TicketTimes, Transition,
};
pub use crypto::{SecretChange, generate_key_file};
pub use outbox::{
    Advance, Call, ChangeState, ChangeSummary, Decision, ListFilter, Outbox, PendingChange,
    StoredId, SyncStatus, purge_due_at,
};
pub use queue::{
    EventKind, NewTicket, QueueCounts, QueueEventRow, TicketRow, Tickets, WaitingCounts,
    format_ticket_number,
};

use crate::Error;

/// Where the local database lives when the config does not say.
pub const DEFAULT_STORE_PATH: &str = "/var/lib/kiosk/kiosk.db";
/// Where the store's key file lives when the config does not say.
pub const DEFAULT_KEY_FILE: &str = "/etc/kiosk/store.key";

/// Upper bounds (s) of the commit-time histogram's buckets: a healthy
/// disk commits in well under a millisecond, a worn SD card in tens.
const COMMIT_BUCKETS_S: [f64; 11] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

/// `[store]`: the local SQLite database (outbox, audit trail, queue counters).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The database file (SQLite, WAL: `-wal` and `-shm` files sit next to it).
    pub path: PathBuf,
    /// 32 random bytes as 64 hex digits, mode 0600; encrypts the personal
    /// data of queued changes. Never stored in the database.
    pub key_file: PathBuf,
    /// How long a change's encrypted payload is kept after the core bank's
    /// final answer before it is purged (rule S2).
    pub retention_hours: u64,
    /// How long a write waits for another connection's lock.
    pub busy_timeout_ms: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from(DEFAULT_STORE_PATH),
            key_file: PathBuf::from(DEFAULT_KEY_FILE),
            retention_hours: 168,
            busy_timeout_ms: 5000,
        }
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// How a [`Store`] opens its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long a write waits for another connection's lock before
    /// [`Error::StoreBusy`].
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl From<&StoreSection> for StoreOptions {
    fn from(section: &StoreSection) -> Self {
        StoreOptions {
            busy_timeout: Duration::from_millis(section.busy_timeout_ms),
        }
    }
}

/// A write waiting for the connection (see [`Store::write_grouped`]): run
/// with the open transaction, or with the error that kept it from opening.
/// It runs its body in a savepoint and returns what to do once the
/// transaction's fate is known.
/// Besides, the SQLite error of a body that failed with one (SQLite may
/// have rolled the whole transaction back then: a full disk).
type GroupJob = Box<
    dyn FnOnce(
            std::result::Result<&Connection, &rusqlite::Error>,
        ) -> (Finish, Option<rusqlite::ffi::Error>)
        + Send,
>;
/// Tells a grouped write's caller the outcome once the commit is done.
type Finish = Box<dyn FnOnce(std::result::Result<(), &rusqlite::Error>) + Send>;

/// The kiosk's database. See the [module documentation](self).
pub struct Store {
    conn: Mutex<Connection>,
    /// Grouped writes waiting for the connection (group commit).
    waiting: Mutex<Vec<GroupJob>>,
    /// Transactions committed by [`Store::write_grouped`] (for tests).
    group_commits: std::sync::atomic::AtomicU64,
    /// How long each write transaction's commit took (the WAL write and
    /// its fdatasync): a slow or failing disk shows here first.
    commit_duration: Histogram,
    /// A second, read-only connection for long reads (`audit_verify` walks
    /// the whole chain): in WAL mode it never holds back a commit.
    aside: Mutex<Option<Connection>>,
    busy_timeout: std::time::Duration,
    /// Shared with grouped writes, which run on whichever thread commits.
    cipher: std::sync::Arc<crypto::PayloadCipher>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A failure inside a transaction: SQLite's, or one of the store's own.
/// Lets the bodies use `?` on both; [`Store::fail`] classifies at the edge.
#[derive(Debug)]
enum Failure {
    Db(rusqlite::Error),
    Kiosk(Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Kiosk(e)
    }
}

type Inner<T> = std::result::Result<T, Failure>;

impl Store {
    /// Open (creating if needed) the database at `path`, bring its schema up
    /// to date, and load the payload key from `key_file`.
    ///
    /// Fails with [`Error::KeyFileMode`] if the key file is readable by group
    /// or others, [`Error::KeyFile`] if it is missing or not 64 hex digits,
    /// and [`Error::WrongKey`] if the database's payloads were sealed with
    /// another key.
    pub fn open(path: &Path, key_file: &Path, options: &StoreOptions) -> Result<Store> {
        Store::open_with_flags(path, key_file, options, OpenFlags::default())
    }

    /// [`Store::open`] with the `[store]` section's paths and options.
    pub fn open_config(section: &StoreSection) -> Result<Store> {
        Store::open(&section.path, &section.key_file, &section.into())
    }

    fn open_with_flags(
        path: &Path,
        key_file: &Path,
        options: &StoreOptions,
        flags: OpenFlags,
    ) -> Result<Store> {
        let cipher = crypto::PayloadCipher::load(key_file)?;
        let store_err = |source| Error::Store {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open_with_flags(path, flags).map_err(store_err)?;
        configure(&conn, options).map_err(|e| classify(path, e))?;
        migrations::migrate(&mut conn, path)?;
        if !key_matches(&conn, &cipher).map_err(|e| classify(path, e))? {
            return Err(Error::WrongKey {
                key_file: key_file.to_path_buf(),
                path: path.to_path_buf(),
            });
        }
        Ok(Store {
            conn: Mutex::new(conn),
            waiting: Mutex::new(Vec::new()),
            group_commits: std::sync::atomic::AtomicU64::new(0),
            commit_duration: Histogram::new(COMMIT_BUCKETS_S),
            aside: Mutex::new(None),
            busy_timeout: options.busy_timeout,
            cipher: std::sync::Arc::new(cipher),
            path: path.to_path_buf(),
        })
    }

    /// Copy the WAL into the database file and empty it.
    pub fn checkpoint(&self) -> Result<()> {
        self.lock()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| classify(&self.path, e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock left SQLite in a consistent state
        // (an open transaction is rolled back when dropped); keep serving.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fail(&self, failure: Failure) -> Error {
        match failure {
            Failure::Db(e) => classify(&self.path, e),
            Failure::Kiosk(e) => e,
        }
    }

    /// Run `body` in one `BEGIN IMMEDIATE` transaction and commit it
    /// (durable on return: `synchronous=FULL`). Any error rolls it back.
    fn write<T>(&self, body: impl FnOnce(&Connection) -> Inner<T>) -> Result<T> {
        let mut conn = self.lock();
        in_transaction(&mut conn, TransactionBehavior::Immediate, body, |tx| {
            self.commit(tx)
        })
        .map_err(|e| self.fail(e))
    }

    /// Commit a write transaction, timing it for
    /// [`Store::commit_durations`].
    fn commit(&self, tx: rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        let started = std::time::Instant::now();
        let committed = tx.commit();
        self.commit_duration
            .observe(started.elapsed().as_secs_f64());
        committed
    }

    /// How long write transactions took to commit, since the store was
    /// opened (`kiosk_store_commit_duration_seconds`); the handle shares
    /// its counts with the store.
    pub fn commit_durations(&self) -> Histogram {
        self.commit_duration.clone()
    }

    /// Like [`Store::write`], with group commit: writes that arrive while
    /// another holds the connection wait together, and the first of them to
    /// get it runs them all in one transaction, each in its own savepoint
    /// (a failing one is rolled back alone and gets its error), with one
    /// commit, hence one fsync, for all. Each caller returns once that
    /// commit is on disk, as with [`Store::write`]. The bodies run in
    /// arrival order, so the audit chain and the outbox's order are those
    /// of a sequence of single transactions.
    fn write_grouped<T: Send + 'static>(
        &self,
        body: impl FnOnce(&Connection) -> Inner<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<T>>(1);
        let path = self.path.clone();
        let job: GroupJob = Box::new(move |conn| {
            let nothing: Finish = Box::new(|_| {});
            let conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = tx.send(Err(classify_ref(&path, e)));
                    return (nothing, None);
                }
            };
            match in_savepoint(conn, body) {
                Ok(value) => (
                    Box::new(move |commit| {
                        let _ = tx.send(match commit {
                            Ok(()) => Ok(value),
                            Err(e) => Err(classify_ref(&path, e)),
                        });
                    }),
                    None,
                ),
                Err(failure) => {
                    let code = match &failure {
                        Failure::Db(e) => e.sqlite_error().copied(),
                        Failure::Kiosk(_) => None,
                    };
                    let _ = tx.send(Err(match failure {
                        Failure::Db(e) => classify(&path, e),
                        Failure::Kiosk(e) => e,
                    }));
                    (nothing, code)
                }
            }
        });
        self.waiting_jobs().push(job);
        {
            let mut conn = self.lock();
            // Whoever holds the connection runs every write waiting then;
            // ours may already have run with an earlier group.
            let jobs = std::mem::take(&mut *self.waiting_jobs());
            if !jobs.is_empty() {
                self.run_group(&mut conn, jobs);
            }
        }
        rx.recv()
            .unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("grouped write lost"))))
    }

    fn waiting_jobs(&self) -> MutexGuard<'_, Vec<GroupJob>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One transaction for `jobs`, committed once.
    fn run_group(&self, conn: &mut Connection, jobs: Vec<GroupJob>) {
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                for job in jobs {
                    // Each job has told its caller; nothing is left to finish.
                    drop(job(Err(&e)));
                }
                return;
            }
        };
        let mut finishes: Vec<Finish> = Vec::with_capacity(jobs.len());
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
            let (finish, failed) = job(Ok(&tx));
            finishes.push(finish);
            if tx.is_autocommit() {
                // SQLite rolled the whole transaction back (a full disk,
                // an I/O error): what ran before is gone too, and nothing
                // may run outside a transaction.
                let code = failed
                    .unwrap_or_else(|| rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT));
                let e = rusqlite::Error::SqliteFailure(
                    code,
                    Some("the grouped transaction was rolled back".into()),
                );
                for job in jobs {
                    drop(job(Err(&e)));
                }
                for finish in finishes {
                    finish(Err(&e));
                }
                return;
            }
        }
        let committed = self.commit(tx);
        if committed.is_ok() {
            self.group_commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        for finish in finishes {
            finish(committed.as_ref().map(|_| ()));
        }
    }

    /// Transactions committed by grouped writes so far (tests check that
    /// waiting writes share one).
    #[cfg(test)]
    pub(crate) fn group_commits(&self) -> u64 {
        self.group_commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Like [`Store::read`], on the read-only connection beside the one
    /// that writes: a long read there holds back no commit (WAL readers
    /// and the writer do not wait for each other). One at a time: a second
    /// is refused as [`Error::Busy`] at once.
    fn read_aside<T>(&self, body: impl FnOnce(&Connection) -> Inner<T>) -> Result<T> {
        // One long read at a time, and the others are answered at once
        // instead of each holding a thread while it waits its turn.
        let mut slot = match self.aside.try_lock() {
            Ok(slot) => slot,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(Error::Busy(
                    "a verification of the audit chain is already running",
                ));
            }
        };
        if slot.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| c.busy_timeout(self.busy_timeout).map(|()| c))
            .map_err(|e| classify(&self.path, e))?;
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_mut() else {
            return Err(Error::Io(std::io::Error::other("read connection missing")));
        };
        in_transaction(conn, TransactionBehavior::Deferred, body, |tx| tx.commit())
            .map_err(|e| self.fail(e))
    }

    /// Run `body` in one read transaction (a consistent snapshot).
    fn read<T>(&self, body: impl FnOnce(&Connection) -> Inner<T>) -> Result<T> {
        let mut conn = self.lock();
        in_transaction(&mut conn, TransactionBehavior::Deferred, body, |tx| {
            tx.commit()
        })
        .map_err(|e| self.fail(e))
    }
}

/// `body` in one transaction of `behavior`, committed by `commit` if it
/// succeeds (rolled back when dropped otherwise).
fn in_transaction<T>(
    conn: &mut Connection,
    behavior: TransactionBehavior,
    body: impl FnOnce(&Connection) -> Inner<T>,
    commit: impl FnOnce(rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
) -> Inner<T> {
    let tx = conn.transaction_with_behavior(behavior)?;
    let value = body(&tx)?;
    commit(tx)?;
    Ok(value)
}

/// `body` in a savepoint of the open transaction: released if it
/// succeeds, rolled back (alone) if it fails.
fn in_savepoint<T>(conn: &Connection, body: impl FnOnce(&Connection) -> Inner<T>) -> Inner<T> {
    conn.execute_batch("SAVEPOINT grouped")?;
    match body(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE grouped")?;
            Ok(value)
        }
        // SQLite may have rolled the whole transaction back already (a full
        // disk): then there is no savepoint left to go back to.
        Err(e) if conn.is_autocommit() => Err(e),
        Err(e) => {
            conn.execute_batch("ROLLBACK TO grouped; RELEASE grouped")?;
            Err(e)
        }
    }
}

/// The per-connection settings (outside the migrations: they are not stored
/// in the file, except the journal mode).
fn configure(conn: &Connection, options: &StoreOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("journal_mode is {mode}, WAL is required")),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Purged payloads are overwritten in the file, not left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// SQLite's errors, with the ones a caller acts on made into their own
/// variants.
fn classify(path: &Path, e: rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Error::StoreFull { path },
        Some(ErrorCode::ReadOnly) => Error::StoreReadOnly { path },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::StoreBusy { path },
        _ => Error::Store { path, source: e },
    }
}

/// [`classify`] for an error shared by several callers (a failed commit
/// of a group): each gets its own copy.
fn classify_ref(path: &Path, e: &rusqlite::Error) -> Error {
    let copy = match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    };
    classify(path, copy)
}

/// The database remembers a fingerprint of the key its payloads are sealed
/// with, so a wrong key file is refused at open rather than discovered one
/// payload at a time.
fn key_matches(conn: &Connection, cipher: &crypto::PayloadCipher) -> rusqlite::Result<bool> {
    const GET: &str = "SELECT value FROM meta WHERE key = 'key_check'";
    if let Some(stored) = conn
        .query_row(GET, [], |r| r.get::<_, String>(0))
        .optional()?
    {
        return Ok(stored == cipher.key_check());
    }
    match conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?1)",
        [cipher.key_check()],
    ) {
        Ok(_) => {}
        // A read-only database without a fingerprint cannot have payloads
        // sealed by anyone: nothing to compare.
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ReadOnly) => return Ok(true),
        Err(e) => return Err(e),
    }
    // Another process may have written its own first.
    let stored: String = conn.query_row(GET, [], |r| r.get(0))?;
    Ok(stored == cipher.key_check())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// At most `max` characters of a text from outside (an error reason, the
/// bank's message), cut on a character boundary.
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The technician PIN's wrong tries, kept across restarts (`meta`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinLockout {
    /// Wrong PINs in a row.
    pub failures: u32,
    /// Unix ms until which no PIN is checked (0: none).
    pub locked_until_ms: i64,
}

impl Store {
    /// The outbox of confirmed changes.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { store: self }
    }

    /// The audit trail.
    pub fn audit(&self) -> AuditTrail<'_> {
        AuditTrail { store: self }
    }

    /// The queue tickets.
    pub fn tickets(&self) -> Tickets<'_> {
        Tickets { store: self }
    }

    /// The tickets' life at the counters and the queue's event log.
    pub fn calls(&self) -> Calls<'_> {
        Calls { store: self }
    }

    /// The technician PIN's wrong tries as last written.
    pub fn pin_lockout(&self) -> Result<PinLockout> {
        self.read(|tx| {
            let value: Option<String> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'pin_lockout'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(value
                .and_then(|v| {
                    let (failures, until) = v.split_once(',')?;
                    Some(PinLockout {
                        failures: failures.parse().ok()?,
                        locked_until_ms: until.parse().ok()?,
                    })
                })
                .unwrap_or_default())
        })
    }

    /// Keep the technician PIN's wrong tries (durable on return).
    pub fn set_pin_lockout(&self, lockout: &PinLockout) -> Result<()> {
        let value = format!("{},{}", lockout.failures, lockout.locked_until_ms);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('pin_lockout', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [value.as_str()],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for the store's and the sync worker's tests.

    use std::path::PathBuf;

    use kiosk_corebank::{
        CardEvidence, ChangeKind, ChangeRequest, IdType, IdValidityChange, MobileChange, Source,
    };

    use super::*;

    /// An ID number that must never appear in the database file.
    pub const ID_NUMBER: &str = "110101199003077777";
    /// A phone number that must never appear in the database file.
    pub const MOBILE: &str = "13987654321";

    /// A temporary directory with a key file; the database is `db()`.
    pub struct TestDir {
        pub dir: tempfile::TempDir,
    }

    impl TestDir {
        pub fn new() -> TestDir {
            let dir = tempfile::tempdir().expect("tempdir");
            generate_key_file(&dir.path().join("store.key")).expect("key file");
            TestDir { dir }
        }

        pub fn db(&self) -> PathBuf {
            self.dir.path().join("kiosk.db")
        }

        pub fn key(&self) -> PathBuf {
            self.dir.path().join("store.key")
        }

        pub fn open(&self) -> Store {
            Store::open(&self.db(), &self.key(), &StoreOptions::default()).expect("open store")
        }
    }

    pub fn source() -> Source {
        Source {
            kiosk_id: "K-0101-03".into(),
            branch_id: "0101".into(),
            channel: "smart_teller".into(),
        }
    }

    /// An ID-validity change for `customer`.
    pub fn id_change(customer: &str) -> ChangeRequest {
        ChangeRequest {
            change_id: uuid::Uuid::new_v4().to_string(),
            customer_id: customer.into(),
            occurred_at_ms: 1_763_880_000_000,
            source: source(),
            kind: ChangeKind::IdValidity {
                id_validity: IdValidityChange {
                    id_type: IdType::Resident,
                    id_number: ID_NUMBER.into(),
                    valid_from: "2020-03-01".into(),
                    valid_until: "2040-03-01".into(),
                    issuer: "北京市公安局东城分局".into(),
                    card_evidence: CardEvidence {
                        sam_id: "05.01-20101010-0000001-1234567890".into(),
                        card_uid: "0123456789ABCDEF".into(),
                    },
                },
            },
        }
    }

    /// A mobile change for `customer`.
    pub fn mobile_change(customer: &str) -> ChangeRequest {
        ChangeRequest {
            change_id: uuid::Uuid::new_v4().to_string(),
            customer_id: customer.into(),
            occurred_at_ms: 1_763_880_000_000,
            source: source(),
            kind: ChangeKind::Mobile {
                mobile: MobileChange {
                    new_mobile: MOBILE.into(),
                    otp_proof: "proof-abc".into(),
                    notify_old_and_new: true,
                },
            },
        }
    }

    pub fn note(at_ms: i64) -> AuditNote {
        AuditNote {
            at_ms,
            actor: Actor::CustomerSession,
            detail: "id validity 110***********7777 → 2040-03-01".into(),
        }
    }

    /// Run SQL on the store's own connection (tests only).
    pub fn raw<T>(store: &Store, f: impl FnOnce(&Connection) -> T) -> T {
        f(&store.lock())
    }

    /// How many commits the store's histogram has observed.
    pub fn commits_timed(store: &Store) -> u64 {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("commits", "commits", store.commit_durations());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text.lines()
            .find_map(|l| l.strip_prefix("commits_count "))
            .and_then(|n| n.trim().parse().ok())
            .expect("a count in the exposition")
    }

    /// Each call of a hot path ran about as many SQLite VM instructions
    /// with `large` history behind it as with `small`: deeper B-trees add
    /// a few (at most a tenth and 20 more), a scan of the history adds
    /// its length. `steps` runs the calls once, after filling the history
    /// up to the size it is given.
    pub fn assert_steps_flat(
        store: &Store,
        (small, large): (i64, i64),
        steps: impl Fn(&Store, i64) -> Vec<(&'static str, u64)>,
    ) {
        let few = steps(store, small);
        let many = steps(store, large);
        for ((name, few), (_, many)) in few.iter().zip(&many) {
            assert!(
                *many <= few + few / 10 + 20,
                "{name}: {few} VM instructions with {small} behind it, {many} with {large}"
            );
        }
    }

    /// `f`'s result and how many SQLite VM instructions it ran on the
    /// store's connection (its progress handler, called at each one).
    pub fn vm_steps<T>(store: &Store, f: impl FnOnce() -> T) -> (T, u64) {
        use std::sync::atomic::{AtomicU64, Ordering};
        let steps = std::sync::Arc::new(AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&steps);
        raw(store, |c| {
            c.progress_handler(
                1,
                Some(move || {
                    counter.fetch_add(1, Ordering::Relaxed);
                    false
                }),
            );
        });
        let value = f();
        raw(store, |c| c.progress_handler(0, None::<fn() -> bool>));
        (value, steps.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    /// `kiosk_store_commit_duration_seconds` counts every commit (grouped
    /// or not), and no read. Writes that share a commit count once
    /// (`waiting_confirmations_share_one_commit_and_keep_the_audit_chain`).
    #[test]
    fn every_commit_is_timed_and_no_read() {
        let t = TestDir::new();
        let store = t.open();
        let before = commits_timed(&store);
        store
            .outbox()
            .commit_change(&id_change("A"), note(1_763_880_000_000))
            .expect("grouped write");
        store
            .audit()
            .audit_append(&AuditEntry {
                at_ms: 1_763_880_000_001,
                actor: Actor::CustomerSession,
                action: AuditAction::CardRead,
                subject: None,
                detail: "card 110***********7777".into(),
            })
            .expect("single write");
        store.outbox().sync_status(1_763_880_000_002).expect("read");
        assert_eq!(commits_timed(&store), before + 2);
    }

    #[test]
    fn every_connection_sets_the_pragmas() {
        let t = TestDir::new();
        let store = t.open();
        raw(&store, |c| {
            let q = |p: &str| -> String {
                c.query_row(&format!("PRAGMA {p}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .expect(p)
            };
            assert_eq!(q("journal_mode"), r#"Text("wal")"#);
            assert_eq!(q("synchronous"), "Integer(2)", "FULL");
            assert_eq!(q("foreign_keys"), "Integer(1)");
            assert_eq!(q("secure_delete"), "Integer(1)");
            assert_eq!(q("busy_timeout"), "Integer(5000)");
        });
    }

    #[test]
    fn a_wrong_key_file_is_refused_at_open() {
        let t = TestDir::new();
        drop(t.open());
        let other = t.dir.path().join("other.key");
        generate_key_file(&other).expect("key");
        let e = Store::open(&t.db(), &other, &StoreOptions::default()).expect_err("wrong key");
        assert!(matches!(e, Error::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("other.key"), "{e}");
        // The right key still opens it.
        drop(t.open());
    }

    #[test]
    fn bounded_cuts_on_char_boundaries() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("账户受限制", 2), "账户…");
    }
}
