//! The `Netget` client: what a service, worker or discovering client holds.
//!
//! A [`Netget`] is a cheap-to-clone handle to one background task (the *session actor*) that owns
//! the WebSocket session. The actor connects to one of the registry nodes, answers the challenge,
//! and on every (re)connection re-registers the node with the same id and re-subscribes every
//! watched service, so failover needs nothing from the application. Discovery is served from a
//! local cache kept current by pushed events: the first discovery of a name subscribes to it.

mod connection;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub use connection::{
    recv as recv_message, send as send_message, ws_url, Connection, Dial, Socket, Welcome,
};

use crate::config::DEFAULT_REGISTRY_URL;
use crate::error::{Error, Result};
use crate::identity::{derived_instance_id, NodeKey, NODE_KEY_FILE};
use crate::model::{
    ChannelMessage, ChannelName, EventKind, HealthCheck, Instance, InstanceId, NetworkName,
    Registration, ServiceName, ServiceSummary, WatchEvent, DEFAULT_NETWORK,
};
use crate::protocol::{ClientMessage, ResultData, ServerMessage};

/// What kind of node this is. Only a `Service` registers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeType {
    /// Registers itself and discovers others.
    #[default]
    Service,
    /// Discovers and watches only.
    Client,
}

impl NodeType {
    /// The name used on the wire and in the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Service => "service",
            NodeType::Client => "client",
        }
    }
}

/// How `discover_service_node` picks one of several healthy instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Random, proportional to each instance's weight.
    #[default]
    Weighted,
    /// Uniformly random.
    Random,
    /// In turn, per client.
    RoundRobin,
}

impl std::str::FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Strategy> {
        match s {
            "weighted" => Ok(Strategy::Weighted),
            "random" => Ok(Strategy::Random),
            "round-robin" => Ok(Strategy::RoundRobin),
            other => Err(Error::InvalidInput(format!(
                "unknown strategy {other:?}; use weighted, random or round-robin"
            ))),
        }
    }
}

/// Filters and policy for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Only instances carrying all these tags.
    pub tags: Vec<String>,
    /// Only passing and warning instances (default true).
    pub healthy_only: bool,
    /// How one instance is picked.
    pub strategy: Strategy,
    /// Serve from the watch-backed local cache (default true); `false` asks the registry.
    pub cached: bool,
}

impl DiscoverOptions {
    /// Whether `instance` passes the health and tag filters.
    pub fn admits(&self, instance: &Instance) -> bool {
        (!self.healthy_only || instance.status.is_healthy()) && instance.has_tags(&self.tags)
    }
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            tags: Vec::new(),
            healthy_only: true,
            strategy: Strategy::Weighted,
            cached: true,
        }
    }
}

