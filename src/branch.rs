//! The branch API (docs/branch-api.md): the primary queue machine serves
//! the branch LAN over HTTPS (axum over tokio-rustls; plain HTTP only on a
//! loopback address and only when `[branch] insecure_loopback_http` says
//! so), off unless `[branch] role = "primary"` is configured.
//!
//! * Counters act with their own bearer token, only as themselves (rule
//!   Q8): call next, recall, skip, serve, transfer, reactivate. Each action
//!   is committed with its queue event and audit record
//!   ([`crate::store::Calls::act`]) before it is answered or streamed.
//! * Displays and counters follow `GET /api/v1/stream` (server-sent
//!   events): a `state` event, then every queue event in commit order with
//!   its `seq` as the SSE id, replayed from the store after a reconnect
//!   (`Last-Event-ID` or `?since=`), so no call is lost.
//! * Secondary queue machines take numbers (`POST /api/v1/numbers`), and
//!   read the status and the report, with their own token (rule Q7).
//!
//! Rule Q10: nothing personal ever goes out here (no masked name either):
//! numbers, services, counters, times and counts.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use kiosk_proto::branch::{
    ActionBody, ActionResult, BranchTicket, CounterState, CounterView, ErrorBody, ErrorDetail,
    Health, NumberGrant, NumberRequest, QueueState, ServiceState, StreamEvent,
};
use kiosk_proto::{ApiError, ErrorCode, QueueReportParams};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{BranchRole, BranchSection, CounterSection, token_hash};
use crate::flows::queue::QueueConfig;
use crate::flows::ticket::CounterAction;
use crate::services::Services;
use crate::store::{ActRequest, QueueEventRow, TicketRow};

/// How many calls `state` lists.
const RECENT_CALLS: u32 = 10;
/// Events read from the store per page of a replay.
const REPLAY_PAGE: u32 = 500;

