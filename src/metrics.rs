//! Fleet metrics: Prometheus text at `/metrics`, `/healthz` (the process
//! is up) and `/readyz` (store open, API listening), on `[metrics] listen`.
//!
//! Labels carry only names from the configuration (devices, readers,
//! services), failure codes and outcomes: never personal data (rule S1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kiosk_proto::{DeviceState, Event, StatusInfo, SyncStatusInfo};
use tokio_util::sync::CancellationToken;

/// Upper bounds (ms) of the card-read latency histogram's buckets.
const READ_BUCKETS_MS: [u64; 10] = [50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10000];

/// What the metrics count from the daemon's events.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
    /// Set once the local API socket listens.
    pub api_listening: AtomicBool,
}

#[derive(Debug, Default)]
struct Counts {
    /// Per reader: successful reads.
    reads_ok: BTreeMap<String, u64>,
    /// Per (reader, code): failed reads.
    reads_failed: BTreeMap<(String, String), u64>,
    /// Per reader: histogram bucket counts, sum and count.
    latency: BTreeMap<String, ([u64; READ_BUCKETS_MS.len()], u64, u64)>,
    /// Per service id: tickets issued.
    tickets: BTreeMap<String, u64>,
    /// Per outcome (applied, already_applied, rejected, ...): deliveries.
    deliveries: BTreeMap<String, u64>,
}

impl Metrics {
    /// Count one event.
    pub fn observe(&self, event: &Event) {
        let Ok(mut c) = self.counts.lock() else {
            return;
        };
        match event {
            Event::CardRead {
                reader, read_ms, ..
            } => {
                *c.reads_ok.entry(reader.clone()).or_default() += 1;
                let h = c.latency.entry(reader.clone()).or_default();
                for (i, bound) in READ_BUCKETS_MS.iter().enumerate() {
                    if read_ms <= bound {
                        h.0[i] += 1;
                    }
                }
                h.1 += read_ms;
                h.2 += 1;
            }
            Event::ReadFailed { reader, code, .. } => {
                *c.reads_failed
                    .entry((reader.clone(), code.clone()))
                    .or_default() += 1;
            }
            Event::TicketIssued { service, .. } => {
                *c.tickets.entry(service.clone()).or_default() += 1;
            }
            Event::ChangeDelivered { outcome, .. } => {
                *c.deliveries.entry(outcome.as_str().into()).or_default() += 1;
            }
            Event::ChangeRejected { .. } => {
                *c.deliveries.entry("rejected".into()).or_default() += 1;
            }
            _ => {}
        }
    }
}

/// A label value, escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

const STATES: [DeviceState; 6] = [
    DeviceState::Starting,
    DeviceState::Online,
    DeviceState::Offline,
    DeviceState::NoDevice,
    DeviceState::HardwareError,
    DeviceState::Busy,
];

/// What a scrape reads from the daemon's services.
#[derive(Debug)]
pub struct Snapshot {
    pub status: StatusInfo,
    /// `None` without a store (or when it cannot answer).
    pub sync: Option<SyncStatusInfo>,
    /// The store is open, if one is configured.
    pub store_ok: bool,
    /// The branch queue's services now (a queue machine that numbers).
    pub queue: Vec<QueueGauge>,
}

/// One service of the queue for the gauges (rule Q9; no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGauge {
    pub service: String,
    pub waiting: u32,
    /// How long the oldest waiting ticket has waited (0: nobody waits).
    pub longest_wait_s: u64,
}

/// How the endpoint takes a [`Snapshot`] (given by the daemon, so this
/// module knows no service).
pub type SnapshotFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Snapshot> + Send>> + Send + Sync>;

