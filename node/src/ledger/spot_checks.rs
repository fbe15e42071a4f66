//! Double-random spot checks in the store: the draw's inputs gathered from what this node
//! holds, the draw issued as tickets, its verification, and a result recorded at the county.
//!
//! A draw's picks are **tickets** ([`crate::tickets::Ticket::spot_check`]): issued by the
//! drawer to the village drawn, they travel down like every ticket (the province, the city
//! and the county all hold them, durably, in their ticket logs), the county records the result
//! on them and that travels back up. So the no-repeat state is the earlier tasks themselves:
//! every node on a task's path holds the history it needs to rerun its part of the draw, and
//! nothing else has to be kept or synced. The pure draw is `crate::spotcheck`.

use jiff::civil::Date;

use super::{Act, Ledger, LedgerError, Result};
use crate::division::{Code, Level};
use crate::period::{Kind, Period};
use crate::spotcheck::{self as sc, DrawInput, Pick, Scope, Seed, SpotCheckTask};
use crate::tickets::{Severity, State, Ticket, TicketKey, TicketSource, TicketState};

/// Category of a spot-check task.
pub const TASK_CATEGORY: &str = "双随机抽查";
/// Default category of the ticket for a spot check's findings.
pub const FINDING_CATEGORY: &str = "双随机抽查发现问题";
/// Days a finding's ticket gets by default.
pub const FINDING_DAYS: i64 = 30;

/// The inventory (清单) name of a draw: its tasks' progress is followed like any inventory.
pub fn inventory_name(week: Period, scope: Scope) -> String {
    format!("spotcheck-{week}-{scope}")
}

/// A draw as issued (or as it would be).
#[derive(Clone, Debug)]
pub struct Draw {
    /// The drawing division.
    pub drawer: Code,
    /// The week.
    pub week: Period,
    /// The scope.
    pub scope: Scope,
    /// The digest of the drawer's statistics of the week before.
    pub digest: Seed,
    /// The seed.
    pub seed: Seed,
    /// The picks, in unit order.
    pub picks: Vec<Pick>,
    /// The draw was there already (nothing was issued by this call).
    pub already_drawn: bool,
}

/// A verification of a draw by the node that holds (part of) it.
#[derive(Clone, Debug)]
pub struct Verification {
    /// The drawing division.
    pub drawer: Code,
    /// The week.
    pub week: Period,
    /// The scope.
    pub scope: Scope,
    /// The seed the tasks carry.
    pub published_seed: String,
    /// At the drawer: whether the seed recomputed from the statistics now equals the
    /// published one (late records for the week before change it; the published seed stays
    /// the draw's input). `None` elsewhere (only the drawer holds its own statistics).
    pub seed_matches_statistics: Option<bool>,
    /// The picks recomputed from the published seed, for the units this node holds.
    pub expected: Vec<Pick>,
    /// The tasks held for this week and scope.
    pub held: Vec<TicketState>,
    /// Every difference, one line each (empty: the draw is verified).
    pub mismatches: Vec<String>,
}

impl Verification {
    /// Nothing differs.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// What a recorded finding becomes: the fields of its ticket (defaults when `None`).
#[derive(Clone, Debug, Default)]
pub struct FindingSpec {
    /// Severity (default medium).
    pub severity: Option<Severity>,
    /// Deadline (default the check's day + [`FINDING_DAYS`]).
    pub deadline: Option<Date>,
    /// Category (default [`FINDING_CATEGORY`]).
    pub category: Option<String>,
    /// The household concerned, if any.
    pub household_code: Option<String>,
}

/// A recorded spot check.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The task, after the result.
    pub task: TicketState,
    /// The ticket issued for the findings.
    pub finding: Option<TicketKey>,
}

fn refused(msg: impl Into<String>) -> LedgerError {
    LedgerError::TicketRefused(msg.into())
}

fn task_of(s: &TicketState) -> Option<&SpotCheckTask> {
    s.ticket.spot_check.as_deref()
}

impl Ledger {
    /// The spot-check tasks of `scope` issued by `drawer` held here, in key order.
    pub fn spot_check_tasks(&self, drawer: Code, scope: Scope) -> Result<Vec<TicketState>> {
        Ok(self
            .ticket_summaries_by_id(drawer, &format!("{}-", scope.id_prefix()))?
            .into_iter()
            .filter(|s| task_of(s).is_some_and(|t| t.scope == scope))
            .collect())
    }

