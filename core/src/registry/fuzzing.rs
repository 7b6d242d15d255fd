//! The entry points of the coverage-guided fuzz targets (`fuzz/`, the `fuzzing` feature): each
//! takes the bytes a hostile peer controls and runs them through the code the registry (or a
//! client) runs on them, then checks what must hold whatever the bytes. A violated property is
//! a panic, which is how libFuzzer tells a finding; refusals are ordinary errors, each with its
//! stable code. `core/tests/fuzz_corpus.rs` replays the committed corpus and every past finding
//! through the same functions on every test run.
//!
//! Targets that need a registry share one started lazily in this process (ephemeral data dir,
//! loopback port 0), and undo what each input did, so an input replays the same alone.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::directory::{Directory, Owner};
use super::ops::{self, Hello, PeerCaller};
use super::session::{read_hello, HelloFrame};
use super::store::{decode_record, encode_record, RestRecord};
use super::{Registry, RegistryHandle};
use crate::config::RegistryConfig;
use crate::error::Error;
use crate::identity::{self, NodeKey};
use crate::model::{Instance, InstanceId, NetworkName, Registration, ServiceName};
use crate::wire::{ClientMessage, ReplicaChange, ResultData, ServerMessage, SnapshotPart};

/// The nonce of the challenge every `handshake` input answers.
pub const NONCE: &str = "fuzz-nonce-0000000000000000";

/// A `hello` whose signature is this asks the target to sign it with the target's own key, so
/// the fuzzer also reaches what follows a valid signature (policy, token, filter).
pub const SIGN_HERE: &str = "SIGN";

/// The peer registry every `replica` input comes from.
const PEER: &str = "fuzzpeer";

struct Shared {
    runtime: tokio::runtime::Runtime,
    registry: RegistryHandle,
    key: NodeKey,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("netget-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzzing needs a tokio runtime: {e}"));
        let mut config = RegistryConfig::ephemeral(dir);
        // Every input comes from one address: the budget of failed authentications would
        // soon refuse all of them and hide what follows a signature.
        config.limits.failed_auth_rate = 0;
        let registry = runtime
            .block_on(Registry::spawn(config))
            .unwrap_or_else(|e| panic!("fuzzing needs a registry on loopback: {e}"));
        let key = NodeKey::generate().unwrap_or_else(|e| panic!("no key: {e}"));
        Shared {
            runtime,
            registry,
            key,
        }
    })
}

/// Every refusal carries one of the stable codes (`NETGET_*`) and a message.
fn refused(e: &Error) {
    assert!(e.code().starts_with("NETGET_"), "no stable code: {e:?}");
    assert!(!e.to_string().is_empty(), "an error without a message");
}

/// A WebSocket text frame, as a registry reads it from a node and as a client reads it from a
/// registry: each decodes or is refused with a code; what decodes encodes back to the same
/// message; a client's fast decoder agrees with the general one.
pub fn ws_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // a text frame is UTF-8 by the WebSocket layer's own check
    };
    match ClientMessage::parse(text) {
        Ok(m) => {
            let again = serde_json::to_string(&m)
                .unwrap_or_else(|e| panic!("a decoded {m:?} does not encode: {e}"));
            let back = ClientMessage::parse(&again)
                .unwrap_or_else(|(_, e)| panic!("{again} does not decode again: {e}"));
            assert_eq!(back, m, "a client frame changed on its way back");
        }
        Err((_, e)) => refused(&e),
    }
    server_frame(text);
}

