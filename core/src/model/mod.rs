//! The nouns of a registry: networks, service names, instances, registrations, watch events.
//!
//! Every value that arrives from outside is validated here, once, by the constructors of the
//! newtypes; the rest of the crate can then trust a `ServiceName` without re-checking it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod address;
mod text;
pub use address::{Endpoint, Host};

/// Longest network or service name accepted (a DNS label's length, so names fit in DNS-SD later).
pub const MAX_NAME_LEN: usize = 63;
/// Longest instance id accepted.
pub const MAX_ID_LEN: usize = 128;
/// Longest address accepted.
pub const MAX_ADDRESS_LEN: usize = 1024;
/// Most tags on one instance, and the longest tag.
pub const MAX_TAGS: usize = 32;
/// Longest tag accepted.
pub const MAX_TAG_LEN: usize = 64;
/// Largest metadata object, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Longest version string accepted.
pub const MAX_VERSION_LEN: usize = 64;
/// Largest weight accepted (weights are relative; this only keeps arithmetic bounded).
pub const MAX_WEIGHT: u32 = 10_000;

/// The network a registry serves when it has no configuration.
pub const DEFAULT_NETWORK: &str = "development";

fn check_name(kind: &str, s: &str, max: usize, extra: &[char]) -> Result<()> {
    if s.is_empty() || s.len() > max {
        return Err(Error::InvalidInput(format!(
            "invalid {kind} {s:?}: must be 1 to {max} characters"
        )));
    }
    let first_ok = s.as_bytes()[0].is_ascii_alphanumeric();
    let rest_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c));
    if !first_ok || !rest_ok {
        let allowed: String = extra.iter().collect();
        return Err(Error::InvalidInput(format!(
            "invalid {kind} {s:?}: use ASCII letters, digits, '-', '_'{}{} and start with a letter or digit",
            if allowed.is_empty() { "" } else { " or " },
            allowed
        )));
    }
    Ok(())
}

/// The OpenAPI schema of a name checked by [`check_name`]: the same rule, as a pattern.
fn name_schema(
    kind: &str,
    max: usize,
    extra: &[char],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let extra: String = extra.iter().map(|c| format!("\\{c}")).collect();
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(format!("A {kind}")))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!("^[A-Za-z0-9][A-Za-z0-9_\\-{extra}]*$")))
        .into()
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $extra:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn new(s: &str) -> Result<Self> {
                check_name($kind, s, $max, $extra)?;
                Ok(Self(Arc::from(s)))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            // Lets maps keyed by names be searched with a plain `&str`, with no allocation
            // or validation on the lookup path.
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                // The last one this thread decoded: a repeat (every instance of an answer names
                // its service and network) is shared, not allocated and checked again.
                thread_local! {
                    static RECENT: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
                }
                let s = text::Text::deserialize(d)?;
                text::shared(&RECENT, &s.0, |s| {
                    check_name($kind, s, $max, $extra).map(|()| Arc::from(s))
                })
                .map($name)
                .map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                name_schema($kind, $max, $extra)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

name_type!(
    /// A network name: an isolated directory (`development`, `production`). Case-sensitive.
    NetworkName, "network name", MAX_NAME_LEN, &['.']
);
name_type!(
    /// A service name (`DatabaseService`, `orders`). Case-sensitive.
    ServiceName, "service name", MAX_NAME_LEN, &['.']
);
name_type!(
    /// A publish/subscribe channel name (`chat`, `orders.events`), scoped to one network.
    ChannelName, "channel name", MAX_NAME_LEN, &['.']
);
name_type!(
    /// An instance id, unique within one service of one network.
    InstanceId, "instance id", MAX_ID_LEN, &['.', ':']
);

/// The health of an instance, as discovery reports it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Alive and answering (the default for a live session or a fresh registration).
    #[default]
    Passing,
    /// Answering, but asking for less load (e.g. HTTP 429).
    Warning,
    /// Not answering; not returned by discovery unless asked for all.
    Critical,
}

impl Status {
    /// Whether discovery returns this instance by default.
    pub fn is_healthy(self) -> bool {
        !matches!(self, Status::Critical)
    }

