//! The operations a peer registry's replication link calls: admitting the link, applying what
//! it replicates (instances, name claims, channel messages), and settling a lost peer's instances
//! (sessions' removed, REST registrations adopted by rank); and the owner a REST change of a
//! replica is forwarded to. Step 7 of the pipeline, for what the owning registry already checked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::super::directory::{InstanceKey, Owner};
use super::super::state::RegistryState;
use super::Hello;
use crate::error::{Error, Result};
use crate::identity;
use crate::model::{ChannelMessage, NetworkName};

/// A peer registry's replication link, after its handshake ([`admit_peer`]).
#[derive(Debug, Clone)]
pub(crate) struct PeerCaller {
    /// The peer's registry id (derived from the key it proved).
    pub registry: Arc<str>,
}

/// Admits a peer registry's replication link: this registry is in a cluster, the hello names
/// that cluster (in its `network` field), is signed by the key it presents, and the key is
/// allowed: listed under `[cluster] keys`, or — when none are listed — any key from a loopback
/// address, so a cluster on one machine works without configuration.
pub(crate) fn admit_peer(state: &RegistryState, hello: &Hello<'_>) -> Result<PeerCaller> {
    let cluster = &state.config.cluster;
    if state.cluster.get().is_none() {
        return Err(Error::Forbidden(
            "this registry is not in a cluster, so it takes no replication links; start it with --join or --gossip-listen".into(),
        ));
    }
    if hello.network.as_str() != cluster.name {
        return Err(Error::Forbidden(format!(
            "this registry is in cluster {:?}, not {:?}",
            cluster.name,
            hello.network.as_str()
        )));
    }
    let key = identity::verify_public_key(hello.public_key)?;
    identity::verify(
        hello.public_key,
        &identity::hello_payload(&state.registry_id, hello.network.as_str(), hello.nonce),
        hello.signature,
    )?;
    if cluster.keys.is_empty() {
        if !hello.remote.ip().is_loopback() {
            return Err(Error::Unauthorized(format!(
                "no [cluster] keys are configured, so replication links are taken from loopback addresses only, not {}; list the peer's registry key under [cluster] keys",
                hello.remote.ip()
            )));
        }
    } else if !cluster.keys.iter().any(|k| k == hello.public_key) {
        return Err(Error::Unauthorized(format!(
            "registry key {} is not among this cluster's [cluster] keys",
            hello.public_key
        )));
    }
    let registry = identity::short_id_of(&key);
    if *registry == *state.registry_id {
        return Err(Error::Forbidden(
            "a registry does not replicate with itself".into(),
        ));
    }
    Ok(PeerCaller {
        registry: Arc::from(registry),
    })
}

/// Applies one change a peer replicated of an instance it owns: step 7 only (the owner ran
/// the others), as a replica that runs no TTL or check here. A put over an instance this
/// registry owns is taken when it is the same node's (it moved to the peer), or — for the same
/// REST registration held by both, as after an adoption and the adopted registry's return — when
/// the peer ranks higher for it ([`rank`]); this registry then yields it (forgets its record,
/// and its check ends). Anything else the owner here keeps (`NETGET_FORBIDDEN`).
pub(crate) fn replicate(
    state: &RegistryState,
    peer: &PeerCaller,
    change: crate::wire::ReplicaChange,
) -> Result<()> {
    use crate::wire::{ReplicaChange, ReplicaOrigin};
    match change {
        ReplicaChange::Put { instance, origin } => {
            let origin = match origin {
                ReplicaOrigin::Session { public_key } => Owner::Session {
                    session: 0,
                    key: public_key,
                },
                ReplicaOrigin::Rest { ttl_ms, token } => Owner::Rest {
                    ttl: ttl_ms.map(Duration::from_millis),
                    token,
                },
            };
            let mut instance = Arc::unwrap_or_clone(instance);
            // A peer speaks only for what it owns.
            instance.registry = peer.registry.clone();
            let key = instance.key();
            let yields = match (state.directory.owned_by(&key), &origin) {
                (Some((mine, Owner::Rest { token: a, .. })), Owner::Rest { token: b, .. })
                    if a == *b =>
                {
                    (rank(&peer.registry, &key) > rank(&state.registry_id, &key)).then_some(mine)
                }
                _ => None,
            };
            let owner = Owner::Peer {
                registry: peer.registry.clone(),
                origin: Box::new(origin),
            };
            match yields {
                Some(mine) => {
                    state.directory.take_over(instance, owner)?;
                    state.store.forget_rest(&mine);
                    tracing::info!(service = %key.1, id = %key.2, to = %peer.registry, "a REST registration held here too goes to the registry that ranks higher for it");
                }
                None => {
                    state.directory.register(instance, owner)?;
                }
            }
        }
        ReplicaChange::Remove { network, name, id } => {
            // Only the current owner's removal counts: a node that moved keeps its entry.
            state
                .directory
                .remove_replicas(&peer.registry, &[(network, name, id)]);
        }
    }
    Ok(())
}

