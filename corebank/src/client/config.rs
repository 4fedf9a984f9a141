//! The `[corebank]` section of kioskd's configuration.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::error_chain;
use crate::secret_file::SecretFileProblem;
use crate::signing::SigningKey;

/// How the kiosk reaches the core bank: the `[corebank]` section of kioskd's
/// TOML configuration.
///
/// ```toml
/// [corebank]
/// url = "https://corebank.branch.example:8443"   # required
/// key_file = "/etc/kiosk/corebank.key"            # required: the shared HMAC key, hex
/// ca_file = "/etc/kiosk/corebank-ca.pem"          # default: none (public web roots)
/// client_cert_file = "/etc/kiosk/kiosk.crt"       # default: none (no client certificate)
/// client_key_file = "/etc/kiosk/kiosk.key"        # default: none
/// allow_plain_http = false                        # default: false
/// connect_timeout_ms = 3000                       # default: 3000
/// request_timeout_ms = 10000                      # default: 10000
/// max_clock_skew_ms = 60000                       # default: 60000
/// ```
///
/// Unknown keys are an error. The kiosk id and branch id are not here: they
/// come from kioskd's `[kiosk]` section and are passed to
/// [`CoreBankClient::new`](super::CoreBankClient::new).
///
/// Relative paths are taken as they are, i.e. from the daemon's working
/// directory; kioskd may resolve them against its config file's folder first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreBankConfig {
    /// Base URL of the core bank: scheme, host and port only (a trailing
    /// `/` is fine). The spec's paths (`/v1/...`) are appended to it and are
    /// exactly what is signed, so a path prefix is refused. `https://`, or
    /// `http://` only together with [`allow_plain_http`](Self::allow_plain_http).
    pub url: String,
    /// File holding the kiosk's shared HMAC-SHA256 key as hex (surrounding
    /// whitespace ignored). Never logged.
    pub key_file: PathBuf,
    /// PEM file with the CA certificate(s) the core bank's server
    /// certificate must chain to. When set, only these are trusted; when
    /// unset, the public web roots built into the client (webpki-roots) are.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file with the kiosk's client certificate (and any intermediates),
    /// for servers that ask for one. Needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM file with the private key of `client_cert_file` (PKCS#8, PKCS#1
    /// or SEC1; no other PEM blocks in it). Needs `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Allow an `http://` url (loopback demo, tests). Default `false`.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// Time allowed to open the connection, DNS and TLS handshake included.
    /// Default 3000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for a whole request, from connecting to the last byte of
    /// the answer. Default 10000.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// A `/v1/health` check whose measured clock skew is larger than this
    /// logs a warning and sets
    /// [`HealthInfo::skew_exceeds_limit`](super::HealthInfo::skew_exceeds_limit),
    /// on which kioskd may refuse to take changes. Default 60000. (The core
    /// bank itself refuses signatures whose timestamp is more than 300 s
    /// away from its clock.)
    #[serde(default = "default_max_clock_skew_ms")]
    pub max_clock_skew_ms: u64,
}

/// Default of [`CoreBankConfig::connect_timeout_ms`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default of [`CoreBankConfig::request_timeout_ms`].
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Default of [`CoreBankConfig::max_clock_skew_ms`].
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 60_000;

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_request_timeout_ms() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_MS
}
fn default_max_clock_skew_ms() -> u64 {
    DEFAULT_MAX_CLOCK_SKEW_MS
}

/// Idle pooled connections are dropped after this, before a typical server
/// or middlebox would close them under a request.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest key, CA or certificate file read (they are a few KiB at most).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One problem with a [`CoreBankConfig`], with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key inside the `[corebank]` section, e.g. `"url"`.
    pub key: &'static str,
    /// What is wrong, for a technician. Never holds the key's content.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corebank.{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigProblem {}

/// What [`CoreBankConfig::load`] makes of a valid configuration.
pub(crate) struct Loaded {
    pub(crate) base: reqwest::Url,
    pub(crate) key: SigningKey,
    pub(crate) http: reqwest::Client,
    pub(crate) max_clock_skew: Duration,
}

