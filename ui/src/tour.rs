//! A walk through every screen, fed what kioskd would say (synthetic,
//! masked data), so no daemon is needed: `cargo xtask screenshots`
//! renders each screen it reaches, and the layout tests check each one
//! fits the panel (tests/e2e/ui.rs).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use kiosk_proto::{
    DeviceInfo, DeviceState, Event, FlowMessage, QueueServiceInfo, QueueTicketInfo, SessionInfo,
    StatusInfo, SyncStatusInfo, TicketMessage,
};
use slint::ComponentHandle;

use crate::keyboard::Mode;
use crate::model::{Action, Input};
use crate::{AppWindow, Controller, Settings};

/// A touchscreen the kiosk is built for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Panel {
    pub width: f32,
    pub height: f32,
    /// Its density: touch targets are 15 mm.
    pub dpi: f32,
}

impl Panel {
    /// `landscape` or `portrait`.
    pub fn orientation(&self) -> &'static str {
        if self.height > self.width {
            "portrait"
        } else {
            "landscape"
        }
    }
}

/// The panels the screenshots show: 1920 x 1080 (smart tellers) and
/// 1080 x 1920 (queue machines), at an 18.5-inch panel's 120 dpi.
pub const SCREENSHOT_PANELS: [Panel; 2] = [
    Panel {
        width: 1920.0,
        height: 1080.0,
        dpi: 120.0,
    },
    Panel {
        width: 1080.0,
        height: 1920.0,
        dpi: 120.0,
    },
];

/// The panels every screen must fit: the two above at a 21.5-inch
/// panel's 102 dpi and at 160 dpi (larger targets, the harder case), and
/// the 1280 x 800 tablets of the first kiosks, both ways.
pub const CHECKED_PANELS: [Panel; 6] = [
    Panel {
        width: 1920.0,
        height: 1080.0,
        dpi: 102.0,
    },
    Panel {
        width: 1080.0,
        height: 1920.0,
        dpi: 102.0,
    },
    Panel {
        width: 1920.0,
        height: 1080.0,
        dpi: 160.0,
    },
    Panel {
        width: 1080.0,
        height: 1920.0,
        dpi: 160.0,
    },
    Panel {
        width: 1280.0,
        height: 800.0,
        dpi: 160.0,
    },
    Panel {
        width: 800.0,
        height: 1280.0,
        dpi: 160.0,
    },
];

/// A UI on `panel`, without a daemon (the commands go nowhere), with the
/// real keyboard engines; `elderly`: every customer starts in the
/// elderly-friendly mode. The header's clock shows a fixed time.
pub fn ui(panel: Panel, elderly: bool) -> (AppWindow, Rc<RefCell<Controller>>) {
    ui_with_engines(panel, elderly, true)
}

/// [`ui`], with the keyboard's engines or (`engines` off) without them.
pub fn ui_with_engines(
    panel: Panel,
    elderly: bool,
    engines: bool,
) -> (AppWindow, Rc<RefCell<Controller>>) {
    let window = AppWindow::new().expect("creating the window");
    window
        .window()
        .set_size(slint::LogicalSize::new(panel.width, panel.height));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let settings = Settings {
        dpi: panel.dpi,
        portrait: panel.height > panel.width,
        elderly,
        ..Settings::default()
    };
    let engines = if engines {
        crate::engines::start()
    } else {
        crate::keyboard::Engines::default()
    };
    let controller = Controller::new(window.clone_strong(), settings, tx, engines);
    // 10:30 in Beijing on a Tuesday.
    let at = chrono::DateTime::parse_from_rfc3339("2026-02-10T02:30:00Z")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    controller.borrow_mut().freeze_wall_clock(at);
    (window, controller)
}

