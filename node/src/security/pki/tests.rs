//! Tests of the PKI: issue, verify with rustls, revoke, expire, renew, key modes.
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};

use super::*;
use crate::division::Code;
use crate::security::Role;

fn code(s: &str) -> Code {
    Code::parse(s).unwrap()
}

fn node(d: &str) -> Identity {
    Identity::Node { division: code(d) }
}

fn operator(name: &str, d: &str, role: Role) -> Identity {
    Identity::Operator {
        name: name.into(),
        division: code(d),
        role,
    }
}

fn relay(name: &str) -> Identity {
    Identity::Relay { name: name.into() }
}

fn chain(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn roots(pki: &Pki) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in chain(&pki.ca_path()) {
        roots.add(c).unwrap();
    }
    roots
}

/// The ring provider, as `tls.rs` uses it (deprecated in rustls 0.23.48 for lacking
/// post-quantum key exchange, which certificate checks do not involve).
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verify `stem`'s certificate as a client certificate, with the CRL when `crl`.
fn verify_client(pki: &Pki, stem: &str, crl: bool) -> Result<(), rustls::Error> {
    let mut b = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(pki)),
        provider(),
    );
    if crl {
        let crl = CertificateRevocationListDer::from_pem_file(pki.crl_path()).unwrap();
        b = b.with_crls([crl]);
    }
    let v = b.build().unwrap();
    let certs = chain(&pki.cert_path(stem));
    v.verify_client_cert(&certs[0], &certs[1..], UnixTime::now())
        .map(|_| ())
}

#[test]
fn init_twice_is_refused_and_open_needs_a_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let err = Pki::open(&dir).unwrap_err();
    assert!(matches!(err, PkiError::NoCa { .. }), "{err}");
    assert!(
        err.to_string().contains("bottomline pki init --dir"),
        "{err}"
    );
    let pki = Pki::init(&dir, "Shaanxi").unwrap();
    for f in ["ca.pem", "ca.key", "crl.pem", "index.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(dir.join("certs").is_dir());
    drop(pki);
    let err = Pki::init(&dir, "Shaanxi").unwrap_err();
    assert!(matches!(err, PkiError::AlreadyInitialised { .. }), "{err}");
    let pki = Pki::open(&dir).unwrap();
    assert_eq!(pki.name(), "Shaanxi");
    assert!(pki.list().is_empty());
    // While one command holds the directory, another is told so.
    let err = Pki::open(&dir).unwrap_err();
    assert!(matches!(err, PkiError::Busy { .. }), "{err}");
    // The CA certificate: a CA, named after the province.
    let ca = chain(&pki.ca_path());
    let (_, c) = x509_parser::parse_x509_certificate(&ca[0]).unwrap();
    assert!(c.is_ca());
    assert!(c.subject().to_string().contains("Bottomline CA Shaanxi"));
    // The empty CRL is signed and parses.
    let crl = CertificateRevocationListDer::from_pem_file(pki.crl_path()).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&crl).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 0);
}

#[test]
fn every_kind_of_identity_is_issued_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), "Shaanxi").unwrap();
    let ids = [
        node("610102"),
        operator("zhang.san", "6101", Role::Viewer),
        operator("li-si", "61", Role::Operator),
        relay("r1"),
    ];
    for id in &ids {
        let before = Timestamp::now();
        let issued = pki.issue(id, &IssueOptions::default()).unwrap();
        assert_eq!(issued.identity, *id);
        assert_eq!(issued.cert_path, pki.cert_path(&id.stem()));
        assert_eq!(issued.key_path, pki.key_path(&id.stem()));
        assert_eq!(issued.serial.len(), 32, "{}", issued.serial);
        let certs = chain(&issued.cert_path);
        assert_eq!(certs.len(), 2, "leaf then CA");
        let info = CertInfo::from_der(&certs[0]).unwrap();
        assert_eq!(info.identity, *id);
        assert_eq!(info.serial, issued.serial);
        assert_eq!(info.not_after, issued.not_after.as_second());
        let start = before.as_second() - 5 * 60;
        assert!((start - 1..=start + 5).contains(&info.not_before));
        assert_eq!(
            info.not_after - info.not_before,
            i64::from(DEFAULT_DAYS) * 86_400
        );
        verify_client(&pki, &id.stem(), true).unwrap();
        // The key file matches the certificate.
        let key = KeyPair::from_pem(&fs::read_to_string(&issued.key_path).unwrap()).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
        assert_eq!(
            leaf.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth);
        let is_operator = matches!(id, Identity::Operator { .. });
        assert_eq!(eku.server_auth, !is_operator);
        let san = leaf.subject_alternative_name().unwrap().unwrap().value;
        let others = san
            .general_names
            .iter()
            .filter(|n| !matches!(n, x509_parser::extensions::GeneralName::URI(_)))
            .count();
        assert_eq!(others, if is_operator { 0 } else { 2 }, "{id}");
    }
    // Node certificates serve as `localhost` by default.
    let certs = chain(&pki.cert_path("node-610102"));
    let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(&pki)),
        provider(),
    )
    .build()
    .unwrap();
    v.verify_server_cert(
        &certs[0],
        &certs[1..],
        &ServerName::try_from("localhost").unwrap(),
        &[],
        UnixTime::now(),
    )
    .unwrap();
    let list = pki.list();
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|e| e.state == CertState::Valid));
    assert_eq!(
        list.iter().map(|e| e.identity.clone()).collect::<Vec<_>>(),
        ids
    );
    // The register survives reopening.
    drop(pki);
    let pki = Pki::open(tmp.path()).unwrap();
    assert_eq!(pki.list(), list);
}

