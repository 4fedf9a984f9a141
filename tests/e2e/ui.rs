//! The touchscreen UI end to end: the real kiosk-ui code (model, bridge,
//! Slint screens) on Slint's testing backend, talking to a real kioskd
//! with the SAM, printer and core-bank simulators. Controls are found by
//! their accessible labels, as a screen reader finds them, and touched
//! through their default action.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiosk_ui::Settings;
use kiosk_ui::testing::UiDriver;
use kiosk_ui::voice::{Samples, VoiceOutput, VoiceSettings};

use super::flows::{self, DEFAULT_SESSION, Kiosk, resident};
use super::queue::QUEUE_SERVICES_TOML as QUEUE;

/// 15 mm at this test screen's 160 dpi.
const DPI: f32 = 160.0;

/// A kiosk and its UI; the runtime runs the test's own kioskd client.
struct UiKiosk {
    ui: UiDriver,
    k: Kiosk,
    rt: tokio::runtime::Runtime,
}

fn ui_kiosk(profile: &str, session: &str, printer: bool, extra: &str) -> UiKiosk {
    let settings = Settings {
        dpi: DPI,
        ..Settings::default()
    };
    ui_kiosk_with(profile, session, printer, extra, settings)
}

fn ui_kiosk_with(
    profile: &str,
    session: &str,
    printer: bool,
    extra: &str,
    settings: Settings,
) -> UiKiosk {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let k = rt.block_on(flows::kiosk_profile(
        profile, session, printer, false, extra,
    ));
    let mut ui = UiDriver::start(k.kioskd.socket(), settings);
    ui.wait_screen("attract");
    UiKiosk { ui, k, rt }
}

fn touch_px() -> f32 {
    Settings {
        dpi: DPI,
        ..Settings::default()
    }
    .touch_px()
}

/// Rules I7/I8 through the screens, in Chinese: start, menu, place the
/// card, check the masked details, confirm, "done"; nothing of the
/// customer is left on screen afterwards.
#[test]
fn ui_id_update_end_to_end_in_chinese() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    assert!(ui.shows("欢迎使用自助服务"));
    ui.touch("请触摸屏幕开始");
    ui.wait_screen("menu");
    ui.touch("更新身份证有效期");
    ui.wait_screen("place_card");
    assert!(ui.shows("请放置身份证"));
    let card = resident();
    k.sam.place(card.clone());
    ui.wait_screen("confirm_id");
    assert_eq!(ui.value_of("姓名").as_deref(), Some("张**"));
    let number = ui.value_of("证件号码").expect("masked number");
    assert!(number.contains('*') && !number.contains(&card.identity.number));
    assert!(ui.value_of("原有效期").unwrap().contains("2020-03-07"));
    assert!(ui.value_of("新有效期").unwrap().contains("2040"));
    assert!(
        ui.small_buttons(touch_px()).is_empty(),
        "{:?}",
        ui.small_buttons(touch_px())
    );
    ui.touch("确认");
    ui.wait_screen("result");
    assert!(ui.shows("办理成功"), "{}", ui.all_text());
    let record = k.bank().customer("C000001").expect("C000001").record;
    assert!(record.valid_until.starts_with("2040"), "{record:?}");
    ui.touch("完成");
    ui.wait_screen("attract");
    let shown = ui.all_text();
    for s in ["张**", &number, "2040"] {
        assert!(!shown.contains(s), "{s:?} still on screen");
    }
    k.assert_clean();
}