    /// As written on the wire (`passing`, `warning`, `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
        }
    }
}

/// A duration as written on the wire and in configuration: `500ms`, `5s`, `1m`, `2h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WireDuration(pub Duration);

impl WireDuration {
    /// Parses `500ms`, `5s`, `1.5s`, `1m`, `2h`; a bare number is seconds.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let bad = || {
            Error::InvalidInput(format!(
                "invalid duration {s:?}: write a number with a unit, e.g. \"500ms\", \"5s\", \"1m\", \"1h\""
            ))
        };
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "ms" => value / 1000.0,
            "" | "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(bad()),
        };
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(bad());
        }
        // Whole milliseconds, the resolution durations are written in, so that what is read is
        // exactly what is written back ("0.624ms" was read as 624 µs and written as "0ms").
        Ok(WireDuration(Duration::from_millis(
            (secs * 1000.0).round() as u64
        )))
    }
}

impl fmt::Display for WireDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for WireDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WireDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        WireDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An active health check declared at registration, run by the registry that owns the instance
/// (see `health`): HTTP GET (2xx passing, 429 warning, anything else critical) or TCP connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// URL to GET; 2xx is passing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `host:port` to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DurationSchema>)]
    pub interval: Option<WireDuration>,
    /// Time one probe may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DurationSchema>)]
    pub timeout: Option<WireDuration>,
    /// Remove the instance after it has been critical this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DurationSchema>)]
    pub deregister_critical_after: Option<WireDuration>,
    /// Consecutive successful probes before a non-passing instance is passing again (default 1).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_u32"
    )]
    #[schema(minimum = 1, maximum = 100)]
    pub success_before_passing: Option<u32>,
    /// Consecutive failed probes before a passing instance turns warning or critical (default
    /// 2), so one lost probe does not flip it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_u32"
    )]
    #[schema(minimum = 1, maximum = 100)]
    pub failures_before_critical: Option<u32>,
}

impl HealthCheck {
    /// Time between probes (default 10 s, at least 100 ms).
    pub fn interval(&self) -> Duration {
        self.interval
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(100))
    }

    /// Time one probe may take (default the smaller of the interval and 5 s).
    pub fn timeout(&self) -> Duration {
        self.timeout
            .map(|d| d.0)
            .unwrap_or_else(|| self.interval().min(Duration::from_secs(5)))
            .max(Duration::from_millis(10))
    }
}

/// The last health check of an instance: what it said and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// The probe's result for a person (`HTTP 200 OK`, `connection refused`, `no heartbeat`).
    pub output: String,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

/// What a node sends to register (or update) one instance: the body of
/// `PUT /v1/networks/{network}/services/{name}/instances/{id}` and of the WebSocket `register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    /// Where clients reach the instance (`http://127.0.0.1:8080`, `10.0.0.5:5432`).
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
    )]
    pub address: String,
    /// Free-form labels to filter on (`v1`, `primary`).
    #[serde(default)]
    #[schema(value_type = Vec<TagSchema>, max_items = 32)]
    pub tags: Vec<String>,
    /// Free-form JSON object, at most [`MAX_METADATA_BYTES`] as compact JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The instance's software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub version: Option<String>,
    /// Relative weight for weighted discovery (default 1).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole_u32"
    )]
    #[schema(maximum = 10000)]
    pub weight: Option<u32>,
    /// For REST registrations: how long the registration lives without a heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DurationSchema>)]
    pub ttl: Option<WireDuration>,
    /// An active health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    /// Session registrations: the node's Ed25519 signature over
    /// [`crate::identity::SignedFields::payload`], standard base64. (Not in the OpenAPI
    /// document: a REST registration carrying it is refused.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub signature: Option<String>,
    /// When the node signed, milliseconds since the Unix epoch (part of what is signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub signed_at: Option<u64>,
}

