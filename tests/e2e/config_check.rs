//! `kioskctl config check FILE`: every problem at once, each naming its key,
//! with exit codes 0 (valid), 1 (problems) and 2 (unreadable).

use std::process::{Command, Output};

const VALID: &str = r#"
[kiosk]
id = "K-1"
branch_id = "0101"
branch_name = "Test branch"
profile = "smart_teller"
"#;

fn check(args: &[&str], file: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kioskctl"))
        .args(["config", "check"])
        .arg(file)
        .args(args)
        .env_remove("KIOSK_SOCKET")
        .output()
        .expect("kioskctl")
}

#[test]
fn config_check_lists_every_problem_naming_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("kiosk.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n[api]\nmax_clients = \"many\"\nsokcet = \"/tmp/x\"\n\
             [sync]\nbackoff_min_ms = 1000\nbackoff_max_ms = 10\njitter = 1.5\n\
             [session]\nidle_timeout_s = 0\n",
            VALID.replace("K-1", " ")
        ),
    )
    .expect("write");
    let out = check(&[], &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for key in [
        "api.max_clients",
        "sokcet",
        "kiosk.id",
        "sync.backoff_max_ms",
        "sync.jitter",
        "session.idle_timeout_s",
    ] {
        assert!(
            stdout.lines().any(|l| l.contains(key)),
            "{key} not named in:\n{stdout}"
        );
    }

    let out = check(&["--json"], &file);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["valid"], false);
    let problems = report["problems"].as_array().expect("problems");
    assert!(problems.len() >= 6, "{problems:?}");
}

#[test]
fn config_check_exit_codes_valid_and_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("kiosk.toml");
    std::fs::write(&file, VALID).expect("write");
    let out = check(&[], &file);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = check(&["--json"], &file);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["valid"], true);
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0));

    let out = check(&[], &dir.path().join("missing.toml"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    std::fs::write(&file, "[kiosk\nid = ").expect("write");
    let out = check(&[], &file);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a syntax error is a problem: {out:?}"
    );
}

#[test]
fn shipped_profiles_pass_config_check_apart_from_their_machine_files() {
    // The shipped profiles name key files on the kiosk itself; whatever
    // config check says about them, each line names a key.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kiosk-config");
    for entry in std::fs::read_dir(&dir).expect("kiosk-config") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = check(&[], &path);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
            for line in stdout.lines().filter(|l| !l.ends_with(": ok")) {
                assert!(line.contains(':'), "{}: {line}", path.display());
            }
        }
    }
}
