//! The sync worker's decisions, without I/O: given what was just tried and
//! what came of it, what next. Like rumqttc's `state.rs`, nothing here
//! touches the network, the database or the clock: the caller passes `now`
//! and the random sample for the jitter, so every transition is a plain
//! function call in the tests.
//!
//! | outcome of the call | decision |
//! |---|---|
//! | `Accepted`, `Found(Accepted)` | `Done` (applied or superseded: both count as done) |
//! | `Found(Rejected)`, `Rejected` 400, 403, 409, 410, 413, 415, 422, 423 | `Rejected` (final, rule C4) |
//! | `Conflict` (409 `idempotency_conflict`) | `Rejected` with that code: a kiosk bug, reported loudly |
//! | `Transient`, `InProgress`, `Rejected` 408/429 | `RetryAt` backoff (Retry-After as a floor), then the same call |
//! | `Ambiguous`, `Rejected` 5xx | `RetryAt` backoff, then **`Reconcile`**: never a blind resend |
//! | `NotFound` after `Reconcile` | `Deliver` now (same idempotency key); for a change older than [`KEY_MEMORY`] `Rejected` as `unknown_after_key_expiry` (the bank may have forgotten the key: never resent) |
//! | `NotFound` after `Deliver`, `Fault`, other 4xx | `RetryAt` the longest backoff, then `Reconcile` |
//!
//! Other 4xx answers (401, 404, 405, ...) are about the kiosk's set-up
//! (keys, clock, address), not about the customer's change: the change is
//! kept and retried slowly instead of being rejected for good.

use std::time::Duration;

use kiosk_corebank::StoredChange;

use super::Outcome;
use crate::config::SyncSection;

pub use crate::store::{Call, Decision};

/// Capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first retry's delay.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Fraction (0..=1) of each delay taken off at random.
    pub jitter: f64,
}

impl Backoff {
    /// A server's Retry-After is honoured up to this.
    pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

    /// The delay after the `failures`-th failure in a row (1 for the first):
    /// `min · 2^(failures-1)`, at most `max`, minus up to `jitter` of it
    /// (`sample` in `0..1` picks how much), and never less than the
    /// server's `retry_after` (capped at [`Self::RETRY_AFTER_CAP`]).
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, sample: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let base = self.min.saturating_mul(1 << doublings).min(self.max);
        let cut = self.jitter.clamp(0.0, 1.0) * sample.clamp(0.0, 1.0);
        let delay = base.mul_f64(1.0 - cut);
        match retry_after {
            Some(floor) => delay.max(floor.min(Self::RETRY_AFTER_CAP)),
            None => delay,
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::from(&SyncSection::default())
    }
}

impl From<&SyncSection> for Backoff {
    fn from(s: &SyncSection) -> Self {
        Backoff {
            min: Duration::from_millis(s.backoff_min_ms),
            max: Duration::from_millis(s.backoff_max_ms),
            jitter: s.jitter,
        }
    }
}

/// What was just tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// The call whose outcome is being decided on.
    pub call: Call,
    /// Failures in a row before this call.
    pub failures: u32,
    /// When the change was recorded (Unix ms): no send of it is older.
    pub created_at_ms: i64,
}

/// How long the kiosk trusts the core bank to remember an idempotency key:
/// the bank keeps them "at least 7 days" (shared/corebank-api.md); a day
/// less, for clocks that disagree.
pub const KEY_MEMORY: Duration = Duration::from_secs(6 * 24 * 3600);

/// The code of a change not sent again because the bank may have forgotten
/// its key (see [`decide`]): for the technician (rule C4 list).
pub const UNKNOWN_AFTER_KEY_EXPIRY: &str = "unknown_after_key_expiry";

