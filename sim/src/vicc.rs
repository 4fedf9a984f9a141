//! A virtual ID card (with the reader's built-in SAM) for pcscd's vpcd
//! virtual reader.
//!
//! # vpcd as installed (Debian bookworm: vsmartcard-vpcd 3.3, `libifdvpcd.so.0.8`)
//! vpcd can listen for virtual cards (`DEVICENAME /dev/null:0xPORT`, its
//! default) or connect to them (`DEVICENAME host:0xPORT`, "reversed").
//! Reversed mode is unusable with this vpcd version: once a connection is
//! lost, for any reason (a card removed, the card closing an absent slot's
//! connection, nobody listening), its next presence poll calls `select()`
//! on fd -1 (`vicc_connect` tests `if (ctx->server_sock)` and the unset
//! socket is -1) and pcscd aborts with "bit out of range 0 - FD_SETSIZE".
//! Fixed upstream in 2022 (vsmartcard 76543ea), not in bookworm.
//!
//! So vpcd listens and the virtual card connects, as vpcd intends. vpcd
//! binds `INADDR_ANY`; to keep that off every interface but loopback the
//! test harness runs pcscd in a private network namespace that only has
//! loopback ([`crate::Pcscd::netns`]), and the card's threads join that
//! namespace before connecting to `127.0.0.1`: the one given in
//! [`ViccConfig::netns`], or by default the namespace of this process's
//! running [`crate::Pcscd`] (the card and pcscd may start in either order).
//!
//! vpcd makes two slots (two readers, "Virtual PCD 00 00" listening on PORT
//! and "Virtual PCD 00 01" on PORT+1). A [`VirtualCard`] serves both: a slot
//! with a card connects (retrying while nobody listens); removing the card
//! closes the connection, which vpcd reports as "no card" at its next poll
//! and accepts the next connection at the poll after. A slot without a card
//! does not connect: vpcd reports it empty.
//!
//! # Wire protocol
//! Each message is a 2-byte big-endian length and a payload. From vpcd, a
//! 1-byte payload is a control: `00` power off, `01` power on, `02` reset
//! (no answer), `04` get ATR (answered with [`ATR`]); vpcd polls presence by
//! sending `04` a few times a second. A longer payload is a command APDU,
//! answered with the response APDU.
//!
//! # APDUs
//! * `00 36 00 00 08`: the ID card's UID (8 bytes) + `90 00`; `FF CA 00 00 00`
//!   (PC/SC GET DATA) gives the same.
//! * `FF 69 96 00` (configurable, [`ViccConfig::tunnel_header`]) carrying a
//!   whole GA 467 request frame as data, short (`Lc`) or extended
//!   (`00 Lc1 Lc2`, Le `00 00` or `Le1 Le2`): the response data is the
//!   whole response frame of the reader's SAM ([`SamCore`]) + `90 00`.
//!   An extended APDU gets the whole frame at once. A short APDU whose
//!   answer is longer than its Le (256 for `00`) gets the first Le bytes
//!   and `61 XX`; `GET RESPONSE` (`00 C0 00 00 XX`) fetches the rest, ending
//!   with `90 00`. A short APDU without Le gets `61 XX` and no data.
//!   A data field that holds no whole frame gets `67 00`.
//! * anything else: `6D 00`.
//!
//! # Faults
//! `PullMidRead` closes the connection instead of answering the tunnelled
//! read (vpcd's transmit fails, then it reports no card); the others act
//! on the tunnelled SAM answers as on the pty SAM.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, trace, warn};

use crate::error::{Result, SimError};
use crate::profile::{CardProfile, Fault};
use crate::sam::{DEFAULT_SAM_ID, SamCore, SamStats, wire_time};

/// The card's ATR: a PC/SC part 3 contactless (type B) pseudo-ATR,
/// `3B 88 80 01` + 8 historical bytes + TCK (XOR of the bytes after TS).
pub const ATR: [u8; 13] = atr();

