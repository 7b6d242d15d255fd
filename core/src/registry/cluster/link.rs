//! The owner's side of a replication link: what this registry streams to a peer registry that
//! follows it — a snapshot of the instances it owns, in chunks, then every change of them,
//! coalesced over a few milliseconds and numbered with its revision; the name claims it holds
//! (all of them, then each new one); and the channel messages published on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::super::directory::{OwnedChange, Owner};
use super::super::ops::PeerCaller;
use super::super::outbox::{Outbox, TryRefused};
use super::super::session::{close, stopping, text, Stream};
use super::super::state::RegistryState;
use crate::model::{EventKind, InstanceKey};
use crate::wire::{
    Liveness, ReplicaChange, ReplicaClaim, ReplicaOrigin, ServerMessage, SnapshotPart,
};

/// At most one delta frame per this window: a change that comes while the link is idle goes out
/// at once; changes that come within the window after a frame are gathered and go out together
/// when it ends, one instance changed several times in it sent once, as it ended up. So an idle
/// cluster pays one hop, and a busy one at most this much more, for far fewer frames.
const COALESCE: Duration = Duration::from_millis(2);

/// Instances per snapshot frame (a few hundred KB).
const CHUNK: usize = 512;

/// Changes per delta frame at most.
const MAX_BATCH: usize = 4096;

/// Streams to `peer` until it leaves, goes silent, or this registry stops. Returns the close
/// code and reason.
pub(crate) async fn serve_link(
    state: &Arc<RegistryState>,
    peer: &PeerCaller,
    out: &Outbox,
    stream: &mut Stream,
) -> (u16, String) {
    tracing::info!(peer = %peer.registry, "replication link opened");
    let mut relay = state.links.relay.subscribe();
    let mut claims = state.links.claims.subscribe();
    let Some(mut changes) = send_snapshot(state, out).await else {
        return gone();
    };
    if !send_claims(state, out).await {
        return gone();
    }
    let (timeout, ping_every) = (state.config.session_timeout, state.config.ping_interval);
    let mut liveness = Liveness::new(timeout.saturating_sub(ping_every), ping_every);
    let mut ping = liveness.checks();
    let mut shutdown = state.shutdown_rx.clone();
    // When the last delta frame went out.
    let mut last_sent: Option<Instant> = None;
    loop {
        tokio::select! {
            first = changes.recv() => {
                let batch = match first {
                    Ok(first) => gather(first, &mut changes, last_sent).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(peer = %peer.registry, missed, "replication link lagged; sending a snapshot");
                        None
                    }
                    Err(broadcast::error::RecvError::Closed) => return gone(),
                };
                let sent = match batch {
                    Some(batch) => {
                        last_sent = Some(Instant::now());
                        send_changes(state, out, batch).await
                    }
                    None => match send_snapshot(state, out).await {
                        Some(fresh) => {
                            changes = fresh;
                            true
                        }
                        None => false,
                    },
                };
                if !sent {
                    return gone();
                }
            }
            claimed = claims.recv() => {
                let sent = match claimed {
                    Ok(c) => out.send(text(&ServerMessage::Claims { claims: vec![c] })).await.is_ok(),
                    // Fell behind: all of them again (merging is idempotent).
                    Err(broadcast::error::RecvError::Lagged(_)) => send_claims(state, out).await,
                    Err(broadcast::error::RecvError::Closed) => false,
                };
                if !sent {
                    return gone();
                }
            }
            relayed = relay.recv() => match relayed {
                Ok(r) => {
                    let frame = ServerMessage::Relay { network: r.network.clone(), message: (*r.message).clone() };
                    if out.send(text(&frame)).await.is_err() {
                        return gone();
                    }
                    state.metrics.replication_frame("sent", "relay");
                }
                // At most once: a link that fell behind loses the oldest messages.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return gone(),
            },
            frame = stream.next() => match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    return (close::NORMAL, "the peer closed its replication link".into());
                }
                Some(Ok(_)) => liveness.heard(),
            },
            due = ping.tick() => {
                if liveness.is_gone(due) {
                    return (close::TIMEOUT, format!("no frame for {timeout:?}; link timed out"));
                }
                if let Err(TryRefused::Closed) = out.try_send(Message::Ping(Default::default())) {
                    return gone();
                }
            }
            _ = stopping(&mut shutdown) => {
                return (close::GOING_AWAY, "registry shutting down".into());
            }
        }
    }
}

