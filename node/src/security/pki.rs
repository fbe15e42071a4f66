//! The provincial CA on disk: one directory holds the CA and everything it issued.
//!
//! ```text
//! D/ca.pem          the CA certificate (ECDSA P-256, 10 years)        — copy to every node
//! D/ca.key          the CA private key (mode 0600)                    — never leaves D
//! D/crl.pem         the signed revocation list                        — copy to every node
//! D/index.json      the register of issued certificates
//! D/certs/S.pem     the newest certificate of stem S, followed by the CA certificate
//! D/certs/S.key     its private key (PKCS#8, mode 0600)
//! ```
//!
//! Stems are [`Identity::stem`]: `node-610102`, `operator-zhang.san`, `relay-r1`. A stem has
//! at most one certificate that is neither revoked nor expired, unless it was renewed: a
//! renewal writes a new certificate (new key, new serial) over `certs/S.*` and leaves the old
//! one valid until it expires, so nodes can switch over without a flag day. Revocation rewrites
//! `crl.pem` atomically with every revoked serial; running nodes reload it.
//!
//! Everything is pure Rust: rcgen signs, x509-parser reads back, ring provides randomness.
//! Private keys are created with mode 0600 (never widened and narrowed afterwards). A lock
//! file (`D/.lock`, `flock`) keeps two `pki` commands from interleaving their index updates.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData as _, RevocationReason, RevokedCertParams, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use serde::{Deserialize, Serialize};
use x509_parser::time::ASN1Time;

use super::identity::{check_name, serial_hex, CertInfo, Identity};
use super::tls::TlsFiles;

/// Default validity of a node, operator or relay certificate, in days (the CA/Browser limit
/// most TLS stacks are happy with).
pub const DEFAULT_DAYS: u32 = 825;
/// Validity of the CA certificate, in days.
pub const CA_DAYS: u32 = 3650;
/// How long a CRL is declared fresh (its nextUpdate), in days.
pub const CRL_DAYS: u32 = 30;
/// How far back `not_before` is set by default, for clocks that lag.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);
/// The layout version of `index.json`.
const INDEX_VERSION: u32 = 1;

/// What can go wrong with the PKI directory.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `init` on a directory that already holds a CA.
    #[error("{} already holds a CA ({}); refusing to replace it", dir.display(), dir.join("ca.pem").display())]
    AlreadyInitialised {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// `open` on a directory without a CA.
    #[error("no CA in {0}: run `bottomline pki init --dir {0}`", dir.display())]
    NoCa {
        /// The directory given.
        dir: PathBuf,
    },
    /// Another `pki` command holds the directory's lock.
    #[error("another `bottomline pki` command is working in {}; try again when it is done", dir.display())]
    Busy {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// The CA certificate or key cannot be used.
    #[error("cannot load the CA from {}: {reason}", path.display())]
    BadCa {
        /// `ca.pem` or `ca.key`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `index.json` cannot be read.
    #[error("bad certificate register {}: {reason}", path.display())]
    BadIndex {
        /// `index.json`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `issue` for a stem that still has a valid certificate.
    #[error("{stem} already has a valid certificate (serial {serial}, until {not_after}): use `bottomline pki renew {stem}`, or `bottomline pki revoke {stem}` first")]
    Exists {
        /// The stem.
        stem: String,
        /// The serial of its valid certificate.
        serial: String,
        /// When that certificate expires.
        not_after: Timestamp,
    },
    /// No certificate has this stem or serial.
    #[error("no certificate {target:?} in {}: give a stem (e.g. node-610102) or a serial; `bottomline pki list` shows them", dir.display())]
    Unknown {
        /// The stem, name or serial asked for.
        target: String,
        /// The PKI directory.
        dir: PathBuf,
    },
    /// A name matches several stems.
    #[error("{name:?} matches {}: give the whole stem", stems.join(", "))]
    Ambiguous {
        /// The name given.
        name: String,
        /// The stems it matches.
        stems: Vec<String>,
    },
    /// `renew` of a stem whose newest certificate is revoked.
    #[error("the newest certificate of {stem} (serial {serial}) is revoked: issue a new one with `bottomline pki issue`")]
    RenewRevoked {
        /// The stem.
        stem: String,
        /// The revoked serial.
        serial: String,
    },
    /// The identity cannot go into a certificate.
    #[error("bad identity {identity}: {reason}")]
    BadIdentity {
        /// The identity's text.
        identity: String,
        /// What is wrong.
        reason: String,
    },
    /// Bad issue options (validity, DNS names).
    #[error("{0}")]
    BadOptions(String),
    /// rcgen refused to build or sign.
    #[error("cannot {what}: {source}")]
    Sign {
        /// What was being made.
        what: String,
        /// The cause.
        source: rcgen::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sign_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Sign { what, source }
}

/// How to issue a certificate.
#[derive(Clone, Debug)]
pub struct IssueOptions {
    /// Validity in days (from `valid_from`).
    pub days: u32,
    /// DNS names (nodes and relays; ignored for operators).
    pub dns: Vec<String>,
    /// IP addresses (nodes and relays; ignored for operators).
    pub ips: Vec<IpAddr>,
    /// Start of validity; `None` = now minus 5 minutes (clock skew).
    pub valid_from: Option<Timestamp>,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            days: DEFAULT_DAYS,
            dns: Vec::new(),
            ips: Vec::new(),
            valid_from: None,
        }
    }
}

/// A certificate just written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Whom it names.
    pub identity: Identity,
    /// Its serial, lowercase hex (as [`serial_hex`]).
    pub serial: String,
    /// `certs/<stem>.pem`: the certificate followed by the CA certificate.
    pub cert_path: PathBuf,
    /// `certs/<stem>.key`: the private key (mode 0600).
    pub key_path: PathBuf,
    /// End of validity.
    pub not_after: Timestamp,
}

/// Where a certificate stands now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertState {
    /// Within its validity and not revoked.
    Valid,
    /// Past its `not_after`, not revoked.
    Expired,
    /// In the revocation list.
    Revoked,
}

