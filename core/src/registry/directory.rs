//! The in-memory directory: every instance of every service of every network, and the watch
//! channels that push its changes.
//!
//! Layout: network → service → instance id. A lookup by name touches one map per level and never
//! scans other services; tag filters scan only the instances of the one service asked for.
//! Each service has a broadcast channel of [`WatchEvent`]s, so pushing one change to a thousand
//! watchers is one send, and a slow watcher only hurts itself (it lags and gets a fresh snapshot).
//!
//! The directory holds nouns and pushes changes; it knows no socket and no wire format. What a
//! reader derives from it — an event's frame, a cached discovery answer — is kept beside the
//! change or the service as a [`Memo`] of whatever type that reader uses, so it is derived once
//! and shared by every watcher and query, until the next change.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::model::{
    CheckRecord, Discovery, EventKind, Instance, InstanceId, NetworkName, ServiceName,
    ServiceSummary, Status, WatchEvent,
};

/// How many events a watch channel buffers before a slow watcher is told it lagged (and gets a
/// snapshot instead). Small on purpose: the buffer is allocated whole per watched service.
const WATCH_BUFFER: usize = 128;

/// Who may change or remove an instance, and what keeps it alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Registered over a WebSocket session: lives while that session lives. `key` is the node's
    /// public key, so the same node reconnecting (same key) may take its instance back.
    Session { session: u64, key: Arc<str> },
    /// Registered over HTTP: lives until it expires unless renewed by a heartbeat. `token` is a
    /// digest of the bearer token used (if any): only the same token may change or remove it.
    Rest {
        /// `None`: lives by its active health check instead.
        ttl: Option<Duration>,
        token: Option<Arc<str>>,
    },
}

/// One instance and who owns it.
#[derive(Debug, Clone)]
struct Entry {
    instance: Arc<Instance>,
    owner: Owner,
    /// REST registrations' clock; `None` for session registrations, which is why it is boxed:
    /// the entries of 100k session instances stay 32 bytes smaller each.
    timer: Option<Box<Timer>>,
}

/// When a REST registration expires, and when the expiry heap will look at it.
#[derive(Debug, Clone, Copy, Default)]
struct Timer {
    /// When it expires unless renewed.
    expires: Option<Instant>,
    /// The deadline this entry has in the expiry heap. Heartbeats only move `expires`; when the
    /// scheduled deadline pops and `expires` is later, it is rescheduled once. So the heap holds
    /// about one item per REST registration, however often they are renewed.
    scheduled: Option<Instant>,
}

impl Timer {
    fn boxed(self) -> Option<Box<Timer>> {
        (self.expires.is_some() || self.scheduled.is_some()).then(|| Box::new(self))
    }
}

impl Entry {
    fn timer(&self) -> Timer {
        self.timer.as_deref().copied().unwrap_or_default()
    }

    fn set_timer(&mut self, change: impl FnOnce(&mut Timer)) {
        let mut t = self.timer();
        change(&mut t);
        self.timer = t.boxed();
    }
}

/// Every change of one network, for watchers of the whole network (dashboards). Always
/// allocated (networks are few); sent to only while someone listens.
type NetworkFeed = broadcast::Sender<Change>;

/// Changes a whole-network watcher may fall behind by before it gets a fresh snapshot.
const NETWORK_FEED_BUFFER: usize = 4096;

/// The instances of one service plus its watch channel.
#[derive(Debug, Default)]
struct Service {
    /// Ordered by id so discovery answers are stable. Changed only through
    /// [`Service::changing`], which drops the cached answer.
    instances: BTreeMap<InstanceId, Entry>,
    /// What a reader derived from the answer to the common discovery query (healthy instances,
    /// no tag filter) — the encoded answer —, built by the first query after a change and served
    /// as is until the next: most discoveries of a service between two of its changes then cost
    /// a lookup and a copy.
    answer: std::sync::OnceLock<Memo>,
    /// Changes with every change of `instances` (unique across services, including services
    /// removed and made again), so an answer encoded outside the lock is kept only if nothing
    /// changed meanwhile.
    generation: u64,
    /// Created on the first watch and dropped when the last watcher leaves: a broadcast
    /// channel preallocates its whole buffer, which a registry with 100k unwatched services
    /// cannot afford.
    events_tx: Option<broadcast::Sender<Change>>,
    /// The network's feed, shared by its services.
    feed: Option<NetworkFeed>,
}

impl Service {
    /// The instances a discovery query asks for, in id order.
    fn matching(&self, healthy_only: bool, tags: &[String]) -> Vec<Arc<Instance>> {
        self.instances
            .values()
            .filter(|e| !healthy_only || e.instance.status.is_healthy())
            .filter(|e| e.instance.has_tags(tags))
            .map(|e| e.instance.clone())
            .collect()
    }

