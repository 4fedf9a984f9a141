//! The I/O shell around the customer flows ([`crate::flows::id_update`],
//! [`crate::flows::phone`]): one customer session at a time.
//!
//! A session is a task that owns the flow. It feeds the flow what happens
//! (the customer's inputs from the local API, a card read on a reader while
//! the flow waits for one, the core bank's answers, the sync worker's news
//! of the recorded change, the idle timer) and carries out the flow's
//! effects: core-bank calls through [`CoreBankClient`], the change recorded
//! with [`crate::changes::Changes::record_change`], the slip printed with
//! [`crate::printer::Printer::print_slip`], audit records appended to the store. Every
//! change of stage or screen is a `session` event. [`Sessions`] owns the
//! one session slot and is handed the services a session uses.
//!
//! Only masked data leaves the session (screens, events, log lines, audit
//! records); the card, the answers, the numbers and the codes stay in the
//! flow, which drops them when it finishes (rule S2). The idle timer is a
//! `sleep_until` on the flow's [`next_wakeup`](IdUpdateFlow::next_wakeup),
//! never a poll.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use kiosk_corebank::{CardEvidence, CoreBankClient};
use kiosk_proto::{
    ApiError, ErrorCode, Event, EventEnvelope, FlowMessage, Outcome as WireOutcome, Screen,
    SessionInfo, SessionInput, Stage,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeroize::Zeroizing;

use crate::clock::SteadyClock;
use crate::deps::Deps;
use crate::flows::flow::{
    AuditNote, BankFailure, ChangeToRecord, Effect, Flow, FlowSettings, Input, Outcome,
    OutcomeKind, Slip, UpdateWindow,
};
use crate::flows::id_update::IdUpdateFlow;
use crate::flows::messages::{CustomerMessage, Explained};
use crate::flows::phone::PhoneFlow;
use crate::store::{Actor, AuditEntry};

/// The sessions service: the running session (if any), what the screen
/// shows, and the services a session uses.
#[derive(Debug)]
pub struct Sessions {
    deps: Deps,
    shutdown: CancellationToken,
    /// Session tasks, joined when the daemon stops.
    tasks: TaskTracker,
    running: Mutex<Option<mpsc::Sender<Command>>>,
    info: Mutex<SessionInfo>,
    /// The process (peer pid) that started the session: the customer UI.
    /// Only its connections see the security question (rule S1).
    owner: Mutex<Option<i32>>,
}

/// What the API asks of the session task.
#[derive(Debug)]
enum Command {
    Input(SessionInput, oneshot::Sender<SessionInfo>),
}

/// The flows' settings from the config; `elderly` (rule A2): the idle
/// times are `[session] elderly_idle_factor` times longer.
pub fn flow_settings(config: &crate::config::Config, elderly: bool) -> FlowSettings {
    let s = &config.session;
    let update_window = match (s.update_window_days_before, s.update_window_days_after) {
        (Some(days_before), Some(days_after)) => Some(UpdateWindow {
            days_before,
            days_after,
        }),
        _ => None,
    };
    let idle_factor = if elderly { s.elderly_idle_factor } else { 1 };
    FlowSettings {
        timezone: config.branch_timezone(),
        idle_timeout: Duration::from_secs(s.idle_timeout_s) * idle_factor,
        idle_warning: Duration::from_secs(s.idle_warning_s) * idle_factor,
        update_window,
        mask: config.masking,
        print_slip: config.printer.is_some(),
        ..FlowSettings::default()
    }
}

impl Sessions {
    pub fn new(deps: Deps, shutdown: CancellationToken, tasks: TaskTracker) -> Sessions {
        Sessions {
            deps,
            shutdown,
            tasks,
            running: Mutex::new(None),
            owner: Mutex::new(None),
            info: Mutex::new(SessionInfo {
                session_id: None,
                active: false,
                flow: None,
                stage: Stage::None,
                screen: None,
                message: None,
                outcome: None,
                refusal: None,
                change_id: None,
            }),
        }
    }

    fn running(&self) -> MutexGuard<'_, Option<mpsc::Sender<Command>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn info(&self) -> MutexGuard<'_, SessionInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owner(&self) -> MutexGuard<'_, Option<i32>> {
        self.owner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `session_start` by the process `owner` (its peer pid); `elderly`:
    /// the elderly-friendly mode's longer idle times (rules A2, A4).
    pub async fn session_start(
        self: &Arc<Self>,
        flow: &str,
        elderly: bool,
        owner: Option<i32>,
    ) -> Result<SessionInfo, ApiError> {
        let settings = flow_settings(&self.deps.config, elderly);
        let mut flow: Box<dyn Flow> = match flow {
            "id_update" => Box::new(IdUpdateFlow::new(settings)),
            "phone_change" => Box::new(PhoneFlow::new(settings)),
            other => {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("unknown flow {other:?}: id_update or phone_change"),
                ));
            }
        };
        if !self.deps.readers.has_readers() {
            return Err(ApiError::new(
                ErrorCode::NoReader,
                "this kiosk has no ID reader configured",
            ));
        }
        let Some(client) = self.deps.changes.bank_client() else {
            return Err(ApiError::new(
                ErrorCode::NotAllowed,
                "this kiosk has no core bank configured",
            ));
        };
        self.deps.changes.require_store()?;
        let mut running = self.running();
        if running.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return Err(ApiError::new(
                ErrorCode::SessionActive,
                "a customer session is already running",
            ));
        }
        let (tx, rx) = mpsc::channel(16);
        // Subscribed before the session is visible: no card read is missed.
        let events = self.deps.bus.subscribe();
        let info = SessionInfo {
            session_id: Some(uuid::Uuid::new_v4().to_string()),
            active: true,
            flow: Some(flow.name().to_string()),
            stage: flow.stage(),
            screen: Some(Screen::PlaceCard),
            message: None,
            outcome: None,
            refusal: None,
            change_id: None,
        };
        *self.info() = info.clone();
        *self.owner() = owner;
        *running = Some(tx);
        drop(running);
        tracing::info!(flow = flow.name(), "session started");
        self.deps.bus.emit(Event::Session(info.clone()));
        let clock = SteadyClock::start();
        flow.start_idle_clock(clock.now());
        let runner = Runner {
            sessions: self.clone(),
            client,
            flow,
            clock,
            events,
            info: info.clone(),
            pending_slip: None,
            released: false,
            emitted: false,
        };
        self.tasks.spawn(runner.run(rx));
        Ok(info)
    }

    /// What subscriber process `pid` may see of `ev`: the security
    /// question only if it started the session (rule S1: the question is
    /// the customer's; a read-only watcher sees the screen without it).
    pub fn event_for(&self, mut ev: EventEnvelope, pid: Option<i32>) -> EventEnvelope {
        if let Event::Session(info) = ev.event {
            ev.event = Event::Session(self.session_for(info, pid));
        }
        ev
    }

    /// A session state as process `pid` may see it (see
    /// [`Sessions::event_for`]).
    pub fn session_for(&self, mut info: SessionInfo, pid: Option<i32>) -> SessionInfo {
        if let Some(Screen::Question { question }) = &mut info.screen
            && (pid.is_none() || pid != *self.owner())
        {
            question.clear();
        }
        info
    }

    /// `session_input`: answers once the session has dealt with it.
    pub async fn session_input(&self, input: SessionInput) -> Result<SessionInfo, ApiError> {
        let tx = self
            .running()
            .clone()
            .filter(|tx| !tx.is_closed())
            .ok_or_else(|| ApiError::new(ErrorCode::NoSession, "no customer session is running"))?;
        let (reply, answer) = oneshot::channel();
        if tx.send(Command::Input(input, reply)).await.is_err() {
            // It ended meanwhile: its end is the answer.
            return Ok(self.session_state());
        }
        Ok(answer.await.unwrap_or_else(|_| self.session_state()))
    }

    /// `session_cancel`.
    pub async fn session_cancel(&self) -> Result<SessionInfo, ApiError> {
        self.session_input(SessionInput::Cancel).await
    }

    /// `session_state`.
    pub fn session_state(&self) -> SessionInfo {
        self.info().clone()
    }
}

