//! The deployment files of `deploy/` (issue #19): every sample and compose config parses as a
//! node's or the relay's config (here, because this crate sees both config types); every key
//! of both types is documented in the samples; the compose file agrees with its configs and
//! with `compose/init.sh`; the systemd units pass `systemd-analyze verify` (copies whose
//! `ExecStart` names a stub script, since /usr/local/bin/bottomline is not installed here),
//! and the sysusers and tmpfiles entries apply to an empty root; the alerting rules pass
//! `promtool check rules` and name only metrics a node registers. A part whose tool is
//! missing (python3 with PyYAML, systemd-analyze, systemd-sysusers, promtool) prints
//! `SKIP: <reason>`.

/// Print why a check is skipped where CI's log shows it: straight to stderr, past the test
/// harness's capture (which hides what a passing test prints).
mod compose;

macro_rules! skip {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use bottomline::security::tls::TlsFiles;
use compose::{compose_yaml, deploy, mounts, named, read, root, strings};

/// The node samples (a county's is the complete reference).
const NODE_SAMPLES: [&str; 4] = ["province", "city", "county", "county-via-relay"];

/// A loaded config, node or relay: what the compose checks need of it.
struct Loaded {
    relay: bool,
    listen: Option<SocketAddr>,
    parent: Option<String>,
    data_dir: PathBuf,
    tls: Option<TlsFiles>,
    http_listen: Option<SocketAddr>,
}

fn load_node(path: &Path) -> Loaded {
    let c = bottomline::config::Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    Loaded {
        relay: false,
        listen: c.listen,
        parent: c.parent,
        data_dir: c.data_dir,
        tls: c.tls,
        http_listen: c.http_listen,
    }
}

fn load_relay(path: &Path) -> Loaded {
    let c = bottomline_relay::Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    Loaded {
        relay: true,
        listen: Some(c.listen),
        parent: Some(c.parent),
        data_dir: c.data_dir,
        tls: Some(c.tls),
        http_listen: None,
    }
}

/// deploy/compose/*.toml: `relay-*.toml` is a relay's, every other file a node's.
fn compose_configs() -> BTreeMap<String, Loaded> {
    let dir = deploy().join("compose");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let c = if name.starts_with("relay") {
                load_relay(&p)
            } else {
                load_node(&p)
            };
            out.insert(name, c);
        }
    }
    out
}

#[test]
fn the_samples_and_the_compose_configs_parse() {
    for f in NODE_SAMPLES {
        load_node(&deploy().join(format!("{f}.toml")));
    }
    let relay = load_relay(&deploy().join("relay.toml"));
    // The systemd units can write under /var/lib/bottomline only.
    for f in NODE_SAMPLES {
        let c = load_node(&deploy().join(format!("{f}.toml")));
        assert!(c.data_dir.starts_with("/var/lib/bottomline"), "{f}");
    }
    assert!(relay.data_dir.starts_with("/var/lib/bottomline"));
    let compose = compose_configs();
    assert!(compose.len() >= 5, "{:?}", compose.keys());
    assert_eq!(compose.values().filter(|c| c.relay).count(), 1);
}

/// The `pub NAME:` fields of `pub struct NAME {` in `src` (up to its closing `}` line).
fn fields(src: &str, strukt: &str) -> Vec<String> {
    let start = src
        .find(&format!("pub struct {strukt} {{"))
        .unwrap_or_else(|| panic!("no struct {strukt}"));
    let mut out = Vec::new();
    for line in src[start..].lines().skip(1) {
        if line.starts_with('}') {
            break;
        }
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("pub ") {
            if let Some((name, _)) = rest.split_once(':') {
                out.push(name.trim().to_string());
            }
        }
    }
    assert!(!out.is_empty(), "no fields in {strukt}");
    out
}

/// Keys set or shown commented out (`key = …` or `# key = …`) in a sample.
fn documented(sample: &str) -> BTreeSet<String> {
    sample
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix('#').map_or(l, str::trim_start);
            let (k, _) = l.split_once('=')?;
            let k = k.trim();
            (!k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .then(|| k.to_string())
        })
        .collect()
}

