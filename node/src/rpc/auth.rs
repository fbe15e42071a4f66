//! Authorization from the caller's verified certificate, never from what a message claims.
//!
//! Every handler asks [`Caller::of`] who is calling (the [`Peer`] the TLS acceptor put in the
//! request) and then one of the checks below. A refusal is a `PermissionDenied` naming the
//! reason, and one audit line (who, which certificate, what, why).
//!
//! The rules:
//! - a link: a node certificate of a direct child, whose `Hello` names that same division;
//! - reads (statistics, tickets, progress, status): divisions within the caller's division;
//! - acts (issue, accept, rectify, verify …): a node certificate or an operator with the
//!   `operator` role, for a division within the caller's division (a viewer only reads);
//! - a relay certificate carries traffic and acts for nobody.
//!
//! A node configured `insecure = true` has no certificates: callers are trusted as before
//! (local experiments only; the node says so when it starts).

use std::sync::Arc;

use tokio::sync::watch;
use tonic::{Request, Status};

use crate::division::Code;
use crate::security::tls::{Peer, Revoked};
use crate::security::{audit, CertInfo, Identity};

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The verified certificate; `None` on an insecure node.
    cert: Option<Arc<CertInfo>>,
    /// Remote address, for the audit log.
    addr: String,
}

impl Caller {
    /// The caller of `request`. `revoked` is `Some` on a node running mTLS (`None`: an
    /// insecure node). On an mTLS node a request without a verified certificate is refused (it
    /// cannot happen through the TLS acceptor; this guards a server wired without it), and the
    /// revoked serials are checked on every call: a connection opened before its certificate
    /// was revoked is refused from then on.
    pub fn of<T>(
        request: &Request<T>,
        revoked: Option<&watch::Receiver<Revoked>>,
    ) -> Result<Caller, Status> {
        let peer = request.extensions().get::<Peer>();
        let caller = Caller {
            cert: peer.and_then(|p| p.cert.clone()),
            addr: peer
                .and_then(|p| p.addr)
                .map_or_else(|| "-".to_string(), |a| a.to_string()),
        };
        if revoked.is_some() && caller.cert.is_none() {
            return Err(caller.deny("call this node", "no verified client certificate"));
        }
        if let (Some(serial), Some(revoked)) = (caller.serial(), revoked) {
            if revoked.borrow().contains(serial) {
                return Err(caller.deny(
                    "call this node",
                    "the certificate was revoked after this connection was opened",
                ));
            }
        }
        Ok(caller)
    }

    /// A refusal decided further in (the ledger's subtree and actor rules): logged to the
    /// audit log like every other refusal when it is `PermissionDenied`.
    pub fn audited(&self, what: &str, status: Status) -> Status {
        if status.code() == tonic::Code::PermissionDenied {
            self.deny(what, status.message())
        } else {
            status
        }
    }

    /// The relay's name when the caller is a relay.
    pub fn relay_name(&self) -> Option<&str> {
        match self.identity() {
            Some(Identity::Relay { name }) => Some(name),
            _ => None,
        }
    }

    /// The caller's identity (`None` on an insecure node).
    pub fn identity(&self) -> Option<&Identity> {
        self.cert.as_ref().map(|c| &c.identity)
    }

    /// The caller's certificate serial (`None` on an insecure node).
    pub fn serial(&self) -> Option<&str> {
        self.cert.as_ref().map(|c| c.serial.as_str())
    }

    /// Refuse: log one audit line and return `PermissionDenied` with the reason.
    pub fn deny(&self, what: &str, why: &str) -> Status {
        let who = match self.identity() {
            Some(id) => format!("{id} ({})", self.addr),
            None => format!("unauthenticated ({})", self.addr),
        };
        audit(&who, self.serial().unwrap_or("-"), what, why);
        Status::permission_denied(why.to_string())
    }

    /// The division whose subtree the caller may see: `None` = anything (insecure node).
    pub fn read_scope(&self, what: &str) -> Result<Option<Code>, Status> {
        match self.identity() {
            None => Ok(None),
            Some(Identity::Relay { name }) => Err(self.deny(
                what,
                &format!("relay {name} carries traffic and may not read or act"),
            )),
            Some(id) => Ok(id.division()),
        }
    }

    /// May the caller read data of `division`?
    pub fn may_read(&self, division: Code, what: &str) -> Result<(), Status> {
        match self.read_scope(what)? {
            Some(d) if !d.contains(division) => Err(self.deny(
                what,
                &format!(
                    "{} may read only within {d}, not {division}",
                    self.identity().map(ToString::to_string).unwrap_or_default()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Is the caller one that may see a node's link states: staff (or the node) of the node's
    /// division or above it, or of a division within it?
    pub fn may_see_node(&self, node: Code, what: &str) -> Result<(), Status> {
        match self.read_scope(what)? {
            Some(d) if !(d.contains(node) || node.contains(d)) => Err(self.deny(
                what,
                &format!("{d} is neither above nor within node {node}"),
            )),
            _ => Ok(()),
        }
    }

    /// The division the caller acts as: `requested` (empty = the caller's own division; on an
    /// insecure node, `node`'s), which the caller's certificate must cover and allow acting.
    pub fn actor(&self, requested: &str, node: Code, what: &str) -> Result<Code, Status> {
        let requested = if requested.is_empty() {
            None
        } else {
            Some(
                Code::parse(requested)
                    .map_err(|r| Status::invalid_argument(format!("actor: {r}")))?,
            )
        };
        let Some(scope) = self.read_scope(what)? else {
            return Ok(requested.unwrap_or(node));
        };
        let id = self.identity().map(ToString::to_string).unwrap_or_default();
        if !self.identity().is_some_and(Identity::may_act) {
            return Err(self.deny(what, &format!("{id} may read but not act")));
        }
        let actor = requested.unwrap_or(scope);
        if !scope.contains(actor) {
            return Err(self.deny(
                what,
                &format!("{id} may act only for {scope} and divisions within it, not {actor}"),
            ));
        }
        Ok(actor)
    }

    /// The division a link's peer is, given the division its `Hello` claims: on a secure node
    /// the certificate must be a node certificate of exactly that division, or a relay's when
    /// the Hello was signed by that division's node certificate (`signed`: checked by
    /// [`super::envelope::Seals::hello_signer`]; every later envelope is checked the same way,
    /// so a relay carries the child's traffic but cannot speak for it).
    pub fn link_division(&self, claimed: Code, what: &str, signed: bool) -> Result<Code, Status> {
        match self.identity() {
            None => Ok(claimed),
            Some(Identity::Node { division }) if *division == claimed => Ok(claimed),
            Some(Identity::Node { division }) => Err(self.deny(
                what,
                &format!("the certificate is node {division}, but its Hello claims {claimed}"),
            )),
            Some(Identity::Relay { .. }) if signed => Ok(claimed),
            Some(Identity::Relay { name }) => Err(self.deny(
                what,
                &format!("relay {name} forwards a Hello of {claimed} that is not signed"),
            )),
            Some(other) => Err(self.deny(
                what,
                &format!("{other} is a person's certificate; only nodes open links"),
            )),
        }
    }
}
