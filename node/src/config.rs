//! Node configuration: one documented TOML file (see `deploy/` for samples).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::division::Code;
use crate::security::tls::TlsFiles;

/// A node's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The division this node serves (e.g. "610102" for a county, "61" for the province).
    pub division: Code,
    /// Directory of the node's store.
    pub data_dir: PathBuf,
    /// Address to serve gRPC on. A county needs none: it dials its parent.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The parent's gRPC endpoint (`http://host:port`); none at the top of the tree.
    #[serde(default)]
    pub parent: Option<String>,
    /// sled page cache in MiB (sled as vendored keeps to it after a scan, see
    /// `vendor/sled/PATCHES.md`): a realistic county imports at ~73 MB RSS with 2.
    /// A city or the province may want more for its many children (see `deploy/`).
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
    /// Sync tuning.
    #[serde(default)]
    pub sync: SyncConfig,
    /// mTLS: the CA, this node's certificate and key, the revocation list. Required unless
    /// `insecure = true`.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Plaintext, no certificates, callers trusted by what they claim: for local experiments
    /// only (logged as a warning at start).
    #[serde(default)]
    pub insecure: bool,
    /// A county node's import inbox: interchange files dropped here are imported while the
    /// node serves, then moved to `done/` or to `rejected/` with a report (see `inbox.rs`).
    #[serde(default)]
    pub inbox: Option<PathBuf>,
    /// Seconds between looks into the inbox (a file is taken once it was the same size at
    /// two looks, so a file still being copied is left alone).
    #[serde(default = "default_inbox_poll_secs")]
    pub inbox_poll_secs: f64,
    /// Seconds between the node's checks of itself (a county: cells against its records; a
    /// parent: its own cells against the sum of its children's); a mismatch is an alert in
    /// `status` and in the log. 0 turns the background check off.
    #[serde(default = "default_check_secs")]
    pub check_secs: f64,
    /// `text` (the default: one readable line per event) or `json` (one JSON object per
    /// event, for a log collector). `BOTTOMLINE_LOG_FORMAT` overrides it.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Where the dashboard, the HTTP API and `/metrics` listen (none: no HTTP). Keep it on
    /// loopback (`127.0.0.1:8480`) unless people on other machines use it: an address others
    /// can reach needs accounts (`bottomline user add`), and the node refuses to start
    /// without any.
    #[serde(default)]
    pub http_listen: Option<SocketAddr>,
    /// Reading the dashboard without logging in: allowed by default on a loopback listener
    /// (anyone with a shell on this machine reads the store anyway), never on another one.
    /// Acting on tickets always needs an operator's login.
    #[serde(default)]
    pub http_anonymous: Option<bool>,
    /// The accounts file (default `DATA_DIR/accounts.toml`), kept by `bottomline user`.
    #[serde(default)]
    pub accounts: Option<PathBuf>,
    /// A dashboard session ends after this many idle minutes …
    #[serde(default = "default_session_idle_minutes")]
    pub session_idle_minutes: u64,
    /// … and at the latest this many hours after the login.
    #[serde(default = "default_session_max_hours")]
    pub session_max_hours: u64,
}

fn default_session_idle_minutes() -> u64 {
    30
}

fn default_session_max_hours() -> u64 {
    12
}

/// How a node writes its log (to stderr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, `fields` (with `message`).
    Json,
}

impl LogFormat {
    /// `BOTTOMLINE_LOG_FORMAT` when set and valid, else `configured`, else text.
    pub fn chosen(configured: Option<LogFormat>) -> LogFormat {
        std::env::var("BOTTOMLINE_LOG_FORMAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .or(configured)
            .unwrap_or_default()
    }

    /// Install the process's log subscriber: to stderr, filtered by `RUST_LOG` (else
    /// `default_filter`), as JSON objects or as text (coloured only on a terminal).
    pub fn init(self, default_filter: &str) {
        let log = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
            )
            .with_writer(std::io::stderr);
        match self {
            LogFormat::Json => log.json().init(),
            LogFormat::Text => log
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init(),
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("log format {s:?}: text or json")),
        }
    }
}

fn default_check_secs() -> f64 {
    600.0
}

fn default_inbox_poll_secs() -> f64 {
    2.0
}

/// Sync tuning.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Blocks of cells per batch sent upward.
    pub batch_blocks: usize,
    /// Seconds between reconnection attempts to the parent (doubling up to 30 s).
    pub reconnect_secs: f64,
    /// Seconds to wait for the parent to answer a connection.
    pub connect_timeout_secs: f64,
    /// A child silent for longer than this is reported as an alert.
    pub silent_child_secs: u64,
    /// Seconds between heartbeats a child sends on an open link (head and backlog), so that
    /// a stalled link shows up as a silent child.
    pub heartbeat_secs: f64,
    /// A child with something to deliver (cells or ticket events) whose delivered position
    /// has not moved for longer than this is reported STALLED, whatever heartbeats arrive.
    pub stalled_child_secs: f64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_blocks: 1000,
            reconnect_secs: 0.5,
            connect_timeout_secs: 5.0,
            silent_child_secs: 600,
            heartbeat_secs: 5.0,
            stalled_child_secs: 300.0,
        }
    }
}