    /// The instances, for a change: the cached answer is dropped first.
    fn changing(&mut self) -> &mut BTreeMap<InstanceId, Entry> {
        self.answer = std::sync::OnceLock::new();
        self.generation = next_generation();
        &mut self.instances
    }

    fn publish(&mut self, kind: EventKind, instance: Arc<Instance>) {
        let network_listens = self.feed.as_ref().is_some_and(|f| f.receiver_count() > 0);
        if self.events_tx.is_none() && !network_listens {
            return;
        }
        let change = Change {
            event: Arc::new(WatchEvent { kind, instance }),
            at: Instant::now(),
            memo: Arc::default(),
        };
        if network_listens {
            if let Some(f) = &self.feed {
                let _ = f.send(change.clone());
            }
        }
        if let Some(tx) = &self.events_tx {
            if tx.send(change).is_err() {
                // Every watcher has gone: free the buffer.
                self.events_tx = None;
            }
        }
    }

    fn subscribe(&mut self) -> WatchReceiver {
        match &self.events_tx {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(WATCH_BUFFER);
                self.events_tx = Some(tx);
                rx
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.instances.is_empty()
            && self
                .events_tx
                .as_ref()
                .is_none_or(|tx| tx.receiver_count() == 0)
    }
}

/// Told about an instance removed on its own (see `Directory::on_rest_removed`).
type RemovalHook = Box<dyn Fn(&Instance) + Send + Sync>;

/// The receiving end of one service's watch channel.
pub type WatchReceiver = broadcast::Receiver<Change>;

/// What one reader derived from one state of the directory (say, an encoding), kept so that
/// every other reader of the same state shares it. Its type is the reader's business: the
/// directory stores it without knowing what it is.
pub type Memo = Arc<dyn Any + Send + Sync>;

/// The memo of type `T` in `slot`, derived and kept on first use. Two first users at once may
/// both derive it (both results are the same; one is kept). A slot that holds another type (two
/// readers with different encodings) is derived afresh each time: correct, only not shared.
fn memoized<T: Clone + Send + Sync + 'static>(
    slot: &std::sync::OnceLock<Memo>,
    derive: impl FnOnce() -> T,
) -> T {
    if let Some(t) = slot.get().and_then(|m| m.downcast_ref::<T>()) {
        return t.clone();
    }
    let t = derive();
    let _ = slot.set(Arc::new(t.clone()));
    t
}

/// A change as watch channels carry it: the event, and when the directory made it (so the push
/// latency to each watcher can be measured).
#[derive(Debug, Clone)]
pub struct Change {
    /// What changed.
    pub event: Arc<WatchEvent>,
    /// When.
    pub at: Instant,
    /// What the first watcher to send the event derived from it (its frame), shared by the
    /// others: with 1,000 watchers, one encoding instead of 1,000.
    memo: Arc<std::sync::OnceLock<Memo>>,
}

impl Change {
    /// `encode(event)`, computed by the first caller and shared by every later one (every
    /// watcher of the service and of its network gets the same change).
    pub fn encoded<T: Clone + Send + Sync + 'static>(
        &self,
        encode: impl FnOnce(&Arc<WatchEvent>) -> T,
    ) -> T {
        memoized(&self.memo, || encode(&self.event))
    }
}

/// A fresh value for `Service::generation`.
fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Where an instance lives: its network, service and id.
pub type InstanceKey = (NetworkName, ServiceName, InstanceId);

/// The directory of one registry. Cheap to share (`Arc<Directory>`); every method is sync and
/// holds its lock only for map work, never across an await, so a std `RwLock` is the right lock.
pub struct Directory {
    networks: RwLock<HashMap<NetworkName, HashMap<ServiceName, Service>>>,
    /// REST expiry deadlines; stale entries (renewed since) are skipped when popped.
    expiry: Mutex<BinaryHeap<Reverse<(Instant, InstanceKey)>>>,
    /// Id of the registry that owns what is registered here.
    registry_id: Arc<str>,
    /// Told about REST registrations that go away on their own (expired, evicted), so the
    /// store can forget them. Called under the directory's lock: it must only queue work.
    rest_removed: std::sync::OnceLock<RemovalHook>,
    /// One feed per network, for whole-network watchers.
    feeds: HashMap<NetworkName, NetworkFeed>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("registry_id", &self.registry_id)
            .finish_non_exhaustive()
    }
}

/// The outcome of a registration: the stored instance and whether it was new.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The instance as stored.
    pub instance: Arc<Instance>,
    /// `true` for a new instance, `false` for an update of an existing one.
    pub created: bool,
}

impl Directory {
    /// An empty directory serving the given networks.
    pub fn new(registry_id: &str, networks: &[NetworkName]) -> Directory {
        let map = networks
            .iter()
            .map(|n| (n.clone(), HashMap::new()))
            .collect();
        Directory {
            networks: RwLock::new(map),
            expiry: Mutex::new(BinaryHeap::new()),
            registry_id: Arc::from(registry_id),
            rest_removed: std::sync::OnceLock::new(),
            feeds: networks
                .iter()
                .map(|n| (n.clone(), broadcast::channel(NETWORK_FEED_BUFFER).0))
                .collect(),
        }
    }

