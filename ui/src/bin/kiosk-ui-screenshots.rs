//! `cargo xtask screenshots`: every screen, in both languages, on the
//! 1920 x 1080 and 1080 x 1920 panels, in the standard and the
//! elderly-friendly mode, rendered headless by Slint's software renderer
//! to `docs/screens/[elderly-]<screen>-<lang>-<orientation>.png`.
//!
//! The screens are reached by [`kiosk_ui::tour`] (synthetic, masked
//! data; no daemon). Each is also checked before it is written: every
//! button inside the window and at least a touch target large.
//!
//! `--check`: render nothing; walk every panel the screens must fit
//! (`tour::CHECKED_PANELS`) and list what does not fit.

use std::path::{Path, PathBuf};

use i_slint_backend_testing::{TestingBackend, TestingBackendOptions};
use kiosk_ui::AppWindow;
use kiosk_ui::tour::{self, CHECKED_PANELS, SCREENSHOT_PANELS};
use slint::ComponentHandle;

fn main() -> anyhow::Result<()> {
    let check_only = std::env::args().any(|a| a == "--check");
    let out: PathBuf = std::env::args()
        .skip(1)
        .find(|a| a != "--check")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docs/screens"));
    std::fs::create_dir_all(&out)?;
    slint::platform::set_platform(Box::new(TestingBackend::new(TestingBackendOptions {
        mock_time: true,
        threading: false,
        renderer_name: Some("software".into()),
    })))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if check_only {
        return check();
    }
    let mut count = 0;
    for panel in SCREENSHOT_PANELS {
        for en in [false, true] {
            for elderly in [false, true] {
                let (window, controller) = tour::ui(panel, elderly);
                let lang = if en { "en" } else { "zh" };
                let prefix = if elderly { "elderly-" } else { "" };
                let mut shot = |name: &str| -> anyhow::Result<()> {
                    let problems = kiosk_ui::testing::layout_problems(&window);
                    anyhow::ensure!(
                        problems.is_empty(),
                        "{prefix}{name} ({lang}, {}x{}): {problems:?}",
                        panel.width,
                        panel.height
                    );
                    let path =
                        out.join(format!("{prefix}{name}-{lang}-{}.png", panel.orientation()));
                    snapshot(&window, &path)?;
                    count += 1;
                    Ok(())
                };
                if elderly {
                    tour::elderly(&controller, en, &mut shot)?;
                } else {
                    tour::standard(&controller, en, &mut shot)?;
                }
            }
        }
    }
    println!("wrote {count} screens to {}", out.display());
    Ok(())
}

/// Every screen on every panel it must fit: what does not fit, listed.
fn check() -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for panel in CHECKED_PANELS {
        for en in [false, true] {
            for elderly in [false, true] {
                let (window, controller) = tour::ui(panel, elderly);
                let mut shot = |name: &str| -> anyhow::Result<()> {
                    for p in kiosk_ui::testing::layout_problems(&window) {
                        problems.push(format!(
                            "{}{name} ({}, {}x{} at {} dpi): {p}",
                            if elderly { "elderly-" } else { "" },
                            if en { "en" } else { "zh" },
                            panel.width,
                            panel.height,
                            panel.dpi
                        ));
                    }
                    Ok(())
                };
                if elderly {
                    tour::elderly(&controller, en, &mut shot)?;
                } else {
                    tour::standard(&controller, en, &mut shot)?;
                }
            }
        }
    }
    for p in &problems {
        println!("{p}");
    }
    anyhow::ensure!(problems.is_empty(), "{} problems", problems.len());
    println!("every screen fits every panel");
    Ok(())
}

fn snapshot(window: &AppWindow, path: &Path) -> anyhow::Result<()> {
    let buffer = window
        .window()
        .take_snapshot()
        .map_err(|e| anyhow::anyhow!("rendering {}: {e}", path.display()))?;
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(
        std::io::BufWriter::new(file),
        buffer.width(),
        buffer.height(),
    );
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Best);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(buffer.as_bytes())?;
    Ok(())
}