const fn atr() -> [u8; 13] {
    let mut a = [0x3B, 0x88, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut tck = 0;
    let mut i = 1;
    while i < 12 {
        tck ^= a[i];
        i += 1;
    }
    a[12] = tck;
    a
}

/// The default header of the GA 467 tunnelling pseudo-APDU.
pub const DEFAULT_TUNNEL_HEADER: [u8; 4] = [0xFF, 0x69, 0x96, 0x00];

/// vpcd's default port (0x8C7B), as in Debian's `/etc/reader.conf.d/vpcd`.
pub const VPCD_DEFAULT_PORT: u16 = 0x8C7B;

/// How long to wait between connection attempts while vpcd is not listening.
const RETRY: Duration = Duration::from_millis(100);

/// vpcd control bytes.
pub mod ctrl {
    pub const POWER_OFF: u8 = 0;
    pub const POWER_ON: u8 = 1;
    pub const RESET: u8 = 2;
    pub const ATR: u8 = 4;
}

/// Configuration of a [`VirtualCard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViccConfig {
    /// vpcd's port for slot 0 on 127.0.0.1; slot 1 connects to `port + 1`.
    /// `0` means [`VPCD_DEFAULT_PORT`].
    pub port: u16,
    /// CLA INS P1 P2 of the GA 467 tunnelling pseudo-APDU.
    pub tunnel_header: [u8; 4],
    /// Delay tunnelled answers by the wire time of request and response
    /// frames on the reader's internal SAM UART at this speed.
    pub emulate_baud: Option<u32>,
    /// The id of the reader's SAM (`12 FF`).
    pub sam_id: [u8; 16],
    /// The network namespace to connect from (`/run/netns/NAME`, e.g.
    /// [`crate::Pcscd::netns`]). `None`: automatic, the namespace of this
    /// process's running [`crate::Pcscd`] if there is one (followed across
    /// pcscd harnesses coming and going), else the process's own.
    pub netns: Option<PathBuf>,
}

impl Default for ViccConfig {
    fn default() -> ViccConfig {
        ViccConfig {
            port: VPCD_DEFAULT_PORT,
            tunnel_header: DEFAULT_TUNNEL_HEADER,
            emulate_baud: None,
            sam_id: DEFAULT_SAM_ID,
            netns: None,
        }
    }
}

impl ViccConfig {
    /// Defaults, connecting to `port`.
    pub fn new(port: u16) -> ViccConfig {
        ViccConfig {
            port,
            ..ViccConfig::default()
        }
    }
}

/// Counters of one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViccStats {
    /// Connections made to vpcd.
    pub connections: u64,
    /// Command APDUs received.
    pub apdus: u64,
    /// Tunnelled GA 467 requests.
    pub tunnelled: u64,
    /// The reader's SAM.
    pub sam: SamStats,
}

/// A virtual ID card for a two-slot vpcd reader, served by one background
/// thread a slot. Drop closes its connections and stops the threads.
#[derive(Debug)]
pub struct VirtualCard {
    ports: [u16; 2],
    slots: [Arc<Slot>; 2],
    threads: Vec<JoinHandle<()>>,
}

