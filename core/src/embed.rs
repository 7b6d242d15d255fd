//! The surface the Python and Node packages wrap: one [`Node`] built from the same options object
//! users write in either language (`new Netget({...})`, `Netget(...)`), with JSON values in and
//! out. Everything a binding would otherwise re-implement — option parsing and validation,
//! choosing between a registry and a member, shaping results — lives here, so both packages behave
//! identically and a binding only converts values, errors and futures.
//!
//! Words: a node is a registry or a *member* of a network (a service or a client, in session
//! with a registry). "Peer" is kept for peer registries (`join`, the cluster).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::client::{
    DiscoverOptions, Netget, NetgetOptions, NodeType, Strategy, Subscription, Watch,
};
use crate::config::{RegistryConfig, TlsFiles};
use crate::error::{Error, Result};
use crate::identity::NodeKey;
use crate::model::{HealthCheck, Instance, WireDuration, DEFAULT_NETWORK};
use crate::registry::{Registry, RegistryHandle};
use crate::security::{Filter, NetworkConfig};

/// The options object, as users write it. Keys are camelCase; snake_case is accepted too, so
/// Python users can write `registry_nodes=` and Node users `registryNodes:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// `service` (default when `metadata.name` is set), `client`, or `registry`.
    #[serde(alias = "node_type")]
    pub node_type: Option<String>,
    /// Network to join (members) or served as open (registries, together with `networks`).
    pub network: Option<String>,
    /// Describes the instance: `name`, `address`, `tags`, `version`, `id`, `weight`, extras.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// Registries to use (members) or to join as peers (registries: their cluster).
    #[serde(default, alias = "registry_nodes")]
    pub registry_nodes: Vec<String>,
    /// Members: use `registryNodes` in the order given (start at the first, fail over to the
    /// next) instead of starting at a random one — for registries that are not one cluster.
    #[serde(default, alias = "in_order")]
    pub in_order: bool,
    /// An active health check for the registry to run.
    pub health: Option<HealthCheck>,
    /// Join token.
    pub token: Option<String>,
    /// `{ ca: "ca.pem" }`: trust this CA for https/wss registries.
    pub tls: Option<TlsSpec>,
    /// Verify every instance's signature.
    #[serde(default)]
    pub verify: bool,
    /// Per service, the public keys trusted to sign its instances.
    #[serde(default, alias = "trusted_keys")]
    pub trusted_keys: HashMap<String, Vec<String>>,
    /// The node's key, as `netget keygen` writes it (base64 seed).
    pub key: Option<String>,
    /// A key file.
    #[serde(alias = "key_file")]
    pub key_file: Option<PathBuf>,
    /// Data directory: the node's key (members) or the registry's data (registries).
    #[serde(alias = "data_dir")]
    pub data_dir: Option<PathBuf>,
    /// Bound on every call to a registry (`"10s"`).
    #[serde(alias = "request_timeout")]
    pub request_timeout: Option<WireDuration>,
    /// Registries: address to listen on (`"127.0.0.1:0"` picks a free port).
    pub listen: Option<String>,
    /// Registries: a `netget.toml` to start from.
    pub config: Option<PathBuf>,
    /// Registries: networks served as open.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Registries: liveness timeout (`"5s"`).
    #[serde(alias = "session_timeout")]
    pub session_timeout: Option<WireDuration>,
    /// Registries: browser origins allowed.
    #[serde(default)]
    pub cors: Vec<String>,
    /// Registries: TLS certificate (PEM).
    #[serde(alias = "tls_cert")]
    pub tls_cert: Option<PathBuf>,
    /// Registries: TLS key (PEM).
    #[serde(alias = "tls_key")]
    pub tls_key: Option<PathBuf>,
}

/// Client TLS options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// A CA certificate (PEM) to trust instead of the system's roots.
    pub ca: Option<PathBuf>,
}

impl NodeSpec {
    /// Parses the options object; a mistake names the option.
    pub fn from_value(v: Value) -> Result<NodeSpec> {
        serde_json::from_value(v)
            .map_err(|e| Error::InvalidInput(format!("invalid Netget options: {e}")))
    }

    /// What `nodeType` asks for (or, without it, what the options imply): the one place the
    /// string is read.
    fn role(&self) -> Result<Role> {
        match self.node_type.as_deref() {
            Some("registry") => Ok(Role::Registry),
            Some("service") => Ok(Role::Member(NodeType::Service)),
            Some("client") => Ok(Role::Member(NodeType::Client)),
            Some(other) => Err(Error::InvalidInput(format!(
                "nodeType {other:?} is not one of \"service\", \"client\", \"registry\""
            ))),
            None if self.metadata.contains_key("name") => Ok(Role::Member(NodeType::Service)),
            None => Ok(Role::Member(NodeType::Client)),
        }
    }

