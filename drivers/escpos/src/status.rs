//! Real-time status: `DLE EOT n` and its one-byte replies.
//!
//! Each request is a [`StatusQuery`] that knows which `n` it sends and
//! checks the byte that comes back ([`StatusQuery::parse`]). The bit
//! layout is Epson's (ESC/POS Command Reference, `DLE EOT`), which the
//! Chinese printers copy:
//!
//! | n | query | bits (0 = LSB) | all well |
//! |---|---|---|---|
//! | 1 | printer | 2 drawer pin 3 high, 3 offline, 5 waiting for online recovery, 6 feed button pressed | `0x12` |
//! | 2 | offline cause | 2 cover open, 3 paper fed by the feed button, 5 stopped at paper end, 6 error | `0x12` |
//! | 3 | error cause | 3 autocutter error, 5 unrecoverable error, 6 auto-recoverable error (2 undefined) | `0x12` |
//! | 4 | paper roll sensor | 2+3 near end, 5+6 paper out | `0x12`; `0x1E` near end; `0x72` / `0x7E` out |
//!
//! In every reply bit 1 and bit 4 are 1 and bit 0 and bit 7 are 0: a byte
//! where they are not is not a status reply (an automatic status back
//! block, a `GS r` answer, line noise) and is rejected. A paper-sensor
//! reply sets both bits of a sensor or neither; a lone bit 2, 3, 5 or 6 is
//! the shape of another query's reply (`0x16` drawer or cover, `0x1A`
//! offline or cutter, `0x32` / `0x52` paper-end stop or error) and is
//! rejected too, which catches the commonest mix-up: a stale printer-status
//! byte read as the paper status. The transport also flushes its input
//! before each request ([`crate::SerialPrinter`]).
//!
//! Every valid reply is even, so no reply is ever XON (0x11) or XOFF
//! (0x13): software flow control cannot eat one.

use serde::{Deserialize, Serialize};

/// Bits fixed in every reply: 0 and 7 off, 1 and 4 on.
const FIXED_MASK: u8 = 0x93;
const FIXED_VALUE: u8 = 0x12;

/// Does `byte` have the fixed bits of a `DLE EOT` reply?
pub fn has_fixed_bits(byte: u8) -> bool {
    byte & FIXED_MASK == FIXED_VALUE
}

/// One `DLE EOT n` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusQuery {
    /// n = 1.
    Printer,
    /// n = 2.
    OfflineCause,
    /// n = 3.
    ErrorCause,
    /// n = 4.
    PaperSensor,
}

impl StatusQuery {
    /// All four, in the order of `n`.
    pub const ALL: [StatusQuery; 4] = [
        StatusQuery::Printer,
        StatusQuery::OfflineCause,
        StatusQuery::ErrorCause,
        StatusQuery::PaperSensor,
    ];

    /// The `n` of `DLE EOT n`.
    pub fn n(self) -> u8 {
        match self {
            StatusQuery::Printer => 1,
            StatusQuery::OfflineCause => 2,
            StatusQuery::ErrorCause => 3,
            StatusQuery::PaperSensor => 4,
        }
    }

    pub fn from_n(n: u8) -> Option<StatusQuery> {
        StatusQuery::ALL
            .get(usize::from(n).wrapping_sub(1))
            .copied()
    }

    /// `DLE EOT n` (`10 04 n`): the real-time status request.
    pub fn request(self) -> Vec<u8> {
        vec![0x10, 0x04, self.n()]
    }

    pub fn name(self) -> &'static str {
        match self {
            StatusQuery::Printer => "printer status (DLE EOT 1)",
            StatusQuery::OfflineCause => "offline cause (DLE EOT 2)",
            StatusQuery::ErrorCause => "error cause (DLE EOT 3)",
            StatusQuery::PaperSensor => "paper sensor (DLE EOT 4)",
        }
    }

    /// Could `byte` be the reply to this query?
    pub fn accepts(self, byte: u8) -> bool {
        if !has_fixed_bits(byte) {
            return false;
        }
        match self {
            StatusQuery::PaperSensor => {
                matches!(byte & 0x0C, 0x00 | 0x0C) && matches!(byte & 0x60, 0x00 | 0x60)
            }
            _ => true,
        }
    }

    /// What the reply `byte` means; `None` when it cannot be a reply to
    /// this query (the printer link skips it, and reports it with the
    /// timeout if no reply comes). Pure decoding: this module depends on
    /// no other of the crate.
    pub fn parse(self, byte: u8) -> Option<StatusReply> {
        if !self.accepts(byte) {
            return None;
        }
        let bit = |n: u8| byte & (1 << n) != 0;
        Some(match self {
            StatusQuery::Printer => StatusReply::Printer {
                online: !bit(3),
                drawer_pin3_high: bit(2),
                waiting_online_recovery: bit(5),
                feed_button_pressed: bit(6),
            },
            StatusQuery::OfflineCause => StatusReply::OfflineCause {
                cover_open: bit(2),
                feed_button: bit(3),
                paper_end_stop: bit(5),
                error: bit(6),
            },
            StatusQuery::ErrorCause => StatusReply::ErrorCause {
                cutter_error: bit(3),
                unrecoverable_error: bit(5),
                auto_recoverable_error: bit(6),
            },
            StatusQuery::PaperSensor => StatusReply::PaperSensor {
                near_end: bit(2),
                out: bit(5),
            },
        })
    }
}

