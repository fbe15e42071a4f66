//! Signatures on what a node creates: its link envelopes (Hello, cell batches, ticket
//! batches) and its ticket events, with the node's own key (ECDSA P-256, the key of its
//! certificate), so that a relay or any node in between can forward them but not alter or
//! forge them.
//!
//! - [`NodeKey`]: the node's key and certificate, loaded from its `[tls]` files.
//! - [`Verifier`]: checks a certificate against the provincial CA and caches the verified
//!   [`Signer`]s by fingerprint; a `Signer` checks signatures with the certificate's key.
//! - Ticket events are signed per commit through a Merkle tree ([`seal`], [`Seal::root`]):
//!   one signature covers every event a node creates in one commit (a 10 000-ticket inventory
//!   costs three signatures, not ten thousand), and each event carries the path to the root,
//!   so it verifies alone wherever it travels. A receiver verifies each root once
//!   ([`Verifier::verify_root`] remembers the verified ones).
//!
//! Domain separation: every signed message starts with a context string ending in NUL
//! ([`ENVELOPE_CONTEXT`], [`EVENTS_CONTEXT`]), so a signature over one kind of message never
//! verifies as another.

use std::sync::{Arc, Mutex};

use ring::digest::{digest, Context, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, UnparsedPublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::tls::{file_err, provider, read_certs, TlsError, TlsFiles};
use super::{CertInfo, Identity};
use crate::division::Code;
use recent::Recent;

/// The context of an envelope signature (see `Envelope.signature` in the proto).
pub const ENVELOPE_CONTEXT: &[u8] = b"bottomline.v1.envelope\0";
/// The context of a ticket-event root signature (see `Seal` in the proto).
pub const EVENTS_CONTEXT: &[u8] = b"bottomline.v1.ticket-events\0";

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// SHA-256 of a certificate's DER: how seals name their signer.
pub fn fingerprint(der: &[u8]) -> Hash {
    to_hash(digest(&SHA256, der).as_ref())
}

fn to_hash(b: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(b);
    h
}

/// The node's signing key and its certificate.
pub struct NodeKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    cert: Vec<u8>,
    fingerprint: Hash,
    info: CertInfo,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("identity", &self.info.identity)
            .field("serial", &self.info.serial)
            .finish()
    }
}

impl NodeKey {
    /// Load the key and the first certificate of `files`. The key must be ECDSA P-256 in
    /// PKCS#8 (what `bottomline pki` writes) and belong to the certificate.
    pub fn load(files: &TlsFiles) -> Result<Arc<NodeKey>, TlsError> {
        let chain = read_certs("certificate", &files.cert)?;
        let cert = chain[0].as_ref().to_vec();
        let info =
            CertInfo::from_der(&cert).map_err(|e| file_err("certificate", &files.cert, e))?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| file_err("private key", &files.key, e))?;
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(file_err(
                "private key",
                &files.key,
                "not a PKCS#8 key (bottomline pki writes ECDSA P-256 keys in PKCS#8)",
            ));
        };
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|e| file_err("private key", &files.key, format!("not ECDSA P-256: {e}")))?;
        use ring::signature::KeyPair;
        if public_key(&cert).as_deref() != Some(pair.public_key().as_ref()) {
            return Err(file_err(
                "private key",
                &files.key,
                format!(
                    "does not belong to the certificate {}",
                    files.cert.display()
                ),
            ));
        }
        Ok(Arc::new(NodeKey {
            pair,
            rng,
            fingerprint: fingerprint(&cert),
            cert,
            info,
        }))
    }

    /// Sign `context ‖ msg`.
    pub fn sign(&self, context: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(context.len() + msg.len());
        m.extend_from_slice(context);
        m.extend_from_slice(msg);
        // ring fails only on a broken random source, which is not recoverable here.
        self.pair
            .sign(&self.rng, &m)
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.cert
    }

    /// SHA-256 of the certificate.
    pub fn fingerprint(&self) -> Hash {
        self.fingerprint
    }

    /// What the certificate says.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }
}

/// The subjectPublicKey bits of a DER certificate (an uncompressed P-256 point).
fn public_key(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// A certificate the CA issued (its chain verified), with its key: checks signatures.
#[derive(Debug)]
pub struct Signer {
    /// What the certificate says.
    pub info: CertInfo,
    /// Its fingerprint.
    pub fingerprint: Hash,
    public_key: Vec<u8>,
}

impl Signer {
    /// The node division the certificate names, if it is a node certificate.
    pub fn node_division(&self) -> Option<Code> {
        match &self.info.identity {
            Identity::Node { division } => Some(*division),
            _ => None,
        }
    }

    /// Check `signature` over `context ‖ msg`.
    pub fn verify(&self, context: &[u8], msg: &[u8], signature: &[u8]) -> Result<(), String> {
        let mut m = Vec::with_capacity(context.len() + msg.len());
        m.extend_from_slice(context);
        m.extend_from_slice(msg);
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.public_key)
            .verify(&m, signature)
            .map_err(|_| {
                format!(
                    "the signature does not verify with the key of certificate {} ({})",
                    self.info.serial, self.info.identity
                )
            })
    }

    /// Whether the certificate was valid at `unix_ms`.
    pub fn valid_at(&self, unix_ms: i64) -> bool {
        let s = unix_ms.div_euclid(1000);
        self.info.not_before <= s && s <= self.info.not_after
    }
}

/// Verified certificates remembered (per generation of [`Recent`]): a province's tree has a
/// few hundred.
const SIGNERS_CACHED: usize = 1024;

/// Verified seal roots remembered (per generation of [`Recent`]). A root is one commit of
/// ticket events at one node, and the events of a commit travel together, so what saves
/// signature checks is the roots of the last few batches, not every root ever checked.
const ROOTS_CACHED: usize = 2048;

