//! The relay's configuration: one documented TOML file (sample: `deploy/relay.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bottomline::division::Code;
use bottomline::security::tls::TlsFiles;
use bottomline::store::StoreOptions;
use serde::Deserialize;

/// A relay's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the children (county nodes) dial, as they would dial their parent.
    pub listen: SocketAddr,
    /// The real parent node's gRPC endpoint (`https://host:port`).
    pub parent: String,
    /// The parent's division: only its direct children may link through this relay.
    pub parent_division: Code,
    /// Directory of the relay's custody store (sled).
    pub data_dir: PathBuf,
    /// Seconds to wait for the parent to accept a connection and answer a Hello.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: f64,
    /// First delay in seconds before redialling the parent (doubling up to 30 s, ±25 %).
    #[serde(default = "default_reconnect_secs")]
    pub reconnect_secs: f64,
    /// sled page cache in MiB.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
    /// mTLS (mandatory): the provincial CA, the relay's own certificate (a relay identity,
    /// `bottomline pki issue --relay NAME`) and key, the revocation list.
    pub tls: TlsFiles,
    /// `text` (the default) or `json`: one JSON object per log event.
    /// `BOTTOMLINE_LOG_FORMAT` overrides it.
    #[serde(default)]
    pub log_format: bottomline::config::LogFormat,
}

fn default_connect_timeout_secs() -> f64 {
    5.0
}

fn default_reconnect_secs() -> f64 {
    0.5
}

fn default_cache_mib() -> u64 {
    8
}

pub use bottomline::config::ConfigError;

impl Config {
    /// Read and check a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        bottomline::config::load_with(path, Config::parse)
    }

    /// Parse and check TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if c.parent.trim().is_empty() {
            return Err("parent: the parent node's address is empty".into());
        }
        if c.parent.starts_with("http://") {
            return Err(format!(
                "parent = {:?}: a relay speaks mutual TLS only (https://host:port or host:port)",
                c.parent
            ));
        }
        if c.connect_timeout_secs.is_nan() || c.connect_timeout_secs <= 0.0 {
            return Err("connect_timeout_secs must be positive".into());
        }
        if c.reconnect_secs.is_nan() || c.reconnect_secs <= 0.0 {
            return Err("reconnect_secs must be positive".into());
        }
        Ok(c)
    }

    /// How long dialling the parent and waiting for its Welcome may take.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_secs)
    }

    /// First reconnection delay.
    pub fn reconnect(&self) -> Duration {
        Duration::from_secs_f64(self.reconnect_secs.max(0.01))
    }

    /// Options of the custody store.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions::serving(self.cache_mib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_sample_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/relay.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.parent_division.to_string(), "6101");
        assert_eq!(c.listen.port(), 7300);
        assert_eq!(c.connect_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn defaults_and_refusals() {
        let base = "listen = \"127.0.0.1:0\"\nparent = \"https://127.0.0.1:1\"\n\
                    parent_division = \"6101\"\ndata_dir = \"d\"\n";
        let tls = "[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n";
        let c = Config::parse(&format!("{base}{tls}")).unwrap();
        assert_eq!(c.connect_timeout_secs, 5.0);
        assert_eq!(c.cache_mib, 8);
        assert!(c.tls.crl.is_none());
        // mTLS is mandatory.
        assert!(Config::parse(base).unwrap_err().contains("tls"));
        // Unknown keys are refused.
        let e = Config::parse(&format!("{base}insecure = true\n{tls}")).unwrap_err();
        assert!(e.contains("insecure"), "{e}");
        // A plaintext parent is refused.
        let e =
            Config::parse(&format!("{}{tls}", base.replace("https://", "http://"))).unwrap_err();
        assert!(e.contains("mutual TLS"), "{e}");
        // A bad division is refused.
        let e = Config::parse(&format!("{}{tls}", base.replace("6101", "6100"))).unwrap_err();
        assert!(e.contains("6100"), "{e}");
    }
}
