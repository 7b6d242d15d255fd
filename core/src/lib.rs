//! netget: a service registry and discovery system.
//!
//! # Layout, by side
//!
//! Shared by both sides:
//! - [`error`]: the one error type, with a stable `NETGET_*` code per variant.
//! - [`model`]: networks, service names, instances, registrations, watch events; validation.
//! - [`identity`]: Ed25519 keys of nodes and registries, and what a handshake signs.
//! - [`config`]: how a registry is configured (code, `netget.toml`, flags).
//! - [`security`]: network policies, name ownership, the conditional filter, origins, rate limits.
//! - [`tls`]: rustls for the registry's listener and for clients.
//! - [`wire`]: the WebSocket protocol `netget/1` (see PROTOCOL.md) and its shared encodings.
//!
//! The registry side, [`registry`]: its state, the one pipeline of operations (`registry::ops`),
//! the front ends that call it (HTTP, WebSocket sessions, each session writing through its
//! outbox, whose writer follows the session's watches itself), and what the operations work with
//! (the directory and its watch channels, channels, health checks, the store, metrics).
//!
//! The client side, [`client`]: the [`Netget`] handle, its options, the discovery cache, the
//! session actor that fails over between registries, and a REST client ([`client::rest`]) over
//! its own pool of keep-alive connections.
//!
//! Around them: [`embed`] (the options-object surface the Python and Node packages wrap) and
//! [`cli`] (the `netget` command line, with the load tool behind `netget bench`).
//!
//! # The path of one registration
//!
//! A node's `register` frame reaches `registry::session`, which turns it into a call of
//! `registry::ops::register` (a `PUT …/instances/{id}` reaches the same call from
//! `registry::http`). `ops` runs, in one order for every caller: access, validity (and the
//! signature), lifetime, the caller's limits, the filter, the name claim, the directory change
//! ([`registry::Directory`], which pushes `up`/`changed` to watchers through their channels),
//! the durable record (the store, for REST registrations), then health checks and metrics. The
//! front end turns the result into its answer; the step list with what each step may refuse is
//! the doc of `registry::ops`.

pub mod cli;
pub mod client;
pub mod config;
pub mod embed;
pub mod error;
pub mod identity;
pub mod model;
pub mod registry;
pub mod security;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod tls;
pub mod wire;

pub use client::{DiscoverOptions, Netget, NetgetOptions, NodeType, Strategy, Subscription, Watch};
pub use config::RegistryConfig;
pub use error::{Error, Result};
pub use identity::NodeKey;
pub use model::{ChannelMessage, EventKind, Instance, Registration, Status, WatchEvent};
pub use registry::{Registry, RegistryHandle};
