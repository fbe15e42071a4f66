//! The `SpotChecks` gRPC service (双随机): draw a week at the province, verify a draw from
//! its published seed at any node that holds it, record a result at the county. The calls
//! run `ledger/spot_checks.rs` on the blocking pool; who may call what comes from the
//! caller's certificate (`rpc::auth`): drawing and recording are acts, verifying is a read.
//! The client is `rpc::spotcheck_client`.

use std::sync::Arc;

use bottomline_proto::v1 as pb;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::division::{Code, Level, Registry};
use crate::ledger::{FindingSpec, Ledger};
use crate::period::{Kind, Period};
use crate::rpc::auth::Caller;
use crate::rpc::tickets_api::{blocking, ledger_status, parse_key};
use crate::security::tls::Revoked;
use crate::spotcheck::{seed_hex, ticket_id, Pick, Scope};
use crate::tickets::{Severity, TicketState};

/// The node's spot-check API.
pub struct SpotChecksService {
    ledger: Arc<Ledger>,
    /// mTLS: callers are who their certificates say, checked against the revoked serials on
    /// every call; `None` on an insecure node.
    revoked: Option<watch::Receiver<Revoked>>,
}

impl SpotChecksService {
    /// Serve the spot checks of `ledger`.
    pub fn new(ledger: Arc<Ledger>, revoked: Option<watch::Receiver<Revoked>>) -> Self {
        SpotChecksService { ledger, revoked }
    }

    fn caller<T>(&self, r: &Request<T>) -> Result<Caller, Status> {
        Caller::of(r, self.revoked.as_ref())
    }
}

