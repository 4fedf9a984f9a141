//! The crate's one error type.

use crate::status::{PrinterFault, StatusQuery};

/// Everything that can go wrong building a document or printing it.
///
/// The printer-state variants say whether the document had been `sent`
/// when the fault showed: `false` means nothing reached the printer (try
/// again when it is fixed, or elsewhere); `true` means the fault came up
/// during or right after printing, so the ticket may be incomplete and
/// should be reprinted (rule Q4: the number is not lost).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EscposError {
    /// A character size outside 1 to 8.
    #[error("character size {width}×{height} is not 1 to 8 each")]
    InvalidSize { width: u8, height: u8 },
    /// A document element with a value the printer cannot take.
    #[error("invalid {what}: {detail}")]
    InvalidArgument { what: &'static str, detail: String },
    /// The printer has no paper (or stopped at the paper end).
    #[error("printer out of paper{}", sent_note(*sent))]
    PaperOut { sent: bool },
    /// The printer's cover is open.
    #[error("printer cover open{}", sent_note(*sent))]
    CoverOpen { sent: bool },
    /// The printer is offline and gives no more specific cause.
    #[error("printer offline{}", sent_note(*sent))]
    Offline { sent: bool },
    /// The printer reports an error (cutter, unrecoverable,
    /// auto-recoverable).
    #[error("printer error: {fault}{}", sent_note(*sent))]
    Fault { fault: PrinterFault, sent: bool },
    /// The device went away (`read` gave end-of-file, `EIO`, a hang-up, a
    /// reset connection, or its path disappeared), or cannot be reached.
    /// It is reopened by its configured path or address
    /// ([`crate::Printer::reconnect`], or the next print).
    #[error("the printer is unplugged or gone: {detail}")]
    Unplugged { detail: String },
    /// The printer is configured with `status = false` (it never answers
    /// `DLE EOT`): its status is unknown. Not a fault.
    #[error("the printer gives no status (status = false): its state is unknown")]
    NoStatus,
    /// No reply to a status query in time. `received` holds the bytes that
    /// did arrive and were not a reply to it.
    #[error("no reply to {} within {timeout_ms} ms ({} other bytes received)", query.name(), received.len())]
    StatusTimeout {
        query: StatusQuery,
        timeout_ms: u64,
        received: Vec<u8>,
    },
    /// The printer took no data for `timeout_ms` (flow control held, buffer
    /// full) after `written` of `total` bytes.
    #[error("printer took no data for {timeout_ms} ms ({written} of {total} bytes written)")]
    WriteTimeout {
        written: usize,
        total: usize,
        timeout_ms: u64,
    },
    /// Opening or configuring the serial port failed (not an unplug).
    #[error("serial port: {0}")]
    Serial(#[from] serialport::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is not valid.
    #[error("invalid printer configuration: {0}")]
    Config(String),
    /// The printer's device thread ([`crate::PrinterDevice`]) did not
    /// answer a request in time (it was busy with an earlier one, or the
    /// printer stalled). A print that timed out may or may not have
    /// printed: treat the ticket as not printed and offer a reprint.
    #[error("the printer's device thread gave no answer within {timeout_ms} ms")]
    DeviceTimeout { timeout_ms: u64 },
    /// The printer's device thread has stopped.
    #[error("the printer's device thread has stopped")]
    DeviceStopped,
}

fn sent_note(sent: bool) -> &'static str {
    if sent {
        " (after the ticket was sent: it may be incomplete)"
    } else {
        ""
    }
}

impl EscposError {
    /// The error for a printer fault.
    pub fn from_fault(fault: PrinterFault, sent: bool) -> EscposError {
        match fault {
            PrinterFault::PaperOut => EscposError::PaperOut { sent },
            PrinterFault::CoverOpen => EscposError::CoverOpen { sent },
            PrinterFault::Offline => EscposError::Offline { sent },
            fault => EscposError::Fault { fault, sent },
        }
    }

    /// The printer fault this error reports, if it is one.
    pub fn printer_fault(&self) -> Option<PrinterFault> {
        match self {
            EscposError::PaperOut { .. } => Some(PrinterFault::PaperOut),
            EscposError::CoverOpen { .. } => Some(PrinterFault::CoverOpen),
            EscposError::Offline { .. } => Some(PrinterFault::Offline),
            EscposError::Fault { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    /// Is this the device going away (reopen by path and try again)?
    pub fn is_unplugged(&self) -> bool {
        matches!(self, EscposError::Unplugged { .. })
    }
}
