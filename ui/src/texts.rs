//! Every string the UI shows, in Simplified Chinese and English.
//!
//! Messages that come from kioskd (refusals, outcomes, ticket notices)
//! already carry both languages; this catalog holds the UI's own words.
//! [`Texts::get`] builds the Slint struct for one language, so a string
//! missing in either language is a compile error, not a blank button.

use crate::Texts;

/// The screen's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Simplified Chinese: what the kiosk starts in.
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The folder of this language's voice clips (`voices/zh/...`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// Pick the string of this language.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// The header's clock at `now` in the branch's time zone `tz` (an IANA
/// name; the machine's own zone when kioskd has not said or the name is
/// unknown): the time (`14:05`) and the date (`12月5日 星期六`, `Sat 5 Dec`).
pub fn clock(now: chrono::DateTime<chrono::Utc>, tz: &str, lang: Lang) -> (String, String) {
    use chrono::{Datelike, Timelike};
    let local = match tz.parse::<chrono_tz::Tz>() {
        Ok(tz) => now.with_timezone(&tz).naive_local(),
        Err(_) => now.with_timezone(&chrono::Local).naive_local(),
    };
    let time = format!("{:02}:{:02}", local.hour(), local.minute());
    let weekday = local.weekday().num_days_from_monday() as usize;
    let date = match lang {
        Lang::Zh => {
            const DAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
            format!("{}月{}日 星期{}", local.month(), local.day(), DAYS[weekday])
        }
        Lang::En => {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            format!(
                "{} {} {}",
                DAYS[weekday],
                local.day(),
                MONTHS[local.month0() as usize]
            )
        }
    };
    (time, date)
}

macro_rules! catalog {
    ($($field:ident: $zh:literal, $en:literal;)*) => {
        impl Texts {
            /// The UI's words in `lang`; `plain`: the elderly-friendly
            /// mode's plainer wording where it has one (rule A2).
            pub fn get(lang: Lang, plain: bool) -> Texts {
                let mut t = Texts {
                    $($field: lang.pick($zh, $en).into(),)*
                };
                if plain {
                    plain_words(&mut t, lang);
                }
                t
            }
        }

        /// Every (field, Chinese, English) of the catalog, for tests.
        pub const ALL: &[(&str, &str, &str)] = &[$((stringify!($field), $zh, $en),)*];

        /// Each string of the catalog as (Chinese, English), so the voice
        /// clips say the very words the screen shows.
        // Only the words a clip says are read.
        #[allow(non_upper_case_globals, dead_code)]
        mod words {
            $(pub const $field: (&str, &str) = ($zh, $en);)*
        }
    };
}

/// Rule A2's plain wording: the elderly-friendly mode says these with
/// shorter, everyday words; every other string stays as it is.
macro_rules! plain_catalog {
    ($($field:ident: $zh:literal, $en:literal;)*) => {
        fn plain_words(t: &mut Texts, lang: Lang) {
            $(t.$field = lang.pick($zh, $en).into();)*
        }

        /// Every (field, Chinese, English) of the plain wording, for tests.
        pub const PLAIN: &[(&str, &str, &str)] = &[$((stringify!($field), $zh, $en),)*];
    };
}

plain_catalog! {
    place_card: "请放身份证", "Put your ID card on the reader";
    place_card_hint: "放好后先别拿走", "Leave it there for a moment";
    reading: "正在读卡，请别动", "Reading it: leave it there";
    menu_title: "您要办什么？", "What would you like to do?";
    menu_id_update: "换了新身份证", "I have a new ID card";
    menu_phone: "换手机号", "Change my phone number";
    menu_queue: "排队拿号", "Get a queue number";
    confirm_id_title: "请看信息对不对", "Is this right?";
    label_old_validity: "旧证到期", "Old card ends";
    label_new_validity: "新证到期", "New card ends";
    confirm: "对，办理", "Yes, go ahead";
    cancel: "不办了", "Stop";
    new_number_title: "请输入新手机号", "Type your new phone number";
    second_number_label: "再输一遍", "Type it again";
    code_title: "请输入短信里的数字", "Type the numbers from the text message";
    confirm_phone_title: "换成这个号码吗？", "Change to this number?";
    working: "请稍等…", "One moment…";
    take_card: "别忘了拿走身份证", "Don't forget your ID card";
    still_there: "您还在吗？", "Are you still there?";
}

