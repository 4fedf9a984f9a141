//! Driving the UI in tests, with Slint's testing backend (no window, no
//! event loop): the test thread is the UI thread. It pumps what the bridge
//! learns from a real kioskd into the controller, finds controls by their
//! accessible label as a screen reader would, and touches them.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use i_slint_backend_testing::{AccessibleRole, ElementHandle, ElementRoot};
use slint::ComponentHandle;

use crate::bridge::{Bridge, Sink};
use crate::model::Input;
use crate::{AppWindow, Controller, Settings, Ui};

/// How long a test waits for kioskd before it fails (a deadline, not a
/// pause: pumping returns as soon as the screen is there).
const PUMP_LIMIT: Duration = Duration::from_secs(30);

/// A UI wired to a running kioskd.
pub struct UiDriver {
    controller: Rc<RefCell<Controller>>,
    window: AppWindow,
    inputs: Receiver<Input>,
    // Dropped last: stops the bridge thread.
    _bridge: Bridge,
}

impl std::fmt::Debug for UiDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiDriver")
            .field("screen", &self.screen())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static BACKEND: () = i_slint_backend_testing::init_no_event_loop();
}

impl UiDriver {
    /// A UI on this thread, talking to kioskd at `socket`.
    pub fn start(socket: &Path, settings: Settings) -> UiDriver {
        BACKEND.with(|()| {});
        let window = AppWindow::new().expect("creating the window");
        let size = if settings.portrait {
            slint::LogicalSize::new(800.0, 1280.0)
        } else {
            slint::LogicalSize::new(1280.0, 800.0)
        };
        window.window().set_size(size);
        let (tx, inputs) = channel();
        let tx = std::sync::Mutex::new(tx);
        let sink: Sink = Arc::new(move |input| {
            let _ = tx.lock().map(|tx| tx.send(input));
        });
        let bridge = Bridge::start(socket.to_path_buf(), sink).expect("starting the bridge");
        let controller = Controller::new(
            window.clone_strong(),
            settings,
            bridge.commands(),
            crate::engines::start(),
        );
        UiDriver {
            controller,
            window,
            inputs,
            _bridge: bridge,
        }
    }

    pub fn window(&self) -> &AppWindow {
        &self.window
    }

    /// The screen shown (`attract`, `confirm_id`, ...).
    pub fn screen(&self) -> String {
        self.window.global::<Ui>().get_screen().to_string()
    }

