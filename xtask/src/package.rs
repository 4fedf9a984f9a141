//! `cargo xtask package [--arch amd64|arm64] [--profile release|dev]`: the
//! Debian packages `kioskd` (daemon, kioskctl, unit, sysusers, tmpfiles,
//! example configs, `/etc/kiosk/kiosk.toml` as a conffile) and `kiosk-ui`
//! (the linuxkms build, its unit and voice clips), made by cargo-deb from
//! the `[package.metadata.deb]` tables, into `target/debian/`.
//!
//! arm64 is cross-built with Debian's `gcc-aarch64-linux-gnu` and the
//! arm64 (multiarch) `libpcsclite-dev`, installed here when missing; the
//! arm64 packages hold kioskd only (kiosk-ui's engines and display stack
//! are not cross-installed yet).
//!
//! [`install_check`] is `cargo xtask test`'s check of the amd64 packages
//! on this machine: install, `kioskd --check` on every installed example
//! config, `systemd-analyze verify` on the installed units, an upgrade over
//! itself (which must back the store up and keep the store and its key),
//! a restore of that backup by root (as docs/install.md rolls back), and a
//! purge that leaves the file system as it was.

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::processes::target_dir;
use crate::{install, root, run_in_root, supply, voices};

/// The cargo-deb release the package layout was written for.
const CARGO_DEB_VERSION: &str = "3.8.0";
const ARM64_TRIPLE: &str = "aarch64-unknown-linux-gnu";
/// Debian's cross toolchain and the arm64 libraries kioskd links.
const ARM64_PACKAGES: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "libpcsclite-dev:arm64",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Amd64,
    Arm64,
}

/// What a package build made.
pub struct Built {
    pub kioskd: PathBuf,
    /// `None` where kiosk-ui could not be built (arm64, or no libinput).
    pub kiosk_ui: Option<PathBuf>,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut arch = Arch::Amd64;
    let mut profile = "release".to_string();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--arch" => {
                arch = match it.next().map(String::as_str) {
                    Some("amd64") => Arch::Amd64,
                    Some("arm64") => Arch::Arm64,
                    other => bail!("--arch amd64|arm64, not {other:?}"),
                }
            }
            "--profile" => profile = it.next().context("--profile NAME")?.clone(),
            // What `cargo xtask test` runs: build (dev), install, check,
            // upgrade, purge.
            "--install-check" => return install_check(),
            // What `cargo xtask test` runs for arm64.
            "--check-arm64" => return check_arm64(),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let built = build(arch, &profile)?;
    println!("{}", built.kioskd.display());
    if let Some(ui) = built.kiosk_ui {
        println!("{}", ui.display());
    }
    Ok(())
}

/// Build the binaries and the packages.
pub fn build(arch: Arch, profile: &str) -> Result<Built> {
    supply::ensure_cargo_tool("deb", "cargo-deb", Some(CARGO_DEB_VERSION))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = target_dir().join("debian").join(profile);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let out_arg = out.display().to_string();
    let mut target: Vec<&str> = Vec::new();
    if arch == Arch::Arm64 {
        setup_arm64()?;
        target = vec!["--target", ARM64_TRIPLE];
    }
    let mut build_args = vec!["build", "--profile", profile, "-p", "kiosk", "--bins"];
    build_args.extend(&target);
    run_cross(&cargo, &build_args, arch)?;
    let mut deb_args = vec![
        "deb",
        "--no-build",
        "--profile",
        profile,
        "-p",
        "kiosk",
        "-o",
        &out_arg,
    ];
    if profile != "release" {
        deb_args.push("--fast");
    }
    deb_args.extend(&target);
    run_cross(&cargo, &deb_args, arch)?;
    let kioskd = find_deb(&out, "kioskd_")?;
    let has_libinput = Command::new("pkg-config")
        .args(["--exists", "libinput"])
        .status()
        .is_ok_and(|s| s.success());
    let kiosk_ui = if arch == Arch::Amd64 && has_libinput {
        voices::record(&voices::default_dir())?;
        run_in_root(
            &cargo,
            &[
                "build",
                "--profile",
                profile,
                "-p",
                "kiosk-ui",
                "--bin",
                "kiosk-ui",
                "--features",
                "linuxkms",
            ],
        )?;
        let ui_args: Vec<&str> = deb_args
            .iter()
            .map(|a| if *a == "kiosk" { "kiosk-ui" } else { a })
            .collect();
        run_in_root(&cargo, &ui_args)?;
        Some(find_deb(&out, "kiosk-ui_")?)
    } else {
        eprintln!(
            "xtask: no kiosk-ui package: {}",
            if arch == Arch::Arm64 {
                "arm64 packages hold kioskd only"
            } else {
                "libinput-dev is not installed"
            }
        );
        None
    };
    Ok(Built { kioskd, kiosk_ui })
}

fn find_deb(dir: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
        })
        .with_context(|| format!("no {prefix}*.deb in {}", dir.display()))
}

