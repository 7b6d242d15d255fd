//! How a registry is configured: address, data dir, networks and their policies, origins, TLS,
//! timeouts and limits — from code, from `netget.toml`, and from command-line flags.
//!
//! Every field has a default that works on a laptop; the file and the flags only override.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::identity::NodeKey;
use crate::model::{NetworkName, WireDuration, DEFAULT_NETWORK};
use crate::security::{Filter, KeyGrant, Limits, NetworkConfig, OriginPolicy, Policy};
use crate::wire::DEFAULT_MAX_FRAME;

/// The address a registry listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// The registry URL clients use by default.
pub const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:7700";

/// PEM files for serving https:// and wss://.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything a registry needs to start.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Where to listen; port 0 picks a free port (the handle tells which).
    pub listen: SocketAddr,
    /// Holds the registry's identity key (and, with persistence, its store).
    pub data_dir: PathBuf,
    /// The registry's identity; loaded from (or created in) `data_dir` when absent.
    pub key: Option<NodeKey>,
    /// Networks served, with their policies. Default: only `development`, open.
    pub networks: Vec<NetworkConfig>,
    /// Whether `networks` was set deliberately (config file, flags, code): then it is stored
    /// and used; otherwise the networks stored by an earlier run are used when there are any.
    pub networks_configured: bool,
    /// Browser origins allowed besides the registry's own.
    pub origins: OriginPolicy,
    /// Serve https:// and wss:// with these files.
    pub tls: Option<TlsFiles>,
    /// Called on every handshake and registration; may deny with a reason.
    pub filter: Option<Filter>,
    /// Rate limits and idle timeout.
    pub limits: Limits,
    /// Silence from a session longer than this ends it and removes its instances: how long a
    /// killed node (no TCP close, e.g. a pulled cable) stays discoverable.
    pub session_timeout: Duration,
    /// Time between the registry's pings on each session; well under `session_timeout`.
    pub ping_interval: Duration,
    /// How long a new connection has to complete the handshake.
    pub handshake_timeout: Duration,
    /// How long a challenge nonce stays valid.
    pub challenge_ttl: Duration,
    /// Largest WebSocket text frame (and HTTP body) accepted.
    pub max_frame: usize,
    /// Most concurrent WebSocket sessions.
    pub max_sessions: usize,
    /// Most open connections, HTTP and sessions together; kept below the open-file limit
    /// (raised to the hard limit at start) with room for the store, health checks and links.
    pub max_connections: usize,
    /// Most open connections from one IP address.
    pub max_connections_per_ip: usize,
    /// How long a client has to send an HTTP request's line and headers (a connection that
    /// sends nothing, or only part of them, is closed after it).
    pub header_timeout: Duration,
    /// Malformed messages one session may send before it is closed.
    pub max_session_errors: u32,
    /// Most instances one session may hold.
    pub max_instances_per_session: usize,
    /// Most services one session may watch.
    pub max_watches_per_session: usize,
    /// Most channels one session may subscribe to.
    pub max_subscriptions_per_session: usize,
    /// TTL of REST registrations that give none.
    pub default_ttl: Duration,
    /// The cluster: peer registries, and how this one gossips with them.
    pub cluster: ClusterConfig,
    /// The DNS front end.
    pub dns: DnsConfig,
}

/// The DNS front end (`--dns-listen`, `[dns]` in `netget.toml`): service names answered from
/// the directory over UDP and TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Where to answer queries (UDP and TCP, the same port); `None`: no DNS.
    pub listen: Option<SocketAddr>,
    /// The domain the names are under, lowercase, ending with a dot (`netget.`).
    pub domain: String,
    /// How long resolvers may cache an answer.
    pub ttl: Duration,
    /// Networks whose policy is not `open` that DNS answers for anyway (DNS carries no token).
    pub networks: Vec<NetworkName>,
    /// Also answer Consul's names: `<name>.service.consul` from the first network served,
    /// `<name>.service.<network>.consul` from that network.
    pub consul: bool,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            listen: None,
            domain: "netget.".into(),
            ttl: Duration::from_secs(5),
            networks: Vec::new(),
            consul: false,
        }
    }
}

