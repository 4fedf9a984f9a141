//! Bodies of every endpoint of `shared/corebank-api.md`.
//!
//! Types that carry personal data (ID numbers, names, phone numbers,
//! answers, codes) print only masked or redacted forms in `Debug`.

use serde::{Deserialize, Serialize};

/// `id_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    Resident,
    ForeignPermanent,
    HkMoTwResidence,
    Temporary,
    Other,
}

/// Every non-2xx answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// `GET /v1/health` → 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub time_ms: i64,
}

/// `POST /v1/customers/lookup` request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRequest {
    pub id_type: IdType,
    pub id_number: String,
    pub name: String,
}

impl std::fmt::Debug for LookupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupRequest")
            .field("id_type", &self.id_type)
            .finish_non_exhaustive()
    }
}

/// The end of a validity period on file: a date `YYYY-MM-DD` or `"long_term"`.
pub const LONG_TERM: &str = "long_term";

/// `POST /v1/customers/lookup` → 200.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub id_type: IdType,
    pub id_number_on_file: String,
    pub id_valid_from: String,
    /// A date or [`LONG_TERM`].
    pub id_valid_until: String,
    pub mobile_masked: String,
    pub security_question: Option<String>,
    pub self_service: SelfService,
    pub tier: String,
}

impl std::fmt::Debug for Customer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Customer")
            .field("customer_id", &self.customer_id)
            .field("id_type", &self.id_type)
            .field("id_valid_until", &self.id_valid_until)
            .field("mobile_masked", &self.mobile_masked)
            .field("self_service", &self.self_service)
            .finish_non_exhaustive()
    }
}

/// What the customer may do at a kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfService {
    pub id_update: bool,
    pub mobile_change: bool,
    pub reason: Option<String>,
}

/// `POST /v1/customers/{customer_id}/security-answer` request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityAnswerRequest {
    pub answer: String,
}

impl std::fmt::Debug for SecurityAnswerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecurityAnswerRequest { answer: <redacted> }")
    }
}

/// `200 {"ok": true}` or `200 {"ok": false, "attempts_left": 1}` (security
/// answer and OTP verification), with `proof` on a verified OTP.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

impl std::fmt::Debug for CheckResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckResult")
            .field("ok", &self.ok)
            .field("attempts_left", &self.attempts_left)
            .field("proof", &self.proof.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `POST /v1/otp` request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpRequest {
    pub customer_id: String,
    pub mobile: String,
    /// `mobile_change`.
    pub purpose: String,
}

impl std::fmt::Debug for OtpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpRequest")
            .field("customer_id", &self.customer_id)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/otp` → 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpIssued {
    pub otp_id: String,
    pub expires_in_s: u64,
}

/// `POST /v1/otp/{otp_id}/verify` request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpVerifyRequest {
    pub code: String,
}

impl std::fmt::Debug for OtpVerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpVerifyRequest { code: <redacted> }")
    }
}

/// Where a change comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub kiosk_id: String,
    pub branch_id: String,
    /// `smart_teller` or `queue_machine`.
    pub channel: String,
}

/// Evidence that the card was read by this kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardEvidence {
    pub sam_id: String,
    pub card_uid: String,
}

/// `kind: "id_validity"` payload.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdValidityChange {
    pub id_type: IdType,
    pub id_number: String,
    pub valid_from: String,
    /// A date or [`LONG_TERM`].
    pub valid_until: String,
    pub issuer: String,
    pub card_evidence: CardEvidence,
}

impl std::fmt::Debug for IdValidityChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdValidityChange")
            .field("id_type", &self.id_type)
            .field("valid_from", &self.valid_from)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

/// `kind: "mobile"` payload.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MobileChange {
    pub new_mobile: String,
    pub otp_proof: String,
    pub notify_old_and_new: bool,
}

impl std::fmt::Debug for MobileChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobileChange")
            .field("notify_old_and_new", &self.notify_old_and_new)
            .finish_non_exhaustive()
    }
}

/// The change's kind and its payload, serialised as the spec's
/// `"kind": "...", "<kind>": {...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    IdValidity { id_validity: IdValidityChange },
    Mobile { mobile: MobileChange },
}

/// `POST /v1/changes` request (also what `GET /v1/changes/{id}` refers to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// A UUID generated when the customer confirmed; also the `Idempotency-Key`.
    pub change_id: String,
    pub customer_id: String,
    pub occurred_at_ms: i64,
    pub source: Source,
    #[serde(flatten)]
    pub kind: ChangeKind,
}

