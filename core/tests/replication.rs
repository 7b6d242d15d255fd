//! Replication between the registries of a cluster: what is registered on one is discoverable
//! and watchable on every other, a node failing over takes its entry over without a flap, a
//! lost peer's instances are held for the grace period, a lost frame is repaired by the revision
//! check, channels cross registries, a restarted registry catches up, and only registries with
//! an allowed key can open a link. Real registries on loopback, in-process and as processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netget::client::rest::RestClient;
use netget::identity::NodeKey;
use netget::model::EventKind;
use netget::{Netget, NetgetOptions, Registration, RegistryConfig, RegistryHandle};

const LONG: Duration = Duration::from_secs(20);

fn clustered(mut c: RegistryConfig, join: &[&str]) -> RegistryConfig {
    c.cluster.gossip_interval = Duration::from_millis(100);
    c.cluster.grace = Duration::from_secs(2);
    if join.is_empty() {
        c.cluster.gossip_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    c.cluster.join = join.iter().map(|s| s.to_string()).collect();
    c
}

/// Waits until every registry follows every other over an open link.
async fn linked(all: &[&RegistryHandle]) {
    for r in all {
        let done = common::wait_until(LONG, || async {
            let m = r.cluster_members().await;
            m.len() == all.len() && m.iter().all(|m| m.live && (m.this || m.linked))
        })
        .await;
        assert!(done.is_some(), "{:?}", r.cluster_members().await);
    }
}

async fn ids(rest: &RestClient, name: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = rest
        .discover("development", name, false, &[])
        .await
        .map(|d| {
            d.instances
                .iter()
                .map(|i| (i.id.to_string(), i.registry.to_string()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn next_event(w: &mut netget::client::Watch) -> netget::model::WatchEvent {
    tokio::time::timeout(LONG, w.next())
        .await
        .expect("an event within the bound")
        .expect("the watch is open")
}

/// A `netget registry` process that gossips (joining `join` if given), keeping its data in
/// `data`, so that it can be started again as itself.
fn registry_process(data: &str, join: Option<&str>) -> common::ChildGuard {
    let mut args = vec![
        "registry",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data,
        "--gossip-listen",
        "127.0.0.1:0",
    ];
    if let Some(j) = join {
        args.extend(["--join", j]);
    }
    common::spawn_netget(&args)
}

/// The id of the registry behind `rest`.
async fn id_of(rest: &RestClient) -> String {
    rest.health().await.unwrap()["registryId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn rest_registration(address: &str) -> Registration {
    Registration {
        address: address.into(),
        ttl: Some(netget::model::WireDuration(Duration::from_secs(30))),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_on_one_registry_is_discoverable_and_watchable_on_the_others() {
    let (a, _da) = common::registry_with(|c| clustered(c, &[])).await;
    let (b, _db) = common::registry_with(|c| clustered(c, &[&a.url()])).await;
    let (c, _dc) = common::registry_with(|c| clustered(c, &[&a.url()])).await;
    linked(&[&a, &b, &c]).await;
    let watcher = Netget::new(NetgetOptions::client(&[&c.url()])).unwrap();
    let mut w = watcher.watch("orders").unwrap();
    // A session registration on A, a REST one on B.
    let node = Netget::new(NetgetOptions::service(
        "orders",
        "http://127.0.0.1:8001",
        &[&a.url()],
    ))
    .unwrap();
    let on_a = node.register_with_network().await.unwrap();
    let rest_b = RestClient::new(&b.url()).unwrap();
    rest_b
        .register(
            "development",
            "orders",
            "rest-1",
            &rest_registration("http://127.0.0.1:8002"),
        )
        .await
        .unwrap();
    let mut ups = Vec::new();
    for _ in 0..2 {
        let e = next_event(&mut w).await;
        assert_eq!(e.kind, EventKind::Up, "{e:?}");
        ups.push((e.instance.id.to_string(), e.instance.registry.to_string()));
    }
    ups.sort();
    let mut expected = vec![
        (on_a.id.to_string(), a.registry_id().to_string()),
        ("rest-1".to_string(), b.registry_id().to_string()),
    ];
    expected.sort();
    assert_eq!(
        ups, expected,
        "each instance names the registry that owns it"
    );
    // Every registry answers the same, over HTTP.
    for r in [&a, &b, &c] {
        let rest = RestClient::new(&r.url()).unwrap();
        let same =
            common::wait_until(LONG, || async { ids(&rest, "orders").await == expected }).await;
        assert!(
            same.is_some(),
            "{}: {:?}",
            r.url(),
            ids(&rest, "orders").await
        );
    }
    // Removals travel too.
    rest_b
        .deregister("development", "orders", "rest-1")
        .await
        .unwrap();
    let down = next_event(&mut w).await;
    assert_eq!(
        (down.kind, down.instance.id.as_str()),
        (EventKind::Down, "rest-1")
    );
    node.stop().await.unwrap();
    let down = next_event(&mut w).await;
    assert_eq!(down.kind, EventKind::Down);
    assert_eq!(down.instance.id, on_a.id);
    // A replica cannot be changed where it is only a copy.
    let rest_c = RestClient::new(&c.url()).unwrap();
    rest_b
        .register(
            "development",
            "orders",
            "rest-2",
            &rest_registration("http://127.0.0.1:8003"),
        )
        .await
        .unwrap();
    assert!(
        common::wait_until(LONG, || async { ids(&rest_c, "orders").await.len() == 1 })
            .await
            .is_some()
    );
    // A request that was forwarded once is answered where it arrives: a replica is not C's to
    // change.
    let forwarded = rest_c
        .clone()
        .header("netget-forwarded-by", "someone".into())
        .deregister("development", "orders", "rest-2")
        .await
        .unwrap_err();
    assert_eq!(forwarded.code(), "NETGET_FORBIDDEN");
    assert!(
        forwarded.to_string().contains(b.registry_id()),
        "{forwarded}"
    );
    // Sent to C, a heartbeat and a removal reach B, the owner.
    let renewed = rest_c
        .heartbeat("development", "orders", "rest-2")
        .await
        .unwrap();
    assert_eq!(renewed.registry.as_ref(), b.registry_id());
    rest_c
        .deregister("development", "orders", "rest-2")
        .await
        .unwrap();
    for r in [&a, &b, &c] {
        let rest = RestClient::new(&r.url()).unwrap();
        let gone =
            common::wait_until(LONG, || async { ids(&rest, "orders").await.is_empty() }).await;
        assert!(gone.is_some(), "{}", r.url());
    }
    watcher.stop().await.unwrap();
    for r in [a, b, c] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_a_killed_registry_fail_over_without_a_down_and_its_rest_registration_is_adopted()
{
    // A is a real process, killed with SIGKILL; B follows it.
    let mut a =
        common::spawn_registry(&["--gossip-listen", "127.0.0.1:0", "--session-timeout", "2s"]);
    // The default grace (200 nodes fail over in about 0.1 s).
    let (b, _db) = common::registry_with(|c| {
        let mut c = clustered(c, &[&a.url]);
        c.cluster.grace = Duration::from_secs(5);
        c
    })
    .await;
    let rest_a = RestClient::new(&a.url).unwrap();
    let a_id = id_of(&rest_a).await;
    let rest_b = RestClient::new(&b.url()).unwrap();
    assert!(common::wait_until(LONG, || async {
        b.cluster_members()
            .await
            .iter()
            .any(|m| m.id == a_id && m.linked)
    })
    .await
    .is_some());
    let services = ["orders", "billing", "search", "mail"];
    let mut nodes = Vec::new();
    // 200 service sessions over four services, each node knowing both registries.
    for i in 0..200 {
        let name = services[i % services.len()];
        // In order: every node starts on A, the registry about to be killed.
        let node = Netget::new(NetgetOptions {
            in_order: true,
            ..NetgetOptions::service(
                name,
                &format!("http://127.0.0.1:{}", 20000 + i),
                &[&a.url, &b.url()],
            )
        })
        .unwrap();
        node.register_with_network().await.unwrap();
        nodes.push(node);
    }
    rest_a
        .register(
            "development",
            "cron",
            "rest-1",
            &rest_registration("http://127.0.0.1:8100"),
        )
        .await
        .unwrap();
    let watcher = Netget::new(NetgetOptions::client(&[&b.url()])).unwrap();
    let mut watches: Vec<_> = services.iter().map(|s| watcher.watch(s).unwrap()).collect();
    let mut cron = watcher.watch("cron").unwrap();
    // Everything is on B before A dies.
    let count = |name: &'static str| {
        let rest = rest_b.clone();
        async move { ids(&rest, name).await.len() }
    };
    assert!(common::wait_until(LONG, || async {
        let mut n = 0;
        for s in services {
            n += count(s).await;
        }
        n == 200 && count("cron").await == 1
    })
    .await
    .is_some());
    for w in watches.iter_mut() {
        for _ in 0..50 {
            assert_eq!(next_event(w).await.kind, EventKind::Up);
        }
    }
    assert_eq!(next_event(&mut cron).await.kind, EventKind::Up);
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).unwrap();
    // Every node fails over to B and takes its entry over: B owns all 200, and no watcher saw
    // one go down.
    let owned_by_b = common::wait_until(LONG, || async {
        let mut all = Vec::new();
        for s in services {
            all.extend(ids(&rest_b, s).await);
        }
        all.len() == 200 && all.iter().all(|(_, r)| r == b.registry_id())
    })
    .await;
    assert!(owned_by_b.is_some());
    for w in watches.iter_mut() {
        let mut changed = 0;
        while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), w.next()).await {
            assert_ne!(
                e.kind,
                EventKind::Down,
                "a live node's instance went down (A is {a_id}, B {}): {e:?}",
                b.registry_id()
            );
            changed += 1;
        }
        assert!(changed <= 50, "at most one change per instance");
    }
    // A's REST registration is held for the grace period, then adopted by B, the only survivor:
    // one `changed` naming B, no `down`.
    let adopted = next_event(&mut cron).await;
    assert_eq!(adopted.kind, EventKind::Changed, "{adopted:?}");
    assert_eq!(adopted.instance.registry.as_ref(), b.registry_id());
    let counted = common::wait_until(LONG, || async {
        rest_b.metric("netget_cluster_adopted_total").await.unwrap() == Some(1.0)
    })
    .await;
    assert!(counted.is_some());
    watcher.stop().await.unwrap();
    for n in nodes {
        n.stop().await.unwrap();
    }
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_replication_frame_is_repaired_by_the_revision_check() {
    let (a, _da) = common::registry_with(|c| clustered(c, &[])).await;
    let (b, _db) = common::registry_with(|c| clustered(c, &[&a.url()])).await;
    linked(&[&a, &b]).await;
    a.drop_replication_frames(1);
    let rest_a = RestClient::new(&a.url()).unwrap();
    rest_a
        .register(
            "development",
            "orders",
            "lost-1",
            &rest_registration("http://127.0.0.1:8001"),
        )
        .await
        .unwrap();
    let rest_b = RestClient::new(&b.url()).unwrap();
    let repaired =
        common::wait_until(LONG, || async { ids(&rest_b, "orders").await.len() == 1 }).await;
    assert!(repaired.is_some(), "B never got the change its link lost");
    let repairs = rest_b
        .metric("netget_replication_repairs_total")
        .await
        .unwrap();
    assert_eq!(
        repairs,
        Some(1.0),
        "found by the revision check, not by chance"
    );
    for r in [a, b] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_messages_reach_subscribers_on_every_registry_once() {
    let (a, _da) = common::registry_with(|c| clustered(c, &[])).await;
    let (b, _db) = common::registry_with(|c| clustered(c, &[&a.url()])).await;
    linked(&[&a, &b]).await;
    let on_a = Netget::new(NetgetOptions::client(&[&a.url()])).unwrap();
    let on_b = Netget::new(NetgetOptions::client(&[&b.url()])).unwrap();
    let mut sub_a = on_a.subscribe("news").unwrap();
    let mut sub_b = on_b.subscribe("news").unwrap();
    // Subscribed once the publisher's own registry counts its subscriber.
    let publisher = Netget::new(NetgetOptions::client(&[&a.url()])).unwrap();
    assert!(common::wait_until(LONG, || async {
        publisher
            .publish("news", serde_json::json!("warm-up"))
            .await
            .unwrap_or(0)
            == 1
    })
    .await
    .is_some());
    // Drain the warm-ups (at most once each), then one message.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while sub_a.try_next().is_some() {}
    while sub_b.try_next().is_some() {}
    publisher
        .publish("news", serde_json::json!({"n": 1}))
        .await
        .unwrap();
    for sub in [&mut sub_a, &mut sub_b] {
        let m = tokio::time::timeout(LONG, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.data, serde_json::json!({"n": 1}));
    }
    // Once: nothing loops back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sub_a.try_next().is_none());
    assert!(sub_b.try_next().is_none());
    for n in [on_a, on_b, publisher] {
        n.stop().await.unwrap();
    }
    for r in [a, b] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_registry_catches_up_and_then_reports_ready() {
    let (a, _da) = common::registry_with(|c| clustered(c, &[])).await;
    let rest_a = RestClient::new(&a.url()).unwrap();
    for i in 0..1200 {
        rest_a
            .register(
                "development",
                "batch",
                &format!("i-{i}"),
                &rest_registration(&format!("http://127.0.0.1:{}", 10000 + i)),
            )
            .await
            .unwrap();
    }
    let dir_b = tempfile::tempdir().unwrap();
    let config_b = |dir: &std::path::Path| {
        clustered(RegistryConfig::ephemeral(dir.to_path_buf()), &[&a.url()])
    };
    let b = netget::Registry::spawn(config_b(dir_b.path()))
        .await
        .unwrap();
    let b_id = b.registry_id().to_string();
    let rest_b = RestClient::new(&b.url()).unwrap();
    let ready = |rest: RestClient| async move {
        let h = rest.health().await.unwrap_or_default();
        h["ready"] == true && h["instances"] == 1200
    };
    assert!(common::wait_until(LONG, || ready(rest_b.clone()))
        .await
        .is_some());
    b.shutdown().await.unwrap();
    // Restarted with its data dir (so its key and id): it loads A's snapshot again, in chunks.
    let b = netget::Registry::spawn(config_b(dir_b.path()))
        .await
        .unwrap();
    assert_eq!(b.registry_id(), b_id);
    let rest_b = RestClient::new(&b.url()).unwrap();
    let first = rest_b.health().await.unwrap();
    assert_eq!(
        first["ready"], false,
        "not ready before A's snapshot: {first}"
    );
    assert!(common::wait_until(LONG, || ready(rest_b.clone()))
        .await
        .is_some());
    assert_eq!(ids(&rest_b, "batch").await.len(), 1200);
    for r in [a, b] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_registries_with_an_allowed_key_can_open_a_replication_link() {
    let allowed = NodeKey::generate().unwrap();
    let (a, _da) = common::registry_with(|mut c| {
        c = clustered(c, &[]);
        c.cluster.keys = vec![allowed.public_key()];
        c
    })
    .await;
    let dial = |key: NodeKey, network: &str| {
        let mut d =
            netget::client::Dial::new(netget::model::NetworkName::new(network).unwrap(), key);
        d.node_type = "registry";
        d
    };
    let stranger =
        netget::client::Connection::open(&a.url(), &dial(NodeKey::generate().unwrap(), "netget"))
            .await
            .err()
            .expect("a stranger's link is refused");
    assert_eq!(stranger.code(), "NETGET_UNAUTHORIZED", "{stranger}");
    assert!(
        stranger.to_string().contains("[cluster] keys"),
        "{stranger}"
    );
    let other_cluster =
        netget::client::Connection::open(&a.url(), &dial(allowed.clone(), "elsewhere"))
            .await
            .err()
            .expect("another cluster's link is refused");
    assert_eq!(other_cluster.code(), "NETGET_FORBIDDEN", "{other_cluster}");
    let ok = netget::client::Connection::open(&a.url(), &dial(allowed, "netget")).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    // A registry in no cluster takes no links at all.
    let (lone, _dl) = common::registry().await;
    let refused = netget::client::Connection::open(
        &lone.url(),
        &dial(NodeKey::generate().unwrap(), "netget"),
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(refused.code(), "NETGET_FORBIDDEN");
    for r in [a, lone] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_spread_over_the_registries_and_those_of_a_lost_one_over_the_rest() {
    let (a, _da) = common::registry_with(|c| clustered(c, &[])).await;
    let (b, _db) = common::registry_with(|c| clustered(c, &[&a.url()])).await;
    let (c, _dc) = common::registry_with(|c| clustered(c, &[&a.url()])).await;
    linked(&[&a, &b, &c]).await;
    let urls = [a.url(), b.url(), c.url()];
    let all: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut nodes = Vec::new();
    for i in 0..150 {
        let node = Netget::new(NetgetOptions::service(
            "spread",
            &format!("http://127.0.0.1:{}", 40000 + i),
            &all,
        ))
        .unwrap();
        node.register_with_network().await.unwrap();
        nodes.push(node);
    }
    let on = |url: &str| {
        let ws = netget::client::ws_url(url).unwrap();
        nodes
            .iter()
            .filter(|n| n.connected_to().as_deref() == Some(ws.as_str()))
            .count()
    };
    // About 50 each; fewer than 20 on one happens with a chance below one in a million.
    let first: Vec<usize> = urls.iter().map(|u| on(u)).collect();
    assert!(
        first.iter().all(|n| *n >= 20),
        "sessions per registry: {first:?}"
    );
    a.shutdown().await.unwrap();
    let moved = common::wait_until(LONG, || async { on(&urls[1]) + on(&urls[2]) == 150 }).await;
    assert!(
        moved.is_some(),
        "{:?}",
        urls.iter().map(|u| on(u)).collect::<Vec<_>>()
    );
    // A's nodes did not all land on one survivor.
    let gained = [
        on(&urls[1]).saturating_sub(first[1]),
        on(&urls[2]).saturating_sub(first[2]),
    ];
    assert!(
        gained.iter().all(|g| *g >= 5),
        "A's {} nodes went {gained:?}",
        first[0]
    );
    for n in nodes {
        n.stop().await.unwrap();
    }
    for r in [b, c] {
        r.shutdown().await.unwrap();
    }
}

/// A real HTTP service that counts the probes of its `/health`.
async fn probed() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_registrations_of_a_killed_registry_are_adopted_with_their_ttls_and_checks() {
    let dir_a = tempfile::tempdir().unwrap();
    let data_a = dir_a.path().to_str().unwrap().to_string();
    let mut a = registry_process(&data_a, None);
    let (b, _db) = common::registry_with(|c| clustered(c, &[&a.url])).await;
    let (c, _dc) = common::registry_with(|c| clustered(c, &[&a.url])).await;
    let rest_a = RestClient::new(&a.url).unwrap();
    let a_id = id_of(&rest_a).await;
    assert!(common::wait_until(LONG, || async {
        let b_links = b
            .cluster_members()
            .await
            .iter()
            .filter(|m| m.linked)
            .count();
        let c_links = c
            .cluster_members()
            .await
            .iter()
            .filter(|m| m.linked)
            .count();
        b_links == 2 && c_links == 2
    })
    .await
    .is_some());
    // 24 REST registrations with a 3 s TTL on A, and one that lives by its health check.
    for i in 0..24 {
        let reg = Registration {
            address: format!("http://127.0.0.1:{}", 41000 + i),
            ttl: Some(netget::model::WireDuration(Duration::from_secs(3))),
            ..Default::default()
        };
        rest_a
            .register("development", "jobs", &format!("j{i}"), &reg)
            .await
            .unwrap();
    }
    let (health_url, probes, _server) = probed().await;
    let check: netget::model::HealthCheck = serde_json::from_value(serde_json::json!({
        "http": health_url, "interval": "200ms", "timeout": "1s"
    }))
    .unwrap();
    let checked = Registration {
        address: "http://127.0.0.1:41100".into(),
        health: Some(check),
        ..Default::default()
    };
    rest_a
        .register("development", "checked", "c1", &checked)
        .await
        .unwrap();
    let (rest_b, rest_c) = (
        RestClient::new(&b.url()).unwrap(),
        RestClient::new(&c.url()).unwrap(),
    );
    assert!(common::wait_until(LONG, || async {
        ids(&rest_b, "jobs").await.len() == 24 && ids(&rest_c, "checked").await.len() == 1
    })
    .await
    .is_some());
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).unwrap();
    // After the grace period each is adopted by exactly one survivor, and both agree on which.
    let adopted = common::wait_until(LONG, || async {
        let (on_b, on_c) = (ids(&rest_b, "jobs").await, ids(&rest_c, "jobs").await);
        on_b.len() == 24 && on_b == on_c && on_b.iter().all(|(_, r)| *r != a_id)
    })
    .await;
    assert!(adopted.is_some(), "{:?}", ids(&rest_b, "jobs").await);
    let owners = ids(&rest_b, "jobs").await;
    let by_b = owners.iter().filter(|(_, r)| r == b.registry_id()).count();
    assert!(
        by_b > 0 && by_b < 24,
        "rendezvous hashing spreads them: {by_b} of 24 on B"
    );
    // The checked one is adopted too (by one of them): 25 adoptions in all, each counted once.
    let adoptions = || async {
        let mut sum = 0.0;
        for rest in [&rest_b, &rest_c] {
            let n = rest.metric("netget_cluster_adopted_total").await.unwrap();
            sum += n.unwrap_or(0.0);
        }
        sum
    };
    assert!(
        common::wait_until(LONG, || async { adoptions().await == 25.0 })
            .await
            .is_some()
    );
    // Their TTLs run on the adopters: j0 is kept alive by heartbeats sent to B (forwarded to its
    // owner when that is C); the others miss theirs and turn critical.
    let critical = common::wait_until(LONG, || async {
        let _ = rest_b.heartbeat("development", "jobs", "j0").await;
        let d = rest_c
            .discover("development", "jobs", false, &[])
            .await
            .unwrap();
        let status = |id: &str| {
            d.instances
                .iter()
                .find(|i| i.id.as_str() == id)
                .map(|i| i.status)
        };
        status("j0") == Some(netget::model::Status::Passing)
            && (1..24).all(|i| status(&format!("j{i}")) == Some(netget::model::Status::Critical))
    })
    .await;
    assert!(
        critical.is_some(),
        "{:?}",
        rest_c.discover("development", "jobs", false, &[]).await
    );
    // The check is probed by its adopter now that A is gone.
    let before = probes.load(Ordering::SeqCst);
    assert!(common::wait_until(LONG, || async {
        probes.load(Ordering::SeqCst) >= before + 3
    })
    .await
    .is_some());
    for r in [b, c] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_returns_and_one_that_adopted_its_registrations_agree_on_one_owner() {
    let dir_a = tempfile::tempdir().unwrap();
    let data_a = dir_a.path().to_str().unwrap().to_string();
    let mut a = registry_process(&data_a, None);
    let (b, _db) = common::registry_with(|c| clustered(c, &[&a.url])).await;
    let rest_a = RestClient::new(&a.url).unwrap();
    let a_id = id_of(&rest_a).await;
    for i in 0..12 {
        rest_a
            .register(
                "development",
                "jobs",
                &format!("j{i}"),
                &rest_registration("http://127.0.0.1:9"),
            )
            .await
            .unwrap();
    }
    let rest_b = RestClient::new(&b.url()).unwrap();
    assert!(
        common::wait_until(LONG, || async { ids(&rest_b, "jobs").await.len() == 12 })
            .await
            .is_some()
    );
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).unwrap();
    // B, the only survivor, adopts all of them.
    assert!(common::wait_until(LONG, || async {
        let on_b = ids(&rest_b, "jobs").await;
        on_b.len() == 12 && on_b.iter().all(|(_, r)| r == b.registry_id())
    })
    .await
    .is_some());
    // A comes back with its store (which still holds all twelve) and joins B: for each, the
    // one of the two that ranks higher keeps it, and both say the same.
    let a2 = registry_process(&data_a, Some(&b.url()));
    let rest_a2 = RestClient::new(&a2.url).unwrap();
    let agreed = common::wait_until(LONG, || async {
        let (on_a, on_b) = (ids(&rest_a2, "jobs").await, ids(&rest_b, "jobs").await);
        on_a.len() == 12 && on_a == on_b
    })
    .await;
    assert!(
        agreed.is_some(),
        "A {:?}\nB {:?}",
        ids(&rest_a2, "jobs").await,
        ids(&rest_b, "jobs").await
    );
    let owners = ids(&rest_b, "jobs").await;
    assert!(
        owners.iter().any(|(_, r)| *r == a_id) && owners.iter().any(|(_, r)| r == b.registry_id()),
        "by rank, some go back to A and some stay with B: {owners:?}"
    );
    drop(a2);
    b.shutdown().await.unwrap();
}

/// A `keys` network `secure` admitting these keys, none bound to a name.
fn secure(c: RegistryConfig, keys: &[&NodeKey]) -> RegistryConfig {
    use netget::security::{KeyGrant, NetworkConfig, Policy};
    let mut c = c;
    c.networks = vec![
        NetworkConfig::open("development").unwrap(),
        NetworkConfig {
            name: netget::model::NetworkName::new("secure").unwrap(),
            policy: Policy::Keys {
                keys: keys
                    .iter()
                    .map(|k| KeyGrant {
                        public_key: k.public_key(),
                        services: None,
                    })
                    .collect(),
                tokens: vec![],
            },
        },
    ];
    c.networks_configured = true;
    c
}

/// A service node in `secure` with `key`.
fn secure_node(url: &str, key: &NodeKey, name: &str, port: u16) -> Netget {
    let mut o = NetgetOptions::service(name, &format!("http://127.0.0.1:{port}"), &[url]);
    o.network = "secure".into();
    o.key = Some(key.clone());
    o.data_dir = None;
    Netget::new(o).unwrap()
}

/// The public keys of the instances of `name` in `secure`, as a client of `url` sees them.
async fn holders(url: &str, key: &NodeKey, name: &str) -> Vec<String> {
    let mut o = NetgetOptions::client(&[url]);
    o.network = "secure".into();
    o.key = Some(key.clone());
    o.data_dir = None;
    let client = Netget::new(o).unwrap();
    let found = client
        .discover_service_nodes(
            name,
            &netget::DiscoverOptions {
                cached: false,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_default();
    client.stop().await.unwrap();
    found
        .iter()
        .map(|i| i.public_key.as_deref().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_claimed_on_one_registry_is_claimed_on_every_other() {
    let (k1, k2) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    let (a, _da) = common::registry_with(|c| secure(clustered(c, &[]), &[&k1, &k2])).await;
    let (b, _db) = common::registry_with(|c| secure(clustered(c, &[&a.url()]), &[&k1, &k2])).await;
    linked(&[&a, &b]).await;
    let first = secure_node(&a.url(), &k1, "orders", 8001);
    first.register_with_network().await.unwrap();
    // Once B has the claim, K2 cannot take the name there.
    let taken = common::wait_until(LONG, || async {
        let second = secure_node(&b.url(), &k2, "orders", 8002);
        let refused = second
            .register_with_network()
            .await
            .is_err_and(|e| e.code() == "NETGET_FORBIDDEN");
        second.stop().await.unwrap();
        refused
    })
    .await;
    assert!(
        taken.is_some(),
        "K2 registered a name K1 claimed on another registry"
    );
    first.stop().await.unwrap();
    for r in [a, b] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claims_of_one_name_made_apart_resolve_the_same_everywhere_and_the_later_loses() {
    let (k1, k2) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
    // A and B gossip but know nobody: each takes a claim of `billing` for another key.
    let (a, _da) = common::registry_with(|c| secure(clustered(c, &[]), &[&k1, &k2])).await;
    let (b, _db) = common::registry_with(|c| secure(clustered(c, &[]), &[&k1, &k2])).await;
    let earlier = secure_node(&a.url(), &k1, "billing", 8001);
    earlier.register_with_network().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = secure_node(&b.url(), &k2, "billing", 8002);
    later.register_with_network().await.unwrap();
    // C joins both: through it, A and B meet, link, and settle the conflict.
    let (c, _dc) =
        common::registry_with(|c| secure(clustered(c, &[&a.url(), &b.url()]), &[&k1, &k2])).await;
    linked(&[&a, &b, &c]).await;
    let k1_only = vec![k1.public_key()];
    for r in [&a, &b, &c] {
        let settled = common::wait_until(LONG, || async {
            holders(&r.url(), &k1, "billing").await == k1_only
        })
        .await;
        assert!(
            settled.is_some(),
            "{}: {:?}",
            r.url(),
            holders(&r.url(), &k1, "billing").await
        );
    }
    // The later claimant lost the name on its own registry too.
    let again = secure_node(&b.url(), &k2, "billing", 8003);
    assert_eq!(
        again.register_with_network().await.unwrap_err().code(),
        "NETGET_FORBIDDEN"
    );
    for n in [earlier, later, again] {
        n.stop().await.unwrap();
    }
    for r in [a, b, c] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_network_behaves_the_same_on_every_registry() {
    use netget::security::{NetworkConfig, Policy};
    let tokened = |c: RegistryConfig| {
        let mut c = c;
        c.networks = vec![NetworkConfig {
            name: netget::model::NetworkName::new("production").unwrap(),
            policy: Policy::Token {
                tokens: vec!["prod-token-1".into()],
            },
        }];
        c.networks_configured = true;
        c
    };
    let (a, _da) = common::registry_with(|c| tokened(clustered(c, &[]))).await;
    let (b, _db) = common::registry_with(|c| tokened(clustered(c, &[&a.url()]))).await;
    linked(&[&a, &b]).await;
    let with = |url: &str| {
        RestClient::new(url)
            .unwrap()
            .token(Some("prod-token-1".into()))
    };
    with(&a.url())
        .register(
            "production",
            "orders",
            "o1",
            &rest_registration("http://127.0.0.1:9"),
        )
        .await
        .unwrap();
    // With the token: the same answer on both; without it: the same refusal on both.
    let seen = common::wait_until(LONG, || async {
        with(&b.url())
            .discover("production", "orders", true, &[])
            .await
            .is_ok_and(|d| d.instances.len() == 1)
    })
    .await;
    assert!(seen.is_some());
    for r in [&a, &b] {
        let refused = RestClient::new(&r.url())
            .unwrap()
            .discover("production", "orders", true, &[])
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "NETGET_UNAUTHORIZED", "{}", r.url());
        let wrong = RestClient::new(&r.url())
            .unwrap()
            .token(Some("not-the-token".into()))
            .heartbeat("production", "orders", "o1")
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), "NETGET_UNAUTHORIZED", "{}", r.url());
    }
    // A heartbeat with the token works on either (on B, forwarded to A, the owner).
    for r in [&a, &b] {
        let renewed = with(&r.url())
            .heartbeat("production", "orders", "o1")
            .await
            .unwrap();
        assert_eq!(renewed.registry.as_ref(), a.registry_id());
    }
    for r in [a, b] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_with_tls_replicate_over_tls_links_checked_against_the_cluster_ca() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::make_pki(pki.path());
    let tls = |mut c: RegistryConfig, join: &[&str], ca: Option<&std::path::Path>| {
        c = clustered(c, join);
        c.tls = Some(netget::config::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
        c.cluster.ca = ca.map(std::path::Path::to_path_buf);
        c
    };
    let (a, _da) = common::registry_with(|c| tls(c, &[], Some(&ca))).await;
    assert!(a.url().starts_with("https://"));
    let (b, _db) = common::registry_with(|c| tls(c, &[&a.url()], Some(&ca))).await;
    linked(&[&a, &b]).await;
    let rest = |url: &str| RestClient::with_tls(url, Some(&ca)).unwrap();
    rest(&a.url())
        .register(
            "development",
            "orders",
            "o1",
            &rest_registration("http://127.0.0.1:9"),
        )
        .await
        .unwrap();
    let seen = common::wait_until(LONG, || async {
        ids(&rest(&b.url()), "orders").await.len() == 1
    })
    .await;
    assert!(seen.is_some());
    // A registry that trusts only its own (leaf) certificate cannot check its peers': no link.
    let (c, _dc) = common::registry_with(|c| tls(c, &[&a.url()], None)).await;
    let never = common::wait_until(Duration::from_secs(3), || async {
        c.cluster_members().await.iter().any(|m| m.linked)
    })
    .await;
    assert!(never.is_none(), "{:?}", c.cluster_members().await);
    for r in [a, b, c] {
        r.shutdown().await.unwrap();
    }
}