    fn new_service(&self, network: &NetworkName) -> Service {
        Service {
            feed: self.feeds.get(network).cloned(),
            generation: next_generation(),
            ..Service::default()
        }
    }

    /// Subscribes to every change of a network and returns all its instances, under one lock.
    pub fn watch_network(
        &self,
        network: &NetworkName,
    ) -> Result<(Vec<Arc<Instance>>, WatchReceiver)> {
        let nets = self.read();
        let services = nets
            .get(network)
            .ok_or_else(|| Error::unknown_network(network.as_str()))?;
        let feed = self
            .feeds
            .get(network)
            .ok_or_else(|| Error::unknown_network(network.as_str()))?;
        // Subscribing under the read lock: every change takes the write lock, so none falls
        // between the snapshot and the stream.
        let rx = feed.subscribe();
        let snapshot = services
            .values()
            .flat_map(|s| s.instances.values().map(|e| e.instance.clone()))
            .collect();
        Ok((snapshot, rx))
    }

    /// Sets the hook told about REST registrations that expire or are evicted (once).
    pub fn on_rest_removed(&self, hook: impl Fn(&Instance) + Send + Sync + 'static) {
        let _ = self.rest_removed.set(Box::new(hook));
    }

    /// Removes an instance on the directory's own account (its session ended, its TTL ran out):
    /// watchers see it go down and the store forgets a REST registration. Whether it was there.
    fn drop_instance(&self, service: &mut Service, id: &InstanceId) -> bool {
        match service.changing().remove(id) {
            Some(old) => {
                self.rest_gone(&old);
                service.publish(EventKind::Down, old.instance);
                true
            }
            None => false,
        }
    }

    fn rest_gone(&self, entry: &Entry) {
        if let (Owner::Rest { .. }, Some(hook)) = (&entry.owner, self.rest_removed.get()) {
            hook(&entry.instance);
        }
    }

    /// The id stamped on instances registered here.
    pub fn registry_id(&self) -> &str {
        &self.registry_id
    }

