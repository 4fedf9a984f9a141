//! Automatic status back (ASB, `GS a n`): the printer's own status
//! reports, and the demultiplexing of everything a printer sends.
//!
//! With ASB on, the printer sends a 4-byte status block once when `GS a n`
//! is executed and then whenever a status item it was asked to report
//! changes, without being asked. Those blocks share the line with the
//! one-byte `DLE EOT` replies; Epson's fixed bits tell them apart
//! ("identification of send status" in the ESC/POS references):
//!
//! | what | bits (7..0) |
//! |---|---|
//! | `DLE EOT` reply | `0xx1xx10` |
//! | ASB, first byte | `0xx1xx00` |
//! | ASB, second to fourth byte | `0xx0xxxx` |
//! | `GS r`, `GS I` replies | `0xx0xxxx` (not in a block) |
//! | XON / XOFF | `0x11` / `0x13` |
//!
//! The four bytes of a block are consecutive except for XOFF (and XON),
//! which may be interleaved by software flow control and are skipped.
//! [`InboundDemux`] reads the stream byte by byte and says what each
//! completes ([`Inbound`]); a block cut short by a byte that cannot
//! continue it is dropped (counted in [`InboundDemux::dropped`]), never
//! half-applied.
//!
//! A block is decoded into the same [`PrinterStatus`] as the four `DLE
//! EOT` replies ([`AsbStatus::status`]), with Epson's layout:
//!
//! | byte | bits |
//! |---|---|
//! | 1 printer | 2 drawer pin 3 high, 3 offline, 5 cover open, 6 paper being fed by the feed button |
//! | 2 errors | 0 waiting for online recovery, 2 mechanical error, 3 autocutter error, 5 unrecoverable error, 6 auto-recoverable error |
//! | 3 paper | 0+1 roll near end, 2+3 roll end (paper out) |
//! | 4 | reserved (slip / undefined) |

use serde::{Deserialize, Serialize};

use crate::command;
use crate::status::{PaperState, PrinterStatus};

/// The status items kioskd asks the printer to report (`GS a n`):
/// on-line/off-line (bit 1), errors (bit 2) and the paper roll sensors
/// (bit 3); not the drawer (bit 0), which a ticket printer does not have.
pub const ASB_ITEMS: u8 = 0b0000_1110;

/// `GS a n` with [`ASB_ITEMS`].
pub fn enable_request() -> Vec<u8> {
    command::automatic_status_back(ASB_ITEMS)
}

/// First byte: bits 0, 1, 7 off, bit 4 on.
const FIRST_MASK: u8 = 0x93;
const FIRST_VALUE: u8 = 0x10;
/// A `DLE EOT` reply: bits 0, 7 off, bits 1, 4 on.
const REPLY_VALUE: u8 = 0x12;
/// Second to fourth byte: bits 4 and 7 off.
const NEXT_MASK: u8 = 0x90;
const XON: u8 = 0x11;
const XOFF: u8 = 0x13;

/// One ASB block, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AsbStatus(pub [u8; 4]);

impl AsbStatus {
    /// A block whose fixed bits are right, `None` otherwise.
    pub fn parse(bytes: [u8; 4]) -> Option<AsbStatus> {
        let first_ok = bytes[0] & FIRST_MASK == FIRST_VALUE;
        let next_ok = bytes[1..].iter().all(|b| b & NEXT_MASK == 0);
        (first_ok && next_ok).then_some(AsbStatus(bytes))
    }

    pub fn bytes(&self) -> [u8; 4] {
        self.0
    }

    /// Waiting for on-line recovery (second byte, bit 0).
    pub fn waiting_online_recovery(&self) -> bool {
        self.0[1] & 0x01 != 0
    }

    /// A mechanical error (second byte, bit 2: e.g. the head or the
    /// platen), cleared by fixing its cause and `DLE ENQ`.
    pub fn mechanical_error(&self) -> bool {
        self.0[1] & 0x04 != 0
    }

    /// What the block says, in the terms of the four `DLE EOT` replies:
    /// a printer reports the same [`PrinterStatus`] either way. `error`
    /// (`DLE EOT 2` bit 6) is any error of the second byte;
    /// `paper_end_stop` (`DLE EOT 2` bit 5, which ASB has no bit for) is
    /// paper out on an offline printer, which is what stops it.
    pub fn status(&self) -> PrinterStatus {
        let [printer, errors, paper, _] = self.0;
        let bit = |byte: u8, n: u8| byte & (1 << n) != 0;
        let online = !bit(printer, 3);
        let paper = if paper & 0x0C != 0 {
            PaperState::Out
        } else if paper & 0x03 != 0 {
            PaperState::NearEnd
        } else {
            PaperState::Present
        };
        PrinterStatus {
            online,
            drawer_pin3_high: bit(printer, 2),
            cover_open: bit(printer, 5),
            feed_button: bit(printer, 6),
            paper_end_stop: paper == PaperState::Out && !online,
            error: errors & 0x6C != 0,
            cutter_error: bit(errors, 3),
            unrecoverable_error: bit(errors, 5),
            auto_recoverable_error: bit(errors, 6),
            paper,
        }
    }
}