catalog! {
    lang_switch: "English", "中文";
    elderly_mode: "长辈模式", "Large text";
    more_time: "延长时间", "More time";
    welcome: "欢迎使用自助服务", "Welcome to self-service";
    touch_to_start: "请触摸屏幕开始", "Touch the screen to start";
    place_card: "请放置身份证", "Place your ID card";
    place_card_hint: "请将身份证放在读卡区，读卡完成前请勿移动", "Put your ID card on the reader and keep it still until it has been read";
    reading: "正在读卡，请勿移动证件…", "Reading your card, keep it still…";
    menu_title: "请选择业务", "Choose a service";
    menu_id_update: "更新身份证有效期", "Update ID card validity";
    menu_phone: "变更手机号码", "Change mobile number";
    menu_queue: "取号排队", "Take a queue number";
    menu_id_update_hint: "换了新身份证？在这里更新银行登记的有效期", "Got a new ID card? Bring the bank's record up to date";
    menu_phone_hint: "回答私密问题，再用短信验证码确认", "Answer your security question, then confirm with a text message";
    menu_queue_hint: "领取柜台排队号票", "Get a ticket for the counter";
    card_picture: "身份证放置位置", "Where to place your ID card";
    queue_title: "请选择业务类型取号", "Choose a service to take a number";
    queue_swipe_hint: "刷身份证取号，新证件的有效期将自动更新", "Swipe your ID card when you take a number: a newer card's validity is updated for you";
    queue_card_read: "已读取证件", "Card read";
    ticket_title: "您的号码", "Your number";
    take_ticket: "请取走号票，留意叫号", "Please take your ticket and listen for your number";
    printer_fault_title: "号票未能打印", "Your ticket could not be printed";
    printer_fault_hint: "号码已为您保留，请联系大堂工作人员", "Your number is kept for you: please ask a member of staff";
    confirm_id_title: "请核对证件信息", "Please check your details";
    label_name: "姓名", "Name";
    label_number: "证件号码", "ID number";
    label_old_validity: "原有效期", "Validity on file";
    label_new_validity: "新有效期", "New validity";
    confirm: "确认", "Confirm";
    cancel: "取消", "Cancel";
    done: "完成", "Done";
    retry: "重试", "Try again";
    back: "返回", "Back";
    question_title: "请回答私密问题", "Answer your security question";
    answer_label: "答案", "Answer";
    hide_answer: "隐藏", "Hide";
    show_answer: "显示", "Show";
    new_number_title: "请输入新手机号码", "Enter your new mobile number";
    first_number_label: "新号码", "New number";
    second_number_label: "再次输入新号码", "New number again";
    code_title: "请输入短信验证码", "Enter the SMS code";
    code_label: "验证码", "Code";
    resend: "重新发送", "Send again";
    change_number: "更换号码", "Use another number";
    confirm_phone_title: "请确认手机号码变更", "Confirm the number change";
    old_number_label: "原号码", "Current number";
    new_number_label: "新号码", "New number";
    working: "正在处理，请稍候…", "Working, please wait…";
    take_card: "请取回您的身份证", "Please take your ID card";
    still_there: "您还在吗？请触摸屏幕继续", "Are you still there? Touch the screen to continue";
    unavailable_title: "服务暂停", "Service unavailable";
    unavailable_body: "正在重新连接，请稍候或到柜台办理", "Reconnecting: please wait or go to the counter";
    key_delete: "删除", "Delete";
    key_clear: "清空", "Clear";
    key_ok: "确定", "OK";
    kb_pinyin: "拼音", "Pinyin";
    kb_handwriting: "手写", "Write";
    kb_latin: "ABC", "ABC";
    kb_digits: "123", "123";
    kb_shift: "大写", "Shift";
    kb_space: "空格", "Space";
    kb_previous: "上一页", "Previous";
    kb_next: "下一页", "Next";
    kb_pad: "手写板", "Handwriting pad";
    kb_pad_hint: "请在此书写一个字", "Write one character here";
    kb_clear_ink: "重写", "Erase";
    tech_pin_title: "技术员登录", "Technician sign-in";
    tech_pin_label: "PIN", "PIN";
    tech_title: "设备诊断", "Diagnostics";
    tech_devices: "设备", "Devices";
    tech_sync_backlog: "待同步变更", "Changes waiting for the bank";
    tech_versions: "版本", "Versions";
    tech_print_test: "打印测试页", "Print test page";
    tech_reader_check: "读卡器检查", "Reader check";
    tech_sync_retry: "重试同步", "Retry sync";
    tech_exit: "退出", "Sign out";
}

/// What voice guidance can say (rule A3). Each clip is one recording per
/// language, `<voices>/<lang>/<id>.wav`, that a bank may replace with its
/// own. Clips are fixed instructions: none carries a name, a number or
/// anything else of the customer's. Which clip a screen says is decided
/// in one place, `model::screen_clips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clip {
    Unavailable,
    ChooseService,
    PlaceCard,
    CheckDetails,
    AnswerQuestion,
    EnterNewNumber,
    EnterCode,
    ConfirmPhoneChange,
    Applied,
    Accepted,
    Rejected,
    Refused,
    Cancelled,
    TimedOut,
    NotAvailable,
    TakeCard,
    ChooseQueueService,
    TakeTicket,
    PrinterFault,
    StillThere,
}

impl Clip {
    /// Every clip: what `cargo xtask voices` records.
    pub const ALL: &[Clip] = &[
        Clip::Unavailable,
        Clip::ChooseService,
        Clip::PlaceCard,
        Clip::CheckDetails,
        Clip::AnswerQuestion,
        Clip::EnterNewNumber,
        Clip::EnterCode,
        Clip::ConfirmPhoneChange,
        Clip::Applied,
        Clip::Accepted,
        Clip::Rejected,
        Clip::Refused,
        Clip::Cancelled,
        Clip::TimedOut,
        Clip::NotAvailable,
        Clip::TakeCard,
        Clip::ChooseQueueService,
        Clip::TakeTicket,
        Clip::PrinterFault,
        Clip::StillThere,
    ];

