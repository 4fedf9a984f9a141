//! A core-bank simulator: an HTTP server implementing the server side of
//! `shared/corebank-api.md` (v1), for demos and tests of the kiosk.
//!
//! # Shape
//!
//! * [`store`]: the state in the simulator's own SQLite file (WAL), and the
//!   business logic of every endpoint as plain functions of the parsed
//!   request and the simulator's time. Customers, idempotency records
//!   (key → hash of the canonical body, status, answer, time; kept
//!   [`CoreBankConfig::idempotency_retention_s`], 8 days by default), nonces
//!   (10 minutes), security-answer failures, OTPs (code, expiry, proof),
//!   wrong codes per customer per day, application counts per change, and
//!   an SMS outbox (codes and the old/new-number notices of rule P7). It all
//!   survives a restart of the simulator on the same file.
//! * [`server`]: the HTTP side on `127.0.0.1` only (plain HTTP; the kiosk's
//!   configuration allows `http://` for loopback tests). Each connection is
//!   served by hyper in its own task so that a fault can close it with no
//!   answer; see [`server`] for how. Every `/v1` request passes a guard
//!   that counts it, applies the [`faults`], and checks the signature.
//! * [`faults`]: error rate, latency, dropped connections, "apply then drop
//!   the answer", 429 with `Retry-After`, clock skew, down, holding changes
//!   in progress, and a script of faults for the next requests; set at
//!   start and at run time; drawn from a seeded generator when asked.
//! * [`fixtures`]: the customers (`sim/fixtures/customers.toml` built in,
//!   another file, or synthetic ones for load tests) and the cards of the
//!   fixture's special cases.
//! * [`CoreBankSim`]: the in-process handle. It owns a tokio runtime of its
//!   own (worker threads in the background), so it works from plain `#[test]`
//!   functions and keeps serving while a kiosk process under test is killed
//!   and restarted. The `kiosk-sim corebank` command runs the same thing.
//!
//! # Decisions where the spec leaves a choice
//!
//! * **Signature.** `X-Signature` is checked over the raw body and the
//!   path without query; then `X-Timestamp` against the simulator's clock
//!   (machine clock + `clock_skew_ms` fault + [`CoreBankSim::advance_clock`];
//!   300 s by default); then `X-Nonce` (16+ bytes hex, unseen in 10 min; a
//!   nonce is recorded only once the signature is right). Any failure is
//!   `401 {"code":"bad_signature"}` whose message says which check failed
//!   (a clock-skew message starts with `clock skew:`). `X-Kiosk-Id` must be
//!   present and, with [`CoreBankConfig::allowed_kiosks`], on the list.
//!   **`GET /v1/health` is answered with or without valid signature
//!   headers** (they are not checked there), so a kiosk can measure skew
//!   even when its clock is off.
//! * **Lookup** searches by document number alone (an 18-digit card number
//!   also finds the old 15-digit number on file, rule I3, through an index
//!   on the number's 18-digit form), whatever `id_type` the request says,
//!   and returns the record's own `id_type`: a record opened with a
//!   temporary ID is found and the kiosk refers the mismatch to the counter
//!   (rule I5). Then the name (whitespace and `·` ignored): `422
//!   name_mismatch`. No such number: `404 customer_not_found`.
//! * **Security answer**: compared trimmed and case-insensitively. The
//!   third wrong answer in total still gets `200 {"ok":false,
//!   "attempts_left":0}`; every answer after it, right or wrong, is `423
//!   locked`, and lookups then report `self_service.mobile_change = false`
//!   with a reason (rule P2); OTP requests and phone changes are `422
//!   not_allowed`. No question set: `409 no_security_question`. Unknown
//!   customer: `404 customer_not_found`.
//! * **OTP**: `201 {"otp_id","expires_in_s"}`; the 6-digit code goes to the
//!   SMS outbox only (read it with [`CoreBankSim::last_sms_code`] or
//!   `GET /_sim/sms?mobile=`; it is never logged). A new code for a customer
//!   within [`CoreBankConfig::otp_min_interval_s`] of the last: `429
//!   rate_limited` + `Retry-After`. A new code makes the customer's older
//!   unverified codes expire. Verify: wrong → `200 {"ok":false,
//!   "attempts_left":10-wrong_today}`; expired → `410 expired`; ten wrong
//!   codes in a day (per customer, across codes, days in UTC+8) → `423
//!   locked` for verifications and new codes until the next day. Right →
//!   `200 {"ok":true,"proof"}`; verifying the right code again returns the
//!   same proof (the first answer may have been lost). `purpose` must be
//!   `mobile_change`. Customers whose phone changes are off: `422
//!   not_allowed` with the bank's reason.
//! * **Changes**: `Idempotency-Key` must equal `change_id` (else `400`).
//!   The body's hash is SHA-256 of its canonical JSON (keys sorted, no
//!   spaces). Same key and hash → the first answer, same status, header
//!   `Idempotent-Replayed: true`; another hash → `409
//!   idempotency_conflict`; key being processed by another request → `409
//!   in_progress`. Every business outcome is stored under the key (201,
//!   200, 404 and 422; a `400` is not, the request was not understood).
//!   `id_validity`: unknown customer `404 customer_not_found`; `id_update`
//!   off → `422 not_allowed` (message: the bank's reason); other document
//!   type → `422 document_type_mismatch`; number not the one on file →
//!   `422 not_allowed`; card `valid_from` before the record's → `422
//!   stale_card` (an old card replaced since); card `valid_until`
//!   (`long_term` latest) after the record's → applied (validity, issuer,
//!   and an old 15-digit number becomes the card's 18 digits) `201
//!   {"status":"applied","core_ref":"CR0000000001"}`; otherwise `200
//!   superseded`. `mobile`: phone changes off → `422 not_allowed`;
//!   `otp_proof` not a proof this simulator issued for this customer and
//!   `new_mobile`, already used by another change, or verified more than
//!   [`CoreBankConfig::proof_ttl_s`] ago → `422 otp_proof_invalid`; new
//!   number already on file → `200 superseded`; else applied, with notices
//!   to the old and the new number when `notify_old_and_new`.
//!   `GET /v1/changes/{id}` → `200` with the stored first answer body (a
//!   `{"status","core_ref"}` or a rejection's `{"code","message"}`), or
//!   `404 change_not_found`.
//! * **Applications** are counted per `change_id` in the same transaction
//!   as the change: replays never count, so a count above one means the
//!   simulator applied one change twice (reported as `duplicates`).
//! * Every non-2xx answer, including unknown paths (`404 not_found`) and
//!   methods (`405`), has a `{"code","message"}` body.
//!
//! # Control API (same listener, no signature)
//!
//! | request | answer |
//! |---|---|
//! | `GET /_sim/faults`, `PUT /_sim/faults` (a [`Faults`] JSON, replaces all) | the faults in force |
//! | `GET /_sim/stats` | [`SimStats`] |
//! | `GET /_sim/sms?mobile=...&limit=20` | the messages to that number, newest first ([`SmsMessage`]) |
//! | `GET /_sim/customers/{id}` | the record as it is now ([`CustomerState`]) |
//! | `POST /_sim/reset` | forget all state, reload the customers, zero the counters |
//! | `GET /_sim/clock`, `POST /_sim/clock {"advance_ms":N}` | the simulator's time; move it forward |
//!
//! Logs carry endpoint names, statuses, codes, customer and change ids;
//! never names, document numbers, mobile numbers, answers or codes.
//!
//! # Use
//!
//! ```no_run
//! use kiosk_corebank::SigningKey;
//! use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, Injection};
//!
//! let key = SigningKey::new(b"shared key".to_vec());
//! let sim = CoreBankSim::start(CoreBankConfig::new("/tmp/corebank.sqlite", key))?;
//! // Point the kiosk at sim.base_url(); lose the answer of its next change:
//! sim.set_faults(Faults {
//!     endpoints: vec!["changes".into()],
//!     script: vec![Injection::LostAnswer],
//!     ..Faults::none()
//! });
//! // ... after the kiosk has retried:
//! assert!(sim.stats().duplicates.is_empty());
//! # Ok::<(), kiosk_sim::SimError>(())
//! ```
//!
//! ```text
//! kiosk-sim corebank --listen 127.0.0.1:8700 --db /tmp/cb.sqlite --key-file kiosk.key
//! kiosk-sim corebank-faults '{"error_rate":0.2,"latency_ms":500,"seed":1}'
//! curl -X PUT --data '{"script":["lost_answer"],"endpoints":["changes"]}' http://127.0.0.1:8700/_sim/faults
//! kiosk-sim corebank-ctl stats
//! kiosk-sim corebank-ctl sms 13912345678
//! ```