#[test]
fn sans_are_the_ones_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), "P").unwrap();
    let opts = IssueOptions {
        dns: vec!["county.example.cn".into()],
        ips: vec!["10.0.0.7".parse().unwrap()],
        days: 30,
        ..IssueOptions::default()
    };
    pki.issue(&node("610102"), &opts).unwrap();
    let certs = chain(&pki.cert_path("node-610102"));
    let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    let text = format!("{:?}", san.general_names);
    assert!(text.contains("county.example.cn"), "{text}");
    assert!(!text.contains("localhost"), "{text}");
    let e = &pki.list()[0];
    assert_eq!(e.dns, ["county.example.cn"]);
    assert_eq!(e.ips, ["10.0.0.7".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        e.not_before.duration_until(e.not_after),
        SignedDuration::from_hours(30 * 24)
    );
    for bad in ["", "a..b", "a b", "bad_name.cn"] {
        let opts = IssueOptions {
            dns: vec![bad.into()],
            ..IssueOptions::default()
        };
        let err = pki.issue(&node("610103"), &opts).unwrap_err();
        assert!(matches!(err, PkiError::BadOptions(_)), "{bad:?}: {err}");
    }
    let err = pki
        .issue(&relay("a/b"), &IssueOptions::default())
        .unwrap_err();
    assert!(matches!(err, PkiError::BadIdentity { .. }), "{err}");
    let err = pki
        .issue(
            &node("610103"),
            &IssueOptions {
                days: 0,
                ..IssueOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, PkiError::BadOptions(_)), "{err}");
    assert_eq!(pki.list().len(), 1, "refusals register nothing");
}

#[test]
fn key_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), "P").unwrap();
    let issued = pki.issue(&relay("r1"), &IssueOptions::default()).unwrap();
    for path in [tmp.path().join("ca.key"), issued.key_path.clone()] {
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    let renewed = pki.renew("relay-r1", 10).unwrap();
    let mode = fs::metadata(&renewed.key_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // No temporary files are left behind.
    let stray: Vec<_> = fs::read_dir(tmp.path().join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn a_second_valid_certificate_is_refused_renew_gives_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), "P").unwrap();
    let id = operator("zhang.san", "6101", Role::Operator);
    let first = pki.issue(&id, &IssueOptions::default()).unwrap();
    let err = pki.issue(&id, &IssueOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("renew operator-zhang.san") && msg.contains(&first.serial),
        "{msg}"
    );

    let old_key = fs::read(&first.key_path).unwrap();
    let renewed = pki.renew("operator-zhang.san", 90).unwrap();
    assert_ne!(renewed.serial, first.serial);
    assert_eq!(renewed.identity, id);
    assert_ne!(
        fs::read(&renewed.key_path).unwrap(),
        old_key,
        "a new key pair"
    );
    let info = CertInfo::from_der(&chain(&renewed.cert_path)[0]).unwrap();
    assert_eq!(info.serial, renewed.serial);
    assert_eq!(info.not_after - info.not_before, 90 * 86_400);
    let list = pki.list();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().all(|e| e.state == CertState::Valid),
        "the old one stays valid"
    );

    assert_eq!(pki.resolve("zhang.san").unwrap(), "operator-zhang.san");
    assert_eq!(
        pki.resolve("operator-zhang.san").unwrap(),
        "operator-zhang.san"
    );
    assert!(matches!(
        pki.renew("nobody", 10).unwrap_err(),
        PkiError::Unknown { .. }
    ));
    // A node and a relay named alike: the bare name is ambiguous.
    pki.issue(&relay("610102"), &IssueOptions::default())
        .unwrap();
    pki.issue(&node("610102"), &IssueOptions::default())
        .unwrap();
    assert!(matches!(
        pki.resolve("610102").unwrap_err(),
        PkiError::Ambiguous { .. }
    ));
}

