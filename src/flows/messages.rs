//! What a customer is told when a flow refuses, stops or ends: a stable
//! `code` for the UI and the local API, and the text in Chinese and
//! English ([`CustomerMessage`], the same type the queue flow uses).
//!
//! Every refusal of the ID validity flow ([`super::id_update`]) and the
//! mobile number flow ([`super::phone`]) is a [`Refusal`]; the other things
//! a flow says at its end (applied, accepted and waiting for the bank,
//! cancelled, timed out) are the free functions below. No message carries
//! personal data: numbers are shown masked, and the only free text is the
//! core bank's own reason or rejection message, which the interface keeps
//! free of it (shared/corebank-api.md).
//!
//! Codes are stable: the UI chooses screens by them and tests assert
//! them. A referral to the counter always has a code starting with
//! `counter_` ([`Refusal::is_counter_referral`]).

pub use super::queue::CustomerMessage;

pub use kiosk_proto::{CounterReason, Refusal};

/// A counter referral's reason in Chinese and English.
fn counter_text(reason: &CounterReason) -> (String, String) {
    match reason {
        CounterReason::DocumentTypeMismatch => (
            "银行登记的证件类型与此证件不同".into(),
            "the document type the bank holds differs from this card".into(),
        ),
        CounterReason::NameMismatch => (
            "证件上的姓名与银行登记的姓名不一致".into(),
            "the name on the card differs from the name the bank holds".into(),
        ),
        CounterReason::IdNumberMismatch => (
            "证件号码与银行登记的号码不一致".into(),
            "the card's number differs from the number the bank holds".into(),
        ),
        CounterReason::CustomerNotFound => (
            "未找到与此证件对应的客户信息".into(),
            "the bank has no customer record for this card".into(),
        ),
        CounterReason::NoSecurityQuestion => (
            "您尚未设置私密问题".into(),
            "no security question is set for you".into(),
        ),
        CounterReason::Locked => (
            "私密问题回答错误次数过多，自助业务已锁定".into(),
            "too many wrong answers to the security question: self-service is locked".into(),
        ),
        CounterReason::NotAllowed { reason } => match reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => (
                format!("此业务不能自助办理（{r}）"),
                format!("this cannot be done at self-service ({r})"),
            ),
            _ => (
                "此业务不能自助办理".into(),
                "this cannot be done at self-service".into(),
            ),
        },
        CounterReason::BankRecord { .. } => (
            "银行登记的信息需要人工核对".into(),
            "the bank's record needs to be checked by our staff".into(),
        ),
    }
}

/// What the customer is told of a [`Refusal`].
pub trait Explained {
    fn message(&self) -> CustomerMessage;
}

