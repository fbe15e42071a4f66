//! Network namespaces for partitions: a bridge in the test's namespace (its address is where
//! the province listens) and one namespace per node joined to it by a veth pair, whose
//! host end the test takes down to cut the node off and up to heal it. Each link is degraded
//! with `tc netem` (delay, jitter, loss) where the kernel has it, else with a `tbf` rate
//! limit. Everything made is removed on drop.

use std::process::Command;

/// Run a command; its stderr (or stdout) as the error.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = if err.trim().is_empty() {
            String::from_utf8_lossy(&out.stdout)
        } else {
            err
        };
        Err(format!("`{}`: {}", args.join(" "), err.trim()))
    }
}

/// A short name prefix unique to this test process (interface names have 15 bytes at most).
fn tag() -> String {
    format!("bl{}", std::process::id() % 100_000)
}

/// Whether namespaces, veth pairs and bridges can be made here (root, iproute2).
pub fn probe() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        return Err(format!("not root (euid {uid})"));
    }
    run(&["ip", "-V"]).map_err(|e| format!("no iproute2: {e}"))?;
    let t = tag();
    let ns = format!("{t}probe");
    run(&["ip", "netns", "add", &ns])?;
    let _ = run(&["ip", "netns", "del", &ns]);
    let (a, b) = (format!("{t}pa"), format!("{t}pb"));
    run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
    let _ = run(&["ip", "link", "del", &a]);
    let br = format!("{t}pbr");
    run(&["ip", "link", "add", &br, "type", "bridge"])?;
    let _ = run(&["ip", "link", "del", &br]);
    Ok(())
}

/// The netem qdisc applied to each link, or why it cannot be.
pub const NETEM: [&str; 8] = [
    "netem",
    "delay",
    "25ms",
    "10ms",
    "distribution",
    "normal",
    "loss",
    "2%",
];
/// What degrades a link when netem is missing: a token bucket.
pub const TBF: [&str; 7] = [
    "tbf", "rate", "4mbit", "burst", "32kbit", "latency", "100ms",
];

/// Whether this kernel has `sch_netem`.
pub fn netem_probe() -> Result<(), String> {
    let t = tag();
    let (a, b) = (format!("{t}qa"), format!("{t}qb"));
    run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
    let mut args = vec!["tc", "qdisc", "add", "dev", &a, "root"];
    args.extend(NETEM);
    let r = run(&args);
    let _ = run(&["ip", "link", "del", &a]);
    r.map(|_| ())
}

/// A namespace joined to the bridge.
struct Member {
    name: String,
    ns: String,
    host_if: String,
    ns_if: String,
}

/// The bridge and the namespaces on it.
pub struct Net {
    tag: String,
    bridge: String,
    prefix: String,
    members: Vec<Member>,
}

impl Net {
    /// The bridge, with the test's address `PREFIX.1/24` on it.
    pub fn new() -> Result<Net, String> {
        let t = tag();
        let pid = std::process::id();
        let net = Net {
            bridge: format!("{t}br"),
            prefix: format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 250),
            tag: t,
            members: Vec::new(),
        };
        run(&["ip", "link", "add", &net.bridge, "type", "bridge"])?;
        let addr = format!("{}/24", net.host_ip());
        run(&["ip", "addr", "add", &addr, "dev", &net.bridge])?;
        run(&["ip", "link", "set", &net.bridge, "up"])?;
        Ok(net)
    }

    /// The test's own address on the bridge.
    pub fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// A namespace for `name` on the bridge at `PREFIX.octet`; returns (namespace, address).
    pub fn add(&mut self, name: &str, octet: u8) -> Result<(String, String), String> {
        let i = self.members.len();
        let m = Member {
            name: name.to_string(),
            ns: format!("{}-{name}", self.tag),
            host_if: format!("{}h{i}", self.tag),
            ns_if: format!("{}n{i}", self.tag),
        };
        let ip = format!("{}.{octet}", self.prefix);
        run(&["ip", "netns", "add", &m.ns])?;
        self.members.push(m);
        let m = &self.members[i];
        run(&[
            "ip", "link", "add", &m.host_if, "type", "veth", "peer", "name", &m.ns_if,
        ])?;
        run(&["ip", "link", "set", &m.host_if, "master", &self.bridge])?;
        run(&["ip", "link", "set", &m.host_if, "up"])?;
        run(&["ip", "link", "set", &m.ns_if, "netns", &m.ns])?;
        let cidr = format!("{ip}/24");
        run(&["ip", "-n", &m.ns, "addr", "add", &cidr, "dev", &m.ns_if])?;
        run(&["ip", "-n", &m.ns, "link", "set", &m.ns_if, "up"])?;
        run(&["ip", "-n", &m.ns, "link", "set", "lo", "up"])?;
        Ok((m.ns.clone(), ip))
    }

    fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no namespace for {name}"))
    }

    /// Degrade `name`'s link both ways with `qdisc` (e.g. [`NETEM`] or [`TBF`]).
    pub fn degrade(&self, name: &str, qdisc: &[&str]) -> Result<(), String> {
        let m = self.member(name);
        let mut out = vec!["tc", "qdisc", "add", "dev", &m.host_if, "root"];
        out.extend_from_slice(qdisc);
        run(&out)?;
        let mut inside = vec![
            "ip", "netns", "exec", &m.ns, "tc", "qdisc", "add", "dev", &m.ns_if, "root",
        ];
        inside.extend_from_slice(qdisc);
        run(&inside).map(|_| ())
    }

    /// Cut `name` off: its end of the bridge goes down.
    pub fn cut(&self, name: &str) {
        let m = self.member(name);
        run(&["ip", "link", "set", &m.host_if, "down"]).expect("cut a link");
    }

    /// Heal `name`'s link.
    pub fn heal(&self, name: &str) {
        let m = self.member(name);
        run(&["ip", "link", "set", &m.host_if, "up"]).expect("heal a link");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for m in &self.members {
            let _ = run(&["ip", "link", "del", &m.host_if]);
            let _ = run(&["ip", "netns", "del", &m.ns]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
    }
}
