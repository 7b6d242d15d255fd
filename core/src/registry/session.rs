//! One WebSocket session on a registry: handshake, requests, watch pushes, liveness.
//!
//! The socket is split: this task reads frames and answers requests; a writer task owns the sink,
//! drains one bounded queue of answers and follows the session's feeds (watches, channels) itself
//! (`outbox`), so events and answers never interleave half-frames.
//! The session's instances live exactly as long as this task: when it ends — graceful close,
//! TCP reset, silence past the session timeout, registry shutdown — they are removed at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::StreamExt;
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::directory::{Change, WatchReceiver};
use super::ops::{self, Caller, Held, Hello, Registering, SessionCaller};
use super::outbox::{Feed, FeedKey, Outbox, TryRefused};
use super::state::RegistryState;
use crate::error::{Error, Result};
use crate::identity::{self, PROTOCOL};
use crate::model::{ChannelName, NetworkName, ServiceName, WireDuration};
use crate::security::RateLimiter;
use crate::wire::{encode, ClientMessage, Liveness, ResultData, ServerMessage};

/// WebSocket close codes used by the registry (PROTOCOL.md, "Closing").
pub(super) mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const BAD_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const TIMEOUT: u16 = 4000;
    pub const IDLE: u16 = 4001;
}

/// How long a closed session keeps reading (and dropping) what its peer still sends, waiting for
/// the peer to close too.
const LINGER: Duration = Duration::from_secs(1);

/// A hello as the handshake takes it, before its signature and the network's policy are checked
/// (`ops::admit`).
pub(crate) struct HelloFrame {
    pub network: NetworkName,
    pub public_key: String,
    pub signature: String,
    pub node_type: Option<String>,
    pub token: Option<String>,
}

/// Checks a session's first frame against the challenge it answers (`nonce`, issued `elapsed`
/// ago, valid for `ttl`): a `hello` of this protocol answering this nonce in time. Errors carry
/// the close code to use. Pure, so the fuzz target `handshake` runs exactly this.
pub(crate) fn read_hello(
    frame: &str,
    nonce: &str,
    elapsed: Duration,
    ttl: Duration,
) -> std::result::Result<HelloFrame, (u16, Error)> {
    let msg = ClientMessage::parse(frame).map_err(|(_, e)| (close::POLICY, e))?;
    let ClientMessage::Hello {
        protocol,
        network,
        public_key,
        nonce: answered,
        signature,
        node_type,
        token,
    } = msg
    else {
        return Err((
            close::POLICY,
            Error::Protocol("the first message must be \"hello\" answering the challenge".into()),
        ));
    };
    if protocol != PROTOCOL {
        return Err((
            close::POLICY,
            Error::UnsupportedVersion(format!(
                "unsupported protocol {protocol:?}; this registry speaks {PROTOCOL}"
            )),
        ));
    }
    if answered != nonce {
        return Err((close::POLICY, Error::ChallengeReplayed(
            "the hello answers a challenge that was not issued to this connection; sign the nonce of this connection's challenge".into(),
        )));
    }
    if elapsed > ttl {
        return Err((
            close::POLICY,
            Error::ChallengeExpired(format!(
                "the challenge expired ({ttl:?} to answer it); reconnect for a fresh one"
            )),
        ));
    }
    Ok(HelloFrame {
        network,
        public_key,
        signature,
        node_type,
        token,
    })
}

