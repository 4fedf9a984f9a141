//! A secondary queue machine's link to the branch's primary (rule Q7):
//! numbers, the queue's status and the report come from the primary over
//! the branch API (HTTPS, this machine's bearer token). The link is a
//! device in `status` (`kind = "queue_primary"`): `online` while the
//! primary answers, `offline` with the reason when it does not, checked
//! every `probe_interval_ms` and after every request.
//!
//! Nothing personal is sent: a service id, a date.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiosk_proto::branch::{ErrorBody, NumberGrant, NumberRequest, PREFIX};
use kiosk_proto::{DeviceInfo, DeviceState, Event, QueueReport, QueueStatusInfo};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::bus::Bus;
use crate::config::BranchSection;

/// The device name of the link in `status`.
pub const DEVICE: &str = "queue_primary";

/// Why the primary gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// No answer (down, network, TLS): the customer is told to use
    /// another machine or ask the staff.
    Unreachable(String),
    /// The primary answered with a refusal.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Unreachable(why) => {
                write!(f, "the primary queue machine is unreachable: {why}")
            }
            LinkError::Refused {
                status,
                code,
                message,
            } => write!(
                f,
                "the primary queue machine refused ({status} {code}): {message}"
            ),
        }
    }
}

/// The link to the primary.
#[derive(Debug)]
pub struct PrimaryLink {
    http: reqwest::Client,
    base: String,
    token: String,
    probe_interval: Duration,
    state: Mutex<(DeviceState, Option<String>)>,
    bus: Arc<Bus>,
}

impl PrimaryLink {
    /// Build the link of a secondary's `[branch]` (reads the token file
    /// and the CA certificate).
    pub fn new(section: &BranchSection, bus: Arc<Bus>) -> Result<PrimaryLink, Error> {
        let bad = |what: String| Error::Config {
            path: "[branch]".into(),
            problems: vec![what],
        };
        let base = section
            .primary_url
            .clone()
            .ok_or_else(|| bad("branch.primary_url: missing".into()))?;
        let token_file = section
            .token_file
            .clone()
            .ok_or_else(|| bad("branch.token_file: missing".into()))?;
        let token = std::fs::read_to_string(&token_file)
            .map_err(|e| bad(format!("branch.token_file: {}: {e}", token_file.display())))?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(bad("branch.token_file: the file is empty".into()));
        }
        let timeout = Duration::from_millis(section.primary_timeout_ms);
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Below the primary's default request-header timeout (10 s):
            // a connection it closes while idle is not reused for a number.
            .pool_idle_timeout(Duration::from_secs(5));
        if let Some(ca) = &section.primary_ca {
            let pem = std::fs::read(ca)
                .map_err(|e| bad(format!("branch.primary_ca: {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| bad(format!("branch.primary_ca: {}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| bad(format!("branch: cannot build the HTTPS client: {e}")))?;
        Ok(PrimaryLink {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            probe_interval: Duration::from_millis(section.probe_interval_ms),
            state: Mutex::new((DeviceState::Starting, None)),
            bus,
        })
    }

    /// The link as a device in `status`.
    pub fn device(&self) -> DeviceInfo {
        let (state, detail) = self
            .state
            .lock()
            .map(|s| s.clone())
            .unwrap_or((DeviceState::Starting, None));
        DeviceInfo {
            name: DEVICE.into(),
            kind: "queue_primary".into(),
            state,
            last_error: if state == DeviceState::Online {
                None
            } else {
                detail.clone()
            },
            detail,
            sam_id: None,
        }
    }

    fn note(&self, result: &Result<(), LinkError>) {
        let new = match result {
            Ok(()) | Err(LinkError::Refused { .. }) => {
                (DeviceState::Online, Some(self.base.clone()))
            }
            Err(LinkError::Unreachable(why)) => (DeviceState::Offline, Some(why.clone())),
        };
        let changed = match self.state.lock() {
            Ok(mut s) if s.0 != new.0 => {
                *s = new.clone();
                true
            }
            _ => false,
        };
        if changed {
            tracing::info!(state = %new.0, detail = new.1.as_deref().unwrap_or(""), "primary queue machine");
            self.bus.emit(Event::DeviceState {
                device: DEVICE.into(),
                state: new.0,
                detail: new.1,
            });
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, LinkError> {
        let result = async {
            let response = request
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| LinkError::Unreachable(without_url(&e)))?;
            let status = response.status();
            if status.is_success() {
                return response
                    .json::<T>()
                    .await
                    .map_err(|e| LinkError::Unreachable(without_url(&e)));
            }
            let body: Option<ErrorBody> = response.json().await.ok();
            Err(LinkError::Refused {
                status: status.as_u16(),
                code: body
                    .as_ref()
                    .map(|b| b.error.code.clone())
                    .unwrap_or_else(|| "http".into()),
                message: body
                    .map(|b| b.error.message)
                    .unwrap_or_else(|| status.to_string()),
            })
        }
        .await;
        self.note(&result.as_ref().map(|_| ()).map_err(Clone::clone));
        result
    }

    fn url(&self, path: &str) -> String {
        format!("{}{PREFIX}{path}", self.base)
    }

    /// Rule Q7: a number for `service`, issued by the primary.
    pub async fn take_number(&self, service: &str) -> Result<NumberGrant, LinkError> {
        self.send(self.http.post(self.url("/numbers")).json(&NumberRequest {
            service: service.to_string(),
        }))
        .await
    }

    /// The branch queue's status (the primary's).
    pub async fn status(&self) -> Result<QueueStatusInfo, LinkError> {
        self.send(self.http.get(self.url("/status"))).await
    }

    /// Rule Q9: the primary's report of `date` (today without).
    pub async fn report(&self, date: Option<&str>) -> Result<QueueReport, LinkError> {
        let mut request = self.http.get(self.url("/report"));
        if let Some(d) = date {
            request = request.query(&[("date", d)]);
        }
        self.send(request).await
    }

    /// Check the primary now and every `probe_interval_ms` until shutdown.
    pub async fn probe_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let _: Result<kiosk_proto::branch::Health, LinkError> =
                self.send(self.http.get(self.url("/health"))).await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.probe_interval) => {}
            }
        }
    }
}

/// reqwest's error without the URL (it may hold nothing secret, but the
/// message is for the technician: short).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.without_url_ref_string();
    if e.is_timeout() {
        text = "timed out".into();
    } else if e.is_connect() {
        text = "cannot connect".into();
    }
    text
}

trait WithoutUrl {
    fn without_url_ref_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_string(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(url.as_str(), "");
        }
        s
    }
}
