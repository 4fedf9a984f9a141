//! The command mailbox between a device's handle and its thread: see
//! [`Mailbox`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often an interrupt is sent again while the device thread has not
/// left its blocking call.
const INTERRUPT_AGAIN: Duration = Duration::from_millis(20);

/// The commands `C` queued for a device thread, each with the sender of
/// its answer `R`, plus the stop flag. Shared (`Arc`) by the handle and
/// the device thread.
///
/// A driver runs each device on a thread of its own that owns the port;
/// the handle the daemon holds only talks to it through a [`Mailbox`]:
///
/// * the handle [`Mailbox::request`]s a command and gets a [`Receiver`] for
///   the answer, and [`Mailbox::stop`]s the thread;
/// * the device thread [`Mailbox::take`]s commands one at a time and
///   answers each through its [`Reply`]; between commands it sleeps in
///   [`Mailbox::wait_until`], which says why it woke ([`Wake`]);
/// * when it leaves, it [`Mailbox::close`]s the mailbox: what is still
///   queued is answered with the driver's "stopped" error, and later
///   requests are refused.
///
/// # Blocking calls the condition variable cannot wake
///
/// A PC/SC reader thread sleeps in `SCardGetStatusChange`, not on the
/// mailbox's condition variable; only `SCardCancel` from another thread
/// wakes it. [`Mailbox::blocking`] runs such a call with the way to
/// interrupt it: while the call runs, [`Mailbox::request`] and
/// [`Mailbox::stop`] interrupt it from the caller's thread, **again every
/// 20 ms until it has returned** (or the command was taken), because an
/// interrupt sent just before the call really begins is lost. A command
/// or stop already waiting when [`Mailbox::blocking`] is called skips the
/// call altogether, so nothing is missed between the device thread's last
/// look at its mailbox and the call.
///
/// The lock is never held across a command or a blocking call, and
/// [`Mailbox::request`] waits only for the device thread to notice the
/// command, never for its answer.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
///
/// use kiosk_device::{Mailbox, Request, Take, Wake};
///
/// let mailbox: Arc<Mailbox<u32, u32>> = Arc::new(Mailbox::new());
/// let device = {
///     let mailbox = Arc::clone(&mailbox);
///     std::thread::spawn(move || {
///         loop {
///             match mailbox.take() {
///                 Take::Command(Request { command, reply }) => reply.send(command + 1),
///                 Take::Empty if mailbox.wait_until(None) == Wake::Stop => break,
///                 Take::Empty => {}
///                 Take::Stop => break,
///             }
///         }
///         mailbox.close(|| 0);
///     })
/// };
/// assert_eq!(mailbox.request(41).unwrap().recv().unwrap(), 42);
/// mailbox.stop();
/// device.join().unwrap();
/// ```
pub struct Mailbox<C, R> {
    state: Mutex<State<C, R>>,
    /// Signalled on a new command, stop, a command taken, a blocking call
    /// left, and close.
    cond: Condvar,
}

struct State<C, R> {
    stop: bool,
    /// The device thread has left: nothing will be taken any more.
    closed: bool,
    queue: VecDeque<Request<C, R>>,
    /// Requests queued so far, and taken so far: request `n` (1-based) has
    /// been taken once `taken >= n`.
    posted: u64,
    taken: u64,
    /// Set while the device thread is in (or about to enter) a
    /// [`Mailbox::blocking`] call: how to wake it.
    interrupt: Option<Box<dyn Fn() + Send>>,
    /// [`Mailbox::nudge`] was called and no wait has said so yet.
    nudged: bool,
}

/// One queued command and where its answer goes.
#[derive(Debug)]
pub struct Request<C, R> {
    pub command: C,
    pub reply: Reply<R>,
}

/// Where a command's answer goes.
pub struct Reply<R>(Sender<R>);

impl<R> Reply<R> {
    /// Answer. A caller that gave up waiting is no error.
    pub fn send(self, answer: R) {
        let _ = self.0.send(answer);
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply(..)")
    }
}