/// Serves one upgraded connection to its end. `permit` (the session's place among
/// `max_sessions`) is released once the session's instances are removed and its close frame is
/// out, before the connection lingers.
pub async fn serve(
    socket: WebSocket,
    shared: Arc<RegistryState>,
    remote: SocketAddr,
    origin: Option<String>,
    permit: OwnedSemaphorePermit,
) {
    let session_id = shared.next_session_id();
    let (sink, mut stream) = socket.split();
    // A peer that stops reading for as long as a silent one may live is treated like one.
    let stall = shared.config.session_timeout;
    let (out, mut writer) = Outbox::spawn(sink, stall);
    tracing::debug!(session = session_id, %remote, ?origin, "session opened");

    let mut session = Session {
        id: session_id,
        shared: shared.clone(),
        out: out.clone(),
        owned: Held::new(),
        me: None,
        watches: HashSet::new(),
        subscriptions: HashSet::new(),
        network_watch: false,
        errors: 0,
        remote,
        origin,
        limiter: RateLimiter::new(
            shared.config.limits.session_rate,
            shared.config.limits.session_burst,
        ),
        last_request: Instant::now(),
        stall,
        broken: false,
    };
    // The handshake and a replication link are boxed: a future holds room for the largest of
    // its states for as long as it lives, and a session spends its life in `run`, not in these.
    let outcome = match Box::pin(session.handshake(&mut stream)).await {
        Ok(Admitted::Node(me)) => session.run(&mut stream, me).await,
        Ok(Admitted::Peer(peer)) => {
            Box::pin(super::cluster::serve_link(
                &shared,
                &peer,
                &out,
                &mut stream,
            ))
            .await
        }
        Err((code, e)) => {
            let _ = out.try_send(text(&ServerMessage::error(None, &e)));
            (code, e.to_string())
        }
    };
    session.finish();
    let (code, reason) = outcome;
    // Never wait on a full outbox here: a peer that is not reading gets no close frame.
    let _ = out.try_send(Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(crate::error::truncate(&reason, 120)),
    })));
    drop(out);
    drop(session);
    // The writer ends once the close frame is out; bounded so a stuck peer cannot hold us,
    // and aborted past the bound so its task and socket do not leak.
    if tokio::time::timeout(Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    drop(permit);
    // Nothing of the registry is needed from here on; a registry shutting down must not wait
    // for lingering connections to let go of its state (and its store's lock).
    drop(shared);
    // Closing a socket whose peer's bytes are still unread makes the kernel reset the
    // connection, and the reset can destroy what was sent last (the close frame, the answers
    // before it) before the peer reads it: a flooding peer saw "connection reset" instead of
    // its 1008. So read on, dropping everything, until the peer closes too (bounded).
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    tracing::debug!(session = session_id, code, reason, "session closed");
}

pub(super) fn text(m: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(m.to_text()))
}

/// A change's `event` frame, encoded by the first watcher that sends it and shared by the others.
fn frame(change: &Change) -> Utf8Bytes {
    change.encoded(|event| Utf8Bytes::from(encode::event_frame(event)))
}

/// The state of one session.
struct Session {
    id: u64,
    shared: Arc<RegistryState>,
    out: Outbox,
    /// Instances this session registered (by service and id: a session has one network), removed
    /// when it ends.
    owned: Held,
    /// Who this session is, once its handshake is done.
    me: Option<Arc<SessionCaller>>,
    /// The services this session watches (each a feed its writer follows).
    watches: HashSet<ServiceName>,
    /// The channels this session subscribes to (each a feed its writer follows).
    subscriptions: HashSet<ChannelName>,
    /// Whether it watches its whole network.
    network_watch: bool,
    /// Refused messages so far; past the limit the session is closed.
    errors: u32,
    remote: SocketAddr,
    origin: Option<String>,
    /// This session's request rate.
    limiter: RateLimiter,
    /// When the last request arrived, for the idle timeout.
    last_request: Instant,
    /// How long a send to the outbox may wait before the peer counts as not reading.
    stall: Duration,
    /// Set when the outbox refused a message: the peer stopped reading or the writer ended.
    broken: bool,
}

pub(super) type Stream = futures_util::stream::SplitStream<WebSocket>;

/// Who a handshake admitted.
enum Admitted {
    /// A node, to its network.
    Node(SessionCaller),
    /// A peer registry of the cluster, for its replication link.
    Peer(ops::PeerCaller),
}

