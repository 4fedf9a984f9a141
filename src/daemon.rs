//! The daemon's shared state and event bus, and its `run` loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kiosk_idreader::CardRead;
use kiosk_proto::{
    CardReadInfo, DeviceInfo, DeviceState, Event, EventEnvelope, HelloInfo, MaskedIdentity,
    ReaderInfo, StatusInfo,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Events buffered per subscriber before it is considered lagging.
const EVENT_BUFFER: usize = 1024;

/// State shared by the API server and the device supervisors.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    started: Instant,
    seq: AtomicU64,
    events: broadcast::Sender<EventEnvelope>,
    state: Mutex<State>,
    /// Cancelled when the daemon stops.
    pub shutdown: CancellationToken,
    /// The local database (outbox, audit trail, queue counters), if configured.
    pub store: Option<Arc<crate::store::Store>>,
    /// Wakes the sync worker when a change is committed or retried.
    pub wake: Arc<tokio::sync::Notify>,
    link: Mutex<crate::changes::LinkState>,
    /// The ticket printer's state (`None` without a `[printer]`).
    printer_state: Mutex<Option<crate::printer::PrinterState>>,
    /// The running printer, for printing.
    printer: Mutex<Option<Arc<kiosk_escpos::PrinterHandle>>>,
    /// Serialises ticket issuing (numbering, waiting ahead, printing order).
    pub(crate) queue_lock: tokio::sync::Mutex<QueueTurn>,
    /// Card reads so far (each read's serial number).
    card_reads: AtomicU64,
    /// The core-bank client for lookups (made on first use).
    pub(crate) corebank_client: std::sync::OnceLock<Option<kiosk_corebank::CoreBankClient>>,
    /// The customer session, one at a time (`session`).
    pub(crate) session: crate::session::SessionSlot,
    /// Fleet metrics, counted as events are published.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The running readers' handles, by reader name (held by the device
    /// supervisors; `selftest` borrows them).
    pub(crate) reader_slots: Mutex<BTreeMap<String, crate::devices::Slot>>,
}

#[derive(Debug, Default)]
struct State {
    readers: BTreeMap<String, ReaderState>,
}

/// What the daemon knows of one ID reader.
#[derive(Debug)]
struct ReaderState {
    transport: String,
    state: DeviceState,
    detail: Option<String>,
    attached: bool,
    sam_id: Option<String>,
    card_present: bool,
    /// The card on the reader, as read. The full read stays in the daemon
    /// and is dropped (its identity zeroized) when the card leaves.
    current: Option<CurrentCard>,
    reads_ok: u64,
    reads_failed: u64,
    last_error: Option<String>,
}

#[derive(Debug)]
struct CurrentCard {
    info: CardReadInfo,
    read: Box<CardRead>,
    /// Which read this was, kiosk-wide (a new placement is a new read).
    serial: u64,
    /// Handed to a `read_card` caller or a session already: each read is
    /// handed out once (rule S2: not to the next customer).
    handed: bool,
}

/// The queue machine's turn: tickets are numbered and printed one at a
/// time, in order.
#[derive(Debug, Default)]
pub(crate) struct QueueTurn {
    /// The card read the last ticket used (rule Q3: a card left on the
    /// reader is not the next customer's swipe).
    pub(crate) last_swipe_used: Option<u64>,
}

