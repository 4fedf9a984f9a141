//! The audit trail (rule S3): append-only and hash-chained.
//!
//! Record `n` stores `prev_hash` = record `n-1`'s `hash` (64 zeros for the
//! first) and `hash` = SHA-256 over a canonical, length-prefixed encoding of
//! its own fields and `prev_hash`. The chain's head (last seq and hash) is
//! also kept in `meta`, updated in the same transaction, so removing the last
//! records shows too. [`AuditTrail::audit_verify`](crate::store::AuditTrail::audit_verify) walks the chain and reports the
//! first record that breaks it: edited (its hash no longer matches),
//! removed (a gap in the sequence, or fewer records than the head says),
//! reordered (a record's `prev_hash` is not its predecessor's hash).
//!
//! The chain makes tampering evident to anyone who checks it; someone able
//! to write the file could still rebuild a whole consistent chain. Anchoring
//! the head outside the kiosk (logs, the bank) would close that; not done
//! here.
//!
//! `detail` is free text for people and must hold masked forms only
//! (rule S1): the store cannot check that, callers must.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Inner, Result, Store};

/// `prev_hash` of the first record.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The daemon on its own (sync, purge).
    Kiosk,
    /// A branch technician (kioskctl).
    Technician,
    /// A customer at the screen.
    CustomerSession,
    /// A counter of the branch queue (the detail names which, rule Q8).
    Counter,
    /// Another queue machine of the branch taking a number (rule Q7; the
    /// detail names which).
    QueueMachine,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Kiosk => "kiosk",
            Actor::Technician => "technician",
            Actor::CustomerSession => "customer_session",
            Actor::Counter => "counter",
            Actor::QueueMachine => "queue_machine",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    CardRead,
    Lookup,
    VerificationFailed,
    SentToCounter,
    /// A confirmed change entered the outbox (with it, rule C1).
    ChangeRecorded,
    /// The core bank applied (or had already applied) a change.
    ChangeApplied,
    /// The core bank rejected a change for good (rule C4).
    ChangeRejected,
    /// A technician put a change back in the queue.
    ChangeRetried,
    /// A change's personal data was purged after retention (rule S2).
    PayloadPurged,
    TicketIssued,
    /// Rule Q8: a counter called, recalled, skipped, reactivated,
    /// transferred or served a ticket (subject: the ticket id).
    TicketCalled,
    TicketRecalled,
    TicketSkipped,
    TicketReactivated,
    TicketTransferred,
    TicketServed,
    /// A technician called a technician-only method of the local API
    /// (the detail names the method and the caller's uid).
    TechnicianRequest,
    /// A technician PIN was tried at the UI (the detail says whether it
    /// was right, and the caller's uid; never the PIN).
    TechnicianPin,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::CardRead => "card_read",
            AuditAction::Lookup => "lookup",
            AuditAction::VerificationFailed => "verification_failed",
            AuditAction::SentToCounter => "sent_to_counter",
            AuditAction::ChangeRecorded => "change_recorded",
            AuditAction::ChangeApplied => "change_applied",
            AuditAction::ChangeRejected => "change_rejected",
            AuditAction::ChangeRetried => "change_retried",
            AuditAction::PayloadPurged => "payload_purged",
            AuditAction::TicketIssued => "ticket_issued",
            AuditAction::TicketCalled => "ticket_called",
            AuditAction::TicketRecalled => "ticket_recalled",
            AuditAction::TicketSkipped => "ticket_skipped",
            AuditAction::TicketReactivated => "ticket_reactivated",
            AuditAction::TicketTransferred => "ticket_transferred",
            AuditAction::TicketServed => "ticket_served",
            AuditAction::TechnicianRequest => "technician_request",
            AuditAction::TechnicianPin => "technician_pin",
        }
    }
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub actor: Actor,
    pub action: AuditAction,
    /// A change id or the bank's customer id: never personal data.
    pub subject: Option<String>,
    /// Masked text only (rule S1).
    pub detail: String,
}

/// Who and when for an action whose record the store writes itself
/// ([`Outbox::commit_change`](crate::store::Outbox::commit_change), [`Outbox::retry`](crate::store::Outbox::retry)): the store fills in the
/// action and the subject (the change id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNote {
    pub at_ms: i64,
    pub actor: Actor,
    /// Masked text only (rule S1).
    pub detail: String,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What [`AuditTrail::audit_verify`](crate::store::AuditTrail::audit_verify) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Records in the trail.
    pub records: u64,
    /// The first record that breaks the chain; `None` if it is whole.
    pub first_bad: Option<AuditBreak>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    pub seq: u64,
    pub reason: String,
}

