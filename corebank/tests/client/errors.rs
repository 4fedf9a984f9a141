//! How answers and transport failures are classified: transient, ambiguous,
//! final, needing attention.

use std::sync::Mutex;
use std::time::Duration;

use kiosk_corebank::CoreBankError;
use kiosk_corebank::types::*;
use serde_json::json;

use crate::server::{Reply, TestServer};
use crate::{now_ms, plain_client};

fn change() -> ChangeRequest {
    ChangeRequest {
        change_id: "2d7c9a1e-0c55-4b8e-a0f1-0e1f5c7a9b31".into(),
        customer_id: "C000123".into(),
        occurred_at_ms: 1_763_880_000_000,
        source: Source {
            kiosk_id: "K-0101-03".into(),
            branch_id: "0101".into(),
            channel: "queue_machine".into(),
        },
        kind: ChangeKind::Mobile {
            mobile: MobileChange {
                new_mobile: "13912345678".into(),
                otp_proof: "P".into(),
                notify_old_and_new: true,
            },
        },
    }
}

/// The error `POST /v1/changes` gives when the server answers `reply`.
async fn submit_error(reply: Reply) -> CoreBankError {
    let server = TestServer::start(move |_| reply.clone()).await;
    plain_client(&server.http_url())
        .submit_change(&change())
        .await
        .expect_err("an error")
}

