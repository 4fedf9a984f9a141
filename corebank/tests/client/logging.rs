//! What the client logs: a debug span per request with method, path
//! template, status and elapsed time; never bodies, ids or personal data.

use std::io::Write;
use std::sync::{Arc, Mutex};

use kiosk_corebank::types::*;
use serde_json::json;

use crate::plain_client;
use crate::server::{Reply, TestServer};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_show_templates_and_statuses_but_no_personal_data() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::start(|r| match r.target.as_str() {
        "/v1/customers/lookup" => Reply::error(422, "name_mismatch"),
        _ => Reply::json(200, json!({"ok": false, "attempts_left": 2})),
    })
    .await;
    let client = plain_client(&server.http_url());
    client
        .lookup(&LookupRequest {
            id_type: IdType::Resident,
            id_number: "11010119800101123X".into(),
            name: "王秘密".into(),
        })
        .await
        .expect_err("422");
    client
        .security_answer("C777888", "答案秘密")
        .await
        .expect("answer");

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/v1/customers/{id}/security-answer"),
        "{logs}"
    );
    assert!(logs.contains("/v1/customers/lookup"), "{logs}");
    assert!(
        logs.contains("status=422") && logs.contains("status=200"),
        "{logs}"
    );
    assert!(logs.contains("elapsed_ms="), "{logs}");
    for secret in ["11010119800101123X", "王秘密", "C777888", "答案秘密"] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
    }
}
