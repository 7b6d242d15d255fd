//! The registry's operations — admit, register, deregister, heartbeat, discover, watch, publish,
//! end a session, expire, restore — over its [`RegistryState`]: the one pipeline every front end
//! calls.
//!
//! A front end (HTTP, WebSocket sessions; later DNS, the Consul API) turns its input into a
//! [`Caller`] and a call here, and the result into its own answer; a peer registry's
//! replication link calls the operations of `peers` (replicated changes, claims and channel
//! messages, a lost peer's instances settled). Policy, ownership, the
//! filter, the store, the directory, health checks and metrics happen here, in one order,
//! whoever called; no front end touches the directory or the store for a write.
//!
//! # A registration, step by step
//!
//! Each step may refuse. A registration refused before step 6 leaves nothing behind; one refused
//! at step 7 (the instance belongs to another owner) keeps the name claim step 6 made, as a
//! claim is the key's from its first registration on.
//!
//! 1. **Access**: may this caller write in this network? Over HTTP the network's policy and the
//!    bearer token decide (`NETGET_UNKNOWN_NETWORK`, `NETGET_UNAUTHORIZED`, `NETGET_FORBIDDEN`);
//!    a session was admitted to its one network at its handshake ([`admit`]).
//! 2. **Validity**: names, address, tags, metadata and their sizes (`NETGET_INVALID_INPUT`,
//!    `NETGET_TOO_LARGE`); an instance id derived from the session's key when none is given; the
//!    signature: refused over HTTP, checked against the session's key otherwise, and required
//!    in `keys` networks (`NETGET_UNAUTHORIZED`).
//! 3. **Lifetime**: a REST registration lives by its TTL (the default unless it gives one, or
//!    none when it declares a health check instead; 0 is refused); a session's lives with it.
//! 4. **The caller's own limits**: a session's instance cap (`NETGET_TOO_LARGE`).
//! 5. **The filter** of an embedding application (`NETGET_DENIED`).
//! 6. **The name claim** of a `keys` network: the first unbound key to register a name owns it
//!    (`NETGET_UNAUTHORIZED`, `NETGET_FORBIDDEN`); a new claim is on disk before the name is
//!    used. After the other checks, so a registration they refuse claims nothing.
//! 7. **The directory**: an existing instance may be replaced only by its owner
//!    (`NETGET_FORBIDDEN`); watchers get `up` or `changed`.
//! 8. **The durable record** of a REST registration, queued right after the directory change
//!    (so the store sees changes in their order) and acknowledged once on disk; if the store
//!    fails, the instance is taken out of the directory again (`NETGET_IO`).
//! 9. **Health and metrics**: the instance's check starts (or changes, or stops), and the
//!    registration is counted by transport.
//!
//! A restore from the store runs step 7 and starts health checks for each record it loaded
//! (they passed the other steps when they were made; restores are not counted as
//! registrations). Deregistration runs 1, 7 (ownership), 8 (the record's removal) and counts
//! the removal; a health check ends by itself when its instance is gone. A heartbeat runs 1 and
//! 7.

mod peers;

pub(crate) use peers::{
    admit_peer, deliver_relayed, forget_replicas, owner_elsewhere, replicate, replicate_claim,
    settle_lost_peer, PeerCaller,
};

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::channels::ChannelReceiver;
use super::directory::{InstanceKey, Owner, Registered, WatchReceiver};
use super::state::RegistryState;
use super::store::Loaded;
use crate::error::{Error, Result};
use crate::identity;
use crate::model::{
    ChannelMessage, ChannelName, Instance, InstanceId, NetworkName, Registration, ServiceName,
    ServiceSummary,
};
use crate::security::{run_filter, FilterKind, FilterRequest, Policy};
use crate::wire::EncodedAnswer;