/// Rules P2–P4 through the screens, in English: a wrong answer, then the
/// right one; the new number twice on the keypad; a wrong code, then the
/// right one; confirm.
#[test]
fn ui_phone_change_with_wrong_answer_and_wrong_code_in_english() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    ui.touch("English");
    assert!(ui.shows("Welcome to self-service"));
    ui.touch("Touch the screen to start");
    ui.touch("Change mobile number");
    ui.wait_screen("place_card");
    k.sam.place(resident());
    ui.wait_screen("question");
    assert!(ui.shows("我母亲的名字?"));
    // The keyboard starts on Latin letters in English.
    ui.touch_keys("wrong");
    ui.touch("OK");
    ui.pump_until("the wrong-answer notice", |ui| {
        ui.screen() == "question" && ui.message_code().as_deref() == Some("wrong_answer")
    });
    assert!(ui.message().contains("attempt"), "{}", ui.message());
    ui.touch("Pinyin");
    ui.touch_keys("wangfang");
    ui.pick_candidate("王芳", "Next");
    ui.touch("OK");
    ui.wait_screen("new_number");
    assert!(
        ui.small_buttons(touch_px()).is_empty(),
        "{:?}",
        ui.small_buttons(touch_px())
    );
    let new = "13912345679";
    ui.type_digits(new);
    // The keypad moved to the second field by itself.
    ui.type_digits(new);
    assert_eq!(ui.value_of("New number").as_deref(), Some(new));
    assert_eq!(ui.value_of("New number again").as_deref(), Some(new));
    ui.touch("OK");
    ui.wait_screen("code");
    let code = k.bank().last_sms_code(new).expect("a code sent");
    // Wrong in every digit, whatever the code is.
    let wrong: String = code
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    ui.type_digits(&wrong);
    assert_eq!(ui.value_of("Code").as_deref(), Some(wrong.as_str()));
    ui.touch("OK");
    ui.pump_until("the wrong-code notice", |ui| {
        ui.screen() == "code" && ui.message_code().as_deref() == Some("wrong_code")
    });
    ui.type_digits(&code);
    ui.touch("OK");
    ui.wait_screen("confirm_phone");
    assert_eq!(
        ui.value_of("Current number").as_deref(),
        Some("138****0001")
    );
    assert_eq!(ui.value_of("New number").as_deref(), Some("139****5679"));
    ui.touch("Confirm");
    ui.wait_screen("result");
    assert!(
        ui.shows("Done: your details are updated"),
        "{}",
        ui.all_text()
    );
    ui.touch("Done");
    ui.wait_screen("attract");
    assert!(!ui.all_text().contains("139****5679"));
    k.assert_clean();
}

/// Rule A2 through a whole ID update: the customer turns the
/// elderly-friendly mode on at the start; every screen of the flow has
/// touch targets at least 1.5 times the standard 15 mm and text 1.5 times
/// taller, plain words and no secondary hints; the change is applied;
/// the next customer starts in the standard mode again.
#[test]
fn ui_id_update_end_to_end_in_elderly_mode() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    let standard = touch_px();
    let large = standard * 1.5;
    let standard_heading = ui.height_of("欢迎使用自助服务").expect("the welcome");
    ui.touch("长辈模式");
    assert!(ui.elderly());
    assert!(ui.touch_px() >= large, "{} px", ui.touch_px());
    // Every button of every screen, the toggle and the language too.
    let check = |ui: &UiDriver, screen: &str| {
        assert_eq!(ui.screen(), screen);
        let small = ui.small_buttons(large);
        assert!(
            small.is_empty(),
            "{screen}: smaller than {large} px: {small:?}"
        );
        // Larger, and still all on the screen.
        let off = ui.buttons_off_screen();
        assert!(off.is_empty(), "{screen}: off the screen: {off:?}");
    };
    check(&ui, "attract");
    let heading = ui.height_of("欢迎使用自助服务").expect("the welcome");
    assert!(
        heading + 1.0 >= standard_heading * 1.5,
        "heading {heading} px, standard {standard_heading} px"
    );
    ui.touch("请触摸屏幕开始");
    ui.wait_screen("menu");
    check(&ui, "menu");
    // Plain words: "I have a new ID card", not "update ID card validity".
    assert!(!ui.shows("更新身份证有效期"), "{}", ui.all_text());
    ui.touch("换了新身份证");
    ui.wait_screen("place_card");
    check(&ui, "place_card");
    assert!(ui.shows("请放身份证"), "{}", ui.all_text());
    let card = resident();
    k.sam.place(card.clone());
    ui.wait_screen("confirm_id");
    check(&ui, "confirm_id");
    assert_eq!(ui.value_of("姓名").as_deref(), Some("张**"));
    assert!(ui.value_of("旧证到期").unwrap().contains("2020-03-07"));
    assert!(ui.value_of("新证到期").unwrap().contains("2040"));
    // The same details in the standard mode, for the text size.
    let large_value = ui.height_of("姓名").expect("the name");
    ui.touch("长辈模式");
    assert!(!ui.elderly());
    let standard_value = ui.height_of("姓名").expect("the name");
    assert!(
        large_value + 1.0 >= standard_value * 1.5,
        "name {large_value} px, standard {standard_value} px"
    );
    ui.touch("长辈模式");
    check(&ui, "confirm_id");
    ui.touch("对，办理");
    ui.wait_screen("result");
    check(&ui, "result");
    assert!(ui.shows("办理成功"), "{}", ui.all_text());
    assert!(ui.shows("别忘了拿走身份证"), "{}", ui.all_text());
    let record = k.bank().customer("C000001").expect("C000001").record;
    assert!(record.valid_until.starts_with("2040"), "{record:?}");
    ui.touch("完成");
    ui.wait_screen("attract");
    assert!(
        !ui.elderly(),
        "the next customer starts in the standard mode"
    );
    assert_eq!(ui.touch_px(), standard);
    k.assert_clean();
}

