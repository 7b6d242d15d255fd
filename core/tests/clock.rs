//! Time-driven behaviour on tokio's paused clock: TTL expiry and its grace, heartbeats, session
//! timeouts, the client's reconnect backoff, health-check intervals and debouncing.
//!
//! Registries, nodes and probe targets run in-process on loopback, in one current-thread
//! runtime whose clock moves only when a test advances it, or by itself when every task is
//! waiting for a timer. So these tests check timings to the tick, take milliseconds, and cannot
//! flake on a loaded machine. (Real-process liveness tests stay on the real clock, in
//! `liveness.rs`, with waits that end as soon as their condition holds.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netget::client::rest::RestClient;
use netget::model::{HealthCheck, Registration, Status, WireDuration};
use netget::{Netget, NetgetOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{advance, Instant};

/// The status of instance `id` of `service`, or `None` when it is gone.
async fn status(rest: &RestClient, service: &str, id: &str) -> Option<Status> {
    rest.discover("development", service, false, &[])
        .await
        .unwrap()
        .instances
        .iter()
        .find(|i| i.id.as_str() == id)
        .map(|i| i.status)
}

/// A registry holding REST instance `api/a1` with a 30 s TTL, and the clock paused.
///
/// The registration is made before the clock is paused: it waits for the store's fsync on a
/// thread of its own, and a paused clock would race ahead while the runtime waits for it.
async fn registered_with_a_30s_ttl() -> (netget::RegistryHandle, tempfile::TempDir, RestClient) {
    let (reg, dir) = common::registry().await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let body = Registration {
        address: "http://127.0.0.1:9000".into(),
        ttl: Some(WireDuration(Duration::from_secs(30))),
        ..Default::default()
    };
    rest.register("development", "api", "a1", &body)
        .await
        .unwrap();
    tokio::time::pause();
    (reg, dir, rest)
}

#[tokio::test]
async fn a_missed_ttl_turns_critical_at_the_ttl_and_is_removed_one_ttl_later() {
    let (reg, _dir, rest) = registered_with_a_30s_ttl().await;
    advance(Duration::from_millis(29_500)).await;
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Passing));
    // The reaper looks every 250 ms: critical within one look after the TTL.
    advance(Duration::from_millis(800)).await;
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Critical));
    assert!(rest
        .discover("development", "api", true, &[])
        .await
        .unwrap()
        .instances
        .is_empty());
    // Removed after `deregisterCriticalAfter`, by default one more TTL.
    advance(Duration::from_millis(29_000)).await;
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Critical));
    advance(Duration::from_millis(1_000)).await;
    assert_eq!(status(&rest, "api", "a1").await, None);
    reg.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeats_within_the_ttl_keep_a_registration_passing_and_one_after_revives_it() {
    let (reg, _dir, rest) = registered_with_a_30s_ttl().await;
    // Four minutes, a heartbeat every 25 s: never critical.
    for _ in 0..10 {
        advance(Duration::from_secs(25)).await;
        assert_eq!(status(&rest, "api", "a1").await, Some(Status::Passing));
        rest.heartbeat("development", "api", "a1").await.unwrap();
    }
    advance(Duration::from_millis(30_500)).await;
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Critical));
    rest.heartbeat("development", "api", "a1").await.unwrap();
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Passing));
    // The revived registration has a full TTL again: at 29.8 s it is past the removal the missed
    // TTL had scheduled (30 s after it expired) and still passing.
    advance(Duration::from_millis(29_800)).await;
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Passing));
    reg.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_session_is_removed_within_the_session_timeout_and_not_before() {
    let (reg, _dir) =
        common::registry_with(|c| c.with_session_timeout(Duration::from_secs(5))).await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let mut raw = common::raw_session(&reg.url(), "development").await;
    common::raw_send(
        &mut raw,
        r#"{"type":"register","id":1,"name":"quiet","instanceId":"q1","instance":{"address":"http://127.0.0.1:7001"}}"#,
    )
    .await;
    common::raw_recv(&mut raw).await;
    // Reading the answer may have answered the registry's first ping too: that pong is the last
    // frame this peer sends. A round trip to the registry over HTTP lets the registry read it
    // before the clock moves (the session's socket is readable before the HTTP answer is).
    assert_eq!(status(&rest, "quiet", "q1").await, Some(Status::Passing));
    let last_frame = Instant::now();
    // From here the peer reads nothing and so answers no ping: silent, connection open.
    advance(Duration::from_millis(3_700)).await;
    assert_eq!(status(&rest, "quiet", "q1").await, Some(Status::Passing));
    // Removed by a ping tick once `timeout - interval` has passed without a frame, which
    // guarantees removal within the timeout.
    let mut removed_after = None;
    for _ in 0..40 {
        advance(Duration::from_millis(50)).await;
        if status(&rest, "quiet", "q1").await.is_none() {
            removed_after = Some(last_frame.elapsed());
            break;
        }
    }
    let removed_after = removed_after.expect("the silent session was never removed");
    // (The test looks every 50 ms, so it may see the removal up to 50 ms late.)
    assert!(
        removed_after > Duration::from_millis(3_750)
            && removed_after <= Duration::from_millis(5_050),
        "removed {removed_after:?} after the last frame; the timeout is 5 s"
    );
    drop(raw);
    reg.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_live_idle_node_stays_registered_across_many_session_timeouts() {
    let (reg, _dir) =
        common::registry_with(|c| c.with_session_timeout(Duration::from_secs(5))).await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let node = Netget::new(NetgetOptions {
        data_dir: None,
        ..NetgetOptions::service("idle", "http://127.0.0.1:7003", &[&reg.url()])
    })
    .unwrap();
    let me = node.register_with_network().await.unwrap();
    let id = me.id.to_string();
    // Ten minutes of idleness: the registry's pings are answered and nothing else happens.
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(status(&rest, "idle", &id).await, Some(Status::Passing));
    }
    // Not even for a moment: a dropped session would have been counted (and the node's
    // re-registration would hide the gap from the polls above).
    let dropped = r#"netget_deregistrations_total{reason="session"}"#;
    assert_eq!(rest.metric(dropped).await.unwrap(), None);
    node.stop().await.unwrap();
    assert_eq!(status(&rest, "idle", &id).await, None);
    reg.shutdown().await.unwrap();
}

