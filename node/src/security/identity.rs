//! Who a certificate names: a node (its division), an operator (a person, a division and a
//! role) or a relay. The identity lives in URI SANs of the certificate, read only from a
//! certificate whose chain was verified; a division named inside a message is never trusted.
//!
//! SANs (one kind SAN per certificate, exactly):
//! - node: `urn:bottomline:node` and `urn:bottomline:division:610102`
//! - operator: `urn:bottomline:operator:NAME`, `urn:bottomline:division:6101`,
//!   `urn:bottomline:role:viewer` (or `operator`)
//! - relay: `urn:bottomline:relay:NAME`

use std::fmt;

use crate::division::Code;

/// Prefix of every Bottomline URI SAN.
pub const URN: &str = "urn:bottomline:";

/// What an operator certificate allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: status, statistics, tickets.
    Viewer,
    /// Reads and acts: issues tickets, accepts, rectifies, verifies …
    Operator,
}

impl Role {
    /// The name used in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    /// Parse `viewer` or `operator`.
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            _ => Err(format!("unknown role {s:?}: viewer or operator")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity a verified certificate carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A node serving one division.
    Node {
        /// The division it serves.
        division: Code,
    },
    /// A person using the CLI or the API.
    Operator {
        /// Login-like name (ASCII letters, digits, `.`, `_`, `-`).
        name: String,
        /// The division whose subtree the person works in.
        division: Code,
        /// Read only, or read and act.
        role: Role,
    },
    /// A store-and-forward relay between networks: it carries signed traffic and acts for
    /// nobody.
    Relay {
        /// Its name.
        name: String,
    },
}

impl Identity {
    /// The division this identity works for (none for a relay).
    pub fn division(&self) -> Option<Code> {
        match self {
            Identity::Node { division } | Identity::Operator { division, .. } => Some(*division),
            Identity::Relay { .. } => None,
        }
    }

    /// May this identity change things (issue and act on tickets) for its division? Nodes
    /// (a node's own key is the node) and operators with the operator role.
    pub fn may_act(&self) -> bool {
        matches!(
            self,
            Identity::Node { .. }
                | Identity::Operator {
                    role: Role::Operator,
                    ..
                }
        )
    }

    /// The URI SANs that carry this identity.
    pub fn uris(&self) -> Vec<String> {
        match self {
            Identity::Node { division } => {
                vec![format!("{URN}node"), format!("{URN}division:{division}")]
            }
            Identity::Operator {
                name,
                division,
                role,
            } => vec![
                format!("{URN}operator:{name}"),
                format!("{URN}division:{division}"),
                format!("{URN}role:{role}"),
            ],
            Identity::Relay { name } => vec![format!("{URN}relay:{name}")],
        }
    }

    /// A short name for files and logs: `node-610102`, `operator-zhang.san`, `relay-r1`.
    pub fn stem(&self) -> String {
        match self {
            Identity::Node { division } => format!("node-{division}"),
            Identity::Operator { name, .. } => format!("operator-{name}"),
            Identity::Relay { name } => format!("relay-{name}"),
        }
    }

    /// Read the identity back from a certificate's URI SANs (other SANs are ignored).
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<Identity, String> {
        let (mut kind, mut division, mut role) = (None, None, None);
        let set = |slot: &mut Option<(String, String)>, k: &str, v: &str| {
            if slot.replace((k.to_string(), v.to_string())).is_some() {
                Err(format!("the certificate names more than one {k}"))
            } else {
                Ok(())
            }
        };
        for uri in uris {
            let Some(rest) = uri.strip_prefix(URN) else {
                continue;
            };
            let (k, v) = rest.split_once(':').unwrap_or((rest, ""));
            match k {
                "node" | "operator" | "relay" => set(&mut kind, k, v)?,
                "division" => set(&mut division, k, v)?,
                "role" => set(&mut role, k, v)?,
                _ => return Err(format!("unknown Bottomline SAN {uri:?}")),
            }
        }
        let division = division
            .map(|(_, d)| Code::parse(&d).map_err(|e| format!("division SAN: {e}")))
            .transpose()?;
        let need_division =
            || division.ok_or_else(|| "the certificate names no division".to_string());
        match kind {
            None => Err("the certificate carries no Bottomline identity (urn:bottomline:…)".into()),
            Some((k, _)) if k == "node" => {
                if role.is_some() {
                    return Err("a node certificate names a role".into());
                }
                Ok(Identity::Node {
                    division: need_division()?,
                })
            }
            Some((k, name)) if k == "operator" => {
                check_name(&name)?;
                let role = role
                    .ok_or("an operator certificate names no role")
                    .and_then(|(_, r)| Role::parse(&r).map_err(|_| "bad role SAN"))?;
                Ok(Identity::Operator {
                    name,
                    division: need_division()?,
                    role,
                })
            }
            Some((_, name)) => {
                check_name(&name)?;
                if division.is_some() || role.is_some() {
                    return Err("a relay certificate names a division or role".into());
                }
                Ok(Identity::Relay { name })
            }
        }
    }

