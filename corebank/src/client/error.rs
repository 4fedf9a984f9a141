//! [`CoreBankError`]: every way a call to the core bank can fail, classified
//! for the caller's retry decision.

use std::error::Error as _;
use std::time::Duration;

/// Why a call to the core bank failed.
///
/// Three questions decide what to do next; each has a method:
///
/// | variant | [`is_transient`] | [`is_ambiguous`] | [`is_final`] | [`needs_attention`] |
/// |---|---|---|---|---|
/// | `Unreachable` | yes | no | no | no |
/// | `Tls` | yes | no | no | **yes** |
/// | `Timeout { sent: false }` | yes | no | no | no |
/// | `Timeout { sent: true }` | yes | **yes** | no | no |
/// | `ConnectionLost { sent }` | yes | = `sent` | no | no |
/// | `Server` (5xx) | yes | **yes** | no | no |
/// | `RateLimited` (429) | yes | no | no | no |
/// | `InProgress` (409 `in_progress`) | yes | no | no | no |
/// | `BadSignature { clock_skew_suspected: true }` (401) | yes | no | no | **yes** |
/// | `BadSignature { clock_skew_suspected: false }` (401) | no | no | yes | **yes** |
/// | `Rejected` (400, 422, other 4xx) | no | no | yes | 400 only |
/// | `Locked` (423), `Expired` (410), `NotFound` (404) | no | no | yes | no |
/// | `Conflict` (409 `idempotency_conflict`, other 409) | no | no | yes | **yes** |
/// | `Protocol` | no | after a 2xx | no | **yes** |
/// | `InvalidRequest`, `Config` | no | no | no | **yes** |
///
/// A sync worker delivering `POST /v1/changes` would: on an ambiguous error,
/// ask `GET /v1/changes/{id}` before anything else; on a transient one, retry
/// later with backoff (after [`retry_after`](Self::retry_after) if given); on
/// a final one, record the rejection — except that errors which
/// [`needs_attention`](Self::needs_attention) (a wrong key, an idempotency
/// conflict) are about the kiosk rather than the customer's change and
/// should be reported loudly rather than silently settled. Errors that are
/// neither transient nor final (`Protocol`, `InvalidRequest`, `Config`) mean
/// a bug or a misconfiguration: keep the work and tell a technician.
///
/// Messages never hold personal data: no request or answer bodies, only the
/// server's `code` and `message` (which the spec keeps free of it) and
/// transport errors.
///
/// [`is_transient`]: Self::is_transient
/// [`is_ambiguous`]: Self::is_ambiguous
/// [`is_final`]: Self::is_final
/// [`needs_attention`]: Self::needs_attention
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreBankError {
    /// The connection could not be opened (DNS, refused, unreachable, reset
    /// during connect). The request was not sent: safe to send again.
    #[error("core bank unreachable, request not sent: {reason}")]
    Unreachable { reason: String },

    /// The TLS handshake failed (for instance the server's certificate does
    /// not chain to `ca_file`, or a client certificate was refused during
    /// the handshake). The request was not sent. Transient, since the cause
    /// may be fixed on either side, but a technician should hear of it.
    #[error("TLS handshake with the core bank failed, request not sent: {reason}")]
    Tls { reason: String },

    /// No answer in time. `sent: false` when the connection could not even
    /// be opened in `connect_timeout_ms`; `sent: true` when the request may
    /// have reached the core bank (ambiguous).
    #[error(
        "core bank did not answer in time ({})",
        if *sent { "the request may have reached it" } else { "while connecting, request not sent" }
    )]
    Timeout { sent: bool },

    /// The connection broke. `sent: true` when the request may have reached
    /// the core bank (ambiguous); this client reports `sent: false` only
    /// when it knows the request was not sent.
    #[error(
        "connection to the core bank lost ({}): {reason}",
        if *sent { "the request may have reached it" } else { "request not sent" }
    )]
    ConnectionLost { sent: bool, reason: String },

    /// 5xx: the core bank failed. Transient, and ambiguous: a server (or a
    /// gateway in front of it) may have acted on the request before failing.
    #[error("core bank error {status}{}", fmt_code(code))]
    Server { status: u16, code: Option<String> },

    /// 429: asked too often; `Retry-After` (seconds or an HTTP date) if the
    /// server sent one.
    #[error("core bank rate limit{}", match retry_after { Some(d) => format!(", retry after {} s", d.as_secs()), None => String::new() })]
    RateLimited { retry_after: Option<Duration> },

    /// 409 `in_progress`: the same idempotency key is still being processed.
    /// Retry later: the answer will then be the stored one.
    #[error("core bank is still processing this change (409 in_progress)")]
    InProgress,

    /// 422 business rejection, 400 `bad_request` and any other 4xx without a
    /// variant of its own: final for this request.
    #[error(
        "core bank rejected the request: {status} {code}{}",
        fmt_message(message)
    )]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },

    /// 423 `locked`: too many wrong answers or codes.
    #[error("locked by the core bank (423)")]
    Locked,

    /// 410 `expired`: the one-time code has expired.
    #[error("expired (410)")]
    Expired,

    /// 404 with the server's code (e.g. `customer_not_found`).
    #[error("not found at the core bank: 404 {code}")]
    NotFound { code: String },

    /// 409 other than `in_progress`, i.e. `idempotency_conflict`: the same
    /// change id was sent before with a different body. Final, and a bug
    /// somewhere: report it loudly.
    #[error(
        "core bank reports a conflict: 409 {code} (the same change id was sent with a different body)"
    )]
    Conflict { code: String },

    /// 401 `bad_signature`. `clock_skew_suspected` when a clock check right
    /// after it (`GET /v1/health`, or the answer's `Date` header if health
    /// was refused too) puts the kiosk's clock more than the core bank's
    /// 300 s away; `skew_ms` is that measurement (server − kiosk) when one
    /// could be made. Final otherwise (wrong key, wrong kiosk id).
    #[error("{}", fmt_bad_signature(*clock_skew_suspected, *skew_ms))]
    BadSignature {
        clock_skew_suspected: bool,
        skew_ms: Option<i64>,
    },

    /// The answer does not follow the spec (unparseable body, unexpected
    /// status such as a redirect, oversized answer). `status` is the HTTP
    /// status it came with; after a 2xx the request was carried out, so the
    /// error is ambiguous.
    #[error("core bank answer not understood{}: {detail}", match status { Some(s) => format!(" (status {s})"), None => String::new() })]
    Protocol { status: Option<u16>, detail: String },

    /// The kiosk asked for something that cannot be sent (an empty id, an id
    /// that is not a valid header value). Not sent.
    #[error("invalid request to the core bank, not sent: {0}")]
    InvalidRequest(String),

    /// The configuration is unusable; every problem, each with its key.
    #[error("core bank configuration: {0}")]
    Config(String),
}

