//! The on-screen keyboard for text fields, without I/O (rule A1).
//!
//! Four modes: pinyin (through a [`PinyinEngine`], librime in the app),
//! handwriting (strokes drawn on a pad, recognised by a [`Recognizer`],
//! Zinnia in the app), Latin letters and digits. The engines sit behind
//! these two small traits so the keyboard, like the rest of the model, is
//! tested without them; `rime.rs` and `zinnia.rs` are the real ones.
//!
//! Everything typed or drawn lives in `Zeroizing` buffers and goes with
//! the keyboard when the screen changes (the model drops it then).

use zeroize::Zeroizing;

/// Which keys the keyboard shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Pinyin,
    Handwriting,
    Latin,
    Digits,
}

impl Mode {
    /// The name the `.slint` side switches on.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Pinyin => "pinyin",
            Mode::Handwriting => "handwriting",
            Mode::Latin => "latin",
            Mode::Digits => "digits",
        }
    }

    pub fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "pinyin" => Mode::Pinyin,
            "handwriting" => Mode::Handwriting,
            "latin" => Mode::Latin,
            "digits" => Mode::Digits,
            _ => return None,
        })
    }
}

/// A key sent to the pinyin engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinyinKey {
    /// A letter `a`–`z`.
    Letter(char),
    Backspace,
    NextPage,
    PreviousPage,
    /// The candidate at this index of the page shown.
    Select(usize),
}

/// What the pinyin engine shows after a key.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct PinyinState {
    /// The pinyin being composed (empty: nothing composing).
    pub preedit: Zeroizing<String>,
    /// The candidates of the page shown.
    pub candidates: Vec<Zeroizing<String>>,
    pub first_page: bool,
    pub last_page: bool,
    /// Text the composition produced (a whole phrase picked).
    pub committed: Zeroizing<String>,
}

impl std::fmt::Debug for PinyinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What was typed never reaches a log, even through `{:?}`.
        f.debug_struct("PinyinState")
            .field("composing", &!self.preedit.is_empty())
            .field("candidates", &self.candidates.len())
            .finish_non_exhaustive()
    }
}

/// A pinyin input engine, one composition at a time.
pub trait PinyinEngine: std::fmt::Debug {
    /// Drop the composition (a new field, a mode switch).
    fn reset(&mut self);
    fn press(&mut self, key: PinyinKey) -> PinyinState;
}

/// A point of a stroke, each coordinate from 0 to 1 across the pad.
pub type Point = [f32; 2];

/// A handwriting recogniser.
pub trait Recognizer: std::fmt::Debug {
    /// The characters the strokes may be, the likeliest first.
    fn recognize(&mut self, strokes: &[Zeroizing<Vec<Point>>]) -> Vec<Zeroizing<String>>;
}

/// The engines a keyboard uses; a mode whose engine is missing is not
/// offered (a machine without librime or Zinnia still types Latin).
#[derive(Debug, Default)]
pub struct Engines {
    pub pinyin: Option<Box<dyn PinyinEngine>>,
    pub handwriting: Option<Box<dyn Recognizer>>,
}

/// Handwriting candidates shown at once (as many as librime's page, so
/// the candidate bar fits a portrait screen).
pub const HANDWRITING_PAGE: usize = 5;

/// What a touch on the keyboard does to the field.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    None,
    Insert(Zeroizing<String>),
    /// Delete the field's last character.
    DeleteBack,
}

/// The keyboard's state for one field.
#[derive(Default)]
pub struct Keyboard {
    mode: Mode,
    shift: bool,
    /// The elderly-friendly keys come in pages: the page up (counted on;
    /// the layout takes it modulo its number of pages).
    key_page: usize,
    pinyin: PinyinState,
    /// Finished strokes, and the one being drawn.
    ink: Vec<Zeroizing<Vec<Point>>>,
    drawing: bool,
    recognized: Vec<Zeroizing<String>>,
    recognized_page: usize,
}

impl std::fmt::Debug for Keyboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The mode only: the composition and the ink are the customer's.
        f.debug_struct("Keyboard")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The keyboard as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyboardView {
    pub mode: &'static str,
    pub shift: bool,
    /// The page of the elderly-friendly keys (modulo the layout's pages).
    pub key_page: usize,
    pub preedit: String,
    pub candidates: Vec<String>,
    pub has_previous: bool,
    pub has_next: bool,
    /// The ink as SVG path commands over a 1000 × 1000 box.
    pub ink_path: String,
    pub pinyin_available: bool,
    pub handwriting_available: bool,
}