/// Everything a node is configured with; mirrors `new Netget({...})` of the JS API.
#[derive(Clone)]
pub struct NetgetOptions {
    /// Service or client.
    pub node_type: NodeType,
    /// The network to join.
    pub network: String,
    /// `name`, `address`, `tags`, `version`, `id`, `weight` describe the instance; every other
    /// key (e.g. `description`) becomes instance metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Registry nodes in order of preference; several give failover.
    pub registry_nodes: Vec<String>,
    /// The node's identity; when absent it is loaded from (or created in) `data_dir`.
    pub key: Option<NodeKey>,
    /// Where the node keeps its key (`node.key`), default `./netget-data`, so a restarted node
    /// keeps its identity and instance id; `None` means an in-memory key for this run only.
    pub data_dir: Option<PathBuf>,
    /// An active health check for the registry to run.
    pub health: Option<HealthCheck>,
    /// Join token for networks that need one.
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust for `https://`/`wss://` registries instead of the
    /// system's roots.
    pub tls_ca: Option<PathBuf>,
    /// Verify every instance's signature, whatever the network's policy (always done in `keys`
    /// networks). Instances that fail are left out of discovery and watches.
    pub verify: bool,
    /// Per service name, the public keys allowed to sign its instances: with this, not even a
    /// compromised registry can hand out an address for the service.
    pub trusted_keys: HashMap<String, Vec<String>>,
    /// Bound on every call that goes to a registry.
    pub request_timeout: Duration,
    /// Bound on connecting to one registry node.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for NetgetOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs.
        f.debug_struct("NetgetOptions")
            .field("node_type", &self.node_type)
            .field("network", &self.network)
            .field("metadata", &self.metadata)
            .field("registry_nodes", &self.registry_nodes)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl Default for NetgetOptions {
    fn default() -> Self {
        NetgetOptions {
            node_type: NodeType::Service,
            network: DEFAULT_NETWORK.to_string(),
            metadata: serde_json::Map::new(),
            registry_nodes: vec![DEFAULT_REGISTRY_URL.to_string()],
            key: None,
            data_dir: Some(PathBuf::from("./netget-data")),
            health: None,
            token: None,
            tls_ca: None,
            verify: false,
            trusted_keys: HashMap::new(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl NetgetOptions {
    /// Options for a service node called `name` reachable at `address`.
    pub fn service(name: &str, address: &str, registry_nodes: &[&str]) -> NetgetOptions {
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), name.into());
        metadata.insert("address".into(), address.into());
        NetgetOptions {
            metadata,
            registry_nodes: registry_nodes.iter().map(|s| s.to_string()).collect(),
            ..NetgetOptions::default()
        }
    }

    /// Options for a node that only discovers.
    pub fn client(registry_nodes: &[&str]) -> NetgetOptions {
        NetgetOptions {
            node_type: NodeType::Client,
            registry_nodes: registry_nodes.iter().map(|s| s.to_string()).collect(),
            ..NetgetOptions::default()
        }
    }

    /// The service name, instance id and registration that `metadata` describes.
    fn registration(&self, key: &NodeKey) -> Result<(ServiceName, InstanceId, Registration)> {
        // Validate the network here too: the signature covers it.
        NetworkName::new(&self.network)?;
        let mut meta = self.metadata.clone();
        let take_str = |meta: &mut serde_json::Map<_, _>, k: &str| -> Result<Option<String>> {
            match meta.remove(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(Error::InvalidInput(format!(
                    "metadata.{k} must be a string, got {other}"
                ))),
            }
        };
        let name = take_str(&mut meta, "name")?.ok_or_else(|| {
            Error::InvalidInput("metadata.name is required to register (the service name)".into())
        })?;
        let name = ServiceName::new(&name)?;
        let address = take_str(&mut meta, "address")?.ok_or_else(|| {
            Error::InvalidInput(
                "metadata.address is required to register (where clients reach this node)".into(),
            )
        })?;
        let version = take_str(&mut meta, "version")?;
        let id = match take_str(&mut meta, "id")? {
            Some(id) => InstanceId::new(&id)?,
            None => InstanceId::new(&derived_instance_id(
                &key.public_key(),
                name.as_str(),
                &address,
            ))?,
        };
        let tags = match meta.remove("tags") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|_| {
                Error::InvalidInput("metadata.tags must be a list of strings".into())
            })?,
        };
        let weight =
            match meta.remove("weight") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|w| u32::try_from(w).ok()).ok_or_else(
                    || Error::InvalidInput("metadata.weight must be a whole number".into()),
                )?),
            };
        let reg = Registration {
            address,
            tags,
            metadata: meta,
            version,
            weight,
            ttl: None,
            health: self.health.clone(),
            signature: None,
            signed_at: None,
        };
        reg.validate()?;
        let signed_at = crate::model::now_millis();
        let payload = crate::identity::SignedFields::of_registration(
            &self.network,
            name.as_str(),
            id.as_str(),
            &reg,
            signed_at,
        )
        .payload();
        let reg = Registration {
            signature: Some(key.sign(&payload)),
            signed_at: Some(signed_at),
            ..reg
        };
        Ok((name, id, reg))
    }
}

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

/// Channel subscribers of a client, by channel: (subscription id, its queue).
type Subscribers = HashMap<ChannelName, Vec<(u64, mpsc::Sender<ChannelMessage>)>>;

/// Messages a channel subscriber can fall behind by before it misses new ones.
const SUBSCRIBER_BUFFER: usize = 1024;

/// Events a watcher can fall behind by before its watch is ended.
const WATCHER_BUFFER: usize = 4096;

/// Most service names discovery keeps subscribed for its cache; beyond, it asks the registry
/// each time. Below the registry's default per-session watch limit.
const MAX_CACHED_SERVICES: usize = 512;

/// One service as the client knows it.
#[derive(Default)]
struct CachedService {
    instances: BTreeMap<InstanceId, Arc<Instance>>,
    /// The registry's snapshot has arrived: `instances` can answer discovery.
    ready: bool,
    subscribers: Vec<(u64, mpsc::Sender<WatchEvent>)>,
    /// Callers waiting for the first snapshot.
    waiters: Vec<oneshot::Sender<Result<()>>>,
    /// A `watch` for this name is sent or queued and not yet refused.
    requested: bool,
}

