//! kioskd's configuration: one TOML file, parsed into a raw form with serde
//! (unknown keys refused), then checked into the typed [`Config`].
//!
//! Every error names the key it is about (`readers[0].sam.baud: ...`), and
//! checking collects every problem at once rather than stopping at the first.
//! `docs/configuration.md` lists every key with its default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiosk_idcard::mask::MaskPolicy;
use kiosk_idreader::ReaderConfig;
use serde::Deserialize;

use crate::Error;

/// Where the local API listens when the config does not say.
pub const DEFAULT_SOCKET: &str = "/run/kiosk/kioskd.sock";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kiosk: KioskSection,
    #[serde(default)]
    pub api: ApiSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub masking: MaskPolicy,
    #[serde(default)]
    pub readers: Vec<ReaderConfig>,
    /// The local database; without it the kiosk records nothing and has
    /// no audit trail (a read-only information kiosk).
    #[serde(default)]
    pub store: Option<StoreSection>,
    #[serde(default)]
    pub sync: SyncSection,
    /// The core bank; without it recorded changes stay in the outbox.
    #[serde(default)]
    pub corebank: Option<kiosk_corebank::CoreBankConfig>,
    /// The queue flow (services, numbering); without it `queue_*` methods
    /// are refused.
    #[serde(default)]
    pub queue: Option<crate::flows::queue::QueueConfig>,
    /// The ticket printer, if this kiosk has one.
    #[serde(default)]
    pub printer: Option<PrinterSection>,
    /// The customer sessions (ID validity update, mobile number change).
    #[serde(default)]
    pub session: SessionSection,
    /// Prometheus metrics and health endpoints; off without it.
    #[serde(default)]
    pub metrics: Option<MetricsSection>,
    /// What kioskd keeps for the touchscreen UI (its technician PIN).
    #[serde(default)]
    pub ui: UiSection,
    /// The branch queue (counters, displays, several queue machines);
    /// off without it.
    #[serde(default)]
    pub branch: Option<BranchSection>,
}

/// `[branch]`: this queue machine's part in the branch queue
/// (docs/branch-api.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSection {
    /// `primary` (keeps the numbering, serves the branch API) or
    /// `secondary` (takes its numbers from the primary, rule Q7).
    pub role: BranchRole,
    /// Primary: where the branch API listens (`0.0.0.0:8443`).
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// Primary: the TLS certificate chain (PEM).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Primary: the certificate's private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Primary: plain HTTP instead of TLS, allowed only on a loopback
    /// `listen` address (a proxy or a test on the same machine).
    #[serde(default)]
    pub insecure_loopback_http: bool,
    /// Primary: the counters.
    #[serde(default)]
    pub counters: Vec<CounterSection>,
    /// Primary: the secondary queue machines allowed to take numbers.
    #[serde(default)]
    pub machines: Vec<MachineSection>,
    /// Secondary: the primary's branch API (`https://10.1.2.3:8443`).
    #[serde(default)]
    pub primary_url: Option<String>,
    /// Secondary: a CA certificate (PEM) to trust for the primary's
    /// certificate (a branch's own CA or the primary's self-signed one).
    #[serde(default)]
    pub primary_ca: Option<PathBuf>,
    /// Secondary: a file (mode 0600) holding this machine's token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Secondary: how long a request to the primary may take.
    #[serde(default = "default_primary_timeout_ms")]
    pub primary_timeout_ms: u64,
    /// Secondary: how often the primary's reachability is checked.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Primary: the folder of the hall display's voice clips
    /// (`zh/*.wav`, `en/*.wav`, made by `cargo xtask hall-voices`; a bank
    /// puts its own recordings there), served under `/voices/`. Without
    /// it the display shows calls but stays silent.
    #[serde(default)]
    pub voices_dir: Option<PathBuf>,
    /// Primary: the languages the hall display announces a call in, in
    /// order (rule Q6: `["zh"]`, or `["zh", "en"]`).
    #[serde(default = "default_display_languages")]
    pub display_languages: Vec<String>,
    /// Primary: at most this many branch API connections at once (the
    /// counters, the displays, the secondaries); more are closed at once,
    /// so a LAN client opening many cannot take the daemon's descriptors.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Primary: a connection that has not sent a request's headers (or
    /// finished its TLS handshake) this long after it opened or after its
    /// last answer is closed, freeing its place.
    #[serde(default = "default_request_header_timeout_ms")]
    pub request_header_timeout_ms: u64,
}

fn default_display_languages() -> Vec<String> {
    vec!["zh".into()]
}

fn default_max_connections() -> usize {
    64
}

fn default_request_header_timeout_ms() -> u64 {
    10_000
}

fn default_primary_timeout_ms() -> u64 {
    3000
}

fn default_probe_interval_ms() -> u64 {
    5000
}

/// `[branch] role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchRole {
    Primary,
    Secondary,
}

/// `[[branch.counters]]`: one counter (a teller's window).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSection {
    /// `3`: what the hall hears ("请A001号到3号窗口办理").
    pub id: String,
    /// Default `{id}号窗口`.
    #[serde(default)]
    pub label_zh: Option<String>,
    /// Default `Counter {id}`.
    #[serde(default)]
    pub label_en: Option<String>,
    /// Service ids it calls, in order (`["vip", "personal"]`: VIP first).
    pub services: Vec<String>,
    /// SHA-256 (hex) of the counter's token (`kioskctl branch-token`).
    pub token_sha256: String,
}

impl CounterSection {
    pub fn label_zh(&self) -> String {
        self.label_zh
            .clone()
            .unwrap_or_else(|| format!("{}号窗口", self.id))
    }

    pub fn label_en(&self) -> String {
        self.label_en
            .clone()
            .unwrap_or_else(|| format!("Counter {}", self.id))
    }
}

