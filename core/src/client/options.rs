//! How a node is configured: its type, network, registries, identity, and how it discovers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::DEFAULT_REGISTRY_URL;
use crate::error::{Error, Result};
use crate::identity::{derived_instance_id, NodeKey};
use crate::model::{
    HealthCheck, Instance, InstanceId, NetworkName, Registration, ServiceName, DEFAULT_NETWORK,
};

/// What kind of node this is. Only a `Service` registers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeType {
    /// Registers itself and discovers others.
    #[default]
    Service,
    /// Discovers and watches only.
    Client,
}

impl NodeType {
    /// The name used on the wire and in the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Service => "service",
            NodeType::Client => "client",
        }
    }
}

/// How `discover_service_node` picks one of several healthy instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Random, proportional to each instance's weight.
    #[default]
    Weighted,
    /// Uniformly random.
    Random,
    /// In turn, per client.
    RoundRobin,
}

impl std::str::FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Strategy> {
        match s {
            "weighted" => Ok(Strategy::Weighted),
            "random" => Ok(Strategy::Random),
            "round-robin" => Ok(Strategy::RoundRobin),
            other => Err(Error::InvalidInput(format!(
                "unknown strategy {other:?}; use weighted, random or round-robin"
            ))),
        }
    }
}

/// Filters and policy for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Only instances carrying all these tags.
    pub tags: Vec<String>,
    /// Only passing and warning instances (default true).
    pub healthy_only: bool,
    /// How one instance is picked.
    pub strategy: Strategy,
    /// Serve from the watch-backed local cache (default true); `false` asks the registry.
    pub cached: bool,
}

impl DiscoverOptions {
    /// Whether `instance` passes the health and tag filters.
    pub fn admits(&self, instance: &Instance) -> bool {
        (!self.healthy_only || instance.status.is_healthy()) && instance.has_tags(&self.tags)
    }
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            tags: Vec::new(),
            healthy_only: true,
            strategy: Strategy::Weighted,
            cached: true,
        }
    }
}

