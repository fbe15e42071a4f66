//! Signing: a certificate (`sign`, behind `issue`, `renew` and the CA's own) and the
//! revocation list (`write_crl`), each written atomically and entered in the register.

use super::*;

impl Pki {
    /// Make, write and register a certificate (no check against existing ones).
    pub(super) fn sign(
        &mut self,
        identity: &Identity,
        opts: &IssueOptions,
    ) -> Result<Issued, PkiError> {
        let bad_identity = |reason: String| PkiError::BadIdentity {
            identity: identity.to_string(),
            reason,
        };
        match identity {
            Identity::Operator { name, .. } | Identity::Relay { name } => {
                check_name(name).map_err(bad_identity)?
            }
            Identity::Node { .. } => {}
        }
        if identity
            .division()
            .is_some_and(|d| d.to_string().is_empty())
        {
            return Err(bad_identity("the national root has no certificate".into()));
        }
        if opts.days == 0 {
            return Err(PkiError::BadOptions("validity of 0 days".into()));
        }
        let stem = identity.stem();
        let is_operator = matches!(identity, Identity::Operator { .. });
        let (dns, ips) = if is_operator {
            (Vec::new(), Vec::new())
        } else if opts.dns.is_empty() && opts.ips.is_empty() {
            (
                vec!["localhost".to_string()],
                vec![IpAddr::from([127, 0, 0, 1])],
            )
        } else {
            (opts.dns.clone(), opts.ips.clone())
        };

        let mut sans = Vec::new();
        for uri in identity.uris() {
            let s = Ia5String::try_from(uri.as_str()).map_err(|e| bad_identity(e.to_string()))?;
            sans.push(SanType::URI(s));
        }
        for name in &dns {
            check_dns(name)?;
            let s = Ia5String::try_from(name.as_str())
                .map_err(|e| PkiError::BadOptions(format!("DNS name {name:?}: {e}")))?;
            sans.push(SanType::DnsName(s));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));

        let not_before = match opts.valid_from {
            Some(t) => t,
            None => now() - CLOCK_SKEW,
        };
        // Never beyond the CA: a chain is valid only while every certificate in it is.
        let not_after = add_days(not_before, opts.days)?.min(self.ca_not_after);
        if not_after <= not_before {
            return Err(PkiError::BadOptions(format!(
                "the CA expires at {}: renew the CA first",
                self.ca_not_after
            )));
        }
        let serial = random_serial()?;

        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&identity.to_string());
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = asn1(not_before)?.to_datetime();
        params.not_after = asn1(not_after)?.to_datetime();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = if is_operator {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        };
        params.subject_alt_names = sans;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(sign_err(format!("generate a key for {stem}")))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(sign_err(format!("sign the certificate of {stem}")))?;

        // What was signed, read back the way nodes will read it.
        let info = CertInfo::from_der(cert.der()).map_err(bad_identity)?;
        if info.identity != *identity || info.serial != serial_hex(&serial) {
            return Err(bad_identity(format!(
                "the signed certificate reads back as {} serial {}",
                info.identity, info.serial
            )));
        }
        let ts =
            |s: i64| Timestamp::from_second(s).map_err(|e| PkiError::BadOptions(e.to_string()));
        let record = Record {
            stem: stem.clone(),
            subject: identity.to_string(),
            uris: identity.uris(),
            serial: info.serial.clone(),
            issued: now(),
            not_before: ts(info.not_before)?,
            not_after: ts(info.not_after)?,
            dns,
            ips,
            revoked: None,
            reason: None,
        };

        let key_path = self.key_path(&stem);
        let cert_path = self.cert_path(&stem);
        let certs = self.dir.join("certs");
        fs::create_dir_all(&certs).map_err(io(&certs))?;
        write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        let chain = format!("{}{}", cert.pem(), self.ca_pem);
        write_atomic(&cert_path, chain.as_bytes(), 0o644)?;
        let mut index = clone_index(&self.index);
        index.certs.push(record.clone());
        self.write_index(&index)?;
        self.index = index;
        Ok(Issued {
            identity: identity.clone(),
            serial: record.serial,
            cert_path,
            key_path,
            not_after: record.not_after,
        })
    }

    /// Sign and write `crl.pem` (atomically) with every revoked serial and the next CRL
    /// number, then the register with that number.
    pub(super) fn write_crl(&mut self) -> Result<(), PkiError> {
        let now = now();
        let number = self.index.crl_number + 1;
        let mut revoked_certs = Vec::new();
        for r in &self.index.certs {
            let Some(at) = r.revoked else { continue };
            let serial = hex_bytes(&r.serial).ok_or_else(|| PkiError::BadIndex {
                path: self.dir.join("index.json"),
                reason: format!("{}: serial {:?} is not hex", r.stem, r.serial),
            })?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: asn1(at)?.to_datetime(),
                reason_code: r.reason.as_deref().and_then(reason_code),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: asn1(now)?.to_datetime(),
            next_update: asn1(add_days(now, CRL_DAYS)?)?.to_datetime(),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.ca_key_id.clone(),
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(sign_err("sign the revocation list"))?;
        let pem = crl.pem().map_err(sign_err("encode the revocation list"))?;
        let mut index = clone_index(&self.index);
        index.crl_number = number;
        // The register first: a CRL number is never reused even if the CRL write fails.
        self.write_index(&index)?;
        self.index = index;
        write_atomic(&self.crl_path(), pem.as_bytes(), 0o644)
    }
}
