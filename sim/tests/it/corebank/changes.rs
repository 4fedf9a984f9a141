//! `POST /v1/changes` and `GET /v1/changes/{id}`: business outcomes and
//! idempotency.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use kiosk_corebank::IdType;
use kiosk_sim::corebank::Faults;
use serde_json::json;

use super::*;

#[test]
fn a_newer_card_is_applied_once_and_replayed_after() {
    let t = TestSim::start();
    let c = t.client();
    let id = new_id();
    let body = resident_change(&id);
    let r = c.change(&body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["status"], "applied");
    let core_ref = r.body["core_ref"].as_str().unwrap().to_string();
    assert!(core_ref.starts_with("CR"));
    assert_eq!(r.header("Idempotent-Replayed"), None);
    let rec = t.sim.customer("C000001").unwrap().record;
    assert_eq!(
        (rec.valid_from.as_str(), rec.valid_until.as_str()),
        ("2020-03-07", "2040-03-07")
    );

    // Same key, same body: the first answer again, not applied again.
    let r = c.change(&body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(r.body["core_ref"], core_ref.as_str());
    assert_eq!(t.sim.applied_count(&id), 1);
    let stats = t.sim.stats();
    assert_eq!((stats.applied_total, stats.replays), (1, 1));
    assert!(stats.duplicates.is_empty());

    // Same body with other spacing and key order is the same body.
    let mut fields: Vec<(String, Value)> = body.as_object().unwrap().clone().into_iter().collect();
    fields.reverse();
    let reordered: String = format!(
        "{{ {} }}",
        fields
            .iter()
            .map(|(k, v)| format!("{k:?} : {v}"))
            .collect::<Vec<_>>()
            .join(" ,\n ")
    );
    let r = c
        .send(
            "POST",
            "/v1/changes",
            reordered.as_bytes(),
            &Signing::default(),
            &[("Idempotency-Key", &id)],
        )
        .unwrap();
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("Idempotent-Replayed"), Some("true"));

    // A new change with the same card: already up to date.
    let r = c.change(&resident_change(&new_id()));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "superseded");
    assert_eq!(t.sim.stats().applied_total, 1);
}

#[test]
fn the_same_key_with_another_body_is_a_conflict() {
    let t = TestSim::start();
    let c = t.client();
    let id = new_id();
    assert_eq!(c.change(&resident_change(&id)).status, 201);
    let mut other = resident_change(&id);
    other["id_validity"]["valid_until"] = json!("long_term");
    c.change(&other).assert_error(409, "idempotency_conflict");
    assert_eq!(t.sim.applied_count(&id), 1);
    assert_eq!(t.sim.stats().idempotency_conflicts, 1);
}

#[test]
fn the_idempotency_key_must_be_the_change_id() {
    let t = TestSim::start();
    let c = t.client();
    let body = resident_change(&new_id());
    c.post("/v1/changes", &body)
        .assert_error(400, "bad_request");
    c.post_with("/v1/changes", &body, &[("Idempotency-Key", "other")])
        .assert_error(400, "bad_request");
    let mut bad = body.clone();
    bad["id_validity"]["valid_until"] = json!("someday");
    c.change(&bad).assert_error(400, "bad_request");
    assert_eq!(t.sim.stats().applied_total, 0);
}

#[test]
fn a_second_request_while_the_first_is_processed_is_in_progress() {
    let t = Arc::new(TestSim::start_with(|c| {
        c.faults = Faults {
            hold_changes: true,
            ..Faults::none()
        }
    }));
    let id = new_id();
    let body = resident_change(&id);
    let first = {
        let (base, body) = (t.sim.base_url(), body.clone());
        thread::spawn(move || Client::new(&base).change(&body))
    };
    assert!(t.sim.wait_in_progress(1, Duration::from_secs(10)));
    let c = t.client();
    c.change(&body).assert_error(409, "in_progress");
    // Also with a different body: the key is taken.
    let mut other = body.clone();
    other["occurred_at_ms"] = json!(1);
    c.change(&other).assert_error(409, "in_progress");
    t.sim.set_faults(Faults::none());
    let r = first.join().unwrap();
    assert_eq!(r.status, 201, "{r:?}");
    let r = c.change(&body);
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(t.sim.applied_count(&id), 1);
    assert_eq!(t.sim.stats().in_progress_refusals, 2);
}

#[test]
fn concurrent_identical_requests_apply_once() {
    let t = TestSim::start();
    let id = new_id();
    let body = resident_change(&id);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (base, body) = (t.sim.base_url(), body.clone());
            thread::spawn(move || Client::new(&base).change(&body))
        })
        .collect();
    let answers: Vec<Resp> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &answers {
        assert!(
            r.status == 201 || (r.status == 409 && r.code() == "in_progress"),
            "{r:?}"
        );
    }
    let fresh = answers
        .iter()
        .filter(|r| r.status == 201 && r.header("Idempotent-Replayed").is_none())
        .count();
    assert_eq!(fresh, 1);
    assert_eq!(t.sim.applied_count(&id), 1);
}

