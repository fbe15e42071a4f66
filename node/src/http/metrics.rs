//! The node's Prometheus metrics (`GET /metrics`): a registry per node (several nodes run in
//! one process in the tests, so nothing is global), the tower layer that counts and times
//! the gRPC requests, and the scrape-time gauges computed from a [`NodeView`].
//!
//! **Event metrics**, kept between scrapes (prefix `bottomline_`):
//! - `grpc_requests_total{method,code}` — finished gRPC calls; `method` is the request path
//!   (`/bottomline.v1.Sync/Stats`), `code` the numeric gRPC status (`0` = OK): the
//!   `grpc-status` of the response headers (a handler's error: tonic answers trailers-only),
//!   else of the trailers (a stream that ends with an error), else `0` for an HTTP 200
//!   response and `2` (UNKNOWN) for another; `1` (CANCELLED) when the client went away before
//!   the response ended. A call is counted when it ends, so a child's `Link` is counted when
//!   the link closes. Paths answered UNIMPLEMENTED without a message (tonic's answer to a
//!   path no service serves) are counted as `method="unknown"`, so a scanner cannot create
//!   series at will;
//! - `grpc_request_duration_seconds{method}` — time from the request to the response
//!   headers (the handler's time), for every method but the long-lived streams
//!   ([`LONG_LIVED`]: `Link`, `Import`, health `Watch`, reflection), whose duration is their
//!   connection's (or an upload's) and would only blur the buckets;
//! - `grpc_requests_in_flight` — calls started and not ended (open streams included);
//! - `http_requests_total{route,status}`, `http_request_duration_seconds{route}` —
//!   [`NodeMetrics::observe_http`], called by the HTTP server's middleware with the matched
//!   route (`/api/stats/{division}`, not the raw path);
//! - `flush_duration_seconds`, `cells_applied_total{source="child"|"local"}` — the ledger's
//!   ([`LedgerMetrics`]).
//!
//! **Gauges computed at each scrape** from a [`NodeView`] (gathered by [`NodeView::gather`]):
//! per child `child_lag_seconds` (now − last contact; a child never heard from has no lag
//! series, it shows as `child_silent 1`), `child_backlog_blocks` (blocks the child still has
//! to deliver, as it last reported), `child_ticket_backlog_events{direction="up"|"down"}`
//! (down: a lower bound when the child's cursor is more than `MAX_BACKLOG_SCAN` entries
//! behind), `child_connected`, `child_silent`, `child_stalled`; the node's own link
//! `uplink_connected`, `uplink_backlog_blocks`, `uplink_ticket_backlog_events`,
//! `uplink_links_established` (only on a node with a parent); `tickets{state}` (tickets held
//! here by state, sub-tickets included), `tickets_overdue`, `cases_due` and `cases_overdue`
//! (a county's pending identification cases at day 10 and past day 15), `store_size_bytes`,
//! `heap_bytes{state="in_use"|"free"}` (the allocator's figures, `memory::heap_usage`: what is
//! allocated, and what was freed but is held — fragmentation shows as the second growing),
//! `ticket_log_cache_entries` and `ticket_log_cache_bytes` (the ticket log's recent entries
//! kept in memory for the senders, bounded),
//! `change_log_head`, `ticket_log_head`, `self_check_ok` and
//! `self_check_timestamp_seconds` (after the first self-check),
//! `crl_next_update_timestamp_seconds` (the loaded revocation list's nextUpdate; the alert
//! `BottomlineCrlDue` fires three days before it), `node_info{division}` (1).
//!
//! **Formats.** [`NodeMetrics::render`] writes the Prometheus text format 0.0.4
//! ([`CONTENT_TYPE`]): what `promtool check metrics` reads (it does not read OpenMetrics: an
//! OpenMetrics counter's `# HELP x` does not name its sample `x_total`, which promtool
//! reports as "no help text"). [`NodeMetrics::render_openmetrics`] writes OpenMetrics as
//! prometheus-client encodes it, for a scraper that asks for it
//! ([`NodeMetrics::render_for`] chooses by the `Accept` header).
//!
//! **Cost of a scrape** (a province: 107 children, ~100 000 tickets, every 15 s): the child
//! reports (a few store reads per child), one bounded pass over the ticket log for the
//! backlogs down (at most `MAX_BACKLOG_SCAN` entries, from memory where cached), and one
//! scan of the ticket index's rows (`Ledger::ticket_rows`, ~40 bytes a ticket, no history
//! folded): tens of milliseconds at 100 000 tickets. [`NodeView::gather`] reads the store:
//! call it on a blocking thread.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::division::Code;
pub use crate::ledger::{CellsFrom, LedgerMetrics};
use crate::ledger::{Ledger, LedgerError};
use crate::rpc::{ChildReport, UplinkState};
use crate::tickets::State;