impl CertState {
    /// `valid`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Valid => "valid",
            CertState::Expired => "expired",
            CertState::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for CertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One certificate of the register, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// File stem (`node-610102`).
    pub stem: String,
    /// Whom it names.
    pub identity: Identity,
    /// Serial, lowercase hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// When it was revoked.
    pub revoked: Option<Timestamp>,
    /// Why, as given to `revoke`.
    pub reason: Option<String>,
    /// Valid, expired or revoked, now.
    pub state: CertState,
}

/// `index.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    version: u32,
    /// The CA's name (`Bottomline CA <name>`).
    name: String,
    /// The number of the newest CRL written.
    crl_number: u64,
    certs: Vec<Record>,
}

/// One issued certificate in `index.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    stem: String,
    /// The identity's text (for people reading the file; `uris` is what counts).
    subject: String,
    /// The identity's URI SANs.
    uris: Vec<String>,
    serial: String,
    issued: Timestamp,
    not_before: Timestamp,
    not_after: Timestamp,
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    ips: Vec<IpAddr>,
    #[serde(default)]
    revoked: Option<Timestamp>,
    #[serde(default)]
    reason: Option<String>,
}

impl Record {
    fn identity(&self) -> Result<Identity, String> {
        Identity::from_uris(self.uris.iter().map(String::as_str))
    }

    fn state(&self, now: Timestamp) -> CertState {
        if self.revoked.is_some() {
            CertState::Revoked
        } else if now > self.not_after {
            CertState::Expired
        } else {
            CertState::Valid
        }
    }
}