impl Session {
    /// Sends the challenge and checks the hello. Errors carry the close code to use.
    async fn handshake(
        &mut self,
        stream: &mut Stream,
    ) -> std::result::Result<Admitted, (u16, Error)> {
        let nonce = identity::new_nonce().map_err(|e| (close::POLICY, e))?;
        let timeout = self.shared.config.handshake_timeout;
        let challenge = ServerMessage::Challenge {
            protocol: PROTOCOL.to_string(),
            registry_id: self.shared.registry_id.to_string(),
            nonce: nonce.clone(),
            expires_in: WireDuration(self.shared.config.challenge_ttl),
        };
        let issued = Instant::now();
        self.send(&challenge).await;
        let frame = tokio::time::timeout(timeout, next_text(stream, self.shared.config.max_frame))
            .await
            .map_err(|_| {
                (
                    close::TIMEOUT,
                    Error::timeout("handshake (no hello after the challenge)", timeout),
                )
            })?
            .map_err(|e| (close_code_for(&e), e))?;
        let Some(frame) = frame else {
            return Err((
                close::NORMAL,
                Error::Closed("closed during handshake".into()),
            ));
        };
        let HelloFrame {
            network,
            public_key,
            signature,
            node_type,
            token,
        } = read_hello(
            &frame,
            &nonce,
            issued.elapsed(),
            self.shared.config.challenge_ttl,
        )?;
        let peer = node_type.as_deref() == Some("registry");
        let hello = Hello {
            network: &network,
            public_key: &public_key,
            signature: &signature,
            nonce: &nonce,
            token: token.as_deref(),
            node_type,
            origin: self.origin.clone(),
            remote: self.remote,
        };
        if peer {
            let admitted = ops::admit_peer(&self.shared, &hello).map_err(|e| (close::POLICY, e))?;
            self.welcome(&network, "cluster").await;
            return Ok(Admitted::Peer(admitted));
        }
        let policy = ops::admit(&self.shared, hello)
            .await
            .map_err(|e| (close::POLICY, e))?;
        self.welcome(&network, policy).await;
        tracing::debug!(session = self.id, %network, "handshake done");
        Ok(Admitted::Node(SessionCaller {
            id: self.id,
            network,
            public_key: Arc::from(public_key),
            token,
            origin: self.origin.clone(),
            remote: self.remote,
        }))
    }

    /// Sends the welcome that ends a handshake.
    async fn welcome(&mut self, network: &NetworkName, policy: &str) {
        let welcome = ServerMessage::Welcome {
            session_id: self.id,
            network: network.clone(),
            registry_id: self.shared.registry_id.to_string(),
            ping_interval: WireDuration(self.shared.config.ping_interval),
            session_timeout: WireDuration(self.shared.config.session_timeout),
            policy: Some(policy.to_string()),
        };
        self.send(&welcome).await;
    }

