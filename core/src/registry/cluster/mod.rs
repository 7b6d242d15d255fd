//! The registry cluster: registries that know each other, so that any of them can answer for
//! all and none is a single point of failure.
//!
//! - `membership`: who is in the cluster. Registries find each other and notice failures by
//!   gossip (chitchat's Scuttlebutt with phi-accrual failure detection) over UDP; each
//!   publishes only small facts about itself (its URL, a digest of its network policies, its
//!   revision, readiness), never instances.
//! - `link`: the owner's side of replication. A peer opens a `netget/1` session with node type
//!   `registry`; this registry streams it a snapshot of the instances it owns, in chunks, then
//!   every change of them, coalesced and numbered with its revision, and relays channel
//!   messages published on it.
//! - `follow`: the follower's side. For each live peer, one task keeps a link open, applies
//!   what it carries through `ops::replicate`, checks the revision gossip shows against what it
//!   applied (a gap reloads the snapshot), and forgets the peer's instances once its link stays
//!   down past the grace period.
//! - `links`: what is known of each link (up, revision applied, repairs), and readiness.
//! - `forward`: REST changes of a replica go to the registry that owns it.

mod follow;
mod forward;
mod link;
mod links;
mod membership;

#[cfg(feature = "fuzzing")]
pub(crate) use follow::apply as apply_replica;
pub(crate) use follow::follow_peers;
pub(crate) use forward::{forward, FORWARDED_BY};
pub(crate) use link::serve_link;
pub(crate) use links::{Claimed, Links, Relayed};
pub(crate) use membership::{policies_digest, Membership};
pub use membership::{ClusterSummary, Member};

/// What `https://` peers' certificates are checked against: `[cluster] ca`, else this registry's
/// own certificate file.
fn peer_ca(config: &crate::config::RegistryConfig) -> Option<&std::path::Path> {
    config
        .cluster
        .ca
        .as_deref()
        .or(config.tls.as_ref().map(|t| t.cert.as_path()))
}
