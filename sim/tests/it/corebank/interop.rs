//! The kiosk's own client (`kiosk_corebank::CoreBankClient`) against the
//! simulator: both sides built from one spec must agree on signing, bodies,
//! statuses and headers, faults included.

use std::time::Duration;

use kiosk_corebank::{
    ChangeRequest, ChangeStatus, CoreBankClient, CoreBankConfig, CoreBankError, IdType,
    LookupRequest, OtpRequest, StoredChange,
};
use kiosk_sim::corebank::{Faults, Injection};

use super::*;

struct Kiosk {
    client: CoreBankClient,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Kiosk {
    fn new(t: &TestSim) -> Kiosk {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("corebank.key");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            // A key file as kioskd takes one: mode 0600.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_file)
                .and_then(|mut f| {
                    f.write_all(hex::encode(b"corebank-sim-test-key-0123456789").as_bytes())
                })
                .unwrap();
        }
        let mut config = CoreBankConfig::new(t.sim.base_url(), key_file);
        config.allow_plain_http = true;
        config.request_timeout_ms = 5_000;
        let client = CoreBankClient::new(&config, KIOSK).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Kiosk {
            client,
            rt,
            _dir: dir,
        }
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }
}

fn change(body: Value) -> ChangeRequest {
    serde_json::from_value(body).unwrap()
}

#[test]
fn the_kiosk_client_speaks_every_endpoint() {
    let t = TestSim::start();
    let k = Kiosk::new(&t);
    let c = &k.client;

    let health = k.run(c.health()).unwrap();
    assert_eq!(health.status, "ok");
    assert!(!health.skew_exceeds_limit);

    let customer = k
        .run(c.lookup(&LookupRequest {
            id_type: IdType::Resident,
            id_number: "110102195005120025".into(),
            name: "李长期".into(),
        }))
        .unwrap();
    assert_eq!(customer.customer_id, "C000002");

    let ok = k.run(c.security_answer("C000002", "西城")).unwrap();
    assert!(ok.ok);

    let issued = k
        .run(c.request_otp(&OtpRequest {
            customer_id: "C000002".into(),
            mobile: "13912340000".into(),
            purpose: "mobile_change".into(),
        }))
        .unwrap();
    let code = t.sim.last_sms_code("13912340000").unwrap();
    let verified = k.run(c.verify_otp(&issued.otp_id, &code)).unwrap();
    let proof = verified.proof.unwrap();

    let id = new_id();
    let req = change(mobile_change(&id, "C000002", "13912340000", &proof));
    let first = k.run(c.submit_change(&req)).unwrap();
    assert_eq!(first.result.status, ChangeStatus::Applied);
    assert!(!first.replayed);
    let again = k.run(c.submit_change(&req)).unwrap();
    assert!(again.replayed);
    assert_eq!(again.result, first.result);
    assert_eq!(
        k.run(c.get_change(&id)).unwrap(),
        Some(StoredChange::Accepted(first.result))
    );

    let rejected = new_id();
    let req = change(validity_change(
        &rejected,
        "C000106",
        IdType::Resident,
        "110106198003030068",
        "2016-03-03",
        "2036-03-03",
    ));
    match k.run(c.submit_change(&req)) {
        Err(CoreBankError::Rejected { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (422, "stale_card"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        k.run(c.get_change(&rejected)).unwrap(),
        Some(StoredChange::Rejected(e)) if e.code == "stale_card"
    ));
    assert_eq!(k.run(c.get_change(&new_id())).unwrap(), None);
    assert_eq!(t.sim.stats().bad_signatures, 0);
}

#[test]
fn the_kiosk_client_classifies_each_fault() {
    let t = TestSim::start();
    let k = Kiosk::new(&t);
    let c = &k.client;
    let id = new_id();
    let req = change(resident_change(&id));

    // Apply, then drop the answer: ambiguous; reconciling finds it applied.
    t.sim.set_faults(Faults {
        script: vec![Injection::LostAnswer],
        endpoints: vec!["changes".into()],
        ..Faults::none()
    });
    let e = k.run(c.submit_change(&req)).unwrap_err();
    assert!(e.is_ambiguous() && e.is_transient(), "{e:?}");
    assert!(matches!(
        k.run(c.get_change(&id)).unwrap(),
        Some(StoredChange::Accepted(r)) if r.status == ChangeStatus::Applied
    ));

    t.sim.set_faults(Faults {
        rate_limit_rate: 1.0,
        retry_after_s: 2,
        ..Faults::none()
    });
    match k.run(c.submit_change(&req)) {
        Err(CoreBankError::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(2)));
        }
        other => panic!("{other:?}"),
    }

    t.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::none()
    });
    let e = k.run(c.submit_change(&req)).unwrap_err();
    assert!(
        matches!(e, CoreBankError::Server { .. }) && e.is_transient(),
        "{e:?}"
    );

    t.sim.set_faults(Faults {
        down: true,
        ..Faults::none()
    });
    let e = k.run(c.submit_change(&req)).unwrap_err();
    assert!(e.is_transient(), "{e:?}");

    // The server's clock is 10 minutes ahead: refused, and the client says why.
    t.sim.set_faults(Faults {
        clock_skew_ms: 600_000,
        ..Faults::none()
    });
    match k.run(c.submit_change(&req)) {
        Err(CoreBankError::BadSignature {
            clock_skew_suspected,
            ..
        }) => assert!(clock_skew_suspected),
        other => panic!("{other:?}"),
    }

    t.sim.set_faults(Faults::none());
    let r = k.run(c.submit_change(&req)).unwrap();
    assert!(r.replayed);
    assert_eq!(t.sim.applied_count(&id), 1);
}