impl DnsConfig {
    /// A domain as a user writes it (`netget`, `Example.COM.`), in the form kept here.
    pub fn set_domain(&mut self, domain: &str) -> Result<()> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        let valid = !d.is_empty()
            && d.len() < 200
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            return Err(Error::InvalidInput(format!(
                "[dns] domain = {domain:?} is not a domain name like \"netget\" or \"sd.example.com\""
            )));
        }
        self.domain = format!("{d}.");
        Ok(())
    }
}

/// How a registry finds and watches its peer registries (membership by gossip over UDP).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Peer registries to join, by URL (`http://host:port`); each gossips over UDP on the same
    /// host and port number.
    pub join: Vec<String>,
    /// Where to gossip (UDP). `None`: on the HTTP listener's address and port number, and only
    /// when `join` names peers. A registry that others join without joining any itself (the
    /// first of a cluster) sets it.
    pub gossip_listen: Option<SocketAddr>,
    /// The URL peers should use to reach this registry; default: its own URL.
    pub advertise: Option<String>,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// Which cluster this registry belongs to: registries of another cluster are ignored.
    pub name: String,
    /// Public keys (standard base64, as `netget.toml` lists them) of the registries allowed to
    /// open a replication link to this one. Empty: peers on loopback addresses only.
    pub keys: Vec<String>,
    /// How long a peer registry's instances stay discoverable here after its replication link
    /// is lost, waiting for the link to return or their nodes to fail over.
    pub grace: Duration,
    /// The CA (PEM) that `https://` peers' certificates are checked against; `None`: this
    /// registry's own certificate file (a certificate shared by the cluster, or a bundle that
    /// carries the CA).
    pub ca: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            join: Vec::new(),
            gossip_listen: None,
            advertise: None,
            gossip_interval: Duration::from_millis(500),
            name: "netget".into(),
            keys: Vec::new(),
            grace: Duration::from_secs(5),
            ca: None,
        }
    }
}

impl ClusterConfig {
    /// Whether this registry gossips at all.
    pub fn enabled(&self) -> bool {
        !self.join.is_empty() || self.gossip_listen.is_some()
    }
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens stay out of logs: print names and policies only.
        f.debug_struct("RegistryConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "networks",
                &self
                    .networks
                    .iter()
                    .map(|n| format!("{}({})", n.name, n.policy.name()))
                    .collect::<Vec<_>>(),
            )
            .field("origins", &self.origins)
            .field("tls", &self.tls)
            .field("filter", &self.filter.is_some())
            .field("limits", &self.limits)
            .field("session_timeout", &self.session_timeout)
            .finish_non_exhaustive()
    }
}

