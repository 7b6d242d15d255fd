//! What a registry's replication link carries to a peer registry (cluster only): changes of the
//! instances the sending registry owns, and the messages published on it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Instance, InstanceId, NetworkName, ServiceName};

/// One replicated change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ReplicaChange {
    /// The instance as its owner holds it now (new or changed).
    Put {
        /// The instance; `registry` names its owner.
        instance: Arc<Instance>,
        /// How the owner holds it.
        origin: ReplicaOrigin,
    },
    /// The instance is gone from its owner.
    Remove {
        /// Its network.
        network: NetworkName,
        /// Its service.
        name: ServiceName,
        /// Its id.
        id: InstanceId,
    },
}

/// How the owning registry holds a replicated instance: what a node failing over, or a
/// registry adopting it, needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ReplicaOrigin {
    /// A session of the node with this key.
    Session {
        /// The node's public key.
        public_key: Arc<str>,
    },
    /// A REST registration.
    Rest {
        /// Its TTL in milliseconds (`None`: it lives by its health check).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
        /// The digest of the token that made it (never the token).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<Arc<str>>,
    },
}

/// A service name claimed by a key in a `keys` network, as the cluster shares it: of two claims
/// of one name, the earlier holds everywhere, then the smaller key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaClaim {
    /// The network.
    pub network: NetworkName,
    /// The claimed name.
    pub service: ServiceName,
    /// The claiming key.
    pub public_key: Arc<str>,
    /// When it was claimed, ms since the Unix epoch.
    pub at: u64,
}

/// Where a `replica` frame stands in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotPart {
    /// More frames of the snapshot follow.
    Part,
    /// The last frame: the snapshot replaces everything the receiver held from the sender.
    End,
}