/// A parsed `DLE EOT n` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusReply {
    Printer {
        online: bool,
        drawer_pin3_high: bool,
        /// Bit 5 (newer Epson references; undefined on older models).
        waiting_online_recovery: bool,
        /// Bit 6 (newer Epson references; undefined on older models).
        feed_button_pressed: bool,
    },
    OfflineCause {
        cover_open: bool,
        /// Paper is being fed with the feed button.
        feed_button: bool,
        /// Printing stopped because the paper ran out.
        paper_end_stop: bool,
        error: bool,
    },
    ErrorCause {
        cutter_error: bool,
        unrecoverable_error: bool,
        auto_recoverable_error: bool,
    },
    PaperSensor {
        /// The near-end sensor sees the roll running low.
        near_end: bool,
        /// The end sensor sees no paper.
        out: bool,
    },
}

impl StatusReply {
    pub fn query(&self) -> StatusQuery {
        match self {
            StatusReply::Printer { .. } => StatusQuery::Printer,
            StatusReply::OfflineCause { .. } => StatusQuery::OfflineCause,
            StatusReply::ErrorCause { .. } => StatusQuery::ErrorCause,
            StatusReply::PaperSensor { .. } => StatusQuery::PaperSensor,
        }
    }

    /// The byte a printer sends for this reply (undefined bits 0).
    pub fn to_byte(&self) -> u8 {
        let b = |on: bool, n: u8| if on { 1u8 << n } else { 0 };
        FIXED_VALUE
            | match *self {
                StatusReply::Printer {
                    online,
                    drawer_pin3_high,
                    waiting_online_recovery,
                    feed_button_pressed,
                } => {
                    b(!online, 3)
                        | b(drawer_pin3_high, 2)
                        | b(waiting_online_recovery, 5)
                        | b(feed_button_pressed, 6)
                }
                StatusReply::OfflineCause {
                    cover_open,
                    feed_button,
                    paper_end_stop,
                    error,
                } => b(cover_open, 2) | b(feed_button, 3) | b(paper_end_stop, 5) | b(error, 6),
                StatusReply::ErrorCause {
                    cutter_error,
                    unrecoverable_error,
                    auto_recoverable_error,
                } => b(cutter_error, 3) | b(unrecoverable_error, 5) | b(auto_recoverable_error, 6),
                StatusReply::PaperSensor { near_end, out } => {
                    (if near_end { 0x0C } else { 0 }) | (if out { 0x60 } else { 0 })
                }
            }
    }
}

/// What the paper roll sensors say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaperState {
    #[default]
    Present,
    /// Still prints; the roll should be changed soon.
    NearEnd,
    Out,
}

/// Why a printer cannot print (rule Q4: the technician sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterFault {
    CoverOpen,
    PaperOut,
    /// Needs service (power cycle at least).
    UnrecoverableError,
    /// Paper jam at the cutter; cleared by fixing it (and `DLE ENQ`).
    CutterError,
    /// e.g. the head is too hot; clears by itself.
    AutoRecoverableError,
    /// Offline for no reason the printer gives.
    Offline,
}

impl std::fmt::Display for PrinterFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrinterFault::CoverOpen => "cover open",
            PrinterFault::PaperOut => "paper out",
            PrinterFault::UnrecoverableError => "unrecoverable error",
            PrinterFault::CutterError => "autocutter error",
            PrinterFault::AutoRecoverableError => "auto-recoverable error",
            PrinterFault::Offline => "offline",
        })
    }
}

/// A condition that does not stop printing but someone should see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warning {
    PaperNearEnd,
}

/// Everything the four `DLE EOT` replies tell, in one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrinterStatus {
    /// n = 1 bit 3 off.
    pub online: bool,
    /// n = 1 bit 2 (the drawer-open sensor, if a drawer is connected).
    pub drawer_pin3_high: bool,
    /// n = 2 bit 2.
    pub cover_open: bool,
    /// n = 2 bit 3: paper is being fed with the feed button.
    pub feed_button: bool,
    /// n = 2 bit 5: printing stopped at the paper end.
    pub paper_end_stop: bool,
    /// n = 2 bit 6.
    pub error: bool,
    /// n = 3 bit 3.
    pub cutter_error: bool,
    /// n = 3 bit 5.
    pub unrecoverable_error: bool,
    /// n = 3 bit 6.
    pub auto_recoverable_error: bool,
    /// n = 4.
    pub paper: PaperState,
}

