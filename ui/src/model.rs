//! The UI's state machine, without I/O.
//!
//! kioskd runs the customer flows; this model only decides what the screen
//! shows and which requests to send. It is fed [`Input`]s (what kioskd
//! said, what the customer touched, the clock) and answers with
//! [`Command`]s for the bridge to send; [`Model::view`] is the screen.
//! Time is passed in, so the idle countdown is tested without waiting.

use std::time::{Duration, Instant};

use kiosk_proto::{
    Event, FlowMessage, Outcome, QueueServiceInfo, QueueTicketInfo, Refusal,
    Screen as SessionScreen, SessionInfo, SessionInput, Stage, StatusInfo, SyncStatusInfo,
};
use zeroize::Zeroizing;

use crate::keyboard::{Edit, Engines, Keyboard, KeyboardView, Mode, Point};
use crate::texts::{Clip, Lang};

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// kioskd cannot be reached; the bridge keeps reconnecting.
    Unavailable,
    /// Nobody at the kiosk: welcome (smart teller) or services (queue machine).
    Attract,
    /// Smart teller: choose a flow.
    Menu,
    /// A session waits for the ID card.
    PlaceCard,
    /// kioskd or the bank is working.
    Working,
    ConfirmId,
    Question,
    NewNumber,
    Code,
    ConfirmPhone,
    /// The session's end.
    Result,
    /// Choose a queue service (after a swipe, or from the menu).
    Queue,
    Ticket,
    PrinterFault,
    TechPin,
    Technician,
}

impl Screen {
    /// Every screen (the voice guidance's tests walk them all).
    pub const ALL: &[Screen] = &[
        Screen::Unavailable,
        Screen::Attract,
        Screen::Menu,
        Screen::PlaceCard,
        Screen::Working,
        Screen::ConfirmId,
        Screen::Question,
        Screen::NewNumber,
        Screen::Code,
        Screen::ConfirmPhone,
        Screen::Result,
        Screen::Queue,
        Screen::Ticket,
        Screen::PrinterFault,
        Screen::TechPin,
        Screen::Technician,
    ];

    /// The name the `.slint` side switches on.
    pub fn as_str(self) -> &'static str {
        match self {
            Screen::Unavailable => "unavailable",
            Screen::Attract => "attract",
            Screen::Menu => "menu",
            Screen::PlaceCard => "place_card",
            Screen::Working => "working",
            Screen::ConfirmId => "confirm_id",
            Screen::Question => "question",
            Screen::NewNumber => "new_number",
            Screen::Code => "code",
            Screen::ConfirmPhone => "confirm_phone",
            Screen::Result => "result",
            Screen::Queue => "queue",
            Screen::Ticket => "ticket",
            Screen::PrinterFault => "printer_fault",
            Screen::TechPin => "tech_pin",
            Screen::Technician => "technician",
        }
    }

    /// Screens that belong to a running kioskd session: kioskd's own idle
    /// timeout applies there, not the UI's.
    fn in_session(self) -> bool {
        matches!(
            self,
            Screen::PlaceCard
                | Screen::Working
                | Screen::ConfirmId
                | Screen::Question
                | Screen::NewNumber
                | Screen::Code
                | Screen::ConfirmPhone
        )
    }
}

/// Voice guidance (rule A3): the clips said, in order, when `screen`
/// appears. The one place that decides it. On the result screen,
/// `outcome` is how the session ended (`None`: kioskd could not be
/// asked) and `card_used` whether a card was read in it.
pub fn screen_clips(screen: Screen, outcome: Option<Outcome>, card_used: bool) -> Vec<Clip> {
    match screen {
        Screen::Unavailable => vec![Clip::Unavailable],
        // Nobody is there yet: a kiosk does not talk to an empty hall.
        Screen::Attract => vec![],
        Screen::Menu => vec![Clip::ChooseService],
        Screen::PlaceCard => vec![Clip::PlaceCard],
        // Brief steps between two screens: the next screen's clip would cut
        // it off, so it would only be noise.
        Screen::Working => vec![],
        Screen::ConfirmId => vec![Clip::CheckDetails],
        Screen::Question => vec![Clip::AnswerQuestion],
        Screen::NewNumber => vec![Clip::EnterNewNumber],
        Screen::Code => vec![Clip::EnterCode],
        Screen::ConfirmPhone => vec![Clip::ConfirmPhoneChange],
        Screen::Result => {
            let mut clips = vec![outcome_clip(outcome)];
            if card_used {
                clips.push(Clip::TakeCard);
            }
            clips
        }
        Screen::Queue => vec![Clip::ChooseQueueService],
        Screen::Ticket => vec![Clip::TakeTicket],
        Screen::PrinterFault => vec![Clip::PrinterFault],
        // Staff screens: the technician needs no guidance aloud.
        Screen::TechPin | Screen::Technician => vec![],
    }
}

/// The result screen's clip, whose words are also its title.
fn outcome_clip(outcome: Option<Outcome>) -> Clip {
    match outcome {
        Some(Outcome::Applied) => Clip::Applied,
        Some(Outcome::AcceptedWillSync | Outcome::Pending) => Clip::Accepted,
        Some(Outcome::Rejected) => Clip::Rejected,
        Some(Outcome::Refused) => Clip::Refused,
        Some(Outcome::Cancelled) => Clip::Cancelled,
        Some(Outcome::TimedOut) => Clip::TimedOut,
        None => Clip::NotAvailable,
    }
}

/// The kiosk's profile, from kioskd's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    SmartTeller,
    QueueMachine,
}

/// Which entry field the keypad types into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Field {
    #[default]
    First,
    Second,
}

/// What the customer touched.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Any touch: the customer is still there.
    Touch,
    Start,
    Language,
    /// Rule A2: the elderly-friendly mode on or off.
    Elderly,
    /// Rule A4: the idle warning's "more time".
    MoreTime,
    /// The elderly-friendly keys: the next page of keys.
    KeyPage,
    /// `id_update` or `phone_change`.
    Flow(String),
    QueueMenu,
    Service(String),
    Confirm,
    Cancel,
    Done,
    Retry,
    Key(char),
    Delete,
    Clear,
    Submit,
    Focus(Field),
    /// The text keyboard: show these keys.
    KeyboardMode(Mode),
    /// Upper case on the Latin keys (on until touched again).
    Shift,
    /// The candidate at this index of the page shown.
    Candidate(usize),
    /// The next (`true`) or previous page of candidates.
    CandidatePage(bool),
    /// A stroke on the handwriting pad: starts, goes on, ends.
    InkDown(Point),
    InkMove(Point),
    InkUp,
    /// Wipe the handwriting pad.
    ClearInk,
    /// The answer field: dots instead of the answer, or back.
    HideAnswer,
    Resend,
    ChangeNumber,
    TechCorner,
    TechPrintTest,
    TechReaderCheck,
    TechSyncRetry,
    TechExit,
}

/// What the UI learns.
#[derive(Debug)]
pub enum Input {
    /// (Re)connected: kioskd's state now.
    Connected {
        status: Box<StatusInfo>,
        services: Vec<QueueServiceInfo>,
        session: Box<SessionInfo>,
    },
    /// The connection was lost.
    Disconnected,
    Event(Box<Event>),
    /// The answer to a session request.
    SessionAnswer(Result<Box<SessionInfo>, String>),
    /// The answer to `queue_take`.
    TicketAnswer(Result<Box<QueueTicketInfo>, String>),
    /// The answer to the technician PIN: `Err` carries kioskd's reason.
    TechUnlocked(Result<(), String>),
    /// Status for the technician screen.
    TechStatus(Box<StatusInfo>, Option<Box<SyncStatusInfo>>),
    /// A technician action's result, one line per check.
    TechReport(String),
    Action(Action),
    /// The clock.
    Tick,
}

/// What the bridge must send to kioskd.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Start `flow`; `elderly`: with kioskd's longer idle times (rule A2).
    SessionStart {
        flow: String,
        elderly: bool,
    },
    SessionInput(SessionInput),
    SessionCancel,
    QueueTake {
        service: String,
        use_card: bool,
    },
    TechUnlock(Zeroizing<String>),
    TechLock,
    TechRefresh,
    Selftest {
        print_test_page: bool,
    },
    SyncRetryRejected,
}

/// Timings of the UI's own idle handling.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Back to the attract screen after this long without a touch.
    pub idle: Duration,
    /// ... and after this long on a final screen (ticket, result).
    pub final_screen: Duration,
    /// The countdown shows during the last this-long.
    pub countdown: Duration,
    /// Rules A2, A4: `idle` and `final_screen` are this many times longer
    /// in the elderly-friendly mode.
    pub elderly_factor: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            idle: Duration::from_secs(60),
            final_screen: Duration::from_secs(20),
            countdown: Duration::from_secs(10),
            elderly_factor: 2,
        }
    }
}

