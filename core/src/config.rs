//! How a registry is configured: address, data dir, networks, timeouts and limits.
//!
//! Every field has a default that works on a laptop; the CLI and the bindings only override.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::identity::NodeKey;
use crate::model::{NetworkName, DEFAULT_NETWORK};
use crate::protocol::DEFAULT_MAX_FRAME;

/// The address a registry listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// The registry URL clients use by default.
pub const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:7700";

/// Everything a registry needs to start.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Where to listen; port 0 picks a free port (the handle tells which).
    pub listen: SocketAddr,
    /// Holds the registry's identity key (and, with persistence, its store).
    pub data_dir: PathBuf,
    /// The registry's identity; loaded from (or created in) `data_dir` when absent.
    pub key: Option<NodeKey>,
    /// Networks served. Default: only `development`.
    pub networks: Vec<NetworkName>,
    /// Silence from a session longer than this ends it and removes its instances: how long a
    /// killed node (no TCP close, e.g. a pulled cable) stays discoverable.
    pub session_timeout: Duration,
    /// Time between the registry's pings on each session; well under `session_timeout`.
    pub ping_interval: Duration,
    /// How long a new connection has to complete the handshake, and a challenge stays valid.
    pub handshake_timeout: Duration,
    /// Largest WebSocket text frame (and HTTP body) accepted.
    pub max_frame: usize,
    /// Most concurrent WebSocket sessions.
    pub max_sessions: usize,
    /// Malformed or refused messages one session may send before it is closed.
    pub max_session_errors: u32,
    /// Most instances one session may hold.
    pub max_instances_per_session: usize,
    /// Most services one session may watch.
    pub max_watches_per_session: usize,
    /// TTL of REST registrations that give none.
    pub default_ttl: Duration,
}

impl RegistryConfig {
    /// Defaults: `127.0.0.1:7700`, `./netget-data`, network `development`, 5 s liveness.
    pub fn new() -> RegistryConfig {
        RegistryConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            data_dir: PathBuf::from("./netget-data"),
            key: None,
            networks: vec![NetworkName::new(DEFAULT_NETWORK).unwrap_or_else(|_| unreachable!())],
            session_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_millis(1250),
            handshake_timeout: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
            max_sessions: 16_384,
            max_session_errors: 64,
            max_instances_per_session: 10_000,
            max_watches_per_session: 1024,
            default_ttl: Duration::from_secs(30),
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
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::new()
    }
}