impl Keyboard {
    /// A keyboard starting in `mode` (or Latin, when that mode's engine is
    /// missing).
    pub fn new(mode: Mode, engines: &mut Engines) -> Keyboard {
        let mut k = Keyboard::default();
        k.set_mode(mode, engines);
        k
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Switch modes; a composition or drawing in progress is dropped.
    pub fn set_mode(&mut self, mode: Mode, engines: &mut Engines) {
        let mode = match mode {
            Mode::Pinyin if engines.pinyin.is_none() => Mode::Latin,
            Mode::Handwriting if engines.handwriting.is_none() => Mode::Latin,
            m => m,
        };
        self.drop_composition(engines);
        self.mode = mode;
    }

    /// Forget everything composed or drawn (the engine's state too).
    pub fn drop_composition(&mut self, engines: &mut Engines) {
        if let Some(p) = engines.pinyin.as_mut() {
            p.reset();
        }
        self.pinyin = PinyinState::default();
        self.ink.clear();
        self.drawing = false;
        self.recognized.clear();
        self.recognized_page = 0;
    }

    pub fn toggle_shift(&mut self) {
        self.shift = !self.shift;
    }

    /// The elderly-friendly keys: show the next page of keys.
    pub fn next_key_page(&mut self) {
        self.key_page = self.key_page.wrapping_add(1);
    }

    /// A character key: a letter or a digit.
    pub fn key(&mut self, c: char, engines: &mut Engines) -> Edit {
        match self.mode {
            Mode::Pinyin if c.is_ascii_lowercase() => {
                if let Some(p) = engines.pinyin.as_mut() {
                    self.pinyin = p.press(PinyinKey::Letter(c));
                    return self.take_committed();
                }
                Edit::None
            }
            // A digit in pinyin mode is a digit, not a candidate number.
            Mode::Pinyin | Mode::Digits | Mode::Handwriting if c.is_ascii_digit() => {
                Edit::Insert(Zeroizing::new(c.to_string()))
            }
            Mode::Latin if c.is_ascii_alphabetic() || c == ' ' => {
                let c = if self.shift {
                    c.to_ascii_uppercase()
                } else {
                    c
                };
                Edit::Insert(Zeroizing::new(c.to_string()))
            }
            Mode::Latin if c.is_ascii_digit() => Edit::Insert(Zeroizing::new(c.to_string())),
            _ => Edit::None,
        }
    }

    /// Backspace: the composition or the drawing first, then the field.
    pub fn backspace(&mut self, engines: &mut Engines) -> Edit {
        if !self.pinyin.preedit.is_empty()
            && let Some(p) = engines.pinyin.as_mut()
        {
            self.pinyin = p.press(PinyinKey::Backspace);
            return self.take_committed();
        }
        if !self.ink.is_empty() {
            self.ink.pop();
            self.drawing = false;
            self.recognize(engines);
            return Edit::None;
        }
        Edit::DeleteBack
    }

    /// Page through the candidates.
    pub fn page(&mut self, forward: bool, engines: &mut Engines) {
        match self.mode {
            Mode::Pinyin => {
                if let Some(p) = engines.pinyin.as_mut()
                    && !self.pinyin.preedit.is_empty()
                {
                    let key = if forward {
                        PinyinKey::NextPage
                    } else {
                        PinyinKey::PreviousPage
                    };
                    self.pinyin = p.press(key);
                }
            }
            Mode::Handwriting => {
                let pages = self.recognized.len().div_ceil(HANDWRITING_PAGE);
                if forward && self.recognized_page + 1 < pages {
                    self.recognized_page += 1;
                } else if !forward {
                    self.recognized_page = self.recognized_page.saturating_sub(1);
                }
            }
            _ => {}
        }
    }

    /// The customer picked the candidate at `index` of the page shown.
    pub fn pick(&mut self, index: usize, engines: &mut Engines) -> Edit {
        match self.mode {
            Mode::Pinyin => {
                if index >= self.pinyin.candidates.len() {
                    return Edit::None;
                }
                if let Some(p) = engines.pinyin.as_mut() {
                    self.pinyin = p.press(PinyinKey::Select(index));
                    return self.take_committed();
                }
                Edit::None
            }
            Mode::Handwriting => {
                let at = self.recognized_page * HANDWRITING_PAGE + index;
                if index >= HANDWRITING_PAGE || at >= self.recognized.len() {
                    return Edit::None;
                }
                let text = std::mem::take(&mut self.recognized[at]);
                self.drop_composition(engines);
                Edit::Insert(text)
            }
            _ => Edit::None,
        }
    }

    /// A stroke starts on the pad.
    pub fn ink_down(&mut self, at: Point) {
        if self.mode == Mode::Handwriting {
            self.ink.push(Zeroizing::new(vec![clamp(at)]));
            self.drawing = true;
        }
    }

    pub fn ink_move(&mut self, at: Point) {
        if self.drawing
            && let Some(stroke) = self.ink.last_mut()
        {
            stroke.push(clamp(at));
        }
    }

    /// The stroke ends: the recogniser sees the whole drawing.
    pub fn ink_up(&mut self, engines: &mut Engines) {
        if self.drawing {
            self.drawing = false;
            self.recognize(engines);
        }
    }

    /// Wipe the pad.
    pub fn clear_ink(&mut self) {
        self.ink.clear();
        self.drawing = false;
        self.recognized.clear();
        self.recognized_page = 0;
    }

    fn recognize(&mut self, engines: &mut Engines) {
        self.recognized_page = 0;
        self.recognized = match engines.handwriting.as_mut() {
            Some(r) if !self.ink.is_empty() => r.recognize(&self.ink),
            _ => Vec::new(),
        };
    }

    fn take_committed(&mut self) -> Edit {
        if self.pinyin.committed.is_empty() {
            Edit::None
        } else {
            Edit::Insert(std::mem::take(&mut self.pinyin.committed))
        }
    }

    pub fn view(&self, engines: &Engines) -> KeyboardView {
        let mut v = KeyboardView {
            mode: self.mode.as_str(),
            shift: self.shift,
            key_page: self.key_page,
            pinyin_available: engines.pinyin.is_some(),
            handwriting_available: engines.handwriting.is_some(),
            ..KeyboardView::default()
        };
        match self.mode {
            Mode::Pinyin => {
                v.preedit = self.pinyin.preedit.to_string();
                v.candidates = self
                    .pinyin
                    .candidates
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                v.has_previous = !self.pinyin.preedit.is_empty() && !self.pinyin.first_page;
                v.has_next = !self.pinyin.preedit.is_empty() && !self.pinyin.last_page;
            }
            Mode::Handwriting => {
                let start = self.recognized_page * HANDWRITING_PAGE;
                v.candidates = self
                    .recognized
                    .iter()
                    .skip(start)
                    .take(HANDWRITING_PAGE)
                    .map(|c| c.to_string())
                    .collect();
                v.has_previous = self.recognized_page > 0;
                v.has_next = start + HANDWRITING_PAGE < self.recognized.len();
                v.ink_path = ink_path(&self.ink);
            }
            Mode::Latin | Mode::Digits => {}
        }
        v
    }
}

fn clamp([x, y]: Point) -> Point {
    [x.clamp(0.0, 1.0), y.clamp(0.0, 1.0)]
}

/// SVG path commands drawing the strokes (a lone point as a dot).
fn ink_path(ink: &[Zeroizing<Vec<Point>>]) -> String {
    let mut path = String::new();
    for stroke in ink {
        for (i, [x, y]) in stroke.iter().enumerate() {
            let command = if i == 0 { 'M' } else { 'L' };
            path.push_str(&format!("{command} {:.0} {:.0} ", x * 1000.0, y * 1000.0));
        }
        if let [[x, y]] = stroke.as_slice() {
            path.push_str(&format!("L {:.0} {:.0} ", x * 1000.0 + 1.0, y * 1000.0));
        }
    }
    path.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    //! The keyboard with stand-in engines: a pinyin table of a few
    //! syllables paged three at a time, and a recogniser that answers by
    //! the number of strokes. They only stand behind the seams for these
    //! tests; the UI end-to-end tests use librime and Zinnia.
    use super::*;

    #[derive(Debug, Default)]
    struct TablePinyin {
        typed: String,
        page: usize,
    }

    const PAGE: usize = 3;

    impl TablePinyin {
        fn all(&self) -> Vec<&'static str> {
            match self.typed.as_str() {
                "shi" => vec!["是", "时", "实", "事", "使"],
                "shiyan" => vec!["实验", "试验", "时延"],
                _ => vec![],
            }
        }

        fn state(&self, committed: &str) -> PinyinState {
            let all = self.all();
            PinyinState {
                preedit: Zeroizing::new(self.typed.clone()),
                candidates: all
                    .iter()
                    .skip(self.page * PAGE)
                    .take(PAGE)
                    .map(|c| Zeroizing::new(c.to_string()))
                    .collect(),
                first_page: self.page == 0,
                last_page: (self.page + 1) * PAGE >= all.len(),
                committed: Zeroizing::new(committed.to_string()),
            }
        }
    }

