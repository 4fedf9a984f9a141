//! An async client of the local API, used by kioskctl, the UI and tests.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};

use crate::messages::*;

/// Everything that can go wrong talking to kioskd.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to kioskd at {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("connection to kioskd failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("kioskd closed the connection")]
    Closed,
    #[error("kioskd sent a line this client does not understand: {0}")]
    Protocol(String),
    #[error("kioskd refused: {} ({:?})", .0.message, .0.code)]
    Api(ApiError),
    #[error("no answer from kioskd within {0:?}")]
    Timeout(Duration),
}

impl From<LinesCodecError> for ClientError {
    fn from(e: LinesCodecError) -> Self {
        match e {
            LinesCodecError::MaxLineLengthExceeded => {
                ClientError::Protocol("line longer than the protocol allows".into())
            }
            LinesCodecError::Io(e) => ClientError::Io(e),
        }
    }
}

/// One connection to kioskd.
#[derive(Debug)]
pub struct Client {
    reader: FramedRead<OwnedReadHalf, LinesCodec>,
    writer: FramedWrite<OwnedWriteHalf, LinesCodec>,
    next_id: u64,
    events: VecDeque<EventEnvelope>,
}

impl Client {
    /// Connect to the daemon's socket.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (r, w) = stream.into_split();
        Ok(Client {
            reader: FramedRead::new(r, LinesCodec::new_with_max_length(crate::MAX_LINE)),
            writer: FramedWrite::new(w, LinesCodec::new_with_max_length(crate::MAX_LINE)),
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    /// Send a request and wait for its answer; events that arrive in the
    /// meantime are kept for [`Client::next_event`].
    pub async fn call(&mut self, request: &Request) -> Result<serde_json::Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = serde_json::to_string(&request.to_line(id))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Err(e) = self.writer.send(line).await {
            // kioskd may have refused the connection before reading the
            // request (one client too many): its reason waits to be read.
            if let Ok(ServerLine::Response(resp)) = self.read_line().await
                && resp.id == 0
                && let Some(err) = resp.error
            {
                return Err(ClientError::Api(err));
            }
            return Err(e.into());
        }
        loop {
            match self.read_line().await? {
                ServerLine::Event(ev) => self.events.push_back(ev),
                ServerLine::Response(resp) if resp.id == id => {
                    return match (resp.ok, resp.result, resp.error) {
                        (true, result, _) => Ok(result.unwrap_or(serde_json::Value::Null)),
                        (false, _, Some(err)) => Err(ClientError::Api(err)),
                        (false, _, None) => {
                            Err(ClientError::Protocol("error answer without error".into()))
                        }
                    };
                }
                // Id 0: kioskd speaks of the connection itself (refused as
                // one client too many, closed as idle, a line it could not
                // read): the caller gets kioskd's reason.
                ServerLine::Response(resp) if resp.id == 0 && resp.error.is_some() => {
                    return Err(ClientError::Api(resp.error.expect("checked")));
                }
                ServerLine::Response(resp) => {
                    return Err(ClientError::Protocol(format!(
                        "answer for request {} while waiting for {id}",
                        resp.id
                    )));
                }
            }
        }
    }

    /// Like [`Client::call`], with the result parsed into `T`.
    pub async fn call_typed<T: DeserializeOwned>(
        &mut self,
        request: &Request,
    ) -> Result<T, ClientError> {
        let value = self.call(request).await?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn hello(&mut self) -> Result<HelloInfo, ClientError> {
        self.call_typed(&Request::Hello).await
    }

    pub async fn status(&mut self) -> Result<StatusInfo, ClientError> {
        self.call_typed(&Request::Status).await
    }

    pub async fn readers(&mut self) -> Result<Vec<ReaderInfo>, ClientError> {
        self.call_typed(&Request::Readers).await
    }

    /// Wait for a card read (the daemon applies the timeout).
    pub async fn read_card(
        &mut self,
        timeout_ms: Option<u64>,
    ) -> Result<CardReadInfo, ClientError> {
        self.call_typed(&Request::ReadCard(ReadCardParams { timeout_ms }))
            .await
    }

    pub async fn sync_status(&mut self) -> Result<SyncStatusInfo, ClientError> {
        self.call_typed(&Request::SyncStatus).await
    }

    pub async fn sync_list(
        &mut self,
        params: SyncListParams,
    ) -> Result<Vec<ChangeSummary>, ClientError> {
        self.call_typed(&Request::SyncList(params)).await
    }

    pub async fn sync_retry(&mut self, change_id: &str) -> Result<ChangeSummary, ClientError> {
        self.call_typed(&Request::SyncRetry(ChangeIdParams {
            change_id: change_id.to_string(),
        }))
        .await
    }

    pub async fn sync_rejected(&mut self) -> Result<Vec<ChangeSummary>, ClientError> {
        self.call_typed(&Request::SyncRejected).await
    }

    pub async fn audit_verify(&mut self) -> Result<AuditReport, ClientError> {
        self.call_typed(&Request::AuditVerify).await
    }

    pub async fn selftest(
        &mut self,
        params: SelftestParams,
    ) -> Result<SelftestReport, ClientError> {
        self.call_typed(&Request::Selftest(params)).await
    }

    pub async fn submit_change(
        &mut self,
        params: SubmitChangeParams,
    ) -> Result<SubmittedChange, ClientError> {
        self.call_typed(&Request::SubmitChange(params)).await
    }

    pub async fn queue_services(&mut self) -> Result<Vec<QueueServiceInfo>, ClientError> {
        self.call_typed(&Request::QueueServices).await
    }

    /// Take a ticket for `service`; `use_card` uses the card on the reader.
    pub async fn queue_take(
        &mut self,
        service: &str,
        use_card: bool,
    ) -> Result<QueueTicketInfo, ClientError> {
        self.call_typed(&Request::QueueTake(QueueTakeParams {
            service: service.to_string(),
            use_card,
        }))
        .await
    }

    /// Print a ticket again (the last one without `ticket_id`).
    pub async fn queue_reprint(
        &mut self,
        ticket_id: Option<&str>,
    ) -> Result<QueueTicketInfo, ClientError> {
        self.call_typed(&Request::QueueReprint(QueueReprintParams {
            ticket_id: ticket_id.map(str::to_string),
        }))
        .await
    }

    pub async fn queue_call(&mut self, service: &str) -> Result<QueueCalled, ClientError> {
        self.call_typed(&Request::QueueCall(QueueServiceParams {
            service: service.to_string(),
        }))
        .await
    }

    pub async fn queue_status(&mut self) -> Result<QueueStatusInfo, ClientError> {
        self.call_typed(&Request::QueueStatus).await
    }

    /// Rule Q9: the statistics of `date` (`YYYY-MM-DD`; today without).
    pub async fn queue_report(&mut self, date: Option<&str>) -> Result<QueueReport, ClientError> {
        self.call_typed(&Request::QueueReport(QueueReportParams {
            date: date.map(str::to_string),
        }))
        .await
    }

    /// Start a customer session: `id_update` or `phone_change`.
    pub async fn session_start(&mut self, flow: &str) -> Result<SessionInfo, ClientError> {
        self.session_start_with(flow, false).await
    }

    /// Start a customer session; `elderly` (rule A2): with the longer idle
    /// times of the elderly-friendly mode.
    pub async fn session_start_with(
        &mut self,
        flow: &str,
        elderly: bool,
    ) -> Result<SessionInfo, ClientError> {
        self.call_typed(&Request::SessionStart(SessionStartParams {
            flow: flow.to_string(),
            elderly,
        }))
        .await
    }

    /// Give the running session an input; answers once the session has
    /// dealt with it (bank calls included).
    pub async fn session_input(&mut self, input: SessionInput) -> Result<SessionInfo, ClientError> {
        self.call_typed(&Request::SessionInput(SessionInputParams { input }))
            .await
    }

    /// Cancel the running session.
    pub async fn session_cancel(&mut self) -> Result<SessionInfo, ClientError> {
        self.call_typed(&Request::SessionCancel).await
    }

    /// The running session's state (or the last session's end).
    pub async fn session_state(&mut self) -> Result<SessionInfo, ClientError> {
        self.call_typed(&Request::SessionState).await
    }

    /// Ask for events on this connection.
    pub async fn subscribe(&mut self) -> Result<(), ClientError> {
        self.call(&Request::Subscribe).await.map(|_| ())
    }

    /// The next event (after [`Client::subscribe`]).
    pub async fn next_event(&mut self) -> Result<EventEnvelope, ClientError> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(ev);
        }
        match self.read_line().await? {
            ServerLine::Event(ev) => Ok(ev),
            ServerLine::Response(resp) => Err(ClientError::Protocol(format!(
                "unexpected answer for request {}",
                resp.id
            ))),
        }
    }

    /// Wait for the first event `pick` accepts, up to `timeout`; other
    /// events are dropped.
    pub async fn wait_event<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Result<T, ClientError> {
        let wait = async {
            loop {
                let ev = self.next_event().await?;
                if let Some(t) = pick(&ev.event) {
                    return Ok(t);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn read_line(&mut self) -> Result<ServerLine, ClientError> {
        let line = self.reader.next().await.ok_or(ClientError::Closed)??;
        serde_json::from_str(&line).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