/// Outcome of a change the bank accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// `201`: applied now.
    Applied,
    /// `200`: the record already holds this or newer data; counts as done.
    Superseded,
}

/// `POST /v1/changes` → 201/200, and `GET /v1/changes/{id}` → 200 for a
/// change the bank accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeResult {
    pub status: ChangeStatus,
    pub core_ref: String,
}

/// `GET /v1/changes/{change_id}` → 200: the answer body the core bank gave
/// to the first `POST /v1/changes` with that id, as stored for idempotency:
/// either the accepted result (`{"status", "core_ref"}`) or the error body
/// of a rejection (`{"code", "message"}`). Serialised untagged, i.e. as that
/// body itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredChange {
    Accepted(ChangeResult),
    Rejected(ErrorBody),
}

/// Business rejection codes of `POST /v1/changes` (`422`).
pub mod rejection {
    pub const STALE_CARD: &str = "stale_card";
    pub const DOCUMENT_TYPE_MISMATCH: &str = "document_type_mismatch";
    pub const NAME_MISMATCH: &str = "name_mismatch";
    pub const OTP_PROOF_INVALID: &str = "otp_proof_invalid";
    pub const NOT_ALLOWED: &str = "not_allowed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_request_serialises_as_the_spec_shows() {
        let req = ChangeRequest {
            change_id: "6f1c".into(),
            customer_id: "C000123".into(),
            occurred_at_ms: 1_763_880_000_000,
            source: Source {
                kiosk_id: "K-0101-03".into(),
                branch_id: "0101".into(),
                channel: "smart_teller".into(),
            },
            kind: ChangeKind::Mobile {
                mobile: MobileChange {
                    new_mobile: "13912345678".into(),
                    otp_proof: "p".into(),
                    notify_old_and_new: true,
                },
            },
        };
        let v = serde_json::to_value(&req).expect("serialise");
        assert_eq!(v["kind"], "mobile");
        assert_eq!(v["mobile"]["new_mobile"], "13912345678");
        assert_eq!(v["source"]["channel"], "smart_teller");
        let back: ChangeRequest = serde_json::from_value(v).expect("parse");
        assert_eq!(back, req);
    }

    #[test]
    fn stored_changes_are_the_first_answer_body() {
        let accepted: StoredChange =
            serde_json::from_str(r#"{"status":"superseded","core_ref":"R1"}"#).expect("parse");
        assert_eq!(
            accepted,
            StoredChange::Accepted(ChangeResult {
                status: ChangeStatus::Superseded,
                core_ref: "R1".into()
            })
        );
        let rejected: StoredChange =
            serde_json::from_str(r#"{"code":"stale_card","message":"older card"}"#).expect("parse");
        assert!(matches!(rejected, StoredChange::Rejected(ref e) if e.code == "stale_card"));
        assert_eq!(
            serde_json::to_value(&rejected).expect("serialise"),
            serde_json::json!({"code":"stale_card","message":"older card"})
        );
        assert!(
            serde_json::from_str::<StoredChange>(r#"{"status":"weird","core_ref":"x"}"#).is_err()
        );
    }

    #[test]
    fn spec_example_lookup_answer_parses() {
        let text = r#"{"customer_id": "C000123", "name": "张三", "id_type": "resident",
            "id_number_on_file": "110101800101123", "id_valid_from": "2010-03-01", "id_valid_until": "2020-03-01",
            "mobile_masked": "138****5678", "security_question": "我母亲的名字?",
            "self_service": {"id_update": true, "mobile_change": true, "reason": null}, "tier": "standard"}"#;
        let c: Customer = serde_json::from_str(text).expect("parse");
        assert_eq!(c.id_type, IdType::Resident);
        assert!(!format!("{c:?}").contains("张三"));
        assert!(!format!("{c:?}").contains("110101800101123"));
    }
}
