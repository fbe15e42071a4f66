//! The soak's load: next-day files dropped into every county's inbox in turn, and ticket
//! traffic — the province's inventories and the cities' tickets to their counties, the
//! counties' clerks accepting, starting and rectifying them, the issuers verifying — all
//! through the nodes' `Tickets` API with the benchmark's operator certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottomline::division::Code;
use bottomline::ledger::Act;
use bottomline::rpc::tickets_client::{ListFilter, NewTicket, TicketsClient};
use bottomline::security::tls::ClientTls;
use bottomline::tickets::{Severity, State, TicketSource};
use jiff::civil::Date;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::common::Res;
use crate::data;

/// Where the run is: the soak window (writes and tickets), the drain (no new writes or
/// tickets; the clerks and issuers finish the open tickets), the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Soak,
    Drain,
    End,
}

/// What the load did so far (read by the samples).
#[derive(Default)]
pub struct Counters {
    /// Next-day sets dropped into an inbox, and their records.
    pub drops: AtomicU64,
    pub records: AtomicU64,
    /// A county's turn skipped because its previous drop was still in its inbox, or because
    /// its next-day sets ran out (a warm-up longer than planned).
    pub deferred: AtomicU64,
    pub exhausted: AtomicU64,
    /// Tickets issued (the province's inventories and the cities' tickets).
    pub issued: AtomicU64,
    pub accepted: AtomicU64,
    pub started: AtomicU64,
    pub rectified: AtomicU64,
    /// Verified by their issuer (closed).
    pub verified: AtomicU64,
    /// Calls that failed (the first few kept in `first_errors`).
    pub errors: AtomicU64,
    pub first_errors: Mutex<Vec<String>>,
    /// Tickets issued to each county.
    pub per_county: Mutex<HashMap<Code, u64>>,
    /// Tickets issued by each issuer.
    pub per_issuer: Mutex<HashMap<Code, u64>>,
    /// The days the drops were dated.
    pub days: Mutex<Vec<Date>>,
}

impl Counters {
    pub fn get(n: &AtomicU64) -> u64 {
        n.load(Ordering::Relaxed)
    }

    fn add(n: &AtomicU64, v: u64) {
        n.fetch_add(v, Ordering::Relaxed);
    }

    fn error(&self, what: String) {
        Counters::add(&self.errors, 1);
        if let Ok(mut v) = self.first_errors.lock() {
            if v.len() < 10 {
                v.push(what);
            }
        }
    }

    /// The counters as JSON.
    pub fn json(&self) -> Value {
        let g = Counters::get;
        json!({
            "drops": g(&self.drops),
            "records_dropped": g(&self.records),
            "drops_deferred": g(&self.deferred),
            "sets_exhausted": g(&self.exhausted),
            "tickets_issued": g(&self.issued),
            "accepted": g(&self.accepted),
            "started": g(&self.started),
            "rectified": g(&self.rectified),
            "verified": g(&self.verified),
            "errors": g(&self.errors),
        })
    }
}

/// The next-day sets of every county, written once before the tree starts:
/// `dir/<county>/<k>/` for k in 0..`per_county`, day k dated `first − k` (no record may be
/// dated after today, so the series goes back from the day after the data: the ids are new
/// each day, and the later days are late records for past weeks).
pub struct Days {
    dir: PathBuf,
    pub first: Date,
    pub per_county: usize,
    /// Records in county i's day k.
    records: HashMap<Code, Vec<usize>>,
}

impl Days {
    pub fn write(
        set: &Path,
        counties: &[Code],
        dir: &Path,
        first: Date,
        per_county: usize,
    ) -> Res<Days> {
        let mut records = HashMap::new();
        for &c in counties {
            let days: Vec<(PathBuf, Date)> = (0..per_county)
                .map(|k| -> Res<(PathBuf, Date)> {
                    let day = first
                        .checked_sub(jiff::Span::new().days(k as i64))
                        .map_err(|e| e.to_string())?;
                    Ok((dir.join(c.to_string()).join(k.to_string()), day))
                })
                .collect::<Res<_>>()?;
            let n = data::next_days(&set.join(c.to_string()), &days)?;
            records.insert(c, n.iter().map(data::DayFiles::records).collect());
        }
        Ok(Days {
            dir: dir.to_path_buf(),
            first,
            per_county,
            records,
        })
    }

