//! The tree of deploy/compose.yaml, run as the file declares it but without a container
//! runtime (issue #19 point 1: the VM that runs CI has Docker's and Podman's clients but no
//! OCI runtime that can start a container). Each service gets what its container would:
//! its own network namespace on the compose networks (bridges; `county-intranet` joins
//! only the relay and county 610103), a hosts file naming the services it shares a network
//! with, its own mount namespace with the image's root read-only (`read_only: true`), its
//! volumes bound at their targets (named volumes owned by the image's user, `:ro` read-only),
//! a tmpfs at /tmp, the image's user (uid 10001 from deploy/Containerfile) with no
//! capabilities and no new privileges, the nofile limit, and the image's ENV, WORKDIR,
//! ENTRYPOINT and CMD as the service overrides them. The binaries under test stand at
//! /usr/local/bin, where the image has them.
//!
//! What runs: `init` (deploy/compose/init.sh: the CA and certificates with `bottomline pki`,
//! the dashboard account) to completion, then every other service. A day of each county's
//! records goes into its inbox the way deploy/README.md shows (`bottomline gen` inside the
//! container, then `mv` into the inbox); the test waits until the province's figures for
//! each county equal the county's own (610103's travel through the relay), reads `status` at
//! each node and the relay as `docker compose exec` would, and stops every service with its
//! stop signal, each of which must exit cleanly. Where the machine cannot (not root, no
//! iproute2, util-linux or overlayfs, no python3 with PyYAML) it prints SKIP with the reason.

mod compose;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use compose::{compose_yaml, deploy, mounts, named, read, strings};
use serde_json::Value;

macro_rules! skip {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Docker's PATH for a Debian image that sets none.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The compose networks' subnets: 10.213.<network index>.0/24.
const SUBNET: &str = "10.213";
/// Between two looks of [`eventually`] (which fails at its deadline), as the other tests'
/// `common::eventually` polls.
const POLL: Duration = Duration::from_millis(250);
/// How long the tree may take to start, sync, and stop.
const DEADLINE: Duration = Duration::from_secs(180);

/// Run a command as root in the test's namespaces; its stderr (or stdout) as the error.
fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    ok(args, out)
}

fn ok(args: &[&str], out: Output) -> Result<String, String> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err = if err.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        err
    };
    Err(format!(
        "`{}`: {} ({})",
        args.join(" "),
        err.trim(),
        out.status
    ))
}

/// What the image gives every container (deploy/Containerfile's last stage).
struct Image {
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    workdir: String,
    uid: u32,
    gid: u32,
}

/// The Containerfile's instructions, continuation lines joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => cur.push_str(head),
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// A number following `flag ` in `text`.
fn number_after(text: &str, flag: &str) -> u32 {
    let at = text.find(flag).unwrap_or_else(|| panic!("no {flag}")) + flag.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{flag} without a number"))
}

fn image() -> Image {
    let text = read(&deploy().join("Containerfile"));
    let all = instructions(&text);
    let last = all.iter().rposition(|i| i.starts_with("FROM ")).unwrap();
    let mut img = Image {
        env: Vec::new(),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        workdir: "/".into(),
        uid: 0,
        gid: 0,
    };
    let json = |s: &str| -> Vec<String> { serde_json::from_str(s.trim()).expect("exec form") };
    for i in &all[last..] {
        let (op, rest) = i.split_once(' ').unwrap_or((i, ""));
        match op {
            "ENV" => {
                let (k, v) = rest.split_once('=').expect("ENV K=V");
                img.env.push((k.trim().into(), v.trim().into()));
            }
            "ENTRYPOINT" => img.entrypoint = json(rest),
            "CMD" => img.cmd = json(rest),
            "WORKDIR" => img.workdir = rest.trim().into(),
            "USER" => {
                // The user the image's useradd made, by the numbers it gave.
                assert_eq!(rest.trim(), "bottomline:bottomline", "USER");
                img.uid = number_after(&text, "--uid");
                img.gid = number_after(&text, "--gid");
            }
            _ => {}
        }
    }
    assert!(img.uid != 0, "the image runs as root");
    img
}

/// `${NAME:-default}` (compose's interpolation, from the test's environment), or the text.
fn interpolate(v: &str) -> String {
    match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(inner) => {
            let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
            std::env::var(name).unwrap_or_else(|_| default.into())
        }
        None => {
            assert!(!v.contains("${"), "interpolation {v}");
            v.into()
        }
    }
}