/// Why [`Mailbox::wait_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A command is queued.
    Command,
    /// The device must stop.
    Stop,
    /// The deadline passed.
    Timeout,
    /// [`Mailbox::nudge`]: something outside changed (a device arrived);
    /// worth looking again now rather than at the deadline.
    Nudged,
}

/// What [`Mailbox::take`] found.
#[derive(Debug)]
pub enum Take<C, R> {
    /// The oldest queued command, now the device thread's to answer.
    Command(Request<C, R>),
    /// Nothing queued.
    Empty,
    /// The device must stop (queued commands stay for [`Mailbox::close`]).
    Stop,
}

/// A request refused: the device stopped, or is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the device has stopped")
    }
}

impl std::error::Error for Stopped {}

impl<C, R> Default for Mailbox<C, R> {
    fn default() -> Self {
        Mailbox::new()
    }
}

impl<C, R> Mailbox<C, R> {
    pub fn new() -> Mailbox<C, R> {
        Mailbox {
            state: Mutex::new(State {
                stop: false,
                closed: false,
                queue: VecDeque::new(),
                posted: 0,
                taken: 0,
                interrupt: None,
                nudged: false,
            }),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C, R>> {
        // A thread that panicked holding the lock left consistent state:
        // every change under the lock is a single assignment or push/pop.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_timeout<'a>(
        &self,
        state: MutexGuard<'a, State<C, R>>,
        timeout: Duration,
    ) -> MutexGuard<'a, State<C, R>> {
        self.cond
            .wait_timeout(state, timeout)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    // ---- the handle's side ----

    /// Queue `command` and wake the device thread; its answer comes on the
    /// returned receiver. Returns once the device thread will look at its
    /// mailbox before sleeping again: at once, unless it sits in a
    /// [`Mailbox::blocking`] call, which is then interrupted until it has
    /// returned or the command has been taken.
    ///
    /// Refused once [`Mailbox::stop`] or [`Mailbox::close`] was called.
    pub fn request(&self, command: C) -> Result<Receiver<R>, Stopped> {
        let (tx, rx) = mpsc::channel();
        let seq = {
            let mut state = self.lock();
            if state.stop || state.closed {
                return Err(Stopped);
            }
            state.queue.push_back(Request {
                command,
                reply: Reply(tx),
            });
            state.posted += 1;
            state.posted
        };
        self.nudge_until(|state| state.taken >= seq);
        Ok(rx)
    }

    /// Tell the device thread to stop, waking it (interrupting a
    /// [`Mailbox::blocking`] call until it has returned). A command being
    /// answered finishes first; then join the thread.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.nudge_until(|_| false);
    }

    /// Wake the device thread, and until `done` (or the thread is out of
    /// any blocking call, or gone) interrupt its blocking call, again and
    /// again: an interrupt sent just before the call begins is lost.
    fn nudge_until(&self, done: impl Fn(&State<C, R>) -> bool) {
        let mut state = self.lock();
        self.cond.notify_all();
        // Out of a blocking call, the thread looks at its mailbox before it
        // sleeps again, under this lock: it cannot miss what was queued.
        while !done(&state) && !state.closed {
            let Some(interrupt) = &state.interrupt else {
                return;
            };
            interrupt();
            state = self.wait_timeout(state, INTERRUPT_AGAIN);
            self.cond.notify_all();
        }
    }

    /// Wake a [`Mailbox::wait_until`] with [`Wake::Nudged`] (or the next
    /// one, if the thread is not waiting now): a hot-plug watcher's way to
    /// say that the device may be back. A blocking call is not interrupted.
    pub fn nudge(&self) {
        self.lock().nudged = true;
        self.cond.notify_all();
    }

    /// Queued commands not yet taken.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    // ---- the device thread's side ----

    /// The next command to answer, unless the device must stop.
    pub fn take(&self) -> Take<C, R> {
        let mut state = self.lock();
        if state.stop {
            return Take::Stop;
        }
        match state.queue.pop_front() {
            Some(request) => {
                state.taken += 1;
                // A request() may be waiting for exactly this.
                self.cond.notify_all();
                Take::Command(request)
            }
            None => Take::Empty,
        }
    }

    /// Answer every queued command with `answer`; `true` when the device
    /// must stop (the loop every device thread runs between its waits).
    pub fn answer_queued(&self, mut answer: impl FnMut(C) -> R) -> bool {
        loop {
            match self.take() {
                Take::Command(Request { command, reply }) => reply.send(answer(command)),
                Take::Empty => return false,
                Take::Stop => return true,
            }
        }
    }

    /// Sleep until `deadline` (for ever with `None`), a command, stop or a
    /// nudge, and say which came. Stop wins over a queued command, a
    /// command over a nudge.
    pub fn wait_until(&self, deadline: Option<Instant>) -> Wake {
        let mut state = self.lock();
        loop {
            if state.stop {
                return Wake::Stop;
            }
            if !state.queue.is_empty() {
                return Wake::Command;
            }
            if state.nudged {
                state.nudged = false;
                return Wake::Nudged;
            }
            state = match deadline {
                None => self.cond.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Wake::Timeout;
                    }
                    self.wait_timeout(state, deadline - now)
                }
            };
        }
    }

    /// [`Mailbox::wait_until`] `timeout` from now (for ever when that is
    /// beyond what an [`Instant`] can hold).
    pub fn wait_for(&self, timeout: Duration) -> Wake {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Run `call`, a blocking call that the condition variable cannot
    /// wake, unless a command or stop is already waiting (`None`, `call`
    /// not run). While it runs, [`Mailbox::request`] and
    /// [`Mailbox::stop`] wake it by calling `interrupt` from their own
    /// thread (under the mailbox's lock: keep it short and non-blocking).
    pub fn blocking<T>(
        &self,
        interrupt: impl Fn() + Send + 'static,
        call: impl FnOnce() -> T,
    ) -> Option<T> {
        {
            let mut state = self.lock();
            if state.stop || !state.queue.is_empty() {
                return None;
            }
            state.interrupt = Some(Box::new(interrupt));
        }
        let result = call();
        self.lock().interrupt = None;
        // A request() or stop() may be waiting for the call to end.
        self.cond.notify_all();
        Some(result)
    }

    /// The device thread is leaving: answer what is still queued with
    /// `answer()` and refuse later requests. Call it also when the thread
    /// panicked (from a drop guard or after `catch_unwind`).
    pub fn close(&self, mut answer: impl FnMut() -> R) {
        let mut state = self.lock();
        state.closed = true;
        state.interrupt = None;
        for request in state.queue.drain(..) {
            request.reply.send(answer());
        }
        self.cond.notify_all();
    }
}

