//! Who is in the cluster: a chitchat node per registry, gossiping on UDP.
//!
//! A registry's chitchat id is its registry id, with its start time as the generation (a
//! restarted registry is a new generation of the same member, and its epoch). The keys it
//! publishes: `url` (what peers and clients dial), `policies` (a digest of its networks and
//! their policies, so registries configured differently can be told apart), `revision` (how
//! many changes of its own instances it has made, so followers can tell a gap) and `ready`
//! (it has loaded every live peer's snapshot).

use std::net::SocketAddr;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use serde::Serialize;

use crate::config::ClusterConfig;
use crate::error::{Error, Result};

/// One registry of the cluster as gossip shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Its registry id.
    pub id: String,
    /// The URL it advertises.
    pub url: Option<String>,
    /// Where it gossips.
    #[schema(value_type = String)]
    pub gossip: SocketAddr,
    /// Whether the failure detector holds it alive (this registry always is).
    pub live: bool,
    /// The digest of its network policies.
    pub policies: Option<String>,
    /// Whether it is this registry.
    pub this: bool,
    /// Its run (start time, ms): what its revisions count in.
    pub epoch: u64,
    /// Its revision as it last gossiped it.
    pub revision: Option<u64>,
    /// Whether it serves the cluster's whole directory (has loaded every live peer's snapshot).
    pub ready: bool,
    /// Whether this registry follows it over an open replication link (its snapshot loaded).
    pub linked: bool,
    /// Its revision as applied here (same epoch only).
    pub replicated: Option<u64>,
}

/// The cluster at a glance, for `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSummary {
    /// Live registries, this one included.
    pub live: usize,
    /// Registries gossip holds dead.
    pub dead: usize,
    /// Live peers whose networks or policies differ from this registry's, by id: they would
    /// answer the same request differently.
    pub policies_differ: Vec<String>,
    /// Whether this registry serves the cluster's whole directory.
    pub ready: bool,
    /// Live peers not followed over an open replication link, by id.
    pub unlinked: Vec<String>,
    /// Revisions of each live, followed peer not applied here yet, by id: `[id, revisions]`.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub lag: Vec<(String, u64)>,
}

impl ClusterSummary {
    /// Summarises `members` (this registry among them).
    pub fn of(members: &[Member]) -> ClusterSummary {
        let mine = members
            .iter()
            .find(|m| m.this)
            .and_then(|m| m.policies.clone());
        let live_peers = || members.iter().filter(|m| m.live && !m.this);
        ClusterSummary {
            live: members.iter().filter(|m| m.live).count(),
            dead: members.iter().filter(|m| !m.live).count(),
            policies_differ: live_peers()
                .filter(|m| m.policies != mine)
                .map(|m| m.id.clone())
                .collect(),
            ready: members.iter().any(|m| m.this && m.ready),
            unlinked: live_peers()
                .filter(|m| !m.linked)
                .map(|m| m.id.clone())
                .collect(),
            lag: live_peers()
                .filter(|m| m.linked)
                .map(|m| {
                    let behind = m
                        .revision
                        .unwrap_or(0)
                        .saturating_sub(m.replicated.unwrap_or(0));
                    (m.id.clone(), behind)
                })
                .collect(),
        }
    }
}

/// This registry's place in the cluster: its chitchat node.
pub(crate) struct Membership {
    handle: ChitchatHandle,
    /// Warns, once per peer and digest, about live peers configured differently.
    watch_policies: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("id", self.handle.chitchat_id())
            .finish()
    }
}

/// The gossip address of a peer named by its URL: the same host and port number, over UDP.
fn gossip_seed(url: &str) -> Result<String> {
    let uri: hyper::Uri = url.parse().map_err(|e| {
        Error::InvalidInput(format!(
            "join {url:?} is not a registry URL like \"http://127.0.0.1:7700\": {e}"
        ))
    })?;
    let host = uri.host().ok_or_else(|| {
        Error::InvalidInput(format!("join {url:?} names no host; give http://HOST:PORT"))
    })?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Ok(format!("{host}:{port}"))
}