    /// Feed kioskd's news to the UI until `done` holds; panics naming
    /// `what` when kioskd has said nothing that makes it hold in time.
    pub fn pump_until(&mut self, what: &str, mut done: impl FnMut(&UiDriver) -> bool) {
        let deadline = Instant::now() + PUMP_LIMIT;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inputs.recv_timeout(left) {
                Ok(input) => self.controller.borrow_mut().dispatch(input),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("UI never showed {what}; screen is {}", self.screen())
                }
                Err(RecvTimeoutError::Disconnected) => panic!("bridge stopped"),
            }
        }
    }

    /// kioskd's message on screen (a refusal, a notice), or the PIN's.
    pub fn message(&self) -> String {
        self.window.global::<Ui>().get_message().to_string()
    }

    /// The code of kioskd's message on screen (`wrong_answer`, ...).
    pub fn message_code(&self) -> Option<String> {
        self.controller
            .borrow()
            .model()
            .message_code()
            .map(str::to_string)
    }

    /// The PIN typed so far, as dots.
    pub fn pin_dots(&self) -> String {
        self.window.global::<Ui>().get_pin_dots().to_string()
    }

    /// Pump until `screen` is up.
    pub fn wait_screen(&mut self, screen: &str) {
        self.pump_until(&format!("screen {screen}"), |ui| ui.screen() == screen);
    }

    /// Controls with this accessible label on the screen now.
    pub fn find(&self, label: &str) -> Vec<ElementHandle> {
        ElementHandle::find_by_accessible_label(&self.window, label).collect()
    }

    /// Whether a control with this label is shown.
    pub fn shows(&self, label: &str) -> bool {
        !self.find(label).is_empty()
    }

    /// Touch the control labelled `label` (its default action, as a
    /// screen reader would); panics when there is none. Only buttons and
    /// fields take touches: a plain text with the same words (a field
    /// showing the digit "1" beside the key "1") is passed over, or the
    /// touch would be lost on it.
    pub fn touch(&self, label: &str) {
        let found: Vec<ElementHandle> = self
            .find(label)
            .into_iter()
            .filter(|e| {
                matches!(
                    e.accessible_role(),
                    Some(AccessibleRole::Button | AccessibleRole::TextInput)
                )
            })
            .collect();
        let element = found
            .first()
            .unwrap_or_else(|| panic!("no control labelled {label:?} on {}", self.screen()));
        assert_ne!(
            element.accessible_enabled(),
            Some(false),
            "{label:?} is disabled on {}",
            self.screen()
        );
        element.invoke_accessible_default_action();
    }

    /// Type digits on the on-screen keypad.
    pub fn type_digits(&self, digits: &str) {
        for d in digits.chars() {
            self.touch(&d.to_string());
        }
    }

    /// Touch the keys labelled by each character of `keys`, in order
    /// (letters on the text keyboard, digits on either).
    pub fn touch_keys(&self, keys: &str) {
        for k in keys.chars() {
            self.touch(&k.to_string());
        }
    }

    /// The text keyboard's mode (`pinyin`, `handwriting`, `latin`, `digits`).
    pub fn keyboard_mode(&self) -> String {
        self.window.global::<Ui>().get_kb_mode().to_string()
    }

    /// The candidates the text keyboard shows now, in order.
    pub fn candidates(&self) -> Vec<String> {
        use slint::Model;
        self.window
            .global::<Ui>()
            .get_kb_candidates()
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    /// Touch the candidate `text`, turning the candidate pages forward
    /// (with the `next` button's label) until it shows; panics when the
    /// last page has gone by without it.
    pub fn pick_candidate(&self, text: &str, next: &str) {
        let mut seen = Vec::new();
        loop {
            let shown = self.candidates();
            if shown.iter().any(|c| c == text) {
                self.touch(text);
                return;
            }
            seen.extend(shown);
            if !self.window.global::<Ui>().get_kb_has_next() {
                panic!("no candidate {text:?} among {seen:?}");
            }
            self.touch(next);
        }
    }

    /// Draw strokes on the handwriting pad labelled `pad` with pointer
    /// events, as a finger would: each stroke is pressed at its first
    /// point, moved through the others and released at its last. Points
    /// run from 0 to 1 across the pad.
    pub fn draw(&self, pad: &str, strokes: &[Vec<[f32; 2]>]) {
        use slint::platform::{PointerEventButton, WindowEvent};
        let found = self.find(pad);
        let pad_element = found
            .first()
            .unwrap_or_else(|| panic!("no pad labelled {pad:?} on {}", self.screen()));
        let origin = pad_element.absolute_position();
        let size = pad_element.size();
        let at = |[x, y]: [f32; 2]| {
            slint::LogicalPosition::new(origin.x + x * size.width, origin.y + y * size.height)
        };
        let window = self.window.window();
        for stroke in strokes {
            let (Some(first), Some(last)) = (stroke.first(), stroke.last()) else {
                continue;
            };
            window.dispatch_event(WindowEvent::PointerPressed {
                position: at(*first),
                button: PointerEventButton::Left,
            });
            for p in &stroke[1..] {
                window.dispatch_event(WindowEvent::PointerMoved { position: at(*p) });
            }
            window.dispatch_event(WindowEvent::PointerReleased {
                position: at(*last),
                button: PointerEventButton::Left,
            });
        }
    }

    /// The accessible value of the control labelled `label` (a caption
    /// with the same text has none and is passed over).
    pub fn value_of(&self, label: &str) -> Option<String> {
        self.find(label)
            .iter()
            .find_map(|e| e.accessible_value())
            .map(|v| v.to_string())
    }

    /// Every accessible label and value on screen, for "no personal data
    /// left" checks.
    pub fn all_text(&self) -> String {
        all_text(&self.window)
    }

    /// Controls (buttons) smaller than `min` logical pixels either way.
    pub fn small_buttons(&self, min: f32) -> Vec<String> {
        small_buttons(&self.window, min)
    }

    /// The height of the shortest element labelled `label` on screen, in
    /// logical pixels: a one-line text's height follows its font size
    /// (the shortest: not the same words stretched in a bar).
    pub fn height_of(&self, label: &str) -> Option<f32> {
        self.find(label)
            .iter()
            .map(|e| e.size().height)
            .min_by(f32::total_cmp)
    }

    /// The label of the key to the next page of the elderly-friendly
    /// keys (`H–N`); empty without pages.
    pub fn page_key(&self) -> String {
        self.window.global::<Ui>().get_kb_page_key().to_string()
    }

    /// Whether the elderly-friendly mode is on (rule A2).
    pub fn elderly(&self) -> bool {
        self.window.global::<Ui>().get_elderly()
    }

    /// The touch target the screen is laid out with now, in logical
    /// pixels (1.5 times larger in the elderly-friendly mode).
    pub fn touch_px(&self) -> f32 {
        self.window.global::<Ui>().get_touch()
    }

    /// Buttons that do not fit inside the window (a layout too large for
    /// the screen pushes them off its edge).
    pub fn buttons_off_screen(&self) -> Vec<String> {
        buttons_off_screen(&self.window)
    }

    /// Move the UI's clock forward (idle countdowns) without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.controller.borrow_mut().advance_clock(by);
    }
}

