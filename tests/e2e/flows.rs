//! The customer flows through kioskd's local API (`session_*`), with the
//! SAM simulator on a pseudo-terminal and the core-bank simulator: one test
//! per rule, the counter referrals with their reasons, and a test that
//! greps the log and the audit trail of the whole flow suite for the test
//! cards' and customers' personal data.

use std::path::Path;

use kiosk_corebank::SigningKey;
use kiosk_proto::{Client, DeviceState, Event, Outcome, SessionInfo, SessionInput, Stage};
use kiosk_sim::corebank::{CoreBankConfig, CoreBankSim, Faults, FixtureSource, Fixtures};
use kiosk_sim::printer::{PrinterSim, PrinterSimConfig};
use kiosk_sim::{CardProfile, SamSim, SamSimConfig};

use super::harness::{DEADLINE, Kioskd, printer_toml, wait_device, wait_state};

pub(crate) const READER: &str = "desk";
pub(crate) const PRINTER: &str = "slips";

/// A kioskd with a SAM reader, a store and the core bank.
pub(crate) struct Kiosk {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) sam: SamSim,
    pub(crate) bank: Option<CoreBankSim>,
    pub(crate) printer: Option<PrinterSim>,
    pub(crate) kioskd: Kioskd,
    pub(crate) c: Client,
}

pub(crate) const DEFAULT_SESSION: &str =
    "idle_timeout_s = 60\nidle_warning_s = 10\nbank_wait_ms = 30000\n";

async fn kiosk() -> Kiosk {
    kiosk_with(DEFAULT_SESSION, false).await
}

/// `session`: the `[session]` table's lines; `printer`: with the ticket
/// printer simulator.
async fn kiosk_with(session: &str, printer: bool) -> Kiosk {
    kiosk_opts(session, printer, false).await
}

/// `direct`: `api.allow_direct_changes` (the test-only `submit_change`).
async fn kiosk_opts(session: &str, printer: bool, direct: bool) -> Kiosk {
    kiosk_full(session, printer, direct, "").await
}

/// `extra`: more tables for the config (`[queue]`, `[metrics]`).
pub(crate) async fn kiosk_full(session: &str, printer: bool, direct: bool, extra: &str) -> Kiosk {
    kiosk_profile("smart_teller", session, printer, direct, extra).await
}

/// Like [`kiosk_full`], as a kiosk of `profile`.
pub(crate) async fn kiosk_profile(
    profile: &str,
    session: &str,
    printer: bool,
    direct: bool,
    extra: &str,
) -> Kiosk {
    kiosk_with_api(profile, "", session, printer, direct, extra).await
}

/// Like [`kiosk_profile`], with `api` added to the `[api]` section.
pub(crate) async fn kiosk_with_api(
    profile: &str,
    api: &str,
    session: &str,
    printer: bool,
    direct: bool,
    extra: &str,
) -> Kiosk {
    let dir = tempfile::tempdir().expect("tempdir");
    kiosk::store::generate_key_file(&dir.path().join("store.key")).expect("store key");
    let key_bytes: [u8; 32] = rand::random();
    super::harness::write_secret(&dir.path().join("bank.key"), &hex::encode(key_bytes));
    let mut config = CoreBankConfig::new(
        dir.path().join("bank.db"),
        SigningKey::new(key_bytes.to_vec()),
    );
    config.fixtures = FixtureSource::Builtin;
    config.faults = Faults::none();
    let bank = CoreBankSim::start(config).expect("core-bank simulator");
    // A stable by-id style link, as udev makes for a USB serial adapter.
    let sam_link = dir.path().join("by-id/usb-kiosk-sim-sam-if00-port0");
    let sam = SamSim::start(SamSimConfig::new(&sam_link)).expect("SAM simulator");
    let printer = printer.then(|| {
        PrinterSim::start(PrinterSimConfig::new(dir.path().join("by-id/printer0")))
            .expect("printer simulator")
    });
    let mut toml = toml(dir.path(), &sam_link, &bank.base_url(), session);
    if let Some(p) = &printer {
        toml.push_str(&printer_toml(PRINTER, p.link(), 115_200));
    }
    toml.push_str(extra);
    let kioskd = Kioskd::start_profile(profile, api, &toml, direct);
    let mut c = kioskd.subscriber().await;
    wait_state(&mut c, READER, DeviceState::Online).await;
    if printer.is_some() {
        wait_device(&mut c, PRINTER, DeviceState::Online).await;
    }
    Kiosk {
        dir,
        sam,
        bank: Some(bank),
        printer,
        kioskd,
        c,
    }
}

fn toml(dir: &Path, sam: &Path, bank_url: &str, session: &str) -> String {
    format!(
        r#"
[store]
path = "{db}"
key_file = "{key}"

[sync]
backoff_min_ms = 5
backoff_max_ms = 100

[corebank]
url = "{bank_url}"
key_file = "{bank_key}"
allow_plain_http = true
request_timeout_ms = 10000

[session]
{session}

[[readers]]
name = "{READER}"

[readers.sam]
path = "{sam}"
poll_interval_ms = 50
"#,
        db = dir.join("kiosk.db").display(),
        key = dir.join("store.key").display(),
        bank_key = dir.join("bank.key").display(),
        sam = sam.display(),
    )
}

impl Kiosk {
    pub(crate) fn bank(&self) -> &CoreBankSim {
        self.bank.as_ref().expect("bank running")
    }

    /// Start `flow`, place `card`, and return the state once the lookup
    /// is answered (or the flow ended).
    pub(crate) async fn start_with_card(&mut self, flow: &str, card: CardProfile) -> SessionInfo {
        let started = self.c.session_start(flow).await.expect("session_start");
        assert!(started.active);
        assert_eq!(started.stage, Stage::AwaitingCard);
        // A card still on the reader from an earlier session is taken
        // away first: the session takes a card read while it waits.
        let readers = self.c.readers().await.expect("readers");
        if readers.iter().any(|r| r.name == READER && r.card_present) {
            self.sam.remove();
            self.c
                .wait_event(DEADLINE, |e| {
                    matches!(e, Event::CardAbsent { reader } if reader == READER).then_some(())
                })
                .await
                .expect("card removed");
        }
        self.sam.place(card);
        self.settled(started.session_id.as_deref().expect("session id"))
            .await
    }

