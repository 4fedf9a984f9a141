//! HTTP: the accept loop, per-connection serving, the guard every `/v1`
//! request passes (faults, then signature), the endpoint handlers and the
//! control API under `/_sim/`.
//!
//! # Closing a connection without an answer
//!
//! `axum::serve` owns its connections, so a handler cannot make the client
//! see "connection closed, no answer". Here each accepted connection is
//! served by `hyper::server::conn::http1` in its own task, with the axum
//! router as the service. The task puts a `Hangup` (a `Notify`) into each
//! request's extensions and `select!`s between the connection future and
//! that `Notify`. A request that must go unanswered notifies it and then
//! waits forever; the connection task wakes, drops the connection future
//! (and with it the waiting handler) and the socket is closed with no bytes
//! of an answer written. What the handler committed before stays committed
//! (database work runs in blocking tasks that always run to completion), so
//! "apply then drop the answer" is exact.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use kiosk_corebank::headers::{
    IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, KIOSK_ID, NONCE, RETRY_AFTER, SIGNATURE, TIMESTAMP,
};
use kiosk_corebank::{
    ChangeKind, ChangeRequest, Health, LookupRequest, OtpRequest, OtpVerifyRequest,
    SecurityAnswerRequest, SigningKey,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{debug, error, info, warn};

use super::faults::{Decision, Endpoint, FaultState, Faults};
use super::fixtures::{Fixtures, ValidUntil, is_mobile};
use super::store::{Answer, Store};
use super::{FaultCounts, SimStats};

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;

/// State shared by every connection and the in-process handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub key: SigningKey,
    pub allowed_kiosks: Option<HashSet<String>>,
    pub tolerance_ms: i64,
    pub fixtures: Fixtures,
    pub faults: Mutex<FaultState>,
    /// Woken whenever the faults change (releases held changes).
    pub faults_changed: Notify,
    /// Added to the machine's clock (on top of the clock-skew fault).
    pub clock_advance_ms: AtomicI64,
    pub counters: Mutex<Counters>,
    /// Idempotency keys being processed now.
    pub inflight: Mutex<HashSet<String>>,
    pub inflight_changed: Condvar,
}

/// Counters kept in memory (reset by a restart or `POST /_sim/reset`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: BTreeMap<String, u64>,
    pub replays: u64,
    pub conflicts: u64,
    pub in_progress_refusals: u64,
    pub bad_signatures: u64,
    pub injected: FaultCounts,
}

