//! The kiosk's HTTPS client of the core bank (`shared/corebank-api.md`).
//!
//! One method per endpoint of the spec. Each call:
//!
//! 1. serialises the request body once and signs exactly those bytes
//!    (`X-Kiosk-Id`, `X-Timestamp`, `X-Nonce`, `X-Signature` over
//!    `METHOD \n PATH \n timestamp \n nonce \n hex(SHA-256(body))`, PATH as
//!    it goes on the wire: percent-encoded, without host or query);
//! 2. sends it with rustls (the CA file as the only trust anchors when one
//!    is configured, an optional client certificate, TLS 1.2 or later, no
//!    redirects, no proxy from the environment) within the configured
//!    connect and request timeouts;
//! 3. turns the answer into the endpoint's type or a [`CoreBankError`] that
//!    says whether to retry, reconcile or give up.
//!
//! A `401 bad_signature` is followed by a clock check, so that a kiosk whose
//! clock drifted beyond the core bank's 300 s says so loudly instead of
//! looking like a wrong key.
//!
//! Each request runs in a `debug` span `corebank` with the method, the
//! path template (`/v1/customers/{id}/security-answer`, never the id), the
//! status and the elapsed time. Bodies and personal data are never logged.

mod config;
mod error;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, DATE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use zeroize::Zeroizing;

use crate::headers;
use crate::signing::{SigningKey, new_nonce};
use crate::types::{
    ChangeRequest, ChangeResult, CheckResult, Customer, ErrorBody, Health, LookupRequest,
    OtpIssued, OtpRequest, OtpVerifyRequest, SecurityAnswerRequest, StoredChange,
};

pub use config::{
    ConfigProblem, CoreBankConfig, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_CLOCK_SKEW_MS,
    DEFAULT_REQUEST_TIMEOUT_MS,
};
pub use error::{CoreBankError, SERVER_CLOCK_WINDOW_MS};

/// Largest answer body read; the spec's answers are well under 1 KiB.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Path templates: what the logs show instead of paths with ids in them.
mod template {
    pub const HEALTH: &str = "/v1/health";
    pub const LOOKUP: &str = "/v1/customers/lookup";
    pub const SECURITY_ANSWER: &str = "/v1/customers/{id}/security-answer";
    pub const OTP: &str = "/v1/otp";
    pub const OTP_VERIFY: &str = "/v1/otp/{id}/verify";
    pub const CHANGES: &str = "/v1/changes";
    pub const CHANGE: &str = "/v1/changes/{id}";
}

/// The decoding half of the client, without I/O: what each request makes
/// of an answer of the core bank (its status, its `Retry-After` header,
/// its body). The client decodes with these; the fuzz targets feed them
/// whatever a broken or hostile server could send.
pub mod decode {
    use serde::de::DeserializeOwned;

    use super::{Answer, CoreBankError, error_from_answer, parse, template};
    use crate::types::{CheckResult, Customer, OtpIssued, StoredChange};
    use crate::{ChangeResult, headers};

