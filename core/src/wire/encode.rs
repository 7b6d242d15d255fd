//! Encodings made once and shared: a discovery answer written as is into HTTP bodies and into
//! `result` frames, and an event's frame sent to every watcher of its service and network.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::messages::ServerMessage;
use crate::model::{Discovery, WatchEvent};

/// A discovery answer encoded once as JSON and shared: written as is into HTTP bodies and into
/// `result` frames, so serving a cached answer copies bytes instead of encoding instances.
#[derive(Debug, Clone)]
pub struct EncodedAnswer(pub Arc<RawValue>);

impl EncodedAnswer {
    /// Encodes `d`.
    pub fn of(d: &Discovery) -> EncodedAnswer {
        // Serializing a Discovery cannot fail (string keys only); stay total anyway.
        EncodedAnswer(Arc::from(
            serde_json::value::to_raw_value(d).unwrap_or_default(),
        ))
    }

    /// The answer as an HTTP body, without copying it.
    pub fn into_body(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for EncodedAnswer {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}

impl serde::Serialize for EncodedAnswer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl PartialEq for EncodedAnswer {
    fn eq(&self, other: &EncodedAnswer) -> bool {
        self.0.get() == other.0.get()
    }
}

/// The `event` frame of a change to a watched service.
pub fn event_frame(event: &Arc<WatchEvent>) -> String {
    ServerMessage::Event {
        name: event.instance.name.clone(),
        event: event.clone(),
    }
    .to_text()
}
