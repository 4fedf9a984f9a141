//! The event bus: every event the local API's subscribers see goes through
//! [`Bus::emit`], which numbers it, counts it in the fleet metrics and
//! broadcasts it. Services hold the bus by handle; nothing is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kiosk_proto::{Event, EventEnvelope};
use tokio::sync::broadcast;

use crate::metrics::Metrics;

/// Events buffered per subscriber before it is considered lagging.
const EVENT_BUFFER: usize = 1024;

/// The daemon's one event bus.
#[derive(Debug)]
pub struct Bus {
    seq: AtomicU64,
    events: broadcast::Sender<EventEnvelope>,
    metrics: Arc<Metrics>,
}

impl Bus {
    pub fn new(metrics: Arc<Metrics>) -> Bus {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Bus {
            seq: AtomicU64::new(0),
            events,
            metrics,
        }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventEnvelope> {
        self.events.subscribe()
    }

    /// Publish an event to every subscriber.
    pub fn emit(&self, event: Event) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let at_ms = chrono::Utc::now().timestamp_millis();
        self.metrics.observe(&event);
        // No subscriber is fine: events are not stored.
        let _ = self.events.send(EventEnvelope { seq, at_ms, event });
    }

    /// The number of the last event emitted.
    pub fn last_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// The fleet metrics the bus counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}
