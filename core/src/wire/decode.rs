//! The direct decoding of the frames clients receive most (see [`ServerMessage::parse`](super::ServerMessage::parse)):
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
