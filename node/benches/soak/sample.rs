//! One look at every node of the soak: its `VmRSS` (`/proc`, and the largest the 1-second
//! sampler saw since the last look), its `Status` (its link to its parent, its children's
//! links) and its `/metrics` (the flush-latency histogram, the store's size), turned into a
//! row per node and the tree's aggregates.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bottomline::division::Code;
use bottomline_proto::v1 as pb;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{percentile, Res};
use crate::procs::{mem_of, mib, Sampler};
use crate::round1;
use crate::watch::SyncClient;

/// The columns of a sample's per-node rows.
pub const COLUMNS: [&str; 20] = [
    "node",
    "rss_mib",
    "rss_max_mib",
    "rss_floor_mib",
    "store_mib",
    "ticket_cache_mib",
    "heap_in_use_mib",
    "heap_free_mib",
    "up_blocks",
    "up_tickets",
    "children_blocks",
    "children_behind",
    "children_tickets_up",
    "children_tickets_down",
    "child_lag_max_s",
    "status_ms",
    "flushes",
    "flush_mean_ms",
    "flush_p99_ms",
    "flush_max_bucket_ms",
];

/// What the columns mean (printed once, in the start line).
pub const COLUMNS_NOTE: &str = "rss_mib: VmRSS at the sample; rss_max_mib: the largest VmRSS \
    sampled (every second) since the previous sample; rss_floor_mib: the smallest (what the \
    node kept between its bursts of work); store_mib: bottomline_store_size_bytes; ticket_cache_mib: \
    bottomline_ticket_log_cache_bytes (the ticket log's recent entries in memory, bounded); \
    heap_in_use_mib, heap_free_mib: bottomline_heap_bytes (the allocator's bytes allocated, and \
    freed but kept: a floor that rises with the first is live memory, with the second \
    fragmentation); up_blocks, up_tickets: the node's uplink backlog (blocks changed after the parent's acked \
    floor, own ticket events not yet durable at the parent); children_blocks: the blocks its \
    children still have to deliver, as they last reported; children_behind: change-log \
    positions its children have and it has not made durable (child head - acked, summed); \
    children_tickets_up/down: ticket events waiting on its child links, up (reported by the \
    children) and down (its own log after each child's cursor); child_lag_max_s: the longest \
    time since a child's last message; status_ms: the Status call's reply time; flushes, \
    flush_mean_ms, flush_p99_ms: the store flushes since the previous sample \
    (bottomline_flush_duration_seconds: count, sum/count, the 0.99 quantile interpolated \
    within its bucket as Prometheus' histogram_quantile does); flush_max_bucket_ms: the upper \
    bound of the highest bucket that received a flush (the largest flush, rounded up to a \
    bucket bound; 10000+ = above the last bound)";

/// A node as the samples see it.
pub struct Probe {
    pub code: Code,
    pub pid: u32,
    pub sync: SyncClient,
    /// Its HTTP listener (`host:port`).
    pub http: String,
}

/// A flush-latency histogram as scraped: cumulative counts per upper bound (seconds, the
/// last `+Inf`), sum and count.
#[derive(Clone, Debug, Default)]
pub struct Hist {
    pub bounds: Vec<f64>,
    pub cum: Vec<f64>,
    pub sum: f64,
    pub count: f64,
}

impl Hist {
    /// What happened between `prev` and `self` (same bounds).
    fn since(&self, prev: &Hist) -> Hist {
        let cum = if prev.cum.len() == self.cum.len() {
            self.cum.iter().zip(&prev.cum).map(|(a, b)| a - b).collect()
        } else {
            self.cum.clone()
        };
        Hist {
            bounds: self.bounds.clone(),
            cum,
            sum: self.sum - prev.sum,
            count: self.count - prev.count,
        }
    }

    /// Add `other` (same bounds) into `self`.
    fn add(&mut self, other: &Hist) {
        if self.cum.is_empty() {
            *self = other.clone();
            return;
        }
        for (a, b) in self.cum.iter_mut().zip(&other.cum) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// The `q` quantile in seconds, linearly interpolated within its bucket (Prometheus'
    /// `histogram_quantile`); in the `+Inf` bucket, the last finite bound. None without
    /// observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = *self.cum.last()?;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut below = 0.0;
        let mut lower = 0.0;
        for (&upper, &cum) in self.bounds.iter().zip(&self.cum) {
            if cum >= rank {
                if upper.is_infinite() {
                    return Some(lower);
                }
                let inside = cum - below;
                let frac = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return Some(lower + (upper - lower) * frac);
            }
            below = cum;
            lower = upper;
        }
        Some(lower)
    }

