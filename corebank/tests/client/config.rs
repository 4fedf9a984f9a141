//! The `[corebank]` configuration: defaults, unknown keys, and validation
//! that names every problem's key.

use kiosk_corebank::client::{ConfigProblem, CoreBankConfig};
use kiosk_corebank::{CoreBankClient, CoreBankError};

use crate::server::KEY_HEX;
use crate::{write_key, write_secret};

fn keys(problems: &[ConfigProblem]) -> Vec<&'static str> {
    problems.iter().map(|p| p.key).collect()
}

#[test]
fn toml_with_the_required_keys_gets_the_documented_defaults() {
    let config: CoreBankConfig = toml::from_str(
        r#"
        url = "https://corebank.example:8443"
        key_file = "/etc/kiosk/corebank.key"
        "#,
    )
    .expect("parse");
    assert_eq!(
        config,
        CoreBankConfig::new("https://corebank.example:8443", "/etc/kiosk/corebank.key")
    );
    assert_eq!(config.ca_file, None);
    assert_eq!(config.client_cert_file, None);
    assert_eq!(config.client_key_file, None);
    assert!(!config.allow_plain_http);
    assert_eq!(config.connect_timeout_ms, 3_000);
    assert_eq!(config.request_timeout_ms, 10_000);
    assert_eq!(config.max_clock_skew_ms, 60_000);
}

#[test]
fn every_key_parses_and_unknown_keys_are_refused() {
    let config: CoreBankConfig = toml::from_str(
        r#"
        url = "http://127.0.0.1:8080"
        key_file = "k"
        ca_file = "ca.pem"
        client_cert_file = "c.pem"
        client_key_file = "c.key"
        allow_plain_http = true
        connect_timeout_ms = 1
        request_timeout_ms = 2
        max_clock_skew_ms = 3
        "#,
    )
    .expect("parse");
    assert!(config.allow_plain_http);
    assert_eq!(config.max_clock_skew_ms, 3);

    let err =
        toml::from_str::<CoreBankConfig>("url = \"https://x\"\nkey_file = \"k\"\ntimeout_ms = 5\n")
            .expect_err("unknown key");
    assert!(err.to_string().contains("timeout_ms"), "{err}");
}

#[test]
fn plain_http_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = CoreBankConfig::new("http://127.0.0.1:8080", write_key(&dir));
    let problems = config.validate().expect_err("plain http");
    assert_eq!(keys(&problems), ["allow_plain_http"]);
    assert!(
        problems[0]
            .to_string()
            .starts_with("corebank.allow_plain_http: "),
        "{}",
        problems[0]
    );

    let err = CoreBankClient::new(&config, "K1").expect_err("plain http");
    assert!(
        matches!(&err, CoreBankError::Config(m) if m.contains("allow_plain_http")),
        "{err}"
    );

    config.allow_plain_http = true;
    assert_eq!(config.validate(), Ok(()));
    CoreBankClient::new(&config, "K1").expect("allowed");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        CoreBankConfig::new("https://bank.example/api/", dir.path().join("missing.key"));
    config.client_cert_file = Some(dir.path().join("c.pem"));
    config.connect_timeout_ms = 0;
    let problems = config.validate().expect_err("problems");
    assert_eq!(
        keys(&problems),
        ["url", "key_file", "client_key_file", "connect_timeout_ms"]
    );

    let config = CoreBankConfig::new("ftp://bank.example", dir.path().join("missing.key"));
    assert_eq!(keys(&config.validate().unwrap_err()), ["url", "key_file"]);
    for url in [
        "https://user:pw@bank.example",
        "https://bank.example/?a=1",
        "not a url",
    ] {
        let config = CoreBankConfig::new(url, write_key(&dir));
        assert_eq!(keys(&config.validate().unwrap_err()), ["url"], "{url}");
    }
    let config = CoreBankConfig::new("https://bank.example:8443/", write_key(&dir));
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn key_files_must_hold_hex_and_are_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let config = CoreBankConfig::new("https://bank.example", &path);

    write_secret(&path, "  \n");
    let problems = config.validate().unwrap_err();
    assert_eq!(keys(&problems), ["key_file"]);
    assert!(problems[0].message.contains("empty"), "{}", problems[0]);

    write_secret(&path, "s3cr3t-n0t-h3x");
    let problems = config.validate().unwrap_err();
    assert_eq!(keys(&problems), ["key_file"]);
    assert!(
        !problems[0].to_string().contains("s3cr3t"),
        "{}",
        problems[0]
    );

    write_secret(&path, &format!("{KEY_HEX}\n"));
    assert_eq!(config.validate(), Ok(()));
    let client = CoreBankClient::new(&config, "K1").expect("client");
    assert!(!format!("{client:?}").contains(KEY_HEX), "{client:?}");
    assert!(!format!("{client:?}").contains("0001020304"), "{client:?}");
}

/// The shared key file gets the store key's check (issue "hardening,
/// second round", item 7): mode 0600 on the file opened, and a key of at
/// least 32 bytes.
#[test]
fn key_files_must_be_private_and_long_enough() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = write_key(&dir);
    let config = CoreBankConfig::new("https://bank.example", &path);
    assert_eq!(config.validate(), Ok(()));
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let problems = config.validate().unwrap_err();
        assert_eq!(keys(&problems), ["key_file"], "{mode:o}");
        assert!(problems[0].message.contains("0600"), "{}", problems[0]);
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_secret(&path, &"ab".repeat(31));
    let problems = config.validate().unwrap_err();
    assert_eq!(keys(&problems), ["key_file"]);
    assert!(problems[0].message.contains("31-byte"), "{}", problems[0]);
}

/// `allow_plain_http` is for loopback only (item 7): personal data never
/// crosses a network unencrypted.
#[test]
fn plain_http_is_allowed_only_to_loopback() {
    let dir = tempfile::tempdir().unwrap();
    for (url, ok) in [
        ("http://127.0.0.1:8080", true),
        ("http://127.8.9.10:8080", true),
        ("http://[::1]:8080", true),
        ("http://localhost:8080", true),
        ("http://10.0.0.5:8080", false),
        ("http://corebank.example:8080", false),
        ("http://[2001:db8::1]:8080", false),
    ] {
        let mut config = CoreBankConfig::new(url, write_key(&dir));
        config.allow_plain_http = true;
        match config.validate() {
            Ok(()) => assert!(ok, "{url} accepted"),
            Err(problems) => {
                assert!(!ok, "{url}: {problems:?}");
                assert_eq!(keys(&problems), ["allow_plain_http"], "{url}");
            }
        }
    }
}

#[test]
fn tls_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut config = CoreBankConfig::new("https://bank.example", write_key(&dir));
    config.ca_file = Some(junk.clone());
    config.client_cert_file = Some(junk.clone());
    config.client_key_file = Some(junk);
    assert_eq!(
        keys(&config.validate().unwrap_err()),
        ["ca_file", "client_cert_file"]
    );

    config.ca_file = None;
    config.client_cert_file = None;
    assert_eq!(keys(&config.validate().unwrap_err()), ["client_cert_file"]);
}

#[test]
fn the_kiosk_id_must_be_a_header_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = CoreBankConfig::new("https://bank.example", write_key(&dir));
    for bad in ["", "K\n1"] {
        let err = CoreBankClient::new(&config, bad).expect_err("bad kiosk id");
        assert!(
            matches!(&err, CoreBankError::Config(m) if m.contains("kiosk id")),
            "{err}"
        );
    }
    assert_eq!(
        CoreBankClient::new(&config, "K-0101-03")
            .unwrap()
            .kiosk_id(),
        "K-0101-03"
    );
}
