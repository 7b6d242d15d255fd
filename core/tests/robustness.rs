//! Regressions from review: slow or frozen peers, refusing registries and refused watches must
//! not break liveness, failover or discovery. (Reconnect backoff against a registry that keeps
//! dropping sessions is timed on the paused clock, in `clock.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use netget::identity::NodeKey;
use netget::model::{InstanceId, NetworkName, ServiceName};
use netget::registry::directory::Owner;
use netget::wire::ServerMessage;
use netget::{Instance, Netget, NetgetOptions, Registration};

fn inst(name: &str, id: &str, pad: usize) -> Instance {
    let mut metadata = serde_json::Map::new();
    metadata.insert("pad".into(), "x".repeat(pad).into());
    Instance::from_registration(
        NetworkName::new("development").unwrap(),
        ServiceName::new(name).unwrap(),
        InstanceId::new(id).unwrap(),
        Registration {
            address: format!("http://127.0.0.1/{id}"),
            metadata,
            ..Default::default()
        },
        "r",
    )
}

fn client(urls: &[&str], timeout: Duration) -> Netget {
    let mut o = NetgetOptions::client(urls);
    o.data_dir = None;
    o.request_timeout = timeout;
    Netget::new(o).unwrap()
}

/// `changes` REST registrations of the four instances of `churn`, each with other metadata.
async fn churn(dir: &netget::registry::directory::Directory, changes: usize) {
    let rest = Owner::Rest {
        ttl: Some(Duration::from_secs(60)),
        token: None,
    };
    for i in 0..changes {
        dir.register(
            inst("churn", &format!("c{}", i % 4), 7000 + i % 7),
            rest.clone(),
        )
        .unwrap();
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A session over a socket with a tiny receive buffer, so the registry's writes back up quickly
/// once the test stops reading.
async fn tiny_buffer_session(reg: &netget::RegistryHandle) -> common::Raw {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(reg.local_addr()).await.unwrap();
    let url = format!("ws://{}/v1/ws", reg.local_addr());
    let (mut s, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
    let (rid, nonce) = match common::raw_recv(&mut s).await {
        ServerMessage::Challenge {
            registry_id, nonce, ..
        } => (registry_id, nonce),
        o => panic!("{o:?}"),
    };
    common::raw_send(
        &mut s,
        &common::hello(&NodeKey::generate().unwrap(), &rid, "development", &nonce),
    )
    .await;
    common::raw_recv(&mut s).await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_watcher_of_a_busy_service_is_still_timed_out() {
    let (reg, _d) = common::registry_with(|c| c.with_session_timeout(Duration::from_secs(1))).await;
    let mut s = tiny_buffer_session(&reg).await;
    common::raw_send(
        &mut s,
        r#"{"type":"register","id":1,"name":"victim","instanceId":"v1","instance":{"address":"http://x:1"}}"#,
    )
    .await;
    common::raw_recv(&mut s).await;
    common::raw_send(&mut s, r#"{"type":"watch","id":2,"name":"churn"}"#).await;
    common::raw_recv(&mut s).await;
    // From here the peer neither reads nor writes, its socket open: frozen.
    let dir = reg.directory().clone();
    churn(&dir, 6000).await;
    let victim = ServiceName::new("victim").unwrap();
    let net = NetworkName::new("development").unwrap();
    let gone = common::wait_until(Duration::from_secs(6), || async {
        dir.discover(&net, &victim, false, &[])
            .unwrap()
            .instances
            .is_empty()
    })
    .await;
    drop(s);
    assert!(
        gone.is_some(),
        "a frozen node must be removed even when its outbox is full"
    );
    tokio::time::timeout(Duration::from_secs(10), reg.shutdown())
        .await
        .expect("shutdown hangs")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_first_registry_does_not_block_failover_to_the_second() {
    let (bad, _d1) =
        common::registry_with(|c| c.with_open_networks(&["production"]).unwrap()).await;
    let (good, _d2) = common::registry().await;
    let node = client(&[&bad.url(), &good.url()], Duration::from_secs(5));
    let url = node.start().await.unwrap();
    assert_eq!(url, netget::client::ws_url(&good.url()).unwrap());
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_falls_back_to_the_registry_when_a_watch_is_refused() {
    let (reg, _d) = common::registry_with(|mut c| {
        c.max_watches_per_session = 1;
        c
    })
    .await;
    let node = client(&[&reg.url()], Duration::from_secs(5));
    node.start().await.unwrap();
    let _a = node.watch("a").unwrap();
    node.discover_service_nodes("a", &Default::default())
        .await
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        node.discover_service_nodes("b", &Default::default()),
    )
    .await;
    assert!(matches!(r, Ok(Ok(ref v)) if v.is_empty()), "{r:?}");
    node.stop().await.unwrap();
}

/// A fake registry that completes every handshake and then closes the session at once,
/// counting connections: a client must back off instead of reconnecting in a tight loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_cost_the_registry_little_memory() {
    // tungstenite's default 128 KiB read buffer, zero-filled on a session's first read, once
    // cost ~140 KB of RSS per idle session (1.4 GB for 10k sessions).
    const SESSIONS: usize = 300;
    // An idle session now costs ~10 KB of heap (BENCHMARKS.md, "Many sessions on one registry").
    const MAX_KIB_PER_SESSION: u64 = 32;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("netget.toml");
    // One test process opens every session: lift the per-IP limits a real fleet never meets.
    std::fs::write(&config, netget::testsuite::LOAD_LIMITS).unwrap();
    let reg = common::spawn_registry(&["--config", config.to_str().unwrap()]);
    let pid = Some(reg.pid() as u32);
    let mut held = Vec::new();
    // A few first, so the runtime's and allocator's one-time costs are not counted.
    for _ in 0..20 {
        held.push(netget::testsuite::open(&reg.url).await.unwrap());
    }
    let before = netget::testsuite::rss_kib(pid).unwrap();
    for _ in 0..SESSIONS {
        held.push(netget::testsuite::open(&reg.url).await.unwrap());
    }
    let after = netget::testsuite::rss_kib(pid).unwrap();
    let per_session = after.saturating_sub(before) / SESSIONS as u64;
    assert!(
        per_session <= MAX_KIB_PER_SESSION,
        "{SESSIONS} idle sessions took the registry from {before} to {after} KiB ({per_session} KiB each)"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_lags_gets_a_snapshot_of_the_current_state_instead_of_stale_events() {
    let (reg, _d) =
        common::registry_with(|c| c.with_session_timeout(Duration::from_secs(20))).await;
    let mut s = tiny_buffer_session(&reg).await;
    common::raw_send(&mut s, r#"{"type":"watch","id":2,"name":"churn"}"#).await;
    common::raw_recv(&mut s).await;
    // The watcher stops reading while the service changes far faster than it could be told.
    let dir = reg.directory().clone();
    churn(&dir, 6000).await;
    let net = NetworkName::new("development").unwrap();
    let churn = ServiceName::new("churn").unwrap();
    let now = dir.discover(&net, &churn, false, &[]).unwrap().instances;
    // Reading again: what was queued, then a snapshot in place of what was missed, holding the
    // state as it is now.
    let mut snapshot = None;
    for _ in 0..20_000 {
        match tokio::time::timeout(Duration::from_secs(10), common::raw_recv(&mut s)).await {
            Ok(ServerMessage::Snapshot { name, instances }) if name == churn => {
                snapshot = Some(instances);
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let snapshot = snapshot.expect("no snapshot after the watcher lagged");
    let ids = |v: &[std::sync::Arc<Instance>]| {
        v.iter()
            .map(|i| (i.id.to_string(), i.metadata.as_str().len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&snapshot), ids(&now));
    reg.shutdown().await.unwrap();
}