/// Content type of [`NodeMetrics::render`] (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of [`NodeMetrics::render_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of every metric name.
pub const PREFIX: &str = "bottomline";

/// Bucket bounds of the request latency histograms, in seconds (0.25 ms to 10 s).
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// gRPC methods whose calls last as long as a connection or an upload: counted, not timed.
pub const LONG_LIVED: [&str; 5] = [
    "/bottomline.v1.Sync/Link",
    "/bottomline.v1.Import/Import",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The `method` label of calls to a path no service serves.
pub const UNKNOWN_METHOD: &str = "unknown";

/// Longest label value taken from a request (a path, a route); longer ones are cut.
const MAX_LABEL: usize = 128;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A label value from outside (a path, a route): the characters of a gRPC path or a route
/// template kept, anything else (quotes, backslashes, newlines: prometheus-client does not
/// escape label values) replaced by `_`, at most [`MAX_LABEL`] characters.
fn label_value(s: &str) -> String {
    s.chars()
        .take(MAX_LABEL)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/._-{}:*".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A node's metrics (see the module docs). Made once per node, shared (`Arc`) by the gRPC
/// layer, the HTTP middleware and the `/metrics` handler.
pub struct NodeMetrics {
    /// The event metrics (counters and histograms kept between scrapes).
    events: Registry,
    grpc_requests: Family<Labels, Counter>,
    grpc_duration: HistogramFamily,
    grpc_in_flight: Gauge,
    http_requests: Family<Labels, Counter>,
    http_duration: HistogramFamily,
    ledger: LedgerMetrics,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl NodeMetrics {
    /// The metrics of a node whose ledger counts into `ledger` (`Ledger::metrics`).
    pub fn new(ledger: &LedgerMetrics) -> Arc<NodeMetrics> {
        let mut events = Registry::with_prefix(PREFIX);
        let grpc_requests = Family::<Labels, Counter>::default();
        let grpc_duration: HistogramFamily =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let grpc_in_flight = Gauge::<i64, AtomicI64>::default();
        let http_requests = Family::<Labels, Counter>::default();
        let http_duration: HistogramFamily =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        events.register(
            "grpc_requests",
            "gRPC calls ended, by method (request path) and numeric gRPC status code (0 = OK)",
            grpc_requests.clone(),
        );
        events.register_with_unit(
            "grpc_request_duration",
            "Time from a gRPC request to its response headers, by method (long-lived streams \
             Link, Import, Watch and reflection not timed)",
            Unit::Seconds,
            grpc_duration.clone(),
        );
        events.register(
            "grpc_requests_in_flight",
            "gRPC calls started and not ended (open streams included)",
            grpc_in_flight.clone(),
        );
        events.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        events.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route",
            Unit::Seconds,
            http_duration.clone(),
        );
        ledger.register(&mut events);
        Arc::new(NodeMetrics {
            events,
            grpc_requests,
            grpc_duration,
            grpc_in_flight,
            http_requests,
            http_duration,
            ledger: ledger.clone(),
        })
    }

    /// The tower layer that counts and times the gRPC server's calls:
    /// `tonic::transport::Server::builder().layer(metrics.grpc_layer())`.
    pub fn grpc_layer(self: &Arc<Self>) -> GrpcMetricsLayer {
        GrpcMetricsLayer {
            metrics: Arc::clone(self),
        }
    }

    /// Count and time an HTTP request: `route` is the matched route template (axum's
    /// `MatchedPath`; a constant such as `"unmatched"` when none matched), never the raw
    /// path, so that the series stay bounded.
    pub fn observe_http(&self, route: &str, status: u16, elapsed: Duration) {
        let route = label_value(route);
        self.http_requests
            .get_or_create(&vec![
                ("route", route.clone()),
                ("status", status.to_string()),
            ])
            .inc();
        self.http_duration
            .get_or_create(&vec![("route", route)])
            .observe(elapsed.as_secs_f64());
    }

    /// gRPC calls of `method` ended with `code` so far (for tests and diagnostics).
    pub fn grpc_requests(&self, method: &str, code: &str) -> u64 {
        self.grpc_requests
            .get(&vec![
                ("method", method.to_string()),
                ("code", code.to_string()),
            ])
            .map_or(0, |c| c.get())
    }

    /// The ledger metrics registered here.
    pub fn ledger(&self) -> &LedgerMetrics {
        &self.ledger
    }

    /// The exposition in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]): the event
    /// metrics and the gauges of `view`.
    pub fn render(&self, view: &NodeView) -> String {
        to_text_format(&self.render_openmetrics(view))
    }

    /// The exposition in OpenMetrics ([`OPENMETRICS_CONTENT_TYPE`]), `# EOF` at the end.
    pub fn render_openmetrics(&self, view: &NodeView) -> String {
        let gauges = view.registry();
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.events);
        let _ = encode_registry(&mut out, &gauges);
        let _ = encode_eof(&mut out);
        out
    }

    /// The content type and body for a scraper that sent `accept`: OpenMetrics when it asks
    /// for `application/openmetrics-text`, else the text format.
    pub fn render_for(&self, view: &NodeView, accept: Option<&str>) -> (&'static str, String) {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            (OPENMETRICS_CONTENT_TYPE, self.render_openmetrics(view))
        } else {
            (CONTENT_TYPE, self.render(view))
        }
    }

    /// A call of `path` starts.
    fn start(self: &Arc<Self>, path: &str) -> Call {
        self.grpc_in_flight.inc();
        Call {
            metrics: Arc::clone(self),
            method: label_value(path),
            start: Instant::now(),
            done: false,
        }
    }
}

