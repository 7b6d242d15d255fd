//! Tests of the model: names, validation, metadata and tags as text, durations.

use super::*;

#[test]
fn names_accept_letters_digits_dash_underscore_dot() {
    assert!(ServiceName::new("DatabaseService").is_ok());
    assert!(ServiceName::new("orders-v2.eu_west").is_ok());
    assert!(NetworkName::new("development").is_ok());
    assert!(InstanceId::new("abc:123").is_ok());
}

#[test]
fn names_reject_empty_long_and_odd_characters() {
    for bad in ["", "-lead", "has space", "slash/y", "ü", &"a".repeat(64)] {
        let e = ServiceName::new(bad).unwrap_err();
        assert_eq!(e.code(), "NETGET_INVALID_INPUT", "{bad}");
    }
}

#[test]
fn durations_parse_the_wire_forms() {
    assert_eq!(
        WireDuration::parse("500ms").unwrap().0,
        Duration::from_millis(500)
    );
    assert_eq!(WireDuration::parse("5s").unwrap().0, Duration::from_secs(5));
    assert_eq!(
        WireDuration::parse("1m").unwrap().0,
        Duration::from_secs(60)
    );
    assert_eq!(WireDuration::parse("3").unwrap().0, Duration::from_secs(3));
    assert!(WireDuration::parse("5 parsecs").is_err());
    assert!(WireDuration::parse("").is_err());
    assert_eq!(
        WireDuration(Duration::from_millis(1500)).to_string(),
        "1500ms"
    );
}

#[test]
fn registration_rejects_oversized_metadata_and_bad_address() {
    let mut r = Registration {
        address: "http://127.0.0.1:1".into(),
        ..Default::default()
    };
    assert!(r.validate().is_ok());
    r.metadata.insert(
        "big".into(),
        serde_json::Value::String("x".repeat(MAX_METADATA_BYTES)),
    );
    assert_eq!(r.validate().unwrap_err().code(), "NETGET_TOO_LARGE");
    r.metadata.clear();
    r.address = "has space".into();
    assert_eq!(r.validate().unwrap_err().code(), "NETGET_INVALID_INPUT");
}

#[test]
fn registration_json_uses_camel_case_and_refuses_unknown_fields() {
    let r: Registration = serde_json::from_str(
        r#"{"address":"a:1","ttl":"30s","health":{"http":"http://x/h","deregisterCriticalAfter":"1m"}}"#,
    )
    .unwrap();
    assert_eq!(r.ttl.unwrap().0, Duration::from_secs(30));
    assert!(serde_json::from_str::<Registration>(r#"{"address":"a:1","bogus":1}"#).is_err());
}

#[test]
fn metadata_is_kept_as_compact_text_and_travels_as_an_object() {
    let m: Metadata = serde_json::from_str(
        r#"{ "zone": "a", "build": {"y": [1, -2, 2.5, true, null, "\u00e9\""], "n": 1} }"#,
    )
    .unwrap();
    assert_eq!(
        m.as_str(),
        r#"{"zone":"a","build":{"y":[1,-2,2.5,true,null,"é\""],"n":1}}"#
    );
    assert_eq!(
        m.canonical(),
        r#"{"build":{"n":1,"y":[1,-2,2.5,true,null,"é\""]},"zone":"a"}"#
    );
    let m = Metadata::from_map(&m.to_map());
    assert_eq!(
        m.as_str(),
        m.canonical(),
        "built from a map, it is canonical"
    );
    assert_eq!(m.get("zone"), Some(serde_json::json!("a")));
    assert_eq!(m.get("build").unwrap()["n"], serde_json::json!(1));
    assert_eq!(m.get("missing"), None);
    assert_eq!(serde_json::to_string(&m).unwrap(), m.as_str());
    // Through serde_json::Value too (what the bindings convert from).
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["build"]["n"], serde_json::json!(1));
    assert_eq!(serde_json::from_value::<Metadata>(v).unwrap(), m);
    // Compact text without escapes (what registries and clients write) is kept as it came,
    // spaces inside strings included.
    let plain = r#"{"description":"Provides database functionalities","n":[1,{"a":null}]}"#;
    let m: Metadata = serde_json::from_str(plain).unwrap();
    assert_eq!(m.as_str(), plain);
    let from_value: Metadata =
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(plain).unwrap()).unwrap();
    assert_eq!(from_value.to_map(), m.to_map());
    // A space outside a string, or an escape, is written again compactly.
    assert_eq!(
        serde_json::from_str::<Metadata>(r#"{"a": "x\ty"}"#)
            .unwrap()
            .as_str(),
        r#"{"a":"x\ty"}"#
    );
    let e = serde_json::from_str::<Metadata>("[1]").unwrap_err();
    assert!(e.to_string().contains("must be a JSON object"), "{e}");
    assert!(serde_json::from_str::<Metadata>(r#""{}""#).is_err());
    assert_eq!(
        serde_json::from_str::<Metadata>("{}").unwrap().as_str(),
        "{}"
    );
    let empty_seq: Metadata = serde_json::from_str(r#"{"a":[],"b":{}}"#).unwrap();
    assert_eq!(empty_seq.as_str(), r#"{"a":[],"b":{}}"#);
    assert!(Metadata::default().is_empty());
}

#[test]
fn tags_keep_their_order_and_travel_as_an_array() {
    let t = Tags::from(vec!["v1".to_string(), "primary".to_string()]);
    assert_eq!(t.joined(), "v1,primary");
    assert_eq!(t.len(), 2);
    assert!(t.contains("primary") && !t.contains("v"));
    assert_eq!(serde_json::to_string(&t).unwrap(), r#"["v1","primary"]"#);
    assert_eq!(
        serde_json::from_str::<Tags>(r#"["v1","primary"]"#).unwrap(),
        t
    );
    assert!(serde_json::from_str::<Tags>(r#"["a,b"]"#).is_err());
    let none = Tags::default();
    assert!(none.is_empty() && none.iter().next().is_none());
    assert_eq!(serde_json::to_string(&none).unwrap(), "[]");
}

#[test]
fn whole_numbers_may_be_written_as_floats_but_fractions_are_refused() {
    let r: Registration = serde_json::from_str(
        r#"{"address":"a:1","weight":3.0,"health":{"tcp":"a:1","failuresBeforeCritical":2.0}}"#,
    )
    .unwrap();
    assert_eq!(r.weight, Some(3));
    assert_eq!(r.health.unwrap().failures_before_critical, Some(2));
    let e = serde_json::from_str::<Registration>(r#"{"address":"a:1","weight":2.5}"#).unwrap_err();
    assert!(e.to_string().contains("not a whole number"), "{e}");
}

#[test]
fn field_lengths_count_characters_as_the_openapi_document_does() {
    let r = Registration {
        address: "http://127.0.0.1:1".into(),
        version: Some("é".repeat(MAX_VERSION_LEN)),
        tags: vec!["ü".repeat(MAX_TAG_LEN)],
        ..Default::default()
    };
    assert!(r.validate().is_ok());
    let over = Registration {
        version: Some("é".repeat(MAX_VERSION_LEN + 1)),
        ..r
    };
    assert_eq!(over.validate().unwrap_err().code(), "NETGET_INVALID_INPUT");
}