/// One service as its container would run.
struct Service {
    name: String,
    hostname: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// (source on this machine, target, read-only)
    mounts: Vec<(PathBuf, String, bool)>,
    tmpfs: Vec<String>,
    nofile: Option<u64>,
    read_only: bool,
    cap_drop_all: bool,
    no_new_privileges: bool,
    networks: Vec<String>,
    stop_signal: String,
    stop_grace: Duration,
}

fn seconds(v: &Value) -> Duration {
    let s = v.as_str().unwrap_or("10s");
    let n: u64 = s
        .trim_end_matches('s')
        .parse()
        .expect("stop_grace_period in seconds");
    Duration::from_secs(n)
}

fn service(name: &str, svc: &Value, img: &Image, volumes: &Path) -> Service {
    let entry = svc.get("entrypoint").map(strings);
    let command = svc.get("command").map(strings);
    let mut argv = entry.clone().unwrap_or_else(|| img.entrypoint.clone());
    // An entrypoint set by the service drops the image's CMD (compose's rule).
    argv.extend(command.unwrap_or_else(|| match entry {
        Some(_) => Vec::new(),
        None => img.cmd.clone(),
    }));
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), PATH.into());
    for (k, v) in &img.env {
        env.insert(k.clone(), v.clone());
    }
    if let Some(e) = svc["environment"].as_object() {
        for (k, v) in e {
            env.insert(k.clone(), interpolate(v.as_str().unwrap_or_default()));
        }
    }
    let hostname = svc["hostname"].as_str().unwrap_or(name).to_string();
    env.insert("HOSTNAME".into(), hostname.clone());
    let mounts = mounts(svc)
        .into_iter()
        .map(|(src, target, ro)| {
            let src = if named(&src) {
                volumes.join(&src)
            } else {
                deploy().join(&src)
            };
            (src, target, ro)
        })
        .collect();
    Service {
        name: name.into(),
        hostname,
        argv,
        env: env.into_iter().collect(),
        mounts,
        tmpfs: strings(&svc["tmpfs"]),
        nofile: svc["ulimits"]["nofile"]["hard"].as_u64(),
        read_only: svc["read_only"].as_bool().unwrap_or(false),
        cap_drop_all: strings(&svc["cap_drop"]) == ["ALL"],
        no_new_privileges: strings(&svc["security_opt"]).contains(&"no-new-privileges:true".into()),
        networks: strings(&svc["networks"]),
        stop_signal: svc["stop_signal"].as_str().unwrap_or("SIGTERM").into(),
        stop_grace: seconds(&svc["stop_grace_period"]),
    }
}

/// Single-quote for sh.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The namespaces, bridges and directories of one run, removed on drop (processes killed).
struct Sandbox {
    tag: String,
    dir: tempfile::TempDir,
    img: Image,
    services: Vec<Service>,
    /// network name → index (its subnet and bridge)
    networks: BTreeMap<String, usize>,
    bridges: Vec<String>,
    running: BTreeMap<String, Child>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for s in &self.services {
                let log = self.log(&s.name);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!("--- {} (last 40 lines)\n{}", s.name, tail.join("\n"));
            }
        }
        for c in self.running.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for k in 0..self.services.len() {
            let _ = run(&["ip", "netns", "del", &self.netns(k)]);
        }
        for b in &self.bridges {
            let _ = run(&["ip", "link", "del", b]);
        }
    }
}

impl Sandbox {
    fn netns(&self, k: usize) -> String {
        format!("{}s{k}", self.tag)
    }

    fn index(&self, name: &str) -> usize {
        self.services.iter().position(|s| s.name == name).unwrap()
    }

    fn ip(&self, k: usize, net: &str) -> String {
        format!("{SUBNET}.{}.{}", self.networks[net], k + 2)
    }