    /// Networks this directory serves, sorted.
    pub fn networks(&self) -> Vec<NetworkName> {
        let mut v: Vec<_> = self.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Fails with `NETGET_UNKNOWN_NETWORK` unless the network is served here.
    pub fn check_network(&self, network: &NetworkName) -> Result<()> {
        if self.read().contains_key(network) {
            Ok(())
        } else {
            Err(Error::unknown_network(network.as_str()))
        }
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<NetworkName, HashMap<ServiceName, Service>>> {
        // A poisoned lock means a panic mid-update elsewhere; the maps are still structurally
        // sound (every update is a single insert/remove), so keep serving.
        self.networks.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<NetworkName, HashMap<ServiceName, Service>>> {
        self.networks.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers or updates an instance. An existing instance may only be replaced by its owner:
    /// the same session or the same node key (a reconnecting node), or any REST caller for a
    /// REST registration (token ownership arrives with network policies).
    pub fn register(&self, mut instance: Instance, owner: Owner) -> Result<Registered> {
        let expires = match &owner {
            Owner::Rest { ttl, .. } => ttl.map(|t| Instant::now() + t),
            Owner::Session { .. } => None,
        };
        // Instances share their network's, service's and registry's names with the maps that
        // hold them rather than carrying copies: 100k instances, 3 allocations fewer each.
        if let Some((network, _)) = self.feeds.get_key_value(&instance.network) {
            instance.network = network.clone();
        }
        if instance.registry == self.registry_id {
            instance.registry = self.registry_id.clone();
        }
        let mut nets = self.write();
        let services = nets
            .get_mut(&instance.network)
            .ok_or_else(|| Error::unknown_network(instance.network.as_str()))?;
        let service = match services.entry(instance.name.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => {
                instance.name = o.key().clone();
                o.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(self.new_service(&instance.network))
            }
        };
        let key = (
            instance.network.clone(),
            instance.name.clone(),
            instance.id.clone(),
        );
        let mut scheduled = None;
        let created = match service.instances.get(&key.2) {
            Some(old) => {
                check_owner(&old.owner, &owner, &key)?;
                // Keep the first registration time across updates and reconnects.
                instance.registered_at = old.instance.registered_at;
                scheduled = old.timer().scheduled;
                false
            }
            None => true,
        };
        // Schedule only when nothing earlier is scheduled already (see `Entry::scheduled`).
        let push = match (expires, scheduled) {
            (Some(e), Some(s)) if s <= e => None,
            (Some(e), _) => {
                scheduled = Some(e);
                Some(e)
            }
            (None, _) => {
                scheduled = None;
                None
            }
        };
        let instance = Arc::new(instance);
        let previous = service.changing().insert(
            key.2.clone(),
            Entry {
                instance: instance.clone(),
                owner,
                timer: Timer { expires, scheduled }.boxed(),
            },
        );
        match previous {
            None => service.publish(EventKind::Up, instance.clone()),
            Some(old) if old.instance.differs_from(&instance) => {
                service.publish(EventKind::Changed, instance.clone())
            }
            Some(_) => {}
        }
        drop(nets);
        if let Some(deadline) = push {
            self.lock_expiry().push(Reverse((deadline, key)));
        }
        Ok(Registered { instance, created })
    }

    fn lock_expiry(
        &self,
    ) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<(Instant, InstanceKey)>>> {
        self.expiry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes an instance on behalf of `by`; fails if it does not exist or `by` does not own it.
    pub fn deregister(&self, key: &InstanceKey, by: &Owner) -> Result<Arc<Instance>> {
        let mut nets = self.write();
        let services = nets
            .get_mut(&key.0)
            .ok_or_else(|| Error::unknown_network(key.0.as_str()))?;
        let not_found = || {
            Error::NotFound(format!(
                "no instance {:?} of service {:?} in network {:?}",
                key.2.as_str(),
                key.1.as_str(),
                key.0.as_str()
            ))
        };
        let service = services.get_mut(&key.1).ok_or_else(not_found)?;
        let entry = service.instances.get(&key.2).ok_or_else(not_found)?;
        check_owner(&entry.owner, by, key)?;
        let removed = service.changing().remove(&key.2).ok_or_else(not_found)?;
        service.publish(EventKind::Down, removed.instance.clone());
        if service.is_idle() {
            services.remove(&key.1);
        }
        Ok(removed.instance)
    }

    /// Removes the given instances if `session` still owns them (a node that reconnected
    /// elsewhere and took its instance back keeps it). Returns how many were removed.
    pub fn remove_session(&self, session: u64, keys: &[InstanceKey]) -> usize {
        self.remove_where(
            keys.iter(),
            |e| matches!(e.owner, Owner::Session { session: s, .. } if s == session),
        )
    }

    /// Removes each listed instance for which `doomed` holds, telling watchers, and drops
    /// services left idle. One write lock for the whole batch.
    fn remove_where<'k>(
        &self,
        keys: impl Iterator<Item = &'k InstanceKey>,
        doomed: impl Fn(&Entry) -> bool,
    ) -> usize {
        let mut nets = self.write();
        let mut removed = 0;
        for key in keys {
            let Some(services) = nets.get_mut(&key.0) else {
                continue;
            };
            let Some(service) = services.get_mut(&key.1) else {
                continue;
            };
            if service.instances.get(&key.2).is_some_and(&doomed)
                && self.drop_instance(service, &key.2)
            {
                removed += 1;
            }
            if service.is_idle() {
                services.remove(&key.1);
            }
        }
        removed
    }

    /// Renews a REST registration's TTL on behalf of `by`.
    pub fn heartbeat(&self, key: &InstanceKey, by: &Owner) -> Result<Arc<Instance>> {
        let mut nets = self.write();
        let services = nets
            .get_mut(&key.0)
            .ok_or_else(|| Error::unknown_network(key.0.as_str()))?;
        let entry = services
            .get_mut(&key.1)
            .and_then(|s| s.changing().get_mut(&key.2))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no instance {:?} of service {:?} in network {:?}; register it again",
                    key.2.as_str(),
                    key.1.as_str(),
                    key.0.as_str()
                ))
            })?;
        let Owner::Rest { ttl, token } = &entry.owner else {
            return Err(Error::InvalidInput(
                "this instance lives by its WebSocket session; heartbeats are for REST registrations"
                    .into(),
            ));
        };
        if let Owner::Rest {
            token: by_token, ..
        } = by
        {
            if by_token != token {
                return Err(Error::Forbidden(
                    "only the token that registered this instance may renew it".into(),
                ));
            }
        }
        let now = Instant::now();
        let Some(ttl) = ttl else {
            // No TTL: it lives by its health check; a heartbeat changes nothing.
            return Ok(entry.instance.clone());
        };
        let deadline = now + *ttl;
        entry.set_timer(|t| t.expires = Some(deadline));
        if entry.instance.status == Status::Critical && entry.instance.health.is_none() {
            // A heartbeat after a missed TTL: alive again. (With an active check, the check
            // decides the status.)
            let mut changed = (*entry.instance).clone();
            changed.status = Status::Passing;
            changed.last_check = Some(Box::new(CheckRecord {
                output: "heartbeat received".into(),
                at: crate::model::now_millis(),
            }));
            entry.instance = Arc::new(changed);
            let inst = entry.instance.clone();
            // Its scheduled removal is now too early; `expire` reschedules a deadline that is
            // later than the scheduled one, so nothing else to do.
            if let Some(service) = nets.get_mut(&key.0).and_then(|s| s.get_mut(&key.1)) {
                service.publish(EventKind::Changed, inst.clone());
            }
            return Ok(inst);
        }
        Ok(entry.instance.clone())
    }

