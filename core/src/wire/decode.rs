//! The direct decoding of the frames clients receive most (see [`ServerMessage::parse`]):
//! events and discovery or registration results, written as registries write them (`type`
//! first), decoded straight into their types instead of through serde's buffered decoder of
//! tagged enums.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer as _, Error as _, MapAccess, Visitor};
use serde::Deserialize;

use super::json::Replay;
use super::messages::{ResultData, ServerMessage};
use crate::model::{Discovery, Instance, ServiceName, WatchEvent};

impl ServerMessage {
    /// Decodes a frame from a registry. Events and discovery or registration results, written
    /// as registries write them (`type` first), are decoded straight into their types; serde's
    /// decoder of tagged enums would first copy the whole frame into a buffer tree (a quarter of
    /// the cost of decoding a 10-instance answer). Anything else takes the general decoder.
    pub fn parse(text: &str) -> serde_json::Result<ServerMessage> {
        match parse(text) {
            Some(m) => Ok(m),
            None => serde_json::from_str(text),
        }
    }
}

/// `None`: not one of the frames decoded here, or not in the expected shape.
pub(crate) fn parse(text: &str) -> Option<ServerMessage> {
    let mut de = serde_json::Deserializer::from_str(text);
    let msg = de.deserialize_map(Frame).ok().flatten()?;
    de.end().ok()?;
    Some(msg)
}

struct Frame;

impl<'de> Visitor<'de> for Frame {
    type Value = Option<ServerMessage>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a netget frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if map.next_key::<Cow<'de, str>>()?.as_deref() != Some("type") {
            return Ok(None);
        }
        let kind: Cow<'de, str> = map.next_value()?;
        let rest = MapAccessDeserializer::new(map);
        match kind.as_ref() {
            "event" => {
                #[derive(Deserialize)]
                struct Event {
                    name: ServiceName,
                    event: Arc<WatchEvent>,
                }
                let e = Event::deserialize(rest)?;
                Ok(Some(ServerMessage::Event {
                    name: e.name,
                    event: e.event,
                }))
            }
            "result" => {
                #[derive(Deserialize)]
                struct Result {
                    id: u64,
                    data: Data,
                }
                let r = Result::deserialize(rest)?;
                Ok(Some(ServerMessage::Result {
                    id: r.id,
                    data: r.data.0,
                }))
            }
            // Leaves the frame half read: the caller starts again with the general decoder.
            _ => Err(A::Error::custom("not decoded directly")),
        }
    }
}

/// A result's data, told apart by its first field as registries write it: `name` for a
/// discovery, `id` for an instance. Other shapes fail (and the frame is decoded again).
struct Data(ResultData);

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Data, D::Error> {
        d.deserialize_map(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a discovery or an instance")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let Some(first) = map.next_key::<Cow<'de, str>>()? else {
            return Err(A::Error::custom("empty result"));
        };
        let kind = first.clone();
        let whole = MapAccessDeserializer::new(Replay::new(first, map));
        match kind.as_ref() {
            "name" => Ok(Data(ResultData::Discovery(Discovery::deserialize(whole)?))),
            "id" => Ok(Data(ResultData::Instance(Arc::new(Instance::deserialize(
                whole,
            )?)))),
            _ => Err(A::Error::custom("not decoded directly")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::parse;
    use crate::model::{Discovery, NetworkName, ServiceName, WatchEvent};
    use crate::wire::{ResultData, ServerMessage};

    #[test]
    fn frames_decode_the_same_directly_and_through_the_general_decoder() {
        let reg = crate::model::Registration {
            address: "http://127.0.0.1:1".into(),
            tags: vec!["v1".into()],
            metadata: serde_json::json!({"zone": "a", "n": [1, 2.5, null]})
                .as_object()
                .cloned()
                .unwrap(),
            version: Some("1.0.0".into()),
            ..Default::default()
        };
        let inst = Arc::new(crate::model::Instance::from_registration(
            NetworkName::new("dev").unwrap(),
            ServiceName::new("web").unwrap(),
            crate::model::InstanceId::new("a").unwrap(),
            reg,
            "r",
        ));
        let discovery = Discovery {
            name: ServiceName::new("web").unwrap(),
            network: NetworkName::new("dev").unwrap(),
            instances: vec![inst.clone(), inst.clone()],
        };
        let direct = [
            ServerMessage::Event {
                name: ServiceName::new("web").unwrap(),
                event: Arc::new(WatchEvent {
                    kind: crate::model::EventKind::Changed,
                    instance: inst.clone(),
                }),
            },
            ServerMessage::Result {
                id: 4,
                data: ResultData::Discovery(discovery.clone()),
            },
            ServerMessage::Result {
                id: 5,
                data: ResultData::Instance(inst.clone()),
            },
        ];
        for m in &direct {
            let text = m.to_text();
            assert_eq!(parse(&text).as_ref(), Some(m), "{text}");
            assert_eq!(&serde_json::from_str::<ServerMessage>(&text).unwrap(), m);
        }
        // Other frames, and the same frames with `type` elsewhere, go the general way.
        let general = [
            ServerMessage::Result {
                id: 6,
                data: ResultData::Empty {},
            },
            ServerMessage::Result {
                id: 7,
                data: ResultData::Watching {
                    instances: vec![inst.clone()],
                },
            },
            ServerMessage::Snapshot {
                name: ServiceName::new("web").unwrap(),
                instances: vec![inst],
            },
        ];
        for m in &general {
            let text = m.to_text();
            assert!(parse(&text).is_none(), "{text}");
            assert_eq!(&ServerMessage::parse(&text).unwrap(), m);
        }
        let moved =
            r#"{"id":4,"data":{"name":"web","network":"dev","instances":[]},"type":"result"}"#;
        assert!(parse(moved).is_none());
        assert!(matches!(
            ServerMessage::parse(moved).unwrap(),
            ServerMessage::Result {
                id: 4,
                data: ResultData::Discovery(_)
            }
        ));
        assert!(ServerMessage::parse(r#"{"type":"event","name":"web"}"#).is_err());
    }
}