/// `[[branch.machines]]`: a secondary queue machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// Its `[kiosk] id`.
    pub id: String,
    /// SHA-256 (hex) of its token.
    pub token_sha256: String,
}

/// The SHA-256 (hex) of a token, as `token_sha256` holds it. Tokens are
/// random (256 bits), so a plain hash is enough to keep them out of the
/// configuration.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.trim().as_bytes()))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl BranchSection {
    /// Check what serde cannot, against the `[queue]` services.
    fn check(&self, queue: Option<&crate::flows::queue::QueueConfig>) -> Vec<String> {
        let mut problems = Vec::new();
        if queue.is_none() {
            problems.push("branch: needs a [queue] (its services)".into());
        }
        let known = |id: &str| queue.is_some_and(|q| q.service(id).is_some());
        let mut hashes = BTreeSet::new();
        match self.role {
            BranchRole::Primary => {
                if self.max_connections == 0 {
                    problems.push("branch.max_connections: must be at least 1".into());
                }
                if self.request_header_timeout_ms == 0 {
                    problems.push("branch.request_header_timeout_ms: must be at least 1".into());
                }
                match self.listen {
                    None => problems.push("branch.listen: a primary needs an address".into()),
                    Some(addr) if self.insecure_loopback_http && !addr.ip().is_loopback() => {
                        problems.push(format!(
                            "branch.insecure_loopback_http: {addr} is not a loopback address; plain HTTP is allowed on loopback only"
                        ))
                    }
                    Some(_) => {}
                }
                if !self.insecure_loopback_http {
                    for (key, path) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
                        match path {
                            None => problems.push(format!("branch.{key}: needed for HTTPS")),
                            Some(p) if !p.is_file() => problems
                                .push(format!("branch.{key}: {} is not a file", p.display())),
                            Some(_) => {}
                        }
                    }
                }
                let mut ids = BTreeSet::new();
                for (i, c) in self.counters.iter().enumerate() {
                    let key = format!("branch.counters[{i}]");
                    if c.id.trim().is_empty()
                        || c.id.len() > 16
                        || !c
                            .id
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                    {
                        problems.push(format!(
                            "{key}.id: {:?} must be 1 to 16 letters, digits or '-'",
                            c.id
                        ));
                    } else if !ids.insert(c.id.as_str()) {
                        problems.push(format!("{key}.id: {:?} is used twice", c.id));
                    }
                    if c.services.is_empty() {
                        problems.push(format!("{key}.services: at least one service"));
                    }
                    for s in &c.services {
                        if !known(s) {
                            problems
                                .push(format!("{key}.services: {s:?} is not a [queue] service"));
                        }
                    }
                    if !is_sha256_hex(&c.token_sha256) {
                        problems.push(format!("{key}.token_sha256: not 64 lowercase hex digits"));
                    } else if !hashes.insert(c.token_sha256.as_str()) {
                        problems.push(format!(
                            "{key}.token_sha256: another credential has the same token"
                        ));
                    }
                }
                if self.display_languages.is_empty()
                    || self
                        .display_languages
                        .iter()
                        .any(|l| !matches!(l.as_str(), "zh" | "en"))
                {
                    problems.push(format!(
                        "branch.display_languages: {:?}: \"zh\" and/or \"en\", at least one",
                        self.display_languages
                    ));
                }
                if let Some(dir) = &self.voices_dir
                    && !dir.is_dir()
                {
                    problems.push(format!(
                        "branch.voices_dir: {} is not a folder (cargo xtask hall-voices makes one)",
                        dir.display()
                    ));
                }
                for (i, m) in self.machines.iter().enumerate() {
                    let key = format!("branch.machines[{i}]");
                    if m.id.trim().is_empty() || m.id.chars().any(char::is_control) {
                        problems.push(format!("{key}.id: must not be empty"));
                    }
                    if !is_sha256_hex(&m.token_sha256) {
                        problems.push(format!("{key}.token_sha256: not 64 lowercase hex digits"));
                    } else if !hashes.insert(m.token_sha256.as_str()) {
                        problems.push(format!(
                            "{key}.token_sha256: another credential has the same token"
                        ));
                    }
                }
            }
            BranchRole::Secondary => {
                match &self.primary_url {
                    None => problems.push("branch.primary_url: a secondary needs the primary's URL".into()),
                    Some(u) if !(u.starts_with("https://") || u.starts_with("http://127.") || u.starts_with("http://[::1]") || u.starts_with("http://localhost")) => {
                        problems.push(format!("branch.primary_url: {u:?} must be https:// (plain http only to loopback)"))
                    }
                    Some(_) => {}
                }
                match &self.token_file {
                    None => problems.push("branch.token_file: a secondary needs its token".into()),
                    Some(p) if !p.is_file() => {
                        problems.push(format!("branch.token_file: {} is not a file", p.display()))
                    }
                    Some(_) => {}
                }
                if let Some(ca) = &self.primary_ca
                    && !ca.is_file()
                {
                    problems.push(format!("branch.primary_ca: {} is not a file", ca.display()));
                }
                if !self.counters.is_empty() || !self.machines.is_empty() || self.listen.is_some() {
                    problems
                        .push("branch: counters, machines and listen belong to the primary".into());
                }
            }
        }
        if !(100..=60_000).contains(&self.primary_timeout_ms) {
            problems.push("branch.primary_timeout_ms: must be between 100 and 60000".into());
        }
        if !(100..=600_000).contains(&self.probe_interval_ms) {
            problems.push("branch.probe_interval_ms: must be between 100 and 600000".into());
        }
        problems
    }
}

// `[ui]` is the technician gate's own section.
pub use crate::technician::UiSection;

/// `[metrics]`: the fleet metrics endpoint (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address and port, e.g. `127.0.0.1:9187`.
    pub listen: std::net::SocketAddr,
    /// Allow a non-loopback `listen` address (a fleet scraper on the LAN).
    #[serde(default)]
    pub allow_non_loopback: bool,
}

