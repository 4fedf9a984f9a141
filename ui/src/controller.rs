//! The glue between the model, the bridge and the Slint window.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slint::{ComponentHandle, ModelRc, VecModel};
use tokio::sync::mpsc::UnboundedSender;

use crate::keyboard::{Engines, Mode, Point};
use crate::model::{Action, Command, Field, Input, Model, Timing, View};
use crate::texts::Lang;
use crate::voice::{Voice, VoiceSettings};
use crate::{AppWindow, KeyRow, Service, StatusCard, Texts, Ui};

/// How the screen is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The screen's density, for 15 mm touch targets.
    pub dpi: f32,
    pub portrait: bool,
    pub timing: Timing,
    /// Voice guidance (rule A3).
    pub voice: VoiceSettings,
    /// Rule A2: every customer starts in the elderly-friendly mode.
    pub elderly: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dpi: 96.0,
            portrait: false,
            timing: Timing::default(),
            voice: VoiceSettings::default(),
            elderly: false,
        }
    }
}

impl Settings {
    /// The smallest touch target, 15 mm, in logical pixels at `dpi`.
    pub fn touch_px(&self) -> f32 {
        (self.dpi * 15.0 / 25.4).ceil()
    }

    /// The smallest touch target in the elderly-friendly mode: 1.5 times
    /// the standard one (rule A2); every text size follows it.
    pub fn elderly_touch_px(&self) -> f32 {
        (self.touch_px() * ELDERLY_SCALE).ceil()
    }
}

/// Rule A2: text and touch targets at least 1.5 times larger.
const ELDERLY_SCALE: f32 = 1.5;

/// Owns the model and the window; lives on the UI thread.
pub struct Controller {
    model: Model,
    window: AppWindow,
    commands: UnboundedSender<Command>,
    services: Rc<VecModel<Service>>,
    cards: Rc<VecModel<StatusCard>>,
    candidates: Rc<VecModel<slint::SharedString>>,
    key_rows: Rc<VecModel<KeyRow>>,
    portrait: bool,
    /// The touch target of the standard and the elderly-friendly mode.
    touch_px: f32,
    elderly_touch_px: f32,
    shown: Option<View>,
    /// The texts set: language and plain wording.
    texts: Option<(Lang, bool)>,
    /// Added to the clock: tests move time forward without waiting.
    clock_offset: Duration,
    ticker: slint::Timer,
    /// The header's clock, updated every second.
    clock: slint::Timer,
    /// A fixed time for the header (screenshots); `None`: the real one.
    wall_clock: Option<chrono::DateTime<chrono::Utc>>,
    voice: Voice,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("screen", &self.model.screen())
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Wire `window` to a new model whose keyboard uses `engines`;
    /// `commands` goes to the bridge.
    pub fn new(
        window: AppWindow,
        settings: Settings,
        commands: UnboundedSender<Command>,
        engines: Engines,
    ) -> Rc<RefCell<Controller>> {
        let ui = window.global::<Ui>();
        ui.set_touch(settings.touch_px());
        ui.set_portrait(settings.portrait);
        let services = Rc::new(VecModel::default());
        let cards = Rc::new(VecModel::default());
        ui.set_services(ModelRc::from(services.clone()));
        ui.set_tech_cards(ModelRc::from(cards.clone()));
        let candidates = Rc::new(VecModel::default());
        let key_rows = Rc::new(VecModel::default());
        ui.set_kb_candidates(ModelRc::from(candidates.clone()));
        ui.set_kb_rows(ModelRc::from(key_rows.clone()));
        let mut model = Model::with_engines(settings.timing, Instant::now(), engines);
        model.set_elderly_default(settings.elderly);
        let controller = Rc::new(RefCell::new(Controller {
            model,
            window: window.clone_strong(),
            commands,
            services,
            cards,
            candidates,
            key_rows,
            portrait: settings.portrait,
            touch_px: settings.touch_px(),
            elderly_touch_px: settings.elderly_touch_px(),
            shown: None,
            texts: None,
            clock_offset: Duration::ZERO,
            ticker: slint::Timer::default(),
            clock: slint::Timer::default(),
            wall_clock: None,
            voice: Voice::start(&settings.voice),
        }));
        let weak = Rc::downgrade(&controller);
        ui.on_act(move |action, argument| {
            // The window's size is the screen's business, not the model's.
            if action == "resize" {
                if let Some(c) = weak.upgrade()
                    && let Ok(mut inner) = c.try_borrow_mut()
                {
                    inner.resized();
                }
                return;
            }
            let Some(action) = parse_action(&action, &argument) else {
                tracing::warn!(%action, "unknown UI action");
                return;
            };
            if let Some(c) = weak.upgrade() {
                // A touch during an update (cannot happen from Slint's own
                // event handling) would be dropped rather than panic.
                if let Ok(mut inner) = c.try_borrow_mut() {
                    inner.dispatch(Input::Action(action));
                }
                Controller::arm_ticker(&c);
            }
        });
        controller.borrow_mut().resized();
        controller.borrow_mut().render();
        controller.borrow_mut().show_clock();
        let weak = Rc::downgrade(&controller);
        controller.borrow().clock.start(
            slint::TimerMode::Repeated,
            Duration::from_secs(1),
            move || {
                if let Some(c) = weak.upgrade()
                    && let Ok(inner) = c.try_borrow()
                {
                    inner.show_clock();
                }
            },
        );
        controller
    }