    /// The upper bound of the highest bucket with an observation (seconds; infinite above
    /// the last finite bound).
    pub fn max_bucket(&self) -> Option<f64> {
        let mut below = 0.0;
        let mut top = None;
        for (&upper, &cum) in self.bounds.iter().zip(&self.cum) {
            if cum > below {
                top = Some(upper);
            }
            below = cum;
        }
        top
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

/// What a node's `/metrics` says that the soak reads.
#[derive(Default)]
pub struct Scrape {
    pub flush: Hist,
    pub store_bytes: Option<f64>,
    pub ticket_cache_bytes: Option<f64>,
    /// glibc's heap: allocated, and freed but kept (`bottomline_heap_bytes`).
    pub heap_in_use_bytes: Option<f64>,
    pub heap_free_bytes: Option<f64>,
}

/// A node's `/metrics`, read and parsed (10 s at most).
pub async fn scrape(addr: &str) -> Res<Scrape> {
    match tokio::time::timeout(Duration::from_secs(10), get_metrics(addr)).await {
        Ok(Ok(text)) => Ok(parse_metrics(&text)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("/metrics: no answer in 10 s".into()),
    }
}

/// `GET /metrics` over HTTP/1.0 (so the body is not chunked and ends with the connection).
async fn get_metrics(addr: &str) -> Res<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("/metrics: {}", head.lines().next().unwrap_or_default()).into());
    }
    Ok(body.to_string())
}

/// The soak's figures from a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> Scrape {
    const FLUSH: &str = "bottomline_flush_duration_seconds";
    let mut out = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        if name == "bottomline_ticket_log_cache_bytes" {
            out.ticket_cache_bytes = Some(v);
        } else if name == r#"bottomline_heap_bytes{state="in_use"}"# {
            out.heap_in_use_bytes = Some(v);
        } else if name == r#"bottomline_heap_bytes{state="free"}"# {
            out.heap_free_bytes = Some(v);
        } else if name == "bottomline_store_size_bytes" {
            out.store_bytes = Some(v);
        } else if let Some(rest) = name.strip_prefix(FLUSH) {
            if rest == "_sum" {
                out.flush.sum = v;
            } else if rest == "_count" {
                out.flush.count = v;
            } else if let Some(le) = rest
                .strip_prefix("_bucket{le=\"")
                .and_then(|r| r.strip_suffix("\"}"))
            {
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::NAN)
                };
                out.flush.bounds.push(bound);
                out.flush.cum.push(v);
            }
        }
    }
    out
}

/// One node's row of a sample.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub code: Option<Code>,
    pub rss: Option<f64>,
    pub rss_max: Option<f64>,
    /// The smallest VmRSS sampled since the previous sample (this one's included).
    pub rss_floor: Option<f64>,
    pub store: Option<f64>,
    pub ticket_cache: Option<f64>,
    pub heap_in_use: Option<f64>,
    pub heap_free: Option<f64>,
    pub up_blocks: u64,
    pub up_tickets: u64,
    pub children_blocks: u64,
    pub children_behind: u64,
    pub children_tickets_up: u64,
    pub children_tickets_down: u64,
    pub child_lag_max_s: Option<f64>,
    pub status_ms: Option<f64>,
    /// The flushes since the previous sample.
    pub flush: Hist,
    /// Its last self-check's time (unix ms) and result, once it ran one.
    pub self_check: Option<(i64, bool)>,
    /// What went wrong asking it (Status or /metrics).
    pub problem: Option<String>,
}

impl Row {
    fn json(&self) -> Value {
        let ms = |s: Option<f64>| {
            s.map(|s| {
                if s.is_infinite() {
                    json!("10000+")
                } else {
                    json!((s * 1e5).round() / 100.0)
                }
            })
        };
        json!([
            self.code.map(|c| c.to_string()),
            self.rss.map(round1),
            self.rss_max.map(round1),
            self.rss_floor.map(round1),
            self.store.map(round1),
            self.ticket_cache.map(|m| (m * 100.0).round() / 100.0),
            self.heap_in_use.map(round1),
            self.heap_free.map(round1),
            self.up_blocks,
            self.up_tickets,
            self.children_blocks,
            self.children_behind,
            self.children_tickets_up,
            self.children_tickets_down,
            self.child_lag_max_s.map(round1),
            self.status_ms.map(round1),
            self.flush.count as u64,
            ms(self.flush.mean()),
            ms(self.flush.quantile(0.99)),
            ms(self.flush.max_bucket()),
        ])
    }
}