/// `[session]`: the customer flows' timing and rule I9's update window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    /// A session ends after this many seconds without an input.
    pub idle_timeout_s: u64,
    /// The warning comes this many seconds before the end (0: none).
    pub idle_warning_s: u64,
    /// Rules A2, A4: both idle times are this many times longer in a
    /// session the customer started in the elderly-friendly mode.
    pub elderly_idle_factor: u32,
    /// Rule I9: updates accepted from this many days before the old card's
    /// expiry (set both `update_window_days_*` to turn the window on).
    pub update_window_days_before: Option<u32>,
    /// Rule I9: ... to this many days after it.
    pub update_window_days_after: Option<u32>,
    /// How long a session waits for the bank to confirm a recorded change
    /// before it tells the customer "accepted, will be synced" (rule C3).
    pub bank_wait_ms: u64,
    /// Taking the card away from the reader ends the session (cancelled).
    pub end_on_card_removal: bool,
}

impl Default for SessionSection {
    fn default() -> Self {
        SessionSection {
            idle_timeout_s: 120,
            idle_warning_s: 20,
            elderly_idle_factor: 2,
            update_window_days_before: None,
            update_window_days_after: None,
            bank_wait_ms: 3000,
            end_on_card_removal: false,
        }
    }
}

/// `[printer]`: one ESC/POS ticket printer on a serial port (the
/// default), a USB printer-class node or a network printer's raw port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterSection {
    /// The printer's name in `status` and events. Default `printer`.
    #[serde(default = "default_printer_name")]
    pub name: String,
    /// `serial` (default), `usb` or `tcp`.
    #[serde(default)]
    pub transport: Option<kiosk_escpos::Transport>,
    /// Serial and USB: the device's stable path.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// TCP: `host:port`.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub baud: Option<u32>,
    #[serde(default)]
    pub flow_control: Option<kiosk_escpos::FlowControl>,
    #[serde(default)]
    pub encoding: Option<kiosk_escpos::TextEncoding>,
    #[serde(default)]
    pub write_timeout_ms: Option<u64>,
    #[serde(default)]
    pub status_timeout_ms: Option<u64>,
    /// False: the printer never answers `DLE EOT`.
    #[serde(default)]
    pub status: Option<bool>,
    /// Automatic status back (`GS a`; default true, used when `status`).
    #[serde(default)]
    pub automatic_status_back: Option<bool>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Fallback fonts for lines printed as raster images.
    #[serde(default)]
    pub raster_fonts: Option<Vec<PathBuf>>,
    /// Serial: lower a USB-serial adapter's latency timer (default true).
    #[serde(default)]
    pub low_latency: Option<bool>,
    /// Where sysfs is mounted (default `/sys`).
    #[serde(default)]
    pub sysfs: Option<PathBuf>,
}

fn default_printer_name() -> String {
    "printer".into()
}

impl PrinterSection {
    /// The driver's config, with the driver's defaults for what is not set.
    pub fn driver_config(&self) -> kiosk_escpos::PrinterConfig {
        // The driver's validate() says what is missing or misplaced.
        let mut c = kiosk_escpos::PrinterConfig::new(self.path.clone().unwrap_or_default());
        c.transport = self.transport.unwrap_or_default();
        c.address = self.address.clone();
        if let Some(s) = self.status {
            c.status = s;
        }
        if let Some(asb) = self.automatic_status_back {
            c.automatic_status_back = asb;
        }
        if let Some(t) = self.connect_timeout_ms {
            c.connect_timeout_ms = t;
        }
        if let Some(b) = self.baud {
            c.baud = b;
        }
        if let Some(f) = self.flow_control {
            c.flow_control = f;
        }
        if let Some(e) = self.encoding {
            c.encoding = e;
        }
        if let Some(t) = self.write_timeout_ms {
            c.write_timeout_ms = t;
        }
        if let Some(t) = self.status_timeout_ms {
            c.status_timeout_ms = t;
        }
        if let Some(fonts) = &self.raster_fonts {
            c.raster_fonts = fonts.clone();
        }
        if let Some(low) = self.low_latency {
            c.low_latency = low;
        }
        if let Some(sysfs) = &self.sysfs {
            c.sysfs = sysfs.clone();
        }
        c
    }
}

/// `[kiosk]`: who this kiosk is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskSection {
    /// The kiosk's id, sent to the core bank as `X-Kiosk-Id`.
    pub id: String,
    pub branch_id: String,
    pub branch_name: String,
    pub profile: Profile,
    /// The branch's time zone (IANA name): "today" for the ID rules (I4,
    /// I9), the time on slips, and the queue's business day. Default: the
    /// `[queue]` table's, else `Asia/Shanghai`.
    #[serde(
        default,
        deserialize_with = "crate::flows::queue::de_optional_timezone"
    )]
    pub timezone: Option<chrono_tz::Tz>,
}

/// Which kind of kiosk this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    SmartTeller,
    QueueMachine,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::SmartTeller => "smart_teller",
            Profile::QueueMachine => "queue_machine",
        }
    }
}

/// `[api]`: the local socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    pub socket: PathBuf,
    /// Connections served at once; more are answered `too_many_clients`
    /// and closed.
    pub max_clients: usize,
    /// Open the `submit_change` method, which records a change without a
    /// customer flow: for demo and test kiosks only.
    pub allow_direct_changes: bool,
    /// The socket's group (mode 0660); the UI and technicians are members.
    /// Without it the socket keeps kioskd's own group.
    pub group: Option<String>,
    /// Callers in any of these groups (by name) are technicians: every
    /// method. root and kioskd's own user always are.
    pub technician_groups: Vec<String>,
    /// Callers in any of these groups are the customer UI: read-only
    /// methods, sessions, tickets, card reads. Everyone else is read-only.
    pub customer_groups: Vec<String>,
    /// A connection that neither sends a request nor subscribes for this
    /// long (and has none in flight) is closed.
    pub idle_timeout_ms: u64,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            socket: PathBuf::from(DEFAULT_SOCKET),
            max_clients: 64,
            allow_direct_changes: false,
            group: None,
            technician_groups: Vec::new(),
            customer_groups: Vec::new(),
            idle_timeout_ms: 60_000,
        }
    }
}

