//! Decoding without needless copies: text borrowed from the input where it can be, and names
//! that repeat shared instead of allocated again.
//!
//! A discovery answer repeats its network, its service, the owning registry's id and the node's
//! public key in every instance, and every event of a watched service repeats them too; serde's
//! own `Cow<str>` always copies into a `String`, which the name types then copied again into an
//! `Arc<str>`. Each thread remembers the last text it decoded for each kind of name, so a repeat
//! is an `Arc` clone: no allocation, and no second validation of a name already checked.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::thread::LocalKey;

use serde::de::{Deserializer, Visitor};

/// A string field, borrowed from the input when it has no escapes (serde_json's `from_str`),
/// copied otherwise.
pub(crate) struct Text<'de>(pub(crate) Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The last text of one kind this thread decoded.
pub(crate) type Recent = LocalKey<RefCell<Option<Arc<str>>>>;

/// `s` as a shared `Arc<str>`: the one `recent` holds if it is the same text, else `make(s)`
/// (which validates), remembered for the next time.
pub(crate) fn shared<E>(
    recent: &'static Recent,
    s: &str,
    make: impl FnOnce(&str) -> Result<Arc<str>, E>,
) -> Result<Arc<str>, E> {
    if let Some(hit) = recent.with_borrow(|r| r.as_ref().filter(|a| ***a == *s).cloned()) {
        return Ok(hit);
    }
    let fresh = make(s)?;
    recent.set(Some(fresh.clone()));
    Ok(fresh)
}

thread_local! {
    static REGISTRY: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    static PUBLIC_KEY: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// `Instance::registry`: the owning registry's id, shared between the instances that repeat it.
pub(crate) fn registry<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
    let t = <Text<'de> as serde::Deserialize>::deserialize(d)?;
    shared(&REGISTRY, &t.0, |s| Ok(Arc::from(s)))
}

/// `Instance::public_key`: the node's key, shared between the instances that repeat it.
pub(crate) fn public_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
    let t = <Option<Text<'de>> as serde::Deserialize>::deserialize(d)?;
    t.map(|t| shared(&PUBLIC_KEY, &t.0, |s| Ok(Arc::from(s))))
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::model::{Instance, ServiceName};

    #[test]
    fn repeated_names_in_one_answer_share_one_allocation() {
        let one = r#"{"id":"a","name":"web","network":"development","address":"http://127.0.0.1:1","metadata":{},"tags":["x"],"weight":1,"status":"passing","registeredAt":1,"registry":"r-1","publicKey":"k"}"#;
        let a: Instance = serde_json::from_str(one).unwrap_or_else(|e| panic!("{e}"));
        let b: Instance = serde_json::from_str(&one.replace(r#""id":"a""#, r#""id":"b""#))
            .unwrap_or_else(|e| panic!("{e}"));
        // The same text at the same address: one allocation.
        assert!(std::ptr::eq(a.name.as_str(), b.name.as_str()));
        assert!(std::ptr::eq(a.network.as_str(), b.network.as_str()));
        assert!(!std::ptr::eq(a.id.as_str(), b.id.as_str()));
        assert!(Arc::ptr_eq(&a.registry, &b.registry));
        assert!(Arc::ptr_eq(
            a.public_key.as_ref().unwrap_or_else(|| panic!("no key")),
            b.public_key.as_ref().unwrap_or_else(|| panic!("no key"))
        ));
        assert_eq!(b.id.as_str(), "b");
    }

    #[test]
    fn a_name_shared_once_is_still_validated_as_its_own_kind() {
        // "a:b" is a valid instance id but not a valid service name: the id decoded first must
        // not let the same text through as a name.
        let _: crate::model::InstanceId =
            serde_json::from_str(r#""a:b""#).unwrap_or_else(|e| panic!("{e}"));
        assert!(serde_json::from_str::<ServiceName>(r#""a:b""#).is_err());
        let _: ServiceName = serde_json::from_str(r#""web""#).unwrap_or_else(|e| panic!("{e}"));
        assert!(serde_json::from_str::<ServiceName>(r#""we b""#).is_err());
        // Escaped text (copied, not borrowed) decodes the same.
        let n: ServiceName =
            serde_json::from_str(r#""w\u0065b""#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.as_str(), "web");
    }
}
