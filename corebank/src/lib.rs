//! The core bank's interface, v1 (`shared/corebank-api.md`).
//!
//! * [`types`]: every request and answer body, as serde types. Field names
//!   and enum spellings are the spec's; nothing here depends on what a
//!   particular server does beyond the spec.
//! * [`signing`]: the `X-Signature` HMAC-SHA256 over
//!   `METHOD \n PATH \n X-Timestamp \n X-Nonce \n hex(SHA-256(body))`, used
//!   by the kiosk to sign and by the simulator to check.
//!
//! The HTTPS client lives in [`client`] (the kiosk side); the simulator in
//! `kiosk-sim` implements the server side from the same types.

pub mod signing;
pub mod types;

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
