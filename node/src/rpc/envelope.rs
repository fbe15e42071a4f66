//! Signed envelopes and sealed ticket events on a link (issue #15 point 4).
//!
//! [`Seals`] is a node's signing side (its [`NodeKey`]) and checking side (a [`Verifier`] for
//! the provincial CA). A child signs its `Hello` and `CellBatch` envelopes; the
//! parent learns the child's certificate from the signed `Hello` (the only way to know who is
//! behind a relay) and checks every later envelope of the link against it. Ticket events carry
//! their creator's seal ([`crate::security::sign`]) end to end; every receiver checks it, with
//! the signer's certificate from the batch or from its own store.
//!
//! Insecure nodes (`insecure = true`) neither sign nor check.

use std::collections::HashMap;
use std::sync::Arc;

use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use prost::Message;

use crate::division::Code;
use crate::ledger::{Ledger, LogEntry};
use crate::security::sign::{self, Hash, NodeKey, Signer, Verifier, ENVELOPE_CONTEXT};
use crate::security::tls::{Revoked, TlsError, TlsFiles};
use crate::security::Identity;
use crate::tickets::codec::{self, Sealed};

/// Clock skew tolerated between a signer's clock and its certificate's validity.
const SKEW_MS: i64 = 10 * 60 * 1000;

/// A node's signing key and certificate checker; both absent on an insecure node.
#[derive(Debug, Default)]
pub struct Seals {
    key: Option<Arc<NodeKey>>,
    verifier: Option<Arc<Verifier>>,
}

/// Why an envelope or event was refused: `Forged` ones are `PermissionDenied` (and audited),
/// `Malformed` ones `InvalidArgument`.
#[derive(Debug)]
pub enum Refusal {
    /// A signature or a signer that does not check out.
    Forged(String),
    /// Bytes that do not decode.
    Malformed(String),
}

impl Refusal {
    /// As a gRPC status.
    pub fn status(self) -> tonic::Status {
        match self {
            Refusal::Forged(m) => tonic::Status::permission_denied(m),
            Refusal::Malformed(m) => tonic::Status::invalid_argument(m),
        }
    }
}

impl Seals {
    /// No signing, no checking (`insecure = true`).
    pub fn insecure() -> Arc<Seals> {
        Arc::new(Seals::default())
    }

    /// The node's key and a verifier for its CA, from its `[tls]` files.
    pub fn load(files: &TlsFiles) -> Result<Arc<Seals>, TlsError> {
        Ok(Arc::new(Seals {
            key: Some(NodeKey::load(files)?),
            verifier: Some(Verifier::load(files)?),
        }))
    }

    /// The node's key, if it signs.
    pub fn key(&self) -> Option<&Arc<NodeKey>> {
        self.key.as_ref()
    }

    /// The CA verifier (nodes running mTLS).
    pub fn verifier(&self) -> Option<&Arc<Verifier>> {
        self.verifier.as_ref()
    }

    /// An envelope from this node, signed when it has a key (for Hello and cell batches; a
    /// ticket batch's events carry their own seals, see [`Seals::unsigned`]).
    pub fn envelope(&self, origin: Code, seq: u64, payload: Payload) -> pb::Envelope {
        let mut e = pb::Envelope {
            origin: origin.to_string(),
            seq,
            payload: Some(payload),
            signature: Vec::new(),
        };
        if let Some(k) = &self.key {
            e.signature = k.sign(ENVELOPE_CONTEXT, &e.encode_to_vec());
        }
        e
    }

    /// An envelope that is not signed as a whole.
    pub fn unsigned(origin: Code, seq: u64, payload: Payload) -> pb::Envelope {
        pb::Envelope {
            origin: origin.to_string(),
            seq,
            payload: Some(payload),
            signature: Vec::new(),
        }
    }

    /// The certificate this node's Hello carries (empty on an insecure node).
    pub fn certificate(&self) -> Vec<u8> {
        self.key
            .as_ref()
            .map(|k| k.certificate().to_vec())
            .unwrap_or_default()
    }

    /// The signer of a link, from its first envelope (a `Hello`): its certificate is the
    /// CA's, not revoked, valid now, a node certificate of the division the Hello names, and
    /// the envelope's signature verifies with its key. `None` on an insecure node.
    pub fn hello_signer(
        &self,
        env: &pb::Envelope,
        hello: &pb::Hello,
        revoked: Option<&Revoked>,
    ) -> Result<Option<Arc<Signer>>, Refusal> {
        let Some(v) = &self.verifier else {
            return Ok(None);
        };
        if hello.certificate.is_empty() || env.signature.is_empty() {
            return Err(Refusal::Forged(format!(
                "the Hello of {} is not signed: this node takes signed envelopes only",
                hello.division
            )));
        }
        let signer = v.signer(&hello.certificate).map_err(Refusal::Forged)?;
        if revoked.is_some_and(|r| r.contains(&signer.info.serial)) {
            return Err(Refusal::Forged(format!(
                "the Hello is signed with certificate {}, which is revoked",
                signer.info.serial
            )));
        }
        if !signer.valid_at(crate::ledger::unix_ms_now()) {
            return Err(Refusal::Forged(format!(
                "the Hello is signed with certificate {}, which is not valid now",
                signer.info.serial
            )));
        }
        match &signer.info.identity {
            Identity::Node { division } if division.to_string() == hello.division => {}
            other => {
                return Err(Refusal::Forged(format!(
                    "the Hello claims {} but is signed by {other}",
                    hello.division
                )))
            }
        }
        let mut env = env.clone();
        verify_envelope(&mut env, &signer)?;
        Ok(Some(signer))
    }