const CODE_DIGITS: usize = 6;
const NUMBER_DIGITS: usize = 11;
const PIN_DIGITS: usize = 12;
const ANSWER_CHARS: usize = 32;

/// What the customer has typed; wiped when the screen changes (and zeroized).
#[derive(Default)]
struct Entry {
    first: Zeroizing<String>,
    second: Zeroizing<String>,
    code: Zeroizing<String>,
    answer: Zeroizing<String>,
    pin: Zeroizing<String>,
    focus: Field,
    /// The answer shows as dots (the customer asked: a crowded hall).
    answer_hidden: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Which field is focused, never what is in them.
        f.debug_struct("Entry")
            .field("focus", &self.focus)
            .finish_non_exhaustive()
    }
}

/// How a card of the technician's status board is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// Nothing to say either way (versions, identity).
    #[default]
    Info,
    Ok,
    /// Works, but needs attention soon (paper near its end, a backlog).
    Warn,
    /// Does not work, or data is stuck (a reader gone, changes rejected).
    Fault,
}

impl Level {
    /// The name the `.slint` side colours by.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fault => "fault",
        }
    }
}

/// One card of the technician's status board: a device, the sync
/// backlog, the disk, the kiosk's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardCard {
    /// The picture: `reader`, `printer`, `sync`, `disk` or `info`.
    pub icon: &'static str,
    pub title: String,
    /// The headline value (a device's state, the backlog's size).
    pub state: String,
    pub detail: String,
    pub level: Level,
}

/// The screen, as data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    pub screen: &'static str,
    /// The branch's name (`[kiosk] branch_name`), for the header.
    pub branch: String,
    pub lang_en: bool,
    /// Rule A2: larger text and targets, fewer things, plain words.
    pub elderly: bool,
    /// kioskd warned that the session ends soon (or the UI's own
    /// countdown runs): "more time" is offered (rule A4).
    pub idle_warning: bool,
    pub queue_machine: bool,
    /// The main line of a result or notice (in the screen's language).
    pub title: String,
    /// kioskd's message (in the screen's language).
    pub message: String,
    /// The message is a refusal to retry in the same step (shown in red).
    pub warning: bool,
    pub reading: bool,
    pub name: String,
    pub number: String,
    pub old_value: String,
    pub new_value: String,
    pub question: String,
    pub first: String,
    pub second: String,
    pub focus_second: bool,
    /// The answer as typed, so the customer sees which characters the
    /// candidates put there; dots while `answer_hidden`.
    pub answer: String,
    pub answer_hidden: bool,
    /// The text keyboard (the answer's screen only).
    pub keyboard: KeyboardView,
    pub code: String,
    pub masked_mobile: String,
    pub resend_in_s: i32,
    pub services: Vec<(String, String, String)>,
    pub card_name: String,
    pub ticket_number: String,
    pub waiting_ahead: String,
    /// Seconds to the attract screen, when counting down.
    pub countdown_s: i32,
    pub can_retry: bool,
    pub pin_dots: String,
    /// The technician's status board.
    pub tech_cards: Vec<BoardCard>,
    pub tech_report: String,
}

/// The UI's state.
#[derive(Debug)]
pub struct Model {
    lang: Lang,
    /// Rule A2: the elderly-friendly mode, and what each customer starts
    /// with (the kiosk's setting).
    elderly: bool,
    elderly_default: bool,
    timing: Timing,
    connected: bool,
    profile: Profile,
    /// The branch's name and time zone, from kioskd's `status`.
    branch_name: String,
    timezone: String,
    services: Vec<QueueServiceInfo>,
    screen: Screen,
    /// The session shown, as kioskd last described it.
    session: Option<SessionInfo>,
    /// A session whose end the customer has left: its late events are ignored.
    dismissed: Option<String>,
    /// The flow of the last session, for "try again".
    last_flow: Option<String>,
    card_present: bool,
    /// A card was read in the session shown ("please take your card").
    card_used: bool,
    /// Voice guidance to say, taken by [`Model::take_speech`].
    speech: Option<Vec<Clip>>,
    /// Masked name of a card swiped at the queue.
    card_name: Option<String>,
    ticket: Option<QueueTicketInfo>,
    /// A ticket request is in flight: one ticket per touch.
    ticket_pending: bool,
    /// A local error shown on the result screen.
    notice: Option<(String, String)>,
    entry: Entry,
    /// The text keyboard of the answer field, and its engines.
    keyboard: Keyboard,
    engines: Engines,
    /// When the code screen appeared, and its resend delay.
    code_shown: Option<(Instant, u64)>,
    last_touch: Instant,
    now: Instant,
    pin_message: String,
    tech_status: Option<(StatusInfo, Option<SyncStatusInfo>)>,
    tech_report: String,
    app_version: &'static str,
}

impl Model {
    /// A model whose keyboard types Latin letters and digits only.
    pub fn new(timing: Timing, now: Instant) -> Model {
        Model::with_engines(timing, now, Engines::default())
    }