impl Default for PrinterStatus {
    fn default() -> Self {
        PrinterStatus::READY
    }
}

impl PrinterStatus {
    /// Online, paper present, no error: `12 12 12 12`.
    pub const READY: PrinterStatus = PrinterStatus {
        online: true,
        drawer_pin3_high: false,
        cover_open: false,
        feed_button: false,
        paper_end_stop: false,
        error: false,
        cutter_error: false,
        unrecoverable_error: false,
        auto_recoverable_error: false,
        paper: PaperState::Present,
    };

    /// From the replies to n = 1, 2, 3, 4, in that order.
    /// `None` if a byte cannot be the reply to its query.
    pub fn from_bytes(bytes: [u8; 4]) -> Option<PrinterStatus> {
        let mut status = PrinterStatus::READY;
        for (query, byte) in StatusQuery::ALL.into_iter().zip(bytes) {
            status.apply(query.parse(byte)?);
        }
        Some(status)
    }

    /// The replies a printer in this state gives to n = 1, 2, 3, 4
    /// (paper out reads as both sensors, `0x7E`, as real rolls do).
    pub fn to_bytes(&self) -> [u8; 4] {
        StatusQuery::ALL.map(|q| self.reply(q).to_byte())
    }

    /// The reply a printer in this state gives to `query`.
    pub fn reply(&self, query: StatusQuery) -> StatusReply {
        match query {
            StatusQuery::Printer => StatusReply::Printer {
                online: self.online,
                drawer_pin3_high: self.drawer_pin3_high,
                waiting_online_recovery: false,
                feed_button_pressed: false,
            },
            StatusQuery::OfflineCause => StatusReply::OfflineCause {
                cover_open: self.cover_open,
                feed_button: self.feed_button,
                paper_end_stop: self.paper_end_stop,
                error: self.error,
            },
            StatusQuery::ErrorCause => StatusReply::ErrorCause {
                cutter_error: self.cutter_error,
                unrecoverable_error: self.unrecoverable_error,
                auto_recoverable_error: self.auto_recoverable_error,
            },
            StatusQuery::PaperSensor => StatusReply::PaperSensor {
                near_end: self.paper != PaperState::Present,
                out: self.paper == PaperState::Out,
            },
        }
    }

    /// Take one reply in (the fields of the other queries stay).
    pub fn apply(&mut self, reply: StatusReply) {
        match reply {
            StatusReply::Printer {
                online,
                drawer_pin3_high,
                ..
            } => {
                self.online = online;
                self.drawer_pin3_high = drawer_pin3_high;
            }
            StatusReply::OfflineCause {
                cover_open,
                feed_button,
                paper_end_stop,
                error,
            } => {
                self.cover_open = cover_open;
                self.feed_button = feed_button;
                self.paper_end_stop = paper_end_stop;
                self.error = error;
            }
            StatusReply::ErrorCause {
                cutter_error,
                unrecoverable_error,
                auto_recoverable_error,
            } => {
                self.cutter_error = cutter_error;
                self.unrecoverable_error = unrecoverable_error;
                self.auto_recoverable_error = auto_recoverable_error;
            }
            StatusReply::PaperSensor { near_end, out } => {
                self.paper = if out {
                    PaperState::Out
                } else if near_end {
                    PaperState::NearEnd
                } else {
                    PaperState::Present
                };
            }
        }
    }

    /// Why this printer cannot print, if it cannot: the most specific
    /// cause first (cover, paper, errors), then plain offline.
    pub fn fault(&self) -> Option<PrinterFault> {
        if self.cover_open {
            Some(PrinterFault::CoverOpen)
        } else if self.paper == PaperState::Out || self.paper_end_stop {
            Some(PrinterFault::PaperOut)
        } else if self.unrecoverable_error {
            Some(PrinterFault::UnrecoverableError)
        } else if self.cutter_error {
            Some(PrinterFault::CutterError)
        } else if self.auto_recoverable_error {
            Some(PrinterFault::AutoRecoverableError)
        } else if !self.online || self.error {
            Some(PrinterFault::Offline)
        } else {
            None
        }
    }

    /// What prints but should be seen to.
    pub fn warnings(&self) -> Vec<Warning> {
        if self.paper == PaperState::NearEnd {
            vec![Warning::PaperNearEnd]
        } else {
            Vec::new()
        }
    }
}
