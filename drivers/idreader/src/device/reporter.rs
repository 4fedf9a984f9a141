//! A reader's [`Presence`] wired to where its events go.

use super::messages::EventSink;
use super::presence::{Events, Presence};

/// The presence machine of one reader and its [`EventSink`]: what a
/// transition reports is sent at once, before the loop's next (perhaps
/// long) exchange with the card.
#[derive(Debug)]
pub(crate) struct Reporter {
    presence: Presence,
    sink: EventSink,
}

impl Reporter {
    pub fn new(presence: Presence, sink: EventSink) -> Reporter {
        Reporter { presence, sink }
    }

    /// Run one transition of the presence machine and send what it
    /// reports, in order.
    pub fn apply(&mut self, transition: impl FnOnce(&mut Presence) -> Events) {
        for event in transition(&mut self.presence) {
            self.sink.send(event);
        }
    }

    /// What the reader has reported so far.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }
}
