use super::*;

fn code(s: &str) -> Code {
    Code::parse(s).unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.toml");
    (dir, path)
}

#[test]
fn add_verify_passwd_remove_round_trip() {
    let (_dir, path) = setup();
    let node = code("61");
    let wang = add(
        &path,
        node,
        "wang",
        Role::Viewer,
        Some(code("6101")),
        "correct horse",
    )
    .unwrap();
    assert_eq!(
        (wang.name.as_str(), wang.role, wang.division),
        ("wang", Role::Viewer, code("6101"))
    );
    let li = add(
        &path,
        node,
        "li.ming",
        Role::Operator,
        None,
        "battery staple",
    )
    .unwrap();
    assert_eq!(li.division, node);
    assert_eq!(list(&path).unwrap(), vec![wang.clone(), li.clone()]);

    let accounts = Accounts::open(&path, node).unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts.verify("wang", "correct horse"), Some(wang.clone()));
    assert_eq!(accounts.verify("wang", "battery staple"), None);
    assert_eq!(accounts.verify("nobody", "correct horse"), None);
    assert_eq!(accounts.get("li.ming"), Some(li.clone()));

    // An existing name is refused.
    let e = add(&path, node, "wang", Role::Operator, None, "whatever12").unwrap_err();
    assert!(matches!(e, AccountsError::Exists { .. }), "{e}");
    assert!(
        e.to_string().contains("already an account named \"wang\""),
        "{e}"
    );

    // passwd: the old password stops working, the new one works (seen by the running set).
    // The account's credential digest changes with it (sessions compare it).
    let renewed = set_password(&path, "wang", "new password").unwrap();
    assert_eq!(accounts.verify("wang", "correct horse"), None);
    assert_eq!(
        accounts.verify("wang", "new password"),
        Some(renewed.clone())
    );
    assert_eq!(
        (renewed.name.as_str(), renewed.role, renewed.division),
        (wang.name.as_str(), wang.role, wang.division)
    );
    assert_ne!(renewed.credential, wang.credential);

    // remove
    assert_eq!(remove(&path, "wang").unwrap(), renewed);
    assert_eq!(accounts.verify("wang", "new password"), None);
    assert_eq!(accounts.get("wang"), None);
    assert_eq!(accounts.len(), 1);
    assert_eq!(list(&path).unwrap(), vec![li]);

    let e = remove(&path, "wang").unwrap_err();
    assert!(matches!(e, AccountsError::Unknown { .. }), "{e}");
    assert!(e.to_string().contains("no account named \"wang\""), "{e}");
    let e = set_password(&path, "zhao", "long enough").unwrap_err();
    assert!(matches!(e, AccountsError::Unknown { .. }), "{e}");
}

#[test]
fn file_is_argon2id_toml() {
    let (_dir, path) = setup();
    add(
        &path,
        code("610102"),
        "wang",
        Role::Viewer,
        None,
        "correct horse",
    )
    .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("[[user]]"), "{text}");
    assert!(text.contains("name = \"wang\""), "{text}");
    assert!(text.contains("role = \"viewer\""), "{text}");
    assert!(text.contains("division = \"610102\""), "{text}");
    assert!(
        text.contains("hash = \"$argon2id$v=19$m=7168,t=5,p=1$"),
        "{text}"
    );
    assert!(text.contains("created = \"20"), "{text}");
    // Two hashes of the same password differ (random salt).
    add(
        &path,
        code("610102"),
        "li",
        Role::Viewer,
        None,
        "correct horse",
    )
    .unwrap();
    let users = read_all(&path).unwrap();
    assert_ne!(users[0].0.hash, users[1].0.hash);
}

/// A file written before the parameters changed (the crate's defaults, m = 19 MiB, t = 2)
/// still lets its people in: a hash is verified with the parameters it carries.
#[test]
fn hash_with_earlier_parameters_still_verifies() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let (_dir, path) = setup();
    let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
    let old = argon2::Argon2::default()
        .hash_password(b"correct horse", &salt)
        .unwrap()
        .to_string();
    assert!(old.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{old}");
    fs::write(
        &path,
        format!(
            "[[user]]\nname = \"wang\"\nrole = \"viewer\"\ndivision = \"610102\"\n\
             hash = \"{old}\"\n"
        ),
    )
    .unwrap();
    let accounts = Accounts::open(&path, code("61")).unwrap();
    assert_eq!(
        accounts.verify("wang", "correct horse").map(|a| a.name),
        Some("wang".to_string())
    );
    assert_eq!(accounts.verify("wang", "wrong horse"), None);
}