/// Rule A2 on the text keyboard: fewer, larger keys (seven letters a
/// page in landscape, with a key to the next page), every key at least
/// 1.5 times the standard target; an answer typed across the pages is
/// accepted.
#[test]
fn ui_security_answer_on_elderly_key_pages_in_english_is_accepted() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    ui.touch("English");
    ui.touch("Large text");
    // Plain words in the elderly-friendly mode.
    ui.touch("Touch the screen to start");
    ui.touch("Change my phone number");
    ui.wait_screen("place_card");
    k.sam
        .place(kiosk_sim::CardProfile::builtin("foreign-2017").expect("profile"));
    ui.wait_screen("question");
    let large = touch_px() * 1.5;
    assert!(
        ui.small_buttons(large).is_empty(),
        "{:?}",
        ui.small_buttons(large)
    );
    // Seven letters a page in landscape, and the key to the next page.
    assert!(ui.shows("a") && !ui.shows("h"), "{}", ui.all_text());
    assert_eq!(ui.page_key(), "H–N");
    type_on_key_pages(&ui, "Lincoln");
    assert!(
        ui.small_buttons(large).is_empty(),
        "{:?}",
        ui.small_buttons(large)
    );
    assert!(
        ui.buttons_off_screen().is_empty(),
        "{:?}",
        ui.buttons_off_screen()
    );
    ui.touch("OK");
    ui.wait_screen("new_number");
    assert!(
        ui.small_buttons(large).is_empty(),
        "{:?}",
        ui.small_buttons(large)
    );
    assert!(
        ui.buttons_off_screen().is_empty(),
        "{:?}",
        ui.buttons_off_screen()
    );
}

/// Types `text` on the elderly-friendly keys: turns pages until each
/// letter's key is shown; Shift for a capital.
fn type_on_key_pages(ui: &UiDriver, text: &str) {
    for c in text.chars() {
        let upper = c.is_ascii_uppercase();
        if upper {
            ui.touch("Shift");
        }
        let key = c.to_string();
        for _ in 0..4 {
            if ui.shows(&key) {
                break;
            }
            ui.touch(&ui.page_key());
        }
        ui.touch(&key);
        if upper {
            ui.touch("Shift");
        }
    }
}

/// Rule A4 on screen: kioskd's idle warning shows "more time"; touching
/// it restarts kioskd's idle clock (its answer says `more_time`), the
/// customer stays on the confirmation and can still confirm.
#[test]
fn ui_more_time_on_the_idle_warning_keeps_the_session_alive() {
    // The warning comes 3 s after the last input and the session would end
    // 30 s later: a window no busy machine closes before the test answers.
    let session = "idle_timeout_s = 33\nidle_warning_s = 30\nbank_wait_ms = 30000\n";
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", session, false, "");
    ui.touch("English");
    ui.touch("Touch the screen to start");
    ui.touch("Update ID card validity");
    ui.wait_screen("place_card");
    k.sam.place(resident());
    ui.wait_screen("confirm_id");
    ui.pump_until("kioskd's idle warning", |ui| ui.shows("More time"));
    assert_eq!(ui.message_code().as_deref(), Some("idle_warning"));
    ui.touch("More time");
    ui.pump_until("kioskd's more time", |ui| {
        ui.message_code().as_deref() == Some("more_time")
    });
    assert_eq!(ui.screen(), "confirm_id");
    assert!(!ui.shows("More time"), "the offer goes once kioskd agreed");
    ui.touch("Confirm");
    ui.wait_screen("result");
    assert!(
        ui.shows("Done: your details are updated"),
        "{}",
        ui.all_text()
    );
    k.assert_clean();
}

