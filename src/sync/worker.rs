//! The sync loop: the I/O around [`decide`](super::decide).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kiosk_corebank::ChangeStatus;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::machine::{Backoff, Call, Decision, History, IDEMPOTENCY_CONFLICT, decide};
use super::{Clock, CoreBankPort, Outcome};
use crate::Error;
use crate::config::{StoreSection, SyncSection};
use crate::store::{PendingChange, Store};

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
    /// Requests out at once, each for a different customer
    /// (`[sync] concurrency`).
    pub concurrency: usize,
}

impl SyncOptions {
    pub fn from_config(sync: &SyncSection, store: &StoreSection) -> SyncOptions {
        SyncOptions {
            backoff: Backoff::from(sync),
            retention: Duration::from_secs(store.retention_hours.saturating_mul(3600)),
            keep_bank_messages: sync.keep_bank_messages,
            concurrency: sync.concurrency,
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
/// retry or purge is due, through `clock`; while requests are out it also
/// wakes when a retry comes due and there is room for its request.
///
/// Up to [`SyncOptions::concurrency`] requests are out at once, each for a
/// different customer (a customer's later change waits until the earlier
/// one is settled). Each step of the loop is one transaction
/// ([`Outbox::advance`](crate::store::Outbox::advance)): the outcomes that
/// came back are recorded and the next changes marked in flight, committed
/// before their requests leave.
///
/// Shutdown drops the requests in flight: their in-flight marks stay in
/// the store and the next start reconciles them. Store errors (a full
/// disk) are logged and retried with backoff; they never end the loop.
pub async fn run<P, C, F>(
    store: Arc<Store>,
    bank: P,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    clock: C,
    options: SyncOptions,
    on_event: F,
) where
    P: CoreBankPort + 'static,
    C: Clock,
    F: FnMut(SyncEvent) + Send,
{
    let mut worker = Worker {
        store,
        bank: Arc::new(bank),
        clock,
        options,
        on_event,
        reachable: None,
        requests: JoinSet::new(),
        busy: HashSet::new(),
        finished: Vec::new(),
        next_purge: None,
        retries: BTreeSet::new(),
    };
    let mut store_failures = 0u32;
    tracing::info!("sync worker started");
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let until = match worker.step().await {
            Ok(true) => {
                store_failures = 0;
                if worker.requests.is_empty() {
                    // Look again at once (more may be due).
                    continue;
                }
                None
            }
            Ok(false) => match worker.next_wake().await {
                Ok(until) => {
                    store_failures = 0;
                    until
                }
                Err(e) => Some(worker.store_trouble(&e, &mut store_failures)),
            },
            Err(e) => Some(worker.store_trouble(&e, &mut store_failures)),
        };
        if worker.requests.is_empty() {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = worker.clock.sleep_until(until) => {}
            }
        } else if until.is_some() {
            // A store failure with requests out: their outcomes stay in
            // `finished` until the store works again.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = worker.clock.sleep_until(until) => {}
            }
        } else {
            // Requests are out: wait for one to come back (then take every
            // other that is back too), or for new work if there is room.
            let room = worker.busy.len() < worker.options.concurrency;
            let retry = worker.next_retry();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                // A retry that comes due meanwhile goes out then, not after
                // the slowest request out has come back.
                () = sleep_for_retry(&worker.clock, retry), if room => {}
                done = worker.requests.join_next() => {
                    if let Some(done) = done {
                        worker.came_back(done);
                    }
                    while let Some(done) = worker.requests.try_join_next() {
                        worker.came_back(done);
                    }
                }
                () = wake.notified(), if room => {}
            }
        }
    }
    // Dropping the requests in flight, as a crash would.
    worker.requests.abort_all();
    tracing::info!("sync worker stopped");
}

