//! The `Netget` client: what a service, worker or discovering client holds.
//!
//! A [`Netget`] is a cheap-to-clone handle to one background task (the *session actor*, in
//! `actor`) that owns the WebSocket session. The actor connects to one of the registry nodes,
//! answers the challenge, and on every (re)connection re-registers the node with the same id and
//! re-subscribes every watched service, so failover needs nothing from the application.
//! Discovery is served from a local cache (`cache`) kept current by pushed events: the first
//! discovery of a name subscribes to it.
//!
//! - `options`: what a node is configured with ([`NetgetOptions`], [`DiscoverOptions`]).
//! - `cache`: the services this node watches, as it knows them.
//! - `actor`: the task that owns the session, fails over and re-registers.
//! - `connection`: dialling one registry and its handshake.
//! - [`rest`]: a small client of the registry's HTTP API (CLI, load tool, tests).

mod actor;
mod cache;
pub(crate) mod connection;
mod options;
mod pool;
pub mod rest;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot};

pub use actor::ConnState;
pub use connection::{
    recv as recv_message, send as send_message, ws_url, Connection, Dial, Socket, Welcome,
};
pub use options::{user_data_dir, DiscoverOptions, NetgetOptions, NodeType, Strategy};

use crate::error::{Error, Result};
use crate::identity::{NodeKey, NODE_KEY_FILE};
use crate::model::{
    ChannelMessage, ChannelName, EventKind, Instance, InstanceId, NetworkName, Registration,
    ServiceName, ServiceSummary, WatchEvent,
};
use crate::wire::ResultData;
use actor::{Actor, Command, Request};
use cache::{CachedService, Subscribers, MAX_CACHED_SERVICES, SUBSCRIBER_BUFFER, WATCHER_BUFFER};

/// A subscription to one service's changes. Dropping it unsubscribes.
pub struct Watch {
    events_rx: mpsc::Receiver<WatchEvent>,
    _guard: WatchGuard,
}

impl Watch {
    /// The next change; `None` once the client is stopped. The first events are `up` for every
    /// instance present when the watch began.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.events_rx.recv().await
    }

    /// A change if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<WatchEvent> {
        self.events_rx.try_recv().ok()
    }
}

/// A subscription to one channel. Dropping it unsubscribes.
pub struct Subscription {
    messages_rx: mpsc::Receiver<ChannelMessage>,
    inner: Arc<Inner>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    channel: ChannelName,
    sub: u64,
}

impl Subscription {
    /// The next message; `None` once the client is stopped or the registry refused the
    /// subscription.
    pub async fn next(&mut self) -> Option<ChannelMessage> {
        self.messages_rx.recv().await
    }

    /// A message if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<ChannelMessage> {
        self.messages_rx.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.inner.lock_subscribers();
        if let Some(list) = subs.get_mut(&self.channel) {
            list.retain(|(id, _)| *id != self.sub);
            if list.is_empty() {
                subs.remove(&self.channel);
                let _ = self.cmd_tx.send(Command::Unsubscribe {
                    channel: self.channel.clone(),
                });
            }
        }
    }
}

struct WatchGuard {
    inner: Arc<Inner>,
    name: ServiceName,
    sub: u64,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut services = self.inner.write_services();
        if let Some(c) = services.get_mut(&self.name) {
            c.subscribers.retain(|(id, _)| *id != self.sub);
        }
        // The registry-side watch stays: it keeps the discovery cache current.
    }
}

/// This node's own registration, as [`Netget::register_with_network`] asked for it.
struct Held {
    name: ServiceName,
    instance_id: InstanceId,
    reg: Registration,
    /// Whether a new session must send it again: once a registry has confirmed it, as it then
    /// lives and dies with that session, or once its own call has given up. Until then that
    /// call is still on its way (in the command channel, queued, or re-queued from a lost
    /// session), and a session re-sending it too would register it twice.
    resend: bool,
}

struct Inner {
    options: NetgetOptions,
    network: NetworkName,
    key: NodeKey,
    /// How sessions are opened (network, key, token, TLS).
    dial: Dial,
    /// Whether instances must carry a valid signature (the network's policy is `keys`, or
    /// `options.verify`); set from each session's welcome.
    verify: std::sync::atomic::AtomicBool,
    registries: Mutex<Vec<String>>,
    services: RwLock<HashMap<ServiceName, CachedService>>,
    /// Channel subscribers, re-subscribed on every reconnection.
    subscribers: Mutex<Subscribers>,
    /// What this node registered, re-sent on every reconnection once confirmed.
    registered: Mutex<Option<Held>>,
    state_tx: tokio::sync::watch::Sender<ConnState>,
    next_sub: AtomicU64,
    round_robin: AtomicUsize,
}

