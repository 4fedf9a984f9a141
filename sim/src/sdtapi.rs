//! The stand-in for a vendor's `sdtapi` library (`sim/sdtapi`, package
//! `kiosk-sdtapi-sim`, a `cdylib`), for tests that load it for real.
//!
//! Cargo builds a test's dependencies but not a `cdylib` for it (artifact
//! dependencies are unstable), so [`library`] builds it once per test
//! process with `cargo build -p kiosk-sdtapi-sim` into the test's own
//! target directory and profile, and returns its path. The library maps
//! port `n` to the serial device named by the environment variable
//! [`port_env`]`(n)`: hand that to the process that loads it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Result, SimError};

/// The package of the stand-in library.
pub const PACKAGE: &str = "kiosk-sdtapi-sim";

/// The environment variable naming port `port`'s serial device (as
/// `sim/sdtapi` reads it).
pub fn port_env(port: i32) -> String {
    format!("KIOSK_SDTAPI_SIM_PORT_{port}")
}

/// The stand-in library's path, built on first use (see the module docs).
pub fn library() -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone().map_err(SimError::Build)
}

fn build() -> std::result::Result<PathBuf, String> {
    // A test runs as <target>/<profile>/deps/<test>.
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| format!("{} is not in a target directory", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "-p", PACKAGE, "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p {PACKAGE} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let library = profile_dir.join(format!(
        "{}kiosk_sdtapi_sim{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    if library.exists() {
        Ok(library)
    } else {
        Err(format!("{} was not built", library.display()))
    }
}