    /// The next `session` event of session `id` in a stage where the
    /// session waits for the customer (or has ended).
    pub(crate) async fn settled(&mut self, id: &str) -> SessionInfo {
        self.c
            .wait_event(DEADLINE, |e| match e {
                Event::Session(info)
                    if info.session_id.as_deref() == Some(id)
                        && !matches!(
                            info.stage.as_str(),
                            "awaiting_card"
                                | "looking_up"
                                | "checking_answer"
                                | "sending_code"
                                | "verifying_code"
                                | "recording"
                                | "awaiting_bank"
                        ) =>
                {
                    Some(info.clone())
                }
                _ => None,
            })
            .await
            .expect("the session settles")
    }

    pub(crate) async fn input(&mut self, input: SessionInput) -> SessionInfo {
        self.c.session_input(input).await.expect("session_input")
    }

    pub(crate) fn audit_text(&self) -> String {
        let store = kiosk::store::Store::open(
            &self.dir.path().join("kiosk.db"),
            &self.dir.path().join("store.key"),
            &Default::default(),
        )
        .expect("open the store");
        store
            .audit()
            .audit_records(0, 100_000)
            .expect("audit")
            .into_iter()
            .map(|r| format!("{} {} {:?} {}\n", r.actor, r.action, r.subject, r.detail))
            .collect()
    }

    fn audit_actions(&self) -> Vec<String> {
        let store = kiosk::store::Store::open(
            &self.dir.path().join("kiosk.db"),
            &self.dir.path().join("store.key"),
            &Default::default(),
        )
        .expect("open the store");
        store
            .audit()
            .audit_records(0, 100_000)
            .expect("audit")
            .into_iter()
            .map(|r| r.action)
            .collect()
    }

    /// Rule S1: none of `secrets` in the log or the audit trail.
    fn assert_nothing_personal(&self, secrets: &[&str]) {
        let log = self.kioskd.log();
        let audit = self.audit_text();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(!log.contains(s), "{s:?} is in kioskd's log");
            assert!(!audit.contains(s), "{s:?} is in the audit trail");
        }
    }

    /// Rule S1 over everything this kioskd wrote: none of the full ID
    /// numbers, names and mobile numbers of the test cards and the
    /// simulator's customers, nor the numbers, answers and codes typed in
    /// the tests, is in its log or its audit trail.
    pub(crate) fn assert_clean(&self) {
        let secrets = all_secrets();
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        self.assert_nothing_personal(&secrets);
    }
}

/// What [`Kiosk::assert_clean`] looks for.
fn all_secrets() -> Vec<String> {
    let mut secrets: Vec<String> = [
        "13912345678",
        "13912345679",
        "13700001111",
        "13912340000",
        "13987654321",
        "13911112222",
        "13655556666",
        "王芳",
        "错的",
        "还是错的",
        "又错了",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cards = Fixtures::special_cards().into_iter().chain(
        ["resident", "resident-expired", "resident-longterm"]
            .iter()
            .map(|n| CardProfile::builtin(n).expect("profile")),
    );
    for c in cards {
        secrets.push(c.identity.number.clone());
        secrets.push(c.identity.name.clone());
    }
    for c in Fixtures::builtin().customers {
        secrets.push(c.id_number);
        secrets.push(c.name);
        secrets.push(c.mobile);
        // Answers as short as `0101` also match the branch id: only the
        // longer ones are searched for.
        if let Some(a) = c
            .security_answer
            .filter(|a| a.chars().count() >= 2 && a.len() >= 6)
        {
            secrets.push(a);
        }
    }
    secrets
}

pub(crate) fn card(name: &str) -> CardProfile {
    Fixtures::special_card(name).expect("special card")
}

pub(crate) fn resident() -> CardProfile {
    CardProfile::builtin("resident").expect("profile")
}

fn refusal_code(info: &SessionInfo) -> String {
    info.message.as_ref().expect("a message").code.clone()
}

/// The session's refusal as the local API sends it (JSON).
fn refusal_json(info: &SessionInfo) -> serde_json::Value {
    serde_json::to_value(info.refusal.as_ref().expect("a refusal")).expect("JSON")
}

fn counter_reason(info: &SessionInfo) -> String {
    info.refusal
        .as_ref()
        .map(|r| serde_json::to_value(r).expect("JSON"))
        .as_ref()
        .and_then(|r| r.get("counter_reason"))
        .and_then(|r| r.as_str())
        .unwrap_or_default()
        .to_string()
}

/// A referral ends the session with the reason in both languages.
fn assert_counter(info: &SessionInfo, reason: &str) {
    assert!(!info.active || info.stage == Stage::Finished, "{info:?}");
    assert_eq!(info.stage, Stage::Finished);
    assert_eq!(info.outcome, Some(Outcome::Refused), "{info:?}");
    assert_eq!(counter_reason(info), reason, "{info:?}");
    let m = info.message.as_ref().expect("message");
    assert!(m.zh.contains("柜台"), "{m:?}");
    assert!(m.en.contains("counter"), "{m:?}");
}

// ---- ID validity update ----

/// Rules I7 and I8: C000001's record (2010–2020) is older than the card
/// (2020–2040): the masked confirmation, then "applied" and the record
/// updated at the bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i7_i8_id_update_happy_path_confirm_then_applied() {
    let mut k = kiosk().await;
    let card = resident();
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let screen = serde_json::to_value(info.screen.clone().expect("confirmation screen"))
        .expect("screen json");
    assert_eq!(screen["kind"], "confirm_id");
    let masked = screen["masked_number"].as_str().expect("masked number");
    assert!(masked.contains('*') && !masked.contains(&card.identity.number));
    assert_eq!(screen["masked_name"], "张**");
    assert_eq!(screen["old_valid_until"], "2020-03-07");
    assert!(
        screen["new_valid_until"]
            .as_str()
            .unwrap()
            .starts_with("2040")
    );
    // Rule I8: nothing is recorded before the customer confirms.
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());

    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.stage, Stage::Finished, "{done:?}");
    assert!(!done.active);
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    assert!(done.change_id.is_some());
    let record = k.bank().customer("C000001").expect("C000001").record;
    assert_eq!(record.valid_from, card.identity.valid_from.to_string());
    assert_eq!(
        record.valid_until,
        kiosk::flows::id_rules::validity_text(card.identity.valid_until)
    );
    let actions = k.audit_actions();
    for a in ["card_read", "lookup", "change_recorded"] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
    // The session's data went with it.
    let state = k.c.session_state().await.unwrap();
    assert!(!state.active && state.screen.is_none());
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name, "13800000001"]);
    k.assert_clean();
}

