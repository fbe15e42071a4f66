//! The client of a node's `Tickets` service, for the CLI and tests: plain Rust values
//! ([`TicketRow`], [`ProgressReport`]) in and out, so that no wire type leaves `rpc`.

use std::time::Duration;

use bottomline_proto::v1 as pb;
use serde::Serialize;
use tonic::transport::Channel;
use tonic::Status;

use crate::division::Code;
use crate::ledger::Act;
use crate::security::tls::{ClientTls, Expect};

/// Why a ticket call failed: the node could not be reached, or it refused (with its message).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection.
    #[error("cannot reach {addr}: {cause}")]
    Unreachable {
        /// The address dialled.
        addr: String,
        /// Why.
        cause: String,
    },
    /// The node answered with an error.
    #[error("{}", .0.message())]
    Refused(Status),
    /// The reply could not be understood.
    #[error("bad reply: {0}")]
    BadReply(String),
}

impl ClientError {
    /// The gRPC code of a refusal.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Refused(s) => Some(s.code()),
            _ => None,
        }
    }
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Refused(s)
    }
}

/// A ticket to issue, as typed by a user: the node validates every field.
#[derive(Clone, Debug, Default)]
pub struct NewTicket {
    /// Id, unique per issuer.
    pub id: String,
    /// Target division code.
    pub target: String,
    /// Free-text category.
    pub category: String,
    /// inspection, spot_check, assessment, department_feedback or self_found.
    pub source: String,
    /// low, medium or high.
    pub severity: String,
    /// yyyy-mm-dd.
    pub deadline: String,
    /// What is wrong.
    pub description: String,
    /// The household concerned, if any.
    pub household_code: Option<String>,
    /// The inventory it belongs to, if any.
    pub inventory: Option<String>,
}

/// One history entry of a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    /// Event id `ORIGIN#SEQ`.
    pub event: String,
    /// Lamport time.
    pub lamport: u64,
    /// Who acted.
    pub actor: String,
    /// Creator's wall-clock time (ms since 1970).
    pub at_unix_ms: i64,
    /// issue, deliver, accept, start, rectify, verify, return, supervise, unsupervise, split.
    pub action: String,
    /// Note, reason, supervision flag, sub-tickets or delivering node.
    pub detail: String,
    /// Why the fold ignored it (`None`: applied).
    pub ignored: Option<String>,
    /// Whose seal it carries and whether it verifies (empty when the node did not say).
    pub signed_by: String,
}

/// A ticket as a node shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TicketRow {
    /// `ISSUER/ID`.
    pub key: String,
    /// Issuing division.
    pub issuer: String,
    /// Id.
    pub id: String,
    /// Target division.
    pub target: String,
    /// Target's registered name (empty when the node does not know it).
    pub target_name: String,
    /// Category.
    pub category: String,
    /// Source.
    pub source: String,
    /// Severity.
    pub severity: String,
    /// Deadline (yyyy-mm-dd).
    pub deadline: String,
    /// Description.
    pub description: String,
    /// Household concerned.
    pub household_code: Option<String>,
    /// Split ticket of a sub-ticket.
    pub parent: Option<String>,
    /// Inventory.
    pub inventory: Option<String>,
    /// State name.
    pub state: String,
    /// Overdue today (China date at the node).
    pub overdue: bool,
    /// Division that flagged supervision, while flagged.
    pub supervised_by: Option<String>,
    /// Sub-tickets.
    pub split: Vec<String>,
    /// Latest rectification note.
    pub note: Option<String>,
    /// Latest return reason.
    pub return_reason: Option<String>,
    /// Times returned.
    pub returns: u32,
    /// Issue date.
    pub issued_on: String,
    /// Delivery date.
    pub delivered_on: Option<String>,
    /// Standing rectification date.
    pub rectified_on: Option<String>,
    /// Close date.
    pub closed_on: Option<String>,
    /// History (only from show and act).
    pub history: Vec<HistoryRow>,
}

fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl From<pb::TicketView> for TicketRow {
    fn from(v: pb::TicketView) -> Self {
        TicketRow {
            key: v.key,
            issuer: v.issuer,
            id: v.id,
            target: v.target,
            target_name: v.target_name,
            category: v.category,
            source: v.source,
            severity: v.severity,
            deadline: v.deadline,
            description: v.description,
            household_code: none_if_empty(v.household_code),
            parent: none_if_empty(v.parent),
            inventory: none_if_empty(v.inventory),
            state: v.state,
            overdue: v.overdue,
            supervised_by: none_if_empty(v.supervised_by),
            split: v.split,
            note: none_if_empty(v.note),
            return_reason: none_if_empty(v.return_reason),
            returns: v.returns,
            issued_on: v.issued_on,
            delivered_on: none_if_empty(v.delivered_on),
            rectified_on: none_if_empty(v.rectified_on),
            closed_on: none_if_empty(v.closed_on),
            history: v
                .history
                .into_iter()
                .map(|h| HistoryRow {
                    event: h.event,
                    lamport: h.lamport,
                    actor: h.actor,
                    at_unix_ms: h.at_unix_ms,
                    action: h.action,
                    detail: h.detail,
                    ignored: (!h.applied).then_some(h.ignored_reason),
                    signed_by: h.signed_by,
                })
                .collect(),
        }
    }
}

/// Filters of a ticket listing (all optional).
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// State name.
    pub state: Option<String>,
    /// Target in this subtree.
    pub target: Option<Code>,
    /// Of this inventory.
    pub inventory: Option<String>,
    /// Overdue only.
    pub overdue: bool,
    /// Issued by.
    pub issuer: Option<Code>,
    /// At most this many (0 = all).
    pub limit: u32,
}

/// Progress of one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgressRow {
    /// Region code.
    pub division: String,
    /// Region name (empty when unknown).
    pub name: String,
    /// Tickets.
    pub issued: u64,
    /// Not closed.
    pub open: u64,
    /// Rectified, awaiting verification.
    pub rectified: u64,
    /// Closed.
    pub closed: u64,
    /// Overdue.
    pub overdue: u64,
    /// No open ticket left (清零).
    pub cleared_to_zero: bool,
}

impl From<pb::RegionProgress> for ProgressRow {
    fn from(p: pb::RegionProgress) -> Self {
        ProgressRow {
            division: p.division,
            name: p.name,
            issued: p.issued,
            open: p.open,
            rectified: p.rectified,
            closed: p.closed,
            overdue: p.overdue,
            cleared_to_zero: p.cleared_to_zero,
        }
    }
}

/// Progress of an inventory (or all tickets) seen from one division.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgressReport {
    /// The inventory (`None`: all tickets held).
    pub inventory: Option<String>,
    /// The China date overdue was judged on.
    pub today: String,
    /// The division looking, in total.
    pub total: ProgressRow,
    /// Per child region (and the division itself for tickets targeting it).
    pub regions: Vec<ProgressRow>,
}

fn actor_text(actor: Option<Code>) -> String {
    actor.map(|a| a.to_string()).unwrap_or_default()
}

/// A client of a node's ticket API.
pub struct TicketsClient {
    inner: pb::tickets_client::TicketsClient<Channel>,
}

impl TicketsClient {
    /// Connect to the node at `addr` (`https://host:port`, over mTLS with `tls`; `http://`
    /// for an insecure node): 5 s to connect, 60 s per call.
    pub async fn connect(addr: &str, tls: Option<&ClientTls>) -> Result<Self, ClientError> {
        let channel = crate::security::tls::channel(
            addr,
            tls,
            Expect::Any,
            Duration::from_secs(5),
            Some(Duration::from_secs(60)),
        )
        .await
        .map_err(|e| ClientError::Unreachable {
            addr: addr.to_string(),
            cause: e.to_string(),
        })?;
        Ok(TicketsClient {
            inner: pb::tickets_client::TicketsClient::new(channel)
                .max_decoding_message_size(super::MESSAGE_LIMIT)
                .max_encoding_message_size(super::MESSAGE_LIMIT),
        })
    }

