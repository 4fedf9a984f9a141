//! `cargo xtask voices [DIR]`: records kiosk-ui's voice clips (rule A3)
//! with espeak-ng, one WAV file per clip and language, `DIR/zh/<id>.wav`
//! and `DIR/en/<id>.wav` (default `ui/voices`, not committed: about 5 MB
//! of audio, made again in seconds). The clips and their words come from
//! kiosk-ui itself (`kiosk-ui --voice-catalogue`), so the xtask keeps no
//! copy of them. A bank replaces the files with its own recordings.
//!
//! `cargo xtask hall-voices [DIR]`: the same for the hall display's call
//! announcements (rule Q6), from the clip list built into kioskd
//! (`src/pages/hall-voices.tsv`), into `DIR` (default `hall-voices`, not
//! committed either), which kioskd serves from `[branch] voices_dir`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::processes::bin;
use crate::{root, run_in_root};

/// Where `cargo xtask voices` writes, and where the demo and the UI
/// end-to-end tests read.
pub fn default_dir() -> PathBuf {
    root().join("ui/voices")
}

/// The catalogue the clips in a folder were recorded from: a folder whose
/// copy equals kiosk-ui's catalogue is up to date.
const RECORDED: &str = "catalogue.tsv";

pub fn run(args: &[String]) -> Result<()> {
    let dir = args.first().map(PathBuf::from).unwrap_or_else(default_dir);
    record(&dir)
}

/// Record every clip into `dir`, unless it already holds this catalogue's.
pub fn record(dir: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_in_root(
        &cargo,
        &["build", "--quiet", "-p", "kiosk-ui", "--bin", "kiosk-ui"],
    )?;
    let out = Command::new(bin("kiosk-ui", false))
        .arg("--voice-catalogue")
        .output()
        .context("asking kiosk-ui for its voice clips")?;
    if !out.status.success() {
        bail!("kiosk-ui --voice-catalogue failed ({})", out.status);
    }
    let catalogue = String::from_utf8(out.stdout).context("the catalogue is not UTF-8")?;
    record_catalogue(dir, &catalogue)
}

/// Where `cargo xtask hall-voices` writes.
pub fn hall_default_dir() -> PathBuf {
    root().join("hall-voices")
}

pub fn run_hall(args: &[String]) -> Result<()> {
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(hall_default_dir);
    let catalogue = std::fs::read_to_string(root().join("src/pages/hall-voices.tsv"))
        .context("reading src/pages/hall-voices.tsv")?;
    record_catalogue(&dir, &catalogue)
}

/// Record every clip of a catalogue (`lang<TAB>id<TAB>words` lines) into
/// `dir`, unless it already holds this catalogue's.
fn record_catalogue(dir: &Path, catalogue: &str) -> Result<()> {
    let recorded = dir.join(RECORDED);
    if std::fs::read_to_string(&recorded).is_ok_and(|r| r == *catalogue) {
        eprintln!("xtask: the voice clips in {} are up to date", dir.display());
        return Ok(());
    }
    let mut count = 0;
    for line in catalogue.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(lang), Some(id), Some(text)) = (fields.next(), fields.next(), fields.next())
        else {
            bail!("unexpected catalogue line {line:?}");
        };
        let voice = match lang {
            "zh" => "cmn",
            "en" => "en",
            other => bail!("no espeak-ng voice for language {other:?}"),
        };
        let folder = dir.join(lang);
        std::fs::create_dir_all(&folder)?;
        // Written beside, then renamed: a run cut short leaves no half clip.
        let part = folder.join(format!("{id}.wav.part"));
        let status = Command::new("espeak-ng")
            .args(["-v", voice, "-w"])
            .arg(&part)
            .arg(text)
            .status()
            .context("running espeak-ng (Debian package espeak-ng)")?;
        if !status.success() {
            bail!("espeak-ng -v {voice} failed on {id} ({status})");
        }
        std::fs::rename(&part, folder.join(format!("{id}.wav")))?;
        count += 1;
    }
    std::fs::write(&recorded, catalogue)?;
    eprintln!("xtask: recorded {count} voice clips into {}", dir.display());
    Ok(())
}