#[test]
fn business_rejections_are_final_and_stored() {
    let t = TestSim::start();
    let c = t.client();
    let cases = [
        // rule I5: a temporary ID on file.
        (
            validity_change(
                &new_id(),
                "C000101",
                IdType::Resident,
                "11010119880808001X",
                "2023-04-10",
                "2043-04-10",
            ),
            "document_type_mismatch",
        ),
        // rule I7: an old card, the record holds a newer one.
        (
            validity_change(
                &new_id(),
                "C000106",
                IdType::Resident,
                "110106198003030068",
                "2016-03-03",
                "2036-03-03",
            ),
            "stale_card",
        ),
        (
            validity_change(
                &new_id(),
                "C000107",
                IdType::Resident,
                "110107197002020070",
                "2020-02-02",
                "2040-02-02",
            ),
            "not_allowed",
        ),
        // Somebody else's card.
        (
            validity_change(
                &new_id(),
                "C000001",
                IdType::Resident,
                "110108199202150051",
                "2022-02-15",
                "2032-02-15",
            ),
            "not_allowed",
        ),
    ];
    for (body, code) in &cases {
        c.change(body).assert_error(422, code);
        // Repeated: the same rejection, replayed.
        let r = c.change(body);
        r.assert_error(422, code);
        assert_eq!(r.header("Idempotent-Replayed"), Some("true"));
    }
    let r = c.change(&validity_change(
        &new_id(),
        "C999999",
        IdType::Resident,
        "110101199003070011",
        "2020-03-07",
        "2040-03-07",
    ));
    r.assert_error(404, "customer_not_found");
    assert_eq!(t.sim.stats().applied_total, 0);
}

#[test]
fn a_card_already_on_file_is_superseded() {
    let t = TestSim::start();
    let r = t.client().change(&validity_change(
        &new_id(),
        "C000105",
        IdType::Resident,
        "110105199209090056",
        "2022-09-09",
        "2042-09-09",
    ));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "superseded");
    assert_eq!(t.sim.stats().applied_total, 0);
}

#[test]
fn a_long_term_card_replaces_a_15_digit_record() {
    let t = TestSim::start();
    let id = new_id();
    let r = t.client().change(&validity_change(
        &id,
        "C000002",
        IdType::Resident,
        "110102195005120025",
        "2010-05-12",
        "long_term",
    ));
    assert_eq!(r.status, 201, "{r:?}");
    let rec = t.sim.customer("C000002").unwrap().record;
    assert_eq!(rec.valid_until, "long_term");
    assert_eq!(rec.id_number, "110102195005120025");
}

#[test]
fn the_status_of_a_change_is_its_first_answer() {
    let t = TestSim::start();
    let c = t.client();
    let applied = new_id();
    let r = c.change(&resident_change(&applied));
    let s = c.get(&format!("/v1/changes/{applied}"));
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(s.body, r.body);
    assert_eq!(s.body["status"], "applied");

    let rejected = new_id();
    c.change(&validity_change(
        &rejected,
        "C000101",
        IdType::Resident,
        "11010119880808001X",
        "2023-04-10",
        "2043-04-10",
    ));
    let s = c.get(&format!("/v1/changes/{rejected}"));
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(s.body["code"], "document_type_mismatch");
    assert!(s.body["message"].is_string());

    c.get(&format!("/v1/changes/{}", new_id()))
        .assert_error(404, "change_not_found");
}

#[test]
fn a_mobile_change_needs_a_proof_for_that_customer_and_number() {
    // rules P4, P7
    let t = TestSim::start();
    let c = t.client();
    let proof = otp_proof(&t, &c, "C000001", "13912345678");

    // A proof for another number or customer is no proof.
    c.change(&mobile_change(&new_id(), "C000001", "13912345679", &proof))
        .assert_error(422, "otp_proof_invalid");
    c.change(&mobile_change(&new_id(), "C000004", "13912345678", &proof))
        .assert_error(422, "otp_proof_invalid");
    c.change(&mobile_change(
        &new_id(),
        "C000001",
        "13912345678",
        "made-up",
    ))
    .assert_error(422, "otp_proof_invalid");

    let id = new_id();
    let r = c.change(&mobile_change(&id, "C000001", "13912345678", &proof));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["status"], "applied");
    assert_eq!(
        t.sim.customer("C000001").unwrap().record.mobile,
        "13912345678"
    );
    // The old and the new number are told.
    let old = t.sim.sms("13800000001");
    assert_eq!(old[0].kind, "notice_old");
    assert!(old[0].text.contains("139****5678"));
    let new = t.sim.sms("13912345678");
    assert_eq!(new[0].kind, "notice_new");
    assert_eq!(new[0].change_id.as_deref(), Some(id.as_str()));
    // The proof is spent.
    c.change(&mobile_change(&new_id(), "C000001", "13912345678", &proof))
        .assert_error(422, "otp_proof_invalid");
    assert_eq!(t.sim.applied_count(&id), 1);
}

#[test]
fn a_mobile_change_for_a_restricted_customer_is_not_allowed() {
    // rule P5
    let t = TestSim::start();
    let r = t
        .client()
        .change(&mobile_change(&new_id(), "C000104", "13912345678", "x"));
    r.assert_error(422, "not_allowed");
    assert_eq!(r.body["message"], "账户冻结 account restricted");
}

#[test]
fn a_thousand_changes_from_four_kiosks_apply_once_each() {
    let t = TestSim::start_with(|c| c.synthetic = 1000);
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let base = t.sim.base_url();
            thread::spawn(move || {
                let c = Client::new(&base);
                let mut ids = Vec::new();
                for i in (k..1000).step_by(4) {
                    let s = kiosk_sim::corebank::fixtures::synthetic_customer(i);
                    let id = new_id();
                    let body = validity_change(
                        &id,
                        &s.customer_id,
                        IdType::Resident,
                        &s.id_number,
                        "2025-01-01",
                        "2045-01-01",
                    );
                    let r = c.change(&body);
                    assert_eq!(r.status, 201, "{r:?}");
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    let stats = t.sim.stats();
    assert_eq!(stats.applied_total, 1000);
    assert!(stats.duplicates.is_empty());
    assert!(ids.iter().all(|id| stats.applied_count(id) == 1));
    eprintln!("1000 changes in {elapsed:?}");
}