impl VirtualCard {
    /// Start the slot threads (joining `config.netns` first, if set). A
    /// slot connects to vpcd once a card is placed in it.
    pub fn start(mut config: ViccConfig) -> Result<VirtualCard> {
        if config.port == 0 {
            config.port = VPCD_DEFAULT_PORT;
        }
        let next = config.port.checked_add(1).ok_or_else(|| SimError::Io {
            context: format!(
                "vpcd port {} cannot be used (slot 1 needs port + 1)",
                config.port
            ),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
        let ports = [config.port, next];
        let slots = [0, 1].map(|index| {
            Arc::new(Slot {
                index,
                port: ports[index],
                config: config.clone(),
                state: Mutex::new(SlotState {
                    core: SamCore::new(config.sam_id),
                    generation: 0,
                    conn: None,
                    pending: None,
                    stats: ViccStats::default(),
                    stopped: false,
                }),
                cv: Condvar::new(),
            })
        });
        let mut card = VirtualCard {
            ports,
            slots,
            threads: Vec::new(),
        };
        for slot in card.slots.clone() {
            let (ready_tx, ready_rx) = mpsc::channel();
            let netns = config.netns.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("kiosk-sim-vicc{}", slot.index))
                .spawn(move || match NetnsSwitch::new(netns) {
                    Ok(switch) => {
                        let _ = ready_tx.send(Ok(()));
                        slot.run(switch);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                });
            let thread = spawned.map_err(SimError::io("spawning a virtual card thread"))?;
            card.threads.push(thread);
            ready_rx.recv().map_err(|_| SimError::Stopped("vicc"))??;
        }
        info!(port0 = ports[0], port1 = ports[1], netns = ?config.netns, "virtual card ready");
        Ok(card)
    }

    /// The two vpcd ports: slot 0 (the card's reader) and slot 1.
    pub fn ports(&self) -> [u16; 2] {
        self.ports
    }

    /// Place a card in slot 0's reader.
    pub fn place(&self, card: CardProfile) {
        self.place_in(0, card);
    }

    /// Take the card out of slot 0's reader.
    pub fn remove(&self) {
        self.remove_from(0);
    }

    /// Set slot 0's fault (wins over the card's own; `PullMidRead` closes the
    /// connection in the middle of a tunnelled read).
    pub fn set_fault(&self, fault: Fault) {
        self.slots[0].lock().core.set_fault(fault);
    }

    /// Slot 0's counters.
    pub fn stats(&self) -> ViccStats {
        self.slot_stats(0)
    }

    /// Place a card in slot `slot` (0 or 1), replacing any.
    pub fn place_in(&self, slot: usize, card: CardProfile) {
        let s = &self.slots[slot];
        let mut st = s.lock();
        st.core.place(card);
        st.changed();
        s.cv.notify_all();
    }

    /// Take the card out of slot `slot`.
    pub fn remove_from(&self, slot: usize) {
        let s = &self.slots[slot];
        let mut st = s.lock();
        st.core.remove();
        st.changed();
        s.cv.notify_all();
    }

    /// Counters of slot `slot`.
    pub fn slot_stats(&self, slot: usize) -> ViccStats {
        let s = self.slots[slot].lock();
        ViccStats {
            sam: s.core.stats(),
            ..s.stats
        }
    }

    /// Is a card in slot `slot`?
    pub fn is_present(&self, slot: usize) -> bool {
        self.slots[slot].lock().core.card().is_some()
    }

    /// Is slot `slot` connected to vpcd right now?
    pub fn is_connected(&self, slot: usize) -> bool {
        self.slots[slot].lock().conn.is_some()
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        for slot in &self.slots {
            let mut s = slot.lock();
            s.stopped = true;
            if let Some(conn) = s.conn.take() {
                let _ = conn.shutdown(Shutdown::Both);
            }
            slot.cv.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        info!(port0 = self.ports[0], "virtual card stopped");
    }
}

/// Which network namespace a slot thread connects from.
struct NetnsSwitch {
    /// The thread's own namespace, to come back to (automatic mode only).
    home: Option<File>,
    /// The harness namespace joined, if any (automatic mode only).
    current: Option<PathBuf>,
}

impl NetnsSwitch {
    /// Join `fixed` for good, or prepare to follow the harness's namespace.
    fn new(fixed: Option<PathBuf>) -> Result<NetnsSwitch> {
        match fixed {
            Some(path) => {
                join(&path)?;
                Ok(NetnsSwitch {
                    home: None,
                    current: None,
                })
            }
            None => {
                let home = File::open("/proc/thread-self/ns/net")
                    .map_err(SimError::io("opening this thread's network namespace"))?;
                Ok(NetnsSwitch {
                    home: Some(home),
                    current: None,
                })
            }
        }
    }

    /// In automatic mode, move to the running pcscd harness's namespace (or back home).
    fn follow(&mut self) {
        let Some(home) = &self.home else { return };
        let want = crate::pcscd::harness_netns();
        if want == self.current {
            return;
        }
        let result = match &want {
            Some(path) => join(path),
            None => setns(home, CloneFlags::CLONE_NEWNET).map_err(|e| SimError::Io {
                context: "returning to this process's network namespace".into(),
                source: e.into(),
            }),
        };
        match result {
            Ok(()) => {
                debug!(netns = ?want, "virtual card follows the pcscd harness");
                self.current = want;
            }
            Err(e) => warn!(error = %e, "switching network namespace"),
        }
    }
}

fn join(path: &std::path::Path) -> Result<()> {
    let file = File::open(path).map_err(SimError::io(format!(
        "opening network namespace {}",
        path.display()
    )))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| SimError::Io {
        context: format!("joining network namespace {}", path.display()),
        source: e.into(),
    })
}

#[derive(Debug)]
struct Slot {
    index: usize,
    port: u16,
    config: ViccConfig,
    state: Mutex<SlotState>,
    /// Signalled on place/remove and on stop.
    cv: Condvar,
}

#[derive(Debug)]
struct SlotState {
    core: SamCore,
    /// Bumped on every place/remove: a connection from an older generation is stale.
    generation: u64,
    /// The open connection (a clone, to shut it down from outside).
    conn: Option<TcpStream>,
    /// The rest of a long tunnelled answer, for GET RESPONSE.
    pending: Option<Pending>,
    stats: ViccStats,
    stopped: bool,
}

#[derive(Debug)]
struct Pending {
    rest: Vec<u8>,
    total: usize,
    completes_read: bool,
}

impl SlotState {
    /// The card changed: drop what the old card's connection had going.
    fn changed(&mut self) {
        self.generation += 1;
        self.pending = None;
        if let Some(conn) = self.conn.take() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// What to do with one message from vpcd.
enum Action {
    Nothing,
    Answer { bytes: Vec<u8>, delay: Duration },
    Close,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait up to `d`; false if the slot was stopped or its card changed meanwhile.
    fn pause(&self, generation: u64, d: Duration) -> bool {
        let s = self.lock();
        let (s, _) = self
            .cv
            .wait_timeout_while(s, d, |s| !s.stopped && s.generation == generation)
            .unwrap_or_else(|e| e.into_inner());
        !s.stopped && s.generation == generation
    }

    /// The slot's life: wait for a card, connect to vpcd, serve until the
    /// card goes (or vpcd hangs up: then connect again).
    fn run(&self, mut netns: NetnsSwitch) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            let generation = {
                let mut s = self.lock();
                while !s.stopped && s.core.card().is_none() {
                    s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                if s.stopped {
                    return;
                }
                s.generation
            };
            let stream = loop {
                netns.follow();
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(stream) => break Some(stream),
                    Err(e) => {
                        trace!(slot = self.index, port = self.port, error = %e, "vpcd not listening yet")
                    }
                }
                if !self.pause(generation, RETRY) {
                    break None;
                }
            };
            let Some(stream) = stream else { continue };
            {
                let mut s = self.lock();
                if s.stopped {
                    return;
                }
                if s.generation != generation {
                    continue;
                }
                s.conn = stream.try_clone().ok();
                s.stats.connections += 1;
            }
            debug!(slot = self.index, port = self.port, "connected to vpcd");
            let _ = stream.set_nodelay(true);
            self.serve(stream, generation);
            let same_card = {
                let mut s = self.lock();
                if s.generation == generation {
                    s.conn = None;
                    s.pending = None;
                }
                s.generation == generation
            };
            // vpcd hung up on a card still there (pcscd stopped or restarted):
            // connect again, without hammering it.
            if same_card && !self.pause(generation, RETRY) && self.lock().stopped {
                return;
            }
        }
    }

    fn serve(&self, mut stream: TcpStream, generation: u64) {
        loop {
            let Some(msg) = read_message(&mut stream) else {
                return;
            };
            let action = {
                let mut s = self.lock();
                if s.stopped || s.generation != generation || s.core.card().is_none() {
                    return;
                }
                self.handle(&mut s, &msg)
            };
            match action {
                Action::Nothing => {}
                Action::Close => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                Action::Answer { bytes, delay } => {
                    if !delay.is_zero() && !self.pause(generation, delay) {
                        return;
                    }
                    let Ok(len) = u16::try_from(bytes.len()) else {
                        warn!(
                            slot = self.index,
                            len = bytes.len(),
                            "answer too long for vpcd"
                        );
                        return;
                    };
                    let mut out = Vec::with_capacity(bytes.len() + 2);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&bytes);
                    if stream.write_all(&out).is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn handle(&self, s: &mut SlotState, msg: &[u8]) -> Action {
        match msg {
            [] => Action::Nothing,
            [ctrl::ATR] => Action::Answer {
                bytes: ATR.to_vec(),
                delay: Duration::ZERO,
            },
            [c] => {
                trace!(slot = self.index, ctrl = c, "vpcd control");
                if matches!(*c, ctrl::POWER_OFF | ctrl::RESET | ctrl::POWER_ON) {
                    s.pending = None;
                }
                Action::Nothing
            }
            apdu => {
                s.stats.apdus += 1;
                self.apdu(s, apdu)
            }
        }
    }

    fn apdu(&self, s: &mut SlotState, raw: &[u8]) -> Action {
        let answer = |bytes: Vec<u8>| Action::Answer {
            bytes,
            delay: Duration::ZERO,
        };
        let sw = |sw1: u8, sw2: u8| answer(vec![sw1, sw2]);
        let Some(apdu) = Apdu::parse(raw) else {
            return sw(0x67, 0x00);
        };
        let header = [apdu.cla, apdu.ins, apdu.p1, apdu.p2];
        debug!(
            slot = self.index,
            header = format_args!("{:02X?}", header),
            lc = apdu.data.len(),
            "APDU"
        );
        if header == self.config.tunnel_header {
            return self.tunnel(s, &apdu);
        }
        match header {
            [0x00, 0x36, 0x00, 0x00] | [0xFF, 0xCA, 0x00, 0x00] => {
                let Some(card) = s.core.card() else {
                    return sw(0x6A, 0x82);
                };
                let mut bytes = card.uid.to_vec();
                bytes.extend_from_slice(&[0x90, 0x00]);
                answer(bytes)
            }
            [0x00, 0xC0, 0x00, 0x00] => self.get_response(s, apdu.le.unwrap_or(256)),
            _ => sw(0x6D, 0x00),
        }
    }

    fn tunnel(&self, s: &mut SlotState, apdu: &Apdu<'_>) -> Action {
        s.stats.tunnelled += 1;
        s.pending = None;
        s.core.record_in(apdu.data.len());
        let Some(reply) = s.core.handle_frame(apdu.data) else {
            return Action::Answer {
                bytes: vec![0x67, 0x00],
                delay: Duration::ZERO,
            };
        };
        if reply.pulled {
            info!(
                slot = self.index,
                "card pulled mid-read: closing the connection"
            );
            s.generation += 1;
            s.conn = None;
            return Action::Close;
        }
        let mut delay = reply.delay;
        if let Some(baud) = self.config.emulate_baud {
            delay += wire_time(apdu.data.len() + reply.bytes.len(), baud);
        }
        let total = reply.bytes.len();
        let limit = if apdu.extended {
            usize::MAX
        } else {
            apdu.le.unwrap_or(0)
        };
        if total <= limit {
            s.core.record_out(total, reply.completes_read);
            let mut bytes = reply.bytes;
            bytes.extend_from_slice(&[0x90, 0x00]);
            return Action::Answer { bytes, delay };
        }
        // Short APDU, long answer: chain with 61 XX / GET RESPONSE.
        let mut bytes = reply.bytes;
        let rest = bytes.split_off(limit);
        s.pending = Some(Pending {
            rest,
            total,
            completes_read: reply.completes_read,
        });
        let left = s.pending.as_ref().map_or(0, |p| p.rest.len());
        bytes.extend_from_slice(&[0x61, chain_len(left)]);
        Action::Answer { bytes, delay }
    }

    fn get_response(&self, s: &mut SlotState, le: usize) -> Action {
        let Some(mut pending) = s.pending.take() else {
            return Action::Answer {
                bytes: vec![0x69, 0x85],
                delay: Duration::ZERO,
            };
        };
        let n = le.min(pending.rest.len());
        let rest = pending.rest.split_off(n);
        let mut bytes = std::mem::replace(&mut pending.rest, rest);
        if pending.rest.is_empty() {
            s.core.record_out(pending.total, pending.completes_read);
            bytes.extend_from_slice(&[0x90, 0x00]);
        } else {
            bytes.extend_from_slice(&[0x61, chain_len(pending.rest.len())]);
            s.pending = Some(pending);
        }
        Action::Answer {
            bytes,
            delay: Duration::ZERO,
        }
    }
}

/// `XX` of `61 XX`: bytes still available, `00` meaning 256 or more.
fn chain_len(left: usize) -> u8 {
    if left >= 256 { 0 } else { left as u8 }
}

/// Read one vpcd message; `None` at EOF or on error.
fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg).ok()?;
    Some(msg)
}

/// A command APDU (ISO 7816-4 cases 1-4, short and extended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Expected response length (`00` → 256, extended `00 00` → 65536); `None` without Le.
    pub le: Option<usize>,
    pub extended: bool,
}

impl<'a> Apdu<'a> {
    /// Parse a command APDU; `None` if its length fields do not add up.
    pub fn parse(b: &'a [u8]) -> Option<Apdu<'a>> {
        let [cla, ins, p1, p2, body @ ..] = b else {
            return None;
        };
        let apdu = |data: &'a [u8], le: Option<usize>, extended: bool| {
            Some(Apdu {
                cla: *cla,
                ins: *ins,
                p1: *p1,
                p2: *p2,
                data,
                le,
                extended,
            })
        };
        let short_le = |x: u8| if x == 0 { 256 } else { usize::from(x) };
        let ext_le = |h: u8, l: u8| match u16::from_be_bytes([h, l]) {
            0 => 65536,
            n => usize::from(n),
        };
        match body {
            [] => apdu(&[], None, false),
            [le] => apdu(&[], Some(short_le(*le)), false),
            [0, h, l] => apdu(&[], Some(ext_le(*h, *l)), true),
            [0, h, l, rest @ ..] => {
                let lc = usize::from(u16::from_be_bytes([*h, *l]));
                if lc == 0 {
                    return None;
                }
                match rest.len() {
                    n if n == lc => apdu(rest, None, true),
                    n if n == lc + 2 => {
                        apdu(&rest[..lc], Some(ext_le(rest[lc], rest[lc + 1])), true)
                    }
                    _ => None,
                }
            }
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                match rest.len() {
                    n if n == lc => apdu(rest, None, false),
                    n if n == lc + 1 => apdu(&rest[..lc], Some(short_le(rest[lc])), false),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atr_has_a_correct_tck() {
        assert_eq!(ATR, [0x3B, 0x88, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x09]);
        assert_eq!(ATR[1..].iter().fold(0, |a, b| a ^ b), 0);
    }

    #[test]
    fn apdu_cases() {
        let a = Apdu::parse(&[0x00, 0x36, 0x00, 0x00, 0x08]).unwrap();
        assert_eq!((a.data.len(), a.le, a.extended), (0, Some(8), false));
        let a = Apdu::parse(&[0xFF, 0x69, 0x96, 0x00, 0x02, 0xAA, 0xBB]).unwrap();
        assert_eq!((a.data, a.le), (&[0xAA, 0xBB][..], None));
        let a = Apdu::parse(&[0xFF, 0x69, 0x96, 0x00, 0x02, 0xAA, 0xBB, 0x00]).unwrap();
        assert_eq!(a.le, Some(256));
        let a = Apdu::parse(&[
            0xFF, 0x69, 0x96, 0x00, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x00, 0x00,
        ])
        .unwrap();
        assert_eq!(
            (a.data, a.le, a.extended),
            (&[0xAA, 0xBB][..], Some(65536), true)
        );
        let a = Apdu::parse(&[0xFF, 0x69, 0x96, 0x00, 0x00, 0x00, 0x02, 0xAA, 0xBB]).unwrap();
        assert_eq!((a.le, a.extended), (None, true));
        let a = Apdu::parse(&[0x00, 0xC0, 0x00, 0x00, 0x00, 0x05, 0x00]).unwrap();
        assert_eq!((a.le, a.extended), (Some(1280), true));
        assert!(Apdu::parse(&[0x00, 0x36, 0x00]).is_none());
        assert!(Apdu::parse(&[0xFF, 0x69, 0x96, 0x00, 0x05, 0xAA]).is_none());
    }

    #[test]
    fn chain_len_saturates_at_256() {
        assert_eq!(chain_len(1000), 0);
        assert_eq!(chain_len(256), 0);
        assert_eq!(chain_len(39), 39);
    }
}
