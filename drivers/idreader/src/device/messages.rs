//! The words a reader and its users exchange: the events it reports, the
//! commands it answers. A leaf module: the loops and the handle use it, it
//! uses none of them.

use std::time::Instant;

use kiosk_device::{DeviceState, Mailbox};

use crate::channel::CardRead;
use crate::error::{ReadFailure, ReaderError};

/// What a reader reports. `reader` is the configured [`ReaderConfig::name`](crate::ReaderConfig::name).
///
/// Every [`ReaderEvent::CardPresent`] is followed by exactly one
/// [`ReaderEvent::CardRead`] or [`ReaderEvent::ReadFailed`], then by one
/// [`ReaderEvent::CardAbsent`] (also when the reader or pcscd goes away
/// while the card lies on it).
#[derive(Debug, Clone)]
pub enum ReaderEvent {
    /// The device's state changed. `detail` says why (no personal data).
    State {
        reader: String,
        state: DeviceState,
        detail: Option<String>,
    },
    /// The PC/SC reader (or, for a SAM-only reader, the serial SAM) appeared.
    Attached { reader: String },
    /// ... and went away.
    Detached { reader: String },
    /// A card was placed (detected at the `started` of the read that follows).
    CardPresent { reader: String },
    /// The card was taken away.
    CardAbsent { reader: String },
    /// The card placed was read. `started` is when its presence was detected.
    CardRead {
        reader: String,
        read: Box<CardRead>,
        started: Instant,
    },
    /// The card placed could not be read.
    ReadFailed { reader: String, reason: ReadFailure },
    /// The SAM's id, when first learnt or changed, and on request.
    SamId { reader: String, sam_id: String },
}

/// Requests to a running reader ([`ReaderHandle::request`](crate::ReaderHandle::request)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderCommand {
    /// The SAM's id (a serial SAM, or a tunnelled SAM when a card lies on
    /// the reader or the tunnel is `control`; otherwise the id learnt at
    /// the last read).
    SamId,
    /// Check the reader: state, PC/SC reader, SAM status.
    Check,
}

/// The answer to a [`ReaderCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandReply {
    SamId(String),
    Check(ReaderCheck),
}

/// What [`ReaderCommand::Check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderCheck {
    pub state: DeviceState,
    pub detail: Option<String>,
    /// The PC/SC reader in use, if attached.
    pub pcsc_reader: Option<String>,
    pub card_present: bool,
    /// The serial SAM's baud rate, if its port is open.
    pub baud: Option<u32>,
    /// A SAM status request (`11 FF`): `None` when the SAM cannot be reached
    /// now (a pseudo-APDU tunnel with no card on the reader).
    pub sam_status: Option<Result<(), ReadFailure>>,
    /// The SAM id, if known.
    pub sam_id: Option<String>,
}

/// Where a reader's events go (a channel, or a callback, e.g. one that
/// forwards into an async channel), called on the reader's thread.
pub type EventSink = kiosk_device::EventSink<ReaderEvent>;

/// The mailbox between a [`crate::ReaderHandle`] and its reader's thread.
pub(crate) type Inbox = Mailbox<ReaderCommand, Result<CommandReply, ReaderError>>;
