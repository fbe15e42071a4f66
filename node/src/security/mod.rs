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
pub mod sign;
pub mod tls;

pub use identity::{CertInfo, Identity, Role};

/// Log one refusal to the audit log (target `audit`): who (the identity, or `-` before one is
/// known), which certificate (its serial), what was attempted and why it was refused.
pub fn audit(who: &str, cert: &str, what: &str, why: &str) {
    tracing::warn!(target: "audit", who, cert, what, why, "refused");
}