impl RegistryConfig {
    /// Defaults: `127.0.0.1:7700`, `./netget-data`, network `development` open, 5 s liveness.
    pub fn new() -> RegistryConfig {
        RegistryConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            data_dir: PathBuf::from("./netget-data"),
            key: None,
            networks: vec![NetworkConfig {
                name: NetworkName::new(DEFAULT_NETWORK).unwrap_or_else(|_| unreachable!()),
                policy: Policy::Open,
            }],
            networks_configured: false,
            origins: OriginPolicy::default(),
            tls: None,
            filter: None,
            limits: Limits::default(),
            session_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_millis(1250),
            handshake_timeout: Duration::from_secs(10),
            challenge_ttl: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
            max_sessions: 16_384,
            max_connections: 20_000,
            max_connections_per_ip: 512,
            header_timeout: Duration::from_secs(10),
            max_session_errors: 64,
            max_instances_per_session: 10_000,
            max_watches_per_session: 1024,
            max_subscriptions_per_session: 256,
            default_ttl: Duration::from_secs(30),
            cluster: ClusterConfig::default(),
            dns: DnsConfig::default(),
        }
    }

    /// The same defaults, listening on `127.0.0.1:0` (tests and embedded use).
    pub fn ephemeral(data_dir: PathBuf) -> RegistryConfig {
        RegistryConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            ..RegistryConfig::new()
        }
    }

    /// Sets the liveness timeout and a ping interval that fits it (a quarter of it).
    pub fn with_session_timeout(mut self, timeout: Duration) -> RegistryConfig {
        self.session_timeout = timeout;
        self.ping_interval = timeout / 4;
        self
    }

    /// Serves these networks, all open.
    pub fn with_open_networks(mut self, names: &[&str]) -> Result<RegistryConfig> {
        self.networks = names
            .iter()
            .map(|n| NetworkConfig::open(n))
            .collect::<Result<_>>()?;
        self.networks_configured = true;
        Ok(self)
    }

    /// Reads `netget.toml` (format in README) over the defaults.
    pub fn from_file(path: &Path) -> Result<RegistryConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("cannot read config {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        RegistryConfig::from_toml(&text, base)
            .map_err(|e| Error::InvalidInput(format!("config {}: {e}", path.display())))
    }

    /// Parses the TOML text of a config file; relative paths are taken from `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<RegistryConfig> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut c = RegistryConfig::new();
        if let Some(l) = file.listen {
            c.listen = l.parse().map_err(|_| {
                Error::InvalidInput(format!(
                    "listen = {l:?} is not an address like \"127.0.0.1:7700\""
                ))
            })?;
        }
        if let Some(d) = file.data_dir {
            c.data_dir = base.join(d);
        }
        c.cluster.join = file.join;
        if let Some(g) = file.gossip_listen {
            c.cluster.gossip_listen = Some(g.parse().map_err(|_| {
                Error::InvalidInput(format!(
                    "gossip_listen = {g:?} is not an address like \"127.0.0.1:7700\""
                ))
            })?);
        }
        c.cluster.advertise = file.advertise;
        if let Some(cluster) = file.cluster {
            for key in &cluster.keys {
                crate::identity::verify_public_key(key).map_err(|e| {
                    Error::InvalidInput(format!(
                        "[cluster] keys: {key:?} is not a registry's public key: {e}"
                    ))
                })?;
            }
            c.cluster.keys = cluster.keys;
            if let Some(g) = cluster.grace {
                c.cluster.grace = g.0;
            }
            if let Some(n) = cluster.name {
                crate::model::NetworkName::new(&n)
                    .map_err(|e| Error::InvalidInput(format!("[cluster] name {n:?}: {e}")))?;
                c.cluster.name = n;
            }
            c.cluster.ca = cluster.ca.map(|p| base.join(p));
        }
        if !file.network.is_empty() {
            c.networks = file
                .network
                .into_iter()
                .map(FileNetwork::into_config)
                .collect::<Result<_>>()?;
            c.networks_configured = true;
            let mut names: Vec<_> = c.networks.iter().map(|n| &n.name).collect();
            names.sort();
            names.dedup();
            if names.len() != c.networks.len() {
                return Err(Error::InvalidInput("a network is configured twice".into()));
            }
        }
        if let Some(dns) = file.dns {
            if let Some(l) = dns.listen {
                c.dns.listen = Some(l.parse().map_err(|_| {
                    Error::InvalidInput(format!(
                        "[dns] listen = {l:?} is not an address like \"127.0.0.1:8600\""
                    ))
                })?);
            }
            if let Some(d) = dns.domain {
                c.dns.set_domain(&d)?;
            }
            if let Some(t) = dns.ttl {
                c.dns.ttl = t.0;
            }
            c.dns.networks = dns
                .networks
                .iter()
                .map(|n| NetworkName::new(n))
                .collect::<Result<_>>()
                .map_err(|e| Error::InvalidInput(format!("[dns] networks: {e}")))?;
            c.dns.consul = dns.consul;
        }
        if let Some(cors) = file.cors {
            c.origins.allowed = cors.allowed_origins;
        }
        if let Some(tls) = file.tls {
            c.tls = Some(TlsFiles {
                cert: base.join(tls.cert),
                key: base.join(tls.key),
            });
        }
        if let Some(l) = file.limits {
            let d = &mut c.limits;
            if let Some(v) = l.requests_per_second_per_session {
                d.session_rate = v;
            }
            if let Some(v) = l.burst_per_session {
                d.session_burst = v;
            }
            if let Some(v) = l.requests_per_second_per_ip {
                d.ip_rate = v;
            }
            if let Some(v) = l.burst_per_ip {
                d.ip_burst = v;
            }
            if let Some(v) = l.failed_auths_per_second_per_ip {
                d.failed_auth_rate = v;
            }
            if let Some(v) = l.failed_auth_burst_per_ip {
                d.failed_auth_burst = v;
            }
            if let Some(v) = l.idle_timeout {
                d.idle_timeout = v.0;
            }
            if let Some(v) = l.max_blocking_wait {
                d.max_blocking_wait = v.0;
            }
            if let Some(v) = l.max_frame_bytes {
                c.max_frame = v;
            }
            if let Some(v) = l.max_sessions {
                c.max_sessions = v;
            }
            if let Some(v) = l.max_connections {
                c.max_connections = v;
            }
            if let Some(v) = l.max_connections_per_ip {
                c.max_connections_per_ip = v;
            }
            if let Some(v) = l.header_timeout {
                c.header_timeout = v.0;
            }
            if let Some(v) = l.max_instances_per_session {
                c.max_instances_per_session = v;
            }
            if let Some(v) = l.max_watches_per_session {
                c.max_watches_per_session = v;
            }
            if let Some(v) = l.handshake_timeout {
                c.handshake_timeout = v.0;
                c.challenge_ttl = v.0;
            }
            if let Some(v) = l.session_timeout {
                c = c.with_session_timeout(v.0);
            }
        }
        Ok(c)
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::new()
    }
}

