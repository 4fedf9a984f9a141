//! The sync loop: the I/O around [`decide`](super::decide).

use std::sync::Arc;
use std::time::Duration;

use kiosk_corebank::ChangeStatus;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::machine::{Backoff, Call, Decision, History, IDEMPOTENCY_CONFLICT, decide};
use super::{Clock, CoreBankPort, Outcome};
use crate::Error;
use crate::config::{StoreSection, SyncSection};
use crate::store::Store;

/// How the loop retries and purges.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOptions {
    pub backoff: Backoff,
    /// How long payloads are kept after the bank's final answer (rule S2).
    pub retention: Duration,
    /// Keep the text of the bank's rejections (stored, logged, shown), not
    /// only their code: only where the bank vouches that its messages hold
    /// no personal data (`[sync] keep_bank_messages`).
    pub keep_bank_messages: bool,
}

impl SyncOptions {
    pub fn from_config(sync: &SyncSection, store: &StoreSection) -> SyncOptions {
        SyncOptions {
            backoff: Backoff::from(sync),
            retention: Duration::from_secs(store.retention_hours.saturating_mul(3600)),
            keep_bank_messages: sync.keep_bank_messages,
        }
    }
}

/// What the loop reports as it goes (kioskd turns these into the local
/// API's events). No personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// The bank has the change (recorded and audited before this is sent).
    Delivered {
        change_id: String,
        status: ChangeStatus,
        core_ref: String,
        /// The bank replayed its earlier answer (an earlier send got through).
        replayed: bool,
    },
    /// The bank refused the change for good (rule C4).
    Rejected {
        change_id: String,
        code: String,
        message: String,
    },
    /// The change waits until `at_ms` after a failure.
    Retrying {
        change_id: String,
        at_ms: i64,
        reason: String,
    },
    /// The personal data of `count` settled changes was purged (rule S2).
    Purged { count: usize },
    /// Whether the core bank answered, when that changes.
    CoreBankLink {
        reachable: bool,
        detail: Option<String>,
    },
}

/// Deliver the outbox until `shutdown` is cancelled.
///
/// Call `wake.notify_one()` after every [`Outbox::commit_change`](crate::store::Outbox::commit_change) and
/// [`Outbox::retry`](crate::store::Outbox::retry): the loop then looks at once (a notification while it
/// is busy is kept for its next wait). Otherwise it sleeps until the next
/// retry or purge is due, through `clock`.
///
/// Shutdown drops a request in flight: its in-flight mark stays in the
/// store and the next start reconciles it. Store errors (a full disk) are
/// logged and retried with backoff; they never end the loop.
pub async fn run<P, C, F>(
    store: Arc<Store>,
    bank: P,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    clock: C,
    options: SyncOptions,
    on_event: F,
) where
    P: CoreBankPort,
    C: Clock,
    F: FnMut(SyncEvent) + Send,
{
    let mut worker = Worker {
        store,
        bank,
        clock,
        options,
        on_event,
        shutdown: shutdown.clone(),
        reachable: None,
    };
    let mut store_failures = 0u32;
    tracing::info!("sync worker started");
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let until = match worker.once().await {
            Ok(Progress::Worked) => {
                store_failures = 0;
                continue;
            }
            Ok(Progress::Stopped) => break,
            Ok(Progress::Idle) => match worker.next_wake().await {
                Ok(until) => {
                    store_failures = 0;
                    until
                }
                Err(e) => Some(worker.store_trouble(&e, &mut store_failures)),
            },
            Err(e) => Some(worker.store_trouble(&e, &mut store_failures)),
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = wake.notified() => {}
            () = worker.clock.sleep_until(until) => {}
        }
    }
    tracing::info!("sync worker stopped");
}

enum Progress {
    /// A request was made (or a change settled): look again at once.
    Worked,
    /// Nothing is due.
    Idle,
    /// Shutdown while a request was out.
    Stopped,
}