/// The sampler's state between samples: each node's last histogram, when the last sample
/// was taken.
pub struct Looker {
    pub probes: Vec<Probe>,
    prev: HashMap<Code, Hist>,
    last: Option<Instant>,
}

/// One sample: the rows and the tree's aggregates.
pub struct Sample {
    pub rows: Vec<Row>,
    pub agg: Agg,
}

/// The tree's memory figures from the nodes' floors: what each kept between its bursts of
/// work (an import, a self-check) in the interval before the sample.
#[derive(Clone, Debug, Default)]
pub struct Floors {
    pub total: f64,
    pub province: f64,
    pub city_max: f64,
    pub county_max: f64,
    pub county_median: f64,
}

/// The tree's figures at one sample.
#[derive(Clone, Debug, Default)]
pub struct Agg {
    pub rss_total: f64,
    pub province_rss: f64,
    pub city_rss_max: f64,
    pub county_rss_max: f64,
    pub county_rss_median: f64,
    pub rss_max_total: f64,
    /// The same figures from each node's floor (`Row::rss_floor`).
    pub floor: Floors,
    pub province_store: f64,
    /// The province's and the largest city's ticket-log caches (MiB).
    pub province_ticket_cache: f64,
    pub city_ticket_cache_max: f64,
    pub backlog_blocks_up: u64,
    pub backlog_tickets_up: u64,
    pub backlog_tickets_down: u64,
    pub behind: u64,
    pub child_lag_max_s: f64,
    pub status_ms_max: f64,
    pub flushes: f64,
    /// Every node's flushes of the interval pooled.
    pub flush_mean_ms: Option<f64>,
    pub flush_p99_ms: Option<f64>,
    /// The largest of the nodes' own p99s, and whose.
    pub flush_p99_ms_max: Option<f64>,
    pub flush_p99_max_node: Option<Code>,
    /// The largest flush of the interval, as the upper bound of its bucket (infinite above
    /// the last bound).
    pub flush_max_ms: Option<f64>,
    /// Nodes that ran a self-check, and whose last one failed.
    pub self_checked: usize,
    pub self_check_failed: usize,
    pub problems: usize,
}

impl Agg {
    /// Everything waiting on a link: the uplinks' blocks and ticket events, and the ticket
    /// events waiting to go down.
    pub fn backlog_total(&self) -> u64 {
        self.backlog_blocks_up + self.backlog_tickets_up + self.backlog_tickets_down
    }

    pub fn json(&self) -> Value {
        let r2 = |v: Option<f64>| v.map(|v| (v * 100.0).round() / 100.0);
        json!({
            "rss_total_mib": round1(self.rss_total),
            "rss_max_total_mib": round1(self.rss_max_total),
            "province_rss_mib": round1(self.province_rss),
            "city_rss_max_mib": round1(self.city_rss_max),
            "county_rss_max_mib": round1(self.county_rss_max),
            "county_rss_median_mib": round1(self.county_rss_median),
            "floor": {
                "rss_total_mib": round1(self.floor.total),
                "province_rss_mib": round1(self.floor.province),
                "city_rss_max_mib": round1(self.floor.city_max),
                "county_rss_max_mib": round1(self.floor.county_max),
                "county_rss_median_mib": round1(self.floor.county_median),
            },
            "province_store_mib": round1(self.province_store),
            "province_ticket_cache_mib": round1(self.province_ticket_cache),
            "city_ticket_cache_max_mib": round1(self.city_ticket_cache_max),
            "backlog_total": self.backlog_total(),
            "backlog": {
                "blocks_up": self.backlog_blocks_up,
                "tickets_up": self.backlog_tickets_up,
                "tickets_down": self.backlog_tickets_down,
                "children_behind": self.behind,
            },
            "child_lag_max_s": round1(self.child_lag_max_s),
            "status_ms_max": round1(self.status_ms_max),
            "flushes": self.flushes as u64,
            "flush_mean_ms": r2(self.flush_mean_ms),
            "flush_p99_ms": r2(self.flush_p99_ms),
            "flush_p99_ms_max_node": r2(self.flush_p99_ms_max),
            "flush_p99_max_node": self.flush_p99_max_node.map(|c| c.to_string()),
            "flush_max_bucket_ms": self.flush_max_ms.map(|v| {
                if v.is_infinite() {
                    json!("10000+")
                } else {
                    json!(r2(Some(v)))
                }
            }),
            "self_checked_nodes": self.self_checked,
            "self_check_failed_nodes": self.self_check_failed,
            "nodes_not_answering": self.problems,
        })
    }
}