pub mod faults;
pub mod fixtures;
pub mod server;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kiosk_corebank::SigningKey;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tracing::{error, info};

pub use faults::{Endpoint, Faults, Injection};
pub use fixtures::{CustomerRecord, FixtureSource, Fixtures};
pub use store::{CustomerState, SmsMessage};

use crate::{Result, SimError};
use server::{Shared, lock};
use store::{Settings, Store};

/// Where the shared signing key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Key(SigningKey),
    /// A key file: hex (whitespace ignored) or raw bytes, as the kiosk reads it.
    File(PathBuf),
}

impl From<SigningKey> for KeySource {
    fn from(k: SigningKey) -> KeySource {
        KeySource::Key(k)
    }
}

impl KeySource {
    pub fn load(&self) -> Result<SigningKey> {
        match self {
            KeySource::Key(k) => Ok(k.clone()),
            KeySource::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(SimError::io(format!("reading key file {}", path.display())))?;
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Err(SimError::Config(format!(
                        "key file {} is empty",
                        path.display()
                    )));
                }
                Ok(SigningKey::from_file_contents(&bytes))
            }
        }
    }
}

/// How to run the simulator. [`CoreBankConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct CoreBankConfig {
    /// A loopback address; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// The SQLite file (created if missing; its state is kept across runs).
    pub db_path: PathBuf,
    /// The customers; added to the database when missing (by id).
    pub fixtures: FixtureSource,
    /// Also add this many [`Fixtures::synthetic`] customers.
    pub synthetic: usize,
    pub key: KeySource,
    /// Accept only these `X-Kiosk-Id`s; `None`: any.
    pub allowed_kiosks: Option<Vec<String>>,
    /// Faults in force at start.
    pub faults: Faults,
    /// OTP lifetime (`expires_in_s`). Default 300.
    pub otp_ttl_s: u64,
    /// Least time between two OTPs for one customer. Default 30.
    pub otp_min_interval_s: u64,
    /// How long a verified OTP's proof can be used in a change. Default 1800.
    pub proof_ttl_s: u64,
    /// How long idempotency records are kept (the spec: at least 7 days).
    /// Default 8 days.
    pub idempotency_retention_s: u64,
    /// Largest accepted distance of `X-Timestamp` from the simulator's
    /// clock. Default 300.
    pub timestamp_tolerance_s: u64,
}

