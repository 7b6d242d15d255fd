//! The messages of `netget/1`: every message a node and a registry exchange on `/v1/ws`.
//!
//! Messages are JSON text frames with a `type` field. PROTOCOL.md is the prose version of this
//! file; keep them in step. New optional fields may be added within `netget/1`; anything else is
//! a new protocol version.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorBody};
use crate::model::{
    ChannelMessage, ChannelName, Discovery, Instance, InstanceId, NetworkName, Registration,
    ServiceName, ServiceSummary, WatchEvent, WireDuration,
};

/// Largest text frame a registry accepts by default; bigger ones get `NETGET_TOO_LARGE` and the
/// session is closed (a frame that large is a bug or an attack, not a registration).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// A message from a node (or any client) to a registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum ClientMessage {
    /// The answer to the challenge; must be the first message.
    Hello {
        /// `netget/1`.
        protocol: String,
        /// The network this session lives in; every later message is scoped to it.
        network: NetworkName,
        /// The node's Ed25519 public key, standard base64.
        public_key: String,
        /// The challenge nonce being answered.
        nonce: String,
        /// Signature over [`crate::identity::hello_payload`], standard base64.
        signature: String,
        /// `service`, `client` or `registry`; informative.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_type: Option<String>,
        /// A join token for networks whose policy asks for one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Register or update one instance owned by this session.
    Register {
        /// Request id, echoed in the answer.
        id: u64,
        /// Service name.
        name: ServiceName,
        /// Instance id; derived from the public key and name when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_id: Option<InstanceId>,
        /// The instance's fields.
        instance: Registration,
    },
    /// Remove an instance this session registered.
    Deregister {
        /// Request id.
        id: u64,
        /// Service name.
        name: ServiceName,
        /// Instance id.
        instance_id: InstanceId,
    },
    /// Query the instances of a service.
    Discover {
        /// Request id.
        id: u64,
        /// Service name.
        name: ServiceName,
        /// Only passing and warning instances (default true).
        #[serde(default = "yes")]
        healthy_only: bool,
        /// Only instances carrying all these tags.
        #[serde(default)]
        tags: Vec<String>,
    },
    /// List the services of the session's network.
    Services {
        /// Request id.
        id: u64,
    },
    /// Subscribe to a service: answered with the current instances, then `event`s.
    Watch {
        /// Request id.
        id: u64,
        /// Service name.
        name: ServiceName,
    },
    /// Stop a subscription.
    Unwatch {
        /// Request id.
        id: u64,
        /// Service name.
        name: ServiceName,
    },
    /// Subscribe to every service of the session's network (dashboards): answered with all its
    /// instances, then an `event` for every change of any service.
    WatchNetwork {
        /// Request id.
        id: u64,
    },
    /// Stop watching the whole network.
    UnwatchNetwork {
        /// Request id.
        id: u64,
    },
    /// Receive every message published on a channel of the session's network from now on.
    Subscribe {
        /// Request id.
        id: u64,
        /// Channel name.
        channel: ChannelName,
    },
    /// Stop receiving a channel.
    Unsubscribe {
        /// Request id.
        id: u64,
        /// Channel name.
        channel: ChannelName,
    },
    /// Send `data` to the channel's current subscribers (at most once each).
    Publish {
        /// Request id.
        id: u64,
        /// Channel name.
        channel: ChannelName,
        /// Any JSON value.
        data: serde_json::Value,
    },
    /// Application-level keepalive (browsers cannot send WebSocket pings).
    Ping {
        /// Request id.
        id: u64,
    },
}

fn yes() -> bool {
    true
}

/// The message types a client may send, for error messages.
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "register",
    "deregister",
    "discover",
    "services",
    "watch",
    "unwatch",
    "watchNetwork",
    "unwatchNetwork",
    "subscribe",
    "unsubscribe",
    "publish",
    "ping",
];