fn flow_message(m: &CustomerMessage) -> FlowMessage {
    FlowMessage {
        code: m.code.to_string(),
        zh: m.zh.clone(),
        en: m.en.clone(),
    }
}

fn outcome_name(kind: &OutcomeKind) -> (WireOutcome, Option<String>) {
    match kind {
        OutcomeKind::Applied { change_id, .. } => (WireOutcome::Applied, Some(change_id.clone())),
        OutcomeKind::AcceptedWillSync { change_id } => {
            (WireOutcome::AcceptedWillSync, Some(change_id.clone()))
        }
        OutcomeKind::Pending { change_id } => (WireOutcome::Pending, Some(change_id.clone())),
        OutcomeKind::Rejected { change_id, .. } => (WireOutcome::Rejected, Some(change_id.clone())),
        OutcomeKind::Refused(_) => (WireOutcome::Refused, None),
        OutcomeKind::Cancelled => (WireOutcome::Cancelled, None),
        OutcomeKind::TimedOut => (WireOutcome::TimedOut, None),
    }
}

/// The session task.
struct Runner {
    sessions: Arc<Sessions>,
    client: CoreBankClient,
    flow: Box<dyn Flow>,
    clock: SteadyClock,
    events: broadcast::Receiver<EventEnvelope>,
    /// What the screen shows, as last published.
    info: SessionInfo,
    pending_slip: Option<Slip>,
    /// The slot is free again: this task no longer touches it.
    released: bool,
    /// A `session` event went out since the last customer input.
    emitted: bool,
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let shutdown = self.sessions.shutdown.clone();
        loop {
            if self.flow.is_finished() {
                break;
            }
            let wake = self.flow.next_wakeup();
            let sleep = async move {
                match wake {
                    Some(at) => {
                        let left = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
                        tokio::time::sleep_until(tokio::time::Instant::now() + left).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Input(input, reply)) => {
                        self.emitted = false;
                        self.customer_input(input).await;
                        // Every input is answered on the event stream too,
                        // even when it changed nothing (the same refusal
                        // again): a UI that follows events alone never waits.
                        if !self.emitted && !self.released {
                            self.sessions.deps.bus.emit(Event::Session(self.info.clone()));
                        }
                        let _ = reply.send(self.info.clone());
                    }
                    None => {
                        self.drive(Input::CustomerCancelled).await;
                    }
                },
                ev = self.events.recv() => match ev {
                    Ok(env) => self.on_event(env.event).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.drive(Input::CustomerCancelled).await,
                },
                _ = sleep => self.drive(Input::Tick).await,
                _ = shutdown.cancelled() => {
                    self.drive(Input::CustomerCancelled).await;
                    break;
                }
            }
        }
        // Rule S2: the flow (card, answers, numbers) goes with the session.
        let flow = self.flow.name();
        drop(self.flow);
        if !self.released {
            // Ended without a Finish (cannot happen with the flows as they
            // are; kept so the slot is never left taken).
            self.info.active = false;
            self.info.stage = Stage::Finished;
            *self.sessions.info() = self.info.clone();
            *self.sessions.running() = None;
            self.sessions.deps.readers.wipe_cards();
            self.sessions
                .deps
                .bus
                .emit(Event::Session(self.info.clone()));
        }
        // Answer whoever is still waiting with the end.
        rx.close();
        while let Ok(Command::Input(_, reply)) = rx.try_recv() {
            let _ = reply.send(self.info.clone());
        }
        tracing::info!(
            flow,
            outcome = self.info.outcome.map_or("none", WireOutcome::as_str),
            "session ended"
        );
    }

    async fn customer_input(&mut self, input: SessionInput) {
        self.info.message = None;
        self.info.refusal = None;
        let input = match input {
            SessionInput::Confirm => Input::CustomerConfirmed,
            SessionInput::Cancel => Input::CustomerCancelled,
            SessionInput::Answer { answer } => Input::AnswerGiven(Zeroizing::new(answer)),
            SessionInput::Numbers { first, second } => Input::NumberEntered {
                first: Zeroizing::new(first),
                second: Zeroizing::new(second),
            },
            SessionInput::Code { code } => Input::CodeEntered(Zeroizing::new(code)),
            SessionInput::Resend => Input::ResendCode,
            SessionInput::ChangeNumber => Input::ChangeNumber,
            SessionInput::MoreTime => Input::MoreTime,
            SessionInput::Elderly { on } => {
                // The flow knows its clock, not the config's factor.
                let settings = flow_settings(&self.sessions.deps.config, on);
                self.flow.idle_mut().set_times(&settings);
                Input::MoreTime
            }
        };
        self.drive(input).await;
    }

    async fn on_event(&mut self, event: Event) {
        if !self.flow.awaiting_card() {
            if matches!(event, Event::CardAbsent { .. })
                && self.sessions.deps.config.session.end_on_card_removal
            {
                tracing::info!(flow = self.flow.name(), "card removed: session cancelled");
                self.info.message = None;
                self.info.refusal = None;
                self.drive(Input::CustomerCancelled).await;
            }
            return;
        }
        match event {
            Event::CardRead { reader, .. } => {
                let card = self
                    .sessions
                    .deps
                    .readers
                    .with_card_on(&reader, |read, sam| {
                        (
                            read.identity.clone(),
                            CardEvidence {
                                sam_id: sam.unwrap_or("").to_string(),
                                card_uid: read.card_uid.map(hex::encode_upper).unwrap_or_default(),
                            },
                        )
                    });
                // Taken away before we looked: wait for the next read.
                if let Some((identity, evidence)) = card {
                    self.drive(Input::CardRead { identity, evidence }).await;
                }
            }
            Event::ReadFailed { .. } => self.drive(Input::CardUnreadable).await,
            _ => {}
        }
    }

    /// Hand the flow `first` and everything its effects answer, until it
    /// waits for the customer, a card or the clock.
    async fn drive(&mut self, first: Input) {
        let mut queue = VecDeque::from([first]);
        while let Some(input) = queue.pop_front() {
            let before = self.flow.stage();
            let effects = self.flow.handle(input, self.clock.now());
            if effects.is_empty() && self.flow.stage() == before {
                // An input the flow has no use for now: nothing happened.
                continue;
            }
            self.info.stage = self.flow.stage();
            // What the screen shows first, then the I/O.
            let mut io = Vec::new();
            let mut finished: Option<Outcome> = None;
            for e in effects {
                match e {
                    Effect::Show(s) => self.info.screen = Some(s),
                    Effect::Notice(r) => {
                        self.info.message = Some(flow_message(&r.message()));
                        self.info.refusal = Some(r.clone());
                    }
                    Effect::IdleWarning(m) | Effect::MoreTime(m) => {
                        self.info.message = Some(flow_message(&m))
                    }
                    Effect::Finish(o) => {
                        let (name, change_id) = outcome_name(&o.kind);
                        self.info.outcome = Some(name);
                        if change_id.is_some() {
                            self.info.change_id = change_id;
                        }
                        self.info.message = Some(flow_message(&o.message));
                        self.info.refusal = o.refusal().cloned();
                        self.info.screen = None;
                        self.info.active = false;
                        finished = Some(o);
                    }
                    other => io.push(other),
                }
            }
            // Audit records first (rule S3): once a stage is published,
            // the records of the steps before it are in the store.
            let (audits, io): (Vec<Effect>, Vec<Effect>) =
                io.into_iter().partition(|e| matches!(e, Effect::Audit(_)));
            for e in audits {
                if let Effect::Audit(note) = e {
                    self.audit(note).await;
                }
            }
            self.publish();
            if finished.is_some() {
                self.release();
            }
            for e in io {
                if let Some(next) = self.execute(e).await {
                    queue.push_back(next);
                }
            }
            if let Some(slip) = self.pending_slip.take() {
                self.print(slip, finished.as_ref()).await;
            }
            if queue.is_empty() && self.flow.awaiting_bank() {
                let next = self.wait_for_bank().await;
                queue.push_back(next);
            }
        }
    }

    /// The session is over: free the slot for the next customer. The
    /// shared state keeps this session's end until the next one starts.
    fn release(&mut self) {
        if !self.released {
            *self.sessions.running() = None;
            self.sessions.deps.readers.wipe_cards();
            self.released = true;
        }
    }

    /// Publish the state; a `session` event when it changed.
    fn publish(&mut self) {
        if self.released {
            return;
        }
        let mut shown = self.sessions.info();
        if *shown != self.info {
            *shown = self.info.clone();
            drop(shown);
            tracing::info!(
                flow = self.flow.name(),
                stage = %self.info.stage,
                message = self.info.message.as_ref().map(|m| m.code.as_str()).unwrap_or(""),
                "session"
            );
            self.sessions
                .deps
                .bus
                .emit(Event::Session(self.info.clone()));
            self.emitted = true;
        }
    }

    /// The bank answered this session: it is reachable, whatever an
    /// earlier check said (a health check that failed while kioskd
    /// started must not make every change "will sync" until the sync
    /// worker happens to deliver one).
    fn bank_answered<T>(&self, result: &Result<T, BankFailure>) {
        let reached = match result {
            Ok(_) => true,
            // An answer from the bank (a refusal, a 4xx), not a transport
            // failure.
            Err(e) => !e.is_transient(),
        };
        if reached {
            self.sessions.deps.changes.set_link(true, None);
        }
    }

    async fn execute(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::LookUp(request) => {
                let answer = self.client.lookup(&request).await;
                self.bank_answered(&answer);
                Some(Input::LookupAnswered(answer))
            }
            Effect::CheckAnswer {
                customer_id,
                answer,
            } => {
                let checked = self.client.security_answer(&customer_id, &answer).await;
                self.bank_answered(&checked);
                Some(Input::AnswerChecked(checked))
            }
            Effect::SendCode(request) => {
                let sent = self.client.request_otp(&request).await;
                self.bank_answered(&sent);
                Some(Input::CodeSent(sent))
            }
            Effect::VerifyCode { otp_id, code } => {
                let checked = self.client.verify_otp(&otp_id, &code).await;
                self.bank_answered(&checked);
                Some(Input::CodeChecked(checked))
            }
            Effect::RecordChange(change) => {
                let ChangeToRecord {
                    customer_id,
                    kind,
                    audit_detail,
                } = change;
                match self
                    .sessions
                    .deps
                    .changes
                    .record_change(customer_id, kind, Actor::CustomerSession, audit_detail)
                    .await
                {
                    Ok(stored) => {
                        self.info.change_id = Some(stored.change_id.clone());
                        Some(Input::ChangeRecorded {
                            change_id: stored.change_id,
                        })
                    }
                    Err(e) => {
                        tracing::error!(code = ?e.code, "the session's change was not recorded");
                        Some(Input::ChangeRecordFailed)
                    }
                }
            }
            Effect::PrintSlip(slip) => {
                self.pending_slip = Some(slip);
                None
            }
            Effect::Audit(note) => {
                self.audit(note).await;
                None
            }
            Effect::Show(_)
            | Effect::Notice(_)
            | Effect::IdleWarning(_)
            | Effect::MoreTime(_)
            | Effect::Finish(_) => None,
        }
    }

    async fn audit(&self, note: AuditNote) {
        let entry = AuditEntry {
            at_ms: Utc::now().timestamp_millis(),
            actor: Actor::CustomerSession,
            action: note.action,
            subject: note.subject,
            detail: note.detail,
        };
        if let Err(e) = self.sessions.deps.changes.audit(entry).await {
            tracing::error!(code = ?e.code, "cannot append the session's audit record");
        }
    }

    async fn print(&self, slip: Slip, finished: Option<&Outcome>) {
        if !self.sessions.deps.printer.configured() {
            return;
        }
        let tz = flow_settings(&self.sessions.deps.config, false).timezone;
        let (outcome, reference) = match finished {
            Some(o) => (
                format!("{} {}", o.message.zh, o.message.en),
                outcome_name(&o.kind).1.unwrap_or_default(),
            ),
            None => (
                String::new(),
                self.info.change_id.clone().unwrap_or_default(),
            ),
        };
        let slip = kiosk_escpos::Slip {
            branch: self.sessions.deps.config.kiosk.branch_name.clone(),
            title: slip.title,
            rows: slip.rows.into_iter().map(|r| (r.label, r.value)).collect(),
            outcome,
            reference,
            kiosk_id: self.sessions.deps.config.kiosk.id.clone(),
            at: Utc::now()
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
        };
        let printed = self.sessions.deps.printer.print_slip(&slip).await;
        tracing::info!(printed = ?printed, "session slip");
    }

    /// The recorded change's news from the sync worker, or after a short
    /// bounded wait (or the link reported down) "queued" (rule C3).
    async fn wait_for_bank(&mut self) -> Input {
        let Some(change_id) = self.info.change_id.clone() else {
            return Input::ChangeQueued;
        };
        if self.sessions.deps.changes.link().reachable == Some(false) {
            return Input::ChangeQueued;
        }
        let wait = Duration::from_millis(self.sessions.deps.config.session.bank_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ev = tokio::select! {
                ev = self.events.recv() => ev,
                _ = tokio::time::sleep_until(deadline) => return Input::ChangeQueued,
            };
            match ev {
                Ok(env) => match env.event {
                    Event::ChangeDelivered {
                        change_id: id,
                        outcome,
                        core_ref,
                    } if id == change_id => {
                        return Input::ChangeDelivered {
                            status: outcome,
                            core_ref,
                        };
                    }
                    Event::ChangeRejected {
                        change_id: id,
                        code,
                        message,
                    } if id == change_id => return Input::ChangeRejected { code, message },
                    Event::CoreBankLink {
                        reachable: false, ..
                    } => return Input::ChangeQueued,
                    _ => {}
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Input::ChangeQueued,
            }
        }
    }
}
