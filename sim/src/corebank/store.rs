//! The simulator's state in its own SQLite file, and the business logic of
//! every endpoint, without HTTP: each operation takes the parsed request
//! and the simulator's time and returns an [`Answer`] (status and body).
//!
//! One connection, used by one caller at a time (the server holds it in a
//! mutex and calls it from blocking tasks). Every operation that changes
//! something runs in one `IMMEDIATE` transaction, so a change, its
//! idempotency record and its application count are committed together or
//! not at all; a request cancelled half-way (its connection dropped) has
//! either taken effect completely or not at all. WAL with
//! `synchronous=NORMAL`: what is committed survives the simulator's own
//! crash or restart (not a power cut, which a test simulator need not
//! survive).

use std::fmt;
use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};
use kiosk_corebank::{
    ChangeKind, ChangeRequest, ChangeResult, ChangeStatus, CheckResult, Customer, IdType,
    IdValidityChange, LookupRequest, MobileChange, OtpIssued, OtpRequest, SelfService, rejection,
};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::fixtures::{CustomerRecord, Fixtures, ValidUntil, is_mobile, number_key};
use crate::{Result, SimError};

/// Wrong security answers that lock self-service (rule P2).
pub const SECURITY_ATTEMPTS: u32 = 3;
/// Wrong OTP codes per customer per day that lock OTPs for the day (rule P4).
pub const OTP_WRONG_PER_DAY: u32 = 10;
/// How long a nonce is remembered.
pub const NONCE_WINDOW_MS: i64 = 10 * 60 * 1000;
/// The branch's time zone, which "that day" is counted in (UTC+8).
pub const DAY_UTC_OFFSET_S: i32 = 8 * 3600;

/// Settings of the business logic.
#[derive(Debug, Clone)]
pub struct Settings {
    pub otp_ttl_s: u64,
    pub otp_min_interval_s: u64,
    pub proof_ttl_s: u64,
    pub idempotency_retention_s: u64,
}

/// An HTTP answer: status, JSON body, and the headers the spec defines.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after_s: Option<u64>,
    /// Sent with `Idempotent-Replayed: true`.
    pub replayed: bool,
}

impl Answer {
    pub fn ok(status: u16, body: impl Serialize) -> Answer {
        Answer {
            status,
            body: serde_json::to_value(body).unwrap_or(Value::Null),
            retry_after_s: None,
            replayed: false,
        }
    }

    /// A non-2xx answer: `{"code","message"}`.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        Answer {
            status,
            body: json!({"code": code, "message": message.into()}),
            retry_after_s: None,
            replayed: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Answer {
        Answer::error(400, "bad_request", message)
    }

    fn customer_not_found() -> Answer {
        Answer::error(404, "customer_not_found", "no such customer")
    }

    /// The `code` of an error body.
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }
}

/// A customer as the simulator holds it now.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerState {
    /// The record, as changed by the changes applied so far.
    pub record: CustomerRecord,
    /// Wrong security answers given (3 lock).
    pub security_failures: u32,
    /// Wrong OTP codes today, in the branch's time zone (10 lock).
    pub otp_failures_today: u32,
    /// When a change was last applied (simulator time, ms).
    pub updated_at_ms: Option<i64>,
}

impl fmt::Debug for CustomerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerState")
            .field("record", &self.record)
            .field("security_failures", &self.security_failures)
            .field("otp_failures_today", &self.otp_failures_today)
            .field("updated_at_ms", &self.updated_at_ms)
            .finish()
    }
}

/// A text message the bank "sent": an OTP code or a change notice.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    pub id: i64,
    pub mobile: String,
    /// `otp`, `notice_old` (to the number replaced) or `notice_new`.
    pub kind: String,
    /// The code of an `otp` message.
    pub code: Option<String>,
    pub text: String,
    pub customer_id: Option<String>,
    pub change_id: Option<String>,
    pub sent_at_ms: i64,
}

impl fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsMessage")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("customer_id", &self.customer_id)
            .field("change_id", &self.change_id)
            .finish_non_exhaustive()
    }
}