#[test]
fn revoked_certificates_are_refused_through_the_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), "P").unwrap();
    let a = pki
        .issue(&node("610102"), &IssueOptions::default())
        .unwrap();
    let b = pki
        .issue(&node("610103"), &IssueOptions::default())
        .unwrap();
    verify_client(&pki, "node-610102", true).unwrap();

    let revoked = pki.revoke("node-610102", Some("key compromise")).unwrap();
    assert_eq!(revoked, vec![a.serial.clone()]);
    let err = verify_client(&pki, "node-610102", true).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::Revoked)
        ),
        "{err:?}"
    );
    verify_client(&pki, "node-610103", true).unwrap();
    // Without the CRL the chain alone still verifies: the CRL is what refuses it.
    verify_client(&pki, "node-610102", false).unwrap();

    // The CRL: signed by the CA, the serial and reason in it, a number that increases.
    let der = CertificateRevocationListDer::from_pem_file(pki.crl_path()).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    let serials: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| serial_hex(r.raw_serial()))
        .collect();
    assert_eq!(serials, vec![a.serial.clone()]);
    let reason = crl
        .iter_revoked_certificates()
        .next()
        .unwrap()
        .reason_code();
    assert_eq!(reason.map(|(_, r)| r.0), Some(1), "keyCompromise");
    assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("2".into()));
    let next = crl.next_update().unwrap().timestamp() - crl.last_update().timestamp();
    assert_eq!(next, i64::from(CRL_DAYS) * 86_400);

    let e = pki
        .list()
        .into_iter()
        .find(|e| e.serial == a.serial)
        .unwrap();
    assert_eq!(e.state, CertState::Revoked);
    assert!(e.revoked.is_some());
    assert_eq!(e.reason.as_deref(), Some("key compromise"));

    // Again: a no-op, the CRL untouched.
    let before = fs::read(pki.crl_path()).unwrap();
    assert!(pki.revoke("node-610102", None).unwrap().is_empty());
    assert!(pki.revoke(&a.serial, None).unwrap().is_empty());
    assert_eq!(fs::read(pki.crl_path()).unwrap(), before);
    // Unknown targets are errors.
    let err = pki.revoke("node-610104", None).unwrap_err();
    assert!(matches!(err, PkiError::Unknown { .. }), "{err}");
    // By serial, in upper case with colons.
    let colons = b
        .serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(pki.revoke(&colons, None).unwrap(), vec![b.serial.clone()]);
    assert!(verify_client(&pki, "node-610103", true).is_err());
    // A revoked stem can be issued again; its newest certificate cannot be renewed.
    let err = pki.renew("node-610102", 10).unwrap_err();
    assert!(matches!(err, PkiError::RenewRevoked { .. }), "{err}");
    let c = pki
        .issue(&node("610102"), &IssueOptions::default())
        .unwrap();
    assert_ne!(c.serial, a.serial);
    verify_client(&pki, "node-610102", true).unwrap();
    // Reopened, the CRL number keeps increasing.
    drop(pki);
    let mut pki = Pki::open(tmp.path()).unwrap();
    pki.refresh_crl().unwrap();
    let der = CertificateRevocationListDer::from_pem_file(pki.crl_path()).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("4".into()));
    assert_eq!(crl.iter_revoked_certificates().count(), 2);
}

#[test]
fn expired_certificates_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), "P").unwrap();
    let opts = IssueOptions {
        days: 1,
        valid_from: Some(Timestamp::now() - SignedDuration::from_hours(240)),
        ..IssueOptions::default()
    };
    pki.issue(&relay("old"), &opts).unwrap();
    let err = verify_client(&pki, "relay-old", true).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
    assert_eq!(pki.list()[0].state, CertState::Expired);
    // An expired certificate does not stand in the way of a new one.
    pki.issue(&relay("old"), &IssueOptions::default()).unwrap();
    verify_client(&pki, "relay-old", true).unwrap();
}

#[test]
fn reason_texts_map_to_rfc_codes() {
    assert_eq!(
        reason_code("Key-Compromise"),
        Some(RevocationReason::KeyCompromise)
    );
    assert_eq!(
        reason_code("superseded"),
        Some(RevocationReason::Superseded)
    );
    assert_eq!(
        reason_code("cessation of operation"),
        Some(RevocationReason::CessationOfOperation)
    );
    assert_eq!(reason_code("laptop lost"), None);
    assert_eq!(hex_bytes("1fa0"), Some(vec![0x1f, 0xa0]));
    assert_eq!(hex_bytes("fa0"), Some(vec![0x0f, 0xa0]));
    assert_eq!(hex_bytes("zz"), None);
}

#[test]
fn a_node_knows_when_its_crl_is_due() {
    use crate::security::tls::{CrlFreshness, ServerTls, CRL_DUE_SOON_SECS};
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), "P").unwrap();
    let files = pki.files_for(&node("610102")).unwrap();
    let tls = ServerTls::load(&files).unwrap();
    let now = Timestamp::now().as_second();
    let next = tls
        .crl_next_update()
        .expect("the CA's CRL has a nextUpdate");
    let days = i64::from(CRL_DAYS) * 86_400;
    assert!((next - now - days).abs() < 120, "{next} vs now {now}");
    assert_eq!(tls.crl_freshness(now), CrlFreshness::Fresh);
    assert_eq!(
        tls.crl_freshness(next - CRL_DUE_SOON_SECS + 1),
        CrlFreshness::DueSoon
    );
    assert_eq!(tls.crl_freshness(next), CrlFreshness::Stale);
    assert_eq!(CrlFreshness::at(None, now), CrlFreshness::Undated);
    // No CRL configured: undated.
    let bare = TlsFiles {
        crl: None,
        ..files.clone()
    };
    assert_eq!(ServerTls::load(&bare).unwrap().crl_next_update(), None);
}
