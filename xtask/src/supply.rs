//! Supply chain: `cargo deny` with the policy in `deny.toml`.
//!
//! * `cargo xtask test` runs `cargo deny --workspace check licenses bans
//!   sources` (no network beyond crates.io).
//! * `cargo xtask audit` runs the advisories check. It needs the RustSec
//!   database, a git repository on GitHub; where that cannot be fetched it
//!   says so and exits with [`AUDIT_UNAVAILABLE`], never pretending the
//!   check passed.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{root, run_in_root};

/// Exit code of `cargo xtask audit` when the advisory database could not be
/// fetched and no earlier copy exists: nothing was checked.
pub const AUDIT_UNAVAILABLE: u8 = 3;

/// The advisories check could not run (see [`AUDIT_UNAVAILABLE`]).
#[derive(Debug)]
pub struct AuditUnavailable(pub String);

impl std::fmt::Display for AuditUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuditUnavailable {}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Install cargo-deny when `cargo deny --version` fails (one quick process
/// when it is there).
pub fn ensure_cargo_deny() -> Result<()> {
    ensure_cargo_tool("deny", "cargo-deny", None)
}

/// Install the cargo plug-in `krate` (at `version`, if given) when `cargo
/// SUBCOMMAND --version` fails.
pub fn ensure_cargo_tool(subcommand: &str, krate: &str, version: Option<&str>) -> Result<()> {
    let present = Command::new(cargo())
        .args([subcommand, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    let mut args = vec!["install", "--locked", krate];
    if let Some(v) = version {
        args.extend(["--version", v]);
    }
    eprintln!("xtask: {krate} is missing: cargo {}", args.join(" "));
    let status = Command::new(cargo())
        .args(&args)
        .status()
        .context("starting cargo install")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Licenses, bans and sources of the whole workspace (for `xtask test`).
pub fn deny_check() -> Result<()> {
    ensure_cargo_deny()?;
    run_in_root(
        &cargo(),
        &[
            "deny",
            "--workspace",
            "check",
            "licenses",
            "bans",
            "sources",
        ],
    )
}

/// `cargo xtask audit`: known vulnerabilities, unmaintained and yanked
/// crates (RustSec advisories).
pub fn audit(args: &[String]) -> Result<()> {
    if let Some(other) = args.first() {
        bail!("cargo xtask audit takes no arguments (got {other:?})");
    }
    ensure_cargo_deny()?;
    eprintln!("xtask: cargo deny fetch db");
    let fetch = Command::new(cargo())
        .args(["deny", "fetch", "db"])
        .current_dir(root())
        .output()
        .context("starting cargo deny fetch")?;
    let mut offline_args: Vec<&str> = Vec::new();
    if !fetch.status.success() {
        let why = String::from_utf8_lossy(&fetch.stderr)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no error message")
            .to_string();
        let db = advisory_db_dir();
        // A fetched database is a directory (`github.com-<hash>`); a
        // failed fetch leaves only `db.lock`.
        let cached = db.as_ref().is_some_and(|d| {
            std::fs::read_dir(d)
                .is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.path().is_dir())))
        });
        if !cached {
            return Err(AuditUnavailable(format!(
                "the advisories check could NOT run here: the RustSec advisory database \
                 (https://github.com/rustsec/advisory-db) could not be fetched ({why}) and \
                 there is no earlier copy{}. Nothing was checked for known vulnerabilities; \
                 run `cargo xtask audit` where github.com is reachable.",
                db.map(|d| format!(" in {}", d.display()))
                    .unwrap_or_default()
            ))
            .into());
        }
        eprintln!(
            "xtask: WARNING: the advisory database could not be refreshed ({why}); \
             checking against the earlier copy, which may miss recent advisories"
        );
        offline_args.push("--offline");
    }
    let mut args = vec!["deny", "--workspace"];
    args.extend(offline_args);
    args.extend(["check", "advisories"]);
    run_in_root(&cargo(), &args)
}

/// Where deny.toml keeps the advisory database (`$CARGO_HOME/advisory-dbs`).
fn advisory_db_dir() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))?;
    Some(home.join("advisory-dbs"))
}
