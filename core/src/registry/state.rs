//! What one registry holds: its directory, identity, policies, store, health checks, channels,
//! counters and session slots.
//!
//! Front ends and the operations in `ops` reach the registry through a shared
//! [`RegistryState`]; its fields are private to the registry side, so nothing outside it can
//! change the directory or the store except through `ops`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::Message;
use tokio::sync::{watch, Semaphore};

use super::channels::Channels;
use super::cluster::{Links, Member, Membership};
use super::directory::Directory;
use super::health::Health;
use super::metrics::Metrics;
use super::outbox::Outbox;
use super::store::Store;
use crate::config::RegistryConfig;
use crate::error::Result;
use crate::identity::{NodeKey, REGISTRY_KEY_FILE};
use crate::model::NetworkName;
use crate::security::Guard;
use crate::wire::ServerMessage;

/// The state shared by every request and session of one registry.
#[derive(Debug)]
pub struct RegistryState {
    /// The directory this registry serves.
    pub(super) directory: Arc<Directory>,
    /// Configuration as started.
    pub(super) config: RegistryConfig,
    /// The registry's id (derived from its key): what nodes sign, what instances carry.
    pub(super) registry_id: Arc<str>,
    /// The registry's key: it signs this registry's hello on the replication links it opens.
    pub(super) key: NodeKey,
    /// This run of the registry (its start time, ms since the Unix epoch): its gossip generation,
    /// and what its revisions count in.
    pub(super) epoch: u64,
    /// Policies, name claims and per-IP limits.
    pub(super) guard: Guard,
    /// Publish/subscribe channels.
    pub(super) channels: Channels,
    /// What the registry counts, for `/metrics`.
    pub(super) metrics: Arc<Metrics>,
    /// The active health checks of the instances this registry owns.
    pub(super) health: Arc<Health>,
    /// Where REST registrations, name claims and policies are kept across restarts.
    pub(super) store: Store,
    /// Source of session ids.
    next_session: AtomicU64,
    /// Caps concurrent sessions; a permit is held for a session's lifetime.
    pub(super) sessions: Arc<Semaphore>,
    /// Flips to `true` when the registry starts shutting down.
    pub(super) shutdown_rx: watch::Receiver<bool>,
    /// This registry's place in the cluster, once it gossips (set once, at start).
    pub(super) cluster: std::sync::OnceLock<Membership>,
    /// Its replication links to its peers, as it follows them.
    pub(super) links: Links,
    /// The outbox of each open session, by id, so the registry can tell a session something
    /// unasked (that an instance of it was taken back).
    outboxes: std::sync::Mutex<std::collections::HashMap<u64, Outbox>>,
}

impl RegistryState {
    /// The state of a registry configured by `config`, keeping what must last in `store`. The
    /// registry's key is `config.key`, or the one in its data dir (made on first start).
    pub(super) fn new(
        config: RegistryConfig,
        shutdown_rx: watch::Receiver<bool>,
        store: Store,
    ) -> Result<Arc<RegistryState>> {
        let key = match &config.key {
            Some(k) => k.clone(),
            None => NodeKey::load_or_create(&config.data_dir, REGISTRY_KEY_FILE)?,
        };
        let registry_id = key.short_id();
        let names: Vec<NetworkName> = config.networks.iter().map(|n| n.name.clone()).collect();
        let directory = Arc::new(Directory::new(&registry_id, &names));
        let guard = Guard::new(&config.networks, config.limits.clone());
        let mut metrics = Metrics::new();
        metrics.register_store(store.stats());
        let metrics = Arc::new(metrics);
        let health = Health::new(directory.clone(), metrics.clone())?;
        Ok(Arc::new(RegistryState {
            store,
            guard,
            channels: Channels::default(),
            metrics,
            health,
            directory,
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            config,
            registry_id: Arc::from(registry_id),
            key,
            epoch: crate::model::now_millis(),
            next_session: AtomicU64::new(0),
            shutdown_rx,
            cluster: std::sync::OnceLock::new(),
            links: Links::default(),
            outboxes: Default::default(),
        }))
    }

    /// Lists (or, with `None`, unlists) the outbox of session `id`.
    pub(super) fn set_outbox(&self, id: u64, outbox: Option<Outbox>) {
        let mut outboxes = self.outboxes.lock().unwrap_or_else(|e| e.into_inner());
        match outbox {
            Some(o) => outboxes.insert(id, o),
            None => outboxes.remove(&id),
        };
    }

    /// Sends `message` to session `id` if it is open, without waiting.
    pub(super) fn tell_session(&self, id: u64, message: &ServerMessage) {
        let outboxes = self.outboxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = outboxes.get(&id) {
            let _ = o.try_send(Message::Text(message.to_text().into()));
        }
    }

    /// A fresh session id.
    pub(super) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The registries of this one's cluster as gossip shows them (this one first); `None` when
    /// it does not gossip.
    pub(super) async fn cluster_members(&self) -> Option<Vec<Member>> {
        let mut members = self.cluster.get()?.members().await;
        for m in members.iter_mut().filter(|m| !m.this) {
            let link = self.links.get(&m.id);
            m.linked = link.linked;
            m.replicated = link.applied.filter(|_| link.epoch == Some(m.epoch));
        }
        // This registry's readiness as of now (gossip carries it a round later).
        let live_peers: Vec<Arc<str>> = members
            .iter()
            .filter(|m| m.live && !m.this)
            .map(|m| Arc::from(m.id.as_str()))
            .collect();
        let ready = self
            .links
            .ready(&live_peers, !self.config.cluster.join.is_empty());
        for m in members.iter_mut().filter(|m| m.this) {
            m.ready = ready;
        }
        Some(members)
    }

    /// Sessions open right now.
    pub(super) fn open_sessions(&self) -> usize {
        self.config.max_sessions - self.sessions.available_permits()
    }
}