/// A caller over HTTP, as its request showed it.
#[derive(Debug, Clone)]
pub(crate) struct HttpCaller {
    /// The bearer token, if any.
    pub token: Option<String>,
    /// The browser origin, if any.
    pub origin: Option<String>,
    /// Where the request came from.
    pub remote: SocketAddr,
}

/// A WebSocket session after its handshake.
#[derive(Debug, Clone)]
pub(crate) struct SessionCaller {
    /// The session's id.
    pub id: u64,
    /// The one network the session was admitted to.
    pub network: NetworkName,
    /// The node's key, proven at the handshake: it owns what the session registers.
    pub public_key: Arc<str>,
    /// The token of the hello, passed on to the filter.
    pub token: Option<String>,
    /// The browser origin, if any.
    pub origin: Option<String>,
    /// Where the session came from.
    pub remote: SocketAddr,
}

/// A DNS query's asker. DNS carries no token: it reads networks whose policy is `open`, and
/// those the `[dns]` config names.
#[derive(Debug, Clone)]
pub(crate) struct DnsCaller {
    /// Where the query came from.
    pub remote: SocketAddr,
}

/// The instances a session holds, by service and id (a session has one network).
pub(crate) type Held = HashSet<(ServiceName, InstanceId)>;

/// Who asks for an operation, as its front end established it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caller<'a> {
    /// An HTTP request.
    Http(&'a HttpCaller),
    /// A WebSocket session, with the instances it holds now.
    Session(&'a SessionCaller, &'a Held),
    /// A DNS query: reads only.
    Dns(&'a DnsCaller),
}

/// What an operation does with a network: reads may be allowed where writes are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

impl Caller<'_> {
    /// The transport, as metrics label it.
    fn transport(&self) -> &'static str {
        match self {
            Caller::Http(_) => "http",
            Caller::Session(..) => "websocket",
            Caller::Dns(_) => "dns",
        }
    }

    /// Step 1: whether this caller may read or write in `network`.
    fn check_access(
        &self,
        state: &RegistryState,
        network: &NetworkName,
        access: Access,
    ) -> Result<()> {
        match self {
            Caller::Http(h) => state.guard.authenticate(h.remote.ip(), || {
                state.guard.check_http(network, h.token.as_deref())?;
                if access == Access::Write {
                    state.guard.check_http_write(network, h.token.as_deref())?;
                }
                Ok(())
            }),
            Caller::Dns(_) if access == Access::Write => {
                Err(Error::Forbidden("DNS only reads the directory".into()))
            }
            Caller::Dns(_) => {
                let open = matches!(state.guard.policy(network)?, Policy::Open);
                if open || state.config.dns.networks.contains(network) {
                    Ok(())
                } else {
                    Err(Error::Forbidden(format!(
                        "network {:?} is not open, and [dns] networks does not list it",
                        network.as_str()
                    )))
                }
            }
            Caller::Session(s, _) if &s.network == network => Ok(()),
            Caller::Session(s, _) => Err(Error::Forbidden(format!(
                "this session is in network {:?}, not {:?}; open a session in that network",
                s.network.as_str(),
                network.as_str()
            ))),
        }
    }

    /// Who will own what this caller registers (and who it must be to change it). Only the
    /// digest of an HTTP caller's token is kept, never the token.
    fn owner(&self, ttl: Option<Duration>) -> Owner {
        match self {
            Caller::Http(h) => Owner::Rest {
                ttl,
                token: h
                    .token
                    .as_deref()
                    .map(|t| Arc::from(identity::token_digest(t))),
            },
            Caller::Session(s, _) => Owner::Session {
                session: s.id,
                key: s.public_key.clone(),
            },
            // Never asked for: every write of a DNS caller is refused at step 1.
            Caller::Dns(_) => Owner::Rest { ttl, token: None },
        }
    }

    /// What the filter is told of this caller for a request of `kind` in `network`.
    fn filter_request(&self, kind: FilterKind, network: &NetworkName) -> FilterRequest {
        match self {
            Caller::Http(h) => FilterRequest {
                origin: h.origin.clone(),
                token: h.token.clone(),
                ..FilterRequest::new(kind, network.as_str(), h.remote.to_string())
            },
            Caller::Session(s, _) => FilterRequest {
                public_key: Some(s.public_key.to_string()),
                origin: s.origin.clone(),
                token: s.token.clone(),
                ..FilterRequest::new(kind, network.as_str(), s.remote.to_string())
            },
            Caller::Dns(d) => FilterRequest::new(kind, network.as_str(), d.remote.to_string()),
        }
    }
}

