//! Sans-IO building blocks for reading Chinese ID cards through a GA 467 SAM.
//!
//! SKELETON: the public API below is fixed (other crates code against it);
//! bodies marked `todo!()` are being implemented.
//!
//! * [`frame`]: the GA 467 frame (`AA AA AA 96 69`, 2-byte big-endian length,
//!   payload, XOR checksum), the commands, and a streaming [`frame::FrameDecoder`].
//! * [`status`]: the SAM's SW3 status byte as a typed result.
//! * [`identity`]: the 256-byte UCS-2 LE text block of each card type.
//! * [`idnumber`]: GB 11643-1999 ID-number rules (rules I2, I3).
//! * [`mask`]: de-identified display forms (rule S1).

pub mod frame;
pub mod identity;
pub mod idnumber;
pub mod mask;
pub mod status;

pub use frame::{Command, FrameDecoder, FrameError, Request, Response};
pub use identity::{CardType, Identity, IdentityError, Sex, Validity};
pub use status::{SamStatus, SamError};