impl CoreBankConfig {
    /// A configuration with the defaults for everything but the two
    /// required keys.
    pub fn new(url: impl Into<String>, key_file: impl Into<PathBuf>) -> CoreBankConfig {
        CoreBankConfig {
            url: url.into(),
            key_file: key_file.into(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            allow_plain_http: false,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }

    /// Every problem of this configuration, each with its key; `Ok` if there
    /// is none. This reads the files it names (key, CA, client certificate
    /// and key) and checks that they parse, so it finds everything
    /// [`CoreBankClient::new`](super::CoreBankClient::new) would refuse.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        self.load().map(drop)
    }

    pub(crate) fn load(&self) -> Result<Loaded, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &'static str, message: String| {
            problems.push(ConfigProblem { key, message });
        };

        let base = match self.check_url() {
            Ok(url) => Some(url),
            Err((key, message)) => {
                problem(key, message);
                None
            }
        };

        let key = match read_key(&self.key_file) {
            Ok(key) => Some(key),
            Err(message) => {
                problem("key_file", message);
                None
            }
        };

        let ca = match &self.ca_file {
            None => Some(None),
            Some(path) => match read_ca(path) {
                Ok(certs) => Some(Some(certs)),
                Err(message) => {
                    problem("ca_file", message);
                    None
                }
            },
        };

        let identity = match (&self.client_cert_file, &self.client_key_file) {
            (None, None) => Some(None),
            (Some(_), None) => {
                problem(
                    "client_key_file",
                    "missing: client_cert_file is set, so its private key is needed too".into(),
                );
                None
            }
            (None, Some(_)) => {
                problem(
                    "client_cert_file",
                    "missing: client_key_file is set, so its certificate is needed too".into(),
                );
                None
            }
            (Some(cert), Some(key)) => match read_identity(cert, key) {
                Ok(identity) => Some(Some(identity)),
                Err((key, message)) => {
                    problem(key, message);
                    None
                }
            },
        };

        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_clock_skew_ms", self.max_clock_skew_ms),
        ] {
            if value == 0 {
                problem(key, "must be more than 0".into());
            }
        }

        match (base, key, ca, identity) {
            (Some(base), Some(key), Some(ca), Some(identity)) if problems.is_empty() => {
                let has_identity = identity.is_some();
                match self.http_client(ca.clone(), identity) {
                    Ok(http) => Ok(Loaded {
                        base,
                        key,
                        http,
                        max_clock_skew: Duration::from_millis(self.max_clock_skew_ms),
                    }),
                    Err(e) => {
                        // Tell whose fault it is: without the client
                        // certificate, does the rest build?
                        let culprit = if has_identity && self.http_client(ca, None).is_ok() {
                            "client_key_file"
                        } else if self.ca_file.is_some() {
                            "ca_file"
                        } else {
                            "url"
                        };
                        Err(vec![ConfigProblem {
                            key: culprit,
                            message: format!("TLS setup failed: {}", error_chain(&e)),
                        }])
                    }
                }
            }
            _ => Err(problems),
        }
    }

    /// The HTTP client: rustls, TLS 1.2 or later, the CA file as the only
    /// trust anchors when set, no proxy from the environment, no redirects
    /// (a redirect would change the signed path), and the timeouts.
    fn http_client(
        &self,
        ca: Option<Vec<reqwest::Certificate>>,
        identity: Option<reqwest::Identity>,
    ) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .min_tls_version(reqwest::tls::Version::TLS_1_2)
            .https_only(!self.allow_plain_http)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .timeout(Duration::from_millis(self.request_timeout_ms))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("kiosk-corebank/", env!("CARGO_PKG_VERSION")));
        if let Some(certs) = ca {
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        builder.build()
    }

    fn check_url(&self) -> Result<reqwest::Url, (&'static str, String)> {
        let url = reqwest::Url::parse(self.url.trim())
            .map_err(|e| ("url", format!("not a URL ({e}): {:?}", self.url)))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http && is_loopback(&url) => {}
            "http" if self.allow_plain_http => {
                return Err((
                    "allow_plain_http",
                    format!(
                        "url {:?}: plain http:// is allowed only to a loopback address \
                         (127.0.0.0/8, ::1, localhost); personal data never crosses a \
                         network unencrypted",
                        self.url
                    ),
                ));
            }
            "http" => {
                return Err((
                    "allow_plain_http",
                    format!(
                        "url {:?} is plain http://, which is refused unless \
                         allow_plain_http = true (loopback demos and tests only)",
                        self.url
                    ),
                ));
            }
            other => {
                return Err((
                    "url",
                    format!("scheme must be https (or http), not {other:?}"),
                ));
            }
        }
        if url.host().is_none() {
            return Err(("url", "has no host".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(("url", "must not hold a user name or password".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(("url", "must not have a query or fragment".into()));
        }
        if url.path() != "/" {
            return Err((
                "url",
                format!(
                    "must be scheme, host and port only: the path {:?} would be \
                     prefixed to the spec's /v1/... paths and change what is signed",
                    url.path()
                ),
            ));
        }
        Ok(url)
    }
}

/// Whether `url`'s host is this machine (a loopback address or
/// `localhost`).
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{} is larger than 1 MiB", path.display()));
    }
    Ok(bytes)
}

