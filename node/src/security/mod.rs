//! Security: identities in certificates, the PKI that issues them, mTLS on every listener and
//! link, and signatures on what travels.
//!
//! - [`identity`]: who a verified certificate names (node, operator, relay) — the only source
//!   of a peer's division.
//! - [`pki`]: the provincial CA on disk: init, issue, list, renew, revoke (a CRL file).
//! - [`tls`]: rustls (ring provider) server and client configs; an acceptor whose CRL reloads
//!   while running; the connector the uplink and the CLI dial with.

pub mod identity;
pub mod pki;
pub mod tls;

pub use identity::{CertInfo, Identity, Role};
