//! `kioskctl store backup` during a stream of confirmations, then
//! `kioskd --restore`: the restored store's audit chain verifies and its
//! outbox delivers every change it holds exactly once (issue 18).

use std::process::Command;
use std::time::Duration;

use kiosk_proto::SyncListParams;
use kiosk_sim::corebank::Faults;

use super::harness::Kioskd;
use super::sync::{kiosk_toml, setup, synthetic_change, wait_drained};

const CHANGES: usize = 120;
/// The backup is taken once this many changes are confirmed.
const BACKUP_AFTER: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_confirmations_restores_and_delivers_each_change_once() {
    let s = setup(CHANGES, Faults::none());
    let mut kioskd = Kioskd::start_with(&kiosk_toml(s.dir.path(), &s.bank.base_url()), true);
    let backup = s.dir.path().join("before-upgrade.db");

    let mut client = kioskd.client().await;
    let (confirmed_tx, mut confirmed_rx) = tokio::sync::mpsc::unbounded_channel();
    let submitter = tokio::spawn(async move {
        for i in 0..CHANGES {
            let done = client
                .submit_change(synthetic_change(i))
                .await
                .expect("change confirmed");
            let _ = confirmed_tx.send(done.change_id);
        }
    });
    for _ in 0..BACKUP_AFTER {
        confirmed_rx.recv().await.expect("a confirmation");
    }
    // While the submitter keeps confirming and the sync worker delivers.
    let out = Command::new(env!("CARGO_BIN_EXE_kioskctl"))
        .args(["store", "backup", "--json", "--config"])
        .arg(&kioskd.config_path)
        .arg(&backup)
        .output()
        .expect("run kioskctl");
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let in_backup = report["changes"].as_u64().expect("changes") as usize;
    assert!(
        (BACKUP_AFTER..=CHANGES).contains(&in_backup),
        "the backup holds {in_backup} changes"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&backup)
            .expect("backup file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the backup is for its owner only");
    submitter.await.expect("submitter");
    wait_drained(&kioskd, Duration::from_secs(120)).await;

    // A restore is refused while kioskd runs.
    let refused = kioskd_restore(&kioskd, &backup);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop it first"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    assert!(kioskd.terminate().success(), "{}", kioskd.log());
    let restored = kioskd_restore(&kioskd, &backup);
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(
        restored.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(said.contains("audit chain verified"), "{said}");
    assert!(said.contains("kept as"), "{said}");

    kioskd.start_again();
    wait_drained(&kioskd, Duration::from_secs(120)).await;
    let mut c = kioskd.client().await;
    let audit = c.audit_verify().await.expect("audit verify");
    assert!(audit.ok, "{audit:?}");
    let changes = c
        .sync_list(SyncListParams {
            state: None,
            limit: Some(1000),
        })
        .await
        .expect("list");
    assert_eq!(
        changes.len(),
        in_backup,
        "the restored outbox is the backup's"
    );
    for change in &changes {
        assert_eq!(change.state, "delivered", "{change:?}");
        assert_eq!(
            s.bank.applied_count(&change.change_id),
            1,
            "change {} applied once",
            change.change_id
        );
    }
}

fn kioskd_restore(kioskd: &Kioskd, backup: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kioskd"))
        .arg("--config")
        .arg(&kioskd.config_path)
        .arg("--restore")
        .arg(backup)
        .output()
        .expect("run kioskd --restore")
}
