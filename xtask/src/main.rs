//! `cargo xtask setup|demo|test|bench|soak|fuzz|audit|voices`: the README's commands.
//!
//! Every command first makes sure the system packages the kiosk needs are
//! installed (with `apt-get`, as root or through `sudo`), so a fresh Debian
//! machine with only Rust needs nothing else.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod alerts;
mod bench;
mod bench_branch;
mod bench_queue;
mod bench_sync;
mod bench_tools;
mod bench_ui;
mod demo;
mod fuzz;
mod package;
mod processes;
mod soak;
mod supply;
mod ui;
mod voices;

/// Debian packages every command needs: PC/SC daemon and library, the
/// vpcd virtual reader driver used by the simulators, pkg-config for
/// pcsc-sys, `ip` and `nsenter` to give the simulators' pcscd a private
/// loopback-only network namespace (vpcd listens on every interface).
const PACKAGES: &[&str] = &[
    "pcscd",
    "libpcsclite-dev",
    "vsmartcard-vpcd",
    "pkg-config",
    "procps",
    "iproute2",
    "util-linux",
    // kiosk-ui: a virtual display where there is none (demo, bench,
    // smoke test, the fault-injection test that SIGKILLs it) and what
    // winit and femtovg load at run time.
    "xvfb",
    "libgl1-mesa-dri",
    "libegl1",
    "libx11-xcb1",
    "libxcursor1",
    "libxi6",
    "libxrandr2",
    "libxkbcommon-x11-0",
    // kiosk-escpos: the fallback fonts for characters the bundled
    // WenQuanYi Micro Hei lacks (CJK Extension A/B in names), printed as
    // raster images (`[printer] raster_fonts`).
    "fonts-hanazono",
    // kiosk-ui's text keyboard (rule A1): librime with the simplified
    // pinyin schema (and the stroke schema and defaults it needs), libclang
    // for the bindings' build script (bindgen), Zinnia with its
    // Simplified Chinese handwriting model.
    "librime-dev",
    "rime-prelude",
    "rime-data-pinyin-simp",
    "rime-data-stroke",
    "libclang-dev",
    "libzinnia-dev",
    "tegaki-zinnia-simplified-chinese",
    // kiosk-ui's voice guidance (rule A3): ALSA for rodio's build (cpal),
    // espeak-ng to record the shipped clips (`cargo xtask voices`).
    "libasound2-dev",
    "espeak-ng",
    // The counter page and the hall display are tested in Debian's
    // Chromium, headless, driven over WebDriver (chromedriver).
    "chromium",
    "chromium-driver",
];