    /// Reads requests until the peer leaves, goes silent, misbehaves, or the registry stops.
    async fn run(&mut self, stream: &mut Stream, me: SessionCaller) -> (u16, String) {
        let me = Arc::new(me);
        self.me = Some(me.clone());
        self.shared.set_outbox(self.id, Some(self.out.clone()));
        let cfg = &self.shared.config;
        let (timeout, ping_every) = (cfg.session_timeout, cfg.ping_interval);
        let mut shutdown_rx = self.shared.shutdown_rx.clone();
        // A live peer answers every ping, so its silence stays under one interval; judging
        // against `timeout - interval` at each tick removes a silent one within `timeout` of
        // its last frame.
        let mut liveness = Liveness::new(timeout.saturating_sub(ping_every), ping_every);
        let mut ping = liveness.checks();
        loop {
            if self.broken {
                return (
                    close::GOING_AWAY,
                    "the peer is not reading its messages".into(),
                );
            }
            // Frames first: after a pause of this process they are read before the overdue
            // tick judges (see `Liveness`).
            let text = tokio::select! {
                biased;
                _ = stopping(&mut shutdown_rx) => {
                    return (close::GOING_AWAY, "registry shutting down".into());
                }
                frame = stream.next() => {
                    liveness.heard();
                    match frame {
                        None => return (close::NORMAL, "peer went away".into()),
                        Some(Err(e)) => return (read_error_code(&e), format!("read error: {e}")),
                        Some(Ok(Message::Text(t))) => Ok(t),
                        Some(Ok(Message::Close(_))) => return (close::NORMAL, "closed by peer".into()),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => Err(Error::InvalidInput(
                            "binary frames are not part of netget/1; send JSON text frames".into(),
                        )),
                    }
                }
                due = ping.tick() => {
                    if liveness.is_gone(due) {
                        return (close::TIMEOUT, format!("no frame for {timeout:?}; session timed out"));
                    }
                    // The idle check comes before the ping: a ping queued with the close frame
                    // makes browsers answer after the socket is gone, turning 4001 into 1006.
                    let idle = self.shared.config.limits.idle_timeout;
                    let holds_nothing = self.owned.is_empty()
                        && self.watches.is_empty()
                        && self.subscriptions.is_empty()
                        && !self.network_watch;
                    if holds_nothing && self.last_request.elapsed() > idle {
                        return (close::IDLE, format!("idle for {idle:?} with nothing registered or watched"));
                    }
                    // try_send: a full outbox means the peer is not reading, and the checks
                    // here must run regardless.
                    if let Err(TryRefused::Closed) = self.out.try_send(Message::Ping(Default::default())) {
                        return (close::GOING_AWAY, "writer gone".into());
                    }
                    continue;
                }
            };
            // Boxed, one allocation per frame: held inline, the state of the largest request
            // would be room that every idle session's future keeps.
            if let Some(end) = Box::pin(self.read(text, &me)).await {
                return end;
            }
        }
    }

    /// Answers one text frame (or refuses what is not one); the close reason when the session
    /// must end.
    async fn read(&mut self, text: Result<Utf8Bytes>, me: &SessionCaller) -> Option<(u16, String)> {
        let max_frame = self.shared.config.max_frame;
        let text = match text {
            Ok(t) => t,
            Err(e) => return self.refuse(None, e).await,
        };
        if text.len() > max_frame {
            let e = Error::too_large("frame", text.len(), max_frame);
            self.send(&ServerMessage::error(None, &e)).await;
            return Some((close::TOO_BIG, e.to_string()));
        }
        match ClientMessage::parse(&text) {
            Ok(msg) => {
                let id = msg.request_id();
                // Over the rate: refused with the request's id (so the caller is answered), and
                // it counts like garbage would.
                if let Err(e) = self.take_rate() {
                    return self.refuse(id, e).await;
                }
                self.last_request = Instant::now();
                match self.handle(msg, me).await {
                    Ok(Some(reply)) => self.send(&reply).await,
                    Ok(None) => {}
                    Err(e) => return self.refuse(id, e).await,
                }
                None
            }
            Err((id, e)) => self.refuse(id, e).await,
        }
    }

    /// Counts one request against this session's and its address's rates.
    fn take_rate(&mut self) -> Result<()> {
        if !self.limiter.try_take(std::time::Instant::now()) {
            return Err(Error::RateLimited(format!(
                "more than {} requests per second on this session; slow down",
                self.shared.config.limits.session_rate
            )));
        }
        self.shared.guard.take_ip(self.remote.ip())
    }