    /// The window's size changed (or is known now): the layout follows it.
    /// Taller than wide is portrait, whatever `Settings::portrait` asked
    /// for (that is the window's preferred shape, and the guess before
    /// the window has a size).
    pub fn resized(&mut self) {
        let window = self.window.window();
        let size = window.size().to_logical(window.scale_factor());
        if size.width < 1.0 || size.height < 1.0 {
            return;
        }
        let portrait = size.height > size.width;
        let ui = self.window.global::<Ui>();
        ui.set_window_width(size.width);
        ui.set_window_height(size.height);
        if portrait != self.portrait {
            self.portrait = portrait;
            ui.set_portrait(portrait);
            // The keys are laid out for the orientation: draw them again.
            self.shown = None;
            self.render();
        }
    }

    /// Show this time in the header from now on (screenshots, tests).
    pub fn freeze_wall_clock(&mut self, at: chrono::DateTime<chrono::Utc>) {
        self.wall_clock = Some(at);
        self.show_clock();
    }

    /// The header's clock: the branch's time, in the screen's language.
    fn show_clock(&self) {
        let now = self.wall_clock.unwrap_or_else(chrono::Utc::now);
        let (time, date) = crate::texts::clock(now, self.model.timezone(), self.model.lang());
        let ui = self.window.global::<Ui>();
        if ui.get_clock() != time.as_str() {
            ui.set_clock(time.into());
        }
        if ui.get_date() != date.as_str() {
            ui.set_date(date.into());
        }
    }