impl SyncConfig {
    /// First reconnection delay.
    pub fn reconnect(&self) -> Duration {
        Duration::from_secs_f64(self.reconnect_secs.max(0.01))
    }
    /// Interval between heartbeats.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_secs.max(0.05))
    }
    /// When a quiet child counts as silent.
    pub fn silent_after(&self) -> Duration {
        Duration::from_secs(self.silent_child_secs)
    }
    /// When a child with a backlog and no progress counts as stalled.
    pub fn stalled_after(&self) -> Duration {
        Duration::from_secs_f64(self.stalled_child_secs.max(0.05))
    }
    /// Connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_secs.max(0.1))
    }
}

fn default_cache_mib() -> u64 {
    crate::store::DEFAULT_CACHE_MIB
}

/// Read the TOML file at `path` and check it with `parse` (a node's or the relay's config):
/// errors name the file.
pub fn load_with<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|message| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Errors reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid config {path}: {message}")]
    Invalid {
        /// Path.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
}

impl Config {
    /// The dashboard's accounts file: `accounts`, or `DATA_DIR/accounts.toml`.
    pub fn accounts_path(&self) -> PathBuf {
        self.accounts
            .clone()
            .unwrap_or_else(|| self.data_dir.join("accounts.toml"))
    }

    /// Read and check a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load_with(path, Config::parse)
    }

    /// Parse and check TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.parent.is_none() && c.listen.is_none() {
            return Err("a node without a parent must listen (set listen = \"host:port\")".into());
        }
        match (&c.tls, c.insecure) {
            (None, false) => {
                return Err(
                    "no [tls] section: nodes speak mutual TLS (create the certificates \
                            with `bottomline pki init` and `bottomline pki issue --division …`), \
                            or set insecure = true for a local experiment"
                        .into(),
                )
            }
            (Some(_), true) => {
                return Err("insecure = true and a [tls] section: choose one".into());
            }
            _ => {}
        }
        if c.inbox.is_some() && c.division.level() != crate::division::Level::County {
            return Err(format!(
                "inbox is set, but {} is not a county: records are imported at the county node \
                 that serves them",
                c.division
            ));
        }
        if !(c.inbox_poll_secs > 0.0 && c.inbox_poll_secs.is_finite()) {
            return Err("inbox_poll_secs must be a positive number of seconds".into());
        }
        Ok(c)
    }

    /// Store options from this config.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions::serving(self.cache_mib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_samples_parse() {
        for (f, division) in [
            ("province", "61"),
            ("city", "6101"),
            ("county", "610102"),
            ("county-via-relay", "610103"),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../deploy/{f}.toml"));
            let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.division.to_string(), division);
        }
    }

    /// A serving node's store splits sled's page cache into few shards, a bulk writer's
    /// (the CLI's default options) into many (`store.rs`, the two constants).
    #[test]
    fn a_serving_store_has_few_cache_shards_and_a_bulk_writer_many() {
        use crate::store::{
            cache_shards_or, StoreOptions, BULK_CACHE_SHARDS, SERVING_CACHE_SHARDS,
        };
        let c =
            Config::parse(
            "division = \"610102\"\ndata_dir = \"x\"\nparent = \"http://10.0.0.1:7100\"\ninsecure = true\n",
        )
        .unwrap();
        assert_eq!(
            c.store_options().cache_shards,
            cache_shards_or(SERVING_CACHE_SHARDS)
        );
        assert_eq!(c.store_options().cache_bytes, c.cache_mib * 1024 * 1024);
        assert_eq!(
            StoreOptions::default().cache_shards,
            cache_shards_or(BULK_CACHE_SHARDS)
        );
    }

    #[test]
    fn parses_a_county_and_refuses_unknown_keys() {
        let c = Config::parse(
            "division = \"610102\"\ndata_dir = \"/var/lib/bottomline\"\nparent = \"http://10.0.0.1:7100\"\ninsecure = true\n[sync]\nbatch_blocks = 500\n",
        )
        .unwrap();
        assert_eq!(c.division.to_string(), "610102");
        assert_eq!(c.sync.batch_blocks, 500);
        assert_eq!(c.cache_mib, 2);
        let e = Config::parse(
            "division = \"61\"\ndata_dir = \"x\"\nlisten = \"127.0.0.1:1\"\ninsecure = true\nlisn = 1\n",
        )
        .unwrap_err();
        assert!(e.contains("lisn"), "{e}");
        assert!(Config::parse("division = \"61\"\ndata_dir = \"x\"\n").is_err());
        assert!(Config::parse(
            "division = \"6100\"\ndata_dir = \"x\"\nlisten = \"127.0.0.1:1\"\ninsecure = true\n"
        )
        .is_err());
    }

    #[test]
    fn a_node_needs_tls_unless_it_says_insecure() {
        let base = "division = \"61\"\ndata_dir = \"x\"\nlisten = \"127.0.0.1:1\"\n";
        let e = Config::parse(base).unwrap_err();
        assert!(e.contains("no [tls] section"), "{e}");
        let tls = "[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n";
        let c = Config::parse(&format!("{base}{tls}")).unwrap();
        let t = c.tls.as_ref().unwrap();
        assert_eq!(t.crl, None);
        assert_eq!(t.crl_reload_secs, 5.0);
        let e = Config::parse(&format!("{base}insecure = true\n{tls}")).unwrap_err();
        assert!(e.contains("choose one"), "{e}");
        assert!(Config::parse(&format!("{base}{tls}crl = \"crl.pem\"\nextra = 1\n")).is_err());
    }
}