/// A registry that completes every handshake and drops the session at once; it records when
/// each connection arrived.
async fn dropping_registry() -> (
    String,
    Arc<Mutex<Vec<Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.lock().unwrap().push(Instant::now());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let challenge = serde_json::json!({"type":"challenge","protocol":"netget/1","registryId":"fake","nonce":"n","expiresIn":"10s"});
                let _ = ws.send(Message::text(challenge.to_string())).await;
                let _ = ws.next().await;
                let welcome = serde_json::json!({"type":"welcome","sessionId":1,"network":"development","registryId":"fake","pingInterval":"1s","sessionTimeout":"5s"});
                let _ = ws.send(Message::text(welcome.to_string())).await;
                let _ = ws.close(None).await;
            });
        }
    });
    (url, arrivals, server)
}

#[tokio::test(start_paused = true)]
async fn reconnects_back_off_from_100ms_doubling_to_5s_with_jitter() {
    let (url, arrivals, server) = dropping_registry().await;
    let node = Netget::new(NetgetOptions {
        data_dir: None,
        ..NetgetOptions::client(&[&url])
    })
    .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    node.stop().await.unwrap();
    server.abort();
    let at = arrivals.lock().unwrap().clone();
    assert!(at.len() >= 12, "{} connections in 60 s", at.len());
    let mut below_cap = 0;
    for (k, pair) in at.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // The k-th pause is uniformly in [cap/2, cap], cap = 100 ms doubling, at most 5 s.
        let cap = Duration::from_millis(100)
            .saturating_mul(1 << k.min(6))
            .min(Duration::from_secs(5));
        assert!(
            gap >= cap / 2 && gap <= cap + Duration::from_millis(10),
            "pause {k} was {gap:?}, outside [{:?}, {cap:?}]",
            cap / 2
        );
        if gap < cap.mul_f64(0.9) {
            below_cap += 1;
        }
    }
    // Jittered: a fleet that lost the same registry does not come back in step.
    assert!(below_cap > 0, "every pause was at its cap: no jitter");
}