impl Shared {
    pub fn new(config: Config, store: Option<Arc<crate::store::Store>>) -> Arc<Shared> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let mut state = State::default();
        for r in &config.readers {
            state.readers.insert(
                r.name.clone(),
                ReaderState {
                    transport: transport_name(r).to_string(),
                    state: DeviceState::Starting,
                    detail: None,
                    attached: false,
                    sam_id: None,
                    card_present: false,
                    current: None,
                    reads_ok: 0,
                    reads_failed: 0,
                    last_error: None,
                },
            );
        }
        Arc::new(Shared {
            started: Instant::now(),
            seq: AtomicU64::new(0),
            events,
            state: Mutex::new(state),
            shutdown: CancellationToken::new(),
            store,
            wake: Arc::new(tokio::sync::Notify::new()),
            link: Mutex::new(crate::changes::LinkState::default()),
            printer_state: Mutex::new(
                config
                    .printer
                    .as_ref()
                    .map(|p| crate::printer::PrinterState::new(&p.name)),
            ),
            printer: Mutex::new(None),
            queue_lock: tokio::sync::Mutex::new(QueueTurn::default()),
            card_reads: AtomicU64::new(0),
            corebank_client: std::sync::OnceLock::new(),
            session: crate::session::SessionSlot::default(),
            metrics: Arc::default(),
            reader_slots: Mutex::new(BTreeMap::new()),
            config: Arc::new(config),
        })
    }

    /// The core-bank link as last seen.
    pub fn link(&self) -> crate::changes::LinkState {
        self.link_mut().clone()
    }

    pub(crate) fn link_mut(&self) -> MutexGuard<'_, crate::changes::LinkState> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record reachability; emit an event when it changes.
    pub(crate) fn set_link(&self, reachable: bool, detail: Option<String>) {
        let changed = {
            let mut link = self.link_mut();
            let changed = link.reachable != Some(reachable);
            link.reachable = Some(reachable);
            link.detail = detail.clone();
            changed
        };
        if changed {
            tracing::info!(
                reachable,
                detail = detail.as_deref().unwrap_or(""),
                "core bank link"
            );
            self.emit(Event::CoreBankLink { reachable, detail });
        }
    }

    pub(crate) fn printer_state_mut(&self) -> MutexGuard<'_, Option<crate::printer::PrinterState>> {
        self.printer_state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The printer's state as last reported.
    pub fn printer_state(&self) -> Option<crate::printer::PrinterState> {
        self.printer_state_mut().clone()
    }

    /// The printer's slot, locked: its supervisor puts each new handle in.
    pub(crate) fn printer_slot(&self) -> MutexGuard<'_, Option<Arc<kiosk_escpos::PrinterHandle>>> {
        self.printer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn take_printer_handle(&self) -> Option<Arc<kiosk_escpos::PrinterHandle>> {
        self.printer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The running printer, if any.
    pub fn printer_handle(&self) -> Option<Arc<kiosk_escpos::PrinterHandle>> {
        self.printer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventEnvelope> {
        self.events.subscribe()
    }

    /// Publish an event to every subscriber.
    pub fn emit(&self, event: Event) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let at_ms = chrono::Utc::now().timestamp_millis();
        self.metrics.observe(&event);
        // No subscriber is fine: events are not stored.
        let _ = self.events.send(EventEnvelope { seq, at_ms, event });
    }

    /// The session state as of now, as an event for one subscriber that
    /// missed events (same `seq` as the last event emitted: nothing new
    /// happened, the state is said again).
    pub fn session_resync(&self) -> EventEnvelope {
        EventEnvelope {
            seq: self.seq.load(Ordering::Relaxed),
            at_ms: chrono::Utc::now().timestamp_millis(),
            event: Event::Session(self.session_state()),
        }
    }

    pub fn hello(&self) -> HelloInfo {
        HelloInfo {
            protocol: kiosk_proto::PROTOCOL_VERSION,
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            kiosk_id: self.config.kiosk.id.clone(),
        }
    }

    pub fn status(&self) -> StatusInfo {
        let printer = self.printer_state();
        let state = self.lock();
        let mut devices: Vec<DeviceInfo> = state
            .readers
            .iter()
            .map(|(name, r)| DeviceInfo {
                name: name.clone(),
                kind: "id_reader".into(),
                state: r.state,
                detail: r.detail.clone(),
                last_error: r.last_error.clone(),
                sam_id: r.sam_id.clone(),
            })
            .collect();
        if let Some(p) = printer {
            devices.push(DeviceInfo {
                name: p.name.clone(),
                kind: "printer".into(),
                state: p.state,
                detail: p.detail(),
                last_error: p.last_error.clone(),
                sam_id: None,
            });
        }
        StatusInfo {
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            kiosk_id: self.config.kiosk.id.clone(),
            branch_id: self.config.kiosk.branch_id.clone(),
            profile: self.config.kiosk.profile.as_str().to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            devices,
            sync_backlog: None,
            disk_free_bytes: None,
            disk_total_bytes: None,
        }
    }

    /// [`Shared::status`] with what needs the store: the sync backlog and
    /// the free space on the store's filesystem.
    pub async fn status_full(&self) -> StatusInfo {
        let mut status = self.status();
        let Some(store) = self.store.clone() else {
            return status;
        };
        let looked = tokio::task::spawn_blocking(move || {
            let backlog = store
                .sync_status(crate::changes::now_ms())
                .ok()
                .map(|s| s.pending);
            let dir = store
                .path()
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| std::path::PathBuf::from("."));
            // The field types differ between targets (u32 or u64).
            #[allow(clippy::unnecessary_cast)]
            let disk = nix::sys::statvfs::statvfs(&dir).ok().map(|v| {
                let frag = v.fragment_size() as u64;
                (
                    (v.blocks_available() as u64).saturating_mul(frag),
                    (v.blocks() as u64).saturating_mul(frag),
                )
            });
            (backlog, disk)
        })
        .await;
        if let Ok((backlog, disk)) = looked {
            status.sync_backlog = backlog;
            status.disk_free_bytes = disk.map(|d| d.0);
            status.disk_total_bytes = disk.map(|d| d.1);
        }
        status
    }

    pub fn readers(&self) -> Vec<ReaderInfo> {
        let state = self.lock();
        state
            .readers
            .iter()
            .map(|(name, r)| ReaderInfo {
                name: name.clone(),
                transport: r.transport.clone(),
                state: r.state,
                detail: r.detail.clone(),
                attached: r.attached,
                sam_id: r.sam_id.clone(),
                card_present: r.card_present,
                reads_ok: r.reads_ok,
                reads_failed: r.reads_failed,
                last_error: r.last_error.clone(),
            })
            .collect()
    }

    pub fn has_readers(&self) -> bool {
        !self.lock().readers.is_empty()
    }

    /// The card already read and still on a reader, if any.
    /// The masked card on a reader that was not handed out yet, now
    /// handed to the caller (`read_card`): a card read is handed out once.
    pub fn take_current_card(&self) -> Option<CardReadInfo> {
        self.lock()
            .readers
            .values_mut()
            .filter_map(|r| r.current.as_mut())
            .find(|c| !c.handed)
            .map(|c| {
                c.handed = true;
                c.info.clone()
            })
    }

    /// The card read on `reader` is handed out (a `read_card` caller got
    /// it from its event).
    pub fn hand_out(&self, reader: &str) {
        if let Some(c) = self
            .lock()
            .readers
            .get_mut(reader)
            .and_then(|r| r.current.as_mut())
        {
            c.handed = true;
        }
    }

    /// Rule S2: a session ended, and the cards it could have read go with
    /// it (a card still lying on a reader is not read again, nor handed to
    /// the next customer, until it is taken and placed again).
    pub(crate) fn wipe_cards(&self) {
        for r in self.lock().readers.values_mut() {
            r.current = None;
        }
    }

    /// Run `f` on the full card on a reader (and that reader's SAM id),
    /// if one was read and is still there. The data stays in the daemon.
    pub(crate) fn with_current_card<T>(
        &self,
        f: impl FnOnce(&CardRead, Option<&str>, u64) -> T,
    ) -> Option<T> {
        let state = self.lock();
        state
            .readers
            .values()
            .find_map(|r| r.current.as_ref().map(|c| (c, r.sam_id.as_deref())))
            .map(|(c, sam)| f(&c.read, sam, c.serial))
    }

    /// Like [`Shared::with_current_card`], for the card on `reader`, which
    /// is then handed out (to the session that asks).
    pub(crate) fn with_card_on<T>(
        &self,
        reader: &str,
        f: impl FnOnce(&CardRead, Option<&str>) -> T,
    ) -> Option<T> {
        let mut state = self.lock();
        let r = state.readers.get_mut(reader)?;
        let sam_id = r.sam_id.as_deref();
        r.current.as_mut().map(|c| {
            c.handed = true;
            f(&c.read, sam_id)
        })
    }

    // ---- updates from the device supervisors ----

    pub(crate) fn set_device_state(&self, reader: &str, new: DeviceState, detail: Option<String>) {
        let changed = {
            let mut state = self.lock();
            let Some(r) = state.readers.get_mut(reader) else {
                return;
            };
            let changed = r.state != new || r.detail != detail;
            let is_fault = matches!(
                new,
                DeviceState::HardwareError | DeviceState::NoDevice | DeviceState::Offline
            );
            if let (true, Some(d)) = (is_fault, &detail) {
                r.last_error = Some(d.clone());
            }
            if !matches!(new, DeviceState::Online | DeviceState::Busy) {
                r.card_present = false;
                r.current = None;
            }
            r.state = new;
            r.detail = detail.clone();
            changed
        };
        if changed {
            tracing::info!(reader, state = %new, detail = detail.as_deref().unwrap_or(""), "device state");
            self.emit(Event::DeviceState {
                device: reader.to_string(),
                state: new,
                detail,
            });
        }
    }

    pub(crate) fn set_attached(&self, reader: &str, attached: bool) {
        {
            let mut state = self.lock();
            let Some(r) = state.readers.get_mut(reader) else {
                return;
            };
            r.attached = attached;
        }
        tracing::info!(reader, attached, "reader hardware");
        let reader = reader.to_string();
        self.emit(if attached {
            Event::ReaderAttached { reader }
        } else {
            Event::ReaderDetached { reader }
        });
    }

    pub(crate) fn set_sam_id(&self, reader: &str, sam_id: String) {
        let mut state = self.lock();
        if let Some(r) = state.readers.get_mut(reader) {
            tracing::info!(reader, %sam_id, "SAM id");
            r.sam_id = Some(sam_id);
        }
    }

    pub(crate) fn card_present(&self, reader: &str, present: bool) {
        {
            let mut state = self.lock();
            let Some(r) = state.readers.get_mut(reader) else {
                return;
            };
            if r.card_present == present {
                return;
            }
            r.card_present = present;
            if !present {
                // rule S2: the card's data goes with the card.
                r.current = None;
            }
        }
        tracing::debug!(reader, present, "card presence");
        let reader = reader.to_string();
        self.emit(if present {
            Event::CardPresent { reader }
        } else {
            Event::CardAbsent { reader }
        });
    }

    pub(crate) fn card_read(&self, reader: &str, read: Box<CardRead>, read_ms: u64) {
        let identity: MaskedIdentity = crate::masking::mask_identity(
            &read.identity,
            &self.config.masking,
            !read.photo.is_empty(),
        );
        let info = CardReadInfo {
            reader: reader.to_string(),
            identity: identity.clone(),
            read_ms,
        };
        {
            let mut state = self.lock();
            let Some(r) = state.readers.get_mut(reader) else {
                return;
            };
            r.reads_ok += 1;
            r.card_present = true;
            let serial = self.card_reads.fetch_add(1, Ordering::Relaxed) + 1;
            r.current = Some(CurrentCard {
                info,
                read,
                serial,
                handed: false,
            });
        }
        tracing::info!(
            reader,
            card_type = ?identity.card_type,
            number = %identity.number,
            valid_until = %identity.valid_until,
            read_ms,
            "card read"
        );
        self.emit(Event::CardRead {
            reader: reader.to_string(),
            identity,
            read_ms,
        });
    }

    pub(crate) fn read_failed(&self, reader: &str, code: &str, message: &str) {
        {
            let mut state = self.lock();
            let Some(r) = state.readers.get_mut(reader) else {
                return;
            };
            r.reads_failed += 1;
            r.last_error = Some(message.to_string());
        }
        tracing::warn!(reader, code, message, "card read failed");
        self.emit(Event::ReadFailed {
            reader: reader.to_string(),
            code: code.to_string(),
            message: message.to_string(),
        });
    }
}

