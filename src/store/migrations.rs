//! The schema, as an append-only list of migrations.
//!
//! `PRAGMA user_version` holds how many of [`MIGRATIONS`] the database has
//! had. Opening applies the missing ones, in order, in one exclusive
//! transaction together with the new `user_version`: a crash mid-way leaves
//! the old schema, never half of a new one.
//!
//! **Never edit or remove an entry**: databases in the field have run it.
//! Change the schema by appending a migration.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;

/// Every migration, oldest first. Append only.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: outbox, audit trail, queue counters.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    -- One row per confirmed change. `seq` is the commit order; rows are
    -- never deleted (a purge drops the sealed payload only, rule S2).
    CREATE TABLE outbox (
        seq                INTEGER PRIMARY KEY,
        change_id          TEXT NOT NULL UNIQUE,
        kind               TEXT NOT NULL,
        customer_id        TEXT NOT NULL,
        -- pending: to POST; reconcile: to GET before any resend;
        -- delivered / rejected: the bank's final answer.
        state              TEXT NOT NULL
                           CHECK (state IN ('pending', 'reconcile', 'delivered', 'rejected')),
        -- Set, and committed, before a request goes out; cleared with its
        -- outcome. Still set after a restart: the outcome is unknown.
        in_flight          INTEGER NOT NULL DEFAULT 0 CHECK (in_flight IN (0, 1)),
        nonce              BLOB,
        payload            BLOB,
        attempts           INTEGER NOT NULL DEFAULT 0,
        failures           INTEGER NOT NULL DEFAULT 0,
        created_at_ms      INTEGER NOT NULL,
        updated_at_ms      INTEGER NOT NULL,
        next_attempt_at_ms INTEGER NOT NULL,
        last_error         TEXT,
        outcome            TEXT CHECK (outcome IN ('applied', 'superseded')),
        core_ref           TEXT,
        rejection_code     TEXT,
        rejection_message  TEXT,
        acked_at_ms        INTEGER,
        purged_at_ms       INTEGER,
        CHECK ((nonce IS NULL) = (payload IS NULL)),
        CHECK (payload IS NOT NULL OR state IN ('delivered', 'rejected'))
    ) STRICT;
    CREATE INDEX outbox_open ON outbox (customer_id, seq)
        WHERE state IN ('pending', 'reconcile');
    CREATE INDEX outbox_state ON outbox (state, seq);
    CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
    BEGIN SELECT RAISE(ABORT, 'outbox rows are never deleted'); END;

    -- Append-only, hash-chained (audit.rs).
    CREATE TABLE audit (
        seq       INTEGER PRIMARY KEY,
        at_ms     INTEGER NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        subject   TEXT,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL
    ) STRICT;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

    -- Ticket numbers per service and business day (rule Q2).
    CREATE TABLE queue_counter (
        service      TEXT NOT NULL,
        business_day TEXT NOT NULL,
        last_number  INTEGER NOT NULL,
        PRIMARY KEY (service, business_day)
    ) STRICT;
    "#,
    // 2: issued queue tickets (rules Q2, Q4). A row is written in the same
    // transaction as its number, so every number handed out has a row.
    r#"
    CREATE TABLE ticket (
        seq           INTEGER PRIMARY KEY,
        ticket_id     TEXT NOT NULL UNIQUE,
        service_id    TEXT NOT NULL,
        letter        TEXT NOT NULL,
        business_day  TEXT NOT NULL,
        number        INTEGER NOT NULL CHECK (number >= 1),
        number_text   TEXT NOT NULL,
        issued_at_ms  INTEGER NOT NULL,
        waiting_ahead INTEGER NOT NULL,
        -- Masked only (rule S1): what the ticket shows when a card was swiped.
        masked_name   TEXT,
        state         TEXT NOT NULL DEFAULT 'waiting'
                      CHECK (state IN ('waiting', 'called')),
        printed       INTEGER NOT NULL DEFAULT 0 CHECK (printed IN (0, 1)),
        called_at_ms  INTEGER,
        UNIQUE (letter, business_day, number)
    ) STRICT;
    CREATE INDEX ticket_waiting ON ticket (letter, business_day, state, number);
    CREATE TRIGGER ticket_no_delete BEFORE DELETE ON ticket
    BEGIN SELECT RAISE(ABORT, 'ticket rows are never deleted'); END;
    "#,
    // 3: the ticket's life at the counters (rules Q5, Q8, Q9) and the
    // append-only log of queue events the branch stream replays. `state`
    // gains `served` and `skipped`, which a CHECK cannot be altered to
    // allow: the table is rebuilt (DROP TABLE fires no DELETE trigger).
    r#"
    CREATE TABLE ticket_v3 (
        seq                INTEGER PRIMARY KEY,
        ticket_id          TEXT NOT NULL UNIQUE,
        -- The service it waits in now (a transfer changes it, not `letter`).
        service_id         TEXT NOT NULL,
        letter             TEXT NOT NULL,
        business_day       TEXT NOT NULL,
        number             INTEGER NOT NULL CHECK (number >= 1),
        number_text        TEXT NOT NULL,
        issued_at_ms       INTEGER NOT NULL,
        waiting_ahead      INTEGER NOT NULL,
        masked_name        TEXT,
        state              TEXT NOT NULL DEFAULT 'waiting'
                           CHECK (state IN ('waiting', 'called', 'served', 'skipped')),
        printed            INTEGER NOT NULL DEFAULT 0 CHECK (printed IN (0, 1)),
        -- The last call.
        called_at_ms       INTEGER,
        first_called_at_ms INTEGER,
        -- The counter that called it last.
        counter_id         TEXT,
        served_at_ms       INTEGER,
        skipped_at_ms      INTEGER,
        recalls            INTEGER NOT NULL DEFAULT 0,
        -- The machine that asked for the number (a secondary queue
        -- machine's id, rule Q7); NULL: this machine.
        issued_for         TEXT,
        -- A copy of a ticket the primary numbered (on a secondary).
        numbered_by        TEXT,
        UNIQUE (letter, business_day, number)
    ) STRICT;
    INSERT INTO ticket_v3 (seq, ticket_id, service_id, letter, business_day, number,
        number_text, issued_at_ms, waiting_ahead, masked_name, state, printed,
        called_at_ms, first_called_at_ms)
    SELECT seq, ticket_id, service_id, letter, business_day, number, number_text,
        issued_at_ms, waiting_ahead, masked_name, state, printed, called_at_ms,
        called_at_ms
    FROM ticket;
    DROP TABLE ticket;
    ALTER TABLE ticket_v3 RENAME TO ticket;
    CREATE INDEX ticket_waiting ON ticket (business_day, state, service_id, issued_at_ms);
    CREATE INDEX ticket_counter ON ticket (counter_id, state);
    CREATE TRIGGER ticket_no_delete BEFORE DELETE ON ticket
    BEGIN SELECT RAISE(ABORT, 'ticket rows are never deleted'); END;

    -- Every issue, call, recall, skip, reactivation, transfer and serve,
    -- in the order they were committed. `seq` only grows and is never
    -- reused (AUTOINCREMENT): the stream's resume point.
    CREATE TABLE queue_event (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms        INTEGER NOT NULL,
        business_day TEXT NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN ('issued', 'called', 'recalled',
                         'skipped', 'reactivated', 'transferred', 'served')),
        ticket_id    TEXT NOT NULL,
        number_text  TEXT NOT NULL,
        service_id   TEXT NOT NULL,
        from_service TEXT,
        counter_id   TEXT,
        -- Waiting tickets per service right after the event (JSON object).
        waiting      TEXT NOT NULL
    ) STRICT;
    CREATE TRIGGER queue_event_no_update BEFORE UPDATE ON queue_event
    BEGIN SELECT RAISE(ABORT, 'queue events are append-only'); END;
    CREATE TRIGGER queue_event_no_delete BEFORE DELETE ON queue_event
    BEGIN SELECT RAISE(ABORT, 'queue events are append-only'); END;
    "#,
    // 4: the sync worker's hot path must not grow with history (issue 16):
    // the open changes in commit order (outbox.rs `candidates`, used with
    // INDEXED BY: without statistics SQLite would sort every open row),
    // and the oldest settled payload still to purge.
    r#"
    CREATE INDEX outbox_open_seq ON outbox (seq)
        WHERE state IN ('pending', 'reconcile');
    CREATE INDEX outbox_purge ON outbox (acked_at_ms)
        WHERE payload IS NOT NULL AND state IN ('delivered', 'rejected');
    "#,
    // 5: a confirmation writes fewer pages (issue 16): the index over every
    // row's state, touched by each new row, gives way to one per settled
    // state (their counts and lists); open rows have outbox_open_seq.
    r#"
    DROP INDEX outbox_state;
    CREATE INDEX outbox_delivered ON outbox (seq) WHERE state = 'delivered';
    CREATE INDEX outbox_rejected ON outbox (seq) WHERE state = 'rejected';
    "#,
    // 6: a new ticket has no counter yet: it need not enter the counters'
    // index (one page fewer in each ticket's commit, issue 16).
    r#"
    DROP INDEX ticket_counter;
    CREATE INDEX ticket_counter ON ticket (counter_id, state) WHERE counter_id IS NOT NULL;
    "#,
    // 7: the time of the last delivery (sync status, asked at every
    // supervision tick and scrape) is read from an index, not from every
    // delivered row: at 300,000 rows it took 27 ms of the status's 32,
    // holding the store (issue 16).
    r#"
    CREATE INDEX outbox_delivered_at ON outbox (acked_at_ms) WHERE state = 'delivered';
    "#,
    // 8: the queue's day in use (queue.rs `day_in_use`, asked by every
    // ticket and every counter's action) is the latest numbering day, read
    // from an index instead of every service's every past day (issue 16).
    r#"
    CREATE INDEX queue_counter_day ON queue_counter (business_day);
    "#,
];

