//! What the relay's tasks share: the configuration, the custody store, the parent's channel,
//! the live state of each lane (child link and upstream), the shutdown signal and a count of
//! running tasks (so that shutdown can wait for them before the last flush).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bottomline::division::Code;
use bottomline::security::tls::Revoked;
use bottomline_proto::v1 as pb;
use tokio::sync::watch;

use crate::config::Config;
use crate::custody::{Custody, CustodyError, Lane};
use crate::upstream::Parent;

/// Envelopes in flight on a link before the sender waits for acks (as the node's uplink).
pub(crate) const WINDOW: usize = 8;

/// Largest gRPC message the relay sends or accepts (a batch of 1 000 blocks stays far below).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What this software calls itself.
pub const SOFTWARE: &str = concat!("bottomline-relay ", env!("CARGO_PKG_VERSION"));

/// Live (not durable) state of one lane, for `Status`.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveStatus {
    /// A link from the child is open now.
    pub child_connected: bool,
    /// Last message from the child (since this relay started).
    pub last_contact: Option<SystemTime>,
    /// The lane's upstream link to the parent is open (welcomed).
    pub parent_connected: bool,
    /// Why the upstream link is down, if it is.
    pub last_error: Option<String>,
}

/// One lane's runtime: its custody, which child link owns it, its live status.
pub(crate) struct LaneLive {
    /// The lane's queues, Hello and cursor.
    pub lane: Arc<Lane>,
    /// Bumped by every new child link: an older link of the same child ends.
    pub generation: watch::Sender<u64>,
    /// Held by the child link being served, for its whole life (the next one waits for it).
    pub slot: Arc<tokio::sync::Mutex<()>>,
    status: Mutex<LiveStatus>,
    upstream_started: AtomicBool,
    /// What the parent's last Welcome said beyond the cursor (the child's event counter, the
    /// parent's clock, why it replaced what it held), passed on in the relay's Welcome.
    /// Not stored: a child's new incarnation always waits for a fresh Welcome.
    welcome_extras: Mutex<(u64, u64, String)>,
}

impl LaneLive {
    /// The live status (a lock held briefly).
    pub fn status(&self) -> MutexGuard<'_, LiveStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep the parent's Welcome's counters and reset reason for the child's Welcome.
    pub fn set_welcome_extras(&self, w: &pb::Welcome) {
        *self
            .welcome_extras
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (w.origin_seq, w.ticket_clock, w.reset.clone());
    }

    /// The relay's Welcome to the child, beyond the cursor: what the parent's last said.
    pub fn welcome_extras(&self) -> pb::Welcome {
        let (origin_seq, ticket_clock, reset) = self
            .welcome_extras
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        pb::Welcome {
            origin_seq,
            ticket_clock,
            reset,
            ..Default::default()
        }
    }

    /// True the first time only: the caller starts the lane's upstream.
    pub fn claim_upstream(&self) -> bool {
        !self.upstream_started.swap(true, Ordering::SeqCst)
    }
}

/// Counts running tasks; shutdown waits until none is left.
#[derive(Clone)]
pub(crate) struct Tracker {
    count: Arc<watch::Sender<usize>>,
}

struct TaskGuard(Arc<watch::Sender<usize>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker {
            count: Arc::new(watch::channel(0).0),
        }
    }

    /// Spawn a counted task (counted until it returns or is aborted).
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.count.send_modify(|n| *n += 1);
        let guard = TaskGuard(self.count.clone());
        tokio::spawn(async move {
            let _guard = guard;
            fut.await
        })
    }

    /// Resolve once every counted task has ended.
    pub async fn wait(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Everything the relay's tasks share.
pub(crate) struct Shared {
    pub config: Config,
    pub custody: Arc<Custody>,
    pub parent: Parent,
    /// The relay's own certificate name.
    pub name: String,
    /// Revoked serials (reloaded with the CRL).
    pub revoked: watch::Receiver<Revoked>,
    /// Turns true once: stop.
    pub stop: watch::Receiver<bool>,
    pub tasks: Tracker,
    lanes: Mutex<HashMap<Code, Arc<LaneLive>>>,
}

impl Shared {
    pub fn new(
        config: Config,
        custody: Arc<Custody>,
        name: String,
        revoked: watch::Receiver<Revoked>,
        stop: watch::Receiver<bool>,
    ) -> Shared {
        let parent = Parent::new(&config);
        Shared {
            config,
            custody,
            parent,
            name,
            revoked,
            stop,
            tasks: Tracker::new(),
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// The parent's division (the relay answers in its name).
    pub fn parent_division(&self) -> Code {
        self.config.parent_division
    }

    /// The runtime of `code`'s lane, created on first use.
    pub fn live(&self, code: Code) -> Arc<LaneLive> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes
            .entry(code)
            .or_insert_with(|| {
                Arc::new(LaneLive {
                    lane: self.custody.lane(code),
                    generation: watch::channel(0).0,
                    slot: Arc::new(tokio::sync::Mutex::new(())),
                    status: Mutex::new(LiveStatus::default()),
                    upstream_started: AtomicBool::new(false),
                    welcome_extras: Default::default(),
                })
            })
            .clone()
    }

    /// The runtime of `code`'s lane if it has one.
    pub fn live_if_any(&self, code: Code) -> Option<Arc<LaneLive>> {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.get(&code).cloned()
    }

    /// True once the relay is stopping.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Run blocking custody work (sled commits and flushes) off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, CustodyError>
where
    F: FnOnce() -> Result<T, CustodyError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CustodyError::Interrupted(e.to_string()))?
}