/// Every screen of the standard mode, in Chinese or (`en`) English:
/// `shot` is called with each screen's name once it is up.
pub fn standard(
    controller: &Rc<RefCell<Controller>>,
    en: bool,
    shot: &mut dyn FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let feed = |input: Input| controller.borrow_mut().dispatch(input);
    if en {
        feed(Input::Action(Action::Language));
    }
    shot("unavailable")?;
    feed(connected("smart_teller"));
    shot("attract")?;
    feed(Input::Action(Action::Start));
    shot("menu")?;
    feed(session("id_update", "awaiting_card", None, None));
    shot("place-card")?;
    feed(Input::Event(Box::new(Event::CardPresent {
        reader: "desk".into(),
    })));
    shot("reading")?;
    feed(session(
        "id_update",
        "awaiting_confirmation",
        Some(serde_json::json!({
            "kind": "confirm_id", "card_type": "resident",
            "masked_name": "张*", "masked_number": "110***********002X",
            "old_valid_from": "2006-03-01", "old_valid_until": "2026-03-01",
            "new_valid_from": "2026-02-10", "new_valid_until": "2046-02-10",
        })),
        None,
    ));
    shot("confirm-id")?;
    feed(session(
        "phone_change",
        "awaiting_answer",
        Some(serde_json::json!({"kind": "question", "question": "您母亲的姓名？"})),
        Some(message(
            "wrong_answer",
            "答案不正确，还可尝试 2 次",
            "That answer is not right: 2 attempts left",
        )),
    ));
    shot("question")?;
    // The text keyboard in each mode, with something typed or drawn.
    feed(Input::Action(Action::KeyboardMode(Mode::Pinyin)));
    for c in "shiyan".chars() {
        feed(Input::Action(Action::Key(c)));
    }
    shot("keyboard-pinyin")?;
    feed(Input::Action(Action::KeyboardMode(Mode::Handwriting)));
    for stroke in crate::zinnia::recorded::strokes_of('学').unwrap_or_default() {
        let mut points = stroke.into_iter();
        if let Some(first) = points.next() {
            feed(Input::Action(Action::InkDown(first)));
        }
        for p in points {
            feed(Input::Action(Action::InkMove(p)));
        }
        feed(Input::Action(Action::InkUp));
    }
    shot("keyboard-handwriting")?;
    feed(Input::Action(Action::KeyboardMode(Mode::Latin)));
    feed(Input::Action(Action::Shift));
    shot("keyboard-latin")?;
    feed(Input::Action(Action::KeyboardMode(Mode::Digits)));
    shot("keyboard-digits")?;
    feed(session(
        "phone_change",
        "awaiting_number",
        Some(serde_json::json!({"kind": "new_number"})),
        None,
    ));
    for d in "1391234".chars() {
        feed(Input::Action(Action::Key(d)));
    }
    shot("new-number")?;
    feed(session(
        "phone_change",
        "awaiting_code",
        Some(serde_json::json!({
            "kind": "code", "masked_mobile": "139****5678", "expires_in_s": 300, "resend_in_s": 60
        })),
        None,
    ));
    for d in "1234".chars() {
        feed(Input::Action(Action::Key(d)));
    }
    shot("code")?;
    feed(session(
        "phone_change",
        "awaiting_confirmation",
        Some(serde_json::json!({
            "kind": "confirm_phone", "old_masked": "138****0000", "new_masked": "139****5678"
        })),
        None,
    ));
    shot("confirm-phone")?;
    feed(ended(
        "applied",
        message(
            "applied",
            "手机号码已变更，已打印回执",
            "Your mobile number is changed; your receipt is printed",
        ),
    ));
    shot("result-applied")?;
    feed(Input::Action(Action::Done));
    feed(Input::Action(Action::Start));
    feed(session("id_update", "awaiting_card", None, None));
    feed(ended(
        "accepted_will_sync",
        message(
            "accepted_will_sync",
            "已受理，将尽快同步至银行系统",
            "Accepted: it will reach the bank's records shortly",
        ),
    ));
    shot("result-accepted")?;
    feed(Input::Action(Action::Done));
    feed(Input::Action(Action::Start));
    feed(session("id_update", "awaiting_card", None, None));
    feed(ended(
        "refused",
        message(
            "expired_card",
            "证件已过期（有效期至 2020-01-01），请到柜台办理",
            "This card expired on 2020-01-01: please go to the counter",
        ),
    ));
    shot("result-refused")?;
    feed(Input::Action(Action::Done));
    feed(Input::Action(Action::TechCorner));
    for d in "12".chars() {
        feed(Input::Action(Action::Key(d)));
    }
    feed(Input::TechUnlocked(Err(
        "PIN 错误，还可尝试 2 次 / wrong PIN: 2 tries left".into(),
    )));
    shot("tech-pin")?;
    feed(Input::TechUnlocked(Ok(())));
    feed(Input::TechStatus(
        Box::new(status("smart_teller")),
        Some(Box::new(SyncStatusInfo {
            backlog: 2,
            oldest_pending_age_s: Some(41),
            rejected: 0,
            delivered: 118,
            last_error: Some("core bank answered 503".into()),
            last_delivery_at_ms: None,
            core_reachable: Some(false),
            clock_skew_ms: Some(120),
        })),
    ));
    shot("technician")?;
    feed(Input::Action(Action::TechExit));
    // Idle countdown on the menu.
    feed(Input::Action(Action::Start));
    controller
        .borrow_mut()
        .advance_clock(Duration::from_secs(53));
    shot("idle-countdown")?;
    controller
        .borrow_mut()
        .advance_clock(Duration::from_secs(10));
    // The queue machine.
    feed(Input::Disconnected);
    feed(connected("queue_machine"));
    shot("queue-attract")?;
    feed(swipe());
    shot("queue-card")?;
    feed(Input::TicketAnswer(Ok(Box::new(ticket(true)))));
    shot("ticket")?;
    feed(Input::Action(Action::Done));
    feed(Input::Action(Action::Service("personal".into())));
    feed(Input::TicketAnswer(Ok(Box::new(ticket(false)))));
    shot("printer-fault")?;
    Ok(())
}

