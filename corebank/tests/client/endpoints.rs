//! Every endpoint: what goes on the wire (method, path, headers, body,
//! signature over the exact bytes) and what comes back.

use kiosk_corebank::types::*;
use kiosk_corebank::{StoredChange, SubmitOutcome};
use serde_json::json;

use crate::server::{KIOSK_ID, Reply, TestServer};
use crate::{now_ms, plain_client};

/// Headers every request must carry, and a valid signature.
fn assert_signed(r: &crate::server::Recorded) {
    assert!(
        r.signature_ok,
        "signature must verify over the received bytes"
    );
    assert_eq!(r.header("x-kiosk-id"), Some(KIOSK_ID));
    let ts: i64 = r
        .header("x-timestamp")
        .expect("X-Timestamp")
        .parse()
        .expect("X-Timestamp is Unix ms");
    assert!((ts - now_ms()).abs() < 10_000, "X-Timestamp is now, in ms");
    let nonce = r.header("x-nonce").expect("X-Nonce");
    assert!(
        nonce.len() >= 32 && hex::decode(nonce).is_ok(),
        "16+ bytes hex"
    );
    let sig = r.header("x-signature").expect("X-Signature");
    assert_eq!(sig.len(), 64);
    assert!(
        sig.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "lowercase hex"
    );
}

fn assert_json_post(r: &crate::server::Recorded, target: &str) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, target);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_signed(r);
}

fn sample_change() -> ChangeRequest {
    ChangeRequest {
        change_id: "6f1c0a52-8a34-4d0e-9c43-2b1f9d1e5a77".into(),
        customer_id: "C000123".into(),
        occurred_at_ms: 1_763_880_000_000,
        source: Source {
            kiosk_id: KIOSK_ID.into(),
            branch_id: "0101".into(),
            channel: "smart_teller".into(),
        },
        kind: ChangeKind::IdValidity {
            id_validity: IdValidityChange {
                id_type: IdType::Resident,
                id_number: "11010119800101123X".into(),
                valid_from: "2020-03-01".into(),
                valid_until: "2040-03-01".into(),
                issuer: "北京市公安局东城分局".into(),
                card_evidence: CardEvidence {
                    sam_id: "05.01-20101010-0000001-1234567890".into(),
                    card_uid: "0102030405060708".into(),
                },
            },
        },
    }
}

#[tokio::test]
async fn health_is_a_signed_get_without_body() {
    let mut server =
        TestServer::start(|_| Reply::json(200, json!({"status": "ok", "time_ms": now_ms()}))).await;
    let client = plain_client(&server.http_url());
    let info = client.health().await.expect("health");
    let r = server.next_request().await;
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/v1/health");
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length").unwrap_or("0"), "0");
    assert_signed(&r);
    assert_eq!(info.status, "ok");
    assert!(info.skew_ms.abs() < 2_000, "same clock: {info:?}");
    assert!(!info.skew_exceeds_limit);
    assert!(!info.beyond_server_window());
}

#[tokio::test]
async fn health_measures_clock_skew() {
    // The server's clock is 400 s ahead of the kiosk's.
    let server = TestServer::start(|_| {
        Reply::json(200, json!({"status": "ok", "time_ms": now_ms() + 400_000}))
    })
    .await;
    let info = plain_client(&server.http_url())
        .health()
        .await
        .expect("health");
    assert!((info.skew_ms - 400_000).abs() < 2_000, "{info:?}");
    assert!(info.skew_exceeds_limit);
    assert!(info.beyond_server_window());

    // 90 s behind: over the configured 60 s, within the server's 300 s.
    let server = TestServer::start(|_| {
        Reply::json(200, json!({"status": "ok", "time_ms": now_ms() - 90_000}))
    })
    .await;
    let info = plain_client(&server.http_url())
        .health()
        .await
        .expect("health");
    assert!((info.skew_ms + 90_000).abs() < 2_000, "{info:?}");
    assert!(info.skew_exceeds_limit);
    assert!(!info.beyond_server_window());
}