/// A message from a registry to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    /// First message on every connection.
    Challenge {
        /// `netget/1`.
        protocol: String,
        /// The registry's id, part of what the node signs.
        registry_id: String,
        /// Single-use nonce to sign.
        nonce: String,
        /// How long the nonce stays valid.
        expires_in: WireDuration,
    },
    /// The handshake succeeded.
    Welcome {
        /// This session's id, unique within the registry's lifetime.
        session_id: u64,
        /// The network the session is scoped to.
        network: NetworkName,
        /// The registry's id.
        registry_id: String,
        /// How often the registry pings.
        ping_interval: WireDuration,
        /// Silence longer than this ends the session and removes its instances.
        session_timeout: WireDuration,
        /// The network's policy: `open`, `token` or `keys` (clients always verify instance
        /// signatures in `keys` networks).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// A successful answer to request `id`.
    Result {
        /// The request's id.
        id: u64,
        /// The answer; its shape depends on the request (see PROTOCOL.md).
        data: ResultData,
    },
    /// A refusal, of request `id` or (without id) of a frame that could not be read.
    Error {
        /// The request's id when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Code and message.
        error: ErrorBody,
    },
    /// A change to a watched service.
    Event {
        /// The service.
        name: ServiceName,
        /// What changed.
        event: Arc<WatchEvent>,
    },
    /// The full current instances of a watched service, sent when this session fell behind
    /// the event stream; replaces whatever the client holds for that service.
    Snapshot {
        /// The service.
        name: ServiceName,
        /// All its instances.
        instances: Vec<Arc<Instance>>,
    },
    /// All instances of the network, sent when a whole-network watcher fell behind; replaces
    /// everything the client holds for the network.
    NetworkSnapshot {
        /// Every instance of the network.
        instances: Vec<Arc<Instance>>,
    },
    /// A message on a subscribed channel.
    Message(ChannelMessage),
    /// Answer to `ping`.
    Pong {
        /// The ping's id.
        id: u64,
    },
    /// Cluster only, on a replication link (a session of node type `registry`): changes of the
    /// instances the sending registry owns.
    Replica {
        /// Which run of the sending registry its revisions count in (its start time, ms).
        epoch: u64,
        /// The sender's revision once these changes are applied.
        revision: u64,
        /// Set on the frames of a snapshot; a snapshot's frames are never interleaved with
        /// other changes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<super::SnapshotPart>,
        /// The changes, at most one per instance.
        changes: Vec<super::ReplicaChange>,
    },
    /// Cluster only, on a replication link: name claims of `keys` networks the sending registry
    /// holds (all of them after a snapshot, then each new one it takes).
    Claims {
        /// The claims.
        claims: Vec<super::ReplicaClaim>,
    },
    /// Cluster only, on a replication link: a message published on a channel of the sending
    /// registry, for the receiver's own subscribers.
    Relay {
        /// The channel's network.
        network: NetworkName,
        /// The message.
        message: ChannelMessage,
    },
}

/// The payload of a `result`, by request type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResultData {
    /// `register`: the stored instance.
    Instance(Arc<Instance>),
    /// `discover`: the matching instances.
    Discovery(Discovery),
    /// `watch`: the current instances (events follow).
    Watching {
        /// Current instances.
        instances: Vec<Arc<Instance>>,
    },
    /// `services`: names with counts.
    Services {
        /// One entry per service.
        services: Vec<ServiceSummary>,
    },
    /// `publish`: how many subscribers (on this registry) the message was handed to.
    Published {
        /// Subscribers reached.
        delivered: usize,
    },
    /// `deregister`, `unwatch`, `subscribe`, `unsubscribe`: nothing to report.
    Empty {},
    /// `discover`, answered from the registry's cached encoding (sent only; it reads back as
    /// [`ResultData::Discovery`]).
    #[serde(skip_deserializing)]
    EncodedDiscovery(super::EncodedAnswer),
}

impl ClientMessage {
    /// Reads one text frame, classifying failures the way PROTOCOL.md promises: not JSON →
    /// `NETGET_MALFORMED_JSON`; a `type` nobody knows → `NETGET_UNKNOWN_MESSAGE`; a known type
    /// with bad fields → `NETGET_INVALID_INPUT`. The request id is returned when it can be read,
    /// so the error can be tied to its request.
    pub fn parse(text: &str) -> Result<ClientMessage, (Option<u64>, Error)> {
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(m) => Ok(m),
            Err(first) => Err(classify(text, first)),
        }
    }

    /// The request id, for every message but `hello`.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ClientMessage::Hello { .. } => None,
            ClientMessage::Register { id, .. }
            | ClientMessage::Deregister { id, .. }
            | ClientMessage::Discover { id, .. }
            | ClientMessage::Services { id }
            | ClientMessage::Watch { id, .. }
            | ClientMessage::Unwatch { id, .. }
            | ClientMessage::WatchNetwork { id }
            | ClientMessage::UnwatchNetwork { id }
            | ClientMessage::Subscribe { id, .. }
            | ClientMessage::Unsubscribe { id, .. }
            | ClientMessage::Publish { id, .. }
            | ClientMessage::Ping { id } => Some(*id),
        }
    }
}