    /// The bridges, each service's namespace with a veth on each of its networks, and its
    /// hosts file: every service it shares a network with, by service name and hostname.
    fn network(&mut self) -> Result<(), String> {
        for i in self.networks.values().copied().collect::<Vec<_>>() {
            let br = format!("{}b{i}", self.tag);
            run(&["ip", "link", "add", &br, "type", "bridge"])?;
            self.bridges.push(br.clone());
            // Bridged traffic not through the host's iptables (a Docker host's FORWARD drop).
            let _ = run(&[
                "ip",
                "link",
                "set",
                &br,
                "type",
                "bridge",
                "nf_call_iptables",
                "0",
            ]);
            run(&["ip", "link", "set", &br, "up"])?;
        }
        for k in 0..self.services.len() {
            let ns = self.netns(k);
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            for (e, net) in self.services[k].networks.clone().iter().enumerate() {
                let i = self.networks[net];
                let host = format!("{}s{k}n{i}", self.tag);
                let peer = format!("{}t{k}n{i}", self.tag);
                run(&[
                    "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
                ])?;
                run(&["ip", "link", "set", &peer, "netns", &ns])?;
                let eth = format!("eth{e}");
                run(&["ip", "-n", &ns, "link", "set", &peer, "name", &eth])?;
                let addr = format!("{}/24", self.ip(k, net));
                run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", &eth])?;
                run(&["ip", "-n", &ns, "link", "set", &eth, "up"])?;
                run(&[
                    "ip",
                    "link",
                    "set",
                    &host,
                    "master",
                    &format!("{}b{i}", self.tag),
                ])?;
                run(&["ip", "link", "set", &host, "up"])?;
            }
        }
        Ok(())
    }

    /// The hosts file of service `k`.
    fn hosts(&self, k: usize) -> String {
        let me = &self.services[k];
        let mut out = String::from("127.0.0.1\tlocalhost\n");
        for (j, other) in self.services.iter().enumerate() {
            if let Some(net) = other.networks.iter().find(|n| me.networks.contains(n)) {
                let names: BTreeSet<&str> = [other.name.as_str(), other.hostname.as_str()].into();
                let names: Vec<&str> = names.into_iter().collect();
                out.push_str(&format!("{}\t{}\n", self.ip(j, net), names.join(" ")));
            }
        }
        out
    }