/// `[log]`: tracing output on stderr (journald picks it up).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter, e.g. `info` or `kiosk=debug,info`. `KIOSK_LOG`
    /// in the environment overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// The most characters of an ID or mobile number a masked form may show.
const MAX_REVEALED: usize = 7;

// `[store]` is the store's own section (the store depends on nothing above it).
pub use crate::store::{DEFAULT_KEY_FILE, DEFAULT_STORE_PATH, StoreSection};

/// `[sync]`: delivery of the outbox to the core bank.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSection {
    /// The first retry's delay after a transient failure.
    pub backoff_min_ms: u64,
    /// The longest delay between retries (the delay doubles up to it).
    pub backoff_max_ms: u64,
    /// Fraction of each delay taken off at random (0 = none, 1 = up to all),
    /// so that kiosks do not retry in step after an outage.
    pub jitter: f64,
    /// Keep the text of the bank's rejections, not only their code: only
    /// where the bank vouches that its messages hold no personal data.
    pub keep_bank_messages: bool,
    /// Requests to the core bank out at once, each for a different
    /// customer (a customer's changes always go one after the other).
    pub concurrency: usize,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            backoff_min_ms: 500,
            backoff_max_ms: 60_000,
            jitter: 0.2,
            keep_bank_messages: false,
            concurrency: 16,
        }
    }
}

