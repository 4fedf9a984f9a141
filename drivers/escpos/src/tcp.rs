//! A network printer's raw port (usually TCP 9100, "JetDirect"): the
//! document goes down the socket, `DLE EOT` replies come back up it.
//!
//! Connecting has its own timeout (a switched-off printer drops the SYN).
//! The peer closing (end of file) or resetting the connection means the
//! printer went away (power cycle, another job's turn, a cable): the link
//! is closed and reconnected with backoff, as a serial port is reopened.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::EscposError;
use crate::link::{Link, not_connected};

/// Most reads to drop stale input.
const DISCARD_MAX_READS: usize = 64;

/// A TCP connection to `host:port`.
#[derive(Debug)]
pub struct TcpLink {
    address: String,
    connect_timeout: Duration,
    stream: Option<TcpStream>,
}

impl TcpLink {
    /// A closed link to `address` (`host:port`); [`Link::open`] connects.
    pub fn new(address: String, connect_timeout: Duration) -> TcpLink {
        TcpLink {
            address,
            connect_timeout,
            stream: None,
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream.as_mut().ok_or_else(not_connected)
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
        // Each resolved address in turn (a name may give v6 and v4).
        let addrs: Vec<SocketAddr> = self.address.to_socket_addrs()?.collect();
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl Link for TcpLink {
    fn name(&self) -> String {
        self.address.clone()
    }

    /// Every failure to connect reads as unplugged: refused, unreachable
    /// and timed out are all "the printer is not there now".
    fn open(&mut self) -> Result<(), EscposError> {
        self.close();
        let stream = self.connect().map_err(|e| EscposError::Unplugged {
            detail: format!("cannot connect to {}: {e}", self.address),
        })?;
        // Status requests are three bytes: send them now.
        stream.set_nodelay(true)?;
        tracing::debug!(address = %self.address, "printer connected");
        self.stream = Some(stream);
        Ok(())
    }

    fn close(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            tracing::debug!(address = %self.address, "printer connection closed");
        }
    }

    fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    fn discard_input(&mut self) -> io::Result<()> {
        let stream = self.stream()?;
        stream.set_nonblocking(true)?;
        let mut buf = [0u8; 256];
        let mut result = Ok(());
        for _ in 0..DISCARD_MAX_READS {
            match stream.read(&mut buf) {
                Ok(0) => {
                    result = Err(io::ErrorKind::UnexpectedEof.into());
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        stream.set_nonblocking(false)?;
        result
    }

    /// Non-blocking: a read timeout cannot be zero on a socket.
    fn read_pending(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stream = self.stream()?;
        stream.set_nonblocking(true)?;
        let result = stream.read(buf);
        stream.set_nonblocking(false)?;
        result
    }

    fn write(&mut self, bytes: &[u8], stall: Duration) -> io::Result<usize> {
        let stream = self.stream()?;
        stream.set_write_timeout(Some(stall.max(Duration::from_millis(1))))?;
        stream.write(bytes).map_err(timed_out)
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let stream = self.stream()?;
        stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        stream.read(buf).map_err(timed_out)
    }

    fn is_gone(&self, e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::NotConnected
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
        )
    }

    /// A silent peer may be a slow one: only end of file or a reset says
    /// it is gone.
    fn vanished(&self) -> Option<String> {
        None
    }

    /// The network is not the bottleneck; the printer's own pace shows
    /// through the write timeout.
    fn wire_time(&self, _bytes: usize) -> Duration {
        Duration::ZERO
    }
}

/// A socket timeout reads as `WouldBlock` on Unix: call it what it is.
fn timed_out(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::ErrorKind::TimedOut.into()
    } else {
        e
    }
}
