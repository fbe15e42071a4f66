//! The soak's last step (issue #19 point 5): the province restarted on its soaked store.
//!
//! Over a long soak the province's floor rises with its store (new tickets and their events,
//! the counties' late records). Memory that follows the data a node holds comes back when a
//! fresh process opens the same store and does the same work; a leak or the allocator's
//! creep does not. So, once the tree has drained: the province idle for `span` (its RSS
//! floor, heap and store), then a stop (SIGTERM) and a start on the same store, addresses and
//! config; the cities relink, the new process catches up and runs its first self-check
//! (which reads every replica, as the old one's periodic checks did), then idle for `span`
//! again. Afterwards the province's `Stats` must still equal every county's own.
//!
//! `follows_data`: the restarted province's floor is at least the soaked one's less the
//! soak's memory allowance (max(2 MiB, 5 %)): the fresh process needs what the old one kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use serde_json::{json, Value};

use crate::common::procs::peak_rss_mib_of;
use crate::common::Res;
use crate::procs::{Sampler, Tree};
use crate::watch::{self, SyncClient};
use crate::{round1, sample};

/// The province idle: what its RSS sampler saw over a span, and its `/metrics` at the end.
pub struct Idle {
    pub floor_mib: f64,
    pub max_mib: f64,
    pub store_mib: Option<f64>,
    pub heap_in_use_mib: Option<f64>,
    pub heap_free_mib: Option<f64>,
    pub ticket_cache_mib: Option<f64>,
}

impl Idle {
    fn json(&self) -> Value {
        let r = |v: Option<f64>| v.map(round1);
        json!({
            "rss_floor_mib": round1(self.floor_mib),
            "rss_max_mib": round1(self.max_mib),
            "store_mib": r(self.store_mib),
            "heap_in_use_mib": r(self.heap_in_use_mib),
            "heap_free_mib": r(self.heap_free_mib),
            "ticket_cache_mib": r(self.ticket_cache_mib),
        })
    }
}

/// Watch process `pid` for `span` (a measuring span: the sampler reads its RSS every
/// tick meanwhile), then read its `/metrics` at `http`.
async fn idle(pid: u32, http: &str, sampler: &Sampler, span: Duration) -> Res<Idle> {
    let from = sampler.t(Instant::now());
    tokio::time::sleep(span).await;
    let to = sampler.t(Instant::now());
    let (lo, hi) = sampler
        .range_mib(pid, from, to)
        .ok_or_else(|| format!("no RSS sample of process {pid}"))?;
    let m = sample::scrape(http).await?;
    let to_mib = |b: Option<f64>| b.map(|b| b / (1024.0 * 1024.0));
    Ok(Idle {
        floor_mib: lo,
        max_mib: hi,
        store_mib: to_mib(m.store_bytes),
        heap_in_use_mib: to_mib(m.heap_in_use_bytes),
        heap_free_mib: to_mib(m.heap_free_bytes),
        ticket_cache_mib: to_mib(m.ticket_cache_bytes),
    })
}

/// The memory allowance of the soak's verdict for a floor of `mib`.
fn allowance(mib: f64) -> f64 {
    (mib * 0.05).max(2.0)
}