fn bad(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

fn week(s: &str) -> Result<Period, Status> {
    if s.is_empty() {
        return Err(bad("week", "missing value"));
    }
    match Period::parse(s) {
        Ok(p) if p.kind() == Kind::Week => Ok(p),
        Ok(_) => Err(bad("week", format!("{s:?} is not an ISO week (2026-W49)"))),
        Err(e) => Err(bad("week", e)),
    }
}

fn scope(s: &str) -> Result<Scope, Status> {
    if s.is_empty() {
        return Ok(Scope::County);
    }
    Scope::parse(s).map_err(|e| bad("scope", e))
}

/// A pick on the wire, with names and (when held) its task's key, state and result.
fn pick(
    p: &Pick,
    registry: &Registry,
    held: &[TicketState],
    drawer: Code,
    week: Period,
    scope: Scope,
    issued: bool,
) -> pb::SpotPick {
    let key = crate::tickets::TicketKey::new(drawer, ticket_id(scope, week, p.unit));
    let task = held.iter().find(|s| s.key() == key);
    pb::SpotPick {
        unit: p.unit.to_string(),
        county: p.county.to_string(),
        village: p.village.to_string(),
        unit_name: registry.name(p.unit),
        county_name: registry.name(p.county),
        village_name: registry.name(p.village),
        task: if issued || task.is_some() {
            key.to_string()
        } else {
            String::new()
        },
        state: task.map(|s| s.state.to_string()).unwrap_or_default(),
        result: task
            .and_then(|s| s.spot_result)
            .map(|r| if r.findings { "findings" } else { "ok" }.to_string())
            .unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl pb::spot_checks_server::SpotChecks for SpotChecksService {
    async fn draw(
        &self,
        r: Request<pb::SpotDrawRequest>,
    ) -> Result<Response<pb::SpotDrawReply>, Status> {
        let caller = self.caller(&r)?;
        let me = self.ledger.division();
        // A draw is issued by the node's own division.
        caller.actor(&me.to_string(), me, "draw spot checks")?;
        let r = r.into_inner();
        let (w, sc, dry_run) = (week(&r.week)?, scope(&r.scope)?, r.dry_run);
        let ledger = self.ledger.clone();
        let today = crate::period::today_in_china();
        let (draw, held) = blocking(move || {
            let d = ledger
                .spot_check_draw(w, sc, today, dry_run)
                .map_err(|e| ledger_status(e, true))?;
            let held = ledger
                .spot_check_tasks(me, sc)
                .map_err(|e| ledger_status(e, true))?;
            Ok((d, held))
        })
        .await
        .map_err(|e| caller.audited("draw spot checks", e))?;
        let registry = self.ledger.registry();
        Ok(Response::new(pb::SpotDrawReply {
            drawer: draw.drawer.to_string(),
            week: draw.week.to_string(),
            scope: draw.scope.to_string(),
            seed: seed_hex(&draw.seed),
            digest: seed_hex(&draw.digest),
            picks: draw
                .picks
                .iter()
                .map(|p| pick(p, &registry, &held, me, w, sc, !dry_run))
                .collect(),
            already_drawn: draw.already_drawn,
            dry_run,
        }))
    }

    async fn verify(
        &self,
        r: Request<pb::SpotVerifyRequest>,
    ) -> Result<Response<pb::SpotVerifyReply>, Status> {
        let caller = self.caller(&r)?;
        let me = self.ledger.division();
        caller.may_read(me, "verify a spot-check draw")?;
        let r = r.into_inner();
        let (w, sc) = (week(&r.week)?, scope(&r.scope)?);
        let drawer = if r.drawer.is_empty() {
            me.ancestor_at(Level::Province).unwrap_or(me)
        } else {
            Code::parse(&r.drawer).map_err(|e| bad("drawer", e))?
        };
        let ledger = self.ledger.clone();
        let v = blocking(move || {
            ledger
                .spot_check_verify(drawer, w, sc)
                .map_err(|e| ledger_status(e, true))
        })
        .await?;
        let registry = self.ledger.registry();
        Ok(Response::new(pb::SpotVerifyReply {
            drawer: v.drawer.to_string(),
            week: v.week.to_string(),
            scope: v.scope.to_string(),
            published_seed: v.published_seed.clone(),
            seed_matches_statistics: v.seed_matches_statistics,
            expected: v
                .expected
                .iter()
                .map(|p| pick(p, &registry, &v.held, drawer, w, sc, false))
                .collect(),
            ok: v.ok(),
            mismatches: v.mismatches,
        }))
    }

    async fn record(
        &self,
        r: Request<pb::SpotRecordRequest>,
    ) -> Result<Response<pb::SpotRecordReply>, Status> {
        let caller = self.caller(&r)?;
        let me = self.ledger.division();
        let village = r.get_ref().village.clone();
        if village.is_empty() {
            return Err(bad("village", "missing value"));
        }
        // The result is the village's act; a finding's ticket is issued by the node's division.
        let actor = caller.actor(&village, me, "record a spot check")?;
        let r = r.into_inner();
        let findings = match r.result.as_str() {
            "ok" => false,
            "findings" => true,
            "" => return Err(bad("result", "missing value (ok or findings)")),
            other => return Err(bad("result", format!("{other:?}: ok or findings"))),
        };
        let finding = if findings {
            caller.actor(
                &me.to_string(),
                me,
                "issue the ticket for a spot check's findings",
            )?;
            Some(FindingSpec {
                severity: opt(&r.severity)
                    .map(|s| Severity::parse(&s).map_err(|e| bad("severity", e)))
                    .transpose()?,
                deadline: opt(&r.deadline)
                    .map(|s| crate::tickets::parse_date(&s).map_err(|e| bad("deadline", e)))
                    .transpose()?,
                category: opt(&r.category),
                household_code: opt(&r.household_code),
            })
        } else {
            for (field, v) in [
                ("severity", &r.severity),
                ("deadline", &r.deadline),
                ("category", &r.category),
                ("household_code", &r.household_code),
            ] {
                if !v.is_empty() {
                    return Err(bad(field, "only a result with findings makes a ticket"));
                }
            }
            None
        };
        let task = opt(&r.task)
            .map(|s| parse_key(&s).map_err(|e| bad("task", e)))
            .transpose()?;
        let w = opt(&r.week).map(|s| week(&s)).transpose()?;
        let note = r.note;
        let ledger = self.ledger.clone();
        let today = crate::period::today_in_china();
        let served = self.ledger.serves(actor);
        let rec = blocking(move || {
            ledger
                .spot_check_record(actor, task.as_ref(), w, &note, finding, today)
                .map_err(|e| ledger_status(e, served))
        })
        .await
        .map_err(|e| caller.audited(&format!("record a spot check as {actor}"), e))?;
        Ok(Response::new(pb::SpotRecordReply {
            task: rec.task.key().to_string(),
            state: rec.task.state.to_string(),
            finding_ticket: rec.finding.map(|k| k.to_string()).unwrap_or_default(),
        }))
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