impl CoreBankConfig {
    pub fn new(db_path: impl Into<PathBuf>, key: impl Into<KeySource>) -> CoreBankConfig {
        CoreBankConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            db_path: db_path.into(),
            fixtures: FixtureSource::Builtin,
            synthetic: 0,
            key: key.into(),
            allowed_kiosks: None,
            faults: Faults::none(),
            otp_ttl_s: 300,
            otp_min_interval_s: 30,
            proof_ttl_s: 1800,
            idempotency_retention_s: 8 * 24 * 3600,
            timestamp_tolerance_s: 300,
        }
    }
}

/// Faults injected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub errors: u64,
    /// Connections closed before processing (`drop_rate`, `drop`, `down`).
    pub drops: u64,
    /// Requests processed whose answer was dropped.
    pub lost_answers: u64,
    pub rate_limited: u64,
}

/// What the simulator has seen and done. Request counters live in memory
/// (a restart zeroes them); application counts come from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// `/v1` requests by endpoint name ([`Endpoint::name`]), faulted or not.
    pub requests: BTreeMap<String, u64>,
    /// Applications of changes, in total.
    pub applied_total: u64,
    /// Applications per change id (changes applied at least once).
    pub applied_by_change: BTreeMap<String, u32>,
    /// Change ids applied more than once (should stay empty).
    pub duplicates: Vec<String>,
    /// Changes answered from the idempotency store.
    pub replays: u64,
    pub idempotency_conflicts: u64,
    /// `409 in_progress` answers.
    pub in_progress_refusals: u64,
    /// Changes being processed (or held) now.
    pub in_progress_now: usize,
    /// `401` answers.
    pub bad_signatures: u64,
    pub faults_injected: FaultCounts,
}

impl SimStats {
    /// How many times this change was applied.
    pub fn applied_count(&self, change_id: &str) -> u32 {
        self.applied_by_change.get(change_id).copied().unwrap_or(0)
    }
}