    /// The events of a ticket batch, decoded, with their seals checked (on a node that
    /// checks): each is sealed by a node certificate of its origin, valid when it was
    /// created, and its seal's root is signed by that certificate. Refuses the whole batch.
    pub fn events(&self, ledger: &Ledger, batch: pb::TicketBatch) -> Result<Vec<Sealed>, Refusal> {
        let offered: HashMap<Hash, &Vec<u8>> = batch
            .certificates
            .iter()
            .map(|c| (sign::fingerprint(c), c))
            .collect();
        let mut out = Vec::with_capacity(batch.events.len());
        for t in batch.events {
            let s =
                codec::from_pb(t).map_err(|e| Refusal::Malformed(format!("ticket event: {e}")))?;
            if let Some(v) = &self.verifier {
                check_seal(v, ledger, &offered, &s)?;
            }
            out.push(s);
        }
        Ok(out)
    }

    /// A ticket batch of `entries` read up to `upto`, with the certificates of their signers.
    pub fn ticket_batch(
        &self,
        ledger: &Ledger,
        entries: &[Arc<LogEntry>],
        upto: u64,
    ) -> pb::TicketBatch {
        let mut certs: Vec<Hash> = entries
            .iter()
            .filter_map(|e| e.seal.as_ref().map(|s| s.signer))
            .collect();
        certs.sort_unstable();
        certs.dedup();
        pb::TicketBatch {
            events: entries
                .iter()
                .map(|e| codec::to_pb(&e.body, e.seal.as_ref()))
                .collect(),
            upto,
            incarnation: ledger.identity().current().map_or(0, |i| i.id),
            certificates: certs
                .iter()
                .filter_map(|fp| ledger.certificate(fp).ok().flatten())
                .map(|c| c.as_ref().clone())
                .collect(),
        }
    }
}

/// Check `env`'s signature with `signer`'s key (`env` is left as it was).
pub fn verify_envelope(env: &mut pb::Envelope, signer: &Signer) -> Result<(), Refusal> {
    if env.signature.is_empty() {
        return Err(Refusal::Forged(format!(
            "an envelope of {} (seq {}) is not signed",
            env.origin, env.seq
        )));
    }
    let signature = std::mem::take(&mut env.signature);
    let signed = env.encode_to_vec();
    env.signature = signature;
    signer
        .verify(ENVELOPE_CONTEXT, &signed, &env.signature)
        .map_err(|e| {
            Refusal::Forged(format!(
                "an envelope of {} (seq {}) was altered or forged: {e}",
                env.origin, env.seq
            ))
        })
}

fn check_seal(
    v: &Verifier,
    ledger: &Ledger,
    offered: &HashMap<Hash, &Vec<u8>>,
    s: &Sealed,
) -> Result<(), Refusal> {
    let e = &s.event;
    let what = || format!("ticket event {} of {}", e.id, e.ticket);
    let seal = s
        .seal
        .as_ref()
        .ok_or_else(|| Refusal::Forged(format!("{} is not signed", what())))?;
    let signer = match v.cached(&seal.signer) {
        Some(s) => s,
        None => signer_of(v, ledger, offered, &seal.signer, &what)?,
    };
    if signer.node_division() != Some(e.id.origin) {
        return Err(Refusal::Forged(format!(
            "{} was created by {} but is signed by {}",
            what(),
            e.id.origin,
            signer.info.identity
        )));
    }
    if !signer.valid_at(e.at_unix_ms.saturating_add(SKEW_MS))
        && !signer.valid_at(e.at_unix_ms.saturating_sub(SKEW_MS))
    {
        return Err(Refusal::Forged(format!(
            "{} is dated outside the validity of certificate {} that signed it",
            what(),
            signer.info.serial
        )));
    }
    let root = seal.root(&s.body).ok_or_else(|| {
        Refusal::Forged(format!(
            "{}: its seal's path does not fit its index",
            what()
        ))
    })?;
    v.verify_root(&signer, &root, &seal.signature)
        .map_err(|err| Refusal::Forged(format!("{} was altered or forged: {err}", what())))
}

/// The verified signer of certificate `fp`, from the batch's certificates or this node's.
fn signer_of(
    v: &Verifier,
    ledger: &Ledger,
    offered: &HashMap<Hash, &Vec<u8>>,
    fp: &Hash,
    what: &dyn Fn() -> String,
) -> Result<Arc<Signer>, Refusal> {
    let der = match offered.get(fp) {
        Some(d) => Arc::new(d.to_vec()),
        None => ledger
            .certificate(fp)
            .map_err(|err| Refusal::Malformed(err.to_string()))?
            .ok_or_else(|| {
                Refusal::Forged(format!(
                    "{}: the batch lacks the certificate that signed it",
                    what()
                ))
            })?,
    };
    v.signer(&der)
        .map_err(|err| Refusal::Forged(format!("{}: {err}", what())))
}
