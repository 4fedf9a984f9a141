//! Sans-IO building blocks for reading Chinese ID cards through a GA 467 SAM.
//!
//! A second-generation ID card is read by a SAM (security access module, per
//! GA 467), over a serial line or tunnelled through a PC/SC reader. This crate
//! holds everything about that exchange that does not need a device: the
//! frames, what the SAM answers, what the card's text block says, and the
//! rules that apply to ID numbers. It does no I/O and reads no clock, so all
//! of it is tested with byte vectors and property tests, and the same code
//! serves the kiosk's transports (`kiosk-idreader`) and its simulators
//! (`kiosk-sim`).
//!
//! * [`frame`]: the GA 467 frame (`AA AA AA 96 69`, 2-byte big-endian length,
//!   payload, XOR checksum), the commands, and a streaming [`frame::FrameDecoder`]
//!   that takes bytes in any chunking and resynchronises on the preamble after
//!   garbage.
//! * [`status`]: the SAM's SW3 status byte as a typed result.
//! * [`identity`]: the 256-byte UCS-2 LE text block of each card type
//!   (rule I1), decoded into an [`Identity`] and encoded back for simulators.
//! * [`idnumber`]: GB 11643-1999 ID-number rules (rules I2, I3).
//! * [`mask`]: de-identified display forms (rule S1).
//! * [`usb`]: GA 467 frames in 64-byte USB bulk packets.
//!
//! A typical read: the transport writes [`Command::request_frame`] for
//! find card, select card and read text+photo in turn, pushes what the SAM
//! sends into a [`FrameDecoder`], turns each payload into a [`Response`],
//! checks [`Response::status`], and hands the data to [`frame::CardData::parse`]
//! and [`Identity::decode`]. The decoder never panics and never waits forever
//! on a corrupted length: a bad frame is one error, and decoding goes on.
//!
//! Personal data is kept small in time and in print (rule S1, S2): an
//! [`Identity`] is zeroized on drop, and the `Debug` output of every type
//! that can hold card data ([`Identity`], [`Response`], [`frame::CardData`])
//! shows masked values or sizes only, so logging one by accident leaks
//! nothing.

pub mod frame;
pub mod identity;
pub mod idnumber;
pub mod mask;
pub mod status;
pub mod usb;

pub use frame::{Command, FrameDecoder, FrameError, Request, Response};
pub use identity::{CardType, Identity, IdentityError, Sex, Validity};
pub use status::{SamError, SamStatus};