    /// The draw's inputs for the units within `within` as this node holds them: villages of
    /// each county (registry), counties of each city (scope city), and the picks of the
    /// earlier weeks' tasks of `drawer` (week order, then unit order).
    pub fn spot_check_input(
        &self,
        drawer: Code,
        scope: Scope,
        week: Period,
        within: Code,
    ) -> Result<DrawInput> {
        let registry = self.registry();
        let mut input = DrawInput::default();
        for d in registry.subtree(within) {
            match d.code.level() {
                Level::Village => input
                    .villages
                    .entry(d.code.ancestor_at(Level::County).unwrap_or(d.code))
                    .or_default()
                    .push(d.code),
                Level::County if scope == Scope::City => {
                    if let Some(city) = d.code.ancestor_at(Level::City) {
                        input.counties.entry(city).or_default().push(d.code);
                    }
                }
                _ => {}
            }
        }
        for v in input
            .villages
            .values_mut()
            .chain(input.counties.values_mut())
        {
            v.sort();
            v.dedup();
        }
        let mut history: Vec<(Period, Pick)> = Vec::new();
        for s in self.spot_check_tasks(drawer, scope)? {
            let Some(t) = task_of(&s) else { continue };
            let Ok(w) = Period::parse(&t.week) else {
                continue;
            };
            if w >= week {
                continue;
            }
            let village = s.ticket.target;
            let Some(county) = village.ancestor_at(Level::County) else {
                continue;
            };
            let unit = match scope {
                Scope::County => county,
                Scope::City => county.ancestor_at(Level::City).unwrap_or(county),
            };
            if within.contains(village) {
                history.push((
                    w,
                    Pick {
                        unit,
                        county,
                        village,
                    },
                ));
            }
        }
        history.sort();
        input.history = history.into_iter().map(|(_, p)| p).collect();
        Ok(input)
    }

    /// The digest of this node's statistics of `week`'s previous week (the seed's input).
    pub fn spot_check_digest(&self, week: Period) -> Result<Seed> {
        Ok(sc::statistics_digest(
            &self.indicators(self.division, week.prev())?,
        ))
    }

    /// Draw `week` in `scope` at this node (the drawer: a city or the province) and issue
    /// the picks as tickets to the villages drawn, one commit; `dry_run`: compute only.
    /// `today` must be in `week` or later (the seed is the statistics at the close of the week
    /// before). Drawing the same week and scope again returns the draw already issued;
    /// draws go in week order (each one's history is every earlier week).
    pub fn spot_check_draw(
        &self,
        week: Period,
        scope: Scope,
        today: Date,
        dry_run: bool,
    ) -> Result<Draw> {
        let me = self.division;
        if week.kind() != Kind::Week {
            return Err(refused(format!(
                "{week} is not an ISO week: spot checks are drawn per week (2026-W49)"
            )));
        }
        if me.level() >= Level::County {
            return Err(refused(format!(
                "node {me} is a county: spot checks are drawn by the province (or a city) for the counties below it"
            )));
        }
        if scope == Scope::City && me.level() != Level::Province {
            return Err(refused(format!(
                "node {me} is not a province: a draw of one county per city is the province's"
            )));
        }
        if today < week.first_day() {
            return Err(refused(format!(
                "{week} has not begun (today is {today}): its seed is the statistics at the close of {}, which is not over yet",
                week.prev()
            )));
        }
        let tasks = self.spot_check_tasks(me, scope)?;
        let this_week: Vec<&TicketState> = tasks
            .iter()
            .filter(|s| task_of(s).is_some_and(|t| t.week == week.to_string()))
            .collect();
        if let Some(first) = this_week.first() {
            let t = task_of(first).expect("filtered on the task");
            let seed = sc::parse_seed(&t.seed)
                .ok_or_else(|| refused(format!("task {} carries a bad seed", first.key())))?;
            let mut picks: Vec<Pick> = this_week.iter().filter_map(|s| pick_of(s, scope)).collect();
            picks.sort();
            return Ok(Draw {
                drawer: me,
                week,
                scope,
                digest: self.spot_check_digest(week)?,
                seed,
                picks,
                already_drawn: true,
            });
        }
        if let Some(later) = tasks
            .iter()
            .filter_map(|s| task_of(s).and_then(|t| Period::parse(&t.week).ok()))
            .filter(|w| *w > week)
            .max()
        {
            return Err(refused(format!(
                "{later} is drawn already: draws go in week order (each draw's history is every earlier week), so {week} can no longer be drawn"
            )));
        }
        let digest = self.spot_check_digest(week)?;
        let seed = sc::seed(me, week, scope, &digest);
        let input = self.spot_check_input(me, scope, week, me)?;
        let picks = sc::draw(&seed, scope, &input);
        if picks.is_empty() {
            return Err(refused(format!(
                "node {me} knows no villages below it: import divisions.csv (every level, with its towns and villages) before drawing"
            )));
        }
        if !dry_run {
            let registry = self.registry();
            let task = SpotCheckTask {
                week: week.to_string(),
                scope,
                seed: sc::seed_hex(&seed),
            };
            let scope_zh = match scope {
                Scope::County => "每县一村",
                Scope::City => "每市一县一村",
            };
            let tickets = picks
                .iter()
                .map(|p| Ticket {
                    issuer: me,
                    id: sc::ticket_id(scope, week, p.unit),
                    target: p.village,
                    category: TASK_CATEGORY.to_string(),
                    source: TicketSource::SpotCheck,
                    severity: Severity::Low,
                    deadline: week.last_day(),
                    description: format!(
                        "{}双随机抽查（{scope_zh}）：{} {} {}（{}），种子 {}",
                        week_zh(week),
                        registry.name(p.county.ancestor_at(Level::City).unwrap_or(p.county)),
                        registry.name(p.county),
                        registry.name(p.village),
                        p.village,
                        task.seed
                    ),
                    household_code: None,
                    parent: None,
                    inventory: Some(inventory_name(week, scope)),
                    spot_check: Some(Box::new(task.clone())),
                })
                .collect();
            self.issue_tickets(me, tickets)?;
        }
        Ok(Draw {
            drawer: me,
            week,
            scope,
            digest,
            seed,
            picks,
            already_drawn: false,
        })
    }

