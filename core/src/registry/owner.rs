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
}

impl Owner {
    /// Whether `by` may replace, renew or remove an instance this owner holds: the same node key
    /// (its session, or the same node reconnected), or the same REST token. The one hand-over
    /// rule: registration, deregistration and heartbeats of an existing instance ask it (a
    /// heartbeat with the wrong token keeps its own message).
    pub fn may_be_changed_by(&self, by: &Owner, key: &InstanceKey) -> Result<()> {
        let allowed = match (self, by) {
            (Owner::Session { key: a, .. }, Owner::Session { key: b, .. }) => a == b,
            (Owner::Rest { token: a, .. }, Owner::Rest { token: b, .. }) => a == b,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "instance {:?} of service {:?} is owned by another {}; only its owner may change or remove it",
                key.2.as_str(),
                key.1.as_str(),
                match self {
                    Owner::Session { .. } => "node (WebSocket session with a different key)",
                    Owner::Rest { .. } => "REST registration",
                }
            )))
        }
    }
}
