//! The client of a node's `Workflow` service, for the CLI and tests: requests from plain
//! values, replies as serialisable rows, so that no wire type leaves `rpc`.

use std::time::Duration;

use bottomline_proto::v1 as pb;
use serde::Serialize;
use tonic::transport::Channel;

use crate::rpc::tickets_client::ClientError;
use crate::security::tls::{ClientTls, Expect};

/// A signal the rules make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignalRow {
    /// Id (`WM-…`, `WA-…`, `WL-…`, `WI-…`).
    pub id: String,
    /// Household.
    pub household_code: String,
    /// department | data_comparison.
    pub source: String,
    /// Signal type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Department number (0: none).
    pub department: u32,
    /// Yuan.
    pub amount: String,
    /// Day.
    pub date: String,
    /// The rule that fired.
    pub rule: String,
}

impl From<pb::WarnSignal> for SignalRow {
    fn from(s: pb::WarnSignal) -> Self {
        SignalRow {
            id: s.id,
            household_code: s.household_code,
            source: s.source,
            kind: s.r#type,
            department: s.department,
            amount: s.amount,
            date: s.date,
            rule: s.rule,
        }
    }
}

/// What a run of the rules found (and wrote).
#[derive(Clone, Debug, Serialize)]
pub struct WarnReport {
    /// Department rows read.
    pub rows: u64,
    /// To create.
    pub new: Vec<SignalRow>,
    /// To change (as the rules make them now).
    pub changed: Vec<SignalRow>,
    /// No longer made.
    pub stale: Vec<SignalRow>,
    /// Already as made.
    pub unchanged: u64,
    /// Written.
    pub written: u64,
    /// Nothing written.
    pub dry_run: bool,
}

/// One step of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRow {
    /// open | advance | include | reject.
    pub action: String,
    /// The stage or outcome entered.
    pub to: String,
    /// Its day.
    pub date: String,
    /// Who.
    pub by: String,
    /// Note or reason.
    pub note: String,
}

/// A case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseRow {
    /// Id.
    pub id: String,
    /// Household.
    pub household_code: String,
    /// Discovered.
    pub discovered_date: String,
    /// Decided ("" while pending).
    pub decided_date: String,
    /// pending | included | rejected.
    pub outcome: String,
    /// Stage of a pending case.
    pub stage: String,
    /// 绿色通道.
    pub green_channel: bool,
    /// Days since discovery (to the decision, once decided).
    pub days: i32,
    /// Pending, day 10 or later.
    pub due: bool,
    /// Pending past the 15-day deadline.
    pub overdue: bool,
    /// Its steps (when asked for one case).
    pub steps: Vec<StepRow>,
}

impl From<pb::CaseView> for CaseRow {
    fn from(c: pb::CaseView) -> Self {
        CaseRow {
            id: c.id,
            household_code: c.household_code,
            discovered_date: c.discovered_date,
            decided_date: c.decided_date,
            outcome: c.outcome,
            stage: c.stage,
            green_channel: c.green_channel,
            days: c.days,
            due: c.due,
            overdue: c.overdue,
            steps: c
                .steps
                .into_iter()
                .map(|s| StepRow {
                    action: s.action,
                    to: s.to,
                    date: s.date,
                    by: s.by,
                    note: s.note,
                })
                .collect(),
        }
    }
}

/// Pending cases.
#[derive(Clone, Debug, Serialize)]
pub struct CaseList {
    /// The node's today.
    pub today: String,
    /// Cases listed.
    pub cases: Vec<CaseRow>,
    /// Pending cases at day 10 or later.
    pub due: u64,
    /// Pending cases past the deadline.
    pub overdue: u64,
}

/// A connection to a node's `Workflow` service.
pub struct WorkflowClient {
    inner: pb::workflow_client::WorkflowClient<Channel>,
}

fn one(r: pb::CaseReply) -> Result<CaseRow, ClientError> {
    r.case
        .map(Into::into)
        .ok_or_else(|| ClientError::BadReply("no case in the reply".into()))
}

