//! A running node: the gRPC server (sync, stats, health, reflection) and the uplink to the
//! parent, started from a [`Config`] and stopped by one shutdown signal in a fixed order:
//! stop accepting, stop the uplink, flush the store.

use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::ledger::Ledger;
use crate::rpc::{self, Children, SyncService, UplinkState};
use crate::security::tls::{self, ServerTls};
use crate::security::Identity;

/// Handles to a running node's shared state (for status and tests).
#[derive(Clone)]
pub struct NodeHandle {
    /// The node's ledger.
    pub ledger: Arc<Ledger>,
    /// Link states of the children.
    pub children: Children,
    /// Link state towards the parent.
    pub uplink: Arc<Mutex<UplinkState>>,
    /// The node's last check of itself.
    pub self_check: rpc::SelfCheckState,
    /// The node's metrics (`/metrics`).
    pub metrics: Arc<crate::http::metrics::NodeMetrics>,
    /// Where the dashboard and HTTP API listen, once bound (`http_listen` may ask port 0).
    pub http_addr: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
    /// The node's TLS once loaded (`None` on an insecure node): its revocation list's
    /// freshness for `/metrics`.
    pub tls: Arc<std::sync::OnceLock<Arc<ServerTls>>>,
}

/// Open the node's ledger (creating the data dir for its division if new).
pub fn open(config: &Config) -> anyhow::Result<NodeHandle> {
    let ledger = Ledger::open_or_init(
        &config.data_dir,
        Some(config.division),
        &config.store_options(),
    )?;
    let metrics = crate::http::metrics::NodeMetrics::new(ledger.metrics());
    Ok(NodeHandle {
        metrics,
        ledger: Arc::new(ledger),
        children: Default::default(),
        uplink: Default::default(),
        self_check: Default::default(),
        http_addr: Default::default(),
        tls: Default::default(),
    })
}