/// Bring the schema up to date.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let known = MIGRATIONS.len() as i64;
    let err = |source| super::classify(path, source);
    let version = |c: &Connection| c.pragma_query_value(None, "user_version", |r| r.get(0));
    let too_new = |found| Error::StoreTooNew {
        path: path.to_path_buf(),
        found,
        known,
    };
    let current: i64 = version(conn).map_err(err)?;
    if current == known {
        // Nothing to write: a read-only database opens too.
        return Ok(());
    }
    if current > known {
        return Err(too_new(current));
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(err)?;
    // Another process may have migrated between the check and the lock.
    let current: i64 = version(&tx).map_err(err)?;
    if current > known {
        return Err(too_new(current));
    }
    for migration in &MIGRATIONS[usize::try_from(current).unwrap_or(0)..] {
        tx.execute_batch(migration).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", known).map_err(err)?;
    tx.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Store, StoreOptions};
    use super::*;

    fn user_version(c: &Connection) -> i64 {
        c.pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let t = TestDir::new();
        let mut conn = Connection::open(t.db()).expect("open");
        migrate(&mut conn, &t.db()).expect("first");
        assert_eq!(user_version(&conn), MIGRATIONS.len() as i64);
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')", [])
            .expect("insert");
        migrate(&mut conn, &t.db()).expect("second");
        assert_eq!(user_version(&conn), MIGRATIONS.len() as i64);
        let kept: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'x'", [], |r| r.get(0))
            .expect("row kept");
        assert_eq!(kept, "y");
        drop(conn);
        // And through Store::open, twice.
        drop(t.open());
        drop(t.open());
    }

    #[test]
    fn version_2_tickets_keep_their_numbers_and_state_in_the_lifecycle_table() {
        let t = TestDir::new();
        let mut conn = Connection::open(t.db()).expect("open");
        let tx = conn.transaction().expect("tx");
        for m in &MIGRATIONS[..2] {
            tx.execute_batch(m).expect("old migration");
        }
        tx.pragma_update(None, "user_version", 2).expect("version");
        tx.execute_batch(
            "INSERT INTO ticket (ticket_id, service_id, letter, business_day, number,
                number_text, issued_at_ms, waiting_ahead, state, called_at_ms)
             VALUES ('t1', 'personal', 'A', '2026-12-05', 1, 'A001', 5, 0, 'called', 9),
                    ('t2', 'personal', 'A', '2026-12-05', 2, 'A002', 6, 1, 'waiting', NULL);",
        )
        .expect("old rows");
        tx.commit().expect("commit");
        migrate(&mut conn, &t.db()).expect("to the newest");
        let rows: Vec<(String, String, Option<i64>)> = conn
            .prepare("SELECT number_text, state, first_called_at_ms FROM ticket ORDER BY seq")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            rows,
            [
                ("A001".to_string(), "called".to_string(), Some(9)),
                ("A002".to_string(), "waiting".to_string(), None)
            ]
        );
        // Still never deleted; the queue log is append-only.
        assert!(conn.execute("DELETE FROM ticket", []).is_err());
        conn.execute(
            "INSERT INTO queue_event (at_ms, business_day, kind, ticket_id, number_text,
                service_id, waiting) VALUES (1, '2026-12-05', 'called', 't1', 'A001', 'personal', '{}')",
            [],
        )
        .expect("append");
        assert!(
            conn.execute("UPDATE queue_event SET at_ms = 2", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM queue_event", []).is_err());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let t = TestDir::new();
        let mut conn = Connection::open(t.db()).expect("open");
        migrate(&mut conn, &t.db()).expect("migrate");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        let e = Store::open(&t.db(), &t.key(), &StoreOptions::default()).expect_err("too new");
        assert!(matches!(e, Error::StoreTooNew { found: 99, .. }), "{e}");
    }

    #[test]
    fn a_failing_migration_leaves_the_old_schema() {
        let t = TestDir::new();
        let mut conn = Connection::open(t.db()).expect("open");
        // A table in the way makes migration 1 fail half-way.
        conn.execute_batch("CREATE TABLE queue_counter (x INTEGER)")
            .expect("obstacle");
        migrate(&mut conn, &t.db()).expect_err("must fail");
        assert_eq!(user_version(&conn), 0);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('meta', 'outbox', 'audit')",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(tables, 0, "nothing of the migration was kept");
    }
}