    pub fn window(&self) -> &AppWindow {
        &self.window
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Hand the model one input; send its commands; say what the new
    /// screen says; redraw.
    pub fn dispatch(&mut self, input: Input) {
        let now = Instant::now() + self.clock_offset;
        for command in self.model.handle(input, now) {
            if self.commands.send(command).is_err() {
                tracing::debug!("bridge gone: command dropped");
            }
        }
        if let Some(clips) = self.model.take_speech() {
            self.voice.say(self.model.lang(), &clips);
        }
        self.render();
    }

    /// Tests: move the clock forward and let the model see it.
    pub fn advance_clock(&mut self, by: Duration) {
        self.clock_offset += by;
        self.dispatch(Input::Tick);
    }

    /// Start or stop the once-a-second tick the countdowns need (no timer
    /// runs while nothing counts down).
    pub fn arm_ticker(this: &Rc<RefCell<Controller>>) {
        let needs = this.borrow().model.needs_ticks();
        let c = this.borrow();
        if needs && !c.ticker.running() {
            let weak = Rc::downgrade(this);
            c.ticker.start(
                slint::TimerMode::Repeated,
                Duration::from_millis(500),
                move || {
                    if let Some(c) = weak.upgrade() {
                        if let Ok(mut inner) = c.try_borrow_mut() {
                            inner.dispatch(Input::Tick);
                        }
                        Controller::arm_ticker(&c);
                    }
                },
            );
        } else if !needs && c.ticker.running() {
            c.ticker.stop();
        }
    }

    fn render(&mut self) {
        let view = self.model.view();
        if self.shown.as_ref() == Some(&view) {
            return;
        }
        let ui = self.window.global::<Ui>();
        let lang = self.model.lang();
        if self.texts != Some((lang, view.elderly)) {
            ui.set_t(Texts::get(lang, view.elderly));
            self.texts = Some((lang, view.elderly));
            self.show_clock();
        }
        ui.set_branch(view.branch.as_str().into());
        ui.set_screen(view.screen.into());
        ui.set_lang_en(view.lang_en);
        ui.set_elderly(view.elderly);
        ui.set_touch(if view.elderly {
            self.elderly_touch_px
        } else {
            self.touch_px
        });
        ui.set_idle_warning(view.idle_warning);
        ui.set_queue_machine(view.queue_machine);
        ui.set_title(view.title.as_str().into());
        ui.set_message(view.message.as_str().into());
        ui.set_warning(view.warning);
        ui.set_reading(view.reading);
        ui.set_name(view.name.as_str().into());
        ui.set_number(view.number.as_str().into());
        ui.set_old_value(view.old_value.as_str().into());
        ui.set_new_value(view.new_value.as_str().into());
        ui.set_question(view.question.as_str().into());
        ui.set_first(view.first.as_str().into());
        ui.set_second(view.second.as_str().into());
        ui.set_focus_second(view.focus_second);
        ui.set_code(view.code.as_str().into());
        ui.set_masked_mobile(view.masked_mobile.as_str().into());
        ui.set_resend_in_s(view.resend_in_s);
        ui.set_card_name(view.card_name.as_str().into());
        ui.set_ticket_number(view.ticket_number.as_str().into());
        ui.set_waiting_ahead(view.waiting_ahead.as_str().into());
        ui.set_countdown_s(view.countdown_s);
        ui.set_can_retry(view.can_retry);
        ui.set_pin_dots(view.pin_dots.as_str().into());
        ui.set_tech_report(view.tech_report.as_str().into());
        ui.set_answer(view.answer.as_str().into());
        ui.set_answer_hidden(view.answer_hidden);
        let kb = &view.keyboard;
        ui.set_kb_mode(kb.mode.into());
        ui.set_kb_shift(kb.shift);
        ui.set_kb_preedit(kb.preedit.as_str().into());
        ui.set_kb_has_previous(kb.has_previous);
        ui.set_kb_has_next(kb.has_next);
        ui.set_kb_ink(kb.ink_path.as_str().into());
        ui.set_kb_pinyin(kb.pinyin_available);
        ui.set_kb_handwriting(kb.handwriting_available);
        let shown_kb = self.shown.as_ref().map(|v| &v.keyboard);
        if shown_kb.map(|k| &k.candidates) != Some(&kb.candidates) {
            self.candidates.set_vec(
                kb.candidates
                    .iter()
                    .map(|c| slint::SharedString::from(c.as_str()))
                    .collect::<Vec<_>>(),
            );
        }
        let keys = (kb.mode, kb.shift, kb.key_page, view.elderly);
        if self.shown.as_ref().map(|v| {
            let k = &v.keyboard;
            (k.mode, k.shift, k.key_page, v.elderly)
        }) != Some(keys)
        {
            let layout = if view.elderly {
                KeyLayout::Elderly {
                    portrait: self.portrait,
                }
            } else if self.portrait {
                KeyLayout::Portrait
            } else {
                KeyLayout::Landscape
            };
            let (rows, page_key) = key_rows(kb.mode, kb.shift, layout, kb.key_page);
            ui.set_kb_page_key(page_key.into());
            self.key_rows.set_vec(
                rows.into_iter()
                    .map(|row| KeyRow {
                        keys: ModelRc::new(VecModel::from(
                            row.chars()
                                .map(|c| slint::SharedString::from(c.to_string()))
                                .collect::<Vec<_>>(),
                        )),
                    })
                    .collect::<Vec<_>>(),
            );
        }
        if self.shown.as_ref().map(|v| &v.services) != Some(&view.services) {
            self.services.set_vec(
                view.services
                    .iter()
                    .map(|(id, letter, name)| Service {
                        id: id.as_str().into(),
                        letter: letter.as_str().into(),
                        name: name.as_str().into(),
                    })
                    .collect::<Vec<_>>(),
            );
        }
        if self.shown.as_ref().map(|v| &v.tech_cards) != Some(&view.tech_cards) {
            self.cards.set_vec(
                view.tech_cards
                    .iter()
                    .map(|c| StatusCard {
                        icon: c.icon.into(),
                        title: c.title.as_str().into(),
                        state: c.state.as_str().into(),
                        detail: c.detail.as_str().into(),
                        level: c.level.as_str().into(),
                    })
                    .collect::<Vec<_>>(),
            );
        }
        self.shown = Some(view);
        // kioskd may have named the branch's time zone just now.
        self.show_clock();
    }
}

/// `Ui.act(action, argument)` from the `.slint` side.
fn parse_action(action: &str, argument: &str) -> Option<Action> {
    Some(match action {
        "touch" => Action::Touch,
        "start" => Action::Start,
        "language" => Action::Language,
        "elderly" => Action::Elderly,
        "more_time" => Action::MoreTime,
        "key_page" => Action::KeyPage,
        "flow" => Action::Flow(argument.to_string()),
        "queue" => Action::QueueMenu,
        "service" => Action::Service(argument.to_string()),
        "confirm" => Action::Confirm,
        "cancel" => Action::Cancel,
        "done" => Action::Done,
        "retry" => Action::Retry,
        "key" => Action::Key(argument.chars().next()?),
        "delete" => Action::Delete,
        "clear" => Action::Clear,
        "submit" => Action::Submit,
        "focus" => Action::Focus(if argument == "second" {
            Field::Second
        } else {
            Field::First
        }),
        "kb_mode" => Action::KeyboardMode(Mode::parse(argument)?),
        "shift" => Action::Shift,
        "candidate" => Action::Candidate(argument.parse().ok()?),
        "page" => Action::CandidatePage(argument == "next"),
        "ink_down" => Action::InkDown(parse_point(argument)?),
        "ink_move" => Action::InkMove(parse_point(argument)?),
        "ink_up" => Action::InkUp,
        "clear_ink" => Action::ClearInk,
        "hide_answer" => Action::HideAnswer,
        "resend" => Action::Resend,
        "change_number" => Action::ChangeNumber,
        "tech_corner" => Action::TechCorner,
        "tech_print_test" => Action::TechPrintTest,
        "tech_reader_check" => Action::TechReaderCheck,
        "tech_sync_retry" => Action::TechSyncRetry,
        "tech_exit" => Action::TechExit,
        _ => return None,
    })
}

/// `x,y` from the handwriting pad, each from 0 to 1.
fn parse_point(argument: &str) -> Option<Point> {
    let (x, y) = argument.split_once(',')?;
    Some([x.trim().parse().ok()?, y.trim().parse().ok()?])
}

/// How the letter and digit keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyLayout {
    Landscape,
    Portrait,
    /// Rule A2: fewer, larger keys, in alphabetical pages that fit the
    /// screen at 1.5 times the size, with a key to the next page.
    Elderly {
        portrait: bool,
    },
}