/// OpenMetrics as prometheus-client writes it → the Prometheus text format 0.0.4: a
/// counter's `# HELP`/`# TYPE` name its `_total` sample, `# UNIT` and `# EOF` go (the names
/// already end in their unit), `unknown` is `untyped`.
fn to_text_format(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if line.starts_with("# HELP ") {
            if let Some(h) = help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), kind),
                "unknown" => (name.to_string(), "untyped"),
                _ => (name.to_string(), kind),
            };
            if let Some(h) = help.take() {
                let text = h
                    .strip_prefix("# HELP ")
                    .and_then(|r| r.split_once(' '))
                    .map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = help {
        out.push_str(h);
        out.push('\n');
    }
    out
}

/// What the scrape-time gauges show: a node's state at one moment (see the module docs).
#[derive(Clone, Debug)]
pub struct NodeView {
    /// The node's division.
    pub division: Code,
    /// When the view was taken (Unix ms): the lags are measured to it.
    pub now_unix_ms: i64,
    /// The children's links (`rpc::child_reports`, with the backlogs down filled in by
    /// `rpc::fill_ticket_backlogs`).
    pub children: Vec<ChildReport>,
    /// The node's own link to its parent (`None` at the top of the tree).
    pub uplink: Option<UplinkState>,
    /// Tickets held here by state (every state, zeros included).
    pub tickets: Vec<(State, u64)>,
    /// Tickets held here that are overdue today (China time).
    pub tickets_overdue: u64,
    /// A county's pending identification cases at day 10 or later, and past the 15-day
    /// deadline (today, China time); (0, 0) above county level.
    pub cases_due: (u64, u64),
    /// Bytes the store occupies on disk.
    pub store_bytes: u64,
    /// The head of the cell change log.
    pub change_log_head: u64,
    /// The flushed head of the ticket log.
    pub ticket_log_head: u64,
    /// The last self-check: passed, and when it finished (Unix ms); `None` before the first.
    pub self_check: Option<(bool, i64)>,
    /// The process's heap ([`crate::memory::heap_usage`]), `None` where unknown.
    pub heap: Option<crate::memory::HeapUsage>,
    /// The ticket log's recent entries held in memory: entries, approximate bytes.
    pub ticket_cache: (u64, u64),
    /// The loaded revocation list's nextUpdate (Unix seconds); `None` without TLS, without
    /// a list, or when it declares none.
    pub crl_next_update: Option<i64>,
}