/// Lock, surviving a panicked holder (the data is plain counters and a
/// database connection whose transactions roll back on their own).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The simulator's clock: the machine's, plus the clock-skew fault,
    /// plus any advance.
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        real + lock(&self.faults).faults().clock_skew_ms
            + self.clock_advance_ms.load(Ordering::Relaxed)
    }

    pub fn set_faults(&self, faults: Faults) {
        info!(?faults, "core-bank faults set");
        lock(&self.faults).set(faults);
        self.faults_changed.notify_waiters();
    }

    pub fn stats(&self) -> SimStats {
        let applied = match lock(&self.store).applied() {
            Ok(a) => a,
            Err(e) => {
                error!(error = %e, "reading applied counts");
                Vec::new()
            }
        };
        let c = lock(&self.counters);
        SimStats {
            requests: c.requests.clone(),
            applied_total: applied.iter().map(|(_, n)| u64::from(*n)).sum(),
            duplicates: applied
                .iter()
                .filter(|(_, n)| *n > 1)
                .map(|(id, _)| id.clone())
                .collect(),
            applied_by_change: applied.into_iter().collect(),
            replays: c.replays,
            idempotency_conflicts: c.conflicts,
            in_progress_refusals: c.in_progress_refusals,
            in_progress_now: lock(&self.inflight).len(),
            bad_signatures: c.bad_signatures,
            faults_injected: c.injected.clone(),
        }
    }

    /// Run database work on a blocking thread (it runs to completion even
    /// if the request is abandoned). `f` gets the simulator's time.
    async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Answer> {
        let sh = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let now = sh.now_ms();
            f(&mut lock(&sh.store), now)
        })
        .await;
        match joined {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => {
                error!(error = %e, "core-bank database");
                Err(Answer::error(500, "internal", "database error"))
            }
            Err(e) => {
                error!(error = %e, "core-bank database task");
                Err(Answer::error(500, "internal", "database task failed"))
            }
        }
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.counters));
    }

    /// Claim an idempotency key for processing; `None` if it is taken.
    fn claim(self: &Arc<Self>, key: &str) -> Option<Claim> {
        let mut inflight = lock(&self.inflight);
        if !inflight.insert(key.to_string()) {
            return None;
        }
        self.inflight_changed.notify_all();
        Some(Claim {
            shared: self.clone(),
            key: key.to_string(),
        })
    }

    /// Wait while `hold_changes` is set.
    async fn hold(&self) {
        loop {
            let changed = self.faults_changed.notified();
            if !lock(&self.faults).faults().hold_changes {
                return;
            }
            changed.await;
        }
    }

    /// Check the signature headers; the error is the `message` of the 401.
    async fn authenticate(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("missing or unreadable {name}"))
        };
        let kiosk = get(KIOSK_ID)?;
        let ts = get(TIMESTAMP)?;
        let nonce = get(NONCE)?;
        let sig = get(SIGNATURE)?;
        if let Some(allowed) = &self.allowed_kiosks
            && !allowed.contains(kiosk)
        {
            return Err("unknown kiosk id".into());
        }
        if nonce.len() < 32 || nonce.len() % 2 != 0 || hex::decode(nonce).is_err() {
            return Err("X-Nonce must be 16 or more random bytes in hex".into());
        }
        if !self.key.verify(method.as_str(), path, ts, nonce, body, sig) {
            return Err("signature does not match".into());
        }
        let ts_ms: i64 = ts
            .parse()
            .map_err(|_| "X-Timestamp is not Unix milliseconds".to_string())?;
        let now = self.now_ms();
        let off_ms = ts_ms - now;
        if off_ms.abs() > self.tolerance_ms {
            return Err(format!(
                "clock skew: X-Timestamp is {} s {} the server's clock (limit {} s)",
                off_ms.abs() / 1000,
                if off_ms > 0 { "ahead of" } else { "behind" },
                self.tolerance_ms / 1000
            ));
        }
        let nonce = nonce.to_ascii_lowercase();
        match self.db(move |s, now| s.check_nonce(&nonce, now)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("nonce already used".into()),
            Err(_) => Err("nonce check failed".into()),
        }
    }
}

/// An idempotency key being processed; released on drop (also when the
/// request is abandoned).
struct Claim {
    shared: Arc<Shared>,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.shared.inflight).remove(&self.key);
        self.shared.inflight_changed.notify_all();
    }
}

/// Put into every request: notify it to close the connection unanswered.
#[derive(Debug, Clone)]
struct Hangup(Arc<Notify>);

/// Accept connections until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let router = router(shared);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, router.clone(), stop.clone()));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    debug!("core-bank simulator stopped accepting");
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let hangup = Arc::new(Notify::new());
    let service = {
        let hangup = Hangup(hangup.clone());
        let inner = TowerToHyperService::new(router);
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(hangup.clone());
            hyper::service::Service::call(&inner, req)
        })
    };
    // The timer gives hyper's default 30 s limit for reading a request's
    // headers, so idle or stuck clients do not hold connections forever.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                debug!(error = %e, "connection ended");
            }
        }
        () = hangup.notified() => debug!("connection closed without an answer (fault)"),
        _ = stop.wait_for(|s| *s) => {}
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/customers/lookup", post(lookup))
        .route(
            "/v1/customers/{customer_id}/security-answer",
            post(security_answer),
        )
        .route("/v1/otp", post(otp_issue))
        .route("/v1/otp/{otp_id}/verify", post(otp_verify))
        .route("/v1/changes", post(post_change))
        .route("/v1/changes/{change_id}", get(get_change))
        .route_layer(from_fn_with_state(shared.clone(), guard));
    let control = Router::new()
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/stats", get(get_stats))
        .route("/_sim/sms", get(get_sms))
        .route("/_sim/customers/{customer_id}", get(get_customer))
        .route("/_sim/reset", post(reset))
        .route("/_sim/clock", get(get_clock).post(advance_clock));
    v1.merge(control)
        .fallback(|| async { respond(Answer::error(404, "not_found", "no such endpoint")) })
        .method_not_allowed_fallback(|| async {
            respond(Answer::error(
                405,
                "method_not_allowed",
                "method not allowed here",
            ))
        })
        .with_state(shared)
}

