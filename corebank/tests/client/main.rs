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

/// Writes the shared key (hex) into `dir`.
pub fn write_key(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("corebank.key");
    std::fs::write(&path, format!("{}\n", server::KEY_HEX)).expect("write key");
    path
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
