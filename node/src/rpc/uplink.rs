//! The child's side of a link: [`uplink`] dials the parent (or a relay in front of it),
//! learns where the parent's durable copy ends (`Welcome`), streams the change log from
//! there in sweeps (invariant 12), sends and receives ticket events, and sends a signed
//! heartbeat `Hello` every `heartbeat_secs`.

use super::*;

/// What a child knows about its link to the parent.
#[derive(Clone, Debug, Default)]
pub struct UplinkState {
    /// The parent's endpoint (none at the top of the tree).
    pub parent: Option<String>,
    /// Connected now.
    pub connected: bool,
    /// Highest log position the parent acked.
    pub acked: u64,
    /// Blocks changed after the delivered floor (as of the last heartbeat; `Status` counts
    /// them when asked, from `floor`).
    pub backlog: u64,
    /// The delivered floor: every block changed at or below it is durable at the parent.
    pub floor: u64,
    /// Highest own ticket-log position the parent has made durable (from its `Welcome` and
    /// `TicketAck`s; 0 before the first `Welcome`).
    pub ticket_acked: u64,
    /// Own ticket events after `ticket_acked` that go to the parent (as of the last heartbeat;
    /// `Status` counts them when asked).
    pub ticket_backlog: u64,
    /// Last error, if the link is down.
    pub last_error: Option<String>,
    /// Links established since start (a Welcome received).
    pub links: u64,
}

/// Keep `ledger`'s change log flowing to `parent` until `shutdown` turns true: reconnects
/// with backoff, resumes from the parent's durable position.
pub async fn uplink(
    ledger: Arc<Ledger>,
    parent: String,
    cfg: SyncConfig,
    tls: Option<TlsFiles>,
    seals: Arc<Seals>,
    state: Arc<Mutex<UplinkState>>,
    mut shutdown: watch::Receiver<bool>,
) {
    state.lock().unwrap_or_else(|p| p.into_inner()).parent = Some(parent.clone());
    let mut delay = cfg.reconnect();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let links_before = state.lock().unwrap_or_else(|p| p.into_inner()).links;
        let up = Uplink {
            ledger: &ledger,
            parent: &parent,
            cfg: &cfg,
            tls: tls.as_ref(),
            seals: &seals,
        };
        match run_uplink(up, &state, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(%parent, cause = %e, "link to parent down; retrying");
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.connected = false;
                s.last_error = Some(e.to_string());
                // A link that was up: the next failure starts the backoff over.
                if s.links != links_before {
                    delay = cfg.reconnect();
                }
            }
        }
        // Jitter (±25 %) so that counties cut off together do not all redial at once.
        let jitter = 0.75 + 0.5 * rand::random::<f64>();
        tokio::select! {
            _ = tokio::time::sleep(delay.mul_f64(jitter)) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// What one dial of the uplink works with.
struct Uplink<'a> {
    ledger: &'a Arc<Ledger>,
    parent: &'a str,
    cfg: &'a SyncConfig,
    tls: Option<&'a TlsFiles>,
    seals: &'a Arc<Seals>,
}

