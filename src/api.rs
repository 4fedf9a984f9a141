//! The local API server: a Unix socket, one JSON object per line
//! (`kiosk-proto`). Each connection gets a reader task that answers
//! requests and, after `subscribe`, a forwarder of events; both write
//! through one writer task so lines never interleave.
//!
//! Memory stays bounded whatever a client does (docs/local-api.md,
//! "Limits"): at most `api.max_clients` connections (more are answered
//! `too_many_clients` and closed); a line is at most [`MAX_LINE`] bytes (a
//! longer one is answered `line_too_long` and skipped up to its newline,
//! never buffered); per connection at most [`MAX_IN_FLIGHT`] requests are
//! served at once and at most [`CLIENT_QUEUE`] lines wait to be written.
//! When a client sends without reading its answers, these fill up and
//! kioskd stops reading from that connection until the client reads:
//! backpressure through the socket, not a growing buffer. Events reach a
//! subscriber through a bounded broadcast channel; a subscriber too slow
//! for it loses the oldest events (logged), it never makes kioskd buffer.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kiosk_proto::{
    ApiError, ErrorCode, Event, EventEnvelope, MAX_LINE, Request, RequestLine, ResponseEnvelope,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead, FramedWrite, LinesCodec, LinesCodecError};

use crate::Error;
use crate::access::{Caller, Policy, Role, required_role};
use crate::services::Services;
use crate::technician::{PinCheck, PinGate};

/// Lines (answers and events) queued for one client's writer.
pub const CLIENT_QUEUE: usize = 256;
/// Requests of one connection served at once. When they are all running
/// (or their answers wait in the full [`CLIENT_QUEUE`]), kioskd reads no
/// further request from that connection until one is done.
pub const MAX_IN_FLIGHT: usize = 32;
const DEFAULT_READ_CARD_TIMEOUT_MS: u64 = 30_000;
const MAX_READ_CARD_TIMEOUT_MS: u64 = 600_000;

/// What a connection's reader gets: a line, or the news that a line was
/// too long or not UTF-8. Both are answered and the connection goes on.
#[derive(Debug)]
enum Incoming {
    Line(String),
    /// The line passed [`MAX_LINE`]: [`LinesCodec`] discards it up to the
    /// next newline (never buffering more than `MAX_LINE` bytes of it) and
    /// then frames lines again.
    TooLong,
    /// The line was taken out of the buffer whole but is not UTF-8.
    NotUtf8,
}

/// [`LinesCodec`] with its two per-line errors turned into items:
/// `FramedRead` ends its stream after any decoder error, which would close
/// the connection; the codec itself recovers from both.
#[derive(Debug)]
struct RequestLines(LinesCodec);

impl RequestLines {
    fn new() -> RequestLines {
        RequestLines(LinesCodec::new_with_max_length(MAX_LINE))
    }

