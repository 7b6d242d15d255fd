//! What the directory keeps per service and per instance: the entries with their owners and
//! expiry clocks, the service's watch channel, and the memos readers derive from its state.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

use tokio::sync::broadcast;

use super::owned::OwnedFeed;
use super::Owner;
use crate::model::{EventKind, Instance, InstanceId, WatchEvent};

/// How many events a watch channel buffers before a slow watcher is told it lagged (and gets a
/// snapshot instead). Small on purpose: the buffer is allocated whole per watched service.
pub(super) const WATCH_BUFFER: usize = 128;

/// One instance and who owns it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) instance: Arc<Instance>,
    pub(super) owner: Owner,
    /// REST registrations' clock; `None` for session registrations, which is why it is boxed:
    /// the entries of 100k session instances stay 32 bytes smaller each.
    pub(super) timer: Option<Box<Timer>>,
}

/// When a REST registration expires, and when the expiry heap will look at it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Timer {
    /// When it expires unless renewed.
    pub(super) expires: Option<Instant>,
    /// The deadline this entry has in the expiry heap. Heartbeats only move `expires`; when the
    /// scheduled deadline pops and `expires` is later, it is rescheduled once. So the heap holds
    /// about one item per REST registration, however often they are renewed.
    pub(super) scheduled: Option<Instant>,
}

impl Timer {
    pub(super) fn boxed(self) -> Option<Box<Timer>> {
        (self.expires.is_some() || self.scheduled.is_some()).then(|| Box::new(self))
    }
}

impl Entry {
    pub(super) fn timer(&self) -> Timer {
        self.timer.as_deref().copied().unwrap_or_default()
    }

    pub(super) fn set_timer(&mut self, change: impl FnOnce(&mut Timer)) {
        let mut t = self.timer();
        change(&mut t);
        self.timer = t.boxed();
    }
}

/// Every change of one network, for watchers of the whole network (dashboards). Always
/// allocated (networks are few); sent to only while someone listens.
/// A network's changes, shared by its services: the broadcast whole-network watchers read, and
/// the network's revision (a count of its changes, from 1), which blocking queries wait on.
#[derive(Debug)]
pub(super) struct NetworkFeed {
    pub(super) changes: broadcast::Sender<Change>,
    pub(super) revision: tokio::sync::watch::Sender<u64>,
}

impl NetworkFeed {
    pub(super) fn new() -> Arc<NetworkFeed> {
        Arc::new(NetworkFeed {
            changes: broadcast::channel(NETWORK_FEED_BUFFER).0,
            revision: tokio::sync::watch::Sender::new(1),
        })
    }
}

/// Changes a whole-network watcher may fall behind by before it gets a fresh snapshot.
pub(super) const NETWORK_FEED_BUFFER: usize = 4096;

/// The instances of one service plus its watch channel.
#[derive(Debug, Default)]
pub(super) struct Service {
    /// Ordered by id so discovery answers are stable. Changed only through
    /// [`Service::changing`], which drops the cached answer.
    pub(super) instances: BTreeMap<InstanceId, Entry>,
    /// What a reader derived from the answer to the common discovery query (healthy instances,
    /// no tag filter) — the encoded answer —, built by the first query after a change and served
    /// as is until the next: most discoveries of a service between two of its changes then cost
    /// a lookup and a copy.
    pub(super) answer: std::sync::OnceLock<Memo>,
    /// Changes with every change of `instances` (unique across services, including services
    /// removed and made again), so an answer encoded outside the lock is kept only if nothing
    /// changed meanwhile.
    pub(super) generation: u64,
    /// Created on the first watch and dropped when the last watcher leaves: a broadcast
    /// channel preallocates its whole buffer, which a registry with 100k unwatched services
    /// cannot afford.
    pub(super) events_tx: Option<broadcast::Sender<Change>>,
    /// The network's feed, shared by its services.
    pub(super) feed: Option<Arc<NetworkFeed>>,
    /// The registry's feed of owned changes, shared by every service.
    pub(super) owned: Option<Arc<OwnedFeed>>,
}

impl Service {
    /// The instances a discovery query asks for, in id order.
    pub(super) fn matching(&self, healthy_only: bool, tags: &[String]) -> Vec<Arc<Instance>> {
        self.instances
            .values()
            .filter(|e| !healthy_only || e.instance.status.is_healthy())
            .filter(|e| e.instance.has_tags(tags))
            .map(|e| e.instance.clone())
            .collect()
    }

    /// The instances, for a change: the cached answer is dropped first.
    pub(super) fn changing(&mut self) -> &mut BTreeMap<InstanceId, Entry> {
        self.answer = std::sync::OnceLock::new();
        self.generation = next_generation();
        &mut self.instances
    }

    /// Tells watchers of a change made by `owner`'s instance, and numbers it for the cluster
    /// when this registry owns the instance.
    pub(super) fn publish(&mut self, kind: EventKind, instance: Arc<Instance>, owner: &Owner) {
        if owner.peer().is_none() {
            if let Some(owned) = &self.owned {
                owned.record(kind, &instance, owner);
            }
        }
        if let Some(f) = &self.feed {
            f.revision.send_modify(|r| *r += 1);
        }
        let network_listens = self
            .feed
            .as_ref()
            .is_some_and(|f| f.changes.receiver_count() > 0);
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
                let _ = f.changes.send(change.clone());
            }
        }
        if let Some(tx) = &self.events_tx {
            if tx.send(change).is_err() {
                // Every watcher has gone: free the buffer.
                self.events_tx = None;
            }
        }
    }

    pub(super) fn subscribe(&mut self) -> WatchReceiver {
        match &self.events_tx {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(WATCH_BUFFER);
                self.events_tx = Some(tx);
                rx
            }
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.instances.is_empty()
            && self
                .events_tx
                .as_ref()
                .is_none_or(|tx| tx.receiver_count() == 0)
    }
}

/// Told about an instance removed on its own (see `Directory::on_rest_removed`).
pub(super) type RemovalHook = Box<dyn Fn(&Instance) + Send + Sync>;

/// The receiving end of one service's watch channel.
pub type WatchReceiver = broadcast::Receiver<Change>;

/// What one reader derived from one state of the directory (say, an encoding), kept so that
/// every other reader of the same state shares it. Its type is the reader's business: the
/// directory stores it without knowing what it is.
pub type Memo = Arc<dyn Any + Send + Sync>;

/// The memo of type `T` in `slot`, if one is kept.
pub(super) fn memo<T: Clone + 'static>(slot: &std::sync::OnceLock<Memo>) -> Option<T> {
    slot.get().and_then(|m| m.downcast_ref::<T>()).cloned()
}

/// The memo of type `T` in `slot`, derived and kept on first use. Two first users at once may
/// both derive it (both results are the same; one is kept). A slot that holds another type (two
/// readers with different encodings) is derived afresh each time: correct, only not shared.
pub(super) fn memoized<T: Clone + Send + Sync + 'static>(
    slot: &std::sync::OnceLock<Memo>,
    derive: impl FnOnce() -> T,
) -> T {
    if let Some(t) = memo(slot) {
        return t;
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
    pub(super) memo: Arc<std::sync::OnceLock<Memo>>,
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
pub(super) fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
