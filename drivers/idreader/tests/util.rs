//! Helpers shared by the tests.

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiosk_idreader::{DeviceState, ReaderEvent};

/// Log to the test's output (shown on failure) with `RUST_LOG`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Events received so far, for failure messages.
pub struct Events {
    pub rx: Receiver<ReaderEvent>,
    pub seen: Vec<String>,
}

impl Events {
    pub fn new(rx: Receiver<ReaderEvent>) -> Events {
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next event matching `pred` within `within`; other events are
    /// skipped (and remembered for the failure message).
    pub fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        mut pred: impl FnMut(&ReaderEvent) -> bool,
    ) -> ReaderEvent {
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "no {what} within {within:?}; events seen:\n{}",
                    self.seen.join("\n")
                );
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(event) => {
                    self.seen.push(format!("{event:?}"));
                    if pred(&event) {
                        return event;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => panic!(
                    "event channel closed ({e}) waiting for {what}; events seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    pub fn wait_state(&mut self, within: Duration, want: DeviceState) -> Option<String> {
        match self.wait_for(
            within,
            &format!("state {want:?}"),
            |e| matches!(e, ReaderEvent::State { state, .. } if *state == want),
        ) {
            ReaderEvent::State { detail, .. } => detail,
            _ => unreachable!(),
        }
    }

    /// Events that are already there, without waiting.
    pub fn drain(&mut self) -> Vec<ReaderEvent> {
        let events: Vec<ReaderEvent> = self.rx.try_iter().collect();
        self.seen.extend(events.iter().map(|e| format!("{e:?}")));
        events
    }
}

/// Wait (checking every few ms) until `cond` holds; panic after `within`.
/// For conditions no event announces (e.g. simulator counters).
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A tracing subscriber that records everything (trace level) into a buffer.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let buf = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || buf.clone())
            .finish()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
