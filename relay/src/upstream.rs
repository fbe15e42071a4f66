//! The relay's side towards the real parent: one `Link` stream per lane over one mTLS
//! channel, each opened with the child's own latest Hello (forwarded unchanged, signature and
//! all), as if the child had dialled the parent itself.
//!
//! Per lane, while the relay runs and the lane has a stored Hello (always, not only while
//! the up-queue holds something: the parent's ticket events for an offline child are then
//! taken into custody, and the parent sees the child's own heartbeats while it is linked):
//! dial (reconnect with backoff and jitter), send the Hello, take the Welcome as the lane's
//! cursor (dropping every up entry it covers), then forward the durable up-queue in order with
//! at most [`WINDOW`] envelopes unacked, woken by new entries, and forward each new Hello of
//! the child at once. The parent's `Ack` / `TicketAck` delete what they cover; its
//! `TicketBatch`es go to the down-queue and are acked upstream only after a flush covered them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bottomline::division::Code;
use bottomline::security::tls::{self, ClientTls, Expect, TlsFiles};
use bottomline_proto::v1 as pb;
use pb::envelope::Payload;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Status;

use crate::config::Config;
use crate::custody::{Cursor, Dir, Lane, Meta};
use crate::state::{blocking, LaneLive, Shared, MAX_MESSAGE, WINDOW};

