//! What this registry knows of its replication links: for each peer registry, whether its link
//! is up, how far its changes have been applied here, and whether its snapshot is loaded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::model::{ChannelMessage, NetworkName};

/// Channel messages published here, as replication links relay them to peers.
#[derive(Debug, Clone)]
pub(crate) struct Relayed {
    pub(crate) network: NetworkName,
    pub(crate) message: Arc<ChannelMessage>,
}

/// A name claim taken here, as replication links share it.
pub(crate) type Claimed = crate::wire::ReplicaClaim;

/// How long a registry told to join peers waits to hear of one before it reports ready with
/// nothing to load.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Messages a slow link may fall behind by; past that it loses the oldest (channels are
/// at-most-once everywhere).
const RELAY_BUFFER: usize = 1024;

/// One peer's link as this registry follows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Link {
    /// The link is open and its snapshot loaded.
    pub(crate) linked: bool,
    /// The run of the peer the revisions below count in.
    pub(crate) epoch: Option<u64>,
    /// The peer's revision applied here.
    pub(crate) applied: Option<u64>,
    /// Since when the link has been down (`None` while up, or before the first).
    pub(crate) down_since: Option<Instant>,
    /// Times the revision check found a gap and reloaded the peer's snapshot.
    pub(crate) repairs: u64,
    /// The link stayed down past the grace period: the peer's instances are being settled
    /// (sessions' removed, REST registrations adopted).
    pub(crate) lost: bool,
}

/// The links of one registry, by peer registry id.
#[derive(Debug)]
pub(crate) struct Links {
    peers: Mutex<HashMap<Arc<str>, Link>>,
    /// Channel messages published here, for the links to relay.
    pub(crate) relay: broadcast::Sender<Relayed>,
    /// Name claims taken here, for the links to share.
    pub(crate) claims: broadcast::Sender<Claimed>,
    /// When this registry started following its peers, for readiness.
    started: Instant,
    /// Fault injection for tests: the next this many replica frames a link would send are
    /// dropped instead, so the revision check has a gap to find.
    #[cfg(feature = "testsuite")]
    pub(crate) drop_frames: std::sync::atomic::AtomicUsize,
}

impl Default for Links {
    fn default() -> Links {
        Links {
            peers: Mutex::default(),
            relay: broadcast::channel(RELAY_BUFFER).0,
            claims: broadcast::channel(RELAY_BUFFER).0,
            started: Instant::now(),
            #[cfg(feature = "testsuite")]
            drop_frames: Default::default(),
        }
    }
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Link>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes what is known of `peer`'s link.
    pub(crate) fn update(&self, peer: &Arc<str>, change: impl FnOnce(&mut Link)) {
        change(self.lock().entry(peer.clone()).or_default());
    }

    /// What is known of `peer`'s link.
    pub(crate) fn get(&self, peer: &str) -> Link {
        self.lock().get(peer).cloned().unwrap_or_default()
    }

    /// The peers whose links stayed down past the grace period.
    pub(crate) fn lost_peers(&self) -> Vec<Arc<str>> {
        self.lock()
            .iter()
            .filter(|(_, l)| l.lost)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Forgets a peer (it was removed from the cluster and its instances with it).
    pub(crate) fn forget(&self, peer: &str) {
        self.lock().remove(peer);
    }

    /// Whether this registry serves the whole cluster's directory: every live peer's snapshot
    /// is loaded. A registry told to join peers is not ready before it has heard of one, for a
    /// bounded while ([`PATIENCE`]), so that it does not report ready with nothing loaded.
    pub(crate) fn ready(&self, live_peers: &[Arc<str>], joins: bool) -> bool {
        if live_peers.is_empty() {
            return !joins || self.started.elapsed() >= PATIENCE;
        }
        let peers = self.lock();
        live_peers
            .iter()
            .all(|p| peers.get(p).is_some_and(|l| l.linked))
    }
}