    /// Verify the draw of `week` in `scope` by `drawer` from what this node holds: the tasks'
    /// published seed, rerun over this node's part of the registry and history, compared with
    /// the tasks held; at the drawer also the seed against the statistics now.
    pub fn spot_check_verify(
        &self,
        drawer: Code,
        week: Period,
        scope: Scope,
    ) -> Result<Verification> {
        let me = self.division;
        let held: Vec<TicketState> = self
            .spot_check_tasks(drawer, scope)?
            .into_iter()
            .filter(|s| task_of(s).is_some_and(|t| t.week == week.to_string()))
            .collect();
        let mut mismatches = Vec::new();
        let seeds: std::collections::BTreeSet<&str> = held
            .iter()
            .filter_map(|s| task_of(s).map(|t| t.seed.as_str()))
            .collect();
        let published_seed = seeds.first().map(|s| s.to_string()).unwrap_or_default();
        if held.is_empty() {
            mismatches.push(format!(
                "no task of {drawer}'s {scope} draw of {week} is held at node {me}"
            ));
        }
        if seeds.len() > 1 {
            mismatches.push(format!(
                "the tasks of {week} carry {} different seeds",
                seeds.len()
            ));
        }
        let within = if drawer.contains(me) { me } else { drawer };
        let mut expected = Vec::new();
        if let Some(seed) = sc::parse_seed(&published_seed) {
            let input = self.spot_check_input(drawer, scope, week, within)?;
            expected = sc::draw(&seed, scope, &input);
            // A city holds the tasks for the units below it only.
            expected.retain(|p| within.contains(p.village));
            let mut drawn: Vec<Pick> = held.iter().filter_map(|s| pick_of(s, scope)).collect();
            drawn.sort();
            for p in &expected {
                match drawn.iter().find(|d| d.unit == p.unit) {
                    None => mismatches.push(format!(
                        "{}: the draw gives village {} (county {}), but no task for it is held",
                        p.unit, p.village, p.county
                    )),
                    Some(d) if d != p => mismatches.push(format!(
                        "{}: the draw gives village {} (county {}), the task names {} (county {})",
                        p.unit, p.village, p.county, d.village, d.county
                    )),
                    Some(_) => {}
                }
            }
            for d in &drawn {
                if !expected.iter().any(|p| p.unit == d.unit) {
                    mismatches.push(format!(
                        "{}: a task names village {}, but the draw gives this unit nothing",
                        d.unit, d.village
                    ));
                }
            }
        } else if !held.is_empty() {
            mismatches.push(format!(
                "the published seed {published_seed:?} is not a seed"
            ));
        }
        let seed_matches_statistics = if drawer == me && !published_seed.is_empty() {
            let now = sc::seed(me, week, scope, &self.spot_check_digest(week)?);
            Some(sc::seed_hex(&now) == published_seed)
        } else {
            None
        };
        Ok(Verification {
            drawer,
            week,
            scope,
            published_seed,
            seed_matches_statistics,
            expected,
            held,
            mismatches,
        })
    }