#[test]
fn every_config_key_is_documented_in_the_samples() {
    let node_src = read(&root().join("node/src/config.rs"));
    let tls_src = read(&root().join("node/src/security/tls.rs"));
    let relay_src = read(&root().join("relay/src/config.rs"));
    let tables = ["sync", "tls"];
    let node_keys: Vec<String> = fields(&node_src, "Config")
        .into_iter()
        .filter(|k| !tables.contains(&k.as_str()))
        .chain(fields(&node_src, "SyncConfig"))
        .collect();
    let tls_keys = fields(&tls_src, "TlsFiles");
    let relay_keys: Vec<String> = fields(&relay_src, "Config")
        .into_iter()
        .filter(|k| k != "tls")
        .collect();

    let county = read(&deploy().join("county.toml"));
    let county_keys = documented(&county);
    for k in node_keys.iter().chain(&tls_keys) {
        assert!(
            county_keys.contains(k),
            "node config key {k} is not documented in deploy/county.toml"
        );
    }
    for f in NODE_SAMPLES {
        let text = read(&deploy().join(format!("{f}.toml")));
        let keys = documented(&text);
        for k in &tls_keys {
            assert!(keys.contains(k), "[tls] key {k} missing in deploy/{f}.toml");
        }
        assert!(
            text.contains("\n[tls]\n") && text.contains("\n[sync]\n"),
            "{f}"
        );
    }
    let relay_doc = documented(&read(&deploy().join("relay.toml")));
    for k in relay_keys.iter().chain(&tls_keys) {
        assert!(
            relay_doc.contains(k),
            "relay config key {k} is not documented in deploy/relay.toml"
        );
    }
}

