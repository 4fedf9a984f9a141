//! Helpers shared by the tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use kiosk_idcard::Command;
use kiosk_idcard::frame::{Decoded, FrameDecoder, FrameError, Response};
use serialport::TTYPort;

/// How long any single answer may take before a test fails.
pub const ANSWER: Duration = Duration::from_secs(5);

/// Open the SAM link as the kiosk would.
pub fn open(link: &Path, baud: u32) -> TTYPort {
    serialport::new(link.to_str().unwrap(), baud)
        .timeout(Duration::from_millis(50))
        .open_native()
        .unwrap_or_else(|e| panic!("opening {}: {e}", link.display()))
}

/// What came back for one request.
#[derive(Debug)]
pub enum Got {
    Frame(Response),
    BadFrame(FrameError),
    /// No whole frame before the deadline: these bytes arrived.
    Nothing(Vec<u8>),
    /// The port failed (e.g. EIO after an unplug) or hit EOF.
    Closed,
}

/// Read until one frame decodes, or `within` passes.
pub fn read_frame(port: &mut TTYPort, within: Duration) -> Got {
    let deadline = Instant::now() + within;
    let mut decoder = FrameDecoder::new();
    let mut raw = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match port.read(&mut buf) {
            Ok(0) => return Got::Closed,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                decoder.push(&buf[..n]);
                match decoder.next_frame() {
                    Ok(Decoded::Frame(p)) => {
                        return Got::Frame(Response::from_payload(&p).unwrap());
                    }
                    Ok(Decoded::Incomplete) => {}
                    Err(e) => return Got::BadFrame(e),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Got::Closed,
        }
    }
    Got::Nothing(raw)
}

/// Send a raw request frame and take the answer.
pub fn exchange(port: &mut TTYPort, frame: &[u8]) -> Got {
    port.write_all(frame).unwrap();
    read_frame(port, ANSWER)
}

/// Send a command and expect a well-formed answer.
pub fn ask(port: &mut TTYPort, command: Command) -> Response {
    match exchange(port, &command.request_frame()) {
        Got::Frame(r) => r,
        other => panic!("{command:?}: expected a frame, got {other:?}"),
    }
}

/// vpcd's listening side: two consecutive loopback ports, as vpcd's two slots.
pub struct FakeVpcd {
    pub listeners: [TcpListener; 2],
    pub port: u16,
}

impl FakeVpcd {
    pub fn bind() -> FakeVpcd {
        for _ in 0..64 {
            let l0 = TcpListener::bind(("127.0.0.1", 0)).unwrap();
            let port = l0.local_addr().unwrap().port();
            let Some(next) = port.checked_add(1) else {
                continue;
            };
            if let Ok(l1) = TcpListener::bind(("127.0.0.1", next)) {
                for l in [&l0, &l1] {
                    l.set_nonblocking(true).unwrap();
                }
                return FakeVpcd {
                    listeners: [l0, l1],
                    port,
                };
            }
        }
        panic!("no two consecutive free ports");
    }

    /// The card's connection to `slot`, if it comes within `within`.
    pub fn accept_within(&self, slot: usize, within: Duration) -> Option<Vpcd> {
        let deadline = Instant::now() + within;
        loop {
            match self.listeners[slot].accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(ANSWER)).unwrap();
                    return Some(Vpcd { stream });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The card's connection to slot 0, which must come.
    pub fn accept(&self) -> Vpcd {
        self.accept_within(0, ANSWER)
            .expect("the virtual card did not connect")
    }
}

/// vpcd's side of a virtual card connection.
pub struct Vpcd {
    pub stream: TcpStream,
}

impl Vpcd {
    /// Send one message (length-prefixed).
    pub fn send(&mut self, msg: &[u8]) {
        let mut out = (msg.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(msg);
        // A closed connection may refuse the write: the read then says so.
        let _ = self.stream.write_all(&out);
    }
    /// Receive one message; `None` when the card closed the connection.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 2];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no answer from the virtual card within {ANSWER:?}")
            }
            Err(_) => return None,
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut msg).ok()?;
        Some(msg)
    }
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.send(apdu);
        self.recv().expect("connection closed instead of an answer")
    }
}

/// A tunnelling APDU around a GA 467 frame: extended length.
pub fn tunnel_extended(frame: &[u8]) -> Vec<u8> {
    let mut apdu = vec![0xFF, 0x69, 0x96, 0x00, 0x00];
    apdu.extend_from_slice(&(frame.len() as u16).to_be_bytes());
    apdu.extend_from_slice(frame);
    apdu.extend_from_slice(&[0x00, 0x00]);
    apdu
}

/// A tunnelling APDU around a GA 467 frame: short, with Le `00`.
pub fn tunnel_short(frame: &[u8]) -> Vec<u8> {
    let mut apdu = vec![0xFF, 0x69, 0x96, 0x00, frame.len() as u8];
    apdu.extend_from_slice(frame);
    apdu.push(0x00);
    apdu
}

/// Split a response APDU into data and SW.
pub fn split_sw(r: &[u8]) -> (&[u8], [u8; 2]) {
    let (data, sw) = r.split_at(r.len() - 2);
    (data, [sw[0], sw[1]])
}

/// Decode one whole response frame.
pub fn decode_response(frame: &[u8]) -> Response {
    let mut d = FrameDecoder::new();
    d.push(frame);
    match d.next_frame().unwrap() {
        Decoded::Frame(p) => Response::from_payload(&p).unwrap(),
        Decoded::Incomplete => panic!("incomplete frame of {} bytes", frame.len()),
    }
}