/// A key pressed twice counts twice: with one digit typed, the field
/// shows a text equal to the next key's label, and the key (not that
/// text) must take the touch. A code whose first two digits are equal
/// (one in ten) lost its second digit this way.
#[test]
fn ui_keypad_takes_a_repeated_digit() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    ui.touch("English");
    ui.touch("Touch the screen to start");
    ui.touch("Change mobile number");
    ui.wait_screen("place_card");
    k.sam.place(resident());
    ui.wait_screen("question");
    ui.touch("Pinyin");
    ui.touch_keys("wangfang");
    ui.pick_candidate("王芳", "Next");
    ui.touch("OK");
    ui.wait_screen("new_number");
    ui.type_digits("1113");
    assert_eq!(ui.value_of("New number").as_deref(), Some("1113"));
}

/// Starts a phone change in the UI's language (`zh` or `en`) with the
/// card `profile`, up to its security question.
fn phone_change_to_the_question(ui: &mut UiDriver, k: &Kiosk, en: bool, profile: &str) {
    if en {
        ui.touch("English");
        ui.touch("Touch the screen to start");
        ui.touch("Change mobile number");
    } else {
        ui.touch("请触摸屏幕开始");
        ui.touch("变更手机号码");
    }
    ui.wait_screen("place_card");
    k.sam
        .place(kiosk_sim::CardProfile::builtin(profile).expect("profile"));
    ui.wait_screen("question");
}

/// Rules A1 and P2: a Chinese answer typed in pinyin on the app's own
/// keyboard (librime): candidate pages turned, the pinyin deleted key by
/// key, then the letters of the whole phrase, a backspace, the phrase
/// picked from the candidates; kioskd accepts it, and the answer is
/// in none of its logs.
#[test]
fn ui_security_answer_typed_in_pinyin_is_accepted() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    phone_change_to_the_question(&mut ui, &k, false, "resident-appended");
    assert!(ui.shows("我的小学名称?"));
    // Chinese screens open the keyboard on pinyin.
    assert_eq!(ui.keyboard_mode(), "pinyin");
    // librime's pages: forward and back again.
    ui.touch_keys("shi");
    let first_page = ui.candidates();
    assert!(!first_page.is_empty());
    ui.touch("下一页");
    assert_ne!(ui.candidates(), first_page);
    ui.touch("上一页");
    assert_eq!(ui.candidates(), first_page);
    for _ in 0..3 {
        ui.touch("删除");
    }
    assert!(ui.candidates().is_empty(), "the pinyin is gone");
    assert!(ui.value_of("preedit").is_none());
    ui.touch_keys("shiyanxiaoxuex");
    ui.touch("删除");
    let preedit = ui.value_of("preedit").expect("the pinyin shows");
    assert_eq!(preedit.replace(' ', ""), "shiyanxiaoxue");
    // 15 mm keys and candidates, as on every other screen.
    assert!(
        ui.small_buttons(touch_px()).is_empty(),
        "{:?}",
        ui.small_buttons(touch_px())
    );
    ui.pick_candidate("实验小学", "下一页");
    // The customer sees the characters picked (试验 and 实验 sound alike),
    // and can hide them.
    assert_eq!(ui.value_of("答案").as_deref(), Some("实验小学"));
    ui.touch("隐藏");
    assert_eq!(ui.value_of("答案").as_deref(), Some("●●●●"));
    ui.touch("显示");
    assert_eq!(ui.value_of("答案").as_deref(), Some("实验小学"));
    assert!(ui.candidates().is_empty());
    ui.touch("确定");
    ui.wait_screen("new_number");
    ui.touch("取消");
    ui.wait_screen("result");
    k.assert_clean();
}