/// Restart the province `code` (listening at `url`, `/metrics` at `http`) and compare its
/// idle floor before and after; `years` are the periods whose `Stats` are compared again.
/// Must run on the main thread (it starts a process).
#[allow(clippy::too_many_arguments)]
pub async fn province(
    tree: &mut Tree,
    clients: &HashMap<Code, SyncClient>,
    sampler: &Sampler,
    code: Code,
    http: &str,
    span: Duration,
    check_secs: f64,
    counties: &[Code],
    years: &[String],
) -> Res<Value> {
    let url = tree.url(code)?;
    let listen = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("the province's URL {url} is not https"))?
        .to_string();
    eprintln!(
        "restart: the province idle for {:.0} s …",
        span.as_secs_f64()
    );
    let old_pid = tree.node(code)?.pid();
    let soaked = idle(old_pid, http, sampler, span).await?;

    eprintln!("restart: stopping the province and starting it on the same store …");
    let t_stop = Instant::now();
    let pinned_http = format!("http_listen = \"{http}\"");
    let pinned_listen = format!("\nlisten = \"{listen}\"");
    let exited_cleanly = tree
        .restart(code, |toml| {
            toml.replace("http_listen = \"127.0.0.1:0\"", &pinned_http)
                .replace("\nlisten = \"127.0.0.1:0\"", &pinned_listen)
        })
        .await?;
    let stopped_s = t_stop.elapsed().as_secs_f64();
    let new_pid = tree.node(code)?.pid();
    sampler.track(new_pid);
    let t_start = Instant::now();
    let started_unix_ms = bottomline::ledger::unix_ms_now();

    // The province answers, the cities relink, it holds everything again and checks itself
    // once.
    let poll = Duration::from_millis(500);
    let deadline = Instant::now() + Duration::from_secs_f64(check_secs.max(30.0) + 180.0);
    let just_province = HashMap::from([(code, clients[&code].clone())]);
    while let Err(e) = watch::all_status(&just_province).await {
        tree.check_running()?;
        if Instant::now() > deadline {
            return Err(format!("the restarted province does not answer: {e}").into());
        }
        tokio::time::sleep(poll).await;
    }
    let answered = Instant::now();
    let linked = watch::wait_linked(clients, tree, poll, deadline).await?;
    let held = watch::wait_held(clients, tree, poll, deadline).await?;
    let held_at = held
        .all
        .ok_or("the restarted province did not catch up with its cities in time")?;
    let checked_at =
        watch::wait_self_checked(&just_province, tree, started_unix_ms, poll, deadline)
            .await?
            .ok_or("the restarted province did not check itself in time")?;
    let st = watch::all_status(&just_province).await?;
    if st
        .get(&code)
        .and_then(watch::self_check)
        .is_some_and(|(_, ok)| !ok)
    {
        return Err("the restarted province's self-check FAILED".into());
    }
    eprintln!(
        "restart: answering after {:.1} s, relinked after {:.1} s, caught up after {:.1} s, checked itself after {:.1} s; idle for {:.0} s …",
        answered.duration_since(t_start).as_secs_f64(),
        linked.all.duration_since(t_start).as_secs_f64(),
        held_at.duration_since(t_start).as_secs_f64(),
        checked_at.duration_since(t_start).as_secs_f64(),
        span.as_secs_f64()
    );
    // The soaked province served the soak's Stats checks (and filled its indicator cache)
    // before it was measured; the restarted one serves the same before it is.
    let (matched, compared, _) = watch::stats_match_years(clients, code, counties, years).await?;
    let restarted = idle(new_pid, http, sampler, span).await?;
    let diff = restarted.floor_mib - soaked.floor_mib;
    let follows_data = diff >= -allowance(soaked.floor_mib);
    eprintln!(
        "restart: province floor {:.1} MiB soaked, {:.1} MiB restarted ({diff:+.1}; store {} MiB): {}; Stats equal after the restart {matched}/{compared}",
        soaked.floor_mib,
        restarted.floor_mib,
        soaked.store_mib.map_or("?".into(), |s| format!("{s:.1}")),
        if follows_data {
            "the floor follows the data"
        } else {
            "the fresh process needs less: the soaked one had accumulated memory"
        }
    );
    let since = |t: Instant| round1(t.duration_since(t_start).as_secs_f64());
    Ok(json!({
        "span_s": span.as_secs_f64(),
        "soaked": soaked.json(),
        "restarted": restarted.json(),
        "floor_difference_mib": round1(diff),
        "allowance_mib": round1(allowance(soaked.floor_mib)),
        "follows_data": follows_data,
        "exited_cleanly": exited_cleanly,
        "stopped_s": round1(stopped_s),
        "answering_s": since(answered),
        "relinked_s": since(linked.all),
        "caught_up_s": since(held_at),
        "checked_itself_s": since(checked_at),
        "stats_equal_after_restart": format!("{matched}/{compared}"),
        // The new process's peak: its start, catching up and its first self-check.
        "restarted_peak_mib": peak_rss_mib_of(new_pid).map(round1),
    }))
}
