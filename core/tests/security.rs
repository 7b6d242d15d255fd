//! Attacks on policies, ownership, handshakes, the filter, signatures, TLS, origins and limits:
//! each refused with its code while a legitimate session on the same registry keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{error_code, raw_close_code, raw_connect, raw_recv, raw_send};
use netget::client::rest::RestClient;
use netget::identity::NodeKey;
use netget::model::{NetworkName, Registration};
use netget::registry::directory::Owner;
use netget::security::{filter_fn, Decision, FilterKind, KeyGrant, NetworkConfig, Policy};
use netget::wire::ServerMessage;
use netget::{Netget, NetgetOptions, RegistryConfig, RegistryHandle};

const PROD_TOKEN: &str = "prod-token-0001";
const STAGE_TOKEN: &str = "stage-token-001";

fn net(s: &str) -> NetworkName {
    NetworkName::new(s).unwrap()
}

/// development (open), production (token), staging (token), secure (keys: `bound` may register
/// only "orders"; `free` any unclaimed name; `other` too).
struct Keys {
    bound: NodeKey,
    free: NodeKey,
    other: NodeKey,
}

fn keys() -> Keys {
    Keys {
        bound: NodeKey::generate().unwrap(),
        free: NodeKey::generate().unwrap(),
        other: NodeKey::generate().unwrap(),
    }
}

fn policies(k: &Keys) -> Vec<NetworkConfig> {
    vec![
        NetworkConfig::open("development").unwrap(),
        NetworkConfig {
            name: net("production"),
            policy: Policy::Token {
                tokens: vec![PROD_TOKEN.into()],
            },
        },
        NetworkConfig {
            name: net("staging"),
            policy: Policy::Token {
                tokens: vec![STAGE_TOKEN.into()],
            },
        },
        NetworkConfig {
            name: net("secure"),
            policy: Policy::Keys {
                keys: vec![
                    KeyGrant {
                        public_key: k.bound.public_key(),
                        services: Some(vec![netget::model::ServiceName::new("orders").unwrap()]),
                    },
                    KeyGrant {
                        public_key: k.free.public_key(),
                        services: None,
                    },
                    KeyGrant {
                        public_key: k.other.public_key(),
                        services: None,
                    },
                ],
                tokens: vec![],
            },
        },
    ]
}

async fn secured(
    k: &Keys,
    f: impl FnOnce(RegistryConfig) -> RegistryConfig,
) -> (RegistryHandle, tempfile::TempDir) {
    let networks = policies(k);
    common::registry_with(move |mut c| {
        c.networks = networks;
        c.networks_configured = true;
        f(c)
    })
    .await
}

/// A legitimate production node (with the right token) that must keep working.
async fn bystander(url: &str) -> (Netget, Netget) {
    let mut o = NetgetOptions::service("bystander", "http://127.0.0.1:4000", &[url]);
    o.network = "production".into();
    o.token = Some(PROD_TOKEN.into());
    o.data_dir = None;
    let node = Netget::new(o).unwrap();
    node.register_with_network().await.unwrap();
    let mut c = NetgetOptions::client(&[url]);
    c.network = "production".into();
    c.token = Some(PROD_TOKEN.into());
    c.data_dir = None;
    (node, Netget::new(c).unwrap())
}

