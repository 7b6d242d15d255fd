//! The embedded store: nothing acknowledged is lost across clean restarts or SIGKILL, a second
//! registry on the same data dir and a corrupt store are refused, churn keeps the file bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netget::client::rest::RestClient;
use netget::model::{HealthCheck, InstanceId, NetworkName, Registration, ServiceName};
use netget::registry::store::{Store, STORE_FILE};

fn reg(address: &str) -> Registration {
    common::durable(address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_keeps_registrations_checks_policies_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("netget.toml");
    let bound = netget::NodeKey::generate().unwrap();
    let other = netget::NodeKey::generate().unwrap();
    std::fs::write(
        &config,
        format!(
            "[[network]]\nname = \"development\"\n\n[[network]]\nname = \"production\"\npolicy = \"token\"\ntokens = [\"restart-token-1\"]\n\n[[network]]\nname = \"secure\"\npolicy = \"keys\"\nkeys = [{{ public_key = \"{}\" }}, {{ public_key = \"{}\" }}]\n",
            bound.public_key(),
            other.public_key()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut first = common::registry_on(&data, &["--config", config.to_str().unwrap()]);
    let rest = RestClient::new(&first.url).unwrap();
    let mut with_check = reg("http://127.0.0.1:1");
    with_check.tags = vec!["v1".into()];
    with_check.health = Some(HealthCheck {
        tcp: Some("127.0.0.1:1".into()),
        ..Default::default()
    });
    rest.register("development", "api", "a1", &with_check)
        .await
        .unwrap();
    rest.register("development", "api", "a2", &reg("http://127.0.0.1:2"))
        .await
        .unwrap();
    let prod = rest.clone().token(Some("restart-token-1".into()));
    prod.register("production", "billing", "b1", &reg("http://127.0.0.1:3"))
        .await
        .unwrap();
    // An unbound key claims "catalog" in the keys network.
    let mut o = netget::NetgetOptions::service("catalog", "http://127.0.0.1:4", &[&first.url]);
    o.network = "secure".into();
    o.key = Some(bound.clone());
    o.data_dir = None;
    let claimer = netget::Netget::new(o).unwrap();
    claimer.register_with_network().await.unwrap();
    claimer.stop().await.unwrap();
    first.signal("TERM");
    first
        .wait_exit(Duration::from_secs(10))
        .expect("clean stop");

    // Restarted without the config: the stored policies still hold.
    let second = common::registry_on(&data, &[]);
    assert!(
        second.first_line.contains("production (token)"),
        "{}",
        second.first_line
    );
    let rest = RestClient::new(&second.url).unwrap();
    let api = rest
        .discover("development", "api", false, &[])
        .await
        .unwrap();
    assert_eq!(api.instances.len(), 2);
    let a1 = api
        .instances
        .iter()
        .find(|i| i.id.as_str() == "a1")
        .unwrap();
    assert_eq!(a1.tags, vec!["v1".to_string()]);
    assert!(a1.health.is_some(), "the check definition survives");
    assert_eq!(
        rest.discover("production", "billing", true, &[])
            .await
            .unwrap_err()
            .code(),
        "NETGET_UNAUTHORIZED"
    );
    let prod = rest.clone().token(Some("restart-token-1".into()));
    assert_eq!(
        prod.discover("production", "billing", true, &[])
            .await
            .unwrap()
            .instances
            .len(),
        1
    );
    // The name claim survives: the other allowed key still cannot take "catalog".
    let mut o = netget::NetgetOptions::service("catalog", "http://127.0.0.1:5", &[&second.url]);
    o.network = "secure".into();
    o.data_dir = None;
    o.key = Some(other);
    o.request_timeout = Duration::from_secs(5);
    let hijacker = netget::Netget::new(o).unwrap();
    assert_eq!(
        hijacker.register_with_network().await.unwrap_err().code(),
        "NETGET_FORBIDDEN"
    );
    hijacker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // What the registry acknowledged: id -> Some(address) registered, None deregistered. An id
    // whose deregistration was sent but not acknowledged is left out: either outcome is right.
    let acked: Arc<Mutex<BTreeMap<String, Option<String>>>> = Arc::default();
    for round in 0..3 {
        let mut registry = common::registry_on(&data, &[]);
        let rest = RestClient::new(&registry.url).unwrap();
        // Everything acknowledged before is still there, exactly.
        let present = rest.discover("development", "w", false, &[]).await.unwrap();
        let have: BTreeMap<String, String> = present
            .instances
            .iter()
            .map(|i| (i.id.to_string(), i.address.clone()))
            .collect();
        for (id, state) in acked.lock().unwrap().iter() {
            match state {
                Some(addr) => assert_eq!(
                    have.get(id),
                    Some(addr),
                    "round {round}: acknowledged {id} lost"
                ),
                None => assert!(
                    !have.contains_key(id),
                    "round {round}: acknowledged removal of {id} undone"
                ),
            }
        }
        let mut writers = Vec::new();
        for w in 0..8 {
            let (rest, acked) = (rest.clone(), acked.clone());
            writers.push(tokio::spawn(async move {
                for n in 0..10_000 {
                    let id = format!("r{round}-w{w}-{n}");
                    let addr = format!("http://127.0.0.1:{}/{n}", 1000 + w);
                    if rest
                        .register("development", "w", &id, &reg(&addr))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    acked.lock().unwrap().insert(id.clone(), Some(addr));
                    if n % 3 == 0 {
                        // Until acknowledged, the removal may or may not have happened.
                        acked.lock().unwrap().remove(&id);
                        if rest.deregister("development", "w", &id).await.is_err() {
                            return;
                        }
                        acked.lock().unwrap().insert(id, None);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(200 + fastrand::u64(..600))).await;
        registry.signal("KILL");
        registry.wait_exit(Duration::from_secs(10)).expect("killed");
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(15), w).await;
        }
    }
    assert!(
        acked.lock().unwrap().len() > 50,
        "the writers made progress before each kill"
    );
    // A last start checks the final round.
    let registry = common::registry_on(&data, &[]);
    let rest = RestClient::new(&registry.url).unwrap();
    let present = rest.discover("development", "w", false, &[]).await.unwrap();
    let have: BTreeMap<String, String> = present
        .instances
        .iter()
        .map(|i| (i.id.to_string(), i.address.clone()))
        .collect();
    for (id, state) in acked.lock().unwrap().iter() {
        match state {
            Some(addr) => assert_eq!(have.get(id), Some(addr), "acknowledged {id} lost"),
            None => assert!(
                !have.contains_key(id),
                "acknowledged removal of {id} undone"
            ),
        }
    }
}

#[test]
fn a_second_registry_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let _first = common::registry_on(dir.path(), &[]);
    let out = std::process::Command::new(common::bin())
        .args([
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--data",
            dir.path().to_str().unwrap(),
        ])
        .env("NETGET_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another registry"), "{err}");
}

#[test]
fn a_corrupt_store_gives_a_clear_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(STORE_FILE);
    let garbage: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &garbage).unwrap();
    let out = std::process::Command::new(common::bin())
        .args([
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--data",
            dir.path().to_str().unwrap(),
        ])
        .env("NETGET_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a corrupt store must not start (empty or otherwise)"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(STORE_FILE) && err.contains("NETGET_IO"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        garbage,
        "the corrupt file is not touched"
    );
}

type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = netget::Result<()>> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_churn_keeps_the_store_file_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let instance = |i: usize| {
        netget::Instance::from_registration(
            NetworkName::new("development").unwrap(),
            ServiceName::new("churn").unwrap(),
            InstanceId::new(&format!("c{i}")).unwrap(),
            Registration {
                address: format!("http://127.0.0.1:{}/{}", i % 60000, "x".repeat(100)),
                ..Default::default()
            },
            "r",
        )
    };
    let mut sizes = Vec::new();
    for round in 0..10 {
        // 10,000 register/deregister cycles per round, 256 in flight (group commit).
        let mut pending = Vec::new();
        for i in round * 10_000..(round + 1) * 10_000 {
            let inst = instance(i);
            pending.push(Box::pin(store.put_rest(&inst, None, None)) as Pending);
            pending.push(Box::pin(store.delete_rest(&inst)) as Pending);
            if pending.len() >= 512 {
                for p in pending.drain(..) {
                    p.await.unwrap();
                }
            }
        }
        for p in pending.drain(..) {
            p.await.unwrap();
        }
        sizes.push(
            std::fs::metadata(dir.path().join(STORE_FILE))
                .unwrap()
                .len(),
        );
    }
    let (early, last) = (sizes[1], *sizes.last().unwrap());
    assert!(
        last <= early.max(1 << 20) * 2,
        "100k cycles grew the file from {early} to {last} bytes: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_commits_writes_and_their_durations_are_on_metrics() {
    let (registry, _dir) = common::registry().await;
    let rest = RestClient::new(&registry.url()).unwrap();
    let names = [
        "netget_store_writes_total",
        "netget_store_commits_total",
        "netget_store_commit_duration_seconds_count",
        "netget_store_commit_duration_seconds_sum",
    ];
    let scrape = || async {
        let text = rest.metrics().await.unwrap();
        names.map(|name| {
            netget::client::rest::metric_value(&text, name)
                .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
        })
    };
    let before = scrape().await;
    for i in 0..3 {
        rest.register(
            "development",
            "stored",
            &format!("s{i}"),
            &reg("http://127.0.0.1:1"),
        )
        .await
        .unwrap();
    }
    rest.deregister("development", "stored", "s0")
        .await
        .unwrap();
    let after = scrape().await;
    let moved: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // Each acknowledged write was committed before its answer; one at a time, one commit each.
    assert_eq!(moved[..3], [4.0, 4.0, 4.0], "{names:?}");
    assert!(moved[3] > 0.0, "commit time adds up");
    registry.shutdown().await.unwrap();
}