    /// The root's script (run in the service's new mount and UTS namespaces) that makes its
    /// file system, then execs its command as the image's user.
    fn container_script(&self, k: usize) -> Result<String, String> {
        let s = &self.services[k];
        let root = self.dir.path().join("roots").join(&s.name);
        // Overlays over the top directories that mount points are made in (the volumes',
        // the workdir, /usr/local/bin for the binaries, /etc for the hosts file), so that
        // nothing is created on this machine's file system.
        let top = |p: &str| {
            p.trim_start_matches('/')
                .split('/')
                .next()
                .unwrap()
                .to_string()
        };
        let mut tops: BTreeSet<String> = ["etc".to_string(), "usr".into(), top(&self.img.workdir)]
            .into_iter()
            .chain(s.mounts.iter().map(|(_, t, _)| top(t)))
            .collect();
        tops.retain(|t| !t.is_empty());
        for t in &tops {
            assert!(
                !self.dir.path().starts_with(format!("/{t}")),
                "the sandbox {} is under /{t}, which the services overlay: \
                 set CARGO_TARGET_DIR elsewhere",
                self.dir.path().display()
            );
        }
        let mut sh = String::from("set -eu\n");
        sh.push_str(&format!("hostname {}\n", q(&s.hostname)));
        for top in &tops {
            let (u, w) = (root.join(top).join("u"), root.join(top).join("w"));
            std::fs::create_dir_all(&u).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&w).map_err(|e| e.to_string())?;
            if top == "etc" {
                std::fs::write(u.join("hosts"), self.hosts(k)).map_err(|e| e.to_string())?;
                std::fs::write(u.join("hostname"), format!("{}\n", s.hostname))
                    .map_err(|e| e.to_string())?;
            }
            sh.push_str(&format!(
                "mount -t overlay overlay -o lowerdir=/{top},upperdir={},workdir={} /{top}\n",
                q(&u.to_string_lossy()),
                q(&w.to_string_lossy())
            ));
        }
        let bin = self.dir.path().join("bin");
        let mut binds = vec![(bin, "/usr/local/bin".to_string(), true)];
        binds.extend(s.mounts.iter().cloned());
        for (src, target, _) in &binds {
            if src.is_dir() {
                sh.push_str(&format!("mkdir -p {}\n", q(target)));
            } else {
                sh.push_str(&format!(
                    "mkdir -p \"$(dirname {t})\"; touch {t}\n",
                    t = q(target)
                ));
            }
        }
        for t in &s.tmpfs {
            sh.push_str(&format!("mkdir -p {}\n", q(t)));
        }
        sh.push_str(&format!("mkdir -p {}\n", q(&self.img.workdir)));
        for (src, target, ro) in &binds {
            sh.push_str(&format!(
                "mount --bind {} {}\n",
                q(&src.to_string_lossy()),
                q(target)
            ));
            if *ro {
                sh.push_str(&format!("mount -o remount,bind,ro {}\n", q(target)));
            }
        }
        // The root read-only after the binds (a bind takes its source mount's flags).
        if s.read_only {
            sh.push_str("mount -o remount,bind,ro /\n");
            for top in &tops {
                sh.push_str(&format!("mount -o remount,ro /{top}\n"));
            }
        }
        for t in &s.tmpfs {
            sh.push_str(&format!("mount -t tmpfs -o mode=1777 tmpfs {}\n", q(t)));
        }
        if let Some(n) = s.nofile {
            // Where the machine cannot raise the hard limit (the reason its container runtimes
            // cannot start these containers), the most it allows; the test prints a note.
            sh.push_str(&format!(
                "ulimit -n {n} 2>/dev/null || {{ echo \"nofile {n}: not allowed here, $(ulimit -Hn)\" >&2; ulimit -n $(ulimit -Hn); }}\n"
            ));
        }
        sh.push_str(&format!("cd {}\n", q(&self.img.workdir)));
        sh.push_str(&format!(
            "exec {}\n",
            self.as_user(k, &s.env, &s.argv).join(" ")
        ));
        Ok(sh)
    }

    /// `setpriv … env -i ENV… argv…`, quoted for sh: as the image's user, with the service's
    /// capabilities and privileges.
    fn as_user(&self, k: usize, env: &[(String, String)], argv: &[String]) -> Vec<String> {
        let s = &self.services[k];
        let mut v = vec![
            "setpriv".to_string(),
            format!("--reuid={}", self.img.uid),
            format!("--regid={}", self.img.gid),
            "--clear-groups".into(),
        ];
        if s.no_new_privileges {
            v.push("--no-new-privs".into());
        }
        if s.cap_drop_all {
            v.extend(["--inh-caps=-all".into(), "--bounding-set=-all".into()]);
        }
        v.extend(["env".into(), "-i".into()]);
        v.extend(env.iter().map(|(k, val)| q(&format!("{k}={val}"))));
        v.extend(argv.iter().map(|a| q(a)));
        v
    }

    /// Start service `name` as its container would (its output in `logs/NAME.log`).
    fn start(&mut self, name: &str) -> Result<(), String> {
        let k = self.index(name);
        let script = self.container_script(k)?;
        let log = self.dir.path().join("logs").join(format!("{name}.log"));
        std::fs::create_dir_all(log.parent().unwrap()).map_err(|e| e.to_string())?;
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.netns(k)])
            .args([
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
            ])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{name}: {e}"))?;
        self.running.insert(name.into(), child);
        Ok(())
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// Wait for a one-shot service to exit; its exit must be success.
    fn complete(&mut self, name: &str, within: Duration) -> Result<(), String> {
        // Waited for on a thread of its own, so the deadline needs no polling; a service still
        // running at the deadline is killed.
        let mut child = self.running.remove(name).unwrap();
        let pid = child.id().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(within) {
            Ok(Ok(st)) if st.success() => Ok(()),
            Ok(Ok(st)) => Err(format!("{name} exited {st}:\n{}", self.log(name))),
            Ok(Err(e)) => Err(format!("{name}: {e}")),
            Err(_) => {
                let _ = run(&["kill", "-9", &pid]);
                Err(format!(
                    "{name} still running after {within:?}:\n{}",
                    self.log(name)
                ))
            }
        }
    }

    /// `docker compose exec SERVICE argv…`: in the running service's namespaces, as the
    /// image's user, with its environment (plus `extra`).
    fn exec(&self, name: &str, extra: &[(&str, &str)], argv: &[&str]) -> Result<String, String> {
        let k = self.index(name);
        let pid = self.running[name].id();
        // A service that exited (a zombie until reaped) has no namespaces left.
        if !Path::new(&format!("/proc/{pid}/ns/mnt")).exists() {
            panic!("{name} is no longer running:\n{}", self.log(name));
        }
        let pid = pid.to_string();
        let mut env = self.services[k].env.clone();
        env.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let inner = format!(
            "cd {} && exec {}",
            q(&self.img.workdir),
            self.as_user(k, &env, &argv).join(" ")
        );
        let args = [
            "nsenter", "--target", &pid, "--mount", "--net", "--uts", "--", "sh", "-c", &inner,
        ];
        let out = Command::new(args[0])
            .args(&args[1..])
            .output()
            .map_err(|e| e.to_string())?;
        ok(&args[..7], out)
    }

    /// Stop a service with its stop signal; it must exit cleanly within its grace period.
    fn stop(&mut self, name: &str) -> Result<(), String> {
        let k = self.index(name);
        let pid = self.running[name].id().to_string();
        let sig = self.services[k]
            .stop_signal
            .trim_start_matches("SIG")
            .to_string();
        run(&["kill", "-s", &sig, &pid])?;
        let grace = self.services[k].stop_grace;
        self.complete(name, grace)
    }
}

