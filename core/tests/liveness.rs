//! Liveness and failover with real processes: killed and frozen nodes vanish, nodes fail over
//! when their registry is SIGKILLed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use netget::client::rest::RestClient;
use netget::model::EventKind;
use netget::{Netget, NetgetOptions};

async fn count(rest: &RestClient, name: &str) -> usize {
    // An error is a failure, not "none left": a crashed registry must not pass for a clean one.
    rest.discover("development", name, true, &[])
        .await
        .map(|d| d.instances.len())
        .unwrap_or_else(|e| panic!("discovery of {name} failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_process_killed_with_sigkill_vanishes_at_once_not_at_the_session_timeout() {
    // The kernel closes a killed process's socket; the registry must act on the close, not wait
    // for silence: a session timeout of a minute, and a bound of a few seconds.
    let registry = common::spawn_registry(&["--session-timeout", "60s"]);
    let rest = RestClient::new(&registry.url).unwrap();
    let node = common::spawn_netget(&[
        "register",
        "killme",
        "--address",
        "http://127.0.0.1:7001",
        "--hold",
        "--registry",
        &registry.url,
    ]);
    assert!(
        node.first_line.starts_with("registered killme"),
        "{}",
        node.first_line
    );
    assert_eq!(count(&rest, "killme").await, 1);
    node.signal("KILL");
    // A bound with slack for a loaded machine, not a performance figure: the wait ends as soon
    // as the node is gone.
    let gone = common::wait_until(Duration::from_secs(5), || async {
        count(&rest, "killme").await == 0
    })
    .await;
    assert!(
        gone.is_some(),
        "a SIGKILLed node must vanish when its connection closes, long before the 60 s timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_that_stops_answering_is_removed_after_the_session_timeout() {
    // SIGSTOP keeps the TCP connection open but silent: the "cable pulled" case.
    let registry = common::spawn_registry(&["--session-timeout", "1s"]);
    let rest = RestClient::new(&registry.url).unwrap();
    let node = common::spawn_netget(&[
        "register",
        "frozen",
        "--address",
        "http://127.0.0.1:7002",
        "--hold",
        "--registry",
        &registry.url,
    ]);
    assert_eq!(count(&rest, "frozen").await, 1);
    node.signal("STOP");
    let gone = common::wait_until(Duration::from_secs(5), || async {
        count(&rest, "frozen").await == 0
    })
    .await;
    assert!(
        gone.is_some(),
        "a silent session must be ended by the liveness timeout"
    );
    // The guard SIGKILLs the stopped process.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_fail_over_to_the_second_registry_when_the_first_is_killed() {
    let mut first = common::spawn_registry(&[]);
    let second = common::spawn_registry(&[]);
    let (a, b) = (first.url.clone(), second.url.clone());
    let rest_a = RestClient::new(&a).unwrap();
    let rest_b = RestClient::new(&b).unwrap();

    // In order: both start on A, the one about to die.
    let node = Netget::new(NetgetOptions {
        in_order: true,
        ..NetgetOptions::service("orders", "http://127.0.0.1:8000", &[&a, &b])
    })
    .unwrap();
    let inst = node.register_with_network().await.unwrap();
    let watcher = Netget::new(NetgetOptions {
        in_order: true,
        ..NetgetOptions::client(&[&a, &b])
    })
    .unwrap();
    let mut w = watcher.watch("orders").unwrap();
    let up = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(up.kind, EventKind::Up);
    assert_eq!(count(&rest_a, "orders").await, 1);
    assert_eq!(
        count(&rest_b, "orders").await,
        0,
        "registries that are not in a cluster do not replicate: B learns only by failover"
    );

    first.signal("KILL");
    first
        .wait_exit(Duration::from_secs(5))
        .expect("registry A did not die");

    // Without the application doing anything, the node re-registers on B with the same id.
    let moved = common::wait_until(Duration::from_secs(10), || async {
        count(&rest_b, "orders").await == 1
    })
    .await;
    assert!(
        moved.is_some(),
        "the node must re-register on the surviving registry"
    );
    let on_b = rest_b
        .discover("development", "orders", true, &[])
        .await
        .unwrap();
    assert_eq!(
        on_b.instances[0].id, inst.id,
        "same identity, same id after failover"
    );
    assert_eq!(
        node.connected_to().unwrap(),
        netget::client::ws_url(&b).unwrap()
    );

    // The watcher re-subscribed on B: a new instance registered on B reaches it.
    let other = Netget::new(NetgetOptions::service(
        "orders",
        "http://127.0.0.1:8001",
        &[&b],
    ))
    .unwrap();
    let other_inst = other.register_with_network().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = w.next().await.expect("watch ended");
            if ev.kind == EventKind::Up && ev.instance.id == other_inst.id {
                return ev;
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "the watcher must be re-subscribed after failover"
    );
    assert_eq!(
        watcher
            .discover_service_nodes("orders", &Default::default())
            .await
            .unwrap()
            .len(),
        2
    );

    for n in [&node, &watcher, &other] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_with_unreachable_when_no_registry_answers() {
    // A port nothing listens on: bind then drop to get one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let node = Netget::new(NetgetOptions::service("x", "http://127.0.0.1:1", &[&url])).unwrap();
    let e = node.register_with_network().await.unwrap_err();
    assert_eq!(e.code(), "NETGET_UNREACHABLE", "{e}");
    node.stop().await.unwrap();
}