/// Rule A2: a customer's ID update in the elderly-friendly mode (a kiosk
/// that starts every customer in it: [`ui`] with `elderly`), with the
/// letter keys, the keypad and kioskd's idle warning offering more time.
pub fn elderly(
    controller: &Rc<RefCell<Controller>>,
    en: bool,
    shot: &mut dyn FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let feed = |input: Input| controller.borrow_mut().dispatch(input);
    if en {
        feed(Input::Action(Action::Language));
    }
    feed(connected("smart_teller"));
    shot("attract")?;
    feed(Input::Action(Action::Start));
    shot("menu")?;
    feed(session("id_update", "awaiting_card", None, None));
    shot("place-card")?;
    feed(Input::Event(Box::new(Event::CardPresent {
        reader: "desk".into(),
    })));
    shot("reading")?;
    let confirm_id = serde_json::json!({
        "kind": "confirm_id", "card_type": "resident",
        "masked_name": "张*", "masked_number": "110***********002X",
        "old_valid_from": "2006-03-01", "old_valid_until": "2026-03-01",
        "new_valid_from": "2026-02-10", "new_valid_until": "2046-02-10",
    });
    feed(session(
        "id_update",
        "awaiting_confirmation",
        Some(confirm_id.clone()),
        None,
    ));
    shot("confirm-id")?;
    feed(session(
        "id_update",
        "awaiting_confirmation",
        Some(confirm_id),
        Some(message(
            "idle_warning",
            "如无操作，本次服务将在 40 秒后结束",
            "Without a touch, this session ends in 40 s",
        )),
    ));
    shot("idle-warning")?;
    feed(session(
        "phone_change",
        "awaiting_answer",
        Some(serde_json::json!({"kind": "question", "question": "您母亲的姓名？"})),
        None,
    ));
    feed(Input::Action(Action::KeyboardMode(Mode::Latin)));
    shot("keyboard-latin")?;
    feed(Input::Action(Action::KeyboardMode(Mode::Pinyin)));
    for c in "shiyan".chars() {
        feed(Input::Action(Action::Key(c)));
    }
    shot("keyboard-pinyin")?;
    feed(Input::Action(Action::KeyboardMode(Mode::Handwriting)));
    for stroke in crate::zinnia::recorded::strokes_of('学').unwrap_or_default() {
        let mut points = stroke.into_iter();
        if let Some(first) = points.next() {
            feed(Input::Action(Action::InkDown(first)));
        }
        for p in points {
            feed(Input::Action(Action::InkMove(p)));
        }
        feed(Input::Action(Action::InkUp));
    }
    shot("keyboard-handwriting")?;
    feed(session(
        "phone_change",
        "awaiting_number",
        Some(serde_json::json!({"kind": "new_number"})),
        None,
    ));
    for d in "1391234".chars() {
        feed(Input::Action(Action::Key(d)));
    }
    shot("new-number")?;
    feed(session(
        "phone_change",
        "awaiting_code",
        Some(serde_json::json!({
            "kind": "code", "masked_mobile": "139****5678", "expires_in_s": 300, "resend_in_s": 60
        })),
        None,
    ));
    for d in "1234".chars() {
        feed(Input::Action(Action::Key(d)));
    }
    shot("code")?;
    feed(ended(
        "applied",
        message(
            "id_updated",
            "证件有效期已更新",
            "Your ID validity is updated",
        ),
    ));
    shot("result-applied")?;
    // The queue machine in the elderly-friendly mode: its services, a
    // swipe, the ticket, the printer's fault.
    feed(Input::Action(Action::Done));
    feed(Input::Disconnected);
    feed(connected("queue_machine"));
    shot("queue-attract")?;
    feed(swipe());
    shot("queue-card")?;
    feed(Input::TicketAnswer(Ok(Box::new(ticket(true)))));
    shot("ticket")?;
    feed(Input::Action(Action::Done));
    feed(Input::Action(Action::Service("personal".into())));
    feed(Input::TicketAnswer(Ok(Box::new(ticket(false)))));
    shot("printer-fault")?;
    Ok(())
}