/// Rule A1 for customers without pinyin: the answer written character by
/// character on the handwriting pad (recorded strokes of 实, 验, 小, 学,
/// replayed as pointer events), each picked from Zinnia's candidates.
#[test]
fn ui_security_answer_written_by_hand_is_accepted() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    phone_change_to_the_question(&mut ui, &k, false, "resident-appended");
    ui.touch("手写");
    assert!(ui.shows("手写板"));
    assert!(
        ui.small_buttons(touch_px()).is_empty(),
        "{:?}",
        ui.small_buttons(touch_px())
    );
    for c in ['实', '验', '小', '学'] {
        let strokes = kiosk_ui::zinnia::recorded::strokes_of(c).expect("recorded");
        ui.draw("手写板", &strokes);
        ui.pick_candidate(&c.to_string(), "下一页");
        // The pad is clean for the next character.
        assert!(ui.candidates().is_empty());
    }
    assert_eq!(ui.value_of("答案").as_deref(), Some("实验小学"));
    ui.touch("确定");
    ui.wait_screen("new_number");
    k.assert_clean();
}

/// Rule A1 in English: a Latin answer on the letter keys, with Shift for
/// the capital.
#[test]
fn ui_security_answer_typed_on_letter_keys_in_english_is_accepted() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    phone_change_to_the_question(&mut ui, &k, true, "foreign-2017");
    assert!(ui.shows("My first school?"));
    ui.touch("Shift");
    ui.touch("L");
    ui.touch("Shift");
    ui.touch_keys("incoln");
    assert_eq!(ui.value_of("Answer").as_deref(), Some("Lincoln"));
    ui.touch("OK");
    ui.wait_screen("new_number");
    k.assert_clean();
}

/// Rules Q1–Q3 through the screens: a queue machine shows its services on
/// the attract screen; a touch issues a ticket shown large; a swipe first
/// puts the masked name on the next one.
#[test]
fn ui_queue_ticket_by_touch_and_by_swipe() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("queue_machine", DEFAULT_SESSION, true, QUEUE);
    ui.touch("A  个人业务");
    ui.wait_screen("ticket");
    assert_eq!(ui.value_of("您的号码").as_deref(), Some("A001"));
    let printer = k.printer.as_ref().expect("printer");
    let tickets = printer
        .wait_for_tickets(1, super::harness::DEADLINE)
        .expect("the ticket came out");
    assert!(
        tickets[0].texts().iter().any(|t| t.contains("A001")),
        "{:?}",
        tickets[0].texts()
    );
    ui.touch("完成");
    ui.wait_screen("attract");
    k.sam.place(resident());
    ui.wait_screen("queue");
    assert!(ui.all_text().contains("张**"));
    ui.touch("A  个人业务");
    ui.wait_screen("ticket");
    assert_eq!(ui.value_of("您的号码").as_deref(), Some("A002"));
    assert!(ui.all_text().contains("张**"));
    ui.touch("完成");
    ui.wait_screen("attract");
    assert!(!ui.all_text().contains("张**"));
}

/// Rule Q4 on screen: the printer is gone; the number is kept and shown,
/// with what to do, instead of a ticket.
#[test]
fn ui_printer_fault_shows_the_kept_number() {
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("queue_machine", DEFAULT_SESSION, true, QUEUE);
    k.printer
        .as_ref()
        .expect("printer")
        .unplug()
        .expect("unplug");
    ui.touch("English");
    ui.touch("B  Corporate banking");
    ui.wait_screen("printer_fault");
    assert!(ui.shows("Your ticket could not be printed"));
    assert_eq!(ui.value_of("Your number").as_deref(), Some("B001"));
    assert!(!ui.message().is_empty());
}