fn gone() -> (u16, String) {
    (
        close::GOING_AWAY,
        "the replication link's writer is gone".into(),
    )
}

/// `first` and whatever else is queued — after waiting out the [`COALESCE`] window of the last
/// frame, if it is still open —, one change per instance (its last), in order. `None` when the
/// feed lagged meanwhile: only a snapshot can catch up then.
async fn gather(
    first: OwnedChange,
    changes: &mut broadcast::Receiver<OwnedChange>,
    last_sent: Option<Instant>,
) -> Option<Vec<OwnedChange>> {
    if let Some(at) = last_sent {
        tokio::time::sleep_until(at + COALESCE).await;
    }
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match changes.try_recv() {
            Ok(c) => batch.push(c),
            Err(broadcast::error::TryRecvError::Lagged(_)) => return None,
            Err(_) => break,
        }
    }
    let mut last: HashMap<InstanceKey, usize> = HashMap::with_capacity(batch.len());
    for (i, c) in batch.iter().enumerate() {
        last.insert(c.instance.key(), i);
    }
    let kept = batch
        .into_iter()
        .enumerate()
        .filter(|(i, c)| last.get(&c.instance.key()) == Some(i))
        .map(|(_, c)| c)
        .collect();
    Some(kept)
}

/// Sends one delta frame; `false` when the link is gone.
async fn send_changes(state: &RegistryState, out: &Outbox, batch: Vec<OwnedChange>) -> bool {
    let Some(revision) = batch.iter().map(|c| c.revision).max() else {
        return true;
    };
    #[cfg(feature = "testsuite")]
    {
        use std::sync::atomic::Ordering;
        let drop =
            state
                .links
                .drop_frames
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if drop.is_ok() {
            return true;
        }
    }
    let frame = ServerMessage::Replica {
        epoch: state.epoch,
        revision,
        snapshot: None,
        changes: batch.iter().map(wire_change).collect(),
    };
    state.metrics.replication_frame("sent", "delta");
    out.send(text(&frame)).await.is_ok()
}

/// Sends every owned instance in chunks and returns the changes after them; `None` when the
/// link is gone.
async fn send_snapshot(
    state: &RegistryState,
    out: &Outbox,
) -> Option<broadcast::Receiver<OwnedChange>> {
    let snapshot = state.directory.owned_snapshot();
    let chunks: Vec<&[(Arc<crate::model::Instance>, Owner)]> = if snapshot.instances.is_empty() {
        vec![&[]]
    } else {
        snapshot.instances.chunks(CHUNK).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let frame = ServerMessage::Replica {
            epoch: state.epoch,
            revision: snapshot.revision,
            snapshot: Some(if i == last {
                SnapshotPart::End
            } else {
                SnapshotPart::Part
            }),
            changes: chunk
                .iter()
                .map(|(instance, owner)| ReplicaChange::Put {
                    instance: instance.clone(),
                    origin: origin(owner),
                })
                .collect(),
        };
        out.send(text(&frame)).await.ok()?;
    }
    state.metrics.replication_frame("sent", "snapshot");
    Some(snapshot.changes)
}

/// Sends every name claim held here; `false` when the link is gone.
async fn send_claims(state: &RegistryState, out: &Outbox) -> bool {
    let claims: Vec<ReplicaClaim> = state
        .guard
        .claims()
        .into_iter()
        .map(|(network, service, c)| ReplicaClaim {
            network,
            service,
            public_key: c.key,
            at: c.at,
        })
        .collect();
    if claims.is_empty() {
        return true;
    }
    out.send(text(&ServerMessage::Claims { claims }))
        .await
        .is_ok()
}

fn wire_change(c: &OwnedChange) -> ReplicaChange {
    match c.kind {
        EventKind::Down => ReplicaChange::Remove {
            network: c.instance.network.clone(),
            name: c.instance.name.clone(),
            id: c.instance.id.clone(),
        },
        EventKind::Up | EventKind::Changed => ReplicaChange::Put {
            instance: c.instance.clone(),
            origin: origin(&c.owner),
        },
    }
}

/// How this registry holds an instance, as peers learn it.
fn origin(owner: &Owner) -> ReplicaOrigin {
    match owner {
        Owner::Session { key, .. } => ReplicaOrigin::Session {
            public_key: key.clone(),
        },
        Owner::Rest { ttl, token } => ReplicaOrigin::Rest {
            ttl_ms: ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            token: token.clone(),
        },
        // Never owned here; described as its owner holds it.
        Owner::Peer { origin: o, .. } => origin(o),
    }
}
