//! `cargo xtask bench`'s in-process kiosk-ui figures (release build):
//! the security question's screen on a 1920 x 1080 panel, drawn by
//! Slint's software renderer (the CPU; no GPU is assumed), with the real
//! keyboard engines.
//!
//! * keystroke → candidates on screen: a pinyin key handed to the UI
//!   (librime composes, the model takes the candidates) until the frame
//!   that shows them is rendered, in full;
//! * stroke end → candidates on screen: the finger leaving the
//!   handwriting pad (Zinnia recognises the strokes so far) until that
//!   frame is rendered;
//! * the process's RSS with both engines loaded and used.
//!
//! `--no-engines` walks the same screens with the Latin keys only: the
//! RSS baseline. Prints one JSON object on stdout.

use std::time::Instant;

use i_slint_backend_testing::{TestingBackend, TestingBackendOptions};
use kiosk_ui::keyboard::Mode;
use kiosk_ui::model::{Action, Input};
use kiosk_ui::tour::{self, Panel};
use slint::ComponentHandle;

/// Pinyin typed, syllable by syllable; each key is one sample.
const WORDS: &[&str] = &[
    "shiyanxiaoxue",
    "wangfang",
    "beijing",
    "zhongguoyinhang",
    "nihao",
];
/// Characters written on the pad, each stroke end one sample.
const WRITTEN: &[char] = &['实', '验', '小', '学'];
const ROUNDS: usize = 3;

fn main() -> anyhow::Result<()> {
    let engines = !std::env::args().any(|a| a == "--no-engines");
    slint::platform::set_platform(Box::new(TestingBackend::new(TestingBackendOptions {
        mock_time: false,
        threading: false,
        renderer_name: Some("software".into()),
    })))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let panel = Panel {
        width: 1920.0,
        height: 1080.0,
        dpi: 120.0,
    };
    let (window, controller) = tour::ui_with_engines(panel, false, engines);
    let feed = |input: Input| controller.borrow_mut().dispatch(input);
    // The frame the customer sees: rendered in full on the CPU.
    let frame = || -> anyhow::Result<()> {
        window
            .window()
            .take_snapshot()
            .map(drop)
            .map_err(|e| anyhow::anyhow!("rendering: {e}"))
    };
    tour::to_question(&controller);
    frame()?;
    let mut keystroke_ms = Vec::new();
    let mut stroke_ms = Vec::new();
    if engines {
        for _ in 0..ROUNDS {
            feed(Input::Action(Action::KeyboardMode(Mode::Pinyin)));
            for word in WORDS {
                for c in word.chars() {
                    let t = Instant::now();
                    feed(Input::Action(Action::Key(c)));
                    frame()?;
                    keystroke_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                anyhow::ensure!(
                    !controller
                        .borrow()
                        .model()
                        .view()
                        .keyboard
                        .candidates
                        .is_empty(),
                    "librime offered nothing for {word}"
                );
                feed(Input::Action(Action::Clear));
            }
            feed(Input::Action(Action::KeyboardMode(Mode::Handwriting)));
            for c in WRITTEN {
                let strokes = kiosk_ui::zinnia::recorded::strokes_of(*c)
                    .ok_or_else(|| anyhow::anyhow!("no recorded strokes of {c}"))?;
                for stroke in strokes {
                    let mut points = stroke.into_iter();
                    if let Some(first) = points.next() {
                        feed(Input::Action(Action::InkDown(first)));
                    }
                    for p in points {
                        feed(Input::Action(Action::InkMove(p)));
                    }
                    let t = Instant::now();
                    feed(Input::Action(Action::InkUp));
                    frame()?;
                    stroke_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                anyhow::ensure!(
                    !controller
                        .borrow()
                        .model()
                        .view()
                        .keyboard
                        .candidates
                        .is_empty(),
                    "Zinnia offered nothing for {c}"
                );
                feed(Input::Action(Action::ClearInk));
            }
        }
    } else {
        feed(Input::Action(Action::KeyboardMode(Mode::Latin)));
        for word in WORDS {
            for c in word.chars() {
                feed(Input::Action(Action::Key(c)));
                frame()?;
            }
            feed(Input::Action(Action::Clear));
        }
    }
    let rss_kib = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "engines": engines,
            "keystroke_ms": keystroke_ms,
            "stroke_ms": stroke_ms,
            "rss_kib": rss_kib,
        })
    );
    Ok(())
}
