//! Register → discover → watch → deregister, over WebSocket and over HTTP, and network isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use netget::client::rest::RestClient;
use netget::model::{EventKind, Registration};
use netget::{DiscoverOptions, Netget, NetgetOptions, RegistryConfig};

async fn next_event(w: &mut netget::Watch) -> netget::WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("no event within 5 s")
        .expect("watch ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_register_discover_watch_deregister() {
    let (reg, _dir) = common::registry().await;
    let url = reg.url();
    let watcher = Netget::new(NetgetOptions::client(&[&url])).unwrap();
    let mut w = watcher.watch("DatabaseService").unwrap();

    let mut opts = NetgetOptions::service("DatabaseService", "http://127.0.0.1:5432", &[&url]);
    opts.metadata.insert(
        "description".into(),
        "Provides database functionalities".into(),
    );
    opts.metadata
        .insert("tags".into(), serde_json::json!(["v1"]));
    let node = Netget::new(opts).unwrap();
    let inst = node.register_with_network().await.unwrap();
    assert_eq!(inst.name.as_str(), "DatabaseService");
    assert_eq!(inst.network.as_str(), "development");
    assert_eq!(inst.registry.as_ref(), reg.registry_id());
    assert_eq!(
        inst.metadata.get("description").unwrap(),
        "Provides database functionalities"
    );

    let up = next_event(&mut w).await;
    assert_eq!(up.kind, EventKind::Up);
    assert_eq!(up.instance.id, inst.id);

    let found = watcher
        .discover_service_node("DatabaseService")
        .await
        .unwrap()
        .expect("one instance");
    assert_eq!(found.address, "http://127.0.0.1:5432");
    let tagged = watcher
        .discover_service_nodes(
            "DatabaseService",
            &DiscoverOptions {
                tags: vec!["v2".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        tagged.is_empty(),
        "tag filter must exclude v1-only instances"
    );
    let uncached = watcher
        .discover_service_nodes(
            "DatabaseService",
            &DiscoverOptions {
                cached: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(uncached.len(), 1);

    // The same registration is visible over HTTP.
    let rest = RestClient::new(&url).unwrap();
    assert_eq!(
        rest.discover("development", "DatabaseService", true, &[])
            .await
            .unwrap()
            .instances
            .len(),
        1
    );

    node.deregister().await.unwrap();
    let down = next_event(&mut w).await;
    assert_eq!(down.kind, EventKind::Down);
    assert!(rest
        .discover("development", "DatabaseService", true, &[])
        .await
        .unwrap()
        .instances
        .is_empty());
    assert!(watcher
        .discover_service_node("DatabaseService")
        .await
        .unwrap()
        .is_none());

    node.stop().await.unwrap();
    watcher.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_removes_the_instance_at_once() {
    let (reg, _dir) = common::registry().await;
    let url = reg.url();
    let node = Netget::new(NetgetOptions::service(
        "web",
        "http://127.0.0.1:8080",
        &[&url],
    ))
    .unwrap();
    node.register_with_network().await.unwrap();
    let rest = RestClient::new(&url).unwrap();
    assert_eq!(
        rest.discover("development", "web", true, &[])
            .await
            .unwrap()
            .instances
            .len(),
        1
    );
    node.stop().await.unwrap();
    // No waiting: stop() resolves after the registry acknowledged the deregistration.
    assert!(rest
        .discover("development", "web", true, &[])
        .await
        .unwrap()
        .instances
        .is_empty());
    // Said goodbye, not merely hung up: the registry counts a request, not a lost session.
    let metrics = rest.metrics().await.unwrap();
    assert!(
        metrics.contains(r#"netget_deregistrations_total{reason="request"} 1"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"netget_deregistrations_total{reason="session"}"#),
        "{metrics}"
    );
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistering_removes_the_instance_while_the_session_lives_on() {
    let (reg, _dir) = common::registry().await;
    let url = reg.url();
    let node = Netget::new(NetgetOptions::service(
        "web",
        "http://127.0.0.1:8080",
        &[&url],
    ))
    .unwrap();
    let first = node.register_with_network().await.unwrap();
    let rest = RestClient::new(&url).unwrap();
    node.deregister().await.unwrap();
    let left = rest
        .discover("development", "web", true, &[])
        .await
        .unwrap();
    assert!(
        left.instances.is_empty(),
        "gone at once, by the node's own word"
    );
    let connected = node.connected_to().expect("the session is still open");
    // The same session registers again, under the same id.
    let again = node.register_with_network().await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(node.connected_to(), Some(connected));
    node.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_shutdown_closes_sessions_and_removes_their_instances() {
    let (reg, _dir) = common::registry().await;
    let url = reg.url();
    let node = Netget::new(NetgetOptions::service(
        "web",
        "http://127.0.0.1:8080",
        &[&url],
    ))
    .unwrap();
    node.register_with_network().await.unwrap();
    let dir = reg.directory().clone();
    tokio::time::timeout(Duration::from_secs(10), reg.shutdown())
        .await
        .expect("shutdown hangs")
        .unwrap();
    assert_eq!(dir.counts().iter().map(|(_, n)| n).sum::<usize>(), 0);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_register_update_heartbeat_discover_deregister() {
    let (reg, _dir) = common::registry().await;
    let url = reg.url();
    let watcher = Netget::new(NetgetOptions::client(&[&url])).unwrap();
    let mut w = watcher.watch("api").unwrap();
    watcher.start().await.unwrap();
    // Wait until the watch is established (the cache answers).
    watcher
        .discover_service_nodes("api", &Default::default())
        .await
        .unwrap();

    let rest = RestClient::new(&url).unwrap();
    let mut r = Registration {
        address: "http://127.0.0.1:9000".into(),
        tags: vec!["v1".into()],
        ..Default::default()
    };
    let created = rest
        .register("development", "api", "api-1", &r)
        .await
        .unwrap();
    assert_eq!(created.id.as_str(), "api-1");
    assert_eq!(next_event(&mut w).await.kind, EventKind::Up);

    r.tags = vec!["v2".into()];
    rest.register("development", "api", "api-1", &r)
        .await
        .unwrap();
    let changed = next_event(&mut w).await;
    assert_eq!(changed.kind, EventKind::Changed);
    assert_eq!(changed.instance.tags, vec!["v2".to_string()]);

    rest.heartbeat("development", "api", "api-1").await.unwrap();
    let v2 = rest
        .discover("development", "api", true, &["v2".into()])
        .await
        .unwrap();
    assert_eq!(v2.instances.len(), 1);
    assert!(rest
        .discover("development", "api", true, &["v1".into()])
        .await
        .unwrap()
        .instances
        .is_empty());
    // HTTP discoveries are counted like the sessions' ones.
    let http = r#"netget_discovery_requests_total{transport="http"}"#;
    assert_eq!(rest.metric(http).await.unwrap(), Some(2.0));

    rest.deregister("development", "api", "api-1")
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.kind, EventKind::Down);
    let err = rest
        .deregister("development", "api", "api-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NETGET_NOT_FOUND");
    let err = rest
        .heartbeat("development", "api", "api-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NETGET_NOT_FOUND");
    watcher.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_are_isolated_for_discovery_watch_and_removal() {
    let (reg, _dir) = common::registry_with(|c: RegistryConfig| {
        c.with_open_networks(&["development", "production"])
            .unwrap()
    })
    .await;
    let url = reg.url();
    let rest = RestClient::new(&url).unwrap();

    // A production watcher of "web" is subscribed before anything registers in development.
    let mut prod_opts = NetgetOptions::client(&[&url]);
    prod_opts.network = "production".into();
    let prod = Netget::new(prod_opts).unwrap();
    let mut prod_watch = prod.watch("web").unwrap();
    assert!(prod.discover_service_node("web").await.unwrap().is_none());

    let dev_node = Netget::new(NetgetOptions::service(
        "web",
        "http://127.0.0.1:1111",
        &[&url],
    ))
    .unwrap();
    let dev_inst = dev_node.register_with_network().await.unwrap();
    let r = Registration {
        address: "http://127.0.0.1:2222".into(),
        ..Default::default()
    };
    rest.register("development", "web", "rest-1", &r)
        .await
        .unwrap();

    // Not visible from production, by any route.
    assert!(prod.discover_service_node("web").await.unwrap().is_none());
    let uncached = prod
        .discover_service_nodes(
            "web",
            &DiscoverOptions {
                cached: false,
                healthy_only: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(uncached.is_empty());
    assert!(rest
        .discover("production", "web", false, &[])
        .await
        .unwrap()
        .instances
        .is_empty());
    assert!(rest.services("production").await.unwrap().is_empty());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), prod_watch.next())
            .await
            .is_err(),
        "a production watcher must not see development events"
    );

    // Not removable from production.
    let e = rest
        .deregister("production", "web", "rest-1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NETGET_NOT_FOUND");
    let e = rest
        .deregister("production", "web", dev_inst.id.as_str())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NETGET_NOT_FOUND");
    let mut prod_raw = common::raw_session(&url, "production").await;
    common::raw_send(
        &mut prod_raw,
        &serde_json::json!({"type":"deregister","id":1,"name":"web","instanceId": dev_inst.id})
            .to_string(),
    )
    .await;
    assert_eq!(
        common::error_code(&common::raw_recv(&mut prod_raw).await),
        "NETGET_NOT_FOUND"
    );

    // Development still has both.
    assert_eq!(
        rest.discover("development", "web", true, &[])
            .await
            .unwrap()
            .instances
            .len(),
        2
    );

    // A network the registry does not serve is refused, over HTTP and WebSocket.
    let e = rest
        .discover("staging", "web", true, &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NETGET_UNKNOWN_NETWORK");
    let mut staging = NetgetOptions::client(&[&url]);
    staging.network = "staging".into();
    staging.request_timeout = Duration::from_secs(3);
    let s = Netget::new(staging).unwrap();
    let e = s.discover_service_node("web").await.unwrap_err();
    assert_eq!(e.code(), "NETGET_UNKNOWN_NETWORK");

    for n in [&prod, &dev_node, &s] {
        n.stop().await.unwrap();
    }
    reg.shutdown().await.unwrap();
}

/// A registry holding REST instances of service `pool`, one per `(id, weight)`; and its URL.
async fn weighted_pool(
    weights: &[(&str, u32)],
) -> (netget::RegistryHandle, tempfile::TempDir, String) {
    let (reg, dir) = common::registry().await;
    let url = reg.url();
    let rest = RestClient::new(&url).unwrap();
    for &(id, weight) in weights {
        let r = Registration {
            address: format!("http://127.0.0.1/{id}"),
            weight: Some(weight),
            ..Default::default()
        };
        rest.register("development", "pool", id, &r).await.unwrap();
    }
    (reg, dir, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_strategies_pick_among_healthy_instances() {
    let (reg, _dir, url) = weighted_pool(&[("a", 1), ("b", 0), ("c", 3)]).await;
    let client = Netget::new(NetgetOptions::client(&[&url])).unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let i = client.discover_service_node("pool").await.unwrap().unwrap();
        seen.insert(i.id.to_string());
    }
    assert!(
        !seen.contains("b"),
        "weight 0 is never picked by the weighted strategy"
    );
    let rr = DiscoverOptions {
        strategy: netget::Strategy::RoundRobin,
        ..Default::default()
    };
    let picks: Vec<String> = futures_util::future::join_all(
        (0..3).map(|_| client.discover_service_node_with("pool", &rr)),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap().unwrap().id.to_string())
    .collect();
    let distinct: std::collections::HashSet<_> = picks.iter().collect();
    assert_eq!(
        distinct.len(),
        3,
        "round-robin visits every instance: {picks:?}"
    );
    client.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_follow_the_weights_and_spread_over_every_instance() {
    let (reg, _dir, url) = weighted_pool(&[("light", 1), ("heavy", 3), ("off", 0)]).await;
    let client = Netget::new(NetgetOptions::client(&[&url])).unwrap();
    let tally = |picks: Vec<String>| {
        let mut t = std::collections::HashMap::<String, usize>::new();
        for p in picks {
            *t.entry(p).or_default() += 1;
        }
        t
    };
    let picks = |strategy, n: usize| {
        let client = &client;
        async move {
            let o = DiscoverOptions {
                strategy,
                ..Default::default()
            };
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let i = client.discover_service_node_with("pool", &o).await.unwrap();
                out.push(i.unwrap().id.to_string());
            }
            out
        }
    };
    // Weighted: 1 : 3, never weight 0. 4,000 picks put 3/4 within ±0.05 by a wide margin
    // (the standard deviation is under 0.007).
    let w = tally(picks(netget::Strategy::Weighted, 4_000).await);
    let heavy = w.get("heavy").copied().unwrap_or(0) as f64 / 4_000.0;
    assert!((0.70..=0.80).contains(&heavy), "weighted picks: {w:?}");
    assert!(!w.contains_key("off"), "weight 0 was picked: {w:?}");
    // Random: every instance, about a third each.
    let r = tally(picks(netget::Strategy::Random, 3_000).await);
    for id in ["light", "heavy", "off"] {
        let share = r.get(id).copied().unwrap_or(0) as f64 / 3_000.0;
        assert!((0.25..=0.42).contains(&share), "random picks: {r:?}");
    }
    // Round-robin: in turn, exactly.
    let rr = tally(picks(netget::Strategy::RoundRobin, 30).await);
    assert_eq!(
        rr.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{rr:?}"
    );
    client.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_fails_over_hears_what_changed_across_the_gap() {
    // Two registries that are not one cluster, each with an instance of its own: what the
    // watcher saw on A and what B holds differ, and the difference must reach it as events.
    let (a, _da) = common::registry().await;
    let (b, _db) = common::registry().await;
    let (ua, ub) = (a.url(), b.url());
    for (url, id) in [(&ua, "on-a"), (&ub, "on-b")] {
        let r = Registration {
            address: format!("http://127.0.0.1/{id}"),
            ..Default::default()
        };
        RestClient::new(url)
            .unwrap()
            .register("development", "orders", id, &r)
            .await
            .unwrap();
    }
    let watcher = Netget::new(NetgetOptions {
        in_order: true,
        ..NetgetOptions::client(&[&ua, &ub])
    })
    .unwrap();
    let mut w = watcher.watch("orders").unwrap();
    let first = next_event(&mut w).await;
    assert_eq!(
        (first.kind, first.instance.id.as_str()),
        (EventKind::Up, "on-a")
    );
    a.shutdown().await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = next_event(&mut w).await;
        seen.push((e.kind, e.instance.id.to_string()));
    }
    seen.sort_by_key(|(_, id)| id.clone());
    assert_eq!(
        seen,
        vec![
            (EventKind::Down, "on-a".to_string()),
            (EventKind::Up, "on-b".to_string())
        ]
    );
    watcher.stop().await.unwrap();
    b.shutdown().await.unwrap();
}