/// SHA-256 over the record's canonical form: a version tag, then each field
/// as an 8-byte big-endian length and its bytes (integers as 8 bytes
/// big-endian), the optional subject with a presence byte.
fn record_hash(
    seq: u64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: &str,
    prev_hash: &str,
) -> String {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    field(&mut h, b"kiosk-audit-v1");
    field(&mut h, &seq.to_be_bytes());
    field(&mut h, &at_ms.to_be_bytes());
    field(&mut h, actor.as_bytes());
    field(&mut h, action.as_bytes());
    match subject {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            field(&mut h, s.as_bytes());
        }
    }
    field(&mut h, detail.as_bytes());
    field(&mut h, prev_hash.as_bytes());
    hex::encode(h.finalize())
}

/// The chain's head as kept in `meta`: `(seq, hash)`.
fn head(conn: &Connection) -> rusqlite::Result<Option<(u64, String)>> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'audit_head'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(text.and_then(|t| {
        let (seq, hash) = t.split_once(':')?;
        Some((seq.parse().ok()?, hash.to_string()))
    }))
}

/// Append a record inside the caller's transaction; its seq.
pub(super) fn append(conn: &Connection, entry: &AuditEntry) -> rusqlite::Result<u64> {
    // Cached statements: this runs in every confirmation's transaction.
    let last: Option<(u64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let actor = entry.actor.as_str();
    let action = entry.action.as_str();
    let hash = record_hash(
        seq,
        entry.at_ms,
        actor,
        action,
        entry.subject.as_deref(),
        &entry.detail,
        &prev_hash,
    );
    conn.prepare_cached(
        "INSERT INTO audit (seq, at_ms, actor, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        seq as i64,
        entry.at_ms,
        actor,
        action,
        entry.subject,
        entry.detail,
        prev_hash,
        hash
    ])?;
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('audit_head', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([format!("{seq}:{hash}")])?;
    Ok(seq)
}

fn verify(conn: &Connection) -> rusqlite::Result<AuditReport> {
    let mut stmt = conn.prepare(
        "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash
         FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut records = 0u64;
    let mut prev: Option<(u64, String)> = None;
    let mut first_bad: Option<AuditBreak> = None;
    let mut bad = |seq: u64, reason: String| {
        if first_bad.is_none() {
            first_bad = Some(AuditBreak { seq, reason });
        }
    };
    while let Some(row) = rows.next()? {
        records += 1;
        let r = read_record(row)?;
        let expected_seq = prev.as_ref().map_or(1, |(s, _)| s + 1);
        let expected_prev = prev.as_ref().map_or(GENESIS, |(_, h)| h.as_str());
        let hash = record_hash(
            r.seq,
            r.at_ms,
            &r.actor,
            &r.action,
            r.subject.as_deref(),
            &r.detail,
            &r.prev_hash,
        );
        if r.seq != expected_seq {
            bad(
                expected_seq,
                format!(
                    "record {expected_seq} is missing (the next one is {})",
                    r.seq
                ),
            );
        } else if hash != r.hash {
            bad(r.seq, "its contents do not match its hash (edited)".into());
        } else if r.prev_hash != expected_prev {
            bad(
                r.seq,
                format!(
                    "it does not follow record {} (edited, removed or reordered)",
                    expected_seq - 1
                ),
            );
        }
        prev = Some((r.seq, r.hash));
    }
    match (head(conn)?, prev) {
        (None, None) => {}
        (Some((head_seq, _)), None) => bad(1, format!("all {head_seq} records are missing")),
        (None, Some(_)) => bad(1, "the chain's head marker is missing".into()),
        (Some((head_seq, head_hash)), Some((last_seq, last_hash))) => {
            if head_seq > last_seq {
                bad(
                    last_seq + 1,
                    format!("records {} to {head_seq} are missing", last_seq + 1),
                );
            } else if head_seq < last_seq {
                bad(head_seq + 1, "records after the chain's head".into());
            } else if head_hash != last_hash {
                bad(last_seq, "the last record is not the chain's head".into());
            }
        }
    }
    Ok(AuditReport { records, first_bad })
}

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: row.get::<_, i64>(0)? as u64,
        at_ms: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        subject: row.get(4)?,
        detail: row.get(5)?,
        prev_hash: row.get(6)?,
        hash: row.get(7)?,
    })
}

