//! Who owns an instance, what keeps it alive, and who may change it.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::InstanceKey;

/// Who may change or remove an instance, and what keeps it alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Registered over a WebSocket session: lives while that session lives. `key` is the node's
    /// public key, so the same node reconnecting (same key) may take its instance back.
    Session { session: u64, key: Arc<str> },
    /// Registered over HTTP: lives until it expires unless renewed by a heartbeat. `token` is a
    /// digest of the bearer token used (if any): only the same token may change or remove it.
    Rest {
        /// `None`: lives by its active health check instead.
        ttl: Option<Duration>,
        token: Option<Arc<str>>,
    },
    /// Replicated from the peer registry `registry`, which owns it as `origin` says (a session
    /// there, or a REST registration made there). It lives as long as that registry replicates
    /// it, runs no timer or check here, and changes only by what that registry's replication
    /// link sends — or when the node it belongs to registers it here (failover).
    Peer {
        registry: Arc<str>,
        /// The owner as the owning registry holds it (its session number means nothing here).
        origin: Box<Owner>,
    },
}

impl Owner {
    /// Whether `by` may replace, renew or remove an instance this owner holds: the same node key
    /// (its session, the same node reconnected, here or at another registry of the cluster), the
    /// same REST token at the same registry, or a peer registry's replicated change of a
    /// replica. The one hand-over rule: registration, deregistration and heartbeats of an
    /// existing instance ask it (a heartbeat with the wrong token keeps its own message).
    pub fn may_be_changed_by(&self, by: &Owner, key: &InstanceKey) -> Result<()> {
        if self.node_key().is_some() && self.node_key() == by.node_key() {
            return Ok(());
        }
        let allowed = match (self, by) {
            (Owner::Rest { token: a, .. }, Owner::Rest { token: b, .. }) => a == b,
            // A later change from the cluster: its owner (or a registry the node moved to).
            (Owner::Peer { .. }, Owner::Peer { .. }) => true,
            _ => false,
        };
        if allowed {
            return Ok(());
        }
        let (service, id) = (key.1.as_str(), key.2.as_str());
        Err(Error::Forbidden(match self {
            Owner::Session { .. } => format!(
                "instance {id:?} of service {service:?} is owned by another node (WebSocket session with a different key); only its owner may change or remove it"
            ),
            Owner::Rest { .. } => format!(
                "instance {id:?} of service {service:?} is owned by another REST registration (a different token); only its owner may change or remove it"
            ),
            Owner::Peer { registry, .. } => format!(
                "instance {id:?} of service {service:?} is owned by registry {registry:?} of this cluster; change or remove it there"
            ),
        }))
    }

    /// The node key of a session registration, here or at the peer that owns it.
    fn node_key(&self) -> Option<&Arc<str>> {
        match self {
            Owner::Session { key, .. } => Some(key),
            Owner::Peer { origin, .. } => origin.node_key(),
            Owner::Rest { .. } => None,
        }
    }

    /// The peer registry that owns a replica; `None` for what this registry owns.
    pub fn peer(&self) -> Option<&Arc<str>> {
        match self {
            Owner::Peer { registry, .. } => Some(registry),
            Owner::Session { .. } | Owner::Rest { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceId, NetworkName, ServiceName};

    fn key() -> InstanceKey {
        (
            NetworkName::new("development").unwrap(),
            ServiceName::new("api").unwrap(),
            InstanceId::new("a1").unwrap(),
        )
    }

    fn session(key: &str) -> Owner {
        Owner::Session {
            session: 1,
            key: Arc::from(key),
        }
    }

    fn peer(registry: &str, origin: Owner) -> Owner {
        Owner::Peer {
            registry: Arc::from(registry),
            origin: Box::new(origin),
        }
    }

    fn rest(token: &str) -> Owner {
        Owner::Rest {
            ttl: None,
            token: Some(Arc::from(token)),
        }
    }

    #[test]
    fn a_node_takes_its_instance_over_from_a_peer_and_back_but_no_one_else_does() {
        let k = key();
        let replica = peer("reg-a", session("node-1"));
        replica.may_be_changed_by(&session("node-1"), &k).unwrap();
        session("node-1")
            .may_be_changed_by(&peer("reg-b", session("node-1")), &k)
            .unwrap();
        let other = replica
            .may_be_changed_by(&session("node-2"), &k)
            .unwrap_err();
        assert_eq!(other.code(), "NETGET_FORBIDDEN");
        assert!(other.to_string().contains("reg-a"), "{other}");
        // A replicated change of a replica: later changes from the cluster win.
        replica
            .may_be_changed_by(&peer("reg-a", session("node-1")), &k)
            .unwrap();
    }

    #[test]
    fn rest_registrations_stay_with_the_registry_they_were_made_at() {
        let k = key();
        let replica = peer("reg-a", rest("digest"));
        assert!(replica.may_be_changed_by(&rest("digest"), &k).is_err());
        assert!(rest("digest")
            .may_be_changed_by(&peer("reg-b", rest("digest")), &k)
            .is_err());
        rest("digest")
            .may_be_changed_by(&rest("digest"), &k)
            .unwrap();
        assert!(rest("digest")
            .may_be_changed_by(&rest("other"), &k)
            .is_err());
    }
}