impl CachedService {
    fn notify(&mut self, event: WatchEvent) {
        self.subscribers.retain(|(_, tx)| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping one event would leave this watcher with a wrong view for good;
                // ending its stream tells it so (it sees `None` once it has drained).
                tracing::warn!(service = %event.instance.name, "a watcher fell {WATCHER_BUFFER} events behind; its watch is ended");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Replaces the instances with a registry snapshot, telling watchers what differs.
    fn apply_snapshot(&mut self, instances: Vec<Arc<Instance>>) {
        let fresh: BTreeMap<_, _> = instances.into_iter().map(|i| (i.id.clone(), i)).collect();
        let old = std::mem::take(&mut self.instances);
        for (id, inst) in &old {
            if !fresh.contains_key(id) {
                self.notify(WatchEvent {
                    kind: EventKind::Down,
                    instance: inst.clone(),
                });
            }
        }
        for (id, inst) in &fresh {
            match old.get(id) {
                None => self.notify(WatchEvent {
                    kind: EventKind::Up,
                    instance: inst.clone(),
                }),
                Some(prev) if prev.differs_from(inst) => self.notify(WatchEvent {
                    kind: EventKind::Changed,
                    instance: inst.clone(),
                }),
                Some(_) => {}
            }
        }
        self.instances = fresh;
        self.ready = true;
        for w in self.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }

    fn apply_event(&mut self, event: WatchEvent) {
        match event.kind {
            EventKind::Down => {
                self.instances.remove(&event.instance.id);
            }
            EventKind::Up | EventKind::Changed => {
                self.instances
                    .insert(event.instance.id.clone(), event.instance.clone());
            }
        }
        self.notify(event);
    }
}

/// A request the actor sends for an API call.
#[derive(Debug, Clone)]
enum Request {
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

enum Command {
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
    /// What this node registered, re-sent on every reconnection.
    registered: Mutex<Option<(ServiceName, InstanceId, Registration)>>,
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

    fn registered(&self) -> Option<(ServiceName, InstanceId, Registration)> {
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_registered(&self, r: Option<(ServiceName, InstanceId, Registration)>) {
        *self.registered.lock().unwrap_or_else(|e| e.into_inner()) = r;
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
        self.inner
            .set_registered(Some((name.clone(), instance_id.clone(), reg.clone())));
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
                if !matches!(e, Error::Timeout(_) | Error::Unreachable(_)) {
                    self.inner.set_registered(None);
                }
                Err(e)
            }
        }
    }

    /// Removes this node's registration (it stays connected and can still discover).
    pub async fn deregister(&self) -> Result<()> {
        let Some((name, instance_id, _)) = self.inner.registered() else {
            return Ok(());
        };
        self.inner.set_registered(None);
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
struct Actor {
    inner: Arc<Inner>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    /// Calls to (re)send once a session is up.
    queued: VecDeque<(Request, oneshot::Sender<Result<ResultData>>)>,
    next_id: u64,
    /// Index into the registry list of the next node to try.
    cursor: usize,
}

impl Actor {
    fn new(inner: Arc<Inner>, cmd_rx: mpsc::UnboundedReceiver<Command>) -> Actor {
        Actor {
            inner,
            cmd_rx,
            queued: VecDeque::new(),
            next_id: 0,
            cursor: 0,
        }
    }

    async fn run(mut self) {
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
        let deadline = tokio::time::Instant::now() + pause;
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

    /// Tries each registry node once, starting after the last one used.
    async fn connect_round(&mut self) -> Result<Connection> {
        let nodes = self.inner.registries();
        if nodes.is_empty() {
            return Err(Error::Unreachable("no registry nodes configured".into()));
        }
        let mut errors = Vec::new();
        let mut refusal = None;
        for k in 0..nodes.len() {
            let idx = (self.cursor + k) % nodes.len();
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
        if let Some((name, instance_id, reg)) = self.inner.registered() {
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
        let mut tick = tokio::time::interval(welcome.ping_interval.max(Duration::from_millis(50)));
        let mut last_seen = Instant::now();
        loop {
            tokio::select! {
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
                frame = stream.next() => {
                    last_seen = Instant::now();
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
                _ = tick.tick() => {
                    if last_seen.elapsed() > silence_limit {
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
        if let Some((name, instance_id, _)) = self.inner.registered() {
            self.inner.set_registered(None);
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
                Some(Pending::Call { reply_tx, .. }) => {
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
                    None => tracing::debug!(error = %e, "registry error"),
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
            | ServerMessage::Welcome { .. } => {}
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

    #[test]
    fn metadata_describes_the_instance_and_keeps_extra_keys() {
        let key = NodeKey::generate().unwrap();
        let mut o = NetgetOptions::service(
            "DatabaseService",
            "http://127.0.0.1:5432",
            &["http://127.0.0.1:7700"],
        );
        o.metadata.insert("description".into(), "db".into());
        o.metadata.insert("tags".into(), serde_json::json!(["v1"]));
        let (name, id, reg) = o.registration(&key).unwrap();
        assert_eq!(name.as_str(), "DatabaseService");
        assert_eq!(reg.tags, vec!["v1".to_string()]);
        assert_eq!(reg.metadata.get("description").unwrap(), "db");
        let (_, id2, _) = o.registration(&key).unwrap();
        assert_eq!(id, id2, "the same key gives the same id");
        o.metadata.remove("name");
        assert_eq!(
            o.registration(&key).unwrap_err().code(),
            "NETGET_INVALID_INPUT"
        );
    }
}
