//! Prometheus' HTTP service discovery against netget, with a real Prometheus (Debian's
//! `prometheus`) on loopback: it discovers what is registered, with the `__meta_netget_*`
//! labels, scrapes it (one target is netget's own `/metrics`), and drops an instance once it is
//! deregistered. Waits are for a condition, bounded; both processes are stopped by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::durable;
use netget::client::rest::RestClient;
use netget::model::Registration;

/// A Prometheus process, killed and reaped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the OS hands out, for a program that cannot be told to bind port 0 and say which.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn prometheus(scrape_configs: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n{scrape_configs}"),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (Debian's prometheus)");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Prometheus' active targets: `(instance id label, service label, health)` of each.
async fn targets(prom: &Prometheus) -> Option<BTreeSet<(String, String, String)>> {
    let body = RestClient::new(&prom.url)
        .ok()?
        .send(hyper::Method::GET, "/api/v1/targets", None)
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let active = v["data"]["activeTargets"].as_array()?;
    Some(
        active
            .iter()
            .map(|t| {
                (
                    t["discoveredLabels"]["__meta_netget_instance_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    t["labels"]["service"].as_str().unwrap_or("").to_string(),
                    t["health"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_discovers_scrapes_and_drops_instances_through_http_sd() {
    let reg = common::spawn_registry(&[]);
    let rest = RestClient::new(&reg.url).unwrap();
    // One instance is the registry itself (its /metrics is there to scrape), one is nowhere.
    let me = Registration {
        tags: vec!["v1".into()],
        metadata: [("zone".to_string(), serde_json::json!("eu-1"))]
            .into_iter()
            .collect(),
        ..durable(&reg.url)
    };
    rest.register("development", "netget", "self", &me)
        .await
        .unwrap();
    rest.register(
        "development",
        "netget",
        "gone",
        &durable("http://127.0.0.1:1"),
    )
    .await
    .unwrap();
    rest.register("development", "other", "o", &durable("http://127.0.0.1:2"))
        .await
        .unwrap();

    let prom = prometheus(&format!(
        "  - job_name: netget\n    metrics_path: /metrics\n    http_sd_configs:\n      - url: {}/v1/networks/development/prometheus?service=netget\n        refresh_interval: 1s\n    relabel_configs:\n      - source_labels: [__meta_netget_service]\n        target_label: service\n      - source_labels: [__meta_netget_metadata_zone]\n        target_label: zone\n",
        reg.url
    ));

    // Both instances of the service asked for (not the other service), labelled; the registry
    // itself scraped successfully.
    let expected: BTreeSet<(String, String, String)> = [
        ("self".to_string(), "netget".to_string(), "up".to_string()),
        ("gone".to_string(), "netget".to_string(), "down".to_string()),
    ]
    .into_iter()
    .collect();
    let found = common::wait_until(Duration::from_secs(30), || async {
        targets(&prom).await.as_ref() == Some(&expected)
    })
    .await;
    assert!(found.is_some(), "{:?}", targets(&prom).await);

    // A series scraped from netget's own /metrics, with the labels relabelling made of ours.
    let scraped = common::wait_until(Duration::from_secs(15), || async {
        let Ok(body) = RestClient::new(&prom.url).unwrap()
            .send(hyper::Method::GET, "/api/v1/query?query=netget_sessions%7Bzone%3D%22eu-1%22%2Cservice%3D%22netget%22%7D", None)
            .await
        else {
            return false;
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        v["data"]["result"].as_array().is_some_and(|r| r.len() == 1)
    })
    .await;
    assert!(
        scraped.is_some(),
        "netget_sessions was not scraped with its labels"
    );

    // Deregistered: gone from Prometheus' targets within a few refresh intervals.
    rest.deregister("development", "netget", "gone")
        .await
        .unwrap();
    let dropped = common::wait_until(Duration::from_secs(15), || async {
        targets(&prom)
            .await
            .is_some_and(|t| t.len() == 1 && t.iter().all(|(id, _, _)| id == "self"))
    })
    .await;
    assert!(dropped.is_some(), "{:?}", targets(&prom).await);
}

#[tokio::test]
async fn the_targets_endpoint_filters_by_service_tag_and_health_and_answers_an_empty_list() {
    let (reg, _dir) = common::registry().await;
    let rest = RestClient::new(&reg.url()).unwrap();
    let get = |q: &'static str| {
        let rest = RestClient::new(&reg.url()).unwrap();
        async move {
            let body = rest
                .send(
                    hyper::Method::GET,
                    &format!("/v1/networks/development/prometheus{q}"),
                    None,
                )
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    assert_eq!(get("").await, serde_json::json!([]));
    let tagged = |address: &str, tag: &str| Registration {
        tags: vec![tag.into()],
        ..durable(address)
    };
    rest.register(
        "development",
        "a",
        "1",
        &tagged("http://10.0.0.1:9100", "x"),
    )
    .await
    .unwrap();
    rest.register(
        "development",
        "a",
        "2",
        &tagged("http://10.0.0.2:9100", "y"),
    )
    .await
    .unwrap();
    rest.register(
        "development",
        "b",
        "1",
        &tagged("http://10.0.0.3:9100", "x"),
    )
    .await
    .unwrap();
    let targets = |v: serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|g| g["targets"][0].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(targets(get("").await).len(), 3);
    assert_eq!(
        targets(get("?service=a").await),
        ["10.0.0.1:9100", "10.0.0.2:9100"].map(String::from).into()
    );
    assert_eq!(
        targets(get("?tag=x").await),
        ["10.0.0.1:9100", "10.0.0.3:9100"].map(String::from).into()
    );
    assert_eq!(
        targets(get("?service=a&tag=x&healthy=true").await),
        ["10.0.0.1:9100"].map(String::from).into()
    );
    let bad = rest
        .send(
            hyper::Method::GET,
            "/v1/networks/development/prometheus?nope=1",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "NETGET_INVALID_INPUT", "{bad}");
    reg.shutdown().await.unwrap();
}
