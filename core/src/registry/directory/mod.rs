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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

mod owned;
mod service;

use tokio::time::Instant;

pub use super::owner::Owner;
pub use crate::model::InstanceKey;
use owned::OwnedFeed;
pub use owned::{OwnedChange, OwnedSnapshot};
use service::{memo, next_generation, Entry, NetworkFeed, RemovalHook, Service, Timer};
pub use service::{Change, Memo, WatchReceiver};

use crate::error::{Error, Result};
use crate::model::{
    CheckRecord, Discovery, EventKind, Instance, InstanceId, NetworkName, ServiceName,
    ServiceSummary, Status,
};

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
    feeds: HashMap<NetworkName, Arc<NetworkFeed>>,
    /// The numbered changes of the instances this registry owns, for the cluster.
    owned: Arc<OwnedFeed>,
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
                .map(|n| (n.clone(), NetworkFeed::new()))
                .collect(),
            owned: Arc::default(),
        }
    }

    fn new_service(&self, network: &NetworkName) -> Service {
        Service {
            feed: self.feeds.get(network).cloned(),
            owned: Some(self.owned.clone()),
            generation: next_generation(),
            ..Service::default()
        }
    }

    /// Every instance of a network, by service and id.
    pub fn instances_of(&self, network: &NetworkName) -> Result<Vec<Arc<Instance>>> {
        let nets = self.read();
        let services = nets
            .get(network)
            .ok_or_else(|| Error::unknown_network(network.as_str()))?;
        Ok(services
            .values()
            .flat_map(|s| s.instances.values().map(|e| e.instance.clone()))
            .collect())
    }

    /// The network's revision, to wait on: one more with every change of its instances.
    pub fn revision(&self, network: &NetworkName) -> Result<tokio::sync::watch::Receiver<u64>> {
        self.feeds
            .get(network)
            .map(|f| f.revision.subscribe())
            .ok_or_else(|| Error::unknown_network(network.as_str()))
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
        let rx = feed.changes.subscribe();
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
                service.publish(EventKind::Down, old.instance, &old.owner);
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

    /// Registers or updates an instance. An existing instance may only be replaced by its owner
    /// (see [`Owner::may_be_changed_by`]).
    pub fn register(&self, instance: Instance, owner: Owner) -> Result<Registered> {
        self.put(instance, owner, true)
    }

    /// Makes `owner` the owner of an instance whoever owned it: the cluster's rules for a dead
    /// registry's REST registrations (adopted by one survivor) and for two registries that both
    /// hold one (the lower-ranked yields), which `ops` decides.
    pub fn take_over(&self, instance: Instance, owner: Owner) -> Result<Registered> {
        self.put(instance, owner, false)
    }

    /// The current instance at `key` and its owner, if any.
    pub fn owned_by(&self, key: &InstanceKey) -> Option<(Arc<Instance>, Owner)> {
        self.read()
            .get(&key.0)?
            .get(&key.1)?
            .instances
            .get(&key.2)
            .map(|e| (e.instance.clone(), e.owner.clone()))
    }

    /// The replicas of `registry`'s instances held here, with how their owner holds them.
    pub fn replicas_of(&self, registry: &str) -> Vec<(Arc<Instance>, Owner)> {
        let nets = self.read();
        nets.values()
            .flat_map(|services| services.values())
            .flat_map(|s| s.instances.values())
            .filter_map(|e| match &e.owner {
                Owner::Peer {
                    registry: r,
                    origin,
                } if &**r == registry => Some((e.instance.clone(), (**origin).clone())),
                _ => None,
            })
            .collect()
    }

    fn put(&self, mut instance: Instance, owner: Owner, check: bool) -> Result<Registered> {
        let expires = match &owner {
            Owner::Rest { ttl, .. } => ttl.map(|t| Instant::now() + t),
            // A replica's lifetime is its owner's business.
            Owner::Session { .. } | Owner::Peer { .. } => None,
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
        let key = instance.key();
        let mut scheduled = None;
        let created = match service.instances.get(&key.2) {
            Some(old) => {
                if check {
                    old.owner.may_be_changed_by(&owner, &key)?;
                }
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
                owner: owner.clone(),
                timer: Timer { expires, scheduled }.boxed(),
            },
        );
        match &previous {
            None => service.publish(EventKind::Up, instance.clone(), &owner),
            Some(old) if old.instance.differs_from(&instance) => {
                service.publish(EventKind::Changed, instance.clone(), &owner)
            }
            // Taken over from a peer with nothing else changed: peers still learn the new owner.
            Some(old) if old.owner.peer() != owner.peer() => {
                service.publish(EventKind::Changed, instance.clone(), &owner)
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
        entry.owner.may_be_changed_by(by, key)?;
        let removed = service.changing().remove(&key.2).ok_or_else(not_found)?;
        service.publish(EventKind::Down, removed.instance.clone(), &removed.owner);
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
        let (ttl, token) = match &entry.owner {
            Owner::Rest { ttl, token } => (ttl, token),
            Owner::Session { .. } => {
                return Err(Error::InvalidInput(
                    "this instance lives by its WebSocket session; heartbeats are for REST registrations"
                        .into(),
                ))
            }
            Owner::Peer { registry, .. } => {
                return Err(Error::Forbidden(format!(
                    "this instance is registered at registry {registry:?} of this cluster; send its heartbeats there"
                )))
            }
        };
        match by {
            Owner::Rest {
                token: by_token, ..
            } if by_token != token => {
                return Err(Error::Forbidden(
                    "only the token that registered this instance may renew it".into(),
                ))
            }
            Owner::Rest { .. } => {}
            // Anyone else is held to the hand-over rule (which refuses them).
            Owner::Session { .. } | Owner::Peer { .. } => entry.owner.may_be_changed_by(by, key)?,
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
            let owner = entry.owner.clone();
            // Its scheduled removal is now too early; `expire` reschedules a deadline that is
            // later than the scheduled one, so nothing else to do.
            if let Some(service) = nets.get_mut(&key.0).and_then(|s| s.get_mut(&key.1)) {
                service.publish(EventKind::Changed, inst.clone(), &owner);
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
                let owner = entry.owner.clone();
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
                    service.publish(EventKind::Changed, inst, &owner);
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
                    if let Some(t) = memo(&service.answer) {
                        return Ok(t);
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
            .filter(|e| e.owner.peer().is_none())
            .ok_or_else(|| {
                Error::NotFound(format!("no instance {:?} owned here", key.2.as_str()))
            })?;
        let before = entry.instance.status;
        let mut changed = (*entry.instance).clone();
        changed.status = status;
        changed.last_check = Some(Box::new(CheckRecord {
            output,
            at: crate::model::now_millis(),
        }));
        entry.instance = Arc::new(changed);
        let inst = entry.instance.clone();
        let owner = entry.owner.clone();
        if before != status {
            service.publish(EventKind::Changed, inst, &owner);
        }
        Ok(before)
    }

    /// Removes an instance this registry owns whatever its owner here (a health check that
    /// stayed critical too long), telling watchers. A replica is left to its registry.
    pub fn evict(&self, key: &InstanceKey) -> bool {
        self.remove_where(std::iter::once(key), |e| e.owner.peer().is_none()) == 1
    }

    /// Removes the instances of a service that this registry owns and that `key` registered (a
    /// name claim it lost), telling watchers; returns them with their owners.
    pub fn evict_of_key(
        &self,
        network: &NetworkName,
        service: &ServiceName,
        key: &str,
    ) -> Vec<(Arc<Instance>, Owner)> {
        let of_key =
            |e: &Entry| e.owner.peer().is_none() && e.instance.public_key.as_deref() == Some(key);
        let doomed: Vec<(Arc<Instance>, Owner)> = {
            let nets = self.read();
            let Some(s) = nets.get(network).and_then(|n| n.get(service)) else {
                return Vec::new();
            };
            s.instances
                .values()
                .filter(|e| of_key(e))
                .map(|e| (e.instance.clone(), e.owner.clone()))
                .collect()
        };
        let keys: Vec<InstanceKey> = doomed.iter().map(|(i, _)| i.key()).collect();
        // Checked again under the write lock.
        self.remove_where(keys.iter(), of_key);
        doomed
    }

    /// Removes the listed replicas of `registry`'s that it still owns, telling watchers.
    /// Returns how many went (one taken over meanwhile stays).
    pub fn remove_replicas(&self, registry: &str, keys: &[InstanceKey]) -> usize {
        self.remove_where(keys.iter(), |e| {
            e.owner.peer().is_some_and(|r| &**r == registry)
        })
    }

    /// Every instance this registry owns as of now, and the numbered changes from then on.
    pub fn owned_snapshot(&self) -> OwnedSnapshot {
        let nets = self.read();
        // Under the read lock: every change takes the write lock, so none falls between.
        let changes = self.owned.subscribe();
        let revision = self.owned.revision();
        let instances = nets
            .values()
            .flat_map(|services| services.values())
            .flat_map(|s| s.instances.values())
            .filter(|e| e.owner.peer().is_none())
            .map(|e| (e.instance.clone(), e.owner.clone()))
            .collect();
        OwnedSnapshot {
            revision,
            instances,
            changes,
        }
    }

    /// This registry's revision: how many changes of its own instances it has made.
    pub fn owned_revision(&self) -> u64 {
        self.owned.revision()
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

#[cfg(test)]
mod tests;