impl Registration {
    /// Checks every field against the limits of PROTOCOL.md.
    pub fn validate(&self) -> Result<()> {
        let a = &self.address;
        // Lengths in characters, as the docs and the OpenAPI document (`maxLength`) count them.
        if a.is_empty()
            || a.chars().count() > MAX_ADDRESS_LEN
            || a.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::InvalidInput(format!(
                "invalid address {a:?}: must be 1 to {MAX_ADDRESS_LEN} characters without spaces, e.g. \"http://127.0.0.1:8080\""
            )));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Error::InvalidInput(format!(
                "{} tags given; at most {MAX_TAGS} are accepted",
                self.tags.len()
            )));
        }
        for t in &self.tags {
            if t.is_empty()
                || t.chars().count() > MAX_TAG_LEN
                || t.chars().any(|c| c.is_control() || c == ',')
            {
                return Err(Error::InvalidInput(format!(
                    "invalid tag {t:?}: must be 1 to {MAX_TAG_LEN} characters, no commas or control characters"
                )));
            }
        }
        if let Some(v) = &self.version {
            if v.chars().count() > MAX_VERSION_LEN || v.chars().any(char::is_control) {
                return Err(Error::InvalidInput(format!(
                    "invalid version {v:?}: at most {MAX_VERSION_LEN} characters"
                )));
            }
        }
        if let Some(w) = self.weight {
            if w > MAX_WEIGHT {
                return Err(Error::InvalidInput(format!(
                    "weight {w} is over the maximum of {MAX_WEIGHT}"
                )));
            }
        }
        let meta_len = serde_json::to_vec(&self.metadata)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if meta_len > MAX_METADATA_BYTES {
            return Err(Error::too_large("metadata", meta_len, MAX_METADATA_BYTES));
        }
        if let Some(h) = &self.health {
            match (&h.http, &h.tcp) {
                (Some(url), None) => {
                    if !(url.starts_with("http://") || url.starts_with("https://"))
                        || url.len() > MAX_ADDRESS_LEN
                    {
                        return Err(Error::InvalidInput(format!(
                            "health.http {url:?} must be an http:// or https:// URL"
                        )));
                    }
                }
                (None, Some(addr)) => {
                    if !addr.contains(':') || addr.len() > MAX_ADDRESS_LEN || addr.contains("://") {
                        return Err(Error::InvalidInput(format!(
                            "health.tcp {addr:?} must be host:port"
                        )));
                    }
                }
                _ => return Err(Error::InvalidInput(
                    "a health check needs exactly one of \"http\" (a URL) or \"tcp\" (host:port)"
                        .into(),
                )),
            }
            for t in [h.success_before_passing, h.failures_before_critical]
                .into_iter()
                .flatten()
            {
                if !(1..=100).contains(&t) {
                    return Err(Error::InvalidInput(
                        "health thresholds must be between 1 and 100".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A whole number as JSON may write it, `80` or `80.0`: JSON Schema's `integer` (what the OpenAPI
/// document says) admits both, and a client generating JSON from floats writes the second.
pub(crate) fn whole_u32<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    let Some(v) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
        Ok(Some(v as u32))
    } else {
        Err(serde::de::Error::custom(format!(
            "{v} is not a whole number from 0 to {}",
            u32::MAX
        )))
    }
}

/// A duration as the OpenAPI document describes it: a whole number with a unit, above zero (the
/// parser takes more, e.g. `1.5s`; the document keeps to what every field accepts).
pub struct DurationSchema;

impl utoipa::PartialSchema for DurationSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            // Each unit bounded so the value stays within the parser's limit (10^9 s).
            .pattern(Some(
                "^([1-9][0-9]{0,8}(ms|s)|[1-9][0-9]{0,6}m|[1-9][0-9]{0,4}h)$",
            ))
            .examples(["30s"])
            .into()
    }
}

impl utoipa::ToSchema for DurationSchema {}

/// A tag as the OpenAPI document describes it (the rule of [`Registration::validate`]).
pub struct TagSchema;

impl utoipa::PartialSchema for TagSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_TAG_LEN))
            .pattern(Some(r"^[^,\x00-\x1f\x7f-\x9f]+$"))
            .into()
    }
}

impl utoipa::ToSchema for TagSchema {}