/// The listening socket and, for HTTPS, the TLS acceptor.
pub struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Bound {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Bind the branch API of a primary (before the daemon reports ready);
/// `None` when this machine serves none.
pub async fn bind(section: Option<&BranchSection>) -> Result<Option<Bound>, crate::Error> {
    let Some(section) = section.filter(|b| b.role == BranchRole::Primary) else {
        return Ok(None);
    };
    let Some(addr) = section.listen else {
        return Err(crate::Error::BranchTls("branch.listen is missing".into()));
    };
    let tls = if section.insecure_loopback_http {
        if !addr.ip().is_loopback() {
            return Err(crate::Error::BranchTls(format!(
                "plain HTTP only on loopback, not {addr}"
            )));
        }
        None
    } else {
        Some(tls_acceptor(section)?)
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::BranchListen { addr, source })?;
    Ok(Some(Bound { listener, tls }))
}

fn tls_acceptor(section: &BranchSection) -> Result<TlsAcceptor, crate::Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&section.tls_cert, &section.tls_key) else {
        return Err(crate::Error::BranchTls(
            "tls_cert and tls_key are needed for HTTPS".into(),
        ));
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| crate::Error::BranchTls(format!("tls_cert {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| crate::Error::BranchTls(format!("tls_key {}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| crate::Error::BranchTls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| crate::Error::BranchTls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Who a bearer token is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    Counter(String),
    Machine(String),
}

#[derive(Debug)]
struct App {
    services: Arc<Services>,
    /// Token hash → who.
    credentials: BTreeMap<String, Credential>,
    shutdown: CancellationToken,
}

type AppState = Arc<App>;

/// Serve the branch API until shutdown; each connection is a task of
/// `services.tasks`.
pub async fn serve(bound: Bound, services: Arc<Services>) {
    let Some(section) = services.config.branch.clone() else {
        return;
    };
    let mut credentials = BTreeMap::new();
    for c in &section.counters {
        credentials.insert(c.token_sha256.clone(), Credential::Counter(c.id.clone()));
    }
    for m in &section.machines {
        credentials.insert(m.token_sha256.clone(), Credential::Machine(m.id.clone()));
    }
    let shutdown = services.shutdown.clone();
    let tasks = services.tasks.clone();
    let slots = Arc::new(Semaphore::new(section.max_connections));
    let header_timeout = Duration::from_millis(section.request_header_timeout_ms);
    let app = Arc::new(App {
        services,
        credentials,
        shutdown: shutdown.clone(),
    });
    let router = router(app);
    tracing::info!(
        listen = ?bound.local_addr(),
        tls = bound.tls.is_some(),
        "branch API listening"
    );
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = bound.listener.accept() => a,
        };
        let (tcp, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "branch API: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // One place per connection: past the limit a connection is closed
        // at once (a LAN client cannot take every descriptor); a silent
        // one gives its place back after the header timeout.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused_connection(&section);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tls = bound.tls.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(tcp, router, shutdown, header_timeout).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, router, shutdown, header_timeout).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "branch API: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!("branch API: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Log a connection refused for the limit, at most once a minute (a flood
/// must not flood the journal too).
fn refused_connection(section: &BranchSection) {
    static LAST_LOGGED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST_LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        *last = Some(std::time::Instant::now());
        tracing::warn!(
            max_connections = section.max_connections,
            "branch API: too many connections, new ones are closed (branch.max_connections)"
        );
    }
}

async fn serve_connection<I>(
    io: I,
    router: Router,
    shutdown: CancellationToken,
    header_timeout: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::select! {
        r = conn => if let Err(e) = r {
            tracing::debug!(error = %e, "branch API connection ended");
        },
        // An open stream would hold a graceful shutdown: just close.
        () = shutdown.cancelled() => {}
    }
}

fn router(app: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/state", get(state))
        .route("/api/v1/stream", get(stream))
        .route("/api/v1/counters/{id}", get(counter_view))
        .route("/api/v1/counters/{id}/{action}", post(counter_action))
        .route("/api/v1/numbers", post(numbers))
        .route("/api/v1/status", get(status))
        .route("/api/v1/report", get(report))
        .route("/counter", get(|| page("counter.html".into())))
        .route("/display", get(|| page("display.html".into())))
        .route("/pages/display-config.json", get(display_config))
        .route("/pages/{file}", get(|Path(file): Path<String>| page(file)))
        .route("/voices/{lang}/{clip}", get(voice_clip))
        .with_state(app)
}

/// The counter page and the hall display (docs/branch-api.md "Pages"):
/// plain HTML, CSS and JavaScript built into kioskd, nothing personal in
/// them (rule Q10; they show what the API carries).
const PAGES: &[(&str, &str, &str)] = &[
    (
        "counter.html",
        "text/html; charset=utf-8",
        include_str!("pages/counter.html"),
    ),
    (
        "counter.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/counter.js"),
    ),
    (
        "display.html",
        "text/html; charset=utf-8",
        include_str!("pages/display.html"),
    ),
    (
        "display.js",
        "text/javascript; charset=utf-8",
        include_str!("pages/display.js"),
    ),
    (
        "common.css",
        "text/css; charset=utf-8",
        include_str!("pages/common.css"),
    ),
    (
        "hall-voices.tsv",
        "text/tab-separated-values; charset=utf-8",
        include_str!("pages/hall-voices.tsv"),
    ),
];

async fn page(name: String) -> Response {
    match PAGES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                // A new kioskd's pages load at once.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such page").into_response(),
    }
}

/// `GET /pages/display-config.json`: the announcement languages (rule
/// Q6) and whether there are clips to play.
async fn display_config(State(app): State<AppState>) -> axum::Json<serde_json::Value> {
    let section = app.section();
    axum::Json(serde_json::json!({
        "languages": section.map(|b| b.display_languages.clone()).unwrap_or_default(),
        "voices": section.is_some_and(|b| b.voices_dir.is_some()),
    }))
}

/// `GET /voices/{lang}/{clip}.wav`: a clip of `[branch] voices_dir`. Only
/// `zh`/`en` and names of `[a-z0-9_]` are looked up, so no path leaves
/// the folder.
async fn voice_clip(
    State(app): State<AppState>,
    Path((lang, clip)): Path<(String, String)>,
) -> Result<Response, HttpError> {
    let not_found = || HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such voice clip");
    let dir = app
        .section()
        .and_then(|b| b.voices_dir.clone())
        .ok_or_else(not_found)?;
    let stem = clip.strip_suffix(".wav").ok_or_else(not_found)?;
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b.is_ascii_uppercase()
            })
    };
    if !matches!(lang.as_str(), "zh" | "en") || !safe(stem) {
        return Err(not_found());
    }
    let bytes = tokio::fs::read(dir.join(&lang).join(format!("{stem}.wav")))
        .await
        .map_err(|_| not_found())?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response())
}