/// A connected smart teller's security question, from the attract screen.
pub fn to_question(controller: &Rc<RefCell<Controller>>) {
    let feed = |input: Input| controller.borrow_mut().dispatch(input);
    feed(connected("smart_teller"));
    feed(Input::Action(Action::Start));
    feed(session("phone_change", "awaiting_card", None, None));
    feed(session(
        "phone_change",
        "awaiting_answer",
        Some(serde_json::json!({"kind": "question", "question": "您母亲的姓名？"})),
        None,
    ));
}

/// A card swiped at the queue machine.
fn swipe() -> Input {
    Input::Event(Box::new(Event::CardRead {
        reader: "swipe".into(),
        identity: kiosk_proto::MaskedIdentity {
            card_type: kiosk_proto::CardType::Resident,
            name: "李*".into(),
            english_name: None,
            number: "440***********1234".into(),
            birth_date: "****-**-**".into(),
            address: Some("***".into()),
            valid_from: "2016-05-01".into(),
            valid_until: "2036-05-01".into(),
            has_photo: true,
        },
        read_ms: 310,
    }))
}

/// kioskd's `status` of the screenshots' kiosk.
pub fn status(profile: &str) -> StatusInfo {
    StatusInfo {
        daemon_version: "0.1.0".into(),
        kiosk_id: "K-DEMO-01".into(),
        branch_id: "0101".into(),
        branch_name: "某某银行 西城支行".into(),
        timezone: "Asia/Shanghai".into(),
        profile: profile.into(),
        uptime_s: 3600,
        devices: vec![
            DeviceInfo {
                name: "desk".into(),
                kind: "id_reader".into(),
                state: DeviceState::Online,
                detail: Some("pcsc".into()),
                last_error: None,
                sam_id: Some("05.01-20101101-0000000001-2100000001".into()),
            },
            DeviceInfo {
                name: "ticket".into(),
                kind: "printer".into(),
                state: DeviceState::HardwareError,
                detail: Some("paper out".into()),
                last_error: Some("paper out".into()),
                sam_id: None,
            },
        ],
        sync_backlog: Some(2),
        disk_free_bytes: Some(20 << 30),
        disk_total_bytes: Some(32 << 30),
    }
}