impl Membership {
    /// Starts gossiping when `cluster` asks for it (see [`ClusterConfig::enabled`]); `http` is
    /// the registry's bound HTTP address and `url` its own URL.
    pub(crate) async fn start(
        cluster: &ClusterConfig,
        registry_id: &str,
        http: SocketAddr,
        url: &str,
        policies: String,
        epoch: u64,
    ) -> Result<Option<Membership>> {
        if !cluster.enabled() {
            return Ok(None);
        }
        let listen = cluster.gossip_listen.unwrap_or(http);
        // Port 0 means "the HTTP port number", so tests and `--listen …:0` work unchanged.
        let listen = if listen.port() == 0 {
            SocketAddr::new(listen.ip(), http.port())
        } else {
            listen
        };
        // Resolved (and re-resolved, for peers not up yet) by chitchat's own DNS loop: no
        // blocking lookup here, on the runtime, at start-up.
        let seeds = cluster
            .join
            .iter()
            .map(|peer| gossip_seed(peer))
            .collect::<Result<Vec<_>>>()?;
        let generation = epoch;
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(registry_id.to_string(), generation, listen),
            cluster_id: cluster.name.clone(),
            gossip_interval: cluster.gossip_interval,
            listen_addr: listen,
            seed_nodes: seeds,
            failure_detector_config: FailureDetectorConfig {
                initial_interval: cluster.gossip_interval,
                // A dead registry is forgotten after a day of silence, as chitchat suggests.
                dead_node_grace_period: Duration::from_secs(24 * 60 * 60),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3_600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let advertised = cluster.advertise.clone().unwrap_or_else(|| url.to_string());
        let keys = vec![
            ("url".to_string(), advertised),
            ("policies".to_string(), policies.clone()),
            ("revision".to_string(), "0".to_string()),
            ("ready".to_string(), "false".to_string()),
        ];
        let handle = spawn_chitchat(config, keys, &UdpTransport)
            .await
            .map_err(|e| {
                Error::Io(format!(
                    "cannot gossip on UDP {listen}: {e:#} (is the port taken? set --gossip-listen)"
                ))
            })?;
        tracing::info!(gossip = %listen, peers = ?cluster.join, "cluster membership started");
        if cluster.keys.is_empty() {
            tracing::info!(
                "no [cluster] keys are configured: replication links are taken from loopback addresses only (list the peers' registry keys for a cluster across machines)"
            );
        }
        let live_rx = handle.chitchat().lock().await.live_nodes_watcher();
        let watch_policies = tokio::spawn(warn_of_other_policies(live_rx, policies));
        Ok(Some(Membership {
            handle,
            watch_policies,
        }))
    }

    /// Every registry gossip knows of, this one first, then by id.
    pub(crate) async fn members(&self) -> Vec<Member> {
        let chitchat = self.handle.chitchat();
        let chitchat = chitchat.lock().await;
        let me = chitchat.self_chitchat_id().clone();
        let live: std::collections::HashSet<ChitchatId> = chitchat.live_nodes().cloned().collect();
        let mut members: Vec<Member> = chitchat
            .node_states()
            .iter()
            .map(|(id, state)| Member {
                id: id.node_id.to_string(),
                url: state.get("url").map(str::to_string),
                gossip: id.gossip_advertise_addr,
                live: live.contains(id),
                policies: state.get("policies").map(str::to_string),
                this: id == &me,
                epoch: id.generation_id,
                revision: state.get("revision").and_then(|r| r.parse().ok()),
                ready: state.get("ready") == Some("true"),
                linked: false,
                replicated: None,
            })
            .collect();
        // A restarted registry is a new generation of the same id: show the newest (or the
        // live one) only.
        members.sort_by(|a, b| {
            a.id.cmp(&b.id)
                .then_with(|| b.live.cmp(&a.live))
                .then_with(|| b.epoch.cmp(&a.epoch))
        });
        members.dedup_by(|later, first| later.id == first.id);
        members.sort_by(|a, b| b.this.cmp(&a.this).then_with(|| a.id.cmp(&b.id)));
        members
    }

    /// Changes whenever the set of live registries does.
    pub(crate) async fn live_watcher(
        &self,
    ) -> tokio::sync::watch::Receiver<std::collections::BTreeMap<ChitchatId, chitchat::NodeState>>
    {
        self.handle.chitchat().lock().await.live_nodes_watcher()
    }

    /// Publishes this registry's revision and readiness (when they changed).
    pub(crate) async fn publish(&self, revision: u64, ready: bool) {
        let chitchat = self.handle.chitchat();
        let mut chitchat = chitchat.lock().await;
        let me = chitchat.self_node_state();
        let (revision, ready) = (revision.to_string(), ready.to_string());
        if me.get("revision") != Some(revision.as_str()) {
            me.set("revision", revision);
        }
        if me.get("ready") != Some(ready.as_str()) {
            me.set("ready", ready);
        }
    }

    /// Stops gossiping (registry shutdown); peers will see this registry go dead.
    pub(crate) fn stop(&self) {
        self.watch_policies.abort();
        if let Err(e) = self.handle.initiate_shutdown() {
            tracing::debug!(error = %e, "gossip ended with an error");
        }
    }
}

/// Logs a warning for each live peer whose policy digest is not `mine` (once per peer and
/// digest): registries configured differently answer the same request differently, and that
/// must not go unnoticed.
async fn warn_of_other_policies(
    mut live_rx: tokio::sync::watch::Receiver<
        std::collections::BTreeMap<ChitchatId, chitchat::NodeState>,
    >,
    mine: String,
) {
    let mut warned = std::collections::HashSet::new();
    while live_rx.changed().await.is_ok() {
        let differing: Vec<(String, String)> = live_rx
            .borrow()
            .iter()
            .filter_map(|(id, state)| {
                let theirs = state.get("policies")?;
                (theirs != mine).then(|| (id.node_id.to_string(), theirs.to_string()))
            })
            .collect();
        for (peer, theirs) in differing {
            if warned.insert((peer.clone(), theirs.clone())) {
                tracing::warn!(
                    peer,
                    theirs,
                    mine = %mine,
                    "a peer registry serves other networks or policies: the two answer differently until their configurations agree"
                );
            }
        }
    }
}

/// A short digest of a registry's networks, their policies and the keys `keys` networks admit,
/// so registries configured differently can be told apart. Tokens are left out: gossip is
/// readable by anyone on its port, and a digest of a weak token could be guessed offline.
pub(crate) fn policies_digest(networks: &[crate::security::NetworkConfig]) -> String {
    use crate::security::Policy;
    use sha2::{Digest, Sha256};
    let mut named: Vec<serde_json::Value> = networks
        .iter()
        .map(|n| {
            let keys = match &n.policy {
                Policy::Keys { keys, .. } => serde_json::to_value(keys).unwrap_or_default(),
                Policy::Open | Policy::Token { .. } => serde_json::Value::Null,
            };
            serde_json::json!([n.name.as_str(), n.policy.name(), keys])
        })
        .collect();
    named.sort_by_key(|v| v[0].as_str().unwrap_or_default().to_string());
    let text = serde_json::to_string(&named).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{NetworkConfig, Policy};

    #[test]
    fn the_policy_digest_tells_networks_and_policies_apart_but_not_tokens() {
        let net = |name: &str, policy: Policy| NetworkConfig {
            name: crate::model::NetworkName::new(name).unwrap(),
            policy,
        };
        let token = |t: &str| Policy::Token {
            tokens: vec![t.to_string()],
        };
        let base = policies_digest(&[net("a", Policy::Open), net("b", token("secret-one"))]);
        let reordered = policies_digest(&[net("b", token("secret-one")), net("a", Policy::Open)]);
        assert_eq!(base, reordered, "the order of networks does not matter");
        let other_token = policies_digest(&[net("a", Policy::Open), net("b", token("secret-two"))]);
        assert_eq!(
            base, other_token,
            "tokens never reach gossip, not even digested"
        );
        let other_policy = policies_digest(&[net("a", Policy::Open), net("b", Policy::Open)]);
        assert_ne!(base, other_policy);
        let fewer = policies_digest(&[net("a", Policy::Open)]);
        assert_ne!(base, fewer);
    }
}
