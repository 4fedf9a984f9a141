//! The baseline of kiosk-ui's start-up figures in `cargo xtask bench`: the
//! smallest Slint window (one line of text) with the same backend, renderer
//! and display. Prints its time to first frame and its RSS, then exits.

use std::cell::Cell;
use std::time::Instant;

slint::slint! {
    export component Minimal inherits Window {
        width: 1280px;
        height: 800px;
        Text { text: "baseline"; }
    }
}

fn main() -> Result<(), slint::PlatformError> {
    let started = Instant::now();
    let window = Minimal::new()?;
    let first = Cell::new(true);
    window
        .window()
        .set_rendering_notifier(move |state, _| {
            if matches!(state, slint::RenderingState::AfterRendering) && first.replace(false) {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let rss = std::fs::read_to_string("/proc/self/status")
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
                    .unwrap_or_default();
                eprintln!("first frame first_frame_ms={ms:.1} rss={rss}");
                let _ = slint::quit_event_loop();
            }
        })
        .map_err(|e| slint::PlatformError::Other(e.to_string()))?;
    window.run()
}
