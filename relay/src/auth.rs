//! Who calls the relay: the identity of the verified certificate the TLS acceptor attached to
//! the request (never what a message claims), refusals with one audit line each, and the
//! revocation of a caller's certificate while its link is open.

use std::sync::Arc;

use bottomline::security::tls::{Peer, Revoked};
use bottomline::security::{audit, CertInfo};
use tokio::sync::watch;
use tonic::{Request, Status};

/// Who is calling, from the verified certificate the TLS acceptor attached.
pub(crate) struct Caller {
    pub cert: Option<Arc<CertInfo>>,
    addr: String,
}

impl Caller {
    pub fn of<T>(
        request: &Request<T>,
        revoked: &watch::Receiver<Revoked>,
    ) -> Result<Caller, Status> {
        let peer = request.extensions().get::<Peer>();
        let caller = Caller {
            cert: peer.and_then(|p| p.cert.clone()),
            addr: peer
                .and_then(|p| p.addr)
                .map_or_else(|| "-".to_string(), |a| a.to_string()),
        };
        let Some(cert) = &caller.cert else {
            return Err(caller.deny("call the relay", "no verified client certificate"));
        };
        if revoked.borrow().contains(&cert.serial) {
            return Err(caller.deny(
                "call the relay",
                "the certificate was revoked after this connection was opened",
            ));
        }
        Ok(caller)
    }

    /// Refuse: one audit line, and `PermissionDenied` with the reason.
    pub fn deny(&self, what: &str, why: &str) -> Status {
        let who = match &self.cert {
            Some(c) => format!("{} ({})", c.identity, self.addr),
            None => format!("unauthenticated ({})", self.addr),
        };
        let serial = self.cert.as_ref().map_or("-", |c| c.serial.as_str());
        audit(&who, serial, what, why);
        Status::permission_denied(why.to_string())
    }
}

/// Resolve once `serial` is among the revoked serials.
pub(crate) async fn until_revoked(mut rx: watch::Receiver<Revoked>, serial: String) {
    if rx.wait_for(|r| r.contains(&serial)).await.is_err() {
        std::future::pending::<()>().await;
    }
}
