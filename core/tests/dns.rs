//! The DNS front end, asked by `dig` (Debian's bind9-dnsutils) as any resolver would: real
//! registry processes with `--dns-listen 127.0.0.1:0`, REST registrations, and what dig prints.
//! Waits are for a condition, bounded; every process is a guarded child.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{durable, ChildGuard};
use netget::client::rest::RestClient;
use netget::model::{HealthCheck, Registration, WireDuration};

/// A registry process answering DNS on a port the OS picks, with `config` as its netget.toml;
/// and that port.
fn dns_registry(data: &Path, config: &str, extra: &[&str]) -> (ChildGuard, u16) {
    std::fs::create_dir_all(data).unwrap();
    let file = data.join("netget.toml");
    std::fs::write(&file, config).unwrap();
    let mut args = vec![
        "--config",
        file.to_str().unwrap(),
        "--dns-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let g = common::registry_on(data, &args);
    let line = g
        .next_line(Duration::from_secs(10))
        .expect("the registry printed no DNS line");
    let port = line
        .split("answering on 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no DNS port in {line:?}"));
    (g, port)
}

/// `dig @127.0.0.1 -p PORT NAME TYPE +short` (or with other options), its lines.
fn dig(port: u16, name: &str, qtype: &str, opts: &[&str]) -> Vec<String> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), name, qtype])
        .args(["+time=2", "+tries=1"])
        .args(opts)
        .output()
        .expect("dig is installed (bind9-dnsutils)");
    assert!(
        out.status.success(),
        "dig {name} {qtype}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn short(port: u16, name: &str, qtype: &str) -> BTreeSet<String> {
    dig(port, name, qtype, &["+short"]).into_iter().collect()
}