/// A registry's frame as a client decodes it.
fn server_frame(text: &str) {
    let Ok(m) = ServerMessage::parse(text) else {
        return;
    };
    if let Ok(general) = serde_json::from_str::<ServerMessage>(text) {
        // Compared as JSON values, floating-point numbers aside: the fast decoder keeps
        // metadata's text as it came, the general one goes through serde's buffer, which rounds
        // an integer beyond a double's precision and may round a long decimal differently in
        // its last bit (RFC 8259 section 6 leaves such numbers to each implementation; a
        // registry stores them rounded too). Anything else that differs is a finding
        // (fuzz/regressions/ws_frame/metadata-* are the two that were not).
        assert_eq!(
            serde_json::to_value(&m).ok().map(integers_only),
            serde_json::to_value(&general).ok().map(integers_only),
            "the fast decoder and the general one disagree"
        );
    }
    let again = m.to_text();
    let back = ServerMessage::parse(&again)
        .unwrap_or_else(|e| panic!("{again} does not decode again: {e}"));
    assert_eq!(back, m, "a registry frame changed on its way back");
}

/// `v` with every number that is not an integer of 64 bits replaced by `null`.
fn integers_only(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => Value::Null,
        Value::Array(a) => Value::Array(a.into_iter().map(integers_only).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, integers_only(v))).collect())
        }
        other => other,
    }
}

/// The first frame of a session, answering the challenge [`NONCE`]: the registry's own checks
/// of a hello, then admission into the network it names, as a registry started with its
/// default configuration decides it.
pub fn handshake(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ttl = Duration::from_secs(30);
    let HelloFrame {
        network,
        mut public_key,
        mut signature,
        node_type,
        token,
    } = match read_hello(text, NONCE, Duration::ZERO, ttl) {
        Ok(h) => h,
        Err((code, e)) => {
            assert!(code >= 1000, "close code {code}");
            return refused(&e);
        }
    };
    let s = shared();
    let state = &s.registry.state;
    if signature == SIGN_HERE {
        public_key = s.key.public_key();
        signature = s.key.sign(&identity::hello_payload(
            &state.registry_id,
            network.as_str(),
            NONCE,
        ));
    }
    let signed_here = public_key == s.key.public_key();
    let hello = Hello {
        network: &network,
        public_key: &public_key,
        signature: &signature,
        nonce: NONCE,
        token: token.as_deref(),
        node_type: node_type.clone(),
        origin: None,
        remote: SocketAddr::from(([127, 0, 0, 1], 40000)),
    };
    if node_type.as_deref() == Some("registry") {
        // Not in a cluster: no replication link is ever taken.
        let e = ops::admit_peer(state, &hello).err();
        let e = e.unwrap_or_else(|| panic!("a registry outside a cluster took a link"));
        return refused(&e);
    }
    match s.runtime.block_on(ops::admit(state, hello)) {
        Ok(_) => {
            assert!(
                signed_here,
                "a hello was admitted with a signature nobody made"
            );
            assert!(
                state.directory.check_network(&network).is_ok(),
                "admitted into {network}, which this registry does not serve"
            );
        }
        Err(e) => refused(&e),
    }
}

/// An HTTP registration body (`PUT …/instances/{id}`): decoded and validated as the registry
/// does it; what is accepted goes into a directory, into a store record and onto the wire, and
/// comes back from each the same.
pub fn registration(data: &[u8]) {
    let reg: Registration = match super::http::decode_body(data) {
        Ok(r) => r,
        Err(e) => return refused(&e),
    };
    if let Err(e) = reg.validate() {
        return refused(&e);
    }
    let (Ok(network), Ok(name), Ok(id)) = (
        NetworkName::new("development"),
        ServiceName::new("fuzzed"),
        InstanceId::new("a"),
    ) else {
        unreachable!("fixed names are valid")
    };
    let directory = Directory::new("fuzzreg", std::slice::from_ref(&network));
    let instance = Instance::from_registration(network, name, id, reg, "fuzzreg");
    let owner = Owner::Rest {
        ttl: Some(Duration::from_secs(30)),
        token: None,
    };
    let held = directory
        .register(instance.clone(), owner)
        .unwrap_or_else(|e| panic!("a valid registration was refused by the directory: {e}"))
        .instance;
    assert_eq!(*held, instance, "the directory changed the instance");
    let row = encode_record(&held, Some(Duration::from_secs(30)), None)
        .unwrap_or_else(|e| panic!("a held instance does not encode: {e}"));
    let stored = decode_record(1, &row, Path::new("fuzz"))
        .unwrap_or_else(|e| panic!("a record the writer wrote does not read back: {e}"));
    assert_eq!(stored.instance, instance, "the store changed the instance");
    let answer = ServerMessage::Result {
        id: 1,
        data: ResultData::Instance(held),
    };
    let back = ServerMessage::parse(&answer.to_text())
        .unwrap_or_else(|e| panic!("an answer does not decode: {e}"));
    assert_eq!(back, answer, "the wire changed the instance");
}