impl Inner {
    fn write_services(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<ServiceName, CachedService>> {
        self.services.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read_services(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ServiceName, CachedService>> {
        self.services.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an instance the registry handed out for service `asked` may be used. It must be
    /// of that service and of this node's network (a registry must not slip in another one);
    /// when verification is on (a `keys` network, `verify`, or keys pinned for the service) its
    /// signature must hold, and pinned keys are looked up by the service asked for.
    fn admits(&self, asked: &ServiceName, instance: &Instance) -> bool {
        if &instance.name != asked || instance.network != self.network {
            tracing::warn!(asked = %asked, got = %instance.name, network = %instance.network, "registry answered with an instance of another service or network; ignored");
            return false;
        }
        let trusted = self.options.trusted_keys.get(asked.as_str());
        if !self.verify.load(Ordering::Relaxed) && trusted.is_none() {
            return true;
        }
        match crate::identity::verify_instance(instance, trusted.map(Vec::as_slice).unwrap_or(&[]))
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "instance rejected by verification");
                false
            }
        }
    }

    fn lock_subscribers(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn registries(&self) -> Vec<String> {
        self.registries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock_registered(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registration a new session must send again, if any (see [`Held::resend`]).
    fn to_resend(&self) -> Option<(ServiceName, InstanceId, Registration)> {
        self.lock_registered()
            .as_ref()
            .filter(|h| h.resend)
            .map(|h| (h.name.clone(), h.instance_id.clone(), h.reg.clone()))
    }

    /// Marks the registration as one every new session sends again.
    fn resend_registration(&self) {
        if let Some(h) = self.lock_registered().as_mut() {
            h.resend = true;
        }
    }

    /// Forgets the registration; returns its name and id, if there was one.
    fn take_registered(&self) -> Option<(ServiceName, InstanceId)> {
        self.lock_registered()
            .take()
            .map(|h| (h.name, h.instance_id))
    }
}

/// A node of a netget network: registers itself, discovers and watches others.
///
/// Cloning gives another handle to the same node. The node runs until [`Netget::stop`] (or until
/// every handle and watch is dropped).
#[derive(Clone)]
pub struct Netget {
    inner: Arc<Inner>,
    cmd_tx: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Netget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netget")
            .field("network", &self.inner.network)
            .field("public_key", &self.inner.key.public_key())
            .finish()
    }
}

impl Netget {
    /// Creates the node and starts connecting in the background. Must be called inside a
    /// tokio runtime.
    pub fn new(options: NetgetOptions) -> Result<Netget> {
        let network = NetworkName::new(&options.network)?;
        if options.registry_nodes.is_empty() {
            return Err(Error::InvalidInput(
                "registryNodes is empty; give at least one registry URL".into(),
            ));
        }
        for r in &options.registry_nodes {
            ws_url(r)?;
        }
        let key = match (&options.key, &options.data_dir) {
            (Some(k), _) => k.clone(),
            (None, Some(dir)) => NodeKey::load_or_create(dir, NODE_KEY_FILE)?,
            (None, None) => NodeKey::generate()?,
        };
        let tls = match &options.tls_ca {
            Some(ca) => Some(crate::tls::client_config(Some(ca))?),
            None => None,
        };
        let dial = Dial {
            network: network.clone(),
            key: key.clone(),
            token: options.token.clone(),
            node_type: options.node_type.as_str(),
            tls,
            timeout: options.connect_timeout,
            local_address: None,
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Internal("Netget::new must be called inside a tokio runtime".into())
        })?;
        let (state_tx, _) = tokio::sync::watch::channel(ConnState::Connecting);
        let inner = Arc::new(Inner {
            registries: Mutex::new(options.registry_nodes.clone()),
            verify: std::sync::atomic::AtomicBool::new(options.verify),
            options,
            network,
            key,
            dial,
            services: RwLock::new(HashMap::new()),
            subscribers: Mutex::new(HashMap::new()),
            registered: Mutex::new(None),
            state_tx,
            next_sub: AtomicU64::new(1),
            round_robin: AtomicUsize::new(0),
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        runtime.spawn(Actor::new(inner.clone(), cmd_rx).run());
        Ok(Netget { inner, cmd_tx })
    }

    /// The node's public key (standard base64).
    pub fn public_key(&self) -> String {
        self.inner.key.public_key()
    }

    /// The network this node is in.
    pub fn network(&self) -> &str {
        self.inner.network.as_str()
    }

    /// Waits until a session with some registry is up (or `request_timeout` passes).
    pub async fn start(&self) -> Result<String> {
        let mut state_rx = self.inner.state_tx.subscribe();
        let timeout = self.inner.options.request_timeout;
        let wait = async {
            state_rx
                .wait_for(|s| !matches!(s, ConnState::Connecting))
                .await
                .map(|s| s.clone())
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => match s {
                ConnState::Connected(url) => Ok(url),
                ConnState::Down(e) => Err(e),
                _ => Err(Error::Closed("this node was stopped".into())),
            },
            Ok(Err(_)) => Err(Error::Closed("this node was stopped".into())),
            Err(_) => Err(Error::Unreachable(format!(
                "no registry node answered within {timeout:?}: {:?}",
                self.inner.registries()
            ))),
        }
    }

    /// The registry this node is in session with, if any.
    pub fn connected_to(&self) -> Option<String> {
        match &*self.inner.state_tx.borrow() {
            ConnState::Connected(url) => Some(url.clone()),
            _ => None,
        }
    }

    async fn call(&self, request: Request) -> Result<ResultData> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Call { request, reply_tx })
            .map_err(|_| Error::Closed("this node was stopped".into()))?;
        let timeout = self.inner.options.request_timeout;
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Closed("this node was stopped".into())),
            Err(_) => Err(Error::timeout("request to the registry", timeout)),
        }
    }