    fn answer<T: DeserializeOwned>(
        template: &str,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> Result<T, CoreBankError> {
        let mut map = reqwest::header::HeaderMap::new();
        if let Some(value) =
            retry_after.and_then(|v| reqwest::header::HeaderValue::from_str(v).ok())
        {
            map.insert(headers::RETRY_AFTER, value);
        }
        let answer = Answer {
            status,
            headers: map,
            body: zeroize::Zeroizing::new(body.to_vec()),
            sent_at_ms: 0,
            round_trip: std::time::Duration::ZERO,
        };
        if (200..300).contains(&status) {
            parse(&answer, template)
        } else {
            Err(error_from_answer(&answer))
        }
    }

    /// `POST /v1/customers/lookup`.
    pub fn lookup(
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> Result<Customer, CoreBankError> {
        answer(template::LOOKUP, status, retry_after, body)
    }

    /// `POST /v1/customers/{id}/security-answer` and `POST /v1/otp/{id}/verify`.
    pub fn check(
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> Result<CheckResult, CoreBankError> {
        answer(template::OTP_VERIFY, status, retry_after, body)
    }

    /// `POST /v1/otp`.
    pub fn otp(
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> Result<OtpIssued, CoreBankError> {
        answer(template::OTP, status, retry_after, body)
    }

    /// `POST /v1/changes` (the result; `Idempotent-Replayed` aside).
    pub fn change_result(
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> Result<ChangeResult, CoreBankError> {
        answer(template::CHANGES, status, retry_after, body)
    }

    /// `GET /v1/changes/{id}`: `None` for a 404.
    pub fn stored_change(
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) -> Result<Option<StoredChange>, CoreBankError> {
        match answer(template::CHANGE, status, retry_after, body) {
            Ok(stored) => Ok(Some(stored)),
            Err(CoreBankError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The core-bank client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct CoreBankClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    key: SigningKey,
    kiosk_id: HeaderValue,
    max_clock_skew: Duration,
}

impl fmt::Debug for CoreBankClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreBankClient")
            .field("base", &self.inner.base.as_str())
            .field("kiosk_id", &self.inner.kiosk_id)
            .field("key", &self.inner.key)
            .field("max_clock_skew", &self.inner.max_clock_skew)
            .finish_non_exhaustive()
    }
}

/// The result of `GET /v1/health`, with the clock comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthInfo {
    /// The server's `status` (`"ok"` when healthy).
    pub status: String,
    /// The server's `time_ms`.
    pub server_time_ms: i64,
    /// Server time − the kiosk's time at the midpoint between sending the
    /// request and receiving the answer's head. Positive: the kiosk's clock
    /// is behind. Uncertain by about half of `round_trip`.
    pub skew_ms: i64,
    /// From sending the request to receiving the answer's head (a new
    /// connection's handshake included).
    pub round_trip: Duration,
    /// `|skew_ms|` is more than the configured `max_clock_skew_ms` (a
    /// warning has been logged).
    pub skew_exceeds_limit: bool,
}

impl HealthInfo {
    /// The measured skew puts the kiosk's clock beyond the 300 s the core
    /// bank accepts in `X-Timestamp`, allowing for the measurement's
    /// uncertainty (half the round trip): signed requests will be refused.
    pub fn beyond_server_window(&self) -> bool {
        beyond_window(self.skew_ms, half_ms(self.round_trip))
    }
}

/// The answer to `POST /v1/changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    /// `applied` (201) or `superseded` (200), with the core bank's reference.
    pub result: ChangeResult,
    /// The core bank answered from its idempotency store
    /// (`Idempotent-Replayed: true`): this change id had been sent before.
    pub replayed: bool,
}

/// One request, ready to sign.
struct Call {
    method: Method,
    template: &'static str,
    path: String,
    /// Wiped when the last copy of it is dropped, also the one the HTTP
    /// stack holds while sending (an answer, a code, a number may be in it).
    body: Zeroizing<Vec<u8>>,
    idempotency_key: Option<HeaderValue>,
}

/// The answer's head and body, before interpretation.
struct Answer {
    status: u16,
    headers: HeaderMap,
    /// Wiped on drop: a lookup's answer holds the customer's record.
    body: Zeroizing<Vec<u8>>,
    /// The kiosk's time at sending (the `X-Timestamp`), Unix ms.
    sent_at_ms: i64,
    /// Sending to receiving the answer's head.
    round_trip: Duration,
}

impl CoreBankClient {
    /// A client for the core bank described by `config`, signing as
    /// `kiosk_id` (kioskd's `[kiosk] id`).
    ///
    /// Reads the key file (hex; an unreadable, empty or non-hex file is an
    /// error), the CA file and the client certificate and key; every
    /// problem is reported in one [`CoreBankError::Config`], naming its key.
    /// The key is never logged. Does no network I/O.
    pub fn new(config: &CoreBankConfig, kiosk_id: &str) -> Result<CoreBankClient, CoreBankError> {
        let loaded = config.load();
        let kiosk_id_header = HeaderValue::from_str(kiosk_id)
            .ok()
            .filter(|_| !kiosk_id.trim().is_empty());
        let mut problems: Vec<String> = match &loaded {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        };
        if kiosk_id_header.is_none() {
            problems.push(
                "kiosk id: must be non-empty visible ASCII (it is sent as X-Kiosk-Id)".into(),
            );
        }
        let (Ok(loaded), Some(kiosk_id)) = (loaded, kiosk_id_header) else {
            return Err(CoreBankError::Config(problems.join("; ")));
        };
        Ok(CoreBankClient {
            inner: Arc::new(Inner {
                http: loaded.http,
                base: loaded.base,
                key: loaded.key,
                kiosk_id,
                max_clock_skew: loaded.max_clock_skew,
            }),
        })
    }

    /// The kiosk id sent as `X-Kiosk-Id`.
    pub fn kiosk_id(&self) -> &str {
        self.inner.kiosk_id.to_str().unwrap_or_default()
    }

    /// The configured `max_clock_skew_ms`.
    pub fn max_clock_skew(&self) -> Duration {
        self.inner.max_clock_skew
    }

    /// `GET /v1/health`: the server's status and the clock skew between the
    /// kiosk and the core bank. Logs a warning when the skew exceeds
    /// `max_clock_skew_ms`.
    pub async fn health(&self) -> Result<HealthInfo, CoreBankError> {
        let info = self.health_check().await?;
        if info.skew_exceeds_limit {
            tracing::warn!(
                skew_ms = info.skew_ms,
                max_ms = self.inner.max_clock_skew.as_millis() as u64,
                round_trip_ms = info.round_trip.as_millis() as u64,
                "the kiosk's clock differs from the core bank's by more than max_clock_skew_ms"
            );
        }
        Ok(info)
    }

    /// `POST /v1/customers/lookup`. `404 customer_not_found` is
    /// [`CoreBankError::NotFound`], `422 name_mismatch` is
    /// [`CoreBankError::Rejected`].
    pub async fn lookup(&self, request: &LookupRequest) -> Result<Customer, CoreBankError> {
        let call = Call::post(template::LOOKUP, "/v1/customers/lookup".into(), request)?;
        let answer = self.send(call).await?;
        parse(&answer, template::LOOKUP)
    }

    /// `POST /v1/customers/{customer_id}/security-answer`. A wrong answer is
    /// `Ok` with `ok: false`; `423` is [`CoreBankError::Locked`].
    pub async fn security_answer(
        &self,
        customer_id: &str,
        answer: &str,
    ) -> Result<CheckResult, CoreBankError> {
        let path = format!(
            "/v1/customers/{}/security-answer",
            segment("customer_id", customer_id)?
        );
        let body = SecurityAnswerRequest {
            answer: answer.to_owned(),
        };
        let call = Call::post(template::SECURITY_ANSWER, path, &body)?;
        let answer = self.send(call).await?;
        parse(&answer, template::SECURITY_ANSWER)
    }

    /// `POST /v1/otp`: send a one-time code to the customer's new mobile.
    /// `429` is [`CoreBankError::RateLimited`], `423`
    /// [`CoreBankError::Locked`].
    pub async fn request_otp(&self, request: &OtpRequest) -> Result<OtpIssued, CoreBankError> {
        let call = Call::post(template::OTP, "/v1/otp".into(), request)?;
        let answer = self.send(call).await?;
        parse(&answer, template::OTP)
    }

    /// `POST /v1/otp/{otp_id}/verify`. A wrong code is `Ok` with
    /// `ok: false`; `410` is [`CoreBankError::Expired`], `423`
    /// [`CoreBankError::Locked`].
    pub async fn verify_otp(&self, otp_id: &str, code: &str) -> Result<CheckResult, CoreBankError> {
        let path = format!("/v1/otp/{}/verify", segment("otp_id", otp_id)?);
        let body = OtpVerifyRequest {
            code: code.to_owned(),
        };
        let call = Call::post(template::OTP_VERIFY, path, &body)?;
        let answer = self.send(call).await?;
        parse(&answer, template::OTP_VERIFY)
    }

    /// `POST /v1/changes` with `Idempotency-Key: <change_id>`.
    ///
    /// `Ok` for `applied` and `superseded` (both count as done). A `422` is
    /// [`CoreBankError::Rejected`] (final); `409 in_progress` is
    /// [`CoreBankError::InProgress`] (retry); `409 idempotency_conflict` is
    /// [`CoreBankError::Conflict`]. When the error
    /// [`is_ambiguous`](CoreBankError::is_ambiguous), ask
    /// [`get_change`](Self::get_change) before sending again.
    pub async fn submit_change(
        &self,
        request: &ChangeRequest,
    ) -> Result<SubmitOutcome, CoreBankError> {
        if request.change_id.trim().is_empty() {
            return Err(CoreBankError::InvalidRequest("change_id is empty".into()));
        }
        let key = HeaderValue::from_str(&request.change_id).map_err(|_| {
            CoreBankError::InvalidRequest(
                "change_id is not a valid Idempotency-Key header value".into(),
            )
        })?;
        let mut call = Call::post(template::CHANGES, "/v1/changes".into(), request)?;
        call.idempotency_key = Some(key);
        let answer = self.send(call).await?;
        let result = parse(&answer, template::CHANGES)?;
        let replayed = answer
            .headers
            .get(headers::IDEMPOTENT_REPLAYED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Ok(SubmitOutcome { result, replayed })
    }

    /// `GET /v1/changes/{change_id}`: the core bank's stored answer to the
    /// first `POST /v1/changes` with this id — accepted (`status`,
    /// `core_ref`) or rejected (`code`, `message`) — or `None` (404) if it
    /// never saw the change.
    pub async fn get_change(&self, change_id: &str) -> Result<Option<StoredChange>, CoreBankError> {
        let path = format!("/v1/changes/{}", segment("change_id", change_id)?);
        match self.send(Call::get(template::CHANGE, path)).await {
            Ok(answer) => parse(&answer, template::CHANGE).map(Some),
            Err(CoreBankError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/health` without the warning.
    async fn health_check(&self) -> Result<HealthInfo, CoreBankError> {
        let answer = self
            .exchange(Call::get(template::HEALTH, template::HEALTH.into()))
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(error_from_answer(&answer));
        }
        let health: Health = parse(&answer, template::HEALTH)?;
        let midpoint_ms = answer.sent_at_ms + half_ms(answer.round_trip);
        let skew_ms = health.time_ms.saturating_sub(midpoint_ms);
        Ok(HealthInfo {
            status: health.status,
            server_time_ms: health.time_ms,
            skew_ms,
            round_trip: answer.round_trip,
            skew_exceeds_limit: u128::from(skew_ms.unsigned_abs())
                > self.inner.max_clock_skew.as_millis(),
        })
    }

    /// Sends a call and turns a non-2xx answer into its error, checking the
    /// clock after a 401.
    async fn send(&self, call: Call) -> Result<Answer, CoreBankError> {
        let answer = self.exchange(call).await?;
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        let error = error_from_answer(&answer);
        if matches!(error, CoreBankError::BadSignature { .. }) {
            return Err(self.diagnose_bad_signature(&answer).await);
        }
        Err(error)
    }

    /// After a 401: measure the clock skew with `/v1/health` (itself signed,
    /// so refused too when the skew is the cause); failing that, from the
    /// answer's `Date` header, if any (one-second resolution).
    async fn diagnose_bad_signature(&self, refused: &Answer) -> CoreBankError {
        let measured = match self.health_check().await {
            Ok(info) => Some((info.skew_ms, half_ms(info.round_trip))),
            Err(_) => date_skew(refused),
        };
        let error = match measured {
            Some((skew_ms, uncertainty_ms)) => CoreBankError::BadSignature {
                clock_skew_suspected: beyond_window(skew_ms, uncertainty_ms),
                skew_ms: Some(skew_ms),
            },
            None => CoreBankError::BadSignature {
                clock_skew_suspected: false,
                skew_ms: None,
            },
        };
        tracing::error!(error = %error, "core bank refused the request signature");
        error
    }

    /// Signs and sends one call and reads the whole answer (any status).
    async fn exchange(&self, call: Call) -> Result<Answer, CoreBankError> {
        let span = tracing::debug_span!(
            "corebank",
            method = %call.method,
            path = call.template,
            status = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.exchange_inner(call).instrument(span.clone()).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        span.record("elapsed_ms", elapsed_ms);
        span.in_scope(|| match &result {
            Ok(answer) => {
                tracing::debug!(status = answer.status, elapsed_ms, "core bank answered");
            }
            Err(error) => tracing::debug!(%error, elapsed_ms, "core bank request failed"),
        });
        result
    }

    async fn exchange_inner(&self, call: Call) -> Result<Answer, CoreBankError> {
        let inner = &*self.inner;
        let mut url = inner.base.clone();
        url.set_path(&call.path);
        // What is signed is what goes on the wire.
        if url.path() != call.path {
            return Err(CoreBankError::InvalidRequest(format!(
                "path for {} would be rewritten",
                call.template
            )));
        }
        let sent_at_ms = unix_ms();
        let timestamp = sent_at_ms.to_string();
        let nonce = new_nonce();
        let signature = inner.key.sign(
            call.method.as_str(),
            url.path(),
            &timestamp,
            &nonce,
            &call.body,
        );

        let mut request = inner
            .http
            .request(call.method.clone(), url)
            .header(headers::KIOSK_ID, inner.kiosk_id.clone())
            .header(headers::TIMESTAMP, timestamp)
            .header(headers::NONCE, nonce)
            .header(headers::SIGNATURE, signature.0)
            .header(ACCEPT, "application/json");
        if let Some(key) = call.idempotency_key {
            request = request.header(headers::IDEMPOTENCY_KEY, key);
        }
        if call.method != Method::GET {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes::Bytes::from_owner(call.body));
        }

        let started = Instant::now();
        let mut response = request.send().await.map_err(error::from_send_error)?;
        let round_trip = started.elapsed();
        let status = response.status().as_u16();
        tracing::Span::current().record("status", status);

        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(error::from_body_error)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(CoreBankError::Protocol {
                    status: Some(status),
                    detail: format!("{}: answer larger than 1 MiB", call.template),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers: std::mem::take(response.headers_mut()),
            body,
            sent_at_ms,
            round_trip,
        })
    }
}

impl Call {
    fn get(template: &'static str, path: String) -> Call {
        Call {
            method: Method::GET,
            template,
            path,
            body: Zeroizing::new(Vec::new()),
            idempotency_key: None,
        }
    }

    fn post(
        template: &'static str,
        path: String,
        body: &impl Serialize,
    ) -> Result<Call, CoreBankError> {
        let body = serde_json::to_vec(body).map_err(|_| {
            CoreBankError::InvalidRequest(format!("{template}: body cannot be serialised"))
        })?;
        Ok(Call {
            method: Method::POST,
            template,
            path,
            body: Zeroizing::new(body),
            idempotency_key: None,
        })
    }
}

/// A 2xx answer's body as `T`. serde_json's messages may quote the
/// offending value (personal data), so only its category and position are
/// kept.
fn parse<T: DeserializeOwned>(answer: &Answer, template: &str) -> Result<T, CoreBankError> {
    serde_json::from_slice(&answer.body).map_err(|e| CoreBankError::Protocol {
        status: Some(answer.status),
        detail: format!(
            "{template}: answer is not the expected JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

/// The error a non-2xx answer stands for.
fn error_from_answer(answer: &Answer) -> CoreBankError {
    let status = answer.status;
    let body: Option<ErrorBody> = serde_json::from_slice(&answer.body).ok();
    let code = body
        .as_ref()
        .map(|b| error::clip(&b.code, 64))
        .unwrap_or_default();
    let message = body
        .as_ref()
        .map(|b| error::clip(&b.message, 200))
        .unwrap_or_default();
    match status {
        401 => CoreBankError::BadSignature {
            clock_skew_suspected: false,
            skew_ms: None,
        },
        404 => CoreBankError::NotFound { code },
        409 if code == "in_progress" => CoreBankError::InProgress,
        409 => CoreBankError::Conflict { code },
        410 => CoreBankError::Expired,
        423 => CoreBankError::Locked,
        429 => CoreBankError::RateLimited {
            retry_after: retry_after(&answer.headers),
        },
        400..=499 => CoreBankError::Rejected {
            status,
            code,
            message,
        },
        500..=599 => CoreBankError::Server {
            status,
            code: (!code.is_empty()).then_some(code),
        },
        _ => CoreBankError::Protocol {
            status: Some(status),
            detail: "unexpected status (redirects are not followed)".into(),
        },
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(headers::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let ms = at.timestamp_millis().saturating_sub(unix_ms());
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// Skew (server − kiosk, ms) and its uncertainty from an answer's `Date`.
fn date_skew(answer: &Answer) -> Option<(i64, i64)> {
    let value = answer.headers.get(DATE)?.to_str().ok()?;
    let server_ms = chrono::DateTime::parse_from_rfc2822(value.trim())
        .ok()?
        .timestamp_millis();
    let midpoint_ms = answer.sent_at_ms + half_ms(answer.round_trip);
    // The header has whole seconds: the server's time was up to 1 s later.
    Some((
        server_ms + 500 - midpoint_ms,
        500 + half_ms(answer.round_trip),
    ))
}

fn beyond_window(skew_ms: i64, uncertainty_ms: i64) -> bool {
    skew_ms.saturating_abs().saturating_add(uncertainty_ms) > SERVER_CLOCK_WINDOW_MS
}

fn half_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis() / 2).unwrap_or(i64::MAX)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One path segment, percent-encoded: everything but RFC 3986's unreserved
/// characters is escaped, so an id can neither add segments nor a query.
/// Empty and dot segments are refused (URL parsers collapse them, so what
/// is signed would not be what is sent).
fn segment(what: &str, value: &str) -> Result<String, CoreBankError> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(CoreBankError::InvalidRequest(format!(
            "{what} is empty or a dot segment"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_escape() {
        assert_eq!(segment("id", "C000123").unwrap(), "C000123");
        assert_eq!(segment("id", "a/b?c#d").unwrap(), "a%2Fb%3Fc%23d");
        assert_eq!(segment("id", "%2e%2e").unwrap(), "%252e%252e");
        assert_eq!(segment("id", "张").unwrap(), "%E5%BC%A0");
        assert_eq!(segment("id", "a.b-c_d~e").unwrap(), "a.b-c_d~e");
        assert!(segment("id", "").is_err());
        assert!(segment("id", ".").is_err());
        assert!(segment("id", "..").is_err());
    }

    #[test]
    fn encoded_paths_survive_the_url_parser() {
        let mut url = reqwest::Url::parse("https://bank.example:8443/").unwrap();
        for id in ["a/../b", "%2e%2e", "x y", "?q=1", "#f", "...", "C000123"] {
            let path = format!("/v1/changes/{}", segment("id", id).unwrap());
            url.set_path(&path);
            assert_eq!(url.path(), path, "{id}");
            assert_eq!(url.query(), None);
        }
    }

    #[test]
    fn skew_window_allows_for_uncertainty() {
        assert!(!beyond_window(299_000, 500));
        assert!(beyond_window(299_600, 500));
        assert!(beyond_window(-400_000, 0));
        assert!(!beyond_window(0, 0));
    }
}