impl Looker {
    pub fn new(probes: Vec<Probe>) -> Looker {
        Looker {
            probes,
            prev: HashMap::new(),
            last: None,
        }
    }

    async fn scrape_all(&self) -> Vec<Res<Scrape>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, p) in self.probes.iter().enumerate() {
            let addr = p.http.clone();
            set.spawn(async move { (i, scrape(&addr).await) });
        }
        let mut out: Vec<Res<Scrape>> = (0..self.probes.len())
            .map(|_| Err("not scraped".into()))
            .collect();
        while let Some(Ok((i, r))) = set.join_next().await {
            out[i] = r;
        }
        out
    }

    async fn status_all(&self) -> Vec<Res<(pb::StatusReply, f64)>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, p) in self.probes.iter().enumerate() {
            let mut c = p.sync.clone();
            set.spawn(async move {
                let t = Instant::now();
                let r =
                    tokio::time::timeout(Duration::from_secs(10), c.status(pb::StatusRequest {}))
                        .await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let r: Res<(pb::StatusReply, f64)> = match r {
                    Ok(Ok(s)) => Ok((s.into_inner(), ms)),
                    Ok(Err(e)) => Err(format!("Status: {e}").into()),
                    Err(_) => Err("Status: no answer in 10 s".into()),
                };
                (i, r)
            });
        }
        let mut out: Vec<Res<(pb::StatusReply, f64)>> = (0..self.probes.len())
            .map(|_| Err("not asked".into()))
            .collect();
        while let Some(Ok((i, r))) = set.join_next().await {
            out[i] = r;
        }
        out
    }

    /// Look at every node (Status and /metrics concurrently), the RSS last.
    pub async fn look(&mut self, sampler: &Sampler) -> Sample {
        let (statuses, scrapes) = tokio::join!(self.status_all(), self.scrape_all());
        let now = Instant::now();
        let since = self.last.replace(now).unwrap_or(now);
        let (from, to) = (sampler.t(since), sampler.t(now));
        let unix_ms = bottomline::ledger::unix_ms_now();
        let mut rows = Vec::new();
        for ((p, st), sc) in self.probes.iter().zip(statuses).zip(scrapes) {
            let mut row = Row {
                code: Some(p.code),
                rss: mem_of(p.pid).map(|m| mib(m.rss)),
                ..Row::default()
            };
            let sampled = sampler.range_mib(p.pid, from, to);
            row.rss_max = sampled
                .map(|(_, hi)| hi)
                .into_iter()
                .chain(row.rss)
                .reduce(f64::max);
            row.rss_floor = sampled
                .map(|(lo, _)| lo)
                .into_iter()
                .chain(row.rss)
                .reduce(f64::min);
            match st {
                Ok((s, ms)) => {
                    row.status_ms = Some(ms);
                    row.self_check = crate::watch::self_check(&s);
                    if let Some(u) = &s.uplink {
                        row.up_blocks = u.backlog;
                        row.up_tickets = u.ticket_backlog;
                    }
                    for c in &s.children {
                        row.children_blocks += c.backlog;
                        row.children_behind += c.head.saturating_sub(c.acked);
                        row.children_tickets_up += c.ticket_backlog_up;
                        row.children_tickets_down += c.ticket_backlog_down;
                        if c.last_contact_unix_ms > 0 {
                            let lag = (unix_ms - c.last_contact_unix_ms) as f64 / 1000.0;
                            row.child_lag_max_s =
                                Some(row.child_lag_max_s.map_or(lag, |l: f64| l.max(lag)));
                        }
                    }
                }
                Err(e) => row.problem = Some(e.to_string()),
            }
            match sc {
                Ok(sc) => {
                    row.store = sc.store_bytes.map(|b| b / (1024.0 * 1024.0));
                    row.ticket_cache = sc.ticket_cache_bytes.map(|b| b / (1024.0 * 1024.0));
                    row.heap_in_use = sc.heap_in_use_bytes.map(|b| b / (1024.0 * 1024.0));
                    row.heap_free = sc.heap_free_bytes.map(|b| b / (1024.0 * 1024.0));
                    if let Some(prev) = self.prev.get(&p.code) {
                        row.flush = sc.flush.since(prev);
                    }
                    self.prev.insert(p.code, sc.flush);
                }
                Err(e) => {
                    let e = e.to_string();
                    row.problem = Some(row.problem.map_or(e.clone(), |p| format!("{p}; {e}")));
                }
            }
            rows.push(row);
        }
        let agg = aggregate(&rows);
        Sample { rows, agg }
    }
}