/// Verifies certificates against the CA, and seals; remembers what it verified.
pub struct Verifier {
    chain: Arc<dyn ClientCertVerifier>,
    signers: Mutex<Recent<Hash, Arc<Signer>>>,
    roots: Mutex<Recent<(Hash, Hash), ()>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for certificates of the CA in `files.ca`.
    pub fn load(files: &TlsFiles) -> Result<Arc<Verifier>, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in read_certs("CA certificate", &files.ca)? {
            roots
                .add(c)
                .map_err(|e| file_err("CA certificate", &files.ca, e))?;
        }
        Self::with_roots(roots)
    }

    /// A verifier for certificates of the CA certificates `ca` (DER).
    pub fn with_roots(roots: RootCertStore) -> Result<Arc<Verifier>, TlsError> {
        let chain = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Arc::new(Verifier {
            chain,
            signers: Mutex::new(Recent::new(SIGNERS_CACHED)),
            roots: Mutex::new(Recent::new(ROOTS_CACHED)),
        }))
    }

    /// The signer of certificate `der`, once its chain to the CA verifies (signature and key
    /// usage; its validity period is checked against the time of what it signed, by the
    /// caller: an event signed last month stays valid after the certificate was renewed).
    /// Revocation is checked on live connections, not here.
    pub fn signer(&self, der: &[u8]) -> Result<Arc<Signer>, String> {
        let fp = fingerprint(der);
        if let Some(s) = self
            .signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fp)
        {
            return Ok(s);
        }
        let info = CertInfo::from_der(der)?;
        // Verify the chain at a moment inside the certificate's validity.
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(info.not_before.max(0)).unwrap_or(0) + 1,
        ));
        self.chain
            .verify_client_cert(&CertificateDer::from(der.to_vec()), &[], at)
            .map_err(|e| {
                format!(
                    "certificate {} ({}) is not one of the provincial CA: {e}",
                    info.serial, info.identity
                )
            })?;
        let public_key =
            public_key(der).ok_or_else(|| "certificate without a readable key".to_string())?;
        let s = Arc::new(Signer {
            info,
            fingerprint: fp,
            public_key,
        });
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fp, s.clone());
        Ok(s)
    }

    /// The signer with certificate fingerprint `fp`, if verified before.
    pub fn cached(&self, fp: &Hash) -> Option<Arc<Signer>> {
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(fp)
    }

    /// Check the signature of a seal's root by `signer`, once per (signer, root).
    pub fn verify_root(
        &self,
        signer: &Signer,
        root: &Hash,
        signature: &[u8],
    ) -> Result<(), String> {
        let k = (signer.fingerprint, *root);
        if self
            .roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&k)
            .is_some()
        {
            return Ok(());
        }
        signer.verify(EVENTS_CONTEXT, root, signature)?;
        self.roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k, ());
        Ok(())
    }
}

/// A ticket event's seal (the proto's `Seal` as plain values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    /// Fingerprint of the signer's certificate.
    pub signer: Hash,
    /// Signature over the root.
    pub signature: Vec<u8>,
    /// Leaf index.
    pub index: u32,
    /// Number of leaves.
    pub count: u32,
    /// Sibling hashes from the leaf up.
    pub path: Vec<Hash>,
}

/// The Merkle leaf of an event body.
pub fn leaf(body: &[u8]) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0]);
    c.update(body);
    to_hash(c.finish().as_ref())
}

fn node(l: &Hash, r: &Hash) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[1]);
    c.update(l);
    c.update(r);
    to_hash(c.finish().as_ref())
}

/// Seal `bodies` (the events one commit creates, in order) with one signature of `key`.
pub fn seal(key: &NodeKey, bodies: &[&[u8]]) -> Vec<Seal> {
    let n = bodies.len();
    if n == 0 {
        return Vec::new();
    }
    let mut levels: Vec<Vec<Hash>> = vec![bodies.iter().map(|b| leaf(b)).collect()];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let prev = levels.last().map(Vec::as_slice).unwrap_or_default();
        let next = prev
            .chunks(2)
            .map(|p| {
                if p.len() == 2 {
                    node(&p[0], &p[1])
                } else {
                    p[0]
                }
            })
            .collect();
        levels.push(next);
    }
    let root = levels
        .last()
        .and_then(|l| l.first())
        .copied()
        .unwrap_or_default();
    let signature = key.sign(EVENTS_CONTEXT, &root);
    (0..n)
        .map(|i| {
            let mut path = Vec::new();
            let mut idx = i;
            for level in &levels[..levels.len() - 1] {
                let sib = idx ^ 1;
                if sib < level.len() {
                    path.push(level[sib]);
                }
                idx /= 2;
            }
            Seal {
                signer: key.fingerprint(),
                signature: signature.clone(),
                index: i as u32,
                count: n as u32,
                path,
            }
        })
        .collect()
}

impl Seal {
    /// The root that `body` and this seal's path lead to; `None` when the path does not fit
    /// the index and count.
    pub fn root(&self, body: &[u8]) -> Option<Hash> {
        if self.index >= self.count {
            return None;
        }
        let (mut idx, mut n) = (self.index as usize, self.count as usize);
        let mut h = leaf(body);
        let mut path = self.path.iter();
        while n > 1 {
            let sib = idx ^ 1;
            if sib < n {
                let s = path.next()?;
                h = if idx % 2 == 0 {
                    node(&h, s)
                } else {
                    node(s, &h)
                };
            }
            idx /= 2;
            n = n.div_ceil(2);
        }
        path.next().is_none().then_some(h)
    }
}

mod recent;

#[cfg(test)]
mod tests;
