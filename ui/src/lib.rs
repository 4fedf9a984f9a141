//! kiosk-ui: the kiosk's touchscreen app.
//!
//! The design keeps everything that decides anything out of the screens:
//!
//! - kioskd runs the customer flows; the UI only shows their state and
//!   passes on what the customer typed ([`bridge`] talks to kioskd through
//!   `kiosk-proto`, on two connections: one for events, one for requests).
//! - [`model::Model`] is a sans-IO state machine: kioskd's answers and
//!   events, touches and the clock in; the screen ([`model::View`]) and
//!   requests for kioskd out. It is tested without Slint or a socket.
//! - [`controller::Controller`] glues the two to the Slint window: it
//!   feeds the model and copies its view into the `Ui` global.
//! - `ui/app.slint` lays the view out; it holds no state of its own but
//!   the security answer's text field (so a platform input method works).

/// The Slint code generated from `ui/app.slint`.
#[allow(missing_debug_implementations)]
mod generated {
    slint::include_modules!();
}
pub use generated::*;

pub mod bridge;
pub mod controller;
pub mod model;
#[cfg(feature = "testing")]
pub mod testing;
pub mod texts;

pub use controller::{Controller, Settings};