    /// Removes REST registrations whose TTL has run out; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let mut due = Vec::new();
        {
            let mut heap = self.lock_expiry();
            while let Some(Reverse((deadline, _))) = heap.peek() {
                if *deadline > now {
                    break;
                }
                if let Some(Reverse((deadline, key))) = heap.pop() {
                    due.push((deadline, key));
                }
            }
        }
        if due.is_empty() {
            return 0;
        }
        let mut nets = self.write();
        let mut removed = 0;
        let mut reschedule = Vec::new();
        for (deadline, key) in due {
            let Some(services) = nets.get_mut(&key.0) else {
                continue;
            };
            let Some(service) = services.get_mut(&key.1) else {
                continue;
            };
            let Some(entry) = service.changing().get_mut(&key.2) else {
                continue;
            };
            if entry.timer().scheduled != Some(deadline) {
                continue; // a stale item: the entry was replaced and rescheduled since
            }
            let (Some(expires), Owner::Rest { ttl: Some(ttl), .. }) =
                (entry.timer().expires, &entry.owner)
            else {
                continue;
            };
            // A missed TTL first makes the instance critical (watchers see it); it is removed
            // only after `deregisterCriticalAfter` (default: one more TTL) without a heartbeat.
            let grace = entry
                .instance
                .health
                .as_ref()
                .and_then(|h| h.deregister_critical_after)
                .map(|d| d.0)
                .unwrap_or(*ttl);
            let remove_at = expires + grace;
            if expires > now {
                entry.set_timer(|t| t.scheduled = Some(expires));
                reschedule.push(Reverse((expires, key)));
            } else if remove_at > now {
                let turned_critical = (entry.instance.status != Status::Critical).then(|| {
                    let mut changed = (*entry.instance).clone();
                    changed.status = Status::Critical;
                    changed.last_check = Some(Box::new(CheckRecord {
                        output: format!("TTL expired: no heartbeat for {ttl:?}"),
                        at: crate::model::now_millis(),
                    }));
                    entry.instance = Arc::new(changed);
                    entry.instance.clone()
                });
                entry.set_timer(|t| t.scheduled = Some(remove_at));
                reschedule.push(Reverse((remove_at, key)));
                if let Some(inst) = turned_critical {
                    service.publish(EventKind::Changed, inst);
                }
            } else {
                if self.drop_instance(service, &key.2) {
                    removed += 1;
                }
                if service.is_idle() {
                    services.remove(&key.1);
                }
            }
        }
        drop(nets);
        if !reschedule.is_empty() {
            self.lock_expiry().extend(reschedule);
        }
        if removed > 0 {
            tracing::debug!(removed, "REST registrations expired");
        }
        removed
    }

    /// How many deadlines the expiry heap holds (for tests and metrics).
    pub fn scheduled_expiries(&self) -> usize {
        self.lock_expiry().len()
    }

    /// Drops empty services nobody watches any more.
    pub fn sweep(&self) {
        let mut nets = self.write();
        for services in nets.values_mut() {
            services.retain(|_, s| !s.is_idle());
        }
    }

    /// Instances of one service, filtered. Unknown services answer an empty list, as Consul does.
    pub fn discover(
        &self,
        network: &NetworkName,
        name: &ServiceName,
        healthy_only: bool,
        tags: &[String],
    ) -> Result<Discovery> {
        let nets = self.read();
        let services = nets
            .get(network)
            .ok_or_else(|| Error::unknown_network(network.as_str()))?;
        let instances = services
            .get(name)
            .map(|s| s.matching(healthy_only, tags))
            .unwrap_or_default();
        Ok(Discovery {
            name: name.clone(),
            network: network.clone(),
            instances,
        })
    }

    /// `derive` of the common discovery answer (healthy instances, no tag filter), computed at
    /// most once per change of the service and shared by every query until the next change.
    /// Unknown services answer an empty list (derived each time: nothing to keep it with).
    pub fn discover_memoized<T: Clone + Send + Sync + 'static>(
        &self,
        network: &NetworkName,
        name: &ServiceName,
        derive: impl Fn(&Discovery) -> T,
    ) -> Result<T> {
        let (instances, generation) = {
            let nets = self.read();
            let services = nets
                .get(network)
                .ok_or_else(|| Error::unknown_network(network.as_str()))?;
            match services.get(name) {
                Some(service) => {
                    if let Some(t) = service.answer.get().and_then(|m| m.downcast_ref::<T>()) {
                        return Ok(t.clone());
                    }
                    (service.matching(true, &[]), Some(service.generation))
                }
                None => (Vec::new(), None),
            }
        };
        // Derived without the lock: a large service must not hold up every registration.
        let answer = derive(&Discovery {
            name: name.clone(),
            network: network.clone(),
            instances,
        });
        if let Some(generation) = generation {
            let nets = self.read();
            if let Some(service) = nets.get(network).and_then(|s| s.get(name)) {
                if service.generation == generation {
                    let _ = service.answer.set(Arc::new(answer.clone()));
                }
            }
        }
        Ok(answer)
    }

    /// Subscribes to changes of one service and returns the current instances with the
    /// receiver, taken under one lock so no change falls between the snapshot and the stream.
    pub fn watch(
        &self,
        network: &NetworkName,
        name: &ServiceName,
    ) -> Result<(Vec<Arc<Instance>>, WatchReceiver)> {
        let mut nets = self.write();
        let services = nets
            .get_mut(network)
            .ok_or_else(|| Error::unknown_network(network.as_str()))?;
        let service = services
            .entry(name.clone())
            .or_insert_with(|| self.new_service(network));
        let rx = service.subscribe();
        let snapshot = service
            .instances
            .values()
            .map(|e| e.instance.clone())
            .collect();
        Ok((snapshot, rx))
    }

    /// Service names of a network with their instance counts, sorted by name.
    pub fn services(&self, network: &NetworkName) -> Result<Vec<ServiceSummary>> {
        let nets = self.read();
        let services = nets
            .get(network)
            .ok_or_else(|| Error::unknown_network(network.as_str()))?;
        let mut out: Vec<_> = services
            .iter()
            .filter(|(_, s)| !s.instances.is_empty())
            .map(|(name, s)| {
                let count = |st: Status| {
                    s.instances
                        .values()
                        .filter(|e| e.instance.status == st)
                        .count()
                };
                let (passing, warning, critical) = (
                    count(Status::Passing),
                    count(Status::Warning),
                    count(Status::Critical),
                );
                ServiceSummary {
                    name: name.clone(),
                    instances: s.instances.len(),
                    healthy: passing + warning,
                    passing,
                    warning,
                    critical,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Records a health check's result: the instance's `lastCheck` always, its status when it
    /// differs (pushing `changed` to watchers). Returns the status before.
    pub fn record_check(
        &self,
        key: &InstanceKey,
        status: Status,
        output: String,
    ) -> Result<Status> {
        let mut nets = self.write();
        let service = nets
            .get_mut(&key.0)
            .and_then(|s| s.get_mut(&key.1))
            .ok_or_else(|| Error::NotFound(format!("no service {:?}", key.1.as_str())))?;
        let entry = service
            .changing()
            .get_mut(&key.2)
            .ok_or_else(|| Error::NotFound(format!("no instance {:?}", key.2.as_str())))?;
        let before = entry.instance.status;
        let mut changed = (*entry.instance).clone();
        changed.status = status;
        changed.last_check = Some(Box::new(CheckRecord {
            output,
            at: crate::model::now_millis(),
        }));
        entry.instance = Arc::new(changed);
        let inst = entry.instance.clone();
        if before != status {
            service.publish(EventKind::Changed, inst);
        }
        Ok(before)
    }

    /// Removes an instance whatever its owner (a health check that stayed critical too long),
    /// telling watchers.
    pub fn evict(&self, key: &InstanceKey) -> bool {
        self.remove_where(std::iter::once(key), |_| true) == 1
    }

    /// Instances per network and status.
    pub fn status_counts(&self) -> Vec<(NetworkName, [usize; 3])> {
        let nets = self.read();
        let mut v: Vec<_> = nets
            .iter()
            .map(|(n, services)| {
                let mut c = [0usize; 3];
                for e in services.values().flat_map(|s| s.instances.values()) {
                    c[match e.instance.status {
                        Status::Passing => 0,
                        Status::Warning => 1,
                        Status::Critical => 2,
                    }] += 1;
                }
                (n.clone(), c)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The current instance at `key`, if any.
    pub fn get(&self, key: &InstanceKey) -> Option<Arc<Instance>> {
        self.read()
            .get(&key.0)?
            .get(&key.1)?
            .instances
            .get(&key.2)
            .map(|e| e.instance.clone())
    }

    /// Total instances per network.
    pub fn counts(&self) -> Vec<(NetworkName, usize)> {
        let nets = self.read();
        let mut v: Vec<_> = nets
            .iter()
            .map(|(n, s)| (n.clone(), s.values().map(|s| s.instances.len()).sum()))
            .collect();
        v.sort();
        v
    }
}

fn check_owner(current: &Owner, by: &Owner, key: &InstanceKey) -> Result<()> {
    let allowed = match (current, by) {
        (Owner::Session { key: a, .. }, Owner::Session { key: b, .. }) => a == b,
        (Owner::Rest { token: a, .. }, Owner::Rest { token: b, .. }) => a == b,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "instance {:?} of service {:?} is owned by another {}; only its owner may change or remove it",
            key.2.as_str(),
            key.1.as_str(),
            match current {
                Owner::Session { .. } => "node (WebSocket session with a different key)",
                Owner::Rest { .. } => "REST registration",
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Registration;

    fn net(s: &str) -> NetworkName {
        NetworkName::new(s).unwrap()
    }

    fn inst(network: &str, name: &str, id: &str, tags: &[&str]) -> Instance {
        Instance::from_registration(
            net(network),
            ServiceName::new(name).unwrap(),
            InstanceId::new(id).unwrap(),
            Registration {
                address: format!("http://127.0.0.1/{id}"),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
            "r1",
        )
    }

    fn rest() -> Owner {
        Owner::Rest {
            ttl: Some(Duration::from_secs(30)),
            token: None,
        }
    }

    fn dir() -> Directory {
        Directory::new("r1", &[net("development"), net("production")])
    }

    #[test]
    fn the_cached_discovery_answer_follows_every_change_of_the_service() {
        let d = dir();
        let dev = net("development");
        let web = ServiceName::new("web").unwrap();
        let answer = |d: &Directory| -> Discovery {
            d.discover_memoized(&dev, &web, Discovery::clone).unwrap()
        };
        let ids = |a: &Discovery| -> Vec<String> {
            a.instances.iter().map(|i| i.id.to_string()).collect()
        };
        assert!(answer(&d).instances.is_empty());
        d.register(inst("development", "web", "a", &[]), rest())
            .unwrap();
        assert_eq!(ids(&answer(&d)), ["a"]);
        d.register(inst("development", "web", "b", &[]), rest())
            .unwrap();
        assert_eq!(ids(&answer(&d)), ["a", "b"], "a new instance shows");
        // A check result that leaves the status as it was still changes `lastCheck`.
        let key_a = (dev.clone(), web.clone(), InstanceId::new("a").unwrap());
        d.record_check(&key_a, Status::Passing, "HTTP 200".into())
            .unwrap();
        let a = answer(&d);
        let last = a.instances[0].last_check.as_ref().map(|c| c.output.clone());
        assert_eq!(last.as_deref(), Some("HTTP 200"));
        d.record_check(&key_a, Status::Critical, "HTTP 500".into())
            .unwrap();
        assert_eq!(
            ids(&answer(&d)),
            ["b"],
            "a critical instance leaves healthy answers"
        );
        assert_eq!(
            d.discover(&dev, &web, false, &[]).unwrap().instances.len(),
            2
        );
        d.deregister(
            &(dev.clone(), web.clone(), InstanceId::new("b").unwrap()),
            &rest(),
        )
        .unwrap();
        assert!(answer(&d).instances.is_empty(), "a removed instance goes");
        let all = d.discover(&dev, &web, false, &[]).unwrap();
        assert_eq!(ids(&all), ["a"]);
    }

    #[test]
    fn discovery_filters_by_tag_and_stays_within_the_service() {
        let d = dir();
        d.register(inst("development", "web", "a", &["v1"]), rest())
            .unwrap();
        d.register(inst("development", "web", "b", &["v2"]), rest())
            .unwrap();
        d.register(inst("development", "db", "c", &["v1"]), rest())
            .unwrap();
        let web = ServiceName::new("web").unwrap();
        let got = d
            .discover(&net("development"), &web, true, &["v1".into()])
            .unwrap();
        assert_eq!(got.instances.len(), 1);
        assert_eq!(got.instances[0].id.as_str(), "a");
        assert_eq!(
            d.discover(&net("development"), &web, true, &[])
                .unwrap()
                .instances
                .len(),
            2
        );
    }

    #[test]
    fn networks_are_isolated() {
        let d = dir();
        d.register(inst("development", "web", "a", &[]), rest())
            .unwrap();
        let web = ServiceName::new("web").unwrap();
        assert!(d
            .discover(&net("production"), &web, false, &[])
            .unwrap()
            .instances
            .is_empty());
        let key = (
            net("production"),
            web.clone(),
            InstanceId::new("a").unwrap(),
        );
        assert_eq!(
            d.deregister(&key, &rest()).unwrap_err().code(),
            "NETGET_NOT_FOUND"
        );
        assert_eq!(
            d.discover(&net("development"), &web, false, &[])
                .unwrap()
                .instances
                .len(),
            1
        );
        assert_eq!(
            d.discover(&net("staging"), &web, false, &[])
                .unwrap_err()
                .code(),
            "NETGET_UNKNOWN_NETWORK"
        );
    }

    #[test]
    fn watchers_see_up_changed_down() {
        let d = dir();
        let web = ServiceName::new("web").unwrap();
        let (snap, mut rx) = d.watch(&net("development"), &web).unwrap();
        assert!(snap.is_empty());
        d.register(inst("development", "web", "a", &[]), rest())
            .unwrap();
        d.register(inst("development", "web", "a", &["v2"]), rest())
            .unwrap();
        d.register(inst("development", "web", "a", &["v2"]), rest())
            .unwrap(); // no change, no event
        let key = (net("development"), web, InstanceId::new("a").unwrap());
        d.deregister(&key, &rest()).unwrap();
        let kinds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.event.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![EventKind::Up, EventKind::Changed, EventKind::Down]
        );
    }

    #[test]
    fn a_session_instance_cannot_be_taken_by_another_key_but_can_by_its_own() {
        let d = dir();
        let s1 = Owner::Session {
            session: 1,
            key: Arc::from("k1"),
        };
        let s2 = Owner::Session {
            session: 2,
            key: Arc::from("k2"),
        };
        let s3 = Owner::Session {
            session: 3,
            key: Arc::from("k1"),
        };
        d.register(inst("development", "web", "a", &[]), s1)
            .unwrap();
        assert_eq!(
            d.register(inst("development", "web", "a", &[]), s2)
                .unwrap_err()
                .code(),
            "NETGET_FORBIDDEN"
        );
        d.register(inst("development", "web", "a", &[]), s3)
            .unwrap();
        // The old session closing does not remove what the reconnected node now owns.
        let key = (
            net("development"),
            ServiceName::new("web").unwrap(),
            InstanceId::new("a").unwrap(),
        );
        assert_eq!(d.remove_session(1, std::slice::from_ref(&key)), 0);
        assert_eq!(d.remove_session(3, &[key]), 1);
    }

    #[test]
    fn rest_registrations_turn_critical_then_expire_unless_renewed() {
        let d = dir();
        let t0 = Instant::now();
        let ttl = Owner::Rest {
            ttl: Some(Duration::from_millis(100)),
            token: None,
        };
        d.register(inst("development", "web", "a", &[]), ttl.clone())
            .unwrap();
        d.register(inst("development", "web", "b", &[]), ttl)
            .unwrap();
        let web = ServiceName::new("web").unwrap();
        let key_b = (
            net("development"),
            web.clone(),
            InstanceId::new("b").unwrap(),
        );
        std::thread::sleep(Duration::from_millis(60));
        d.heartbeat(&key_b, &rest()).unwrap();
        let status = |id: &str| {
            d.get(&(
                net("development"),
                web.clone(),
                InstanceId::new(id).unwrap(),
            ))
            .map(|i| i.status)
        };
        // a missed its TTL: critical (not returned as healthy), not yet removed.
        assert_eq!(d.expire(t0 + Duration::from_millis(130)), 0);
        assert_eq!(status("a"), Some(Status::Critical));
        assert_eq!(status("b"), Some(Status::Passing));
        assert!(d
            .get(&(
                net("development"),
                web.clone(),
                InstanceId::new("a").unwrap()
            ))
            .unwrap()
            .last_check
            .clone()
            .unwrap()
            .output
            .contains("TTL expired"));
        // One more TTL without a heartbeat: removed.
        assert_eq!(d.expire(t0 + Duration::from_millis(230)), 1);
        assert_eq!(status("a"), None);
        assert_eq!(status("b"), Some(Status::Critical));
        // A heartbeat brings a critical instance back.
        d.heartbeat(&key_b, &rest()).unwrap();
        assert_eq!(status("b"), Some(Status::Passing));
    }

    #[test]
    fn heartbeats_do_not_grow_the_expiry_heap() {
        let d = dir();
        let owner = Owner::Rest {
            ttl: Some(Duration::from_secs(3600)),
            token: None,
        };
        d.register(inst("development", "web", "a", &[]), owner.clone())
            .unwrap();
        let key = (
            net("development"),
            ServiceName::new("web").unwrap(),
            InstanceId::new("a").unwrap(),
        );
        for _ in 0..10_000 {
            d.heartbeat(&key, &owner).unwrap();
            d.register(inst("development", "web", "a", &[]), owner.clone())
                .unwrap();
        }
        assert_eq!(d.scheduled_expiries(), 1);
    }

    #[test]
    fn a_renewed_registration_survives_its_first_deadline_and_expires_later() {
        let d = dir();
        let owner = Owner::Rest {
            ttl: Some(Duration::from_millis(100)),
            token: None,
        };
        d.register(inst("development", "web", "a", &[]), owner.clone())
            .unwrap();
        let key = (
            net("development"),
            ServiceName::new("web").unwrap(),
            InstanceId::new("a").unwrap(),
        );
        std::thread::sleep(Duration::from_millis(50));
        d.heartbeat(&key, &owner).unwrap();
        let renewed = Instant::now();
        assert_eq!(
            d.expire(renewed + Duration::from_millis(60)),
            0,
            "renewed: rescheduled"
        );
        assert_eq!(d.get(&key).unwrap().status, Status::Passing);
        assert_eq!(d.expire(renewed + Duration::from_millis(150)), 0);
        assert_eq!(d.get(&key).unwrap().status, Status::Critical);
        assert_eq!(d.expire(renewed + Duration::from_millis(300)), 1);
    }
}
