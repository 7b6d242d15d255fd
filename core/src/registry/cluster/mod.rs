//! The registry cluster: registries that know each other, so that any of them can answer for
//! all and none is a single point of failure.
//!
//! Built so far: **membership**. Registries find each other and notice failures by gossip
//! (chitchat's Scuttlebutt with phi-accrual failure detection) over UDP; each publishes only
//! small facts about itself (its URL, a digest of its network policies, readiness), never
//! instances. Replication of registrations between owners, the grace period for a dead
//! registry's instances and the adoption of its REST registrations come next; until then each
//! registry serves what was registered with it.

mod membership;

pub(crate) use membership::{policies_digest, Membership};
pub use membership::{ClusterSummary, Member};