/// Decide what follows `outcome` of `history.call`.
///
/// `now_ms` is the wall clock (Unix ms), `sample` a random number in `0..1`
/// for the jitter.
pub fn decide(
    backoff: &Backoff,
    history: History,
    outcome: Outcome,
    now_ms: i64,
    sample: f64,
) -> Decision {
    let failures = history.failures.saturating_add(1);
    let retry = |then, retry_after, reason: String| Decision::RetryAt {
        at_ms: now_ms.saturating_add(millis(backoff.delay(failures, retry_after, sample))),
        then,
        reason,
    };
    // The kiosk's own trouble: wait the longest, then ask before resending.
    let slow = |reason: String| Decision::RetryAt {
        at_ms: now_ms.saturating_add(millis(
            backoff
                .max
                .mul_f64(1.0 - backoff.jitter.clamp(0.0, 1.0) * sample.clamp(0.0, 1.0)),
        )),
        then: Call::Reconcile,
        reason,
    };
    match outcome {
        Outcome::Accepted { result, .. } | Outcome::Found(StoredChange::Accepted(result)) => {
            Decision::Done {
                status: result.status,
                core_ref: result.core_ref,
            }
        }
        Outcome::Found(StoredChange::Rejected(body)) => Decision::Rejected {
            code: body.code,
            message: body.message,
        },
        Outcome::Conflict { message } => Decision::Rejected {
            code: IDEMPOTENCY_CONFLICT.into(),
            message,
        },
        Outcome::InProgress => retry(
            history.call,
            None,
            "the core bank is still processing it (409 in_progress)".into(),
        ),
        Outcome::Transient {
            retry_after,
            reason,
        } => retry(history.call, retry_after, reason),
        Outcome::Ambiguous { reason } => retry(Call::Reconcile, None, reason),
        Outcome::NotFound => match history.call {
            // An earlier send may have reached the bank: its 404 means "never
            // seen" only while the bank still remembers keys of that age.
            Call::Reconcile
                if now_ms.saturating_sub(history.created_at_ms) >= millis(KEY_MEMORY) =>
            {
                Decision::Rejected {
                    code: UNKNOWN_AFTER_KEY_EXPIRY.into(),
                    message: "the core bank no longer knows this change, and an earlier send \
                              may have reached it: not sent again (it could apply twice); a \
                              technician must check it with the bank"
                        .into(),
                }
            }
            Call::Reconcile => Decision::Deliver,
            Call::Deliver => {
                slow("404 to a POST /v1/changes (check the core bank's address)".into())
            }
        },
        Outcome::Fault { reason } => slow(reason),
        Outcome::Rejected {
            status,
            code,
            message,
        } => match status {
            409 if code == IN_PROGRESS => retry(
                history.call,
                None,
                "the core bank is still processing it (409 in_progress)".into(),
            ),
            408 | 429 => retry(
                history.call,
                None,
                format!("core bank answered {status} {code}"),
            ),
            500..=599 => retry(
                Call::Reconcile,
                None,
                format!("core bank answered {status} {code}"),
            ),
            // 403 forbidden, 413 too large, 415 media type: never taken.
            400 | 403 | 409 | 410 | 413 | 415 | 422 | 423 => Decision::Rejected { code, message },
            _ => slow(format!("core bank answered {status} {code}")),
        },
    }
}