    /// Record the result of the spot check of `village` (a village this node serves) on its
    /// open task — the one named by `task`, or the only open one for the village (of `week`
    /// when given). With `finding`, the findings become a ticket issued by this node to the
    /// village (source `spot_check`) in the same commit.
    pub fn spot_check_record(
        &self,
        village: Code,
        task: Option<&TicketKey>,
        week: Option<Period>,
        note: &str,
        finding: Option<FindingSpec>,
        today: Date,
    ) -> Result<Recorded> {
        let me = self.division;
        if village.level() != Level::Village || !self.serves(village) {
            return Err(refused(format!(
                "{village} is not a village served by node {me}: a spot check is recorded at the county of the village drawn"
            )));
        }
        let state = match task {
            Some(k) => self
                .ticket_summary(k)?
                .filter(|s| s.ticket.spot_check.is_some())
                .ok_or_else(|| refused(format!("no spot-check task {k} is held at node {me}")))?,
            None => {
                let mut open: Vec<TicketState> = self
                    .ticket_summaries(None, None)?
                    .into_iter()
                    .filter(|s| {
                        s.ticket.target == village
                            && task_of(s)
                                .is_some_and(|t| week.is_none_or(|w| t.week == w.to_string()))
                            && s.state.is_unrectified()
                    })
                    .collect();
                match open.len() {
                    1 => open.remove(0),
                    0 => {
                        return Err(refused(format!(
                            "no open spot-check task for village {village}{} at node {me}",
                            week.map(|w| format!(" in {w}")).unwrap_or_default()
                        )))
                    }
                    _ => {
                        return Err(refused(format!(
                        "village {village} has {} open spot-check tasks ({}): name one with --task",
                        open.len(),
                        open.iter()
                            .map(|s| s.key().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                    }
                }
            }
        };
        if state.ticket.target != village {
            return Err(refused(format!(
                "task {} is for village {}, not {village}",
                state.key(),
                state.ticket.target
            )));
        }
        let finding = match finding {
            None => None,
            Some(f) => {
                let key = state.key();
                let mut id = format!("{}-F", key.id);
                let mut n = 1;
                while self
                    .ticket_summary(&TicketKey::new(me, id.clone()))?
                    .is_some()
                {
                    n += 1;
                    id = format!("{}-F{n}", key.id);
                }
                let deadline = match f.deadline {
                    Some(d) => d,
                    None => today
                        .checked_add(jiff::Span::new().days(FINDING_DAYS))
                        .map_err(|e| refused(format!("deadline: {e}")))?,
                };
                Some(Box::new(Ticket {
                    issuer: me,
                    id,
                    target: village,
                    category: f.category.unwrap_or_else(|| FINDING_CATEGORY.to_string()),
                    source: TicketSource::SpotCheck,
                    severity: f.severity.unwrap_or(Severity::Medium),
                    deadline,
                    description: format!("{note}（抽查任务 {key}）"),
                    household_code: f.household_code,
                    parent: None,
                    inventory: None,
                    spot_check: None,
                }))
            }
        };
        let finding_key = finding.as_ref().map(|t| t.key());
        let mut after = self.act_on_tickets(
            village,
            &[state.key()],
            &Act::Check {
                note: note.to_string(),
                finding,
            },
        )?;
        let task = after.pop().ok_or_else(|| refused("the task vanished"))?;
        debug_assert_eq!(task.state, State::Rectified);
        Ok(Recorded {
            task,
            finding: finding_key,
        })
    }
}

/// The pick a task stands for.
fn pick_of(s: &TicketState, scope: Scope) -> Option<Pick> {
    let village = s.ticket.target;
    let county = village.ancestor_at(Level::County)?;
    let unit = match scope {
        Scope::County => county,
        Scope::City => county.ancestor_at(Level::City)?,
    };
    Some(Pick {
        unit,
        county,
        village,
    })
}

/// `2026年第49周`.
fn week_zh(week: Period) -> String {
    let s = week.to_string();
    match s.split_once("-W") {
        Some((y, w)) => format!("{y}年第{}周", w.trim_start_matches('0')),
        None => s,
    }
}