impl Config {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|problems| Error::Config {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Only the `[store]` table of a config file (`None` without one), for
    /// tools that read the database while the rest of the config may not
    /// check out on this machine (the package's pre-upgrade backup runs
    /// before the bank's key files are in place).
    pub fn load_store_section(path: &Path) -> Result<Option<StoreSection>, Error> {
        #[derive(serde::Deserialize)]
        struct StoreOnly {
            store: Option<StoreSection>,
        }
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let de = toml::Deserializer::parse(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            problems: vec![one_line(&e.to_string())],
        })?;
        let only: StoreOnly = serde_path_to_error::deserialize(de).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            problems: vec![format!(
                "{}: {}",
                e.path(),
                one_line(&e.inner().to_string())
            )],
        })?;
        Ok(only.store)
    }

    /// Parse and check config text; every problem found, each naming its key.
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        let de = toml::Deserializer::parse(text).map_err(|e| vec![one_line(&e.to_string())])?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            vec![format!("{key}: {}", one_line(&e.inner().to_string()))]
        })?;
        let problems = config.check();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Every problem in config text, as many as can be found in one pass
    /// (for `kioskctl config check`): a key of the wrong type or an unknown
    /// key is reported and left out, and the rest is parsed and checked
    /// again, so one bad key does not hide the others. Empty when valid.
    pub fn problems(text: &str) -> Vec<String> {
        let mut value: toml::Table = match text.parse() {
            Ok(v) => v,
            Err(e) => return vec![one_line(&e.to_string())],
        };
        let mut problems = Vec::new();
        // Each round removes one key, so this ends; the bound is a guard.
        for _ in 0..256 {
            let de = toml::Value::Table(value.clone());
            match serde_path_to_error::deserialize::<_, Config>(de) {
                Ok(config) => {
                    problems.extend(config.check());
                    return problems;
                }
                Err(e) => {
                    let message = one_line(&e.inner().to_string());
                    let path = e.path().to_string();
                    let problem = if path.is_empty() || path == "?" {
                        message.clone()
                    } else {
                        format!("{path}: {message}")
                    };
                    if problems.contains(&problem) {
                        return problems;
                    }
                    problems.push(problem);
                    if !remove_offending_key(&mut value, &e, &message) {
                        // A missing required key or an error without a key
                        // to leave out: nothing further can be checked.
                        return problems;
                    }
                }
            }
        }
        problems
    }

    /// The branch's time zone: `[kiosk] timezone`, else `[queue]`'s, else
    /// `Asia/Shanghai`.
    pub fn branch_timezone(&self) -> chrono_tz::Tz {
        self.kiosk
            .timezone
            .or(self.queue.as_ref().map(|q| q.timezone))
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("kiosk.id", &self.kiosk.id),
            ("kiosk.branch_id", &self.kiosk.branch_id),
            ("kiosk.branch_name", &self.kiosk.branch_name),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("{key}: must not be empty"));
            }
        }
        if self
            .api
            .group
            .as_deref()
            .is_some_and(|g| g.trim().is_empty())
        {
            problems.push("api.group: must not be empty".into());
        }
        for (key, groups) in [
            ("api.technician_groups", &self.api.technician_groups),
            ("api.customer_groups", &self.api.customer_groups),
        ] {
            if groups.iter().any(|g| g.trim().is_empty()) {
                problems.push(format!("{key}: a group name must not be empty"));
            }
        }
        if let Some(m) = &self.metrics
            && !m.listen.ip().is_loopback()
            && !m.allow_non_loopback
        {
            problems.push(format!(
                "metrics.listen: {} is not a loopback address; set metrics.allow_non_loopback = true to expose it",
                m.listen
            ));
        }
        if self.api.max_clients == 0 {
            problems.push("api.max_clients: must be at least 1".into());
        }
        if !(100..=86_400_000).contains(&self.api.idle_timeout_ms) {
            problems.push("api.idle_timeout_ms: must be between 100 and 86400000".into());
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            problems.push(format!(
                "log.level: {:?} is not a valid filter",
                self.log.level
            ));
        }
        if let Some(store) = &self.store {
            if store.path.as_os_str().is_empty() {
                problems.push("store.path: must not be empty".into());
            }
            if store.key_file.as_os_str().is_empty() {
                problems.push("store.key_file: must not be empty".into());
            } else if store.key_file == store.path {
                problems.push("store.key_file: must not be the database file".into());
            }
            if store.retention_hours > 24 * 366 {
                problems.push("store.retention_hours: at most 8784 (one year)".into());
            }
            if !(1..=600_000).contains(&store.busy_timeout_ms) {
                problems.push("store.busy_timeout_ms: must be between 1 and 600000".into());
            }
        }
        if let Some(corebank) = &self.corebank {
            if self.store.is_none() {
                problems.push("corebank: needs a [store] to deliver changes from".into());
            }
            if let Err(found) = corebank.validate() {
                problems.extend(found.iter().map(ToString::to_string));
            }
        }
        if !(1..=3_600_000).contains(&self.sync.backoff_min_ms) {
            problems.push("sync.backoff_min_ms: must be between 1 and 3600000".into());
        }
        if self.sync.backoff_max_ms < self.sync.backoff_min_ms {
            problems.push("sync.backoff_max_ms: must not be less than sync.backoff_min_ms".into());
        } else if self.sync.backoff_max_ms > 86_400_000 {
            problems.push("sync.backoff_max_ms: at most 86400000 (one day)".into());
        }
        if !(1..=64).contains(&self.sync.concurrency) {
            problems.push("sync.concurrency: must be between 1 and 64".into());
        }
        if !(0.0..=1.0).contains(&self.sync.jitter) {
            problems.push(format!(
                "sync.jitter: {} is not between 0 and 1",
                self.sync.jitter
            ));
        }
        // Rule S1: a masked number keeps at most 7 characters in clear
        // (3 + 4 by default, GB/T 35273 de-identified display).
        let m = &self.masking;
        for (key, head, tail, what) in [
            (
                "masking.id_keep_head",
                m.id_keep_head,
                m.id_keep_tail,
                "an 18-digit ID number",
            ),
            (
                "masking.phone_keep_head",
                m.phone_keep_head,
                m.phone_keep_tail,
                "a mobile number",
            ),
        ] {
            if head.saturating_add(tail) > MAX_REVEALED {
                problems.push(format!(
                    "{key}: keeping {head} + {tail} characters reveals {} of {what}; at most \
                     {MAX_REVEALED} may show (rule S1)",
                    head.saturating_add(tail)
                ));
            }
        }
        if let Some(queue) = &self.queue {
            problems.extend(queue.check("queue"));
            if let Some(branch) = self.kiosk.timezone
                && branch != queue.timezone
            {
                problems.push(format!(
                    "queue.timezone: {} differs from kiosk.timezone {branch}: one branch, one time zone",
                    queue.timezone
                ));
            }
            if self.store.is_none() {
                problems.push("queue: needs a [store] to keep the ticket numbers in".into());
            }
        }
        if let Some(branch) = &self.branch {
            problems.extend(branch.check(self.queue.as_ref()));
        }
        let session = &self.session;
        if session.idle_timeout_s == 0 || session.idle_timeout_s > 3600 {
            problems.push("session.idle_timeout_s: must be between 1 and 3600".into());
        }
        if session.idle_warning_s >= session.idle_timeout_s {
            problems
                .push("session.idle_warning_s: must be less than session.idle_timeout_s".into());
        }
        if !(1..=10).contains(&session.elderly_idle_factor) {
            problems.push("session.elderly_idle_factor: must be between 1 and 10".into());
        }
        if session.update_window_days_before.is_some() != session.update_window_days_after.is_some()
        {
            problems
                .push("session.update_window_days_before and _after: set both or neither".into());
        }
        if session.bank_wait_ms == 0 || session.bank_wait_ms > 60_000 {
            problems.push("session.bank_wait_ms: must be between 1 and 60000".into());
        }
        if let Some(hash) = &self.ui.technician_pin_hash
            && let Err(e) = crate::technician::check_hash(hash)
        {
            problems.push(format!("ui.technician_pin_hash: {e}"));
        }
        if self.ui.technician_unlock_s == 0 || self.ui.technician_unlock_s > 3600 {
            problems.push("ui.technician_unlock_s: must be between 1 and 3600".into());
        }
        if self.ui.technician_pin_attempts == 0 {
            problems.push("ui.technician_pin_attempts: must be at least 1".into());
        }
        if self.ui.technician_lockout_s == 0 || self.ui.technician_lockout_s > 3600 {
            problems.push("ui.technician_lockout_s: must be between 1 and 3600".into());
        }
        if let Some(printer) = &self.printer {
            if printer.name.trim().is_empty() {
                problems.push("printer.name: must not be empty".into());
            } else if self.readers.iter().any(|r| r.name == printer.name) {
                problems.push(format!(
                    "printer.name: {:?} is already the name of a reader",
                    printer.name
                ));
            }
            if let Err(e) = printer.driver_config().validate() {
                problems.push(format!("printer: {e}"));
            }
            if printer.automatic_status_back == Some(true) && printer.status == Some(false) {
                problems.push(
                    "printer.automatic_status_back: needs status = true (a printer that gives no \
                     status sends no automatic status either)"
                        .into(),
                );
            }
        }
        let mut names = BTreeSet::new();
        for (i, reader) in self.readers.iter().enumerate() {
            if !names.insert(reader.name.as_str()) {
                problems.push(format!(
                    "readers[{i}].name: {:?} is used twice",
                    reader.name
                ));
            }
            if let Err(e) = reader.validate() {
                problems.push(format!("readers[{i}]: {e}"));
            }
            // Checked here, not loaded: loading runs the library's code.
            if let Some(sdtapi) = &reader.sdtapi
                && !sdtapi.library.as_os_str().is_empty()
                && !sdtapi.library.is_file()
            {
                problems.push(format!(
                    "readers[{i}].sdtapi.library: {} is not a file",
                    sdtapi.library.display()
                ));
            }
        }
        problems
    }
}