/// Append-only: never edit or remove an entry, add one.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    profile TEXT,
    note TEXT,
    name TEXT NOT NULL,
    id_type TEXT NOT NULL,
    id_number TEXT NOT NULL,
    id_key TEXT NOT NULL UNIQUE,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    issuer TEXT NOT NULL,
    mobile TEXT NOT NULL,
    security_question TEXT,
    security_answer TEXT,
    security_failures INTEGER NOT NULL DEFAULT 0,
    id_update INTEGER NOT NULL,
    mobile_change INTEGER NOT NULL,
    reason TEXT,
    tier TEXT NOT NULL,
    updated_at_ms INTEGER
);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    answer TEXT NOT NULL,
    customer_id TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX idempotency_created ON idempotency(created_at_ms);
CREATE TABLE nonces (
    nonce TEXT PRIMARY KEY,
    seen_at_ms INTEGER NOT NULL
);
CREATE INDEX nonces_seen ON nonces(seen_at_ms);
CREATE TABLE otps (
    otp_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    mobile TEXT NOT NULL,
    code TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0,
    proof TEXT UNIQUE,
    verified_at_ms INTEGER,
    proof_used_by TEXT
);
CREATE INDEX otps_customer ON otps(customer_id, created_at_ms);
CREATE TABLE otp_failures (
    customer_id TEXT NOT NULL,
    day TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (customer_id, day)
);
CREATE TABLE applied (
    change_id TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_at_ms INTEGER NOT NULL
);
CREATE TABLE sms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mobile TEXT NOT NULL,
    kind TEXT NOT NULL,
    code TEXT,
    text TEXT NOT NULL,
    customer_id TEXT,
    change_id TEXT,
    sent_at_ms INTEGER NOT NULL
);
CREATE INDEX sms_mobile ON sms(mobile, id);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('core_ref_seq', 0);
"#];

/// Tables emptied by a reset, in an order foreign keys would accept.
const STATE_TABLES: &[&str] = &[
    "idempotency",
    "nonces",
    "otps",
    "otp_failures",
    "applied",
    "sms",
    "customers",
];

const CUSTOMER_COLUMNS: &str = "customer_id, profile, note, name, id_type, id_number, valid_from, \
     valid_until, issuer, mobile, security_question, security_answer, id_update, mobile_change, \
     reason, tier, security_failures, updated_at_ms";