/// An instance's metadata: a JSON object kept as its compact JSON text.
///
/// Why text and not a parsed map: a registry holds 100k+ instances and only ever sends their
/// metadata on (in answers and events), while a parsed `serde_json::Map` costs a tree node and a
/// `String` per key and per value, about four times the text; and a client decoding an answer
/// copies the text through instead of building the tree. Built from a map ([`Metadata::from_map`],
/// what a registry does with every registration) the text is canonical (keys sorted); decoded
/// it keeps the order it arrived in. [`Metadata::canonical`] is what a node signs.
#[derive(Clone)]
pub struct Metadata(Box<serde_json::value::RawValue>);

impl PartialEq for Metadata {
    fn eq(&self, other: &Metadata) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Metadata {}

impl Metadata {
    /// The canonical text of `map`.
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Metadata {
        match serde_json::value::to_raw_value(map) {
            Ok(raw) => Metadata(raw),
            // A map of JSON values always serializes; keep the type total anyway.
            Err(_) => Metadata::default(),
        }
    }

    /// Metadata whose text is `raw`, already checked to be a compact JSON object (the wire
    /// format's decoder does that).
    pub(crate) fn from_raw(raw: Box<serde_json::value::RawValue>) -> Metadata {
        Metadata(raw)
    }

    /// The compact JSON text (`{}` when empty).
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The canonical text (compact, keys sorted at every level): what a node signs.
    pub fn canonical(&self) -> String {
        Metadata::from_map(&self.to_map()).as_str().to_owned()
    }

    /// The metadata as a parsed map.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(self.as_str()).unwrap_or_default()
    }

    /// One value, parsed on demand (the others are skipped, not built).
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
        struct Find<'k>(&'k str);
        impl<'de> Visitor<'de> for Find<'_> {
            type Value = Option<serde_json::Value>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut found = None;
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if found.is_none() && k == self.0 {
                        found = Some(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
        }
        serde_json::Deserializer::from_str(self.as_str())
            .deserialize_map(Find(key))
            .ok()
            .flatten()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.as_str() == "{}"
    }
}