    /// Issue tickets as `actor` (default: the node's division); returns their keys.
    pub async fn issue(
        &mut self,
        actor: Option<Code>,
        tickets: Vec<NewTicket>,
    ) -> Result<Vec<String>, ClientError> {
        let tickets = tickets
            .into_iter()
            .map(|t| pb::TicketSpec {
                id: t.id,
                target: t.target,
                category: t.category,
                source: t.source,
                severity: t.severity,
                deadline: t.deadline,
                description: t.description,
                household_code: t.household_code.unwrap_or_default(),
                inventory: t.inventory.unwrap_or_default(),
            })
            .collect();
        let r = self
            .inner
            .issue(pb::IssueRequest {
                tickets,
                actor: actor_text(actor),
            })
            .await?;
        Ok(r.into_inner().keys)
    }

    /// Issue an inventory (a `tickets.csv` file's bytes) named `name`; returns the keys.
    pub async fn inventory(
        &mut self,
        actor: Option<Code>,
        name: &str,
        csv: Vec<u8>,
    ) -> Result<Vec<String>, ClientError> {
        let r = self
            .inner
            .inventory(pb::InventoryRequest {
                csv,
                inventory: name.to_string(),
                actor: actor_text(actor),
            })
            .await?;
        Ok(r.into_inner().keys)
    }

    /// Take `act` as `actor` on every ticket of `keys` (all or none); returns their states.
    pub async fn act(
        &mut self,
        actor: Option<Code>,
        keys: &[String],
        act: &Act,
    ) -> Result<Vec<TicketRow>, ClientError> {
        let mut req = pb::ActRequest {
            keys: keys.to_vec(),
            action: act.name().to_string(),
            actor: actor_text(actor),
            ..Default::default()
        };
        match act {
            Act::Rectify { note } => req.note = note.clone(),
            Act::Return { reason } => req.reason = reason.clone(),
            Act::Split { into } => req.into = into.iter().map(|c| c.to_string()).collect(),
            _ => {}
        }
        let r = self.inner.act(req).await?;
        Ok(r.into_inner().tickets.into_iter().map(Into::into).collect())
    }

    /// The tickets matching `f` (without history) and how many matched before the limit.
    pub async fn list(&mut self, f: &ListFilter) -> Result<(Vec<TicketRow>, u32), ClientError> {
        let r = self
            .inner
            .list(pb::ListRequest {
                state: f.state.clone().unwrap_or_default(),
                target: f.target.map(|c| c.to_string()).unwrap_or_default(),
                inventory: f.inventory.clone().unwrap_or_default(),
                overdue: f.overdue,
                issuer: f.issuer.map(|c| c.to_string()).unwrap_or_default(),
                limit: f.limit,
            })
            .await?
            .into_inner();
        Ok((r.tickets.into_iter().map(Into::into).collect(), r.total))
    }

    /// One ticket with its history.
    pub async fn show(&mut self, key: &str) -> Result<TicketRow, ClientError> {
        let r = self
            .inner
            .show(pb::ShowRequest {
                key: key.to_string(),
            })
            .await?;
        Ok(r.into_inner().into())
    }

    /// Progress of `inventory` (default: all tickets) seen from `division` (default: the
    /// node's).
    pub async fn progress(
        &mut self,
        inventory: Option<&str>,
        division: Option<Code>,
    ) -> Result<ProgressReport, ClientError> {
        let r = self
            .inner
            .progress(pb::ProgressRequest {
                inventory: inventory.unwrap_or_default().to_string(),
                division: division.map(|c| c.to_string()).unwrap_or_default(),
            })
            .await?
            .into_inner();
        let total = r
            .total
            .ok_or_else(|| ClientError::BadReply("progress without a total".into()))?;
        Ok(ProgressReport {
            inventory: none_if_empty(r.inventory),
            today: r.today,
            total: total.into(),
            regions: r.regions.into_iter().map(Into::into).collect(),
        })
    }
}