/// Take out of `root` the key a deserialization error is about, so that
/// parsing can go on to find the next problem. False if there is none.
fn remove_offending_key(
    root: &mut toml::Table,
    e: &serde_path_to_error::Error<toml::de::Error>,
    message: &str,
) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = e.path().iter().collect();
    // An unknown key's name is in the message ("unknown field `x`").
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    // The table the key sits in, and the key.
    let (parent, key): (&[&Segment], String) = match (&unknown, segments.split_last()) {
        (Some(name), _) => {
            // The path may or may not already end at the unknown key.
            match segments.split_last() {
                Some((Segment::Map { key }, rest)) if key == name => (rest, name.clone()),
                _ => (&segments[..], name.clone()),
            }
        }
        (None, Some((Segment::Map { key }, rest))) => (rest, key.clone()),
        (None, Some((Segment::Seq { .. }, _))) => {
            // A bad element of a list: leave out the whole list's key.
            match segments
                .iter()
                .rposition(|s| matches!(s, Segment::Map { .. }))
            {
                Some(i) => match segments[i] {
                    Segment::Map { key } => (&segments[..i], key.clone()),
                    _ => return false,
                },
                None => return false,
            }
        }
        _ => return false,
    };
    if message.starts_with("missing field") {
        return false;
    }
    let mut node = toml::Value::Table(std::mem::take(root));
    let removed = remove_at(&mut node, parent, &key);
    if let toml::Value::Table(t) = node {
        *root = t;
    }
    removed
}

fn remove_at(node: &mut toml::Value, path: &[&serde_path_to_error::Segment], key: &str) -> bool {
    use serde_path_to_error::Segment;
    match (path.split_first(), node) {
        (None, toml::Value::Table(t)) => t.remove(key).is_some(),
        (Some((Segment::Map { key: k }, rest)), toml::Value::Table(t)) => t
            .get_mut(k.as_str())
            .is_some_and(|child| remove_at(child, rest, key)),
        (Some((Segment::Seq { index }, rest)), toml::Value::Array(a)) => a
            .get_mut(*index)
            .is_some_and(|child| remove_at(child, rest, key)),
        _ => false,
    }
}

/// toml's messages span several lines with a source excerpt; keep the gist.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[kiosk]
id = "K-1"
branch_id = "0101"
branch_name = "Test branch"
profile = "smart_teller"
"#;

    const QUEUE: &str = r#"
[store]
path = "/tmp/x.db"
key_file = "/tmp/x.key"

[queue]
timezone = "Asia/Shanghai"