impl Default for Metadata {
    fn default() -> Metadata {
        Metadata::from_map(&serde_json::Map::new())
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Metadata {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Metadata {
        Metadata::from_map(&map)
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// An instance's tags, kept as one comma-joined string (a tag cannot hold a comma).
///
/// Why not a `Vec<String>`: two short tags cost three allocations that way (~150 B with the
/// allocator's overhead), one here; and the joined form is what a node signs. On the wire it is a
/// JSON array of strings, as before.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Tags(Box<str>);

impl Tags {
    /// The tags, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').filter(|t| !t.is_empty())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether `tag` is one of them.
    pub fn contains(&self, tag: &str) -> bool {
        self.iter().any(|t| t == tag)
    }

    /// The tags joined by commas (what a node signs).
    pub fn joined(&self) -> &str {
        &self.0
    }

    /// The tags as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

impl<S: AsRef<str>> From<&[S]> for Tags {
    fn from(tags: &[S]) -> Tags {
        let mut joined = String::new();
        for t in tags.iter().map(AsRef::as_ref).filter(|t| !t.is_empty()) {
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(t);
        }
        Tags(joined.into_boxed_str())
    }
}

impl From<Vec<String>> for Tags {
    fn from(tags: Vec<String>) -> Tags {
        Tags::from(tags.as_slice())
    }
}

impl PartialEq<Vec<String>> for Tags {
    fn eq(&self, other: &Vec<String>) -> bool {
        self.iter().eq(other.iter().map(String::as_str))
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Tags, D::Error> {
        let tags = Vec::<text::Text<'de>>::deserialize(d)?;
        let tags: Vec<&str> = tags.iter().map(|t| t.0.as_ref()).collect();
        if tags.iter().any(|t| t.contains(',')) {
            return Err(serde::de::Error::custom("a tag cannot contain a comma"));
        }
        Ok(Tags::from(tags.as_slice()))
    }
}

/// One registered instance of a service, as every surface returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Unique within its service and network.
    pub id: InstanceId,
    /// The service it belongs to.
    pub name: ServiceName,
    /// The network it belongs to.
    pub network: NetworkName,
    /// Where clients reach it.
    pub address: String,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// Labels to filter on.
    #[schema(value_type = Vec<String>)]
    pub tags: Tags,
    /// Software version, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Relative weight for weighted discovery.
    pub weight: u32,
    /// Current health.
    pub status: Status,
    /// Milliseconds since the Unix epoch when it was first registered.
    pub registered_at: u64,
    /// Id of the registry that owns it (holds its session or its REST registration).
    #[schema(value_type = String)]
    #[serde(deserialize_with = "text::registry")]
    pub registry: Arc<str>,
    /// The declared active check, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<HealthCheck>)]
    pub health: Option<Box<HealthCheck>>,
    /// The last health check (active probe or missed TTL), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CheckRecord>)]
    pub last_check: Option<Box<CheckRecord>>,
    /// The registering node's public key (session registrations), shared by its instances.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::public_key"
    )]
    #[schema(value_type = Option<String>)]
    pub public_key: Option<Arc<str>>,
    /// The node's signature over the instance (see PROTOCOL.md, "Signed registrations"), so a
    /// client can check that no registry altered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub signature: Option<Box<str>>,
    /// When the node signed, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<u64>,
}

impl Instance {
    /// Where it lives: its network, service and id.
    pub fn key(&self) -> InstanceKey {
        (self.network.clone(), self.name.clone(), self.id.clone())
    }

    /// Builds the instance a registration describes.
    pub fn from_registration(
        network: NetworkName,
        name: ServiceName,
        id: InstanceId,
        reg: Registration,
        registry: impl Into<Arc<str>>,
    ) -> Instance {
        Instance {
            id,
            name,
            network,
            address: reg.address,
            metadata: Metadata::from_map(&reg.metadata),
            tags: Tags::from(reg.tags),
            version: reg.version,
            weight: reg.weight.unwrap_or(1),
            status: Status::Passing,
            registered_at: now_millis(),
            registry: registry.into(),
            health: reg.health.map(Box::new),
            last_check: None,
            public_key: None,
            signature: reg.signature.map(String::into_boxed_str),
            signed_at: reg.signed_at,
        }
    }

    /// Whether the instance carries every tag in `tags`.
    pub fn has_tags(&self, tags: &[String]) -> bool {
        tags.iter().all(|t| self.tags.contains(t))
    }

    /// Whether two versions of an instance differ in anything a watcher cares about
    /// (everything but the registration time and the last check's record).
    pub fn differs_from(&self, other: &Instance) -> bool {
        self.address != other.address
            || self.metadata != other.metadata
            || self.tags != other.tags
            || self.version != other.version
            || self.weight != other.weight
            || self.status != other.status
            || self.health != other.health
            || self.signature != other.signature
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What changed for a watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A new instance appeared.
    Up,
    /// An instance went away (deregistered, session lost, expired).
    Down,
    /// An instance's fields or status changed.
    Changed,
}

/// One change to a watched service: `{type: 'up'|'down'|'changed', instance}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The instance as it is now (for `down`, as it was last).
    pub instance: Arc<Instance>,
}

/// Where an instance lives: its network, service and id.
pub type InstanceKey = (NetworkName, ServiceName, InstanceId);

/// The answer to a discovery query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Discovery {
    /// The service asked for.
    pub name: ServiceName,
    /// The network it was asked in.
    pub network: NetworkName,
    /// Matching instances, ordered by id.
    #[schema(value_type = Vec<Instance>)]
    pub instances: Vec<Arc<Instance>>,
}

/// A message on a channel, as subscribers receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMessage {
    /// The channel.
    pub channel: ChannelName,
    /// What was published: any JSON value.
    pub data: serde_json::Value,
    /// The publisher's public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Arc<str>>,
}

/// One service name with its instance counts, as `services` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    /// The service name.
    pub name: ServiceName,
    /// All instances.
    pub instances: usize,
    /// Instances not critical.
    pub healthy: usize,
    /// Instances passing.
    #[serde(default)]
    pub passing: usize,
    /// Instances warning.
    #[serde(default)]
    pub warning: usize,
    /// Instances critical.
    #[serde(default)]
    pub critical: usize,
}

#[cfg(test)]
mod tests;