    impl PinyinEngine for TablePinyin {
        fn reset(&mut self) {
            *self = TablePinyin::default();
        }

        fn press(&mut self, key: PinyinKey) -> PinyinState {
            match key {
                PinyinKey::Letter(c) => {
                    self.typed.push(c);
                    self.page = 0;
                }
                PinyinKey::Backspace => {
                    self.typed.pop();
                    self.page = 0;
                }
                PinyinKey::NextPage => {
                    if (self.page + 1) * PAGE < self.all().len() {
                        self.page += 1;
                    }
                }
                PinyinKey::PreviousPage => self.page = self.page.saturating_sub(1),
                PinyinKey::Select(i) => {
                    let picked = self.all()[self.page * PAGE + i];
                    self.reset();
                    return self.state(picked);
                }
            }
            self.state("")
        }
    }

    #[derive(Debug)]
    struct StrokeCount;

    impl Recognizer for StrokeCount {
        fn recognize(&mut self, strokes: &[Zeroizing<Vec<Point>>]) -> Vec<Zeroizing<String>> {
            let chars: &[&str] = match strokes.len() {
                1 => &["一", "乙", "丨", "丶", "丿", "乛", "亅", "乚", "〇", "乀"],
                3 => &["小", "川", "三"],
                _ => &[],
            };
            chars
                .iter()
                .map(|c| Zeroizing::new(c.to_string()))
                .collect()
        }
    }

