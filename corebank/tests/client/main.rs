//! Integration tests of the core-bank client against a scripted server on
//! loopback (`server.rs`) that checks every signature.

mod config;
mod endpoints;
mod errors;
mod logging;
mod server;
mod tls;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use kiosk_corebank::{CoreBankClient, CoreBankConfig};

/// Writes the shared key (hex) into `dir`, mode 0600 as a key file must be.
pub fn write_key(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("corebank.key");
    write_secret(&path, &format!("{}\n", server::KEY_HEX));
    path
}

/// Writes `text` to a new file at `path` with mode 0600.
pub fn write_secret(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("open key file");
    f.write_all(text.as_bytes()).expect("write key");
}

/// A plain-HTTP configuration for a loopback server.
pub fn plain_config(url: &str, dir: &tempfile::TempDir) -> CoreBankConfig {
    let mut config = CoreBankConfig::new(url, write_key(dir));
    config.allow_plain_http = true;
    config
}

/// A client of a plain-HTTP loopback server.
pub fn plain_client(url: &str) -> CoreBankClient {
    let dir = tempfile::tempdir().expect("tempdir");
    CoreBankClient::new(&plain_config(url, &dir), server::KIOSK_ID).expect("client")
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}