/// Until `at`, through `clock`; never for `None`. Only called when polled,
/// so a disabled `select!` branch reports no wait.
async fn sleep_for_retry<C: Clock>(clock: &C, at: Option<i64>) {
    match at {
        Some(_) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A request that came back: its change, what was asked, and the answer.
struct Returned {
    change_id: String,
    history: History,
    outcome: Outcome,
}

struct Worker<P, C, F> {
    store: Arc<Store>,
    bank: Arc<P>,
    clock: C,
    options: SyncOptions,
    on_event: F,
    reachable: Option<bool>,
    /// The requests out now, one per change (and customer).
    requests: JoinSet<Returned>,
    /// Their change ids.
    busy: HashSet<String>,
    /// Decisions on requests that came back, not yet recorded.
    finished: Vec<(String, Decision, bool)>,
    /// When the next purge is due, as last computed (`None`: unknown).
    next_purge: Option<Option<i64>>,
    /// When retries recorded or found since are due (the loop wakes for
    /// them while requests are out, when the store is not asked).
    retries: BTreeSet<i64>,
}

impl<P, C, F> Worker<P, C, F>
where
    P: CoreBankPort + 'static,
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

    /// A request came back: decide what follows (recorded by the next
    /// step).
    fn came_back(&mut self, done: Result<Returned, tokio::task::JoinError>) {
        let r = match done {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Aborted: only at shutdown, and the loop is gone by then.
            Err(_) => return,
        };
        // Rule S1: a rejection's free text may quote the customer; unless
        // the bank vouches for it only its code goes further.
        let outcome = if self.options.keep_bank_messages {
            r.outcome
        } else {
            r.outcome.without_bank_message()
        };
        self.link(&outcome);
        let replayed = matches!(outcome, Outcome::Accepted { replayed: true, .. });
        let now = self.clock.now_ms();
        let decision = decide(
            &self.options.backoff,
            r.history,
            outcome,
            now,
            rand::random(),
        );
        self.finished.push((r.change_id, decision, replayed));
    }

    /// Purge what is due; then, in one transaction, record the outcomes
    /// that came back and mark the next due changes in flight; then send
    /// their requests. `true` if anything was done.
    async fn step(&mut self) -> Result<bool, Error> {
        let now = self.clock.now_ms();
        let retention = self.options.retention;
        let next_purge = match self.next_purge {
            Some(at) => at,
            None => {
                let at = self
                    .blocking(move |s| s.outbox().next_purge_at(retention))
                    .await?;
                self.next_purge = Some(at);
                at
            }
        };
        if next_purge.is_some_and(|at| at <= now) {
            self.next_purge = None;
            let purged = self
                .blocking(move |s| s.outbox().purge(now, retention))
                .await?;
            if purged > 0 {
                tracing::info!(
                    purged,
                    "purged the personal data of settled changes (rule S2)"
                );
                (self.on_event)(SyncEvent::Purged { count: purged });
            }
        }

        let room = self
            .options
            .concurrency
            .max(1)
            .saturating_sub(self.busy.len());
        if self.finished.is_empty() && room == 0 {
            return Ok(false);
        }
        let outcomes: Vec<(String, Decision)> = self
            .finished
            .iter()
            .map(|(id, d, _)| (id.clone(), d.clone()))
            .collect();
        let recorded = !outcomes.is_empty();
        let busy = self.busy.clone();
        // The decisions are still in `finished` if this fails: recorded on
        // the next try.
        let advance = self
            .blocking(move |s| s.outbox().advance(outcomes, busy, room, now))
            .await?;
        for (change_id, reason) in &advance.refused {
            tracing::warn!(change_id, reason, "outcome not recorded");
        }
        let any_final = self.finished.iter().any(|(_, d, _)| d.is_final());
        for (change_id, decision, replayed) in std::mem::take(&mut self.finished) {
            self.busy.remove(&change_id);
            if !advance.refused.iter().any(|(id, _)| *id == change_id) {
                self.report(change_id, decision, replayed);
            }
        }
        if any_final || !advance.unreadable.is_empty() {
            // A new settled payload: its purge may be the next one. When
            // the next is not known (a purge just ran), the store is asked
            // at the next step: the payloads it left may be due sooner.
            if let Some(known) = self.next_purge {
                let at = crate::store::purge_due_at(now, retention);
                self.next_purge = Some(Some(known.map_or(at, |earlier| earlier.min(at))));
            }
        }
        let sent = !advance.taken.is_empty();
        for pending in advance.taken {
            self.send(pending);
        }
        Ok(recorded || sent)
    }

    /// Send the request for a change already marked in flight.
    fn send(&mut self, pending: PendingChange) {
        let change_id = pending.change_id().to_string();
        let call = pending.call;
        if pending.interrupted {
            tracing::warn!(
                change_id,
                "a request was in flight when kioskd stopped: asking the core bank what became of it"
            );
        }
        tracing::debug!(
            change_id,
            ?call,
            attempt = pending.attempts + 1,
            "core bank request"
        );
        self.busy.insert(change_id.clone());
        let bank = Arc::clone(&self.bank);
        self.requests.spawn(async move {
            let outcome = match call {
                Call::Deliver => bank.submit(pending.change.request()).await,
                Call::Reconcile => bank.get_change(&change_id).await,
            };
            let history = History {
                call,
                failures: pending.failures,
                created_at_ms: pending.created_at_ms,
            };
            drop(pending);
            Returned {
                change_id,
                history,
                outcome,
            }
        });
    }

    /// The next retry still to come; those already due were looked at by
    /// the last step (sent, or waiting for room).
    fn next_retry(&mut self) -> Option<i64> {
        let now = self.clock.now_ms();
        self.retries = self.retries.split_off(&now.saturating_add(1));
        self.retries.first().copied()
    }

    /// When to look again: the next retry or purge; `None` for never.
    async fn next_wake(&mut self) -> Result<Option<i64>, Error> {
        if !self.requests.is_empty() {
            // A request coming back wakes the loop.
            return Ok(None);
        }
        let retention = self.options.retention;
        let (due, purge) = self
            .blocking(move |s| {
                Ok((
                    s.outbox().next_due_at()?,
                    s.outbox().next_purge_at(retention)?,
                ))
            })
            .await?;
        self.next_purge = Some(purge);
        self.retries.extend(due);
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
                self.retries.insert(at_ms);
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
            // One at a time: the requests come in a fixed order.
            concurrency: 1,
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

    /// The purge's slack with [`options`]' retention of an hour (1%).
    const PURGE_SLACK: i64 = 36_000;

    /// Rule S2, in batches: payloads settled one after another are purged
    /// together, each at most the slack (1% of the retention, at most 10
    /// minutes) after its retention ends, not each on its own: every purge
    /// empties the WAL, and the commits after it are slower until it has
    /// grown back.
    #[tokio::test]
    async fn rule_s2_payloads_settled_one_after_another_are_purged_in_batches() {
        let mut h = Harness::new().await;
        let mut settled = Vec::new();
        for k in 0..10 {
            h.set_now(T0 + k * 10_000);
            let c = id_change(&format!("C{k}"));
            h.commit(&[&c]);
            h.answer(Req::Submit(c.change_id.clone()), accepted("CR"))
                .await;
            assert_eq!(
                h.park().await,
                Some(T0 + 3_600_000 + PURGE_SLACK),
                "the first payload's purge"
            );
            settled.push((c.change_id, T0 + k * 10_000));
        }
        h.events();
        let mut purges = Vec::new();
        let mut due = Some(T0 + 3_600_000 + PURGE_SLACK);
        while let Some(at) = due {
            h.set_now(at);
            due = h.park_or_purge(&mut purges).await;
            for (change_id, acked_at) in &settled {
                let purged = h.store.outbox().get(change_id).expect("get").purged;
                let retention_ends = acked_at + 3_600_000;
                assert!(!purged || at >= retention_ends, "purged early: {change_id}");
                assert!(
                    purged || at < retention_ends + PURGE_SLACK,
                    "late: {change_id}"
                );
            }
        }
        assert_eq!(purges, [4, 4, 2], "three purges for ten payloads");
    }

    /// Rule S2 under steady traffic: when a purge and a new final answer
    /// come in the same step, the payloads the purge left are still purged
    /// when they come due, while other requests are out (the next purge was
    /// once taken from the new answer alone: a whole retention late).
    #[tokio::test]
    async fn rule_s2_a_purge_and_a_final_answer_in_one_step_leave_no_payload_late() {
        let mut h = Harness::new_with(SyncOptions {
            concurrency: 2,
            ..options()
        })
        .await;
        let (a, b) = (id_change("A"), id_change("B"));
        h.commit(&[&a]);
        h.answer(Req::Submit(a.change_id.clone()), accepted("CR-A"))
            .await;
        assert_eq!(h.park().await, Some(T0 + 3_600_000 + PURGE_SLACK));
        h.set_now(T0 + 100_000);
        h.commit(&[&b]);
        h.answer(Req::Submit(b.change_id.clone()), accepted("CR-B"))
            .await;
        assert_eq!(h.park().await, Some(T0 + 3_600_000 + PURGE_SLACK));
        let b_due = T0 + 100_000 + 3_600_000 + PURGE_SLACK;

        // Two requests out, and they stay out in turn.
        h.set_now(T0 + 3_600_000);
        let (c, d) = (id_change("C"), id_change("D"));
        h.commit(&[&c, &d]);
        let (_, reply_c) = h.call().await;
        let (_, reply_d) = h.call().await;
        // A's purge comes due; C's answer comes back: one step purges A,
        // records C and sends E.
        h.set_now(T0 + 3_600_000 + PURGE_SLACK);
        let e = id_change("E");
        h.commit(&[&e]);
        reply_c.send(accepted("CR-C")).expect("loop waiting");
        let (_, reply_e) = h.call().await;
        let purged = |h: &Harness, c: &ChangeRequest| {
            h.store.outbox().get(&c.change_id).expect("get").purged
        };
        assert!(purged(&h, &a));
        assert!(!purged(&h, &b), "B's retention has not ended");
        // B comes due while D and E are out; D's answer brings the next step.
        h.set_now(b_due);
        let f = id_change("F");
        h.commit(&[&f]);
        reply_d.send(accepted("CR-D")).expect("loop waiting");
        let (_, reply_f) = h.call().await;
        assert!(purged(&h, &b), "B purged when due, not a retention later");

        reply_e.send(accepted("CR-E")).expect("loop waiting");
        reply_f.send(accepted("CR-F")).expect("loop waiting");
        assert_eq!(
            h.park().await,
            Some(T0 + 2 * (3_600_000 + PURGE_SLACK)),
            "next: C's purge"
        );
    }

    impl Harness {
        /// After the clock moved to a purge's time: the purge's count, if
        /// one ran, into `purges`; the loop's next wait.
        async fn park_or_purge(&mut self, purges: &mut Vec<usize>) -> Option<i64> {
            let next = self.park().await;
            purges.extend(self.events().into_iter().filter_map(|e| match e {
                SyncEvent::Purged { count } => Some(count),
                _ => None,
            }));
            next
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
        assert_eq!(
            h.park().await,
            Some(T0 + 3_600_000 + PURGE_SLACK),
            "next: the purge"
        );
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

        // The retention passes, then the batch's slack: the payload is
        // purged, then nothing is left to wait for.
        h.set_now(T0 + 3_600_000 + PURGE_SLACK);
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
        assert_eq!(h.park().await, Some(T0 + 500 + 3_600_000 + PURGE_SLACK));
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
            Some(T0 + 3_600_000 + PURGE_SLACK),
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

    /// Issue 16: with room for several requests, the changes of different
    /// customers go out together (a customer's later change still waits
    /// for the earlier one); a crash with them all out costs a reconcile
    /// of each, never a blind resend, and the later change follows.
    #[tokio::test]
    async fn requests_for_different_customers_go_out_together_and_a_crash_reconciles_each() {
        let mut h = Harness::new_with(SyncOptions {
            concurrency: 4,
            ..options()
        })
        .await;
        let a1 = id_change("A");
        let a2 = mobile_change("A");
        let b1 = id_change("B");
        let c1 = id_change("C");
        h.commit(&[&a1, &a2, &b1, &c1]);
        let mut out = Vec::new();
        for _ in 0..3 {
            let (req, reply) = h.call().await;
            out.push(req);
            drop(reply);
        }
        assert_eq!(
            out,
            [
                Req::Submit(a1.change_id.clone()),
                Req::Submit(b1.change_id.clone()),
                Req::Submit(c1.change_id.clone())
            ]
        );
        h.no_request_pending();
        assert_eq!(h.state(&a2.change_id), ChangeState::Pending);

        // kioskd dies with the three POSTs out.
        h.restart().await;
        let found = |core_ref: &str| {
            Outcome::Found(StoredChange::Accepted(ChangeResult {
                status: ChangeStatus::Applied,
                core_ref: core_ref.into(),
            }))
        };
        let mut asked = Vec::new();
        for _ in 0..3 {
            let (req, reply) = h.call().await;
            let Req::Get(id) = &req else {
                panic!("a resend before reconciling: {req:?}");
            };
            reply.send(found(&format!("R-{id}"))).expect("loop waiting");
            asked.push(req);
        }
        asked.sort_by_key(|r| format!("{r:?}"));
        let mut expected = vec![
            Req::Get(a1.change_id.clone()),
            Req::Get(b1.change_id.clone()),
            Req::Get(c1.change_id.clone()),
        ];
        expected.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(asked, expected);
        // Only now a2, a1 being settled.
        h.answer(Req::Submit(a2.change_id.clone()), accepted("R-A2"))
            .await;
        h.park().await;
        h.no_request_pending();
        for c in [&a1, &a2, &b1, &c1] {
            assert_eq!(h.state(&c.change_id), ChangeState::Delivered);
        }
        let a1s = h.store.outbox().get(&a1.change_id).expect("a1");
        assert_eq!(a1s.attempts, 2, "one POST, one GET");
        assert!(h.store.audit().audit_verify().expect("verify").ok());
    }

    #[tokio::test]
    async fn a_retry_that_comes_due_while_another_request_is_out_is_sent_on_time() {
        let mut h = Harness::new_with(SyncOptions {
            concurrency: 2,
            ..options()
        })
        .await;
        let a1 = id_change("A");
        let b1 = id_change("B");
        h.commit(&[&a1]);
        h.answer(
            Req::Submit(a1.change_id.clone()),
            Outcome::Transient {
                retry_after: None,
                reason: "connection refused".into(),
            },
        )
        .await;
        assert_eq!(h.park().await, Some(T0 + 500), "a1 waits for its retry");

        // b1's request goes out and the bank keeps it waiting.
        h.commit(&[&b1]);
        let (req, slow_reply) = h.call().await;
        assert_eq!(req, Req::Submit(b1.change_id.clone()));
        // a1's retry comes due meanwhile: it is sent then, not after b1's
        // answer.
        h.set_now(T0 + 500);
        h.answer(Req::Submit(a1.change_id.clone()), accepted("CR-A1"))
            .await;
        slow_reply.send(accepted("CR-B1")).expect("loop waiting");
        while h.state(&b1.change_id) != ChangeState::Delivered
            || h.state(&a1.change_id) != ChangeState::Delivered
        {
            h.park().await;
        }
        h.no_request_pending();
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
