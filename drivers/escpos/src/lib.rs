//! ESC/POS for the kiosk's ticket printer: queue tickets and slips built as
//! values, rendered to bytes, sent over a serial port, with the printer's
//! real-time status checked around every print.
//!
//! # Design
//!
//! **Protocol without I/O.** [`command`] has one function per command,
//! returning its exact bytes (`command::init() == [0x1B, 0x40]`). A
//! [`Document`] is a checked list of [`Element`]s (text, alignment, bold,
//! character size, line spacing, QR code, CODE128 barcode, feed, cut)
//! built with [`Document::builder`]; it does not know the printer, and
//! [`Document::render`] makes the bytes for a printer model's
//! [`TextEncoding`]: `ESC @`, the character mode (`FS &` and GBK (the
//! default) / GB18030 / Big5 for Chinese printers; `FS .` and PC437 or
//! ASCII otherwise), then the elements. [`Document::render_with`] prints
//! a line holding a character the code table lacks (a CJK Extension B
//! ideograph in a name, on GBK firmware) as one `GS v 0` raster image
//! drawn by [`GlyphRaster`] ([`raster`]: `ab_glyph` over the bundled
//! WenQuanYi Micro Hei and configured fallback fonts); plain
//! [`Document::render`] writes `?` for it. Text cannot carry control
//! characters and QR / barcode data cannot carry `DLE`, so a rendered
//! document never contains a real-time command that the printer would act
//! on mid-stream. [`QueueTicket`] lays out rule Q1's ticket.
//!
//! **Status as request objects.** A [`StatusQuery`] is one `DLE EOT n`: it
//! writes its bytes and checks its reply ([`StatusQuery::parse`] →
//! [`StatusReply`]), rejecting a byte whose fixed bits are wrong or whose
//! shape belongs to another query. [`PrinterStatus`] gathers the four
//! replies (Epson's bit layout; table in [`status`]) and says what stops
//! printing ([`PrinterStatus::fault`]) and what only warns
//! ([`PrinterStatus::warnings`]). It converts both ways
//! ([`PrinterStatus::from_bytes`], [`PrinterStatus::to_bytes`]), so a
//! simulator can answer with the same layout.
//!
//! **Automatic status back.** [`asb`] has `GS a`, the 4-byte blocks a
//! printer then sends by itself ([`AsbStatus`], decoded into the same
//! [`PrinterStatus`]) and [`InboundDemux`], which splits everything a
//! printer sends into blocks and `DLE EOT` replies by their fixed bits.
//! [`Printer`] enables it on open and after each document and, while the
//! blocks are trusted, prints without asking first ([`printer`] says
//! exactly when, for rule Q4).
//!
//! **Small transports.** [`Printer`] is the only code that talks to the
//! device, through a [`Link`] per transport ([`SerialLink`], [`UsbLpLink`]
//! for `/dev/usb/lpN`, [`TcpLink`] for a raw port 9100; [`link`] says
//! what each must do): it opens the configured stable path or address
//! ([`PrinterConfig`]: transport, baud, flow control, encoding, timeouts,
//! whether the printer answers status at all), flushes stale input before
//! every status request, checks all four statuses before sending a
//! document and the printer and paper status after it, and returns
//! [`Printed`] (with [`Warning::PaperNearEnd`] when the roll runs low) or
//! a typed [`EscposError`]: `PaperOut`, `CoverOpen`, `Offline`, `Fault`
//! (each saying whether the document had been sent), `Unplugged`,
//! `StatusTimeout`, `WriteTimeout`. Unplugging is normal: end-of-file,
//! `EIO`, a hang-up or the path vanishing close the port, and it is
//! reopened by its path ([`Printer::reconnect`] with capped
//! exponential backoff, or once by the next print).
//!
//! **One owner per printer.** [`PrinterDevice::spawn`] starts the thread
//! that owns the [`Printer`]: it opens the port, reports
//! [`PrinterEvent`]s (state, status with warnings, faults) to an
//! [`EventSink`] when they change, serves [`PrinterHandle`] requests
//! (print, status, test page) one at a time, and reopens an absent printer
//! by its path with capped backoff. A healthy printer is not polled
//! between prints; a faulted or absent one is looked at again with capped
//! backoff so a refill or a replug is noticed ([`device`] has the
//! details).
//!
//! Everything is blocking std I/O with timeouts; the kiosk runs the
//! printer in its own thread. The printer simulator that the tests use
//! lives in `kiosk-sim` (`kiosk_sim::printer`): it decodes what it is sent
//! with its own parser, so the two sides check each other.

#![forbid(unsafe_code)]

pub mod asb;
pub mod command;
pub mod config;
pub mod device;
pub mod document;
pub mod encoding;
pub mod error;
pub mod link;
pub mod printer;
pub mod raster;
pub mod serial;
pub mod status;
pub mod tcp;
pub mod usb;

pub use asb::{AsbStatus, Inbound, InboundDemux};
pub use command::{Align, CharSize, Cut, HriPosition, QrErrorCorrection};
pub use config::{FlowControl, PrinterConfig, Transport};
pub use device::{
    DeviceState, EventSink, PrintGate, PrinterDevice, PrinterEvent, PrinterHandle, PrinterSnapshot,
};
pub use document::{
    BarcodeOptions, Document, DocumentBuilder, Element, QrOptions, QueueTicket, Slip,
};
pub use encoding::TextEncoding;
pub use error::EscposError;
pub use link::Link;
pub use printer::{Printed, Printer, SerialPrinter};
pub use raster::{Bitmap, GlyphRaster};
pub use serial::SerialLink;
pub use status::{PaperState, PrinterFault, PrinterStatus, StatusQuery, StatusReply, Warning};
pub use tcp::TcpLink;
pub use usb::UsbLpLink;
