//! Delivery of the outbox to the core bank (rules C2, C3, C4).
//!
//! Two halves, as in rumqttc (`state.rs` / `eventloop.rs`):
//!
//! * [`decide`] (`machine.rs`): a pure function from the call just made,
//!   the failures so far and the call's [`Outcome`] to a [`Decision`]:
//!   done, rejected for good, try again at a time (capped exponential
//!   backoff with jitter, Retry-After as a floor), deliver now, or reconcile
//!   first. No I/O, no clock, no randomness of its own: every transition is
//!   unit-tested.
//! * [`run`] (`worker.rs`): the thin loop. Each step is one transaction
//!   ([`Outbox::advance`](crate::store::Outbox::advance)): it records the
//!   decisions on the requests that came back (audited when final) and
//!   marks the next due changes in flight, committed before their requests
//!   leave through a [`CoreBankPort`]; [`decide`] judges each outcome. Up
//!   to `[sync] concurrency` requests are out at once, each for a
//!   different customer, oldest first; a customer's later change never
//!   goes before an earlier one is settled. In steady state that is at
//!   most one fsync per delivered change (the mark rides with the previous
//!   outcomes' commit), fewer when answers come back together. When
//!   nothing is due the loop sleeps until exactly the next retry or purge
//!   time, or until woken by a commit ([`tokio::sync::Notify`]); it never
//!   polls.
//!
//! # Exactly once in effect (rule C2)
//!
//! Every `POST` carries the change id as `Idempotency-Key`, so the bank
//! applies a resend at most once. On top of that the kiosk never resends
//! blindly once a request may have reached the bank: after an ambiguous
//! failure (timeout after sending, connection lost, 5xx) or a crash with a
//! request in flight, the next request is always `GET /v1/changes/{id}`;
//! only a `404` there leads to a new `POST` (same key). The in-flight mark
//! is committed before the request leaves (in the same transaction as the
//! outcomes recorded just before it), so a crash at any point is covered:
//! before the mark, nothing was sent; after it, the restart reconciles.

mod machine;
mod port;
mod worker;

use std::future::Future;
use std::time::Duration;

use kiosk_corebank::{ChangeRequest, ChangeResult, CoreBankError, StoredChange, SubmitOutcome};

pub use machine::{
    Backoff, Call, Decision, History, IDEMPOTENCY_CONFLICT, IN_PROGRESS, KEY_MEMORY,
    UNKNOWN_AFTER_KEY_EXPIRY, decide,
};
pub use worker::{SyncEvent, SyncOptions, run};

impl Outcome {
    /// The outcome without the bank's free text (a rejection's `message`),
    /// its code kept.
    pub fn without_bank_message(self) -> Outcome {
        match self {
            Outcome::Rejected { status, code, .. } => Outcome::Rejected {
                status,
                code,
                message: String::new(),
            },
            Outcome::Found(StoredChange::Rejected(mut body)) => {
                body.message.clear();
                Outcome::Found(StoredChange::Rejected(body))
            }
            other => other,
        }
    }
}

/// What came of one request to the core bank, as the [`CoreBankPort`]
/// classifies it (see `kiosk_corebank::CoreBankError` for the HTTP side).
/// Reasons and messages must hold no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST` answered 201 (applied) or 200 (superseded); `replayed` when
    /// the answer carried `Idempotent-Replayed: true`.
    Accepted {
        result: ChangeResult,
        replayed: bool,
    },
    /// A 4xx answer (422 business rejection, 400, ...). The 409s may come
    /// here too; they are recognised by their code.
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// The request did not reach the bank, or the bank said "later" (429,
    /// connection refused, TLS handshake failed, timeout while connecting).
    Transient {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// The request may have reached the bank: timeout after sending,
    /// connection lost after sending, 5xx, an unreadable 2xx.
    Ambiguous { reason: String },
    /// `409 {"code":"in_progress"}`: the bank is still working on this key.
    InProgress,
    /// `409 {"code":"idempotency_conflict"}`: the same change id was sent
    /// with another body. A kiosk bug: rejected for good, loudly.
    Conflict { message: String },
    /// `GET /v1/changes/{id}` answered 200: the bank's first answer.
    Found(StoredChange),
    /// `GET /v1/changes/{id}` answered 404: the bank never saw it.
    NotFound,
    /// The kiosk's own trouble (a wrong key, a bad configuration, a
    /// request it could not build): the change is kept and retried slowly;
    /// a technician must look.
    Fault { reason: String },
}