    fn day(&self, k: usize) -> Option<Date> {
        self.first
            .checked_sub(jiff::Span::new().days(k as i64))
            .ok()
    }

    /// Records per day set: (smallest, mean, largest) over every county and day.
    pub fn records_json(&self) -> Value {
        let all: Vec<usize> = self.records.values().flatten().copied().collect();
        let sum: usize = all.iter().sum();
        json!({
            "min": all.iter().min(),
            "mean": (sum as f64 / all.len().max(1) as f64).round(),
            "max": all.iter().max(),
        })
    }
}

/// Whether a county's inbox still holds files (its previous drop not taken yet).
pub fn inbox_busy(inbox: &Path) -> bool {
    std::fs::read_dir(inbox).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_file()))
    })
}

/// Files the county's inbox refused so far (their reports in `rejected/`).
pub fn rejected(inbox: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(inbox.join("rejected")).map_or_else(
        |_| Vec::new(),
        |d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".report.txt"))
                .collect()
        },
    )
}

/// The writer: every `every / counties` a county's next day (in turn) is moved into its
/// inbox (`inboxes/<code>`), until the soak ends; a county whose previous drop is still in
/// its inbox is skipped this turn (`deferred`), as is one whose sets ran out (`exhausted`).
pub async fn writer(
    days: Arc<Days>,
    counties: Vec<Code>,
    inboxes: PathBuf,
    every: Duration,
    counters: Arc<Counters>,
    mut phase: watch::Receiver<Phase>,
) -> Res<()> {
    let mut next: HashMap<Code, usize> = HashMap::new();
    let mut tick = tokio::time::interval(every.div_f64(counties.len().max(1) as f64));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for &c in counties.iter().cycle() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = phase.wait_for(|p| *p != Phase::Soak) => return Ok(()),
        }
        let inbox = inboxes.join(c.to_string());
        if inbox_busy(&inbox) {
            Counters::add(&counters.deferred, 1);
            continue;
        }
        let k = next.entry(c).or_insert(0);
        if *k >= days.per_county {
            Counters::add(&counters.exhausted, 1);
            continue;
        }
        let stage = days.dir.join(c.to_string()).join(k.to_string());
        for f in ["households.csv", "signals.csv", "measures.csv"] {
            std::fs::rename(stage.join(f), inbox.join(f))?;
        }
        Counters::add(&counters.drops, 1);
        let n = days.records.get(&c).and_then(|r| r.get(*k)).copied();
        Counters::add(&counters.records, n.unwrap_or(0) as u64);
        if let (Some(day), Ok(mut v)) = (days.day(*k), counters.days.lock()) {
            if !v.contains(&day) {
                v.push(day);
            }
        }
        *k += 1;
    }
    Ok(())
}

/// The ticket traffic's settings.
pub struct Tickets {
    /// Between two rounds of issues.
    pub every: Duration,
    /// Tickets in each of the province's inventories.
    pub per_inventory: usize,
    /// Between two visits of a county's clerk, and two verification passes of the issuers.
    pub clerk: Duration,
    pub deadline: Date,
}

/// The issuers: every `every` the province issues an inventory of `per_inventory` tickets
/// over the counties in turn (`Inventory`, a `tickets.csv`), and one city in turn issues a
/// ticket to each of its counties (`Issue`); every `clerk` each issuer lists its rectified
/// tickets and verifies them (closes). Issues stop with the soak, verification goes on until
/// the end. Returns the clients at the end (the province's first, as given).
pub async fn issuers(
    mut api: Vec<(Code, TicketsClient)>,
    counties: Vec<Code>,
    cfg: Tickets,
    counters: Arc<Counters>,
    mut phase: watch::Receiver<Phase>,
) -> Res<Vec<(Code, TicketsClient)>> {
    let mut issue =
        tokio::time::interval_at(tokio::time::Instant::now() + cfg.every / 2, cfg.every);
    issue.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut verify = tokio::time::interval(cfg.clerk);
    verify.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut round = 0usize;
    loop {
        let soak = *phase.borrow() == Phase::Soak;
        tokio::select! {
            _ = issue.tick(), if soak => {
                issue_round(&mut api, &counties, &cfg, round, &counters).await?;
                round += 1;
            }
            _ = verify.tick() => verify_pass(&mut api, &counters).await,
            r = phase.changed() => {
                if r.is_err() || *phase.borrow() == Phase::End {
                    return Ok(api);
                }
            }
        }
    }
}

