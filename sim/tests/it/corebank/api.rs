//! Health, lookups, security answers and the control API.

use kiosk_corebank::Customer;
use kiosk_sim::CardProfile;
use kiosk_sim::corebank::Fixtures;
use kiosk_sim::corebank::fixtures::{ValidUntil, card_valid_until};
use serde_json::json;

use super::*;

fn lookup_body(p: &CardProfile) -> Value {
    json!({
        "id_type": p.identity.card_type.corebank_id_type(),
        "id_number": p.identity.number,
        "name": p.identity.name,
    })
}

#[test]
fn health_answers_with_or_without_a_signature() {
    let t = TestSim::start();
    let c = t.client();
    let r = c.get("/v1/health");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "ok");
    let time = r.body["time_ms"].as_i64().unwrap();
    assert!((time - now_ms()).abs() < 5_000);
    // No headers at all.
    let r = c.control("GET", "/v1/health", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["time_ms"].is_i64());
}

#[test]
fn every_card_profile_finds_its_customer_with_an_older_validity() {
    let t = TestSim::start();
    let c = t.client();
    let fixtures = Fixtures::builtin();
    for p in CardProfile::builtins() {
        let r = c.post("/v1/customers/lookup", &lookup_body(&p));
        assert_eq!(r.status, 200, "{}: {r:?}", p.name);
        let customer: Customer = serde_json::from_value(r.body.clone()).unwrap();
        let expected = fixtures.for_profile(&p.name).unwrap();
        assert_eq!(customer.customer_id, expected.customer_id, "{}", p.name);
        assert_eq!(customer.name, p.identity.name);
        let card_until = card_valid_until(p.identity.valid_until);
        assert!(
            ValidUntil::parse(&customer.id_valid_until) < ValidUntil::parse(&card_until),
            "{}",
            p.name
        );
    }
}

#[test]
fn the_lookup_answer_has_exactly_the_spec_fields() {
    let t = TestSim::start();
    let r = t.client().post(
        "/v1/customers/lookup",
        &lookup_body(&CardProfile::builtin("resident").unwrap()),
    );
    assert_eq!(
        r.body,
        json!({"customer_id": "C000001", "name": "张测试", "id_type": "resident",
               "id_number_on_file": "110101199003070011",
               "id_valid_from": "2010-03-07", "id_valid_until": "2020-03-07",
               "mobile_masked": "138****0001", "security_question": "我母亲的名字?",
               "self_service": {"id_update": true, "mobile_change": true, "reason": null},
               "tier": "standard"})
    );
}

#[test]
fn an_18_digit_card_finds_a_15_digit_number_on_file() {
    // rule I3
    let t = TestSim::start();
    let r = t.client().post(
        "/v1/customers/lookup",
        &lookup_body(&CardProfile::builtin("resident-longterm").unwrap()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["customer_id"], "C000002");
    assert_eq!(r.body["id_number_on_file"], "110102500512002");
}

#[test]
fn a_record_opened_with_a_temporary_id_is_found_with_its_own_type() {
    // rule I5: the kiosk sees the mismatch and refers it to the counter.
    let t = TestSim::start();
    let card = Fixtures::special_card("temporary-on-file").unwrap();
    let r = t.client().post("/v1/customers/lookup", &lookup_body(&card));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["customer_id"], "C000101");
    assert_eq!(r.body["id_type"], "temporary");
}

#[test]
fn lookup_refusals() {
    let t = TestSim::start();
    let c = t.client();
    let card = Fixtures::special_card("name-mismatch").unwrap();
    c.post("/v1/customers/lookup", &lookup_body(&card))
        .assert_error(422, "name_mismatch");
    c.post(
        "/v1/customers/lookup",
        &json!({"id_type": "resident", "id_number": "110101199001010017", "name": "某人"}),
    )
    .assert_error(404, "customer_not_found");
    c.post("/v1/customers/lookup", &json!({"id_type": "resident"}))
        .assert_error(400, "bad_request");
    c.post(
        "/v1/customers/lookup",
        &json!({"id_type": "passport", "id_number": "1", "name": "x"}),
    )
    .assert_error(400, "bad_request");
    // Unknown paths and methods answer {"code","message"} too.
    c.get("/v1/nothing").assert_error(404, "not_found");
    c.get("/v1/customers/lookup")
        .assert_error(405, "method_not_allowed");
}

