//! kioskd's process hardening (issue 8): no core dumps, not dumpable, and
//! no start with a store key file others can read.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::harness::Kioskd;

/// `nobody`: as root, kioskd is run as a user that is not root, so the
/// kernel's "not dumpable" shows as `/proc/PID` belonging to root (as
/// any other user, kioskd runs as that user and the same holds).
const NOBODY: u32 = 65534;

#[test]
fn kioskd_runs_without_core_dumps_and_not_dumpable() {
    let (kioskd, uid) = if nix::unistd::getuid().is_root() {
        (Kioskd::start_as("", NOBODY, NOBODY), NOBODY)
    } else {
        (Kioskd::start(""), nix::unistd::getuid().as_raw())
    };
    // RLIMIT_CORE 0, soft and hard.
    let limit = kioskd.proc_line("limits", "Max core file size");
    let fields: Vec<&str> = limit.split_whitespace().collect();
    assert_eq!(fields, ["0", "0", "bytes"], "{limit}");
    // PR_SET_DUMPABLE 0: /proc/PID/* is given to root, not kioskd's user.
    let uids = kioskd.proc_line("status", "Uid:");
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "kioskd runs as {uid}: {uids}"
    );
    let owner = std::fs::metadata(format!("/proc/{}/status", kioskd.pid()))
        .expect("stat /proc/PID/status")
        .uid();
    assert_eq!(
        owner, 0,
        "kioskd is dumpable: /proc/PID belongs to uid {owner}"
    );

    // The contrast: another process of the same user is dumpable, its
    // /proc/PID its user's.
    let mut command = Command::new("cat");
    if uid == NOBODY {
        command.uid(NOBODY).gid(NOBODY);
    }
    let mut other = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("cat");
    let owner = std::fs::metadata(format!("/proc/{}/status", other.id()))
        .expect("stat")
        .uid();
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(owner, uid);
}

#[test]
fn kioskd_refuses_a_store_key_file_others_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("store.key");
    kiosk::store::generate_key_file(&key).expect("store key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let config = dir.path().join("kiosk.toml");
    std::fs::write(
        &config,
        format!(
            "[kiosk]\nid = \"K\"\nbranch_id = \"1\"\nbranch_name = \"b\"\nprofile = \"smart_teller\"\n\
             [api]\nsocket = \"{sock}\"\n[store]\npath = \"{db}\"\nkey_file = \"{key}\"\n",
            sock = dir.path().join("kioskd.sock").display(),
            db = dir.path().join("kiosk.db").display(),
            key = key.display(),
        ),
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_kioskd"))
        .arg("--config")
        .arg(&config)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("kioskd");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&key.display().to_string()) && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!dir.path().join("kioskd.sock").exists(), "it served anyway");
    // The key itself is never quoted.
    let secret = std::fs::read_to_string(&key).expect("key");
    assert!(!err.contains(secret.trim()), "{err}");
}