    fn key(&self) -> Result<Option<NodeKey>> {
        match (&self.key, &self.key_file) {
            (Some(text), _) => NodeKey::from_text(text).map(Some),
            (None, Some(path)) => NodeKey::load(path).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn member_options(&self, node_type: NodeType) -> Result<NetgetOptions> {
        let mut o = NetgetOptions {
            node_type,
            network: self
                .network
                .clone()
                .unwrap_or_else(|| DEFAULT_NETWORK.into()),
            metadata: self.metadata.clone(),
            health: self.health.clone(),
            token: self.token.clone(),
            tls_ca: self.tls.as_ref().and_then(|t| t.ca.clone()),
            verify: self.verify,
            trusted_keys: self.trusted_keys.clone(),
            key: self.key()?,
            in_order: self.in_order,
            ..NetgetOptions::default()
        };
        if !self.registry_nodes.is_empty() {
            o.registry_nodes = self.registry_nodes.clone();
        }
        if let Some(d) = &self.data_dir {
            o.data_dir = Some(d.clone());
        }
        if let Some(t) = self.request_timeout {
            o.request_timeout = t.0;
        }
        Ok(o)
    }

    fn registry_config(&self) -> Result<RegistryConfig> {
        let mut c = match &self.config {
            Some(path) => RegistryConfig::from_file(path)?,
            None => RegistryConfig::new(),
        };
        if let Some(l) = &self.listen {
            c.listen = l.parse().map_err(|_| {
                Error::InvalidInput(format!(
                    "listen {l:?} is not an address like \"127.0.0.1:7700\""
                ))
            })?;
        }
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        let mut open: Vec<&str> = self.networks.iter().map(String::as_str).collect();
        if let Some(n) = &self.network {
            if !open.contains(&n.as_str()) {
                open.insert(0, n);
            }
        }
        for name in open {
            if !c.networks.iter().any(|n| n.name.as_str() == name) {
                c.networks.push(NetworkConfig::open(name)?);
                c.networks_configured = true;
            }
        }
        if let Some(t) = self.session_timeout {
            c = c.with_session_timeout(t.0);
        }
        c.origins.allowed.extend(self.cors.iter().cloned());
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                c.tls = Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                })
            }
            (None, None) => {}
            _ => return Err(Error::InvalidInput("tlsCert and tlsKey go together".into())),
        }
        // A registry's registry nodes are its peers: it joins their cluster.
        c.cluster.join.extend(self.registry_nodes.iter().cloned());
        c.key = self.key()?;
        Ok(c)
    }
}

/// Discovery options as users write them: `{ tags, healthyOnly, strategy, cached }`.
pub fn discover_options(v: Option<Value>) -> Result<DiscoverOptions> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Raw {
        #[serde(default)]
        tags: Vec<String>,
        #[serde(alias = "healthy_only")]
        healthy_only: Option<bool>,
        strategy: Option<String>,
        cached: Option<bool>,
    }
    let raw: Raw = match v {
        None | Some(Value::Null) => Raw::default(),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| Error::InvalidInput(format!("invalid discovery options: {e}")))?,
    };
    let defaults = DiscoverOptions::default();
    Ok(DiscoverOptions {
        tags: raw.tags,
        healthy_only: raw.healthy_only.unwrap_or(defaults.healthy_only),
        strategy: match raw.strategy {
            Some(s) => s.parse::<Strategy>()?,
            None => defaults.strategy,
        },
        cached: raw.cached.unwrap_or(defaults.cached),
    })
}

/// An instance as every surface returns it.
pub fn instance_value(i: &Instance) -> Value {
    serde_json::to_value(i).unwrap_or(Value::Null)
}

/// What `nodeType` names, parsed once when the node is built: a registry, or a member of a
/// network of the client's [`NodeType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Registry,
    Member(NodeType),
}

impl Role {
    /// `registry`, `service` or `client`, as users write it.
    fn as_str(self) -> &'static str {
        match self {
            Role::Registry => "registry",
            Role::Member(t) => t.as_str(),
        }
    }
}

/// What a node holds: a registry (with a client session to itself, so it can discover, watch
/// and publish like any node) or a member's client.
enum Kind {
    Registry {
        config: Box<RegistryConfig>,
        handle: Mutex<Option<(RegistryHandle, Netget)>>,
    },
    Member(Netget),
}

/// A netget node of any type, as the bindings expose it.
pub struct Node {
    kind: Kind,
    role: Role,
    spec: NodeSpec,
}

