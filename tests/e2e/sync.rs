//! Confirmed changes through kioskd to the core-bank simulator over
//! loopback HTTP: durability (C1), exactly-once delivery across SIGKILL and
//! faults (C2), store-and-forward while the bank is down (C3), final
//! rejections (C4), and the technician's view (`kioskctl sync`, `audit`).

use std::path::Path;
use std::time::{Duration, Instant};

use kiosk_corebank::SigningKey;
use kiosk_proto::{Client, ClientError, ErrorCode, Event, SubmitChangeParams};
use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, FixtureSource, Fixtures, fixtures};

use super::harness::{Kioskd, Lcg};

const SAM_ID: &str = "05.01-20101216-0011223344-1234567890";

pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) bank: CoreBankSim,
}

pub(crate) fn setup(synthetic: usize, faults: Faults) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_bytes: [u8; 32] = rand::random();
    let key_path = dir.path().join("bank.key");
    super::harness::write_secret(&key_path, &hex::encode(key_bytes));
    kiosk::store::generate_key_file(&dir.path().join("store.key")).expect("store key");
    let mut config = CoreBankConfig::new(
        dir.path().join("bank.db"),
        SigningKey::new(key_bytes.to_vec()),
    );
    config.synthetic = synthetic;
    config.fixtures = FixtureSource::Builtin;
    config.faults = faults;
    let bank = CoreBankSim::start(config).expect("core-bank simulator");
    Setup { dir, bank }
}

pub(crate) fn kiosk_toml(dir: &Path, bank_url: &str) -> String {
    format!(
        r#"
[store]
path = "{db}"
key_file = "{key}"

[sync]
backoff_min_ms = 5
backoff_max_ms = 100

[corebank]
url = "{bank_url}"
key_file = "{bank_key}"
allow_plain_http = true
request_timeout_ms = 2000
"#,
        db = dir.join("kiosk.db").display(),
        key = dir.join("store.key").display(),
        bank_key = dir.join("bank.key").display(),
    )
}

fn id_validity(
    customer_id: &str,
    id_number: &str,
    valid_from: &str,
    valid_until: &str,
) -> SubmitChangeParams {
    SubmitChangeParams {
        customer_id: customer_id.to_string(),
        change: serde_json::json!({
            "kind": "id_validity",
            "id_validity": {
                "id_type": "resident",
                "id_number": id_number,
                "valid_from": valid_from,
                "valid_until": valid_until,
                "issuer": "北京市公安局东城分局",
                "card_evidence": {"sam_id": SAM_ID, "card_uid": "5A01000000000001"}
            }
        }),
    }
}

pub(crate) fn synthetic_change(i: usize) -> SubmitChangeParams {
    let c = fixtures::synthetic_customer(i);
    id_validity(&c.customer_id, &c.id_number, "2025-01-01", "2045-01-01")
}

/// Wait until the outbox is empty, reading events between checks.
pub(crate) async fn wait_drained(
    kioskd: &Kioskd,
    deadline: Duration,
) -> kiosk_proto::SyncStatusInfo {
    let mut c = kioskd.subscriber().await;
    let wait = async {
        loop {
            let st = c.sync_status().await.expect("sync_status");
            if st.backlog == 0 {
                return st;
            }
            c.wait_event(Duration::from_secs(30), |e| {
                matches!(
                    e,
                    Event::ChangeDelivered { .. } | Event::ChangeRejected { .. }
                )
                .then_some(())
            })
            .await
            .expect("delivery progress");
        }
    };
    tokio::time::timeout(deadline, wait)
        .await
        .expect("outbox drained in time")
}

/// What [`sigkill_during_changes`] saw.
#[derive(Debug)]
pub(crate) struct ChangeCrashReport {
    /// Changes the daemon acknowledged (each one a confirmed change).
    pub(crate) acknowledged: usize,
    /// Submissions the daemon died before answering (asked again).
    pub(crate) unanswered: usize,
    pub(crate) kills: usize,
    /// Acknowledged changes the bank never applied.
    pub(crate) lost: usize,
    /// Acknowledged changes the bank applied more than once.
    pub(crate) duplicated: usize,
    /// Every change id the bank applied more than once (acknowledged or not).
    pub(crate) bank_duplicates: Vec<String>,
    pub(crate) applied_total: u64,
    pub(crate) status: kiosk_proto::SyncStatusInfo,
    pub(crate) audit_ok: bool,
    /// From each SIGKILL during the submissions to the next change the
    /// restarted daemon acknowledged.
    pub(crate) recover: Vec<Duration>,
}

