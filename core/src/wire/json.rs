//! JSON helpers of the wire format: instances' metadata read as its text, values written out
//! compactly from any deserializer, and a map whose first key was read ahead. They let metadata
//! pass through as text and let clients decode the frames they receive most without serde's
//! buffering.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::Metadata;

/// The newtype name serde_json answers with a value's raw text (what `RawValue` asks for). Were
/// it ever to change, serde_json would treat it as any newtype and `JsonWriter` would serve.
const SERDE_JSON_RAW_TOKEN: &str = "$serde_json::private::RawValue";

/// Whether valid JSON `text` has no whitespace outside its strings and no escapes at all: then
/// it is exactly what writing its value compactly would give (up to how numbers are spelled).
fn is_plain_compact(text: &str) -> bool {
    let mut in_string = false;
    for b in text.bytes() {
        match b {
            b'\\' => return false,
            b'"' => in_string = !in_string,
            b' ' | b'\n' | b'\t' | b'\r' if !in_string => return false,
            _ => {}
        }
    }
    true
}

/// Writes the value it is given as compact JSON text, whatever deserializer it comes from.
struct JsonWriter<'a>(&'a mut Vec<u8>);

impl JsonWriter<'_> {
    fn scalar<E: serde::de::Error>(self, v: impl Serialize) -> std::result::Result<(), E> {
        serde_json::to_writer(&mut *self.0, &v).map_err(E::custom)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonWriter<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonWriter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<(), E> {
        self.scalar(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<(), E> {
        self.scalar(v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<(), E> {
        self.scalar(v)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<(), E> {
        // As serde_json::Value would: a non-finite number becomes null.
        self.scalar(serde_json::Number::from_f64(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<(), E> {
        self.scalar(v)
    }
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            let mark = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(JsonWriter(&mut *self.0))?.is_none() {
                self.0.truncate(mark);
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !first {
                self.0.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *self.0, &key).map_err(serde::de::Error::custom)?;
            self.0.push(b':');
            map.next_value_seed(JsonWriter(&mut *self.0))?;
        }
        self.0.push(b'}');
        Ok(())
    }
}

/// A map whose first key was already read: gives it again, then the rest (for a visitor that
/// looked at the first key before choosing how to read the map).
pub(crate) struct Replay<'de, A> {
    first: Option<std::borrow::Cow<'de, str>>,
    map: A,
}

impl<'de, A> Replay<'de, A> {
    pub(crate) fn new(first: std::borrow::Cow<'de, str>, map: A) -> Self {
        Replay {
            first: Some(first),
            map,
        }
    }
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for Replay<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(k) => seed
                .deserialize(serde::de::value::CowStrDeserializer::new(k))
                .map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Metadata, D::Error> {
        // No tree is built. serde_json (from text, or from a `serde_json::Value`, what the
        // bindings convert to) answers a request for its raw-value token with the value's text,
        // kept as it is when it is already compact and has no escapes (what registries and
        // clients write). Other deserializers (serde's buffer for tagged enums) and other text
        // go through `JsonWriter`, which writes the value compactly. Anything but an object is
        // refused.
        d.deserialize_newtype_struct(SERDE_JSON_RAW_TOKEN, MetadataVisitor)
    }
}

struct MetadataVisitor;

impl MetadataVisitor {
    fn written<E: serde::de::Error>(out: Vec<u8>) -> std::result::Result<Metadata, E> {
        let text = String::from_utf8(out).map_err(E::custom)?;
        serde_json::value::RawValue::from_string(text)
            .map(Metadata::from_raw)
            .map_err(E::custom)
    }
}

impl<'de> serde::de::Visitor<'de> for MetadataVisitor {
    type Value = Metadata;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Metadata, D::Error> {
        let mut out = Vec::with_capacity(128);
        d.deserialize_map(JsonWriter(&mut out))?;
        MetadataVisitor::written(out)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Metadata, A::Error> {
        use serde::de::{Deserializer as _, Error as _};
        let mut out = Vec::with_capacity(128);
        let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            out.extend_from_slice(b"{}");
            return MetadataVisitor::written(out);
        };
        if key != SERDE_JSON_RAW_TOKEN {
            // A deserializer that answered with the map itself: write it out, this key first.
            return serde::de::Visitor::visit_map(JsonWriter(&mut out), Replay::new(key, map))
                .and_then(|()| MetadataVisitor::written(out));
        }
        let text: String = map.next_value()?;
        if !text.starts_with('{') {
            let start = crate::error::truncate(&text, 40);
            let more = if start.len() < text.len() { "…" } else { "" };
            return Err(A::Error::custom(format!(
                "metadata must be a JSON object, not {start}{more}"
            )));
        }
        if is_plain_compact(&text) {
            return serde_json::value::RawValue::from_string(text)
                .map(Metadata::from_raw)
                .map_err(A::Error::custom);
        }
        serde_json::Deserializer::from_str(&text)
            .deserialize_map(JsonWriter(&mut out))
            .map_err(A::Error::custom)?;
        MetadataVisitor::written(out)
    }
}