#[tokio::test]
async fn server_errors_are_transient_and_ambiguous() {
    let e = submit_error(Reply::error(500, "internal")).await;
    assert_eq!(
        e,
        CoreBankError::Server {
            status: 500,
            code: Some("internal".into())
        }
    );
    assert!(e.is_transient() && e.is_ambiguous() && !e.is_final());

    let e = submit_error(Reply::Respond {
        status: 503,
        headers: vec![],
        body: b"<html>busy</html>".to_vec(),
    })
    .await;
    assert_eq!(
        e,
        CoreBankError::Server {
            status: 503,
            code: None
        }
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let e = submit_error(Reply::error(429, "rate_limited").with_header("Retry-After", "7")).await;
    assert_eq!(
        e,
        CoreBankError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(e.is_transient() && !e.is_ambiguous());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    let e = submit_error(Reply::error(429, "rate_limited")).await;
    assert_eq!(e, CoreBankError::RateLimited { retry_after: None });
}

#[tokio::test]
async fn in_progress_is_transient_and_conflict_is_final_and_loud() {
    let e = submit_error(Reply::error(409, "in_progress")).await;
    assert_eq!(e, CoreBankError::InProgress);
    assert!(e.is_transient() && !e.is_ambiguous() && !e.is_final());

    let e = submit_error(Reply::error(409, "idempotency_conflict")).await;
    assert_eq!(
        e,
        CoreBankError::Conflict {
            code: "idempotency_conflict".into()
        }
    );
    assert!(!e.is_transient() && e.is_final() && e.needs_attention());
}

#[tokio::test]
async fn business_rejections_are_final() {
    let e = submit_error(Reply::json(
        422,
        json!({"code": "stale_card", "message": "older card", "extra": 1}),
    ))
    .await;
    assert_eq!(
        e,
        CoreBankError::Rejected {
            status: 422,
            code: "stale_card".into(),
            message: "older card".into()
        }
    );
    assert!(e.is_final() && !e.is_transient() && !e.is_ambiguous() && !e.needs_attention());
    assert_eq!(e.code(), Some("stale_card"));
    assert!(e.to_string().contains("stale_card"));

    let e = submit_error(Reply::error(400, "bad_request")).await;
    assert!(
        matches!(e, CoreBankError::Rejected { status: 400, .. }),
        "{e:?}"
    );
    assert!(e.is_final() && e.needs_attention());
}

#[tokio::test]
async fn locked_expired_not_found() {
    let server = TestServer::start(|r| match r.target.as_str() {
        "/v1/otp/o1/verify" => Reply::error(410, "expired"),
        "/v1/customers/lookup" => Reply::error(404, "customer_not_found"),
        _ => Reply::error(423, "locked"),
    })
    .await;
    let client = plain_client(&server.http_url());
    let e = client
        .verify_otp("o1", "000000")
        .await
        .expect_err("expired");
    assert_eq!(e, CoreBankError::Expired);
    assert!(e.is_final());
    let e = client.security_answer("C1", "x").await.expect_err("locked");
    assert_eq!(e, CoreBankError::Locked);
    assert!(e.is_final() && !e.is_transient());
    let e = client
        .lookup(&LookupRequest {
            id_type: IdType::Resident,
            id_number: "1".into(),
            name: "n".into(),
        })
        .await
        .expect_err("not found");
    assert_eq!(
        e,
        CoreBankError::NotFound {
            code: "customer_not_found".into()
        }
    );
    assert!(e.is_final());
}

#[tokio::test]
async fn bad_signature_with_agreeing_clocks_is_final() {
    let mut server = TestServer::start(|r| match r.target.as_str() {
        "/v1/health" => Reply::json(200, json!({"status": "ok", "time_ms": now_ms()})),
        _ => Reply::error(401, "bad_signature"),
    })
    .await;
    let client = plain_client(&server.http_url());
    let e = client.security_answer("C1", "x").await.expect_err("401");
    let CoreBankError::BadSignature {
        clock_skew_suspected,
        skew_ms,
    } = e
    else {
        panic!("{e:?}")
    };
    assert!(!clock_skew_suspected);
    assert!(skew_ms.expect("measured").abs() < 2_000);
    assert!(e.is_final() && !e.is_transient() && e.needs_attention());
    assert!(e.to_string().contains("key_file"), "{e}");
    // The 401, then the clock check.
    let targets: Vec<String> = server.received().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/v1/customers/C1/security-answer", "/v1/health"]);
}

#[tokio::test]
async fn bad_signature_from_clock_skew_is_reported_loudly() {
    // The health check answers (this server does not check timestamps on it).
    let server = TestServer::start(|r| match r.target.as_str() {
        "/v1/health" => Reply::json(200, json!({"status": "ok", "time_ms": now_ms() - 400_000})),
        _ => Reply::error(401, "bad_signature"),
    })
    .await;
    let e = plain_client(&server.http_url())
        .submit_change(&change())
        .await
        .expect_err("401");
    let CoreBankError::BadSignature {
        clock_skew_suspected,
        skew_ms,
    } = e
    else {
        panic!("{e:?}")
    };
    assert!(clock_skew_suspected);
    assert!((skew_ms.expect("measured") + 400_000).abs() < 2_000);
    assert!(e.is_transient() && !e.is_final());
    let text = e.to_string();
    assert!(
        text.contains("CLOCK SKEW") && text.contains("ahead of"),
        "{text}"
    );

    // The health check is refused too (the server checks every timestamp):
    // the 401's Date header tells the skew.
    let date = chrono::DateTime::from_timestamp_millis(now_ms() + 600_000)
        .expect("date")
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let server =
        TestServer::start(move |_| Reply::error(401, "bad_signature").with_header("Date", &date))
            .await;
    let e = plain_client(&server.http_url())
        .get_change("c1")
        .await
        .expect_err("401");
    let CoreBankError::BadSignature {
        clock_skew_suspected,
        skew_ms,
    } = e
    else {
        panic!("{e:?}")
    };
    assert!(clock_skew_suspected);
    assert!((skew_ms.expect("from Date") - 600_000).abs() < 3_000);
    assert!(e.to_string().contains("behind"), "{e}");
}

#[tokio::test]
async fn unexpected_answers_are_protocol_errors_without_personal_data() {
    // A 2xx whose body is not understood: the change may have been applied.
    let e = submit_error(Reply::json(
        201,
        json!({"status": "done", "core_ref": 13912345678_u64}),
    ))
    .await;
    assert!(
        matches!(
            e,
            CoreBankError::Protocol {
                status: Some(201),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_ambiguous() && !e.is_transient() && !e.is_final() && e.needs_attention());
    assert!(!e.to_string().contains("13912345678"), "{e}");

    let server =
        TestServer::start(|_| Reply::json(200, json!({"customer_id": 5, "name": "张三秘密"})))
            .await;
    let e = plain_client(&server.http_url())
        .lookup(&LookupRequest {
            id_type: IdType::Resident,
            id_number: "1".into(),
            name: "n".into(),
        })
        .await
        .expect_err("bad answer");
    assert!(!format!("{e} {e:?}").contains("张三秘密"), "{e}");

    // Redirects are not followed (they would change the signed path).
    let e = submit_error(Reply::Respond {
        status: 307,
        headers: vec![("Location".into(), "/v2/changes".into())],
        body: vec![],
    })
    .await;
    assert!(
        matches!(
            e,
            CoreBankError::Protocol {
                status: Some(307),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_ambiguous());
}

#[tokio::test]
async fn timeout_after_sending_is_ambiguous() {
    let mut server = TestServer::start(|_| Reply::Hang).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = crate::plain_config(&server.http_url(), &dir);
    config.request_timeout_ms = 300;
    let client = kiosk_corebank::CoreBankClient::new(&config, "K-0101-03").expect("client");
    let e = client.submit_change(&change()).await.expect_err("timeout");
    assert_eq!(e, CoreBankError::Timeout { sent: true });
    assert!(e.is_transient() && e.is_ambiguous());
    // It did reach the server.
    assert_eq!(server.next_request().await.target, "/v1/changes");
}

#[tokio::test]
async fn refused_connection_is_unreachable_and_not_ambiguous() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let e = plain_client(&format!("http://{addr}"))
        .submit_change(&change())
        .await
        .expect_err("refused");
    assert!(matches!(e, CoreBankError::Unreachable { .. }), "{e:?}");
    assert!(e.is_transient() && !e.is_ambiguous() && !e.is_final());
}

#[tokio::test]
async fn connection_lost_after_sending_is_ambiguous() {
    // Closed mid-answer: the head says 201, the body is cut short.
    let e = submit_error(Reply::Truncated {
        status: 201,
        body: br#"{"status":"app"#.to_vec(),
    })
    .await;
    assert!(
        matches!(e, CoreBankError::ConnectionLost { sent: true, .. }),
        "{e:?}"
    );
    assert!(e.is_transient() && e.is_ambiguous());

    // Closed without any answer.
    let e = submit_error(Reply::Close).await;
    assert!(
        matches!(e, CoreBankError::ConnectionLost { sent: true, .. }),
        "{e:?}"
    );
    assert!(e.is_ambiguous());
}

#[tokio::test]
async fn every_request_gets_a_fresh_nonce() {
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let server = TestServer::start(move |r| {
        seen2
            .lock()
            .unwrap()
            .push(r.header("x-nonce").unwrap_or_default().to_owned());
        Reply::json(200, json!({"status": "ok", "time_ms": now_ms()}))
    })
    .await;
    let client = plain_client(&server.http_url());
    for _ in 0..5 {
        client.health().await.expect("health");
    }
    let mut nonces = seen.lock().unwrap().clone();
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 5);
}