/// An error answer.
#[derive(Debug)]
struct HttpError(StatusCode, String, String);

impl HttpError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> HttpError {
        HttpError(status, code.to_string(), message.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.1,
                message: self.2,
            },
        };
        (self.0, axum::Json(body)).into_response()
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        let (status, code) = match e.code {
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorCode::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            ErrorCode::NotAllowed => (StatusCode::CONFLICT, "not_allowed"),
            ErrorCode::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ErrorCode::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        HttpError::new(status, code, e.message)
    }
}

fn store_error(e: crate::Error) -> HttpError {
    match e {
        crate::Error::Lifecycle(l) => {
            let status = if l.is_not_found() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::CONFLICT
            };
            HttpError::new(status, l.code(), l.to_string())
        }
        e if e.is_store_unavailable() => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        e => {
            tracing::error!(error = %e, "branch API: store failure");
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "store failure",
            )
        }
    }
}

impl App {
    fn queue(&self) -> Result<&QueueConfig, HttpError> {
        self.services.config.queue.as_ref().ok_or_else(|| {
            HttpError::new(StatusCode::NOT_FOUND, "not_found", "no [queue] configured")
        })
    }

    fn section(&self) -> Option<&BranchSection> {
        self.services.config.branch.as_ref()
    }

    fn counter(&self, id: &str) -> Option<&CounterSection> {
        self.section()?.counters.iter().find(|c| c.id == id)
    }

    /// Who the request's bearer token is: 401 without a known one.
    fn credential(&self, headers: &HeaderMap) -> Result<Credential, HttpError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        token
            .and_then(|t| self.credentials.get(&token_hash(t)).cloned())
            .ok_or_else(|| {
                HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a counter's or queue machine's bearer token is needed",
                )
            })
    }

    /// Rule Q8: the request's token must be counter `id`'s own.
    fn as_counter(&self, headers: &HeaderMap, id: &str) -> Result<&CounterSection, HttpError> {
        match self.credential(headers)? {
            Credential::Counter(c) if c == id => self.counter(id).ok_or_else(|| {
                HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such counter")
            }),
            Credential::Counter(c) => {
                tracing::warn!(credential = %c, acting_for = %id, "branch API: a counter tried to act for another (rule Q8)");
                Err(HttpError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "this is counter {c}'s credential: it cannot act as counter {id} (rule Q8)"
                    ),
                ))
            }
            Credential::Machine(m) => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("queue machine {m} cannot act as a counter"),
            )),
        }
    }

    fn as_machine(&self, headers: &HeaderMap) -> Result<String, HttpError> {
        match self.credential(headers)? {
            Credential::Machine(m) => Ok(m),
            Credential::Counter(c) => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("counter {c} is not a queue machine"),
            )),
        }
    }

    async fn with_store<T, F>(&self, f: F) -> Result<T, HttpError>
    where
        T: Send + 'static,
        F: FnOnce(&crate::store::Store) -> Result<T, crate::Error> + Send + 'static,
    {
        let store = self.services.changes.require_store()?;
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| {
                HttpError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "store task failed",
                )
            })?
            .map_err(store_error)
    }

    fn today(&self) -> Result<chrono::NaiveDate, HttpError> {
        Ok(crate::flows::queue::business_day(Utc::now(), self.queue()?))
    }

    fn service_states(
        &self,
        waiting: &BTreeMap<String, u32>,
        only: Option<&[String]>,
    ) -> Result<Vec<ServiceState>, HttpError> {
        let queue = self.queue()?;
        let state = |s: &crate::flows::queue::Service| ServiceState {
            id: s.id.clone(),
            letter: s.letter.to_string(),
            name_zh: s.name_zh.clone(),
            name_en: s.name_en.clone(),
            waiting: waiting.get(&s.id).copied().unwrap_or(0),
        };
        Ok(match only {
            None => queue.services.iter().map(state).collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| queue.service(id))
                .map(state)
                .collect(),
        })
    }

    /// A stored event on the wire: every service's waiting count.
    fn wire_event(&self, e: QueueEventRow) -> StreamEvent {
        let mut waiting: BTreeMap<String, u32> = self
            .services
            .config
            .queue
            .iter()
            .flat_map(|q| q.services.iter().map(|s| (s.id.clone(), 0)))
            .collect();
        waiting.extend(e.waiting);
        StreamEvent {
            seq: e.seq,
            at_ms: e.at_ms,
            business_day: e.business_day.format("%Y-%m-%d").to_string(),
            kind: e.kind.as_str().to_string(),
            number: e.number,
            ticket_id: e.ticket_id,
            service: e.service_id,
            from_service: e.from_service,
            counter: e.counter,
            waiting,
        }
    }

    async fn queue_state(&self) -> Result<QueueState, HttpError> {
        let asked = self.today()?;
        let (day, waiting, current, calls, last_seq) = self
            .with_store(move |s| {
                // The last seq first: the state is at least that new.
                let last_seq = s.calls().last_seq()?;
                let (day, waiting, current) = s.calls().snapshot(asked)?;
                let calls = s.calls().recent_calls(asked, RECENT_CALLS)?;
                Ok((day, waiting, current, calls, last_seq))
            })
            .await?;
        let counters = self
            .section()
            .map(|b| b.counters.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| CounterState {
                id: c.id.clone(),
                label_zh: c.label_zh(),
                label_en: c.label_en(),
                services: c.services.clone(),
                current: current.get(&c.id).map(|t| t.number_text.clone()),
            })
            .collect();
        Ok(QueueState {
            branch_name: self.services.config.kiosk.branch_name.clone(),
            business_day: day.format("%Y-%m-%d").to_string(),
            last_seq,
            services: self.service_states(&waiting, None)?,
            counters,
            recent_calls: calls.into_iter().map(|e| self.wire_event(e)).collect(),
        })
    }
}