/// Rule I4: an expired card is refused before the bank is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i4_expired_card_is_refused() {
    let mut k = kiosk().await;
    let card = CardProfile::builtin("resident-expired").expect("profile");
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_eq!(info.stage, Stage::Finished);
    assert_eq!(info.outcome, Some(Outcome::Refused));
    assert_eq!(refusal_json(&info)["refusal"], "expired_card", "{info:?}");
    let m = info.message.unwrap();
    assert!(m.zh.contains("过期") && m.en.contains("expired"), "{m:?}");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name]);
    k.assert_clean();
}

/// Rule I5: C000101's record was opened with a temporary card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i5_document_type_mismatch_sends_to_the_counter_with_the_reason() {
    let mut k = kiosk().await;
    let card = card("temporary-on-file");
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_counter(&info, "document_type_mismatch");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    assert!(k.audit_actions().iter().any(|a| a == "sent_to_counter"));
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name]);
    k.assert_clean();
}

/// Rule I6: C000102's record spells the name differently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i6_name_mismatch_sends_to_the_counter_with_the_reason() {
    let mut k = kiosk().await;
    let card = card("name-mismatch");
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_counter(&info, "name_mismatch");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name, "陈明字"]);
    k.assert_clean();
}

// ---- Mobile number change ----

/// C000001 answers the question, types the new number twice, and
/// confirms with the SMS code: the bank applies it and notifies the old
/// and the new number (rules P2–P4, P6, P7).
async fn phone_change_to(k: &mut Kiosk, new: &str) -> SessionInfo {
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let screen = serde_json::to_value(info.screen.expect("question")).expect("screen json");
    assert_eq!(screen["kind"], "question");
    assert_eq!(screen["question"], "我母亲的名字?");
    let info = k
        .input(SessionInput::Answer {
            answer: "王芳".into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingNumber, "{info:?}");
    let info = k
        .input(SessionInput::Numbers {
            first: new.into(),
            second: new.into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    let screen = serde_json::to_value(info.screen.expect("code screen")).expect("screen json");
    assert_eq!(screen["kind"], "code");
    assert!(!screen["masked_mobile"].as_str().unwrap().contains(new));
    let code = k
        .bank()
        .last_sms_code(new)
        .expect("a code sent to the new number");
    let info = k.input(SessionInput::Code { code }).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let screen = serde_json::to_value(info.screen.expect("confirm screen")).expect("screen json");
    assert_eq!(screen["kind"], "confirm_phone");
    assert_eq!(screen["old_masked"], "138****0001");
    assert_eq!(
        screen["new_masked"],
        format!("{}****{}", &new[..3], &new[7..])
    );
    k.input(SessionInput::Confirm).await
}

/// [`phone_change_to`] up to the confirmation screen.
/// Rule S1 (issue "hardening, second round", item 5): the security
/// question goes to the customer UI that runs the session (here the test's
/// own connections, one process) and to no other subscriber: a read-only
/// `kioskctl events` in another process sees the question screen without
/// its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s1_the_security_question_reaches_only_the_session_owner() {
    let mut k = kiosk().await;
    let mut live = k.kioskd.kioskctl_events(&["--json"]);
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let shown = serde_json::to_value(info.screen.expect("question")).expect("screen json");
    assert_eq!(shown["question"], "我母亲的名字?", "the owner sees it");
    let other = live.line_matching(|l| l.contains("\"kind\":\"question\""));
    k.input(SessionInput::Cancel).await;
    let printed = live.stop();
    assert!(!printed.contains("我母亲的名字"), "{other}\n{printed}");
    k.assert_clean();
}

/// Rule S2 (issue "hardening, second round", item 5): a card read is
/// handed out once. `read_card` gets a card lying on the reader once; the
/// next caller waits for the next read. And when a session ends, the card
/// it read is wiped from kioskd's memory: still on the reader, it is not
/// handed to the next customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s2_a_card_left_on_the_reader_is_not_handed_out_again() {
    let mut k = kiosk().await;
    k.sam.place(resident());
    let first = k.c.read_card(Some(30_000)).await.expect("the card placed");
    assert_eq!(first.identity.name, "张**");
    let again = k.c.read_card(Some(300)).await;
    assert!(
        matches!(&again, Err(kiosk_proto::ClientError::Api(e)) if e.code == kiosk_proto::ErrorCode::Timeout),
        "a card already handed out: {again:?}"
    );
    // A session reads the card placed again, then ends: its card is wiped.
    k.sam.remove();
    k.c.wait_event(DEADLINE, |e| {
        matches!(e, Event::CardAbsent { .. }).then_some(())
    })
    .await
    .expect("card absent");
    let info = k.start_with_card("id_update", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let ended = k.input(SessionInput::Cancel).await;
    assert_eq!(ended.outcome, Some(Outcome::Cancelled));
    let left = k.c.read_card(Some(300)).await;
    assert!(
        matches!(&left, Err(kiosk_proto::ClientError::Api(e)) if e.code == kiosk_proto::ErrorCode::Timeout),
        "the last customer's card: {left:?}"
    );
    k.assert_clean();
}

/// Rule C3 without a stale link: kioskd started while the core bank was
/// down (its health check failed: link down), then the bank came back.
/// The session's own lookup answered, so the bank is reachable: the
/// confirmed ID update waits for the bank's answer and is applied, not
/// reported "accepted, will sync" on the start's stale word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_c3_a_session_that_reached_the_bank_does_not_trust_a_stale_link_down() {
    let mut k = kiosk().await;
    k.bank().set_faults(Faults {
        down: true,
        ..Faults::none()
    });
    k.kioskd.restart_hard();
    k.c = k.kioskd.subscriber().await;
    super::harness::wait_state(&mut k.c, READER, DeviceState::Online).await;
    // The start's health check has failed: the link is down.
    loop {
        let status = k.c.sync_status().await.expect("sync status");
        if status.core_reachable == Some(false) {
            break;
        }
        k.c.wait_event(DEADLINE, |e| {
            matches!(
                e,
                Event::CoreBankLink {
                    reachable: false,
                    ..
                }
            )
            .then_some(())
        })
        .await
        .expect("the link reported down");
    }
    k.bank().set_faults(Faults::none());
    let info = k.start_with_card("id_update", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    k.assert_clean();
}

async fn phone_change_until_confirmation(k: &mut Kiosk, new: &str) -> SessionInfo {
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    k.input(SessionInput::Answer {
        answer: "王芳".into(),
    })
    .await;
    let info = k
        .input(SessionInput::Numbers {
            first: new.into(),
            second: new.into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    let code = k.bank().last_sms_code(new).expect("code");
    k.input(SessionInput::Code { code }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p6_p7_phone_change_happy_path_notifies_old_and_new() {
    let mut k = kiosk().await;
    let new = "13912345678";
    let done = phone_change_to(&mut k, new).await;
    assert_eq!(done.stage, Stage::Finished, "{done:?}");
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    let record = k.bank().customer("C000001").expect("C000001").record;
    assert_eq!(record.mobile, new);
    let old_sms = k.bank().sms("13800000001");
    assert!(
        old_sms.iter().any(|m| m.kind == "notice_old"),
        "{old_sms:?}"
    );
    let new_sms = k.bank().sms(new);
    assert!(
        new_sms.iter().any(|m| m.kind == "notice_new"),
        "{new_sms:?}"
    );
    let card = resident();
    k.assert_nothing_personal(&[
        &card.identity.number,
        &card.identity.name,
        "13800000001",
        new,
        "王芳",
    ]);
    k.assert_clean();
}

/// Rule P2: no security question set (C000103): the counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p2_no_security_question_sends_to_the_counter_with_the_reason() {
    let mut k = kiosk().await;
    let card = card("no-question");
    let info = k.start_with_card("phone_change", card.clone()).await;
    assert_counter(&info, "no_security_question");
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name, "13800000103"]);
    k.assert_clean();
}

/// Rule P2: three wrong answers lock self-service changes: the counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p2_three_wrong_answers_lock_and_send_to_the_counter() {
    let mut k = kiosk().await;
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let first = k
        .input(SessionInput::Answer {
            answer: "错的".into(),
        })
        .await;
    assert_eq!(first.stage, Stage::AwaitingAnswer, "{first:?}");
    assert_eq!(refusal_code(&first), "wrong_answer");
    assert_eq!(refusal_json(&first)["attempts_left"], 2);
    let second = k
        .input(SessionInput::Answer {
            answer: "还是错的".into(),
        })
        .await;
    assert_eq!(refusal_json(&second)["attempts_left"], 1);
    let third = k
        .input(SessionInput::Answer {
            answer: "又错了".into(),
        })
        .await;
    assert_counter(&third, "locked");
    assert!(k.audit_actions().iter().any(|a| a == "verification_failed"));
    let card = resident();
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name, "错的", "又错了"]);
    k.assert_clean();
}