/// kioskd's session idle timeout ends the session on screen; the UI's own
/// countdown then returns to the attract screen with nothing left of the
/// customer; a menu left alone goes back by itself too.
#[test]
fn ui_idle_timeout_returns_to_attract_and_clears_the_screen() {
    let session = "idle_timeout_s = 3\nidle_warning_s = 1\nbank_wait_ms = 5000\n";
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", session, false, "");
    ui.touch("English");
    ui.touch("Touch the screen to start");
    ui.touch("Update ID card validity");
    ui.wait_screen("place_card");
    k.sam.place(resident());
    ui.wait_screen("confirm_id");
    assert_eq!(ui.value_of("Name").as_deref(), Some("张**"));
    // Nobody touches anything: kioskd ends the session.
    ui.wait_screen("result");
    assert!(
        ui.shows("Timed out: the session has ended"),
        "{}",
        ui.all_text()
    );
    ui.advance_clock(Duration::from_secs(12));
    assert!(ui.value_of("countdown").is_some(), "the countdown shows");
    ui.advance_clock(Duration::from_secs(10));
    assert_eq!(ui.screen(), "attract");
    assert!(!ui.all_text().contains("张**"));
    ui.touch("Touch the screen to start");
    assert_eq!(ui.screen(), "menu");
    ui.advance_clock(Duration::from_secs(61));
    assert_eq!(ui.screen(), "attract");
}

/// The technician screen: the hidden corner, a wrong PIN refused and
/// audited, the right PIN shows device states and runs a reader check;
/// then three wrong PINs lock the screen, even against the right PIN.
#[test]
fn ui_technician_pin_is_rate_limited_audited_and_opens_diagnostics() {
    let hash = kiosk::technician::hash_pin("246810").expect("hash");
    let extra = format!("\n[ui]\ntechnician_pin_hash = \"{hash}\"\n");
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk("smart_teller", DEFAULT_SESSION, true, &extra);
    ui.touch("English");
    ui.touch("technician");
    ui.wait_screen("tech_pin");
    let try_pin = |ui: &mut UiDriver, pin: &str| {
        ui.type_digits(pin);
        assert!(!ui.pin_dots().is_empty());
        ui.touch("OK");
        // Answered: the screen opens, or a reason shows.
        ui.pump_until("an answer to the PIN", |ui| {
            ui.screen() == "technician" || !ui.message().is_empty()
        });
    };
    try_pin(&mut ui, "1111");
    assert!(ui.message().contains("2 tries left"), "{}", ui.message());
    try_pin(&mut ui, "246810");
    ui.wait_screen("technician");
    ui.pump_until("device states", |ui| {
        ui.value_of("desk (id_reader)").is_some()
    });
    assert_eq!(ui.value_of("desk (id_reader)").as_deref(), Some("online"));
    assert_eq!(ui.value_of("slips (printer)").as_deref(), Some("online"));
    ui.touch("Reader check");
    ui.pump_until("the check's report", |ui| ui.value_of("report").is_some());
    let report = ui.value_of("report").unwrap();
    assert!(report.contains("reader:desk"), "{report}");
    ui.touch("Sign out");
    ui.wait_screen("attract");
    // Three wrong PINs in a row: locked, and the right one is not checked.
    ui.touch("technician");
    ui.wait_screen("tech_pin");
    for pin in ["1111", "2222"] {
        try_pin(&mut ui, pin);
        assert!(ui.message().contains("tries left"), "{}", ui.message());
    }
    try_pin(&mut ui, "3333");
    assert!(ui.message().contains("too many"), "{}", ui.message());
    try_pin(&mut ui, "246810");
    assert_eq!(ui.screen(), "tech_pin");
    assert!(ui.message().contains("too many"), "{}", ui.message());
    let audit = k.audit_text();
    assert_eq!(audit.matches("outcome=wrong").count(), 4, "{audit}");
    assert_eq!(audit.matches("outcome=right").count(), 1, "{audit}");
    assert_eq!(audit.matches("outcome=locked_out").count(), 1, "{audit}");
    assert!(audit.contains("method=selftest"), "{audit}");
    assert!(!audit.contains("246810") && !k.kioskd.log().contains("246810"));
}

/// kioskd goes away: "service unavailable"; it comes back: the UI
/// reconnects by itself.
#[test]
fn ui_shows_unavailable_while_kioskd_is_down_and_reconnects() {
    let UiKiosk {
        mut ui,
        mut k,
        rt: _rt,
    } = ui_kiosk("smart_teller", DEFAULT_SESSION, false, "");
    k.kioskd.restart_hard();
    ui.wait_screen("unavailable");
    assert!(ui.shows("服务暂停"));
    ui.wait_screen("attract");
    ui.touch("请触摸屏幕开始");
    assert_eq!(ui.screen(), "menu");
}

