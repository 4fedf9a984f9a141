//! The UI's link to kioskd.
//!
//! A thread of its own runs a small tokio runtime with two connections to
//! kioskd's socket: one subscribed to events, one for requests (a request
//! that waits for the bank must not hold back the events). Everything
//! kioskd says is handed to `sink` as a model [`Input`]; the model's
//! [`Command`]s come in on a channel. When either connection fails the
//! UI is told [`Input::Disconnected`] and the bridge reconnects with a
//! capped backoff, for as long as the UI runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kiosk_device::Backoff;
use kiosk_proto::{Client, ClientError, Request, SessionInput, TechnicianUnlockParams};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use crate::model::{Command, Input};

/// When kioskd emitted the last event handed to the sink (ms since the
/// epoch, kioskd's clock): the UI measures event-to-screen latency from it.
static LAST_EVENT_AT_MS: AtomicI64 = AtomicI64::new(0);

/// See [`LAST_EVENT_AT_MS`]; read it in the sink.
pub fn last_event_at_ms() -> i64 {
    LAST_EVENT_AT_MS.load(Ordering::Relaxed)
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the bridge hands what it learns (to the UI thread).
pub type Sink = Arc<dyn Fn(Input) + Send + Sync>;

/// The running bridge; dropping it stops the thread.
#[derive(Debug)]
pub struct Bridge {
    commands: UnboundedSender<Command>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bridge {
    /// Start talking to kioskd at `socket`.
    pub fn start(socket: PathBuf, sink: Sink) -> std::io::Result<Bridge> {
        let (commands, rx) = unbounded_channel();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("kioskd-bridge".into())
            .spawn(move || runtime.block_on(run(socket, sink, rx, token)))?;
        Ok(Bridge {
            commands,
            stop,
            thread: Some(thread),
        })
    }

    /// Where the model's commands go.
    pub fn commands(&self) -> UnboundedSender<Command> {
        self.commands.clone()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(
    socket: PathBuf,
    sink: Sink,
    mut commands: UnboundedReceiver<Command>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut was_connected = true;
    loop {
        let attempt = async {
            let (events, requests) = connect(&socket, &sink).await?;
            Ok::<_, ClientError>((events, requests))
        };
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            c = attempt => c,
        };
        match connected {
            Ok((events, requests)) => {
                backoff.reset();
                was_connected = true;
                let reason = tokio::select! {
                    _ = stop.cancelled() => return,
                    e = forward_events(events, &sink) => e,
                    e = serve_commands(requests, &mut commands, &sink) => e,
                };
                tracing::warn!(error = %reason, "lost kioskd");
                sink(Input::Disconnected);
            }
            Err(e) => {
                if was_connected {
                    tracing::warn!(error = %e, "cannot reach kioskd; retrying");
                    sink(Input::Disconnected);
                    was_connected = false;
                }
            }
        }
        // Commands given while kioskd was away are stale.
        while commands.try_recv().is_ok() {}
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Open both connections and tell the UI where kioskd stands.
async fn connect(socket: &PathBuf, sink: &Sink) -> Result<(Client, Client), ClientError> {
    let mut events = Client::connect(socket).await?;
    // Subscribed before the snapshot: nothing after it is missed.
    events.subscribe().await?;
    let mut requests = Client::connect(socket).await?;
    requests.hello().await?;
    let status = requests.status().await?;
    let services = match requests.queue_services().await {
        Ok(s) => s,
        // A kiosk without a queue.
        Err(ClientError::Api(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let session = requests.session_state().await?;
    tracing::info!(profile = %status.profile, "connected to kioskd");
    sink(Input::Connected {
        status: Box::new(status),
        services,
        session: Box::new(session),
    });
    Ok((events, requests))
}

async fn forward_events(mut client: Client, sink: &Sink) -> ClientError {
    loop {
        match client.next_event().await {
            Ok(envelope) => {
                LAST_EVENT_AT_MS.store(envelope.at_ms, Ordering::Relaxed);
                sink(Input::Event(Box::new(envelope.event)));
            }
            Err(e) => return e,
        }
    }
}

async fn serve_commands(
    mut client: Client,
    commands: &mut UnboundedReceiver<Command>,
    sink: &Sink,
) -> ClientError {
    loop {
        let Some(command) = commands.recv().await else {
            // The UI is gone: nothing more to do but wait for the stop.
            return std::future::pending().await;
        };
        if let Err(e) = execute(&mut client, command, sink).await {
            return e;
        }
    }
}

/// Send one command; a refusal goes to the UI, a broken link is returned.
async fn execute(client: &mut Client, command: Command, sink: &Sink) -> Result<(), ClientError> {
    fn refusal(e: ClientError) -> Result<String, ClientError> {
        match e {
            ClientError::Api(err) => Ok(err.message),
            ClientError::Protocol(p) => Ok(p),
            other => Err(other),
        }
    }
    match command {
        Command::SessionStart { flow, elderly } => {
            let answer = client.session_start_with(&flow, elderly).await;
            sink(Input::SessionAnswer(match answer {
                Ok(info) => Ok(Box::new(info)),
                Err(e) => Err(refusal(e)?),
            }));
        }
        Command::SessionInput(input) => session_input(client, input, sink).await?,
        Command::SessionCancel => session_input(client, SessionInput::Cancel, sink).await?,
        Command::QueueTake { service, use_card } => {
            let answer = client.queue_take(&service, use_card).await;
            sink(Input::TicketAnswer(match answer {
                Ok(t) => Ok(Box::new(t)),
                Err(e) => Err(refusal(e)?),
            }));
        }
        Command::TechUnlock(pin) => {
            let request = Request::TechnicianUnlock(TechnicianUnlockParams {
                pin: pin.to_string(),
            });
            let answer = client.call(&request).await;
            sink(Input::TechUnlocked(match answer {
                Ok(_) => Ok(()),
                Err(e) => Err(refusal(e)?),
            }));
        }
        Command::TechLock => {
            if let Err(e) = client.call(&Request::TechnicianLock).await {
                refusal(e)?;
            }
        }
        Command::TechRefresh => {
            let status = client.status().await?;
            let sync = client.sync_status().await.ok().map(Box::new);
            sink(Input::TechStatus(Box::new(status), sync));
        }
        Command::Selftest { print_test_page } => {
            let report = match client
                .selftest(kiosk_proto::SelftestParams { print_test_page })
                .await
            {
                Ok(r) => {
                    let mut lines = vec![format!(
                        "{} · pass {} · fail {} · skip {}",
                        if r.ok { "OK" } else { "FAIL" },
                        r.passed,
                        r.failed,
                        r.skipped
                    )];
                    lines.extend(
                        r.checks
                            .iter()
                            .map(|c| format!("{}: {} – {}", c.name, c.outcome.as_str(), c.reason)),
                    );
                    lines.join("\n")
                }
                Err(e) => refusal(e)?,
            };
            sink(Input::TechReport(report));
        }
        Command::SyncRetryRejected => {
            let report = match client.sync_rejected().await {
                Ok(rejected) => {
                    let mut retried = 0;
                    let mut failed = Vec::new();
                    for change in &rejected {
                        match client.sync_retry(&change.change_id).await {
                            Ok(_) => retried += 1,
                            Err(e) => failed.push(refusal(e)?),
                        }
                    }
                    let mut line =
                        format!("sync retry: {retried} of {} queued again", rejected.len());
                    for f in failed {
                        line.push_str(&format!("\n{f}"));
                    }
                    line
                }
                Err(e) => refusal(e)?,
            };
            sink(Input::TechReport(report));
        }
    }
    Ok(())
}

async fn session_input(
    client: &mut Client,
    input: SessionInput,
    sink: &Sink,
) -> Result<(), ClientError> {
    let answer = client.session_input(input).await;
    match answer {
        Ok(info) => sink(Input::SessionAnswer(Ok(Box::new(info)))),
        // The session ended meanwhile (idle timeout): its end came as an
        // event already.
        Err(ClientError::Api(e)) if e.code == kiosk_proto::ErrorCode::NoSession => {}
        Err(ClientError::Api(e)) => sink(Input::SessionAnswer(Err(e.message))),
        Err(e) => return Err(e),
    }
    Ok(())
}