/// Rule P5: C000104 may not change the mobile at self-service; the
/// bank's reason is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p5_mobile_change_not_allowed_sends_to_the_counter_with_the_reason() {
    let mut k = kiosk().await;
    let card = card("mobile-restricted");
    let info = k.start_with_card("phone_change", card.clone()).await;
    assert_counter(&info, "not_allowed");
    let reason = refusal_json(&info)["reason"].clone();
    assert!(reason.is_string(), "the bank's reason: {info:?}");
    let m = info.message.as_ref().unwrap();
    assert!(m.en.contains(reason.as_str().unwrap()) || m.zh.contains(reason.as_str().unwrap()));
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name, "13800000104"]);
    k.assert_clean();
}

/// Rule P3: two entries that differ are refused; the customer types again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p3_numbers_that_differ_are_refused_and_can_be_typed_again() {
    let mut k = kiosk().await;
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let info = k
        .input(SessionInput::Answer {
            answer: "王芳".into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingNumber);
    let info = k
        .input(SessionInput::Numbers {
            first: "13912345678".into(),
            second: "13912345679".into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingNumber, "{info:?}");
    assert_eq!(refusal_code(&info), "numbers_differ");
    assert!(k.bank().last_sms_code("13912345678").is_none());
    let info = k
        .input(SessionInput::Numbers {
            first: "13912345678".into(),
            second: "13912345678".into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    let cancelled = k.c.session_cancel().await.unwrap();
    assert_eq!(cancelled.outcome, Some(Outcome::Cancelled));
    k.assert_nothing_personal(&["13912345678", "13912345679", "王芳"]);
    k.assert_clean();
}

/// Rule P4: a wrong code is refused with the attempts left; the right one
/// goes on to the confirmation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p4_wrong_code_then_right_code() {
    let mut k = kiosk().await;
    let new = "13700001111";
    k.start_with_card("phone_change", resident()).await;
    k.input(SessionInput::Answer {
        answer: "王芳".into(),
    })
    .await;
    let info = k
        .input(SessionInput::Numbers {
            first: new.into(),
            second: new.into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    let code = k.bank().last_sms_code(new).expect("code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let info = k.input(SessionInput::Code { code: wrong.into() }).await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    assert_eq!(refusal_code(&info), "wrong_code");
    let info = k.input(SessionInput::Code { code: code.clone() }).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    k.assert_nothing_personal(&[new, &code, "13800000001"]);
    k.assert_clean();
}

/// Rule I3: C000002's record holds the old 15-digit number; the card's
/// 18-digit number matches it and the update applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i3_old_15_digit_number_on_file_matches_and_the_update_applies() {
    let mut k = kiosk().await;
    let card = CardProfile::builtin("resident-longterm").expect("profile");
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    let record = k.bank().customer("C000002").expect("C000002").record;
    assert_eq!(record.valid_until, "long_term");
    k.assert_nothing_personal(&[
        &card.identity.number,
        &card.identity.name,
        "110102500512002",
    ]);
    k.assert_clean();
}

/// Rule I7: the bank already holds this card's validity (C000105), or a
/// newer card than this one (C000106): nothing to record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i7_card_not_newer_than_the_record_is_refused_without_recording() {
    let mut k = kiosk().await;
    let info = k.start_with_card("id_update", card("superseded")).await;
    assert_eq!(info.outcome, Some(Outcome::Refused), "{info:?}");
    assert_eq!(refusal_code(&info), "already_up_to_date");
    let info = k.start_with_card("id_update", card("stale-card")).await;
    assert_eq!(info.outcome, Some(Outcome::Refused), "{info:?}");
    assert_eq!(refusal_code(&info), "old_card");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    k.assert_clean();
}

/// Rule I9: with an update window of 30 days before to 90 days after the
/// old card's expiry, C000001 (expired 2020-03-07) is sent to the counter
/// with the window's dates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i9_outside_the_update_window_is_refused_with_its_dates() {
    let mut k = kiosk_with(
        "update_window_days_before = 30\nupdate_window_days_after = 90\n",
        false,
    )
    .await;
    let info = k.start_with_card("id_update", resident()).await;
    assert_eq!(info.outcome, Some(Outcome::Refused), "{info:?}");
    assert_eq!(refusal_code(&info), "outside_update_window");
    let refusal = refusal_json(&info);
    assert_eq!(refusal["opens"], "2020-02-06", "{refusal}");
    assert_eq!(refusal["closes"], "2020-06-05", "{refusal}");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    k.assert_clean();
}

/// Rule P5 for the ID update: C000107's ID updates need the counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p5_id_update_not_allowed_sends_to_the_counter_with_the_reason() {
    let mut k = kiosk().await;
    let card = card("id-update-restricted");
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_counter(&info, "not_allowed");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name]);
    k.assert_clean();
}