/// The clips `cargo xtask voices` recorded (`cargo xtask test` records
/// them before the suite).
fn recorded_voices() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/voices");
    assert!(
        dir.join("zh").is_dir() && dir.join("en").is_dir(),
        "no voice clips in {}: run `cargo xtask voices`",
        dir.display()
    );
    dir
}

/// UI settings with voice guidance written to `out` at full volume (so
/// the file holds the clips exactly as recorded).
fn voice_to_file(out: &Path, enabled: bool) -> Settings {
    Settings {
        dpi: DPI,
        voice: VoiceSettings {
            enabled,
            volume: 1.0,
            clips: recorded_voices(),
            output: VoiceOutput::File(out.to_path_buf()),
        },
        ..Settings::default()
    }
}

/// Rule A3: what the voice file holds is the clips `expected` names
/// (`zh/place_card`), in order, each as recorded; its `.clips` list
/// names them.
fn assert_voice_said(out: &Path, expected: &[&str]) {
    let list = std::fs::read_to_string(format!("{}.clips", out.display())).expect("the clip list");
    assert_eq!(list.lines().collect::<Vec<_>>(), expected);
    let voices = recorded_voices();
    let mut recorded = Vec::new();
    for said in expected {
        let clip = Samples::read(&voices.join(format!("{said}.wav"))).expect("a recorded clip");
        recorded.extend(clip.data);
    }
    let written = Samples::read(out).expect("the voice file");
    assert!(
        written.data == recorded,
        "the voice file ({} samples) is not the clips as recorded ({} samples)",
        written.data.len(),
        recorded.len()
    );
}

/// Rule A3 in Chinese: an ID update with voice guidance on says each
/// screen's instruction as it appears, and "please take your card" with
/// the result; the attract screen says nothing.
#[test]
fn ui_voice_guidance_speaks_each_step_of_an_id_update_in_chinese() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("voice.wav");
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk_with(
        "smart_teller",
        DEFAULT_SESSION,
        false,
        "",
        voice_to_file(&out, true),
    );
    ui.touch("请触摸屏幕开始");
    ui.wait_screen("menu");
    ui.touch("更新身份证有效期");
    ui.wait_screen("place_card");
    k.sam.place(resident());
    ui.wait_screen("confirm_id");
    ui.touch("确认");
    ui.wait_screen("result");
    assert!(ui.shows("办理成功"), "{}", ui.all_text());
    ui.touch("完成");
    ui.wait_screen("attract");
    // Stops the voice's thread once it has written all it was given.
    drop(ui);
    assert_voice_said(
        &out,
        &[
            "zh/choose_service",
            "zh/place_card",
            "zh/check_details",
            "zh/applied",
            "zh/take_card",
        ],
    );
    k.assert_clean();
}

/// Rule A3 in English, with the idle warning: the same update, and the
/// result screen left untouched until its countdown.
#[test]
fn ui_voice_guidance_speaks_each_step_and_the_idle_warning_in_english() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("voice.wav");
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk_with(
        "smart_teller",
        DEFAULT_SESSION,
        false,
        "",
        voice_to_file(&out, true),
    );
    ui.touch("English");
    ui.touch("Touch the screen to start");
    ui.wait_screen("menu");
    ui.touch("Update ID card validity");
    ui.wait_screen("place_card");
    k.sam.place(resident());
    ui.wait_screen("confirm_id");
    ui.touch("Confirm");
    ui.wait_screen("result");
    // The result screen's countdown (the last 10 of 20 s) begins.
    ui.advance_clock(Duration::from_secs(11));
    assert!(ui.shows("countdown"), "{}", ui.all_text());
    ui.touch("Done");
    ui.wait_screen("attract");
    drop(ui);
    assert_voice_said(
        &out,
        &[
            "en/choose_service",
            "en/place_card",
            "en/check_details",
            "en/applied",
            "en/take_card",
            "en/still_there",
        ],
    );
    k.assert_clean();
}