impl Explained for Refusal {
    fn message(&self) -> CustomerMessage {
        let (zh, en): (String, String) = match self {
            Refusal::Counter(reason) => {
                let (zh, en) = counter_text(reason);
                (
                    format!("请到柜台办理：{zh}"),
                    format!("Please go to the counter: {en}"),
                )
            }
            Refusal::UnsupportedCard => (
                "本机不受理此类证件，请使用居民身份证、外国人永久居留身份证或港澳台居民居住证"
                    .into(),
                "This card is not accepted here: please use a resident ID card, a foreign \
                 permanent resident ID card or a Hong Kong, Macao and Taiwan residence permit"
                    .into(),
            ),
            Refusal::UnreadableCard => (
                "无法读取证件，请取回证件后重新放置".into(),
                "The card could not be read: please take it and place it again".into(),
            ),
            Refusal::BadCard => (
                "证件号码校验未通过，请到柜台办理".into(),
                "The card's number did not pass its check: please go to the counter".into(),
            ),
            Refusal::ExpiredCard { valid_until } => (
                format!("您的证件已于 {valid_until} 过期，请使用有效证件"),
                format!("Your card expired on {valid_until}: please use a valid card"),
            ),
            Refusal::AlreadyUpToDate => (
                "银行登记的证件有效期已是最新，无需更新".into(),
                "The bank already holds this card's validity: nothing to update".into(),
            ),
            Refusal::OldCard => (
                "银行已登记更新的证件，请使用您最新的证件".into(),
                "The bank holds a newer card than this one: please use your latest card".into(),
            ),
            Refusal::OutsideUpdateWindow { opens, closes } => (
                format!("证件信息只能在 {opens} 至 {closes} 期间自助更新，请到柜台办理"),
                format!(
                    "Your card's validity can be updated here only from {opens} to {closes}: \
                     please go to the counter"
                ),
            ),
            Refusal::BankUnreachable => (
                "暂时无法连接银行系统，此业务暂不能办理，请稍后再试或到柜台办理".into(),
                "The bank's system cannot be reached: this cannot be done now, please try \
                 again later or go to the counter"
                    .into(),
            ),
            Refusal::CardRequired => (
                "请先在读卡器上放置您的身份证件".into(),
                "Please first place your ID card on the reader".into(),
            ),
            Refusal::WrongAnswer {
                attempts_left: Some(n),
            } => (
                format!("答案不正确，您还可以尝试 {n} 次"),
                format!("Wrong answer: {n} {} left", attempts(*n)),
            ),
            Refusal::WrongAnswer {
                attempts_left: None,
            } => (
                "答案不正确，请重新输入".into(),
                "Wrong answer: please try again".into(),
            ),
            Refusal::NumbersDiffer => (
                "两次输入的手机号码不一致，请重新输入".into(),
                "The two numbers you entered differ: please enter them again".into(),
            ),
            Refusal::InvalidNumber => (
                "请输入 11 位中国大陆手机号码".into(),
                "Please enter an 11-digit mainland China mobile number".into(),
            ),
            Refusal::SameAsOnFile => (
                "新号码与银行登记的号码相同；如确为新号码，请到柜台办理".into(),
                "The new number is the one the bank already holds (if it really is a new \
                 number, please go to the counter)"
                    .into(),
            ),
            Refusal::WrongCode {
                attempts_left: Some(n),
            } => (
                format!("验证码不正确，您今天还可以尝试 {n} 次"),
                format!("Wrong code: {n} {} left today", attempts(*n)),
            ),
            Refusal::WrongCode {
                attempts_left: None,
            } => (
                "验证码不正确，请重新输入".into(),
                "Wrong code: please try again".into(),
            ),
            Refusal::CodeExpired => (
                "验证码已过期，请重新获取".into(),
                "The code has expired: please ask for a new one".into(),
            ),
            Refusal::TooManyCodesToday => (
                "今日验证码错误次数过多，请明天再试或到柜台办理".into(),
                "Too many wrong codes today: please try again tomorrow or go to the counter".into(),
            ),
            Refusal::ResendTooSoon { retry_after_s } => (
                format!("请 {retry_after_s} 秒后再获取验证码"),
                format!("Please wait {retry_after_s} s before asking for a new code"),
            ),
            Refusal::ResendLimit => (
                "验证码发送次数已达上限，请输入已收到的验证码或到柜台办理".into(),
                "No more codes can be sent: please enter the code you received or go to the \
                 counter"
                    .into(),
            ),
            Refusal::ChangeRejected { code, message } => {
                let why = if message.trim().is_empty() {
                    code.as_str()
                } else {
                    message.trim()
                };
                (
                    format!("银行未受理此次变更（{why}），请到柜台办理"),
                    format!("The bank did not accept the change ({why}): please go to the counter"),
                )
            }
            Refusal::NotRecorded => (
                "系统暂时无法办理，您的信息未作变更，请到柜台办理".into(),
                "The kiosk could not record the change and nothing was changed: please go to \
                 the counter"
                    .into(),
            ),
        };
        CustomerMessage {
            code: self.code(),
            zh,
            en,
        }
    }
}

fn attempts(n: u32) -> &'static str {
    if n == 1 { "attempt" } else { "attempts" }
}

/// Rule I7 / C3: the bank applied the new validity (or already held it:
/// `superseded` counts as done).
pub fn id_updated() -> CustomerMessage {
    CustomerMessage {
        code: "id_updated",
        zh: "证件有效期已更新".into(),
        en: "Your card's validity has been updated".into(),
    }
}

/// Rule C3: the bank is unreachable; the confirmed change is recorded on
/// this kiosk and will be delivered when it is back.
pub fn id_accepted_will_sync() -> CustomerMessage {
    CustomerMessage {
        code: "accepted_will_sync",
        zh: "您的证件有效期更新已受理，将在银行系统恢复后自动同步".into(),
        en: "Your update is accepted and will be sent to the bank as soon as it can be reached"
            .into(),
    }
}

/// Rule P6: the bank applied the new number; `new_masked` is
/// `139****5678`.
pub fn mobile_changed(new_masked: &str) -> CustomerMessage {
    CustomerMessage {
        code: "mobile_changed",
        zh: format!("您的手机号码已变更为 {new_masked}，新旧号码将收到银行通知"),
        en: format!(
            "Your mobile number is now {new_masked}; the bank will notify the old and the new number"
        ),
    }
}

/// Rule P6: the change is recorded but the bank has not confirmed it yet
/// (it became unreachable after the code was verified). It is not
/// reported as done.
pub fn mobile_pending() -> CustomerMessage {
    CustomerMessage {
        code: "mobile_pending",
        zh: "您的手机号码变更已提交，尚待银行确认；完成后新旧号码将收到银行通知".into(),
        en: "Your change is submitted but not yet confirmed by the bank; the old and the new \
             number will be notified once it is done"
            .into(),
    }
}

/// The customer cancelled; nothing was changed.
pub fn cancelled() -> CustomerMessage {
    CustomerMessage {
        code: "cancelled",
        zh: "已取消，您的信息未作变更".into(),
        en: "Cancelled: nothing was changed".into(),
    }
}

/// The session timed out; nothing was changed.
pub fn timed_out() -> CustomerMessage {
    CustomerMessage {
        code: "timed_out",
        zh: "操作超时，您的信息未作变更，请取回证件".into(),
        en: "The session timed out and nothing was changed: please take your card".into(),
    }
}