/// Wipes a buffer that held secret material.
fn wipe(bytes: &mut [u8]) {
    bytes.iter_mut().for_each(|b| *b = 0);
}

/// The shortest shared key accepted: 256 bits, HMAC-SHA256's block-size
/// worth of strength.
pub const MIN_KEY_BYTES: usize = 32;

/// Read a file that holds a secret ([`crate::secret_file`]).
fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    crate::secret_file::read_secret_file(path, MAX_FILE_BYTES).map_err(|problem| match problem {
        SecretFileProblem::OpenToOthers { .. } => format!(
            "{} {problem} (chmod 600 {})",
            path.display(),
            path.display()
        ),
        other => format!("{} {other}", path.display()),
    })
}

fn read_key(path: &Path) -> Result<SigningKey, String> {
    let mut contents = read_secret_file(path)?;
    let decoded = std::str::from_utf8(&contents)
        .ok()
        .map(str::trim)
        .ok_or(())
        .and_then(|text| {
            if text.is_empty() {
                Err(())
            } else {
                hex::decode(text).map_err(drop)
            }
        });
    let empty = contents.iter().all(u8::is_ascii_whitespace);
    wipe(&mut contents);
    match decoded {
        Ok(mut bytes) if bytes.len() < MIN_KEY_BYTES => {
            let n = bytes.len();
            wipe(&mut bytes);
            Err(format!(
                "{} holds a {n}-byte key: at least {MIN_KEY_BYTES} bytes ({} hex digits)",
                path.display(),
                2 * MIN_KEY_BYTES
            ))
        }
        Ok(bytes) => Ok(SigningKey::new(bytes)),
        Err(()) if empty => Err(format!("{} is empty", path.display())),
        // The content is not repeated: it may be the key with a typo.
        Err(()) => Err(format!(
            "{} does not hold the key as hex (an even number of 0-9a-f digits)",
            path.display()
        )),
    }
}

fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = read_file(path)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, (&'static str, String)> {
    let cert_pem = read_file(cert).map_err(|m| ("client_cert_file", m))?;
    let mut key_pem = read_file(key).map_err(|m| ("client_key_file", m))?;
    if !cert_pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        wipe(&mut key_pem);
        return Err((
            "client_cert_file",
            format!("{} holds no PEM certificate", cert.display()),
        ));
    }
    // reqwest (rustls) takes the identity as one PEM: certificate(s) + key.
    let mut both = Vec::with_capacity(cert_pem.len() + key_pem.len() + 1);
    both.extend_from_slice(&cert_pem);
    both.push(b'\n');
    both.extend_from_slice(&key_pem);
    wipe(&mut key_pem);
    let identity = reqwest::Identity::from_pem(&both);
    wipe(&mut both);
    identity.map_err(|_| {
        (
            "client_key_file",
            format!(
                "{} is not a PEM private key (PKCS#8, PKCS#1 or SEC1, and no other PEM blocks)",
                key.display()
            ),
        )
    })
}