/// What one received byte completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Inbound {
    /// A `DLE EOT` reply (check it against the query with
    /// [`crate::StatusQuery::parse`]).
    Reply(u8),
    /// The last byte of an ASB block.
    Asb(AsbStatus),
    /// XON or XOFF (software flow control), skipped.
    FlowControl(u8),
    /// Nothing yet: a byte of an ASB block that is not its last.
    Partial,
    /// A byte that is none of these (a `GS r` reply, line noise, a block
    /// cut short).
    Other(u8),
}

/// Splits a printer's incoming bytes into ASB blocks and `DLE EOT`
/// replies (see the module docs). No I/O; keep one per open link and
/// [`InboundDemux::reset`] it when the link is reopened.
#[derive(Debug, Clone, Default)]
pub struct InboundDemux {
    block: [u8; 4],
    /// Bytes of the block so far (0: not in a block).
    have: usize,
    dropped: u64,
}

impl InboundDemux {
    pub fn new() -> InboundDemux {
        InboundDemux::default()
    }

    /// Forget a block in progress (the link was reopened).
    pub fn reset(&mut self) {
        self.have = 0;
    }

    /// Is a block in progress?
    pub fn in_block(&self) -> bool {
        self.have > 0
    }

    /// Bytes of blocks cut short so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Take one byte.
    pub fn push(&mut self, byte: u8) -> Inbound {
        if byte == XON || byte == XOFF {
            return Inbound::FlowControl(byte);
        }
        if byte & FIRST_MASK == FIRST_VALUE {
            self.cut_short();
            self.block[0] = byte;
            self.have = 1;
            return Inbound::Partial;
        }
        if self.have > 0 && byte & NEXT_MASK == 0 {
            self.block[self.have] = byte;
            self.have += 1;
            if self.have < 4 {
                return Inbound::Partial;
            }
            self.have = 0;
            return match AsbStatus::parse(self.block) {
                Some(asb) => Inbound::Asb(asb),
                // Unreachable by construction; dropped rather than trusted.
                None => {
                    self.dropped += 4;
                    Inbound::Other(byte)
                }
            };
        }
        self.cut_short();
        if byte & FIRST_MASK == REPLY_VALUE {
            Inbound::Reply(byte)
        } else {
            Inbound::Other(byte)
        }
    }

    /// Take several bytes; what they complete, in order (partial block
    /// bytes left out).
    pub fn push_all(&mut self, bytes: &[u8]) -> Vec<Inbound> {
        bytes
            .iter()
            .map(|&b| self.push(b))
            .filter(|i| *i != Inbound::Partial)
            .collect()
    }

    fn cut_short(&mut self) {
        if self.have > 0 {
            tracing::debug!(
                bytes = ?&self.block[..self.have],
                "ASB block cut short; dropped"
            );
            self.dropped += self.have as u64;
            self.have = 0;
        }
    }
}

impl AsbStatus {
    /// The block a printer in `status` sends (undefined bits 0;
    /// paper out reads as both sensors, as real rolls do). For simulators
    /// and tests of the encoder's round trip; the decoder's vectors come
    /// from Epson's tables, not from this.
    pub fn of(status: &PrinterStatus) -> AsbStatus {
        let b = |on: bool, n: u8| if on { 1u8 << n } else { 0 };
        let first = FIRST_VALUE
            | b(status.drawer_pin3_high, 2)
            | b(!status.online, 3)
            | b(status.cover_open, 5)
            | b(status.feed_button, 6);
        let errors = b(status.cutter_error, 3)
            | b(status.unrecoverable_error, 5)
            | b(status.auto_recoverable_error, 6)
            // An error without a cause this layout names: mechanical.
            | b(
                status.error
                    && !(status.cutter_error
                        || status.unrecoverable_error
                        || status.auto_recoverable_error),
                2,
            );
        let paper = match status.paper {
            PaperState::Present => 0x00,
            PaperState::NearEnd => 0x03,
            PaperState::Out => 0x0F,
        };
        AsbStatus([first, errors, paper, 0x00])
    }
}