    /// A model whose keyboard also types pinyin and handwriting.
    pub fn with_engines(timing: Timing, now: Instant, mut engines: Engines) -> Model {
        Model {
            keyboard: Keyboard::new(Mode::Pinyin, &mut engines),
            engines,
            lang: Lang::Zh,
            elderly: false,
            elderly_default: false,
            timing,
            connected: false,
            profile: Profile::SmartTeller,
            branch_name: String::new(),
            timezone: String::new(),
            services: Vec::new(),
            screen: Screen::Unavailable,
            session: None,
            dismissed: None,
            last_flow: None,
            card_present: false,
            card_used: false,
            speech: None,
            card_name: None,
            ticket: None,
            ticket_pending: false,
            notice: None,
            entry: Entry::default(),
            code_shown: None,
            last_touch: now,
            now,
            pin_message: String::new(),
            tech_status: None,
            tech_report: String::new(),
            app_version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub fn screen(&self) -> Screen {
        self.screen
    }

    /// The kiosk's setting: every customer starts in the elderly-friendly
    /// mode (`true`) or in the standard one.
    pub fn set_elderly_default(&mut self, on: bool) {
        self.elderly_default = on;
        self.elderly = on;
    }

    pub fn elderly(&self) -> bool {
        self.elderly
    }

    /// kioskd's idle warning is on screen (rule A4).
    fn session_idle_warning(&self) -> bool {
        self.screen.in_session()
            && self.session.as_ref().is_some_and(|s| {
                s.active && s.message.as_ref().is_some_and(|m| m.code == "idle_warning")
            })
    }

    /// The code of kioskd's message on screen (`wrong_code`, ...): what a
    /// test waits for, where "some message" may still be the last one.
    pub fn message_code(&self) -> Option<&str> {
        self.session
            .as_ref()
            .and_then(|s| s.message.as_ref())
            .map(|m| m.code.as_str())
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The branch's time zone (IANA name) kioskd gave; empty before.
    pub fn timezone(&self) -> &str {
        &self.timezone
    }

    /// Voice guidance (rule A3) to say now, in [`Model::lang`], if the
    /// screen, its language or the idle warning changed since the last
    /// call. An empty list cuts off what is still playing (the screen it
    /// belonged to is gone).
    pub fn take_speech(&mut self) -> Option<Vec<Clip>> {
        self.speech.take()
    }

    /// The clips of the screen shown.
    fn screen_speech(&self) -> Vec<Clip> {
        let outcome = match (&self.notice, &self.session) {
            (None, Some(session)) => session.outcome,
            _ => None,
        };
        screen_clips(self.screen, outcome, self.card_used)
    }

    /// The idle countdown shows.
    fn counting_down(&self) -> bool {
        self.idle_deadline().is_some_and(|deadline| {
            deadline.saturating_duration_since(self.now) <= self.timing.countdown
        })
    }

    /// Handle one input at `now`; the commands to send, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Command> {
        let before = (self.screen, self.lang, self.counting_down());
        self.now = now;
        let out = self.handle_input(input, now);
        if (self.screen, self.lang) != (before.0, before.1) {
            self.speech = Some(self.screen_speech());
        } else if self.counting_down() && !before.2 {
            self.speech = Some(vec![Clip::StillThere]);
        }
        out
    }

    fn handle_input(&mut self, input: Input, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        match input {
            Input::Connected {
                status,
                services,
                session,
            } => {
                self.connected = true;
                self.profile = match status.profile.as_str() {
                    "queue_machine" => Profile::QueueMachine,
                    _ => Profile::SmartTeller,
                };
                self.services = services;
                self.branch_name = status.branch_name.clone();
                self.timezone = status.timezone.clone();
                self.tech_status = None;
                if self.screen == Screen::Unavailable {
                    self.go(Screen::Attract);
                }
                // A session kioskd still runs (the UI restarted): pick it up.
                if session.active {
                    self.show_session(*session);
                }
            }
            Input::Disconnected => {
                self.connected = false;
                self.session = None;
                self.card_name = None;
                self.go(Screen::Unavailable);
            }
            Input::Event(event) => self.on_event(*event),
            // kioskd publishes every session state as an event, in order,
            // and answers each input on the event stream too; an answer can
            // overtake the events before it (two connections), so the
            // screen follows the events alone.
            Input::SessionAnswer(Ok(_)) => {}
            Input::SessionAnswer(Err(reason)) => {
                self.notice = Some(unavailable_notice(&reason));
                self.session = None;
                self.go(Screen::Result);
            }
            Input::TicketAnswer(answer) => {
                self.ticket_pending = false;
                match answer {
                    Ok(ticket) => {
                        let screen = if ticket.printed {
                            Screen::Ticket
                        } else {
                            Screen::PrinterFault
                        };
                        self.ticket = Some(*ticket);
                        self.card_name = None;
                        self.go(screen);
                    }
                    Err(reason) => {
                        self.notice = Some(unavailable_notice(&reason));
                        self.go(Screen::Result);
                    }
                }
            }
            Input::TechUnlocked(Ok(())) => {
                self.pin_message.clear();
                self.tech_report.clear();
                self.go(Screen::Technician);
                out.push(Command::TechRefresh);
            }
            Input::TechUnlocked(Err(reason)) => {
                self.entry.pin.zeroize_clear();
                self.pin_message = reason;
            }
            Input::TechStatus(status, sync) => {
                self.tech_status = Some((*status, sync.map(|s| *s)));
            }
            Input::TechReport(report) => {
                self.tech_report = report;
                out.push(Command::TechRefresh);
            }
            Input::Action(action) => {
                self.last_touch = now;
                self.on_action(action, &mut out);
            }
            Input::Tick => {
                if let Some(deadline) = self.idle_deadline()
                    && now >= deadline
                {
                    if self.screen == Screen::Technician {
                        out.push(Command::TechLock);
                    }
                    self.reset();
                }
            }
        }
        out
    }

    /// When the UI goes back to the attract screen by itself.
    pub fn idle_deadline(&self) -> Option<Instant> {
        let after = match self.screen {
            Screen::Unavailable | Screen::Attract => return None,
            s if s.in_session() => return None,
            Screen::Ticket | Screen::PrinterFault | Screen::Result => self.timing.final_screen,
            _ => self.timing.idle,
        };
        let factor = if self.elderly {
            self.timing.elderly_factor
        } else {
            1
        };
        Some(self.last_touch + after * factor)
    }

    /// Whether the bridge should keep sending [`Input::Tick`]s (a countdown
    /// or an idle deadline is running).
    pub fn needs_ticks(&self) -> bool {
        self.idle_deadline().is_some() || self.screen == Screen::Code
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Session(info) => {
                if info.session_id.is_some() && info.session_id == self.dismissed {
                    return;
                }
                // Another client's session (kioskctl, a test) shows too.
                if info.active || self.session.is_some() {
                    self.show_session(info);
                }
            }
            Event::CardPresent { .. } => self.card_present = true,
            Event::CardAbsent { .. } => self.card_present = false,
            Event::CardRead { identity, .. } => {
                self.card_present = true;
                if self.screen.in_session() {
                    self.card_used = true;
                }
                // Rule Q3: a swipe at the queue puts the masked name on the
                // ticket and checks the card's validity.
                let at_queue = matches!(self.screen, Screen::Queue)
                    || (self.screen == Screen::Attract && self.profile == Profile::QueueMachine);
                if at_queue && !self.services.is_empty() {
                    self.card_name = Some(identity.name.clone());
                    self.last_touch = self.now;
                    self.go(Screen::Queue);
                }
            }
            _ => {}
        }
    }

    fn on_action(&mut self, action: Action, out: &mut Vec<Command>) {
        if self.screen == Screen::Unavailable
            && !matches!(action, Action::Language | Action::Elderly)
        {
            return;
        }
        match action {
            Action::Touch => {}
            Action::Language => self.lang = self.lang.other(),
            Action::Elderly => {
                self.elderly = !self.elderly;
                // kioskd's session takes the mode's idle times too.
                if self.screen.in_session() && self.session.as_ref().is_some_and(|s| s.active) {
                    out.push(Command::SessionInput(SessionInput::Elderly {
                        on: self.elderly,
                    }));
                }
            }
            // On the UI's own countdown the touch itself was enough.
            Action::MoreTime => {
                if self.session_idle_warning() {
                    out.push(Command::SessionInput(SessionInput::MoreTime));
                }
            }
            Action::KeyPage => self.keyboard.next_key_page(),
            Action::Start => {
                if self.screen == Screen::Attract {
                    self.go(if self.profile == Profile::QueueMachine {
                        Screen::Queue
                    } else {
                        Screen::Menu
                    });
                }
            }
            Action::Flow(flow) => {
                if matches!(self.screen, Screen::Menu | Screen::Attract) {
                    self.start_flow(flow, out);
                }
            }
            Action::QueueMenu => {
                if !self.services.is_empty() {
                    self.go(Screen::Queue);
                }
            }
            Action::Service(service) => {
                if matches!(self.screen, Screen::Queue | Screen::Attract) && !self.ticket_pending {
                    self.ticket_pending = true;
                    out.push(Command::QueueTake {
                        service,
                        use_card: self.card_name.is_some(),
                    });
                }
            }
            Action::Confirm => {
                if matches!(self.screen, Screen::ConfirmId | Screen::ConfirmPhone) {
                    out.push(Command::SessionInput(SessionInput::Confirm));
                }
            }
            Action::Cancel => {
                if self.screen.in_session() || self.session.as_ref().is_some_and(|s| s.active) {
                    out.push(Command::SessionCancel);
                } else if self.screen == Screen::TechPin {
                    self.reset();
                } else if self.screen == Screen::Technician {
                    out.push(Command::TechLock);
                    self.reset();
                } else {
                    self.reset();
                }
            }
            Action::Done => self.reset(),
            Action::Retry => {
                if self.screen == Screen::Result
                    && let Some(flow) = self.last_flow.clone()
                {
                    self.dismiss();
                    self.start_flow(flow, out);
                }
            }
            Action::Key(c) if self.screen == Screen::Question => {
                let edit = self.keyboard.key(c, &mut self.engines);
                self.edit_answer(edit);
            }
            Action::Key(c) => self.key(c),
            Action::Delete if self.screen == Screen::Question => {
                let edit = self.keyboard.backspace(&mut self.engines);
                self.edit_answer(edit);
            }
            Action::Delete => {
                if let Some(s) = self.field() {
                    s.pop();
                }
            }
            Action::Clear => {
                if self.screen == Screen::Question {
                    self.keyboard.drop_composition(&mut self.engines);
                }
                if let Some(s) = self.field() {
                    s.zeroize_clear();
                }
            }
            Action::Focus(field) => self.entry.focus = field,
            Action::KeyboardMode(mode) => {
                if self.screen == Screen::Question {
                    self.keyboard.set_mode(mode, &mut self.engines);
                }
            }
            Action::Shift => self.keyboard.toggle_shift(),
            Action::Candidate(index) => {
                if self.screen == Screen::Question {
                    let edit = self.keyboard.pick(index, &mut self.engines);
                    self.edit_answer(edit);
                }
            }
            Action::CandidatePage(forward) => self.keyboard.page(forward, &mut self.engines),
            Action::InkDown(at) => {
                if self.screen == Screen::Question {
                    self.keyboard.ink_down(at);
                }
            }
            Action::InkMove(at) => self.keyboard.ink_move(at),
            Action::InkUp => self.keyboard.ink_up(&mut self.engines),
            Action::ClearInk => self.keyboard.clear_ink(),
            Action::HideAnswer => self.entry.answer_hidden = !self.entry.answer_hidden,
            Action::Submit => self.submit(out),
            Action::Resend => {
                if self.screen == Screen::Code && self.resend_in_s() == 0 {
                    out.push(Command::SessionInput(SessionInput::Resend));
                }
            }
            Action::ChangeNumber => {
                if self.screen == Screen::Code {
                    out.push(Command::SessionInput(SessionInput::ChangeNumber));
                }
            }
            Action::TechCorner => {
                if matches!(self.screen, Screen::Attract | Screen::Menu | Screen::Queue) {
                    self.pin_message.clear();
                    self.go(Screen::TechPin);
                }
            }
            Action::TechPrintTest => {
                if self.screen == Screen::Technician {
                    self.tech_report.clear();
                    out.push(Command::Selftest {
                        print_test_page: true,
                    });
                }
            }
            Action::TechReaderCheck => {
                if self.screen == Screen::Technician {
                    self.tech_report.clear();
                    out.push(Command::Selftest {
                        print_test_page: false,
                    });
                }
            }
            Action::TechSyncRetry => {
                if self.screen == Screen::Technician {
                    self.tech_report.clear();
                    out.push(Command::SyncRetryRejected);
                }
            }
            Action::TechExit => {
                if self.screen == Screen::Technician {
                    out.push(Command::TechLock);
                }
                self.reset();
            }
        }
    }

    fn start_flow(&mut self, flow: String, out: &mut Vec<Command>) {
        self.last_flow = Some(flow.clone());
        self.card_present = false;
        self.card_used = false;
        self.go(Screen::Working);
        out.push(Command::SessionStart {
            flow,
            elderly: self.elderly,
        });
    }

    fn field(&mut self) -> Option<&mut Zeroizing<String>> {
        match (self.screen, self.entry.focus) {
            (Screen::NewNumber, Field::First) => Some(&mut self.entry.first),
            (Screen::NewNumber, Field::Second) => Some(&mut self.entry.second),
            (Screen::Code, _) => Some(&mut self.entry.code),
            (Screen::Question, _) => Some(&mut self.entry.answer),
            (Screen::TechPin, _) => Some(&mut self.entry.pin),
            _ => None,
        }
    }

    fn key(&mut self, c: char) {
        let limit = match self.screen {
            Screen::NewNumber => NUMBER_DIGITS,
            Screen::Code => CODE_DIGITS,
            Screen::TechPin => PIN_DIGITS,
            Screen::Question => ANSWER_CHARS,
            _ => return,
        };
        let screen = self.screen;
        let focus = self.entry.focus;
        if screen != Screen::Question && !c.is_ascii_digit() {
            return;
        }
        if let Some(s) = self.field()
            && s.chars().count() < limit
        {
            s.push(c);
            // The first number is complete: the keypad moves on.
            if screen == Screen::NewNumber && focus == Field::First && s.len() == NUMBER_DIGITS {
                self.entry.focus = Field::Second;
            }
        }
    }

    /// Apply what the keyboard did to the answer.
    fn edit_answer(&mut self, edit: Edit) {
        let answer = &mut self.entry.answer;
        match edit {
            Edit::None => {}
            Edit::Insert(text) => {
                let room = ANSWER_CHARS.saturating_sub(answer.chars().count());
                answer.extend(text.chars().take(room));
            }
            Edit::DeleteBack => {
                answer.pop();
            }
        }
    }

    fn submit(&mut self, out: &mut Vec<Command>) {
        match self.screen {
            Screen::Question if !self.entry.answer.is_empty() => {
                let answer = std::mem::take(&mut *self.entry.answer);
                out.push(Command::SessionInput(SessionInput::Answer { answer }));
                self.go(Screen::Working);
            }
            Screen::NewNumber if !self.entry.first.is_empty() => {
                let first = std::mem::take(&mut *self.entry.first);
                let second = std::mem::take(&mut *self.entry.second);
                out.push(Command::SessionInput(SessionInput::Numbers {
                    first,
                    second,
                }));
                self.go(Screen::Working);
            }
            Screen::Code if !self.entry.code.is_empty() => {
                let code = std::mem::take(&mut *self.entry.code);
                out.push(Command::SessionInput(SessionInput::Code { code }));
                self.go(Screen::Working);
            }
            Screen::TechPin if !self.entry.pin.is_empty() => {
                let pin = Zeroizing::new(std::mem::take(&mut *self.entry.pin));
                // The last refusal goes; the answer brings the next.
                self.pin_message.clear();
                out.push(Command::TechUnlock(pin));
            }
            _ => {}
        }
    }

    fn show_session(&mut self, info: SessionInfo) {
        if let Some(flow) = &info.flow {
            self.last_flow = Some(flow.clone());
        }
        let screen = if !info.active {
            Screen::Result
        } else {
            match (info.stage, &info.screen) {
                (Stage::AwaitingCard, _) => Screen::PlaceCard,
                (Stage::AwaitingAnswer, _) => Screen::Question,
                (Stage::AwaitingNumber, _) => Screen::NewNumber,
                (Stage::AwaitingCode, _) => Screen::Code,
                (Stage::AwaitingConfirmation, Some(SessionScreen::ConfirmPhone(_))) => {
                    Screen::ConfirmPhone
                }
                (Stage::AwaitingConfirmation, _) => Screen::ConfirmId,
                _ => Screen::Working,
            }
        };
        let resend = match &info.screen {
            Some(SessionScreen::Code { resend_in_s, .. }) => Some(*resend_in_s),
            _ => None,
        };
        // The code screen's first delay; a resend gives a new one.
        if screen == Screen::Code
            && (self.screen != Screen::Code
                || (resend.is_some()
                    && self.session.as_ref().map(|s| &s.screen) != Some(&info.screen)))
        {
            self.code_shown = Some((self.now, resend.unwrap_or(0)));
        }
        self.session = Some(info);
        self.notice = None;
        self.last_touch = self.now;
        self.go(screen);
    }

    /// Change screen; what was typed does not survive it.
    fn go(&mut self, screen: Screen) {
        if screen != self.screen {
            tracing::debug!(
                from = self.screen.as_str(),
                to = screen.as_str(),
                "screen changes"
            );
            self.entry = Entry::default();
            self.new_keyboard();
            if screen != Screen::Code {
                self.code_shown = None;
            }
            if screen != Screen::PlaceCard {
                self.card_present = self.card_present && screen.in_session();
            }
        }
        self.screen = screen;
    }

    /// The customer has left the session's end: its late events are ignored.
    fn dismiss(&mut self) {
        if let Some(s) = self.session.take() {
            self.dismissed = s.session_id;
        }
    }

    /// Back to the attract screen with nothing of the last customer left.
    fn reset(&mut self) {
        self.dismiss();
        // The next customer starts with the kiosk's setting.
        self.elderly = self.elderly_default;
        self.card_name = None;
        self.ticket = None;
        self.ticket_pending = false;
        self.notice = None;
        self.pin_message.clear();
        self.tech_report.clear();
        self.tech_status = None;
        self.card_present = false;
        self.card_used = false;
        self.go(if self.connected {
            Screen::Attract
        } else {
            Screen::Unavailable
        });
        self.entry = Entry::default();
        self.new_keyboard();
    }

    /// A fresh keyboard (the engines' composition dropped): pinyin for
    /// Chinese, letters for English.
    fn new_keyboard(&mut self) {
        self.keyboard.drop_composition(&mut self.engines);
        let mode = match self.lang {
            Lang::Zh => Mode::Pinyin,
            Lang::En => Mode::Latin,
        };
        self.keyboard = Keyboard::new(mode, &mut self.engines);
    }

    fn resend_in_s(&self) -> u64 {
        match self.code_shown {
            Some((at, delay)) => {
                let gone = self.now.saturating_duration_since(at).as_secs();
                delay.saturating_sub(gone)
            }
            None => 0,
        }
    }

    fn msg(&self, m: &FlowMessage) -> String {
        self.lang.pick(&m.zh, &m.en).to_string()
    }

    /// The screen as data, in the current language.
    pub fn view(&self) -> View {
        let lang = self.lang;
        let mut v = View {
            screen: self.screen.as_str(),
            branch: self.branch_name.clone(),
            lang_en: lang == Lang::En,
            // The technician's screens stay dense: the mode is the customer's.
            elderly: self.elderly && !matches!(self.screen, Screen::TechPin | Screen::Technician),
            queue_machine: self.profile == Profile::QueueMachine,
            services: self
                .services
                .iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        s.letter.clone(),
                        lang.pick(&s.name_zh, &s.name_en).to_string(),
                    )
                })
                .collect(),
            ..View::default()
        };
        if let Some(deadline) = self.idle_deadline() {
            let left = deadline.saturating_duration_since(self.now);
            if left <= self.timing.countdown {
                v.countdown_s = left.as_secs_f64().ceil() as i32;
            }
        }
        v.idle_warning = v.countdown_s > 0 || self.session_idle_warning();
        v.reading = self.screen == Screen::PlaceCard && self.card_present;
        v.card_name = self.card_name.clone().unwrap_or_default();
        if let Some(session) = &self.session {
            if let Some(m) = &session.message {
                v.message = self.msg(m);
            }
            v.warning = session.active && session.refusal.is_some();
            match (self.screen, &session.screen) {
                (Screen::ConfirmId, Some(SessionScreen::ConfirmId(c))) => {
                    v.name = c.masked_name.clone();
                    v.number = c.masked_number.clone();
                    v.old_value = validity(&c.old_valid_from, &c.old_valid_until, lang);
                    v.new_value = validity(&c.new_valid_from, &c.new_valid_until, lang);
                }
                (Screen::ConfirmPhone, Some(SessionScreen::ConfirmPhone(c))) => {
                    v.old_value = c.old_masked.clone();
                    v.new_value = c.new_masked.clone();
                }
                (Screen::Question, Some(SessionScreen::Question { question })) => {
                    v.question = question.clone();
                }
                (Screen::Code, Some(SessionScreen::Code { masked_mobile, .. })) => {
                    v.masked_mobile = masked_mobile.clone();
                }
                (Screen::Result, _) => {
                    v.title = outcome_title(session.outcome, lang).to_string();
                    v.can_retry = session.outcome == Some(Outcome::Refused)
                        && matches!(
                            session.refusal,
                            Some(Refusal::UnreadableCard | Refusal::BankUnreachable)
                        );
                }
                _ => {}
            }
        }
        if let Some((zh, en)) = &self.notice {
            v.title = outcome_title(None, lang).to_string();
            v.message = lang.pick(zh, en).to_string();
            v.can_retry = self.last_flow.is_some() && self.session.is_none();
        }
        v.first = self.entry.first.to_string();
        v.second = self.entry.second.to_string();
        v.focus_second = self.entry.focus == Field::Second;
        v.code = self.entry.code.to_string();
        v.answer_hidden = self.entry.answer_hidden;
        v.answer = if self.entry.answer_hidden {
            "●".repeat(self.entry.answer.chars().count())
        } else {
            self.entry.answer.to_string()
        };
        if self.screen == Screen::Question {
            v.keyboard = self.keyboard.view(&self.engines);
        }
        v.pin_dots = "●".repeat(self.entry.pin.chars().count());
        v.resend_in_s = self.resend_in_s() as i32;
        if let Some(t) = &self.ticket {
            v.ticket_number = t.number.clone();
            v.waiting_ahead = match lang {
                Lang::Zh => format!("前面还有 {} 人等候", t.waiting_ahead),
                Lang::En => format!("{} waiting ahead of you", t.waiting_ahead),
            };
            v.message = lang.pick(&t.message.zh, &t.message.en).to_string();
            v.card_name = t.masked_name.clone().unwrap_or_default();
        }
        if self.screen == Screen::TechPin {
            v.message = self.pin_message.clone();
        }
        if let Some((status, sync)) = &self.tech_status {
            v.tech_cards = status_board(status, sync.as_ref(), self.app_version, lang);
        }
        v.tech_report = self.tech_report.clone();
        v
    }
}

