//! The `netget` CLI end to end against a registry process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `netget ARGS…` to completion (bounded to 20 s) and returns its output.
fn netget(args: &[&str]) -> Output {
    let mut child = Command::new(common::bin())
        .args(args)
        .env("NETGET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("netget {args:?} did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn ok(args: &[&str]) -> String {
    let o = netget(args);
    assert!(
        o.status.success(),
        "netget {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "registry",
        "register",
        "deregister",
        "discover",
        "services",
        "watch",
        "keygen",
        "demo",
        "bench",
    ] {
        let out = ok(&[cmd, "--help"]);
        assert!(out.contains("Usage: netget"), "{cmd}: {out}");
    }
    assert!(ok(&["--help"]).contains("discover"));
    let o = netget(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn register_discover_services_watch_deregister_through_the_cli() {
    let registry = common::spawn_registry(&[]);
    let r = registry.url.as_str();

    let out = ok(&[
        "register",
        "web",
        "--address",
        "http://127.0.0.1:8080",
        "--tag",
        "v1",
        "--meta",
        "zone=a",
        "--service-version",
        "1.2.0",
        "--registry",
        r,
        "--json",
    ]);
    let inst: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inst["name"], "web");
    assert_eq!(inst["metadata"]["zone"], "a");
    assert_eq!(inst["version"], "1.2.0");
    let id = inst["id"].as_str().unwrap().to_string();

    // A watcher started now sees the existing instance first.
    let watcher = common::spawn_netget(&["watch", "web", "--json", "--registry", r]);
    let first: serde_json::Value = serde_json::from_str(&watcher.first_line).unwrap();
    assert_eq!(first["type"], "up");
    assert_eq!(first["instance"]["id"], id.as_str());

    let disc: serde_json::Value =
        serde_json::from_str(&ok(&["discover", "web", "--json", "--registry", r])).unwrap();
    assert_eq!(disc["instances"].as_array().unwrap().len(), 1);
    assert_eq!(disc["instances"][0]["address"], "http://127.0.0.1:8080");
    let human = ok(&["discover", "web", "--registry", r]);
    assert!(
        human.contains("http://127.0.0.1:8080") && human.contains("passing"),
        "{human}"
    );
    let none: serde_json::Value = serde_json::from_str(&ok(&[
        "discover",
        "web",
        "--tag",
        "v9",
        "--json",
        "--registry",
        r,
    ]))
    .unwrap();
    assert!(none["instances"].as_array().unwrap().is_empty());

    let svcs: serde_json::Value =
        serde_json::from_str(&ok(&["services", "--json", "--registry", r])).unwrap();
    assert_eq!(svcs["services"][0]["name"], "web");
    assert_eq!(svcs["services"][0]["instances"], 1);
    assert!(ok(&["services", "--registry", r]).contains("web"));

    assert!(ok(&["deregister", "web", &id, "--registry", r]).contains("deregistered"));
    let after: serde_json::Value =
        serde_json::from_str(&ok(&["discover", "web", "--json", "--registry", r])).unwrap();
    assert!(after["instances"].as_array().unwrap().is_empty());
    drop(watcher);
}

#[test]
fn client_commands_fail_with_the_registry_error_code() {
    let registry = common::spawn_registry(&[]);
    let o = netget(&[
        "discover",
        "web",
        "--network",
        "staging",
        "--registry",
        &registry.url,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("NETGET_UNKNOWN_NETWORK"), "{err}");
    let o = netget(&["deregister", "web", "nope", "--registry", &registry.url]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("NETGET_NOT_FOUND"));
    let o = netget(&[
        "register",
        "bad name",
        "--address",
        "x:1",
        "--registry",
        &registry.url,
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("NETGET_INVALID_INPUT"));
    // Nothing listening: unreachable, not a hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = netget(&[
        "services",
        "--registry",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("NETGET_UNREACHABLE"));
}

#[test]
fn registry_stops_cleanly_on_sigterm() {
    let mut registry = common::spawn_registry(&[]);
    let _held = common::spawn_netget(&[
        "register",
        "svc",
        "--address",
        "http://127.0.0.1:1",
        "--hold",
        "--registry",
        &registry.url,
    ]);
    registry.signal("TERM");
    let status = registry
        .wait_exit(Duration::from_secs(10))
        .expect("registry did not exit on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn keygen_writes_a_key_file_a_node_can_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    let out = ok(&["keygen", "--out", path.to_str().unwrap()]);
    let key = netget::NodeKey::load(&path).unwrap();
    assert!(out.contains(&key.public_key()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn a_held_registration_keeps_its_id_across_restarts_with_the_same_key() {
    let registry = common::spawn_registry(&[]);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("n.key");
    ok(&["keygen", "--out", key.to_str().unwrap()]);
    let args = [
        "register",
        "keyed",
        "--address",
        "http://127.0.0.1:9",
        "--hold",
        "--json",
        "--key",
        key.to_str().unwrap(),
        "--registry",
        &registry.url,
    ];
    let first = common::spawn_netget(&args);
    let a: serde_json::Value = serde_json::from_str(&first.first_line).unwrap();
    drop(first);
    let second = common::spawn_netget(&args);
    let b: serde_json::Value = serde_json::from_str(&second.first_line).unwrap();
    assert_eq!(
        a["id"], b["id"],
        "same key, name and address: same instance id"
    );
}

#[test]
fn the_demo_runs_the_main_job_end_to_end() {
    let out = ok(&["demo"]);
    assert!(
        out.contains("client discovered 2 greeter instance(s)"),
        "{out}"
    );
    assert!(out.contains("watcher saw: down"), "{out}");
    assert!(out.contains("greeter instances now: 1"), "{out}");
}

#[test]
fn a_registry_from_a_config_file_enforces_its_token_policy_on_cli_clients() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("netget.toml");
    std::fs::write(
        &config,
        "[[network]]\nname = \"development\"\n\n[[network]]\nname = \"production\"\npolicy = \"token\"\ntokens_env = \"TEST_PROD_TOKENS\"\n",
    )
    .unwrap();
    let mut child = Command::new(common::bin())
        .args([
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--data",
        ])
        .arg(dir.path().join("data"))
        .env("TEST_PROD_TOKENS", "cli-secret-token")
        .env("NETGET_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    assert!(line.contains("production (token)"), "{line}");

    let o = netget(&[
        "register",
        "api",
        "--address",
        "http://127.0.0.1:1",
        "--network",
        "production",
        "--registry",
        &url,
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("NETGET_UNAUTHORIZED"));
    ok(&[
        "register",
        "api",
        "--address",
        "http://127.0.0.1:1",
        "--network",
        "production",
        "--token",
        "cli-secret-token",
        "--registry",
        &url,
    ]);
    let out = Command::new(common::bin())
        .args([
            "discover",
            "api",
            "--json",
            "--network",
            "production",
            "--registry",
            &url,
        ])
        .env("NETGET_TOKEN", "cli-secret-token")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["instances"].as_array().unwrap().len(), 1);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_bad_config_file_stops_the_registry_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("netget.toml");
    std::fs::write(
        &config,
        "[[network]]\nname = \"production\"\npolicy = \"token\"\n",
    )
    .unwrap();
    let o = netget(&[
        "registry",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NETGET_INVALID_INPUT") && err.contains("no tokens"),
        "{err}"
    );
}

#[test]
fn the_cli_speaks_tls_with_a_given_ca() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::make_pki(pki.path());
    let registry = common::spawn_registry(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let url = registry.url.clone();
    assert!(url.starts_with("https://"), "{url}");
    ok(&[
        "register",
        "tls-web",
        "--address",
        "https://127.0.0.1:1",
        "--registry",
        &url,
        "--ca",
        ca.to_str().unwrap(),
    ]);
    let out = ok(&["services", "--registry", &url, "--ca", ca.to_str().unwrap()]);
    assert!(out.contains("tls-web"), "{out}");
    let o = netget(&["services", "--registry", &url]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NETGET_UNREACHABLE") && err.contains("certificate"),
        "{err}"
    );
}
