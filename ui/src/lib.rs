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
//! - [`keyboard::Keyboard`] is the on-screen keyboard of text fields
//!   (pinyin, handwriting, Latin letters, digits), sans-IO too: its
//!   engines sit behind two traits; [`rime`] (librime) and [`zinnia`]
//!   (Zinnia) are the real ones, started by [`engines::start`].
//! - [`voice::Voice`] speaks each screen's instruction (rule A3) on its
//!   own thread: the model says which clips ([`model::screen_clips`]),
//!   the voice plays them through ALSA or writes them to a WAV file.
//! - `ui/app.slint` lays the view out; it holds no state of its own.
//!   Spacing, the content's width and the orientation follow the
//!   window's size ([`controller::Controller::resized`]); its pictures
//!   are the project's own SVGs (`ui/images/`).
//! - With the `testing` feature, [`testing`] drives the UI in tests and
//!   [`tour`] walks every screen without a daemon (screenshots, the
//!   layout checks, `kiosk-ui-bench`).

/// The Slint code generated from `ui/app.slint`.
#[allow(missing_debug_implementations)]
mod generated {
    slint::include_modules!();
}
pub use generated::*;

pub mod bridge;
pub mod controller;
pub mod engines;
pub mod keyboard;
pub mod model;
pub mod rime;
#[cfg(feature = "testing")]
pub mod testing;
pub mod texts;
#[cfg(feature = "testing")]
pub mod tour;
pub mod voice;
pub mod zinnia;

pub use controller::{Controller, Settings};
