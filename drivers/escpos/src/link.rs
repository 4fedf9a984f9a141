//! The transport seam: what [`crate::Printer`] needs from a connection to
//! a printer, and nothing more.
//!
//! The status exchange, chunked printing and the reading of unplugs are
//! written once, in [`crate::Printer`]; a [`Link`] only moves bytes with a
//! deadline and says what its errors mean. Three exist:
//! [`crate::SerialLink`] (a tty), [`crate::UsbLpLink`] (a USB
//! printer-class node, `/dev/usb/lpN`, opened as a file) and
//! [`crate::TcpLink`] (a network printer's raw port, usually 9100).

use std::fmt;
use std::io;
use std::time::Duration;

use crate::error::EscposError;

/// A byte pipe to one printer that can be opened again after it went away.
///
/// Reads and writes on a closed link fail with
/// [`io::ErrorKind::NotConnected`].
pub trait Link: Send + fmt::Debug {
    /// The device as the configuration names it (path or address), for
    /// logs and errors.
    fn name(&self) -> String;

    /// (Re)open the device, dropping whatever was buffered. A device that
    /// is not there gives [`EscposError::Unplugged`].
    fn open(&mut self) -> Result<(), EscposError>;

    fn close(&mut self);

    fn is_open(&self) -> bool;

    /// Drop the input received so far (stale status replies).
    fn discard_input(&mut self) -> io::Result<()>;

    /// Write a prefix of `bytes`, waiting at most `stall` for the device
    /// to take data; [`io::ErrorKind::TimedOut`] when it took none.
    fn write(&mut self, bytes: &[u8], stall: Duration) -> io::Result<usize>;

    /// Read what has come, waiting at most `timeout`;
    /// [`io::ErrorKind::TimedOut`] when nothing came, `Ok(0)` at end of
    /// file (the device or the peer went away).
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;

    /// Read what has come already, without waiting:
    /// [`io::ErrorKind::TimedOut`] (or `WouldBlock`) when nothing has.
    /// Used to take in automatic status back blocks that arrived while
    /// the link was idle ([`crate::asb`]) instead of dropping them.
    fn read_pending(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf, Duration::ZERO)
    }

    /// Does this error from `read`, `write` or `discard_input` mean the
    /// device is gone (reopen it), rather than a passing fault?
    fn is_gone(&self, e: &io::Error) -> bool;

    /// After a timeout: why the device is gone, when it shows (a device
    /// node that no longer exists). `None`: it may just be slow.
    fn vanished(&self) -> Option<String>;

    /// How long `bytes` take to reach the printer.
    fn wire_time(&self, bytes: usize) -> Duration;
}

/// The error for I/O on a closed link.
pub(crate) fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the printer link is closed")
}