/// Run the daemon until `shared.shutdown` is cancelled: devices, then the
/// API. Returns once every device thread has stopped and the socket is
/// removed.
pub async fn run(shared: Arc<Shared>) -> Result<(), crate::Error> {
    let metrics = shared.metrics.clone();
    let metrics_listener = match &shared.config.metrics {
        Some(m) => Some(crate::metrics::bind(m.listen).await?),
        None => None,
    };
    let policy = crate::access::Policy::from_config(&shared.config.api)?;
    let listener = crate::api::bind(
        &shared.config.api.socket,
        crate::access::socket_gid(&shared.config.api)?,
    )?;
    metrics
        .api_listening
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let metrics_task = metrics_listener
        .map(|l| tokio::spawn(crate::metrics::serve(l, shared.clone(), metrics.clone())));
    let sync = crate::changes::start_sync(&shared)?;
    let devices = crate::devices::start(shared.clone());
    let printer = crate::printer::start(&shared);
    tracing::info!(
        kiosk = %shared.config.kiosk.id,
        profile = shared.config.kiosk.profile.as_str(),
        socket = %shared.config.api.socket.display(),
        readers = shared.config.readers.len(),
        "kioskd ready"
    );
    notify_ready();
    crate::api::serve(listener, shared.clone(), Arc::new(policy)).await;
    notify_stopping();
    devices.stop().await;
    crate::printer::stop(&shared, printer).await;
    if let Some(task) = sync {
        // The worker watches the same shutdown token; a request in flight is
        // reconciled on the next start.
        let _ = task.await;
    }
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    let _ = std::fs::remove_file(&shared.config.api.socket);
    tracing::info!("kioskd stopped");
    Ok(())
}

/// Tell a service manager (systemd `Type=notify`, or a test harness) that
/// the daemon is serving: `READY=1` to the datagram socket named in
/// `NOTIFY_SOCKET`. Without that variable it does nothing.
pub fn notify_ready() {
    notify("READY=1");
}

/// Tell the service manager the daemon is stopping.
pub fn notify_stopping() {
    notify("STOPPING=1");
}

fn notify(message: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| {
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(message.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}

/// `pcsc`, `sam` or `pcsc+sam`.
fn transport_name(r: &kiosk_idreader::ReaderConfig) -> &'static str {
    match (&r.pcsc, &r.sam) {
        (Some(_), Some(_)) => "pcsc+sam",
        (Some(_), None) => "pcsc",
        _ => "sam",
    }
}