/// Voice guidance off: the same screens write no voice file at all.
#[test]
fn ui_voice_guidance_off_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("voice.wav");
    let UiKiosk { mut ui, k, rt: _rt } = ui_kiosk_with(
        "smart_teller",
        DEFAULT_SESSION,
        false,
        "",
        voice_to_file(&out, false),
    );
    ui.touch("请触摸屏幕开始");
    ui.wait_screen("menu");
    ui.touch("更新身份证有效期");
    ui.wait_screen("place_card");
    k.sam.place(resident());
    ui.wait_screen("confirm_id");
    ui.touch("确认");
    ui.wait_screen("result");
    ui.touch("完成");
    ui.wait_screen("attract");
    drop(ui);
    assert!(!out.exists(), "voice off wrote {}", out.display());
    assert!(!Path::new(&format!("{}.clips", out.display())).exists());
    k.assert_clean();
}

/// Issue 14 ("a kiosk that looks finished"): every screen of the walk
/// (`kiosk_ui::tour`: the standard mode and the elderly-friendly one,
/// queue machine included, in both languages) fits every panel the kiosk
/// is built for: 1920 x 1080 and 1080 x 1920 at 102 and 160 dpi, 1280 x
/// 800 both ways. No button is off the window or smaller than its touch
/// target (1.5 times larger in the elderly-friendly mode); the header
/// shows the branch and its time.
#[test]
fn ui_every_screen_fits_every_panel() {
    use kiosk_ui::testing::{all_text, layout_problems};
    use kiosk_ui::tour::{self, CHECKED_PANELS};
    kiosk_ui::testing::init();
    let mut problems = Vec::new();
    for panel in CHECKED_PANELS {
        for en in [false, true] {
            for elderly in [false, true] {
                let (window, controller) = tour::ui(panel, elderly);
                let mut screens = 0;
                let mut header = String::new();
                let mut check = |name: &str| {
                    if name == "menu" {
                        header = all_text(&window);
                    }
                    for p in layout_problems(&window) {
                        problems.push(format!(
                            "{name} (en {en}, elderly {elderly}, {}x{} at {} dpi): {p}",
                            panel.width, panel.height, panel.dpi
                        ));
                    }
                    screens += 1;
                    Ok(())
                };
                let walked = if elderly {
                    tour::elderly(&controller, en, &mut check)
                } else {
                    tour::standard(&controller, en, &mut check)
                };
                walked.unwrap_or_else(|e| panic!("{e:#}"));
                assert!(screens >= 16, "{screens} screens");
                assert!(header.contains("某某银行 西城支行"), "{header}");
                // 02:30 UTC is 10:30 in the branch's time zone; the clock
                // gives way to the large buttons on an 800 px wide screen.
                if !(elderly && panel.width < 1000.0) {
                    assert!(header.contains("10:30"), "{header}");
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The layout follows the window: a landscape window turned to portrait
/// lays the letter keys out for portrait (alphabetical rows of seven
/// instead of QWERTY's ten), and every button still fits.
#[test]
fn ui_layout_follows_the_window_size() {
    use kiosk_ui::testing::{key_rows, layout_problems, portrait, resize};
    use kiosk_ui::tour::{self, Panel};
    kiosk_ui::testing::init();
    let landscape = Panel {
        width: 1920.0,
        height: 1080.0,
        dpi: 120.0,
    };
    let (window, controller) = tour::ui(landscape, false);
    tour::to_question(&controller);
    controller
        .borrow_mut()
        .dispatch(kiosk_ui::model::Input::Action(
            kiosk_ui::model::Action::KeyboardMode(kiosk_ui::keyboard::Mode::Latin),
        ));
    assert!(!portrait(&window));
    assert_eq!(key_rows(&window)[0], "qwertyuiop");
    resize(&window, &controller, 1080.0, 1920.0);
    assert!(portrait(&window));
    assert_eq!(key_rows(&window)[0], "abcdefg");
    assert!(
        layout_problems(&window).is_empty(),
        "{:?}",
        layout_problems(&window)
    );
    resize(&window, &controller, 1280.0, 800.0);
    assert_eq!(key_rows(&window)[0], "qwertyuiop");
    assert!(
        layout_problems(&window).is_empty(),
        "{:?}",
        layout_problems(&window)
    );
}
