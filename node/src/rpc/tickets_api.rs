//! The `Tickets` gRPC service: issue tickets and inventories into the node's subtree, act on
//! tickets, list, show and follow inventory progress. (Being written: see issue #4.)

use std::sync::Arc;

use bottomline_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::ledger::Ledger;

/// The node's ticket API.
pub struct TicketsService {
    #[allow(dead_code)]
    ledger: Arc<Ledger>,
}

impl TicketsService {
    /// Serve the tickets of `ledger`.
    pub fn new(ledger: Arc<Ledger>) -> Self {
        TicketsService { ledger }
    }
}

#[tonic::async_trait]
impl pb::tickets_server::Tickets for TicketsService {
    async fn issue(
        &self,
        _: Request<pb::IssueRequest>,
    ) -> Result<Response<pb::IssueReply>, Status> {
        Err(Status::unimplemented("issue"))
    }
    async fn inventory(
        &self,
        _: Request<pb::InventoryRequest>,
    ) -> Result<Response<pb::IssueReply>, Status> {
        Err(Status::unimplemented("inventory"))
    }
    async fn act(&self, _: Request<pb::ActRequest>) -> Result<Response<pb::ActReply>, Status> {
        Err(Status::unimplemented("act"))
    }
    async fn list(&self, _: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        Err(Status::unimplemented("list"))
    }
    async fn show(
        &self,
        _: Request<pb::ShowRequest>,
    ) -> Result<Response<pb::TicketView>, Status> {
        Err(Status::unimplemented("show"))
    }
    async fn progress(
        &self,
        _: Request<pb::ProgressRequest>,
    ) -> Result<Response<pb::ProgressReply>, Status> {
        Err(Status::unimplemented("progress"))
    }
}
