//! `POST /v1/otp` and `POST /v1/otp/{id}/verify`: codes, expiry, the
//! rate limit and the ten-a-day lock (rule P4). Time is moved with the
//! simulator's clock, never slept through.

use std::time::Duration;

use serde_json::json;

use super::*;

const MOBILE: &str = "13912345678";

fn request(c: &Client, customer: &str) -> Resp {
    c.post(
        "/v1/otp",
        &json!({"customer_id": customer, "mobile": MOBILE, "purpose": "mobile_change"}),
    )
}

fn verify(c: &Client, otp_id: &str, code: &str) -> Resp {
    c.post(
        &format!("/v1/otp/{otp_id}/verify"),
        &json!({ "code": code }),
    )
}

/// A code that is not `code`.
fn wrong(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_string()
}

/// Move the simulator's clock and keep the client signing in step.
fn advance(t: &TestSim, c: &mut Client, by: Duration) {
    t.sim.advance_clock(by);
    c.offset_ms = t.sim.clock_advance_ms();
}

#[test]
fn a_code_is_sent_by_sms_and_verified_into_a_proof() {
    let t = TestSim::start();
    let c = t.client();
    let r = request(&c, "C000001");
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["expires_in_s"], 300);
    let otp_id = r.body["otp_id"].as_str().unwrap();
    let code = t.sim.last_sms_code(MOBILE).unwrap();
    assert_eq!(code.len(), 6);
    // The control API shows the same code.
    let sms = c.control("GET", &format!("/_sim/sms?mobile={MOBILE}"), None);
    assert_eq!(sms.body[0]["code"], code.as_str());
    assert_eq!(sms.body[0]["kind"], "otp");

    let r = verify(&c, otp_id, &wrong(&code));
    assert_eq!(r.body, json!({"ok": false, "attempts_left": 9}));
    let r = verify(&c, otp_id, &code);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["ok"], true);
    let proof = r.body["proof"].as_str().unwrap().to_string();
    // Verified again (a lost answer): the same proof.
    assert_eq!(verify(&c, otp_id, &code).body["proof"], proof.as_str());
}

#[test]
fn codes_expire() {
    let t = TestSim::start_with(|c| c.otp_ttl_s = 60);
    let mut c = t.client();
    let r = request(&c, "C000001");
    assert_eq!(r.body["expires_in_s"], 60);
    let otp_id = r.body["otp_id"].as_str().unwrap().to_string();
    let code = t.sim.last_sms_code(MOBILE).unwrap();
    advance(&t, &mut c, Duration::from_secs(61));
    verify(&c, &otp_id, &code).assert_error(410, "expired");
}

#[test]
fn a_new_code_replaces_the_old_one() {
    let t = TestSim::start();
    let mut c = t.client();
    let first = request(&c, "C000001").body["otp_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first_code = t.sim.last_sms_code(MOBILE).unwrap();
    advance(&t, &mut c, Duration::from_secs(31));
    assert_eq!(request(&c, "C000001").status, 201);
    verify(&c, &first, &first_code).assert_error(410, "expired");
}

#[test]
fn codes_asked_too_often_are_rate_limited() {
    let t = TestSim::start();
    let mut c = t.client();
    assert_eq!(request(&c, "C000001").status, 201);
    let r = request(&c, "C000001");
    r.assert_error(429, "rate_limited");
    let after: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=30).contains(&after), "{after}");
    // Another customer is not limited.
    assert_eq!(request(&c, "C000004").status, 201);
    advance(&t, &mut c, Duration::from_secs(after));
    assert_eq!(request(&c, "C000001").status, 201);
}

/// Move the clock to the next 10:00 in Beijing (02:00 UTC), so a test
/// counting "that day" never straddles midnight.
fn advance_to_morning(t: &TestSim, c: &mut Client) {
    let day_ms = 24 * 3600 * 1000;
    let now = t.sim.now_ms();
    let target = now - now.rem_euclid(day_ms) + 2 * 3600 * 1000;
    let target = if target <= now {
        target + day_ms
    } else {
        target
    };
    advance(t, c, Duration::from_millis((target - now) as u64));
}

#[test]
fn ten_wrong_codes_in_a_day_lock_until_the_next_day() {
    let t = TestSim::start();
    let mut c = t.client();
    advance_to_morning(&t, &mut c);
    let r = request(&c, "C000001");
    let otp_id = r.body["otp_id"].as_str().unwrap().to_string();
    let code = t.sim.last_sms_code(MOBILE).unwrap();
    for left in (5..10).rev() {
        assert_eq!(
            verify(&c, &otp_id, &wrong(&code)).body["attempts_left"],
            left
        );
    }
    // Counted per customer across codes.
    advance(&t, &mut c, Duration::from_secs(31));
    let r = request(&c, "C000001");
    let otp_id = r.body["otp_id"].as_str().unwrap().to_string();
    let code = t.sim.last_sms_code(MOBILE).unwrap();
    for left in (0..5).rev() {
        assert_eq!(
            verify(&c, &otp_id, &wrong(&code)).body["attempts_left"],
            left
        );
    }
    verify(&c, &otp_id, &code).assert_error(423, "locked");
    advance(&t, &mut c, Duration::from_secs(31));
    request(&c, "C000001").assert_error(423, "locked");
    assert_eq!(t.sim.customer("C000001").unwrap().otp_failures_today, 10);

    // The next day.
    advance(&t, &mut c, Duration::from_secs(24 * 3600));
    assert_eq!(request(&c, "C000001").status, 201);
}

#[test]
fn otp_refusals() {
    let t = TestSim::start();
    let c = t.client();
    request(&c, "C999999").assert_error(404, "customer_not_found");
    request(&c, "C000104").assert_error(422, "not_allowed");
    c.post(
        "/v1/otp",
        &json!({"customer_id": "C000001", "mobile": "1234", "purpose": "mobile_change"}),
    )
    .assert_error(400, "bad_request");
    c.post(
        "/v1/otp",
        &json!({"customer_id": "C000001", "mobile": MOBILE, "purpose": "login"}),
    )
    .assert_error(400, "bad_request");
    verify(&c, "no-such-otp", "123456").assert_error(404, "otp_not_found");
}
