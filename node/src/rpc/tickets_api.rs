//! The `Tickets` gRPC service: issue tickets and inventories into the node's subtree, act on
//! tickets, list, show and follow inventory progress.
//!
//! The service converts wire values to domain values (every bad field is refused with
//! `invalid_argument` naming the field and the value), runs the ledger call on the blocking
//! pool (ticket writes flush before they return), and maps ledger errors to gRPC codes with
//! the error's own message: who may not act → `permission_denied`, the wrong state →
//! `failed_precondition`, an id issued twice → `already_exists`, an unknown ticket →
//! `not_found`, a ticket breaking a rule → `invalid_argument`. Who may call what comes from
//! the caller's certificate (`rpc::auth`). The client is `rpc::tickets_client`.

use std::sync::Arc;

use bottomline_proto::v1 as pb;
use jiff::civil::Date;
use tonic::{Request, Response, Status};

use crate::division::{Code, Registry};
use crate::ledger::{Act, Ledger, LedgerError};
use crate::rpc::auth::Caller;
use crate::security::tls::Revoked;
use crate::tickets::{
    self as tk, EntryOutcome, EventKind, Severity, State, Ticket, TicketError, TicketKey,
    TicketSource, TicketState,
};
use tokio::sync::watch;

/// The node's ticket API.
pub struct TicketsService {
    ledger: Arc<Ledger>,
    /// mTLS: callers are who their certificates say (see `auth`), checked against the
    /// revoked serials on every call; `None` on an insecure node.
    revoked: Option<watch::Receiver<Revoked>>,
    /// Checks the seals shown in a ticket's history (nodes running mTLS).
    verifier: Option<Arc<crate::security::sign::Verifier>>,
}

impl TicketsService {
    /// Serve the tickets of `ledger`; `revoked`: the node runs mTLS with these revoked serials.
    pub fn new(ledger: Arc<Ledger>, revoked: Option<watch::Receiver<Revoked>>) -> Self {
        TicketsService {
            ledger,
            revoked,
            verifier: None,
        }
    }

    /// Show who sealed each event of a ticket's history, checked with `verifier`.
    pub fn with_verifier(mut self, verifier: Option<Arc<crate::security::sign::Verifier>>) -> Self {
        self.verifier = verifier;
        self
    }

    /// `v` with each history item's `signed_by`: whose seal the event carries and whether it
    /// verifies (the issuer sees who rectified, whichever nodes forwarded it).
    fn with_seals(&self, mut v: pb::TicketView) -> pb::TicketView {
        let Ok(key) = parse_key(&v.key) else {
            return v;
        };
        let Ok(sealed) = self.ledger.sealed_events(&key) else {
            return v;
        };
        let by_id: std::collections::HashMap<String, _> = sealed
            .into_iter()
            .map(|s| (s.event.id.to_string(), s))
            .collect();
        for h in &mut v.history {
            h.signed_by = match by_id.get(&h.event) {
                Some(s) => seal_text(&self.ledger, self.verifier.as_deref(), s),
                None => String::new(),
            };
        }
        v
    }

    /// The caller and the division it acts as (`requested`, or by default its certificate's
    /// division; on an insecure node the node's own).
    fn actor<T>(
        &self,
        r: &Request<T>,
        requested: &str,
        what: &str,
    ) -> Result<(Caller, Code), Status> {
        let caller = self.caller(r)?;
        let actor = caller.actor(requested, self.ledger.division(), what)?;
        Ok((caller, actor))
    }

    fn caller<T>(&self, r: &Request<T>) -> Result<Caller, Status> {
        Caller::of(r, self.revoked.as_ref())
    }
}

/// May a caller who reads within `scope` (`None` = everything) see this ticket? It is in its
/// scope when the target or the issuer is.
fn visible(scope: Option<Code>, s: &TicketState) -> bool {
    scope.is_none_or(|d| d.contains(s.ticket.target) || d.contains(s.ticket.issuer))
}

