//! The wire format: the WebSocket protocol `netget/1` (every message a node and a registry
//! exchange on `/v1/ws`, see PROTOCOL.md) and the encodings both sides share.
//!
//! - `messages`: [`ClientMessage`], [`ServerMessage`], [`ResultData`], and how a frame that is
//!   not one is classified.
//! - `decode`: the direct decoder of the frames clients receive most.
//! - `encode`: encodings made once and shared (cached discovery answers, event frames).
//! - `json`: JSON helpers (compact writing from any deserializer, read-ahead maps).
//! - `replica`: what a registry's replication link carries to its peers (cluster only).
//! - `liveness`: when the other side of a session or link counts as gone.

mod decode;
pub mod encode;
pub(crate) mod json;
mod liveness;
mod messages;
mod replica;

pub use encode::EncodedAnswer;
pub(crate) use liveness::Liveness;
pub use messages::{ClientMessage, ResultData, ServerMessage, CLIENT_TYPES, DEFAULT_MAX_FRAME};
pub use replica::{ReplicaChange, ReplicaClaim, ReplicaOrigin, SnapshotPart};
