//! Fault injection: what the simulated core bank does wrong, set at start
//! ([`super::CoreBankConfig::faults`], `--faults JSON`) and at run time
//! ([`super::CoreBankSim::set_faults`], `PUT /_sim/faults`).
//!
//! Each `/v1/...` request first asks [`FaultState::decide`] what happens to
//! it. Rates are probabilities drawn from one random generator, seeded from
//! [`Faults::seed`] when given, so a single client's sequence of requests
//! meets the same faults on every run. [`Faults::script`] lists faults for
//! the next requests, in order, before any rate is drawn: it is how a test
//! says "lose the answer of the next change, then behave" without racing
//! the client.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The faults in force. Every field defaults to "no fault"; JSON and TOML
/// may give any subset of them (`{"error_rate":0.2}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability (0..=1) of answering `500`, `502` or `503`
    /// (`{"code":"unavailable"}`) before doing anything.
    pub error_rate: f64,
    /// Milliseconds added after processing, before the answer is written.
    /// The request has taken effect when the client times out waiting.
    pub latency_ms: u64,
    /// Probability of closing the connection without any answer, before
    /// processing (the request has no effect).
    pub drop_rate: f64,
    /// `POST /v1/changes` only: probability of processing the change and
    /// committing it, then closing the connection without answering.
    pub lost_answer_rate: f64,
    /// Probability of answering `429 rate_limited` with `Retry-After`.
    pub rate_limit_rate: f64,
    /// The `Retry-After` seconds of injected `429`s.
    pub retry_after_s: u64,
    /// The simulator's clock is this far ahead (negative: behind) of the
    /// machine's: timestamps are checked against it, `/v1/health` reports it.
    pub clock_skew_ms: i64,
    /// The bank is down: every `/v1` request (whatever `endpoints` says)
    /// has its connection closed with no answer, as soon as its head is
    /// read. The control API under `/_sim/` keeps answering, so the fault
    /// can be lifted over HTTP.
    pub down: bool,
    /// Hold every `POST /v1/changes` after it has claimed its idempotency
    /// key and before it is processed, until this is set back to false: a
    /// second request with that key meanwhile gets `409 in_progress`.
    pub hold_changes: bool,
    /// Endpoints the faults above apply to (`clock_skew_ms`, `down` and
    /// `hold_changes` always apply); empty means all. Names: `health`,
    /// `lookup`, `security_answer`, `otp`, `otp_verify`, `changes`,
    /// `change_status`.
    pub endpoints: Vec<String>,
    /// Faults for the next requests (of `endpoints`), one each, in order;
    /// the rates apply once it is empty. Consumed as requests arrive:
    /// reading the faults back shows what is left.
    pub script: Vec<Injection>,
    /// Seed of the generator the rates are drawn from (re-seeded whenever
    /// faults are set); none: from the OS.
    pub seed: Option<u64>,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            error_rate: 0.0,
            latency_ms: 0,
            drop_rate: 0.0,
            lost_answer_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_s: 1,
            clock_skew_ms: 0,
            down: false,
            hold_changes: false,
            endpoints: Vec::new(),
            script: Vec::new(),
            seed: None,
        }
    }
}

impl Faults {
    /// No fault at all.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Parse JSON (any subset of the fields).
    pub fn from_json(text: &str) -> Result<Faults, String> {
        let f: Faults = serde_json::from_str(text).map_err(|e| e.to_string())?;
        f.check()?;
        Ok(f)
    }

    /// Rates must be probabilities and endpoint names known.
    pub fn check(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
            ("lost_answer_rate", self.lost_answer_rate),
            ("rate_limit_rate", self.rate_limit_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        for e in &self.endpoints {
            if Endpoint::from_name(e).is_none() {
                return Err(format!(
                    "unknown endpoint {e:?}; known: {}",
                    Endpoint::ALL.map(Endpoint::name).join(", ")
                ));
            }
        }
        Ok(())
    }

    fn applies_to(&self, endpoint: Endpoint) -> bool {
        self.endpoints.is_empty() || self.endpoints.iter().any(|e| e == endpoint.name())
    }
}

/// One scripted fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Injection {
    /// No fault for this request.
    Pass,
    /// `503 unavailable` before doing anything.
    Error,
    /// Close the connection before processing.
    Drop,
    /// Process (and commit), then close the connection without answering.
    /// Any endpoint (`lost_answer_rate` only draws for changes).
    LostAnswer,
    /// `429 rate_limited` with `Retry-After`.
    RateLimit,
}