/// The cross toolchain, the arm64 libraries and Rust's arm64 standard
/// library.
fn setup_arm64() -> Result<()> {
    let foreign = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .context("dpkg")?;
    if !String::from_utf8_lossy(&foreign.stdout)
        .lines()
        .any(|l| l == "arm64")
    {
        eprintln!("xtask: dpkg --add-architecture arm64");
        run_in_root("dpkg", &["--add-architecture", "arm64"])?;
        run_in_root("apt-get", &["update"])?;
    }
    install(ARM64_PACKAGES)?;
    run_in_root("rustup", &["target", "add", ARM64_TRIPLE])
}

/// Run cargo with the cross linker, C compiler and pkg-config search path
/// for `arch`.
fn run_cross(cargo: &str, args: &[&str], arch: Arch) -> Result<()> {
    if arch == Arch::Amd64 {
        return run_in_root(cargo, args);
    }
    eprintln!("xtask: {cargo} {} (cross)", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env("CC_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-gcc")
        .env("AR_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-ar")
        .env("PKG_CONFIG_ALLOW_CROSS", "1")
        .env(
            "PKG_CONFIG_LIBDIR",
            "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig",
        )
        .status()
        .with_context(|| format!("starting {cargo}"))?;
    ensure!(
        status.success(),
        "{cargo} {} failed ({status})",
        args.join(" ")
    );
    Ok(())
}

/// `cargo check` of kioskd and kioskctl for arm64 (`cargo xtask test`: the
/// cross build stays buildable without the time of a full cross build).
pub fn check_arm64() -> Result<()> {
    setup_arm64()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_cross(
        &cargo,
        &["check", "--target", ARM64_TRIPLE, "-p", "kiosk", "--bins"],
        Arch::Arm64,
    )
}

/// Where the packages put or make files; compared before install and after
/// purge.
const WATCHED: &[&str] = &[
    "/etc",
    "/usr/bin",
    "/usr/lib/systemd",
    "/usr/lib/sysusers.d",
    "/usr/lib/tmpfiles.d",
    "/usr/lib/udev",
    "/usr/share/doc",
    "/usr/share/kiosk-ui",
    "/var/lib",
    "/var/backups",
];

/// Install, check, upgrade and purge the amd64 packages on this machine
/// (root only; never on a machine where kioskd is installed already).
pub fn install_check() -> Result<()> {
    if !crate::nix_is_root() {
        eprintln!("xtask: SKIPPED the package install check: it needs root (CI runs as root)");
        return Ok(());
    }
    if crate::is_installed("kioskd") || crate::is_installed("kiosk-ui") {
        eprintln!(
            "xtask: SKIPPED the package install check: kioskd is installed on this machine \
             and the check would purge it"
        );
        return Ok(());
    }
    let built = build(Arch::Amd64, "dev")?;
    let mut debs = vec![built.kioskd.display().to_string()];
    debs.extend(built.kiosk_ui.iter().map(|p| p.display().to_string()));
    let before = snapshot()?;
    let result = install_upgrade(&debs, built.kiosk_ui.is_some());
    // Purge whatever happened, then compare.
    let purged = run_in_root("dpkg", &["--purge", "kiosk-ui", "kioskd"]);
    result?;
    purged?;
    let after = snapshot()?;
    let added: Vec<_> = after.difference(&before).collect();
    let removed: Vec<_> = before.difference(&after).collect();
    ensure!(
        added.is_empty() && removed.is_empty(),
        "the purge left the machine changed: added {added:?}, removed {removed:?}"
    );
    eprintln!("xtask: packages installed, checked, upgraded over themselves and purged cleanly");
    Ok(())
}

fn install_upgrade(debs: &[String], with_ui: bool) -> Result<()> {
    let mut install_args = vec!["-i"];
    install_args.extend(debs.iter().map(String::as_str));
    run_in_root("dpkg", &install_args)?;

    // The files a technician adds: the bank's key and CA, as docs/install.md says.
    let scratch = tempfile::tempdir()?;
    write_private(Path::new("/etc/kiosk/corebank.key"), &"ab".repeat(32))?;
    make_test_ca(Path::new("/etc/kiosk/corebank-ca.pem"), scratch.path())?;
    let mut configs = vec![PathBuf::from("/etc/kiosk/kiosk.toml")];
    for entry in std::fs::read_dir("/usr/share/doc/kiosk/examples")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            configs.push(path);
        }
    }
    ensure!(configs.len() >= 3, "example configs missing: {configs:?}");
    for config in &configs {
        run_in_root(
            "kioskd",
            &["--check", "--config", &config.display().to_string()],
        )?;
    }
    let mut units = vec!["/usr/lib/systemd/system/kioskd.service"];
    if with_ui {
        units.push("/usr/lib/systemd/system/kiosk-ui.service");
    }
    verify_units(&units)?;
    let key_mode = file_mode("/etc/kiosk/store.key")?;
    ensure!(key_mode & 0o077 == 0, "store.key mode {key_mode:o}");

    // A store, made by the installed kioskd as its own user, for the
    // upgrade to back up and keep.
    make_store(scratch.path())?;
    let key_before = std::fs::read("/etc/kiosk/store.key")?;
    let store_before = std::fs::metadata("/var/lib/kiosk/kiosk.db")?.len();
    run_in_root("dpkg", &install_args)?;
    ensure!(
        std::fs::read("/etc/kiosk/store.key")? == key_before,
        "the upgrade replaced the store key"
    );
    ensure!(
        std::fs::metadata("/var/lib/kiosk/kiosk.db")?.len() >= store_before,
        "the upgrade lost the store"
    );
    let backups: Vec<_> = std::fs::read_dir("/var/backups/kiosk")?
        .filter_map(|e| e.ok())
        .collect();
    ensure!(
        backups.len() == 1,
        "the upgrade made {} backups of the store, not one",
        backups.len()
    );
    // The rollback of docs/install.md: root restores that backup; the
    // restored store is kioskd's user's.
    let backup = backups[0].path().display().to_string();
    run_in_root(
        "kioskd",
        &["--config", "/etc/kiosk/kiosk.toml", "--restore", &backup],
    )?;
    let (uid, _) = kiosk_ids()?;
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/var/lib/kiosk/kiosk.db")?);
    ensure!(
        owner == uid,
        "the restored store belongs to uid {owner}, not kiosk"
    );
    for file in ["/etc/kiosk/corebank.key", "/etc/kiosk/corebank-ca.pem"] {
        std::fs::remove_file(file)?;
    }
    Ok(())
}

