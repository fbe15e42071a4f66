//! The `Import` gRPC service: interchange files streamed into the running county node that
//! serves them (what `bottomline import --addr` calls), imported the way the inbox imports
//! (`inbox::import_set`): in dependency order, stopping at the first refused file, which the
//! reply names with every bad line, field and reason.
//!
//! The files are written under `DATA_DIR/uploads/` while they arrive (at most
//! [`MAX_UPLOAD_BYTES`] per call), imported, then removed. Only an operator or a node
//! certificate whose division covers the node's may import.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bottomline_proto::v1 as pb;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Caller;
use crate::division::Level;
use crate::import::FileKind;
use crate::ledger::Ledger;
use crate::security::tls::Revoked;

/// Most bytes one `Import` call may carry (every file together).
pub const MAX_UPLOAD_BYTES: u64 = 4 << 30;

/// The service.
pub struct ImportService {
    ledger: Arc<Ledger>,
    revoked: Option<watch::Receiver<Revoked>>,
}

impl ImportService {
    /// Import into `ledger`; `revoked` as for the other services (mTLS nodes).
    pub fn new(ledger: Arc<Ledger>, revoked: Option<watch::Receiver<Revoked>>) -> Self {
        ImportService { ledger, revoked }
    }
}

/// A file name as the client sent it: a plain name of a known kind.
fn checked_name(name: &str) -> Result<&str, Status> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name().is_some_and(|f| f == name);
    if !plain {
        return Err(Status::invalid_argument(format!(
            "file name {name:?}: a plain file name is expected (households.csv, signals.jsonl, …)"
        )));
    }
    if FileKind::from_path(Path::new(name)).is_none() {
        return Err(Status::invalid_argument(format!(
            "{name}: cannot tell what the file holds from its name; name it divisions, \
             households, monitored, signals, cases or measures (.csv or .jsonl)"
        )));
    }
    Ok(name)
}

/// A directory for one call's files, removed when dropped.
struct Upload(PathBuf);

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl pb::import_server::Import for ImportService {
    async fn import(
        &self,
        request: Request<Streaming<pb::ImportChunk>>,
    ) -> Result<Response<pb::ImportReply>, Status> {
        let caller = Caller::of(&request, self.revoked.as_ref())?;
        let me = self.ledger.division();
        caller.actor(&me.to_string(), me, &format!("import records into {me}"))?;
        if me.level() < Level::County {
            return Err(Status::failed_precondition(format!(
                "this node serves {me}, above county level: it holds its children's replicas; \
                 records are imported at the county node that serves them"
            )));
        }
        let root = self.ledger.store().path().join("uploads");
        let dir = root.join(format!(
            "{}-{:08x}",
            crate::ledger::unix_ms_now(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let upload = Upload(dir);
        let mut inbound = request.into_inner();
        let mut paths: Vec<PathBuf> = Vec::new();
        let mut current: Option<(String, std::fs::File)> = None;
        let mut total = 0u64;
        while let Some(chunk) = inbound.message().await? {
            total += chunk.data.len() as u64;
            if total > MAX_UPLOAD_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "more than {} GiB in one import; send the files in several calls",
                    MAX_UPLOAD_BYTES >> 30
                )));
            }
            let same = current.as_ref().is_some_and(|(n, _)| *n == chunk.file_name);
            if !same {
                let name = checked_name(&chunk.file_name)?.to_string();
                let path = upload.0.join(&name);
                if paths.contains(&path) {
                    return Err(Status::invalid_argument(format!(
                        "{name} is sent twice in one import"
                    )));
                }
                let f = std::fs::File::create(&path).map_err(internal)?;
                paths.push(path);
                current = Some((name, f));
            }
            if let Some((_, f)) = current.as_mut() {
                f.write_all(&chunk.data).map_err(internal)?;
            }
        }
        if let Some((_, f)) = current.take() {
            f.sync_all().map_err(internal)?;
        }
        if paths.is_empty() {
            return Err(Status::invalid_argument("no file in the import"));
        }
        let ledger = self.ledger.clone();
        let today = crate::period::today_in_china();
        let outcome = tokio::task::spawn_blocking(move || {
            let o = crate::inbox::import_set(&ledger, &paths, today);
            drop(upload);
            o
        })
        .await
        .map_err(internal)?;
        let name = |p: &Path| {
            p.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let files = outcome
            .imported
            .iter()
            .map(|r| pb::ImportedFile {
                file_name: name(&r.file),
                kind: r.kind.to_string(),
                rows: r.rows,
                inserted: r.applied.inserted,
                corrected: r.applied.corrected,
                unchanged: r.applied.unchanged,
                cells_written: r.applied.cells_written,
            })
            .collect();
        let (rejected_file, error) = match outcome.rejected {
            // The upload directory is gone: name the file as the client named it.
            Some((f, e)) => {
                let n = name(&f);
                (n.clone(), e.for_file(PathBuf::from(n)).to_string())
            }
            None => (String::new(), String::new()),
        };
        if !rejected_file.is_empty() {
            tracing::warn!(file = %rejected_file, caller = ?caller.identity(), "import: file rejected");
        }
        Ok(Response::new(pb::ImportReply {
            files,
            rejected_file,
            error,
        }))
    }
}