impl Node {
    /// Builds a node from its options; a registry also takes the application's filter.
    /// Must be called inside a tokio runtime (members start connecting at once).
    pub fn new(spec: NodeSpec, filter: Option<Filter>) -> Result<Node> {
        let role = spec.role()?;
        let kind = match role {
            Role::Registry => {
                let mut config = spec.registry_config()?;
                config.filter = filter;
                Kind::Registry {
                    config: Box::new(config),
                    handle: Mutex::new(None),
                }
            }
            Role::Member(node_type) => {
                if filter.is_some() {
                    return Err(Error::InvalidInput(
                        "filter is an option of registry nodes".into(),
                    ));
                }
                Kind::Member(Netget::new(spec.member_options(node_type)?)?)
            }
        };
        Ok(Node { kind, role, spec })
    }

    /// Parses `options` and builds the node.
    pub fn from_value(options: Value, filter: Option<Filter>) -> Result<Node> {
        Node::new(NodeSpec::from_value(options)?, filter)
    }

    /// `registry`, `service` or `client`.
    pub fn node_type(&self) -> &'static str {
        self.role.as_str()
    }

    /// Registries: starts listening and resolves with the URL. Members: resolves once connected,
    /// with the registry's WebSocket URL.
    pub async fn start(&self) -> Result<String> {
        match &self.kind {
            Kind::Member(m) => m.start().await,
            Kind::Registry { config, handle } => {
                if let Some(url) = self.url() {
                    return Ok(url);
                }
                let registry = Registry::spawn((**config).clone()).await?;
                let url = registry.url();
                let mut o = self.spec.member_options(NodeType::Client)?;
                o.registry_nodes = vec![url.clone()];
                o.data_dir = None;
                o.network = config
                    .networks
                    .first()
                    .map(|n| n.name.to_string())
                    .unwrap_or_else(|| DEFAULT_NETWORK.into());
                if o.tls_ca.is_none() && config.tls.is_some() {
                    return Err(Error::InvalidInput(
                        "a TLS registry node needs tls.ca to talk to itself".into(),
                    ));
                }
                let own = Netget::new(o)?;
                let lost_race = {
                    let mut slot = handle.lock().unwrap_or_else(|e| e.into_inner());
                    match slot.as_ref() {
                        Some((existing, _)) => Some((existing.url(), registry, own)),
                        None => {
                            *slot = Some((registry, own));
                            None
                        }
                    }
                };
                match lost_race {
                    // Another start() got there first: keep its registry.
                    Some((url, registry, own)) => {
                        own.stop().await?;
                        registry.shutdown().await?;
                        Ok(url)
                    }
                    None => Ok(url),
                }
            }
        }
    }

    /// The registry's URL once started (registries), or the URL of the registry this member is
    /// in session with.
    pub fn url(&self) -> Option<String> {
        match &self.kind {
            Kind::Member(m) => m.connected_to(),
            Kind::Registry { handle, .. } => handle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|(h, _)| h.url()),
        }
    }

    /// The node's client: a member's own, or a registry's session to itself.
    fn netget(&self) -> Result<Netget> {
        match &self.kind {
            Kind::Member(m) => Ok(m.clone()),
            Kind::Registry { handle, .. } => handle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|(_, own)| own.clone())
                .ok_or_else(|| {
                    Error::Closed("the registry is not started; call start() first".into())
                }),
        }
    }

    /// The node's public key.
    pub fn public_key(&self) -> Result<String> {
        Ok(self.netget()?.public_key())
    }

    /// Registers this service node; resolves with the stored instance.
    pub async fn register_with_network(&self) -> Result<Value> {
        let inst = self.netget()?.register_with_network().await?;
        Ok(instance_value(&inst))
    }

    /// Removes this node's registration.
    pub async fn deregister(&self) -> Result<()> {
        self.netget()?.deregister().await
    }

    /// One instance (or `null`) chosen by the options' strategy.
    pub async fn discover_service_node(&self, name: &str, options: Option<Value>) -> Result<Value> {
        let opts = discover_options(options)?;
        let found = self
            .netget()?
            .discover_service_node_with(name, &opts)
            .await?;
        Ok(found.map(|i| instance_value(&i)).unwrap_or(Value::Null))
    }

    /// The cache-only fast path of `discover_service_node`: `Some` when the service's snapshot
    /// is cached (the value is the instance or `null`), `None` when the registry must be asked.
    pub fn discover_cached(
        &self,
        name: &str,
        options: &DiscoverOptions,
    ) -> Option<Option<Arc<Instance>>> {
        if !options.cached {
            return None;
        }
        self.netget().ok()?.pick_cached(name, options)
    }

    /// Every matching instance.
    pub async fn discover_service_nodes(
        &self,
        name: &str,
        options: Option<Value>,
    ) -> Result<Value> {
        let opts = discover_options(options)?;
        let all = self.netget()?.discover_service_nodes(name, &opts).await?;
        Ok(Value::Array(
            all.iter().map(|i| instance_value(i)).collect(),
        ))
    }

    /// Services of the network with counts.
    pub async fn services(&self) -> Result<Value> {
        let list = self.netget()?.services().await?;
        serde_json::to_value(list).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Watches a service.
    pub fn watch(&self, name: &str) -> Result<Watch> {
        self.netget()?.watch(name)
    }

    /// Subscribes to a channel.
    pub fn subscribe(&self, channel: &str) -> Result<Subscription> {
        self.netget()?.subscribe(channel)
    }

    /// Publishes on a channel; resolves with the number of subscribers reached.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<usize> {
        self.netget()?.publish(channel, data).await
    }

    /// Adds a registry node to fail over to.
    pub fn add_registry_node(&self, url: &str) -> Result<()> {
        self.netget()?.add_registry_node(url)
    }

    /// Removes a registry node.
    pub fn remove_registry_node(&self, url: &str) -> Result<()> {
        self.netget()?.remove_registry_node(url)
    }

    /// The registry nodes of a member.
    pub fn registry_nodes(&self) -> Vec<String> {
        self.netget()
            .map(|p| p.registry_nodes())
            .unwrap_or_default()
    }

    /// Stops the node: a member deregisters and closes its session; a registry closes every
    /// session and stops listening. Idempotent.
    pub async fn stop(&self) -> Result<()> {
        match &self.kind {
            Kind::Member(m) => m.stop().await,
            Kind::Registry { handle, .. } => {
                let taken = handle.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some((registry, own)) = taken {
                    own.stop().await?;
                    tokio::time::timeout(Duration::from_secs(15), registry.shutdown())
                        .await
                        .map_err(|_| {
                            Error::timeout("registry shutdown", Duration::from_secs(15))
                        })??;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_registry_node_joins_the_cluster_of_its_registry_nodes() {
        let spec = NodeSpec::from_value(json!({
            "nodeType": "registry", "registryNodes": ["http://127.0.0.1:7701", "http://127.0.0.1:7702"]
        }))
        .unwrap();
        let c = spec.registry_config().unwrap();
        assert_eq!(
            c.cluster.join,
            ["http://127.0.0.1:7701", "http://127.0.0.1:7702"]
        );
        assert!(c.cluster.enabled());
    }

    #[test]
    fn options_accept_camel_and_snake_case_and_name_mistakes() {
        let a = NodeSpec::from_value(json!({"nodeType":"client","registryNodes":["http://a:1"]}))
            .unwrap();
        let b = NodeSpec::from_value(json!({"node_type":"client","registry_nodes":["http://a:1"]}))
            .unwrap();
        assert_eq!(a.registry_nodes, b.registry_nodes);
        // Members start at a random registry unless told to take them in order.
        assert!(!a.member_options(NodeType::Client).unwrap().in_order);
        for ordered in [json!({"inOrder": true}), json!({"in_order": true})] {
            let o = NodeSpec::from_value(ordered).unwrap();
            assert!(o.member_options(NodeType::Client).unwrap().in_order);
        }
        let e = NodeSpec::from_value(json!({"registryNode":["x"]})).unwrap_err();
        assert!(e.to_string().contains("registryNode"), "{e}");
        let s = NodeSpec::from_value(json!({"metadata":{"name":"web"}})).unwrap();
        assert_eq!(s.role().unwrap(), Role::Member(NodeType::Service));
        let c = NodeSpec::from_value(json!({})).unwrap();
        assert_eq!(c.role().unwrap(), Role::Member(NodeType::Client));
        let r = NodeSpec::from_value(json!({"nodeType":"registry"})).unwrap();
        assert_eq!(r.role().unwrap().as_str(), "registry");
        let bad = NodeSpec::from_value(json!({"nodeType":"router"})).unwrap();
        assert_eq!(bad.role().unwrap_err().code(), "NETGET_INVALID_INPUT");
    }

    #[test]
    fn discovery_options_parse_with_defaults() {
        let d = discover_options(None).unwrap();
        assert!(d.healthy_only && d.cached);
        let d = discover_options(Some(
            json!({"tags":["v1"],"strategy":"round-robin","healthyOnly":false}),
        ))
        .unwrap();
        assert_eq!(d.strategy, Strategy::RoundRobin);
        assert!(!d.healthy_only);
        assert!(discover_options(Some(json!({"strategy":"fastest"}))).is_err());
    }

    #[test]
    fn registry_options_build_a_config() {
        let s = NodeSpec::from_value(
            json!({"nodeType":"registry","listen":"127.0.0.1:0","network":"production",
            "networks":["development"],"sessionTimeout":"2s","cors":["http://x"]}),
        )
        .unwrap();
        let c = s.registry_config().unwrap();
        let names: Vec<_> = c.networks.iter().map(|n| n.name.to_string()).collect();
        assert_eq!(names, vec!["development", "production"]);
        assert_eq!(c.session_timeout, Duration::from_secs(2));
        assert_eq!(c.origins.allowed, vec!["http://x".to_string()]);
    }
}