#[test]
fn concurrent_verifications_and_unknown_name_timing() {
    let (_dir, path) = setup();
    let node = code("61");
    add(&path, node, "wang", Role::Viewer, None, "correct horse").unwrap();
    let accounts = std::sync::Arc::new(Accounts::open(&path, node).unwrap());
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let a = accounts.clone();
            std::thread::spawn(move || {
                let pw = if i % 2 == 0 {
                    "correct horse"
                } else {
                    "wrong horse"
                };
                a.verify("wang", pw).is_some() == (i % 2 == 0)
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap());
    }
    // An unknown name costs an argon2 verification too (not a fast "no such name").
    let _ = accounts.verify("nobody", "x"); // the dummy hash is made once
    let time = |name: &str| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                assert!(accounts.verify(name, "wrong horse").is_none());
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let known = time("wang");
    let unknown = time("nobody");
    assert!(unknown * 4 > known, "known {known:?}, unknown {unknown:?}");
}

#[test]
fn missing_file_is_no_accounts() {
    let (_dir, path) = setup();
    let accounts = Accounts::open(&path, code("61")).unwrap();
    assert!(accounts.is_empty());
    assert_eq!(accounts.verify("wang", "whatever12"), None);
    assert_eq!(list(&path).unwrap(), vec![]);
}

#[test]
fn running_set_sees_add_after_open() {
    let (_dir, path) = setup();
    let node = code("61");
    let accounts = Accounts::open(&path, node).unwrap();
    assert!(accounts.is_empty());
    add(&path, node, "wang", Role::Operator, None, "correct horse").unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        accounts.verify("wang", "correct horse").map(|a| a.role),
        Some(Role::Operator)
    );
    // Role change by remove + add is seen too.
    remove(&path, "wang").unwrap();
    add(&path, node, "wang", Role::Viewer, None, "correct horse").unwrap();
    assert_eq!(accounts.get("wang").map(|a| a.role), Some(Role::Viewer));
    // The file removed: no accounts.
    fs::remove_file(&path).unwrap();
    assert!(accounts.is_empty());
}

#[test]
fn bad_reload_keeps_last_good_set() {
    let (_dir, path) = setup();
    let node = code("61");
    add(&path, node, "wang", Role::Viewer, None, "correct horse").unwrap();
    let accounts = Accounts::open(&path, node).unwrap();
    assert_eq!(accounts.len(), 1);
    let good = fs::read_to_string(&path).unwrap();
    fs::write(&path, "[[user]\nname = ").unwrap();
    assert_eq!(
        accounts.verify("wang", "correct horse").map(|a| a.name),
        Some("wang".into())
    );
    // An account outside the node, added by hand, is not taken either.
    fs::write(
        &path,
        good.replace("division = \"61\"", "division = \"62\""),
    )
    .unwrap();
    assert_eq!(accounts.get("wang").map(|a| a.division), Some(node));
    // Fixed again: read again.
    fs::write(
        &path,
        good.replace("division = \"61\"", "division = \"6101\""),
    )
    .unwrap();
    assert_eq!(accounts.get("wang").map(|a| a.division), Some(code("6101")));
}

#[test]
fn malformed_file_names_file_and_line() {
    let (_dir, path) = setup();
    fs::write(&path, "[[user]]\nname = \"wang\"\nrole = viewer\n").unwrap();
    let e = Accounts::open(&path, code("61")).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("line 3"), "{e}");

    let (_dir, path) = setup();
    let hash = hash_password("correct horse").unwrap();
    let text = format!(
        "# accounts\n\n[[user]]\nname = \"wang\"\nrole = \"viewer\"\ndivision = \"61\"\n\
         hash = \"{hash}\"\n\n[[user]]\nname = \"li\"\nrole = \"admin\"\n\
         division = \"61\"\nhash = \"{hash}\"\n"
    );
    fs::write(&path, text).unwrap();
    let e = Accounts::open(&path, code("61")).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.contains("line 9: account \"li\": unknown role \"admin\""),
        "{e}"
    );
    // The CLI refuses to rewrite a malformed file.
    let e = add(
        &path,
        code("61"),
        "zhao",
        Role::Viewer,
        None,
        "correct horse",
    )
    .unwrap_err();
    assert!(matches!(e, AccountsError::Malformed { .. }), "{e}");

    let (_dir, path) = setup();
    fs::write(
        &path,
        "[[user]]\nname = \"wang\"\nrole = \"viewer\"\ndivision = \"61\"\nhash = \"plain\"\n",
    )
    .unwrap();
    let e = list(&path).unwrap_err().to_string();
    assert!(
        e.contains("line 1: account \"wang\": hash is not a PHC"),
        "{e}"
    );

    let (_dir, path) = setup();
    fs::write(&path, "[[user]]\nname = \"wang\"\nrole = \"viewer\"\ndivision = \"61\"\nhash = \"x\"\npasword = \"x\"\n").unwrap();
    let e = list(&path).unwrap_err().to_string();
    assert!(e.contains("pasword"), "{e}");
}