    /// Read the identity of a DER certificate (whose chain the caller has verified).
    pub fn from_der(der: &[u8]) -> Result<Identity, String> {
        Ok(CertInfo::from_der(der)?.identity)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Node { division } => write!(f, "node {division}"),
            Identity::Operator {
                name,
                division,
                role,
            } => write!(f, "{role} {name} of {division}"),
            Identity::Relay { name } => write!(f, "relay {name}"),
        }
    }
}

/// Check a person's or relay's name: 1–64 ASCII letters, digits, `.`, `_` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad name {name:?}: 1-64 ASCII letters, digits, '.', '_' or '-'"
        ))
    }
}

/// What logs and listings show of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The identity in its SANs.
    pub identity: Identity,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Validity, Unix seconds.
    pub not_before: i64,
    /// Validity, Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Parse a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, String> {
        use x509_parser::prelude::*;
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let mut uris = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let GeneralName::URI(u) = n {
                    uris.push(u.to_string());
                }
            }
        }
        let identity = Identity::from_uris(uris.iter().map(String::as_str))?;
        Ok(CertInfo {
            identity,
            serial: serial_hex(cert.raw_serial()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// A serial number as lowercase hex without leading zero bytes.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    #[test]
    fn identities_round_trip_through_their_uris() {
        for id in [
            Identity::Node {
                division: code("610102"),
            },
            Identity::Node {
                division: code("61"),
            },
            Identity::Operator {
                name: "zhang.san".into(),
                division: code("6101"),
                role: Role::Viewer,
            },
            Identity::Operator {
                name: "li-si_2".into(),
                division: code("61"),
                role: Role::Operator,
            },
            Identity::Relay { name: "r1".into() },
        ] {
            let uris = id.uris();
            assert_eq!(
                Identity::from_uris(uris.iter().map(String::as_str)).unwrap(),
                id
            );
        }
    }

    #[test]
    fn ambiguous_or_incomplete_identities_are_refused() {
        let bad: &[&[&str]] = &[
            &[],
            &["https://example.org"],
            &["urn:bottomline:node"],
            &["urn:bottomline:node", "urn:bottomline:division:6100"],
            &[
                "urn:bottomline:node",
                "urn:bottomline:division:6101",
                "urn:bottomline:division:6102",
            ],
            &[
                "urn:bottomline:node",
                "urn:bottomline:relay:r",
                "urn:bottomline:division:6101",
            ],
            &["urn:bottomline:operator:a", "urn:bottomline:division:6101"],
            &[
                "urn:bottomline:operator:a",
                "urn:bottomline:division:6101",
                "urn:bottomline:role:admin",
            ],
            &["urn:bottomline:relay:r", "urn:bottomline:division:61"],
            &["urn:bottomline:relay:a b"],
            &["urn:bottomline:superuser"],
        ];
        for uris in bad {
            assert!(
                Identity::from_uris(uris.iter().copied()).is_err(),
                "{uris:?} accepted"
            );
        }
    }

    #[test]
    fn serials_print_without_leading_zeros() {
        assert_eq!(serial_hex(&[0, 0x1f, 0xa0]), "1fa0");
        assert_eq!(serial_hex(&[0]), "00");
    }
}