fn wire_ticket(t: &TicketRow) -> BranchTicket {
    BranchTicket {
        ticket_id: t.ticket_id.clone(),
        number: t.number_text.clone(),
        service: t.service_id.clone(),
        state: t.state.clone(),
        counter: t.counter.clone(),
        issued_at_ms: t.issued_at_ms,
        called_at_ms: t.called_at_ms,
    }
}

async fn health(State(app): State<AppState>) -> axum::Json<Health> {
    axum::Json(Health {
        role: "primary".into(),
        kiosk_id: app.services.config.kiosk.id.clone(),
    })
}

async fn state(State(app): State<AppState>) -> Result<axum::Json<QueueState>, HttpError> {
    Ok(axum::Json(app.queue_state().await?))
}

async fn counter_view(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<CounterView>, HttpError> {
    let counter = app.as_counter(&headers, &id)?.clone();
    let asked = app.today()?;
    let (waiting, current, last_seq) = app
        .with_store(move |s| {
            let last_seq = s.calls().last_seq()?;
            let (_, waiting, current) = s.calls().snapshot(asked)?;
            Ok((waiting, current, last_seq))
        })
        .await?;
    let current = current.get(&counter.id).map(wire_ticket);
    Ok(axum::Json(CounterView {
        counter: CounterState {
            id: counter.id.clone(),
            label_zh: counter.label_zh(),
            label_en: counter.label_en(),
            services: counter.services.clone(),
            current: current.as_ref().map(|t| t.number.clone()),
        },
        current,
        services: app.service_states(&waiting, Some(&counter.services))?,
        last_seq,
    }))
}

async fn counter_action(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<ActionResult>, HttpError> {
    let counter = app.as_counter(&headers, &id)?.clone();
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            HttpError::new(StatusCode::BAD_REQUEST, "bad_request", format!("body: {e}"))
        })?
    };
    let missing = |what: &str| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{action} needs {what}"),
        )
    };
    let action = match action.as_str() {
        "call-next" => CounterAction::CallNext,
        "recall" => CounterAction::Recall,
        "skip" => CounterAction::Skip,
        "serve" => CounterAction::Serve,
        "transfer" => CounterAction::Transfer {
            to_service: body.service.clone().ok_or_else(|| missing("\"service\""))?,
        },
        "reactivate" => {
            if body.number.is_none() {
                return Err(missing("\"number\""));
            }
            CounterAction::Reactivate
        }
        other => {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no action {other:?}: call-next, recall, skip, serve, transfer, reactivate"
                ),
            ));
        }
    };
    let queue = app.queue()?;
    let request = ActRequest {
        counter: Some(counter.id.clone()),
        services: counter.services.clone(),
        action: action.clone(),
        number: body.number.clone(),
        ticket_id: None,
        business_day: app.today()?,
        now_ms: Utc::now().timestamp_millis(),
        known_services: queue.services.iter().map(|s| s.id.clone()).collect(),
    };
    // Durable (ticket, event, audit) before anyone hears of it.
    let acted = app
        .with_store(move |s| s.calls().act(&request, &crate::flows::ticket::RULES))
        .await?;
    app.services.queue.announce();
    tracing::info!(counter = %counter.id, action = action.as_str(), number = %acted.ticket.number_text, seq = acted.event.seq, "counter action");
    Ok(axum::Json(ActionResult {
        counter: counter.id,
        action: action.as_str().to_string(),
        ticket: wire_ticket(&acted.ticket),
        event: app.wire_event(acted.event),
    }))
}