    /// Registers this node (from `metadata`) and keeps it registered across reconnections.
    /// Resolves with the instance as the registry stored it.
    pub async fn register_with_network(&self) -> Result<Arc<Instance>> {
        if self.inner.options.node_type != NodeType::Service {
            return Err(Error::InvalidInput(
                "only a node of type \"service\" registers itself".into(),
            ));
        }
        let (name, instance_id, reg) = self.inner.options.registration(&self.inner.key)?;
        *self.inner.lock_registered() = Some(Held {
            name: name.clone(),
            instance_id: instance_id.clone(),
            reg: reg.clone(),
            resend: false,
        });
        match self
            .call(Request::Register {
                name,
                instance_id,
                reg: Box::new(reg),
            })
            .await
        {
            Ok(ResultData::Instance(i)) => Ok(i),
            Ok(other) => Err(Error::Protocol(format!(
                "unexpected answer to register: {other:?}"
            ))),
            Err(e) => {
                // A refusal is final; a timeout or lost connection is not (the registration
                // may yet land, and is re-sent on the next session), so keep it then.
                if matches!(e, Error::Timeout(_) | Error::Unreachable(_)) {
                    self.inner.resend_registration();
                } else {
                    self.inner.take_registered();
                }
                Err(e)
            }
        }
    }

    /// Removes this node's registration (it stays connected and can still discover).
    pub async fn deregister(&self) -> Result<()> {
        let Some((name, instance_id)) = self.inner.take_registered() else {
            return Ok(());
        };
        self.call(Request::Deregister { name, instance_id })
            .await
            .map(|_| ())
    }

    /// One healthy instance of `name` (weighted random), or `None` if there is none.
    pub async fn discover_service_node(&self, name: &str) -> Result<Option<Arc<Instance>>> {
        self.discover_service_node_with(name, &DiscoverOptions::default())
            .await
    }

    /// One instance of `name` chosen by `options.strategy`, or `None`.
    pub async fn discover_service_node_with(
        &self,
        name: &str,
        options: &DiscoverOptions,
    ) -> Result<Option<Arc<Instance>>> {
        if options.cached {
            if let Some(hit) = self.pick_cached(name, options) {
                return Ok(hit);
            }
        }
        let all = self.discover_service_nodes(name, options).await?;
        Ok(self.pick(&all, options.strategy).cloned())
    }