/// The endpoints of the interface, as faults and statistics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Health,
    Lookup,
    SecurityAnswer,
    Otp,
    OtpVerify,
    Changes,
    ChangeStatus,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Health,
        Endpoint::Lookup,
        Endpoint::SecurityAnswer,
        Endpoint::Otp,
        Endpoint::OtpVerify,
        Endpoint::Changes,
        Endpoint::ChangeStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Health => "health",
            Endpoint::Lookup => "lookup",
            Endpoint::SecurityAnswer => "security_answer",
            Endpoint::Otp => "otp",
            Endpoint::OtpVerify => "otp_verify",
            Endpoint::Changes => "changes",
            Endpoint::ChangeStatus => "change_status",
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    /// Answer this 5xx status at once.
    Error(u16),
    Drop,
    LostAnswer,
    RateLimit,
}

/// The faults in force and the generator their rates are drawn from.
#[derive(Debug)]
pub struct FaultState {
    faults: Faults,
    rng: StdRng,
}

impl FaultState {
    pub fn new(faults: Faults) -> FaultState {
        let rng = seeded(faults.seed);
        FaultState { faults, rng }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Replace the faults (and re-seed).
    pub fn set(&mut self, faults: Faults) {
        self.rng = seeded(faults.seed);
        self.faults = faults;
    }

    /// What happens to a request to `endpoint`, and the latency to add.
    pub fn decide(&mut self, endpoint: Endpoint) -> (Decision, u64) {
        let f = &mut self.faults;
        if f.down {
            return (Decision::Drop, 0);
        }
        if !f.applies_to(endpoint) {
            return (Decision::Pass, 0);
        }
        let latency = f.latency_ms;
        if !f.script.is_empty() {
            let d = match f.script.remove(0) {
                Injection::Pass => Decision::Pass,
                Injection::Error => Decision::Error(503),
                Injection::Drop => Decision::Drop,
                Injection::LostAnswer => Decision::LostAnswer,
                Injection::RateLimit => Decision::RateLimit,
            };
            return (d, latency);
        }
        let rng = &mut self.rng;
        let mut roll = |p: f64| p > 0.0 && (p >= 1.0 || rng.random::<f64>() < p);
        let d = if roll(f.drop_rate) {
            Decision::Drop
        } else if roll(f.error_rate) {
            Decision::Error([500, 502, 503][self.rng.random_range(0..3)])
        } else if roll(f.rate_limit_rate) {
            Decision::RateLimit
        } else if endpoint == Endpoint::Changes && roll(f.lost_answer_rate) {
            Decision::LostAnswer
        } else {
            Decision::Pass
        };
        (d, latency)
    }
}

fn seeded(seed: Option<u64>) -> StdRng {
    match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_os_rng(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_makes_the_draws_repeat() {
        let faults = Faults {
            error_rate: 0.3,
            drop_rate: 0.1,
            seed: Some(7),
            ..Faults::none()
        };
        let run = || {
            let mut s = FaultState::new(faults.clone());
            (0..200)
                .map(|_| s.decide(Endpoint::Lookup).0)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(|d| matches!(d, Decision::Error(_))));
        assert!(a.contains(&Decision::Drop));
        assert!(a.contains(&Decision::Pass));
    }

    #[test]
    fn the_script_comes_first_and_is_consumed() {
        let mut s = FaultState::new(Faults {
            script: vec![Injection::LostAnswer, Injection::Pass, Injection::Error],
            endpoints: vec!["changes".into()],
            error_rate: 1.0,
            ..Faults::none()
        });
        assert_eq!(s.decide(Endpoint::Health).0, Decision::Pass);
        assert_eq!(s.decide(Endpoint::Changes).0, Decision::LostAnswer);
        assert_eq!(s.decide(Endpoint::Changes).0, Decision::Pass);
        assert_eq!(s.decide(Endpoint::Changes).0, Decision::Error(503));
        assert!(s.faults().script.is_empty());
        assert!(matches!(s.decide(Endpoint::Changes).0, Decision::Error(_)));
    }

    #[test]
    fn lost_answers_are_drawn_for_changes_only() {
        let mut s = FaultState::new(Faults {
            lost_answer_rate: 1.0,
            ..Faults::none()
        });
        assert_eq!(s.decide(Endpoint::Lookup).0, Decision::Pass);
        assert_eq!(s.decide(Endpoint::Changes).0, Decision::LostAnswer);
    }

    #[test]
    fn json_is_checked() {
        assert!(Faults::from_json(r#"{"error_rate":2}"#).is_err());
        assert!(Faults::from_json(r#"{"endpoints":["nope"]}"#).is_err());
        assert!(Faults::from_json(r#"{"eror_rate":0.1}"#).is_err());
        let f =
            Faults::from_json(r#"{"script":["drop","lost_answer"],"retry_after_s":3}"#).unwrap();
        assert_eq!(f.script, [Injection::Drop, Injection::LostAnswer]);
        assert_eq!(f.retry_after_s, 3);
    }
}