/// Whether this machine can make the namespaces and mounts the run needs.
fn probe() -> Result<(), String> {
    let uid = run(&["id", "-u"])?;
    let uid = uid.trim();
    if uid != "0" {
        return Err(format!("not root (euid {uid})"));
    }
    for tool in [
        ["ip", "-V"],
        ["unshare", "--version"],
        ["setpriv", "--version"],
        ["nsenter", "--version"],
    ] {
        run(&tool).map_err(|e| format!("no {}: {e}", tool[0]))?;
    }
    let d = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (u, w) = (d.path().join("u"), d.path().join("w"));
    std::fs::create_dir_all(&u).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&w).map_err(|e| e.to_string())?;
    let script = format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && mount -o remount,bind,ro /",
        u.display(),
        w.display()
    );
    run(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .map_err(|e| format!("no overlay or read-only bind mounts in a mount namespace: {e}"))?;
    Ok(())
}

/// Poll `f` until it returns Some, or fail with the last error after `within`.
fn eventually<T>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> Result<Option<T>, String>,
) -> T {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; last: {last}"
        );
        std::thread::sleep(POLL);
    }
}

/// The sum of a `stats --format json` document's counts (its records are in once it is
/// not 0).
fn counted(v: &Value) -> u64 {
    v["indicators"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["value"].as_u64()).sum())
        .unwrap_or(0)
}

/// The binaries under test, in a directory that is bound at /usr/local/bin.
fn binaries(dir: &Path) {
    let relay = PathBuf::from(env!("CARGO_BIN_EXE_bottomline-relay"));
    let node = relay.with_file_name("bottomline");
    assert!(
        node.exists(),
        "{} is not built: run `cargo test --workspace` (or `cargo build -p bottomline`) first",
        node.display()
    );
    std::fs::create_dir_all(dir).unwrap();
    for b in [&node, &relay] {
        let to = dir.join(b.file_name().unwrap());
        if std::fs::hard_link(b, &to).is_err() {
            std::fs::copy(b, &to).unwrap();
        }
    }
}

