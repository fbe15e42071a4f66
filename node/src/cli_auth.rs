//! Where a CLI command connects and as whom: `--addr` or a node's `--config`, and the
//! certificate (`--ca/--cert/--key`, or `BOTTOMLINE_CA/_CERT/_KEY`; else the node's own
//! `[tls]` files when `--config` names one, for an administrator on the node's machine).

use std::path::PathBuf;

use anyhow::{bail, Context};
use bottomline::security::tls::{ClientTls, TlsFiles};
use clap::Args;

/// The caller's certificate.
#[derive(Args, Clone, Debug, Default)]
pub struct ClientAuth {
    /// The provincial CA certificate (PEM).
    #[arg(long = "ca", id = "tls_ca", global = true, env = "BOTTOMLINE_CA")]
    ca: Option<PathBuf>,
    /// Your certificate (`bottomline pki issue --operator NAME …`).
    #[arg(long = "cert", id = "tls_cert", global = true, env = "BOTTOMLINE_CERT")]
    cert: Option<PathBuf>,
    /// Your private key.
    #[arg(long = "key", id = "tls_key", global = true, env = "BOTTOMLINE_KEY")]
    key: Option<PathBuf>,
}

/// A running node to call: its address and the TLS identity to call it with (`None`: an
/// insecure node, plaintext).
pub struct Target {
    /// `https://host:port` (or `http://` for an insecure node).
    pub addr: String,
    /// The caller's certificate.
    pub tls: Option<ClientTls>,
}

impl Target {
    /// Resolve `--addr` / `--config` and the certificate flags.
    pub fn resolve(
        addr: Option<String>,
        config: Option<PathBuf>,
        auth: &ClientAuth,
    ) -> anyhow::Result<Target> {
        let (addr, node_tls) = match (addr, config) {
            (Some(a), _) => (a, None),
            (None, Some(path)) => {
                let c = bottomline::config::Config::load(&path)?;
                let Some(mut l) = c.listen else {
                    bail!(
                        "{} has no listen address: a node that only dials its parent has no \
                         gRPC endpoint; ask its parent (--addr PARENT)",
                        path.display()
                    );
                };
                if l.ip().is_unspecified() {
                    l.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                let scheme = if c.insecure { "http" } else { "https" };
                (format!("{scheme}://{l}"), c.tls)
            }
            (None, None) => bail!("give --addr https://host:port or --config node.toml"),
        };
        let files = match (&auth.ca, &auth.cert, &auth.key) {
            (Some(ca), Some(cert), Some(key)) => {
                Some(TlsFiles::new(ca.clone(), cert.clone(), key.clone(), None))
            }
            (None, None, None) => node_tls,
            _ => bail!("give --ca, --cert and --key together (or none, for an insecure node)"),
        };
        let tls = files
            .map(|f| ClientTls::load(&f))
            .transpose()
            .context("loading the client certificate")?;
        Ok(Target { addr, tls })
    }
}
