//! The feed of changes to the instances this registry owns, numbered by its revision: what the
//! cluster's replication links stream to peer registries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use super::Owner;
use crate::model::{EventKind, Instance};

/// Changes a replication link may fall behind by before it is sent a fresh snapshot instead.
const OWNED_FEED_BUFFER: usize = 16_384;

/// One change of an instance this registry owns.
#[derive(Debug, Clone)]
pub struct OwnedChange {
    /// This registry's revision once the change was made (one more than the change before).
    pub revision: u64,
    /// `up`, `changed` or `down`.
    pub kind: EventKind,
    /// The instance after the change (before it, for `down`).
    pub instance: Arc<Instance>,
    /// Who owns it here.
    pub owner: Owner,
}

/// The numbered changes of owned instances. Every change is numbered, whether or not a link
/// listens, so a revision seen in gossip says exactly how far this registry has got.
#[derive(Debug)]
pub(super) struct OwnedFeed {
    revision: AtomicU64,
    tx: broadcast::Sender<OwnedChange>,
}

impl Default for OwnedFeed {
    fn default() -> OwnedFeed {
        OwnedFeed {
            revision: AtomicU64::new(0),
            tx: broadcast::channel(OWNED_FEED_BUFFER).0,
        }
    }
}

impl OwnedFeed {
    /// Numbers a change and hands it to the links. Called under the directory's write lock, so
    /// revisions follow the order of the changes.
    pub(super) fn record(&self, kind: EventKind, instance: &Arc<Instance>, owner: &Owner) {
        let revision = self.revision.fetch_add(1, Ordering::Relaxed) + 1;
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(OwnedChange {
                revision,
                kind,
                instance: instance.clone(),
                owner: owner.clone(),
            });
        }
    }

    /// The revision reached so far.
    pub(super) fn revision(&self) -> u64 {
        self.revision.load(Ordering::Relaxed)
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<OwnedChange> {
        self.tx.subscribe()
    }
}

/// Owned instances as of one revision, and the changes after it.
pub struct OwnedSnapshot {
    /// The revision the snapshot shows.
    pub revision: u64,
    /// Every instance this registry owns, with its owner.
    pub instances: Vec<(Arc<Instance>, Owner)>,
    /// Every change after `revision`.
    pub changes: broadcast::Receiver<OwnedChange>,
}
