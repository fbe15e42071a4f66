//! The client of a node's `SpotChecks` service, for the CLI and tests: plain Rust values in
//! and out, so that no wire type leaves `rpc`.

use std::time::Duration;

use bottomline_proto::v1 as pb;
use serde::Serialize;
use tonic::transport::Channel;

use crate::rpc::tickets_client::ClientError;
use crate::security::tls::{ClientTls, Expect};

/// One pick of a draw, with names, and its task when held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PickRow {
    /// The county (scope county) or city (scope city) drawn for.
    pub unit: String,
    /// Its name.
    pub unit_name: String,
    /// The county drawn.
    pub county: String,
    /// Its name.
    pub county_name: String,
    /// The village drawn.
    pub village: String,
    /// Its name.
    pub village_name: String,
    /// The task "ISSUER/ID" (empty on a dry run).
    pub task: String,
    /// The task's state, when held.
    pub state: String,
    /// ok | findings, once recorded.
    pub result: String,
}

impl From<pb::SpotPick> for PickRow {
    fn from(p: pb::SpotPick) -> Self {
        PickRow {
            unit: p.unit,
            unit_name: p.unit_name,
            county: p.county,
            county_name: p.county_name,
            village: p.village,
            village_name: p.village_name,
            task: p.task,
            state: p.state,
            result: p.result,
        }
    }
}

/// A draw as the node reports it.
#[derive(Clone, Debug, Serialize)]
pub struct DrawReport {
    /// The drawing division.
    pub drawer: String,
    /// The week.
    pub week: String,
    /// county | city.
    pub scope: String,
    /// The published seed (hex).
    pub seed: String,
    /// The digest of the drawer's statistics of the week before (hex).
    pub digest: String,
    /// The picks.
    pub picks: Vec<PickRow>,
    /// The week was drawn before.
    pub already_drawn: bool,
    /// Nothing was issued.
    pub dry_run: bool,
}

/// A verification as the node reports it.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// The drawing division.
    pub drawer: String,
    /// The week.
    pub week: String,
    /// county | city.
    pub scope: String,
    /// The seed the tasks carry.
    pub published_seed: String,
    /// At the drawer: the seed from its statistics now equals the published one.
    pub seed_matches_statistics: Option<bool>,
    /// The draw recomputed for what the node holds.
    pub expected: Vec<PickRow>,
    /// Every difference.
    pub mismatches: Vec<String>,
    /// Nothing differs.
    pub ok: bool,
}

/// A result to record.
#[derive(Clone, Debug, Default)]
pub struct NewResult {
    /// The village checked.
    pub village: String,
    /// ok | findings.
    pub result: String,
    /// What was checked and found.
    pub note: String,
    /// The task "ISSUER/ID" (default: the village's only open one).
    pub task: Option<String>,
    /// Only a task of this week.
    pub week: Option<String>,
    /// Findings: the ticket's severity, deadline, category, household.
    pub severity: Option<String>,
    /// Findings: deadline yyyy-mm-dd.
    pub deadline: Option<String>,
    /// Findings: category.
    pub category: Option<String>,
    /// Findings: the household concerned.
    pub household_code: Option<String>,
}

/// A recorded result.
#[derive(Clone, Debug, Serialize)]
pub struct RecordReport {
    /// The task.
    pub task: String,
    /// Its state after the result.
    pub state: String,
    /// The ticket issued for the findings ("" without findings).
    pub finding_ticket: String,
}

/// A connection to a node's `SpotChecks` service.
pub struct SpotChecksClient {
    inner: pb::spot_checks_client::SpotChecksClient<Channel>,
}

impl SpotChecksClient {
    /// Connect to the node at `addr` (`https://host:port` over mTLS with `tls`; `http://` for
    /// an insecure node): 5 s to connect, 60 s per call.
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
        Ok(SpotChecksClient {
            inner: pb::spot_checks_client::SpotChecksClient::new(channel)
                .max_decoding_message_size(super::MESSAGE_LIMIT)
                .max_encoding_message_size(super::MESSAGE_LIMIT),
        })
    }

    /// Draw `week` in `scope` (`county` or `city`); `dry_run`: show without issuing.
    pub async fn draw(
        &mut self,
        week: &str,
        scope: &str,
        dry_run: bool,
    ) -> Result<DrawReport, ClientError> {
        let r = self
            .inner
            .draw(pb::SpotDrawRequest {
                week: week.to_string(),
                scope: scope.to_string(),
                dry_run,
            })
            .await?
            .into_inner();
        Ok(DrawReport {
            drawer: r.drawer,
            week: r.week,
            scope: r.scope,
            seed: r.seed,
            digest: r.digest,
            picks: r.picks.into_iter().map(Into::into).collect(),
            already_drawn: r.already_drawn,
            dry_run: r.dry_run,
        })
    }

    /// Verify the draw of `week` in `scope` by `drawer` (default: the province).
    pub async fn verify(
        &mut self,
        week: &str,
        scope: &str,
        drawer: Option<&str>,
    ) -> Result<VerifyReport, ClientError> {
        let r = self
            .inner
            .verify(pb::SpotVerifyRequest {
                week: week.to_string(),
                scope: scope.to_string(),
                drawer: drawer.unwrap_or_default().to_string(),
            })
            .await?
            .into_inner();
        Ok(VerifyReport {
            drawer: r.drawer,
            week: r.week,
            scope: r.scope,
            published_seed: r.published_seed,
            seed_matches_statistics: r.seed_matches_statistics,
            expected: r.expected.into_iter().map(Into::into).collect(),
            mismatches: r.mismatches,
            ok: r.ok,
        })
    }

    /// Record a result.
    pub async fn record(&mut self, n: NewResult) -> Result<RecordReport, ClientError> {
        let r = self
            .inner
            .record(pb::SpotRecordRequest {
                village: n.village,
                result: n.result,
                note: n.note,
                task: n.task.unwrap_or_default(),
                week: n.week.unwrap_or_default(),
                severity: n.severity.unwrap_or_default(),
                deadline: n.deadline.unwrap_or_default(),
                category: n.category.unwrap_or_default(),
                household_code: n.household_code.unwrap_or_default(),
            })
            .await?
            .into_inner();
        Ok(RecordReport {
            task: r.task,
            state: r.state,
            finding_ticket: r.finding_ticket,
        })
    }
}