/// The hash-chained audit trail (rule S3) and the database checks.
/// A view of the [`Store`]: `store.audit()`.
#[derive(Debug, Clone, Copy)]
pub struct AuditTrail<'s> {
    pub(super) store: &'s Store,
}

impl AuditTrail<'_> {
    /// Append a record on its own (card read, lookup, ...); its seq.
    pub fn audit_append(&self, entry: &AuditEntry) -> Result<u64> {
        self.store.write(|tx| Ok(append(tx, entry)?))
    }

    /// Check the whole chain, on the read connection beside the writer's:
    /// however long the chain, commits go on meanwhile.
    pub fn audit_verify(&self) -> Result<AuditReport> {
        self.store.read_aside(|tx| Ok(verify(tx)?))
    }

    /// SQLite's `PRAGMA integrity_check`: empty when the database is
    /// sound, else the problems it found (at most 100).
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.store.read(|tx| -> Inner<Vec<String>> {
            let mut stmt = tx.prepare("PRAGMA integrity_check(100)")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            let lines = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines.into_iter().filter(|l| l != "ok").collect())
        })
    }

    /// Up to `limit` records after `after_seq`, oldest first.
    pub fn audit_records(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRecord>> {
        self.store.read(|tx| -> Inner<Vec<AuditRecord>> {
            let mut stmt = tx.prepare(
                "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash
                 FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after_seq as i64, limit], read_record)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    /// Local API exhaustion (issue "hardening, second round", item 1):
    /// `audit_verify` walks the chain on the read connection beside the
    /// writer's, so a commit goes through while a verification is running
    /// (on the one connection it waited for the whole walk).
    #[test]
    fn audit_verify_holds_back_no_commit() {
        let t = TestDir::new();
        let store = std::sync::Arc::new(t.open());
        for i in 0..50 {
            store.audit().audit_append(&entry(i)).expect("append");
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let writer = store.clone();
        let report = store
            .read_aside(|tx| {
                let report = verify(tx)?;
                // The walk's read transaction is still open: a commit on
                // another thread finishes anyway.
                std::thread::spawn(move || {
                    let _ = done_tx.send(writer.audit().audit_append(&entry(99)).is_ok());
                });
                let committed = done_rx
                    .recv_timeout(std::time::Duration::from_secs(30))
                    .unwrap_or(false);
                assert!(committed, "the commit waited for the verification");
                // A second verification meanwhile is refused at once.
                let second = std::thread::scope(|scope| {
                    scope
                        .spawn(|| store.audit().audit_verify().map(|_| ()))
                        .join()
                        .expect("thread")
                });
                assert!(matches!(second, Err(crate::Error::Busy(_))), "{second:?}");
                Ok(report)
            })
            .expect("verify");
        assert!(report.ok(), "{report:?}");
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    fn entry(i: i64) -> AuditEntry {
        AuditEntry {
            at_ms: 1_000 + i,
            actor: Actor::CustomerSession,
            action: AuditAction::CardRead,
            subject: (i % 2 == 0).then(|| format!("C{i}")),
            detail: format!("card 110***********{i:04}"),
        }
    }

    /// A store with `n` records, and a raw connection with the append-only
    /// triggers dropped (what someone editing the file would do).
    fn trail(n: i64) -> (TestDir, Store, Connection) {
        let t = TestDir::new();
        let store = t.open();
        for i in 1..=n {
            assert_eq!(
                store.audit().audit_append(&entry(i)).expect("append"),
                i as u64
            );
        }
        let raw = Connection::open(t.db()).expect("raw");
        raw.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
            .expect("drop triggers");
        (t, store, raw)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (_t, store, _raw) = trail(5);
        let report = store.audit().audit_verify().expect("verify");
        assert_eq!(report.records, 5);
        assert!(report.ok(), "{report:?}");
        let records = store.audit().audit_records(0, 10).expect("records");
        assert_eq!(records[0].prev_hash, GENESIS);
        for w in records.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
        assert_eq!(records[0].action, "card_read");
        assert_eq!(records[0].actor, "customer_session");
        assert_eq!(store.audit().audit_records(3, 10).expect("tail").len(), 2);
    }

    #[test]
    fn an_empty_trail_verifies() {
        let t = TestDir::new();
        let report = t.open().audit().audit_verify().expect("verify");
        assert_eq!(
            report,
            AuditReport {
                records: 0,
                first_bad: None
            }
        );
    }

    #[test]
    fn the_trail_refuses_updates_and_deletes() {
        let t = TestDir::new();
        let store = t.open();
        store.audit().audit_append(&entry(1)).expect("append");
        raw(&store, |c| {
            c.execute("UPDATE audit SET detail = 'x'", [])
                .expect_err("update");
            c.execute("DELETE FROM audit", []).expect_err("delete");
        });
        assert!(store.audit().audit_verify().expect("verify").ok());
    }

    #[test]
    fn an_edited_record_is_found() {
        let (_t, store, raw) = trail(5);
        raw.execute(
            "UPDATE audit SET detail = 'nothing to see' WHERE seq = 3",
            [],
        )
        .expect("edit");
        let report = store.audit().audit_verify().expect("verify");
        let bad = report.first_bad.expect("broken");
        assert_eq!(bad.seq, 3, "{bad:?}");
        assert!(bad.reason.contains("edited"), "{bad:?}");
    }

    #[test]
    fn an_edited_record_with_a_recomputed_hash_is_found_at_the_next() {
        let (_t, store, raw) = trail(5);
        let r = &store.audit().audit_records(2, 1).expect("record")[0];
        let forged = record_hash(
            r.seq,
            r.at_ms,
            &r.actor,
            &r.action,
            None,
            "forged",
            &r.prev_hash,
        );
        raw.execute(
            "UPDATE audit SET subject = NULL, detail = 'forged', hash = ?1 WHERE seq = 3",
            [&forged],
        )
        .expect("forge");
        let bad = store
            .audit()
            .audit_verify()
            .expect("verify")
            .first_bad
            .expect("broken");
        assert_eq!(bad.seq, 4, "{bad:?}");
    }

    #[test]
    fn a_removed_record_is_found() {
        let (_t, store, raw) = trail(5);
        raw.execute("DELETE FROM audit WHERE seq = 2", [])
            .expect("delete");
        let report = store.audit().audit_verify().expect("verify");
        assert_eq!(report.records, 4);
        let bad = report.first_bad.expect("broken");
        assert_eq!(bad.seq, 2, "{bad:?}");
        assert!(bad.reason.contains("missing"), "{bad:?}");
    }

    #[test]
    fn removed_first_and_last_records_are_found() {
        let (_t, store, raw) = trail(5);
        raw.execute("DELETE FROM audit WHERE seq = 1", [])
            .expect("delete");
        assert_eq!(
            store
                .audit()
                .audit_verify()
                .expect("verify")
                .first_bad
                .expect("bad")
                .seq,
            1
        );

        let (_t, store, raw) = trail(5);
        raw.execute("DELETE FROM audit WHERE seq >= 4", [])
            .expect("delete");
        let bad = store
            .audit()
            .audit_verify()
            .expect("verify")
            .first_bad
            .expect("bad");
        assert_eq!(bad.seq, 4, "{bad:?}");
        assert!(bad.reason.contains("missing"), "{bad:?}");

        let (_t, store, raw) = trail(3);
        raw.execute("DELETE FROM audit", []).expect("delete");
        assert!(!store.audit().audit_verify().expect("verify").ok());
    }

    #[test]
    fn a_reordered_chain_is_found() {
        let (_t, store, raw) = trail(5);
        // Swap records 2 and 3 (contents and hashes move, seqs stay).
        raw.execute_batch(
            "UPDATE audit SET seq = 100 WHERE seq = 2;
             UPDATE audit SET seq = 2 WHERE seq = 3;
             UPDATE audit SET seq = 3 WHERE seq = 100;",
        )
        .expect("swap");
        let bad = store
            .audit()
            .audit_verify()
            .expect("verify")
            .first_bad
            .expect("broken");
        assert_eq!(bad.seq, 2, "{bad:?}");
    }

    #[test]
    fn the_hash_covers_every_field() {
        let base = record_hash(1, 2, "a", "b", Some("c"), "d", GENESIS);
        for other in [
            record_hash(9, 2, "a", "b", Some("c"), "d", GENESIS),
            record_hash(1, 9, "a", "b", Some("c"), "d", GENESIS),
            record_hash(1, 2, "x", "b", Some("c"), "d", GENESIS),
            record_hash(1, 2, "a", "x", Some("c"), "d", GENESIS),
            record_hash(1, 2, "a", "b", None, "d", GENESIS),
            record_hash(1, 2, "a", "b", Some(""), "d", GENESIS),
            record_hash(1, 2, "a", "b", Some("c"), "x", GENESIS),
            record_hash(1, 2, "a", "b", Some("c"), "d", "x"),
            // Moving bytes between fields changes it too.
            record_hash(1, 2, "ab", "", Some("c"), "d", GENESIS),
        ] {
            assert_ne!(base, other);
        }
    }
}