/// `invalid_argument` for `field`.
fn bad(field: impl std::fmt::Display, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

fn parse_code(field: impl std::fmt::Display, s: &str) -> Result<Code, Status> {
    Code::parse(s).map_err(|r| bad(field, r))
}

/// A required division code (an empty string is not the national root here).
fn required_code(field: impl std::fmt::Display, s: &str) -> Result<Code, Status> {
    if s.is_empty() {
        return Err(bad(field, "missing value"));
    }
    parse_code(field, s)
}

/// Parse a ticket key `ISSUER/ID` (split at the first `/`: the issuer's digits, then the id).
pub fn parse_key(s: &str) -> Result<TicketKey, String> {
    let Some((issuer, id)) = s.split_once('/') else {
        return Err(format!(
            "{s:?} is not a ticket key: expected ISSUER/ID, e.g. 61/2026-001"
        ));
    };
    if id.is_empty() {
        return Err(format!("{s:?} has no ticket id after the '/'"));
    }
    let issuer = Code::parse(issuer).map_err(|r| format!("{s:?}: issuer {r}"))?;
    Ok(TicketKey::new(issuer, id))
}

fn parse_keys(keys: &[String]) -> Result<Vec<TicketKey>, Status> {
    if keys.is_empty() {
        return Err(bad("keys", "no ticket given"));
    }
    keys.iter()
        .enumerate()
        .map(|(i, k)| parse_key(k).map_err(|r| bad(format_args!("keys[{i}]"), r)))
        .collect()
}

/// A `yyyy-mm-dd` calendar date.
fn parse_date(field: impl std::fmt::Display, v: &str) -> Result<Date, Status> {
    tk::parse_date(v).map_err(|r| bad(field, r))
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// One wire ticket spec as a ticket issued by `issuer`; every bad field of it is reported.
fn spec_to_ticket(i: usize, s: &pb::TicketSpec, issuer: Code) -> Result<Ticket, Status> {
    let f = |name: &str| format!("tickets[{i}].{name}");
    let mut errors: Vec<String> = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    let mut note = |field: &'static str, e: Status| {
        failed.push(field);
        errors.push(e.message().to_string());
    };
    let target = required_code(f("target"), &s.target)
        .map_err(|e| note("target", e))
        .ok();
    let source = TicketSource::parse(&s.source)
        .map_err(|r| note("source", bad(f("source"), r)))
        .ok();
    let severity = Severity::parse(&s.severity)
        .map_err(|r| note("severity", bad(f("severity"), r)))
        .ok();
    let deadline = parse_date(f("deadline"), &s.deadline)
        .map_err(|e| note("deadline", e))
        .ok();
    // Fields that did not parse get stand-ins so that the ticket's own rules still check the
    // others; the stand-ins' findings are dropped.
    let t = Ticket {
        issuer,
        id: s.id.clone(),
        target: target.unwrap_or(issuer),
        category: s.category.clone(),
        source: source.unwrap_or(TicketSource::Inspection),
        severity: severity.unwrap_or(Severity::Low),
        deadline: deadline.unwrap_or(crate::period::EARLIEST),
        description: s.description.clone(),
        household_code: opt(&s.household_code),
        parent: None,
        inventory: opt(&s.inventory),
        spot_check: None,
    };
    if let Err(errs) = t.validate() {
        let stand_in = |field: &str| {
            failed.contains(&field) || (field == "household_code" && target.is_none())
        };
        errors.extend(
            errs.iter()
                .filter(|e| !stand_in(e.field))
                .map(|e| format!("{}: {}", f(e.field), e.reason)),
        );
    }
    if errors.is_empty() {
        Ok(t)
    } else {
        Err(Status::invalid_argument(errors.join("; ")))
    }
}

/// The gRPC status of a ledger error; `actor_served`: whether the node may act for the actor
/// at all (a refusal otherwise is about who acts).
pub(crate) fn ledger_status(e: LedgerError, actor_served: bool) -> Status {
    let msg = e.to_string();
    match e {
        LedgerError::Ticket(t) => match *t {
            TicketError::NotAllowed { .. } | TicketError::ForeignActor { .. } => {
                Status::permission_denied(msg)
            }
            TicketError::WrongState { .. }
            | TicketError::IsSplit { .. }
            | TicketError::Supervision { .. } => Status::failed_precondition(msg),
            TicketError::AlreadyIssued { .. } => Status::already_exists(msg),
            TicketError::NotIssued { .. } => Status::not_found(msg),
            TicketError::BadSplit { .. } if msg.contains("already split") => {
                Status::failed_precondition(msg)
            }
            TicketError::Invalid { .. }
            | TicketError::Text { .. }
            | TicketError::BadSplit { .. }
            | TicketError::WrongTicket { .. }
            | TicketError::BadTime { .. } => Status::invalid_argument(msg),
        },
        LedgerError::TicketRefused(_) if !actor_served => Status::permission_denied(msg),
        LedgerError::TicketRefused(_) => Status::invalid_argument(msg),
        LedgerError::NotInSubtree { .. } => Status::permission_denied(msg),
        _ => Status::internal(msg),
    }
}

/// Run a ledger call on the blocking pool (ticket writes flush to disk).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("ticket task failed: {e}")))?
}

