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
    /// Connections served at once; more wait to be accepted.
    pub max_clients: usize,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            socket: PathBuf::from(DEFAULT_SOCKET),
            max_clients: 64,
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
        if self.api.max_clients == 0 {
            problems.push("api.max_clients: must be at least 1".into());
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
        }
        problems
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

    #[test]
    fn minimal_config_takes_defaults() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.api.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.api.max_clients, 64);
        assert_eq!(c.log.level, "info");
        assert!(c.readers.is_empty());
        assert_eq!(c.masking, MaskPolicy::default());
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
                Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(
            seen >= 3,
            "expected smart-teller, queue-machine and demo profiles"
        );
    }
}
