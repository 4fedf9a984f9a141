//! What every benchmark of `cargo xtask bench` uses: a kioskd config in
//! its own directory, a subscribed client, and median / p95 / mean.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use kiosk_proto::Client;

/// A kioskd config in `dir` with `readers` (TOML tables) appended.
pub fn config(dir: &Path, readers: &str) -> Result<std::path::PathBuf> {
    let path = dir.join("kiosk.toml");
    std::fs::write(
        &path,
        format!(
            "[kiosk]\nid = \"K-BENCH\"\nbranch_id = \"0101\"\nbranch_name = \"Bench\"\nprofile = \"smart_teller\"\n\n\
             [api]\nsocket = \"{}\"\nallow_direct_changes = true\n\n[log]\nlevel = \"warn\"\n\n{readers}",
            dir.join("kioskd.sock").display()
        ),
    )?;
    Ok(path)
}

/// A client on `dir`'s kioskd, subscribed to its events.
pub async fn subscribed(dir: &Path) -> Result<Client> {
    let mut c = Client::connect(dir.join("kioskd.sock")).await?;
    c.subscribe().await?;
    Ok(c)
}

/// Median, p95 and mean in milliseconds.
pub fn stats(v: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let p95 = ms[(ms.len() * 95 / 100).min(ms.len() - 1)];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    (median, p95, mean)
}
