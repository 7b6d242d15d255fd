//! The session actor: the one task per node that owns its WebSocket session, connects and fails
//! over between registry nodes with backoff, re-registers and re-watches on every new session,
//! and turns the registry's answers and events into replies and cache updates.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::connection::{self, Connection, Socket};
use super::Inner;
use crate::error::{Error, Result};
use crate::model::{ChannelName, EventKind, Instance, InstanceId, Registration, ServiceName};
use crate::wire::{ClientMessage, Liveness, ResultData, ServerMessage};

/// A request the actor sends for an API call.
#[derive(Debug, Clone)]
pub(super) enum Request {
    Register {
        name: ServiceName,
        instance_id: InstanceId,
        reg: Box<Registration>,
    },
    Deregister {
        name: ServiceName,
        instance_id: InstanceId,
    },
    Discover {
        name: ServiceName,
        healthy_only: bool,
        tags: Vec<String>,
    },
    Services,
    Publish {
        channel: ChannelName,
        data: serde_json::Value,
    },
}

impl Request {
    /// Whether the call may be re-sent on another session after a lost connection. A publish
    /// may not: it could have been delivered already, and delivery is at most once.
    fn retryable(&self) -> bool {
        !matches!(self, Request::Publish { .. })
    }

    fn into_message(self, id: u64) -> ClientMessage {
        match self {
            Request::Register {
                name,
                instance_id,
                reg,
            } => ClientMessage::Register {
                id,
                name,
                instance_id: Some(instance_id),
                instance: *reg,
            },
            Request::Deregister { name, instance_id } => ClientMessage::Deregister {
                id,
                name,
                instance_id,
            },
            Request::Discover {
                name,
                healthy_only,
                tags,
            } => ClientMessage::Discover {
                id,
                name,
                healthy_only,
                tags,
            },
            Request::Services => ClientMessage::Services { id },
            Request::Publish { channel, data } => ClientMessage::Publish { id, channel, data },
        }
    }
}

pub(super) enum Command {
    Call {
        request: Request,
        reply_tx: oneshot::Sender<Result<ResultData>>,
    },
    Watch {
        name: ServiceName,
    },
    Subscribe {
        channel: ChannelName,
    },
    Unsubscribe {
        channel: ChannelName,
    },
    Reconnect,
    Stop {
        done_tx: oneshot::Sender<()>,
    },
}

/// Connection state, for `connected()` and the bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Trying registry nodes.
    Connecting,
    /// In session with this registry URL.
    Connected(String),
    /// A whole round of connection attempts failed with this error; retrying after a pause.
    Down(Error),
    /// Stopped by `stop()`.
    Stopped,
}

/// What a pending request is waiting for.
enum Pending {
    /// A channel subscription; a refusal ends its subscribers' streams.
    Subscribed(ChannelName),
    Call {
        request: Request,
        reply_tx: oneshot::Sender<Result<ResultData>>,
    },
    Snapshot(ServiceName),
    Reregister,
}

/// Why a session ended.
enum Ended {
    Lost(Error),
    Reconnect,
    Stopped(oneshot::Sender<()>),
    Dropped,
}

/// The background task that owns the session.
pub(super) struct Actor {
    inner: Arc<Inner>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    /// Calls to (re)send once a session is up.
    queued: VecDeque<(Request, oneshot::Sender<Result<ResultData>>)>,
    next_id: u64,
    /// Index into the registry list of the node in use, or of the next one to try.
    cursor: usize,
    /// Set when the session on the node at `cursor` was just lost: the next round starts
    /// elsewhere and tries that node last.
    lost: bool,
}

impl Actor {
    pub(super) fn new(inner: Arc<Inner>, cmd_rx: mpsc::UnboundedReceiver<Command>) -> Actor {
        Actor {
            cmd_rx,
            queued: VecDeque::new(),
            next_id: 0,
            // A random start spreads a fleet over the registries it is given.
            cursor: if inner.options.in_order {
                0
            } else {
                fastrand::usize(..inner.options.registry_nodes.len().max(1))
            },
            lost: false,
            inner,
        }
    }

