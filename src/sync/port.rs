//! [`CoreBankPort`] over the real client, `kiosk_corebank::CoreBankClient`:
//! each call answered as an [`Outcome`].

use kiosk_corebank::{ChangeRequest, CoreBankClient};

use super::{CoreBankPort, Outcome};

impl CoreBankPort for CoreBankClient {
    async fn submit(&self, change: &ChangeRequest) -> Outcome {
        Outcome::from_submit(self.submit_change(change).await)
    }

    async fn get_change(&self, change_id: &str) -> Outcome {
        Outcome::from_get(CoreBankClient::get_change(self, change_id).await)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kiosk_corebank::{
        ChangeResult, ChangeStatus, CoreBankError, ErrorBody, StoredChange, SubmitOutcome,
    };

    use super::*;
    use crate::sync::IDEMPOTENCY_CONFLICT;

    #[test]
    fn answers_map_to_outcomes() {
        let result = ChangeResult {
            status: ChangeStatus::Applied,
            core_ref: "R".into(),
        };
        assert_eq!(
            Outcome::from_submit(Ok(SubmitOutcome {
                result: result.clone(),
                replayed: true
            })),
            Outcome::Accepted {
                result: result.clone(),
                replayed: true
            }
        );
        assert_eq!(
            Outcome::from_get(Ok(Some(StoredChange::Accepted(result.clone())))),
            Outcome::Found(StoredChange::Accepted(result))
        );
        let body = ErrorBody {
            code: "stale_card".into(),
            message: "m".into(),
        };
        assert_eq!(
            Outcome::from_get(Ok(Some(StoredChange::Rejected(body.clone())))),
            Outcome::Found(StoredChange::Rejected(body))
        );
        assert_eq!(Outcome::from_get(Ok(None)), Outcome::NotFound);
    }

    #[test]
    fn errors_map_to_outcomes() {
        use CoreBankError as E;
        let of = Outcome::from_error;
        assert!(matches!(
            of(E::Unreachable {
                reason: "refused".into()
            }),
            Outcome::Transient {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            of(E::Tls {
                reason: "ca".into()
            }),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            of(E::Timeout { sent: false }),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            of(E::Timeout { sent: true }),
            Outcome::Ambiguous { .. }
        ));
        assert!(matches!(
            of(E::ConnectionLost {
                sent: false,
                reason: "x".into()
            }),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            of(E::ConnectionLost {
                sent: true,
                reason: "x".into()
            }),
            Outcome::Ambiguous { .. }
        ));
        assert!(matches!(
            of(E::Server {
                status: 503,
                code: None
            }),
            Outcome::Ambiguous { .. }
        ));
        assert_eq!(
            of(E::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }),
            Outcome::Transient {
                retry_after: Some(Duration::from_secs(3)),
                reason: E::RateLimited {
                    retry_after: Some(Duration::from_secs(3))
                }
                .to_string()
            }
        );
        assert_eq!(of(E::InProgress), Outcome::InProgress);
        assert!(matches!(
            of(E::Conflict {
                code: IDEMPOTENCY_CONFLICT.into()
            }),
            Outcome::Conflict { .. }
        ));
        assert!(matches!(
            of(E::Rejected {
                status: 422,
                code: "stale_card".into(),
                message: "m".into()
            }),
            Outcome::Rejected { status: 422, .. }
        ));
        assert!(matches!(
            of(E::Locked),
            Outcome::Rejected { status: 423, .. }
        ));
        assert!(matches!(
            of(E::NotFound { code: "x".into() }),
            Outcome::Fault { .. }
        ));
        assert!(matches!(
            of(E::BadSignature {
                clock_skew_suspected: true,
                skew_ms: Some(400_000)
            }),
            Outcome::Transient { .. }
        ));
        assert!(matches!(
            of(E::BadSignature {
                clock_skew_suspected: false,
                skew_ms: None
            }),
            Outcome::Fault { .. }
        ));
        assert!(matches!(
            of(E::Protocol {
                status: Some(201),
                detail: "bad json".into()
            }),
            Outcome::Ambiguous { .. }
        ));
        assert!(matches!(
            of(E::Protocol {
                status: Some(302),
                detail: "redirect".into()
            }),
            Outcome::Fault { .. }
        ));
        assert!(matches!(
            of(E::InvalidRequest("x".into())),
            Outcome::Fault { .. }
        ));
        assert!(matches!(of(E::Config("x".into())), Outcome::Fault { .. }));
    }
}