/// Round `round` of the issues: the province's inventory (`api[0]`), one city's tickets.
async fn issue_round(
    api: &mut [(Code, TicketsClient)],
    counties: &[Code],
    cfg: &Tickets,
    round: usize,
    counters: &Counters,
) -> Res<()> {
    let (province, cities) = api.split_first_mut().ok_or("no issuers")?;
    let rows: Vec<Code> = (0..cfg.per_inventory)
        .map(|i| counties[(round * cfg.per_inventory + i) % counties.len()])
        .collect();
    let csv = inventory_csv(round, &rows, cfg.deadline);
    let name = format!("soak-{round:04}");
    match province.1.inventory(Some(province.0), &name, csv).await {
        Ok(keys) => issued(counters, province.0, &rows, keys.len()),
        Err(e) => counters.error(format!("inventory {name} at {}: {e}", province.0)),
    }
    if cities.is_empty() {
        return Ok(());
    }
    let (city, client) = &mut cities[round % cities.len()];
    let targets: Vec<Code> = counties
        .iter()
        .copied()
        .filter(|c| city.contains(*c))
        .collect();
    let new = targets
        .iter()
        .map(|t| NewTicket {
            id: format!("C{round:04}-{t}"),
            target: t.to_string(),
            category: "monitoring not in time".into(),
            source: TicketSource::Inspection.to_string(),
            severity: Severity::Low.to_string(),
            deadline: cfg.deadline.to_string(),
            description: format!("city {city} soak round {round}"),
            household_code: None,
            inventory: None,
        })
        .collect();
    match client.issue(Some(*city), new).await {
        Ok(keys) => issued(counters, *city, &targets, keys.len()),
        Err(e) => counters.error(format!("issue at {city}: {e}")),
    }
    Ok(())
}

/// Each issuer verifies (closes) the tickets it issued that are rectified.
async fn verify_pass(api: &mut [(Code, TicketsClient)], counters: &Counters) {
    for (code, client) in api {
        let f = ListFilter {
            state: Some(State::Rectified.to_string()),
            issuer: Some(*code),
            ..ListFilter::default()
        };
        let keys: Vec<String> = match client.list(&f).await {
            Ok((rows, _)) => rows.into_iter().map(|r| r.key).collect(),
            Err(e) => {
                counters.error(format!("list at {code}: {e}"));
                continue;
            }
        };
        if keys.is_empty() {
            continue;
        }
        match client.act(Some(*code), &keys, &Act::Verify).await {
            Ok(_) => Counters::add(&counters.verified, keys.len() as u64),
            Err(e) => counters.error(format!("verify at {code}: {e}")),
        }
    }
}

/// Round `round`'s inventory of the province: a `tickets.csv` with a ticket to each of
/// `targets`.
fn inventory_csv(round: usize, targets: &[Code], deadline: Date) -> Vec<u8> {
    let mut csv =
        String::from("id,target,category,source,severity,deadline,description,household_code\n");
    for (i, c) in targets.iter().enumerate() {
        csv.push_str(&format!(
            "P{round:04}-{i:04},{c},assistance not in place,{},{},{deadline},\
             soak inventory {round} finding {i},\n",
            TicketSource::Inspection,
            Severity::Medium,
        ));
    }
    csv.into_bytes()
}

fn issued(counters: &Counters, issuer: Code, targets: &[Code], keys: usize) {
    Counters::add(&counters.issued, keys as u64);
    if let Ok(mut m) = counters.per_issuer.lock() {
        *m.entry(issuer).or_default() += keys as u64;
    }
    if keys == targets.len() {
        if let Ok(mut m) = counters.per_county.lock() {
            for t in targets {
                *m.entry(*t).or_default() += 1;
            }
        }
    }
}