/// Packages for kiosk-ui's linuxkms build (DRM/KMS with libinput touch).
/// Installed when the machine's package lists allow it (stale lists can
/// hold libinput-dev back; the `apt-get update` retry usually cures that);
/// without them `cargo xtask test` says that it skips that build.
const KMS_PACKAGES: &[&str] = &[
    "libinput-dev",
    "libudev-dev",
    "libxkbcommon-dev",
    "libgbm-dev",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("test") => setup().and_then(|()| test(&args[1..])),
        Some("demo") => setup().and_then(|()| demo::run(&args[1..])),
        Some("bench") => setup().and_then(|()| bench::run(&args[1..])),
        Some("screenshots") => setup().and_then(|()| screenshots(&args[1..])),
        Some("soak") => setup().and_then(|()| soak::run(&args[1..])),
        Some("fuzz") => setup().and_then(|()| fuzz::run(&args[1..])),
        Some("hwtest") => setup().and_then(|()| hwtest(&args[1..])),
        Some("audit") => supply::audit(&args[1..]),
        Some("voices") => setup().and_then(|()| voices::run(&args[1..])),
        Some("hall-voices") => setup().and_then(|()| voices::run_hall(&args[1..])),
        Some("package") => setup().and_then(|()| package::run(&args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 setup   install missing system packages (apt-get)\n  \
                 demo    start simulators and kioskd on the demo profile\n  \
                 test    formatting, clippy -D warnings, every test\n          \
                 [--under-load] with two busy loops beside it (flakiness check)\n  \
                 bench   [SECTION...] (read idle sync queue branch ui; all by default) measure, write docs/BENCHMARKS.md\n  \
                 screenshots  render every UI screen (both languages, both orientations) and the branch pages to docs/screens\n  \
                 soak    the fault-injection suite, larger (--scale N, default 10); write docs/RELIABILITY.md\n  \
                 fuzz    [--seconds N] [TARGET...] run the fuzz targets; write docs/RELIABILITY.md\n  \
                 hwtest  [--sam PATH]... [--printer PATH]... [--read] [--print] probe the real readers and printers attached\n  \
                 audit   RustSec advisories (cargo deny); exit 3 when the database cannot be fetched\n  \
                 voices  [DIR] record kiosk-ui's voice clips with espeak-ng (default ui/voices)\n  \
                 hall-voices [DIR] record the hall display's call clips with espeak-ng (default hall-voices)\n  \
                 package [--arch amd64|arm64] [--profile release|dev] Debian packages into target/debian/PROFILE"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<supply::AuditUnavailable>() => {
            eprintln!("xtask: {e:#}");
            ExitCode::from(supply::AUDIT_UNAVAILABLE)
        }
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Install the missing system packages.
pub fn setup() -> Result<()> {
    install(PACKAGES)?;
    if let Err(e) = install(KMS_PACKAGES) {
        eprintln!("xtask: the linuxkms build's packages cannot be installed here: {e:#}");
    }
    Ok(())
}

pub fn install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let as_root = nix_is_root();
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = if as_root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let status = cmd.status().context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    // The package lists may be missing on a fresh machine.
    if apt(&["install", "-y", "--no-install-recommends"]
        .iter()
        .copied()
        .chain(missing.iter().copied())
        .collect::<Vec<_>>())
    .is_err()
    {
        apt(&["update"])?;
        apt(&["install", "-y", "--no-install-recommends"]
            .iter()
            .copied()
            .chain(missing.iter().copied())
            .collect::<Vec<_>>())?;
    }
    Ok(())
}

pub fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Run a command in the workspace root, failing on a non-zero exit.
pub fn run_in_root(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The opt-in hardware check, `kiosk-hwtest` (its own crate: it links
/// libpcsclite, which the xtask installs and so must not need).
fn hwtest(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut all = vec!["run", "--quiet", "-p", "kiosk-hwtest", "--"];
    all.extend(args.iter().map(String::as_str));
    run_in_root(&cargo, &all)
}

/// Render every kiosk-ui screen headless (Slint's software renderer) to
/// `docs/screens` (or the directory given).
fn screenshots(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("docs/screens"));
    let out = out.to_string_lossy().into_owned();
    run_in_root(
        &cargo,
        &[
            "run",
            "--quiet",
            "-p",
            "kiosk-ui",
            "--features",
            "testing",
            "--bin",
            "kiosk-ui-screenshots",
            "--",
            &out,
        ],
    )?;
    // The counter page and the hall display, in headless Chromium: the
    // browser test writes them when told where.
    let status = Command::new(&cargo)
        .current_dir(root())
        .env("KIOSK_PAGES_SCREENS", &out)
        .args([
            "test",
            "--quiet",
            "-p",
            "kiosk",
            "--test",
            "tests",
            "pages::rule_q6_a_call_from_the_counter_page",
        ])
        .status()
        .context("cargo test (page screenshots)")?;
    if !status.success() {
        bail!("the page screenshots failed ({status})");
    }
    Ok(())
}

/// Busy processes that load the machine's cores while the suite runs
/// (`cargo xtask test --under-load`): a test that passes only on an idle
/// machine waits for the wrong thing. They are killed when dropped.
struct BusyLoops(Vec<std::process::Child>);

impl BusyLoops {
    fn start(count: usize) -> Result<BusyLoops> {
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(std::process::Stdio::null())
                .spawn()
                .context("starting a busy loop")?;
            children.push(child);
        }
        eprintln!("xtask: {count} busy loops run beside the suite");
        Ok(BusyLoops(children))
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How many busy loops `--under-load` starts: as many as CI's machine
/// has cores.
const UNDER_LOAD_BUSY_LOOPS: usize = 2;

fn test(args: &[String]) -> Result<()> {
    let under_load = args.iter().any(|a| a == "--under-load");
    let extra: Vec<String> = args
        .iter()
        .filter(|a| *a != "--under-load")
        .cloned()
        .collect();
    let _load = if under_load {
        Some(BusyLoops::start(UNDER_LOAD_BUSY_LOOPS)?)
    } else {
        None
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_in_root(&cargo, &["fmt", "--all", "--", "--check"])?;
    run_in_root(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The kiosk build of the UI (DRM/KMS, libinput) compiles too, where
    // its libraries could be installed.
    let has_libinput = Command::new("pkg-config")
        .args(["--exists", "libinput"])
        .status()
        .is_ok_and(|s| s.success());
    if has_libinput {
        run_in_root(
            &cargo,
            &[
                "clippy",
                "-p",
                "kiosk-ui",
                "--no-default-features",
                "--features",
                "linuxkms",
                "--",
                "-D",
                "warnings",
            ],
        )?;
    } else {
        eprintln!(
            "xtask: SKIPPED the kiosk-ui linuxkms build: libinput-dev is not installed \
             (apt-get could not install it on this machine)"
        );
    }
    // The fault-injection tests SIGKILL the real kiosk-ui binary, which
    // `cargo test` does not build (it is not the root package's).
    run_in_root(&cargo, &["build", "-p", "kiosk-ui", "--bin", "kiosk-ui"])?;
    // The UI end-to-end tests of voice guidance read the recorded clips.
    voices::record(&voices::default_dir())?;
    // Licenses, bans and sources (deny.toml); advisories: `cargo xtask audit`.
    supply::deny_check()?;
    // The shipped alert rules: valid, and firing when they should.
    alerts::check()?;
    // The fuzz targets only type-check here (no libFuzzer, no fuzzing):
    // they share the workspace's target directory, so only the path crates
    // and the targets themselves are checked again.
    fuzz::check()?;
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    run_in_root(&cargo, &args)?;
    // The demo itself, end to end: both simulated readers read a card.
    demo::run(&["--smoke".to_string()])?;
    // The Debian packages: installed, checked, upgraded and purged here;
    // the arm64 cross build type-checked.
    package::install_check()?;
    package::check_arm64()?;
    Ok(())
}