/// Rule P1: the phone flow takes nothing before the card is read in the
/// session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p1_phone_change_needs_the_card_read_in_the_session_first() {
    let mut k = kiosk().await;
    let started = k.c.session_start("phone_change").await.unwrap();
    assert_eq!(started.stage, Stage::AwaitingCard);
    let info = k
        .input(SessionInput::Numbers {
            first: "13912345678".into(),
            second: "13912345678".into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCard, "{info:?}");
    assert_eq!(refusal_code(&info), "card_required");
    // One session at a time.
    let err = k.c.session_start("id_update").await.unwrap_err();
    assert!(format!("{err:?}").contains("SessionActive"), "{err:?}");
    let end = k.c.session_cancel().await.unwrap();
    assert_eq!(end.outcome, Some(Outcome::Cancelled));
    let err = k.c.session_cancel().await.unwrap_err();
    assert!(format!("{err:?}").contains("NoSession"), "{err:?}");
    k.assert_clean();
}

/// Rule P4: a new code only after the resend interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p4_resend_too_soon_is_refused_with_the_wait() {
    let mut k = kiosk().await;
    k.start_with_card("phone_change", resident()).await;
    k.input(SessionInput::Answer {
        answer: "王芳".into(),
    })
    .await;
    let info = k
        .input(SessionInput::Numbers {
            first: "13912340000".into(),
            second: "13912340000".into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    let info = k.input(SessionInput::Resend).await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    assert_eq!(refusal_code(&info), "resend_too_soon");
    assert!(refusal_json(&info)["retry_after_s"].as_u64().unwrap() > 0);
    assert_eq!(
        k.bank()
            .sms("13912340000")
            .iter()
            .filter(|m| m.kind == "otp")
            .count(),
        1
    );
    k.assert_clean();
}

/// Rule P6: the slip of a mobile change shows both numbers masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p6_slip_shows_both_numbers_masked() {
    let mut k = kiosk_with(DEFAULT_SESSION, true).await;
    let new = "13987654321";
    let done = phone_change_to(&mut k, new).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    let printer = k.printer.as_ref().expect("printer");
    let slip = &printer.wait_for_tickets(1, DEADLINE).expect("a slip")[0];
    let text = slip.texts().join("\n");
    assert!(text.contains("138****0001"), "{text}");
    assert!(text.contains("139****4321"), "{text}");
    assert!(
        !text.contains(new) && !text.contains("13800000001"),
        "{text}"
    );
    assert!(!text.contains("张测试"), "{text}");
    k.assert_clean();
}

/// Idle time: the warning event, then the session ends as timed out and
/// its data is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s2_idle_session_warns_then_times_out() {
    let mut k = kiosk_with("idle_timeout_s = 2\nidle_warning_s = 1\n", false).await;
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let id = info.session_id.clone().unwrap();
    let warning =
        k.c.wait_event(DEADLINE, |e| match e {
            Event::Session(i) if i.session_id.as_deref() == Some(id.as_str()) => i
                .message
                .as_ref()
                .filter(|m| m.code == "idle_warning")
                .cloned(),
            _ => None,
        })
        .await
        .expect("idle warning");
    assert!(!warning.zh.is_empty() && !warning.en.is_empty());
    let end =
        k.c.wait_event(DEADLINE, |e| match e {
            Event::Session(i) if i.session_id.as_deref() == Some(id.as_str()) && !i.active => {
                Some(i.clone())
            }
            _ => None,
        })
        .await
        .expect("timed out");
    assert_eq!(end.outcome, Some(Outcome::TimedOut), "{end:?}");
    assert!(end.screen.is_none());
    let err = k.c.session_cancel().await.unwrap_err();
    assert!(format!("{err:?}").contains("NoSession"), "{err:?}");
    k.assert_clean();
}