#[tokio::test]
async fn lookup_posts_the_card_data_and_parses_the_customer() {
    let mut server = TestServer::start(|_| {
        Reply::json(
            200,
            json!({"customer_id": "C000123", "name": "张三", "id_type": "resident",
                   "id_number_on_file": "110101800101123",
                   "id_valid_from": "2010-03-01", "id_valid_until": "long_term",
                   "mobile_masked": "138****5678", "security_question": null,
                   "self_service": {"id_update": true, "mobile_change": false, "reason": "minor"},
                   "tier": "standard"}),
        )
    })
    .await;
    let client = plain_client(&server.http_url());
    let request = LookupRequest {
        id_type: IdType::Resident,
        id_number: "11010119800101123X".into(),
        name: "张三".into(),
    };
    let customer = client.lookup(&request).await.expect("lookup");
    let r = server.next_request().await;
    assert_json_post(&r, "/v1/customers/lookup");
    assert_eq!(
        r.json(),
        json!({"id_type": "resident", "id_number": "11010119800101123X", "name": "张三"})
    );
    assert_eq!(customer.customer_id, "C000123");
    assert_eq!(customer.id_valid_until, LONG_TERM);
    assert_eq!(customer.security_question, None);
    assert_eq!(customer.self_service.reason.as_deref(), Some("minor"));
}

#[tokio::test]
async fn security_answer_goes_to_the_customers_path() {
    let mut server =
        TestServer::start(|_| Reply::json(200, json!({"ok": false, "attempts_left": 1}))).await;
    let client = plain_client(&server.http_url());
    let result = client
        .security_answer("C000123", "李四")
        .await
        .expect("answer");
    let r = server.next_request().await;
    assert_json_post(&r, "/v1/customers/C000123/security-answer");
    assert_eq!(r.json(), json!({"answer": "李四"}));
    assert!(!result.ok);
    assert_eq!(result.attempts_left, Some(1));
}

#[tokio::test]
async fn ids_in_paths_are_percent_encoded_and_signed_as_sent() {
    let mut server = TestServer::start(|_| Reply::json(200, json!({"ok": true}))).await;
    let client = plain_client(&server.http_url());
    client
        .security_answer("C 1/../2?x#y", "a")
        .await
        .expect("answer");
    let r = server.next_request().await;
    assert_eq!(
        r.target,
        "/v1/customers/C%201%2F..%2F2%3Fx%23y/security-answer"
    );
    assert!(r.signature_ok);

    let err = client
        .security_answer("..", "a")
        .await
        .expect_err("dot segment");
    assert!(
        matches!(err, kiosk_corebank::CoreBankError::InvalidRequest(_)),
        "{err:?}"
    );
    let err = client.get_change("").await.expect_err("empty id");
    assert!(
        matches!(err, kiosk_corebank::CoreBankError::InvalidRequest(_)),
        "{err:?}"
    );
    assert!(server.received().is_empty(), "nothing sent for invalid ids");
}

#[tokio::test]
async fn otp_request_and_verification() {
    let mut server = TestServer::start(|r| {
        if r.target == "/v1/otp" {
            Reply::json(201, json!({"otp_id": "OTP-77", "expires_in_s": 300}))
        } else {
            Reply::json(200, json!({"ok": true, "proof": "PROOF-1"}))
        }
    })
    .await;
    let client = plain_client(&server.http_url());
    let issued = client
        .request_otp(&OtpRequest {
            customer_id: "C000123".into(),
            mobile: "13912345678".into(),
            purpose: "mobile_change".into(),
        })
        .await
        .expect("otp");
    let r = server.next_request().await;
    assert_json_post(&r, "/v1/otp");
    assert_eq!(
        r.json(),
        json!({"customer_id": "C000123", "mobile": "13912345678", "purpose": "mobile_change"})
    );
    assert_eq!(
        issued,
        OtpIssued {
            otp_id: "OTP-77".into(),
            expires_in_s: 300
        }
    );

    let checked = client
        .verify_otp(&issued.otp_id, "123456")
        .await
        .expect("verify");
    let r = server.next_request().await;
    assert_json_post(&r, "/v1/otp/OTP-77/verify");
    assert_eq!(r.json(), json!({"code": "123456"}));
    assert!(checked.ok);
    assert_eq!(checked.proof.as_deref(), Some("PROOF-1"));
}