/// Removes the replicas of `peer` that its snapshot did not show. Returns how many went.
pub(crate) fn forget_replicas(
    state: &RegistryState,
    peer: &str,
    keep: &HashSet<InstanceKey>,
) -> usize {
    let doomed: Vec<InstanceKey> = state
        .directory
        .replicas_of(peer)
        .into_iter()
        .map(|(i, _)| i.key())
        .filter(|k| !keep.contains(k))
        .collect();
    let removed = state.directory.remove_replicas(peer, &doomed);
    state.metrics.deregistered("peer", removed);
    removed
}

/// The rendezvous rank of `registry` for the instance at `key`: of the registries that could
/// hold it, the one that ranks highest adopts it. Every registry computes the same ranks, so
/// they agree on the adopter without talking.
pub(crate) fn rank(registry: &str, key: &InstanceKey) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [registry, key.0.as_str(), key.1.as_str(), key.2.as_str()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// What becomes of the replicas of a peer whose link stayed down past the grace period, among
/// the `live` registries (this one included): a session's are removed (its node, if alive, has
/// registered elsewhere by now); each REST registration of a peer that gossip holds dead is
/// adopted by the live registry that ranks highest for it, which from then on runs its TTL and
/// check and keeps its record (a live peer keeps its own). This registry adopts the ones it
/// wins; the others' adopters replicate theirs. Returns how many replicas of the peer are left
/// here.
pub(crate) async fn settle_lost_peer(
    state: &RegistryState,
    peer: &str,
    live: &[Arc<str>],
) -> usize {
    let peer_live = live.iter().any(|r| &**r == peer);
    let mut gone = Vec::new();
    let mut left = 0;
    for (instance, origin) in state.directory.replicas_of(peer) {
        let key = instance.key();
        let Owner::Rest { ttl, token } = origin else {
            gone.push(key);
            continue;
        };
        if peer_live {
            left += 1;
            continue;
        }
        let adopter = live
            .iter()
            .filter(|r| &***r != peer)
            .max_by_key(|r| rank(r, &key));
        if adopter.is_none_or(|a| **a != *state.registry_id) {
            left += 1;
            continue;
        }
        let mut adopted = Arc::unwrap_or_clone(instance);
        adopted.registry = state.registry_id.clone();
        let owner = Owner::Rest {
            ttl,
            token: token.clone(),
        };
        let done = match state.directory.take_over(adopted, owner) {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %e, "a lost peer's REST registration was not adopted");
                continue;
            }
        };
        if let Err(e) = state
            .store
            .put_rest(&done.instance, ttl, token.as_deref())
            .await
        {
            tracing::warn!(error = %e, service = %key.1, id = %key.2, "an adopted registration is not on disk");
        }
        state.health.track(&done.instance);
        state.metrics.adopted.inc();
    }
    // The link may have come back meanwhile (its snapshot then decides).
    if state.links.get(peer).lost {
        let removed = state.directory.remove_replicas(peer, &gone);
        state.metrics.deregistered("peer", removed);
    }
    left
}

/// The URL of the live peer that owns the instance at `key`, when it is a replica here: REST
/// changes of it (update, heartbeat, removal) are forwarded there.
pub(crate) async fn owner_elsewhere(state: &RegistryState, key: &InstanceKey) -> Option<String> {
    let (_, owner) = state.directory.owned_by(key)?;
    let registry = owner.peer()?;
    let members = state.cluster_members().await?;
    members
        .into_iter()
        .find(|m| m.live && !m.this && *m.id == **registry)
        .and_then(|m| m.url)
}

/// Merges a name claim a peer took. When it beats the claim held here (it is earlier: two
/// registries took different claims before either heard of the other), it holds here too: the
/// loser's instances of the name that this registry owns are removed, and their sessions told
/// `NETGET_FORBIDDEN`.
pub(crate) async fn replicate_claim(state: &RegistryState, claim: crate::wire::ReplicaClaim) {
    use crate::security::{Claim, Merged};
    let crate::wire::ReplicaClaim {
        network,
        service,
        public_key,
        at,
    } = claim;
    let claim = Claim {
        key: public_key,
        at,
    };
    let merged = state.guard.merge_claim(&network, &service, claim.clone());
    if merged == Merged::Unchanged {
        return;
    }
    if let Err(e) = state.store.put_claim(&network, &service, &claim).await {
        tracing::warn!(error = %e, %network, %service, "a replicated name claim is not on disk");
    }
    let Merged::Replaced { loser } = merged else {
        return;
    };
    let evicted = state.directory.evict_of_key(&network, &service, &loser);
    state.metrics.deregistered("claim", evicted.len());
    let refusal = Error::Forbidden(format!(
        "service name {:?} in network {:?} was claimed earlier by another key at another registry of this cluster; this instance was removed",
        service.as_str(),
        network.as_str()
    ));
    for (instance, owner) in evicted {
        tracing::warn!(%network, %service, id = %instance.id, "an instance lost its name to an earlier claim elsewhere in the cluster");
        if let Owner::Session { session, .. } = owner {
            state.tell_session(session, &crate::wire::ServerMessage::error(None, &refusal));
        }
    }
}

/// Hands a channel message a peer relayed to this registry's own subscribers (and to no other
/// registry: each relays only what was published on it, so nothing loops). How many got it.
pub(crate) fn deliver_relayed(
    state: &RegistryState,
    network: &NetworkName,
    message: ChannelMessage,
) -> usize {
    if state.directory.check_network(network).is_err() {
        return 0;
    }
    state.channels.publish(network, message)
}
