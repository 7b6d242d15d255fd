//! The follower's side of replication: one task per live peer registry keeps a replication link
//! open to it, applies what it streams, checks the revision the peer gossips against what was
//! applied (a gap — a change lost on the way — reloads its snapshot), and, once the link has
//! stayed down past the grace period, marks the peer lost; its instances are then settled
//! (`ops::settle_lost_peer`: sessions' removed, REST registrations adopted by rank).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::ops::{self, PeerCaller};
use super::super::session::stopping;
use super::super::state::RegistryState;
use super::Member;
use crate::client::connection::{decode, Connection, Dial};
use crate::error::Result;
use crate::model::{InstanceKey, NetworkName};
use crate::wire::{Liveness, ReplicaChange, ServerMessage, SnapshotPart};

/// Retry delays for a lost link, doubling between these bounds (with jitter).
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Follows every live peer until the registry stops, and publishes this registry's revision and
/// readiness in gossip.
pub(crate) async fn follow_peers(state: Arc<RegistryState>) {
    let Some(membership) = state.cluster.get() else {
        return;
    };
    let cluster = &state.config.cluster;
    let mut tick = tokio::time::interval(cluster.gossip_interval);
    // A peer gossip finds live is followed at once, not at the next tick.
    let mut live_changed = membership.live_watcher().await;
    let mut shutdown = state.shutdown_rx.clone();
    let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = live_changed.changed() => {}
            _ = stopping(&mut shutdown) => break,
        }
        let members = membership.members().await;
        let mut live_peers = Vec::new();
        for m in members.iter().filter(|m| m.live && !m.this) {
            live_peers.push(Arc::<str>::from(m.id.as_str()));
            if tasks.get(&m.id).is_none_or(|t| t.is_finished()) {
                let task = tokio::spawn(follow(state.clone(), Arc::from(m.id.as_str())));
                tasks.insert(m.id.clone(), task);
            }
        }
        let live: Vec<Arc<str>> = members
            .iter()
            .filter(|m| m.live)
            .map(|m| Arc::from(m.id.as_str()))
            .collect();
        for lost in state.links.lost_peers() {
            let left = ops::settle_lost_peer(&state, &lost, &live).await;
            if left == 0 && !live_peers.contains(&lost) {
                state.links.forget(&lost);
            }
        }
        let ready = state.links.ready(&live_peers, !cluster.join.is_empty());
        membership
            .publish(state.directory.owned_revision(), ready)
            .await;
    }
    for t in tasks.values() {
        t.abort();
    }
    for t in tasks.into_values() {
        let _ = t.await;
    }
}

/// The peer `id` as gossip shows it now.
async fn gossiped(state: &RegistryState, id: &str) -> Option<Member> {
    let members = state.cluster.get()?.members().await;
    members.into_iter().find(|m| m.id == id && !m.this)
}

/// Keeps a link to one peer while it lives; returns once the peer is dead and marked lost
/// (followed again if it comes back).
async fn follow(state: Arc<RegistryState>, id: Arc<str>) {
    let grace = state.config.cluster.grace;
    let caller = PeerCaller {
        registry: id.clone(),
    };
    let mut retry = RETRY_MIN;
    let mut lost = false;
    let mut shutdown = state.shutdown_rx.clone();
    loop {
        let now = gossiped(&state, &id).await;
        let live = now.as_ref().is_some_and(|m| m.live);
        if let Some(url) = now.and_then(|m| m.url).filter(|_| live) {
            match open(&state, &url).await {
                Ok(conn) if *conn.welcome.registry_id == *id => {
                    retry = RETRY_MIN;
                    // Back before its snapshot: nothing of it is settled from now on.
                    lost = false;
                    state.links.update(&id, |l| l.lost = false);
                    let why = run(&state, &caller, conn).await;
                    tracing::info!(peer = %id, why, "replication link closed");
                }
                Ok(conn) => tracing::warn!(
                    peer = %id,
                    url,
                    answered = conn.welcome.registry_id,
                    "another registry answers at this peer's URL; not following it"
                ),
                Err(e) => {
                    tracing::debug!(peer = %id, url, error = %e, "replication link not opened")
                }
            }
        }
        let mut down_since = Instant::now();
        state.links.update(&id, |l| {
            l.linked = false;
            down_since = *l.down_since.get_or_insert(down_since);
        });
        if !lost && down_since.elapsed() >= grace {
            state.links.update(&id, |l| l.lost = true);
            tracing::warn!(peer = %id, ?grace, "replication link down past the grace period: the peer's sessions are removed, its REST registrations adopted");
            lost = true;
        }
        if lost && !live {
            return;
        }
        let pause = retry.mul_f64(0.5 + fastrand::f64());
        retry = (retry * 2).min(RETRY_MAX);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping(&mut shutdown) => return,
        }
    }
}