/// A target for health checks: answers 200 or 500 as told, and records when each probe came.
struct Target {
    url: String,
    failing: Arc<std::sync::atomic::AtomicBool>,
    probes: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn target() -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes = Arc::new(Mutex::new(Vec::new()));
    let (fail, seen) = (failing.clone(), probes.clone());
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (fail, seen) = (fail.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                // One request per connection is enough for the checker (it closes after).
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock().unwrap().push(Instant::now());
                let code = if fail.load(std::sync::atomic::Ordering::SeqCst) {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let answer =
                    format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = tcp.write_all(answer.as_bytes()).await;
            });
        }
    });
    Target {
        url,
        failing,
        probes,
        task,
    }
}

#[tokio::test]
async fn health_checks_probe_once_per_interval_and_flip_only_after_two_failures() {
    let (reg, _dir) = common::registry().await;
    let svc = target().await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let check: HealthCheck = serde_json::from_value(serde_json::json!({
        "http": svc.url, "interval": "10s", "timeout": "1s"
    }))
    .unwrap();
    let body = Registration {
        address: "http://127.0.0.1:9000".into(),
        health: Some(check),
        ..Default::default()
    };
    rest.register("development", "api", "a1", &body)
        .await
        .unwrap();
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let probes = svc.probes.lock().unwrap().clone();
    // The first probe comes at a random point of the first interval, then one per interval.
    assert!(
        (5..=7).contains(&probes.len()),
        "{} probes in 60 s at a 10 s interval",
        probes.len()
    );
    for pair in probes.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(9_900) && gap <= Duration::from_millis(10_100),
            "probes {gap:?} apart; the interval is 10 s"
        );
    }
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Passing));
    // One failing probe flips nothing (failuresBeforeCritical defaults to 2); the second does.
    svc.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let last = *probes.last().unwrap();
    tokio::time::sleep_until(last + Duration::from_millis(10_500)).await;
    assert_eq!(svc.probes.lock().unwrap().len(), probes.len() + 1);
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Passing));
    tokio::time::sleep_until(last + Duration::from_millis(20_500)).await;
    assert_eq!(svc.probes.lock().unwrap().len(), probes.len() + 2);
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Critical));
    // One passing probe brings it back (successBeforePassing defaults to 1).
    svc.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep_until(last + Duration::from_millis(30_500)).await;
    assert_eq!(status(&rest, "api", "a1").await, Some(Status::Passing));
    svc.task.abort();
    reg.shutdown().await.unwrap();
}

#[tokio::test]
async fn sessions_holding_an_instance_a_watch_or_a_subscription_are_never_idle_closed() {
    let (reg, _d) = common::registry_with(|mut c| {
        c.limits.idle_timeout = Duration::from_secs(30);
        c.with_session_timeout(Duration::from_secs(600))
    })
    .await;
    let url = reg.url();
    let mut empty = common::raw_session(&url, "development").await;
    let mut holding = Vec::new();
    for request in [
        r#"{"type":"register","id":1,"name":"web","instance":{"address":"http://127.0.0.1:1"}}"#,
        r#"{"type":"watch","id":1,"name":"other"}"#,
        r#"{"type":"subscribe","id":1,"channel":"chat"}"#,
    ] {
        let mut s = common::raw_session(&url, "development").await;
        common::raw_send(&mut s, request).await;
        match common::raw_recv(&mut s).await {
            netget::wire::ServerMessage::Result { id: 1, .. } => {}
            other => panic!("{request}: {other:?}"),
        }
        holding.push(s);
    }
    tokio::time::pause();
    // The idle check runs on each ping (every 150 s here): 200 s pass the first one, and the
    // silence stays well inside the 600 s session timeout.
    for _ in 0..40 {
        advance(Duration::from_secs(5)).await;
    }
    assert_eq!(
        common::raw_close_code(&mut empty).await,
        Some(4001),
        "the session holding nothing is idle-closed"
    );
    for s in &mut holding {
        common::raw_send(s, r#"{"type":"services","id":2}"#).await;
        match common::raw_recv(s).await {
            netget::wire::ServerMessage::Result { id: 2, .. } => {}
            other => panic!("a session holding something was disturbed: {other:?}"),
        }
    }
    reg.shutdown().await.unwrap();
}