#[test]
fn duplicate_names_refused() {
    let (_dir, path) = setup();
    add(
        &path,
        code("61"),
        "wang",
        Role::Viewer,
        None,
        "correct horse",
    )
    .unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let body = text.strip_prefix(HEADER).unwrap();
    fs::write(&path, format!("{text}\n{body}")).unwrap();
    let e = list(&path).unwrap_err().to_string();
    assert!(e.contains("appears a second time (first at line 4)"), "{e}");
}

#[test]
fn name_and_password_rules() {
    let (_dir, path) = setup();
    let node = code("61");
    for bad in ["", "wang ming", "王", "a/b", &"x".repeat(65)] {
        let e = add(&path, node, bad, Role::Viewer, None, "correct horse").unwrap_err();
        assert!(matches!(e, AccountsError::BadName(_)), "{bad:?}: {e}");
        assert!(e.to_string().contains("1-64 ASCII letters"), "{e}");
    }
    for good in ["a", "Wang.Ming_2-x", &"x".repeat(64)] {
        add(&path, node, good, Role::Viewer, None, "correct horse").unwrap();
    }
    let e = add(&path, node, "short", Role::Viewer, None, "1234567").unwrap_err();
    assert!(matches!(e, AccountsError::BadPassword { chars: 7 }), "{e}");
    assert!(e.to_string().contains("at least 8"), "{e}");
    // Characters, not bytes: 8 Chinese characters are enough, 7 are not (21 bytes).
    add(&path, node, "zh", Role::Viewer, None, "防返贫动态监测帮").unwrap();
    assert!(add(&path, node, "zh2", Role::Viewer, None, "防返贫动态监测").is_err());
    let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
    assert!(matches!(
        set_password(&path, "a", &long),
        Err(AccountsError::BadPassword { .. })
    ));
    let accounts = Accounts::open(&path, node).unwrap();
    assert!(accounts.verify("zh", "防返贫动态监测帮").is_some());
}

#[test]
fn division_outside_node_refused() {
    let (_dir, path) = setup();
    let e = add(
        &path,
        code("6101"),
        "wang",
        Role::Viewer,
        Some(code("6102")),
        "correct horse",
    )
    .unwrap_err();
    assert!(matches!(e, AccountsError::DivisionOutside { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("division 6102 is not within this node's division 6101"),
        "{e}"
    );
    let e = add(
        &path,
        code("6101"),
        "wang",
        Role::Viewer,
        Some(code("61")),
        "correct horse",
    )
    .unwrap_err();
    assert!(matches!(e, AccountsError::DivisionOutside { .. }), "{e}");
    add(
        &path,
        code("6101"),
        "wang",
        Role::Viewer,
        Some(code("610102")),
        "correct horse",
    )
    .unwrap();

    // At open, an account outside the node refuses the whole file.
    let e = Accounts::open(&path, code("6102")).unwrap_err();
    assert!(
        matches!(e, AccountsError::OutsideNode { line: 4, .. }),
        "{e}"
    );
    let e = e.to_string();
    assert!(
        e.contains("account \"wang\" works in division 610102"),
        "{e}"
    );
    assert!(e.contains("bottomline user remove wang"), "{e}");
    Accounts::open(&path, code("61")).unwrap();
    Accounts::open(&path, Code::ROOT).unwrap();
}

#[test]
fn file_mode_is_0600() {
    let (dir, path) = setup();
    add(
        &path,
        code("61"),
        "wang",
        Role::Viewer,
        None,
        "correct horse",
    )
    .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    // A file made readable by hand is written back 0600.
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    set_password(&path, "wang", "another one").unwrap();
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    // No temporary file left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("accounts.toml")]);
}

#[test]
fn add_creates_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("accounts.toml");
    add(
        &path,
        code("61"),
        "wang",
        Role::Viewer,
        None,
        "correct horse",
    )
    .unwrap();
    assert_eq!(list(&path).unwrap().len(), 1);
}

#[test]
fn empty_file_after_last_remove_reads_back() {
    let (_dir, path) = setup();
    add(
        &path,
        code("61"),
        "wang",
        Role::Viewer,
        None,
        "correct horse",
    )
    .unwrap();
    remove(&path, "wang").unwrap();
    assert_eq!(list(&path).unwrap(), vec![]);
    assert!(Accounts::open(&path, code("61")).unwrap().is_empty());
}