/// The technician's status board: one card per device, then the sync
/// backlog, the disk and the kiosk itself, each coloured by how it is.
fn status_board(
    status: &StatusInfo,
    sync: Option<&SyncStatusInfo>,
    app_version: &str,
    lang: Lang,
) -> Vec<BoardCard> {
    use kiosk_proto::DeviceState;
    let mut cards: Vec<BoardCard> = status
        .devices
        .iter()
        .map(|d| {
            let detail = [
                d.sam_id.as_ref().map(|s| format!("SAM {s}")),
                d.detail.clone(),
                d.last_error
                    .as_ref()
                    .map(|e| format!("{}: {e}", lang.pick("上次故障", "last error"))),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ");
            // A printer that prints but warns (paper near its end) says so
            // in its detail (docs/local-api.md).
            let level = match d.state {
                DeviceState::Online if d.detail.as_deref().is_some_and(|x| x.contains("near")) => {
                    Level::Warn
                }
                DeviceState::Online => Level::Ok,
                DeviceState::Starting | DeviceState::Busy => Level::Warn,
                _ => Level::Fault,
            };
            BoardCard {
                icon: match d.kind.as_str() {
                    "id_reader" => "reader",
                    "printer" => "printer",
                    _ => "info",
                },
                title: format!("{} ({})", d.name, d.kind),
                state: d.state.to_string(),
                detail,
                level,
            }
        })
        .collect();
    let backlog = sync.map(|s| s.backlog).or(status.sync_backlog);
    let mut sync_card = BoardCard {
        icon: "sync",
        title: lang
            .pick("待同步变更", "Changes waiting for the bank")
            .into(),
        state: backlog.map_or_else(|| "-".into(), |b| b.to_string()),
        detail: String::new(),
        level: match backlog {
            Some(0) => Level::Ok,
            Some(_) => Level::Warn,
            None => Level::Info,
        },
    };
    if let Some(s) = sync {
        let mut detail = Vec::new();
        if let Some(age) = s.oldest_pending_age_s {
            detail.push(format!("{} {age} s", lang.pick("最早一笔已等", "oldest")));
        }
        detail.push(format!(
            "{} {}",
            lang.pick("已送达", "delivered"),
            s.delivered
        ));
        if s.rejected > 0 {
            detail.push(format!("{} {}", lang.pick("被拒", "rejected"), s.rejected));
        }
        if s.core_reachable == Some(false) {
            detail.push(lang.pick("核心系统不可达", "core bank unreachable").into());
        }
        if let Some(e) = &s.last_error {
            detail.push(format!("{}: {e}", lang.pick("上次错误", "last error")));
        }
        // Rejected changes need a person; a backlog only needs time.
        if s.rejected > 0 {
            sync_card.level = Level::Fault;
        }
        sync_card.detail = detail.join(" · ");
    }
    cards.push(sync_card);
    if let (Some(free), Some(total)) = (status.disk_free_bytes, status.disk_total_bytes) {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        let share = free as f64 / total.max(1) as f64;
        cards.push(BoardCard {
            icon: "disk",
            title: lang.pick("存储空间", "Disk").into(),
            state: format!("{:.1} GiB {}", gib(free), lang.pick("可用", "free")),
            detail: format!(
                "{} {:.1} GiB · {:.0}%",
                lang.pick("共", "of"),
                gib(total),
                share * 100.0
            ),
            level: if share < 0.05 {
                Level::Fault
            } else if share < 0.15 {
                Level::Warn
            } else {
                Level::Ok
            },
        });
    }
    cards.push(BoardCard {
        icon: "info",
        title: lang.pick("本机", "This kiosk").into(),
        state: status.kiosk_id.clone(),
        detail: format!(
            "{} · {} {} · {} {} s",
            status.profile,
            lang.pick("网点", "branch"),
            status.branch_id,
            lang.pick("运行", "up"),
            status.uptime_s
        ),
        level: Level::Info,
    });
    cards.push(BoardCard {
        icon: "info",
        title: lang.pick("版本", "Versions").into(),
        state: format!("kiosk-ui {app_version}"),
        detail: format!("kioskd {}", status.daemon_version),
        level: Level::Info,
    });
    cards
}

fn validity(from: &str, until: &str, lang: Lang) -> String {
    let until = if until == "long_term" {
        lang.pick("长期", "long-term")
    } else {
        until
    };
    format!("{from} – {until}")
}

/// The result screen's title: how the session ended, or (`None`) that
/// kioskd could not be asked.
fn outcome_title(outcome: Option<Outcome>, lang: Lang) -> &'static str {
    match outcome {
        // The notice below the title says the rest.
        None => lang.pick("暂时无法办理", "Not available right now"),
        Some(_) => outcome_clip(outcome).text(lang),
    }
}