/// The idle warning: the session ends in `seconds_left` seconds.
pub fn idle_warning(seconds_left: u64) -> CustomerMessage {
    CustomerMessage {
        code: "idle_warning",
        zh: format!("如无操作，本次服务将在 {seconds_left} 秒后结束"),
        en: format!("Without a touch, this session ends in {seconds_left} s"),
    }
}

/// Rule A4: the customer asked for more time and the idle clock restarted.
pub fn more_time() -> CustomerMessage {
    CustomerMessage {
        code: "more_time",
        zh: "好的，已为您延长时间，请继续办理".into(),
        en: "You have more time: please carry on".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Refusal> {
        let mut v: Vec<Refusal> = [
            CounterReason::DocumentTypeMismatch,
            CounterReason::NameMismatch,
            CounterReason::IdNumberMismatch,
            CounterReason::CustomerNotFound,
            CounterReason::NoSecurityQuestion,
            CounterReason::Locked,
            CounterReason::NotAllowed {
                reason: Some("账户冻结".into()),
            },
            CounterReason::NotAllowed { reason: None },
            CounterReason::BankRecord { code: "x".into() },
        ]
        .into_iter()
        .map(Refusal::Counter)
        .collect();
        v.extend([
            Refusal::UnsupportedCard,
            Refusal::UnreadableCard,
            Refusal::BadCard,
            Refusal::ExpiredCard {
                valid_until: "2020-01-01".into(),
            },
            Refusal::AlreadyUpToDate,
            Refusal::OldCard,
            Refusal::OutsideUpdateWindow {
                opens: "2025-01-01".into(),
                closes: "2025-04-01".into(),
            },
            Refusal::BankUnreachable,
            Refusal::CardRequired,
            Refusal::WrongAnswer {
                attempts_left: Some(2),
            },
            Refusal::WrongAnswer {
                attempts_left: None,
            },
            Refusal::NumbersDiffer,
            Refusal::InvalidNumber,
            Refusal::SameAsOnFile,
            Refusal::WrongCode {
                attempts_left: Some(7),
            },
            Refusal::CodeExpired,
            Refusal::TooManyCodesToday,
            Refusal::ResendTooSoon { retry_after_s: 30 },
            Refusal::ResendLimit,
            Refusal::ChangeRejected {
                code: "stale_card".into(),
                message: "older card".into(),
            },
            Refusal::NotRecorded,
        ]);
        v
    }

    #[test]
    fn every_refusal_has_a_code_and_both_languages() {
        let mut codes = std::collections::BTreeSet::new();
        for r in all() {
            let m = r.message();
            assert_eq!(m.code, r.code());
            assert!(!m.zh.trim().is_empty() && !m.en.trim().is_empty(), "{r:?}");
            assert!(m.zh.chars().any(|c| c > '\u{2e80}'), "{r:?}: {}", m.zh);
            let bank_text = matches!(
                r,
                Refusal::Counter(CounterReason::NotAllowed { reason: Some(_) })
            );
            assert!(bank_text || m.en.is_ascii(), "{r:?}: {}", m.en);
            assert!(
                m.code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                m.code
            );
            assert_eq!(r.is_counter_referral(), m.code.starts_with("counter_"));
            codes.insert(m.code);
        }
        // One code per kind of refusal (the two NotAllowed and the two
        // WrongAnswer share one).
        assert_eq!(codes.len(), all().len() - 2);
    }

    #[test]
    fn counter_referrals_give_the_reason() {
        let m = Refusal::Counter(CounterReason::NotAllowed {
            reason: Some("账户受限".into()),
        })
        .message();
        assert_eq!(m.code, "counter_not_allowed");
        assert!(m.zh.contains("账户受限") && m.zh.contains("柜台"));
        assert!(m.en.contains("账户受限") && m.en.contains("counter"));
        let m = Refusal::Counter(CounterReason::DocumentTypeMismatch).message();
        assert!(m.en.contains("document type"));
        let m = Refusal::Counter(CounterReason::Locked).message();
        assert!(m.en.contains("locked"));
    }

    #[test]
    fn attempts_left_are_in_the_text() {
        let m = Refusal::WrongAnswer {
            attempts_left: Some(1),
        }
        .message();
        assert!(m.zh.contains('1') && m.en.contains("1 attempt left"));
        let m = Refusal::WrongCode {
            attempts_left: Some(7),
        }
        .message();
        assert!(m.zh.contains('7') && m.en.contains("7 attempts left today"));
    }

    #[test]
    fn outcome_messages_have_codes() {
        for m in [
            id_updated(),
            id_accepted_will_sync(),
            mobile_changed("139****5678"),
            mobile_pending(),
            cancelled(),
            timed_out(),
            idle_warning(20),
            more_time(),
        ] {
            assert!(!m.zh.is_empty() && !m.en.is_empty() && !m.code.is_empty());
        }
        assert!(mobile_changed("139****5678").zh.contains("139****5678"));
    }
}