/// The CA directory, opened (and locked) for issuing.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// `ca.pem` as read, appended to every certificate file.
    ca_pem: String,
    /// The CA's subject key identifier (the CRL's authority key identifier).
    ca_key_id: KeyIdMethod,
    ca_not_after: Timestamp,
    index: Index,
    _lock: File,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("name", &self.index.name)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Create the CA in `dir` (created if missing): `ca.pem`, `ca.key` (0600), an empty signed
    /// `crl.pem`, `index.json` and `certs/`. Refuses if `dir/ca.pem` exists.
    pub fn init(dir: &Path, name: &str) -> Result<Pki, PkiError> {
        if name.trim().is_empty() {
            return Err(PkiError::BadOptions("the CA's name is empty".into()));
        }
        if dir.join("ca.pem").exists() {
            return Err(PkiError::AlreadyInitialised {
                dir: dir.to_path_buf(),
            });
        }
        fs::create_dir_all(dir).map_err(io(dir))?;
        let dir = fs::canonicalize(dir).map_err(io(dir))?;
        let lock = lock(&dir)?;
        // Checked again under the lock: another init may have won the race.
        if dir.join("ca.pem").exists() {
            return Err(PkiError::AlreadyInitialised { dir });
        }
        let certs = dir.join("certs");
        fs::create_dir_all(&certs).map_err(io(&certs))?;

        let now = now();
        let not_before = now - CLOCK_SKEW;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("Bottomline CA {name}"));
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        params.not_before = asn1(not_before)?.to_datetime();
        params.not_after = asn1(add_days(not_before, CA_DAYS)?)?.to_datetime();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(sign_err("generate the CA key"))?;
        let cert = params
            .self_signed(&key)
            .map_err(sign_err("sign the CA certificate"))?;

        // The key first, created 0600 and never replaced: if it exists, a half-done init is
        // in the way and a person has to look.
        let key_path = dir.join("ca.key");
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(io(&key_path))?;
        f.write_all(key.serialize_pem().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(&key_path))?;
        drop(f);

        let index = Index {
            version: INDEX_VERSION,
            name: name.to_string(),
            crl_number: 0,
            certs: Vec::new(),
        };
        // The register and the CRL before ca.pem: ca.pem is what marks the directory as a CA.
        let ca_pem = cert.pem();
        let mut pki = Pki::from_parts(dir, &ca_pem, key, index, lock)?;
        pki.write_crl()?;
        let ca_path = pki.ca_path();
        write_atomic(&ca_path, ca_pem.as_bytes(), 0o644)?;
        sync_dir(&pki.dir)?;
        Ok(pki)
    }

    /// Open the CA in `dir`, or create it there named `name` when `dir` holds none (the
    /// demo's and the tests' own CA, kept from one run to the next).
    pub fn open_or_init(dir: &Path, name: &str) -> Result<Pki, PkiError> {
        if dir.join("ca.pem").exists() {
            Pki::open(dir)
        } else {
            Pki::init(dir, name)
        }
    }

    /// The TLS files of `identity`'s certificate, issued (with default options) when its
    /// files are not there yet.
    pub fn files_for(&mut self, identity: &Identity) -> Result<TlsFiles, PkiError> {
        let stem = identity.stem();
        let (cert, key) = (self.cert_path(&stem), self.key_path(&stem));
        if !(cert.exists() && key.exists()) {
            self.issue(identity, &IssueOptions::default())?;
        }
        Ok(TlsFiles::new(
            self.ca_path(),
            cert,
            key,
            Some(self.crl_path()),
        ))
    }

    /// Open the CA in `dir`.
    pub fn open(dir: &Path) -> Result<Pki, PkiError> {
        if !dir.join("ca.pem").is_file() {
            return Err(PkiError::NoCa {
                dir: dir.to_path_buf(),
            });
        }
        let dir = fs::canonicalize(dir).map_err(io(dir))?;
        let lock = lock(&dir)?;
        let ca_path = dir.join("ca.pem");
        let ca_pem = fs::read_to_string(&ca_path).map_err(io(&ca_path))?;
        let key_path = dir.join("ca.key");
        let key_pem = fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadCa {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        let index_path = dir.join("index.json");
        let text = fs::read_to_string(&index_path).map_err(io(&index_path))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| PkiError::BadIndex {
            path: index_path.clone(),
            reason: e.to_string(),
        })?;
        if index.version != INDEX_VERSION {
            return Err(PkiError::BadIndex {
                path: index_path,
                reason: format!(
                    "layout version {} (this program reads {INDEX_VERSION})",
                    index.version
                ),
            });
        }
        for r in &index.certs {
            r.identity().map_err(|e| PkiError::BadIndex {
                path: index_path.clone(),
                reason: format!("{} (serial {}): {e}", r.stem, r.serial),
            })?;
        }
        Pki::from_parts(dir, &ca_pem, key, index, lock)
    }

    fn from_parts(
        dir: PathBuf,
        ca_pem: &str,
        key: KeyPair,
        index: Index,
        lock: File,
    ) -> Result<Pki, PkiError> {
        let ca_path = dir.join("ca.pem");
        let bad = |reason: String| PkiError::BadCa {
            path: ca_path.clone(),
            reason,
        };
        let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
            .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
        let spki = key.subject_public_key_info();
        if cert.public_key().raw != spki.as_slice() {
            return Err(bad("ca.key is not the key of ca.pem".into()));
        }
        let ca_key_id = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let ca_not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
            .map_err(|e| bad(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(ca_pem, key).map_err(|e| bad(e.to_string()))?;
        Ok(Pki {
            dir,
            issuer,
            ca_pem: ca_pem.to_string(),
            ca_key_id,
            ca_not_after,
            index,
            _lock: lock,
        })
    }

    /// The PKI directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA's name, as given to `init`.
    pub fn name(&self) -> &str {
        &self.index.name
    }

    /// `ca.pem`: the CA certificate every node and operator trusts.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `crl.pem`: the revocation list nodes load.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// `certs/<stem>.pem`: the newest certificate of `stem`, then the CA certificate.
    pub fn cert_path(&self, stem: &str) -> PathBuf {
        self.dir.join("certs").join(format!("{stem}.pem"))
    }

    /// `certs/<stem>.key`: its private key.
    pub fn key_path(&self, stem: &str) -> PathBuf {
        self.dir.join("certs").join(format!("{stem}.key"))
    }

    /// Issue a certificate for `identity`: a new key pair, a random serial, files
    /// `certs/<stem>.pem` and `.key`, an entry in the register. Refused while the stem has a
    /// certificate that is neither revoked nor expired (renew it, or revoke it first).
    pub fn issue(&mut self, identity: &Identity, opts: &IssueOptions) -> Result<Issued, PkiError> {
        let stem = identity.stem();
        let now = now();
        if let Some(r) = self
            .index
            .certs
            .iter()
            .rev()
            .find(|r| r.stem == stem && r.state(now) == CertState::Valid)
        {
            return Err(PkiError::Exists {
                stem,
                serial: r.serial.clone(),
                not_after: r.not_after,
            });
        }
        self.sign(identity, opts)
    }

    /// The stem `name` designates: a stem of the register, or the name part of exactly one
    /// (`610102` → `node-610102`, `zhang.san` → `operator-zhang.san`).
    pub fn resolve(&self, name: &str) -> Result<String, PkiError> {
        if self.index.certs.iter().any(|r| r.stem == name) {
            return Ok(name.to_string());
        }
        let mut stems: Vec<String> = ["node-", "operator-", "relay-"]
            .iter()
            .map(|p| format!("{p}{name}"))
            .filter(|s| self.index.certs.iter().any(|r| &r.stem == s))
            .collect();
        match stems.len() {
            0 => Err(PkiError::Unknown {
                target: name.to_string(),
                dir: self.dir.clone(),
            }),
            1 => Ok(stems.remove(0)),
            _ => Err(PkiError::Ambiguous {
                name: name.to_string(),
                stems,
            }),
        }
    }

    /// A new certificate (new key pair, new serial, `days` from now) for the identity and SANs
    /// of `stem`'s newest certificate. The old certificate stays valid until it expires.
    pub fn renew(&mut self, stem: &str, days: u32) -> Result<Issued, PkiError> {
        let Some(last) = self.index.certs.iter().rev().find(|r| r.stem == stem) else {
            return Err(PkiError::Unknown {
                target: stem.to_string(),
                dir: self.dir.clone(),
            });
        };
        if last.revoked.is_some() {
            return Err(PkiError::RenewRevoked {
                stem: stem.to_string(),
                serial: last.serial.clone(),
            });
        }
        let identity = last.identity().map_err(|reason| PkiError::BadIdentity {
            identity: last.subject.clone(),
            reason,
        })?;
        let opts = IssueOptions {
            days,
            dns: last.dns.clone(),
            ips: last.ips.clone(),
            valid_from: None,
        };
        self.sign(&identity, &opts)
    }

    /// Revoke `target`: a stem (every certificate of it not yet revoked) or a serial (hex,
    /// `:` separators allowed). Rewrites `crl.pem`. Returns the serials newly revoked: empty
    /// when everything named was already revoked (the CRL is then left as it is).
    pub fn revoke(&mut self, target: &str, reason: Option<&str>) -> Result<Vec<String>, PkiError> {
        let serial = target.to_ascii_lowercase().replace(':', "");
        let by_stem = self.index.certs.iter().any(|r| r.stem == target);
        let matches = |r: &Record| {
            if by_stem {
                r.stem == target
            } else {
                r.serial == serial
            }
        };
        if !self.index.certs.iter().any(matches) {
            return Err(PkiError::Unknown {
                target: target.to_string(),
                dir: self.dir.clone(),
            });
        }
        let now = now();
        let mut index = clone_index(&self.index);
        let mut revoked = Vec::new();
        for r in index.certs.iter_mut() {
            if matches(r) && r.revoked.is_none() {
                r.revoked = Some(now);
                r.reason = reason.map(str::to_string);
                revoked.push(r.serial.clone());
            }
        }
        if revoked.is_empty() {
            return Ok(revoked);
        }
        let old = std::mem::replace(&mut self.index, index);
        if let Err(e) = self.write_crl() {
            self.index = old;
            return Err(e);
        }
        Ok(revoked)
    }

    /// Sign `crl.pem` again with the same revoked serials and a fresh `next_update` (a CRL
    /// is declared fresh for [`CRL_DAYS`] days).
    pub fn refresh_crl(&mut self) -> Result<(), PkiError> {
        self.write_crl()
    }

    /// Every certificate of the register, in the order issued.
    pub fn list(&self) -> Vec<Entry> {
        let now = now();
        self.index
            .certs
            .iter()
            .map(|r| Entry {
                stem: r.stem.clone(),
                identity: r.identity().expect("checked when opened"),
                serial: r.serial.clone(),
                not_before: r.not_before,
                not_after: r.not_after,
                dns: r.dns.clone(),
                ips: r.ips.clone(),
                revoked: r.revoked,
                reason: r.reason.clone(),
                state: r.state(now),
            })
            .collect()
    }

    fn write_index(&self, index: &Index) -> Result<(), PkiError> {
        let path = self.dir.join("index.json");
        let mut text = serde_json::to_string_pretty(index).expect("the register serialises");
        text.push('\n');
        write_atomic(&path, text.as_bytes(), 0o644)
    }
}

fn clone_index(index: &Index) -> Index {
    Index {
        version: index.version,
        name: index.name.clone(),
        crl_number: index.crl_number,
        certs: index.certs.clone(),
    }
}

/// Take `dir/.lock` exclusively, or fail at once if another command holds it.
fn lock(dir: &Path) -> Result<File, PkiError> {
    let path = dir.join(".lock");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    // SAFETY: flock on a descriptor we own; it is released when `f` is closed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(PkiError::Busy {
                dir: dir.to_path_buf(),
            });
        }
        return Err(io(&path)(e));
    }
    Ok(f)
}