#[tokio::test]
async fn submit_change_sends_the_idempotency_key_and_reads_replays() {
    let first = std::sync::atomic::AtomicBool::new(true);
    let mut server = TestServer::start(move |_| {
        if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            Reply::json(201, json!({"status": "applied", "core_ref": "CB-1"}))
        } else {
            Reply::json(201, json!({"status": "applied", "core_ref": "CB-1"}))
                .with_header("Idempotent-Replayed", "true")
        }
    })
    .await;
    let client = plain_client(&server.http_url());
    let change = sample_change();
    let outcome = client.submit_change(&change).await.expect("submit");
    let r = server.next_request().await;
    assert_json_post(&r, "/v1/changes");
    assert_eq!(r.header("idempotency-key"), Some(change.change_id.as_str()));
    // The body is the change as the spec shows it, byte for byte what
    // serde_json makes of it (and the signature covers those bytes).
    assert_eq!(r.body, serde_json::to_vec(&change).expect("serialise"));
    let body = r.json();
    assert_eq!(body["kind"], "id_validity");
    assert_eq!(body["change_id"], change.change_id.as_str());
    assert_eq!(body["source"]["channel"], "smart_teller");
    assert_eq!(
        body["id_validity"]["card_evidence"]["card_uid"],
        "0102030405060708"
    );
    assert_eq!(
        outcome,
        SubmitOutcome {
            result: ChangeResult {
                status: ChangeStatus::Applied,
                core_ref: "CB-1".into()
            },
            replayed: false
        }
    );

    let again = client.submit_change(&change).await.expect("submit again");
    let r2 = server.next_request().await;
    assert_eq!(r2.body, r.body, "same body again");
    assert_ne!(r2.header("x-nonce"), r.header("x-nonce"), "fresh nonce");
    assert!(again.replayed);
}

#[tokio::test]
async fn superseded_counts_as_done() {
    let server = TestServer::start(|_| {
        Reply::json(200, json!({"status": "superseded", "core_ref": "CB-9"}))
    })
    .await;
    let mut change = sample_change();
    change.kind = ChangeKind::Mobile {
        mobile: MobileChange {
            new_mobile: "13912345678".into(),
            otp_proof: "PROOF-1".into(),
            notify_old_and_new: true,
        },
    };
    let outcome = plain_client(&server.http_url())
        .submit_change(&change)
        .await
        .expect("submit");
    assert_eq!(outcome.result.status, ChangeStatus::Superseded);
    assert!(!outcome.replayed);
}

#[tokio::test]
async fn get_change_reads_the_stored_answer() {
    let mut server = TestServer::start(|r| match r.target.as_str() {
        "/v1/changes/accepted-1" => {
            Reply::json(200, json!({"status": "applied", "core_ref": "CB-1"}))
        }
        "/v1/changes/rejected-1" => Reply::json(
            200,
            json!({"code": "stale_card", "message": "card older than record"}),
        ),
        _ => Reply::error(404, "change_not_found"),
    })
    .await;
    let client = plain_client(&server.http_url());

    let accepted = client.get_change("accepted-1").await.expect("get");
    let r = server.next_request().await;
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/v1/changes/accepted-1");
    assert!(r.body.is_empty());
    assert_signed(&r);
    assert_eq!(
        accepted,
        Some(StoredChange::Accepted(ChangeResult {
            status: ChangeStatus::Applied,
            core_ref: "CB-1".into()
        }))
    );

    let rejected = client.get_change("rejected-1").await.expect("get");
    assert_eq!(
        rejected,
        Some(StoredChange::Rejected(ErrorBody {
            code: "stale_card".into(),
            message: "card older than record".into()
        }))
    );

    assert_eq!(client.get_change("never-seen").await.expect("get"), None);
}