/// Everything a node is configured with; mirrors `new Netget({...})` of the JS API.
#[derive(Clone)]
pub struct NetgetOptions {
    /// Service or client.
    pub node_type: NodeType,
    /// The network to join.
    pub network: String,
    /// `name`, `address`, `tags`, `version`, `id`, `weight` describe the instance; every other
    /// key (e.g. `description`) becomes instance metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Registry nodes; several give failover. A node starts at a random one of them (so a
    /// fleet spreads over a cluster), keeps the one it is on, and after losing it moves to a
    /// random other one (so the nodes of a dead registry do not all land on the same survivor).
    pub registry_nodes: Vec<String>,
    /// Use `registry_nodes` in the order given instead: start at the first, move to the next.
    pub in_order: bool,
    /// The node's identity; when absent it is loaded from (or created in) `data_dir`.
    pub key: Option<NodeKey>,
    /// Where the node keeps its key (`node.key`), so a restarted node keeps its identity and
    /// instance id. The default is the user's data dir ([`user_data_dir`]), never the current
    /// folder: a quick start run anywhere leaves nothing behind but one key per user. `None`
    /// means an in-memory key for this run only.
    pub data_dir: Option<PathBuf>,
    /// An active health check for the registry to run.
    pub health: Option<HealthCheck>,
    /// Join token for networks that need one.
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust for `https://`/`wss://` registries instead of the
    /// system's roots.
    pub tls_ca: Option<PathBuf>,
    /// Verify every instance's signature, whatever the network's policy (always done in `keys`
    /// networks). Instances that fail are left out of discovery and watches.
    pub verify: bool,
    /// Per service name, the public keys allowed to sign its instances: with this, not even a
    /// compromised registry can hand out an address for the service.
    pub trusted_keys: HashMap<String, Vec<String>>,
    /// Bound on every call that goes to a registry.
    pub request_timeout: Duration,
    /// Bound on connecting to one registry node.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for NetgetOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs.
        f.debug_struct("NetgetOptions")
            .field("node_type", &self.node_type)
            .field("network", &self.network)
            .field("metadata", &self.metadata)
            .field("registry_nodes", &self.registry_nodes)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// Where a node keeps its key unless told otherwise: `$XDG_DATA_HOME/netget`, else
/// `~/.local/share/netget` (the XDG default). `None` when neither variable is set (the key is then
/// kept in memory).
pub fn user_data_dir() -> Option<PathBuf> {
    let nonempty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    nonempty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| nonempty("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("netget"))
}

impl Default for NetgetOptions {
    fn default() -> Self {
        NetgetOptions {
            node_type: NodeType::Service,
            network: DEFAULT_NETWORK.to_string(),
            metadata: serde_json::Map::new(),
            registry_nodes: vec![DEFAULT_REGISTRY_URL.to_string()],
            in_order: false,
            key: None,
            data_dir: user_data_dir(),
            health: None,
            token: None,
            tls_ca: None,
            verify: false,
            trusted_keys: HashMap::new(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl NetgetOptions {
    /// Options for a service node called `name` reachable at `address`.
    pub fn service(name: &str, address: &str, registry_nodes: &[&str]) -> NetgetOptions {
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), name.into());
        metadata.insert("address".into(), address.into());
        NetgetOptions {
            metadata,
            registry_nodes: registry_nodes.iter().map(|s| s.to_string()).collect(),
            ..NetgetOptions::default()
        }
    }

    /// Options for a node that only discovers.
    pub fn client(registry_nodes: &[&str]) -> NetgetOptions {
        NetgetOptions {
            node_type: NodeType::Client,
            registry_nodes: registry_nodes.iter().map(|s| s.to_string()).collect(),
            ..NetgetOptions::default()
        }
    }

    /// The service name, instance id and registration that `metadata` describes.
    pub(super) fn registration(
        &self,
        key: &NodeKey,
    ) -> Result<(ServiceName, InstanceId, Registration)> {
        // Validate the network here too: the signature covers it.
        NetworkName::new(&self.network)?;
        let mut meta = self.metadata.clone();
        let take_str = |meta: &mut serde_json::Map<_, _>, k: &str| -> Result<Option<String>> {
            match meta.remove(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(Error::InvalidInput(format!(
                    "metadata.{k} must be a string, got {other}"
                ))),
            }
        };
        let name = take_str(&mut meta, "name")?.ok_or_else(|| {
            Error::InvalidInput("metadata.name is required to register (the service name)".into())
        })?;
        let name = ServiceName::new(&name)?;
        let address = take_str(&mut meta, "address")?.ok_or_else(|| {
            Error::InvalidInput(
                "metadata.address is required to register (where clients reach this node)".into(),
            )
        })?;
        let version = take_str(&mut meta, "version")?;
        let id = match take_str(&mut meta, "id")? {
            Some(id) => InstanceId::new(&id)?,
            None => InstanceId::new(&derived_instance_id(
                &key.public_key(),
                name.as_str(),
                &address,
            ))?,
        };
        let tags = match meta.remove("tags") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v).map_err(|_| {
                Error::InvalidInput("metadata.tags must be a list of strings".into())
            })?,
        };
        let weight =
            match meta.remove("weight") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|w| u32::try_from(w).ok()).ok_or_else(
                    || Error::InvalidInput("metadata.weight must be a whole number".into()),
                )?),
            };
        let reg = Registration {
            address,
            tags,
            metadata: meta,
            version,
            weight,
            ttl: None,
            health: self.health.clone(),
            signature: None,
            signed_at: None,
        };
        reg.validate()?;
        let signed_at = crate::model::now_millis();
        let payload = crate::identity::SignedFields::of_registration(
            &self.network,
            name.as_str(),
            id.as_str(),
            &reg,
            signed_at,
        )
        .payload();
        let reg = Registration {
            signature: Some(key.sign(&payload)),
            signed_at: Some(signed_at),
            ..reg
        };
        Ok((name, id, reg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_describes_the_instance_and_keeps_extra_keys() {
        let key = NodeKey::generate().unwrap();
        let mut o = NetgetOptions::service(
            "DatabaseService",
            "http://127.0.0.1:5432",
            &["http://127.0.0.1:7700"],
        );
        o.metadata.insert("description".into(), "db".into());
        o.metadata.insert("tags".into(), serde_json::json!(["v1"]));
        let (name, id, reg) = o.registration(&key).unwrap();
        assert_eq!(name.as_str(), "DatabaseService");
        assert_eq!(reg.tags, vec!["v1".to_string()]);
        assert_eq!(reg.metadata.get("description").unwrap(), "db");
        let (_, id2, _) = o.registration(&key).unwrap();
        assert_eq!(id, id2, "the same key gives the same id");
        o.metadata.remove("name");
        assert_eq!(
            o.registration(&key).unwrap_err().code(),
            "NETGET_INVALID_INPUT"
        );
    }
}