    /// Answers one refused message; returns the close reason once the session has refused too
    /// many, so a flood of garbage costs the sender its session and nobody else anything.
    async fn refuse(&mut self, id: Option<u64>, e: Error) -> Option<(u16, String)> {
        self.shared.metrics.reject(e.code());
        // Only garbage and floods count against the budget; a well-formed request that is
        // refused (not found, forbidden, over a per-session limit) is ordinary traffic for a
        // long-lived node.
        if matches!(
            e,
            Error::MalformedJson(_)
                | Error::UnknownMessage(_)
                | Error::InvalidInput(_)
                | Error::Protocol(_)
                | Error::RateLimited(_)
        ) {
            self.errors += 1;
        }
        self.send(&ServerMessage::error(id, &e)).await;
        (self.errors >= self.shared.config.max_session_errors).then(|| {
            (
                close::POLICY,
                format!("too many refused messages ({}); closing", self.errors),
            )
        })
    }

    /// Queues `m` for the writer, waiting up to the stall bound while the queue is full.
    async fn send(&mut self, m: &ServerMessage) {
        // The queue nearly always has room. Waiting on it takes a bounded send, whose state
        // (a timer and a semaphore's waiter) is boxed: held inline, every idle session's future
        // would keep room for it.
        let sent = match self.out.try_send(text(m)) {
            Ok(()) => return,
            Err(TryRefused::Closed) => false,
            Err(TryRefused::Full(m)) => matches!(
                Box::pin(tokio::time::timeout(self.stall, self.out.send(m))).await,
                Ok(Ok(()))
            ),
        };
        if !sent {
            self.broken = true;
        }
    }

    /// Has the writer follow `feed` as `key`, or stop following `key` (`None`), after what was
    /// sent so far.
    async fn follow(&mut self, key: FeedKey, feed: Option<Feed>) {
        // A queue that already stalled would only make the session wait a second time.
        if self.broken {
            return;
        }
        let out = &self.out;
        let queued = Box::pin(tokio::time::timeout(self.stall, async move {
            match feed {
                Some(feed) => out.follow(key, feed).await,
                None => out.unfollow(key).await,
            }
        }))
        .await;
        if !matches!(queued, Ok(Ok(()))) {
            self.broken = true;
        }
    }

