//! The `Workflow` gRPC service: a county's department warnings, identification cases and risk
//! elimination (`ledger/workflow.rs`). Acting needs an operator (or node) certificate covering
//! the county; listing needs reading rights on it (`rpc::auth`). Each step records who took it:
//! the caller's certificate identity.

use std::sync::Arc;

use bottomline_proto::v1 as pb;
use jiff::civil::Date;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::domain::{Case, Category, Signal};
use crate::ledger::{CaseDue, Decision, Ledger, LedgerError, NewCase};
use crate::rpc::auth::Caller;
use crate::security::tls::Revoked;
use crate::warning::{self, WarningRules};

/// The node's workflow API.
pub struct WorkflowService {
    ledger: Arc<Ledger>,
    revoked: Option<watch::Receiver<Revoked>>,
}

impl WorkflowService {
    /// Serve the workflow of `ledger`.
    pub fn new(ledger: Arc<Ledger>, revoked: Option<watch::Receiver<Revoked>>) -> Self {
        WorkflowService { ledger, revoked }
    }

    /// The caller, allowed to act for this node's division; and who they are, for the steps.
    fn acting<T>(&self, r: &Request<T>, what: &str) -> Result<(Caller, String), Status> {
        let caller = Caller::of(r, self.revoked.as_ref())?;
        let me = self.ledger.division();
        caller.actor(&me.to_string(), me, what)?;
        let who = caller
            .identity()
            .map_or_else(|| format!("node {me} (insecure)"), ToString::to_string);
        Ok((caller, who))
    }
}

fn bad(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

fn date(field: &str, s: &str) -> Result<Option<Date>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    crate::import::parse_date(s)
        .map(Some)
        .map_err(|e| bad(field, e))
}

fn rules(text: &str) -> Result<WarningRules, Status> {
    WarningRules::parse(text).map_err(|e| bad("rules", e))
}

