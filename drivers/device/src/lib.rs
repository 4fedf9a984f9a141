//! What every kiosk device driver shares, so that an ID reader and a
//! ticket printer look the same to the daemon and to the local API:
//!
//! * [`DeviceState`]: a device's state, after XFS4IoT's
//!   `Common.Status.device`, with one spelling on the wire and in logs
//!   (`online`, `noDevice`, `hardwareError`, ...);
//! * [`EventSink`]: where a device thread's events go (a channel, or any
//!   callback), called on the device's own thread;
//! * [`Backoff`]: the capped exponential wait before a device is tried
//!   again (reopening an unplugged port, asking a faulted printer);
//! * [`Mailbox`]: how a device's handle hands commands to the device's
//!   thread and stops it, and how that thread sleeps between commands
//!   (also inside a blocking call such as PC/SC's, which it interrupts).
//!
//! Each driver keeps its own thread, events and command types; this crate
//! has no I/O.

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod mailbox;
pub mod serial_errors;
pub mod serial_latency;

pub use mailbox::{Mailbox, Reply, Request, Stopped, Take, Wake};

/// A device's state, after XFS4IoT's `Common.Status.device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceState {
    /// Just spawned, not checked yet.
    Starting,
    /// Ready: reads cards, prints (perhaps with a warning such as paper
    /// near end).
    Online,
    /// There but cannot be used: pcscd unreachable, a SAM or printer that
    /// does not answer, paper out, cover open.
    Offline,
    /// Not there: reader not attached, port missing or unplugged.
    NoDevice,
    /// Answers but reports a fault that needs a technician (SAM self-test
    /// failed, cutter jam).
    HardwareError,
    /// Held by another user (not reported yet).
    Busy,
}

impl DeviceState {
    /// The XFS4IoT spelling, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Starting => "starting",
            DeviceState::Online => "online",
            DeviceState::Offline => "offline",
            DeviceState::NoDevice => "noDevice",
            DeviceState::HardwareError => "hardwareError",
            DeviceState::Busy => "busy",
        }
    }

    /// Higher is worse: a device of two parts (a PC/SC reader with a SAM)
    /// reports its worse part.
    pub fn severity(self) -> u8 {
        match self {
            DeviceState::Online => 0,
            DeviceState::Busy => 1,
            DeviceState::Starting => 2,
            DeviceState::Offline => 3,
            DeviceState::NoDevice => 4,
            DeviceState::HardwareError => 5,
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a device's events go: a channel, or any callback (e.g. one that
/// forwards into an async channel). Called on the device's thread.
pub struct EventSink<E>(Arc<dyn Fn(E) + Send + Sync>);

impl<E> EventSink<E> {
    pub fn from_fn(f: impl Fn(E) + Send + Sync + 'static) -> EventSink<E> {
        EventSink(Arc::new(f))
    }

    /// Hand one event over.
    pub fn send(&self, event: E) {
        (self.0)(event)
    }
}

impl<E> Clone for EventSink<E> {
    fn clone(&self) -> Self {
        EventSink(Arc::clone(&self.0))
    }
}

impl<E: Send + 'static> From<Sender<E>> for EventSink<E> {
    fn from(tx: Sender<E>) -> EventSink<E> {
        // A receiver that went away just stops listening; the sender goes
        // with the sink, so the receiver sees the device thread end.
        EventSink::from_fn(move |event| {
            let _ = tx.send(event);
        })
    }
}

impl<E> fmt::Debug for EventSink<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink(..)")
    }
}

/// Capped exponential backoff: `min`, then twice as long each time, up to
/// `max`; back to `min` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// The device worked: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire's spelling is XFS4IoT's, and `Display` says the same.
    #[test]
    fn states_serialise_in_xfs4iot_spelling() {
        for (state, text) in [
            (DeviceState::Starting, "starting"),
            (DeviceState::Online, "online"),
            (DeviceState::Offline, "offline"),
            (DeviceState::NoDevice, "noDevice"),
            (DeviceState::HardwareError, "hardwareError"),
            (DeviceState::Busy, "busy"),
        ] {
            assert_eq!(
                serde_json::to_string(&state).expect("json"),
                format!("\"{text}\"")
            );
            assert_eq!(state.to_string(), text);
            let back: DeviceState = serde_json::from_str(&format!("\"{text}\"")).expect("parse");
            assert_eq!(back, state);
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn a_channel_sink_delivers_and_its_receiver_sees_the_end() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = EventSink::from(tx);
        sink.clone().send(1);
        sink.send(2);
        drop(sink);
        assert_eq!(rx.iter().collect::<Vec<i32>>(), [1, 2]);
    }
}
