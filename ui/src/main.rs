//! `kiosk-ui`: the touchscreen app. Talks to kioskd over its socket only.
//!
//! Backends: a desktop window (winit, the default build) or, built with
//! `--features linuxkms`, the display straight through DRM/KMS for a kiosk
//! without a desktop session. `SLINT_BACKEND` picks one at run time
//! (`winit`, `linuxkms`, `winit-software`, `linuxkms-software`; the
//! `-software` ones use the CPU renderer, no GPU needed).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kiosk_proto::Event;
use kiosk_ui::bridge::{Bridge, Sink};
use kiosk_ui::model::{Input, Timing};
use kiosk_ui::texts::{Clip, Lang};
use kiosk_ui::voice::{VoiceOutput, VoiceSettings};
use kiosk_ui::{AppWindow, Controller, Settings};
use slint::ComponentHandle;

#[derive(Debug, Parser)]
#[command(version, about = "The kiosk's touchscreen app")]
struct Args {
    /// kioskd's socket.
    #[arg(long, env = "KIOSK_SOCKET", default_value = "/run/kiosk/kioskd.sock")]
    socket: PathBuf,
    /// The screen's density in dots per inch (touch targets are 15 mm).
    #[arg(long, env = "KIOSK_UI_DPI", default_value_t = 96.0)]
    dpi: f32,
    /// `landscape` or `portrait`: the window's shape until it has a size;
    /// then the layout follows the window (a panel turned, a fullscreen
    /// window of another shape).
    #[arg(long, env = "KIOSK_UI_ORIENTATION", default_value = "landscape")]
    orientation: String,
    /// Seconds without a touch before the screen goes back to the start.
    #[arg(long, env = "KIOSK_UI_IDLE_S", default_value_t = 60)]
    idle_s: u64,
    /// Every customer starts in the elderly-friendly mode (长辈模式, rule A2:
    /// 1.5 times larger text and touch targets, fewer things per screen,
    /// plain wording); the button on every screen switches it for one
    /// customer, and the next starts with this setting again.
    #[arg(long, env = "KIOSK_UI_ELDERLY")]
    elderly: bool,
    /// In the elderly-friendly mode the UI's idle times are this many
    /// times longer (kioskd's session has `[session] elderly_idle_factor`).
    #[arg(long, env = "KIOSK_UI_ELDERLY_IDLE_FACTOR", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    elderly_idle_factor: u32,
    /// Fill the screen (a kiosk); a window otherwise.
    #[arg(long, env = "KIOSK_UI_FULLSCREEN")]
    fullscreen: bool,
    /// Voice guidance (rule A3): `on` speaks each screen's instruction.
    #[arg(long, env = "KIOSK_UI_VOICE", default_value = "off")]
    voice: String,
    /// Its volume, from 0 to 100 (100: the clips as recorded).
    #[arg(long, env = "KIOSK_UI_VOICE_VOLUME", default_value_t = 80)]
    voice_volume: u8,
    /// The voice clips: `zh/<id>.wav` and `en/<id>.wav` (`cargo xtask voices`).
    #[arg(long, env = "KIOSK_UI_VOICES", default_value = kiosk_ui::voice::DEFAULT_CLIPS)]
    voices: PathBuf,
    /// `alsa` (the default sound card), or a WAV file to write the voice
    /// to (with the clips' ids in `<file>.clips`): tests, no sound card.
    #[arg(long, env = "KIOSK_UI_VOICE_OUTPUT", default_value = "alsa")]
    voice_output: String,
    /// Print the voice clips (`lang<TAB>id<TAB>text`, one a line) and
    /// exit: what `cargo xtask voices` records.
    #[arg(long)]
    voice_catalogue: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.voice_catalogue {
        for lang in [Lang::Zh, Lang::En] {
            for clip in Clip::ALL {
                println!("{}\t{}\t{}", lang.code(), clip.id(), clip.text(lang));
            }
        }
        return ExitCode::SUCCESS;
    }
    let voice_on = match args.voice.as_str() {
        "on" => true,
        "off" => false,
        other => {
            eprintln!("kiosk-ui: --voice must be on or off, not {other:?}");
            return ExitCode::from(2);
        }
    };
    if args.voice_volume > 100 {
        eprintln!("kiosk-ui: --voice-volume must be between 0 and 100");
        return ExitCode::from(2);
    }
    let portrait = match args.orientation.as_str() {
        "portrait" => true,
        "landscape" => false,
        other => {
            eprintln!("kiosk-ui: --orientation must be landscape or portrait, not {other:?}");
            return ExitCode::from(2);
        }
    };
    if !(50.0..=1000.0).contains(&args.dpi) {
        eprintln!("kiosk-ui: --dpi must be between 50 and 1000");
        return ExitCode::from(2);
    }
    match run(args, portrait, voice_on) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiosk-ui: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, portrait: bool, voice_on: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let window = AppWindow::new()?;
    if args.fullscreen {
        window.window().set_fullscreen(true);
    }
    let weak = window.as_weak();
    // kioskd's news reaches the UI thread through Slint's event loop.
    let sink: Sink = Arc::new(move |input: Input| {
        let weak = weak.clone();
        // A card or session event: its screen's latency is measured.
        let event_at_ms = match &input {
            Input::Event(e) if matches!(**e, Event::CardRead { .. } | Event::Session(_)) => {
                Some(kiosk_ui::bridge::last_event_at_ms())
            }
            _ => None,
        };
        let _ = slint::invoke_from_event_loop(move || {
            if weak.upgrade().is_some() {
                CONTROLLER.with(|c| {
                    if let Some(c) = c.borrow().as_ref() {
                        c.borrow_mut().dispatch(input);
                        Controller::arm_ticker(c);
                    }
                });
                if event_at_ms.is_some() {
                    SHOWN_EVENT.with(|e| e.set(event_at_ms));
                }
            }
        });
    });
    // Frames: the first one, and the one that shows a card or session
    // event (`cargo xtask bench` reads these lines at debug level).
    let first_frame = std::cell::Cell::new(true);
    let screen_of = window.as_weak();
    let notifier = window.window().set_rendering_notifier(move |state, _| {
        if !matches!(state, slint::RenderingState::AfterRendering) {
            return;
        }
        if first_frame.replace(false) {
            tracing::debug!(
                first_frame_ms = started.elapsed().as_secs_f64() * 1000.0,
                "first frame"
            );
        }
        if let Some(at_ms) = SHOWN_EVENT.with(|e| e.take()) {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let screen = screen_of
                .upgrade()
                .map(|w| w.global::<kiosk_ui::Ui>().get_screen().to_string())
                .unwrap_or_default();
            tracing::debug!(latency_ms = now_ms - at_ms, screen, "event shown");
        }
    });
    if let Err(e) = notifier {
        tracing::info!(error = %e, "frame timing unavailable with this renderer");
    }
    let bridge = Bridge::start(args.socket.clone(), sink)?;
    let settings = Settings {
        dpi: args.dpi,
        portrait,
        timing: Timing {
            idle: Duration::from_secs(args.idle_s.max(10)),
            elderly_factor: args.elderly_idle_factor,
            ..Timing::default()
        },
        voice: VoiceSettings {
            enabled: voice_on,
            volume: f32::from(args.voice_volume) / 100.0,
            clips: args.voices.clone(),
            output: VoiceOutput::parse(&args.voice_output),
        },
        elderly: args.elderly,
    };
    // The keyboard's engines: librime deploys its schema into a fresh
    // temporary directory now; dropping the controller removes it.
    let engines = kiosk_ui::engines::start();
    let controller = Controller::new(window.clone_strong(), settings, bridge.commands(), engines);
    CONTROLLER.with(|c| *c.borrow_mut() = Some(controller));
    quit_on_signals()?;
    tracing::info!(socket = %args.socket.display(), "kiosk-ui started");
    window.run()?;
    CONTROLLER.with(|c| c.borrow_mut().take());
    drop(bridge);
    Ok(())
}

/// SIGTERM (systemd, the xtask) and SIGINT end the event loop rather
/// than the process, so the controller is dropped and the keyboard's
/// engines with it: librime's temporary directory is removed.
fn quit_on_signals() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut term, mut int) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            tracing::info!("stopping on a signal");
            let _ = slint::invoke_from_event_loop(|| {
                let _ = slint::quit_event_loop();
            });
        })?;
    Ok(())
}

thread_local! {
    /// kioskd's time of the last card/session event not yet on screen.
    static SHOWN_EVENT: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
    /// The UI thread's controller (Slint's event loop runs on this thread).
    static CONTROLLER: std::cell::RefCell<Option<std::rc::Rc<std::cell::RefCell<Controller>>>> =
        const { std::cell::RefCell::new(None) };
}
