//! Signatures, timestamps and nonces: every failure is `401 bad_signature`.

use kiosk_sim::corebank::Faults;
use serde_json::json;

use super::*;

const LOOKUP: &str = "/v1/customers/lookup";

fn lookup_bytes() -> Vec<u8> {
    serde_json::to_vec(
        &json!({"id_type": "resident", "id_number": "110101199003070011", "name": "张测试"}),
    )
    .unwrap()
}

fn post_lookup(c: &Client, signing: &Signing) -> Resp {
    c.send("POST", LOOKUP, &lookup_bytes(), signing, &[])
        .unwrap()
}

#[test]
fn a_correct_signature_is_accepted() {
    let t = TestSim::start();
    let r = post_lookup(&t.client(), &Signing::default());
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_wrong_key_is_refused() {
    let t = TestSim::start();
    let signing = Signing {
        key: SigningKey::new(b"another key".to_vec()),
        ..Signing::default()
    };
    post_lookup(&t.client(), &signing).assert_error(401, "bad_signature");
    assert_eq!(t.sim.stats().bad_signatures, 1);
}

#[test]
fn a_tampered_body_is_refused() {
    let t = TestSim::start();
    let signing = Signing {
        body: Some(b"{\"id_type\":\"resident\"}".to_vec()),
        ..Signing::default()
    };
    post_lookup(&t.client(), &signing).assert_error(401, "bad_signature");
}

#[test]
fn a_signature_for_another_path_is_refused() {
    let t = TestSim::start();
    let signing = Signing {
        path: Some("/v1/otp".into()),
        ..Signing::default()
    };
    post_lookup(&t.client(), &signing).assert_error(401, "bad_signature");
}

#[test]
fn the_query_string_is_not_signed() {
    let t = TestSim::start();
    let r = t
        .client()
        .send(
            "POST",
            "/v1/customers/lookup?x=1",
            &lookup_bytes(),
            &Signing::default(),
            &[],
        )
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn stale_and_future_timestamps_are_refused() {
    let t = TestSim::start();
    let c = t.client();
    for off in [-301_000, 301_000] {
        let signing = Signing {
            timestamp_ms: Some(now_ms() + off),
            ..Signing::default()
        };
        let r = post_lookup(&c, &signing);
        r.assert_error(401, "bad_signature");
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .starts_with("clock skew"),
            "{r:?}"
        );
    }
    // Inside the window.
    let signing = Signing {
        timestamp_ms: Some(now_ms() - 290_000),
        ..Signing::default()
    };
    assert_eq!(post_lookup(&c, &signing).status, 200);
}

#[test]
fn a_skewed_server_clock_refuses_a_correct_kiosk_clock() {
    let t = TestSim::start();
    let mut c = t.client();
    t.sim.set_faults(Faults {
        clock_skew_ms: 400_000,
        ..Faults::none()
    });
    post_lookup(&c, &Signing::default()).assert_error(401, "bad_signature");
    // Health shows the skew; a client that follows it is accepted.
    let server = c.get("/v1/health").body["time_ms"].as_i64().unwrap();
    let skew = server - now_ms();
    assert!((395_000..405_000).contains(&skew), "{skew}");
    c.offset_ms = skew;
    assert_eq!(post_lookup(&c, &Signing::default()).status, 200);
}

#[test]
fn a_replayed_nonce_is_refused() {
    let t = TestSim::start();
    let c = t.client();
    let signing = Signing {
        nonce: Some(new_id()),
        timestamp_ms: Some(now_ms()),
        ..Signing::default()
    };
    assert_eq!(post_lookup(&c, &signing).status, 200);
    let r = post_lookup(&c, &signing);
    r.assert_error(401, "bad_signature");
    assert!(r.body["message"].as_str().unwrap().contains("nonce"));
}

#[test]
fn short_or_non_hex_nonces_are_refused() {
    let t = TestSim::start();
    let c = t.client();
    for nonce in ["00112233445566778899aabbccddee", &"zz".repeat(16)] {
        let signing = Signing {
            nonce: Some(nonce.to_string()),
            ..Signing::default()
        };
        post_lookup(&c, &signing).assert_error(401, "bad_signature");
    }
}

#[test]
fn missing_headers_are_refused() {
    let t = TestSim::start();
    let c = t.client();
    let signing = Signing {
        kiosk: None,
        ..Signing::default()
    };
    post_lookup(&c, &signing).assert_error(401, "bad_signature");
    c.control("POST", LOOKUP, Some("{}"))
        .assert_error(401, "bad_signature");
}

#[test]
fn kiosks_off_the_allow_list_are_refused() {
    let t = TestSim::start_with(|c| c.allowed_kiosks = Some(vec!["K-9999-01".into()]));
    let c = t.client();
    post_lookup(&c, &Signing::default()).assert_error(401, "bad_signature");
    let signing = Signing {
        kiosk: Some("K-9999-01".into()),
        ..Signing::default()
    };
    assert_eq!(post_lookup(&c, &signing).status, 200);
}

#[test]
fn the_key_can_come_from_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("corebank.key");
    std::fs::write(
        &key_file,
        format!("{}\n", hex::encode(b"corebank-sim-test-key-0123456789")),
    )
    .unwrap();
    let t = TestSim::start_with(|c| c.key = kiosk_sim::corebank::KeySource::File(key_file));
    assert_eq!(post_lookup(&t.client(), &Signing::default()).status, 200);
}