/// Rule A4: "more time" after the idle warning restarts kioskd's idle
/// clock: the answer says so (`more_time`), the customer stays on the
/// same step, and the session's next news is a second warning, not its
/// end (without the input, the end follows the first warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_a4_more_time_after_the_idle_warning_keeps_the_session_alive() {
    // The warning comes 3 s after the last input and the session would end
    // 30 s later: a window no busy machine closes before the test answers.
    let mut k = kiosk_with("idle_timeout_s = 33\nidle_warning_s = 30\n", false).await;
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let id = info.session_id.clone().unwrap();
    // The session's next event that warns or ends.
    async fn warned_or_ended(k: &mut Kiosk, id: &str) -> SessionInfo {
        k.c.wait_event(DEADLINE, |e| match e {
            Event::Session(i)
                if i.session_id.as_deref() == Some(id)
                    && (!i.active
                        || i.message.as_ref().is_some_and(|m| m.code == "idle_warning")) =>
            {
                Some(i.clone())
            }
            _ => None,
        })
        .await
        .expect("a warning or the end")
    }
    let first = warned_or_ended(&mut k, &id).await;
    assert!(first.active, "{first:?}");
    let answer = k.input(SessionInput::MoreTime).await;
    assert!(answer.active, "{answer:?}");
    assert_eq!(answer.stage, Stage::AwaitingAnswer);
    let message = answer.message.expect("the clock's news");
    assert_eq!(message.code, "more_time");
    assert!(!message.zh.is_empty() && !message.en.is_empty());
    let next = warned_or_ended(&mut k, &id).await;
    assert!(next.active, "a second warning, not the end: {next:?}");
    assert_eq!(next.stage, Stage::AwaitingAnswer);
    let end = k.c.session_cancel().await.expect("cancel");
    assert_eq!(end.outcome, Some(Outcome::Cancelled), "{end:?}");
    k.assert_clean();
}

/// With `end_on_card_removal`, taking the card away ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s2_card_removed_ends_the_session_where_configured() {
    let mut k = kiosk_with("end_on_card_removal = true\n", false).await;
    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let id = info.session_id.clone().unwrap();
    k.sam.remove();
    let end =
        k.c.wait_event(DEADLINE, |e| match e {
            Event::Session(i) if i.session_id.as_deref() == Some(id.as_str()) && !i.active => {
                Some(i.clone())
            }
            _ => None,
        })
        .await
        .expect("session ended");
    assert_eq!(end.outcome, Some(Outcome::Cancelled), "{end:?}");
    k.assert_clean();
}

/// Rule P4: ten wrong codes in a day lock the mobile change until
/// tomorrow: the session ends with that message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_p4_ten_wrong_codes_a_day_lock_the_change() {
    let mut k = kiosk().await;
    let new = "13911112222";
    k.start_with_card("phone_change", resident()).await;
    k.input(SessionInput::Answer {
        answer: "王芳".into(),
    })
    .await;
    let info = k
        .input(SessionInput::Numbers {
            first: new.into(),
            second: new.into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    let code = k.bank().last_sms_code(new).expect("code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut last = info;
    for _ in 0..10 {
        last = k.input(SessionInput::Code { code: wrong.into() }).await;
        if !last.active {
            break;
        }
        assert_eq!(refusal_code(&last), "wrong_code", "{last:?}");
    }
    assert!(!last.active, "{last:?}");
    assert_eq!(last.outcome, Some(Outcome::Refused), "{last:?}");
    assert_eq!(refusal_code(&last), "too_many_codes_today");
    k.assert_clean();
}

// ---- The bank unreachable (rule C3) ----

/// The bank goes away after the lookup: the confirmed ID update is
/// "accepted, will be synced"; a mobile change is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_c3_bank_down_id_update_is_accepted_to_sync_and_phone_change_is_refused() {
    let mut k = kiosk().await;
    let info = k.start_with_card("id_update", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    k.bank.take().expect("bank").stop();
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.stage, Stage::Finished, "{done:?}");
    assert_eq!(done.outcome, Some(Outcome::AcceptedWillSync), "{done:?}");
    let list = k.c.sync_list(Default::default()).await.unwrap();
    assert_eq!(list.len(), 1);
    // Waiting in the outbox (or being tried again right now).
    assert!(
        matches!(list[0].state.as_str(), "pending" | "in_flight"),
        "{list:?}"
    );

    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::Finished, "{info:?}");
    assert_eq!(info.outcome, Some(Outcome::Refused));
    assert_eq!(refusal_code(&info), "bank_unreachable");
    let m = info.message.unwrap();
    assert!(m.en.contains("cannot be reached"), "{m:?}");
    k.assert_clean();
}

/// Rule C4: the bank rejects the confirmed change for good (a newer card
/// reached the record meanwhile: `stale_card`); the customer hears the
/// rejection with the bank's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_c4_bank_rejection_of_the_confirmed_change_is_reported() {
    let mut k = kiosk_opts(DEFAULT_SESSION, false, true).await;
    let card = resident();
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    // Another channel records a newer card for C000001 meanwhile.
    let mut other = k.kioskd.client().await;
    let newer = other
        .submit_change(kiosk_proto::SubmitChangeParams {
            customer_id: "C000001".into(),
            change: serde_json::json!({
                "kind": "id_validity",
                "id_validity": {
                    "id_type": "resident",
                    "id_number": card.identity.number,
                    "valid_from": "2025-01-01",
                    "valid_until": "2045-01-01",
                    "issuer": "北京市公安局东城分局",
                    "card_evidence": {"sam_id": "0", "card_uid": "5A01000000000001"}
                }
            }),
        })
        .await
        .expect("direct change")
        .change_id;
    k.c.wait_event(DEADLINE, |e| match e {
        Event::ChangeDelivered { change_id, .. } if *change_id == newer => Some(()),
        _ => None,
    })
    .await
    .expect("the newer card applied");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.stage, Stage::Finished, "{done:?}");
    assert_eq!(done.outcome, Some(Outcome::Rejected), "{done:?}");
    let m = done.message.as_ref().expect("message");
    assert!(!m.zh.is_empty() && !m.en.is_empty(), "{m:?}");
    let rejected = k.c.sync_rejected().await.expect("rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].rejection_code.as_deref(), Some("stale_card"));
    assert_eq!(Some(&rejected[0].change_id), done.change_id.as_ref());
    k.assert_clean();
}

