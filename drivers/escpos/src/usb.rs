//! A USB printer-class device (`/dev/usb/lpN`, the kernel's `usblp`),
//! opened as a file.
//!
//! The node is opened read-write and non-blocking; `poll` gives the
//! deadlines (`usblp` supports it: writable while its write URB is free,
//! readable once the printer's back channel has sent something). A
//! bidirectional printer answers `DLE EOT` over the back channel; a
//! unidirectional one never does (configure `status = false`). When the
//! printer is pulled, `usblp` fails reads and writes with `ENODEV` and the
//! node disappears; it comes back (perhaps as another `lpN`: use a
//! `/dev/usb/by-id`-style udev symlink) when replugged.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::EscposError;
use crate::link::{Link, not_connected};

/// What a full-speed USB bulk pipe moves, roughly: 1 MB/s.
const BYTES_PER_SECOND: u64 = 1_000_000;
/// Most reads to drop stale input (a real back channel has a few bytes).
const DISCARD_MAX_READS: usize = 64;

/// A USB printer-class node opened as a file.
#[derive(Debug)]
pub struct UsbLpLink {
    path: PathBuf,
    file: Option<File>,
}

impl UsbLpLink {
    /// A closed link; [`Link::open`] opens it.
    pub fn new(path: PathBuf) -> UsbLpLink {
        UsbLpLink { path, file: None }
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file.as_mut().ok_or_else(not_connected)
    }

    /// Wait at most `timeout` until the file is ready for `events`.
    fn wait(&mut self, events: PollFlags, timeout: Duration) -> io::Result<()> {
        let file = self.file()?;
        // Round up: a deadline less than 1 ms away is not "now".
        let ms = timeout.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(file.as_fd(), events)];
        match poll(&mut fds, timeout) {
            Ok(0) => Err(io::ErrorKind::TimedOut.into()),
            // Ready, or hung up / failed: the read or write says which.
            Ok(_) => Ok(()),
            Err(Errno::EINTR) => Err(io::ErrorKind::Interrupted.into()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Link for UsbLpLink {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn open(&mut self) -> Result<(), EscposError> {
        self.close();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            // Never the kiosk's controlling terminal when the node is a
            // tty (the simulator's stand-in is a pty).
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(&self.path)
            .map_err(|e| {
                if open_means_unplugged(&e) {
                    EscposError::Unplugged {
                        detail: format!("cannot open {}: {e}", self.path.display()),
                    }
                } else {
                    EscposError::Io(e)
                }
            })?;
        tracing::debug!(path = %self.path.display(), "USB printer opened");
        self.file = Some(file);
        self.discard_input().map_err(EscposError::Io)
    }

    fn close(&mut self) {
        if self.file.take().is_some() {
            tracing::debug!(path = %self.path.display(), "USB printer closed");
        }
    }

    fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn discard_input(&mut self) -> io::Result<()> {
        let file = self.file()?;
        let mut buf = [0u8; 64];
        for _ in 0..DISCARD_MAX_READS {
            match file.read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8], stall: Duration) -> io::Result<usize> {
        self.wait(PollFlags::POLLOUT, stall)?;
        self.file()?.write(bytes)
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.wait(PollFlags::POLLIN, timeout)?;
        self.file()?.read(buf)
    }

    fn is_gone(&self, e: &io::Error) -> bool {
        if let Some(code) = e.raw_os_error() {
            return matches!(
                Errno::from_raw(code),
                Errno::ENODEV | Errno::EIO | Errno::ENXIO | Errno::ENOENT | Errno::EPIPE
            );
        }
        matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::NotFound
        )
    }

    fn vanished(&self) -> Option<String> {
        (!self.path.exists()).then(|| format!("{} disappeared", self.path.display()))
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        Duration::from_micros(bytes as u64 * 1_000_000 / BYTES_PER_SECOND)
    }
}

/// Not there (pulled, or not ours yet: udev has not set its group).
fn open_means_unplugged(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) || matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENODEV | Errno::ENXIO | Errno::EIO)
    )
}