/// The spec's limit on the distance between `X-Timestamp` and the core
/// bank's clock.
pub const SERVER_CLOCK_WINDOW_MS: i64 = 300_000;

fn fmt_code(code: &Option<String>) -> String {
    code.as_deref().map(|c| format!(" {c}")).unwrap_or_default()
}

fn fmt_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

fn fmt_bad_signature(suspected: bool, skew_ms: Option<i64>) -> String {
    let skew = |ms: i64| {
        let direction = if ms > 0 { "behind" } else { "ahead of" };
        format!("{} s {direction}", ms.unsigned_abs() / 1000)
    };
    match (suspected, skew_ms) {
        (true, Some(ms)) => format!(
            "core bank refused the request signature (401): CLOCK SKEW — the kiosk's clock is \
             {} the core bank's, more than the 300 s it accepts; fix the kiosk's time (NTP)",
            skew(ms)
        ),
        (true, None) => "core bank refused the request signature (401): CLOCK SKEW suspected; \
                         check the kiosk's time (NTP)"
            .into(),
        (false, Some(ms)) => format!(
            "core bank refused the request signature (401); clocks agree ({} ms apart), \
             so check key_file and the kiosk id",
            ms
        ),
        (false, None) => "core bank refused the request signature (401); check key_file, the \
                          kiosk id and the kiosk's time"
            .into(),
    }
}

impl CoreBankError {
    /// Trying the same request again later may succeed: the failure says
    /// nothing final about the request.
    pub fn is_transient(&self) -> bool {
        match self {
            CoreBankError::Unreachable { .. }
            | CoreBankError::Tls { .. }
            | CoreBankError::Timeout { .. }
            | CoreBankError::ConnectionLost { .. }
            | CoreBankError::Server { .. }
            | CoreBankError::RateLimited { .. }
            | CoreBankError::InProgress => true,
            CoreBankError::BadSignature {
                clock_skew_suspected,
                ..
            } => *clock_skew_suspected,
            CoreBankError::Rejected { .. }
            | CoreBankError::Locked
            | CoreBankError::Expired
            | CoreBankError::NotFound { .. }
            | CoreBankError::Conflict { .. }
            | CoreBankError::Protocol { .. }
            | CoreBankError::InvalidRequest(_)
            | CoreBankError::Config(_) => false,
        }
    }