/// A request kioskd did not answer as hoped: the customer gets both
/// languages, never the technical detail (which the log has).
fn unavailable_notice(reason: &str) -> (String, String) {
    tracing::warn!(reason, "request to kioskd failed");
    let (zh, en) = Clip::NotAvailable.texts();
    (zh.into(), en.into())
}

trait ZeroizeClear {
    fn zeroize_clear(&mut self);
}

impl ZeroizeClear for Zeroizing<String> {
    fn zeroize_clear(&mut self) {
        *self = Zeroizing::new(String::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(profile: &str) -> StatusInfo {
        StatusInfo {
            daemon_version: "0.1.0".into(),
            kiosk_id: "K1".into(),
            branch_id: "0101".into(),
            branch_name: "西城支行".into(),
            timezone: "Asia/Shanghai".into(),
            profile: profile.into(),
            uptime_s: 1,
            devices: vec![],
            sync_backlog: Some(0),
            disk_free_bytes: None,
            disk_total_bytes: None,
        }
    }

    fn idle_session() -> SessionInfo {
        SessionInfo {
            session_id: None,
            active: false,
            flow: None,
            stage: Stage::None,
            screen: None,
            message: None,
            outcome: None,
            refusal: None,
            change_id: None,
        }
    }

    fn session(stage: &str, screen: serde_json::Value) -> SessionInfo {
        SessionInfo {
            session_id: Some("s1".into()),
            active: stage != "finished",
            flow: Some("phone_change".into()),
            stage: serde_json::from_value(serde_json::json!(stage)).expect("a stage"),
            // `null`: no screen (the session's end).
            screen: serde_json::from_value(screen).expect("a documented screen"),
            message: None,
            outcome: (stage == "finished").then_some(Outcome::Applied),
            refusal: None,
            change_id: None,
        }
    }

    fn connected(profile: &str) -> (Model, Instant) {
        let t = Instant::now();
        let mut m = Model::new(Timing::default(), t);
        m.handle(
            Input::Connected {
                status: Box::new(status(profile)),
                services: vec![QueueServiceInfo {
                    id: "personal".into(),
                    letter: "A".into(),
                    name_zh: "个人业务".into(),
                    name_en: "Personal banking".into(),
                }],
                session: Box::new(idle_session()),
            },
            t,
        );
        (m, t)
    }

    fn act(m: &mut Model, a: Action, t: Instant) -> Vec<Command> {
        m.handle(Input::Action(a), t)
    }

    #[test]
    fn starts_unavailable_and_shows_attract_once_connected() {
        let t = Instant::now();
        let mut m = Model::new(Timing::default(), t);
        assert_eq!(m.screen(), Screen::Unavailable);
        // Touches do nothing while kioskd is away.
        assert!(act(&mut m, Action::Start, t).is_empty());
        let (m, _) = connected("smart_teller");
        assert_eq!(m.screen(), Screen::Attract);
    }

    #[test]
    fn a_flow_starts_a_session_and_follows_its_stages() {
        let (mut m, t) = connected("smart_teller");
        act(&mut m, Action::Start, t);
        assert_eq!(m.screen(), Screen::Menu);
        let cmds = act(&mut m, Action::Flow("phone_change".into()), t);
        assert_eq!(
            cmds,
            vec![Command::SessionStart {
                flow: "phone_change".into(),
                elderly: false
            }]
        );
        let code = serde_json::json!({"kind": "code", "masked_mobile": "139****5678",
            "expires_in_s": 300, "resend_in_s": 60});
        let confirm = serde_json::json!({"kind": "confirm_phone", "old_masked": "138****0001",
            "new_masked": "139****5678"});
        for (stage, shown, screen) in [
            (
                "awaiting_card",
                serde_json::json!({"kind": "place_card"}),
                Screen::PlaceCard,
            ),
            (
                "looking_up",
                serde_json::json!({"kind": "place_card"}),
                Screen::Working,
            ),
            (
                "awaiting_answer",
                serde_json::json!({"kind": "question", "question": "我母亲的名字?"}),
                Screen::Question,
            ),
            (
                "awaiting_number",
                serde_json::json!({"kind": "new_number"}),
                Screen::NewNumber,
            ),
            ("awaiting_code", code, Screen::Code),
            ("awaiting_confirmation", confirm, Screen::ConfirmPhone),
            ("finished", serde_json::Value::Null, Screen::Result),
        ] {
            m.handle(
                Input::Event(Box::new(Event::Session(session(stage, shown)))),
                t,
            );
            assert_eq!(m.screen(), screen, "{stage}");
        }
        assert_eq!(m.view().title, "办理成功");
    }

    #[test]
    fn the_keypad_types_two_numbers_and_submits_them_once() {
        let (mut m, t) = connected("smart_teller");
        m.handle(
            Input::Event(Box::new(Event::Session(session(
                "awaiting_number",
                serde_json::json!({"kind": "new_number"}),
            )))),
            t,
        );
        for c in "139123456789".chars() {
            act(&mut m, Action::Key(c), t);
        }
        // Eleven digits fill the first field; the keypad moves on.
        assert_eq!(m.view().first, "13912345678");
        assert_eq!(m.view().second, "9");
        act(&mut m, Action::Delete, t);
        for c in "13912345678".chars() {
            act(&mut m, Action::Key(c), t);
        }
        let cmds = act(&mut m, Action::Submit, t);
        assert_eq!(
            cmds,
            vec![Command::SessionInput(SessionInput::Numbers {
                first: "13912345678".into(),
                second: "13912345678".into(),
            })]
        );
        assert_eq!(m.screen(), Screen::Working);
        assert!(m.view().first.is_empty(), "typed digits are wiped");
    }

    #[test]
    fn the_answer_is_typed_on_the_text_keyboard_and_wiped_with_the_screen() {
        let (mut m, t) = connected("smart_teller");
        let question = serde_json::json!({"kind": "question", "question": "My first school?"});
        m.handle(
            Input::Event(Box::new(Event::Session(session(
                "awaiting_answer",
                question.clone(),
            )))),
            t,
        );
        // No engines here: the keyboard starts on Latin letters.
        assert_eq!(m.view().keyboard.mode, "latin");
        act(&mut m, Action::Shift, t);
        act(&mut m, Action::Key('l'), t);
        act(&mut m, Action::Shift, t);
        for c in "incolnx".chars() {
            act(&mut m, Action::Key(c), t);
        }
        act(&mut m, Action::Delete, t);
        act(&mut m, Action::KeyboardMode(Mode::Digits), t);
        assert_eq!(m.view().keyboard.mode, "digits");
        act(&mut m, Action::Key('1'), t);
        assert_eq!(m.view().answer, "Lincoln1");
        // `{:?}` (what a log line would print) shows none of it.
        assert!(!format!("{m:?}").contains("incoln"), "{m:?}");
        act(&mut m, Action::Delete, t);
        let cmds = act(&mut m, Action::Submit, t);
        assert_eq!(
            cmds,
            vec![Command::SessionInput(SessionInput::Answer {
                answer: "Lincoln".into()
            })]
        );
        // Back on the question (a wrong answer): nothing typed is left.
        m.handle(
            Input::Event(Box::new(Event::Session(session(
                "awaiting_answer",
                question,
            )))),
            t,
        );
        act(&mut m, Action::Key('a'), t);
        m.handle(
            Input::Event(Box::new(Event::Session(session(
                "awaiting_number",
                serde_json::json!({"kind": "new_number"}),
            )))),
            t,
        );
        assert_eq!(m.view().answer, "");
        assert_eq!(m.view().keyboard, KeyboardView::default());
    }

    /// The customer sees the answer as typed: the characters a pinyin or
    /// handwriting candidate put in the field are checked before "OK"
    /// (dots hid which of 实验 and 试验 was picked). "Hide" turns it into
    /// dots for a crowded hall; the next question starts shown again.
    #[test]
    fn the_answer_shows_as_typed_and_can_be_hidden() {
        let (mut m, t) = connected("smart_teller");
        let question = serde_json::json!({"kind": "question", "question": "My first school?"});
        let ask = |m: &mut Model| {
            m.handle(
                Input::Event(Box::new(Event::Session(session(
                    "awaiting_answer",
                    question.clone(),
                )))),
                t,
            )
        };
        ask(&mut m);
        for c in "li".chars() {
            act(&mut m, Action::Key(c), t);
        }
        assert_eq!(m.view().answer, "li");
        act(&mut m, Action::HideAnswer, t);
        assert!(m.view().answer_hidden);
        assert_eq!(m.view().answer, "●●");
        act(&mut m, Action::Key('n'), t);
        assert_eq!(m.view().answer, "●●●");
        act(&mut m, Action::HideAnswer, t);
        assert_eq!(m.view().answer, "lin");
        act(&mut m, Action::HideAnswer, t);
        // A wrong answer brings the question back: empty and shown.
        act(&mut m, Action::Submit, t);
        ask(&mut m);
        act(&mut m, Action::Key('x'), t);
        assert!(!m.view().answer_hidden);
        assert_eq!(m.view().answer, "x");
    }

    /// The technician's status board: a card per device, the sync
    /// backlog, the disk and the kiosk, each coloured by how it is.
    #[test]
    fn the_status_board_colours_each_card_by_its_state() {
        use kiosk_proto::{DeviceInfo, DeviceState};
        let device = |name: &str, kind: &str, state, detail: Option<&str>| DeviceInfo {
            name: name.into(),
            kind: kind.into(),
            state,
            detail: detail.map(Into::into),
            last_error: None,
            sam_id: None,
        };
        let mut s = status("smart_teller");
        s.devices = vec![
            device("desk", "id_reader", DeviceState::Online, None),
            device(
                "slips",
                "printer",
                DeviceState::Online,
                Some("paper_near_end: roll"),
            ),
            device("ticket", "printer", DeviceState::Offline, Some("paper out")),
        ];
        s.disk_free_bytes = Some(1 << 30);
        s.disk_total_bytes = Some(32 << 30);
        let sync = SyncStatusInfo {
            backlog: 3,
            oldest_pending_age_s: Some(40),
            rejected: 1,
            delivered: 9,
            last_error: None,
            last_delivery_at_ms: None,
            core_reachable: Some(true),
            clock_skew_ms: None,
        };
        let cards = status_board(&s, Some(&sync), "0.1.0", Lang::En);
        let level = |title: &str| {
            cards
                .iter()
                .find(|c| c.title == title)
                .unwrap_or_else(|| panic!("no card {title}: {cards:?}"))
                .level
        };
        assert_eq!(level("desk (id_reader)"), Level::Ok);
        assert_eq!(level("slips (printer)"), Level::Warn);
        assert_eq!(level("ticket (printer)"), Level::Fault);
        // A rejected change needs a person.
        assert_eq!(level("Changes waiting for the bank"), Level::Fault);
        // 1 GiB of 32 left.
        assert_eq!(level("Disk"), Level::Fault);
        assert_eq!(level("This kiosk"), Level::Info);
        let mut fine = sync.clone();
        fine.rejected = 0;
        let cards = status_board(&s, Some(&fine), "0.1.0", Lang::Zh);
        assert_eq!(cards[3].title, "待同步变更");
        assert_eq!(
            (cards[3].state.as_str(), cards[3].level),
            ("3", Level::Warn)
        );
    }

    #[test]
    fn resend_waits_out_the_countdown() {
        let (mut m, t) = connected("smart_teller");
        m.handle(
            Input::Event(Box::new(Event::Session(session(
                "awaiting_code",
                serde_json::json!({"kind": "code", "masked_mobile": "139****5678",
                    "expires_in_s": 300, "resend_in_s": 60}),
            )))),
            t,
        );
        assert_eq!(m.view().resend_in_s, 60);
        assert!(act(&mut m, Action::Resend, t + Duration::from_secs(30)).is_empty());
        assert_eq!(m.view().resend_in_s, 30);
        assert_eq!(
            act(&mut m, Action::Resend, t + Duration::from_secs(60)),
            vec![Command::SessionInput(SessionInput::Resend)]
        );
    }

    #[test]
    fn idle_countdown_returns_to_attract_and_clears_everything() {
        let (mut m, t) = connected("queue_machine");
        m.handle(
            Input::Event(Box::new(Event::CardRead {
                reader: "swipe".into(),
                identity: kiosk_proto::MaskedIdentity {
                    card_type: kiosk_proto::CardType::Resident,
                    name: "李*".into(),
                    english_name: None,
                    number: "440***********1234".into(),
                    birth_date: "****-**-**".into(),
                    address: None,
                    valid_from: "2016-05-01".into(),
                    valid_until: "2036-05-01".into(),
                    has_photo: true,
                },
                read_ms: 1,
            })),
            t,
        );
        assert_eq!(m.screen(), Screen::Queue);
        assert_eq!(m.view().card_name, "李*");
        m.handle(Input::Tick, t + Duration::from_secs(49));
        assert_eq!(m.view().countdown_s, 0);
        m.handle(Input::Tick, t + Duration::from_secs(55));
        assert_eq!(m.view().countdown_s, 5);
        m.handle(Input::Tick, t + Duration::from_secs(60));
        assert_eq!(m.screen(), Screen::Attract);
        assert_eq!(m.view().card_name, "");
        assert!(!m.needs_ticks(), "no timer runs on the attract screen");
    }

    #[test]
    fn a_swipe_takes_the_ticket_with_the_card() {
        let (mut m, t) = connected("queue_machine");
        let cmds = act(&mut m, Action::Service("personal".into()), t);
        assert_eq!(
            cmds,
            vec![Command::QueueTake {
                service: "personal".into(),
                use_card: false
            }]
        );
        // One ticket per touch while the first is on its way.
        assert!(act(&mut m, Action::Service("personal".into()), t).is_empty());
    }

    #[test]
    fn language_switch_changes_every_string() {
        let (mut m, t) = connected("smart_teller");
        assert!(!m.view().lang_en);
        act(&mut m, Action::Language, t);
        assert!(m.view().lang_en);
        assert_eq!(m.view().services[0].2, "Personal banking");
    }

    #[test]
    fn catalog_has_both_languages_everywhere() {
        for (field, zh, en) in crate::texts::ALL {
            assert!(!zh.is_empty() && !en.is_empty(), "{field}");
            // Names that read the same in both languages.
            if !["tech_pin_label", "kb_latin", "kb_digits"].contains(field) {
                assert_ne!(zh, en, "{field} is not translated");
            }
        }
    }

    #[test]
    fn technician_pin_is_sent_once_and_wiped_on_refusal() {
        let (mut m, t) = connected("smart_teller");
        act(&mut m, Action::TechCorner, t);
        assert_eq!(m.screen(), Screen::TechPin);
        for c in "2468".chars() {
            act(&mut m, Action::Key(c), t);
        }
        assert_eq!(m.view().pin_dots, "●●●●");
        let cmds = act(&mut m, Action::Submit, t);
        assert_eq!(
            cmds,
            vec![Command::TechUnlock(Zeroizing::new("2468".into()))]
        );
        m.handle(Input::TechUnlocked(Err("wrong PIN".into())), t);
        assert_eq!(m.view().pin_dots, "");
        assert_eq!(m.view().message, "wrong PIN");
        let cmds = m.handle(Input::TechUnlocked(Ok(())), t);
        assert_eq!(m.screen(), Screen::Technician);
        assert_eq!(cmds, vec![Command::TechRefresh]);
        assert_eq!(act(&mut m, Action::TechExit, t), vec![Command::TechLock]);
        assert_eq!(m.screen(), Screen::Attract);
    }

    /// Rule A2: the toggle works on any screen, the session kioskd starts
    /// has the longer idle times, and the next customer starts fresh with
    /// the kiosk's setting.
    #[test]
    fn elderly_mode_toggles_reaches_kioskd_and_resets_for_the_next_customer() {
        let (mut m, t) = connected("smart_teller");
        assert!(!m.view().elderly);
        act(&mut m, Action::Elderly, t);
        assert!(m.view().elderly);
        act(&mut m, Action::Start, t);
        assert!(m.view().elderly, "kept from screen to screen");
        let cmds = act(&mut m, Action::Flow("id_update".into()), t);
        assert_eq!(
            cmds,
            vec![Command::SessionStart {
                flow: "id_update".into(),
                elderly: true
            }]
        );
        m.handle(
            Input::Event(Box::new(Event::Session(session(
                "finished",
                serde_json::Value::Null,
            )))),
            t,
        );
        assert!(m.view().elderly, "the customer still reads the end");
        act(&mut m, Action::Done, t);
        assert_eq!(m.screen(), Screen::Attract);
        assert!(!m.view().elderly, "the next customer starts fresh");
        act(&mut m, Action::Elderly, t);
        act(&mut m, Action::TechCorner, t);
        assert!(!m.view().elderly, "the technician's screens stay standard");
        act(&mut m, Action::Cancel, t);
        assert!(!m.view().elderly, "and the next customer starts fresh");
        // A kiosk set to start in the mode starts every customer in it.
        m.set_elderly_default(true);
        act(&mut m, Action::Elderly, t);
        assert!(!m.view().elderly);
        act(&mut m, Action::Done, t);
        assert!(m.view().elderly);
    }

    /// Rules A2, A4: the UI's own idle time is `elderly_factor` times
    /// longer in the elderly-friendly mode.
    #[test]
    fn elderly_mode_doubles_the_uis_idle_time() {
        let (mut m, t) = connected("smart_teller");
        act(&mut m, Action::Elderly, t);
        act(&mut m, Action::Start, t);
        assert_eq!(m.idle_deadline(), Some(t + Duration::from_secs(120)));
        m.handle(Input::Tick, t + Duration::from_secs(61));
        assert_eq!(m.screen(), Screen::Menu, "still there after 60 s");
        m.handle(Input::Tick, t + Duration::from_secs(115));
        assert!(m.view().idle_warning, "the countdown offers more time");
        act(&mut m, Action::MoreTime, t + Duration::from_secs(115));
        assert!(!m.view().idle_warning);
        assert_eq!(m.idle_deadline(), Some(t + Duration::from_secs(235)));
    }

    /// Rule A4: kioskd's idle warning offers "more time", which goes to
    /// kioskd; once kioskd has restarted its clock the offer goes away.
    #[test]
    fn more_time_on_kioskds_idle_warning_asks_kioskd() {
        let (mut m, t) = connected("smart_teller");
        let confirm = serde_json::json!({"kind": "confirm_phone", "old_masked": "138****0001",
            "new_masked": "139****5678"});
        let mut warned = session("awaiting_confirmation", confirm.clone());
        warned.message = Some(FlowMessage {
            code: "idle_warning".into(),
            zh: "如无操作，本次服务将在 20 秒后结束".into(),
            en: "Without a touch, this session ends in 20 s".into(),
        });
        m.handle(
            Input::Event(Box::new(Event::Session(session(
                "awaiting_confirmation",
                confirm.clone(),
            )))),
            t,
        );
        assert!(!m.view().idle_warning);
        assert!(
            act(&mut m, Action::MoreTime, t).is_empty(),
            "nothing to extend before the warning"
        );
        m.handle(Input::Event(Box::new(Event::Session(warned))), t);
        assert!(m.view().idle_warning);
        assert_eq!(
            act(&mut m, Action::MoreTime, t),
            vec![Command::SessionInput(SessionInput::MoreTime)]
        );
        let mut extended = session("awaiting_confirmation", confirm);
        extended.message = Some(FlowMessage {
            code: "more_time".into(),
            zh: "好的，已为您延长时间，请继续办理".into(),
            en: "You have more time: please carry on".into(),
        });
        m.handle(Input::Event(Box::new(Event::Session(extended))), t);
        assert!(!m.view().idle_warning);
        assert_eq!(m.screen(), Screen::ConfirmPhone);
        // The mode switched during the session: kioskd's clock follows.
        assert_eq!(
            act(&mut m, Action::Elderly, t),
            vec![Command::SessionInput(SessionInput::Elderly { on: true })]
        );
    }

    /// Rule A2's plain wording exists in both languages, differs from the
    /// standard words, and only replaces strings the catalog has.
    #[test]
    fn plain_wording_has_both_languages_and_replaces_known_strings() {
        for (field, zh, en) in crate::texts::PLAIN {
            assert!(!zh.is_empty() && !en.is_empty() && zh != en, "{field}");
            let (_, standard_zh, standard_en) = crate::texts::ALL
                .iter()
                .find(|(f, _, _)| f == field)
                .unwrap_or_else(|| panic!("{field} is not in the catalog"));
            assert!(
                zh != standard_zh || en != standard_en,
                "{field} is not plainer"
            );
        }
    }

    #[test]
    fn every_screen_has_its_clips_and_every_clip_a_screen() {
        let mut said = std::collections::HashSet::new();
        for &screen in Screen::ALL {
            let expected: &[Clip] = match screen {
                Screen::Unavailable => &[Clip::Unavailable],
                Screen::Attract | Screen::Working | Screen::TechPin | Screen::Technician => &[],
                Screen::Menu => &[Clip::ChooseService],
                Screen::PlaceCard => &[Clip::PlaceCard],
                Screen::ConfirmId => &[Clip::CheckDetails],
                Screen::Question => &[Clip::AnswerQuestion],
                Screen::NewNumber => &[Clip::EnterNewNumber],
                Screen::Code => &[Clip::EnterCode],
                Screen::ConfirmPhone => &[Clip::ConfirmPhoneChange],
                Screen::Result => &[Clip::Applied, Clip::TakeCard],
                Screen::Queue => &[Clip::ChooseQueueService],
                Screen::Ticket => &[Clip::TakeTicket],
                Screen::PrinterFault => &[Clip::PrinterFault],
            };
            assert_eq!(
                screen_clips(screen, Some(Outcome::Applied), true),
                expected,
                "{screen:?}"
            );
            said.extend(expected.iter().copied());
        }
        // Every way a session ends has its own words, without the card
        // when none was read.
        for (outcome, clip) in [
            (Some(Outcome::Applied), Clip::Applied),
            (Some(Outcome::AcceptedWillSync), Clip::Accepted),
            (Some(Outcome::Pending), Clip::Accepted),
            (Some(Outcome::Rejected), Clip::Rejected),
            (Some(Outcome::Refused), Clip::Refused),
            (Some(Outcome::Cancelled), Clip::Cancelled),
            (Some(Outcome::TimedOut), Clip::TimedOut),
            (None, Clip::NotAvailable),
        ] {
            assert_eq!(screen_clips(Screen::Result, outcome, false), vec![clip]);
            said.insert(clip);
        }
        said.insert(Clip::StillThere); // the idle warning, below
        let all: std::collections::HashSet<Clip> = Clip::ALL.iter().copied().collect();
        assert_eq!(
            said, all,
            "a clip no screen says, or one missing from Clip::ALL"
        );
    }

    #[test]
    fn speech_follows_the_screen_its_language_and_the_idle_warning() {
        let (mut m, t) = connected("smart_teller");
        // Unavailable to attract: silence (cuts anything still playing).
        assert_eq!(m.take_speech(), Some(vec![]));
        act(&mut m, Action::Start, t);
        assert_eq!(m.take_speech(), Some(vec![Clip::ChooseService]));
        act(&mut m, Action::Touch, t);
        assert_eq!(m.take_speech(), None, "same screen: nothing new to say");
        act(&mut m, Action::Language, t);
        assert_eq!(m.lang(), Lang::En);
        assert_eq!(m.take_speech(), Some(vec![Clip::ChooseService]));
        m.handle(Input::Tick, t + Duration::from_secs(49));
        assert_eq!(m.take_speech(), None);
        m.handle(Input::Tick, t + Duration::from_secs(51));
        assert_eq!(m.take_speech(), Some(vec![Clip::StillThere]));
        m.handle(Input::Tick, t + Duration::from_secs(52));
        assert_eq!(m.take_speech(), None, "the warning is said once");
        act(
            &mut m,
            Action::Flow("id_update".into()),
            t + Duration::from_secs(53),
        );
        assert_eq!(m.take_speech(), Some(vec![]), "working: silence");
        let at_card = session("awaiting_card", serde_json::json!({"kind": "place_card"}));
        m.handle(Input::Event(Box::new(Event::Session(at_card))), t);
        assert_eq!(m.take_speech(), Some(vec![Clip::PlaceCard]));
        m.handle(
            Input::Event(Box::new(Event::CardRead {
                reader: "sam0".into(),
                identity: kiosk_proto::MaskedIdentity {
                    card_type: kiosk_proto::CardType::Resident,
                    name: "张*".into(),
                    english_name: None,
                    number: "110***********1234".into(),
                    birth_date: "****-**-**".into(),
                    address: None,
                    valid_from: "2020-03-07".into(),
                    valid_until: "2040-03-07".into(),
                    has_photo: true,
                },
                read_ms: 1,
            })),
            t,
        );
        let finished = session("finished", serde_json::Value::Null);
        m.handle(Input::Event(Box::new(Event::Session(finished))), t);
        assert_eq!(m.take_speech(), Some(vec![Clip::Applied, Clip::TakeCard]));
        act(&mut m, Action::Done, t);
        assert_eq!(m.take_speech(), Some(vec![]));
    }

    #[test]
    fn losing_kioskd_shows_unavailable_and_reconnecting_resumes() {
        let (mut m, t) = connected("smart_teller");
        act(&mut m, Action::Start, t);
        m.handle(Input::Disconnected, t);
        assert_eq!(m.screen(), Screen::Unavailable);
        m.handle(
            Input::Connected {
                status: Box::new(status("smart_teller")),
                services: vec![],
                session: Box::new(session(
                    "awaiting_card",
                    serde_json::json!({"kind": "place_card"}),
                )),
            },
            t,
        );
        // kioskd still runs the session: the UI picks it up.
        assert_eq!(m.screen(), Screen::PlaceCard);
    }
}