    /// The clip's file name, without `.wav`.
    pub fn id(self) -> &'static str {
        match self {
            Clip::Unavailable => "unavailable",
            Clip::ChooseService => "choose_service",
            Clip::PlaceCard => "place_card",
            Clip::CheckDetails => "check_details",
            Clip::AnswerQuestion => "answer_question",
            Clip::EnterNewNumber => "enter_new_number",
            Clip::EnterCode => "enter_code",
            Clip::ConfirmPhoneChange => "confirm_phone_change",
            Clip::Applied => "applied",
            Clip::Accepted => "accepted",
            Clip::Rejected => "rejected",
            Clip::Refused => "refused",
            Clip::Cancelled => "cancelled",
            Clip::TimedOut => "timed_out",
            Clip::NotAvailable => "not_available",
            Clip::TakeCard => "take_card",
            Clip::ChooseQueueService => "choose_queue_service",
            Clip::TakeTicket => "take_ticket",
            Clip::PrinterFault => "printer_fault",
            Clip::StillThere => "still_there",
        }
    }

    /// What the clip says, as (Chinese, English): the screen's own words
    /// where the screen shows the instruction.
    pub fn texts(self) -> (&'static str, &'static str) {
        match self {
            Clip::Unavailable => (
                "服务暂停，请稍候或到柜台办理",
                "Service unavailable: please wait or go to the counter",
            ),
            Clip::ChooseService => words::menu_title,
            Clip::PlaceCard => words::place_card_hint,
            Clip::CheckDetails => words::confirm_id_title,
            Clip::AnswerQuestion => words::question_title,
            Clip::EnterNewNumber => words::new_number_title,
            Clip::EnterCode => words::code_title,
            Clip::ConfirmPhoneChange => words::confirm_phone_title,
            // The result screen's titles (model::outcome_title shows these).
            Clip::Applied => ("办理成功", "Done: your details are updated"),
            Clip::Accepted => (
                "已受理，将尽快同步至银行系统",
                "Accepted: it will reach the bank's records shortly",
            ),
            Clip::Rejected => ("银行未能受理", "The bank did not accept the change"),
            Clip::Refused => ("无法在此办理", "This cannot be done here"),
            Clip::Cancelled => ("已取消", "Cancelled"),
            Clip::TimedOut => ("操作超时，已退出", "Timed out: the session has ended"),
            Clip::NotAvailable => (
                "暂时无法办理，请稍后再试或到柜台办理",
                "This is not available right now: please try again later or go to the counter",
            ),
            Clip::TakeCard => words::take_card,
            Clip::ChooseQueueService => words::queue_title,
            Clip::TakeTicket => words::take_ticket,
            Clip::PrinterFault => (
                "号票未能打印，号码已为您保留，请联系大堂工作人员",
                "Your ticket could not be printed. Your number is kept for you: please ask a member of staff",
            ),
            Clip::StillThere => words::still_there,
        }
    }

    /// What the clip says in `lang`.
    pub fn text(self, lang: Lang) -> &'static str {
        let (zh, en) = self.texts();
        lang.pick(zh, en)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's clock is the branch's time (kioskd's time zone), in
    /// the screen's language.
    #[test]
    fn the_clock_shows_the_branchs_time_in_the_screens_language() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-02-10T02:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            clock(at, "Asia/Shanghai", Lang::Zh),
            ("10:30".to_string(), "2月10日 星期二".to_string())
        );
        assert_eq!(
            clock(at, "Europe/London", Lang::En),
            ("02:30".to_string(), "Tue 10 Feb".to_string())
        );
        // The day turns over in the branch's zone, not in UTC.
        let late = chrono::DateTime::parse_from_rfc3339("2026-02-10T17:05:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(clock(late, "Asia/Shanghai", Lang::En).1, "Wed 11 Feb");
    }

    #[test]
    fn every_clip_has_a_unique_id_and_both_languages() {
        let mut ids = std::collections::HashSet::new();
        for clip in Clip::ALL {
            assert!(ids.insert(clip.id()), "{clip:?}: id used twice");
            assert!(
                clip.id()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{clip:?}: an id is a plain file name"
            );
            let (zh, en) = clip.texts();
            assert!(!zh.is_empty() && !en.is_empty(), "{clip:?}");
            assert_ne!(zh, en, "{clip:?} is not translated");
            // Fixed instructions only: no digit that could be a number.
            assert!(
                !zh.chars().chain(en.chars()).any(|c| c.is_ascii_digit()),
                "{clip:?}"
            );
        }
    }

    #[test]
    fn clips_say_the_screens_own_words() {
        assert_eq!(Clip::PlaceCard.texts(), words::place_card_hint);
        assert_eq!(Clip::TakeCard.text(Lang::Zh), "请取回您的身份证");
        assert_eq!(Clip::StillThere.text(Lang::En), words::still_there.1);
    }
}