fn endpoint_of(method: &Method, matched: &str) -> Endpoint {
    match (method.as_str(), matched) {
        ("GET", "/v1/health") => Endpoint::Health,
        (_, "/v1/customers/lookup") => Endpoint::Lookup,
        (_, "/v1/customers/{customer_id}/security-answer") => Endpoint::SecurityAnswer,
        (_, "/v1/otp") => Endpoint::Otp,
        (_, "/v1/otp/{otp_id}/verify") => Endpoint::OtpVerify,
        (_, "/v1/changes") => Endpoint::Changes,
        (_, "/v1/changes/{change_id}") => Endpoint::ChangeStatus,
        _ => Endpoint::Health,
    }
}

/// Every `/v1` request: count it, apply the faults, check the signature
/// (not for health), run the handler, then the faults that act after it.
async fn guard(
    State(sh): State<Arc<Shared>>,
    matched: MatchedPath,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = endpoint_of(req.method(), matched.as_str());
    sh.count(|c| *c.requests.entry(endpoint.name().to_string()).or_default() += 1);
    let hangup = req.extensions().get::<Hangup>().cloned();
    let (decision, latency_ms) = lock(&sh.faults).decide(endpoint);
    match decision {
        Decision::Drop => {
            sh.count(|c| c.injected.drops += 1);
            debug!(%endpoint, "fault: dropping the connection");
            return hang_up(hangup).await;
        }
        Decision::Error(status) => {
            sh.count(|c| c.injected.errors += 1);
            debug!(%endpoint, status, "fault: error");
            return respond(Answer::error(
                status,
                "unavailable",
                "injected fault: try again later",
            ));
        }
        Decision::RateLimit => {
            sh.count(|c| c.injected.rate_limited += 1);
            let mut a = Answer::error(429, "rate_limited", "injected fault: too many requests");
            a.retry_after_s = Some(lock(&sh.faults).faults().retry_after_s);
            return respond(a);
        }
        Decision::Pass | Decision::LostAnswer => {}
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return respond(Answer::bad_request("body unreadable or too large"));
    };
    if endpoint != Endpoint::Health
        && let Err(message) = sh
            .authenticate(&parts.method, parts.uri.path(), &parts.headers, &bytes)
            .await
    {
        sh.count(|c| c.bad_signatures += 1);
        info!(%endpoint, reason = %message, "bad signature");
        return respond(Answer::error(401, "bad_signature", message));
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if decision == Decision::LostAnswer {
        sh.count(|c| c.injected.lost_answers += 1);
        debug!(%endpoint, status = %response.status(), "fault: processed, dropping the answer");
        return hang_up(hangup).await;
    }
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    response
}

/// Close the connection without an answer: wake the connection task, which
/// drops the connection (and this future with it).
async fn hang_up(hangup: Option<Hangup>) -> Response {
    match hangup {
        Some(Hangup(n)) => {
            n.notify_one();
            std::future::pending().await
        }
        // Served some other way (cannot happen here): the nearest thing.
        None => respond(Answer::error(503, "unavailable", "connection dropped")),
    }
}

fn respond(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, axum::Json(a.body)).into_response();
    if let Some(s) = a.retry_after_s {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    if a.replayed {
        r.headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    r
}

fn reply<T>(r: Result<T, Answer>, f: impl FnOnce(T) -> Answer) -> Response {
    respond(match r {
        Ok(t) => f(t),
        Err(a) => a,
    })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body).map_err(|e| Answer::bad_request(format!("invalid body: {e}")))
}

// ----- /v1 -----------------------------------------------------------------

async fn health(State(sh): State<Arc<Shared>>) -> Response {
    axum::Json(Health {
        status: "ok".into(),
        time_ms: sh.now_ms(),
    })
    .into_response()
}

async fn lookup(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: LookupRequest = match parse(&body) {
        Ok(r) => r,
        Err(a) => return respond(a),
    };
    let r = sh.db(move |s, _| s.lookup(&req)).await;
    if let Ok(a) = &r {
        debug!(status = a.status, customer = ?a.body.get("customer_id"), "lookup");
    }
    reply(r, |a| a)
}

async fn security_answer(
    State(sh): State<Arc<Shared>>,
    Path(customer_id): Path<String>,
    body: Bytes,
) -> Response {
    let req: SecurityAnswerRequest = match parse(&body) {
        Ok(r) => r,
        Err(a) => return respond(a),
    };
    let r = sh
        .db(move |s, _| s.security_answer(&customer_id, &req.answer))
        .await;
    reply(r, |a| a)
}

async fn otp_issue(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: OtpRequest = match parse(&body) {
        Ok(r) => r,
        Err(a) => return respond(a),
    };
    let customer = req.customer_id.clone();
    let r = sh.db(move |s, now| s.otp_issue(&req, now)).await;
    if let Ok(a) = &r {
        info!(%customer, status = a.status, "OTP requested");
    }
    reply(r, |a| a)
}

async fn otp_verify(
    State(sh): State<Arc<Shared>>,
    Path(otp_id): Path<String>,
    body: Bytes,
) -> Response {
    let req: OtpVerifyRequest = match parse(&body) {
        Ok(r) => r,
        Err(a) => return respond(a),
    };
    let r = sh
        .db(move |s, now| s.otp_verify(&otp_id, &req.code, now))
        .await;
    reply(r, |a| a)
}

/// `POST /v1/changes`: idempotency first (replay, conflict, in progress),
/// then the change in one transaction.
async fn post_change(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let value: Value = match parse(&body) {
        Ok(v) => v,
        Err(a) => return respond(a),
    };
    let req: ChangeRequest = match serde_json::from_value(value.clone()) {
        Ok(r) => r,
        Err(e) => return respond(Answer::bad_request(format!("invalid change: {e}"))),
    };
    let Some(key) = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return respond(Answer::bad_request("Idempotency-Key is missing"));
    };
    if key.trim().is_empty() || key != req.change_id {
        return respond(Answer::bad_request(
            "Idempotency-Key must be the change_id of the body",
        ));
    }
    if let Err(message) = check_change(&req) {
        return respond(Answer::bad_request(message));
    }
    let hash = canonical_hash(&value);

    let (k, h) = (key.clone(), hash.clone());
    match sh.db(move |s, _| s.existing_change(&k, &h)).await {
        Err(a) => return respond(a),
        Ok(Some(a)) => {
            count_existing(&sh, &a);
            info!(change = %key, status = a.status, code = ?a.code(), "change repeated");
            return respond(a);
        }
        Ok(None) => {}
    }
    let Some(claim) = sh.claim(&key) else {
        sh.count(|c| c.in_progress_refusals += 1);
        info!(change = %key, "change in progress");
        return respond(Answer::error(
            409,
            "in_progress",
            "a request with this key is being processed; retry",
        ));
    };
    sh.hold().await;
    let customer = req.customer_id.clone();
    let r = sh.db(move |s, now| s.apply_change(&req, &hash, now)).await;
    drop(claim);
    match r {
        Err(a) => respond(a),
        Ok((a, applied)) => {
            if a.replayed || a.status == 409 {
                count_existing(&sh, &a);
            }
            info!(change = %key, %customer, status = a.status, code = ?a.code(), applied, "change");
            respond(a)
        }
    }
}