impl<C, R> fmt::Debug for Mailbox<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Mailbox")
            .field("stop", &state.stop)
            .field("closed", &state.closed)
            .field("queued", &state.queue.len())
            .field("blocking", &state.interrupt.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::*;

    type Numbers = Mailbox<u32, Result<u32, &'static str>>;

    /// The device thread's side of a test: answer `n * 10` to each
    /// command until stopped, sleeping in `wait_until` in between.
    fn serve(mailbox: Arc<Numbers>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            loop {
                match mailbox.take() {
                    Take::Command(Request { command, reply }) => reply.send(Ok(command * 10)),
                    Take::Empty => {
                        if mailbox.wait_until(None) == Wake::Stop {
                            break;
                        }
                    }
                    Take::Stop => break,
                }
            }
            mailbox.close(|| Err("stopped"));
        })
    }

    #[test]
    fn commands_are_answered_in_order_by_the_device_thread() {
        let mailbox = Arc::new(Numbers::new());
        let thread = serve(Arc::clone(&mailbox));
        let answers: Vec<Receiver<_>> = (1..=5).map(|n| mailbox.request(n).unwrap()).collect();
        for (n, rx) in (1..=5).zip(answers) {
            assert_eq!(rx.recv().unwrap(), Ok(n * 10));
        }
        mailbox.stop();
        thread.join().unwrap();
        assert_eq!(mailbox.request(6).unwrap_err(), Stopped);
    }

    #[test]
    fn answer_queued_answers_everything_waiting_then_says_stop() {
        let mailbox = Numbers::new();
        let answers: Vec<Receiver<_>> = (1..=3).map(|n| mailbox.request(n).unwrap()).collect();
        assert!(!mailbox.answer_queued(|n| Ok(n + 1)));
        let got: Vec<_> = answers.into_iter().map(|rx| rx.recv().unwrap()).collect();
        assert_eq!(got, [Ok(2), Ok(3), Ok(4)]);
        assert_eq!(mailbox.queued(), 0);
        mailbox.stop();
        assert!(mailbox.answer_queued(Ok));
    }

    #[test]
    fn wait_says_why_it_woke() {
        let mailbox = Numbers::new();
        let started = Instant::now();
        assert_eq!(mailbox.wait_for(Duration::from_millis(30)), Wake::Timeout);
        assert!(started.elapsed() >= Duration::from_millis(30));
        // A deadline in the past does not wait at all.
        assert_eq!(mailbox.wait_until(Some(Instant::now())), Wake::Timeout);

        let _rx = mailbox.request(1).unwrap();
        assert_eq!(mailbox.wait_for(Duration::from_secs(60)), Wake::Command);
        // A timeout too large for an Instant waits for ever, and still wakes.
        assert_eq!(mailbox.wait_for(Duration::MAX), Wake::Command);

        // Stop wins over a queued command, for waits and takes alike.
        mailbox.stop();
        assert_eq!(mailbox.wait_until(None), Wake::Stop);
        assert!(matches!(mailbox.take(), Take::Stop));
    }

    #[test]
    fn a_nudge_wakes_one_wait_and_is_not_lost_before_it() {
        let mailbox = Arc::new(Numbers::new());
        // Before the wait: kept for it.
        mailbox.nudge();
        assert_eq!(mailbox.wait_until(None), Wake::Nudged);
        assert_eq!(mailbox.wait_until(Some(Instant::now())), Wake::Timeout);
        // From another thread, while waiting for ever.
        let nudger = Arc::clone(&mailbox);
        let thread = std::thread::spawn(move || nudger.nudge());
        assert_eq!(mailbox.wait_until(None), Wake::Nudged);
        thread.join().unwrap();
        // A command wins over a nudge.
        mailbox.nudge();
        let _rx = mailbox.request(1).unwrap();
        assert_eq!(mailbox.wait_until(None), Wake::Command);
    }

    #[test]
    fn stop_and_a_request_wake_a_thread_sleeping_for_ever() {
        let mailbox = Arc::new(Numbers::new());
        let sleeper = {
            let mailbox = Arc::clone(&mailbox);
            thread::spawn(move || mailbox.wait_until(None))
        };
        let _rx = mailbox.request(7).unwrap();
        assert_eq!(sleeper.join().unwrap(), Wake::Command);

        assert!(matches!(mailbox.take(), Take::Command(_)));
        let sleeper = {
            let mailbox = Arc::clone(&mailbox);
            thread::spawn(move || mailbox.wait_until(None))
        };
        mailbox.stop();
        assert_eq!(sleeper.join().unwrap(), Wake::Stop);
    }

    #[test]
    fn close_answers_what_is_queued_and_refuses_the_rest() {
        let mailbox = Numbers::new();
        let first = mailbox.request(1).unwrap();
        let second = mailbox.request(2).unwrap();
        assert_eq!(mailbox.queued(), 2);
        mailbox.close(|| Err("stopped"));
        assert_eq!(first.recv().unwrap(), Err("stopped"));
        assert_eq!(second.recv().unwrap(), Err("stopped"));
        assert_eq!(mailbox.request(3).unwrap_err(), Stopped);
        assert_eq!(mailbox.queued(), 0);
    }

    #[test]
    fn requests_after_stop_are_refused() {
        let mailbox = Numbers::new();
        mailbox.stop();
        assert_eq!(mailbox.request(1).unwrap_err(), Stopped);
        assert_eq!(mailbox.queued(), 0);
    }

    #[test]
    fn a_reply_dropped_unanswered_ends_the_callers_wait() {
        let mailbox = Numbers::new();
        let rx = mailbox.request(1).unwrap();
        let Take::Command(request) = mailbox.take() else {
            panic!("no command")
        };
        drop(request);
        assert!(rx.recv().is_err());
    }

    /// A blocking call that returns only when interrupted `needed` times
    /// (the first interrupts "lost", as an `SCardCancel` sent just before
    /// `SCardGetStatusChange` begins), run on its own thread.
    struct Blocked {
        interrupts: Arc<AtomicUsize>,
        entered: Receiver<()>,
        thread: thread::JoinHandle<Option<&'static str>>,
    }

    fn block_in_call(mailbox: &Arc<Numbers>, needed: usize) -> Blocked {
        let interrupts = Arc::new(AtomicUsize::new(0));
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        let (entered_tx, entered) = mpsc::channel();
        let interrupt = {
            let interrupts = Arc::clone(&interrupts);
            move || {
                if interrupts.fetch_add(1, Ordering::SeqCst) + 1 >= needed {
                    let _ = wake_tx.send(());
                }
            }
        };
        let thread = {
            let mailbox = Arc::clone(mailbox);
            thread::spawn(move || {
                mailbox.blocking(interrupt, || {
                    entered_tx.send(()).unwrap();
                    wake_rx.recv().unwrap();
                    "interrupted"
                })
            })
        };
        Blocked {
            interrupts,
            entered,
            thread,
        }
    }

    #[test]
    fn a_request_interrupts_a_blocking_call_until_it_returns() {
        let mailbox = Arc::new(Numbers::new());
        // Two interrupts are lost: request() must send a third.
        let blocked = block_in_call(&mailbox, 3);
        blocked.entered.recv().unwrap();
        let _rx = mailbox.request(1).unwrap();
        // request() returned: the call has ended, so the thread will see
        // the command before it sleeps again.
        assert_eq!(blocked.thread.join().unwrap(), Some("interrupted"));
        // Sent again every 20 ms until the call has returned.
        assert!(blocked.interrupts.load(Ordering::SeqCst) >= 3);
        assert!(matches!(mailbox.take(), Take::Command(_)));
    }

    #[test]
    fn stop_interrupts_a_blocking_call() {
        let mailbox = Arc::new(Numbers::new());
        let blocked = block_in_call(&mailbox, 1);
        blocked.entered.recv().unwrap();
        mailbox.stop();
        assert_eq!(blocked.thread.join().unwrap(), Some("interrupted"));
        assert!(blocked.interrupts.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn a_blocking_call_is_skipped_when_work_is_already_waiting() {
        let mailbox = Numbers::new();
        let _rx = mailbox.request(1).unwrap();
        assert_eq!(mailbox.blocking(|| {}, || unreachable!()), None::<()>);
        assert!(matches!(mailbox.take(), Take::Command(_)));
        assert_eq!(mailbox.blocking(|| {}, || 5), Some(5));
        mailbox.stop();
        assert_eq!(mailbox.blocking(|| {}, || unreachable!()), None::<()>);
    }

    #[test]
    fn a_request_to_a_thread_outside_a_blocking_call_does_not_interrupt() {
        let mailbox = Numbers::new();
        let interrupts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&interrupts);
        assert_eq!(
            mailbox.blocking(
                move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                },
                || 1
            ),
            Some(1)
        );
        let _rx = mailbox.request(1).unwrap();
        mailbox.stop();
        assert_eq!(interrupts.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn is_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Mailbox<String, Result<String, String>>>();
    }
}