    /// The cached answer, when the service's snapshot is already here: no await, no I/O.
    pub fn pick_cached(
        &self,
        name: &str,
        options: &DiscoverOptions,
    ) -> Option<Option<Arc<Instance>>> {
        let services = self.inner.read_services();
        let cached = services.get(name).filter(|c| c.ready)?;
        let mut candidates: Vec<&Arc<Instance>> = Vec::with_capacity(cached.instances.len());
        candidates.extend(cached.instances.values().filter(|i| options.admits(i)));
        Some(self.pick_ref(&candidates, options.strategy).cloned())
    }

    fn pick<'a>(&self, all: &'a [Arc<Instance>], strategy: Strategy) -> Option<&'a Arc<Instance>> {
        let refs: Vec<&Arc<Instance>> = all.iter().collect();
        self.pick_ref(&refs, strategy)
    }

    fn pick_ref<'a>(
        &self,
        all: &[&'a Arc<Instance>],
        strategy: Strategy,
    ) -> Option<&'a Arc<Instance>> {
        if all.is_empty() {
            return None;
        }
        let i = match strategy {
            Strategy::Random => fastrand::usize(..all.len()),
            Strategy::RoundRobin => {
                self.inner.round_robin.fetch_add(1, Ordering::Relaxed) % all.len()
            }
            Strategy::Weighted => {
                let total: u64 = all.iter().map(|i| u64::from(i.weight)).sum();
                if total == 0 {
                    fastrand::usize(..all.len())
                } else {
                    let mut ticket = fastrand::u64(..total);
                    all.iter()
                        .position(|i| {
                            let w = u64::from(i.weight);
                            if ticket < w {
                                true
                            } else {
                                ticket -= w;
                                false
                            }
                        })
                        .unwrap_or(0)
                }
            }
        };
        all.get(i).copied()
    }

    /// Every matching instance of `name`.
    pub async fn discover_service_nodes(
        &self,
        name: &str,
        options: &DiscoverOptions,
    ) -> Result<Vec<Arc<Instance>>> {
        let service = ServiceName::new(name)?;
        // A registry that refuses one more watch (its per-session limit) still answers queries.
        let cached = options.cached
            && match self.ensure_cached(&service).await {
                Ok(cached) => cached,
                Err(Error::TooLarge(_)) => false,
                Err(e) => return Err(e),
            };
        if cached {
            let services = self.inner.read_services();
            if let Some(c) = services.get(name).filter(|c| c.ready) {
                return Ok(c
                    .instances
                    .values()
                    .filter(|i| options.admits(i))
                    .cloned()
                    .collect());
            }
        }
        match self
            .call(Request::Discover {
                name: service.clone(),
                healthy_only: options.healthy_only,
                tags: options.tags.clone(),
            })
            .await?
        {
            ResultData::Discovery(mut d) => {
                d.instances.retain(|i| self.inner.admits(&service, i));
                Ok(d.instances)
            }
            other => Err(Error::Protocol(format!(
                "unexpected answer to discover: {other:?}"
            ))),
        }
    }

    /// Subscribes to `name` at the registry (once) and waits for its first snapshot. Returns
    /// `false` when the cache is full of other names: the caller asks the registry instead.
    async fn ensure_cached(&self, name: &ServiceName) -> Result<bool> {
        let waiter = {
            let mut services = self.inner.write_services();
            if !services.contains_key(name) && services.len() >= MAX_CACHED_SERVICES {
                return Ok(false);
            }
            let entry = services.entry(name.clone()).or_default();
            if entry.ready {
                return Ok(true);
            }
            let (tx, rx) = oneshot::channel();
            entry.waiters.push(tx);
            self.request_watch(name, entry)?;
            rx
        };
        let timeout = self.inner.options.request_timeout;
        match tokio::time::timeout(timeout, waiter).await {
            Ok(Ok(r)) => r.map(|()| true),
            Ok(Err(_)) => Err(Error::Closed("this node was stopped".into())),
            Err(_) => Err(Error::timeout("waiting for the registry's answer", timeout)),
        }
    }

    /// Asks the actor to subscribe to `name` unless a subscription is already on its way (a
    /// refused one is asked again by the next caller).
    fn request_watch(&self, name: &ServiceName, entry: &mut CachedService) -> Result<()> {
        if entry.requested {
            return Ok(());
        }
        entry.requested = true;
        self.cmd_tx
            .send(Command::Watch { name: name.clone() })
            .map_err(|_| Error::Closed("this node was stopped".into()))
    }

    /// Watches `name`: the returned [`Watch`] yields `up` for each current instance, then every
    /// change. Survives failover (differences seen across a reconnection become events).
    pub fn watch(&self, name: &str) -> Result<Watch> {
        let service = ServiceName::new(name)?;
        let (events_tx, events_rx) = mpsc::channel(WATCHER_BUFFER);
        let sub = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        {
            let mut services = self.inner.write_services();
            let entry = services.entry(service.clone()).or_default();
            if entry.ready {
                for inst in entry.instances.values() {
                    let _ = events_tx.try_send(WatchEvent {
                        kind: EventKind::Up,
                        instance: inst.clone(),
                    });
                }
            }
            entry.subscribers.push((sub, events_tx));
            if !entry.ready {
                self.request_watch(&service, entry)?;
            }
        }
        Ok(Watch {
            events_rx,
            _guard: WatchGuard {
                inner: self.inner.clone(),
                name: service,
                sub,
            },
        })
    }

    /// Subscribes to a channel of this node's network: the returned [`Subscription`] yields every
    /// message published on it from now on (at most once; a subscriber more than 1,024 messages
    /// behind misses new ones). Survives failover. Dropping it unsubscribes.
    pub fn subscribe(&self, channel: &str) -> Result<Subscription> {
        let channel = ChannelName::new(channel)?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let sub = self.inner.next_sub.fetch_add(1, Ordering::Relaxed);
        let mut subs = self.inner.lock_subscribers();
        let list = subs.entry(channel.clone()).or_default();
        let first = list.is_empty();
        list.push((sub, tx));
        if first {
            self.cmd_tx
                .send(Command::Subscribe {
                    channel: channel.clone(),
                })
                .map_err(|_| Error::Closed("this node was stopped".into()))?;
        }
        Ok(Subscription {
            messages_rx: rx,
            inner: self.inner.clone(),
            cmd_tx: self.cmd_tx.clone(),
            channel,
            sub,
        })
    }

    /// Publishes `data` on a channel of this node's network; resolves with how many subscribers
    /// (on the registry it is connected to) it was handed to.
    pub async fn publish(&self, channel: &str, data: serde_json::Value) -> Result<usize> {
        let channel = ChannelName::new(channel)?;
        match self.call(Request::Publish { channel, data }).await? {
            ResultData::Published { delivered } => Ok(delivered),
            other => Err(Error::Protocol(format!(
                "unexpected answer to publish: {other:?}"
            ))),
        }
    }

    /// Service names of the network with instance counts (asks the registry).
    pub async fn services(&self) -> Result<Vec<ServiceSummary>> {
        match self.call(Request::Services).await? {
            ResultData::Services { services } => Ok(services),
            other => Err(Error::Protocol(format!(
                "unexpected answer to services: {other:?}"
            ))),
        }
    }

    /// Adds a registry node to fail over to.
    pub fn add_registry_node(&self, url: &str) -> Result<()> {
        ws_url(url)?;
        let mut r = self
            .inner
            .registries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !r.iter().any(|u| u == url) {
            r.push(url.to_string());
        }
        Ok(())
    }

    /// Removes a registry node; if the session is with it, the node moves to another.
    pub fn remove_registry_node(&self, url: &str) -> Result<()> {
        let mut r = self
            .inner
            .registries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let before = r.len();
        r.retain(|u| u != url);
        if r.len() == before {
            return Err(Error::NotFound(format!(
                "{url} is not one of this node's registry nodes"
            )));
        }
        drop(r);
        let current = self.connected_to();
        if current.is_some_and(|c| ws_url(url).is_ok_and(|w| w == c)) {
            let _ = self.cmd_tx.send(Command::Reconnect);
        }
        Ok(())
    }

    /// The registry nodes, in order.
    pub fn registry_nodes(&self) -> Vec<String> {
        self.inner.registries()
    }

    /// Deregisters (if registered), closes the session and ends every watch.
    pub async fn stop(&self) -> Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        if self.cmd_tx.send(Command::Stop { done_tx }).is_err() {
            return Ok(());
        }
        let _ = tokio::time::timeout(self.inner.options.request_timeout, done_rx).await;
        Ok(())
    }
}
