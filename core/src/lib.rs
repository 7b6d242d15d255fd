//! netget: a service registry and discovery system.
//!
//! # Layout
//!
//! - [`error`]: the one error type, with a stable `NETGET_*` code per variant.
//! - [`model`]: networks, service names, instances, registrations, watch events; validation.
//! - [`directory`]: the in-memory directory, isolated per network, with watch channels.
//! - [`channels`]: publish/subscribe channels, scoped per network.
//! - [`health`]: active HTTP/TCP health checks of the instances a registry owns.
//! - [`metrics`]: what a registry counts, exposed at `/metrics`.
//! - [`identity`]: Ed25519 keys of nodes and registries, and what a handshake signs.
//! - [`protocol`]: the WebSocket protocol `netget/1` (see PROTOCOL.md).
//! - [`config`]: how a registry is configured (code, `netget.toml`, flags).
//! - [`security`]: network policies, name ownership, the conditional filter, origins, rate limits.
//! - [`tls`]: rustls for the registry's listener and for clients.
//! - [`server`]: the registry: HTTP API and WebSocket endpoint on one port.
//! - [`session`]: one WebSocket session on the registry.
//! - [`client`]: the `Netget` client: registration, discovery with a cache, watches, failover.
//! - [`embed`]: the options-object surface the Python and Node packages wrap.
//! - [`store`]: the embedded redb store that keeps what must survive a restart.
//! - [`rest`]: a small HTTP client for the registry's REST API (CLI, load tool, tests).
//! - [`cli`]: the `netget` command line.
//! - [`bench`]: the load tool behind `netget bench`.

pub mod bench;
pub mod channels;
pub mod cli;
pub mod client;
pub mod config;
pub mod directory;
pub mod embed;
pub mod error;
pub mod health;
pub mod identity;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod rest;
pub mod security;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;

pub use client::{DiscoverOptions, Netget, NetgetOptions, NodeType, Strategy, Subscription, Watch};
pub use config::RegistryConfig;
pub use error::{Error, Result};
pub use identity::NodeKey;
pub use model::{ChannelMessage, EventKind, Instance, Registration, Status, WatchEvent};
pub use server::{Registry, RegistryHandle};