/// Run a node until `shutdown` resolves. `listener` is the bound gRPC listener (tests bind
/// `127.0.0.1:0`); a node without one only dials its parent.
pub async fn run(
    config: Config,
    handle: NodeHandle,
    listener: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let tls = match &config.tls {
        Some(t) => {
            let tls = ServerTls::load(t)?;
            let own = tls.own();
            if own.identity
                != (Identity::Node {
                    division: config.division,
                })
            {
                anyhow::bail!(
                    "{}: the certificate is {}, not node {}",
                    t.cert.display(),
                    own.identity,
                    config.division
                );
            }
            tracing::info!(cert = %t.cert.display(), serial = %own.serial, "mTLS on every link and API");
            let _ = handle.tls.set(tls.clone());
            Some(tls)
        }
        None => {
            tracing::warn!(
                "insecure = true: plaintext, no certificates, callers trusted by what they claim; \
                 for local experiments only"
            );
            None
        }
    };
    // The people of the dashboard (the file is read again when `bottomline user` changes it).
    let accounts_path = config.accounts_path();
    let accounts = crate::http::accounts::Accounts::open(&accounts_path, config.division)?;
    let anonymous = crate::http::check_access(&config, &accounts)?;
    // A county's inbox (created with its done/ and rejected/ before anything starts).
    let inbox = match &config.inbox {
        Some(dir) => Some(crate::inbox::Inbox::open(dir).map_err(|e| {
            anyhow::anyhow!(
                "inbox {}: cannot create it or its done/ and rejected/: {e}",
                dir.display()
            )
        })?),
        None => None,
    };
    let crl_watch = tls.clone().map(|t| tokio::spawn(t.watch(stop_rx.clone())));
    // What this node creates is signed with its certificate's key (issue #15 point 4).
    let seals = match &config.tls {
        Some(files) => {
            let seals = rpc::envelope::Seals::load(files)?;
            if let Some(k) = seals.key() {
                handle.ledger.set_signing_key(k.clone())?;
            }
            seals
        }
        None => rpc::envelope::Seals::insecure(),
    };
    let uplink = config.parent.clone().map(|parent| {
        tokio::spawn(rpc::uplink(
            handle.ledger.clone(),
            parent,
            config.sync.clone(),
            config.tls.clone(),
            seals.clone(),
            handle.uplink.clone(),
            stop_rx.clone(),
        ))
    });
    let metrics = handle.metrics.clone();
    let http_listener = match config.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("http_listen {addr}: cannot listen there: {e}"))?,
        ),
        None => None,
    };
    let sync_svc = Arc::new(
        SyncService::new(
            handle.ledger.clone(),
            handle.children.clone(),
            handle.uplink.clone(),
            &config.sync,
            stop_rx.clone(),
            tls.as_ref().map(|t| t.revoked()),
            seals.clone(),
        )
        .with_self_check(handle.self_check.clone()),
    );
    let tickets_svc = Arc::new(
        rpc::tickets_api::TicketsService::new(
            handle.ledger.clone(),
            tls.as_ref().map(|t| t.revoked()),
        )
        .with_verifier(seals.verifier().cloned()),
    );
    let http = match http_listener {
        Some(listener) => {
            let _ = handle.http_addr.set(listener.local_addr()?);
            let state = Arc::new(crate::http::HttpState {
                handle: handle.clone(),
                sync: sync_svc.clone(),
                tickets: tickets_svc.clone(),
                accounts,
                sessions: crate::http::sessions::Sessions::new(
                    std::time::Duration::from_secs(config.session_idle_minutes * 60),
                    std::time::Duration::from_secs(config.session_max_hours * 3600),
                ),
                limiter: crate::http::sessions::LoginLimiter::new(),
                anonymous,
                metrics: metrics.clone(),
                silent_after: config.sync.silent_after(),
                stalled_after: config.sync.stalled_after(),
            });
            Some(tokio::spawn(crate::http::serve(
                listener,
                state,
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let server = listener.map(|listener| {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        let (svc, tickets) = (sync_svc, tickets_svc);
        let import = rpc::import_api::ImportService::new(
            handle.ledger.clone(),
            tls.as_ref().map(|t| t.revoked()),
        );
        let spot_checks = rpc::spotcheck_api::SpotChecksService::new(
            handle.ledger.clone(),
            tls.as_ref().map(|t| t.revoked()),
        );
        let workflow = rpc::workflow_api::WorkflowService::new(
            handle.ledger.clone(),
            tls.as_ref().map(|t| t.revoked()),
        );
        let incoming = tls::incoming(listener, tls.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            health_reporter
                .set_serving::<bottomline_proto::v1::sync_server::SyncServer<SyncService>>()
                .await;
            let reflection = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(bottomline_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()?;
            // Python's grpcio-reflection, Postman and older grpcurl ask v1alpha only.
            let reflection_alpha = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(bottomline_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1alpha()?;
            tonic::transport::Server::builder()
                .layer(metrics.grpc_layer())
                .add_service(health_service)
                .add_service(reflection)
                .add_service(reflection_alpha)
                .add_service(
                    bottomline_proto::v1::sync_server::SyncServer::from_arc(svc)
                        .max_decoding_message_size(rpc::MESSAGE_LIMIT)
                        .max_encoding_message_size(rpc::MESSAGE_LIMIT),
                )
                .add_service(
                    bottomline_proto::v1::tickets_server::TicketsServer::from_arc(tickets)
                        .max_decoding_message_size(rpc::MESSAGE_LIMIT)
                        .max_encoding_message_size(rpc::MESSAGE_LIMIT),
                )
                .add_service(
                    bottomline_proto::v1::import_server::ImportServer::new(import)
                        .max_decoding_message_size(rpc::MESSAGE_LIMIT)
                        .max_encoding_message_size(rpc::MESSAGE_LIMIT),
                )
                .add_service(
                    bottomline_proto::v1::spot_checks_server::SpotChecksServer::new(spot_checks)
                        .max_decoding_message_size(rpc::MESSAGE_LIMIT)
                        .max_encoding_message_size(rpc::MESSAGE_LIMIT),
                )
                .add_service(
                    bottomline_proto::v1::workflow_server::WorkflowServer::new(workflow)
                        .max_decoding_message_size(rpc::MESSAGE_LIMIT)
                        .max_encoding_message_size(rpc::MESSAGE_LIMIT),
                )
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await?;
            Ok::<(), anyhow::Error>(())
        })
    });
    let watcher = tokio::spawn(watch_silent_children(
        handle.clone(),
        config.sync.silent_after(),
        config.sync.stalled_after(),
        stop_rx.clone(),
    ));
    let ticket_days = tokio::spawn(refresh_ticket_cells(handle.ledger.clone(), stop_rx.clone()));
    // The node checks itself at a low rate; a mismatch is an alert in `status`.
    let checker = (config.check_secs > 0.0).then(|| {
        tokio::spawn(check_itself(
            handle.clone(),
            std::time::Duration::from_secs_f64(config.check_secs),
            stop_rx.clone(),
        ))
    });
    // Freed memory goes back to the OS now and then (glibc keeps it otherwise: the soak saw
    // nodes' RSS creep with their heap in use flat, see `memory::setup`).
    let trimmer = tokio::spawn(trim_memory(
        TRIM_EVERY,
        handle.ledger.clone(),
        stop_rx.clone(),
    ));
    // A county's inbox: files dropped there are imported while the node serves.
    let inbox = inbox.map(|inbox| {
        tokio::spawn(crate::inbox::watch(
            handle.ledger.clone(),
            inbox,
            std::time::Duration::from_secs_f64(config.inbox_poll_secs),
            stop_rx.clone(),
        ))
    });
    tracing::info!(
        division = %config.division,
        allocator = crate::memory::allocator_name(),
        "node running"
    );
    shutdown.await;
    tracing::info!("shutting down: stop accepting");
    let _ = stop_tx.send(true);
    if let Some(s) = server {
        s.await??;
    }
    if let Some(h) = http {
        h.await??;
    }
    tracing::info!("shutting down: uplink stopped");
    if let Some(u) = uplink {
        u.await?;
    }
    watcher.await?;
    ticket_days.await?;
    trimmer.await?;
    if let Some(c) = checker {
        c.await?;
    }
    if let Some(i) = inbox {
        // An import under way finishes (and is filed away) before the store closes.
        i.await?;
    }
    if let Some(w) = crl_watch {
        w.await?;
    }
    let ledger = handle.ledger.clone();
    tokio::task::spawn_blocking(move || ledger.store().flush()).await??;
    tracing::info!("shutting down: store flushed");
    Ok(())
}

/// How often a serving node gives freed heap back to the OS.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Every `every`, drop the ticket log's cached entries past their age and return freed heap
/// to the OS (`memory::release_memory`: a walk of the allocator's arenas, a few ms), on a
/// blocking thread.
async fn trim_memory(
    every: std::time::Duration,
    ledger: Arc<Ledger>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let l = ledger.clone();
        let _ = tokio::task::spawn_blocking(move || {
            l.expire_ticket_cache();
            crate::memory::release_memory()
        })
        .await;
    }
}

/// How long a background check waits for the uplink's backlog in all, at most (or one check
/// period, if longer): a link streaming for longer does not put the check off for ever.
const CHECK_YIELD_BUDGET: std::time::Duration = std::time::Duration::from_secs(300);

/// Check the node's cells every `every` (the first time soon after start): a county against
/// its records, a parent against its children's replicas. The outcome is kept for `status`;
/// a mismatch is logged as an error with the first differing cells.
async fn check_itself(
    handle: NodeHandle,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    // The first check after a random part of the period (at least 10 s, so that a node
    // starting up first links and serves; a tree started at once does not check everywhere
    // at once), then every period. What a check frees goes back to the OS at its end (it
    // reads every cell and record of the node: the largest transient after an import).
    let first = every.mul_f64(0.25 + 0.75 * rand::random::<f64>());
    let mut wait = first.max(every.min(std::time::Duration::from_secs(10)));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = every;
        let ledger = handle.ledger.clone();
        let started = std::time::Instant::now();
        // It yields to the uplink's backlog before each part (the sync first, the check at a
        // low rate), for CHECK_YIELD_BUDGET or a period in all.
        let budget = every.max(CHECK_YIELD_BUDGET);
        let checked = tokio::task::spawn_blocking(move || {
            let r = ledger.self_check_yielding(budget);
            crate::memory::release_memory();
            r
        });
        match checked.await {
            Ok(Ok((report, waited))) => {
                let tenths = |d: std::time::Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
                let secs = tenths(started.elapsed());
                let waited_secs = tenths(waited);
                if report.ok() {
                    tracing::info!(cells = report.cells, secs, waited_secs, "self-check: ok");
                } else {
                    let first: Vec<String> = report
                        .first
                        .iter()
                        .take(5)
                        .map(ToString::to_string)
                        .collect();
                    tracing::error!(
                        differing = report.differing,
                        secs,
                        waited_secs,
                        first = %first.join("; "),
                        "self-check FAILED: {}",
                        report.what
                    );
                }
                *handle.self_check.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(rpc::SelfCheck {
                        at_unix_ms: crate::ledger::unix_ms_now(),
                        report,
                    });
            }
            Ok(Err(e)) => tracing::warn!(cause = %e, "self-check could not run"),
            Err(e) => tracing::warn!(cause = %e, "self-check task failed"),
        }
    }
}

/// Bring the ticket cells up to today once a day has turned (China time): tickets turn
/// overdue in the statistics on the day they do. Checked every minute and at start.
async fn refresh_ticket_cells(ledger: std::sync::Arc<Ledger>, mut stop: watch::Receiver<bool>) {
    loop {
        let l = ledger.clone();
        let r = tokio::task::spawn_blocking(move || {
            l.refresh_ticket_cells(crate::period::today_in_china())
        })
        .await;
        match r {
            Ok(Ok(n)) if n > 0 => tracing::info!(tickets = n, "ticket cells brought up to today"),
            Ok(Err(e)) => tracing::warn!(cause = %e, "cannot bring the ticket cells up to today"),
            _ => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Log a warning when a child turns silent (no message for longer than `silent_after`) and
/// when it is heard from again: a stalled link must never go unnoticed.
async fn watch_silent_children(
    handle: NodeHandle,
    silent_after: std::time::Duration,
    stalled_after: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut stalled: std::collections::BTreeSet<crate::division::Code> = Default::default();
    let every = (silent_after / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(30),
    );
    let mut silent: std::collections::BTreeSet<crate::division::Code> = Default::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (ledger, children) = (handle.ledger.clone(), handle.children.clone());
        let known = silent.clone();
        let known_stalled = stalled.clone();
        // The ticket backlogs (a pass over the ticket log) only for children turning silent.
        let reports = tokio::task::spawn_blocking(move || {
            let mut reports = rpc::child_reports(&ledger, &children, silent_after, stalled_after)?;
            // Children turning stalled or moving again: logged below.
            let turning_stalled: Vec<_> = reports
                .iter()
                .filter(|r| r.stalled != known_stalled.contains(&r.division))
                .cloned()
                .collect();
            reports.retain(|r| r.silent != known.contains(&r.division));
            let mut turning: Vec<_> = reports.iter().filter(|r| r.silent).cloned().collect();
            rpc::fill_ticket_backlogs(&ledger, &mut turning)?;
            reports.retain(|r| !r.silent);
            reports.extend(turning);
            Ok::<_, crate::ledger::LedgerError>((reports, turning_stalled))
        })
        .await;
        let Ok(Ok((reports, turning_stalled))) = reports else {
            continue;
        };
        for r in turning_stalled {
            if r.stalled && stalled.insert(r.division) {
                tracing::warn!(
                    child = %r.division,
                    acked = r.acked,
                    backlog = r.backlog,
                    ticket_events_waiting_up = r.ticket_backlog_up,
                    "child link STALLED: it has something to deliver and nothing moved for {:.0} s",
                    stalled_after.as_secs_f64()
                );
            } else if !r.stalled && stalled.remove(&r.division) {
                tracing::info!(child = %r.division, "child link moving again");
            }
        }
        for r in reports {
            if r.silent && silent.insert(r.division) {
                tracing::warn!(
                    child = %r.division,
                    last_contact_unix_ms = r.last_contact_unix_ms,
                    acked = r.acked,
                    backlog = r.backlog,
                    ticket_events_waiting_down = r.ticket_backlog_down,
                    ticket_events_waiting_up = r.ticket_backlog_up,
                    "child is silent for longer than {} s",
                    silent_after.as_secs()
                );
            } else if !r.silent && silent.remove(&r.division) {
                tracing::info!(child = %r.division, "child heard from again");
            }
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what `bottomline serve` and `bottomline-relay` stop
/// on). The handlers are installed when this is called (inside a Tokio runtime), not when the
/// future is first polled: a process calls it first thing, so a SIGTERM that arrives while
/// the node is still opening its store stops it cleanly instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async move {
        let _ = tokio::signal::ctrl_c().await;
    }
}