    async fn handle(
        &mut self,
        msg: ClientMessage,
        me: &SessionCaller,
    ) -> Result<Option<ServerMessage>> {
        let state = &self.shared;
        let network = &me.network;
        let reply = |id, data| Ok(Some(ServerMessage::Result { id, data }));
        match msg {
            ClientMessage::Hello { .. } => Err(Error::Protocol(
                "hello was already received on this session".into(),
            )),
            ClientMessage::Register {
                id,
                name,
                instance_id,
                instance,
            } => {
                let request = Registering {
                    network: network.clone(),
                    name,
                    id: instance_id,
                    registration: instance,
                };
                let done = ops::register(state, Caller::Session(me, &self.owned), request).await?;
                // The directory's copy of the key: its names are shared with the directory.
                let i = &done.instance;
                self.owned.insert((i.name.clone(), i.id.clone()));
                reply(id, ResultData::Instance(done.instance))
            }
            ClientMessage::Deregister {
                id,
                name,
                instance_id,
            } => {
                let key = (network.clone(), name, instance_id);
                ops::deregister(state, Caller::Session(me, &self.owned), &key).await?;
                let (_, name, instance_id) = key;
                self.owned.remove(&(name, instance_id));
                reply(id, ResultData::Empty {})
            }
            ClientMessage::Discover {
                id,
                name,
                healthy_only,
                tags,
            } => {
                let caller = Caller::Session(me, &self.owned);
                let found = ops::discover(state, caller, network, &name, healthy_only, &tags)?;
                reply(id, ResultData::EncodedDiscovery(found))
            }
            ClientMessage::Services { id } => {
                let services = ops::services(state, Caller::Session(me, &self.owned), network)?;
                reply(id, ResultData::Services { services })
            }
            ClientMessage::Watch { id, name } => {
                let limit = state.config.max_watches_per_session;
                if self.watches.len() >= limit && !self.watches.contains(&name) {
                    return Err(Error::TooLarge(format!(
                        "this session already watches {limit} services, the most a session may; unwatch some first"
                    )));
                }
                let (instances, rx) =
                    ops::watch(state, Caller::Session(me, &self.owned), network, &name)?;
                let feed = service_feed(name.clone(), rx, state.clone(), network.clone());
                // A watch again replaces the first: its feed stops before the snapshot answer,
                // so no event older than the snapshot follows it.
                if self.watches.contains(&name) {
                    self.follow(FeedKey::Service(name.clone()), None).await;
                }
                // The snapshot answer goes out before the feed can push any event.
                self.send(&ServerMessage::Result {
                    id,
                    data: ResultData::Watching { instances },
                })
                .await;
                self.follow(FeedKey::Service(name.clone()), Some(feed))
                    .await;
                self.watches.insert(name);
                Ok(None)
            }
            ClientMessage::Unwatch { id, name } => {
                if self.watches.remove(&name) {
                    self.follow(FeedKey::Service(name), None).await;
                }
                reply(id, ResultData::Empty {})
            }
            ClientMessage::WatchNetwork { id } => {
                let (instances, rx) =
                    ops::watch_network(state, Caller::Session(me, &self.owned), network)?;
                let feed = network_feed(rx, state.clone(), network.clone());
                if self.network_watch {
                    self.follow(FeedKey::Network, None).await;
                }
                self.send(&ServerMessage::Result {
                    id,
                    data: ResultData::Watching { instances },
                })
                .await;
                self.follow(FeedKey::Network, Some(feed)).await;
                self.network_watch = true;
                Ok(None)
            }
            ClientMessage::UnwatchNetwork { id } => {
                if std::mem::take(&mut self.network_watch) {
                    self.follow(FeedKey::Network, None).await;
                }
                reply(id, ResultData::Empty {})
            }
            ClientMessage::Subscribe { id, channel } => {
                let limit = state.config.max_subscriptions_per_session;
                if self.subscriptions.len() >= limit && !self.subscriptions.contains(&channel) {
                    return Err(Error::TooLarge(format!(
                        "this session already subscribes to {limit} channels, the most a session may; unsubscribe some first"
                    )));
                }
                // Subscribing twice (a client re-sending its subscriptions as a new session
                // starts, while a subscribe of its own is on the way) keeps the one receiver:
                // replacing it would for a moment count, and deliver to, this session twice.
                if self.subscriptions.contains(&channel) {
                    return reply(id, ResultData::Empty {});
                }
                let rx =
                    ops::subscribe(state, Caller::Session(me, &self.owned), network, &channel)?;
                self.follow(FeedKey::Channel(channel.clone()), Some(channel_feed(rx)))
                    .await;
                self.subscriptions.insert(channel);
                reply(id, ResultData::Empty {})
            }
            ClientMessage::Unsubscribe { id, channel } => {
                if self.subscriptions.remove(&channel) {
                    self.follow(FeedKey::Channel(channel), None).await;
                }
                reply(id, ResultData::Empty {})
            }
            ClientMessage::Publish { id, channel, data } => {
                let caller = Caller::Session(me, &self.owned);
                let delivered = ops::publish(state, caller, network, channel, data).await?;
                reply(id, ResultData::Published { delivered })
            }
            ClientMessage::Ping { id } => Ok(Some(ServerMessage::Pong { id })),
        }
    }

    /// Removes everything this session owned. Its feeds end with its writer, which stops
    /// following them at the close frame.
    fn finish(&mut self) {
        let Some(me) = &self.me else {
            return;
        };
        self.shared.set_outbox(self.id, None);
        let removed = ops::end_session(&self.shared, me, std::mem::take(&mut self.owned));
        if removed > 0 {
            tracing::debug!(session = self.id, removed, "session instances removed");
        }
    }
}

