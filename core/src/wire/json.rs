//! JSON helpers of the wire format: values written out compactly from any deserializer, and a map
//! whose first key was read ahead. They let instances' metadata pass through as text and let
//! clients decode the frames they receive most without serde's buffering.

use std::fmt;

use serde::Serialize;

/// The newtype name serde_json answers with a value's raw text (what `RawValue` asks for). Were
/// it ever to change, serde_json would treat it as any newtype and `JsonWriter` would serve.
pub(crate) const SERDE_JSON_RAW_TOKEN: &str = "$serde_json::private::RawValue";

/// Whether valid JSON `text` has no whitespace outside its strings and no escapes at all: then
/// it is exactly what writing its value compactly would give (up to how numbers are spelled).
pub(crate) fn is_plain_compact(text: &str) -> bool {
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
pub(crate) struct JsonWriter<'a>(pub(crate) &'a mut Vec<u8>);

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
