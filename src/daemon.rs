//! The daemon's `run`: binds the local API (and the metrics endpoint),
//! starts the devices, the printer and the sync worker of [`Services`],
//! serves until the shutdown token is cancelled, then stops and joins
//! every thread and task (one token, every task joined, as in mini-redis).

use std::sync::Arc;

use crate::services::Services;

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
                    status: services.status(),
                    sync: match services.changes.store() {
                        Some(_) => services.changes.sync_status().await.ok(),
                        None => None,
                    },
                    store_ok: services.config.store.is_none() || services.changes.store().is_some(),
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
    services
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
    notify_ready();
    crate::api::serve(listener, services.clone(), Arc::new(policy)).await;
    notify_stopping();
    devices.stop().await;
    services.printer.stop(printer).await;
    services.tasks.close();
    services.tasks.wait().await;
    let _ = std::fs::remove_file(&config.api.socket);
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