/// A `netget.toml`: parsed into a configuration or refused with a code, never more.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = RegistryConfig::from_toml(text, &PathBuf::from("/nonexistent/netget-fuzz")) {
        refused(&e);
    }
}

/// A row of the store's table of REST registrations, as a registry reads it at start: read
/// back or refused as corruption, and what reads back is restored into the registry's directory
/// (then removed again) and written back to the same record.
pub fn store_record(data: &[u8]) {
    let record: RestRecord = match decode_record(7, data, Path::new("fuzz.redb")) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.code(), "NETGET_IO", "corruption is an I/O error: {e}");
            return;
        }
    };
    let row = encode_record(&record.instance, None, None)
        .unwrap_or_else(|e| panic!("a stored instance does not encode: {e}"));
    let again = decode_record(7, &row, Path::new("fuzz.redb"))
        .unwrap_or_else(|e| panic!("a rewritten record does not read back: {e}"));
    assert_eq!(
        again.instance, record.instance,
        "a record changed when rewritten"
    );
    let s = shared();
    let state = &s.registry.state;
    let token = record.token.clone().map(Arc::from);
    match ops::restore_record(state, record) {
        Ok(held) => {
            assert_eq!(
                &*held.registry, &*state.registry_id,
                "a restored instance is not this registry's"
            );
            let owner = Owner::Rest { ttl: None, token };
            state
                .directory
                .deregister(&held.key(), &owner)
                .unwrap_or_else(|e| panic!("a restored instance cannot be removed: {e}"));
        }
        Err(e) => refused(&e),
    }
}

/// A frame on a replication link from a peer registry: decoded as a registry decodes it and
/// applied to the shared registry, which must then hold only replicas that name the peer (a
/// peer speaks only for itself), and after a snapshot's last frame only those it showed.
pub fn replica(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ServerMessage::Replica {
        snapshot, changes, ..
    }) = ServerMessage::parse(text)
    else {
        return;
    };
    let s = shared();
    let state = &s.registry.state;
    let peer = PeerCaller {
        registry: Arc::from(PEER),
    };
    let shown: HashSet<_> = changes
        .iter()
        .filter_map(|c| match c {
            ReplicaChange::Put { instance, .. } => Some(instance.key()),
            ReplicaChange::Remove { .. } => None,
        })
        .collect();
    let mut loading = None;
    super::cluster::apply_replica(state, &peer, &mut loading, snapshot, changes);
    for (instance, origin) in state.directory.replicas_of(PEER) {
        assert_eq!(
            &*instance.registry, PEER,
            "a replica names another registry"
        );
        if snapshot == Some(SnapshotPart::End) {
            assert!(
                shown.contains(&instance.key()),
                "a replica its peer's snapshot did not show outlived it"
            );
        }
        // The origin a peer reports is its own business, but never "a peer" again.
        assert!(
            !matches!(origin, Owner::Peer { .. }),
            "a replica's origin is itself a replica"
        );
    }
    ops::forget_replicas(state, PEER, &Default::default());
    assert!(
        state.directory.replicas_of(PEER).is_empty(),
        "replicas outlived their peer's empty snapshot"
    );
}