/// The exposition text.
pub fn render(snapshot: &Snapshot, metrics: &Metrics) -> String {
    let mut out = String::new();
    let status = &snapshot.status;
    out.push_str("# HELP kiosk_up kioskd is running.\n# TYPE kiosk_up gauge\nkiosk_up 1\n");
    let _ = writeln!(
        out,
        "# HELP kiosk_uptime_seconds Seconds since kioskd started.\n# TYPE kiosk_uptime_seconds gauge\nkiosk_uptime_seconds {}",
        status.uptime_s
    );
    out.push_str(
        "# HELP kiosk_device_state 1 for the state each device is in, 0 for the others.\n# TYPE kiosk_device_state gauge\n",
    );
    for d in &status.devices {
        for s in STATES {
            let _ = writeln!(
                out,
                "kiosk_device_state{{device=\"{}\",kind=\"{}\",state=\"{s}\"}} {}",
                label(&d.name),
                label(&d.kind),
                u8::from(d.state == s)
            );
        }
    }
    {
        let c = match metrics.counts.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        out.push_str("# HELP kiosk_card_reads_total Cards read successfully.\n# TYPE kiosk_card_reads_total counter\n");
        for (reader, n) in &c.reads_ok {
            let _ = writeln!(
                out,
                "kiosk_card_reads_total{{reader=\"{}\"}} {n}",
                label(reader)
            );
        }
        out.push_str("# HELP kiosk_card_read_failures_total Failed card reads by reason.\n# TYPE kiosk_card_read_failures_total counter\n");
        for ((reader, code), n) in &c.reads_failed {
            let _ = writeln!(
                out,
                "kiosk_card_read_failures_total{{reader=\"{}\",reason=\"{}\"}} {n}",
                label(reader),
                label(code)
            );
        }
        out.push_str("# HELP kiosk_card_read_duration_seconds Time to read a card.\n# TYPE kiosk_card_read_duration_seconds histogram\n");
        for (reader, (buckets, sum_ms, count)) in &c.latency {
            let r = label(reader);
            for (bound, n) in READ_BUCKETS_MS.iter().zip(buckets) {
                let _ = writeln!(
                    out,
                    "kiosk_card_read_duration_seconds_bucket{{reader=\"{r}\",le=\"{}\"}} {n}",
                    *bound as f64 / 1000.0
                );
            }
            let _ = writeln!(
                out,
                "kiosk_card_read_duration_seconds_bucket{{reader=\"{r}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "kiosk_card_read_duration_seconds_sum{{reader=\"{r}\"}} {}",
                *sum_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "kiosk_card_read_duration_seconds_count{{reader=\"{r}\"}} {count}"
            );
        }
        out.push_str("# HELP kiosk_tickets_issued_total Queue tickets issued by service.\n# TYPE kiosk_tickets_issued_total counter\n");
        for (service, n) in &c.tickets {
            let _ = writeln!(
                out,
                "kiosk_tickets_issued_total{{service=\"{}\"}} {n}",
                label(service)
            );
        }
        out.push_str("# HELP kiosk_sync_deliveries_total Changes the core bank answered for good, by outcome.\n# TYPE kiosk_sync_deliveries_total counter\n");
        for (outcome, n) in &c.deliveries {
            let _ = writeln!(
                out,
                "kiosk_sync_deliveries_total{{outcome=\"{}\"}} {n}",
                label(outcome)
            );
        }
    }
    if !snapshot.queue.is_empty() {
        out.push_str("# HELP kiosk_queue_waiting Tickets waiting now, by service.\n# TYPE kiosk_queue_waiting gauge\n");
        for q in &snapshot.queue {
            let _ = writeln!(
                out,
                "kiosk_queue_waiting{{service=\"{}\"}} {}",
                label(&q.service),
                q.waiting
            );
        }
        out.push_str("# HELP kiosk_queue_longest_wait_seconds How long the oldest waiting ticket has waited, by service (0: nobody waits).\n# TYPE kiosk_queue_longest_wait_seconds gauge\n");
        for q in &snapshot.queue {
            let _ = writeln!(
                out,
                "kiosk_queue_longest_wait_seconds{{service=\"{}\"}} {}",
                label(&q.service),
                q.longest_wait_s
            );
        }
    }
    if let Some(s) = &snapshot.sync {
        let _ = writeln!(
            out,
            "# HELP kiosk_sync_backlog Changes not yet acknowledged by the core bank.\n# TYPE kiosk_sync_backlog gauge\nkiosk_sync_backlog {}",
            s.backlog
        );
        let _ = writeln!(
            out,
            "# HELP kiosk_sync_oldest_pending_age_seconds Age of the oldest unacknowledged change (0: none).\n# TYPE kiosk_sync_oldest_pending_age_seconds gauge\nkiosk_sync_oldest_pending_age_seconds {}",
            s.oldest_pending_age_s.unwrap_or(0)
        );
        let _ = writeln!(
            out,
            "# HELP kiosk_sync_rejected Changes the core bank rejected for good.\n# TYPE kiosk_sync_rejected gauge\nkiosk_sync_rejected {}",
            s.rejected
        );
        if let Some(r) = s.core_reachable {
            let _ = writeln!(
                out,
                "# HELP kiosk_corebank_reachable Whether the last contact with the core bank succeeded.\n# TYPE kiosk_corebank_reachable gauge\nkiosk_corebank_reachable {}",
                u8::from(r)
            );
        }
    }
    out
}

#[derive(Clone)]
struct AppState {
    snapshot: SnapshotFn,
    metrics: Arc<Metrics>,
}

async fn metrics_handler(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&(app.snapshot)().await, &app.metrics),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<AppState>) -> (StatusCode, String) {
    let store_ok = (app.snapshot)().await.store_ok;
    let api_ok = app.metrics.api_listening.load(Ordering::SeqCst);
    let body = format!("store {}\napi {}\n", ok(store_ok), ok(api_ok));
    if store_ok && api_ok {
        (StatusCode::OK, body)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

fn ok(b: bool) -> &'static str {
    if b { "ok" } else { "not ready" }
}

/// Bind `[metrics] listen` (before the daemon reports ready).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, crate::Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::MetricsListen { addr, source })
}

/// Serve the endpoints until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    snapshot: SnapshotFn,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { snapshot, metrics });
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::warn!(error = %e, "metrics endpoint stopped");
    }
}