fn classify(text: &str, err: serde_json::Error) -> (Option<u64>, Error) {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                Error::MalformedJson(format!("frame is not valid JSON: {e}")),
            )
        }
    };
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
        return (
            id,
            Error::MalformedJson(
                "every message must be a JSON object with a string \"type\" field".into(),
            ),
        );
    };
    if !CLIENT_TYPES.contains(&kind) {
        return (
            id,
            Error::UnknownMessage(format!(
                "unknown message type {kind:?}; netget/1 knows {}",
                CLIENT_TYPES.join(", ")
            )),
        );
    }
    // serde's message already names the field ("invalid service name ... at line 1 column 30").
    (
        id,
        Error::InvalidInput(format!("bad {kind:?} message: {err}")),
    )
}

impl ServerMessage {
    /// Encodes to a JSON text frame.
    pub fn to_text(&self) -> String {
        // Serializing these types cannot fail: all maps have string keys.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","error":{{"code":"NETGET_INTERNAL","message":"encode: {e}"}}}}"#
            )
        })
    }

    /// An error answer to request `id`.
    pub fn error(id: Option<u64>, e: &Error) -> ServerMessage {
        ServerMessage::Error {
            id,
            error: e.to_body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_discovery_answer_is_sent_exactly_as_an_encoded_one() {
        let reg = crate::model::Registration {
            address: "http://127.0.0.1:1".into(),
            tags: vec!["v1".into()],
            ..Default::default()
        };
        let inst = crate::model::Instance::from_registration(
            NetworkName::new("dev").unwrap(),
            ServiceName::new("web").unwrap(),
            crate::model::InstanceId::new("a").unwrap(),
            reg,
            "r",
        );
        let discovery = Discovery {
            name: ServiceName::new("web").unwrap(),
            network: NetworkName::new("dev").unwrap(),
            instances: vec![Arc::new(inst)],
        };
        let fresh = ServerMessage::Result {
            id: 9,
            data: ResultData::Discovery(discovery.clone()),
        };
        let cached = ServerMessage::Result {
            id: 9,
            data: ResultData::EncodedDiscovery(super::super::EncodedAnswer::of(&discovery)),
        };
        assert_eq!(cached.to_text(), fresh.to_text());
        let back: ServerMessage = serde_json::from_str(&cached.to_text()).unwrap();
        assert_eq!(back, fresh);
    }

    #[test]
    fn parse_classifies_bad_frames_by_code() {
        let (_, e) = ClientMessage::parse("{not json").unwrap_err();
        assert_eq!(e.code(), "NETGET_MALFORMED_JSON");
        let (id, e) = ClientMessage::parse(r#"{"type":"teleport","id":7}"#).unwrap_err();
        assert_eq!((id, e.code()), (Some(7), "NETGET_UNKNOWN_MESSAGE"));
        let (id, e) =
            ClientMessage::parse(r#"{"type":"discover","id":3,"name":"bad name"}"#).unwrap_err();
        assert_eq!((id, e.code()), (Some(3), "NETGET_INVALID_INPUT"));
        assert!(e.to_string().contains("invalid service name"), "{e}");
    }

    #[test]
    fn messages_round_trip_in_camel_case() {
        let m = ClientMessage::parse(
            r#"{"type":"register","id":1,"name":"web","instanceId":"w1","instance":{"address":"http://a:1","tags":["v1"]}}"#,
        )
        .unwrap();
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"instanceId\":\"w1\""), "{text}");
        assert_eq!(ClientMessage::parse(&text).unwrap(), m);
        let d = ClientMessage::parse(r#"{"type":"discover","id":2,"name":"web"}"#).unwrap();
        assert!(matches!(
            d,
            ClientMessage::Discover {
                healthy_only: true,
                ..
            }
        ));
    }
}