/// A running simulator. Stops when dropped.
#[derive(Debug)]
pub struct CoreBankSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl CoreBankSim {
    /// Open the database, add the customers, bind and serve.
    pub fn start(config: CoreBankConfig) -> Result<CoreBankSim> {
        if !config.listen.ip().is_loopback() {
            return Err(SimError::Config(format!(
                "the core-bank simulator listens on loopback only, not {}",
                config.listen
            )));
        }
        config.faults.check().map_err(SimError::Config)?;
        let key = config.key.load()?;
        let mut fixtures = config.fixtures.load()?;
        if config.synthetic > 0 {
            fixtures.extend(Fixtures::synthetic(config.synthetic));
            fixtures.validate()?;
        }
        let settings = Settings {
            otp_ttl_s: config.otp_ttl_s,
            otp_min_interval_s: config.otp_min_interval_s,
            proof_ttl_s: config.proof_ttl_s,
            idempotency_retention_s: config.idempotency_retention_s,
        };
        let mut store = Store::open(&config.db_path, settings)?;
        let added = store.seed(&fixtures)?;

        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(SimError::io(format!("binding {}", config.listen)))?;
        listener
            .set_nonblocking(true)
            .map_err(SimError::io("setting the listener non-blocking"))?;
        let addr = listener
            .local_addr()
            .map_err(SimError::io("reading the listening address"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("corebank-sim")
            .enable_all()
            .build()
            .map_err(SimError::io("starting the simulator's runtime"))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(SimError::io("registering the listener"))?
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            key,
            allowed_kiosks: config
                .allowed_kiosks
                .map(|v| v.into_iter().collect::<HashSet<_>>()),
            tolerance_ms: i64::try_from(config.timestamp_tolerance_s)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
            fixtures,
            faults: Mutex::new(faults::FaultState::new(config.faults)),
            faults_changed: Notify::new(),
            clock_advance_ms: AtomicI64::new(0),
            counters: Mutex::default(),
            inflight: Mutex::default(),
            inflight_changed: Condvar::new(),
        });
        {
            let now = shared.now_ms();
            if let Err(e) = lock(&shared.store).prune(now) {
                error!(error = %e, "pruning old idempotency records");
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        runtime.spawn(server::serve(listener, shared.clone(), stop_rx));
        info!(%addr, customers = shared.fixtures.customers.len(), added, db = %config.db_path.display(), "core-bank simulator listening");
        Ok(CoreBankSim {
            shared,
            addr,
            stop,
            runtime: Some(runtime),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults().clone()
    }

    /// Replace the faults in force (and re-seed their generator).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// The simulator's clock, Unix ms (machine clock + skew + advance).
    pub fn now_ms(&self) -> i64 {
        self.shared.now_ms()
    }

    /// Move the simulator's clock forward (OTP expiry, the next day, ...).
    /// Unlike the clock-skew fault this is "time passing": a client that
    /// signs with the machine's clock must add the same amount.
    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.shared
            .clock_advance_ms
            .fetch_add(ms, Ordering::Relaxed);
    }

    /// Total amount [`CoreBankSim::advance_clock`] has moved the clock.
    pub fn clock_advance_ms(&self) -> i64 {
        self.shared.clock_advance_ms.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// How many times this change was applied.
    pub fn applied_count(&self, change_id: &str) -> u32 {
        lock(&self.shared.store)
            .applied_count(change_id)
            .unwrap_or_else(|e| {
                error!(error = %e, "reading an applied count");
                0
            })
    }

    /// The code of the last OTP sent to `mobile`.
    pub fn last_sms_code(&self, mobile: &str) -> Option<String> {
        self.sms(mobile)
            .into_iter()
            .find(|m| m.kind == "otp")
            .and_then(|m| m.code)
    }

    /// The last messages sent to `mobile` (codes and notices), newest first.
    pub fn sms(&self, mobile: &str) -> Vec<SmsMessage> {
        lock(&self.shared.store)
            .sms(mobile, 50)
            .unwrap_or_else(|e| {
                error!(error = %e, "reading the SMS outbox");
                Vec::new()
            })
    }

    /// The customer as the simulator holds it now.
    pub fn customer(&self, customer_id: &str) -> Option<CustomerState> {
        let now = self.now_ms();
        lock(&self.shared.store)
            .customer(customer_id, now)
            .unwrap_or_else(|e| {
                error!(error = %e, "reading a customer");
                None
            })
    }

    /// Forget all state, reload the customers, zero the counters.
    pub fn reset(&self) -> Result<()> {
        lock(&self.shared.store).reset(&self.shared.fixtures)?;
        *lock(&self.shared.counters) = server::Counters::default();
        Ok(())
    }

    /// Wait until at least `n` changes are being processed (or held by
    /// [`Faults::hold_changes`]); false on timeout.
    pub fn wait_in_progress(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inflight = lock(&self.shared.inflight);
        while inflight.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inflight = self
                .shared
                .inflight_changed
                .wait_timeout(inflight, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Stop serving and close the database (also done on drop).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped inside an async context: cannot block here.
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(5));
            }
            info!(addr = %self.addr, "core-bank simulator stopped");
        }
    }
}

impl Drop for CoreBankSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A minimal blocking HTTP/1.1 request to a simulator's control API
/// (plain HTTP, `http://host:port` base URL): status and body text. For
/// the `kiosk-sim corebank-ctl` command; tests use a real client.
pub fn http_request(
    base_url: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Error, ErrorKind, Read, Write};
    let invalid = |m: &str| Error::new(ErrorKind::InvalidInput, m.to_string());
    let host = base_url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("the URL must start with http://"))?
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let rest = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no HTTP status"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}