fn day(d: Option<Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn name_of(registry: &Registry, c: Code) -> String {
    registry.get(c).map(|d| d.name.clone()).unwrap_or_default()
}

/// The wire action name and detail of an event.
fn action_detail(kind: &EventKind) -> (&'static str, String) {
    match kind {
        EventKind::Issued(t) => ("issue", format!("to {}, deadline {}", t.target, t.deadline)),
        EventKind::Delivered { at } => ("deliver", format!("at node {at}")),
        EventKind::Accepted => ("accept", String::new()),
        EventKind::Started => ("start", String::new()),
        EventKind::Rectified { note } => ("rectify", note.clone()),
        EventKind::Verified => ("verify", String::new()),
        EventKind::Returned { reason } => ("return", reason.clone()),
        EventKind::Supervise { on: true } => ("supervise", "on".into()),
        EventKind::Supervise { on: false } => ("unsupervise", "off".into()),
        EventKind::Checked { findings, note } => (
            "check",
            format!("{}: {note}", if *findings { "findings" } else { "ok" }),
        ),
        EventKind::Split { children } => (
            "split",
            children
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

fn view(s: &TicketState, registry: &Registry, today: Date, history: bool) -> pb::TicketView {
    let t = &s.ticket;
    pb::TicketView {
        key: s.key().to_string(),
        issuer: t.issuer.to_string(),
        id: t.id.clone(),
        target: t.target.to_string(),
        category: t.category.clone(),
        source: t.source.to_string(),
        severity: t.severity.to_string(),
        deadline: t.deadline.to_string(),
        description: t.description.clone(),
        household_code: t.household_code.clone().unwrap_or_default(),
        parent: t.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        inventory: t.inventory.clone().unwrap_or_default(),
        state: s.state.to_string(),
        overdue: s.overdue(today),
        supervised_by: s.supervised_by.map(|c| c.to_string()).unwrap_or_default(),
        split: s.split.iter().map(|k| k.to_string()).collect(),
        note: s.note.clone().unwrap_or_default(),
        return_reason: s.return_reason.clone().unwrap_or_default(),
        returns: s.returns,
        issued_on: s.issued_on.to_string(),
        delivered_on: day(s.delivered_on),
        rectified_on: day(s.rectified_on),
        closed_on: day(s.closed_on),
        history: if history {
            s.history
                .iter()
                .map(|h| {
                    let (action, detail) = action_detail(&h.kind);
                    let (applied, ignored_reason) = match &h.outcome {
                        EntryOutcome::Applied => (true, String::new()),
                        EntryOutcome::Ignored { reason } => (false, reason.clone()),
                    };
                    pb::HistoryItem {
                        event: h.id.to_string(),
                        lamport: h.lamport,
                        actor: h.actor.to_string(),
                        at_unix_ms: h.at_unix_ms,
                        action: action.into(),
                        detail,
                        applied,
                        ignored_reason,
                        signed_by: String::new(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        },
        target_name: name_of(registry, t.target),
    }
}

/// Whose seal an event carries, as a person reads it: `node 610102 (certificate 3f2a…),
/// verified`, or why not.
fn seal_text(
    ledger: &Ledger,
    verifier: Option<&crate::security::sign::Verifier>,
    s: &crate::tickets::codec::Sealed,
) -> String {
    let Some(seal) = &s.seal else {
        return "not signed".into();
    };
    let Ok(Some(der)) = ledger.certificate(&seal.signer) else {
        return "signed by a certificate this node does not hold".into();
    };
    let Some(v) = verifier else {
        return "signed (not checked: this node runs without certificates)".into();
    };
    let signer = match v.signer(&der) {
        Ok(x) => x,
        Err(e) => return format!("NOT VERIFIED: {e}"),
    };
    let who = format!(
        "{} (certificate {})",
        signer.info.identity, signer.info.serial
    );
    match seal.root(&s.body) {
        Some(root) if signer.node_division() == Some(s.event.id.origin) => {
            match v.verify_root(&signer, &root, &seal.signature) {
                Ok(()) => format!("{who}, verified"),
                Err(e) => format!("{who}: NOT VERIFIED: {e}"),
            }
        }
        Some(_) => format!("{who}: NOT VERIFIED: not the node that created the event"),
        None => format!("{who}: NOT VERIFIED: the seal's path does not fit"),
    }
}

fn parse_act(r: &pb::ActRequest) -> Result<Act, Status> {
    let required = |field: &str, v: &str| {
        if v.trim().is_empty() {
            Err(bad(field, format!("required for {}", r.action)))
        } else {
            Ok(v.to_string())
        }
    };
    Ok(match r.action.as_str() {
        "accept" => Act::Accept,
        "start" => Act::Start,
        "rectify" => Act::Rectify {
            note: required("note", &r.note)?,
        },
        "verify" => Act::Verify,
        "return" => Act::Return {
            reason: required("reason", &r.reason)?,
        },
        "supervise" => Act::Supervise { on: true },
        "unsupervise" => Act::Supervise { on: false },
        "split" => {
            if r.into.is_empty() {
                return Err(bad("into", "required for split: the child divisions"));
            }
            Act::Split {
                into: r
                    .into
                    .iter()
                    .enumerate()
                    .map(|(i, c)| required_code(format_args!("into[{i}]"), c))
                    .collect::<Result<_, _>>()?,
            }
        }
        other => {
            return Err(bad(
                "action",
                format!(
                    "unknown action {other:?}; expected one of accept, start, rectify, verify, \
                     return, supervise, unsupervise, split"
                ),
            ))
        }
    })
}

fn progress_row(p: &tk::RegionProgress, registry: &Registry) -> pb::RegionProgress {
    pb::RegionProgress {
        division: p.division.to_string(),
        name: name_of(registry, p.division),
        issued: p.issued,
        open: p.open,
        rectified: p.rectified,
        closed: p.closed,
        overdue: p.overdue,
        cleared_to_zero: p.cleared_to_zero(),
    }
}

#[tonic::async_trait]
impl pb::tickets_server::Tickets for TicketsService {
    async fn issue(
        &self,
        r: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::IssueReply>, Status> {
        let (caller, actor) = self.actor(&r, &r.get_ref().actor, "issue tickets")?;
        let r = r.into_inner();
        if r.tickets.is_empty() {
            return Err(bad("tickets", "no ticket given"));
        }
        let mut tickets = Vec::with_capacity(r.tickets.len());
        let mut errors = Vec::new();
        for (i, s) in r.tickets.iter().enumerate() {
            match spec_to_ticket(i, s, actor) {
                Ok(t) => tickets.push(t),
                Err(e) => errors.push(e.message().to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{} bad ticket(s); nothing was issued: {}",
                errors.len(),
                errors.join("; ")
            )));
        }
        let ledger = self.ledger.clone();
        let keys = blocking(move || {
            let served = ledger.serves(actor);
            ledger
                .issue_tickets(actor, tickets)
                .map_err(|e| ledger_status(e, served))
        })
        .await
        .map_err(|e| caller.audited(&format!("issue tickets as {actor}"), e))?;
        Ok(Response::new(pb::IssueReply {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }))
    }

    async fn inventory(
        &self,
        r: Request<pb::InventoryRequest>,
    ) -> Result<Response<pb::IssueReply>, Status> {
        let (caller, actor) = self.actor(&r, &r.get_ref().actor, "issue an inventory")?;
        let r = r.into_inner();
        if r.inventory.trim().is_empty() {
            return Err(bad(
                "inventory",
                "missing value: an inventory needs a name (progress is followed per inventory)",
            ));
        }
        let ledger = self.ledger.clone();
        let keys = blocking(move || {
            let mut tickets = tk::parse_inventory(actor, &r.csv[..])
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            for t in &mut tickets {
                t.inventory = Some(r.inventory.clone());
            }
            let served = ledger.serves(actor);
            ledger
                .issue_tickets(actor, tickets)
                .map_err(|e| ledger_status(e, served))
        })
        .await
        .map_err(|e| caller.audited(&format!("issue an inventory as {actor}"), e))?;
        Ok(Response::new(pb::IssueReply {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }))
    }

    async fn act(&self, r: Request<pb::ActRequest>) -> Result<Response<pb::ActReply>, Status> {
        let what = format!("{} {}", r.get_ref().action, r.get_ref().keys.join(" "));
        let (caller, actor) = self.actor(&r, &r.get_ref().actor, &what)?;
        let r = r.into_inner();
        let keys = parse_keys(&r.keys)?;
        let act = parse_act(&r)?;
        let ledger = self.ledger.clone();
        let states = blocking(move || {
            let served = ledger.serves(actor);
            ledger
                .act_on_tickets(actor, &keys, &act)
                .map_err(|e| ledger_status(e, served))
        })
        .await
        .map_err(|e| caller.audited(&format!("{what} as {actor}"), e))?;
        let registry = self.ledger.registry();
        let today = crate::period::today_in_china();
        Ok(Response::new(pb::ActReply {
            tickets: states
                .iter()
                .map(|s| self.with_seals(view(s, &registry, today, true)))
                .collect(),
        }))
    }

    async fn list(&self, r: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        let scope = self.caller(&r)?.read_scope("list tickets")?;
        let r = r.into_inner();
        let state = match r.state.as_str() {
            "" => None,
            s => Some(State::parse(s).map_err(|e| bad("state", e))?),
        };
        let target = opt(&r.target)
            .map(|s| parse_code("target", &s))
            .transpose()?;
        let issuer = opt(&r.issuer)
            .map(|s| parse_code("issuer", &s))
            .transpose()?;
        let inventory = opt(&r.inventory);
        let today = crate::period::today_in_china();
        // From the ticket index's rows (key, target, state, deadline): every filter applies
        // to them, and only the summaries shown are read.
        let (ledger, inv, overdue) = (self.ledger.clone(), inventory.clone(), r.overdue);
        let limit = if r.limit == 0 {
            usize::MAX
        } else {
            r.limit as usize
        };
        let (shown, total) = blocking(move || {
            let read = || -> Result<_, crate::ledger::LedgerError> {
                let rows = ledger.ticket_rows(overdue.then_some(today), inv.as_deref())?;
                let matching: Vec<&TicketKey> = rows
                    .iter()
                    .filter(|(k, row)| {
                        scope.is_none_or(|d| d.contains(row.target) || d.contains(k.issuer))
                            && state.is_none_or(|st| row.state == st)
                            && target.is_none_or(|t| t.contains(row.target))
                            && issuer.is_none_or(|i| k.issuer == i)
                            && (!overdue || row.overdue(today))
                    })
                    .map(|(k, _)| k)
                    .collect();
                let mut shown = Vec::new();
                for k in matching.iter().take(limit) {
                    shown.extend(ledger.ticket_summary(k)?);
                }
                Ok((shown, matching.len()))
            };
            read().map_err(|e| ledger_status(e, true))
        })
        .await?;
        let registry = self.ledger.registry();
        Ok(Response::new(pb::ListReply {
            tickets: shown
                .iter()
                .map(|s| view(s, &registry, today, false))
                .collect(),
            total: u32::try_from(total).unwrap_or(u32::MAX),
        }))
    }

    async fn show(&self, r: Request<pb::ShowRequest>) -> Result<Response<pb::TicketView>, Status> {
        let caller = self.caller(&r)?;
        let key = parse_key(&r.into_inner().key).map_err(|e| bad("key", e))?;
        let what = format!("show ticket {key}");
        let scope = caller.read_scope(&what)?;
        let ledger = self.ledger.clone();
        let k = key.clone();
        let state = blocking(move || ledger.ticket(&k).map_err(|e| ledger_status(e, true))).await?;
        let Some(s) = state else {
            return Err(Status::not_found(format!(
                "ticket {key} is not held at node {} (a node holds the tickets issued or \
                 delivered in its subtree and those it passes on)",
                self.ledger.division()
            )));
        };
        if !visible(scope, &s) {
            return Err(caller.deny(
                &what,
                &format!(
                    "ticket {key} (target {}) is outside {}",
                    s.ticket.target,
                    scope.map(|d| d.to_string()).unwrap_or_default()
                ),
            ));
        }
        let registry = self.ledger.registry();
        Ok(Response::new(self.with_seals(view(
            &s,
            &registry,
            crate::period::today_in_china(),
            true,
        ))))
    }

    async fn progress(
        &self,
        r: Request<pb::ProgressRequest>,
    ) -> Result<Response<pb::ProgressReply>, Status> {
        let caller = self.caller(&r)?;
        let r = r.into_inner();
        let me = self.ledger.division();
        // By default the caller's own region when it lies in this node's subtree.
        let own = caller
            .identity()
            .and_then(|i| i.division())
            .filter(|d| me.contains(*d));
        let division = match r.division.as_str() {
            "" => own.unwrap_or(me),
            s => parse_code("division", s)?,
        };
        caller.may_read(division, &format!("follow the progress of {division}"))?;
        if !me.contains(division) {
            return Err(bad(
                "division",
                format!("{division} is outside the subtree of node {me}"),
            ));
        }
        let inventory = opt(&r.inventory);
        let today = crate::period::today_in_china();
        // A split ticket counts once, as itself (its state derives from its sub-tickets), so
        // its sub-tickets held here are left out, as in the statistics cells. From the ticket
        // index's rows: one inventory's, or every ticket's.
        let (ledger, inv) = (self.ledger.clone(), inventory.clone());
        let items = blocking(move || {
            ledger
                .inventory_items(inv.as_deref())
                .map_err(|e| ledger_status(e, true))
        })
        .await?;
        let p = tk::inventory_progress(division, items, today);
        let registry = self.ledger.registry();
        Ok(Response::new(pb::ProgressReply {
            total: Some(progress_row(&p.total, &registry)),
            regions: p
                .regions
                .iter()
                .map(|x| progress_row(x, &registry))
                .collect(),
            inventory: inventory.unwrap_or_default(),
            today: today.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_slash() {
        let k = parse_key("61/2026/001").unwrap();
        assert_eq!(k.issuer, Code::parse("61").unwrap());
        assert_eq!(k.id, "2026/001");
        assert!(parse_key("61").unwrap_err().contains("ISSUER/ID"));
        assert!(parse_key("61/").unwrap_err().contains("no ticket id"));
        assert!(parse_key("6x/A").unwrap_err().contains("only digits"));
    }

    #[test]
    fn specs_name_the_field_and_value() {
        let spec = pb::TicketSpec {
            id: "A".into(),
            target: "610102".into(),
            category: "housing".into(),
            source: "inspection".into(),
            severity: "high".into(),
            deadline: "2026-13-01".into(),
            description: "roof".into(),
            ..Default::default()
        };
        let e = spec_to_ticket(3, &spec, Code::parse("61").unwrap()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            e.message(),
            "tickets[3].deadline: 2026-13-01 is not a calendar date"
        );
        let e = spec_to_ticket(
            0,
            &pb::TicketSpec {
                target: "6201".into(),
                deadline: "2026-12-01".into(),
                ..spec.clone()
            },
            Code::parse("61").unwrap(),
        )
        .unwrap_err();
        assert!(
            e.message()
                .contains("tickets[0].target: division 6201 is not in the subtree"),
            "{}",
            e.message()
        );
        let t = spec_to_ticket(
            0,
            &pb::TicketSpec {
                deadline: "2026-12-01".into(),
                ..spec
            },
            Code::parse("61").unwrap(),
        )
        .unwrap();
        assert_eq!(
            (t.household_code, t.inventory, t.parent),
            (None, None, None)
        );
    }
}