/// `systemd-analyze verify`: exit 0 and no warning except the two restart
/// keys systemd before 254 does not know (kiosk-ui's growing delay).
fn verify_units(units: &[&str]) -> Result<()> {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .output()
        .context("systemd-analyze")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let unexpected: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("Unknown key 'RestartSteps'"))
        .filter(|l| !l.contains("Unknown key 'RestartMaxDelaySec'"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    ensure!(
        out.status.success() && unexpected.is_empty(),
        "systemd-analyze verify {units:?}: {}",
        stderr
    );
    Ok(())
}

fn make_test_ca(path: &Path, scratch: &Path) -> Result<()> {
    let key = scratch.join("ca.key");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=package test CA",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("openssl")?;
    ensure!(status.success(), "openssl req failed ({status})");
    Ok(())
}

/// Start the installed kioskd as user kiosk on a config with the
/// installed store and key, wait for READY=1, and stop it.
fn make_store(scratch: &Path) -> Result<()> {
    let (uid, gid) = kiosk_ids()?;
    std::os::unix::fs::chown(scratch, Some(uid), Some(gid))?;
    let config = scratch.join("store-only.toml");
    std::fs::write(
        &config,
        format!(
            "[kiosk]\nid = \"K-PACKAGE-TEST\"\nbranch_id = \"0000\"\nbranch_name = \"Package test\"\n\
             profile = \"smart_teller\"\n\n[api]\nsocket = \"{}\"\n\n[store]\n\
             path = \"/var/lib/kiosk/kiosk.db\"\nkey_file = \"/etc/kiosk/store.key\"\n",
            scratch.join("kioskd.sock").display()
        ),
    )?;
    let notify_path = scratch.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path)?;
    std::os::unix::fs::chown(&notify_path, Some(uid), Some(gid))?;
    notify.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut child = Command::new("/usr/bin/kioskd")
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the installed kioskd")?;
    let mut buf = [0u8; 256];
    let ready = notify.recv(&mut buf);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    match ready {
        Ok(n) if buf[..n].starts_with(b"READY=1") => {}
        other => bail!("the installed kioskd did not get ready: {other:?}"),
    }
    ensure!(
        status.success(),
        "the installed kioskd stopped with {status}"
    );
    Ok(())
}

fn kiosk_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, "kiosk"]).output()?;
        ensure!(out.status.success(), "no user kiosk after the install");
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// A new file only its owner can read, as kioskd wants key files.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| path.display().to_string())?
        .write_all(text.as_bytes())?;
    Ok(())
}

fn file_mode(path: &str) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)
        .with_context(|| path.to_string())?
        .permissions()
        .mode())
}

/// Every path under [`WATCHED`] (the package database itself excluded).
fn snapshot() -> Result<BTreeSet<PathBuf>> {
    let mut seen = BTreeSet::new();
    for dir in WATCHED {
        walk(Path::new(dir), &mut seen);
    }
    Ok(seen)
}

fn walk(dir: &Path, seen: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // dpkg's and apt's own records, and the account files' backups
        // (passwd-, group-): sysusers' users stay, as Debian's do.
        if path.starts_with("/var/lib/dpkg")
            || path.starts_with("/var/lib/apt")
            || path.to_string_lossy().ends_with('-')
        {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        seen.insert(path.clone());
        if is_dir {
            walk(&path, seen);
        }
    }
}
