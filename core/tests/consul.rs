//! The Consul-compatible API over plain HTTP/1.1, as the Go client (what Prometheus' Consul
//! discovery uses) reads it: the `X-Consul-*` headers it fails without, tokens in Consul's header,
//! datacenters as networks, and a blocking query that times out at its `wait` with the same
//! index. (py-consul drives the rest: tests/python/test_consul_client.py.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use netget::security::{NetworkConfig, Policy};
use netget::RegistryHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request on its own connection: (status, headers by lowercase name, body).
async fn call(
    reg: &RegistryHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HashMap<String, String>, String) {
    let mut tcp = tokio::net::TcpStream::connect(reg.local_addr())
        .await
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        reg.local_addr(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut raw))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

async fn registry() -> (RegistryHandle, tempfile::TempDir) {
    common::registry_with(|mut c| {
        c.networks = vec![
            NetworkConfig::open("development").unwrap(),
            NetworkConfig {
                name: netget::model::NetworkName::new("production").unwrap(),
                policy: Policy::Token {
                    tokens: vec!["prod-secret-token".into()],
                },
            },
        ];
        c.networks_configured = true;
        c
    })
    .await
}

#[tokio::test]
async fn answers_carry_the_headers_the_go_client_reads_and_datacenters_are_networks() {
    let (reg, _dir) = registry().await;
    let (status, h, body) = call(&reg, "GET", "/v1/catalog/services", &[], "").await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert!(h["x-consul-index"].parse::<u64>().unwrap() >= 1);
    assert_eq!(h["x-consul-knownleader"], "true");
    assert_eq!(h["x-consul-lastcontact"], "0");
    assert_eq!(h["content-type"], "application/json");

    let (status, _, body) = call(&reg, "GET", "/v1/agent/self", &[], "").await;
    assert_eq!(status, 200);
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["Config"]["Datacenter"], "development");
    assert_eq!(me["Config"]["NodeName"], reg.registry_id());

    // An unknown datacenter is an unknown network.
    let (status, _, body) = call(&reg, "GET", "/v1/health/service/web?dc=nowhere", &[], "").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("NETGET_UNKNOWN_NETWORK"), "{body}");
    reg.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_network_takes_consuls_token_header_and_refuses_without_it() {
    let (reg, _dir) = registry().await;
    let token = [("x-consul-token", "prod-secret-token")];
    let body = r#"{"Name": "billing", "ID": "b1", "Address": "10.0.0.7", "Port": 9000, "Check": {"TTL": "30s"}}"#;
    let (status, _, text) = call(
        &reg,
        "PUT",
        "/v1/agent/service/register?dc=production",
        &[],
        body,
    )
    .await;
    assert_eq!(status, 401, "{text}");
    let (status, _, text) = call(
        &reg,
        "PUT",
        "/v1/agent/service/register?dc=production",
        &token,
        body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, _, _) = call(
        &reg,
        "GET",
        "/v1/health/service/billing?dc=production",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, text) = call(
        &reg,
        "GET",
        "/v1/health/service/billing?dc=production",
        &token,
        "",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let entries: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(entries[0]["Service"]["Address"], "10.0.0.7");
    assert_eq!(entries[0]["Service"]["Port"], 9000);
    assert_eq!(entries[0]["Node"]["Datacenter"], "production");
    // Bearer tokens work as well, and check/pass renews with the token that registered.
    let bearer = [("authorization", "Bearer prod-secret-token")];
    let (status, _, text) = call(
        &reg,
        "PUT",
        "/v1/agent/check/pass/service:b1?dc=production",
        &bearer,
        "",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    reg.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_blocking_query_without_a_change_answers_at_its_wait_with_the_same_index() {
    let (reg, _dir) = registry().await;
    let (_, h, _) = call(&reg, "GET", "/v1/health/service/web", &[], "").await;
    let index: u64 = h["x-consul-index"].parse().unwrap();
    let path = format!("/v1/health/service/web?index={index}&wait=300ms");
    let (status, h, body) = call(&reg, "GET", &path, &[], "").await;
    assert_eq!((status, body.as_str()), (200, "[]"));
    assert_eq!(h["x-consul-index"].parse::<u64>().unwrap(), index);
    // An index ahead of the registry's (another registry's, or one from before a restart) is
    // answered at once with the current one.
    let path = format!("/v1/health/service/web?index={}&wait=10m", index + 1000);
    let answered = tokio::time::timeout(Duration::from_secs(5), call(&reg, "GET", &path, &[], ""))
        .await
        .expect("answered at once");
    assert_eq!(answered.1["x-consul-index"].parse::<u64>().unwrap(), index);
    reg.shutdown().await.unwrap();
}