/// One watched service's events as frames; on lag, a snapshot of the service instead of the
/// events missed.
fn service_feed(
    name: ServiceName,
    rx: WatchReceiver,
    shared: Arc<RegistryState>,
    network: NetworkName,
) -> Feed {
    /// Counted among the registry's watchers while it is followed, however it ends.
    struct Watching {
        name: ServiceName,
        rx: WatchReceiver,
        shared: Arc<RegistryState>,
        network: NetworkName,
    }
    impl Drop for Watching {
        fn drop(&mut self) {
            self.shared.metrics.watchers(-1);
        }
    }
    shared.metrics.watchers(1);
    let watching = Watching {
        name,
        rx,
        shared,
        network,
    };
    Box::pin(futures_util::stream::unfold(watching, |mut w| async move {
        let msg = match w.rx.recv().await {
            Ok(change) => {
                w.shared.metrics.watch_events.inc();
                w.shared
                    .metrics
                    .push_latency
                    .observe(change.at.elapsed().as_secs_f64());
                Message::Text(frame(&change))
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(service = %w.name, missed, "watcher lagged; sending a snapshot");
                // Skip what is still buffered: the snapshot taken after this point already
                // contains it, and replaying older events over it would show stale states.
                w.rx = w.rx.resubscribe();
                let d = w
                    .shared
                    .directory
                    .discover(&w.network, &w.name, false, &[])
                    .ok()?;
                text(&ServerMessage::Snapshot {
                    name: w.name.clone(),
                    instances: d.instances,
                })
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((msg, w))
    }))
}

/// Every change of a network as frames; on lag, a fresh snapshot of all of it.
fn network_feed(rx: WatchReceiver, shared: Arc<RegistryState>, network: NetworkName) -> Feed {
    Box::pin(futures_util::stream::unfold(
        (rx, shared, network),
        |(mut rx, shared, network)| async move {
            let msg = match rx.recv().await {
                Ok(change) => Message::Text(frame(&change)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let (instances, fresh) = shared.directory.watch_network(&network).ok()?;
                    rx = fresh;
                    text(&ServerMessage::NetworkSnapshot { instances })
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((msg, (rx, shared, network)))
        },
    ))
}

/// One channel's messages as frames. A subscriber that lagged loses the oldest messages
/// (at-most-once delivery) and carries on with the newest.
fn channel_feed(rx: super::channels::ChannelReceiver) -> Feed {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(m) => return Some((text(&ServerMessage::Message((*m).clone())), rx)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "channel subscriber lagged; oldest messages dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }))
}

/// Reads the next text frame, skipping control frames; `None` when the peer closed.
async fn next_text(stream: &mut Stream, max_frame: usize) -> Result<Option<String>> {
    while let Some(frame) = stream.next().await {
        match frame.map_err(|e| Error::Closed(format!("read error: {e}")))? {
            Message::Text(t) => {
                if t.len() > max_frame {
                    return Err(Error::too_large("frame", t.len(), max_frame));
                }
                return Ok(Some(t.to_string()));
            }
            Message::Binary(_) => {
                return Err(Error::InvalidInput(
                    "binary frames are not part of netget/1; send JSON text frames".into(),
                ))
            }
            Message::Close(_) => return Ok(None),
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    Ok(None)
}

/// The close code for a frame that could not be read: 1007 for a text frame that is not UTF-8
/// (RFC 6455, section 8.1), 1001 for anything else (the connection is going).
fn read_error_code(e: &axum::Error) -> u16 {
    // tungstenite says "UTF-8 encoding error" (its `Error::Utf8`); axum passes it on boxed.
    if e.to_string().contains("UTF-8") {
        close::BAD_DATA
    } else {
        close::GOING_AWAY
    }
}

fn close_code_for(e: &Error) -> u16 {
    match e {
        Error::TooLarge(_) => close::TOO_BIG,
        _ => close::POLICY,
    }
}

/// Resolves once the registry starts shutting down.
pub(super) async fn stopping(shutdown_rx: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it inside this fn.
    let _ = shutdown_rx.wait_for(|s| *s).await.is_ok();
}
