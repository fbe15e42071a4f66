//! The statistics side of the `Sync` service: `Stats` (one division, one period) and
//! `Report` (the region report, `crate::regions`), both reading through the ledger's cache
//! of computed indicators.

use std::collections::HashMap;
use std::sync::Arc;

use bottomline_proto::v1 as pb;
use tonic::Status;

use super::auth::Caller;
use super::to_status;
use crate::division::{Code, Level};
use crate::ledger::Ledger;
use crate::period::Period;
use crate::regions::{self, ReportError, Scope};
use crate::stats::Value;

/// The division a request names (the node's own when empty), if it lies in the node's
/// subtree and the caller may read it.
fn asked_division(ledger: &Ledger, caller: &Caller, raw: &str, what: &str) -> Result<Code, Status> {
    let me = ledger.division();
    let division = if raw.is_empty() {
        me
    } else {
        Code::parse(raw).map_err(Status::invalid_argument)?
    };
    if !me.contains(division) {
        return Err(caller.deny(
            &format!("{what} {division}"),
            &format!("{division} is outside this node's subtree ({me})"),
        ));
    }
    caller.may_read(division, &format!("{what} {division}"))?;
    Ok(division)
}

/// `Stats`.
pub(super) async fn stats(
    ledger: Arc<Ledger>,
    caller: &Caller,
    req: pb::StatsRequest,
) -> Result<pb::StatsReply, Status> {
    let division = asked_division(&ledger, caller, &req.division, "read statistics of")?;
    let me = ledger.division();
    if me.level() < Level::County && !crate::cells::travels_up(division) {
        let county = division.ancestor_at(Level::County).unwrap_or(division);
        return Err(Status::failed_precondition(format!(
            "the statistics of towns and villages are held at their county node: ask the node of {county} for {division} (this node, {me}, holds its counties' totals)"
        )));
    }
    let period = Period::parse(&req.period).map_err(Status::invalid_argument)?;
    let name = ledger
        .registry()
        .get(division)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let ind = tokio::task::spawn_blocking(move || ledger.indicators_shared(division, period))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(to_status)?;
    Ok(stats_reply(&ind, name))
}

fn report_status(e: ReportError) -> Status {
    match e {
        ReportError::Invalid(m) => Status::invalid_argument(m),
        ReportError::Ledger(e) => to_status(e),
    }
}