    pub(super) async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            // A caller of start() during this round waits for its outcome.
            self.inner.state_tx.send_replace(ConnState::Connecting);
            match self.connect_round().await {
                Ok(conn) => {
                    let up_since = Instant::now();
                    let url = conn.url.clone();
                    tracing::debug!(registry = %url, "session up");
                    self.inner
                        .state_tx
                        .send_replace(ConnState::Connected(url.clone()));
                    let ended = self.session(conn).await;
                    self.inner.state_tx.send_replace(ConnState::Connecting);
                    match ended {
                        Ended::Lost(e) => {
                            self.lost = true;
                            tracing::info!(registry = %url, error = %e, "lost registry; failing over")
                        }
                        Ended::Reconnect => continue,
                        Ended::Stopped(done_tx) => {
                            self.shutdown();
                            let _ = done_tx.send(());
                            return;
                        }
                        Ended::Dropped => {
                            self.shutdown();
                            return;
                        }
                    }
                    // Only a session that held for a while proves the registry healthy; one that
                    // keeps dropping right after the handshake must not be hammered.
                    if up_since.elapsed() >= STABLE_SESSION {
                        backoff.reset();
                    }
                    if !self.pause(backoff.next(), None).await {
                        return;
                    }
                }
                Err(e) => {
                    self.inner.state_tx.send_replace(ConnState::Down(e.clone()));
                    // A whole round failed: callers waiting now get the error rather than a
                    // timeout, and the next round waits, with jitter, so nodes do not stampede.
                    for (_, reply_tx) in self.queued.drain(..) {
                        let _ = reply_tx.send(Err(e.clone()));
                    }
                    for c in self.inner.write_services().values_mut() {
                        for w in c.waiters.drain(..) {
                            let _ = w.send(Err(e.clone()));
                        }
                    }
                    if !self.pause(backoff.next(), Some(&e)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits `pause` before the next connection attempt while still taking commands: calls are
    /// answered with `failing` when no registry answered, or queued for the next session.
    /// Returns `false` when the actor must end.
    async fn pause(&mut self, pause: Duration, failing: Option<&Error>) -> bool {
        let deadline = Instant::now() + pause;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return true,
                cmd = self.cmd_rx.recv() => match cmd {
                    None => {
                        self.shutdown();
                        return false;
                    }
                    Some(Command::Stop { done_tx }) => {
                        self.shutdown();
                        let _ = done_tx.send(());
                        return false;
                    }
                    Some(Command::Call { request, reply_tx }) => match failing {
                        Some(e) => {
                            let _ = reply_tx.send(Err(e.clone()));
                        }
                        None => self.queued.push_back((request, reply_tx)),
                    },
                    // Watches and subscriptions are state re-sent by the next session.
                    Some(Command::Watch { .. })
                    | Some(Command::Subscribe { .. })
                    | Some(Command::Unsubscribe { .. })
                    | Some(Command::Reconnect) => {}
                },
            }
        }
    }

    fn shutdown(&mut self) {
        self.inner.state_tx.send_replace(ConnState::Stopped);
        let mut services = self.inner.write_services();
        for (_, c) in services.iter_mut() {
            for w in c.waiters.drain(..) {
                let _ = w.send(Err(Error::Closed("this node was stopped".into())));
            }
        }
        services.clear();
        drop(services);
        self.inner.lock_subscribers().clear();
        for (_, reply_tx) in self.queued.drain(..) {
            let _ = reply_tx.send(Err(Error::Closed("this node was stopped".into())));
        }
    }

    /// Tries each registry node once: the one in use first, or — right after losing it — the
    /// others first (from a random one, or the next in order) and it last.
    async fn connect_round(&mut self) -> Result<Connection> {
        let nodes = self.inner.registries();
        if nodes.is_empty() {
            return Err(Error::Unreachable("no registry nodes configured".into()));
        }
        let n = nodes.len();
        let lost = std::mem::take(&mut self.lost).then_some(self.cursor % n);
        let start = match lost {
            Some(l) if n > 1 && self.inner.options.in_order => (l + 1) % n,
            Some(l) if n > 1 => (l + 1 + fastrand::usize(..n - 1)) % n,
            _ => self.cursor,
        };
        let order: Vec<usize> = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| Some(*i) != lost)
            .chain(lost)
            .collect();
        let mut errors = Vec::new();
        let mut refusal = None;
        for idx in order {
            match Connection::open(&nodes[idx], &self.inner.dial).await {
                Ok(c) => {
                    self.cursor = idx;
                    return Ok(c);
                }
                Err(e) => {
                    errors.push(e.to_string());
                    // A refusal (bad network, bad credentials) is not a reachability problem:
                    // if every node fails, report it as it is. Either way, try the next node.
                    if !matches!(e, Error::Unreachable(_)) {
                        refusal = Some(e);
                    }
                }
            }
        }
        self.cursor = (self.cursor + 1) % nodes.len();
        Err(refusal.unwrap_or_else(|| {
            Error::Unreachable(format!("no registry node reachable: {}", errors.join("; ")))
        }))
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    async fn session(&mut self, conn: Connection) -> Ended {
        let Connection {
            socket, welcome, ..
        } = conn;
        self.inner.verify.store(
            self.inner.options.verify || welcome.policy == "keys",
            Ordering::Relaxed,
        );
        let (mut sink, mut stream) = socket.split();
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let mut outgoing: Vec<ClientMessage> = Vec::new();

        // Re-establish what this node had: its registration, its watches, queued calls.
        if let Some((name, instance_id, reg)) = self.inner.to_resend() {
            let id = self.take_id();
            outgoing.push(
                Request::Register {
                    name,
                    instance_id,
                    reg: Box::new(reg),
                }
                .into_message(id),
            );
            pending.insert(id, Pending::Reregister);
        }
        let watched: Vec<ServiceName> = {
            let mut services = self.inner.write_services();
            services.values_mut().for_each(|c| c.requested = true);
            services.keys().cloned().collect()
        };
        for name in watched {
            let id = self.take_id();
            outgoing.push(ClientMessage::Watch {
                id,
                name: name.clone(),
            });
            pending.insert(id, Pending::Snapshot(name));
        }
        let channels: Vec<ChannelName> = self.inner.lock_subscribers().keys().cloned().collect();
        for channel in channels {
            let id = self.take_id();
            outgoing.push(ClientMessage::Subscribe {
                id,
                channel: channel.clone(),
            });
            pending.insert(id, Pending::Subscribed(channel));
        }
        while let Some((request, reply_tx)) = self.queued.pop_front() {
            let id = self.take_id();
            outgoing.push(request.clone().into_message(id));
            pending.insert(id, Pending::Call { request, reply_tx });
        }
        for m in outgoing.drain(..) {
            if let Err(e) = feed(&mut sink, &m).await {
                return self.lost(pending, e);
            }
        }
        if let Err(e) = sink.flush().await {
            return self.lost(pending, Error::Unreachable(e.to_string()));
        }

        let silence_limit = welcome.session_timeout;
        let mut liveness = Liveness::new(
            silence_limit,
            welcome.ping_interval.max(Duration::from_millis(50)),
        );
        let mut tick = liveness.checks();
        loop {
            // The registry's frames first: after a pause of this process they are read before
            // the overdue tick judges (see `Liveness`).
            tokio::select! {
                biased;
                frame = stream.next() => {
                    liveness.heard();
                    let frame = match frame {
                        None => return self.lost(pending, Error::Unreachable("registry closed the connection".into())),
                        Some(Err(e)) => return self.lost(pending, Error::Unreachable(format!("connection lost: {e}"))),
                        Some(Ok(f)) => f,
                    };
                    match connection::decode(frame) {
                        Ok(Some(msg)) => self.on_message(msg, &mut pending),
                        Ok(None) => {}
                        Err(e) => return self.lost(pending, e),
                    }
                }
                cmd = self.cmd_rx.recv() => {
                    let Some(cmd) = cmd else {
                        let _ = sink.send(Message::Close(None)).await;
                        return Ended::Dropped;
                    };
                    let msg = match cmd {
                        Command::Call { request, reply_tx } => {
                            let id = self.take_id();
                            let m = request.clone().into_message(id);
                            pending.insert(id, Pending::Call { request, reply_tx });
                            m
                        }
                        Command::Watch { name } => {
                            let id = self.take_id();
                            pending.insert(id, Pending::Snapshot(name.clone()));
                            ClientMessage::Watch { id, name }
                        }
                        Command::Subscribe { channel } => {
                            let id = self.take_id();
                            pending.insert(id, Pending::Subscribed(channel.clone()));
                            ClientMessage::Subscribe { id, channel }
                        }
                        Command::Unsubscribe { channel } => {
                            let id = self.take_id();
                            ClientMessage::Unsubscribe { id, channel }
                        }
                        Command::Reconnect => {
                            let _ = sink.send(Message::Close(None)).await;
                            self.requeue(pending);
                            return Ended::Reconnect;
                        }
                        Command::Stop { done_tx } => {
                            self.goodbye(&mut sink, &mut stream).await;
                            return Ended::Stopped(done_tx);
                        }
                    };
                    if let Err(e) = send_msg(&mut sink, &msg).await {
                        return self.lost(pending, e);
                    }
                }
                due = tick.tick() => {
                    if liveness.is_gone(due) {
                        return self.lost(pending, Error::Unreachable(format!("registry silent for {silence_limit:?}")));
                    }
                }
            }
        }
    }

    /// Deregisters and closes politely, bounded in time.
    async fn goodbye(
        &mut self,
        sink: &mut futures_util::stream::SplitSink<Socket, Message>,
        stream: &mut futures_util::stream::SplitStream<Socket>,
    ) {
        if let Some((name, instance_id)) = self.inner.take_registered() {
            let id = self.take_id();
            let msg = ClientMessage::Deregister {
                id,
                name,
                instance_id,
            };
            if send_msg(sink, &msg).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(frame)) = stream.next().await {
                        if let Ok(Some(
                            ServerMessage::Result { id: got, .. }
                            | ServerMessage::Error { id: Some(got), .. },
                        )) = connection::decode(frame)
                        {
                            if got == id {
                                break;
                            }
                        }
                    }
                })
                .await;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    }

    fn requeue(&mut self, pending: HashMap<u64, Pending>) {
        let mut calls: Vec<(u64, Request, oneshot::Sender<Result<ResultData>>)> = pending
            .into_iter()
            .filter_map(|(id, p)| match p {
                Pending::Call { request, reply_tx } if request.retryable() => {
                    Some((id, request, reply_tx))
                }
                Pending::Call { reply_tx, .. } => {
                    let _ = reply_tx.send(Err(Error::Unreachable(
                        "the connection was lost before the registry confirmed; not re-sent (at most once)".into(),
                    )));
                    None
                }
                _ => None,
            })
            .collect();
        calls.sort_by_key(|(id, _, _)| *id);
        for (_, request, reply_tx) in calls.into_iter().rev() {
            self.queued.push_front((request, reply_tx));
        }
    }

    /// Calls in flight are retried on the next registry (every request is idempotent).
    fn lost(&mut self, pending: HashMap<u64, Pending>, e: Error) -> Ended {
        self.requeue(pending);
        Ended::Lost(e)
    }

    fn on_message(&mut self, msg: ServerMessage, pending: &mut HashMap<u64, Pending>) {
        match msg {
            ServerMessage::Result { id, data } => match pending.remove(&id) {
                Some(Pending::Call { request, reply_tx }) => {
                    // Marked here, in the order of the session's events, not by the caller
                    // once it hears back: a session lost in between must still re-send it.
                    if matches!(request, Request::Register { .. }) {
                        self.inner.resend_registration();
                    }
                    let _ = reply_tx.send(Ok(data));
                }
                Some(Pending::Snapshot(name)) => {
                    if let ResultData::Watching { instances } = data {
                        self.snapshot(&name, instances);
                    }
                }
                Some(Pending::Reregister) | Some(Pending::Subscribed(_)) | None => {}
            },
            ServerMessage::Error { id, error } => {
                let e = Error::from(error);
                match id.and_then(|id| pending.remove(&id)) {
                    Some(Pending::Call { reply_tx, .. }) => {
                        let _ = reply_tx.send(Err(e));
                    }
                    Some(Pending::Subscribed(channel)) => {
                        tracing::warn!(%channel, error = %e, "subscription refused");
                        // Dropping the senders ends the subscribers' streams.
                        self.inner.lock_subscribers().remove(&channel);
                    }
                    Some(Pending::Snapshot(name)) => {
                        let mut services = self.inner.write_services();
                        if let Some(c) = services.get_mut(&name) {
                            c.requested = false;
                            for w in c.waiters.drain(..) {
                                let _ = w.send(Err(e.clone()));
                            }
                            if c.subscribers.is_empty() {
                                services.remove(&name);
                            }
                        }
                    }
                    Some(Pending::Reregister) => {
                        tracing::warn!(error = %e, "re-registration after reconnect refused");
                    }
                    // Unsolicited: the registry took something back (a name claim lost to an
                    // earlier one elsewhere in its cluster), or could not read a frame.
                    None => tracing::warn!(error = %e, "the registry reports an error"),
                }
            }
            ServerMessage::Event { name, event } => {
                let mut event = (*event).clone();
                if event.kind != EventKind::Down && !self.inner.admits(&name, &event.instance) {
                    // An instance that fails verification is, for this client, gone.
                    event.kind = EventKind::Down;
                }
                let mut services = self.inner.write_services();
                if let Some(c) = services.get_mut(&name) {
                    if event.kind != EventKind::Down || c.instances.contains_key(&event.instance.id)
                    {
                        c.apply_event(event);
                    }
                }
            }
            ServerMessage::Snapshot { name, instances } => self.snapshot(&name, instances),
            ServerMessage::Message(m) => {
                let mut subs = self.inner.lock_subscribers();
                if let Some(list) = subs.get_mut(&m.channel) {
                    // At most once: a subscriber whose buffer is full misses this message.
                    list.retain(|(_, tx)| {
                        !matches!(
                            tx.try_send(m.clone()),
                            Err(mpsc::error::TrySendError::Closed(_))
                        )
                    });
                }
            }
            // The Rust client does not watch whole networks.
            ServerMessage::NetworkSnapshot { .. }
            | ServerMessage::Pong { .. }
            | ServerMessage::Challenge { .. }
            | ServerMessage::Welcome { .. }
            // Only sent on a registry's replication link, never to a node.
            | ServerMessage::Replica { .. }
            | ServerMessage::Claims { .. }
            | ServerMessage::Relay { .. } => {}
        }
    }

    fn snapshot(&self, name: &ServiceName, mut instances: Vec<Arc<Instance>>) {
        instances.retain(|i| self.inner.admits(name, i));
        let mut services = self.inner.write_services();
        if let Some(c) = services.get_mut(name) {
            c.apply_snapshot(instances);
        }
    }
}

