//! Process-level chaos (issue #19 point 3): a province, 3 cities and 12 counties as real
//! `bottomline serve` processes, while the counties import their files part by part over
//! `bottomline import --addr` and tickets are issued at the province and at cities, acted on
//! at the counties and verified at their issuers, all through the CLI.
//!
//! 1. `kill -9` of random nodes — the province and every city among them — at random moments,
//!    each restarted from its data dir after a random short delay, sometimes two at once.
//! 2. Where the machine allows it (root, iproute2), a smaller tree (a province, 2 cities, 4
//!    counties) with the cities and counties each in their own network namespace on a
//!    bridge, every link degraded with `tc netem` delay and loss (a `tbf` rate limit where
//!    the kernel has no netem, with `SKIP netem: …` printed), links cut and healed at
//!    random, sometimes with the node behind a cut killed and restarted before the heal.
//!    Without namespaces it prints `SKIP netns: …` and passes.
//!
//! The chaos comes from a seeded RNG: the seed is printed, and `CHAOS_SEED=N` replays its
//! choices (the interleaving with the processes' own timing still varies). Waits poll with a
//! deadline; the random pauses are the chaos itself. After the last restart or heal, once
//! every link is drained, the end state is checked against the ground truth — the same files
//! imported into fresh data dirs in this process: every city and the province equal the sum
//! of their children for periods of every kind (over `Stats`, then in the stopped stores:
//! exact replicas, nothing counted twice), each county's cells equal the truth (so every
//! acknowledged import is there, once), and each ticket is in its planned end state, the
//! same with the same events at every node that holds it, every acknowledged action among
//! its events.

mod chaos;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chaos::workload::{self, Outcome, Planned};
use chaos::{at, checks, jitter, netns, Data, Place, Tree};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The two tests run one after the other: each is a whole tree of processes on 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Households per generated county.
const HOUSEHOLDS: u32 = 400;

/// The workload (imports and tickets) until both are done; sets `done` then.
async fn workload(
    addrs: BTreeMap<String, String>,
    (data, plans, dir): (&Data, &[Planned], &std::path::Path),
    seed: u64,
    t0: Instant,
    done: &AtomicBool,
    out: &Mutex<Outcome>,
) {
    tokio::join!(
        workload::import_all(&addrs, &data.parts, seed, t0, out),
        workload::drive_tickets(&addrs, plans, dir, seed, t0, out),
    );
    done.store(true, Ordering::SeqCst);
}

/// The end: quiet, the figures over RPC, no node reporting a failed self-check or a panic,
/// an ordered stop, then the stores and the tickets.
async fn check_end(
    tree: &mut Tree,
    truth: &checks::Truth,
    plans: &[Planned],
    out: &Mutex<Outcome>,
    t0: Instant,
) {
    checks::wait_quiet(tree).await;
    eprintln!("{} every link drained", at(t0));
    // Every parent's `Status` comes to show each linked child connected. A child whose
    // parent restarted behind a cut holds a half-open link until HTTP/2 keepalive (20 s
    // interval, 20 s timeout) ends it and it redials, so the views agree only after that;
    // and the end of a stale link at the parent must not clear the state of the child's
    // newer link (it did, until `ChildState.links`).
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let shown_down = checks::linked_but_shown_down(tree).await;
        if shown_down.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{}", shown_down.join("\n"));
        tokio::time::sleep(common::POLL * 25).await;
    }
    assert!(
        workload::at_end_everywhere(&tree.addrs(), plans).await,
        "every ticket in its end state at every node"
    );
    checks::rpc_matches_truth(tree, truth, plans).await;
    for bad in ["self-check FAILED", "panicked"] {
        let lines = tree.log_lines(bad);
        assert!(lines.is_empty(), "{bad}:\n{}", lines.join("\n"));
    }
    let errors = tree.log_lines(" ERROR ");
    eprintln!("{} {} ERROR line(s) in the logs", at(t0), errors.len());
    for l in errors.iter().take(20) {
        eprintln!("  {l}");
    }
    tree.stop_all().await;
    let ledgers = checks::stores_match_truth(tree, truth);
    let out = out.lock().unwrap();
    checks::tickets_match(tree, &ledgers, plans, &out);
    eprintln!(
        "{} end state = ground truth: {} import parts acknowledged ({} failed calls), {} tickets, \
         {} ticket calls failed",
        at(t0),
        out.imports_acked.values().sum::<usize>(),
        out.import_failures,
        plans.len(),
        out.ticket_failures
    );
}