/// Rules C3 and P6: the bank goes away after the code was verified: the
/// confirmed mobile change is recorded but reported as pending, not done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_c3_p6_phone_change_confirmed_while_the_bank_is_down_is_pending_not_done() {
    let mut k = kiosk().await;
    let info = phone_change_until_confirmation(&mut k, "13911112222").await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    k.bank.take().expect("bank").stop();
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.stage, Stage::Finished, "{done:?}");
    assert_eq!(done.outcome, Some(Outcome::Pending), "{done:?}");
    assert_eq!(refusal_code(&done), "mobile_pending");
    assert!(done.change_id.is_some());
    k.assert_clean();
}

// ---- Rule S1 across the suite ----

/// Every flow of this file on one kioskd (happy paths, referrals, wrong
/// answers and codes), then every log line and audit record is searched
/// for the full ID numbers, names and mobile numbers of the test cards and
/// customers: none is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s1_no_full_numbers_names_or_phones_in_logs_or_audit_after_the_flows() {
    let mut k = kiosk().await;
    let new = "13655556666";
    let done = phone_change_to(&mut k, new).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    let done = k.start_with_card("id_update", resident()).await;
    assert_eq!(done.stage, Stage::AwaitingConfirmation, "{done:?}");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    let cards = [
        "temporary-on-file",
        "name-mismatch",
        "no-question",
        "mobile-restricted",
        "id-update-restricted",
        "stale-card",
        "superseded",
    ];
    for (i, name) in cards.iter().enumerate() {
        let flow = if i % 2 == 0 {
            "id_update"
        } else {
            "phone_change"
        };
        let info = k.start_with_card(flow, card(name)).await;
        if info.active {
            let end = k.c.session_cancel().await.unwrap();
            assert!(!end.active);
        }
    }
    let expired = CardProfile::builtin("resident-expired").expect("profile");
    k.start_with_card("id_update", expired.clone()).await;

    let fixtures = Fixtures::builtin();
    let mut secrets: Vec<String> = vec![new.to_string(), "王芳".into()];
    for c in cards.iter().map(|n| card(n)).chain([resident(), expired]) {
        secrets.push(c.identity.number.clone());
        secrets.push(c.identity.name.clone());
    }
    for c in fixtures.customers.iter().filter(|c| {
        c.customer_id == "C000001"
            || c.customer_id == "C000003"
            || c.customer_id.starts_with("C0001")
    }) {
        secrets.push(c.id_number.clone());
        secrets.push(c.name.clone());
        secrets.push(c.mobile.clone());
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert!(!k.audit_actions().is_empty());
    k.assert_nothing_personal(&secrets);
    k.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i1_every_card_type_is_told_apart_and_an_unreadable_card_gets_a_clear_message() {
    let mut k = kiosk().await;
    // The foreign permanent resident card (2023) and the Hong Kong/Macao/
    // Taiwan residence permit reach the confirmation with their own type.
    for (profile, card_type) in [
        ("foreign-2023", "foreign_permanent2023"),
        ("hkmotw", "hk_mo_tw_residence"),
    ] {
        let info = k
            .start_with_card("id_update", CardProfile::builtin(profile).expect("profile"))
            .await;
        assert_eq!(
            info.stage,
            Stage::AwaitingConfirmation,
            "{profile}: {info:?}"
        );
        let screen = serde_json::to_value(info.screen.clone().expect("confirmation screen"))
            .expect("screen json");
        assert_eq!(screen["card_type"], card_type, "{profile}: {screen}");
        let cancelled = k.input(SessionInput::Cancel).await;
        assert_eq!(cancelled.stage, Stage::Finished, "{cancelled:?}");
    }
    // A card the SAM cannot read (it answers "not a supported card", SW3 40):
    // a clear message in both languages, nothing recorded, no crash.
    let mut unreadable = resident();
    unreadable.fault = kiosk_sim::Fault::Sw3 {
        command: kiosk_idcard::Command::ReadTextPhoto,
        sw3: 0x40,
    };
    let info = k.start_with_card("id_update", unreadable).await;
    assert_eq!(info.stage, Stage::Finished, "{info:?}");
    assert_eq!(info.outcome, Some(Outcome::Refused), "{info:?}");
    let m = info.message.expect("message");
    assert!(!m.zh.is_empty() && !m.en.is_empty(), "{m:?}");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    k.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_i2_a_card_with_a_wrong_check_digit_is_refused() {
    let mut k = kiosk().await;
    let card = CardProfile::builtin("resident-badcheck").expect("profile");
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_eq!(info.stage, Stage::Finished, "{info:?}");
    assert_eq!(info.outcome, Some(Outcome::Refused), "{info:?}");
    assert_eq!(refusal_json(&info)["refusal"], "bad_card", "{info:?}");
    let m = info.message.expect("message");
    assert!(!m.zh.is_empty() && !m.en.is_empty(), "{m:?}");
    assert!(k.c.sync_list(Default::default()).await.unwrap().is_empty());
    k.assert_nothing_personal(&[&card.identity.number, &card.identity.name]);
    k.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s3_every_customer_affecting_step_is_in_an_intact_audit_trail() {
    let mut k = kiosk().await;
    // A referral to the counter (name mismatch, rule I6) ...
    let info = k.start_with_card("id_update", card("name-mismatch")).await;
    assert_counter(&info, "name_mismatch");
    // ... and an update confirmed and applied.
    let info = k.start_with_card("id_update", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    let actions = k.audit_actions();
    for a in [
        "card_read",
        "lookup",
        "sent_to_counter",
        "change_recorded",
        "change_applied",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from the audit trail: {actions:?}"
        );
    }
    let report = k.c.audit_verify().await.expect("audit_verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records as usize, actions.len());
    k.assert_clean();
}

/// A free loopback port for the metrics endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// GET `path` from the metrics endpoint: (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// Fleet metrics: scraped during a flow (a card read, a synced change, a
/// queue ticket) they show the expected series (OpenMetrics text from
/// prometheus-client: counters, the read-latency histogram, disk, queue
/// waits), and no ID number, name or phone number of any test card or
/// customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_reads_tickets_and_deliveries_and_nothing_personal() {
    let port = free_port();
    let extra = format!(
        "\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[queue]\ntimezone = \"Asia/Shanghai\"\n\n\
         [[queue.services]]\nid = \"personal\"\nletter = \"A\"\nname_zh = \"个人业务\"\nname_en = \"Personal banking\"\n"
    );
    let mut k = kiosk_full(DEFAULT_SESSION, false, false, &extra).await;
    let (status, body) = http_get(port, "/healthz");
    assert!(status.contains(" 200 "), "{status} {body}");
    let (status, body) = http_get(port, "/readyz");
    assert!(status.contains(" 200 "), "{status} {body}");

    let card = resident();
    let info = k.start_with_card("id_update", card.clone()).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let mid = http_get(port, "/metrics").1;
    assert!(
        mid.contains("kiosk_card_reads_total{reader=\"desk\"} 1"),
        "{mid}"
    );
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    k.c.queue_take("personal", false).await.expect("ticket");

    let (status, body) = http_get(port, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    for series in [
        "kiosk_up 1",
        "kiosk_device_state{device=\"desk\",kind=\"id_reader\",state=\"online\"} 1",
        "kiosk_card_reads_total{reader=\"desk\"} 1",
        "kiosk_card_read_duration_seconds_count{reader=\"desk\"} 1",
        "kiosk_card_read_duration_seconds_bucket{le=\"+Inf\",reader=\"desk\"} 1",
        "kiosk_tickets_issued_total{service=\"personal\"} 1",
        "kiosk_sync_deliveries_total{outcome=\"applied\"} 1",
        "kiosk_sync_backlog 0",
        "kiosk_sync_oldest_pending_age_seconds 0",
        "kiosk_store_disk_free_bytes ",
        "kiosk_store_disk_size_bytes ",
        "kiosk_store_commit_duration_seconds_bucket{le=\"+Inf\"} ",
        "kiosk_queue_waiting{service=\"personal\"} 1",
        "kiosk_queue_longest_wait_seconds{service=\"personal\"} ",
        "# EOF",
    ] {
        assert!(body.contains(series), "{series} missing in:\n{body}");
    }
    // The commits were timed: at least the change's, its delivery's, the
    // ticket's.
    let commits: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("kiosk_store_commit_duration_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the store's commit count");
    assert!(commits >= 3, "{commits} commits timed:\n{body}");
    for secret in all_secrets()
        .iter()
        .map(String::as_str)
        .chain([card.identity.number.as_str(), card.identity.name.as_str()])
    {
        assert!(!body.contains(secret), "{secret:?} in the metrics");
        assert!(!mid.contains(secret), "{secret:?} in the metrics");
    }
    k.assert_clean();
}

/// `needle` in `hay` as a token of its own (not inside a longer run of
/// letters or digits, as a 6-digit code could be inside a timestamp or
/// an id).
fn contains_token(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Rule S1 with kioskd logging everything (level `trace`, as the harness
/// configures it): a phone change (with a wrong answer and a wrong code
/// typed first) and an ID update, watched live with `kioskctl events` and
/// looked at with the technician's commands afterwards. None of the test
/// cards' and customers' full ID numbers, names and mobile numbers, nor
/// what the customer typed (answers, new number, codes), is in kioskd's
/// log, in anything kioskctl printed, or in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_s1_at_trace_level_nothing_personal_or_typed_in_log_kioskctl_or_audit() {
    let mut k = kiosk().await;
    let mut live = k.kioskd.kioskctl_events(&["--json"]);
    let new = "13911112222";
    let wrong_answer = "错的";

    let info = k.start_with_card("phone_change", resident()).await;
    assert_eq!(info.stage, Stage::AwaitingAnswer, "{info:?}");
    let info = k
        .input(SessionInput::Answer {
            answer: wrong_answer.into(),
        })
        .await;
    assert_eq!(refusal_code(&info), "wrong_answer", "{info:?}");
    k.input(SessionInput::Answer {
        answer: "王芳".into(),
    })
    .await;
    let info = k
        .input(SessionInput::Numbers {
            first: new.into(),
            second: new.into(),
        })
        .await;
    assert_eq!(info.stage, Stage::AwaitingCode, "{info:?}");
    let code = k.bank().last_sms_code(new).expect("code");
    let wrong_code: String = code
        .chars()
        .map(|c| if c == '9' { '0' } else { '9' })
        .collect();
    let info = k
        .input(SessionInput::Code {
            code: wrong_code.clone(),
        })
        .await;
    assert_eq!(refusal_code(&info), "wrong_code", "{info:?}");
    let info = k.input(SessionInput::Code { code: code.clone() }).await;
    assert_eq!(info.stage, Stage::AwaitingConfirmation, "{info:?}");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");

    let done = k.start_with_card("id_update", resident()).await;
    assert_eq!(done.stage, Stage::AwaitingConfirmation, "{done:?}");
    let done = k.input(SessionInput::Confirm).await;
    assert_eq!(done.outcome, Some(Outcome::Applied), "{done:?}");
    let id = done.session_id.clone().expect("session id");
    // The live view saw the flow to its end.
    live.line_matching(|l| l.contains(&id) && l.contains("\"applied\""));
    let mut printed = live.stop();

    for args in [
        &["status"][..],
        &["--json", "status"],
        &["readers"],
        &["--json", "readers"],
        &["sync", "status"],
        &["--json", "sync", "list"],
        &["sync", "list"],
        &["audit", "verify"],
        &["selftest"],
    ] {
        let out = k.kioskd.kioskctl(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
        printed.push_str(&String::from_utf8_lossy(&out.stderr));
    }

    let log = k.kioskd.log();
    assert!(log.contains(" TRACE "), "kioskd logged at trace level");
    let audit = k.audit_text();
    let mut secrets = all_secrets();
    secrets.extend([new.to_string(), wrong_answer.to_string()]);
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!log.contains(s.as_str()), "{s:?} is in kioskd's log");
        assert!(!printed.contains(s.as_str()), "{s:?} printed by kioskctl");
        assert!(!audit.contains(s.as_str()), "{s:?} is in the audit trail");
    }
    for c in [&code, &wrong_code] {
        assert!(!contains_token(&log, c), "code {c} is in kioskd's log");
        assert!(!contains_token(&printed, c), "code {c} printed by kioskctl");
        assert!(!contains_token(&audit, c), "code {c} is in the audit trail");
    }
}
