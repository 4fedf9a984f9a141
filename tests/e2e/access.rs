//! Access control on the local socket: the socket's group and mode, and
//! roles from the caller's credentials (`SO_PEERCRED`). A user outside the
//! technician group is refused technician methods and allowed read-only
//! ones; technician calls are audited.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Output};

use super::harness::Kioskd;

/// Users and groups made for one test, removed when it ends.
pub(crate) struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    pub(crate) fn new() -> Accounts {
        Accounts {
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    pub(crate) fn group(&mut self, name: &str) -> u32 {
        let ok = Command::new("groupadd")
            .arg(name)
            .status()
            .expect("groupadd");
        assert!(ok.success(), "groupadd {name}");
        self.groups.push(name.to_owned());
        nix::unistd::Group::from_name(name)
            .expect("group lookup")
            .expect("group")
            .gid
            .as_raw()
    }

    pub(crate) fn user(&mut self, name: &str, group: &str) -> u32 {
        let ok = Command::new("useradd")
            .args([
                "--no-create-home",
                "--gid",
                group,
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(name)
            .status()
            .expect("useradd");
        assert!(ok.success(), "useradd {name}");
        self.users.push(name.to_owned());
        nix::unistd::User::from_name(name)
            .expect("user lookup")
            .expect("user")
            .uid
            .as_raw()
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in &self.users {
            let _ = Command::new("userdel").arg(u).status();
        }
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).status();
        }
    }
}

pub(crate) fn tools_available() -> bool {
    nix::unistd::getuid().is_root()
        && ["useradd", "groupadd", "userdel", "groupdel", "setpriv"]
            .iter()
            .all(|t| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {t}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
}

/// Run kioskctl as uid/gid with no supplementary groups.
fn kioskctl_as(k: &Kioskd, uid: u32, gid: u32, args: &[&str]) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_kioskctl"))
        .arg("--socket")
        .arg(&k.socket)
        .args(args)
        .output()
        .expect("setpriv kioskctl")
}

#[test]
fn a_caller_without_the_technician_group_is_refused_technician_methods() {
    if !tools_available() {
        eprintln!("skipped: needs root, useradd/groupadd and setpriv");
        return;
    }
    let tag = std::process::id() % 100_000;
    let mut acc = Accounts {
        users: Vec::new(),
        groups: Vec::new(),
    };
    let sock_group = format!("kt-sock-{tag}");
    let tech_group = format!("kt-tech-{tag}");
    let sock_gid = acc.group(&sock_group);
    let tech_gid = acc.group(&tech_group);
    let plain_uid = acc.user(&format!("kt-pu-{tag}"), &sock_group);
    let tech_uid = acc.user(&format!("kt-tu-{tag}"), &tech_group);

    let store_dir = tempfile::tempdir().expect("tempdir");
    kiosk::store::generate_key_file(&store_dir.path().join("store.key")).expect("store key");
    let store = format!(
        "[store]\npath = \"{}\"\nkey_file = \"{}\"\n",
        store_dir.path().join("kiosk.db").display(),
        store_dir.path().join("store.key").display()
    );
    let k = Kioskd::start_full(
        &format!("group = \"{sock_group}\"\ntechnician_groups = [\"{tech_group}\"]\n"),
        &store,
        false,
    );
    // Let the test users reach the socket's directory (not list it).
    std::fs::set_permissions(k.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod dir");
    let meta = std::fs::metadata(&k.socket).expect("socket");
    assert_eq!(meta.mode() & 0o777, 0o660, "socket mode");
    assert_eq!(meta.gid(), sock_gid, "socket group");

    // Read-only: allowed.
    let out = kioskctl_as(&k, plain_uid, sock_gid, &["--json", "status"]);
    assert!(out.status.success(), "status as a plain user: {out:?}");
    let out = kioskctl_as(&k, plain_uid, sock_gid, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "audit verify as a plain user: {out:?}"
    );

    // Technician: refused with `forbidden`, exit 1.
    let out = kioskctl_as(
        &k,
        plain_uid,
        sock_gid,
        &["sync", "retry", "no-such-change"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("technician"), "{stderr}");
    assert!(stderr.contains(&format!("uid {plain_uid}")), "{stderr}");
    // Customer UI methods too.
    let out = kioskctl_as(&k, plain_uid, sock_gid, &["read-card", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("customer"),
        "{out:?}"
    );

    // The same over the protocol: the stable error code.
    let out = kioskctl_as(&k, plain_uid, sock_gid, &["--json", "queue", "call", "a"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A member of the technician group (a secondary group here: /proc
    // groups) gets past the role check: the change is simply not found.
    let out = Command::new("setpriv")
        .arg(format!("--reuid={tech_uid}"))
        .arg(format!("--regid={sock_gid}"))
        .arg(format!("--groups={tech_gid}"))
        .arg(env!("CARGO_BIN_EXE_kioskctl"))
        .arg("--socket")
        .arg(&k.socket)
        .args(["sync", "retry", "no-such-change"])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!stderr.contains("needs the technician role"), "{stderr}");

    // Every technician call is audited with the caller's uid; refused calls
    // are not technician actions.
    let db = audit_text(store_dir.path());
    assert!(
        db.contains(&format!("method=sync_retry uid={tech_uid}")),
        "{db}"
    );
    assert!(!db.contains(&format!("uid={plain_uid}")), "{db}");
    drop(k);
    drop(acc);
}

/// The audit trail as text: actor, action, detail per record.
fn audit_text(dir: &std::path::Path) -> String {
    let store = kiosk::store::Store::open(
        &dir.join("kiosk.db"),
        &dir.join("store.key"),
        &Default::default(),
    )
    .expect("open the store");
    store
        .audit()
        .audit_records(0, 100_000)
        .expect("audit")
        .into_iter()
        .map(|r| format!("{} {} {}\n", r.actor, r.action, r.detail))
        .collect()
}

/// A socket group that does not exist stops kioskd at startup with an
/// error naming `api.group`.
#[test]
fn kioskd_refuses_to_start_with_a_missing_socket_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kiosk.toml");
    std::fs::write(
        &path,
        format!(
            "[kiosk]\nid = \"K\"\nbranch_id = \"1\"\nbranch_name = \"b\"\nprofile = \"smart_teller\"\n\
             [api]\nsocket = \"{}\"\ngroup = \"kt-no-such-group\"\n",
            dir.path().join("kioskd.sock").display()
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_kioskd"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("kioskd");
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api.group"), "{err}");
    assert!(err.contains("kt-no-such-group"), "{err}");
    assert!(!dir.path().join("kioskd.sock").exists(), "no socket left");
}

/// Local API exhaustion (issue "hardening, second round", item 1): a
/// read-only local user who opens connection after connection gets its
/// share of `api.max_clients` and no more; the technician (and the
/// customer UI) still get in. A read-only connection that neither sends
/// nor subscribes is closed after `api.idle_timeout_ms`.
#[test]
fn local_api_exhaustion_by_a_read_only_user_leaves_room_for_the_ui_and_technicians() {
    if !tools_available() {
        eprintln!("skipped: needs root, useradd/groupadd and setpriv");
        return;
    }
    let tag = std::process::id() % 100_000;
    let mut acc = Accounts {
        users: Vec::new(),
        groups: Vec::new(),
    };
    let sock_group = format!("kx-sock-{tag}");
    let sock_gid = acc.group(&sock_group);
    let plain_uid = acc.user(&format!("kx-pu-{tag}"), &sock_group);
    // 8 slots: 6 for read-only callers, 2 kept.
    let k = Kioskd::start_full(
        &format!("group = \"{sock_group}\"\nmax_clients = 8\nidle_timeout_ms = 1000\n"),
        "",
        false,
    );
    std::fs::set_permissions(k.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod dir");
    // The read-only user subscribes again and again (subscribers are never
    // idle): six get in, the rest are refused.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..9 {
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={plain_uid}"))
            .arg(format!("--regid={sock_gid}"))
            .arg("--clear-groups")
            .arg(env!("CARGO_BIN_EXE_kioskctl"))
            .arg("--socket")
            .arg(&k.socket)
            .arg("events")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("setpriv kioskctl events");
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stderr.as_mut().expect("stderr")),
            &mut first,
        )
        .expect("kioskctl stderr");
        if first.contains("subscribed") {
            held.push(child);
        } else {
            assert!(first.contains("read-only"), "{first}");
            refused += 1;
            let _ = child.wait();
        }
    }
    assert_eq!((held.len(), refused), (6, 3));
    // The technician (root) gets in, twice.
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_kioskctl"))
            .arg("--socket")
            .arg(&k.socket)
            .args(["--json", "status"])
            .output()
            .expect("kioskctl status");
        assert!(out.status.success(), "{out:?}");
    }
    for mut child in held {
        let _ = child.kill();
        let _ = child.wait();
    }
}