/// Aim the chaos at a call in flight: the node a worker of the workload is calling (one that
/// `fits`), looking for up to 2 s, then a random few milliseconds into the call. `None`
/// when no call came along.
async fn busy_node(
    out: &Mutex<Outcome>,
    rng: &mut ChaCha8Rng,
    fits: impl Fn(&str) -> bool,
) -> Option<String> {
    let until = Instant::now() + std::time::Duration::from_secs(2);
    while Instant::now() < until {
        let busy: Vec<String> = out
            .lock()
            .unwrap()
            .busy
            .values()
            .filter(|d| fits(d))
            .cloned()
            .collect();
        if let Some(d) = busy.choose(rng) {
            let d = d.clone();
            tokio::time::sleep(jitter(rng, 0, 120)).await;
            return Some(d);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    None
}

/// Kill -9 random nodes, restarting each after a random delay, until the workload is done
/// and at least `min` kills happened (at most `max`, but never before the province and every
/// city were killed at least once). A third of the time the victim is a node the workload is
/// calling at that moment (an import or a ticket call in flight); sometimes a second node
/// goes down with the first.
async fn kill_rounds(
    tree: &mut Tree,
    rng: &mut ChaCha8Rng,
    (done, out): (&AtomicBool, &Mutex<Outcome>),
    t0: Instant,
    (min, max): (usize, usize),
) -> usize {
    let n = tree.nodes.len();
    let parents: Vec<usize> = (0..n)
        .filter(|&i| tree.nodes[i].level() != "county")
        .collect();
    let mut must = parents.clone();
    must.shuffle(rng);
    let mut kills = 0;
    while !must.is_empty() || (kills < max && (kills < min || !done.load(Ordering::SeqCst))) {
        tokio::time::sleep(jitter(rng, 300, 2000)).await;
        let aimed = if rng.random_bool(0.35) {
            busy_node(out, rng, |_| true).await
        } else {
            None
        };
        let first = match aimed.as_deref() {
            Some(d) => tree.index(d),
            _ if !must.is_empty() && rng.random_bool(0.5) => must.pop().expect("must"),
            _ if rng.random_bool(0.4) => *parents.choose(rng).expect("parents"),
            _ => rng.random_range(0..n),
        };
        let mut victims = vec![first];
        if rng.random_bool(0.25) {
            let other = rng.random_range(0..n);
            if other != first {
                victims.push(other);
            }
        }
        must.retain(|m| !victims.contains(m));
        for &v in &victims {
            tree.kill9(v);
            kills += 1;
        }
        let names: Vec<String> = victims.iter().map(|&v| tree.nodes[v].label()).collect();
        let aimed = if aimed.is_some() {
            " in the middle of a call"
        } else {
            ""
        };
        eprintln!(
            "{} kill -9 {}{aimed} (kill {kills})",
            at(t0),
            names.join(" and ")
        );
        tokio::time::sleep(jitter(rng, 50, 1500)).await;
        for &v in &victims {
            tree.spawn(v);
        }
        for &v in &victims {
            tree.listening(v).await;
        }
        eprintln!("{} restarted {}", at(t0), names.join(" and "));
    }
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_random_nodes_in_a_16_process_tree_ends_at_the_ground_truth() {
    let _serial = SERIAL.lock().await;
    let seed = chaos::seed();
    println!("chaos seed {seed} (replay with CHAOS_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t0 = Instant::now();

    let data = chaos::generate(dir, seed % 1000, 3, 12, HOUSEHOLDS);
    let truth = checks::truth(dir, &data);
    let mut ports = BTreeSet::new();
    let mut tree = Tree::layout(dir, "61", &data.cities, |_| loop {
        let port = chaos::free_port(&mut rng, "127.0.0.1");
        if ports.insert(port) {
            break Place {
                ip: "127.0.0.1".into(),
                port,
                netns: None,
            };
        }
    });
    assert_eq!(tree.nodes.len(), 16);
    tree.start_all().await;
    eprintln!("{} 16 nodes listening", at(t0));

    let plans = workload::plan_tickets(&data.counties(), &["6101", "6102"]);
    let out = Mutex::new(Outcome::default());
    let done = AtomicBool::new(false);
    let (_, kills) = tokio::join!(
        workload(tree.addrs(), (&data, &plans, dir), seed, t0, &done, &out),
        kill_rounds(&mut tree, &mut rng, (&done, &out), t0, (10, 20)),
    );
    eprintln!("{} workload done; {kills} kills", at(t0));
    check_end(&mut tree, &truth, &plans, &out, t0).await;
    println!(
        "kill -9 chaos (seed {seed}): {kills} kills, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Cut and heal random links (a city's cuts it off from the province and its counties),
/// sometimes killing and restarting the node behind the cut before the heal, until the
/// workload is done and at least `min` rounds ran (at most `max`).
async fn partition_rounds(
    tree: &mut Tree,
    net: &netns::Net,
    rng: &mut ChaCha8Rng,
    (done, out): (&AtomicBool, &Mutex<Outcome>),
    t0: Instant,
    (min, max): (usize, usize),
) -> usize {
    let cut_able: Vec<usize> = (0..tree.nodes.len())
        .filter(|&i| tree.nodes[i].netns.is_some())
        .collect();
    let mut rounds = 0;
    while rounds < max && (rounds < min || !done.load(Ordering::SeqCst)) {
        tokio::time::sleep(jitter(rng, 200, 1500)).await;
        rounds += 1;
        // A third of the time the node the workload is calling right now.
        let aimed = if rng.random_bool(0.35) {
            busy_node(out, rng, |d| d.len() > 2).await
        } else {
            None
        };
        let first = match aimed.as_deref() {
            Some(d) => tree.index(d),
            None => *cut_able.choose(rng).expect("nodes"),
        };
        let mut cut: Vec<usize> = vec![first];
        if rng.random_bool(0.3) {
            let other = *cut_able.choose(rng).expect("nodes");
            if other != cut[0] {
                cut.push(other);
            }
        }
        for &i in &cut {
            net.cut(&tree.nodes[i].division);
        }
        let names: Vec<String> = cut.iter().map(|&i| tree.nodes[i].label()).collect();
        let during = if aimed.is_some() {
            " in the middle of a call"
        } else {
            ""
        };
        eprintln!(
            "{} cut {}{during} (round {rounds})",
            at(t0),
            names.join(" and ")
        );
        tokio::time::sleep(jitter(rng, 300, 2500)).await;
        if rng.random_bool(0.4) {
            let v = cut[0];
            tree.kill9(v);
            eprintln!(
                "{} kill -9 {} behind the cut",
                at(t0),
                tree.nodes[v].label()
            );
            tokio::time::sleep(jitter(rng, 50, 800)).await;
            tree.spawn(v);
            tree.listening(v).await;
            eprintln!("{} restarted it, still cut", at(t0));
            tokio::time::sleep(jitter(rng, 100, 1000)).await;
        }
        for &i in &cut {
            net.heal(&tree.nodes[i].division);
        }
        eprintln!("{} healed {}", at(t0), names.join(" and "));
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_partitions_over_degraded_links_end_at_the_ground_truth() {
    let _serial = SERIAL.lock().await;
    if let Err(why) = netns::probe() {
        common::skip(format_args!("SKIP netns: {why}"));
        return;
    }
    let seed = chaos::seed();
    println!("chaos seed {seed} (replay with CHAOS_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e7);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let t0 = Instant::now();

    let mut net = netns::Net::new().expect("bridge");
    let qdisc: &[&str] = match netns::netem_probe() {
        Ok(()) => {
            println!("netem on every link: {}", netns::NETEM.join(" "));
            &netns::NETEM
        }
        Err(why) => {
            common::skip(format_args!(
                "SKIP netem: {why}; the links are degraded by `{}` instead",
                netns::TBF.join(" ")
            ));
            &netns::TBF
        }
    };
    let data = chaos::generate(dir, seed % 1000, 2, 4, HOUSEHOLDS);
    let truth = checks::truth(dir, &data);
    let host = net.host_ip();
    let province_port = chaos::free_port(&mut rng, &host);
    let mut octet = 10u8;
    let mut tree = Tree::layout(dir, "61", &data.cities, |d| {
        if d == "61" {
            return Place {
                ip: host.clone(),
                port: province_port,
                netns: None,
            };
        }
        octet += 1;
        let (ns, ip) = net.add(d, octet).expect("namespace");
        Place {
            ip,
            port: 7100,
            netns: Some(ns),
        }
    });
    for n in tree.nodes.iter().filter(|n| n.netns.is_some()) {
        net.degrade(&n.division, qdisc).expect("degrade a link");
    }
    tree.start_all().await;
    eprintln!("{} 7 nodes listening, 6 behind degraded links", at(t0));

    let plans = workload::plan_tickets(&data.counties(), &["6101", "6102"]);
    let out = Mutex::new(Outcome::default());
    let done = AtomicBool::new(false);
    let (_, rounds) = tokio::join!(
        workload(tree.addrs(), (&data, &plans, dir), seed, t0, &done, &out),
        partition_rounds(&mut tree, &net, &mut rng, (&done, &out), t0, (6, 16)),
    );
    eprintln!("{} workload done; {rounds} partitions", at(t0));
    check_end(&mut tree, &truth, &plans, &out, t0).await;
    drop(tree);
    drop(net);
    println!(
        "netns partitions (seed {seed}): {rounds} rounds, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