[[queue.services]]
id = "personal"
letter = "A"
name_zh = "个人业务"
name_en = "Personal banking"
"#;

    /// The branch API: plain HTTP only on loopback, HTTPS needs its files,
    /// counters name configured services and carry token hashes only.
    #[test]
    fn branch_section_is_checked_key_by_key() {
        let hash = token_hash("secret-token");
        assert_eq!(hash.len(), 64);
        let primary = |listen: &str, extra: &str| {
            Config::problems(&format!(
                "{MINIMAL}{QUEUE}
[branch]
role = \"primary\"
listen = \"{listen}\"
{extra}
[[branch.counters]]
id = \"3\"
services = [\"personal\"]
token_sha256 = \"{hash}\"
"
            ))
        };
        let ok = primary("127.0.0.1:8443", "insecure_loopback_http = true");
        assert!(ok.is_empty(), "{ok:?}");
        let display = primary(
            "127.0.0.1:8443",
            "insecure_loopback_http = true\ndisplay_languages = [\"zh\", \"fr\"]\nvoices_dir = \"/nonexistent\"",
        );
        for key in ["branch.display_languages", "branch.voices_dir"] {
            assert!(
                display.iter().any(|p| p.starts_with(key)),
                "{key}: {display:?}"
            );
        }
        let lan = primary("0.0.0.0:8443", "insecure_loopback_http = true");
        assert!(
            lan.iter()
                .any(|p| p.starts_with("branch.insecure_loopback_http") && p.contains("loopback")),
            "{lan:?}"
        );
        let https = primary("0.0.0.0:8443", "tls_cert = \"/nonexistent.pem\"");
        assert!(
            https.iter().any(|p| p.starts_with("branch.tls_cert")),
            "{https:?}"
        );
        assert!(
            https.iter().any(|p| p.starts_with("branch.tls_key")),
            "{https:?}"
        );
        let bad = Config::problems(&format!(
            "{MINIMAL}{QUEUE}
[branch]
role = \"primary\"
listen = \"127.0.0.1:1\"
insecure_loopback_http = true
[[branch.counters]]
id = \"3 \"
services = [\"nope\"]
token_sha256 = \"secret\"
"
        ));
        for key in [
            "branch.counters[0].id",
            "branch.counters[0].services",
            "branch.counters[0].token_sha256",
        ] {
            assert!(bad.iter().any(|p| p.starts_with(key)), "{key}: {bad:?}");
        }
        let secondary = Config::problems(&format!(
            "{MINIMAL}{QUEUE}
[branch]
role = \"secondary\"
primary_url = \"http://10.0.0.5:8443\"
"
        ));
        assert!(
            secondary
                .iter()
                .any(|p| p.starts_with("branch.primary_url")),
            "{secondary:?}"
        );
        assert!(
            secondary.iter().any(|p| p.starts_with("branch.token_file")),
            "{secondary:?}"
        );
        let no_queue = Config::problems(&format!(
            "{MINIMAL}
[branch]
role = \"primary\"
listen = \"127.0.0.1:1\"
insecure_loopback_http = true
"
        ));
        assert!(
            no_queue
                .iter()
                .any(|p| p.starts_with("branch: needs a [queue]")),
            "{no_queue:?}"
        );
    }

    /// Rule S1: `[masking]` may not reveal more than 7 characters of an
    /// ID number (or a mobile number).
    #[test]
    fn masking_that_reveals_too_much_is_refused() {
        let ok = Config::problems(&format!(
            "{MINIMAL}\n[masking]\nid_keep_head = 6\nid_keep_tail = 1\n"
        ));
        assert!(ok.is_empty(), "{ok:?}");
        let bad = Config::problems(&format!(
            "{MINIMAL}\n[masking]\nid_keep_head = 6\nid_keep_tail = 4\n"
        ));
        assert!(
            bad.iter()
                .any(|p| p.starts_with("masking.id_keep_head") && p.contains("10")),
            "{bad:?}"
        );
        let phone = Config::problems(&format!("{MINIMAL}\n[masking]\nphone_keep_tail = 8\n"));
        assert!(
            phone
                .iter()
                .any(|p| p.starts_with("masking.phone_keep_head")),
            "{phone:?}"
        );
    }

    /// Rule I4 "in the branch's time zone": `[kiosk] timezone` is the
    /// branch's, for the flows too (not borrowed from `[queue]`); a
    /// `[queue]` table in another zone is refused, naming both keys.
    #[test]
    fn the_branch_time_zone_is_its_own_key_and_the_queue_agrees_with_it() {
        let berlin = MINIMAL.replace(
            "profile = \"smart_teller\"",
            "profile = \"smart_teller\"\ntimezone = \"Europe/Berlin\"",
        );
        let c = Config::parse(&berlin).expect("valid");
        assert_eq!(
            crate::session::flow_settings(&c, false).timezone,
            chrono_tz::Europe::Berlin
        );
        let bad = Config::problems(&format!(
            "{berlin}\n[store]\n[queue]\ntimezone = \"Asia/Shanghai\"\nservices = []\n"
        ));
        assert!(
            bad.iter()
                .any(|p| p.starts_with("queue.timezone") && p.contains("kiosk.timezone")),
            "{bad:?}"
        );
        let nonsense = Config::problems(&MINIMAL.replace(
            "profile = \"smart_teller\"",
            "profile = \"smart_teller\"\ntimezone = \"Mars/Olympus\"",
        ));
        assert!(
            nonsense.iter().any(|p| p.contains("timezone")),
            "{nonsense:?}"
        );
    }

    #[test]
    fn session_section_defaults_window_off_and_problems_name_their_keys() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.session.idle_timeout_s, 120);
        assert_eq!(c.session.idle_warning_s, 20);
        assert!(c.session.update_window_days_before.is_none());
        assert!(!c.session.end_on_card_removal);
        let settings = crate::session::flow_settings(&c, false);
        assert!(settings.update_window.is_none());
        assert_eq!(settings.timezone, chrono_tz::Asia::Shanghai);
        // Rules A2, A4: a session started in the elderly-friendly mode
        // has twice the idle times by default.
        let elderly = crate::session::flow_settings(&c, true);
        assert_eq!(elderly.idle_timeout, settings.idle_timeout * 2);
        assert_eq!(elderly.idle_warning, settings.idle_warning * 2);
        let with_window = Config::parse(&format!(
            "{MINIMAL}\n[session]\nupdate_window_days_before = 30\nupdate_window_days_after = 90\n"
        ))
        .expect("valid");
        let window = crate::session::flow_settings(&with_window, false)
            .update_window
            .expect("window on");
        assert_eq!((window.days_before, window.days_after), (30, 90));
        let problems = Config::parse(&format!(
            "{MINIMAL}\n[session]\nidle_timeout_s = 10\nidle_warning_s = 10\n\
             update_window_days_before = 30\nbank_wait_ms = 0\n"
        ))
        .expect_err("problems");
        for key in [
            "session.idle_warning_s",
            "session.update_window_days_before",
            "session.bank_wait_ms",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key}: {problems:?}"
            );
        }
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.api.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.api.max_clients, 64);
        assert_eq!(c.log.level, "info");
        assert!(c.readers.is_empty());
        assert_eq!(c.masking, MaskPolicy::default());
        assert!(c.store.is_none());
        assert!(c.corebank.is_none());
        let with_store = Config::parse(&format!("{MINIMAL}\n[store]\n")).expect("valid");
        let store = with_store.store.expect("store section");
        assert_eq!(store.path, PathBuf::from(DEFAULT_STORE_PATH));
        assert_eq!(store.key_file, PathBuf::from(DEFAULT_KEY_FILE));
        assert_eq!(store.retention_hours, 168);
        assert_eq!(c.sync.backoff_min_ms, 500);
        assert_eq!(c.sync.backoff_max_ms, 60_000);
        assert_eq!(c.sync.jitter, 0.2);
    }

    #[test]
    fn store_and_sync_problems_name_their_keys() {
        let text = format!(
            "{MINIMAL}\n[store]\npath = \"/x.db\"\nkey_file = \"/x.db\"\nbusy_timeout_ms = 0\n\
             [sync]\nbackoff_min_ms = 1000\nbackoff_max_ms = 10\njitter = 1.5\n"
        );
        let problems = Config::parse(&text).expect_err("several problems");
        for key in [
            "store.key_file",
            "store.busy_timeout_ms",
            "sync.backoff_max_ms",
            "sync.jitter",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key}: {problems:?}"
            );
        }
        let text = format!("{MINIMAL}\n[sync]\nbackof_min_ms = 1\n");
        let problems = Config::parse(&text).expect_err("unknown key");
        assert!(problems[0].contains("backof_min_ms"), "{problems:?}");
    }

    #[test]
    fn queue_and_printer_problems_name_their_keys() {
        let text = format!(
            "{MINIMAL}\n[store]\n[queue]\ntimezone = \"Asia/Shanghai\"\nnumber_digits = 9\n\
             [[queue.services]]\nid = \"a\"\nletter = \"a\"\nname_zh = \"x\"\nname_en = \"y\"\n\
             [printer]\nname = \"\"\npath = \"/dev/x\"\nbaud = 0\n"
        );
        let problems = Config::parse(&text).expect_err("several problems");
        for key in [
            "queue.number_digits",
            "queue.services[0].letter",
            "printer.name",
            "printer:",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key}: {problems:?}"
            );
        }
        let text = format!("{MINIMAL}\n[queue]\ntimezone = \"Asia/Shanghai\"\nservices = []\n");
        let problems = Config::parse(&text).expect_err("no store, no services");
        assert!(
            problems.iter().any(|p| p.starts_with("queue.services")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("queue: needs")),
            "{problems:?}"
        );
        let text = format!("{MINIMAL}\n[printer]\npath = \"/dev/x\"\nspeed = 1\n");
        let problems = Config::parse(&text).expect_err("unknown key");
        assert!(problems[0].contains("speed"), "{problems:?}");
        let ok =
            Config::parse(&format!("{MINIMAL}\n[printer]\npath = \"/dev/x\"\n")).expect("valid");
        let p = ok.printer.expect("printer");
        assert_eq!(p.name, "printer");
        assert_eq!(
            p.driver_config(),
            kiosk_escpos::PrinterConfig::new("/dev/x")
        );
        assert!(p.driver_config().uses_asb(), "ASB is on by default");
    }

    #[test]
    fn printer_automatic_status_back_is_read_and_checked() {
        let off = Config::parse(&format!(
            "{MINIMAL}\n[printer]\npath = \"/dev/x\"\nautomatic_status_back = false\n"
        ))
        .expect("valid");
        assert!(!off.printer.expect("printer").driver_config().uses_asb());
        let problems = Config::parse(&format!(
            "{MINIMAL}\n[printer]\npath = \"/dev/x\"\nstatus = false\nautomatic_status_back = true\n"
        ))
        .expect_err("ASB without status");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("printer.automatic_status_back")),
            "{problems:?}"
        );
        // A unidirectional printer with the default: no ASB, no problem.
        let blind = Config::parse(&format!(
            "{MINIMAL}\n[printer]\npath = \"/dev/x\"\nstatus = false\n"
        ))
        .expect("valid");
        assert!(!blind.printer.expect("printer").driver_config().uses_asb());
    }

    #[test]
    fn problems_lists_bad_keys_and_semantic_problems_together() {
        let text = format!(
            "{MINIMAL}\n[api]\nsokcet = \"/tmp/x\"\nmax_clients = \"many\"\n\
             [sync]\njitter = 1.5\nbackof_min_ms = 1\n[session]\nidle_timeout_s = 0\n"
        );
        let problems = Config::problems(&text);
        for needle in [
            "sokcet",
            "api.max_clients",
            "backof_min_ms",
            "sync.jitter",
            "session.idle_timeout_s",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
        assert!(Config::problems(MINIMAL).is_empty());
        let missing = Config::problems("[kiosk]\nid = \"K\"\n");
        assert!(
            !missing.is_empty() && missing[0].contains("missing"),
            "{missing:?}"
        );
    }

    #[test]
    fn metrics_listen_is_loopback_unless_allowed() {
        let ok = Config::parse(&format!(
            "{MINIMAL}\n[metrics]\nlisten = \"127.0.0.1:9187\"\n"
        ))
        .expect("valid");
        let m = ok.metrics.expect("metrics");
        assert!(!m.allow_non_loopback);
        let problems = Config::parse(&format!(
            "{MINIMAL}\n[metrics]\nlisten = \"0.0.0.0:9187\"\n"
        ))
        .expect_err("not loopback");
        assert!(problems[0].starts_with("metrics.listen"), "{problems:?}");
        Config::parse(&format!(
            "{MINIMAL}\n[metrics]\nlisten = \"0.0.0.0:9187\"\nallow_non_loopback = true\n"
        ))
        .expect("explicitly allowed");
        let problems = Config::parse(&format!("{MINIMAL}\n[metrics]\nlisten = \"nowhere\"\n"))
            .expect_err("bad address");
        assert!(problems[0].starts_with("metrics.listen"), "{problems:?}");
    }

    #[test]
    fn unknown_key_is_refused_and_named() {
        let text = format!("{MINIMAL}\n[api]\nsokcet = \"/tmp/x\"\n");
        let problems = Config::parse(&text).expect_err("unknown key");
        assert!(problems[0].contains("sokcet"), "{problems:?}");
    }

    #[test]
    fn wrong_type_names_the_key_path() {
        let text = format!("{MINIMAL}\n[api]\nmax_clients = \"many\"\n");
        let problems = Config::parse(&text).expect_err("bad type");
        assert!(problems[0].starts_with("api.max_clients"), "{problems:?}");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let text = MINIMAL.replace("K-1", "").replace("0101", " ") + "\n[log]\nlevel = \"[[[\"\n";
        let problems = Config::parse(&text).expect_err("several problems");
        assert!(
            problems.iter().any(|p| p.starts_with("kiosk.id")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("kiosk.branch_id")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("log.level")),
            "{problems:?}"
        );
    }

    #[test]
    fn shipped_profiles_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kiosk-config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("kiosk-config") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                // The profiles name key files of the machine they run on
                // (/etc/kiosk/..., /tmp/kiosk-demo/...): check everything
                // but those files here.
                let text = std::fs::read_to_string(&path).expect("read profile");
                let mut config: Config =
                    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(
                    config.store.is_some(),
                    "{}: every profile records changes",
                    path.display()
                );
                assert!(
                    config.corebank.take().is_some(),
                    "{}: every profile syncs",
                    path.display()
                );
                let problems = config.check();
                assert!(problems.is_empty(), "{}: {problems:?}", path.display());
                seen += 1;
            }
        }
        assert!(
            seen >= 3,
            "expected smart-teller, queue-machine and demo profiles"
        );
    }
}