async fn still_fine((node, client): &(Netget, Netget)) {
    let opts = netget::DiscoverOptions {
        cached: false,
        ..Default::default()
    };
    assert_eq!(
        client
            .discover_service_nodes("bystander", &opts)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(node.connected_to().is_some());
}

fn node_in(
    url: &str,
    network: &str,
    token: Option<&str>,
    key: Option<&NodeKey>,
    name: &str,
) -> Netget {
    let mut o = NetgetOptions::service(name, "http://127.0.0.1:5000", &[url]);
    o.network = network.into();
    o.token = token.map(str::to_string);
    o.key = key.cloned();
    o.data_dir = None;
    o.request_timeout = Duration::from_secs(3);
    Netget::new(o).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_networks_refuse_missing_wrong_and_other_networks_tokens() {
    let k = keys();
    let (reg, _d) = secured(&k, |c| c).await;
    let url = reg.url();
    let b = bystander(&url).await;
    for token in [None, Some("wrong-token-123"), Some(STAGE_TOKEN)] {
        let n = node_in(&url, "production", token, None, "intruder");
        let e = n.register_with_network().await.unwrap_err();
        assert_eq!(e.code(), "NETGET_UNAUTHORIZED", "{token:?}: {e}");
        n.stop().await.unwrap();
        let rest = RestClient::new(&url)
            .unwrap()
            .token(token.map(str::to_string));
        let e = rest
            .discover("production", "bystander", true, &[])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NETGET_UNAUTHORIZED", "{token:?}");
        let r = Registration {
            address: "http://evil:1".into(),
            ..Default::default()
        };
        let e = rest
            .register("production", "bystander", "x", &r)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NETGET_UNAUTHORIZED");
    }
    // The right token works over HTTP, and the networks list shows only what it unlocks.
    let rest = RestClient::new(&url)
        .unwrap()
        .token(Some(PROD_TOKEN.into()));
    assert_eq!(
        rest.discover("production", "bystander", true, &[])
            .await
            .unwrap()
            .instances
            .len(),
        1
    );
    let listed = rest
        .send(hyper::Method::GET, "/v1/networks", None)
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    let names: Vec<&str> = listed["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["development", "production"]);
    still_fine(&b).await;
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_networks_admit_only_listed_keys_on_their_bound_names() {
    let k = keys();
    let (reg, _d) = secured(&k, |c| c).await;
    let url = reg.url();
    let b = bystander(&url).await;
    // A key not on the list.
    let stranger = node_in(&url, "secure", None, None, "orders");
    assert_eq!(
        stranger.register_with_network().await.unwrap_err().code(),
        "NETGET_UNAUTHORIZED"
    );
    stranger.stop().await.unwrap();
    // An allowed key registering a name it is not bound to.
    let wrong_name = node_in(&url, "secure", None, Some(&k.bound), "billing");
    assert_eq!(
        wrong_name.register_with_network().await.unwrap_err().code(),
        "NETGET_FORBIDDEN"
    );
    wrong_name.stop().await.unwrap();
    // The bound key on its name works.
    let orders = node_in(&url, "secure", None, Some(&k.bound), "orders");
    orders.register_with_network().await.unwrap();
    // Another allowed key cannot take over the bound name ...
    let hijack = node_in(&url, "secure", None, Some(&k.free), "orders");
    assert_eq!(
        hijack.register_with_network().await.unwrap_err().code(),
        "NETGET_FORBIDDEN"
    );
    hijack.stop().await.unwrap();
    // ... nor a name claimed first by another unbound key.
    let first = node_in(&url, "secure", None, Some(&k.free), "catalog");
    first.register_with_network().await.unwrap();
    let second = node_in(&url, "secure", None, Some(&k.other), "catalog");
    assert_eq!(
        second.register_with_network().await.unwrap_err().code(),
        "NETGET_FORBIDDEN"
    );
    second.stop().await.unwrap();
    // HTTP has no way into a keys network without a configured token.
    let e = RestClient::new(&url)
        .unwrap()
        .discover("secure", "orders", true, &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NETGET_UNAUTHORIZED");
    still_fine(&b).await;
    for n in [orders, first] {
        n.stop().await.unwrap();
    }
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_instances_can_only_be_changed_by_the_token_that_registered_them() {
    let k = keys();
    let (reg, _d) = secured(&k, |mut c| {
        c.networks[1] = NetworkConfig {
            name: net("production"),
            policy: Policy::Token {
                tokens: vec![PROD_TOKEN.into(), "second-token-1".into()],
            },
        };
        c
    })
    .await;
    let owner = RestClient::new(&reg.url())
        .unwrap()
        .token(Some(PROD_TOKEN.into()));
    let other = RestClient::new(&reg.url())
        .unwrap()
        .token(Some("second-token-1".into()));
    let r = Registration {
        address: "http://127.0.0.1:1".into(),
        ..Default::default()
    };
    owner.register("production", "api", "a1", &r).await.unwrap();
    let evil = Registration {
        address: "http://evil:1".into(),
        ..Default::default()
    };
    assert_eq!(
        other
            .register("production", "api", "a1", &evil)
            .await
            .unwrap_err()
            .code(),
        "NETGET_FORBIDDEN"
    );
    assert_eq!(
        other
            .heartbeat("production", "api", "a1")
            .await
            .unwrap_err()
            .code(),
        "NETGET_FORBIDDEN"
    );
    assert_eq!(
        other
            .deregister("production", "api", "a1")
            .await
            .unwrap_err()
            .code(),
        "NETGET_FORBIDDEN"
    );
    owner.heartbeat("production", "api", "a1").await.unwrap();
    owner.deregister("production", "api", "a1").await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_challenges_and_signatures_for_another_registry_are_refused() {
    let k = keys();
    let (reg, _d) = secured(&k, |mut c| {
        c.challenge_ttl = Duration::from_millis(200);
        c
    })
    .await;
    let url = reg.url();
    let b = bystander(&url).await;
    let key = NodeKey::generate().unwrap();
    let (mut s, rid, nonce) = raw_connect(&url).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    raw_send(&mut s, &common::hello(&key, &rid, "development", &nonce)).await;
    assert_eq!(
        error_code(&raw_recv(&mut s).await),
        "NETGET_CHALLENGE_EXPIRED"
    );
    assert_eq!(raw_close_code(&mut s).await, Some(1008));
    // Signed for another registry's id: worthless here.
    let (mut s, _rid, nonce) = raw_connect(&url).await;
    raw_send(
        &mut s,
        &common::hello(&key, "another-registry", "development", &nonce),
    )
    .await;
    assert_eq!(error_code(&raw_recv(&mut s).await), "NETGET_UNAUTHORIZED");
    still_fine(&b).await;
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denying_filter_reaches_the_caller_with_its_reason() {
    let k = keys();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let filter = filter_fn(move |req| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push((
                req.kind.clone(),
                req.service.clone(),
                req.public_key.is_some(),
            ));
            match (
                req.kind,
                req.service.as_deref(),
                req.metadata.get("zone").and_then(|z| z.as_str()),
            ) {
                (FilterKind::Register, Some("blocked"), _) => {
                    Decision::Deny("blocked services are not welcome".into())
                }
                (FilterKind::Register, _, Some("mars")) => {
                    Decision::Deny("no instances on mars".into())
                }
                (FilterKind::Register, Some("boom"), _) => panic!("filter bug"),
                (FilterKind::Handshake, _, _) if req.token.as_deref() == Some("banned-token") => {
                    Decision::Deny("banned".into())
                }
                _ => Decision::Allow,
            }
        }
    });
    let (reg, _d) = secured(&k, move |mut c| {
        c.filter = Some(filter);
        c
    })
    .await;
    let url = reg.url();
    let b = bystander(&url).await;
    let blocked = node_in(&url, "development", None, None, "blocked");
    let e = blocked.register_with_network().await.unwrap_err();
    assert_eq!(e.code(), "NETGET_DENIED");
    assert!(
        e.to_string().contains("blocked services are not welcome"),
        "{e}"
    );
    blocked.stop().await.unwrap();
    let boom = node_in(&url, "development", None, None, "boom");
    assert_eq!(
        boom.register_with_network().await.unwrap_err().code(),
        "NETGET_DENIED"
    );
    boom.stop().await.unwrap();
    let banned = node_in(&url, "development", Some("banned-token"), None, "x");
    let e = banned.register_with_network().await.unwrap_err();
    assert!(
        e.code() == "NETGET_DENIED" && e.to_string().contains("banned"),
        "{e}"
    );
    banned.stop().await.unwrap();
    // Over HTTP, with the metadata in view.
    let rest = RestClient::new(&url).unwrap();
    let mut r = Registration {
        address: "http://127.0.0.1:1".into(),
        ..Default::default()
    };
    r.metadata.insert("zone".into(), "mars".into());
    let e = rest
        .register("development", "rover", "r1", &r)
        .await
        .unwrap_err();
    assert!(
        e.code() == "NETGET_DENIED" && e.to_string().contains("mars"),
        "{e}"
    );
    r.metadata.insert("zone".into(), "earth".into());
    rest.register("development", "rover", "r1", &r)
        .await
        .unwrap();
    let calls = seen.lock().unwrap().clone();
    assert!(calls
        .iter()
        .any(|(k, _, pk)| *k == FilterKind::Handshake && *pk));
    assert!(calls
        .iter()
        .any(|(k, s, _)| *k == FilterKind::Register && s.as_deref() == Some("rover")));
    still_fine(&b).await;
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_altered_after_signing_is_rejected_by_the_discovering_client() {
    let k = keys();
    let (reg, _d) = secured(&k, |c| c).await;
    let url = reg.url();
    // In the keys network, clients always verify.
    let orders = node_in(&url, "secure", None, Some(&k.bound), "orders");
    let genuine = orders.register_with_network().await.unwrap();
    assert!(genuine.signature.is_some() && genuine.public_key.is_some());
    let mut co = NetgetOptions::client(&[&url]);
    co.network = "secure".into();
    co.key = Some(k.free.clone());
    co.data_dir = None;
    let client = Netget::new(co).unwrap();
    assert_eq!(
        client
            .discover_service_node("orders")
            .await
            .unwrap()
            .unwrap()
            .address,
        genuine.address
    );

    // A compromised registry rewrites the address, keeping the node's signature.
    let mut forged = (*genuine).clone();
    forged.address = "http://attacker:6666".into();
    let owner = Owner::Session {
        session: u64::MAX,
        key: genuine.public_key.clone().unwrap(),
    };
    reg.directory().register(forged, owner).unwrap();
    let dropped = common::wait_until(Duration::from_secs(5), || async {
        client
            .discover_service_node("orders")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    assert!(
        dropped.is_some(),
        "the client must refuse the altered instance"
    );
    let uncached = netget::DiscoverOptions {
        cached: false,
        ..Default::default()
    };
    assert!(client
        .discover_service_nodes("orders", &uncached)
        .await
        .unwrap()
        .is_empty());

    // In an open network, verification is on request; a pinned key refuses a registry-signed forgery.
    let dev_node = node_in(&url, "development", None, None, "pay");
    let pay = dev_node.register_with_network().await.unwrap();
    let mut vo = NetgetOptions::client(&[&url]);
    vo.data_dir = None;
    vo.trusted_keys
        .insert("pay".into(), vec![dev_node.public_key()]);
    let verifier = Netget::new(vo).unwrap();
    assert!(verifier
        .discover_service_node("pay")
        .await
        .unwrap()
        .is_some());
    let impostor = NodeKey::generate().unwrap();
    let mut fake = (*pay).clone();
    fake.address = "http://attacker:1".into();
    fake.public_key = Some(impostor.public_key().into());
    let at = fake.signed_at.unwrap();
    let payload = netget::identity::SignedFields {
        network: "development",
        service: "pay",
        instance_id: fake.id.as_str(),
        address: &fake.address,
        version: fake.version.as_deref(),
        tags: fake.tags.joined().into(),
        weight: fake.weight,
        metadata: fake.metadata.canonical().into(),
        signed_at: at,
    }
    .payload();
    fake.signature = Some(impostor.sign(&payload).into());
    let owner = Owner::Session {
        session: u64::MAX,
        key: pay.public_key.clone().unwrap(),
    };
    reg.directory().register(fake, owner).unwrap();
    let refused = common::wait_until(Duration::from_secs(5), || async {
        verifier
            .discover_service_node("pay")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    assert!(
        refused.is_some(),
        "a validly signed instance from an untrusted key must be refused"
    );
    for n in [orders, client, dev_node, verifier] {
        n.stop().await.unwrap();
    }
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_register_with_a_signature_that_does_not_match() {
    let k = keys();
    let (reg, _d) = secured(&k, |c| c).await;
    let mut s = common::raw_session(&reg.url(), "development").await;
    let bad = serde_json::json!({"type":"register","id":1,"name":"x","instanceId":"x1",
        "instance":{"address":"http://a:1","signature": NodeKey::generate().unwrap().sign(b"other"),"signedAt":1}});
    raw_send(&mut s, &bad.to_string()).await;
    assert_eq!(error_code(&raw_recv(&mut s).await), "NETGET_UNAUTHORIZED");
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_works_with_the_right_ca_and_fails_clearly_without_it() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::make_pki(pki.path());
    let (reg, _d) = common::registry_with(|mut c| {
        c.tls = Some(netget::config::TlsFiles { cert, key });
        c
    })
    .await;
    let url = reg.url();
    assert!(url.starts_with("https://"), "{url}");
    // Trusted CA: wss:// session and https:// API both work.
    let mut o = NetgetOptions::service("secure-web", "https://127.0.0.1:8443", &[&url]);
    o.tls_ca = Some(ca.clone());
    o.data_dir = None;
    let node = Netget::new(o).unwrap();
    node.register_with_network().await.unwrap();
    let rest = RestClient::with_tls(&url, Some(&ca)).unwrap();
    assert_eq!(
        rest.discover("development", "secure-web", true, &[])
            .await
            .unwrap()
            .instances
            .len(),
        1
    );
    // Untrusted (system roots only): a clear certificate error, never silence.
    let mut o = NetgetOptions::client(&[&url]);
    o.data_dir = None;
    o.request_timeout = Duration::from_secs(3);
    let untrusted = Netget::new(o).unwrap();
    let e = untrusted
        .discover_service_node("secure-web")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NETGET_UNREACHABLE");
    assert!(e.to_string().contains("certificate"), "{e}");
    let e = RestClient::new(&url)
        .unwrap()
        .discover("development", "secure-web", true, &[])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    // Plain HTTP to a TLS port does not work either.
    let plain = url.replace("https://", "http://");
    assert!(RestClient::new(&plain).unwrap().health().await.is_err());
    node.stop().await.unwrap();
    untrusted.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_not_on_the_list_are_refused_and_listed_ones_get_cors_headers() {
    let (reg, _d) = common::registry_with(|mut c| {
        c.origins.allowed = vec!["http://localhost:3000".into()];
        c
    })
    .await;
    let addr = reg.local_addr();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let get = |origin: &'static str, method: hyper::Method| {
        hyper::Request::builder()
            .method(method)
            .uri(format!("http://{addr}/v1/networks/development/services"))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .body(http_body_util::Empty::new())
            .unwrap()
    };
    let ok = client
        .request(get("http://localhost:3000", hyper::Method::GET))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let pre = client
        .request(get("http://localhost:3000", hyper::Method::OPTIONS))
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert!(pre.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    let bad = client
        .request(get("http://evil.example", hyper::Method::GET))
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    // A WebSocket upgrade from a disallowed origin is refused before any session starts.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/v1/ws"),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(req).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected a 403 refusal, got {:?}", other.map(|_| ())),
    }
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/v1/ws"),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "http://localhost:3000".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_connection_handshake_and_idle_limits_are_enforced() {
    let (reg, _d) = common::registry_with(|mut c| {
        c.limits.session_rate = 5;
        c.limits.session_burst = 5;
        c.limits.idle_timeout = Duration::from_millis(400);
        c.handshake_timeout = Duration::from_millis(300);
        c.max_sessions = 3;
        c.with_session_timeout(Duration::from_secs(5))
    })
    .await;
    let url = reg.url();
    // Requests per second per session.
    let mut s = common::raw_session(&url, "development").await;
    let mut limited = false;
    for i in 0..10 {
        raw_send(&mut s, &format!(r#"{{"type":"ping","id":{i}}}"#)).await;
        if let ServerMessage::Error { error, .. } = raw_recv(&mut s).await {
            assert_eq!(error.code, "NETGET_RATE_LIMITED");
            limited = true;
        }
    }
    assert!(
        limited,
        "10 quick requests against a rate of 5/s must be limited"
    );
    // Idle: a session that holds and watches nothing is closed after the idle timeout.
    let mut idle = common::raw_session(&url, "development").await;
    assert_eq!(raw_close_code(&mut idle).await, Some(4001));
    // Handshake timeout: connect, never answer the challenge.
    let (mut mute, _, _) = raw_connect(&url).await;
    assert_eq!(error_code(&raw_recv(&mut mute).await), "NETGET_TIMEOUT");
    // Concurrent sessions: with 3 allowed, a 4th upgrade is refused with 429.
    let _a = raw_connect(&url).await;
    let _b = raw_connect(&url).await;
    let _c = raw_connect(&url).await;
    let fourth = tokio_tungstenite::connect_async(netget::client::ws_url(&url).unwrap()).await;
    match fourth {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    drop(s);
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_rate_limit_answers_429_over_http() {
    let (reg, _d) = common::registry_with(|mut c| {
        c.limits.ip_rate = 20;
        c.limits.ip_burst = 20;
        c
    })
    .await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let mut codes = Vec::new();
    for _ in 0..40 {
        if let Err(e) = rest.health().await {
            codes.push(e.code());
        }
    }
    assert!(codes.contains(&"NETGET_RATE_LIMITED"), "{codes:?}");
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_is_cut_off_after_the_failure_budget_while_other_addresses_get_in() {
    let k = keys();
    let (reg, _d) = secured(&k, |c| c).await;
    let url = reg.url();
    let guesser = RestClient::new(&url).unwrap();
    let mut codes = Vec::new();
    for i in 0..40 {
        let g = guesser.clone().token(Some(format!("guess-{i:04}")));
        codes.push(
            g.discover("production", "bystander", true, &[])
                .await
                .unwrap_err()
                .code(),
        );
    }
    // The first 30 are compared and wrong; then the address is refused outright.
    assert!(
        codes[..30].iter().all(|c| *c == "NETGET_UNAUTHORIZED"),
        "{codes:?}"
    );
    assert!(
        codes[30..].iter().all(|c| *c == "NETGET_RATE_LIMITED"),
        "{codes:?}"
    );
    // Even the right token from that address waits its turn...
    let right = guesser.clone().token(Some(PROD_TOKEN.to_string()));
    let e = right
        .discover("production", "bystander", true, &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NETGET_RATE_LIMITED");
    // ...over a session too...
    let n = node_in(&url, "production", Some("guess-again"), None, "guesser");
    assert_eq!(
        n.register_with_network().await.unwrap_err().code(),
        "NETGET_RATE_LIMITED"
    );
    n.stop().await.unwrap();
    // ...while another address is served.
    let other = reqwest_like_from("127.0.0.9", &url, PROD_TOKEN).await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    reg.shutdown().await.unwrap();
}

/// A `GET /v1/networks/production/services` with `token`, sent from `from`; the status line and
/// the rest of the answer.
async fn reqwest_like_from(from: &str, url: &str, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let to: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut c = s.connect(to).await.unwrap();
    let req = format!(
        "GET /v1/networks/production/services HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    out
}
