//! The core-bank simulator through HTTP, as a kiosk (or a test) sees it:
//! a small signed client over reqwest, one module per concern.

mod api;
mod auth;
mod changes;
mod faults;
mod interop;
mod otp;
mod restart;

use std::time::Duration;

use kiosk_corebank::{
    CardEvidence, ChangeKind, ChangeRequest, IdType, IdValidityChange, MobileChange, SigningKey,
    Source,
};
use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim};
use reqwest::Method;
use reqwest::blocking::Client as Http;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tempfile::TempDir;

pub const KIOSK: &str = "K-0101-03";

pub fn key() -> SigningKey {
    SigningKey::new(b"corebank-sim-test-key-0123456789".to_vec())
}

/// A simulator on a fresh database in a temporary directory.
pub struct TestSim {
    pub sim: CoreBankSim,
    pub dir: TempDir,
}

impl TestSim {
    pub fn start() -> TestSim {
        TestSim::start_with(|_| {})
    }

    pub fn start_with(f: impl FnOnce(&mut CoreBankConfig)) -> TestSim {
        let dir = tempfile::tempdir().unwrap();
        let mut config = CoreBankConfig::new(dir.path().join("corebank.sqlite"), key());
        f(&mut config);
        let sim = CoreBankSim::start(config).unwrap();
        TestSim { sim, dir }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.sim.base_url())
    }
}

/// What came back.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A non-2xx answer must carry `{"code","message"}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.code(), code, "{self:?}");
        assert!(self.body["message"].is_string(), "no message: {self:?}");
    }
}

/// How to sign one request; every field can be spoiled by a test.
#[derive(Debug, Clone)]
pub struct Signing {
    pub key: SigningKey,
    pub kiosk: Option<String>,
    /// Unix ms; default: the machine's clock + the client's offset.
    pub timestamp_ms: Option<i64>,
    pub nonce: Option<String>,
    /// Sign this path instead of the one requested.
    pub path: Option<String>,
    /// Sign this body instead of the one sent.
    pub body: Option<Vec<u8>>,
}

impl Default for Signing {
    fn default() -> Signing {
        Signing {
            key: key(),
            kiosk: Some(KIOSK.into()),
            timestamp_ms: None,
            nonce: None,
            path: None,
            body: None,
        }
    }
}

/// A signed client, one fresh connection per request (so a dropped
/// connection is seen as such, never retried on a pooled one).
pub struct Client {
    http: Http,
    base: String,
    /// Added to the machine's clock when signing (a kiosk whose clock is
    /// off, or one following a simulator whose clock was advanced).
    pub offset_ms: i64,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Client {
    pub fn new(base: &str) -> Client {
        let http = Http::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Client {
            http,
            base: base.to_string(),
            offset_ms: 0,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, b"", &Signing::default(), &[])
            .unwrap()
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_with(path, body, &[])
    }

    pub fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send("POST", path, &bytes, &Signing::default(), headers)
            .unwrap()
    }

    /// POST a change with its idempotency key.
    pub fn change(&self, body: &Value) -> Resp {
        self.try_change(body).unwrap()
    }

    pub fn try_change(&self, body: &Value) -> reqwest::Result<Resp> {
        let key = body["change_id"].as_str().unwrap().to_string();
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(
            "POST",
            "/v1/changes",
            &bytes,
            &Signing::default(),
            &[("Idempotency-Key", &key)],
        )
    }

    /// Send one request, signed as `signing` says.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        signing: &Signing,
        headers: &[(&str, &str)],
    ) -> reqwest::Result<Resp> {
        let ts = signing
            .timestamp_ms
            .unwrap_or_else(|| now_ms() + self.offset_ms)
            .to_string();
        let nonce = signing
            .nonce
            .clone()
            .unwrap_or_else(kiosk_corebank::signing::new_nonce);
        let signed_path = signing
            .path
            .clone()
            .unwrap_or_else(|| path.split('?').next().unwrap().to_string());
        let signed_body = signing.body.as_deref().unwrap_or(body);
        let sig = signing
            .key
            .sign(method, &signed_path, &ts, &nonce, signed_body);
        let mut req = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("X-Timestamp", ts)
            .header("X-Nonce", nonce)
            .header("X-Signature", sig.0);
        if let Some(k) = &signing.kiosk {
            req = req.header("X-Kiosk-Id", k);
        }
        if method != "GET" {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_vec());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text()?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// An unsigned request (control API).
    pub fn control(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let mut req = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.base),
        );
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }
}

pub fn new_id() -> String {
    kiosk_corebank::signing::new_nonce()
}

pub fn source() -> Source {
    Source {
        kiosk_id: KIOSK.into(),
        branch_id: "0101".into(),
        channel: "smart_teller".into(),
    }
}

/// An `id_validity` change as the kiosk builds it.
pub fn validity_change(
    change_id: &str,
    customer: &str,
    id_type: IdType,
    number: &str,
    from: &str,
    until: &str,
) -> Value {
    serde_json::to_value(ChangeRequest {
        change_id: change_id.into(),
        customer_id: customer.into(),
        occurred_at_ms: 1_763_880_000_000,
        source: source(),
        kind: ChangeKind::IdValidity {
            id_validity: IdValidityChange {
                id_type,
                id_number: number.into(),
                valid_from: from.into(),
                valid_until: until.into(),
                issuer: "北京市公安局东城分局".into(),
                card_evidence: CardEvidence {
                    sam_id: "05.01-20240101-0000001-1234567890".into(),
                    card_uid: "5A01000000000001".into(),
                },
            },
        },
    })
    .unwrap()
}

/// The resident card's change for C000001 (applies on a fresh simulator).
pub fn resident_change(change_id: &str) -> Value {
    validity_change(
        change_id,
        "C000001",
        IdType::Resident,
        "110101199003070011",
        "2020-03-07",
        "2040-03-07",
    )
}

/// A `mobile` change.
pub fn mobile_change(change_id: &str, customer: &str, new_mobile: &str, proof: &str) -> Value {
    serde_json::to_value(ChangeRequest {
        change_id: change_id.into(),
        customer_id: customer.into(),
        occurred_at_ms: 1_763_880_000_000,
        source: source(),
        kind: ChangeKind::Mobile {
            mobile: MobileChange {
                new_mobile: new_mobile.into(),
                otp_proof: proof.into(),
                notify_old_and_new: true,
            },
        },
    })
    .unwrap()
}

/// Ask for a code for `mobile`, read it from the outbox, verify it: the proof.
pub fn otp_proof(t: &TestSim, c: &Client, customer: &str, mobile: &str) -> String {
    let r = c.post(
        "/v1/otp",
        &serde_json::json!({"customer_id": customer, "mobile": mobile, "purpose": "mobile_change"}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let otp_id = r.body["otp_id"].as_str().unwrap().to_string();
    let code = t.sim.last_sms_code(mobile).expect("a code was sent");
    let r = c.post(
        &format!("/v1/otp/{otp_id}/verify"),
        &serde_json::json!({ "code": code }),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["ok"], true, "{r:?}");
    r.body["proof"].as_str().unwrap().to_string()
}