#[test]
fn the_compose_tree_runs_and_the_province_holds_both_counties() {
    if let Err(why) = probe() {
        skip!("SKIP: the compose tree without a container runtime needs {why}");
        return;
    }
    let doc = match compose_yaml() {
        Ok(d) => d,
        Err(why) => {
            skip!("SKIP: {why}");
            return;
        }
    };
    let started = Instant::now();
    let img = image();
    let hard: u64 = run(&["sh", "-c", "ulimit -Hn"])
        .ok()
        .and_then(|h| h.trim().parse().ok())
        .unwrap_or(u64::MAX);
    if let Some(n) = doc["services"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|s| s["ulimits"]["nofile"]["hard"].as_u64())
        .max()
        .filter(|&n| n > hard)
    {
        skip!("NOTE: this machine does not allow raising nofile to {n} (hard limit {hard}): the services run with {hard}");
    }
    let dir = tempfile::Builder::new()
        .prefix("compose-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let volumes = dir.path().join("volumes");
    for v in doc["volumes"].as_object().unwrap().keys() {
        let p = volumes.join(v);
        std::fs::create_dir_all(&p).unwrap();
        // A new named volume takes the image's owner of its mount point.
        run(&[
            "chown",
            &format!("{}:{}", img.uid, img.gid),
            &p.to_string_lossy(),
        ])
        .unwrap();
    }
    binaries(&dir.path().join("bin"));
    let services: Vec<Service> = doc["services"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, svc)| service(name, svc, &img, &volumes))
        .collect();
    let networks: BTreeMap<String, usize> = doc["networks"]
        .as_object()
        .unwrap()
        .keys()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let mut sb = Sandbox {
        tag: format!("bc{}", std::process::id() % 100_000),
        dir,
        img,
        services,
        networks,
        bridges: Vec::new(),
        running: BTreeMap::new(),
    };
    sb.network().expect("the compose networks");

    // `depends_on: init: service_completed_successfully`.
    sb.start("init").unwrap();
    sb.complete("init", DEADLINE).unwrap();
    let init_log = sb.log("init");
    assert!(init_log.contains("published ca.pem"), "{init_log}");
    let names: Vec<String> = sb
        .services
        .iter()
        .map(|s| s.name.clone())
        .filter(|n| n != "init")
        .collect();
    for n in &names {
        sb.start(n).unwrap();
    }

    // A day of records for each county, as deploy/README.md puts them in its inbox.
    let counties = ["610102", "610103"];
    for c in counties {
        let svc = format!("county-{c}");
        let script = format!(
            "bottomline gen --seed 7 --county {c} --households 300 --end 2026-11-20 \
             --out /var/lib/bottomline/gen && mv /var/lib/bottomline/gen/{c}/* /var/lib/bottomline/inbox/"
        );
        eventually(&format!("{svc} takes its files"), DEADLINE, || {
            // The inbox exists once the node has started.
            sb.exec(&svc, &[], &["sh", "-c", &script]).map(Some)
        });
    }

    // The province's figures of each county equal the county's own; the operator
    // certificate `init` made reads both (the province's through its drill-down).
    let operator = [
        ("BOTTOMLINE_CA", "/etc/bottomline/pki/ca.pem"),
        (
            "BOTTOMLINE_CERT",
            "/etc/bottomline/pki/certs/operator-admin.pem",
        ),
        (
            "BOTTOMLINE_KEY",
            "/etc/bottomline/pki/certs/operator-admin.key",
        ),
    ];
    let stats = |svc: &str, c: &str| -> Result<Value, String> {
        let out = sb.exec(
            svc,
            &operator,
            &[
                "bottomline",
                "stats",
                "--addr",
                "https://localhost:7100",
                "--division",
                c,
                "--period",
                "2026",
                "--format",
                "json",
            ],
        )?;
        serde_json::from_str(&out).map_err(|e| format!("{svc}: {e}: {out}"))
    };
    for c in counties {
        let own = eventually(&format!("county {c} imported its inbox"), DEADLINE, || {
            let v = stats(&format!("county-{c}"), c)?;
            Ok((counted(&v) > 0).then_some(v))
        });
        eventually(
            &format!("the province holds county {c}'s figures"),
            DEADLINE,
            || {
                // The figures; a county's name is in the registry the province has not been
                // given here (its divisions.csv), so the province shows the code.
                let held = stats("province", c)?;
                if held["indicators"] == own["indicators"] && held["period"] == own["period"] {
                    Ok(Some(()))
                } else {
                    Err(format!("the province has {held}\nthe county {own}"))
                }
            },
        );
    }

    // `status` at each node, and at the relay with the operator certificate (compose's
    // environment for it), as `docker compose exec` runs them.
    for n in &names {
        let out = if n.starts_with("relay") {
            sb.exec(
                n,
                &[],
                &["bottomline", "status", "--addr", "https://localhost:7300"],
            )
        } else {
            sb.exec(n, &[], &["bottomline", "status"])
        };
        let out = out.unwrap_or_else(|e| panic!("status at {n}: {e}"));
        assert!(!out.trim().is_empty(), "{n}: empty status");
        if n.starts_with("relay") {
            assert!(
                out.contains("610103"),
                "the relay holds 610103's lane:\n{out}"
            );
        }
        if n == "city-6101" {
            for c in counties {
                assert!(out.contains(c), "the city lists {c}:\n{out}");
            }
        }
    }

    // The intranet county has no route to the city but through the relay.
    let k = sb.index("county-610103");
    let hosts = sb.hosts(k);
    assert!(!hosts.contains("city-6101"), "{hosts}");

    // Stop every service with its stop signal: each exits cleanly in its grace period.
    for n in names.iter().rev() {
        sb.stop(n).unwrap_or_else(|e| panic!("stopping {n}: {e}"));
    }
    eprintln!(
        "the compose tree: {} services up, synced and stopped in {:.1} s",
        names.len() + 1,
        started.elapsed().as_secs_f64()
    );
}