/// The keys, page by page and row by row: QWERTY where ten keys of 15 mm
/// fit across (landscape), alphabetical rows of seven in portrait (one
/// page each); in the elderly-friendly mode one row of seven (landscape)
/// or two rows of five (portrait) a page.
fn key_pages(mode: &str, layout: KeyLayout) -> &'static [&'static [&'static str]] {
    match (mode, layout) {
        ("digits", KeyLayout::Landscape) => &[&["1234567890"]],
        ("digits", KeyLayout::Elderly { portrait: false }) => &[&["12345"], &["67890"]],
        ("digits", _) => &[&["12345", "67890"]],
        (_, KeyLayout::Landscape) => &[&["qwertyuiop", "asdfghjkl", "zxcvbnm"]],
        (_, KeyLayout::Portrait) => &[&["abcdefg", "hijklmn", "opqrstu", "vwxyz"]],
        (_, KeyLayout::Elderly { portrait: false }) => {
            &[&["abcdefg"], &["hijklmn"], &["opqrstu"], &["vwxyz"]]
        }
        (_, KeyLayout::Elderly { portrait: true }) => {
            &[&["abcde", "fghi"], &["jklmn", "opqr"], &["stuvw", "xyz"]]
        }
    }
}

/// The rows of page `page` (modulo the pages), shifted to upper case
/// where Shift is on, and the label of the key to the next page (its
/// keys' range, `H–N`; empty with a single page).
fn key_rows(mode: &str, shift: bool, layout: KeyLayout, page: usize) -> (Vec<String>, String) {
    let pages = key_pages(mode, layout);
    let case = |r: &str| {
        if shift && mode == "latin" {
            r.to_ascii_uppercase()
        } else {
            r.to_string()
        }
    };
    let rows = pages[page % pages.len()].iter().map(|r| case(r)).collect();
    let next_key = if pages.len() > 1 {
        let next = pages[(page + 1) % pages.len()]
            .concat()
            .to_ascii_uppercase();
        match (next.chars().next(), next.chars().last()) {
            (Some(first), Some(last)) => format!("{first}–{last}"),
            _ => String::new(),
        }
    } else {
        String::new()
    };
    (rows, next_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rule A2: the elderly-friendly keys are fewer per page than the
    /// standard ones, each page's rows fit the screen at 1.5 times the
    /// size (7 across in landscape, 5 in portrait, where 10 and 7 are the
    /// standard), and the pages hold the whole alphabet once, in order.
    #[test]
    fn elderly_keys_come_in_pages_that_fit_and_hold_the_alphabet() {
        for (portrait, across) in [(false, 7), (true, 5)] {
            let layout = KeyLayout::Elderly { portrait };
            let standard = if portrait {
                KeyLayout::Portrait
            } else {
                KeyLayout::Landscape
            };
            let standard_keys = key_rows("latin", false, standard, 0).0.concat().len();
            let pages = key_pages("latin", layout);
            let mut alphabet = String::new();
            for page in 0..pages.len() {
                let (rows, next) = key_rows("latin", false, layout, page);
                assert!(rows.iter().all(|r| r.len() <= across), "{rows:?}");
                assert!(rows.concat().len() * 2 <= standard_keys, "{rows:?}");
                assert!(!next.is_empty());
                alphabet += &rows.concat();
            }
            assert_eq!(alphabet, "abcdefghijklmnopqrstuvwxyz");
            for page in 0..key_pages("digits", layout).len() {
                let rows = key_rows("digits", false, layout, page).0;
                assert!(rows.iter().all(|r| r.len() <= across), "{rows:?}");
            }
        }
        let landscape = KeyLayout::Elderly { portrait: false };
        assert_eq!(
            key_rows("latin", false, landscape, 0),
            (vec!["abcdefg".to_string()], "H–N".to_string())
        );
        // Upper case with Shift; the page count wraps around.
        assert_eq!(
            key_rows("latin", true, landscape, 7),
            (vec!["VWXYZ".to_string()], "A–G".to_string())
        );
        assert_eq!(key_rows("latin", false, KeyLayout::Landscape, 3).1, "");
    }

    #[test]
    fn elderly_touch_targets_are_half_again_as_large() {
        let s = Settings {
            dpi: 160.0,
            ..Settings::default()
        };
        assert!(s.elderly_touch_px() >= s.touch_px() * 1.5);
    }
}