/// The tree's figures from the rows.
pub fn aggregate(rows: &[Row]) -> Agg {
    let mut a = Agg::default();
    let mut counties = Vec::new();
    let mut county_floors = Vec::new();
    let mut pooled = Hist::default();
    for r in rows {
        let Some(code) = r.code else { continue };
        let rss = r.rss.unwrap_or(0.0);
        let floor = r.rss_floor.unwrap_or(rss);
        a.rss_total += rss;
        a.rss_max_total += r.rss_max.unwrap_or(rss);
        a.floor.total += floor;
        match code.len() {
            2 => {
                a.province_rss = rss;
                a.floor.province = floor;
                a.province_store = r.store.unwrap_or(0.0);
                a.province_ticket_cache = r.ticket_cache.unwrap_or(0.0);
            }
            4 => {
                a.city_rss_max = a.city_rss_max.max(rss);
                a.floor.city_max = a.floor.city_max.max(floor);
                a.city_ticket_cache_max =
                    a.city_ticket_cache_max.max(r.ticket_cache.unwrap_or(0.0));
            }
            _ => {
                counties.push(rss);
                county_floors.push(floor);
            }
        }
        a.backlog_blocks_up += r.up_blocks;
        a.backlog_tickets_up += r.up_tickets;
        a.backlog_tickets_down += r.children_tickets_down;
        a.behind += r.children_behind;
        a.child_lag_max_s = a.child_lag_max_s.max(r.child_lag_max_s.unwrap_or(0.0));
        a.status_ms_max = a.status_ms_max.max(r.status_ms.unwrap_or(0.0));
        if r.flush.count > 0.0 {
            pooled.add(&r.flush);
            let top = r.flush.max_bucket().map(|s| s * 1000.0);
            if top > a.flush_max_ms {
                a.flush_max_ms = top;
            }
            let p99 = r.flush.quantile(0.99).map(|s| s * 1000.0);
            if p99 > a.flush_p99_ms_max {
                a.flush_p99_ms_max = p99;
                a.flush_p99_max_node = Some(code);
            }
        }
        if let Some((_, ok)) = r.self_check {
            a.self_checked += 1;
            if !ok {
                a.self_check_failed += 1;
            }
        }
        if r.problem.is_some() {
            a.problems += 1;
        }
    }
    (a.county_rss_max, a.county_rss_median) = max_and_median(counties);
    (a.floor.county_max, a.floor.county_median) = max_and_median(county_floors);
    a.flushes = pooled.count;
    a.flush_mean_ms = pooled.mean().map(|s| s * 1000.0);
    a.flush_p99_ms = pooled.quantile(0.99).map(|s| s * 1000.0);
    a
}

/// The largest and the median of `v` (0 when empty).
fn max_and_median(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    (v[v.len() - 1], percentile(&v, 0.5))
}

/// A sample as its JSON line.
pub fn sample_json(t_s: f64, phase: &str, s: &Sample, load: Value) -> Value {
    let problems: Vec<Value> = s
        .rows
        .iter()
        .filter_map(|r| {
            let p = r.problem.as_ref()?;
            Some(json!([r.code.map(|c| c.to_string()), p]))
        })
        .collect();
    let mut v = json!({
        "type": "sample",
        "t_s": round1(t_s),
        "phase": phase,
        "aggregates": s.agg.json(),
        "load": load,
        "columns": COLUMNS,
        "nodes": s.rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    if !problems.is_empty() {
        v["problems"] = json!(problems);
    }
    v
}