    fn lift(r: Result<Option<String>, LinesCodecError>) -> std::io::Result<Option<Incoming>> {
        match r {
            Ok(line) => Ok(line.map(Incoming::Line)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Incoming::TooLong)),
            Err(LinesCodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                Ok(Some(Incoming::NotUtf8))
            }
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for RequestLines {
    type Item = Incoming;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Incoming>> {
        RequestLines::lift(self.0.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<Incoming>> {
        RequestLines::lift(self.0.decode_eof(buf))
    }
}

/// Bind the socket, replacing a stale socket file but never a live daemon.
/// With `group` (`api.group`'s gid) the socket is given to that group.
pub fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener, Error> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::AlreadyRunning {
                path: path.to_path_buf(),
            });
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Listen {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| Error::Listen {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|source| {
        Error::Listen {
            path: path.to_path_buf(),
            source,
        }
    })?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| Error::Listen {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(listener)
}

/// Accept clients until shutdown; then wait for the open connections to close.
pub async fn serve(listener: UnixListener, services: Arc<Services>, policy: Arc<Policy>) {
    let max_clients = services.config.api.max_clients;
    let slots = Arc::new(Semaphore::new(max_clients));
    // Read-only callers share what the customer UI and technicians leave:
    // however many connect, the UI and a technician always get in.
    let read_only_share = read_only_share(max_clients);
    let read_only_slots = Arc::new(Semaphore::new(read_only_share));
    let pins = Arc::new(PinGate::with_store(
        &services.config.ui,
        services.changes.store().cloned(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    // Refusals are logged once per burst, not once per connection.
    let mut refusing = false;
    loop {
        let stream = tokio::select! {
            _ = services.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let caller = policy.caller(&stream);
        let permits = slots.clone().try_acquire_owned().ok().and_then(|all| {
            if caller.role == Role::ReadOnly {
                let share = read_only_slots.clone().try_acquire_owned().ok()?;
                Some((all, Some(share)))
            } else {
                Some((all, None))
            }
        });
        let Some(permit) = permits else {
            if !refusing {
                tracing::warn!(
                    max_clients,
                    read_only_share,
                    role = caller.role.as_str(),
                    "too many clients: new connections are refused (api.max_clients)"
                );
                refusing = true;
            }
            refuse(stream, max_clients, read_only_share, caller.role);
            continue;
        };
        refusing = false;
        let services = services.clone();
        let pins = pins.clone();
        tracing::debug!(
            uid = caller.uid,
            role = caller.role.as_str(),
            "client connected"
        );
        tasks.spawn(async move {
            handle_connection(stream, services, caller, pins).await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// Overwrite every string in a JSON value before it is dropped (a request's
/// params may hold what a customer typed).
fn wipe_strings(value: &mut serde_json::Value) {
    use zeroize::Zeroize;
    match value {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(wipe_strings),
        serde_json::Value::Object(map) => map.values_mut().for_each(wipe_strings),
        _ => {}
    }
}

/// How many of `max_clients` connections read-only callers may hold: a
/// quarter (at least one, at most 16) is kept for the customer UI and
/// technicians.
fn read_only_share(max_clients: usize) -> usize {
    let kept = (max_clients / 4).clamp(1, 16);
    max_clients.saturating_sub(kept).max(1)
}

/// Whether a silent connection of `role` is closed after
/// `api.idle_timeout_ms`: read-only callers (a local user holding slots);
/// the customer UI's and technicians' connections stay.
fn idles_out(role: Role) -> bool {
    role == Role::ReadOnly
}

/// Answer a connection over `api.max_clients` with `too_many_clients` and
/// close it. The write never waits (a new socket's buffer is empty; if it
/// cannot be written at once it is skipped), so refusing costs the accept
/// loop nothing however many clients knock.
fn refuse(stream: UnixStream, max_clients: usize, read_only_share: usize, role: Role) {
    let message = if role == Role::ReadOnly {
        format!(
            "kioskd already serves the {read_only_share} read-only clients it takes \
             (of api.max_clients {max_clients}, the rest kept for the customer UI and \
             technicians); try again later"
        )
    } else {
        format!("kioskd already serves {max_clients} clients (api.max_clients); try again later")
    };
    let err = ApiError::new(ErrorCode::TooManyClients, message);
    let mut line = answer(0, Err(err));
    line.push('\n');
    if let Ok(mut s) = stream.into_std() {
        let _ = s.write(line.as_bytes());
    }
}

async fn handle_connection(
    stream: UnixStream,
    services: Arc<Services>,
    caller: Caller,
    pins: Arc<PinGate>,
) {
    let (r, w) = stream.into_split();
    let mut lines = FramedRead::new(r, RequestLines::new());
    let (out_tx, mut out_rx) = mpsc::channel::<String>(CLIENT_QUEUE);
    let shutdown = services.shutdown.clone();
    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(w, LinesCodec::new());
        while let Some(line) = out_rx.recv().await {
            // At shutdown, what can be written goes out; a client that does
            // not read is not waited for.
            let sent = tokio::select! {
                biased;
                sent = sink.send(line) => sent,
                _ = shutdown.cancelled() => break,
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut forwarder: Option<tokio::task::JoinHandle<()>> = None;
    // The technician role a PIN gave this connection, until then.
    let mut elevated_until: Option<std::time::Instant> = None;
    let idle_timeout = Duration::from_millis(services.config.api.idle_timeout_ms);
    loop {
        let next = tokio::select! {
            _ = services.shutdown.cancelled() => break,
            next = lines.next() => next,
            // A read-only caller silent for a whole idle period gives its
            // slot back, unless it subscribed or waits for an answer.
            () = tokio::time::sleep(idle_timeout), if idles_out(caller.role) && forwarder.is_none() => {
                if in_flight.available_permits() < MAX_IN_FLIGHT {
                    continue;
                }
                let err = ApiError::new(
                    ErrorCode::Timeout,
                    format!(
                        "no request for {} ms and no subscription: closed (api.idle_timeout_ms)",
                        idle_timeout.as_millis()
                    ),
                );
                let _ = out_tx.send(answer(0, Err(err))).await;
                tracing::debug!(uid = caller.uid, "idle client closed");
                break;
            }
        };
        // What a customer typed (an answer, a code, a PIN) arrives in this
        // line: wiped when it is dropped, and so are the parsed params.
        let line = match next {
            None => break,
            Some(Ok(Incoming::Line(line))) => zeroize::Zeroizing::new(line),
            Some(Ok(Incoming::TooLong)) => {
                // The rest of the line is skipped; the connection goes on.
                let err = ApiError::new(
                    ErrorCode::LineTooLong,
                    format!("line longer than {MAX_LINE} bytes; skipped to its end"),
                );
                if out_tx.send(answer(0, Err(err))).await.is_err() {
                    break;
                }
                continue;
            }
            Some(Ok(Incoming::NotUtf8)) => {
                let err = ApiError::new(ErrorCode::BadRequest, "the line is not UTF-8");
                if out_tx.send(answer(0, Err(err))).await.is_err() {
                    break;
                }
                continue;
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "client connection error");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Result<RequestLine, _> = serde_json::from_str(&line);
        let (id, request) = match parsed {
            Ok(mut req_line) => {
                let request = Request::from_line(&req_line);
                if let Some(params) = req_line.params.as_mut() {
                    wipe_strings(params);
                }
                (req_line.id, request)
            }
            Err(e) => (
                0,
                Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("not a request line: {e}"),
                )),
            ),
        };
        let request = match request {
            Ok(r) => r,
            Err(err) => {
                if out_tx.send(answer(id, Err(err))).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let needed = required_role(&request);
        let role = match elevated_until {
            Some(until) if std::time::Instant::now() < until => Role::Technician,
            _ => caller.role,
        };
        if role < needed {
            let err = ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "{} needs the {} role; this caller (uid {}) is {}",
                    request.method(),
                    needed.as_str(),
                    caller.uid,
                    role.as_str()
                ),
            );
            tracing::info!(
                uid = caller.uid,
                method = request.method(),
                "request refused: forbidden"
            );
            if out_tx.send(answer(id, Err(err))).await.is_err() {
                break;
            }
            continue;
        }
        // The PIN changes this connection's role: handled in line.
        let mut request = request;
        match &mut request {
            Request::TechnicianUnlock(params) => {
                let result = technician_unlock(&services, &pins, caller.uid, &params.pin).await;
                zeroize::Zeroize::zeroize(&mut params.pin);
                if result.is_ok() {
                    let valid = Duration::from_secs(services.config.ui.technician_unlock_s);
                    elevated_until = Some(std::time::Instant::now() + valid);
                }
                if out_tx.send(answer(id, result)).await.is_err() {
                    break;
                }
                continue;
            }
            Request::TechnicianLock => {
                elevated_until = None;
                if out_tx
                    .send(answer(id, Ok(serde_json::json!({"locked": true}))))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            _ => {}
        }
        if let Request::Subscribe = request {
            if forwarder.is_none() {
                // Subscribe before answering so no event after the answer is missed.
                let events = services.bus.subscribe();
                let _ = out_tx
                    .send(answer(id, Ok(serde_json::json!({"subscribed": true}))))
                    .await;
                let (resync_from, view_from) = (services.clone(), services.clone());
                forwarder = Some(tokio::spawn(forward_events(
                    events,
                    out_tx.clone(),
                    move || resync_from.session_resync(),
                    move |ev| view_from.sessions.event_for(ev, caller.pid),
                )));
            } else {
                let _ = out_tx
                    .send(answer(id, Ok(serde_json::json!({"subscribed": true}))))
                    .await;
            }
            continue;
        }
        // Long waits (read_card) run beside the connection so the client can
        // keep talking; answers carry their id. At most MAX_IN_FLIGHT at
        // once: past that, this loop waits and reads nothing more.
        let permit = tokio::select! {
            _ = services.shutdown.cancelled() => break,
            permit = in_flight.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let services = services.clone();
        let out = out_tx.clone();
        tokio::spawn(async move {
            // Held until the answer is queued (or the client is gone).
            let _permit = permit;
            // `submit_change` audits the call in the change's own
            // transaction (one commit, issue 16); every other technician
            // call is audited before it is handled.
            if needed == Role::Technician && !matches!(request, Request::SubmitChange(_)) {
                let method = request.method();
                if let Err(e) = services.changes.audit_technician(method, caller.uid).await {
                    let _ = out.send(answer(id, Err(e))).await;
                    return;
                }
            }
            let result = handle_request(request, &services, caller).await;
            let _ = out.send(answer(id, result)).await;
        });
    }
    if let Some(f) = forwarder {
        f.abort();
    }
    drop(out_tx);
    let _ = writer.await;
}

/// Send one subscriber the events. One that read too slowly misses some
/// (a gap in `seq`); once it has caught up with what is still buffered it
/// gets the session state as of now, so a screen that follows the events
/// is never left on a stage the session has moved past.
///
/// `view` is what this subscriber may see of each event (the session's
/// owner sees the security question, others do not).
async fn forward_events(
    mut events: broadcast::Receiver<EventEnvelope>,
    out: mpsc::Sender<String>,
    resync: impl Fn() -> EventEnvelope,
    view: impl Fn(EventEnvelope) -> EventEnvelope,
) {
    let mut resync_due = false;
    loop {
        let ev = match events.recv().await {
            Ok(ev) => Some(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "a subscriber is too slow; events dropped for it, the session state follows"
                );
                resync_due = true;
                None
            }
            Err(broadcast::error::RecvError::Closed) => {
                if resync_due {
                    let _ = send_event(&out, &view(resync())).await;
                }
                return;
            }
        };
        if let Some(ev) = ev
            && send_event(&out, &view(ev)).await.is_err()
        {
            return;
        }
        if resync_due && events.is_empty() {
            resync_due = false;
            if send_event(&out, &view(resync())).await.is_err() {
                return;
            }
        }
    }
}

/// One event as a line to the connection's writer; `Err` when it is gone.
async fn send_event(out: &mpsc::Sender<String>, ev: &EventEnvelope) -> Result<(), ()> {
    match serde_json::to_string(ev) {
        Ok(line) => out.send(line).await.map_err(|_| ()),
        Err(_) => Ok(()),
    }
}

/// `technician_unlock`: check the PIN off the async threads (Argon2 is
/// slow on purpose), audit the try, answer.
async fn technician_unlock(
    services: &Arc<Services>,
    pins: &Arc<PinGate>,
    uid: u32,
    pin: &str,
) -> Result<serde_json::Value, ApiError> {
    let gate = pins.clone();
    let pin = zeroize::Zeroizing::new(pin.to_string());
    let check = tokio::task::spawn_blocking(move || gate.check(&pin, std::time::Instant::now()))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "PIN check failed"))?;
    let outcome = match check {
        PinCheck::Right => "right",
        PinCheck::Wrong { .. } => "wrong",
        PinCheck::Locked { .. } => "locked_out",
        PinCheck::NotConfigured => "not_configured",
    };
    tracing::info!(uid, outcome, "technician PIN tried");
    services.changes.audit_pin(outcome, uid).await?;
    match check {
        PinCheck::Right => to_value(kiosk_proto::TechnicianUnlocked {
            valid_s: services.config.ui.technician_unlock_s,
        }),
        PinCheck::Wrong {
            tries_left,
            locked_for: None,
        } => Err(ApiError::new(
            ErrorCode::WrongPin,
            format!("PIN 错误，还可尝试 {tries_left} 次 / wrong PIN: {tries_left} tries left"),
        )),
        PinCheck::Wrong {
            locked_for: Some(wait),
            ..
        }
        | PinCheck::Locked { retry_in: wait } => {
            let s = wait.as_secs().max(1);
            Err(ApiError::new(
                ErrorCode::Locked,
                format!(
                    "PIN 错误次数过多，请 {s} 秒后再试 / too many wrong PINs: try again in {s} s"
                ),
            ))
        }
        PinCheck::NotConfigured => Err(ApiError::new(
            ErrorCode::NotAllowed,
            "未设置技术员 PIN / no technician PIN is configured ([ui] technician_pin_hash)",
        )),
    }
}

async fn handle_request(
    request: Request,
    services: &Arc<Services>,
    caller: Caller,
) -> Result<serde_json::Value, ApiError> {
    match request {
        // Per connection, in handle_connection.
        Request::TechnicianUnlock(_) | Request::TechnicianLock => Err(ApiError::new(
            ErrorCode::Internal,
            "technician_unlock and technician_lock change the connection",
        )),
        Request::Hello => to_value(services.hello()),
        Request::Status => to_value(services.status_full().await),
        Request::Readers => to_value(services.readers.readers()),
        Request::ReadCard(params) => {
            if !services.readers.has_readers() {
                return Err(ApiError::new(
                    ErrorCode::NoReader,
                    "this kiosk has no ID reader configured",
                ));
            }
            let timeout_ms = params
                .timeout_ms
                .unwrap_or(DEFAULT_READ_CARD_TIMEOUT_MS)
                .min(MAX_READ_CARD_TIMEOUT_MS);
            let mut events = services.bus.subscribe();
            if let Some(current) = services.readers.take_current_card() {
                return to_value(current);
            }
            let wait = async {
                loop {
                    match events.recv().await {
                        Ok(EventEnvelope {
                            event:
                                Event::CardRead {
                                    reader,
                                    identity,
                                    read_ms,
                                },
                            ..
                        }) => {
                            services.readers.hand_out(&reader);
                            return to_value(kiosk_proto::CardReadInfo {
                                reader,
                                identity,
                                read_ms,
                            });
                        }
                        Ok(EventEnvelope {
                            event: Event::ReadFailed { message, .. },
                            ..
                        }) => {
                            return Err(ApiError::new(ErrorCode::ReadFailed, message));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(ApiError::new(
                                ErrorCode::ShuttingDown,
                                "kioskd is stopping",
                            ));
                        }
                    }
                }
            };
            tokio::select! {
                r = tokio::time::timeout(Duration::from_millis(timeout_ms), wait) => r.unwrap_or_else(|_| {
                    Err(ApiError::new(ErrorCode::Timeout, format!("no card read within {timeout_ms} ms")))
                }),
                _ = services.shutdown.cancelled() => Err(ApiError::new(ErrorCode::ShuttingDown, "kioskd is stopping")),
            }
        }
        Request::Subscribe => Ok(serde_json::json!({"subscribed": true})),
        Request::SyncStatus => to_value(services.changes.sync_status().await?),
        Request::SyncList(p) => to_value(services.changes.sync_list(p).await?),
        Request::SyncRetry(p) => to_value(services.changes.sync_retry(p.change_id).await?),
        Request::SyncRejected => to_value(services.changes.sync_rejected().await?),
        Request::AuditVerify => to_value(services.changes.audit_verify().await?),
        Request::Selftest(p) => to_value(services.selftest().run(p).await),
        Request::SubmitChange(p) => to_value(services.changes.submit_change(p, caller.uid).await?),
        Request::QueueServices => to_value(services.queue.queue_services()?),
        Request::QueueTake(p) => to_value(services.queue.queue_take(p).await?),
        Request::QueueReprint(p) => to_value(services.queue.queue_reprint(p).await?),
        Request::QueueCall(p) => to_value(services.queue.queue_call(p).await?),
        Request::QueueStatus => to_value(services.queue.queue_status().await?),
        Request::QueueReport(p) => to_value(services.queue.queue_report(p).await?),
        Request::SessionStart(p) => to_value(
            services
                .sessions
                .session_start(&p.flow, p.elderly, caller.pid)
                .await?,
        ),
        Request::SessionInput(p) => to_value(
            services
                .sessions
                .session_for(services.sessions.session_input(p.input).await?, caller.pid),
        ),
        Request::SessionCancel => to_value(services.sessions.session_cancel().await?),
        Request::SessionState => to_value(
            services
                .sessions
                .session_for(services.sessions.session_state(), caller.pid),
        ),
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

fn answer(id: u64, result: Result<serde_json::Value, ApiError>) -> String {
    let env = match result {
        Ok(v) => ResponseEnvelope {
            id,
            ok: true,
            result: Some(v),
            error: None,
        },
        Err(e) => ResponseEnvelope {
            id,
            ok: false,
            result: None,
            error: Some(e),
        },
    };
    serde_json::to_string(&env).unwrap_or_else(|_| {
        format!(r#"{{"id":{id},"ok":false,"error":{{"code":"internal","message":"unserialisable answer"}}}}"#)
    })
}

#[cfg(test)]
mod tests {
    use kiosk_proto::{Event, EventEnvelope, SessionInfo, Stage};
    use tokio::sync::{broadcast, mpsc};

    fn session_at(stage: Stage, seq: u64) -> EventEnvelope {
        EventEnvelope {
            seq,
            at_ms: 0,
            event: Event::Session(SessionInfo {
                session_id: Some("s".into()),
                active: true,
                flow: Some("phone_change".into()),
                stage,
                screen: None,
                message: None,
                outcome: None,
                refusal: None,
                change_id: None,
            }),
        }
    }

    /// Zeroize that works: the params of a request line (an answer, a
    /// code, a PIN) are overwritten once parsed, wherever they sit.
    #[test]
    fn zeroize_request_params_are_wiped_once_parsed() {
        let mut params = serde_json::json!({
            "input": {"type": "answer", "answer": "王芳"},
            "pins": ["246810"],
            "n": 1
        });
        super::wipe_strings(&mut params);
        assert_eq!(
            params,
            serde_json::json!({"input": {"type": "", "answer": ""}, "pins": [""], "n": 1})
        );
    }

    /// Local API exhaustion: read-only callers hold at most three
    /// quarters of the slots; the rest stays for the customer UI and
    /// technicians, whose connections are never closed for silence.
    #[test]
    fn read_only_callers_share_the_slots_and_idle_out_alone() {
        use crate::access::Role;
        assert_eq!(super::read_only_share(64), 48);
        assert_eq!(super::read_only_share(8), 6);
        assert_eq!(super::read_only_share(2), 1);
        assert_eq!(super::read_only_share(1), 1);
        assert!(super::idles_out(Role::ReadOnly));
        assert!(!super::idles_out(Role::Customer));
        assert!(!super::idles_out(Role::Technician));
    }

    /// A subscriber that missed events (its buffer overran) is told the
    /// session's state as of now: the UI is never left on a stage the
    /// session has moved past, waiting for an event it will never get.
    #[tokio::test]
    async fn a_subscriber_that_missed_events_gets_the_session_state_again() {
        let (tx, events) = broadcast::channel(2);
        for (i, stage) in [
            Stage::VerifyingCode,
            Stage::AwaitingConfirmation,
            Stage::Recording,
            Stage::AwaitingBank,
        ]
        .into_iter()
        .enumerate()
        {
            tx.send(session_at(stage, i as u64 + 1)).expect("send");
        }
        drop(tx);
        let (out, mut lines) = mpsc::channel(16);
        super::forward_events(events, out, || session_at(Stage::Finished, 4), |ev| ev).await;
        let mut stages = Vec::new();
        while let Ok(line) = lines.try_recv() {
            let ev: EventEnvelope = serde_json::from_str(&line).expect("an event");
            if let Event::Session(info) = ev.event {
                stages.push(info.stage);
            }
        }
        assert_eq!(
            stages,
            [Stage::Recording, Stage::AwaitingBank, Stage::Finished]
        );
    }
}