fn status(e: LedgerError) -> Status {
    match e {
        LedgerError::Workflow(m) => Status::failed_precondition(m),
        LedgerError::Refused(r) => Status::invalid_argument(
            r.iter()
                .map(|r| r.error.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        e => Status::internal(e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)
}

fn signal_pb(s: &Signal) -> pb::WarnSignal {
    pb::WarnSignal {
        id: s.id.clone(),
        household_code: s.household_code.clone(),
        source: s.source.to_string(),
        r#type: s.kind.to_string(),
        department: s.department.map_or(0, u32::from),
        amount: s.amount.to_string(),
        date: s.date.to_string(),
        rule: warning::rule_of(&s.id).unwrap_or_default().to_string(),
    }
}

fn case_pb(c: &Case, today: Date, steps: Vec<crate::ledger::CaseStep>) -> pb::CaseView {
    let days = crate::domain::days_between(c.discovered_date, c.decided_date.unwrap_or(today));
    let pending = c.outcome == crate::domain::Outcome::Pending;
    pb::CaseView {
        id: c.id.clone(),
        household_code: c.household_code.clone(),
        discovered_date: c.discovered_date.to_string(),
        decided_date: c.decided_date.map(|d| d.to_string()).unwrap_or_default(),
        outcome: c.outcome.to_string(),
        stage: c.stage.map(|s| s.to_string()).unwrap_or_default(),
        green_channel: c.green_channel,
        days,
        due: pending && days >= crate::ledger::DUE_DAYS,
        overdue: pending && days > crate::domain::DEADLINE_DAYS,
        steps: steps
            .into_iter()
            .map(|s| pb::CaseStep {
                action: s.action,
                to: s.to,
                date: s.on.to_string(),
                by: s.by,
                at_unix_ms: s.at_unix_ms,
                note: s.note,
            })
            .collect(),
    }
}

impl WorkflowService {
    async fn case_reply(&self, c: Case) -> Result<Response<pb::CaseReply>, Status> {
        let (l, id) = (self.ledger.clone(), c.id.clone());
        let steps = blocking(move || l.case_steps(&id)).await?;
        let today = crate::period::today_in_china();
        Ok(Response::new(pb::CaseReply {
            case: Some(case_pb(&c, today, steps)),
        }))
    }
}

#[tonic::async_trait]
impl pb::workflow_server::Workflow for WorkflowService {
    async fn warn(&self, r: Request<pb::WarnRequest>) -> Result<Response<pb::WarnReply>, Status> {
        let (caller, _) = self.acting(&r, "run the warning rules")?;
        let r = r.into_inner();
        let rules = rules(&r.rules)?;
        let (l, dry, prune) = (self.ledger.clone(), r.dry_run, r.prune);
        let today = crate::period::today_in_china();
        let out = blocking(move || l.warn(&rules, dry, prune, today))
            .await
            .map_err(|e| caller.audited("run the warning rules", e))?;
        Ok(Response::new(pb::WarnReply {
            rows: out.rows as u64,
            new: out.diff.new.iter().map(signal_pb).collect(),
            changed: out.diff.changed.iter().map(|(_, w)| signal_pb(w)).collect(),
            stale: out.diff.stale.iter().map(signal_pb).collect(),
            unchanged: out.diff.unchanged as u64,
            written: out.written as u64,
            dry_run: dry,
        }))
    }

    async fn case_open(
        &self,
        r: Request<pb::CaseOpenRequest>,
    ) -> Result<Response<pb::CaseReply>, Status> {
        let (_, who) = self.acting(&r, "open a case")?;
        let r = r.into_inner();
        if r.id.is_empty() {
            return Err(bad("id", "missing value"));
        }
        if r.household_code.is_empty() {
            return Err(bad("household_code", "missing value"));
        }
        let new = NewCase {
            id: r.id,
            household: r.household_code,
            discovered: date("discovered_date", &r.discovered_date)?
                .ok_or_else(|| bad("discovered_date", "missing value"))?,
            green_channel: r.green_channel,
            note: r.note,
        };
        let l = self.ledger.clone();
        let today = crate::period::today_in_china();
        let c = blocking(move || l.case_open(&new, &who, today)).await?;
        self.case_reply(c).await
    }

    async fn case_advance(
        &self,
        r: Request<pb::CaseAdvanceRequest>,
    ) -> Result<Response<pb::CaseReply>, Status> {
        let (_, who) = self.acting(&r, "advance a case")?;
        let r = r.into_inner();
        let today = crate::period::today_in_china();
        let on = date("date", &r.date)?.unwrap_or(today);
        let l = self.ledger.clone();
        let c = blocking(move || l.case_advance(&r.id, on, &who, &r.note, today)).await?;
        self.case_reply(c).await
    }

    async fn case_decide(
        &self,
        r: Request<pb::CaseDecideRequest>,
    ) -> Result<Response<pb::CaseReply>, Status> {
        let (_, who) = self.acting(&r, "decide a case")?;
        let r = r.into_inner();
        let decision = match r.decision.as_str() {
            "include" => {
                Decision::Include(Category::parse(&r.category).map_err(|e| bad("category", e))?)
            }
            "reject" => Decision::Reject(r.reason.clone()),
            other => return Err(bad("decision", format!("{other:?}: include or reject"))),
        };
        let today = crate::period::today_in_china();
        let on = date("date", &r.date)?.unwrap_or(today);
        let l = self.ledger.clone();
        let c = blocking(move || l.case_decide(&r.id, &decision, on, &who, today)).await?;
        self.case_reply(c).await
    }

    async fn case_list(
        &self,
        r: Request<pb::CaseListRequest>,
    ) -> Result<Response<pb::CaseListReply>, Status> {
        let caller = Caller::of(&r, self.revoked.as_ref())?;
        caller.may_read(self.ledger.division(), "list cases")?;
        let r = r.into_inner();
        let today = crate::period::today_in_china();
        let l = self.ledger.clone();
        let (pending, one) = blocking(move || {
            let pending = l.cases_pending(today)?;
            let one = if r.id.is_empty() {
                None
            } else {
                match l.get(crate::domain::RecordKind::Case, &r.id)? {
                    Some(crate::domain::Record::Case(c)) => Some((c, l.case_steps(&r.id)?)),
                    _ => {
                        return Err(LedgerError::Workflow(format!(
                            "no case {} is held by this county",
                            r.id
                        )))
                    }
                }
            };
            Ok((pending, one))
        })
        .await?;
        let (due, overdue) = (
            pending.iter().filter(|c| c.due).count() as u64,
            pending.iter().filter(|c| c.overdue).count() as u64,
        );
        let cases = match one {
            Some((c, steps)) => vec![case_pb(&c, today, steps)],
            None => pending
                .into_iter()
                .filter(|c: &CaseDue| !r.due || c.due)
                .map(|c| case_pb(&c.case, today, Vec::new()))
                .collect(),
        };
        Ok(Response::new(pb::CaseListReply {
            cases,
            today: today.to_string(),
            due,
            overdue,
        }))
    }

    async fn eliminate(
        &self,
        r: Request<pb::EliminateRequest>,
    ) -> Result<Response<pb::EliminateReply>, Status> {
        let (caller, _) = self.acting(&r, "record a risk as eliminated")?;
        let r = r.into_inner();
        let rules = rules(&r.rules)?;
        let today = crate::period::today_in_china();
        let on = date("date", &r.date)?.ok_or_else(|| bad("date", "missing value"))?;
        let l = self.ledger.clone();
        let m = blocking(move || l.eliminate(&r.household_code, on, &rules, today))
            .await
            .map_err(|e| caller.audited("record a risk as eliminated", e))?;
        Ok(Response::new(pb::EliminateReply {
            household_code: m.household_code,
            category: m.category.to_string(),
            identified_date: m.identified_date.to_string(),
            eliminated_date: m.eliminated_date.map(|d| d.to_string()).unwrap_or_default(),
        }))
    }
}
