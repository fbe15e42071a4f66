use super::*;
use crate::security::pki::Pki;

fn pki(dir: &std::path::Path, name: &str) -> Pki {
    Pki::open_or_init(&dir.join(name), name).unwrap()
}

fn node(code: &str) -> Identity {
    Identity::Node {
        division: Code::parse(code).unwrap(),
    }
}

#[test]
fn a_seal_verifies_every_event_alone_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pki(dir.path(), "ca");
    let key = NodeKey::load(&p.files_for(&node("610102")).unwrap()).unwrap();
    let verifier = Verifier::load(&p.files_for(&node("61")).unwrap()).unwrap();
    let signer = verifier.signer(key.certificate()).unwrap();
    assert_eq!(signer.node_division(), Some(Code::parse("610102").unwrap()));
    for n in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100] {
        let bodies: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("event {i} of {n}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let seals = seal(&key, &refs);
        assert_eq!(seals.len(), n);
        let root = seals[0].root(&bodies[0]).unwrap();
        for (b, s) in bodies.iter().zip(&seals) {
            assert_eq!(s.signer, key.fingerprint());
            assert_eq!(s.root(b), Some(root), "n = {n}, index {}", s.index);
            verifier.verify_root(&signer, &root, &s.signature).unwrap();
            // A changed body leads to another root, which the signature does not cover.
            let mut bad = b.clone();
            bad[0] ^= 1;
            let other = s.root(&bad).unwrap();
            assert_ne!(other, root);
            assert!(signer.verify(EVENTS_CONTEXT, &other, &s.signature).is_err());
        }
        if n > 1 {
            // Another event's path, a wrong index or a truncated path do not lead to the root.
            let mut s = seals[0].clone();
            s.index = 1;
            assert_ne!(s.root(&bodies[0]), Some(root));
            let mut s = seals[n - 1].clone();
            s.path.pop();
            assert_ne!(s.root(&bodies[n - 1]), Some(root));
        }
        let mut s = seals[0].clone();
        s.index = s.count;
        assert_eq!(s.root(&bodies[0]), None);
    }
}

#[test]
fn signatures_bind_their_context_and_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pki(dir.path(), "ca");
    let a = NodeKey::load(&p.files_for(&node("610102")).unwrap()).unwrap();
    let b = NodeKey::load(&p.files_for(&node("610103")).unwrap()).unwrap();
    let v = Verifier::load(&p.files_for(&node("61")).unwrap()).unwrap();
    let (sa, sb) = (
        v.signer(a.certificate()).unwrap(),
        v.signer(b.certificate()).unwrap(),
    );
    let sig = a.sign(ENVELOPE_CONTEXT, b"hello");
    sa.verify(ENVELOPE_CONTEXT, b"hello", &sig).unwrap();
    assert!(sa.verify(EVENTS_CONTEXT, b"hello", &sig).is_err());
    assert!(sa.verify(ENVELOPE_CONTEXT, b"hellO", &sig).is_err());
    let err = sb.verify(ENVELOPE_CONTEXT, b"hello", &sig).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn a_certificate_of_another_ca_is_no_signer() {
    let dir = tempfile::tempdir().unwrap();
    let mut ours = pki(dir.path(), "ours");
    let mut theirs = pki(dir.path(), "theirs");
    let v = Verifier::load(&ours.files_for(&node("61")).unwrap()).unwrap();
    let forged = NodeKey::load(&theirs.files_for(&node("610102")).unwrap()).unwrap();
    let err = v.signer(forged.certificate()).unwrap_err();
    assert!(err.contains("not one of the provincial CA"), "{err}");
    assert!(v.signer(b"not a certificate").is_err());
}

#[test]
fn a_key_must_belong_to_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pki(dir.path(), "ca");
    let mut files = p.files_for(&node("610102")).unwrap();
    files.key = p.files_for(&node("610103")).unwrap().key;
    let err = NodeKey::load(&files).unwrap_err().to_string();
    assert!(err.contains("does not belong to the certificate"), "{err}");
}
