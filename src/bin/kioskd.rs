//! `kioskd --config FILE`: the kiosk daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use kiosk::config::Config;
use kiosk::daemon;
use kiosk::services::Services;

/// The bank-branch kiosk daemon: owns the ID readers and serves the local API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The kiosk's configuration file (see docs/configuration.md).
    #[arg(
        long,
        short,
        env = "KIOSK_CONFIG",
        required_unless_present = "generate_store_key"
    )]
    config: Option<PathBuf>,
    /// Create a new store key file (32 random bytes, hex, mode 0600) at
    /// this path and exit; an existing file is never overwritten.
    #[arg(long, value_name = "PATH")]
    generate_store_key: Option<PathBuf>,
    /// Check the configuration, print every problem, and exit.
    #[arg(long)]
    check: bool,
    /// Replace the store with this backup (`kioskctl store backup`) and
    /// exit: the backup is checked first (integrity, schema, store key,
    /// audit chain); the current database is kept beside it. kioskd must
    /// be stopped.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Before anything secret is read (the store key, card data).
    if let Err(e) = kiosk::hardening::disable_core_dumps() {
        eprintln!("kioskd: {e}");
        return ExitCode::FAILURE;
    }
    let args = Args::parse();
    if let Some(path) = &args.generate_store_key {
        return match kiosk::store::generate_key_file(path) {
            Ok(()) => {
                println!("{}: new store key (mode 0600)", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kioskd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(config_path) = args.config else {
        eprintln!("kioskd: --config is required");
        return ExitCode::from(2);
    };
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kioskd: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: ok", config_path.display());
        return ExitCode::SUCCESS;
    }
    if let Some(backup) = &args.restore {
        return restore(&config, backup);
    }
    kiosk::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kioskd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let store = match kiosk::changes::open_store(&config).await {
            Ok(store) => store,
            Err(e) => {
                eprintln!("kioskd: cannot open the store: {e}");
                return ExitCode::FAILURE;
            }
        };
        let services = Services::new(config, store);
        let stop = services.shutdown.clone();
        // Handlers in place before kioskd says READY=1: a SIGTERM right
        // after it must stop kioskd gracefully, not kill it.
        let signals = stop_signals();
        tokio::spawn(async move {
            wait_for_signal(signals).await;
            tracing::info!("stop requested");
            stop.cancel();
        });
        match daemon::run(services).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "kioskd failed");
                eprintln!("kioskd: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `--restore FILE`: refuse while a kioskd answers on the socket.
fn restore(config: &Config, backup: &std::path::Path) -> ExitCode {
    let Some(store) = &config.store else {
        eprintln!("kioskd: the configuration has no [store] to restore into");
        return ExitCode::from(2);
    };
    if std::os::unix::net::UnixStream::connect(&config.api.socket).is_ok() {
        eprintln!(
            "kioskd: a kioskd is running on {}; stop it first (systemctl stop kioskd)",
            config.api.socket.display()
        );
        return ExitCode::FAILURE;
    }
    // As root, restore as the store's owner (kioskd's user): the files it
    // writes must be kioskd's, and the key file must be its owner's.
    let staged = match kiosk::hardening::become_owner_of(&store.path, backup) {
        Ok(staged) => staged,
        Err(e) => {
            eprintln!("kioskd: nothing restored: {e}");
            return ExitCode::FAILURE;
        }
    };
    let from = staged.as_deref().unwrap_or(backup);
    let restored = kiosk::store::restore(from, &store.path, &store.key_file);
    if let Some(copy) = &staged {
        let _ = std::fs::remove_file(copy);
    }
    match restored {
        Ok(report) => {
            println!(
                "{}: restored from {} (schema {}, {} changes, {} audit records, audit chain verified)",
                store.path.display(),
                backup.display(),
                report.schema_version,
                report.changes,
                report.audit_records
            );
            if let Some(aside) = report.replaced {
                println!("the database it replaced is kept as {}", aside.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kioskd: nothing restored: {e}");
            ExitCode::FAILURE
        }
    }
}

type StopSignals = Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>;

/// SIGTERM and SIGINT, registered now.
fn stop_signals() -> StopSignals {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => None,
    }
}

async fn wait_for_signal(signals: StopSignals) {
    let Some((mut term, mut int)) = signals else {
        // Without signal handlers the daemon still runs; it just cannot stop gracefully.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