/// How each of the real client's answers becomes an [`Outcome`].
impl Outcome {
    /// The outcome of `POST /v1/changes`.
    pub fn from_submit(result: Result<SubmitOutcome, CoreBankError>) -> Outcome {
        match result {
            Ok(SubmitOutcome { result, replayed }) => Outcome::Accepted { result, replayed },
            Err(e) => Outcome::from_error(e),
        }
    }

    /// The outcome of `GET /v1/changes/{id}`.
    pub fn from_get(result: Result<Option<StoredChange>, CoreBankError>) -> Outcome {
        match result {
            Ok(Some(stored)) => Outcome::Found(stored),
            Ok(None) => Outcome::NotFound,
            Err(e) => Outcome::from_error(e),
        }
    }

    /// A failed call. The client's messages hold no personal data.
    pub fn from_error(e: CoreBankError) -> Outcome {
        let reason = e.to_string();
        match e {
            CoreBankError::InProgress => Outcome::InProgress,
            CoreBankError::Conflict { code } if code == IDEMPOTENCY_CONFLICT => {
                Outcome::Conflict { message: reason }
            }
            CoreBankError::Conflict { code } => Outcome::Rejected {
                status: 409,
                code,
                message: reason,
            },
            CoreBankError::Rejected {
                status,
                code,
                message,
            } => Outcome::Rejected {
                status,
                code,
                message,
            },
            CoreBankError::Locked => Outcome::Rejected {
                status: 423,
                code: "locked".into(),
                message: reason,
            },
            CoreBankError::Expired => Outcome::Rejected {
                status: 410,
                code: "expired".into(),
                message: reason,
            },
            // A 404 to a POST: the address is wrong, not the change.
            CoreBankError::NotFound { .. } => Outcome::Fault { reason },
            CoreBankError::RateLimited { retry_after } => Outcome::Transient {
                retry_after,
                reason,
            },
            CoreBankError::BadSignature {
                clock_skew_suspected: true,
                ..
            } => Outcome::Transient {
                retry_after: None,
                reason,
            },
            ref e if e.is_ambiguous() => Outcome::Ambiguous { reason },
            ref e if e.is_transient() => Outcome::Transient {
                retry_after: None,
                reason,
            },
            // A wrong key or kiosk id, an answer not understood, a request
            // that cannot be built, a bad configuration.
            _ => Outcome::Fault { reason },
        }
    }
}

/// The core bank as the sync worker needs it. Implemented here for
/// `kiosk_corebank::CoreBankClient` (`port.rs`: [`Outcome::from_error`]
/// says how each client error is read); tests implement it with a fake.
pub trait CoreBankPort: Send + Sync {
    /// `POST /v1/changes` with `Idempotency-Key: {change.change_id}`.
    fn submit(&self, change: &ChangeRequest) -> impl Future<Output = Outcome> + Send;

    /// `GET /v1/changes/{change_id}`: [`Outcome::Found`],
    /// [`Outcome::NotFound`], or how it failed.
    fn get_change(&self, change_id: &str) -> impl Future<Output = Outcome> + Send;
}

/// Wall-clock time for the worker: stored times are Unix milliseconds.
pub trait Clock: Send + Sync {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Resolve once [`now_ms`](Self::now_ms) reaches `at_ms`; never for
    /// `None` (nothing scheduled: only a wake-up or shutdown ends the wait).
    fn sleep_until(&self, at_ms: Option<i64>) -> impl Future<Output = ()> + Send;
}
