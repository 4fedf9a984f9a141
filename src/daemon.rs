//! The daemon's `run`: binds the local API (and the metrics endpoint),
//! starts the devices, the printer and the sync worker of [`Services`],
//! serves until the shutdown token is cancelled, then stops and joins
//! every thread and task (one token, every task joined, as in mini-redis).

use std::sync::Arc;

use crate::services::Services;
use crate::supervision;

/// Run the daemon until `services.shutdown` is cancelled. Returns once
/// every device thread and every task has stopped and the socket is
/// removed.
pub async fn run(services: Arc<Services>) -> Result<(), crate::Error> {
    let config = services.config.clone();
    let metrics = services.bus.metrics().clone();
    let metrics_listener = match &config.metrics {
        Some(m) => Some(crate::metrics::bind(m.listen).await?),
        None => None,
    };
    let branch = crate::branch::bind(config.branch.as_ref()).await?;
    let policy = crate::access::Policy::from_config(&config.api)?;
    let listener = crate::api::bind(&config.api.socket, crate::access::socket_gid(&config.api)?)?;
    metrics
        .api_listening
        .store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(listener) = metrics_listener {
        let source = services.clone();
        let snapshot: crate::metrics::SnapshotFn = Arc::new(move || {
            let services = source.clone();
            Box::pin(async move {
                crate::metrics::Snapshot {
                    status: services.status_full().await,
                    sync: match services.changes.store() {
                        Some(_) => services.changes.sync_status().await.ok(),
                        None => None,
                    },
                    store_ok: services.config.store.is_none() || services.changes.store().is_some(),
                    store_commits: services.changes.store().map(|s| s.commit_durations()),
                    paper_near_end: services
                        .printer
                        .state()
                        .map(|p| {
                            let near_end =
                                p.warnings.contains(&kiosk_escpos::Warning::PaperNearEnd);
                            vec![(p.name, near_end)]
                        })
                        .unwrap_or_default(),
                    queue: services.queue.gauges().await,
                }
            })
        });
        services.tasks.spawn(crate::metrics::serve(
            listener,
            metrics.clone(),
            snapshot,
            services.shutdown.clone(),
        ));
    }
    // The worker watches the shutdown token; a request in flight is
    // reconciled on the next start.
    let sync = services
        .changes
        .start_sync(services.shutdown.clone(), &services.tasks)?;
    if let Some(bound) = branch {
        services
            .tasks
            .spawn(crate::branch::serve(bound, services.clone()));
    }
    if let Some(link) = &services.primary {
        services
            .tasks
            .spawn(link.clone().probe_loop(services.shutdown.clone()));
    }
    let devices = crate::devices::start(&config.readers, &services.readers, &services.shutdown);
    let printer = services.printer.start();
    tracing::info!(
        kiosk = %config.kiosk.id,
        profile = config.kiosk.profile.as_str(),
        socket = %config.api.socket.display(),
        readers = config.readers.len(),
        "kioskd ready"
    );
    supervision::notify_ready();
    let stopped = || {
        let mut stopped = devices.stopped();
        if printer.as_ref().is_some_and(|p| p.is_finished()) {
            stopped.push("printer".into());
        }
        if sync.as_ref().is_some_and(|s| s.is_finished()) {
            stopped.push("sync".into());
        }
        stopped
    };
    tokio::join!(
        crate::api::serve(listener, services.clone(), Arc::new(policy)),
        main_loop(&services, stopped),
    );
    supervision::notify_stopping();
    devices.stop().await;
    services.printer.stop(printer).await;
    services.tasks.close();
    services.tasks.wait().await;
    let _ = std::fs::remove_file(&config.api.socket);
    tracing::info!("kioskd stopped");
    Ok(())
}

/// The main loop: until the shutdown, report to the service manager every
/// period: the status line, and the watchdog ping while `stopped` names
/// no long-lived task that has ended.
async fn main_loop(services: &Services, stopped: impl Fn() -> Vec<String>) {
    let (period, watchdog) = supervision::period();
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = services.shutdown.cancelled() => return,
        }
        let status = services.status_full().await;
        supervision::report(&status, &stopped(), watchdog);
    }
}
