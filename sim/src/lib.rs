//! Simulators of what surrounds the kiosk, driven through the same
//! interfaces as the real things: a GA 467 SAM module on a pseudo-terminal,
//! a virtual ID card in pcscd's vpcd virtual reader, and the core bank's
//! HTTP interface ([`corebank`]).
//!
//! # Design
//!
//! * **Profiles** ([`profile`]): a [`CardProfile`] is one card (the
//!   `kiosk_idcard::Identity` on it, a photo and optional fingerprint data
//!   generated from seeds, an optional appended address, its UID) plus an
//!   optional [`Fault`]. Thirteen profiles ship in `sim/profiles/*.toml` and
//!   are built in ([`CardProfile::builtin`]); other files load with
//!   [`CardProfile::load`]. All people and numbers are fictional and
//!   distinct, so tests can search logs for them.
//! * **One SAM state machine** ([`SamCore`]): requests in, [`sam::SamReply`]s
//!   out, no I/O. It keeps the placed card, the selection state, the fault
//!   and the counters, and uses `kiosk_idcard`'s frame codec, so the
//!   simulator and the kiosk agree on the wire format by construction.
//!   Both transports below own one.
//! * **SAM on a pty** ([`SamSim`]): a background thread owns the pty master
//!   and answers through `SamCore`. The kiosk opens a stable symlink
//!   ([`SamSimConfig::link`]), as it would `/dev/serial/by-id/...`;
//!   [`SamSim::unplug`] and [`SamSim::replug`] make the device vanish and come
//!   back on another `/dev/pts/N` behind the same link. The simulator keeps
//!   its own slave fd open so the pty outlives the kiosk closing it, and
//!   reads the speed the kiosk set from the slave's termios: a mismatch
//!   yields garbage instead of frames, as a UART would, which lets baud
//!   auto-detection be tested. Wire time can be emulated.
//! * **Virtual card** ([`VirtualCard`]): speaks vpcd's socket protocol,
//!   connecting to vpcd when a card is placed and hanging up when it is
//!   removed; answers the UID APDU and tunnels GA 467 frames to a
//!   `SamCore`, as readers with a built-in SAM do. The installed vpcd
//!   (0.8) crashes pcscd in its "reversed" mode as soon as a card goes
//!   away, so vpcd listens, as it was designed to; see [`vicc`].
//! * **pcscd harness** ([`Pcscd`]): a private pcscd with vpcd readers for
//!   tests, in a network namespace that only has loopback (so vpcd's
//!   all-interfaces listener is loopback-only in effect), serialised
//!   machine-wide by a lock file.
//! * **Control** ([`control`]): the `kiosk-sim` binary runs devices and a
//!   Unix socket taking JSON lines (`place`, `remove`, `fault`, `unplug`,
//!   `replug`, `stats`, and for printers `printer_state` and `tickets`),
//!   for demos and end-to-end tests in other processes.
//!
//! * **Vendor library** ([`sdtapi`]): `sim/sdtapi` is a stand-in for a
//!   reader vendor's `sdtapi` shared library, speaking GA 467 to a
//!   [`SamSim`]; [`sdtapi::library`] builds it for tests.
//!
//! * **Core bank** ([`corebank`]): an HTTP server on loopback implementing
//!   `shared/corebank-api.md` (signatures, nonces, idempotency, lookups,
//!   security questions, OTPs, changes) with its state in its own SQLite
//!   file and faults injected at start or at run time; see its module docs.
//!
//! The reader simulators are blocking std I/O on background threads (no
//! async runtime); threads wait on reads with timeouts, channels or
//! condition variables, never spin, and stop when their handle drops. Logs
//! name profiles and commands, never card contents. The core-bank simulator
//! runs its own tokio runtime behind a blocking handle.

pub mod control;
pub mod corebank;
pub mod error;
pub mod pcscd;
pub mod printer;
pub mod profile;
mod pty;
pub mod sam;
pub mod sdtapi;
pub mod serve;
pub mod vicc;

pub use corebank::{CoreBankConfig, CoreBankSim, Faults as CoreBankFaults};
pub use error::{Result, SimError};
pub use pcscd::Pcscd;
pub use profile::{CardProfile, Fault};
pub use pty::adapter_timer_file;
pub use sam::{DEFAULT_SAM_ID, SamCore, SamSim, SamSimConfig, SamStats};
pub use vicc::{ViccConfig, ViccStats, VirtualCard};