fn count_existing(sh: &Shared, a: &Answer) {
    if a.replayed {
        sh.count(|c| c.replays += 1);
    } else {
        sh.count(|c| c.conflicts += 1);
    }
}

/// Formats the store relies on: dates, the new mobile.
fn check_change(req: &ChangeRequest) -> Result<(), String> {
    match &req.kind {
        ChangeKind::IdValidity { id_validity: v } => {
            chrono::NaiveDate::parse_from_str(&v.valid_from, "%Y-%m-%d")
                .map_err(|_| "valid_from must be YYYY-MM-DD".to_string())?;
            ValidUntil::parse(&v.valid_until)
                .ok_or_else(|| "valid_until must be YYYY-MM-DD or long_term".to_string())?;
        }
        ChangeKind::Mobile { mobile } => {
            if !is_mobile(&mobile.new_mobile) {
                return Err("new_mobile must be an 11-digit mainland mobile number".into());
            }
        }
    }
    Ok(())
}

/// SHA-256 of the body with object keys sorted and no whitespace: the same
/// change sent with other spacing or key order is the same body.
pub(crate) fn canonical_hash(v: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canonical(v, &mut s);
    hex::encode(Sha256::digest(s.as_bytes()))
}

async fn get_change(State(sh): State<Arc<Shared>>, Path(change_id): Path<String>) -> Response {
    let r = sh.db(move |s, _| s.change_status(&change_id)).await;
    reply(r, |a| a)
}

