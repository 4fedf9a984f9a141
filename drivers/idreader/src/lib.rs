//! Transports for ID readers: a GA 467 SAM on a serial port, PC/SC readers
//! (card presence, card UID, SAM frames tunnelled through the reader), and
//! the device loop that kioskd runs for each reader.
//!
//! # Design
//!
//! **Protocol without I/O.** The GA 467 frames, statuses and card data come
//! from `kiosk-idcard`. This crate only moves frames: a [`SamChannel`]
//! carries one request to a SAM and brings back its answer, with a timeout.
//! Four channels exist: [`SerialSam`] (the SAM module on a serial port),
//! [`SdtapiSam`] (the SAM behind the reader vendor's `sdtapi` library, each
//! request translated into the matching `SDT_` call), [`UsbSam`] (a USB
//! reader carrying the frames in 64-byte bulk packets, through `nusb`) and
//! [`PcscTunnel`] (the SAM behind a PC/SC reader, reached with a
//! pseudo-APDU or `SCardControl`). The first three are [`SamLink`]s: SAMs
//! a device loop opens, closes and reopens with backoff, supervised alike. [`read_card`] runs find → select → read text + photo
//! (+ fingerprint) → appended address over any channel and decodes the
//! identity; [`sam_id`], [`sam_status`] and [`find_card`] are the smaller
//! exchanges. Retries, stale-answer rejection and the "card pulled mid-read"
//! verdict live there, once, for both transports.
//!
//! **One owner per device.** [`ReaderDevice::spawn`] starts one thread per
//! configured reader ([`ReaderConfig`]). The thread owns the serial port and
//! the PC/SC context and reports [`ReaderEvent`]s to an [`EventSink`] (a
//! `std::sync::mpsc::Sender` or a callback); the [`ReaderHandle`] asks it
//! for things ([`ReaderCommand`]) and stops it.
//!
//! * A **PC/SC** reader never polls: the thread blocks in
//!   `SCardGetStatusChange` with an infinite timeout on
//!   `\\?PnP?\Notification` (reader hot-plug) and the configured reader
//!   (card present / absent). [`ReaderHandle::stop`] and
//!   [`ReaderHandle::request`] wake it with `SCardCancel` from the caller's
//!   thread. When pcscd stops or restarts, the context answers `NoService`
//!   (or `ServiceStopped`, `InvalidHandle`) for ever: it is dropped and a new
//!   one established with capped exponential backoff (100 ms doubling to
//!   3 s); the reader comes back as `Attached`.
//! * A **serial-SAM-only** reader cannot be told when a card arrives, so it
//!   sends find-card every `poll_interval_ms` (250 ms by default): the only
//!   polling loop in this crate. After a read it reports the card absent
//!   when find-card stops finding it.
//! * A reader may combine both: PC/SC tells presence (and the UID), the
//!   serial SAM reads (`[pcsc] tunnel = "none"` plus `[sam]`).
//!
//! Each placement is read once: `CardPresent`, then `CardRead` or
//! `ReadFailed`, then `CardAbsent`. A failed read is not retried until the
//! card is placed again. When pcscd goes away while a card lies on the
//! reader the card is reported absent; after the restart it is a new
//! placement and read again.
//!
//! **Unplug is normal.** `read` giving end-of-file, `EIO` or a hang-up, or
//! the configured path vanishing, is [`ReaderError::Unplugged`]: the port is
//! closed, `Detached` and `State { NoDevice }` reported, and the port is
//! reopened by its configured path (use a `/dev/serial/by-id/...` link) with
//! capped exponential backoff, interruptible by stop. With `baud = "auto"`
//! the rate found last is tried first, then 115200, 57600, 38400, 19200,
//! 9600, with a SAM-status request (`11 FF`) until a valid frame answers.
//!
//! **Serial framing.** Each exchange flushes the input, writes the request,
//! and feeds the bytes that come back into a `FrameDecoder`, which skips
//! garbage. An answer whose shape cannot answer the request (e.g. `9F` to a
//! read, a 1 KiB answer to find-card) is a late answer to an earlier
//! request and is skipped. The deadline is the configured answer timeout
//! plus the wire time of the longest answer at the current rate.
//!
//! **Card pulled mid-read.** When find and select succeeded and the read is
//! cut off, not answered, answered `41` (read failed) or `80` (no card), or
//! PC/SC reports the card removed, the sequence is tried again from find;
//! if the card is gone (or no retry is left) the result is
//! [`ReaderError::CardPulled`], reported as `ReadFailed { code:
//! "card_pulled" }`. A bad checksum or a missing answer before the read is
//! retried `retries` times, then reported as is.
//!
//! **Personal data.** Errors, [`ReadFailure`]s, `Debug` output and logs
//! carry no personal data. Frames are traced at `trace` level as
//! `>>> 20 01` / `<<< 00 00 9F ...`, the data of read answers redacted to
//! its length. [`CardRead`] prints only the card type and sizes, and wipes
//! its photo, fingerprint and appended address on drop (the identity wipes
//! itself).

#![forbid(unsafe_code)]

mod channel;
mod config;
mod device;
mod error;
mod sdtapi;
mod serial;
mod smartcard;
mod trace;
mod usb;

pub use channel::{
    CardRead, ReadOptions, SamChannel, SamLink, find_card, max_answer_len, plausible_answer,
    read_card, request, sam_id, sam_status,
};
pub use config::{
    AUTO_BAUD_RATES, Baud, PcscConfig, ReaderConfig, SamConfig, SdtapiConfig, Tunnel, UsbConfig,
};
pub use device::{
    CommandReply, DeviceState, EventSink, ReaderCheck, ReaderCommand, ReaderDevice, ReaderEvent,
    ReaderHandle,
};
pub use error::{PullCause, ReadFailure, ReaderError};
pub use sdtapi::SdtapiSam;
pub use serial::SerialSam;
pub use smartcard::{
    PcscTunnel, TunnelMode, UID_APDU, build_apdu, card_uid, list_readers, match_reader,
};
pub use usb::{BulkEndpoints, UsbSam, bulk_endpoints};