/// Slint's testing backend on this thread (no event loop), once.
pub fn init() {
    BACKEND.with(|()| {});
}

/// Whether `window` is laid out in portrait.
pub fn portrait(window: &AppWindow) -> bool {
    window.global::<Ui>().get_portrait()
}

/// The letter or digit keys shown, row by row.
pub fn key_rows(window: &AppWindow) -> Vec<String> {
    use slint::Model;
    window
        .global::<Ui>()
        .get_kb_rows()
        .iter()
        .map(|row| row.keys.iter().map(|k| k.to_string()).collect())
        .collect()
}

/// Resize `window` as a turned or replaced panel would, and let the
/// controller see it.
pub fn resize(window: &AppWindow, controller: &Rc<RefCell<Controller>>, width: f32, height: f32) {
    window
        .window()
        .set_size(slint::LogicalSize::new(width, height));
    controller.borrow_mut().resized();
}

/// Every accessible label and value of `window`, one a line.
pub fn all_text(window: &AppWindow) -> String {
    let mut out = String::new();
    window
        .root_element()
        .query_descendants()
        .find_all()
        .iter()
        .for_each(|e| {
            for s in [e.accessible_label(), e.accessible_value()]
                .into_iter()
                .flatten()
            {
                out.push_str(s.as_str());
                out.push('\n');
            }
        });
    out
}

/// Buttons of `window` smaller than `min` logical pixels either way (the
/// hidden technician corner aside).
pub fn small_buttons(window: &AppWindow, min: f32) -> Vec<String> {
    window
        .root_element()
        .query_descendants()
        .match_accessible_role(AccessibleRole::Button)
        .find_all()
        .iter()
        .filter(|e| e.accessible_label().as_deref() != Some("technician"))
        .filter_map(|e| {
            let size = e.size();
            (size.width + 0.5 < min || size.height + 0.5 < min).then(|| {
                format!(
                    "{:?} {}x{}",
                    e.accessible_label().unwrap_or_default(),
                    size.width,
                    size.height
                )
            })
        })
        .collect()
}

/// Buttons of `window` that do not fit inside it.
pub fn buttons_off_screen(window: &AppWindow) -> Vec<String> {
    let size = window
        .window()
        .size()
        .to_logical(window.window().scale_factor());
    window
        .root_element()
        .query_descendants()
        .match_accessible_role(AccessibleRole::Button)
        .find_all()
        .iter()
        .filter_map(|e| {
            let at = e.absolute_position();
            let b = e.size();
            let outside = at.x < -0.5
                || at.y < -0.5
                || at.x + b.width > size.width + 0.5
                || at.y + b.height > size.height + 0.5;
            outside.then(|| {
                format!(
                    "{:?} at {},{} {}x{}",
                    e.accessible_label().unwrap_or_default(),
                    at.x,
                    at.y,
                    b.width,
                    b.height
                )
            })
        })
        .collect()
}

/// What is wrong with the screen shown: buttons off the window, or
/// smaller than its touch target (`Ui.touch`: 1.5 times larger in the
/// elderly-friendly mode).
pub fn layout_problems(window: &AppWindow) -> Vec<String> {
    let touch = window.global::<Ui>().get_touch();
    let mut problems: Vec<String> = buttons_off_screen(window)
        .into_iter()
        .map(|b| format!("off the screen: {b}"))
        .collect();
    problems.extend(
        small_buttons(window, touch)
            .into_iter()
            .map(|b| format!("smaller than {touch} px: {b}")),
    );
    problems
}