// ----- /_sim ---------------------------------------------------------------

async fn get_faults(State(sh): State<Arc<Shared>>) -> Response {
    axum::Json(lock(&sh.faults).faults().clone()).into_response()
}

async fn put_faults(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match Faults::from_json(&text) {
        Ok(f) => {
            sh.set_faults(f.clone());
            axum::Json(f).into_response()
        }
        Err(e) => respond(Answer::bad_request(e)),
    }
}

async fn get_stats(State(sh): State<Arc<Shared>>) -> Response {
    let s = tokio::task::spawn_blocking(move || sh.stats()).await;
    match s {
        Ok(s) => axum::Json(s).into_response(),
        Err(_) => respond(Answer::error(500, "internal", "stats failed")),
    }
}

#[derive(Debug, Deserialize)]
struct SmsQuery {
    mobile: String,
    limit: Option<u32>,
}

async fn get_sms(State(sh): State<Arc<Shared>>, Query(q): Query<SmsQuery>) -> Response {
    let r = sh
        .db(move |s, _| s.sms(&q.mobile, q.limit.unwrap_or(20)))
        .await;
    reply(r, |m| Answer::ok(200, m))
}

async fn get_customer(State(sh): State<Arc<Shared>>, Path(customer_id): Path<String>) -> Response {
    let r = sh.db(move |s, now| s.customer(&customer_id, now)).await;
    reply(r, |c| match c {
        Some(c) => Answer::ok(200, c),
        None => Answer::error(404, "customer_not_found", "no such customer"),
    })
}

async fn reset(State(sh): State<Arc<Shared>>) -> Response {
    let s2 = sh.clone();
    let r = tokio::task::spawn_blocking(move || {
        let fixtures = s2.fixtures.clone();
        let r = lock(&s2.store).reset(&fixtures);
        *lock(&s2.counters) = Counters::default();
        r
    })
    .await;
    match r {
        Ok(Ok(())) => {
            info!("core-bank simulator reset");
            axum::Json(json!({"status": "reset"})).into_response()
        }
        Ok(Err(e)) => respond(Answer::error(500, "internal", e.to_string())),
        Err(_) => respond(Answer::error(500, "internal", "reset failed")),
    }
}

fn clock_body(sh: &Shared) -> Value {
    json!({
        "time_ms": sh.now_ms(),
        "advance_ms": sh.clock_advance_ms.load(Ordering::Relaxed),
        "clock_skew_ms": lock(&sh.faults).faults().clock_skew_ms,
    })
}

async fn get_clock(State(sh): State<Arc<Shared>>) -> Response {
    axum::Json(clock_body(&sh)).into_response()
}

#[derive(Debug, Deserialize)]
struct Advance {
    advance_ms: i64,
}

async fn advance_clock(State(sh): State<Arc<Shared>>, body: Bytes) -> Response {
    let a: Advance = match parse(&body) {
        Ok(a) => a,
        Err(a) => return respond(a),
    };
    sh.clock_advance_ms
        .fetch_add(a.advance_ms, Ordering::Relaxed);
    axum::Json(clock_body(&sh)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_hash_ignores_spacing_and_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"c":[1,2],"d":"x"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "b": {"d":"x", "c":[1, 2]}, "a": 1 }"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":1,"b":{"c":[2,1],"d":"x"}}"#).unwrap();
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(canonical_hash(&a), canonical_hash(&c));
    }
}
