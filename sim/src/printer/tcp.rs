//! The printer on a TCP listener, as a network printer's raw port (9100):
//! one connection at a time, bytes in, status replies back on the same
//! connection.
//!
//! Unplugging closes the connection (the kiosk reads end of file) and the
//! listener (the kiosk's connect is refused); replugging listens again on
//! the same address, so the kiosk reconnects to what it was configured
//! with.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::{PrinterCore, Shared};
use crate::error::{Result, SimError};
use crate::pty::Done;

/// How long the worker waits on a connection or for one before looking
/// at its control channel again.
const POLL: Duration = Duration::from_millis(20);

/// A message from the handle to the worker.
enum TcpCtrl {
    Stop,
    Unplug(Done),
    Replug(Done),
    Reset(Done),
    Inject(Vec<u8>, Done),
}

/// The handle's half: the worker thread and the address it listens on.
#[derive(Debug)]
pub(crate) struct TcpPort {
    addr: SocketAddr,
    plugged: Arc<AtomicBool>,
    ctrl: Sender<TcpCtrl>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TcpCtrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TcpCtrl::Stop => "Stop",
            TcpCtrl::Unplug(_) => "Unplug",
            TcpCtrl::Replug(_) => "Replug",
            TcpCtrl::Reset(_) => "Reset",
            TcpCtrl::Inject(..) => "Inject",
        })
    }
}