/// The response code dig reports (`NOERROR`, `NXDOMAIN`, `REFUSED`…).
fn status(port: u16, name: &str, qtype: &str) -> String {
    dig(port, name, qtype, &["+noall", "+comments"])
        .iter()
        .find_map(|l| {
            l.split("status: ")
                .nth(1)
                .map(|s| s.split(',').next().unwrap_or("").to_string())
        })
        .unwrap_or_default()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn register(url: &str, network: &str, name: &str, id: &str, reg: Registration) {
    RestClient::new(url)
        .unwrap()
        .register(network, name, id, &reg)
        .await
        .unwrap();
}

fn tagged(address: &str, tags: &[&str], version: &str) -> Registration {
    Registration {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        version: Some(version.into()),
        weight: Some(7),
        ..durable(address)
    }
}

const CONFIG: &str = r#"
[[network]]
name = "development"
policy = "open"

[[network]]
name = "production"
policy = "token"
tokens = ["prod-token"]

[dns]
ttl = "1s"
consul = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_finds_healthy_instances_by_name_tag_and_srv_and_nothing_for_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, port) = dns_registry(dir.path(), CONFIG, &[]);
    register(
        &reg.url,
        "development",
        "web",
        "a",
        tagged("http://10.0.0.5:8080", &["v1", "blue"], "1.2.0"),
    )
    .await;
    register(
        &reg.url,
        "development",
        "web",
        "b",
        tagged("http://10.0.0.6:8081", &["v2"], "2.0.0"),
    )
    .await;
    register(
        &reg.url,
        "development",
        "web",
        "c",
        tagged("http://[fd00::7]:8082", &["v1"], "1.2.0"),
    )
    .await;
    register(
        &reg.url,
        "development",
        "db",
        "x",
        durable("db.internal:5432"),
    )
    .await;
    // Critical from its first probe on: nothing listens on port 1.
    let failing = Registration {
        health: Some(HealthCheck {
            tcp: Some("127.0.0.1:1".into()),
            interval: Some(WireDuration(Duration::from_millis(200))),
            ..Default::default()
        }),
        ..durable("http://10.0.0.9:8080")
    };
    register(&reg.url, "development", "web", "sick", failing).await;
    RestClient::new(&reg.url)
        .unwrap()
        .token(Some("prod-token".into()))
        .register("production", "secret", "s", &durable("http://10.9.9.9:80"))
        .await
        .unwrap();

    let left_out = common::wait_until(Duration::from_secs(10), || async {
        !short(port, "web.development.netget", "A").contains("10.0.0.9")
    })
    .await;
    assert!(
        left_out.is_some(),
        "the critical instance is still answered"
    );

    // A and AAAA: the healthy instances' hosts, case-insensitive names.
    assert_eq!(
        short(port, "web.development.netget", "A"),
        set(["10.0.0.5", "10.0.0.6"])
    );
    assert_eq!(
        short(port, "WEB.Development.NetGet.", "A"),
        set(["10.0.0.5", "10.0.0.6"])
    );
    assert_eq!(
        short(port, "web.development.netget", "AAAA"),
        set(["fd00::7"])
    );
    // A tag in front filters.
    assert_eq!(
        short(port, "v1.web.development.netget", "A"),
        set(["10.0.0.5"])
    );
    assert_eq!(
        short(port, "v2.web.development.netget", "A"),
        set(["10.0.0.6"])
    );
    // SRV: priority, the instance's weight, its port, and a target that resolves to its host.
    let srv = short(port, "_web._tcp.development.netget", "SRV");
    assert_eq!(
        srv,
        set([
            "1 7 8080 0a000005.addr.development.netget.",
            "1 7 8081 0a000006.addr.development.netget.",
            "1 7 8082 fd000000000000000000000000000007.addr.development.netget.",
        ])
    );
    assert_eq!(
        short(port, "0a000005.addr.development.netget", "A"),
        set(["10.0.0.5"])
    );
    // The SRV answer carries the targets' addresses too, so one query is enough.
    let full = dig(
        port,
        "web.development.netget",
        "SRV",
        &["+noall", "+additional"],
    );
    assert!(
        full.iter()
            .any(|l| l.contains("0a000006.addr") && l.contains("10.0.0.6")),
        "{full:?}"
    );
    // TXT: id, address, version, tags.
    let txt = short(port, "v2.web.development.netget", "TXT");
    assert_eq!(
        txt,
        set([r#""id=b" "address=http://10.0.0.6:8081" "version=2.0.0" "tags=v2""#])
    );
    // A hostname address answers a CNAME.
    assert_eq!(
        short(port, "db.development.netget", "A"),
        set(["db.internal."])
    );
    assert_eq!(
        short(port, "db.development.netget", "SRV"),
        set(["1 1 5432 db.internal."])
    );
    // Consul's names, when configured.
    assert_eq!(
        short(port, "web.service.consul", "A"),
        set(["10.0.0.5", "10.0.0.6"])
    );
    assert_eq!(
        short(port, "v1.web.service.development.consul", "A"),
        set(["10.0.0.5"])
    );
    // Over TCP too.
    let tcp: BTreeSet<String> = dig(port, "web.development.netget", "A", &["+short", "+tcp"])
        .into_iter()
        .collect();
    assert_eq!(tcp, set(["10.0.0.5", "10.0.0.6"]));

    // Unknown names: NXDOMAIN; a known name without records of the type: NOERROR, no answer.
    assert_eq!(status(port, "nope.development.netget", "A"), "NXDOMAIN");
    assert_eq!(status(port, "web.nowhere.netget", "A"), "NXDOMAIN");
    assert_eq!(status(port, "v9.web.development.netget", "A"), "NXDOMAIN");
    assert_eq!(status(port, "web.development.netget", "MX"), "NOERROR");
    assert!(short(port, "web.development.netget", "MX").is_empty());
    // Names outside its zones are not its to answer.
    assert_eq!(status(port, "example.com", "A"), "REFUSED");
    // A network with a token policy is not served over DNS, which carries no token.
    assert_eq!(status(port, "secret.production.netget", "A"), "REFUSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_answered_within_the_ttl_and_the_order_is_randomised() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, port) = dns_registry(dir.path(), CONFIG, &[]);
    for i in 1..=8 {
        register(
            &reg.url,
            "development",
            "api",
            &format!("i{i}"),
            durable(&format!("http://10.1.0.{i}:80")),
        )
        .await;
    }
    // The TTL of the answer is the configured one.
    let answer = dig(port, "api.development.netget", "A", &["+noall", "+answer"]);
    assert!(
        answer
            .iter()
            .all(|l| l.split_whitespace().nth(1) == Some("1")),
        "{answer:?}"
    );
    // Eight addresses: the order of some of ten answers differs.
    let orders: BTreeSet<Vec<String>> = (0..10)
        .map(|_| dig(port, "api.development.netget", "A", &["+short"]))
        .collect();
    assert!(orders.len() > 1, "always the same order: {orders:?}");

    // A new instance and a removed one, seen within the TTL (1 s) plus a margin.
    register(
        &reg.url,
        "development",
        "api",
        "i9",
        durable("http://10.1.0.9:80"),
    )
    .await;
    RestClient::new(&reg.url)
        .unwrap()
        .deregister("development", "api", "i1")
        .await
        .unwrap();
    let seen = common::wait_until(Duration::from_secs(3), || async {
        let a = short(port, "api.development.netget", "A");
        a.contains("10.1.0.9") && !a.contains("10.1.0.1")
    })
    .await;
    assert!(
        seen.is_some(),
        "{:?}",
        short(port, "api.development.netget", "A")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_registry_of_a_cluster_answers_for_what_the_first_holds() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (r1, _) = dns_registry(dirs[0].path(), CONFIG, &["--gossip-listen", "127.0.0.1:0"]);
    let (_r2, port2) = dns_registry(dirs[1].path(), CONFIG, &["--join", &r1.url]);
    register(
        &r1.url,
        "development",
        "orders",
        "o1",
        durable("http://10.2.0.1:9000"),
    )
    .await;
    let replicated = common::wait_until(Duration::from_secs(20), || async {
        short(port2, "orders.development.netget", "A") == set(["10.2.0.1"])
    })
    .await;
    assert!(
        replicated.is_some(),
        "{:?}",
        short(port2, "orders.development.netget", "A")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_that_is_not_open_is_served_over_dns_only_when_the_config_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG.replace(
        "consul = true",
        "consul = true\nnetworks = [\"production\"]",
    );
    let (reg, port) = dns_registry(dir.path(), &config, &[]);
    let rest = RestClient::new(&reg.url)
        .unwrap()
        .token(Some("prod-token".into()));
    rest.register("production", "secret", "s", &durable("http://10.9.9.9:80"))
        .await
        .unwrap();
    assert_eq!(
        short(port, "secret.production.netget", "A"),
        set(["10.9.9.9"])
    );
}