/// The channel to the parent, shared by every lane's stream (HTTP/2 multiplexes them),
/// dialled on first use and again after a failure.
pub(crate) struct Parent {
    url: String,
    files: TlsFiles,
    connect_timeout: Duration,
    current: tokio::sync::Mutex<Option<(u64, Channel)>>,
    dials: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Parent {
    pub fn new(config: &Config) -> Parent {
        Parent {
            url: config.parent.clone(),
            files: config.tls.clone(),
            connect_timeout: config.connect_timeout(),
            current: tokio::sync::Mutex::new(None),
            dials: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The parent's endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The last error of any lane's upstream (cleared by the next Welcome).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// The channel (dialled now if there is none), with its dial number. `child` is any
    /// child of the parent: the server must be that child's parent (or a relay).
    async fn channel(&self, child: Code) -> Result<(u64, Channel), String> {
        let mut cur = self.current.lock().await;
        if let Some((n, ch)) = &*cur {
            return Ok((*n, ch.clone()));
        }
        // The files are read at every dial: a renewed certificate or a new CRL is taken up.
        let tls = ClientTls::load(&self.files).map_err(|e| e.to_string())?;
        let dial = tls::channel(
            &self.url,
            Some(&tls),
            Expect::ParentOf(child),
            self.connect_timeout,
            None,
        );
        let ch = tokio::time::timeout(self.connect_timeout, dial)
            .await
            .map_err(|_| {
                format!(
                    "cannot reach the parent {} within {:.1} s",
                    self.url,
                    self.connect_timeout.as_secs_f64()
                )
            })?
            .map_err(|e| e.to_string())?;
        let n = self.dials.fetch_add(1, Ordering::SeqCst) + 1;
        *cur = Some((n, ch.clone()));
        Ok((n, ch))
    }

    /// Forget dial `n` (the next lane to need the parent dials again).
    async fn reset(&self, n: u64) {
        let mut cur = self.current.lock().await;
        if cur.as_ref().is_some_and(|(m, _)| *m == n) {
            *cur = None;
        }
    }
}

/// Start the upstream of `live`'s lane unless it runs already (it needs a stored Hello).
pub(crate) fn ensure(shared: &Arc<Shared>, live: &Arc<LaneLive>) {
    if live.lane.hello().is_none() || shared.stopping() || !live.claim_upstream() {
        return;
    }
    let (s, l) = (shared.clone(), live.clone());
    shared.tasks.spawn(run(s, l));
}

/// Keep the lane's upstream open until the relay stops.
async fn run(shared: Arc<Shared>, live: Arc<LaneLive>) {
    let child = live.lane.code();
    let mut stop = shared.stop.clone();
    let mut delay = shared.config.reconnect();
    loop {
        if *stop.borrow() {
            return;
        }
        // On a task of its own: should it ever panic, the lane redials instead of falling
        // silent.
        let welcomed = Arc::new(AtomicBool::new(false));
        let mut once = tokio::spawn(link_once(shared.clone(), live.clone(), welcomed.clone()));
        let joined = tokio::select! {
            r = &mut once => r,
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                // A linked upstream ends by itself at once; a dial or a Welcome still
                // awaited is abandoned.
                match tokio::time::timeout(Duration::from_secs(1), &mut once).await {
                    Ok(r) => r,
                    Err(_) => {
                        once.abort();
                        return;
                    }
                }
            }
        };
        let result = joined.unwrap_or_else(|e| Err(format!("the upstream task failed: {e}")));
        let welcomed = welcomed.load(Ordering::SeqCst);
        {
            let mut st = live.status();
            st.parent_connected = false;
            if let Err(e) = &result {
                st.last_error = Some(e.clone());
            }
        }
        match result {
            Ok(()) => return,
            Err(_) if shared.stopping() => return,
            Err(e) if e == RELINK => {
                tracing::info!(%child, "the child's store restarted; linking again");
                continue;
            }
            Err(e) => {
                tracing::warn!(%child, parent = %shared.parent.url(), cause = %e, "upstream down; retrying");
                shared.parent.set_error(Some(e));
            }
        }
        // A link that was up: the next failure starts the backoff over.
        if welcomed {
            delay = shared.config.reconnect();
        }
        // Jitter (±25 %) so that lanes cut off together do not all redial at once.
        let jitter = 0.75 + 0.5 * rand::random::<f64>();
        tokio::select! {
            _ = tokio::time::sleep(delay.mul_f64(jitter)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Why an upstream link ends when its child's store restarted: it is dialled again at once
/// with the new Hello, so that the parent sees the child's new incarnation.
const RELINK: &str = "the child's store restarted; linking again with its new Hello";

/// Which store and incarnation a Hello envelope comes from (`None` when it says nothing).
pub(crate) fn incarnation_of(hello: &[u8]) -> Option<(Vec<u8>, u64)> {
    let env = pb::Envelope::decode(hello).ok()?;
    let Some(Payload::Hello(h)) = env.payload else {
        return None;
    };
    let id = h.identity?;
    Some((id.store_id, id.lineage.last()?.id))
}

/// A gRPC status as one line.
pub(crate) fn status_text(s: &Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn decode(bytes: &[u8], what: &str) -> Result<pb::Envelope, String> {
    pb::Envelope::decode(bytes).map_err(|e| format!("stored {what} does not decode: {e}"))
}

/// One upstream link: open, forward until it fails (an error) or the relay stops (`Ok`).
async fn link_once(
    shared: Arc<Shared>,
    live: Arc<LaneLive>,
    welcomed: Arc<AtomicBool>,
) -> Result<(), String> {
    let shared = &shared;
    let lane = live.lane.clone();
    let child = lane.code();
    let me = shared.parent_division();
    let timeout = shared.config.connect_timeout();
    // Subscribed before the Hello is read: a newer one is forwarded as soon as it comes.
    let mut hello_rx = lane.subscribe_hello();
    hello_rx.borrow_and_update();
    let hello = lane.hello().ok_or("no Hello of the child stored")?;
    let opened_with = incarnation_of(&hello);
    let hello = decode(&hello, "Hello")?;
    let (dial, ch) = shared.parent.channel(child).await?;
    let mut client = pb::sync_client::SyncClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (tx, rx) = mpsc::channel::<pb::Envelope>(2 * WINDOW + 2);
    tx.send(hello).await.map_err(|_| "link closed")?;
    let stalled = || {
        format!(
            "the parent accepted the connection but did not answer within {:.1} s",
            timeout.as_secs_f64()
        )
    };
    let opened = tokio::time::timeout(timeout, client.link(ReceiverStream::new(rx))).await;
    let mut inbound = match opened {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) => {
            if matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ) {
                shared.parent.reset(dial).await;
            }
            return Err(status_text(&s));
        }
        Err(_) => {
            shared.parent.reset(dial).await;
            return Err(stalled());
        }
    };
    let first = match tokio::time::timeout(timeout, inbound.message()).await {
        Ok(r) => r.map_err(|s| status_text(&s))?,
        Err(_) => {
            shared.parent.reset(dial).await;
            return Err(stalled());
        }
    };
    let w = match first.and_then(|e| e.payload) {
        Some(Payload::Welcome(w)) => w,
        _ => return Err("the parent did not answer Hello with Welcome".into()),
    };
    if Code::parse(&w.division).ok() != Some(me) {
        return Err(format!(
            "{} answers as division {:?}, not the configured parent_division {me}",
            shared.parent.url(),
            w.division
        ));
    }
    let cursor = Cursor {
        acked: w.acked,
        resume_pos: w.resume_pos,
        ticket_acked: w.ticket_acked,
        down_acked: w.down_acked,
    };
    let (c, l) = (shared.custody.clone(), lane.clone());
    live.set_welcome_extras(&w);
    let covered = blocking(move || c.welcome(&l, cursor))
        .await
        .map_err(|e| e.to_string())?;
    welcomed.store(true, Ordering::SeqCst);
    {
        let mut st = live.status();
        st.parent_connected = true;
        st.last_error = None;
    }
    shared.parent.set_error(None);
    let (up, down) = lane.counts();
    tracing::info!(
        %child,
        acked = w.acked,
        resume_pos = w.resume_pos,
        ticket_acked = w.ticket_acked,
        covered,
        custody_up = up,
        custody_down = down,
        "upstream linked"
    );

    // Down batches are acked upstream in arrival order, each after a flush covered it.
    let (ack_tx, mut ack_rx) = mpsc::channel::<(u64, u64)>(4 * WINDOW);
    let (c, out) = (shared.custody.clone(), tx.clone());
    let mut acker = tokio::spawn(async move {
        while let Some((ticket, upto)) = ack_rx.recv().await {
            let c = c.clone();
            blocking(move || c.flush_through(ticket))
                .await
                .map_err(|e| e.to_string())?;
            let ack = envelope(child, Payload::TicketAck(pb::TicketAck { upto }));
            if out.send(ack).await.is_err() {
                break;
            }
        }
        Ok::<(), String>(())
    });
    let mut reader = tokio::spawn(read_parent(shared.clone(), lane.clone(), inbound, ack_tx));

    let hello = (&mut hello_rx, opened_with);
    let result = forward_up(shared, &lane, &tx, hello, &mut reader, &mut acker).await;
    reader.abort();
    // The acker finishes the flushes it was given (their acks may or may not go out). A
    // finished one may have been awaited already (by `forward_up`): never poll it again.
    if !acker.is_finished() && tokio::time::timeout(timeout, &mut acker).await.is_err() {
        acker.abort();
    }
    result
}

/// An envelope the relay creates for the lane (acks: not signed, they come from the hop).
fn envelope(child: Code, payload: Payload) -> pb::Envelope {
    pb::Envelope {
        origin: child.to_string(),
        seq: 0,
        payload: Some(payload),
        signature: Vec::new(),
    }
}

/// Send the up-queue in order (window of [`WINDOW`]) and each new Hello of the child, until
/// the link fails or the relay stops; a Hello from another store or incarnation than the one
/// the link opened with ends it ([`RELINK`]).
async fn forward_up(
    shared: &Arc<Shared>,
    lane: &Arc<Lane>,
    tx: &mpsc::Sender<pb::Envelope>,
    (hello_rx, opened_with): (
        &mut tokio::sync::watch::Receiver<u64>,
        Option<(Vec<u8>, u64)>,
    ),
    reader: &mut tokio::task::JoinHandle<Result<(), String>>,
    acker: &mut tokio::task::JoinHandle<Result<(), String>>,
) -> Result<(), String> {
    let mut up_rx = lane.subscribe(Dir::Up);
    let mut stop = shared.stop.clone();
    let mut last_sent = 0u64;
    let mut hello_due = false;
    let closed = |_| "the link to the parent closed".to_string();
    loop {
        up_rx.borrow_and_update();
        if std::mem::take(&mut hello_due) {
            if let Some(h) = lane.hello() {
                if incarnation_of(&h) != opened_with {
                    return Err(RELINK.into());
                }
                let h = decode(&h, "Hello")?;
                tokio::select! {
                    r = tx.send(h) => r.map_err(closed)?,
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
        }
        if lane.outstanding(Dir::Up, last_sent) < WINDOW {
            if let Some((rseq, _)) = lane.next_durable(Dir::Up, last_sent) {
                let (c, l) = (shared.custody.clone(), lane.clone());
                let bytes = blocking(move || c.read(&l, Dir::Up, rseq))
                    .await
                    .map_err(|e| e.to_string())?;
                last_sent = rseq;
                // `None`: acked (and deleted) in the meantime.
                if let Some(b) = bytes {
                    let e = decode(&b, "envelope")?;
                    tokio::select! {
                        r = tx.send(e) => r.map_err(closed)?,
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
                continue;
            }
        }
        tokio::select! {
            _ = up_rx.changed() => {}
            r = hello_rx.changed() => {
                if r.is_ok() {
                    hello_due = true;
                }
            }
            r = &mut *reader => {
                return Err(r.map_err(|e| e.to_string())?.err().unwrap_or_else(|| "the parent closed the link".into()));
            }
            r = &mut *acker => {
                return Err(r.map_err(|e| e.to_string())?.err().unwrap_or_else(|| "the link to the parent closed".into()));
            }
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
    }
}

/// Read the parent's messages: acks delete what they cover, ticket batches go into the
/// down-queue (their acks to `acks`, sent once flushed). Ends with the link (an error).
async fn read_parent(
    shared: Arc<Shared>,
    lane: Arc<Lane>,
    mut inbound: tonic::Streaming<pb::Envelope>,
    acks: mpsc::Sender<(u64, u64)>,
) -> Result<(), String> {
    let child = lane.code();
    while let Some(env) = inbound.message().await.map_err(|s| status_text(&s))? {
        let (c, l) = (shared.custody.clone(), lane.clone());
        match &env.payload {
            Some(Payload::Ack(a)) => {
                let seq = a.seq;
                blocking(move || c.ack_cells(&l, seq))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(Payload::TicketAck(a)) => {
                let upto = a.upto;
                blocking(move || c.ack_up_tickets(&l, upto))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(Payload::Tickets(b)) => {
                let upto = b.upto;
                let meta = Meta::Tickets { seq: env.seq, upto };
                // Stored exactly as received; the child verifies the parent's signature.
                let bytes = env.encode_to_vec();
                let (_, ticket) = blocking(move || c.append(&l, Dir::Down, meta, &bytes))
                    .await
                    .map_err(|e| e.to_string())?;
                if acks.send((ticket, upto)).await.is_err() {
                    return Ok(());
                }
            }
            other => {
                tracing::debug!(%child, payload = ?other.as_ref().map(kind), "ignored a message from the parent");
            }
        }
    }
    Err("the parent closed the link".into())
}

/// The name of a payload, for logs.
pub(crate) fn kind(p: &Payload) -> &'static str {
    match p {
        Payload::Hello(_) => "Hello",
        Payload::Welcome(_) => "Welcome",
        Payload::Cells(_) => "CellBatch",
        Payload::Ack(_) => "Ack",
        Payload::Tickets(_) => "TicketBatch",
        Payload::TicketAck(_) => "TicketAck",
    }
}