async fn run_uplink(
    up: Uplink<'_>,
    state: &Arc<Mutex<UplinkState>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Uplink {
        ledger,
        parent,
        cfg,
        tls,
        seals,
    } = up;
    let me = ledger.division();
    // The files are read at every dial, so a renewed certificate or a new CRL is taken up.
    let tls = tls.map(ClientTls::load).transpose()?;
    let channel = tls::channel(
        parent,
        tls.as_ref(),
        Expect::ParentOf(me),
        cfg.connect_timeout(),
        None,
    )
    .await?;
    let mut client = pb::sync_client::SyncClient::new(channel)
        .max_decoding_message_size(MESSAGE_LIMIT)
        .max_encoding_message_size(MESSAGE_LIMIT);
    let (tx, rx) = mpsc::channel::<pb::Envelope>(crate::link::WINDOW);
    let identity = Some(super::identity_to_pb(ledger.identity()));
    let incarnation = ledger.identity().current().map_or(0, |i| i.id);
    let hello = pb::Hello {
        division: me.to_string(),
        head: ledger.durable_seq(),
        software: SOFTWARE.to_string(),
        backlog: 0,
        ticket_backlog: 0,
        certificate: seals.certificate(),
        sent_unix_ms: crate::ledger::unix_ms_now(),
        identity: identity.clone(),
    };
    tx.send(seals.envelope(me, 0, Payload::Hello(hello)))
        .await?;
    // A parent that accepts the connection and then stalls must not hold the link forever:
    // the stream's opening and the Welcome each get the connect timeout.
    let stalled = || {
        format!(
            "the parent accepted the connection but did not answer within {:.1} s",
            cfg.connect_timeout().as_secs_f64()
        )
    };
    let mut inbound =
        tokio::time::timeout(cfg.connect_timeout(), client.link(ReceiverStream::new(rx)))
            .await
            .map_err(|_| stalled())??
            .into_inner();
    let first = tokio::time::timeout(cfg.connect_timeout(), inbound.message())
        .await
        .map_err(|_| stalled())??;
    let welcome = match first.and_then(|e| e.payload) {
        Some(Payload::Welcome(w)) => super::welcome_from_pb(w)
            .map_err(|e| format!("the parent's Welcome names no division: {e}"))?,
        _ => return Err("the parent did not answer Hello with Welcome".into()),
    };
    let (acked_tx, mut acked_rx) = watch::channel(welcome.acked);
    let parent_div = welcome.division;
    if !welcome.reset.is_empty() {
        tracing::warn!(%parent, reason = %welcome.reset,
            "the parent replaced what it held of this node's store; everything is sent again");
    }
    // Never reuse an event id or go back in Lamport time (a store restored from an older
    // backup), before the ticket sender or anyone else creates an event.
    let (l, w) = (ledger.clone(), welcome.clone());
    match tokio::task::spawn_blocking(move || crate::link::welcomed(&l, &w)).await?? {
        Err(why) => return Err(format!("{parent}: {why}").into()),
        Ok(true) => tracing::info!(
            origin_seq = welcome.origin_seq,
            clock = welcome.ticket_clock,
            "event counter moved past what the parent holds"
        ),
        Ok(false) => {}
    }
    // Sweep state (invariant 12): a sweep interrupted by a crash or a cut continues where the
    // parent's durable copy ends.
    let mut cells = crate::link::CellSender::new(welcome.acked, welcome.resume_pos);
    // Ticket events for the parent flow up from where the parent's durable copy ends.
    let (up_acked_tx, up_acked_rx) = watch::channel(welcome.ticket_acked);
    let ticket_cursor = up_acked_tx.subscribe();
    let mut up_tickets = tokio::spawn(send_tickets(
        ledger.clone(),
        parent_div,
        welcome.ticket_acked,
        Out::Up(tx.clone()),
        up_acked_rx,
        seals.clone(),
        0,
    ));
    {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.connected = true;
        s.acked = welcome.acked;
        s.floor = cells.floor();
        s.ticket_acked = welcome.ticket_acked;
        s.last_error = None;
        s.links += 1;
    }
    tracing::info!(%parent, floor = cells.floor(), resume_from = cells.pos(), "linked to parent");
    let st = state.clone();
    let (l, ack_out, sl) = (ledger.clone(), tx.clone(), seals.clone());
    let reader = tokio::spawn(async move {
        while let Some(env) = inbound.message().await? {
            match env.payload {
                Some(Payload::Ack(a)) => {
                    st.lock().unwrap_or_else(|p| p.into_inner()).acked = a.seq;
                    let _ = acked_tx.send(a.seq);
                }
                Some(Payload::TicketAck(a)) => {
                    up_acked_tx.send_modify(|v| *v = (*v).max(a.upto));
                    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
                    s.ticket_acked = s.ticket_acked.max(a.upto);
                }
                Some(Payload::Tickets(batch)) => {
                    // Persist before acking: the parent resends from its cursor otherwise.
                    let upto = batch.upto;
                    receive_tickets(&l, &sl, parent_div, batch, 0).await?;
                    let ack = Payload::TicketAck(pb::TicketAck { upto });
                    if ack_out.send(envelope(me, 0, ack)).await.is_err() {
                        break;
                    }
                }
                _ => {}
            }
        }
        Ok::<(), Status>(())
    });
    // Send the first heartbeat (with the backlog) right away.
    let mut last_heartbeat: Option<tokio::time::Instant> = None;
    let result = loop {
        if reader.is_finished() {
            break Err("the parent closed the link".into());
        }
        if up_tickets.is_finished() {
            // Its failure is read and reported, and the link is dialled anew.
            let cause = match (&mut up_tickets).await {
                Ok(Ok(())) => "it stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            break Err(format!("sending ticket events to the parent failed: {cause}").into());
        }
        if last_heartbeat.is_none_or(|t| t.elapsed() >= cfg.heartbeat()) {
            let l = ledger.clone();
            let cursor = *ticket_cursor.borrow();
            let floor = cells.floor();
            let (head, backlog, ticket_backlog) = tokio::task::spawn_blocking(move || {
                Ok::<_, LedgerError>((
                    l.durable_seq(),
                    l.backlog(floor)?,
                    l.ticket_backlog_up(cursor)?,
                ))
            })
            .await??;
            {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.backlog = backlog;
                s.ticket_backlog = ticket_backlog;
            }
            let hb = pb::Hello {
                division: me.to_string(),
                head,
                software: SOFTWARE.to_string(),
                backlog,
                ticket_backlog,
                certificate: seals.certificate(),
                sent_unix_ms: crate::ledger::unix_ms_now(),
                identity: identity.clone(),
            };
            tx.send(seals.envelope(me, 0, Payload::Hello(hb))).await?;
            last_heartbeat = Some(tokio::time::Instant::now());
        }
        cells.on_ack(*acked_rx.borrow());
        let floor = cells.floor();
        {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.floor = s.floor.max(floor);
        }
        let changed = ledger.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (l, limit) = (ledger.clone(), cfg.batch_blocks);
        let (c, batch) = tokio::task::spawn_blocking(move || {
            let r = cells.next(&l, limit);
            (cells, r)
        })
        .await?;
        cells = c;
        if let Some(batch) = batch? {
            let pos = batch.pos;
            let batch = pb::CellBatch {
                cells: batch.cells.iter().map(|(k, v)| cell_to_pb(k, v)).collect(),
                floor: batch.floor,
                incarnation,
            };
            tx.send(seals.envelope(me, pos, Payload::Cells(batch)))
                .await?;
            continue;
        }
        tokio::select! {
            _ = &mut changed => {}
            _ = acked_rx.changed() => {}
            _ = tokio::time::sleep(cfg.heartbeat().min(Duration::from_secs(1))) => {}
            _ = shutdown.changed() => break Ok(()),
        }
    };
    reader.abort();
    up_tickets.abort();
    result
}