/// `Report`.
pub(super) async fn report(
    ledger: Arc<Ledger>,
    caller: &Caller,
    req: pb::ReportRequest,
) -> Result<pb::ReportReply, Status> {
    let division = asked_division(&ledger, caller, &req.division, "read the report of")?;
    let scope = match pb::ReportScope::try_from(req.scope) {
        Ok(pb::ReportScope::Children) => Scope::Children,
        Ok(pb::ReportScope::Division) => Scope::Only,
        Ok(pb::ReportScope::Level) => Scope::Level(
            req.level
                .parse()
                .map_err(|e| Status::invalid_argument(format!("level {:?}: {e}", req.level)))?,
        ),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "unknown report scope {}",
                req.scope
            )))
        }
    };
    let period = Period::parse(&req.period).map_err(Status::invalid_argument)?;
    let until = match req.until.as_str() {
        "" => None,
        u => Some(Period::parse(u).map_err(Status::invalid_argument)?),
    };
    let each = match req.each.as_str() {
        "" => None,
        "week" => Some(crate::period::Kind::Week),
        "month" => Some(crate::period::Kind::Month),
        other => {
            return Err(Status::invalid_argument(format!(
                "each {other:?}: week or month"
            )))
        }
    };
    let periods = regions::periods(period, until, each).map_err(report_status)?;
    let (members, entries) = tokio::task::spawn_blocking(move || {
        let members = regions::members(&ledger, division, scope)?;
        let entries = regions::report(&ledger, &members, &periods)?;
        Ok::<_, ReportError>((members, entries))
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(report_status)?;
    let per = (entries.len() / members.len().max(1)).max(1);
    Ok(report_reply(&entries, |i| members[i / per].name.clone()))
}

/// A region report as the wire carries it: the columns (every indicator row any entry has,
/// in report order) once, then a value per column for each entry.
fn report_reply(
    entries: &[Arc<crate::stats::Indicators>],
    name: impl Fn(usize) -> String,
) -> pb::ReportReply {
    use crate::stats::labels;
    // The columns in the entries' own row order: a row one entry lacks (a department
    // without signals there) goes right after the row before it in the entry that has it;
    // then each run of department columns is put in number order, as every entry lists them.
    let mut order: Vec<&crate::stats::Row> = Vec::new();
    let mut at_of: HashMap<(&str, &str), usize> = HashMap::new();
    // Rows that follow the order already known (nearly all: every entry lists its rows the
    // same way) are matched by position, without hashing; only the others are looked up.
    let same = |a: &crate::stats::Row, b: &crate::stats::Row| {
        a.indicator == b.indicator && a.dimension == b.dimension
    };
    for e in entries {
        let mut at = 0;
        for r in &e.rows {
            if order.get(at).is_some_and(|o| same(o, r)) {
                at += 1;
                continue;
            }
            let key = (r.indicator.as_str(), r.dimension.as_str());
            match at_of.get(&key) {
                Some(&p) => at = p + 1,
                None => {
                    order.insert(at, r);
                    at += 1;
                    // Rare (a department the entries before lacked): renumber.
                    at_of = order
                        .iter()
                        .enumerate()
                        .map(|(i, o)| ((o.indicator.as_str(), o.dimension.as_str()), i))
                        .collect();
                }
            }
        }
    }
    let department = |r: &crate::stats::Row| {
        r.dimension
            .strip_prefix("department=")
            .and_then(|n| n.parse::<u32>().ok())
    };
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len()
            && department(order[j]).is_some()
            && order[j].indicator == order[i].indicator
        {
            j += 1;
        }
        order[i..j].sort_by_key(|r| department(r));
        i = j.max(i + 1);
    }
    let index: HashMap<(&str, &str), usize> = order
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.indicator.as_str(), r.dimension.as_str()), i))
        .collect();
    let columns: Vec<pb::ReportColumn> = order
        .iter()
        .map(|r| {
            let label = labels::indicator(&r.indicator);
            pb::ReportColumn {
                indicator: r.indicator.clone(),
                dimension: r.dimension.clone(),
                unit: match r.value {
                    Value::Count(_) => "count",
                    Value::Fen(_) => "fen",
                    Value::Ratio(_) => "ratio",
                    Value::Average(_) => "average",
                }
                .into(),
                indicator_zh: label.map_or_else(|| r.indicator.clone(), |l| l.zh.into()),
                indicator_en: label.map_or_else(|| r.indicator.clone(), |l| l.en.into()),
                dimension_zh: labels::dimension_zh(&r.indicator, &r.dimension),
                dimension_en: labels::dimension_en(&r.dimension),
                unit_zh: label.map_or("", |l| l.unit_zh).into(),
            }
        })
        .collect();
    let rows = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut values = vec![0.0; columns.len()];
            let mut at = 0;
            for r in &e.rows {
                let v = match r.value {
                    Value::Count(n) | Value::Fen(n) => n as f64,
                    Value::Ratio(x) | Value::Average(x) => x.unwrap_or(f64::NAN),
                };
                let c = if order.get(at).is_some_and(|o| same(o, r)) {
                    at
                } else {
                    index[&(r.indicator.as_str(), r.dimension.as_str())]
                };
                values[c] = v;
                at = c + 1;
            }
            pb::ReportRow {
                division: e.division.to_string(),
                name: name(i),
                period: e.period.to_string(),
                first_day: e.first_day.to_string(),
                last_day: e.last_day.to_string(),
                values,
            }
        })
        .collect();
    pb::ReportReply { columns, rows }
}

/// One division's indicators for one period as the wire carries them.
fn stats_reply(ind: &crate::stats::Indicators, name: String) -> pb::StatsReply {
    let indicators = ind
        .rows
        .iter()
        .map(|r| {
            let (value, ratio, is_ratio, unit, defined) = match r.value {
                Value::Count(n) => (n, 0.0, false, "count", true),
                Value::Fen(n) => (n, 0.0, false, "fen", true),
                Value::Ratio(x) => (0, x.unwrap_or(0.0), true, "ratio", x.is_some()),
                Value::Average(x) => (0, x.unwrap_or(0.0), true, "average", x.is_some()),
            };
            pb::Indicator {
                name: r.indicator.clone(),
                dimension: r.dimension.clone(),
                value,
                ratio,
                is_ratio,
                unit: unit.to_string(),
                defined,
            }
        })
        .collect();
    pb::StatsReply {
        division: ind.division.to_string(),
        name,
        period: ind.period.to_string(),
        first_day: ind.first_day.to_string(),
        last_day: ind.last_day.to_string(),
        indicators,
    }
}
