//! The daemon's services, built once by [`Services::new`] and handed to
//! the local API, the metrics endpoint and the device supervisors:
//!
//! | service | owns | is handed |
//! |---|---|---|
//! | [`Bus`] | the event numbering and broadcast | the fleet metrics |
//! | [`Readers`] | each reader's state, SAM id and card on it | the bus |
//! | [`Printer`] | the printer's handle and state | the bus, the shutdown token |
//! | [`Changes`] | the store, the sync worker's wake-up, the core-bank link and client | the bus |
//! | [`Queue`] | the queue machine's turn | readers, printer, changes, bus |
//! | [`Sessions`] | the customer session slot | readers, printer, changes, bus |
//!
//! Each is made once and shared by handle (`Arc`); none knows this module.
//! One [`CancellationToken`] stops them all and one [`TaskTracker`] holds
//! the tasks they spawn, so [`crate::daemon::run`] can join every task.

use std::sync::Arc;
use std::time::Instant;

use kiosk_proto::{Event, EventEnvelope, HelloInfo, StatusInfo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::changes::Changes;
use crate::config::Config;
use crate::deps::Deps;
use crate::metrics::Metrics;
use crate::printer::Printer;
use crate::queue::Queue;
use crate::readers::Readers;
use crate::selftest::Selftest;
use crate::session::Sessions;
use crate::store::Store;

/// Every service of the daemon.
#[derive(Debug)]
pub struct Services {
    pub config: Arc<Config>,
    /// Cancelled when the daemon stops.
    pub shutdown: CancellationToken,
    /// The tasks the services spawn (joined when the daemon stops).
    pub tasks: TaskTracker,
    started: Instant,
    pub bus: Arc<Bus>,
    pub readers: Arc<Readers>,
    pub printer: Arc<Printer>,
    pub changes: Arc<Changes>,
    pub queue: Arc<Queue>,
    pub sessions: Arc<Sessions>,
    /// A secondary queue machine's link to the primary.
    pub primary: Option<Arc<crate::primary::PrimaryLink>>,
}

impl Services {
    /// Build every service of `config` around `store` (opened by the
    /// caller: [`crate::changes::open_store`]).
    pub fn new(config: Config, store: Option<Arc<Store>>) -> Arc<Services> {
        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let bus = Arc::new(Bus::new(Arc::new(Metrics::default())));
        let readers = Arc::new(Readers::new(&config.readers, config.masking, bus.clone()));
        let printer = Arc::new(Printer::new(
            config.printer.clone(),
            bus.clone(),
            shutdown.clone(),
        ));
        let changes = Arc::new(Changes::new(config.clone(), store, bus.clone()));
        // A secondary queue machine without a working link refuses every
        // ticket (rule Q7: it never numbers on its own).
        let primary = config
            .branch
            .as_ref()
            .filter(|b| b.role == crate::config::BranchRole::Secondary)
            .and_then(|b| match crate::primary::PrimaryLink::new(b, bus.clone()) {
                Ok(link) => Some(Arc::new(link)),
                Err(e) => {
                    tracing::error!(error = %e, "no link to the primary queue machine");
                    None
                }
            });
        let deps = Deps {
            config: config.clone(),
            bus: bus.clone(),
            readers: readers.clone(),
            printer: printer.clone(),
            changes: changes.clone(),
            primary: primary.clone(),
        };
        let queue = Arc::new(Queue::new(deps.clone()));
        let sessions = Arc::new(Sessions::new(deps, shutdown.clone(), tasks.clone()));
        Arc::new(Services {
            config,
            shutdown,
            tasks,
            started: Instant::now(),
            bus,
            readers,
            printer,
            changes,
            queue,
            sessions,
            primary,
        })
    }

    pub fn hello(&self) -> HelloInfo {
        HelloInfo {
            protocol: kiosk_proto::PROTOCOL_VERSION,
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            kiosk_id: self.config.kiosk.id.clone(),
        }
    }

    /// `status` without what needs the store.
    pub fn status(&self) -> StatusInfo {
        let mut devices = self.readers.devices();
        devices.extend(self.printer.device());
        devices.extend(self.primary.as_ref().map(|p| p.device()));
        StatusInfo {
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            kiosk_id: self.config.kiosk.id.clone(),
            branch_id: self.config.kiosk.branch_id.clone(),
            branch_name: self.config.kiosk.branch_name.clone(),
            timezone: self.config.branch_timezone().name().to_string(),
            profile: self.config.kiosk.profile.as_str().to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            devices,
            sync_backlog: None,
            disk_free_bytes: None,
            disk_total_bytes: None,
        }
    }

    /// [`Services::status`] with what needs the store: the sync backlog
    /// and the free space on the store's filesystem.
    pub async fn status_full(&self) -> StatusInfo {
        let mut status = self.status();
        if let Some(looked) = self.changes.backlog_and_disk().await {
            status.sync_backlog = looked.0;
            status.disk_free_bytes = looked.1.map(|d| d.0);
            status.disk_total_bytes = looked.1.map(|d| d.1);
        }
        status
    }

    /// The session state as of now, as an event for one subscriber that
    /// missed events (same `seq` as the last event emitted: nothing new
    /// happened, the state is said again).
    pub fn session_resync(&self) -> EventEnvelope {
        EventEnvelope {
            seq: self.bus.last_seq(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            event: Event::Session(self.sessions.session_state()),
        }
    }

    /// The selftest over these services.
    pub fn selftest(&self) -> Selftest {
        Selftest {
            config: self.config.clone(),
            readers: self.readers.clone(),
            printer: self.printer.clone(),
            changes: self.changes.clone(),
        }
    }
}