async fn numbers(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Json(request): axum::Json<NumberRequest>,
) -> Result<axum::Json<NumberGrant>, HttpError> {
    let machine = app.as_machine(&headers)?;
    let row = app
        .services
        .queue
        .grant_number(&machine, &request.service)
        .await?;
    Ok(axum::Json(NumberGrant {
        ticket_id: row.ticket_id,
        service: row.service_id,
        letter: row.letter.to_string(),
        number: row.number,
        number_text: row.number_text,
        business_day: row.business_day.format("%Y-%m-%d").to_string(),
        issued_at_ms: row.issued_at_ms,
        waiting_ahead: row.waiting_ahead,
    }))
}

async fn status(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::Json<kiosk_proto::QueueStatusInfo>, HttpError> {
    app.as_machine(&headers)?;
    Ok(axum::Json(app.services.queue.queue_status().await?))
}

async fn report(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<QueueReportParams>,
) -> Result<axum::Json<kiosk_proto::QueueReport>, HttpError> {
    app.as_machine(&headers)?;
    Ok(axum::Json(app.services.queue.queue_report(params).await?))
}

#[derive(Debug, serde::Deserialize)]
struct StreamParams {
    #[serde(default)]
    since: Option<i64>,
}

/// Where a stream is.
struct Follow {
    app: AppState,
    committed: tokio::sync::watch::Receiver<u64>,
    /// Events after this seq are still to send (`None` until the state
    /// event has been sent without a resume point).
    after: Option<i64>,
    state_sent: bool,
    pending: VecDeque<StreamEvent>,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if !self.state_sent {
                self.state_sent = true;
                // Changes from here on wake the stream (subscribed before
                // the state is read, so none is missed).
                self.committed.borrow_and_update();
                let state = match self.app.queue_state().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = e.2, "branch stream: no state");
                        return None;
                    }
                };
                self.after.get_or_insert(state.last_seq);
                return SseEvent::default().event("state").json_data(&state).ok();
            }
            if let Some(e) = self.pending.pop_front() {
                return Some(
                    SseEvent::default()
                        .id(e.seq.to_string())
                        .event(e.kind.clone())
                        .json_data(&e)
                        .unwrap_or_default(),
                );
            }
            let after = self.after.unwrap_or(0);
            self.committed.borrow_and_update();
            let events = self
                .app
                .with_store(move |s| s.calls().events_since(after, REPLAY_PAGE))
                .await;
            match events {
                Ok(events) if !events.is_empty() => {
                    self.after = events.last().map(|e| e.seq);
                    let app = self.app.clone();
                    self.pending
                        .extend(events.into_iter().map(|e| app.wire_event(e)));
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = e.2, "branch stream: cannot read the queue log");
                    return None;
                }
            }
            tokio::select! {
                () = self.app.shutdown.cancelled() => return None,
                changed = self.committed.changed() => if changed.is_err() {
                    return None;
                },
            }
        }
    }
}

/// `GET /api/v1/stream`: server-sent events (docs/branch-api.md).
async fn stream(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, HttpError> {
    app.queue()?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Last-Event-ID is not a seq",
                )
            })
        })
        .transpose()?;
    let committed = app.services.queue.committed();
    let follow = Follow {
        app,
        committed,
        after: last_event_id.or(params.since).map(|s| s.max(0)),
        state_sent: false,
        pending: VecDeque::new(),
    };
    let events =
        futures_util::stream::unfold(
            follow,
            |mut f| async move { f.next().await.map(|e| (Ok(e), f)) },
        );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
