//! kioskd's local API: the messages and a client.
//!
//! The daemon listens on a Unix socket. Each message is one JSON object on
//! one line (UTF-8, `\n`-terminated, at most [`MAX_LINE`] bytes). A client
//! sends requests `{"id":1,"method":"status","params":{}}`; the daemon
//! answers each with `{"id":1,"ok":true,"result":{..}}` or
//! `{"id":1,"ok":false,"error":{"code":"..","message":".."}}`. After a
//! `subscribe` request, the daemon also writes events
//! `{"event":"card_read","seq":7,"at_ms":..,"data":{..}}` on that
//! connection, interleaved with answers. `docs/local-api.md` is the full
//! reference.
//!
//! Nothing in this crate carries full personal data: identities cross the
//! socket only as [`MaskedIdentity`] (rule S1).

pub mod branch;
pub mod client;
pub mod messages;
pub mod refusal;

pub use client::{Client, ClientError};
pub use kiosk_idcard::CardType;
pub use messages::*;
pub use refusal::{CounterReason, Refusal};

/// Longest line either side accepts, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// Version of this protocol, reported by `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