/// What a caller asks to register.
#[derive(Debug)]
pub(crate) struct Registering {
    /// Where.
    pub network: NetworkName,
    /// The service.
    pub name: ServiceName,
    /// The instance id; `None` over a session: derived from its key, the name and the address.
    pub id: Option<InstanceId>,
    /// What the instance says of itself.
    pub registration: Registration,
}

/// What a node's hello asks for, once the session has checked its protocol and challenge.
pub(crate) struct Hello<'a> {
    /// The network it asks to join.
    pub network: &'a NetworkName,
    /// Its public key.
    pub public_key: &'a str,
    /// Its signature over the registry id, the network and the challenge's nonce.
    pub signature: &'a str,
    /// The nonce it signed.
    pub nonce: &'a str,
    /// The token it presented, if any.
    pub token: Option<&'a str>,
    /// `service`, `client`, … as it says.
    pub node_type: Option<String>,
    /// The browser origin, if any.
    pub origin: Option<String>,
    /// Where it connects from.
    pub remote: SocketAddr,
}

/// Admits a session to a network: the network is served, the hello's signature holds, the
/// network's policy accepts the key or token, and the filter allows it. Returns the policy's
/// name (the welcome tells the node).
pub(crate) async fn admit(state: &RegistryState, hello: Hello<'_>) -> Result<&'static str> {
    let policy = state.guard.policy(hello.network)?.name();
    identity::verify(
        hello.public_key,
        &identity::hello_payload(&state.registry_id, hello.network.as_str(), hello.nonce),
        hello.signature,
    )?;
    state.guard.authenticate(hello.remote.ip(), || {
        state
            .guard
            .check_session(hello.network, hello.public_key, hello.token)
    })?;
    run_filter(state.config.filter.as_ref(), || FilterRequest {
        public_key: Some(hello.public_key.to_string()),
        origin: hello.origin.clone(),
        token: hello.token.map(str::to_string),
        node_type: hello.node_type.clone(),
        ..FilterRequest::new(
            FilterKind::Handshake,
            hello.network.as_str(),
            hello.remote.to_string(),
        )
    })
    .await?;
    Ok(policy)
}

/// Registers (or updates) an instance: the steps of the module doc, in that order.
pub(crate) async fn register(
    state: &RegistryState,
    caller: Caller<'_>,
    request: Registering,
) -> Result<Registered> {
    let Registering {
        network,
        name,
        id,
        registration: reg,
    } = request;
    // 1. Access.
    caller.check_access(state, &network, Access::Write)?;
    // 2. Validity.
    reg.validate()?;
    let id = match (id, caller) {
        (Some(id), _) => id,
        (None, Caller::Session(s, _)) => InstanceId::new(&identity::derived_instance_id(
            &s.public_key,
            name.as_str(),
            &reg.address,
        ))?,
        (None, Caller::Http(_) | Caller::Dns(_)) => {
            return Err(Error::InvalidInput(
                "an HTTP registration names its instance id in its path".into(),
            ))
        }
    };
    check_signature(state, caller, &network, &name, &id, &reg)?;
    // 3. Lifetime.
    let ttl = lifetime(state, caller, &reg)?;
    // 4. The caller's own limits.
    if let Caller::Session(_, held) = caller {
        let limit = state.config.max_instances_per_session;
        if held.len() >= limit && !held.contains(&(name.clone(), id.clone())) {
            return Err(Error::TooLarge(format!(
                "this session already holds {limit} instances, the most a session may; open another session"
            )));
        }
    }
    // 5. The filter.
    run_filter(state.config.filter.as_ref(), || FilterRequest {
        service: Some(name.to_string()),
        instance_id: Some(id.to_string()),
        address: Some(reg.address.clone()),
        metadata: reg.metadata.clone(),
        ..caller.filter_request(FilterKind::Register, &network)
    })
    .await?;
    // 6. The name claim.
    if let Caller::Session(s, _) = caller {
        if let Some(claim) = state.guard.check_service(&network, &s.public_key, &name)? {
            state.store.put_claim(&network, &name, &claim).await?;
            // Peers learn it, and settle a conflict with a claim of theirs the same way.
            if state.links.claims.receiver_count() > 0 {
                let _ = state.links.claims.send(super::cluster::Claimed {
                    network: network.clone(),
                    service: name.clone(),
                    public_key: claim.key.clone(),
                    at: claim.at,
                });
            }
        }
    }
    // 7. The directory.
    let mut instance =
        Instance::from_registration(network, name, id, reg, state.registry_id.clone());
    if let Caller::Session(s, _) = caller {
        instance.public_key = Some(s.public_key.clone());
    }
    let owner = caller.owner(ttl);
    let digest = match &owner {
        Owner::Rest { token, .. } => token.clone(),
        Owner::Session { .. } | Owner::Peer { .. } => None,
    };
    let done = state.directory.register(instance, owner)?;
    // 8. The durable record.
    if let Caller::Http(_) = caller {
        let stored = state.store.put_rest(&done.instance, ttl, digest.as_deref());
        if let Err(e) = stored.await {
            state.directory.evict(&done.instance.key());
            return Err(e);
        }
    }
    // 9. Health and metrics.
    state.metrics.registered(caller.transport());
    state.health.track(&done.instance);
    Ok(done)
}

/// Step 2's signature rule: HTTP carries no signatures (the caller has no key); a session's
/// must be by its own key over exactly what it registers; in `keys` networks every
/// registration must be signed.
fn check_signature(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
    name: &ServiceName,
    id: &InstanceId,
    reg: &Registration,
) -> Result<()> {
    let session = match caller {
        Caller::Http(_) if reg.signature.is_some() || reg.signed_at.is_some() => {
            return Err(Error::InvalidInput(
                "signed registrations go over a WebSocket session, where the key is known".into(),
            ))
        }
        Caller::Http(_) | Caller::Dns(_) => return Ok(()),
        Caller::Session(s, _) => s,
    };
    match (&reg.signature, reg.signed_at) {
        (Some(sig), Some(at)) => {
            let payload = identity::SignedFields::of_registration(
                network.as_str(),
                name.as_str(),
                id.as_str(),
                reg,
                at,
            )
            .payload();
            identity::verify(&session.public_key, &payload, sig).map_err(|_| {
                Error::Unauthorized(
                    "the registration's signature does not match its contents and this session's key".into(),
                )
            })
        }
        (None, None) => {
            if matches!(state.guard.policy(network)?, Policy::Keys { .. }) {
                Err(Error::Unauthorized(format!(
                    "network {:?} accepts only signed registrations (signature and signedAt)",
                    network.as_str()
                )))
            } else {
                Ok(())
            }
        }
        _ => Err(Error::InvalidInput(
            "signature and signedAt go together".into(),
        )),
    }
}

/// Step 3: how long a registration lives without renewal. `None` for a session's (it lives
/// with the session) and for a REST registration that declares a health check and no TTL (the
/// check alone decides).
fn lifetime(
    state: &RegistryState,
    caller: Caller<'_>,
    reg: &Registration,
) -> Result<Option<Duration>> {
    if let Caller::Session(..) = caller {
        return Ok(None);
    }
    let ttl = match (reg.ttl, &reg.health) {
        (Some(t), _) => Some(t.0),
        (None, Some(_)) => None,
        (None, None) => Some(state.config.default_ttl),
    };
    if ttl.is_some_and(|t| t.is_zero()) {
        return Err(Error::InvalidInput("ttl must be more than 0".into()));
    }
    Ok(ttl)
}

/// Removes an instance on its owner's request.
pub(crate) async fn deregister(
    state: &RegistryState,
    caller: Caller<'_>,
    key: &InstanceKey,
) -> Result<Arc<Instance>> {
    caller.check_access(state, &key.0, Access::Write)?;
    let gone = state.directory.deregister(key, &caller.owner(None))?;
    // Only an HTTP caller owns REST registrations, the ones with a record.
    if let Caller::Http(_) = caller {
        state.store.delete_rest(&gone).await?;
    }
    state.metrics.deregistered("request", 1);
    Ok(gone)
}

/// Renews a REST registration's TTL on its owner's request.
pub(crate) fn heartbeat(
    state: &RegistryState,
    caller: Caller<'_>,
    key: &InstanceKey,
) -> Result<Arc<Instance>> {
    caller.check_access(state, &key.0, Access::Write)?;
    state.directory.heartbeat(key, &caller.owner(None))
}

/// The instances of one service matching the query, encoded. The common query (healthy
/// instances, no tags) is answered from the service's cached answer until the service changes.
pub(crate) fn discover(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
    name: &ServiceName,
    healthy_only: bool,
    tags: &[String],
) -> Result<EncodedAnswer> {
    caller.check_access(state, network, Access::Read)?;
    let answer = if healthy_only && tags.is_empty() {
        state
            .directory
            .discover_memoized(network, name, EncodedAnswer::of)?
    } else {
        EncodedAnswer::of(
            &state
                .directory
                .discover(network, name, healthy_only, tags)?,
        )
    };
    state.metrics.discovered(caller.transport());
    Ok(answer)
}

/// The instances matching a query, of one service or (`service` None) of the whole network, for
/// front ends that answer in a format of their own (DNS, Prometheus, Consul's API).
pub(crate) fn instances(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
    service: Option<&ServiceName>,
    healthy_only: bool,
    tags: &[String],
) -> Result<Vec<Arc<Instance>>> {
    caller.check_access(state, network, Access::Read)?;
    let found = match service {
        Some(name) => {
            state
                .directory
                .discover(network, name, healthy_only, tags)?
                .instances
        }
        None => {
            let mut all = state.directory.instances_of(network)?;
            all.retain(|i| {
                (!healthy_only || i.status.is_healthy()) && tags.iter().all(|t| i.tags.contains(t))
            });
            all
        }
    };
    state.metrics.discovered(caller.transport());
    Ok(found)
}

/// The network's revision (one more per change of its instances), to wait on: what the
/// Consul-compatible API's blocking queries answer from.
pub(crate) fn revision(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
) -> Result<tokio::sync::watch::Receiver<u64>> {
    caller.check_access(state, network, Access::Read)?;
    state.directory.revision(network)
}

/// Service names of a network with their counts.
pub(crate) fn services(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
) -> Result<Vec<ServiceSummary>> {
    caller.check_access(state, network, Access::Read)?;
    state.directory.services(network)
}

/// The networks a caller with `token` may see, with their instance counts.
pub(crate) fn networks(state: &RegistryState, token: Option<&str>) -> Vec<(NetworkName, usize)> {
    state
        .directory
        .counts()
        .into_iter()
        .filter(|(name, _)| state.guard.visible(name, token))
        .collect()
}

/// The current instances of a service and the receiver of its changes from then on.
pub(crate) fn watch(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
    name: &ServiceName,
) -> Result<(Vec<Arc<Instance>>, WatchReceiver)> {
    caller.check_access(state, network, Access::Read)?;
    state.directory.watch(network, name)
}

/// Every instance of a network and the receiver of all its changes from then on.
pub(crate) fn watch_network(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
) -> Result<(Vec<Arc<Instance>>, WatchReceiver)> {
    caller.check_access(state, network, Access::Read)?;
    state.directory.watch_network(network)
}

/// Subscribes to a channel of a network.
pub(crate) fn subscribe(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
    channel: &ChannelName,
) -> Result<ChannelReceiver> {
    caller.check_access(state, network, Access::Read)?;
    Ok(state.channels.subscribe(network, channel))
}

/// Publishes on a channel of a network once the filter allows it, here and (through the
/// replication links) on every peer registry; how many subscribers on this registry it was
/// handed to.
pub(crate) async fn publish(
    state: &RegistryState,
    caller: Caller<'_>,
    network: &NetworkName,
    channel: ChannelName,
    data: serde_json::Value,
) -> Result<usize> {
    caller.check_access(state, network, Access::Write)?;
    run_filter(state.config.filter.as_ref(), || FilterRequest {
        channel: Some(channel.to_string()),
        data: Some(data.clone()),
        ..caller.filter_request(FilterKind::Publish, network)
    })
    .await?;
    let from = match caller {
        Caller::Session(s, _) => Some(s.public_key.clone()),
        Caller::Http(_) | Caller::Dns(_) => None,
    };
    let message = ChannelMessage {
        channel,
        data,
        from,
    };
    // Peers deliver it to their own subscribers (only when a link is open to take it).
    if state.links.relay.receiver_count() > 0 {
        let _ = state.links.relay.send(super::cluster::Relayed {
            network: network.clone(),
            message: Arc::new(message.clone()),
        });
    }
    let delivered = state.channels.publish(network, message);
    state.metrics.channel_messages.inc();
    Ok(delivered)
}

/// Removes what a session that ended still held (unless a reconnected node took it back).
/// Returns how many instances went.
pub(crate) fn end_session(state: &RegistryState, session: &SessionCaller, held: Held) -> usize {
    let keys: Vec<InstanceKey> = held
        .into_iter()
        .map(|(name, id)| (session.network.clone(), name, id))
        .collect();
    let removed = state.directory.remove_session(session.id, &keys);
    state.metrics.deregistered("session", removed);
    removed
}

/// Handles REST registrations whose TTL ran out by `now`: critical first, removed after their
/// grace. Returns how many were removed.
pub(crate) fn expire(state: &RegistryState, now: Instant) -> usize {
    let removed = state.directory.expire(now);
    state.metrics.deregistered("expired", removed);
    removed
}

/// Puts back one stored REST registration, with its check.
pub(crate) fn restore_record(
    state: &RegistryState,
    record: super::store::RestRecord,
) -> Result<Arc<Instance>> {
    let owner = Owner::Rest {
        ttl: record.ttl_ms.map(Duration::from_millis),
        token: record.token.map(Arc::from),
    };
    let mut instance = record.instance;
    instance.registry = state.registry_id.clone();
    let done = state.directory.register(instance, owner)?;
    state.health.track(&done.instance);
    Ok(done.instance)
}

/// Puts back what the store held: name claims, and REST registrations with their checks (steps
/// 7 and 9; their TTL clocks restart now). Session registrations come back as their nodes
/// reconnect. From then on, REST registrations that go away on their own (expired, evicted)
/// leave the store too.
pub(crate) fn restore(state: &Arc<RegistryState>, loaded: Loaded) {
    state.guard.restore_claims(loaded.claims);
    let mut restored = 0usize;
    for record in loaded.rest {
        match restore_record(state, record) {
            Ok(_) => restored += 1,
            Err(e) => tracing::warn!(error = %e, "a stored registration was not restored"),
        }
    }
    if restored > 0 {
        tracing::info!(restored, "REST registrations restored from the store");
    }
    let store = state.store.clone();
    state
        .directory
        .on_rest_removed(move |instance| store.forget_rest(instance));
}
