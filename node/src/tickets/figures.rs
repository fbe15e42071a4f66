//! What tickets contribute to the statistics: flows (issued, rectified, closed on their
//! days) and stock deltas (open, overdue), and the figures of a period computed from them —
//! the same definitions the ticket cells are written from.

use super::*;

/// The flows a ticket contributes, as `(flow, date, +1)`: issued on the issue date, rectified
/// on `rectified_on`, closed on `closed_on`. Recompute after every fold and apply the
/// difference: a return for rework withdraws the rectified flow.
///
/// A spot-check task contributes no ticket flows (it is a task, not a problem): see
/// [`spot_check_done`].
pub fn stat_flows(s: &TicketState) -> Vec<(TicketFlow, Date, i64)> {
    if s.ticket.spot_check.is_some() {
        return Vec::new();
    }
    let mut v = vec![(TicketFlow::Issued, s.issued_on, 1)];
    if let Some(d) = s.rectified_on {
        v.push((TicketFlow::Rectified, d, 1));
    }
    if let Some(d) = s.closed_on {
        v.push((TicketFlow::Closed, d, 1));
    }
    v
}

/// Deltas whose running sum up to a day D is the ticket's contribution to the stocks at the
/// end of D: open +1 on the issue date, −1 on the close date; overdue +1 from the day after
/// the deadline (or the day it fell back to an unrectified state), −1 on the day it is
/// rectified or closed. The overdue +1 may lie in the future; it is part of the ticket's
/// deterministic contribution.
pub fn stock_deltas(s: &TicketState) -> Vec<(TicketStock, Date, i64)> {
    if s.ticket.spot_check.is_some() {
        return Vec::new();
    }
    let mut v = vec![(TicketStock::Open, s.issued_on, 1)];
    if let Some(d) = s.closed_on {
        v.push((TicketStock::Open, d, -1));
    }
    let mut days: Vec<Date> = s.timeline.iter().map(|t| t.on).collect();
    if let Ok(d) = s.ticket.deadline.tomorrow() {
        days.push(d);
    }
    days.sort();
    days.dedup();
    let mut overdue = false;
    for d in days {
        let now = s.overdue_at(d);
        if now != overdue {
            v.push((TicketStock::Overdue, d, if now { 1 } else { -1 }));
            overdue = now;
        }
    }
    v
}

/// A spot-check task's contribution to `spot_checks_done`: the date its standing result was
/// recorded and whether there were findings (`None` for other tickets and unchecked tasks).
pub fn spot_check_done(s: &TicketState) -> Option<SpotResult> {
    s.ticket.spot_check.as_ref().and(s.spot_result)
}

/// Ticket figures of a set of tickets for a period `[first, last]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFigures {
    /// Issued in the period.
    pub issued: u64,
    /// Rectified in the period (standing rectifications).
    pub rectified: u64,
    /// Closed in the period.
    pub closed: u64,
    /// Open at the end of the period.
    pub open: u64,
    /// Overdue at the end of the period.
    pub overdue: u64,
    /// Issued up to the end of the period.
    pub issued_to_date: u64,
    /// Closed up to the end of the period.
    pub closed_to_date: u64,
}

impl TicketFigures {
    /// Clearance rate (销号率) at the end of the period: tickets closed / tickets issued, both
    /// counted from the beginning up to the period's last day (so it reads "what share of
    /// everything issued so far is cleared", never above 1). `None` when nothing was issued.
    pub fn clearance_rate(&self) -> Option<f64> {
        (self.issued_to_date > 0).then(|| self.closed_to_date as f64 / self.issued_to_date as f64)
    }
}

/// The figures of `states` for the period `[first, last]` (China dates), computed from the
/// same flows and stock deltas as the cells will be.
pub fn figures<'a>(
    states: impl IntoIterator<Item = &'a TicketState>,
    first: Date,
    last: Date,
) -> TicketFigures {
    let mut f = TicketFigures::default();
    let mut open: i64 = 0;
    let mut overdue: i64 = 0;
    for s in states {
        for (flow, d, n) in stat_flows(s) {
            let n = n as u64;
            if d <= last {
                match flow {
                    TicketFlow::Issued => f.issued_to_date += n,
                    TicketFlow::Closed => f.closed_to_date += n,
                    TicketFlow::Rectified => {}
                }
            }
            if first <= d && d <= last {
                match flow {
                    TicketFlow::Issued => f.issued += n,
                    TicketFlow::Rectified => f.rectified += n,
                    TicketFlow::Closed => f.closed += n,
                }
            }
        }
        for (stock, d, n) in stock_deltas(s) {
            if d <= last {
                match stock {
                    TicketStock::Open => open += n,
                    TicketStock::Overdue => overdue += n,
                }
            }
        }
    }
    f.open = open.max(0) as u64;
    f.overdue = overdue.max(0) as u64;
    f
}