#[test]
fn the_compose_file_agrees_with_its_configs() {
    let doc = match compose_yaml() {
        Ok(doc) => doc,
        Err(why) => {
            skip!("SKIP: {why}");
            return;
        }
    };
    let init_sh = read(&deploy().join("compose/init.sh"));
    let containerfile = read(&deploy().join("Containerfile"));
    let configs = compose_configs();
    let services = doc["services"].as_object().unwrap();
    let declared: BTreeSet<&String> = doc["volumes"].as_object().unwrap().keys().collect();

    // The init service runs the mounted script.
    let init = &services["init"];
    let script = mounts(init)
        .into_iter()
        .find(|(s, _, _)| s == "./compose/init.sh")
        .expect("init mounts ./compose/init.sh");
    assert!(strings(&init["entrypoint"]).contains(&script.1));

    // Service name → (config, networks, config file name).
    let mut nodes: BTreeMap<&str, (&Loaded, Vec<String>, String)> = BTreeMap::new();
    for (name, svc) in services {
        let ms = mounts(svc);
        for (s, _, _) in &ms {
            if named(s) {
                assert!(declared.contains(s), "{name}: volume {s} is not declared");
            }
        }
        if name == "init" {
            continue;
        }
        let (file, target, ro) = ms
            .iter()
            .find(|(s, _, _)| s.starts_with("./compose/") && s.ends_with(".toml"))
            .unwrap_or_else(|| panic!("{name} mounts no ./compose/*.toml"));
        assert!(ro, "{name}: config mounted read-write");
        let file = file.trim_start_matches("./compose/").to_string();
        let c = configs
            .get(&file)
            .unwrap_or_else(|| panic!("{name}: no deploy/compose/{file}"));
        let entrypoint = strings(&svc["entrypoint"]);
        let command = strings(&svc["command"]);
        if c.relay {
            assert_eq!(entrypoint, ["bottomline-relay"], "{name}");
            assert_eq!(command, ["serve", "--config", target.as_str()], "{name}");
        } else {
            // The image's ENTRYPOINT bottomline, CMD serve, and ENV BOTTOMLINE_CONFIG.
            assert!(entrypoint.is_empty() && command.is_empty(), "{name}");
            assert_eq!(target, "/etc/bottomline/bottomline.toml", "{name}");
            assert!(containerfile.contains(&format!("ENV BOTTOMLINE_CONFIG={target}")));
        }
        // The store in a named volume mounted read-write, the certificates in one read-only.
        assert!(
            ms.iter()
                .any(|(s, t, ro)| named(s) && !ro && c.data_dir.starts_with(t)),
            "{name}: data_dir {} is in no read-write named volume",
            c.data_dir.display()
        );
        let tls = c.tls.as_ref().unwrap_or_else(|| panic!("{name}: no [tls]"));
        let certs = ms
            .iter()
            .find(|(s, t, _)| named(s) && tls.cert.starts_with(t))
            .unwrap_or_else(|| panic!("{name}: the certificate is in no volume"));
        assert!(certs.2, "{name}: certificates mounted read-write");
        for f in [&tls.ca, &tls.key, tls.crl.as_ref().expect("crl")] {
            assert!(f.starts_with(&certs.1), "{name}: {}", f.display());
        }
        let stem = tls.cert.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            init_sh.contains(&format!("issue {stem} ")),
            "{name}: init.sh issues no {stem}"
        );
        assert!(tls.key.ends_with(format!("{stem}.key")), "{name}");
        // Published ports on the host's loopback only, to this service's HTTP listener.
        for p in strings(&svc["ports"]) {
            assert!(p.starts_with("127.0.0.1:"), "{name}: port {p}");
            let inner: u16 = p.rsplit(':').next().unwrap().parse().unwrap();
            let http = c.http_listen.expect("published port without http_listen");
            assert_eq!(http.port(), inner, "{name}");
            assert!(http.ip().is_unspecified(), "{name}: {http} unreachable");
        }
        nodes.insert(name, (c, strings(&svc["networks"]), file));
    }

    // Every parent is a service on a shared network, listening on every interface at the
    // port dialled, with a certificate naming the host dialled.
    let mut tops = 0;
    for (name, (c, nets, _)) in &nodes {
        let Some(parent) = &c.parent else {
            tops += 1;
            continue;
        };
        let hostport = parent.trim_start_matches("https://");
        let (host, port) = hostport.rsplit_once(':').unwrap();
        let port: u16 = port.parse().unwrap();
        let (p, pnets, pfile) = nodes
            .get(host)
            .unwrap_or_else(|| panic!("{name}: parent {host} is no service"));
        assert!(
            nets.iter().any(|n| pnets.contains(n)),
            "{name} and its parent {host} share no network"
        );
        let listen = p
            .listen
            .unwrap_or_else(|| panic!("{pfile} does not listen"));
        assert_eq!(listen.port(), port, "{name} dials {parent}");
        assert!(listen.ip().is_unspecified(), "{pfile}: {listen}");
        let pstem = p.tls.as_ref().unwrap().cert.file_stem().unwrap();
        let issue = init_sh
            .lines()
            .find(|l| l.contains(&format!("issue {} ", pstem.to_string_lossy())))
            .unwrap();
        assert!(issue.contains(&format!("--dns {host} ")), "{issue}");
    }
    assert_eq!(tops, 1, "one province");
}

fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn the_systemd_units_verify() {
    let units = deploy().join("systemd");
    let dir = tempfile::tempdir().unwrap();
    // systemd-analyze verify wants ExecStart's program to exist: a stub stands in for the
    // installed /usr/local/bin/bottomline and bottomline-relay.
    let stub = dir.path().join("stub-bin");
    std::fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut instances = Vec::new();
    for (unit, instance, bin) in [
        (
            "bottomline@.service",
            "bottomline@province.service",
            "bottomline",
        ),
        (
            "bottomline-relay@.service",
            "bottomline-relay@r6101.service",
            "bottomline-relay",
        ),
    ] {
        let text = read(&units.join(unit));
        for line in [
            format!("ExecStart=/usr/local/bin/{bin} serve --config /etc/bottomline/%i.toml"),
            "User=bottomline".into(),
            "ProtectSystem=strict".into(),
            "ReadWritePaths=/var/lib/bottomline".into(),
            "ProtectHome=yes".into(),
            "PrivateTmp=yes".into(),
            "NoNewPrivileges=yes".into(),
            "CapabilityBoundingSet=".into(),
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX".into(),
            "SystemCallFilter=@system-service".into(),
            "Restart=on-failure".into(),
            "LimitNOFILE=65536".into(),
            "KillSignal=SIGTERM".into(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{unit} lacks the line {line}"
            );
        }
        assert!(text.lines().any(|l| l.starts_with("TimeoutStopSec=")));
        assert!(text.lines().any(|l| l.starts_with("RestartSec=")));
        let copy = text.replace(
            &format!("ExecStart=/usr/local/bin/{bin} "),
            &format!("ExecStart={} ", stub.display()),
        );
        std::fs::write(dir.path().join(unit), copy).unwrap();
        instances.push(dir.path().join(instance));
    }

    match Command::new("systemd-analyze")
        .arg("verify")
        .args(&instances)
        .output()
    {
        Err(e) => skip!("SKIP: systemd-analyze verify: {e} (apt-get install systemd)"),
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            println!("systemd-analyze verify: {:?}, output: {text:?}", out.status);
            assert!(out.status.success(), "{text}");
            // Any remark on our units (an unknown key, a bad value) fails; lines about the
            // host's own units do not.
            let ours: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("bottomline") || l.contains("stub-bin"))
                .collect();
            assert!(ours.is_empty(), "{ours:#?}");
        }
    }

    // The user and the directories, applied to an empty root (needs root to chown).
    if euid() != Some(0) {
        skip!("SKIP: systemd-sysusers and systemd-tmpfiles --root need root");
        return;
    }
    let sysroot = dir.path().join("root");
    std::fs::create_dir_all(sysroot.join("etc")).unwrap();
    let sysusers = Command::new("systemd-sysusers")
        .arg(format!("--root={}", sysroot.display()))
        .arg(units.join("bottomline.sysusers"))
        .output();
    let Ok(sysusers) = sysusers else {
        skip!("SKIP: systemd-sysusers is not installed");
        return;
    };
    assert!(
        sysusers.status.success(),
        "{}",
        String::from_utf8_lossy(&sysusers.stderr)
    );
    assert!(read(&sysroot.join("etc/passwd")).starts_with("bottomline:"));
    let tmpfiles = Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", sysroot.display()))
        .arg("--create")
        .arg(units.join("bottomline.tmpfiles"))
        .output()
        .unwrap();
    assert!(
        tmpfiles.status.success(),
        "{}",
        String::from_utf8_lossy(&tmpfiles.stderr)
    );
    for d in ["etc/bottomline/pki/certs", "var/lib/bottomline"] {
        assert!(sysroot.join(d).is_dir(), "{d}");
    }
}

#[test]
fn the_alerting_rules_check() {
    let rules = deploy().join("prometheus/bottomline-alerts.yml");
    let out = match Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            skip!("SKIP: promtool check rules: {e} (apt-get install prometheus)");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every metric the rules name is one a node registers (its name without the prefix and
    // the suffixes the encoder adds, as a string in the registering code).
    let sources = read(&root().join("node/src/http/metrics.rs"))
        + &read(&root().join("node/src/ledger/metrics.rs"));
    for name in read(&rules)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("bottomline_"))
        .collect::<BTreeSet<_>>()
    {
        let mut bare = name.trim_start_matches("bottomline_");
        let mut candidates = vec![bare];
        for suffix in ["_bucket", "_total", "_seconds"] {
            bare = bare.trim_end_matches(suffix);
            candidates.push(bare);
        }
        assert!(
            candidates
                .iter()
                .any(|c| sources.contains(&format!("\"{c}\""))),
            "{name}: no metric {candidates:?} is registered"
        );
    }
}