/// The code of `409 {"code":"idempotency_conflict"}`.
pub const IDEMPOTENCY_CONFLICT: &str = "idempotency_conflict";
/// The code of `409 {"code":"in_progress"}`.
pub const IN_PROGRESS: &str = "in_progress";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use kiosk_corebank::{ChangeResult, ChangeStatus, ErrorBody};
    use rand::{Rng, SeedableRng};

    use super::*;

    const NOW: i64 = 1_763_880_000_000;
    const DAY_MS: i64 = 24 * 3600 * 1000;

    /// Rules C2 and C4: the bank keeps idempotency keys 7 days. A change
    /// whose earlier send may have reached the bank (hence the reconcile)
    /// and that is older than that: a 404 may mean "forgotten", not "never
    /// seen", so it is not sent again; it goes to the technician's list
    /// with its own reason. A younger one is delivered again (same key).
    #[test]
    fn rule_c2_a_change_older_than_the_banks_key_memory_is_not_resent_after_a_404() {
        let decide_at = |age_ms: i64| {
            decide(
                &backoff(),
                History {
                    call: Call::Reconcile,
                    failures: 3,
                    created_at_ms: NOW - age_ms,
                },
                Outcome::NotFound,
                NOW,
                0.5,
            )
        };
        assert_eq!(decide_at(DAY_MS), Decision::Deliver);
        match decide_at(8 * DAY_MS) {
            Decision::Rejected { code, message } => {
                assert_eq!(code, UNKNOWN_AFTER_KEY_EXPIRY);
                assert!(message.contains("technician"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Inside the margin before the bank's 7 days: not resent either.
        assert!(matches!(
            decide_at(6 * DAY_MS + 1),
            Decision::Rejected { .. }
        ));
    }

    /// Rule C4: answers that say the change can never be taken (403
    /// forbidden, 413 too large, 415 wrong media type; 400 to the GET)
    /// reject it for good: it no longer blocks the customer's later changes.
    #[test]
    fn rule_c4_answers_that_can_never_succeed_reject_the_change_for_good() {
        for status in [403, 413, 415] {
            for call in [Call::Deliver, Call::Reconcile] {
                let d = after(
                    call,
                    Outcome::Rejected {
                        status,
                        code: format!("http_{status}"),
                        message: String::new(),
                    },
                );
                assert!(
                    matches!(d, Decision::Rejected { .. }),
                    "{status} {call:?}: {d:?}"
                );
            }
        }
        let d = after(
            Call::Reconcile,
            Outcome::Rejected {
                status: 400,
                code: "bad_request".into(),
                message: String::new(),
            },
        );
        assert!(matches!(d, Decision::Rejected { .. }), "{d:?}");
        // The kiosk's own set-up (a wrong key) is still waited out.
        let d = after(
            Call::Deliver,
            Outcome::Rejected {
                status: 401,
                code: "bad_signature".into(),
                message: String::new(),
            },
        );
        assert!(matches!(d, Decision::RetryAt { .. }), "{d:?}");
    }

    fn backoff() -> Backoff {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_millis(60_000),
            jitter: 0.0,
        }
    }

    fn after(call: Call, outcome: Outcome) -> Decision {
        decide(
            &backoff(),
            History {
                call,
                failures: 0,
                created_at_ms: NOW,
            },
            outcome,
            NOW,
            0.5,
        )
    }

    fn result(status: ChangeStatus) -> ChangeResult {
        ChangeResult {
            status,
            core_ref: "CR-7".into(),
        }
    }

    fn rejected(status: u16, code: &str) -> Outcome {
        Outcome::Rejected {
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    fn retry_at(at_ms: i64, then: Call) -> impl Fn(&Decision) -> bool {
        move |d| matches!(d, Decision::RetryAt { at_ms: a, then: t, .. } if *a == at_ms && *t == then)
    }

    #[test]
    fn accepted_and_found_accepted_are_done() {
        for status in [ChangeStatus::Applied, ChangeStatus::Superseded] {
            for replayed in [false, true] {
                let d = after(
                    Call::Deliver,
                    Outcome::Accepted {
                        result: result(status),
                        replayed,
                    },
                );
                assert_eq!(
                    d,
                    Decision::Done {
                        status,
                        core_ref: "CR-7".into()
                    }
                );
                assert!(d.is_final());
            }
            let d = after(
                Call::Reconcile,
                Outcome::Found(StoredChange::Accepted(result(status))),
            );
            assert!(matches!(d, Decision::Done { status: s, .. } if s == status));
        }
    }

    #[test]
    fn business_rejections_are_final() {
        for status in [400, 409, 410, 422, 423] {
            let d = after(Call::Deliver, rejected(status, "stale_card"));
            assert_eq!(
                d,
                Decision::Rejected {
                    code: "stale_card".into(),
                    message: "m".into()
                },
                "{status}"
            );
            assert!(d.is_final());
        }
        let d = after(
            Call::Reconcile,
            Outcome::Found(StoredChange::Rejected(ErrorBody {
                code: "name_mismatch".into(),
                message: "x".into(),
            })),
        );
        assert!(matches!(d, Decision::Rejected { ref code, .. } if code == "name_mismatch"));
    }

    #[test]
    fn an_idempotency_conflict_is_rejected_with_its_code() {
        let d = after(
            Call::Deliver,
            Outcome::Conflict {
                message: "other body".into(),
            },
        );
        assert_eq!(
            d,
            Decision::Rejected {
                code: IDEMPOTENCY_CONFLICT.into(),
                message: "other body".into()
            }
        );
        let d = after(Call::Deliver, rejected(409, IDEMPOTENCY_CONFLICT));
        assert!(matches!(d, Decision::Rejected { ref code, .. } if code == IDEMPOTENCY_CONFLICT));
    }

    #[test]
    fn transient_failures_retry_the_same_call_after_backoff() {
        for call in [Call::Deliver, Call::Reconcile] {
            let t = Outcome::Transient {
                retry_after: None,
                reason: "connection refused".into(),
            };
            assert!(retry_at(NOW + 500, call)(&after(call, t)));
            assert!(retry_at(NOW + 500, call)(&after(call, Outcome::InProgress)));
            assert!(retry_at(NOW + 500, call)(&after(
                call,
                rejected(409, IN_PROGRESS)
            )));
            assert!(retry_at(NOW + 500, call)(&after(
                call,
                rejected(429, "rate_limited")
            )));
            assert!(retry_at(NOW + 500, call)(&after(
                call,
                rejected(408, "timeout")
            )));
        }
        let d = after(
            Call::Deliver,
            Outcome::Transient {
                retry_after: None,
                reason: "503".into(),
            },
        );
        assert!(matches!(d, Decision::RetryAt { ref reason, .. } if reason == "503"));
        assert!(!d.is_final());
    }

    #[test]
    fn retry_after_is_a_floor() {
        let t = |secs| Outcome::Transient {
            retry_after: Some(Duration::from_secs(secs)),
            reason: "429".into(),
        };
        assert!(retry_at(NOW + 7_000, Call::Deliver)(&after(
            Call::Deliver,
            t(7)
        )));
        // A shorter Retry-After does not shorten the backoff.
        let d = decide(
            &backoff(),
            History {
                call: Call::Deliver,
                failures: 5,
                created_at_ms: NOW,
            },
            t(1),
            NOW,
            0.0,
        );
        assert!(retry_at(NOW + 16_000, Call::Deliver)(&d), "{d:?}");
        // An absurd one is capped.
        assert!(retry_at(NOW + 3_600_000, Call::Deliver)(&after(
            Call::Deliver,
            t(86_400)
        )));
    }

    #[test]
    fn ambiguous_failures_always_reconcile_next() {
        for call in [Call::Deliver, Call::Reconcile] {
            let d = after(
                call,
                Outcome::Ambiguous {
                    reason: "timeout after send".into(),
                },
            );
            assert!(retry_at(NOW + 500, Call::Reconcile)(&d), "{d:?}");
            for status in [500, 502, 503, 504] {
                let d = after(call, rejected(status, "internal"));
                assert!(retry_at(NOW + 500, Call::Reconcile)(&d), "{status}: {d:?}");
            }
        }
    }

    #[test]
    fn not_found_on_reconcile_delivers_again() {
        assert_eq!(after(Call::Reconcile, Outcome::NotFound), Decision::Deliver);
        // A 404 to the POST itself is the kiosk's set-up: slow, then ask.
        let d = after(Call::Deliver, Outcome::NotFound);
        assert!(retry_at(NOW + 60_000, Call::Reconcile)(&d), "{d:?}");
    }

    #[test]
    fn faults_and_set_up_errors_keep_the_change_and_retry_slowly() {
        for call in [Call::Deliver, Call::Reconcile] {
            let d = after(
                call,
                Outcome::Fault {
                    reason: "bad signature: check the shared key".into(),
                },
            );
            assert!(retry_at(NOW + 60_000, Call::Reconcile)(&d), "{d:?}");
            // 403, 413 and 415 can never succeed: rule_c4_answers_that_can_never_succeed_...
            for status in [401, 404, 405] {
                let d = after(call, rejected(status, "x"));
                assert!(
                    retry_at(NOW + 60_000, Call::Reconcile)(&d),
                    "{status}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = backoff();
        let ms = |n| b.delay(n, None, 0.0).as_millis();
        assert_eq!(
            (1..=9).map(ms).collect::<Vec<_>>(),
            [
                500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000
            ]
        );
        assert_eq!(ms(0), 500);
        assert_eq!(ms(u32::MAX), 60_000);
        // The failure count comes from the history.
        let d = decide(
            &b,
            History {
                call: Call::Deliver,
                failures: 2,
                created_at_ms: NOW,
            },
            Outcome::InProgress,
            NOW,
            0.0,
        );
        assert!(retry_at(NOW + 2_000, Call::Deliver)(&d));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..10_000 {
            let b = Backoff {
                min: Duration::from_millis(rng.random_range(1..2_000)),
                max: Duration::from_millis(rng.random_range(2_000..120_000)),
                jitter: rng.random_range(0.0..=1.0),
            };
            let n = rng.random_range(0..80);
            let sample: f64 = rng.random();
            let d = b.delay(n, None, sample);
            let full = b.delay(n, None, 0.0);
            assert!(d <= full && full <= b.max, "{b:?} {n}");
            assert!(d.as_secs_f64() >= full.as_secs_f64() * (1.0 - b.jitter) - 1e-6);
            assert!(b.delay(n + 1, None, 0.0) >= full, "monotone");
            let floor = Duration::from_millis(rng.random_range(0..200_000));
            assert!(b.delay(n, Some(floor), sample) >= floor);
        }
    }

    fn random_outcome(rng: &mut impl Rng) -> Outcome {
        match rng.random_range(0..12) {
            0 => Outcome::Accepted {
                result: result(ChangeStatus::Applied),
                replayed: rng.random(),
            },
            1 => rejected(422, "stale_card"),
            2 => rejected(
                *[401, 404, 408, 429, 500, 503]
                    .get(rng.random_range(0..6))
                    .unwrap_or(&500),
                "x",
            ),
            3 | 4 => Outcome::Transient {
                retry_after: None,
                reason: "refused".into(),
            },
            5 | 6 => Outcome::Ambiguous {
                reason: "timeout".into(),
            },
            7 => Outcome::InProgress,
            8 => Outcome::Found(StoredChange::Accepted(result(ChangeStatus::Superseded))),
            9 | 10 => Outcome::NotFound,
            _ => Outcome::Fault {
                reason: "tls".into(),
            },
        }
    }

    /// Over random runs: once an attempt's fate is unknown (an ambiguous
    /// outcome, a fault), no POST goes out until a reconciliation has said
    /// the bank never saw it; every run that ends, ends final.
    #[test]
    fn no_blind_resend_after_an_unknown_outcome() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..2_000 {
            let mut call = Call::Deliver;
            let mut failures = 0;
            let mut unknown = false;
            for _ in 0..50 {
                if unknown {
                    assert_eq!(call, Call::Reconcile, "blind resend");
                }
                let outcome = random_outcome(&mut rng);
                // The real bank answers a GET with Found or NotFound (or a
                // failure), a POST never with NotFound.
                let outcome = match (call, outcome) {
                    (Call::Deliver, Outcome::NotFound) => Outcome::InProgress,
                    (_, o) => o,
                };
                let maybe_sent =
                    matches!(outcome, Outcome::Ambiguous { .. } | Outcome::Fault { .. })
                        || matches!(
                            outcome,
                            Outcome::Rejected {
                                status: 500..=599,
                                ..
                            }
                        );
                let told = matches!(outcome, Outcome::NotFound | Outcome::Found(_));
                let d = decide(
                    &backoff(),
                    History {
                        call,
                        failures,
                        created_at_ms: NOW,
                    },
                    outcome,
                    NOW,
                    0.3,
                );
                unknown = (unknown || (call == Call::Deliver && maybe_sent)) && !told;
                match d {
                    Decision::Deliver => {
                        assert!(!unknown);
                        call = Call::Deliver;
                    }
                    Decision::Reconcile => call = Call::Reconcile,
                    Decision::RetryAt { then, at_ms, .. } => {
                        assert!(at_ms > NOW);
                        failures += 1;
                        call = then;
                    }
                    Decision::Done { .. } | Decision::Rejected { .. } => break,
                }
            }
        }
    }
}
