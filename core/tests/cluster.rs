//! The registry cluster's membership: registries that join one another see each other live over
//! gossip (UDP on loopback), in-process and as `netget registry --join` processes, and say so on
//! `/v1/cluster` and in `netget cluster`. (Replication is tested in `replication.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use netget::client::rest::RestClient;
use netget::registry::Member;
use netget::{RegistryConfig, RegistryHandle};

fn gossiping(mut c: RegistryConfig, join: &[&RegistryHandle]) -> RegistryConfig {
    c.cluster.gossip_interval = Duration::from_millis(100);
    if join.is_empty() {
        // The first registry joins no one: it gossips on its HTTP port number.
        c.cluster.gossip_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    c.cluster.join = join.iter().map(|r| r.url()).collect();
    c
}

/// Whether `members` are exactly `expected` (by id), all live, each with its URL.
fn all_live(members: &[Member], expected: &[&RegistryHandle]) -> bool {
    members.len() == expected.len()
        && expected.iter().all(|r| {
            members
                .iter()
                .any(|m| m.id == r.registry_id() && m.live && m.url.as_deref() == Some(&r.url()))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_that_join_one_another_see_every_member_live() {
    let (a, _da) = common::registry_with(|c| gossiping(c, &[])).await;
    let (b, _db) = common::registry_with(|c| gossiping(c, &[&a])).await;
    let (c, _dc) = common::registry_with(|c| gossiping(c, &[&a])).await;
    let all = [&a, &b, &c];
    for r in all {
        let seen = common::wait_until(Duration::from_secs(15), || async {
            all_live(&r.cluster_members().await, &all)
        })
        .await;
        assert!(
            seen.is_some(),
            "{} sees {:?}",
            r.registry_id(),
            r.cluster_members().await
        );
        let me = &r.cluster_members().await[0];
        assert!(me.this && me.id == r.registry_id(), "this registry first");
    }
    // The same over HTTP, and every registry publishes the same policy digest.
    let rest = RestClient::new(&b.url()).unwrap();
    let body = rest
        .send(hyper::Method::GET, "/v1/cluster", None)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["registryId"], b.registry_id());
    let members = answer["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let digests: std::collections::HashSet<_> =
        members.iter().map(|m| m["policies"].clone()).collect();
    assert_eq!(digests.len(), 1, "{members:?}");
    for r in [a, b, c] {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_gossips_alone_is_not_in_a_cluster_until_one_joins() {
    let (lone, _d) = common::registry().await;
    assert!(lone.cluster_members().await.is_empty());
    lone.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netget_registry_join_forms_a_cluster_that_netget_cluster_shows() {
    let (a, _da) = common::registry_with(|c| gossiping(c, &[])).await;
    let child = common::spawn_registry(&["--join", &a.url()]);
    let joined = common::wait_until(Duration::from_secs(15), || async {
        let m = a.cluster_members().await;
        m.len() == 2 && m.iter().all(|m| m.live)
    })
    .await;
    assert!(joined.is_some(), "{:?}", a.cluster_members().await);
    // The child's own view, through the CLI: both live once its detector has heard from A.
    let show = || {
        let out = std::process::Command::new(common::bin())
            .args(["cluster", "--registry", &child.url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Both live, and the child follows A over a replication link with nothing left to apply.
    let both = common::wait_until(Duration::from_secs(15), || async {
        let text = show();
        text.matches(" live ").count() == 2 && text.contains(" lag 0")
    })
    .await;
    let text = show();
    assert!(both.is_some(), "{text}");
    assert!(text.contains(a.registry_id()), "{text}");
    assert!(text.contains("(this registry)"), "{text}");
    drop(child);
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_other_networks_is_reported_on_health_and_metrics() {
    let (a, _da) = common::registry_with(|c| gossiping(c, &[])).await;
    let (b, _db) = common::registry_with(|c| {
        gossiping(c, &[&a])
            .with_open_networks(&["development", "staging"])
            .unwrap()
    })
    .await;
    let rest = RestClient::new(&a.url()).unwrap();
    let health = || async {
        let body = rest
            .send(hyper::Method::GET, "/health", None)
            .await
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    let reported = common::wait_until(Duration::from_secs(15), || async {
        health().await["cluster"]["policiesDiffer"] == serde_json::json!([b.registry_id()])
    })
    .await;
    assert!(reported.is_some(), "{}", health().await);
    assert_eq!(health().await["cluster"]["live"], 2);
    let mismatches = rest
        .metric("netget_cluster_policy_mismatches")
        .await
        .unwrap();
    assert_eq!(mismatches, Some(1.0));
    let live = rest
        .metric(r#"netget_cluster_members{state="live"}"#)
        .await
        .unwrap();
    assert_eq!(live, Some(2.0));
    for r in [a, b] {
        r.shutdown().await.unwrap();
    }
}