/// The database and the business logic.
pub struct Store {
    conn: Connection,
    settings: Settings,
    nonce_inserts: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

type Db<T> = std::result::Result<T, rusqlite::Error>;

impl Store {
    /// Open (or create) the database and bring its schema up to date.
    pub fn open(path: &Path, settings: Settings) -> Result<Store> {
        let what = format!("core-bank database {}", path.display());
        let mut conn = Connection::open(path).map_err(SimError::db(what.clone()))?;
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .map_err(SimError::db(what.clone()))?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;")
            .map_err(SimError::db(what.clone()))?;
        migrate(&mut conn).map_err(SimError::db(format!("migrating {what}")))?;
        Ok(Store {
            conn,
            settings,
            nonce_inserts: 0,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Add the customers not in the database yet (by id; a customer whose
    /// number is already someone else's is skipped). Returns how many.
    pub fn seed(&mut self, fixtures: &Fixtures) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(SimError::db("seeding customers"))?;
        let mut added = 0;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR IGNORE INTO customers (customer_id, profile, note, name, id_type, \
                     id_number, id_key, valid_from, valid_until, issuer, mobile, security_question, \
                     security_answer, id_update, mobile_change, reason, tier) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(SimError::db("seeding customers"))?;
            for c in &fixtures.customers {
                added += stmt
                    .execute(params![
                        c.customer_id,
                        c.profile,
                        c.note,
                        c.name,
                        id_type_str(c.id_type),
                        c.id_number.trim(),
                        number_key(&c.id_number),
                        c.valid_from,
                        c.valid_until,
                        c.issuer,
                        c.mobile,
                        c.security_question,
                        c.security_answer,
                        c.id_update,
                        c.mobile_change,
                        c.reason,
                        c.tier,
                    ])
                    .map_err(SimError::db("seeding customers"))?;
            }
        }
        tx.commit().map_err(SimError::db("seeding customers"))?;
        Ok(added)
    }

    /// Forget everything and load the customers again.
    pub fn reset(&mut self, fixtures: &Fixtures) -> Result<()> {
        {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(SimError::db("resetting"))?;
            for t in STATE_TABLES {
                tx.execute(&format!("DELETE FROM {t}"), [])
                    .map_err(SimError::db("resetting"))?;
            }
            tx.execute("UPDATE meta SET value = 0 WHERE key = 'core_ref_seq'", [])
                .map_err(SimError::db("resetting"))?;
            tx.commit().map_err(SimError::db("resetting"))?;
        }
        self.seed(fixtures)?;
        Ok(())
    }

    /// Remember a nonce; false if it was seen in the last 10 minutes.
    pub fn check_nonce(&mut self, nonce: &str, now_ms: i64) -> Db<bool> {
        let seen: Option<i64> = self
            .conn
            .query_row(
                "SELECT seen_at_ms FROM nonces WHERE nonce = ?1",
                [nonce],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some_and(|t| now_ms - t < NONCE_WINDOW_MS) {
            return Ok(false);
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO nonces (nonce, seen_at_ms) VALUES (?1, ?2)",
            params![nonce, now_ms],
        )?;
        self.nonce_inserts += 1;
        if self.nonce_inserts.is_multiple_of(1000) {
            self.prune(now_ms)?;
        }
        Ok(true)
    }

    /// Drop nonces older than the window and idempotency records older than
    /// the retention.
    pub fn prune(&mut self, now_ms: i64) -> Db<()> {
        self.conn.execute(
            "DELETE FROM nonces WHERE seen_at_ms < ?1",
            [now_ms - NONCE_WINDOW_MS],
        )?;
        let retention_ms = i64::try_from(self.settings.idempotency_retention_s)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        self.conn.execute(
            "DELETE FROM idempotency WHERE created_at_ms < ?1",
            [now_ms.saturating_sub(retention_ms)],
        )?;
        Ok(())
    }

    // ----- customers -------------------------------------------------------

    /// `POST /v1/customers/lookup`.
    pub fn lookup(&mut self, req: &LookupRequest) -> Db<Answer> {
        let Some(state) = self.customer_by_number(&req.id_number)? else {
            return Ok(Answer::error(
                404,
                "customer_not_found",
                "no customer holds this document number",
            ));
        };
        let rec = &state.record;
        if !kiosk_idcard::idnumber::matches_on_file(&req.id_number, &rec.id_number) {
            return Ok(Answer::error(
                404,
                "customer_not_found",
                "no customer holds this document number",
            ));
        }
        if normalise_name(&req.name) != normalise_name(&rec.name) {
            return Ok(Answer::error(
                422,
                rejection::NAME_MISMATCH,
                "the name differs from the one on file",
            ));
        }
        Ok(Answer::ok(200, customer_answer(&state)))
    }

    /// `POST /v1/customers/{id}/security-answer`.
    pub fn security_answer(&mut self, customer_id: &str, answer: &str) -> Db<Answer> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(state) = customer_by_id(&tx, customer_id)? else {
            return Ok(Answer::customer_not_found());
        };
        let Some(expected) = state.record.security_answer.as_deref() else {
            return Ok(Answer::error(
                409,
                "no_security_question",
                "the customer has no security question set",
            ));
        };
        if state.security_failures >= SECURITY_ATTEMPTS {
            return Ok(Answer::error(423, "locked", SECURITY_LOCKED));
        }
        if normalise_answer(answer) == normalise_answer(expected) {
            return Ok(passed(None));
        }
        let failures = state.security_failures + 1;
        tx.execute(
            "UPDATE customers SET security_failures = ?2 WHERE customer_id = ?1",
            params![customer_id, failures],
        )?;
        tx.commit()?;
        Ok(failed(SECURITY_ATTEMPTS, failures))
    }

    // ----- OTP -------------------------------------------------------------

    /// `POST /v1/otp`. The code goes to the SMS outbox.
    pub fn otp_issue(&mut self, req: &OtpRequest, now_ms: i64) -> Db<Answer> {
        if req.purpose != "mobile_change" {
            return Ok(Answer::bad_request("purpose must be mobile_change"));
        }
        if !is_mobile(&req.mobile) {
            return Ok(Answer::bad_request(
                "mobile must be an 11-digit mainland mobile number",
            ));
        }
        let settings = self.settings.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(state) = customer_by_id(&tx, &req.customer_id)? else {
            return Ok(Answer::customer_not_found());
        };
        if let Some(refusal) = mobile_change_refusal(&state) {
            return Ok(refusal);
        }
        if otp_failures(&tx, &req.customer_id, now_ms)? >= OTP_WRONG_PER_DAY {
            return Ok(Answer::error(423, "locked", OTP_LOCKED));
        }
        let last: Option<i64> = tx.query_row(
            "SELECT MAX(created_at_ms) FROM otps WHERE customer_id = ?1",
            [&req.customer_id],
            |r| r.get(0),
        )?;
        let interval_ms = ms(settings.otp_min_interval_s);
        if let Some(last) = last {
            let wait_ms = last.saturating_add(interval_ms) - now_ms;
            if wait_ms > 0 {
                let mut a = Answer::error(
                    429,
                    "rate_limited",
                    "a code was sent to this customer moments ago",
                );
                a.retry_after_s = Some(u64::try_from((wait_ms + 999) / 1000).unwrap_or(1));
                return Ok(a);
            }
        }
        tx.execute(
            "UPDATE otps SET superseded = 1 WHERE customer_id = ?1 AND verified_at_ms IS NULL",
            [&req.customer_id],
        )?;
        let otp_id = uuid::Uuid::new_v4().to_string();
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        tx.execute(
            "INSERT INTO otps (otp_id, customer_id, mobile, code, created_at_ms, expires_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                otp_id,
                req.customer_id,
                req.mobile,
                code,
                now_ms,
                now_ms.saturating_add(ms(settings.otp_ttl_s))
            ],
        )?;
        let minutes = settings.otp_ttl_s.div_ceil(60);
        send_sms(
            &tx,
            &req.mobile,
            "otp",
            Some(&code),
            &format!(
                "【模拟银行】验证码{code}，用于更换预留手机号，{minutes}分钟内有效，请勿告诉他人。"
            ),
            Some(&req.customer_id),
            None,
            now_ms,
        )?;
        tx.commit()?;
        Ok(Answer::ok(
            201,
            OtpIssued {
                otp_id,
                expires_in_s: settings.otp_ttl_s,
            },
        ))
    }

    /// `POST /v1/otp/{otp_id}/verify`.
    pub fn otp_verify(&mut self, otp_id: &str, code: &str, now_ms: i64) -> Db<Answer> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = tx
            .query_row(
                "SELECT customer_id, code, expires_at_ms, superseded, proof FROM otps WHERE otp_id = ?1",
                [otp_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((customer_id, expected, expires_at_ms, superseded, proof)) = row else {
            return Ok(Answer::error(404, "otp_not_found", "no such code was sent"));
        };
        let failures = otp_failures(&tx, &customer_id, now_ms)?;
        if failures >= OTP_WRONG_PER_DAY {
            return Ok(Answer::error(423, "locked", OTP_LOCKED));
        }
        let right = code.trim() == expected;
        if let (true, Some(proof)) = (right, proof) {
            // Verified before (the answer may have been lost): same proof.
            return Ok(passed(Some(proof)));
        }
        if superseded || now_ms >= expires_at_ms {
            return Ok(Answer::error(
                410,
                "expired",
                "the code has expired; ask for a new one",
            ));
        }
        if right {
            let proof = hex::encode(rand::random::<[u8; 32]>());
            tx.execute(
                "UPDATE otps SET proof = ?2, verified_at_ms = ?3 WHERE otp_id = ?1",
                params![otp_id, proof, now_ms],
            )?;
            tx.commit()?;
            return Ok(passed(Some(proof)));
        }
        let failures = failures + 1;
        tx.execute(
            "INSERT INTO otp_failures (customer_id, day, count) VALUES (?1, ?2, 1) \
             ON CONFLICT (customer_id, day) DO UPDATE SET count = count + 1",
            params![customer_id, day_of(now_ms)],
        )?;
        tx.commit()?;
        Ok(failed(OTP_WRONG_PER_DAY, failures))
    }

    // ----- changes ---------------------------------------------------------

    /// The first answer to this idempotency key, if there is one: a replay
    /// for the same body, `409 idempotency_conflict` for another.
    pub fn existing_change(&mut self, key: &str, body_hash: &str) -> Db<Option<Answer>> {
        existing_change(&self.conn, key, body_hash)
    }

    /// `POST /v1/changes` after the idempotency check: process the change,
    /// store its answer under its key and count an application, in one
    /// transaction. Returns the answer and whether the change was applied.
    pub fn apply_change(
        &mut self,
        req: &ChangeRequest,
        body_hash: &str,
        now_ms: i64,
    ) -> Db<(Answer, bool)> {
        let proof_ttl_ms = ms(self.settings.proof_ttl_s);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Checked again inside the transaction: another request with this key
        // may have finished since the caller looked.
        if let Some(a) = existing_change(&tx, &req.change_id, body_hash)? {
            return Ok((a, false));
        }
        let answer = match customer_by_id(&tx, &req.customer_id)? {
            None => Answer::customer_not_found(),
            Some(state) => match &req.kind {
                ChangeKind::IdValidity { id_validity } => {
                    change_validity(&tx, req, &state, id_validity, now_ms)?
                }
                ChangeKind::Mobile { mobile } => {
                    change_mobile(&tx, req, &state, mobile, now_ms, proof_ttl_ms)?
                }
            },
        };
        let applied = answer.status == 201;
        tx.execute(
            "INSERT INTO idempotency (key, body_hash, status, answer, customer_id, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                req.change_id,
                body_hash,
                answer.status,
                answer.body.to_string(),
                req.customer_id,
                now_ms
            ],
        )?;
        if applied {
            tx.execute(
                "INSERT INTO applied (change_id, count, last_at_ms) VALUES (?1, 1, ?2) \
                 ON CONFLICT (change_id) DO UPDATE SET count = count + 1, last_at_ms = ?2",
                params![req.change_id, now_ms],
            )?;
        }
        tx.commit()?;
        Ok((answer, applied))
    }

    /// `GET /v1/changes/{id}`: the stored first answer, as `200`.
    pub fn change_status(&mut self, change_id: &str) -> Db<Answer> {
        let answer: Option<String> = self
            .conn
            .query_row(
                "SELECT answer FROM idempotency WHERE key = ?1",
                [change_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match answer {
            Some(text) => Answer::ok(
                200,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            ),
            None => Answer::error(404, "change_not_found", "this change was never received"),
        })
    }

    // ----- inspection ------------------------------------------------------

    pub fn customer(&mut self, customer_id: &str, now_ms: i64) -> Db<Option<CustomerState>> {
        let Some(mut state) = customer_by_id(&self.conn, customer_id)? else {
            return Ok(None);
        };
        state.otp_failures_today = otp_failures(&self.conn, customer_id, now_ms)?;
        Ok(Some(state))
    }

    /// Messages to `mobile`, newest first (at most `limit`).
    pub fn sms(&mut self, mobile: &str, limit: u32) -> Db<Vec<SmsMessage>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, mobile, kind, code, text, customer_id, change_id, sent_at_ms FROM sms \
             WHERE mobile = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![mobile, limit], |r| {
            Ok(SmsMessage {
                id: r.get(0)?,
                mobile: r.get(1)?,
                kind: r.get(2)?,
                code: r.get(3)?,
                text: r.get(4)?,
                customer_id: r.get(5)?,
                change_id: r.get(6)?,
                sent_at_ms: r.get(7)?,
            })
        })?;
        rows.collect()
    }