impl NodeView {
    /// Gather the view of a running node (store reads: call on a blocking thread).
    /// `silent_after` and `stalled_after` are the node's `[sync]` limits
    /// (`SyncConfig::silent_after`, `stalled_after`).
    pub fn gather(
        handle: &crate::node::NodeHandle,
        silent_after: Duration,
        stalled_after: Duration,
    ) -> Result<NodeView, LedgerError> {
        let ledger = &handle.ledger;
        let mut children =
            crate::rpc::child_reports(ledger, &handle.children, silent_after, stalled_after)?;
        crate::rpc::fill_ticket_backlogs(ledger, &mut children)?;
        let uplink = handle
            .uplink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let today = crate::period::today_in_china();
        let (tickets, tickets_overdue) = ticket_counts(ledger, today)?;
        let cases_due = if ledger.division().level() == crate::division::Level::County {
            let pending = ledger.cases_pending(today)?;
            (
                pending.iter().filter(|c| c.due).count() as u64,
                pending.iter().filter(|c| c.overdue).count() as u64,
            )
        } else {
            (0, 0)
        };
        let self_check = handle
            .self_check
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| (c.report.ok(), c.at_unix_ms));
        Ok(NodeView {
            division: ledger.division(),
            now_unix_ms: crate::ledger::unix_ms_now(),
            children,
            uplink: uplink.parent.is_some().then_some(uplink),
            tickets,
            tickets_overdue,
            cases_due,
            store_bytes: ledger.store().size_on_disk(),
            change_log_head: ledger.cell_seq()?,
            ticket_log_head: ledger.ticket_head(),
            self_check,
            heap: crate::memory::heap_usage(),
            ticket_cache: ledger.ticket_cache_usage(),
            crl_next_update: handle.tls.get().and_then(|t| t.crl_next_update()),
        })
    }

    /// The scrape-time gauges of this view in a registry of their own.
    fn registry(&self) -> Registry {
        let mut reg = Registry::with_prefix(PREFIX);
        let child = |r: &ChildReport| vec![("child", r.division.to_string())];
        let flag = |b: bool| i64::from(b);
        gauges(
            &mut reg,
            "node_info",
            "The node's division (value 1)",
            vec![(vec![("division", self.division.to_string())], 1)],
        );
        lags(
            &mut reg,
            "child_lag",
            "Seconds since the last contact with a child (none for a child never heard from)",
            self.children
                .iter()
                .filter(|r| r.last_contact_unix_ms > 0)
                .map(|r| {
                    let ms = (self.now_unix_ms - r.last_contact_unix_ms).max(0);
                    (child(r), ms as f64 / 1000.0)
                })
                .collect(),
        );
        gauges(
            &mut reg,
            "child_backlog_blocks",
            "Blocks of cells a child still has to deliver, as it last reported",
            self.children
                .iter()
                .map(|r| (child(r), sat(r.backlog)))
                .collect(),
        );
        gauges(
            &mut reg,
            "child_ticket_backlog_events",
            "Ticket events waiting on a child's link: up = the child still has to deliver (as \
             it last reported), down = this node's events for the child not yet acked (a lower \
             bound when the child is far behind)",
            self.children
                .iter()
                .flat_map(|r| {
                    let code = r.division.to_string();
                    [
                        (
                            vec![("child", code.clone()), ("direction", "up".to_string())],
                            sat(r.ticket_backlog_up),
                        ),
                        (
                            vec![("child", code), ("direction", "down".to_string())],
                            sat(r.ticket_backlog_down),
                        ),
                    ]
                })
                .collect(),
        );
        for (name, help, f) in [
            (
                "child_connected",
                "1 while a child's link is open",
                (|r: &ChildReport| r.connected) as fn(&ChildReport) -> bool,
            ),
            (
                "child_silent",
                "1 when a child was not heard from for longer than silent_after_secs (or never)",
                |r: &ChildReport| r.silent,
            ),
            (
                "child_stalled",
                "1 when a child has something to deliver and its delivered position has not \
                 moved for longer than stalled_child_secs",
                |r: &ChildReport| r.stalled,
            ),
        ] {
            gauges(
                &mut reg,
                name,
                help,
                self.children
                    .iter()
                    .map(|r| (child(r), flag(f(r))))
                    .collect(),
            );
        }
        if let Some(up) = &self.uplink {
            gauge(
                &mut reg,
                "uplink_connected",
                "1 while the link to the parent is open",
                flag(up.connected),
            );
            gauge(
                &mut reg,
                "uplink_backlog_blocks",
                "Blocks of cells changed after what the parent holds (as of the last heartbeat)",
                sat(up.backlog),
            );
            gauge(
                &mut reg,
                "uplink_ticket_backlog_events",
                "Own ticket events for the parent not yet acked (as of the last heartbeat)",
                sat(up.ticket_backlog),
            );
            gauge(
                &mut reg,
                "uplink_links_established",
                "Links to the parent established since the node started",
                sat(up.links),
            );
        }
        gauges(
            &mut reg,
            "tickets",
            "Tickets held here, by state (sub-tickets included)",
            self.tickets
                .iter()
                .map(|(s, n)| (vec![("state", s.as_str().to_string())], sat(*n)))
                .collect(),
        );
        gauge(
            &mut reg,
            "tickets_overdue",
            "Tickets held here past their deadline and not rectified (today, China time)",
            sat(self.tickets_overdue),
        );
        gauge(
            &mut reg,
            "cases_due",
            "Pending identification cases at day 10 or later since discovery (a county; today, China time)",
            sat(self.cases_due.0),
        );
        gauge(
            &mut reg,
            "cases_overdue",
            "Pending identification cases past the 15-day deadline (a county; today, China time)",
            sat(self.cases_due.1),
        );
        bytes_gauge(
            &mut reg,
            "store_size",
            "Bytes the node's store occupies on disk",
            sat(self.store_bytes),
        );
        if let Some(h) = self.heap {
            let heap = Family::<Labels, Gauge<i64, AtomicI64>>::default();
            for (state, v) in [("in_use", h.in_use), ("free", h.free)] {
                heap.get_or_create(&vec![("state", state.to_string())])
                    .set(sat(v));
            }
            reg.register_with_unit(
                "heap",
                "The process's heap as its allocator (glibc malloc or jemalloc) counts it: bytes in use, and bytes freed but held in memory",
                Unit::Bytes,
                heap,
            );
        }
        gauge(
            &mut reg,
            "ticket_log_cache_entries",
            "Recent ticket-log entries held in memory for the link senders (bounded)",
            sat(self.ticket_cache.0),
        );
        bytes_gauge(
            &mut reg,
            "ticket_log_cache",
            "Approximate bytes of the recent ticket-log entries held in memory (bounded: 16 MiB at a parent, 1 MiB at a county, two minutes)",
            sat(self.ticket_cache.1),
        );
        gauge(
            &mut reg,
            "change_log_head",
            "Highest position of the cell change log",
            sat(self.change_log_head),
        );
        gauge(
            &mut reg,
            "ticket_log_head",
            "Highest flushed position of the ticket log",
            sat(self.ticket_log_head),
        );
        if let Some((ok, at)) = self.self_check {
            gauge(
                &mut reg,
                "self_check_ok",
                "1 when the node's last self-check found its cells consistent",
                flag(ok),
            );
            let when = Gauge::<f64, AtomicU64>::default();
            when.set(at as f64 / 1000.0);
            reg.register(
                "self_check_timestamp_seconds",
                "When the last self-check finished (Unix time)",
                when,
            );
        }
        if let Some(t) = self.crl_next_update {
            gauge(
                &mut reg,
                "crl_next_update_timestamp_seconds",
                "When the loaded revocation list is due to be re-signed, its nextUpdate (Unix \
                 time); past it, certificates revoked since may still be accepted",
                t,
            );
        }
        reg
    }
}

