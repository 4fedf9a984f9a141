//! The shipped Prometheus alert rules (`packaging/prometheus/`), checked
//! with `promtool check rules` and unit-tested with `promtool test rules`
//! in `cargo xtask test`. promtool is taken out of Debian's `prometheus`
//! package (`apt-get download`, unpacked into the target directory) rather
//! than installed, so no Prometheus server is set up on the machine.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::processes::target_dir;
use crate::{root, run_in_root};

/// `target/tools/promtool`, fetched once.
fn promtool() -> Result<PathBuf> {
    let tools = target_dir().join("tools");
    let promtool = tools.join("usr/bin/promtool");
    if promtool.exists() {
        return Ok(promtool);
    }
    let download = tools.join("download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    let fetch = |dir: &std::path::Path| {
        Command::new("apt-get")
            .args(["download", "prometheus"])
            .current_dir(dir)
            .status()
            .context("apt-get download prometheus")
    };
    if !fetch(&download)?.success() {
        // A fresh machine may have no package lists yet.
        run_in_root("apt-get", &["update"])?;
        ensure!(
            fetch(&download)?.success(),
            "apt-get download prometheus failed"
        );
    }
    let deb = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("no prometheus .deb downloaded")?;
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tools)
        .status()
        .context("dpkg-deb -x")?;
    ensure!(status.success(), "dpkg-deb -x {} failed", deb.display());
    let _ = std::fs::remove_dir_all(&download);
    ensure!(promtool.exists(), "no promtool in {}", deb.display());
    Ok(promtool)
}

/// `promtool check rules` and `promtool test rules` on the shipped rules.
pub fn check() -> Result<()> {
    let promtool = promtool()?;
    let dir = root().join("packaging/prometheus");
    for args in [
        ["check", "rules", "kiosk-alerts.yml"],
        ["test", "rules", "kiosk-alerts.test.yml"],
    ] {
        eprintln!("xtask: promtool {}", args.join(" "));
        let status = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .status()
            .context("running promtool")?;
        ensure!(status.success(), "promtool {} failed", args.join(" "));
    }
    Ok(())
}