    /// How many times each change was applied (only changes applied at
    /// least once).
    pub fn applied(&mut self) -> Db<Vec<(String, u32)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT change_id, count FROM applied ORDER BY change_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    pub fn applied_count(&mut self, change_id: &str) -> Db<u32> {
        Ok(self
            .conn
            .query_row(
                "SELECT count FROM applied WHERE change_id = ?1",
                [change_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    fn customer_by_number(&mut self, number: &str) -> Db<Option<CustomerState>> {
        let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id_key = ?1");
        self.conn
            .query_row(&sql, [number_key(number)], customer_row)
            .optional()
    }
}

const SECURITY_LOCKED: &str =
    "three wrong security answers: self-service phone changes are locked, see the counter";
const SECURITY_LOCKED_REASON: &str = "私密问题错误次数过多，请到柜台办理 security question locked";
const OTP_LOCKED: &str = "ten wrong codes today: codes are locked until tomorrow";
const RESTRICTED: &str = "restricted by the bank";

fn migrate(conn: &mut Connection) -> Db<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(m)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
    }
    tx.commit()
}

fn ms(seconds: u64) -> i64 {
    i64::try_from(seconds)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

/// The day of `now_ms` in the branch's time zone, `YYYY-MM-DD`.
pub fn day_of(now_ms: i64) -> String {
    let tz =
        FixedOffset::east_opt(DAY_UTC_OFFSET_S).unwrap_or_else(|| unreachable!("valid offset"));
    DateTime::<Utc>::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%Y-%m-%d")
        .to_string()
}

fn otp_failures(conn: &Connection, customer_id: &str, now_ms: i64) -> Db<u32> {
    Ok(conn
        .query_row(
            "SELECT count FROM otp_failures WHERE customer_id = ?1 AND day = ?2",
            params![customer_id, day_of(now_ms)],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// A right security answer or OTP code (with the proof a verified OTP
/// earns): `200 {ok: true}`.
fn passed(proof: Option<String>) -> Answer {
    Answer::ok(
        200,
        CheckResult {
            ok: true,
            attempts_left: None,
            proof,
        },
    )
}

/// A wrong security answer or OTP code, the `failures`th of the `limit`
/// that lock: `200 {ok: false}` with the attempts left.
fn failed(limit: u32, failures: u32) -> Answer {
    Answer::ok(
        200,
        CheckResult {
            ok: false,
            attempts_left: Some(limit.saturating_sub(failures)),
            proof: None,
        },
    )
}

fn existing_change(conn: &Connection, key: &str, body_hash: &str) -> Db<Option<Answer>> {
    let row: Option<(String, u16, String)> = conn
        .query_row(
            "SELECT body_hash, status, answer FROM idempotency WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.map(|(hash, status, answer)| {
        if hash == body_hash {
            Answer {
                status,
                body: serde_json::from_str(&answer).unwrap_or(Value::Null),
                retry_after_s: None,
                replayed: true,
            }
        } else {
            Answer::error(
                409,
                "idempotency_conflict",
                "this idempotency key was used with another body",
            )
        }
    }))
}

fn customer_by_id(conn: &Connection, customer_id: &str) -> Db<Option<CustomerState>> {
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE customer_id = ?1");
    conn.query_row(&sql, [customer_id], customer_row).optional()
}

fn customer_row(r: &rusqlite::Row<'_>) -> Db<CustomerState> {
    let id_type: String = r.get(4)?;
    Ok(CustomerState {
        record: CustomerRecord {
            customer_id: r.get(0)?,
            profile: r.get(1)?,
            note: r.get(2)?,
            name: r.get(3)?,
            id_type: parse_id_type(&id_type).unwrap_or(IdType::Other),
            id_number: r.get(5)?,
            valid_from: r.get(6)?,
            valid_until: r.get(7)?,
            issuer: r.get(8)?,
            mobile: r.get(9)?,
            security_question: r.get(10)?,
            security_answer: r.get(11)?,
            id_update: r.get(12)?,
            mobile_change: r.get(13)?,
            reason: r.get(14)?,
            tier: r.get(15)?,
        },
        security_failures: r.get(16)?,
        otp_failures_today: 0,
        updated_at_ms: r.get(17)?,
    })
}

fn security_locked(state: &CustomerState) -> bool {
    state.record.security_question.is_some() && state.security_failures >= SECURITY_ATTEMPTS
}

/// What the kiosk may do for this customer now: the record's flags, and
/// phone changes off once the security question is locked (rule P2).
fn self_service(state: &CustomerState) -> SelfService {
    let rec = &state.record;
    let locked = security_locked(state);
    let reason = if !rec.id_update || !rec.mobile_change {
        Some(rec.reason.clone().unwrap_or_else(|| RESTRICTED.into()))
    } else if locked {
        Some(SECURITY_LOCKED_REASON.into())
    } else {
        None
    };
    SelfService {
        id_update: rec.id_update,
        mobile_change: rec.mobile_change && !locked,
        reason,
    }
}

fn mobile_change_refusal(state: &CustomerState) -> Option<Answer> {
    let ss = self_service(state);
    (!ss.mobile_change).then(|| {
        Answer::error(
            422,
            rejection::NOT_ALLOWED,
            ss.reason.unwrap_or_else(|| RESTRICTED.into()),
        )
    })
}

fn customer_answer(state: &CustomerState) -> Customer {
    let rec = &state.record;
    Customer {
        customer_id: rec.customer_id.clone(),
        name: rec.name.clone(),
        id_type: rec.id_type,
        id_number_on_file: rec.id_number.clone(),
        id_valid_from: rec.valid_from.clone(),
        id_valid_until: rec.valid_until.clone(),
        mobile_masked: mask_mobile(&rec.mobile),
        security_question: rec.security_question.clone(),
        self_service: self_service(state),
        tier: rec.tier.clone(),
    }
}

fn next_core_ref(tx: &Transaction<'_>) -> Db<String> {
    let n: i64 = tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'core_ref_seq' RETURNING value",
        [],
        |r| r.get(0),
    )?;
    Ok(format!("CR{n:010}"))
}

fn change_result(tx: &Transaction<'_>, status: ChangeStatus) -> Db<Answer> {
    let core_ref = next_core_ref(tx)?;
    let code = match status {
        ChangeStatus::Applied => 201,
        ChangeStatus::Superseded => 200,
    };
    Ok(Answer::ok(code, ChangeResult { status, core_ref }))
}

/// `kind: id_validity` (rules I5, I7).
fn change_validity(
    tx: &Transaction<'_>,
    req: &ChangeRequest,
    state: &CustomerState,
    card: &IdValidityChange,
    now_ms: i64,
) -> Db<Answer> {
    let rec = &state.record;
    if !rec.id_update {
        let reason = rec.reason.clone().unwrap_or_else(|| RESTRICTED.into());
        return Ok(Answer::error(422, rejection::NOT_ALLOWED, reason));
    }
    if card.id_type != rec.id_type {
        return Ok(Answer::error(
            422,
            rejection::DOCUMENT_TYPE_MISMATCH,
            "the card's document type differs from the one on file",
        ));
    }
    if !kiosk_idcard::idnumber::matches_on_file(&card.id_number, &rec.id_number) {
        return Ok(Answer::error(
            422,
            rejection::NOT_ALLOWED,
            "the card's number is not the one on file",
        ));
    }
    // Both parse: the server checked the card's dates before, the
    // fixtures' at load; an unparsable record date counts as oldest.
    let card_from = card.valid_from.as_str();
    let card_until = ValidUntil::parse(&card.valid_until);
    let file_until = ValidUntil::parse(&rec.valid_until);
    if card_from < rec.valid_from.as_str() {
        return Ok(Answer::error(
            422,
            rejection::STALE_CARD,
            "the record holds a card issued after this one",
        ));
    }
    if card_until <= file_until {
        return change_result(tx, ChangeStatus::Superseded);
    }
    // Apply. An old 15-digit number on file becomes the card's 18 digits.
    tx.execute(
        "UPDATE customers SET valid_from = ?2, valid_until = ?3, issuer = ?4, id_number = ?5, \
         updated_at_ms = ?6 WHERE customer_id = ?1",
        params![
            req.customer_id,
            card.valid_from,
            card.valid_until
                .trim()
                .replace("长期", kiosk_corebank::LONG_TERM),
            card.issuer,
            card.id_number.trim().to_ascii_uppercase(),
            now_ms
        ],
    )?;
    change_result(tx, ChangeStatus::Applied)
}

/// `kind: mobile` (rules P2, P4, P5, P7).
fn change_mobile(
    tx: &Transaction<'_>,
    req: &ChangeRequest,
    state: &CustomerState,
    change: &MobileChange,
    now_ms: i64,
    proof_ttl_ms: i64,
) -> Db<Answer> {
    if let Some(refusal) = mobile_change_refusal(state) {
        return Ok(refusal);
    }
    let proof = tx
        .query_row(
            "SELECT otp_id, customer_id, mobile, verified_at_ms, proof_used_by FROM otps \
             WHERE proof = ?1",
            [&change.otp_proof],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?;
    let valid = proof
        .as_ref()
        .is_some_and(|(_, customer, mobile, verified, used)| {
            *customer == req.customer_id
                && *mobile == change.new_mobile
                && verified.is_some_and(|t| now_ms - t <= proof_ttl_ms)
                && used.as_ref().is_none_or(|u| *u == req.change_id)
        });
    let Some((otp_id, ..)) = proof.filter(|_| valid) else {
        return Ok(Answer::error(
            422,
            rejection::OTP_PROOF_INVALID,
            "the proof is not one issued for this customer and number, or it was used or expired",
        ));
    };
    tx.execute(
        "UPDATE otps SET proof_used_by = ?2 WHERE otp_id = ?1",
        params![otp_id, req.change_id],
    )?;
    let old = state.record.mobile.clone();
    if old == change.new_mobile {
        return change_result(tx, ChangeStatus::Superseded);
    }
    tx.execute(
        "UPDATE customers SET mobile = ?2, updated_at_ms = ?3 WHERE customer_id = ?1",
        params![req.customer_id, change.new_mobile, now_ms],
    )?;
    if change.notify_old_and_new {
        let date = day_of(now_ms);
        let masked = mask_mobile(&change.new_mobile);
        send_sms(
            tx,
            &old,
            "notice_old",
            None,
            &format!(
                "【模拟银行】您在本行预留的手机号已于{date}变更为{masked}。如非本人操作，请立即致电客服。"
            ),
            Some(&req.customer_id),
            Some(&req.change_id),
            now_ms,
        )?;
        send_sms(
            tx,
            &change.new_mobile,
            "notice_new",
            None,
            &format!("【模拟银行】您已于{date}将本行预留手机号变更为本号码。"),
            Some(&req.customer_id),
            Some(&req.change_id),
            now_ms,
        )?;
    }
    change_result(tx, ChangeStatus::Applied)
}

#[allow(clippy::too_many_arguments)]
fn send_sms(
    conn: &Connection,
    mobile: &str,
    kind: &str,
    code: Option<&str>,
    text: &str,
    customer_id: Option<&str>,
    change_id: Option<&str>,
    now_ms: i64,
) -> Db<()> {
    conn.execute(
        "INSERT INTO sms (mobile, kind, code, text, customer_id, change_id, sent_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![mobile, kind, code, text, customer_id, change_id, now_ms],
    )?;
    Ok(())
}

/// `138****5678`.
pub fn mask_mobile(m: &str) -> String {
    let chars: Vec<char> = m.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn normalise_name(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '·' && *c != '•')
        .collect::<String>()
        .to_uppercase()
}

fn normalise_answer(s: &str) -> String {
    s.trim().to_lowercase()
}

pub fn id_type_str(t: IdType) -> &'static str {
    match t {
        IdType::Resident => "resident",
        IdType::ForeignPermanent => "foreign_permanent",
        IdType::HkMoTwResidence => "hk_mo_tw_residence",
        IdType::Temporary => "temporary",
        IdType::Other => "other",
    }
}

fn parse_id_type(s: &str) -> Option<IdType> {
    serde_json::from_value(Value::String(s.to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_mobiles() {
        assert_eq!(mask_mobile("13812345678"), "138****5678");
    }

    #[test]
    fn days_are_counted_in_utc_plus_8() {
        // 2025-01-01T15:59:59Z is 23:59:59 in Beijing; a second later, the 2nd.
        assert_eq!(day_of(1_735_747_199_000), "2025-01-01");
        assert_eq!(day_of(1_735_747_200_000), "2025-01-02");
    }

    #[test]
    fn id_types_round_trip() {
        for t in [
            IdType::Resident,
            IdType::ForeignPermanent,
            IdType::HkMoTwResidence,
            IdType::Temporary,
            IdType::Other,
        ] {
            assert_eq!(parse_id_type(id_type_str(t)), Some(t));
        }
    }

    #[test]
    fn migrating_twice_is_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            otp_ttl_s: 300,
            otp_min_interval_s: 30,
            proof_ttl_s: 1800,
            idempotency_retention_s: 8 * 86400,
        };
        let path = dir.path().join("cb.sqlite");
        let mut s = Store::open(&path, settings.clone()).unwrap();
        assert_eq!(
            s.seed(&Fixtures::builtin()).unwrap(),
            Fixtures::builtin().customers.len()
        );
        drop(s);
        let mut s = Store::open(&path, settings).unwrap();
        assert_eq!(s.seed(&Fixtures::builtin()).unwrap(), 0);
    }
}