fn connected(profile: &str) -> Input {
    Input::Connected {
        status: Box::new(status(profile)),
        services: vec![
            QueueServiceInfo {
                id: "personal".into(),
                letter: "A".into(),
                name_zh: "个人业务".into(),
                name_en: "Personal banking".into(),
            },
            QueueServiceInfo {
                id: "corporate".into(),
                letter: "B".into(),
                name_zh: "对公业务".into(),
                name_en: "Corporate banking".into(),
            },
        ],
        session: Box::new(SessionInfo {
            session_id: None,
            active: false,
            flow: None,
            stage: kiosk_proto::Stage::None,
            screen: None,
            message: None,
            outcome: None,
            refusal: None,
            change_id: None,
        }),
    }
}

/// A session field from its wire JSON (the screens are written as the
/// local API documents them).
fn wire<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a documented session field")
}

fn message(code: &str, zh: &str, en: &str) -> FlowMessage {
    FlowMessage {
        code: code.into(),
        zh: zh.into(),
        en: en.into(),
    }
}

fn session(
    flow: &str,
    stage: &str,
    screen: Option<serde_json::Value>,
    msg: Option<FlowMessage>,
) -> Input {
    let refusal = msg.as_ref().and_then(|m| refusal_of(&m.code));
    if stage == "awaiting_card" {
        SESSION.with(|n| n.set(n.get() + 1));
    }
    Input::Event(Box::new(Event::Session(SessionInfo {
        session_id: Some(session_id()),
        active: true,
        flow: Some(flow.into()),
        stage: wire(serde_json::json!(stage)),
        screen: Some(screen.map_or(kiosk_proto::Screen::PlaceCard, wire)),
        message: msg,
        outcome: None,
        refusal,
        change_id: None,
    })))
}

/// The refusal whose code is `code`, when it needs no more data.
fn refusal_of(code: &str) -> Option<kiosk_proto::Refusal> {
    serde_json::from_value(serde_json::json!({ "refusal": code })).ok()
}

thread_local! {
    /// The number of the session shown, for distinct session ids.
    static SESSION: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn session_id() -> String {
    format!("screenshot-{}", SESSION.with(|n| n.get()))
}

fn ended(outcome: &str, msg: FlowMessage) -> Input {
    Input::Event(Box::new(Event::Session(SessionInfo {
        session_id: Some(session_id()),
        active: false,
        flow: Some("phone_change".into()),
        stage: kiosk_proto::Stage::Finished,
        screen: None,
        refusal: (outcome == "refused")
            .then(|| refusal_of(&msg.code))
            .flatten(),
        message: Some(msg),
        outcome: Some(wire(serde_json::json!(outcome))),
        change_id: None,
    })))
}

fn ticket(printed: bool) -> QueueTicketInfo {
    QueueTicketInfo {
        ticket_id: "t1".into(),
        number: "A023".into(),
        service: "personal".into(),
        waiting_ahead: 4,
        printed,
        message: if printed {
            TicketMessage {
                code: "printed".into(),
                zh: "请取走号票，留意叫号".into(),
                en: "Please take your ticket and listen for your number".into(),
            }
        } else {
            TicketMessage {
                code: "printer_fault".into(),
                zh: "打印机故障：号码 A023 已保留".into(),
                en: "Printer fault: number A023 is kept for you".into(),
            }
        },
        masked_name: printed.then(|| "李*".into()),
        validity: None,
        change_id: None,
    }
}