/// The counties' clerks: each county visited every `every` (the visits spread over it):
/// its tickets listed at its node, the delivered ones accepted, the accepted ones started,
/// the rectifying ones rectified with a note (one step per visit), as the county. Returns
/// the clients at the end.
pub async fn clerks(
    mut api: Vec<(Code, TicketsClient)>,
    every: Duration,
    counters: Arc<Counters>,
    mut phase: watch::Receiver<Phase>,
) -> Res<Vec<(Code, TicketsClient)>> {
    let mut tick = tokio::time::interval(every.div_f64(api.len().max(1) as f64));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let n = api.len();
    for i in (0..n).cycle() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = phase.wait_for(|p| *p == Phase::End) => return Ok(api),
        }
        let (code, client) = &mut api[i];
        let f = ListFilter {
            target: Some(*code),
            ..ListFilter::default()
        };
        let rows = match client.list(&f).await {
            Ok((rows, _)) => rows,
            Err(e) => {
                counters.error(format!("list at {code}: {e}"));
                continue;
            }
        };
        let steps: [(State, Act, &AtomicU64); 3] = [
            (State::Delivered, Act::Accept, &counters.accepted),
            (State::Accepted, Act::Start, &counters.started),
            (
                State::Rectifying,
                Act::Rectify {
                    note: "household visited, assistance in place".into(),
                },
                &counters.rectified,
            ),
        ];
        for (state, act, count) in steps {
            let state = state.to_string();
            let keys: Vec<String> = rows
                .iter()
                .filter(|r| r.state == state && r.target == code.to_string())
                .map(|r| r.key.clone())
                .collect();
            if keys.is_empty() {
                continue;
            }
            match client.act(Some(*code), &keys, &act).await {
                Ok(_) => Counters::add(count, keys.len() as u64),
                Err(e) => counters.error(format!("{} at {code}: {e}", act.name())),
            }
        }
    }
    Ok(api)
}

/// A `Tickets` client to each of `nodes` (code, URL).
pub async fn connect(nodes: &[(Code, String)], tls: &ClientTls) -> Res<Vec<(Code, TicketsClient)>> {
    let mut out = Vec::new();
    for (code, url) in nodes {
        out.push((*code, TicketsClient::connect(url, Some(tls)).await?));
    }
    Ok(out)
}

/// At the end, after the drain: what each issuer holds of its own tickets (all, closed) and
/// each county of the tickets to it (all, closed), against what was issued.
pub async fn check_tickets(
    issuers: &mut [(Code, TicketsClient)],
    counties: &mut [(Code, TicketsClient)],
    counters: &Counters,
) -> Res<Value> {
    let count = |state: Option<State>, issuer: Option<Code>, target: Option<Code>| ListFilter {
        state: state.map(|s| s.to_string()),
        issuer,
        target,
        limit: 1,
        ..ListFilter::default()
    };
    let per_issuer = counters
        .per_issuer
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let per_county = counters
        .per_county
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let (mut ok, mut differ) = (0, Vec::new());
    for (code, c) in issuers.iter_mut() {
        let want = per_issuer.get(code).copied().unwrap_or(0);
        let (_, all) = c.list(&count(None, Some(*code), None)).await?;
        let (_, closed) = c
            .list(&count(Some(State::Closed), Some(*code), None))
            .await?;
        if u64::from(all) == want && u64::from(closed) == want {
            ok += 1;
        } else {
            differ.push(
                json!({"issuer": code.to_string(), "issued": want, "held": all, "closed": closed}),
            );
        }
    }
    let issuers_ok = format!("{ok}/{}", issuers.len());
    let (mut ok, mut county_differ) = (0, Vec::new());
    for (code, c) in counties.iter_mut() {
        let want = per_county.get(code).copied().unwrap_or(0);
        let (_, all) = c.list(&count(None, None, Some(*code))).await?;
        let (_, closed) = c
            .list(&count(Some(State::Closed), None, Some(*code)))
            .await?;
        if u64::from(all) == want && u64::from(closed) == want {
            ok += 1;
        } else if county_differ.len() < 5 {
            county_differ.push(
                json!({"county": code.to_string(), "issued": want, "held": all, "closed": closed}),
            );
        }
    }
    Ok(json!({
        "issuers_holding_all_closed": issuers_ok,
        "issuers_differ": differ,
        "counties_holding_all_closed": format!("{ok}/{}", counties.len()),
        "counties_differ": county_differ,
    }))
}
