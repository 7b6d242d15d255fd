//! The `netget` CLI end to end against a registry process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `netget ARGS…` to completion (bounded to 20 s) and returns its output.
fn netget(args: &[&str]) -> Output {
    netget_with_env(args, &[])
}

/// The same with environment variables set (`Some`) or removed (`None`).
fn netget_with_env(args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut command = Command::new(common::bin());
    command.args(args).env("NETGET_LOG", "warn");
    for (name, value) in env {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
    let mut child = command
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

/// The value of every series of `name` in OpenMetrics `text`, summed over their labels.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum()
}

/// Runs `f` with a client of the registry at `url` on a runtime of its own (these tests are
/// synchronous: they drive processes).
fn with_rest<T>(url: &str, f: impl AsyncFnOnce(netget::client::rest::RestClient) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rest = netget::client::rest::RestClient::new(url).unwrap();
    runtime.block_on(f(rest))
}

#[test]
fn a_service_name_with_a_space_is_refused_under_the_name_given() {
    let registry = common::spawn_registry(&[]);
    let r = registry.url.as_str();
    for args in [
        &[
            "register",
            "my web",
            "--address",
            "http://127.0.0.1:1",
            "--registry",
            r,
        ][..],
        &["discover", "my web", "--registry", r][..],
    ] {
        let o = netget(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("NETGET_INVALID_INPUT") && err.contains("\"my web\""),
            "{args:?}: {err}"
        );
        assert!(!err.contains("my+web"), "{args:?}: {err}");
    }
}

#[test]
fn watch_prints_a_down_event_without_a_status() {
    let registry = common::spawn_registry(&[]);
    let r = registry.url.as_str();
    let inst: serde_json::Value = serde_json::from_str(&ok(&[
        "register",
        "web",
        "--address",
        "http://127.0.0.1:8080",
        "--registry",
        r,
        "--json",
    ]))
    .unwrap();
    let id = inst["id"].as_str().unwrap();
    let watcher = common::spawn_netget(&["watch", "web", "--registry", r]);
    assert!(
        watcher.first_line.starts_with("up") && watcher.first_line.contains("passing"),
        "{}",
        watcher.first_line
    );
    ok(&["deregister", "web", id, "--registry", r]);
    let down = watcher
        .next_line(Duration::from_secs(10))
        .expect("no down event within 10 s");
    assert!(
        down.starts_with("down") && down.contains(id) && down.contains("http://127.0.0.1:8080"),
        "{down}"
    );
    assert!(!down.contains("passing"), "{down}");
}

#[test]
fn a_held_registration_counts_once_in_the_metrics() {
    let registry = common::spawn_registry(&[]);
    let held = common::spawn_netget(&[
        "register",
        "held",
        "--address",
        "http://127.0.0.1:1",
        "--hold",
        "--registry",
        &registry.url,
    ]);
    assert!(
        held.first_line.contains("registered held"),
        "{}",
        held.first_line
    );
    let metrics = with_rest(&registry.url, async |rest| rest.metrics().await.unwrap());
    assert_eq!(
        metric_sum(&metrics, "netget_registrations_total"),
        1.0,
        "{metrics}"
    );
}

#[test]
fn discover_json_lays_out_nested_metadata_over_indented_lines() {
    let registry = common::spawn_registry(&[]);
    let r = registry.url.as_str();
    let metadata = serde_json::json!({"zone": "a", "limits": {"cpu": 2, "regions": ["eu", "us"]}});
    with_rest(r, async |rest| {
        let reg: netget::Registration = serde_json::from_value(serde_json::json!({
            "address": "http://127.0.0.1:8080", "metadata": metadata.clone(),
        }))
        .unwrap();
        rest.register("development", "web", "w1", &reg)
            .await
            .unwrap();
    });
    let out = ok(&["discover", "web", "--json", "--registry", r]);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["instances"][0]["metadata"], metadata);
    // Nothing is left compact: every key starts a line of its own.
    for compact in ["{\"", "[\"", ",\"", "\":\"", "\":{", "\":["] {
        assert!(!out.contains(compact), "{compact} in {out}");
    }
    let indent = |key: &str| {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no line starting with {key} in {out}"));
        line.len() - line.trim_start().len()
    };
    assert!(indent("\"metadata\": {") < indent("\"limits\": {"), "{out}");
    assert!(indent("\"limits\": {") < indent("\"cpu\": 2"), "{out}");
    assert!(indent("\"cpu\": 2") < indent("\"eu\""), "{out}");
}

#[test]
fn a_registry_logging_to_a_file_writes_no_colour_codes_or_options() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("registry.log");
    let mut child = Command::new(common::bin())
        .args(["registry", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .env("NETGET_LOG", "netget=info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let _stop = KillOnDrop(&mut child);
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains("registry listening") {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "no \"registry listening\" within 15 s: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!log.contains("\x1b["), "{log:?}");
    assert!(!log.contains("Some("), "{log}");
    assert!(log.contains("addr=127.0.0.1:"), "{log}");
}

/// Kills and reaps a child process when dropped, so a failing assertion leaves nothing behind.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_names_env_variables_without_their_values() {
    let unset = [("NETGET_REGISTRY", None), ("NETGET_TOKEN", None)];
    let set = [
        ("NETGET_REGISTRY", Some("https://secret-registry.example:1")),
        ("NETGET_TOKEN", Some("secret-token")),
    ];
    for env in [&unset[..], &set[..]] {
        let o = netget_with_env(&["discover", "--help"], env);
        assert!(o.status.success(), "{env:?}");
        let help = stdout(&o);
        for name in ["NETGET_REGISTRY", "NETGET_TOKEN"] {
            assert!(help.contains(&format!("[env: {name}]")), "{env:?}: {help}");
            assert!(!help.contains(&format!("{name}=")), "{env:?}: {help}");
        }
        assert!(!help.contains("secret"), "{env:?}: {help}");
    }
}

#[test]
fn https_to_a_plain_registry_says_to_use_http() {
    let registry = common::spawn_registry(&[]);
    let plain = registry.url.clone();
    let https = plain.replacen("http://", "https://", 1);
    for args in [
        &["discover", "web", "--registry", https.as_str()][..],
        &["watch", "web", "--registry", https.as_str()][..],
    ] {
        let o = netget(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("NETGET_UNREACHABLE")
                && err.contains(&format!(
                    "the registry at {https} answered in plain HTTP, not TLS: use {plain}"
                )),
            "{args:?}: {err}"
        );
    }
}
