//! Fleet metrics: Prometheus (OpenMetrics text, written by the
//! `prometheus-client` crate) at `/metrics`, `/healthz` (the process is up)
//! and `/readyz` (store open, API listening), on `[metrics] listen`.
//!
//! Counters and the read-latency histogram live in [`Metrics`] and are
//! counted from the daemon's events; gauges (device states, paper, sync
//! backlog, disk, queue waits) are read from a [`Snapshot`] at each scrape.
//! Series and alert rules: docs/alerts.md.
//!
//! Labels carry only names from the configuration (devices, readers,
//! printers, services), failure codes and outcomes: never personal data
//! (rule S1).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kiosk_proto::{DeviceState, Event, StatusInfo, SyncStatusInfo};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;

/// Upper bounds (s) of the card-read latency histogram's buckets.
const READ_BUCKETS_S: [f64; 10] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReaderLabels {
    reader: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadFailureLabels {
    reader: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    device: String,
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PrinterLabels {
    printer: String,
}

/// Makes each reader's latency histogram with [`READ_BUCKETS_S`].
#[derive(Clone, Debug)]
struct ReadBuckets;

impl MetricConstructor<Histogram> for ReadBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(READ_BUCKETS_S)
    }
}

/// What the metrics count from the daemon's events.
#[derive(Debug)]
pub struct Metrics {
    reads_ok: Family<ReaderLabels, Counter>,
    reads_failed: Family<ReadFailureLabels, Counter>,
    read_duration: Family<ReaderLabels, Histogram, ReadBuckets>,
    tickets: Family<ServiceLabels, Counter>,
    deliveries: Family<OutcomeLabels, Counter>,
    /// Set once the local API socket listens.
    pub api_listening: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reads_ok: Family::default(),
            reads_failed: Family::default(),
            read_duration: Family::new_with_constructor(ReadBuckets),
            tickets: Family::default(),
            deliveries: Family::default(),
            api_listening: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Count one event.
    pub fn observe(&self, event: &Event) {
        match event {
            Event::CardRead {
                reader, read_ms, ..
            } => {
                let labels = ReaderLabels {
                    reader: reader.clone(),
                };
                self.reads_ok.get_or_create(&labels).inc();
                self.read_duration
                    .get_or_create(&labels)
                    .observe(*read_ms as f64 / 1000.0);
            }
            Event::ReadFailed { reader, code, .. } => {
                self.reads_failed
                    .get_or_create(&ReadFailureLabels {
                        reader: reader.clone(),
                        reason: code.clone(),
                    })
                    .inc();
            }
            Event::TicketIssued { service, .. } => {
                self.tickets
                    .get_or_create(&ServiceLabels {
                        service: service.clone(),
                    })
                    .inc();
            }
            Event::ChangeDelivered { outcome, .. } => {
                self.count_delivery(outcome.as_str());
            }
            Event::ChangeRejected { .. } => self.count_delivery("rejected"),
            _ => {}
        }
    }

    fn count_delivery(&self, outcome: &str) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }
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
    /// With the sync backlog and the store's disk (`status_full`).
    pub status: StatusInfo,
    /// `None` without a store (or when it cannot answer).
    pub sync: Option<SyncStatusInfo>,
    /// The store is open, if one is configured.
    pub store_ok: bool,
    /// The store's commit times (`None` without a store).
    pub store_commits: Option<Histogram>,
    /// Per printer: whether its paper is near the end.
    pub paper_near_end: Vec<(String, bool)>,
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