    fn engines() -> Engines {
        Engines {
            pinyin: Some(Box::new(TablePinyin::default())),
            handwriting: Some(Box::new(StrokeCount)),
        }
    }

    fn typed(k: &mut Keyboard, e: &mut Engines, keys: &str) -> Vec<Edit> {
        keys.chars().map(|c| k.key(c, e)).collect()
    }

    #[test]
    fn pinyin_letters_compose_and_a_picked_candidate_is_inserted() {
        let mut e = engines();
        let mut k = Keyboard::new(Mode::Pinyin, &mut e);
        assert!(
            typed(&mut k, &mut e, "shiyan")
                .iter()
                .all(|x| *x == Edit::None)
        );
        let v = k.view(&e);
        assert_eq!(v.preedit, "shiyan");
        // `{:?}` (what a log line would print) shows nothing typed.
        assert!(!format!("{k:?}").contains("shi"), "{k:?}");
        assert_eq!(v.candidates, ["实验", "试验", "时延"]);
        assert_eq!(
            k.pick(0, &mut e),
            Edit::Insert(Zeroizing::new("实验".into()))
        );
        assert_eq!(k.view(&e).preedit, "");
        assert!(k.view(&e).candidates.is_empty());
    }

    #[test]
    fn pinyin_candidates_page_forward_and_back() {
        let mut e = engines();
        let mut k = Keyboard::new(Mode::Pinyin, &mut e);
        typed(&mut k, &mut e, "shi");
        let v = k.view(&e);
        assert_eq!(v.candidates, ["是", "时", "实"]);
        assert!(!v.has_previous && v.has_next);
        k.page(true, &mut e);
        let v = k.view(&e);
        assert_eq!(v.candidates, ["事", "使"]);
        assert!(v.has_previous && !v.has_next);
        // The second page's first candidate is the one picked.
        k.page(true, &mut e);
        assert_eq!(k.pick(0, &mut e), Edit::Insert(Zeroizing::new("事".into())));
        typed(&mut k, &mut e, "shi");
        k.page(true, &mut e);
        k.page(false, &mut e);
        assert_eq!(k.view(&e).candidates, ["是", "时", "实"]);
        // Past the page's end nothing is picked.
        assert_eq!(k.pick(5, &mut e), Edit::None);
    }