    /// The request may have reached the core bank and been carried out, but
    /// its answer was lost. For `POST /v1/changes`, reconcile with
    /// `GET /v1/changes/{id}` before sending again or giving up.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            CoreBankError::Timeout { sent } | CoreBankError::ConnectionLost { sent, .. } => *sent,
            CoreBankError::Server { .. } => true,
            CoreBankError::Protocol { status, .. } => {
                status.is_some_and(|s| (200..300).contains(&s))
            }
            _ => false,
        }
    }

    /// The core bank answered, and the same request will not succeed if
    /// sent again.
    pub fn is_final(&self) -> bool {
        match self {
            CoreBankError::Rejected { .. }
            | CoreBankError::Locked
            | CoreBankError::Expired
            | CoreBankError::NotFound { .. }
            | CoreBankError::Conflict { .. } => true,
            CoreBankError::BadSignature {
                clock_skew_suspected,
                ..
            } => !clock_skew_suspected,
            _ => false,
        }
    }

    /// The kiosk, its configuration or the core bank's behaviour is at
    /// fault rather than the customer's data: report loudly, to a
    /// technician.
    pub fn needs_attention(&self) -> bool {
        match self {
            CoreBankError::Tls { .. }
            | CoreBankError::BadSignature { .. }
            | CoreBankError::Conflict { .. }
            | CoreBankError::Protocol { .. }
            | CoreBankError::InvalidRequest(_)
            | CoreBankError::Config(_) => true,
            CoreBankError::Rejected { status, .. } => *status == 400,
            _ => false,
        }
    }

    /// How long the core bank asked to wait (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CoreBankError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The server's error `code`, when the error is an answer that had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CoreBankError::Rejected { code, .. }
            | CoreBankError::NotFound { code }
            | CoreBankError::Conflict { code } => Some(code),
            CoreBankError::Server { code, .. } => code.as_deref(),
            CoreBankError::InProgress => Some("in_progress"),
            CoreBankError::Locked => Some("locked"),
            CoreBankError::Expired => Some("expired"),
            CoreBankError::BadSignature { .. } => Some("bad_signature"),
            CoreBankError::RateLimited { .. } => Some("rate_limited"),
            _ => None,
        }
    }
}

/// A transport error as text: the chain of causes, without the URL. None of
/// reqwest's, hyper's, rustls' or the OS's messages carries request data.
pub(crate) fn error_chain(error: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = error.source();
    while let Some(e) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&e.to_string());
        source = e.source();
    }
    if text.is_empty() {
        text = error.to_string();
    }
    clip(&text, 300)
}

/// At most `max` characters, without control characters, for logs.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Classifies a failure of reqwest before an answer's status arrived.
pub(crate) fn from_send_error(error: reqwest::Error) -> CoreBankError {
    let error = error.without_url();
    if error.is_builder() {
        return CoreBankError::InvalidRequest(error_chain(&error));
    }
    if error.is_connect() {
        if error.is_timeout() {
            return CoreBankError::Timeout { sent: false };
        }
        if is_tls_failure(&error) {
            return CoreBankError::Tls {
                reason: error_chain(&error),
            };
        }
        return CoreBankError::Unreachable {
            reason: error_chain(&error),
        };
    }
    if error.is_timeout() {
        return CoreBankError::Timeout { sent: true };
    }
    // Anything else (connection closed before the answer, reset, ...) after
    // the connection was open: the request may have been delivered.
    CoreBankError::ConnectionLost {
        sent: true,
        reason: error_chain(&error),
    }
}

/// Classifies a failure while reading an answer's body: the request was
/// delivered.
pub(crate) fn from_body_error(error: reqwest::Error) -> CoreBankError {
    let error = error.without_url();
    if error.is_timeout() {
        CoreBankError::Timeout { sent: true }
    } else {
        CoreBankError::ConnectionLost {
            sent: true,
            reason: error_chain(&error),
        }
    }
}

/// tokio-rustls reports TLS failures (certificate refused, handshake
/// alerts) as an `io::Error` of kind `InvalidData` around the rustls error;
/// hyper-rustls wraps that in another `io::Error` (kind `Other`), whose
/// `source()` skips it, so nested `io::Error`s are opened with `get_ref`.
fn is_tls_failure(error: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = error.source();
    while let Some(e) = source {
        let mut io = e.downcast_ref::<std::io::Error>();
        while let Some(inner) = io {
            if inner.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
            io = inner
                .get_ref()
                .and_then(|e| e.downcast_ref::<std::io::Error>());
        }
        source = e.source();
    }
    false
}