/// Opens a replication link to the registry at `url`: a `netget/1` session of node type
/// `registry`, in the cluster's name, signed with this registry's key.
async fn open(state: &RegistryState, url: &str) -> Result<Connection> {
    let network = NetworkName::new(&state.config.cluster.name)?;
    let mut dial = Dial::new(network, state.key.clone());
    dial.node_type = "registry";
    dial.timeout = state.config.handshake_timeout.max(Duration::from_secs(2));
    if url.starts_with("https://") || url.starts_with("wss://") {
        dial.tls = Some(crate::tls::client_config(super::peer_ca(&state.config))?);
    }
    Connection::open(url, &dial).await
}

/// Applies what one open link carries until it ends; says why it ended.
async fn run(state: &RegistryState, peer: &PeerCaller, conn: Connection) -> String {
    let id = &peer.registry;
    let mut socket = conn.socket;
    let timeout = state.config.session_timeout;
    let check_every = (state.config.cluster.gossip_interval * 4).max(Duration::from_millis(400));
    let mut check = tokio::time::interval(check_every);
    let mut shutdown = state.shutdown_rx.clone();
    // The keys a snapshot being loaded has shown so far.
    let mut loading: Option<HashSet<InstanceKey>> = None;
    // A revision the peer gossiped at the last check that was not applied yet.
    let mut pending: Option<u64> = None;
    state.links.update(id, |l| l.applied = None);
    // Silence is measured from the last frame, not from the last turn of this loop: the
    // periodic check below must not re-arm it (it did, and a peer cut off by a partition was
    // then followed forever). Checked four times per timeout, so it ends within the timeout.
    let every = timeout / 4;
    let mut liveness = Liveness::new(timeout.saturating_sub(every), every);
    let mut silence = liveness.checks();
    loop {
        tokio::select! {
            biased;
            frame = socket.next() => {
                let frame = match frame {
                    None => return "the peer closed it".into(),
                    Some(Err(e)) => return format!("read error: {e}"),
                    Some(Ok(frame)) => frame,
                };
                liveness.heard();
                match decode(frame) {
                    Ok(Some(ServerMessage::Replica { epoch, revision, snapshot, changes })) => {
                        apply(state, peer, &mut loading, snapshot, changes);
                        state.links.update(id, |l| {
                            l.epoch = Some(epoch);
                            l.applied = Some(revision);
                            if snapshot == Some(SnapshotPart::End) {
                                l.linked = true;
                                l.down_since = None;
                                l.lost = false;
                            }
                        });
                    }
                    Ok(Some(ServerMessage::Claims { claims })) => {
                        for claim in claims {
                            ops::replicate_claim(state, claim).await;
                        }
                    }
                    Ok(Some(ServerMessage::Relay { network, message })) => {
                        state.metrics.replication_frame("received", "relay");
                        ops::deliver_relayed(state, &network, message);
                    }
                    Ok(_) => {}
                    Err(e) => return e.to_string(),
                }
            }
            due = silence.tick() => if liveness.is_gone(due) {
                return format!("no frame for {timeout:?}");
            },
            _ = check.tick() => {
                let link = state.links.get(id);
                let Some(gossip) = gossiped(state, id).await.filter(|m| Some(m.epoch) == link.epoch) else {
                    continue;
                };
                if let (Some(p), Some(applied)) = (pending, link.applied) {
                    if link.linked && applied < p {
                        state.links.update(id, |l| l.repairs += 1);
                        state.metrics.replication_repairs.inc();
                        tracing::warn!(peer = %id, applied, gossiped = p, "a peer's revision is ahead of what its link delivered; reloading its snapshot");
                        return "a revision gap: reloading".into();
                    }
                }
                pending = gossip.revision.filter(|r| link.applied.is_none_or(|a| a < *r));
            }
            _ = stopping(&mut shutdown) => return "this registry is stopping".into(),
        }
    }
}

/// Applies one `replica` frame. The last frame of a snapshot removes what the snapshot did not
/// show.
pub(crate) fn apply(
    state: &RegistryState,
    peer: &PeerCaller,
    loading: &mut Option<HashSet<InstanceKey>>,
    snapshot: Option<SnapshotPart>,
    changes: Vec<ReplicaChange>,
) {
    if snapshot.is_some() && loading.is_none() {
        *loading = Some(HashSet::new());
    }
    for change in changes {
        if let (Some(keys), ReplicaChange::Put { instance, .. }) = (loading.as_mut(), &change) {
            keys.insert(instance.key());
        }
        if let Err(e) = ops::replicate(state, peer, change) {
            tracing::debug!(peer = %peer.registry, error = %e, "a replicated change was not applied");
        }
    }
    match snapshot {
        Some(SnapshotPart::End) => {
            let keep = loading.take().unwrap_or_default();
            let removed = ops::forget_replicas(state, &peer.registry, &keep);
            state.metrics.replication_frame("received", "snapshot");
            tracing::debug!(peer = %peer.registry, instances = keep.len(), removed, "peer snapshot loaded");
        }
        Some(SnapshotPart::Part) => {}
        None => state.metrics.replication_frame("received", "delta"),
    }
}
