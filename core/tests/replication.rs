//! Replication between the registries of a cluster: what is registered on one is discoverable
//! and watchable on every other, a node failing over takes its entry over without a flap, a
//! lost peer's instances are held for the grace period, a lost frame is repaired by the revision
//! check, channels cross registries, a restarted registry catches up, and only registries with
//! an allowed key can open a link. Real registries on loopback, in-process and as processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
    let refused = rest_c
        .deregister("development", "orders", "rest-2")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "NETGET_FORBIDDEN");
    assert!(refused.to_string().contains(b.registry_id()), "{refused}");
    watcher.stop().await.unwrap();
    for r in [a, b, c] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_a_killed_registry_fail_over_without_a_down_and_its_other_instances_go_after_the_grace(
) {
    // A is a real process, killed with SIGKILL; B follows it.
    let mut a =
        common::spawn_registry(&["--gossip-listen", "127.0.0.1:0", "--session-timeout", "2s"]);
    // The default grace: 200 nodes take about 2.3 s to fail over here.
    let (b, _db) = common::registry_with(|c| {
        let mut c = clustered(c, &[&a.url]);
        c.cluster.grace = Duration::from_secs(5);
        c
    })
    .await;
    let rest_a = RestClient::new(&a.url).unwrap();
    let a_id = rest_a.health().await.unwrap()["registryId"]
        .as_str()
        .unwrap()
        .to_string();
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
        let node = Netget::new(NetgetOptions::service(
            name,
            &format!("http://127.0.0.1:{}", 20000 + i),
            &[&a.url, &b.url()],
        ))
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
    // A's REST registration is held for the grace period, then removed (adoption is not built yet).
    let cron_down = next_event(&mut cron).await;
    assert_eq!(cron_down.kind, EventKind::Down);
    assert_eq!(cron_down.instance.registry.as_ref(), a_id);
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