#[test]
fn restricted_customers_carry_the_banks_reason() {
    // rule P5
    let t = TestSim::start();
    let card = Fixtures::special_card("mobile-restricted").unwrap();
    let r = t.client().post("/v1/customers/lookup", &lookup_body(&card));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["self_service"]["mobile_change"], false);
    assert_eq!(r.body["self_service"]["id_update"], true);
    assert_eq!(
        r.body["self_service"]["reason"],
        "账户冻结 account restricted"
    );
    let card = Fixtures::special_card("no-question").unwrap();
    let r = t.client().post("/v1/customers/lookup", &lookup_body(&card));
    assert_eq!(r.body["security_question"], Value::Null);
}

#[test]
fn three_wrong_security_answers_lock_across_requests() {
    // rule P2
    let t = TestSim::start();
    let c = t.client();
    let path = "/v1/customers/C000001/security-answer";
    let r = c.post(path, &json!({"answer": " 王芳 "}));
    assert_eq!(r.body, json!({"ok": true}));
    for left in [2, 1, 0] {
        let r = c.post(path, &json!({"answer": "错"}));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, json!({"ok": false, "attempts_left": left}));
    }
    // Locked, also for the right answer.
    c.post(path, &json!({"answer": "王芳"}))
        .assert_error(423, "locked");
    assert_eq!(t.sim.customer("C000001").unwrap().security_failures, 3);
    // Lookups now say phone changes are off, and OTPs are refused.
    let r = c.post(
        "/v1/customers/lookup",
        &lookup_body(&CardProfile::builtin("resident").unwrap()),
    );
    assert_eq!(r.body["self_service"]["mobile_change"], false);
    assert!(r.body["self_service"]["reason"].is_string());
    c.post(
        "/v1/otp",
        &json!({"customer_id": "C000001", "mobile": "13912345678", "purpose": "mobile_change"}),
    )
    .assert_error(422, "not_allowed");
}

#[test]
fn security_answer_refusals() {
    let t = TestSim::start();
    let c = t.client();
    c.post(
        "/v1/customers/C000103/security-answer",
        &json!({"answer": "x"}),
    )
    .assert_error(409, "no_security_question");
    c.post(
        "/v1/customers/C999999/security-answer",
        &json!({"answer": "x"}),
    )
    .assert_error(404, "customer_not_found");
    c.post("/v1/customers/C000001/security-answer", &json!({}))
        .assert_error(400, "bad_request");
}

#[test]
fn the_control_api_shows_and_resets_state() {
    let t = TestSim::start();
    let c = t.client();
    assert_eq!(c.change(&resident_change(&new_id())).status, 201);
    let r = c.control("GET", "/_sim/stats", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["applied_total"], 1);
    assert_eq!(r.body["requests"]["changes"], 1);
    let r = c.control("GET", "/_sim/customers/C000001", None);
    assert_eq!(r.body["record"]["valid_until"], "2040-03-07");
    c.control("GET", "/_sim/customers/C999999", None)
        .assert_error(404, "customer_not_found");
    let r = c.control("POST", "/_sim/clock", Some(r#"{"advance_ms":60000}"#));
    assert_eq!(r.body["advance_ms"], 60000);
    assert_eq!(t.sim.clock_advance_ms(), 60_000);
    let r = c.control("POST", "/_sim/reset", None);
    assert_eq!(r.status, 200);
    assert_eq!(t.sim.stats().applied_total, 0);
    assert_eq!(
        t.sim.customer("C000001").unwrap().record.valid_until,
        "2020-03-07"
    );
}

#[test]
fn synthetic_customers_are_found() {
    let t = TestSim::start_with(|c| c.synthetic = 1000);
    let s = kiosk_sim::corebank::fixtures::synthetic_customer(999);
    let r = t.client().post(
        "/v1/customers/lookup",
        &json!({"id_type": "resident", "id_number": s.id_number, "name": s.name}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["customer_id"], "S001000");
}
