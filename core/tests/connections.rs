//! Who gets a connection: a client that opens sockets and sends nothing (or half a request), or
//! opens more than its share, or the whole registry's share, must not take the registry away
//! from anyone else. Caps per address and in total answer `NETGET_RATE_LIMITED` (429) at once;
//! the request head has a deadline; the total stays below the open-file limit, which the
//! registry raises to the hard limit at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use netget::client::rest::RestClient;
use netget::{Netget, NetgetOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.x: one machine, many
/// client addresses).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Everything the server sends on `s` until it closes, within `within` (what came so far if not).
async fn read_all(s: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /health` on a new connection from `from`: the answer's status line.
async fn health_from(from: &str, to: SocketAddr) -> String {
    let mut s = connect_from(from, to).await;
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    answer.lines().next().unwrap_or("").to_string()
}

/// What the registry answers a connection over a cap: a 429 with the code, then the close.
async fn refusal_to(s: &mut TcpStream) -> String {
    let answer = read_all(s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains(r#""code":"NETGET_RATE_LIMITED""#),
        "{answer}"
    );
    answer
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_is_closed_at_the_header_timeout_and_not_before() {
    let (reg, _d) = common::registry().await; // the default header timeout, 10 s
    let to = addr_of(&reg.url());
    let mut half = Vec::new();
    for _ in 0..20 {
        let mut s = connect_from("127.0.0.1", to).await;
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        half.push(s);
    }
    let mut silent = connect_from("127.0.0.1", to).await;
    // Connections are accepted in order: once a later one is answered, these are all in.
    assert_eq!(health_from("127.0.0.2", to).await, "HTTP/1.1 200 OK");
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(9_500)).await;
    let mut byte = [0u8; 1];
    for s in half.iter().chain([&silent]) {
        let e = s.try_read(&mut byte).unwrap_err();
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "closed before the timeout"
        );
    }
    tokio::time::advance(Duration::from_millis(1_000)).await;
    for (i, s) in half.iter_mut().chain([&mut silent]).enumerate() {
        let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut byte))
            .await
            .unwrap_or_else(|_| panic!("connection {i} still open after the header timeout"));
        assert!(matches!(n, Ok(0) | Err(_)), "the registry sent {n:?}");
    }
    // A complete request is answered as ever.
    let rest = RestClient::new(&reg.url()).unwrap();
    assert!(rest.health().await.is_ok());
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_its_connection_cap_and_every_other_address_is_still_served() {
    let (reg, _d) = common::registry_with(|mut c| {
        c.max_connections_per_ip = 8;
        c
    })
    .await;
    let to = addr_of(&reg.url());
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect_from("127.0.0.1", to).await);
    }
    let mut over = connect_from("127.0.0.1", to).await;
    let answer = read_all(&mut over, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains(r#""code":"NETGET_RATE_LIMITED""#),
        "{answer}"
    );
    assert!(
        answer.contains("127.0.0.1 holds its maximum of 8 connections"),
        "{answer}"
    );
    assert!(answer.contains("max_connections_per_ip"), "{answer}");
    assert_eq!(health_from("127.0.0.2", to).await, "HTTP/1.1 200 OK");
    // A slot comes back when its connection closes.
    drop(held.pop());
    let back = common::wait_until(Duration::from_secs(5), || async {
        health_from("127.0.0.1", to).await == "HTTP/1.1 200 OK"
    })
    .await;
    assert!(
        back.is_some(),
        "the closed connection's slot never came back"
    );
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_registry_cap_new_connections_are_refused_and_open_sessions_keep_working() {
    let (reg, _d) = common::registry_with(|mut c| {
        c.max_connections = 6;
        c
    })
    .await;
    let to = addr_of(&reg.url());
    let url = reg.url();
    let service = Netget::new(NetgetOptions {
        data_dir: None,
        ..NetgetOptions::service("orders", "http://127.0.0.1:9000", &[&url])
    })
    .unwrap();
    service.register_with_network().await.unwrap();
    let client = Netget::new(NetgetOptions {
        data_dir: None,
        ..NetgetOptions::client(&[&url])
    })
    .unwrap();
    assert!(client
        .discover_service_node("orders")
        .await
        .unwrap()
        .is_some());
    let mut idle = Vec::new();
    for i in 0..4 {
        idle.push(connect_from(&format!("127.0.0.{}", 3 + i), to).await);
    }
    let answer = refusal_to(&mut connect_from("127.0.0.9", to).await).await;
    assert!(
        answer.contains("the registry holds its maximum of 6 connections"),
        "{answer}"
    );
    // The sessions already open are not disturbed.
    assert!(client
        .discover_service_node("orders")
        .await
        .unwrap()
        .is_some());
    service.deregister().await.unwrap();
    client.stop().await.unwrap();
    service.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

/// The soft and hard open-file limits of process `pid`.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

/// `netget registry` under `limits` (ulimit arguments), as a guarded child.
fn registry_under(limits: &str, data: &std::path::Path) -> common::ChildGuard {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "ulimit {limits} && exec '{}' registry --listen 127.0.0.1:0 --data '{}'",
        common::bin(),
        data.display()
    ));
    common::spawn_command(cmd, &["registry under ulimit", limits])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_raises_its_open_file_limit_and_keeps_connections_below_it_serving_its_sessions(
) {
    let (_, hard) = open_file_limits(std::process::id());
    assert!(
        hard > 256,
        "this test needs a hard open-file limit above 256"
    );
    let dir = tempfile::tempdir().unwrap();

    // A low soft limit is raised to the hard one.
    let reg = registry_under("-Sn 256", &dir.path().join("a"));
    assert_eq!(open_file_limits(reg.child.id()), (hard, hard));
    drop(reg);

    // Where the hard limit is low, the connection cap stays below it: 200 - 64 kept free.
    let reg = registry_under("-n 200", &dir.path().join("b"));
    assert_eq!(open_file_limits(reg.child.id()), (200, 200));
    let to = addr_of(&reg.url);
    // A session opened before the flood.
    let mut session = common::raw_session(&reg.url, "development").await;
    let mut conns = Vec::new();
    for i in 0..160 {
        conns.push(connect_from(&format!("127.0.0.{}", 1 + i % 8), to).await);
    }
    let answers = futures_util::future::join_all(
        conns
            .iter_mut()
            .map(|s| read_all(s, Duration::from_secs(3))),
    )
    .await;
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 429") && a.contains("maximum of 136 connections"))
        .count();
    // Every connection past the cap got its answer (none was dropped for want of a file).
    assert_eq!(
        refused,
        160 - (136 - 1), // the session holds one of the 136
        "{:?}",
        answers.iter().find(|a| !a.is_empty())
    );
    // Out of connections for newcomers, the registry still serves the session it holds.
    common::raw_send(&mut session, r#"{"type":"ping","id":41}"#).await;
    let pong = common::raw_recv(&mut session).await;
    assert!(
        matches!(pong, netget::wire::ServerMessage::Pong { id: 41 }),
        "{pong:?}"
    );
    drop(conns);
    let served = common::wait_until(Duration::from_secs(5), || async {
        health_from("127.0.0.1", to).await == "HTTP/1.1 200 OK"
    })
    .await;
    assert!(
        served.is_some(),
        "the registry does not answer after the flood"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_share_their_address_budget_across_sessions_and_other_addresses_are_served(
) {
    use netget::wire::ServerMessage;
    let (reg, _d) = common::registry_with(|mut c| {
        c.limits.ip_rate = 50;
        c.limits.ip_burst = 50;
        c
    })
    .await;
    let url = reg.url();
    let mut a = common::raw_session(&url, "development").await;
    let mut b = common::raw_session(&url, "development").await;
    let (mut answered, mut limited) = (0, 0);
    for i in 0..60u64 {
        for s in [&mut a, &mut b] {
            common::raw_send(s, &format!(r#"{{"type":"ping","id":{i}}}"#)).await;
            match common::raw_recv(s).await {
                ServerMessage::Pong { .. } => answered += 1,
                m => {
                    assert_eq!(common::error_code(&m), "NETGET_RATE_LIMITED");
                    limited += 1;
                }
            }
        }
    }
    // One budget for the address: 50 at once (plus what refilled at 50/s meanwhile), not 50
    // per session.
    assert!(answered < 100, "{answered} answered, {limited} limited");
    assert!(limited > 0);
    assert_eq!(
        health_from("127.0.0.2", addr_of(&url)).await,
        "HTTP/1.1 200 OK"
    );
    reg.shutdown().await.unwrap();
}