impl WorkflowClient {
    /// Connect to the node at `addr` (`https://…` over mTLS with `tls`, `http://` for an
    /// insecure node): 5 s to connect, 120 s per call (a year of department data).
    pub async fn connect(addr: &str, tls: Option<&ClientTls>) -> Result<Self, ClientError> {
        let channel = crate::security::tls::channel(
            addr,
            tls,
            Expect::Any,
            Duration::from_secs(5),
            Some(Duration::from_secs(120)),
        )
        .await
        .map_err(|e| ClientError::Unreachable {
            addr: addr.to_string(),
            cause: e.to_string(),
        })?;
        Ok(WorkflowClient {
            inner: pb::workflow_client::WorkflowClient::new(channel)
                .max_decoding_message_size(super::MESSAGE_LIMIT)
                .max_encoding_message_size(super::MESSAGE_LIMIT),
        })
    }

    /// Run the warning rules (`rules`: TOML text, empty for the defaults).
    pub async fn warn(
        &mut self,
        rules: &str,
        dry_run: bool,
        prune: bool,
    ) -> Result<WarnReport, ClientError> {
        let r = self
            .inner
            .warn(pb::WarnRequest {
                rules: rules.into(),
                dry_run,
                prune,
            })
            .await?
            .into_inner();
        Ok(WarnReport {
            rows: r.rows,
            new: r.new.into_iter().map(Into::into).collect(),
            changed: r.changed.into_iter().map(Into::into).collect(),
            stale: r.stale.into_iter().map(Into::into).collect(),
            unchanged: r.unchanged,
            written: r.written,
            dry_run: r.dry_run,
        })
    }

    /// Open a case.
    pub async fn open(
        &mut self,
        id: &str,
        household: &str,
        discovered: &str,
        green_channel: bool,
        note: &str,
    ) -> Result<CaseRow, ClientError> {
        one(self
            .inner
            .case_open(pb::CaseOpenRequest {
                id: id.into(),
                household_code: household.into(),
                discovered_date: discovered.into(),
                green_channel,
                note: note.into(),
            })
            .await?
            .into_inner())
    }

    /// Advance a case to its next stage (`date` "" = today).
    pub async fn advance(
        &mut self,
        id: &str,
        date: &str,
        note: &str,
    ) -> Result<CaseRow, ClientError> {
        one(self
            .inner
            .case_advance(pb::CaseAdvanceRequest {
                id: id.into(),
                date: date.into(),
                note: note.into(),
            })
            .await?
            .into_inner())
    }

    /// Decide a case: `include` with a category, or `reject` with a reason.
    pub async fn decide(
        &mut self,
        id: &str,
        decision: &str,
        category: &str,
        reason: &str,
        date: &str,
    ) -> Result<CaseRow, ClientError> {
        one(self
            .inner
            .case_decide(pb::CaseDecideRequest {
                id: id.into(),
                decision: decision.into(),
                category: category.into(),
                reason: reason.into(),
                date: date.into(),
            })
            .await?
            .into_inner())
    }

    /// Pending cases (only due ones with `due`), or one case with its steps.
    pub async fn list(&mut self, id: Option<&str>, due: bool) -> Result<CaseList, ClientError> {
        let r = self
            .inner
            .case_list(pb::CaseListRequest {
                id: id.unwrap_or_default().into(),
                due,
            })
            .await?
            .into_inner();
        Ok(CaseList {
            today: r.today,
            cases: r.cases.into_iter().map(Into::into).collect(),
            due: r.due,
            overdue: r.overdue,
        })
    }

    /// Record a household's risk as eliminated on `date`; returns (category, identified,
    /// eliminated).
    pub async fn eliminate(
        &mut self,
        household: &str,
        date: &str,
        rules: &str,
    ) -> Result<(String, String, String), ClientError> {
        let r = self
            .inner
            .eliminate(pb::EliminateRequest {
                household_code: household.into(),
                date: date.into(),
                rules: rules.into(),
            })
            .await?
            .into_inner();
        Ok((r.category, r.identified_date, r.eliminated_date))
    }
}