/// Write `path` by way of a temporary file in the same directory, created with `mode`,
/// synced, then renamed over `path`; the directory is synced after.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn now() -> Timestamp {
    // Certificates carry whole seconds.
    Timestamp::from_second(Timestamp::now().as_second()).expect("now is representable")
}

fn add_days(t: Timestamp, days: u32) -> Result<Timestamp, PkiError> {
    t.checked_add(SignedDuration::from_hours(24 * i64::from(days)))
        .map_err(|e| PkiError::BadOptions(format!("validity of {days} days: {e}")))
}

/// A timestamp in the form rcgen takes (x509-parser's `ASN1Time` wraps the same
/// `OffsetDateTime`, which spares a direct dependency on `time`).
fn asn1(t: Timestamp) -> Result<ASN1Time, PkiError> {
    ASN1Time::from_timestamp(t.as_second())
        .map_err(|e| PkiError::BadOptions(format!("time {t} cannot go into a certificate: {e}")))
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Bottomline");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 16 random bytes, the first non-zero with its top bit clear: a positive serial of exactly
/// 16 bytes in DER and 32 hex digits in [`serial_hex`].
fn random_serial() -> Result<[u8; 16], PkiError> {
    use ring::rand::SecureRandom as _;
    let rng = ring::rand::SystemRandom::new();
    let mut serial = [0u8; 16];
    rng.fill(&mut serial)
        .map_err(|_| PkiError::BadOptions("the system random source failed".into()))?;
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 0x01;
    }
    Ok(serial)
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_string()
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A DNS SAN: letters, digits, `-`, `.`, and a leading `*.` for a wildcard.
fn check_dns(name: &str) -> Result<(), PkiError> {
    let body = name.strip_prefix("*.").unwrap_or(name);
    let ok = !body.is_empty()
        && name.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(PkiError::BadOptions(format!(
            "bad DNS name {name:?}: dot-separated labels of ASCII letters, digits and '-'"
        )))
    }
}

/// The RFC 5280 reason code a free-text reason names, if it names one (`key-compromise`,
/// `superseded`, `cessation of operation`, `affiliationChanged` …).
fn reason_code(text: &str) -> Option<RevocationReason> {
    let key: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match key.as_str() {
        "keycompromise" => RevocationReason::KeyCompromise,
        "cacompromise" => RevocationReason::CaCompromise,
        "affiliationchanged" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessationofoperation" => RevocationReason::CessationOfOperation,
        "privilegewithdrawn" => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

mod signing;
#[cfg(test)]
mod tests;