/// [`NodeView::gather`] (what the `/metrics` handler calls, on a blocking thread).
pub fn node_view(
    handle: &crate::node::NodeHandle,
    silent_after: Duration,
    stalled_after: Duration,
) -> Result<NodeView, LedgerError> {
    NodeView::gather(handle, silent_after, stalled_after)
}

/// Tickets held by `ledger` by state (every state, zeros included), and those overdue on
/// `today`: one pass over the ticket index's rows, no history folded.
pub fn ticket_counts(
    ledger: &Ledger,
    today: jiff::civil::Date,
) -> Result<(Vec<(State, u64)>, u64), LedgerError> {
    let mut by_state: Vec<(State, u64)> = State::ALL.iter().map(|s| (*s, 0)).collect();
    let mut overdue = 0;
    for (_, row) in ledger.ticket_rows(None, None)? {
        if let Some(slot) = by_state.iter_mut().find(|(s, _)| *s == row.state) {
            slot.1 += 1;
        }
        if row.overdue(today) {
            overdue += 1;
        }
    }
    Ok((by_state, overdue))
}

/// A count as a gauge value.
fn sat(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Register an integer gauge family (not when it has no series).
fn gauges(reg: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, i64)>) {
    if rows.is_empty() {
        return;
    }
    let family = Family::<Labels, Gauge>::default();
    for (labels, v) in rows {
        family.get_or_create(&labels).set(v);
    }
    reg.register(name, help, family);
}

/// Register a gauge family in seconds (`name` gets the `_seconds` suffix).
fn lags(reg: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, f64)>) {
    if rows.is_empty() {
        return;
    }
    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (labels, v) in rows {
        family.get_or_create(&labels).set(v);
    }
    reg.register_with_unit(name, help, Unit::Seconds, family);
}

