//! The client's discovery cache: each watched service as this node knows it, kept current by the
//! registry's snapshots and events, and fanned out to the node's own watchers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::Result;
use crate::model::{ChannelMessage, ChannelName, EventKind, Instance, InstanceId, WatchEvent};

/// Channel subscribers of a client, by channel: (subscription id, its queue).
pub(super) type Subscribers = HashMap<ChannelName, Vec<(u64, mpsc::Sender<ChannelMessage>)>>;

/// Messages a channel subscriber can fall behind by before it misses new ones.
pub(super) const SUBSCRIBER_BUFFER: usize = 1024;

/// Events a watcher can fall behind by before its watch is ended.
pub(super) const WATCHER_BUFFER: usize = 4096;

/// Most service names discovery keeps subscribed for its cache; beyond, it asks the registry
/// each time. Below the registry's default per-session watch limit.
pub(super) const MAX_CACHED_SERVICES: usize = 512;

/// One service as the client knows it.
#[derive(Default)]
pub(super) struct CachedService {
    pub(super) instances: BTreeMap<InstanceId, Arc<Instance>>,
    /// The registry's snapshot has arrived: `instances` can answer discovery.
    pub(super) ready: bool,
    pub(super) subscribers: Vec<(u64, mpsc::Sender<WatchEvent>)>,
    /// Callers waiting for the first snapshot.
    pub(super) waiters: Vec<oneshot::Sender<Result<()>>>,
    /// A `watch` for this name is sent or queued and not yet refused.
    pub(super) requested: bool,
}

impl CachedService {
    pub(super) fn notify(&mut self, event: WatchEvent) {
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
    pub(super) fn apply_snapshot(&mut self, instances: Vec<Arc<Instance>>) {
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

    pub(super) fn apply_event(&mut self, event: WatchEvent) {
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