async fn feed(
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    m: &ClientMessage,
) -> Result<()> {
    let text = serde_json::to_string(m).map_err(|e| Error::Internal(format!("encode: {e}")))?;
    sink.feed(Message::text(text))
        .await
        .map_err(|e| Error::Unreachable(format!("send failed: {e}")))
}

async fn send_msg(
    sink: &mut futures_util::stream::SplitSink<Socket, Message>,
    m: &ClientMessage,
) -> Result<()> {
    feed(sink, m).await?;
    sink.flush()
        .await
        .map_err(|e| Error::Unreachable(format!("send failed: {e}")))
}

/// A session that stayed up this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(10);

/// Exponential backoff with full jitter, 100 ms doubling to 5 s.
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next(&mut self) -> Duration {
        let cap = Duration::from_millis(100)
            .saturating_mul(1 << self.attempt.min(6))
            .min(Duration::from_secs(5));
        self.attempt = self.attempt.saturating_add(1);
        // Full jitter: uniformly in [cap/2, cap], so a fleet that lost the same registry spreads.
        let half = cap / 2;
        half + Duration::from_millis(fastrand::u64(..=half.as_millis() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_capped() {
        let mut b = Backoff::new();
        let first = b.next();
        assert!(first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next() <= Duration::from_secs(5));
        }
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }
}