/// Submit `changes` confirmed changes through kioskd while the bank fails
/// at random (errors, dropped connections, lost answers) and kioskd is
/// SIGKILLed at random moments (every `kill_every.0` plus a random
/// `0..kill_every.1` submissions), then a few more times while the backlog
/// drains; wait for the outbox to drain and count what the bank applied.
pub(crate) async fn sigkill_during_changes(
    changes: usize,
    kill_every: (usize, u64),
    seed: u64,
) -> ChangeCrashReport {
    let faults = Faults {
        error_rate: 0.3,
        drop_rate: 0.1,
        lost_answer_rate: 0.1,
        endpoints: vec!["changes".into()],
        seed: Some(20261123 ^ seed),
        ..Faults::none()
    };
    let s = setup(changes, faults);
    let mut kioskd = Kioskd::start_with(&kiosk_toml(s.dir.path(), &s.bank.base_url()), true);
    let mut rng = Lcg(seed);
    let mut acknowledged = Vec::new();
    let mut unanswered = 0usize;
    let mut kills = 0usize;
    let mut recover = Vec::new();
    let mut killed_at = None;
    let mut next_kill = kill_every.0 + rng.next(kill_every.1) as usize;
    let mut client = kioskd.client().await;
    let mut i = 0;
    while i < changes {
        if acknowledged.len() + unanswered >= next_kill {
            // SIGKILL while the sync worker is mid-delivery and the next
            // submission is about to be sent.
            killed_at.get_or_insert_with(Instant::now);
            kioskd.restart_hard();
            kills += 1;
            next_kill += kill_every.0 + rng.next(kill_every.1) as usize;
            client = kioskd.client().await;
        }
        match client.submit_change(synthetic_change(i)).await {
            Ok(done) => {
                acknowledged.push(done.change_id);
                if let Some(t) = killed_at.take() {
                    recover.push(t.elapsed());
                }
            }
            Err(ClientError::Api(e)) => panic!("change {i} refused: {e:?}"),
            Err(_) => {
                // The daemon died before answering: the customer was not told
                // "accepted", so the kiosk asks again (a new confirmation).
                unanswered += 1;
                killed_at.get_or_insert_with(Instant::now);
                kioskd.restart_hard();
                kills += 1;
                client = kioskd.client().await;
                continue;
            }
        }
        i += 1;
    }
    // Kill a few more times while the backlog drains.
    for _ in 0..3 {
        let mut c = kioskd.subscriber().await;
        let deliveries = 1 + rng.next(50);
        for _ in 0..deliveries {
            if c.wait_event(Duration::from_secs(5), |e| {
                matches!(e, Event::ChangeDelivered { .. }).then_some(())
            })
            .await
            .is_err()
            {
                break;
            }
        }
        kioskd.restart_hard();
        kills += 1;
    }
    let status = wait_drained(&kioskd, Duration::from_secs(600)).await;

    let stats = s.bank.stats();
    let mut lost = 0;
    let mut duplicated = 0;
    for id in &acknowledged {
        match s.bank.applied_count(id) {
            1 => {}
            0 => lost += 1,
            _ => duplicated += 1,
        }
    }
    let mut c = kioskd.client().await;
    let audit_ok = c.audit_verify().await.expect("audit").ok;
    let report = ChangeCrashReport {
        acknowledged: acknowledged.len(),
        unanswered,
        kills,
        lost,
        duplicated,
        bank_duplicates: stats.duplicates.clone(),
        applied_total: stats.applied_total,
        status,
        audit_ok,
        recover,
    };
    println!(
        "crash test: {} changes acknowledged, {} submissions unanswered (daemon killed), {kills} SIGKILLs; \
         bank applied {} in total, {} duplicated at the bank, {lost} acknowledged but never applied, \
         {duplicated} acknowledged and applied twice; faults injected: {:?}; backlog {}",
        report.acknowledged,
        unanswered,
        stats.applied_total,
        stats.duplicates.len(),
        stats.faults_injected,
        report.status.backlog
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_c1_c2_sigkill_at_random_moments_during_1000_changes_applies_each_exactly_once() {
    const CHANGES: usize = 1000;
    let r = sigkill_during_changes(CHANGES, (20, 120), 7).await;
    assert_eq!(r.acknowledged, CHANGES);
    assert_eq!(r.lost, 0, "acknowledged changes lost");
    assert_eq!(r.duplicated, 0, "changes applied twice");
    assert!(
        r.bank_duplicates.is_empty(),
        "the bank applied something twice: {:?}",
        r.bank_duplicates
    );
    assert_eq!(r.status.backlog, 0);
    assert_eq!(r.status.rejected, 0);
    // Every change applied is one the kiosk recorded: unanswered
    // submissions may have been recorded too (then they are applied once).
    assert!(r.applied_total as usize >= CHANGES);
    assert!(r.applied_total as usize <= CHANGES + r.unanswered);
    assert!(r.kills >= 5, "the test must actually kill kioskd");
    assert!(r.audit_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_c3_changes_are_kept_while_the_bank_is_down_and_forwarded_when_it_is_back() {
    let s = setup(
        10,
        Faults {
            down: true,
            ..Faults::none()
        },
    );
    let kioskd = Kioskd::start_with(&kiosk_toml(s.dir.path(), &s.bank.base_url()), true);
    let mut c = kioskd.subscriber().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            c.submit_change(synthetic_change(i))
                .await
                .expect("recorded while down")
                .change_id,
        );
    }
    // The start-up health check may already have found the bank down.
    if c.sync_status().await.expect("status").core_reachable != Some(false) {
        c.wait_event(Duration::from_secs(30), |e| match e {
            Event::CoreBankLink {
                reachable: false, ..
            } => Some(()),
            _ => None,
        })
        .await
        .expect("the link is reported down");
    }
    let st = c.sync_status().await.expect("status");
    assert_eq!(st.backlog, 5);
    assert_eq!(st.core_reachable, Some(false));
    let out = kioskd.kioskctl(&["sync", "status", "--json"]);
    assert!(out.status.success());
    let shown: kiosk_proto::SyncStatusInfo = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown.backlog, 5);

    s.bank.set_faults(Faults::none());
    let st = wait_drained(&kioskd, Duration::from_secs(120)).await;
    assert_eq!(st.delivered, 5);
    for id in &ids {
        assert_eq!(s.bank.applied_count(id), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_c4_a_business_rejection_is_final_audited_and_shown_to_the_technician() {
    let s = setup(0, Faults::none());
    let kioskd = Kioskd::start_with(&kiosk_toml(s.dir.path(), &s.bank.base_url()), true);
    let stale = Fixtures::builtin();
    let record = stale.get("C000106").expect("stale-card customer").clone();
    let mut c = kioskd.subscriber().await;
    // An old card: its validity starts before the one on file.
    let done = c
        .submit_change(id_validity(
            &record.customer_id,
            &record.id_number,
            "2001-01-01",
            "2021-01-01",
        ))
        .await
        .expect("recorded");
    let (code, _message) = c
        .wait_event(Duration::from_secs(30), |e| match e {
            Event::ChangeRejected {
                change_id,
                code,
                message,
            } if *change_id == done.change_id => Some((code.clone(), message.clone())),
            _ => None,
        })
        .await
        .expect("rejected");
    assert_eq!(code, "stale_card");
    let rejected = c.sync_rejected().await.expect("rejected list");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].rejection_code.as_deref(), Some("stale_card"));
    let out = kioskd.kioskctl(&["sync", "rejected", "--json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("stale_card"));
    // Not retried by itself: the bank saw it once.
    assert_eq!(s.bank.applied_count(&done.change_id), 0);
    let st = c.sync_status().await.expect("status");
    assert_eq!((st.backlog, st.rejected), (0, 1));
    // The technician's list shows it without personal data.
    let out = kioskd.kioskctl(&["sync", "list", "--json"]);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listed.contains(&done.change_id));
    assert!(!listed.contains(&record.id_number));
    let out = kioskd.kioskctl(&["audit", "verify", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_an_edited_record_and_retry_requeues_a_change() {
    let s = setup(
        3,
        Faults {
            down: true,
            ..Faults::none()
        },
    );
    let mut kioskd = Kioskd::start_with(&kiosk_toml(s.dir.path(), &s.bank.base_url()), true);
    let mut c = kioskd.client().await;
    let first = c
        .submit_change(synthetic_change(0))
        .await
        .expect("recorded");
    c.submit_change(synthetic_change(1))
        .await
        .expect("recorded");
    let out = kioskd.kioskctl(&["sync", "retry", &first.change_id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match c.sync_retry("no-such-change").await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, ErrorCode::NotFound),
        other => panic!("retry of an unknown change: {other:?}"),
    }
    let out = kioskd.kioskctl(&["audit", "verify"]);
    assert!(out.status.success());
    kioskd.kill();

    // Someone edits the trail behind the daemon's back.
    let db = rusqlite::Connection::open(s.dir.path().join("kiosk.db")).expect("open db");
    db.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET detail = 'edited' WHERE seq = 1;",
    )
    .expect("tamper");
    drop(db);
    kioskd.restart_hard();
    let out = kioskd.kioskctl(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a broken chain must fail");
    let report: kiosk_proto::AuditReport = serde_json::from_slice(&out.stdout).expect("json");
    assert!(!report.ok);
    assert_eq!(report.first_bad_seq, Some(1));
}

#[tokio::test]
async fn submit_change_is_refused_unless_the_kiosk_allows_it() {
    let s = setup(1, Faults::none());
    let kioskd = Kioskd::start(&kiosk_toml(s.dir.path(), &s.bank.base_url()));
    let mut c: Client = kioskd.client().await;
    match c.submit_change(synthetic_change(0)).await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, ErrorCode::NotAllowed),
        other => panic!("submit_change on a production kiosk: {other:?}"),
    }
}

/// Rule S2 through kioskd: with `store.retention_hours = 0` a change's
/// personal data is purged once the bank has answered. kioskd says so
/// (`payloads_purged`), the change is marked purged with its row kept, and
/// the purge is in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s2_personal_data_is_purged_after_the_answer_and_the_retention() {
    let s = setup(1, Faults::none());
    let toml = kiosk_toml(s.dir.path(), &s.bank.base_url())
        .replace("[sync]", "retention_hours = 0\n\n[sync]");
    let kioskd = Kioskd::start_with(&toml, true);
    let mut events = kioskd.subscriber().await;
    let mut c = kioskd.client().await;
    let change = c.submit_change(synthetic_change(0)).await.expect("submit");
    let mut delivered = false;
    let purged = events
        .wait_event(Duration::from_secs(30), |e| match e {
            Event::ChangeDelivered { change_id, .. } if *change_id == change.change_id => {
                delivered = true;
                None
            }
            Event::PayloadsPurged { count } => Some(*count),
            _ => None,
        })
        .await
        .expect("the purge");
    assert!(delivered, "purged only after the bank's answer");
    assert_eq!(purged, 1);

    let store = kiosk::store::Store::open(
        &s.dir.path().join("kiosk.db"),
        &s.dir.path().join("store.key"),
        &Default::default(),
    )
    .expect("open the store");
    let summary = store
        .outbox()
        .get(&change.change_id)
        .expect("the change's row is kept");
    assert!(summary.purged, "{summary:?}");
    let purges: Vec<_> = store
        .audit()
        .audit_records(0, 1000)
        .expect("audit")
        .into_iter()
        .filter(|r| r.action == "payload_purged")
        .collect();
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert_eq!(
        purges[0].subject.as_deref(),
        Some(change.change_id.as_str())
    );
    assert!(c.audit_verify().await.expect("audit").ok);
}
