//! The core bank's interface, v1 (`shared/corebank-api.md`).
//!
//! * [`types`]: every request and answer body, as serde types. Field names
//!   and enum spellings are the spec's; nothing here depends on what a
//!   particular server does beyond the spec.
//! * [`signing`]: the `X-Signature` HMAC-SHA256 over
//!   `METHOD \n PATH \n X-Timestamp \n X-Nonce \n hex(SHA-256(body))`, used
//!   by the kiosk to sign and by the simulator to check.
//! * [`client`]: the kiosk's HTTPS client, one async method per endpoint.
//!   The simulator in `kiosk-sim` implements the server side from the same
//!   types.
//!
//! # The client's design
//!
//! [`CoreBankClient`] is built once from the `[corebank]` section of
//! kioskd's configuration ([`CoreBankConfig`]) and the kiosk id. Building it
//! reads the key, CA and client-certificate files and fails with every
//! problem named by its key; it does no network I/O. The HTTP layer is
//! reqwest over rustls: TLS 1.2 or later, the CA file as the only trust
//! anchors when one is set, an optional client certificate, plain HTTP only
//! with `allow_plain_http = true`, no redirects (they would change the
//! signed path) and no proxy taken from the environment.
//!
//! Each call serialises its body once, signs exactly those bytes together
//! with the path as it goes on the wire (ids percent-encoded; nothing
//! personal is ever put in a path or query), and sends them with a fresh
//! nonce and the current time. A `401` is followed by a clock check through
//! `GET /v1/health`, so that a kiosk whose clock drifted beyond the core
//! bank's 300 s window reports that loudly rather than looking like a wrong
//! key.
//!
//! Failures come back as one [`CoreBankError`] whose methods answer what
//! the caller must decide: [`is_transient`](CoreBankError::is_transient)
//! (retry later), [`is_ambiguous`](CoreBankError::is_ambiguous) (the
//! request may have been carried out and its answer lost: for
//! `POST /v1/changes`, reconcile with [`CoreBankClient::get_change`] before
//! resending), [`is_final`](CoreBankError::is_final) (the core bank's
//! answer, do not resend) and [`needs_attention`](CoreBankError::needs_attention)
//! (the kiosk or its configuration is at fault: tell a technician). The
//! table on [`CoreBankError`] lists every variant.
//!
//! Personal data stays out of logs and errors: the request types print
//! redacted `Debug`, each request is traced in a `debug` span with the
//! method, the path *template*, the status and the elapsed time only, and
//! errors carry only statuses, the server's `code`/`message` and transport
//! causes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiosk_corebank::CoreBankError> {
//! use kiosk_corebank::{CoreBankClient, CoreBankConfig};
//!
//! let config: CoreBankConfig = CoreBankConfig::new("https://corebank.example:8443", "/etc/kiosk/corebank.key");
//! let client = CoreBankClient::new(&config, "K-0101-03")?;
//! let health = client.health().await?;
//! if health.skew_exceeds_limit {
//!     // refuse to take changes until the clock is fixed
//! }
//! # Ok(()) }
//! ```

pub mod client;
pub mod secret_file;
pub mod signing;
pub mod types;

pub use client::{CoreBankClient, CoreBankConfig, CoreBankError, HealthInfo, SubmitOutcome};
pub use secret_file::{SecretFileProblem, read_secret_file};
pub use signing::{Signature, SigningKey};
pub use types::*;

/// Header names of the spec.
pub mod headers {
    pub const KIOSK_ID: &str = "X-Kiosk-Id";
    pub const TIMESTAMP: &str = "X-Timestamp";
    pub const NONCE: &str = "X-Nonce";
    pub const SIGNATURE: &str = "X-Signature";
    pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
    pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";
    pub const RETRY_AFTER: &str = "Retry-After";
}