impl TcpPort {
    /// Listen on `listen` (port 0: any free port) and serve the printer in
    /// `shared` on a thread of its own.
    pub(crate) fn start(listen: SocketAddr, shared: Shared) -> Result<TcpPort> {
        let listener = bind(listen)?;
        let addr = listener
            .local_addr()
            .map_err(SimError::io("reading the printer listener's address"))?;
        let plugged = Arc::new(AtomicBool::new(true));
        let (ctrl, ctrl_rx) = mpsc::channel();
        let mut worker = TcpWorker {
            addr,
            shared,
            listener: Some(listener),
            conn: None,
            plugged: plugged.clone(),
            ctrl: ctrl_rx,
        };
        let thread = std::thread::Builder::new()
            .name("kiosk-sim-printer-tcp".into())
            .spawn(move || worker.run())
            .map_err(SimError::io("spawning the printer TCP thread"))?;
        info!(%addr, "printer simulator listening");
        Ok(TcpPort {
            addr,
            plugged,
            ctrl,
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn is_plugged(&self) -> bool {
        self.plugged.load(Ordering::SeqCst)
    }

    pub(crate) fn unplug(&self) -> Result<()> {
        self.call(TcpCtrl::Unplug)
    }

    pub(crate) fn replug(&self) -> Result<()> {
        self.call(TcpCtrl::Replug)
    }

    pub(crate) fn reset(&self) -> Result<()> {
        self.call(TcpCtrl::Reset)
    }

    /// Send `bytes` on the kiosk's connection. Returns once written (the
    /// kiosk's receive queue cannot be seen from here).
    pub(crate) fn inject(&self, bytes: &[u8]) -> Result<()> {
        let bytes = bytes.to_vec();
        self.call(|done| TcpCtrl::Inject(bytes, done))
    }

    fn call(&self, make: impl FnOnce(Done) -> TcpCtrl) -> Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.ctrl
            .send(make(tx))
            .map_err(|_| SimError::Stopped("printer"))?;
        rx.recv().map_err(|_| SimError::Stopped("printer"))?
    }
}

impl Drop for TcpPort {
    fn drop(&mut self) {
        let _ = self.ctrl.send(TcpCtrl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener> {
    // std sets SO_REUSEADDR, so the port is free again at once after an
    // unplug left connections in TIME_WAIT.
    let listener = TcpListener::bind(addr).map_err(SimError::io(format!("listening on {addr}")))?;
    // Accepting must not block the control channel.
    listener
        .set_nonblocking(true)
        .map_err(SimError::io("setting the listener non-blocking"))?;
    Ok(listener)
}

/// The worker's half: the listener, the kiosk's connection, the printer.
struct TcpWorker {
    addr: SocketAddr,
    shared: Shared,
    listener: Option<TcpListener>,
    conn: Option<TcpStream>,
    plugged: Arc<AtomicBool>,
    ctrl: Receiver<TcpCtrl>,
}

enum Next {
    Go,
    Stop,
}

impl TcpWorker {
    fn run(&mut self) {
        let mut buf = vec![0u8; 4096];
        loop {
            loop {
                match self.ctrl.try_recv() {
                    Ok(msg) => {
                        if let Next::Stop = self.obey(msg) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let next = if let Some(conn) = self.conn.as_mut() {
                match conn.read(&mut buf) {
                    Ok(0) => {
                        debug!("printer: the kiosk closed the connection");
                        self.conn = None;
                        Next::Go
                    }
                    Ok(n) => {
                        self.on_bytes(&buf[..n]);
                        Next::Go
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        Next::Go
                    }
                    Err(e) => {
                        debug!(error = %e, "printer: connection failed");
                        self.conn = None;
                        Next::Go
                    }
                }
            } else if let Some(listener) = &self.listener {
                match listener.accept() {
                    Ok((conn, peer)) => {
                        match accepted(&conn) {
                            Ok(()) => {
                                debug!(%peer, "printer: kiosk connected");
                                self.conn = Some(conn);
                            }
                            Err(e) => warn!(error = %e, "printer: cannot set up the connection"),
                        }
                        Next::Go
                    }
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::WouldBlock {
                            warn!(error = %e, "printer: accept failed");
                        }
                        self.idle()
                    }
                }
            } else {
                // Unplugged: nothing to do until told.
                match self.ctrl.recv() {
                    Ok(msg) => self.obey(msg),
                    Err(_) => Next::Stop,
                }
            };
            if let Next::Stop = next {
                return;
            }
        }
    }

    /// Wait one poll period for a control message.
    fn idle(&mut self) -> Next {
        match self.ctrl.recv_timeout(POLL) {
            Ok(msg) => self.obey(msg),
            Err(RecvTimeoutError::Timeout) => Next::Go,
            Err(RecvTimeoutError::Disconnected) => Next::Stop,
        }
    }

    fn obey(&mut self, msg: TcpCtrl) -> Next {
        match msg {
            TcpCtrl::Stop => return Next::Stop,
            TcpCtrl::Unplug(done) => {
                self.unplug();
                let _ = done.send(Ok(()));
            }
            TcpCtrl::Replug(done) => {
                let _ = done.send(self.replug());
            }
            TcpCtrl::Reset(done) => {
                let _ = done.send(self.reset());
            }
            TcpCtrl::Inject(bytes, done) => {
                let result = match self.conn.as_mut() {
                    Some(conn) => conn
                        .write_all(&bytes)
                        .map_err(SimError::io("writing to the printer connection")),
                    None => Err(SimError::Io {
                        context: "injecting bytes: no kiosk connected".into(),
                        source: std::io::ErrorKind::NotConnected.into(),
                    }),
                };
                let _ = done.send(result);
            }
        }
        Next::Go
    }

    /// The connection and the listener close; the ticket in progress is
    /// interrupted first, so the kiosk sees the close only after the
    /// bookkeeping.
    fn unplug(&mut self) {
        if self.listener.is_none() {
            return;
        }
        self.core().unplugged();
        self.shared.1.notify_all();
        self.conn = None;
        self.listener = None;
        self.plugged.store(false, Ordering::SeqCst);
        info!(addr = %self.addr, "printer simulator unplugged");
    }

    /// Abort the kiosk's connection with a reset (RST, as a printer that
    /// rebooted answers); the listener stays, so the kiosk can connect
    /// again at once. The ticket in progress is interrupted.
    fn reset(&mut self) -> Result<()> {
        let Some(conn) = self.conn.take() else {
            return Err(SimError::Io {
                context: "resetting the connection: no kiosk connected".into(),
                source: std::io::ErrorKind::NotConnected.into(),
            });
        };
        self.core().unplugged();
        self.shared.1.notify_all();
        // Linger on with a zero timeout: close sends RST, not FIN.
        let linger = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        nix::sys::socket::setsockopt(&conn, nix::sys::socket::sockopt::Linger, &linger)
            .map_err(|e| SimError::io("setting SO_LINGER")(e.into()))?;
        drop(conn);
        info!(addr = %self.addr, "printer simulator reset the connection");
        Ok(())
    }

    /// Listen again on the same address (nothing if still listening).
    fn replug(&mut self) -> Result<()> {
        if self.listener.is_some() {
            return Ok(());
        }
        self.listener = Some(bind(self.addr)?);
        self.plugged.store(true, Ordering::SeqCst);
        info!(addr = %self.addr, "printer simulator plugged in");
        Ok(())
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        let (replies, unplug) = {
            let mut core = self.core();
            let take = core
                .bytes_until_unplug()
                .map_or(bytes.len(), |left| bytes.len().min(left as usize));
            let replies = core.receive(&bytes[..take]);
            (replies, core.bytes_until_unplug() == Some(0))
        };
        self.shared.1.notify_all();
        if unplug {
            // The replies to the last requests go nowhere either.
            self.unplug();
            return;
        }
        if !replies.is_empty()
            && let Some(conn) = self.conn.as_mut()
            && let Err(e) = conn.write_all(&replies)
        {
            warn!(error = %e, "printer connection write failed");
        }
    }

    fn core(&self) -> MutexGuard<'_, PrinterCore> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A kiosk's connection: blocking reads with a timeout (so control
/// messages are seen), replies sent at once.
fn accepted(conn: &TcpStream) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(POLL))?;
    conn.set_nodelay(true)
}
