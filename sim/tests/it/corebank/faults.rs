//! Each fault, as a client sees it.

use std::time::{Duration, Instant};

use kiosk_sim::corebank::{Faults, Injection};
use serde_json::json;

use super::*;

#[test]
fn injected_errors_answer_5xx_and_do_nothing() {
    let t = TestSim::start_with(|c| {
        c.faults = Faults {
            error_rate: 1.0,
            ..Faults::none()
        }
    });
    let c = t.client();
    let id = new_id();
    let r = c.change(&resident_change(&id));
    assert!([500, 502, 503].contains(&r.status), "{r:?}");
    assert_eq!(r.code(), "unavailable");
    assert!(r.body["message"].is_string());
    assert_eq!(t.sim.applied_count(&id), 0);
    t.sim.set_faults(Faults::none());
    assert_eq!(c.change(&resident_change(&id)).status, 201);
    assert_eq!(t.sim.stats().faults_injected.errors, 1);
}

#[test]
fn latency_delays_the_answer_of_a_processed_request() {
    let t = TestSim::start();
    let c = t.client();
    t.sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::none()
    });
    let started = Instant::now();
    let r = c.get("/v1/health");
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_dropped_connection_has_no_answer_and_no_effect() {
    let t = TestSim::start();
    let c = t.client();
    t.sim.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::none()
    });
    let id = new_id();
    let e = c.try_change(&resident_change(&id)).unwrap_err();
    assert!(!e.is_timeout(), "{e:?}");
    assert_eq!(t.sim.applied_count(&id), 0);
    assert_eq!(t.sim.stats().faults_injected.drops, 1);
    t.sim.set_faults(Faults::none());
    let r = c.change(&resident_change(&id));
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Idempotent-Replayed"), None);
}

#[test]
fn a_lost_answer_has_taken_effect_and_is_replayed_on_retry() {
    let t = TestSim::start();
    let c = t.client();
    t.sim.set_faults(Faults {
        lost_answer_rate: 1.0,
        ..Faults::none()
    });
    // Other endpoints are unaffected by lost_answer_rate.
    assert_eq!(c.get("/v1/health").status, 200);
    let id = new_id();
    let body = resident_change(&id);
    assert!(c.try_change(&body).is_err());
    assert_eq!(t.sim.applied_count(&id), 1);
    assert_eq!(
        t.sim.customer("C000001").unwrap().record.valid_until,
        "2040-03-07"
    );
    // Reconcile, then retry: the change was applied once.
    t.sim.set_faults(Faults::none());
    assert_eq!(
        c.get(&format!("/v1/changes/{id}")).body["status"],
        "applied"
    );
    let r = c.change(&body);
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
    let stats = t.sim.stats();
    assert_eq!(stats.applied_total, 1);
    assert_eq!(stats.faults_injected.lost_answers, 1);
}

#[test]
fn rate_limiting_answers_429_with_retry_after() {
    let t = TestSim::start();
    let c = t.client();
    t.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_s: 7,
        ..Faults::none()
    });
    let r = c.get("/v1/health");
    r.assert_error(429, "rate_limited");
    assert_eq!(r.header("Retry-After"), Some("7"));
}

#[test]
fn down_closes_every_request_but_the_control_api_answers() {
    let t = TestSim::start();
    let c = t.client();
    let r = c.control("PUT", "/_sim/faults", Some(r#"{"down":true}"#));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["down"], true);
    assert!(
        c.send("GET", "/v1/health", b"", &Signing::default(), &[])
            .is_err()
    );
    assert!(c.try_change(&resident_change(&new_id())).is_err());
    assert_eq!(c.control("GET", "/_sim/faults", None).body["down"], true);
    c.control("PUT", "/_sim/faults", Some("{}"));
    assert_eq!(c.get("/v1/health").status, 200);
}

#[test]
fn a_script_lists_the_next_faults_in_order() {
    let t = TestSim::start();
    let c = t.client();
    t.sim.set_faults(Faults {
        endpoints: vec!["changes".into()],
        script: vec![Injection::LostAnswer, Injection::Error, Injection::Pass],
        ..Faults::none()
    });
    let id = new_id();
    let body = resident_change(&id);
    assert_eq!(c.get("/v1/health").status, 200);
    assert!(c.try_change(&body).is_err());
    assert_eq!(c.change(&body).status, 503);
    let r = c.change(&body);
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
    assert!(t.sim.faults().script.is_empty());
    assert_eq!(t.sim.applied_count(&id), 1);
}

#[test]
fn faults_can_target_endpoints() {
    let t = TestSim::start();
    let c = t.client();
    t.sim.set_faults(Faults {
        error_rate: 1.0,
        endpoints: vec!["lookup".into()],
        ..Faults::none()
    });
    assert_eq!(c.get("/v1/health").status, 200);
    let r = c.post(
        "/v1/customers/lookup",
        &json!({"id_type": "resident", "id_number": "110101199003070011", "name": "张测试"}),
    );
    assert_eq!(r.code(), "unavailable");
}

#[test]
fn a_seed_makes_faults_repeat() {
    let run = || {
        let t = TestSim::start_with(|c| {
            c.faults = Faults {
                error_rate: 0.5,
                seed: Some(42),
                ..Faults::none()
            }
        });
        let c = t.client();
        (0..20)
            .map(|_| c.get("/v1/health").status)
            .collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500), "{a:?}");
}

#[test]
fn faults_are_checked_when_set_over_http() {
    let t = TestSim::start();
    let c = t.client();
    c.control("PUT", "/_sim/faults", Some(r#"{"drop_rate": 3}"#))
        .assert_error(400, "bad_request");
    c.control("PUT", "/_sim/faults", Some(r#"{"nonsense": 1}"#))
        .assert_error(400, "bad_request");
    let r = c.control(
        "PUT",
        "/_sim/faults",
        Some(r#"{"latency_ms": 5, "seed": 1}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(t.sim.faults().latency_ms, 5);
}

#[test]
fn a_pooled_client_recovers_after_a_dropped_connection() {
    let t = TestSim::start();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let url = format!("{}/v1/health", t.sim.base_url());
    for _ in 0..3 {
        assert_eq!(http.get(&url).send().unwrap().status(), 200);
    }
    t.sim.set_faults(Faults {
        script: vec![Injection::Drop],
        ..Faults::none()
    });
    assert!(http.get(&url).send().is_err());
    for _ in 0..3 {
        assert_eq!(http.get(&url).send().unwrap().status(), 200);
    }
}