/// `netget.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    /// Peer registries to join.
    #[serde(default)]
    join: Vec<String>,
    /// Where to gossip with them (UDP).
    gossip_listen: Option<String>,
    /// The URL peers should use for this registry.
    advertise: Option<String>,
    cluster: Option<FileCluster>,
    #[serde(default)]
    network: Vec<FileNetwork>,
    cors: Option<FileCors>,
    tls: Option<FileTls>,
    limits: Option<FileLimits>,
    dns: Option<FileDns>,
}

/// `[dns]`: the DNS front end.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDns {
    listen: Option<String>,
    domain: Option<String>,
    ttl: Option<WireDuration>,
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    consul: bool,
}

/// `[cluster]`: who may replicate with this registry, and for how long a lost peer's
/// instances are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCluster {
    #[serde(default)]
    keys: Vec<String>,
    grace: Option<WireDuration>,
    name: Option<String>,
    ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNetwork {
    name: String,
    #[serde(default = "open")]
    policy: String,
    #[serde(default)]
    tokens: Vec<String>,
    tokens_env: Option<String>,
    #[serde(default)]
    keys: Vec<KeyGrant>,
}

fn open() -> String {
    "open".into()
}

impl FileNetwork {
    fn into_config(self) -> Result<NetworkConfig> {
        let name = NetworkName::new(&self.name)?;
        let mut tokens = self.tokens;
        if let Some(var) = &self.tokens_env {
            let value = std::env::var(var).map_err(|_| {
                Error::InvalidInput(format!(
                    "network {:?}: environment variable {var} (tokens_env) is not set",
                    self.name
                ))
            })?;
            tokens.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        }
        if tokens.iter().any(|t| t.len() < 8) {
            return Err(Error::InvalidInput(format!(
                "network {:?}: tokens must be at least 8 characters",
                self.name
            )));
        }
        for k in &self.keys {
            crate::identity::verify_public_key(&k.public_key)
                .map_err(|e| Error::InvalidInput(format!("network {:?}: {e}", self.name)))?;
        }
        let policy = match self.policy.as_str() {
            "open" => Policy::Open,
            "token" => {
                if tokens.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "network {:?} has policy \"token\" but no tokens (tokens = [...] or tokens_env)",
                        self.name
                    )));
                }
                Policy::Token { tokens }
            }
            "keys" => {
                if self.keys.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "network {:?} has policy \"keys\" but no keys",
                        self.name
                    )));
                }
                Policy::Keys {
                    keys: self.keys,
                    tokens,
                }
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "network {:?}: unknown policy {other:?}; use open, token or keys",
                    self.name
                )))
            }
        };
        Ok(NetworkConfig { name, policy })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCors {
    #[serde(default)]
    allowed_origins: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    requests_per_second_per_session: Option<u32>,
    burst_per_session: Option<u32>,
    requests_per_second_per_ip: Option<u32>,
    burst_per_ip: Option<u32>,
    failed_auths_per_second_per_ip: Option<u32>,
    failed_auth_burst_per_ip: Option<u32>,
    idle_timeout: Option<WireDuration>,
    max_blocking_wait: Option<WireDuration>,
    max_frame_bytes: Option<usize>,
    max_sessions: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    header_timeout: Option<WireDuration>,
    max_instances_per_session: Option<usize>,
    max_watches_per_session: Option<usize>,
    handshake_timeout: Option<WireDuration>,
    session_timeout: Option<WireDuration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_section_parses_and_a_bad_domain_is_refused_with_what_to_write() {
        let c = RegistryConfig::from_toml(
            "[dns]\nlisten = \"127.0.0.1:8600\"\ndomain = \"SD.Example.com.\"\nttl = \"2s\"\nnetworks = [\"production\"]\nconsul = true\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.dns.listen, Some("127.0.0.1:8600".parse().unwrap()));
        assert_eq!(c.dns.domain, "sd.example.com.");
        assert_eq!(c.dns.ttl, Duration::from_secs(2));
        assert_eq!(c.dns.networks, [NetworkName::new("production").unwrap()]);
        assert!(c.dns.consul);
        assert_eq!(RegistryConfig::new().dns, DnsConfig::default());
        for bad in ["", "a..b", "has space", "."] {
            let e =
                RegistryConfig::from_toml(&format!("[dns]\ndomain = {bad:?}\n"), Path::new("."))
                    .err()
                    .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(e.to_string().contains("is not a domain name"), "{e}");
        }
        let e = RegistryConfig::from_toml("[dns]\nlisten = \"nowhere\"\n", Path::new("."))
            .err()
            .unwrap();
        assert!(e.to_string().contains("127.0.0.1:8600"), "{e}");
    }

    #[test]
    fn the_spec_example_config_parses() {
        std::env::set_var("NETGET_TEST_PROD_TOKENS", "from-env-1, from-env-2");
        let c = RegistryConfig::from_toml(
            r#"
listen = "127.0.0.1:7700"
data_dir = "./netget-data"
join = ["http://127.0.0.1:7710"]
gossip_listen = "127.0.0.1:7709"

[[network]]
name = "development"
policy = "open"

[[network]]
name = "production"
policy = "token"
tokens = ["change-me"]
tokens_env = "NETGET_TEST_PROD_TOKENS"

[[network]]
name = "staging"
policy = "keys"
keys = [{ public_key = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", services = ["orders", "billing"] }]

[cluster]
keys = ["A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="]
grace = "3s"
ca = "cluster-ca.pem"

[cors]
allowed_origins = ["http://localhost:3000"]

[limits]
requests_per_second_per_session = 50
session_timeout = "2s"
"#,
            Path::new("/etc/netget"),
        )
        .unwrap();
        assert_eq!(c.networks.len(), 3);
        assert_eq!(
            c.networks[1].policy,
            Policy::Token {
                tokens: vec!["change-me".into(), "from-env-1".into(), "from-env-2".into()]
            }
        );
        assert_eq!(c.data_dir, Path::new("/etc/netget/./netget-data"));
        assert_eq!(c.origins.allowed, vec!["http://localhost:3000".to_string()]);
        assert_eq!(c.cluster.join, ["http://127.0.0.1:7710"]);
        assert_eq!(
            c.cluster.gossip_listen,
            Some("127.0.0.1:7709".parse().unwrap())
        );
        assert_eq!(c.cluster.keys.len(), 1);
        assert_eq!(c.cluster.grace, Duration::from_secs(3));
        assert_eq!(
            c.cluster.ca.as_deref(),
            Some(Path::new("/etc/netget/cluster-ca.pem"))
        );
        assert_eq!(c.limits.session_rate, 50);
        assert_eq!(c.session_timeout, Duration::from_secs(2));
    }

    #[test]
    fn config_mistakes_are_reported_clearly() {
        let base = Path::new(".");
        for (text, needle) in [
            ("[[network]]\nname = \"p\"\npolicy = \"token\"\n", "no tokens"),
            ("[[network]]\nname = \"p\"\npolicy = \"vip\"\n", "unknown policy"),
            ("bogus = 1\n", "unknown field"),
            ("[[network]]\nname = \"p\"\npolicy = \"token\"\ntokens = [\"short\"]\n", "at least 8"),
            ("[[network]]\nname = \"s\"\npolicy = \"keys\"\nkeys = [{ public_key = \"nope\" }]\n", "publicKey"),
            ("[cluster]\nkeys = [\"nope\"]\n", "not a registry's public key"),
            ("[cluster]\nname = \"not a name\"\n", "[cluster] name"),
        ] {
            let e = RegistryConfig::from_toml(text, base).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }
}