/// Register one integer gauge.
fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64, AtomicI64>::default();
    g.set(v);
    reg.register(name, help, g);
}

/// Register one gauge in bytes (`name` gets the `_bytes` suffix).
fn bytes_gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64, AtomicI64>::default();
    g.set(v);
    reg.register_with_unit(name, help, Unit::Bytes, g);
}

/// The tower layer of [`NodeMetrics::grpc_layer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    metrics: Arc<NodeMetrics>,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The service of [`GrpcMetricsLayer`]: counts and times each call of `inner`.
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<NodeMetrics>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: hyper::body::Body + Send + 'static,
{
    type Response = http::Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let mut call = self.metrics.start(req.uri().path());
        let response = self.inner.call(req);
        Box::pin(async move {
            match response.await {
                Ok(res) => {
                    let ok_default = res.status() == http::StatusCode::OK;
                    let call = match call.headers(&res) {
                        // Trailers-only: the call's status is known now.
                        Some(code) => {
                            call.finish(&code);
                            None
                        }
                        // An empty body the server need not poll.
                        None if res.body().is_end_stream() => {
                            call.finish(if ok_default { "0" } else { "2" });
                            None
                        }
                        None => Some(call),
                    };
                    Ok(res.map(|inner| MetricsBody {
                        inner,
                        call,
                        ok_default,
                    }))
                }
                Err(e) => {
                    call.finish("2");
                    Err(e)
                }
            }
        })
    }
}

/// One call under way: counted once, when it ends (or is dropped: CANCELLED).
struct Call {
    metrics: Arc<NodeMetrics>,
    method: String,
    start: Instant,
    done: bool,
}

impl Call {
    /// The response headers arrived: settle the method label, time the call, and return
    /// the status if the headers carry it (trailers-only).
    fn headers<B>(&mut self, res: &http::Response<B>) -> Option<String> {
        let headers = res.headers();
        let code = headers
            .get("grpc-status")
            .map(|v| status_label(v.to_str().unwrap_or("")));
        let message_empty = headers
            .get("grpc-message")
            .is_none_or(|m| m.as_bytes().is_empty());
        if code.as_deref() == Some("12") && message_empty {
            // tonic's answer to a path no service serves.
            self.method = UNKNOWN_METHOD.to_string();
        }
        if !LONG_LIVED.contains(&self.method.as_str()) {
            self.metrics
                .grpc_duration
                .get_or_create(&vec![("method", self.method.clone())])
                .observe(self.start.elapsed().as_secs_f64());
        }
        code
    }

    fn finish(&mut self, code: &str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.metrics.grpc_in_flight.dec();
        self.metrics
            .grpc_requests
            .get_or_create(&vec![
                ("method", std::mem::take(&mut self.method)),
                ("code", code.to_string()),
            ])
            .inc();
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Dropped before its end: the client went away (or the server is shutting down).
        self.finish("1");
    }
}

/// A `grpc-status` value as a label: its digits, or `2` (UNKNOWN) if it is not a code.
fn status_label(v: &str) -> String {
    if !v.is_empty() && v.len() <= 2 && v.bytes().all(|b| b.is_ascii_digit()) {
        v.to_string()
    } else {
        "2".to_string()
    }
}

/// A response body that counts its call when it ends, with the status of its trailers.
pub struct MetricsBody<B> {
    inner: B,
    /// The call, until it is counted.
    call: Option<Call>,
    /// The response was HTTP 200: an end without a `grpc-status` counts as OK.
    ok_default: bool,
}

impl<B> MetricsBody<B> {
    fn finish(&mut self, code: &str) {
        if let Some(mut c) = self.call.take() {
            c.finish(code);
        }
    }

    fn default_code(&self) -> &'static str {
        if self.ok_default {
            "0"
        } else {
            "2"
        }
    }
}

impl<B> std::fmt::Debug for MetricsBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsBody").finish_non_exhaustive()
    }
}

impl<B> hyper::body::Body for MetricsBody<B>
where
    B: hyper::body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .map(|v| status_label(v.to_str().unwrap_or("")));
                    let code = code.unwrap_or_else(|| this.default_code().to_string());
                    this.finish(&code);
                } else if this.inner.is_end_stream() {
                    // The last data frame of a body without trailers: hyper may not poll
                    // again.
                    let code = this.default_code();
                    this.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish("2"),
            Poll::Ready(None) => {
                let code = this.default_code();
                this.finish(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
