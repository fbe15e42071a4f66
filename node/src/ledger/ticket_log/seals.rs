//! Sealing the events this node creates and keeping the signers' certificates (see
//! `security::sign`).

use super::*;

impl Ledger {
    /// Sign this node's events from now on with `key` (a node running mTLS; its certificate
    /// is stored so that it travels with the events it signs).
    pub fn set_signing_key(&self, key: Arc<sign::NodeKey>) -> Result<()> {
        if self.certificate(&key.fingerprint())?.is_none() {
            let mut ws = WriteSet::new();
            ws.put(TreeId::Certs, key.fingerprint(), key.certificate().to_vec());
            let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
            self.store.commit(ws)?;
            self.store.flush()?;
        }
        let _ = self.signing_key.set(key);
        Ok(())
    }

    /// The certificate (DER) with fingerprint `fp`, if this node holds it.
    pub fn certificate(&self, fp: &Hash) -> Result<Option<Arc<Vec<u8>>>> {
        if let Some(c) = self.certs.lock().unwrap_or_else(|p| p.into_inner()).get(fp) {
            return Ok(Some(c.clone()));
        }
        let Some(v) = self.store.get(TreeId::Certs, fp)? else {
            return Ok(None);
        };
        let c = Arc::new(v.to_vec());
        self.certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*fp, c.clone());
        Ok(Some(c))
    }

    /// Seal the events created here in this commit, together (one signature).
    pub(super) fn seal_own(&self, logged: &mut [LogEntry]) {
        let Some(key) = self.signing_key.get() else {
            return;
        };
        let own: Vec<usize> = (0..logged.len())
            .filter(|i| logged[*i].logged.from.is_none() && logged[*i].seal.is_none())
            .collect();
        let bodies: Vec<&[u8]> = own.iter().map(|i| logged[*i].body.as_slice()).collect();
        let seals = sign::seal(key, &bodies);
        for (i, s) in own.into_iter().zip(seals) {
            logged[i].seal = Some(s);
        }
    }
}