struct Worker<P, C, F> {
    store: Arc<Store>,
    bank: P,
    clock: C,
    options: SyncOptions,
    on_event: F,
    shutdown: CancellationToken,
    reachable: Option<bool>,
}

impl<P, C, F> Worker<P, C, F>
where
    P: CoreBankPort,
    C: Clock,
    F: FnMut(SyncEvent) + Send,
{
    /// Run a store call on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Io(std::io::Error::other("store task cancelled"))),
        }
    }

    /// Purge what is due, then work on the next due change, if any.
    async fn once(&mut self) -> Result<Progress, Error> {
        let now = self.clock.now_ms();
        let retention = self.options.retention;
        let purged = self
            .blocking(move |s| match s.outbox().next_purge_at(retention)? {
                Some(at) if at <= now => s.outbox().purge(now, retention),
                _ => Ok(0),
            })
            .await?;
        if purged > 0 {
            tracing::info!(
                purged,
                "purged the personal data of settled changes (rule S2)"
            );
            (self.on_event)(SyncEvent::Purged { count: purged });
        }

        let Some(pending) = self
            .blocking(move |s| s.outbox().next_deliverable(now))
            .await?
        else {
            return Ok(Progress::Idle);
        };
        let change_id = pending.change_id().to_string();
        let call = pending.call;
        if pending.interrupted {
            tracing::warn!(
                change_id,
                "a request was in flight when kioskd stopped: asking the core bank what became of it"
            );
        }
        {
            let id = change_id.clone();
            self.blocking(move |s| s.outbox().begin_attempt(&id, call, now))
                .await?;
        }
        tracing::debug!(
            change_id,
            ?call,
            attempt = pending.attempts + 1,
            "core bank request"
        );
        let request = async {
            match call {
                Call::Deliver => self.bank.submit(pending.change.request()).await,
                Call::Reconcile => self.bank.get_change(&change_id).await,
            }
        };
        let outcome = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return Ok(Progress::Stopped),
            outcome = request => outcome,
        };
        // Rule S1: a rejection's free text may quote the customer; unless
        // the bank vouches for it only its code goes further.
        let outcome = if self.options.keep_bank_messages {
            outcome
        } else {
            outcome.without_bank_message()
        };
        let history = History {
            call,
            failures: pending.failures,
            created_at_ms: pending.created_at_ms,
        };
        drop(pending);

        self.link(&outcome);
        let replayed = matches!(outcome, Outcome::Accepted { replayed: true, .. });
        let now = self.clock.now_ms();
        let decision = decide(&self.options.backoff, history, outcome, now, rand::random());
        {
            let id = change_id.clone();
            let d = decision.clone();
            self.blocking(move |s| s.outbox().record_outcome(&id, &d, now))
                .await?;
        }
        self.report(change_id, decision, replayed);
        Ok(Progress::Worked)
    }

    /// When to look again: the next retry or purge; `None` for never.
    async fn next_wake(&self) -> Result<Option<i64>, Error> {
        let retention = self.options.retention;
        let (due, purge) = self
            .blocking(move |s| {
                Ok((
                    s.outbox().next_due_at()?,
                    s.outbox().next_purge_at(retention)?,
                ))
            })
            .await?;
        Ok(match (due, purge) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Log a store failure; when to try again.
    fn store_trouble(&self, e: &Error, failures: &mut u32) -> i64 {
        *failures = failures.saturating_add(1);
        let wait = self.options.backoff.delay(*failures, None, rand::random());
        tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "sync: local database failed");
        self.clock
            .now_ms()
            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
    }

    /// Report reachability changes of the core bank.
    fn link(&mut self, outcome: &Outcome) {
        let (reachable, detail) = match outcome {
            Outcome::Transient { reason, .. } | Outcome::Ambiguous { reason } => {
                (false, Some(reason.clone()))
            }
            Outcome::Fault { .. } => return,
            _ => (true, None),
        };
        if self.reachable != Some(reachable) {
            self.reachable = Some(reachable);
            if reachable {
                tracing::info!("core bank reachable");
            } else {
                tracing::warn!(detail = detail.as_deref(), "core bank unreachable");
            }
            (self.on_event)(SyncEvent::CoreBankLink { reachable, detail });
        }
    }

    fn report(&mut self, change_id: String, decision: Decision, replayed: bool) {
        match decision {
            Decision::Done { status, core_ref } => {
                tracing::info!(change_id, ?status, core_ref, replayed, "change delivered");
                (self.on_event)(SyncEvent::Delivered {
                    change_id,
                    status,
                    core_ref,
                    replayed,
                });
            }
            Decision::Rejected { code, message } => {
                if code == IDEMPOTENCY_CONFLICT {
                    tracing::error!(
                        change_id,
                        code,
                        "the core bank holds this change id with another body: a kiosk bug; change rejected"
                    );
                } else if code == "bad_request" {
                    tracing::error!(
                        change_id,
                        code,
                        "the core bank could not read the change: a kiosk bug; change rejected"
                    );
                } else {
                    tracing::warn!(change_id, code, "change rejected by the core bank (final)");
                }
                (self.on_event)(SyncEvent::Rejected {
                    change_id,
                    code,
                    message,
                });
            }
            Decision::RetryAt {
                at_ms,
                then,
                reason,
            } => {
                tracing::info!(change_id, reason, at_ms, ?then, "change will be retried");
                (self.on_event)(SyncEvent::Retrying {
                    change_id,
                    at_ms,
                    reason,
                });
            }
            Decision::Deliver | Decision::Reconcile => {
                tracing::debug!(change_id, ?decision, "next request at once");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use kiosk_corebank::{ChangeRequest, ChangeResult, StoredChange};
    use tokio::sync::{mpsc, oneshot, watch};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::store::testutil::{TestDir, id_change, mobile_change, note};
    use crate::store::{ChangeState, ListFilter};

    const T0: i64 = 1_763_880_000_000;
    /// Guards against a hung test; never used to wait for something.
    const GUARD: Duration = Duration::from_secs(20);

    /// A clock the test moves by hand; it reports every wait of the loop.
    #[derive(Clone)]
    struct TestClock {
        now: Arc<watch::Sender<i64>>,
        parks: mpsc::UnboundedSender<Option<i64>>,
    }

    impl Clock for TestClock {
        fn now_ms(&self) -> i64 {
            *self.now.borrow()
        }

        fn sleep_until(&self, at_ms: Option<i64>) -> impl Future<Output = ()> + Send {
            let _ = self.parks.send(at_ms);
            let mut rx = self.now.subscribe();
            async move {
                let Some(at) = at_ms else {
                    return std::future::pending().await;
                };
                while *rx.borrow_and_update() < at {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Req {
        Submit(String),
        Get(String),
    }

    /// The bank: each request goes to the test, which answers it.
    struct FakeBank {
        calls: mpsc::UnboundedSender<(Req, oneshot::Sender<Outcome>)>,
    }

    impl FakeBank {
        async fn ask(&self, req: Req) -> Outcome {
            let (tx, rx) = oneshot::channel();
            if self.calls.send((req, tx)).is_err() {
                return std::future::pending().await;
            }
            match rx.await {
                Ok(outcome) => outcome,
                Err(_) => std::future::pending().await,
            }
        }
    }

    impl CoreBankPort for FakeBank {
        async fn submit(&self, change: &ChangeRequest) -> Outcome {
            self.ask(Req::Submit(change.change_id.clone())).await
        }

        async fn get_change(&self, change_id: &str) -> Outcome {
            self.ask(Req::Get(change_id.to_string())).await
        }
    }

    struct Harness {
        t: TestDir,
        store: Arc<Store>,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
        now: Arc<watch::Sender<i64>>,
        parks: mpsc::UnboundedReceiver<Option<i64>>,
        calls: mpsc::UnboundedReceiver<(Req, oneshot::Sender<Outcome>)>,
        events: mpsc::UnboundedReceiver<SyncEvent>,
        task: Option<JoinHandle<()>>,
        options: SyncOptions,
    }

    fn options() -> SyncOptions {
        SyncOptions {
            backoff: Backoff {
                min: Duration::from_millis(500),
                max: Duration::from_millis(60_000),
                jitter: 0.0,
            },
            retention: Duration::from_secs(3600),
            keep_bank_messages: true,
        }
    }

    impl Harness {
        /// A loop on an empty store, waited for until it is idle.
        async fn new() -> Harness {
            Harness::new_with(options()).await
        }

        /// [`Harness::new`] with these options.
        async fn new_with(options: SyncOptions) -> Harness {
            let t = TestDir::new();
            let store = Arc::new(t.open());
            let (parks_tx, parks) = mpsc::unbounded_channel();
            let (calls_tx, calls) = mpsc::unbounded_channel();
            let (events_tx, events) = mpsc::unbounded_channel();
            let mut h = Harness {
                t,
                store,
                wake: Arc::new(Notify::new()),
                shutdown: CancellationToken::new(),
                now: Arc::new(watch::Sender::new(T0)),
                parks,
                calls,
                events,
                task: None,
                options,
            };
            h.start(parks_tx, calls_tx, events_tx);
            assert_eq!(h.park().await, None, "idle with nothing to do: no timer");
            h
        }

        fn start(
            &mut self,
            parks: mpsc::UnboundedSender<Option<i64>>,
            calls: mpsc::UnboundedSender<(Req, oneshot::Sender<Outcome>)>,
            events: mpsc::UnboundedSender<SyncEvent>,
        ) {
            let clock = TestClock {
                now: self.now.clone(),
                parks,
            };
            self.task = Some(tokio::spawn(run(
                self.store.clone(),
                FakeBank { calls },
                self.wake.clone(),
                self.shutdown.clone(),
                clock,
                self.options.clone(),
                move |e| {
                    let _ = events.send(e);
                },
            )));
        }

        /// Stop the loop (dropping a request in flight, as a crash would),
        /// reopen the store from its file, start again.
        async fn restart(&mut self) {
            self.shutdown.cancel();
            let task = self.task.take().expect("running");
            tokio::time::timeout(GUARD, task)
                .await
                .expect("stops")
                .expect("no panic");
            let (parks_tx, parks) = mpsc::unbounded_channel();
            let (calls_tx, calls) = mpsc::unbounded_channel();
            let (events_tx, events) = mpsc::unbounded_channel();
            self.parks = parks;
            self.calls = calls;
            self.events = events;
            self.shutdown = CancellationToken::new();
            // The only other holder was the stopped loop.
            assert_eq!(Arc::strong_count(&self.store), 1);
            self.store = Arc::new(self.t.open());
            self.start(parks_tx, calls_tx, events_tx);
        }

        /// Commit changes, then wake the loop once (as kioskd does after
        /// each commit; one wake-up here keeps the loop's waits countable:
        /// a second one would be kept as a permit and end its next wait).
        fn commit(&self, changes: &[&ChangeRequest]) {
            for change in changes {
                self.store
                    .outbox()
                    .commit_change(change, note(self.now()))
                    .expect("commit");
            }
            self.wake.notify_one();
        }

        fn now(&self) -> i64 {
            *self.now.borrow()
        }

        fn set_now(&self, at: i64) {
            self.now.send_replace(at);
        }

        /// The next request the loop makes; the test answers through the
        /// returned sender.
        async fn call(&mut self) -> (Req, oneshot::Sender<Outcome>) {
            tokio::time::timeout(GUARD, self.calls.recv())
                .await
                .expect("a request")
                .expect("loop alive")
        }

        /// Expect a request and answer it.
        async fn answer(&mut self, expected: Req, outcome: Outcome) {
            let (req, reply) = self.call().await;
            assert_eq!(req, expected);
            reply.send(outcome).expect("loop waiting");
        }

        /// The loop's next wait: `None` = idle until woken.
        async fn park(&mut self) -> Option<i64> {
            tokio::time::timeout(GUARD, self.parks.recv())
                .await
                .expect("the loop waits")
                .expect("loop alive")
        }

        /// Every event so far (the loop is parked, so there are no more).
        fn events(&mut self) -> VecDeque<SyncEvent> {
            let mut out = VecDeque::new();
            while let Ok(e) = self.events.try_recv() {
                out.push_back(e);
            }
            out
        }

        fn no_request_pending(&mut self) {
            assert!(self.calls.try_recv().is_err(), "unexpected request");
        }

        fn state(&self, change_id: &str) -> ChangeState {
            self.store.outbox().get(change_id).expect("get").state
        }
    }

    fn accepted(core_ref: &str) -> Outcome {
        Outcome::Accepted {
            result: ChangeResult {
                status: ChangeStatus::Applied,
                core_ref: core_ref.into(),
            },
            replayed: false,
        }
    }

    #[tokio::test]
    async fn a_commit_wakes_the_idle_loop_and_the_change_is_delivered() {
        let mut h = Harness::new().await;
        let c = id_change("C1");
        h.commit(&[&c]);
        h.answer(Req::Submit(c.change_id.clone()), accepted("CR-1"))
            .await;
        assert_eq!(h.park().await, Some(T0 + 3_600_000), "next: the purge");
        h.no_request_pending();

        let s = h.store.outbox().get(&c.change_id).expect("get");
        assert_eq!(s.state, ChangeState::Delivered);
        assert_eq!(s.core_ref.as_deref(), Some("CR-1"));
        assert_eq!(s.attempts, 1);
        let events = h.events();
        assert_eq!(
            events,
            [
                SyncEvent::CoreBankLink {
                    reachable: true,
                    detail: None
                },
                SyncEvent::Delivered {
                    change_id: c.change_id.clone(),
                    status: ChangeStatus::Applied,
                    core_ref: "CR-1".into(),
                    replayed: false,
                }
            ]
        );
        let actions: Vec<_> = h
            .store
            .audit()
            .audit_records(0, 10)
            .expect("audit")
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(actions, ["change_recorded", "change_applied"]);

        // The retention passes: the payload is purged, then nothing is left
        // to wait for.
        h.set_now(T0 + 3_600_000);
        assert_eq!(h.park().await, None);
        assert!(h.store.outbox().get(&c.change_id).expect("get").purged);
    }

    #[tokio::test]
    async fn an_ambiguous_failure_is_reconciled_before_any_resend() {
        let mut h = Harness::new().await;
        let a = id_change("A");
        let b = id_change("B");
        h.commit(&[&a, &b]);
        h.answer(
            Req::Submit(a.change_id.clone()),
            Outcome::Ambiguous {
                reason: "timeout after the request was sent".into(),
            },
        )
        .await;
        // B's request went out meanwhile; the bank lost it too.
        h.answer(
            Req::Submit(b.change_id.clone()),
            Outcome::Ambiguous {
                reason: "connection lost".into(),
            },
        )
        .await;
        assert_eq!(h.park().await, Some(T0 + 500), "exactly the backoff");
        h.no_request_pending();
        assert_eq!(h.state(&a.change_id), ChangeState::InFlight);

        h.set_now(T0 + 500);
        // A: the bank never saw it → sent again at once, same key.
        h.answer(Req::Get(a.change_id.clone()), Outcome::NotFound)
            .await;
        h.answer(Req::Submit(a.change_id.clone()), accepted("CR-A"))
            .await;
        // B: the bank had applied it → done without a resend.
        h.answer(
            Req::Get(b.change_id.clone()),
            Outcome::Found(StoredChange::Accepted(ChangeResult {
                status: ChangeStatus::Superseded,
                core_ref: "CR-B".into(),
            })),
        )
        .await;
        assert_eq!(h.park().await, Some(T0 + 500 + 3_600_000));
        h.no_request_pending();

        let sa = h.store.outbox().get(&a.change_id).expect("a");
        assert_eq!((sa.state, sa.attempts), (ChangeState::Delivered, 3));
        let sb = h.store.outbox().get(&b.change_id).expect("b");
        assert_eq!(
            (sb.state, sb.attempts, sb.outcome),
            (ChangeState::Delivered, 2, Some(ChangeStatus::Superseded))
        );
        let events = h.events();
        assert_eq!(
            events[0],
            SyncEvent::CoreBankLink {
                reachable: false,
                detail: Some("timeout after the request was sent".into())
            }
        );
        assert!(matches!(events[1], SyncEvent::Retrying { at_ms, .. } if at_ms == T0 + 500));
        assert!(events.contains(&SyncEvent::CoreBankLink {
            reachable: true,
            detail: None
        }));
    }

    #[tokio::test]
    async fn a_rejection_is_final_audited_and_reported() {
        let mut h = Harness::new().await;
        let c = mobile_change("C1");
        h.commit(&[&c]);
        h.answer(
            Req::Submit(c.change_id.clone()),
            Outcome::Rejected {
                status: 422,
                code: "otp_proof_invalid".into(),
                message: "the proof has expired".into(),
            },
        )
        .await;
        assert_eq!(
            h.park().await,
            Some(T0 + 3_600_000),
            "only the purge is left"
        );
        h.no_request_pending();
        let rejected = h.store.outbox().rejected().expect("rejected");
        assert_eq!(rejected.len(), 1);
        assert_eq!(
            rejected[0].rejection_code.as_deref(),
            Some("otp_proof_invalid")
        );
        assert_eq!(
            rejected[0].rejection_message.as_deref(),
            Some("the proof has expired")
        );
        assert!(h.events().contains(&SyncEvent::Rejected {
            change_id: c.change_id.clone(),
            code: "otp_proof_invalid".into(),
            message: "the proof has expired".into(),
        }));
        let last = h.store.audit().audit_records(1, 10).expect("audit");
        assert_eq!(last[0].action, "change_rejected");
        assert!(last[0].detail.contains("otp_proof_invalid"));
    }

    /// Rule S1 (issue "hardening, second round", item 7): by default the
    /// bank's rejection text is neither stored, nor logged, nor sent on:
    /// only its code (the text may quote the customer).
    #[tokio::test]
    async fn the_banks_rejection_text_is_kept_only_when_configured() {
        let mut h = Harness::new_with(SyncOptions {
            keep_bank_messages: false,
            ..options()
        })
        .await;
        let c = mobile_change("C1");
        h.commit(&[&c]);
        h.answer(
            Req::Submit(c.change_id.clone()),
            Outcome::Rejected {
                status: 422,
                code: "otp_proof_invalid".into(),
                message: "张三's proof for 13912345678 has expired".into(),
            },
        )
        .await;
        h.park().await;
        let rejected = h.store.outbox().rejected().expect("rejected");
        assert_eq!(
            rejected[0].rejection_code.as_deref(),
            Some("otp_proof_invalid")
        );
        assert!(
            rejected[0]
                .rejection_message
                .as_deref()
                .is_none_or(|m| !m.contains("13912345678")),
            "{:?}",
            rejected[0].rejection_message
        );
        assert!(
            h.events()
                .iter()
                .all(|e| !format!("{e:?}").contains("张三"))
        );
    }

    #[tokio::test]
    async fn an_idempotency_conflict_is_rejected_with_its_code() {
        let mut h = Harness::new().await;
        let c = id_change("C1");
        h.commit(&[&c]);
        h.answer(
            Req::Submit(c.change_id.clone()),
            Outcome::Conflict {
                message: "different body".into(),
            },
        )
        .await;
        h.park().await;
        let s = h.store.outbox().get(&c.change_id).expect("get");
        assert_eq!(s.state, ChangeState::Rejected);
        assert_eq!(s.rejection_code.as_deref(), Some(IDEMPOTENCY_CONFLICT));
    }

    #[tokio::test]
    async fn a_request_in_flight_at_a_crash_is_reconciled_after_restart() {
        let mut h = Harness::new().await;
        let c = id_change("C1");
        h.commit(&[&c]);
        let (req, reply) = h.call().await;
        assert_eq!(req, Req::Submit(c.change_id.clone()));
        // kioskd dies with the POST out (the answer never arrives).
        h.restart().await;
        drop(reply);

        // First thing after the restart: ask, do not resend.
        h.answer(
            Req::Get(c.change_id.clone()),
            Outcome::Found(StoredChange::Accepted(ChangeResult {
                status: ChangeStatus::Applied,
                core_ref: "CR-1".into(),
            })),
        )
        .await;
        h.park().await;
        h.no_request_pending();
        let s = h.store.outbox().get(&c.change_id).expect("get");
        assert_eq!((s.state, s.attempts), (ChangeState::Delivered, 2));
    }

    #[tokio::test]
    async fn a_customers_changes_go_in_order_and_retry_after_is_honoured() {
        let mut h = Harness::new().await;
        let a1 = id_change("A");
        let a2 = mobile_change("A");
        let b1 = id_change("B");
        h.commit(&[&a1, &a2, &b1]);
        h.answer(
            Req::Submit(a1.change_id.clone()),
            Outcome::Transient {
                retry_after: Some(Duration::from_secs(2)),
                reason: "429 rate_limited".into(),
            },
        )
        .await;
        // a2 waits behind a1; b1 does not.
        h.answer(Req::Submit(b1.change_id.clone()), accepted("R-B1"))
            .await;
        assert_eq!(h.park().await, Some(T0 + 2_000), "Retry-After, not 500 ms");
        h.no_request_pending();
        assert_eq!(h.state(&a2.change_id), ChangeState::Pending);

        // Woken early (another commit elsewhere): still nothing due.
        h.wake.notify_one();
        assert_eq!(h.park().await, Some(T0 + 2_000));
        h.no_request_pending();

        h.set_now(T0 + 2_000);
        h.answer(Req::Submit(a1.change_id.clone()), accepted("R-A1"))
            .await;
        h.answer(Req::Submit(a2.change_id.clone()), accepted("R-A2"))
            .await;
        h.park().await;
        let delivered = h
            .store
            .outbox()
            .list(&ListFilter {
                state: Some(ChangeState::Delivered),
                ..ListFilter::default()
            })
            .expect("list");
        assert_eq!(delivered.len(), 3);
    }

    #[tokio::test]
    async fn the_backoff_grows_while_the_bank_is_down() {
        let mut h = Harness::new().await;
        let c = id_change("C1");
        h.commit(&[&c]);
        let down = || Outcome::Transient {
            retry_after: None,
            reason: "connection refused".into(),
        };
        let mut at = T0;
        for delay in [500, 1_000, 2_000, 4_000] {
            h.answer(Req::Submit(c.change_id.clone()), down()).await;
            assert_eq!(h.park().await, Some(at + delay));
            at += delay;
            h.set_now(at);
        }
        h.answer(Req::Submit(c.change_id.clone()), accepted("R"))
            .await;
        h.park().await;
        assert_eq!(h.state(&c.change_id), ChangeState::Delivered);
        let status = h.store.outbox().sync_status(at).expect("status");
        assert_eq!((status.pending, status.delivered), (0, 1));
        // One "unreachable" and one "reachable" report, not one per failure.
        let links = h
            .events()
            .into_iter()
            .filter(|e| matches!(e, SyncEvent::CoreBankLink { .. }))
            .count();
        assert_eq!(links, 2);
    }

    #[tokio::test]
    async fn shutdown_stops_an_idle_loop() {
        let mut h = Harness::new().await;
        h.shutdown.cancel();
        let task = h.task.take().expect("task");
        tokio::time::timeout(GUARD, task)
            .await
            .expect("stops")
            .expect("no panic");
    }
}