/// A gauge with a value.
fn gauge(v: i64) -> Gauge {
    let g = Gauge::default();
    g.set(v);
    g
}

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The exposition text.
pub fn render(snapshot: &Snapshot, metrics: &Metrics) -> String {
    let mut r = Registry::default();
    let status = &snapshot.status;
    r.register("kiosk_up", "kioskd is running", gauge(1));
    r.register_with_unit(
        "kiosk_uptime",
        "Time since kioskd started",
        Unit::Seconds,
        gauge(count(status.uptime_s)),
    );
    let devices = Family::<DeviceLabels, Gauge>::default();
    for d in &status.devices {
        for s in STATES {
            devices
                .get_or_create(&DeviceLabels {
                    device: d.name.clone(),
                    kind: d.kind.clone(),
                    state: s.as_str().to_string(),
                })
                .set(i64::from(d.state == s));
        }
    }
    r.register(
        "kiosk_device_state",
        "1 for the state each device is in, 0 for the others",
        devices,
    );
    let paper = Family::<PrinterLabels, Gauge>::default();
    for (printer, near_end) in &snapshot.paper_near_end {
        paper
            .get_or_create(&PrinterLabels {
                printer: printer.clone(),
            })
            .set(i64::from(*near_end));
    }
    r.register(
        "kiosk_printer_paper_near_end",
        "1 while the printer reports its paper roll near the end",
        paper,
    );
    r.register(
        "kiosk_card_reads",
        "Cards read successfully",
        metrics.reads_ok.clone(),
    );
    r.register(
        "kiosk_card_read_failures",
        "Failed card reads by reason",
        metrics.reads_failed.clone(),
    );
    r.register_with_unit(
        "kiosk_card_read_duration",
        "Time to read a card",
        Unit::Seconds,
        metrics.read_duration.clone(),
    );
    r.register(
        "kiosk_tickets_issued",
        "Queue tickets issued by service",
        metrics.tickets.clone(),
    );
    r.register(
        "kiosk_sync_deliveries",
        "Changes the core bank answered for good, by outcome",
        metrics.deliveries.clone(),
    );
    if let Some(s) = &snapshot.sync {
        r.register(
            "kiosk_sync_backlog",
            "Changes not yet acknowledged by the core bank",
            gauge(count(s.backlog)),
        );
        r.register_with_unit(
            "kiosk_sync_oldest_pending_age",
            "Age of the oldest unacknowledged change (0: none)",
            Unit::Seconds,
            gauge(count(s.oldest_pending_age_s.unwrap_or(0))),
        );
        r.register(
            "kiosk_sync_rejected",
            "Changes the core bank rejected for good",
            gauge(count(s.rejected)),
        );
        if let Some(reachable) = s.core_reachable {
            r.register(
                "kiosk_corebank_reachable",
                "Whether the last contact with the core bank succeeded",
                gauge(i64::from(reachable)),
            );
        }
    }
    if let (Some(free), Some(size)) = (status.disk_free_bytes, status.disk_total_bytes) {
        r.register_with_unit(
            "kiosk_store_disk_free",
            "Free space for kioskd on the store's file system",
            Unit::Bytes,
            gauge(count(free)),
        );
        r.register_with_unit(
            "kiosk_store_disk_size",
            "Size of the store's file system",
            Unit::Bytes,
            gauge(count(size)),
        );
    }
    if let Some(commits) = &snapshot.store_commits {
        r.register_with_unit(
            "kiosk_store_commit_duration",
            "Time to commit to the store (WAL write and fdatasync); writes sharing a commit count once",
            Unit::Seconds,
            commits.clone(),
        );
    }
    if !snapshot.queue.is_empty() {
        let waiting = Family::<ServiceLabels, Gauge>::default();
        let longest = Family::<ServiceLabels, Gauge>::default();
        for q in &snapshot.queue {
            let labels = ServiceLabels {
                service: q.service.clone(),
            };
            waiting.get_or_create(&labels).set(i64::from(q.waiting));
            longest.get_or_create(&labels).set(count(q.longest_wait_s));
        }
        r.register(
            "kiosk_queue_waiting",
            "Tickets waiting now, by service",
            waiting,
        );
        r.register_with_unit(
            "kiosk_queue_longest_wait",
            "How long the oldest waiting ticket has waited, by service (0: nobody waits)",
            Unit::Seconds,
            longest,
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
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
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(paper_near_end: bool) -> Snapshot {
        Snapshot {
            status: StatusInfo {
                daemon_version: "0".into(),
                kiosk_id: "K1".into(),
                branch_id: "B1".into(),
                profile: "queue_machine".into(),
                uptime_s: 5,
                devices: Vec::new(),
                sync_backlog: None,
                disk_free_bytes: Some(10),
                disk_total_bytes: Some(100),
                branch_name: "Test branch".into(),
                timezone: "Asia/Shanghai".into(),
            },
            sync: None,
            store_ok: true,
            store_commits: Some({
                let commits = Histogram::new([0.001, 0.01]);
                commits.observe(0.0004);
                commits
            }),
            paper_near_end: vec![("ticket".into(), paper_near_end)],
            queue: vec![QueueGauge {
                service: "personal".into(),
                waiting: 2,
                longest_wait_s: 90,
            }],
        }
    }

    #[test]
    fn paper_disk_queue_waits_and_commit_times_are_read_at_the_scrape() {
        let text = render(&snapshot(true), &Metrics::default());
        for series in [
            "kiosk_printer_paper_near_end{printer=\"ticket\"} 1",
            "kiosk_store_disk_free_bytes 10",
            "kiosk_store_disk_size_bytes 100",
            "kiosk_queue_waiting{service=\"personal\"} 2",
            "kiosk_queue_longest_wait_seconds{service=\"personal\"} 90",
            "kiosk_store_commit_duration_seconds_count 1",
            "kiosk_store_commit_duration_seconds_bucket{le=\"0.001\"} 1",
        ] {
            assert!(text.contains(series), "{series} missing in:\n{text}");
        }
        let text = render(&snapshot(false), &Metrics::default());
        assert!(text.contains("kiosk_printer_paper_near_end{printer=\"ticket\"} 0"));
    }
}