    #[test]
    fn backspace_edits_the_composition_before_the_field() {
        let mut e = engines();
        let mut k = Keyboard::new(Mode::Pinyin, &mut e);
        typed(&mut k, &mut e, "shiy");
        assert_eq!(k.backspace(&mut e), Edit::None);
        assert_eq!(k.view(&e).preedit, "shi");
        for _ in 0..3 {
            assert_eq!(k.backspace(&mut e), Edit::None);
        }
        assert_eq!(k.view(&e).preedit, "");
        assert_eq!(k.backspace(&mut e), Edit::DeleteBack);
        // Handwriting: the last stroke goes first.
        k.set_mode(Mode::Handwriting, &mut e);
        for y in [0.2, 0.5, 0.8] {
            k.ink_down([0.1, y]);
            k.ink_move([0.9, y]);
            k.ink_up(&mut e);
        }
        assert_eq!(k.view(&e).candidates, ["小", "川", "三"]);
        assert_eq!(k.backspace(&mut e), Edit::None);
        assert!(k.view(&e).candidates.is_empty(), "two strokes: nothing");
        assert_eq!(k.view(&e).ink_path.matches('M').count(), 2);
        k.clear_ink();
        assert_eq!(k.backspace(&mut e), Edit::DeleteBack);
    }

    #[test]
    fn mode_switch_drops_the_composition_and_changes_what_keys_type() {
        let mut e = engines();
        let mut k = Keyboard::new(Mode::Pinyin, &mut e);
        typed(&mut k, &mut e, "shi");
        k.set_mode(Mode::Latin, &mut e);
        assert_eq!(k.view(&e).mode, "latin");
        assert_eq!(k.view(&e).preedit, "");
        assert_eq!(k.key('a', &mut e), Edit::Insert(Zeroizing::new("a".into())));
        k.toggle_shift();
        assert_eq!(k.key('l', &mut e), Edit::Insert(Zeroizing::new("L".into())));
        k.set_mode(Mode::Digits, &mut e);
        assert_eq!(k.key('7', &mut e), Edit::Insert(Zeroizing::new("7".into())));
        assert_eq!(k.key('a', &mut e), Edit::None);
        k.set_mode(Mode::Pinyin, &mut e);
        assert_eq!(k.view(&e).mode, "pinyin");
        // Without engines, the Chinese modes fall back to Latin.
        let mut none = Engines::default();
        let mut k = Keyboard::new(Mode::Pinyin, &mut none);
        assert_eq!(k.mode(), Mode::Latin);
        k.set_mode(Mode::Handwriting, &mut none);
        assert_eq!(k.mode(), Mode::Latin);
        assert!(!k.view(&none).pinyin_available);
    }

    #[test]
    fn handwriting_candidates_page_and_a_pick_clears_the_pad() {
        let mut e = engines();
        let mut k = Keyboard::new(Mode::Handwriting, &mut e);
        k.ink_down([0.5, 0.1]);
        k.ink_move([0.5, 0.5]);
        k.ink_move([0.5, 2.0]);
        k.ink_up(&mut e);
        let v = k.view(&e);
        assert_eq!(v.ink_path, "M 500 100 L 500 500 L 500 1000");
        assert_eq!(v.candidates.len(), HANDWRITING_PAGE);
        assert!(!v.has_previous && v.has_next);
        k.page(true, &mut e);
        assert_eq!(k.view(&e).candidates, ["乛", "亅", "乚", "〇", "乀"]);
        assert!(!k.view(&e).has_next);
        k.page(true, &mut e);
        assert_eq!(k.view(&e).candidates[0], "乛", "no page past the last");
        k.page(false, &mut e);
        k.page(true, &mut e);
        assert_eq!(k.pick(4, &mut e), Edit::Insert(Zeroizing::new("乀".into())));
        let v = k.view(&e);
        assert!(v.candidates.is_empty() && v.ink_path.is_empty());
    }
}
