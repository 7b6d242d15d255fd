//! Fault injection with real registry processes (RELIABILITY.md): a cluster member killed with
//! SIGKILL under load, service nodes killed by the hundred, a registry frozen with SIGSTOP past
//! the liveness bound. Each waits for what it checks with a bound, never for a fixed time, and
//! every process it starts is a guarded child, killed and reaped when the test ends or fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{durable, ChildGuard};
use hyper::Method;
use netget::client::rest::RestClient;
use netget::model::Registration;
use netget::{DiscoverOptions, Netget, NetgetOptions};

/// A registry process on loopback port 0 over `data`, with `extra` flags.
fn registry_on(data: &Path, extra: &[&str]) -> ChildGuard {
    let mut args = vec!["--session-timeout", "2s"];
    args.extend_from_slice(extra);
    common::registry_on(data, &args)
}

async fn get_json(url: &str, path: &str) -> Option<serde_json::Value> {
    let bytes = RestClient::new(url)
        .ok()?
        .send(Method::GET, path, None)
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether `url`'s registry sees `n` registries, every one live and serving the whole directory.
async fn cluster_ready(url: &str, n: usize) -> bool {
    let Some(c) = get_json(url, "/v1/cluster").await else {
        return false;
    };
    let members = c["members"].as_array().cloned().unwrap_or_default();
    members.len() == n
        && members
            .iter()
            .all(|m| m["live"] == true && m["ready"] == true)
}

/// The registry's whole directory of `development`: `service/id` → `address owner status`.
/// `None` while the registry does not answer.
async fn dump(url: &str) -> Option<BTreeMap<String, String>> {
    let rest = RestClient::new(url).ok()?;
    let mut all = BTreeMap::new();
    for s in rest.services("development").await.ok()? {
        let d = rest
            .discover("development", s.name.as_str(), false, &[])
            .await
            .ok()?;
        for i in d.instances {
            all.insert(
                format!("{}/{}", i.name, i.id),
                format!("{} {} {:?}", i.address, i.registry, i.status),
            );
        }
    }
    Some(all)
}

/// The ids of `service` that `url`'s registry holds (empty while it does not answer).
async fn ids_of(url: &str, service: &str) -> BTreeSet<String> {
    let Ok(rest) = RestClient::new(url) else {
        return BTreeSet::new();
    };
    match rest.discover("development", service, false, &[]).await {
        Ok(d) => d.instances.iter().map(|i| i.id.to_string()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

async fn registry_id(url: &str) -> String {
    let c = get_json(url, "/v1/cluster").await.unwrap();
    c["registryId"].as_str().unwrap().to_string()
}

/// Whether `node`'s session is with the registry at `url` (`http://HOST:PORT`).
fn connected_to(node: &Netget, url: &str) -> bool {
    let host = url.trim_start_matches("http://");
    node.connected_to().is_some_and(|c| {
        c.trim_start_matches("ws://")
            .starts_with(&format!("{host}/"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_member_killed_under_load_fails_over_and_loses_no_acknowledged_write() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let keys = tempfile::tempdir().unwrap();
    let mut r1 = registry_on(dirs[0].path(), &["--gossip-listen", "127.0.0.1:0"]);
    let r2 = registry_on(dirs[1].path(), &["--join", &r1.url]);
    let r3 = registry_on(dirs[2].path(), &["--join", &r1.url]);
    let urls = [r1.url.clone(), r2.url.clone(), r3.url.clone()];
    for u in &urls {
        let ready = common::wait_until(Duration::from_secs(20), || cluster_ready(u, 3)).await;
        assert!(
            ready.is_some(),
            "{u}: {:?}",
            get_json(u, "/v1/cluster").await
        );
    }

    // 12 service nodes on sessions, spread over the three registries.
    let all: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut nodes = Vec::new();
    for i in 0..12 {
        let mut o = NetgetOptions::service("web", &format!("http://10.1.0.{i}:80"), &all);
        o.data_dir = Some(keys.path().join(format!("node-{i}")));
        let n = Netget::new(o).unwrap();
        n.register_with_network().await.unwrap();
        nodes.push(n);
    }
    let on_r1 = nodes.iter().filter(|n| connected_to(n, &r1.url)).count();
    assert!(on_r1 > 0, "no node chose the registry to be killed");

    // Load: durable REST writes to r1, and discovery through a client of the cluster.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (acked, url) = (acked.clone(), r1.url.clone());
        tokio::spawn(async move {
            let rest = RestClient::new(&url).unwrap();
            for i in 0..100_000u32 {
                let id = format!("d{i}");
                match rest
                    .register("development", "db", &id, &durable("10.2.0.1:5432"))
                    .await
                {
                    Ok(_) => acked.lock().unwrap().push(id),
                    Err(_) => return,
                }
            }
        })
    };
    // The client asks r1 first, so the kill hits it mid-query.
    let mut o = NetgetOptions::client(&all);
    o.in_order = true;
    let client = Netget::new(o).unwrap();
    let reads = Arc::new(Mutex::new(Vec::<(Instant, bool)>::new()));
    let reader = {
        let (reads, client) = (reads.clone(), client.clone());
        tokio::spawn(async move {
            // Each query asks a registry (not the client's cache), so failover shows.
            let fresh = DiscoverOptions {
                cached: false,
                ..Default::default()
            };
            for _ in 0..1_000_000u32 {
                let ok = client.discover_service_nodes("web", &fresh).await.is_ok();
                reads.lock().unwrap().push((Instant::now(), ok));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let some = common::wait_until(Duration::from_secs(20), || async {
        acked.lock().unwrap().len() >= 200
    })
    .await;
    assert!(some.is_some(), "the writer got nowhere");

    r1.signal("KILL");
    let killed = Instant::now();
    r1.wait_exit(Duration::from_secs(5))
        .expect("r1 did not die");
    writer.await.unwrap();
    let acked: Vec<String> = acked.lock().unwrap().clone();

    // Every node is back in the survivors' directories, and discovery works again on its own.
    for u in &urls[1..] {
        let back = common::wait_until(Duration::from_secs(20), || async {
            ids_of(u, "web").await.len() == 12
        })
        .await;
        assert!(back.is_some(), "{u}: {:?}", ids_of(u, "web").await);
    }
    let resumed = common::wait_until(Duration::from_secs(20), || async {
        reads
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(20)
            .filter(|(at, ok)| *at > killed && *ok)
            .count()
            == 20
    })
    .await;
    reader.abort();
    assert!(resumed.is_some(), "discovery did not recover by itself");
    let reads = reads.lock().unwrap().clone();
    let failed: Vec<_> = reads.iter().filter(|(_, ok)| !ok).collect();
    if let Some(first) = failed.first() {
        assert!(
            first.0 > killed,
            "a discovery failed before anything was killed"
        );
    }
    eprintln!(
        "killed r1 with {on_r1} nodes and {} acknowledged writes: {} of {} discoveries failed, the last {:?} after the kill",
        acked.len(),
        failed.len(),
        reads.len(),
        failed.last().map(|(at, _)| *at - killed)
    );

    // Every acknowledged durable write: adopted by the survivors while r1 is down (all that
    // reached them), and all of it once r1 is back on its data dir; each once, everywhere.
    let adopted = ids_of(&urls[1], "db").await;
    let r1 = registry_on(dirs[0].path(), &["--join", &urls[1]]);
    let urls = [r1.url.clone(), urls[1].clone(), urls[2].clone()];
    let want: BTreeSet<String> = acked.iter().cloned().collect();
    for u in &urls {
        let all_there = common::wait_until(Duration::from_secs(30), || async {
            want.is_subset(&ids_of(u, "db").await)
        })
        .await;
        let have = ids_of(u, "db").await;
        assert!(
            all_there.is_some(),
            "{u} lacks {:?}",
            want.difference(&have).take(5).collect::<Vec<_>>()
        );
    }
    let same = common::wait_until(Duration::from_secs(20), || async {
        let a = dump(&urls[0]).await;
        a.is_some() && a == dump(&urls[1]).await && a == dump(&urls[2]).await
    })
    .await;
    assert!(same.is_some(), "the registries do not converge");
    eprintln!(
        "{} of {} acknowledged writes were adopted while their registry was down",
        adopted.intersection(&want).count(),
        want.len()
    );
    for n in &nodes {
        n.stop().await.unwrap();
    }
    drop((r1, r2, r3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_nodes_killed_by_the_hundred_vanish_within_the_liveness_bound_and_no_other_does() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry_on(&dir.path().join("registry"), &[]);
    let home = dir.path().join("home");
    let mut nodes: Vec<ChildGuard> = Vec::new();
    for i in 0..200 {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.env("XDG_DATA_HOME", &home).args([
            "register",
            "web",
            "--hold",
            "--registry",
            &reg.url,
            "--id",
            &format!("n{i}"),
            "--address",
            &format!("http://10.3.{}.{}:80", i / 250, i % 250),
        ]);
        let g = common::spawn_command(cmd, &["register --hold", &i.to_string()]);
        assert!(
            g.first_line.starts_with("registered web"),
            "{}",
            g.first_line
        );
        nodes.push(g);
    }
    assert_eq!(ids_of(&reg.url, "web").await.len(), 200);

    // Every other node dies at once, without a word.
    let killed = Instant::now();
    for n in nodes.iter().step_by(2) {
        n.signal("KILL");
    }
    let survivors: BTreeSet<String> = (0..200)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("n{i}"))
        .collect();
    // A killed process's socket is closed by its kernel, so the registry need not even wait
    // for the liveness timeout (2 s here); that timeout, and the time to read the directory
    // back, is the bound.
    let gone = common::wait_until(Duration::from_secs(2) + Duration::from_secs(3), || async {
        ids_of(&reg.url, "web").await == survivors
    })
    .await;
    let left = ids_of(&reg.url, "web").await;
    assert!(
        gone.is_some(),
        "{} left, {:?} wrongly gone",
        left.len(),
        survivors.difference(&left).take(5).collect::<Vec<_>>()
    );
    let took = killed.elapsed();
    eprintln!("100 killed nodes vanished in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_frozen_past_the_liveness_bound_then_resumed_leaves_no_duplicate_or_ghost() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let keys = tempfile::tempdir().unwrap();
    let r1 = registry_on(dirs[0].path(), &["--gossip-listen", "127.0.0.1:0"]);
    let r2 = registry_on(dirs[1].path(), &["--join", &r1.url]);
    for u in [&r1.url, &r2.url] {
        let ready = common::wait_until(Duration::from_secs(20), || cluster_ready(u, 2)).await;
        assert!(
            ready.is_some(),
            "{u}: {:?}",
            get_json(u, "/v1/cluster").await
        );
    }
    let id2 = registry_id(&r2.url).await;

    // 10 nodes, all on r1 first.
    let mut nodes = Vec::new();
    for i in 0..10 {
        let mut o =
            NetgetOptions::service("web", &format!("http://10.4.0.{i}:80"), &[&r1.url, &r2.url]);
        o.in_order = true;
        o.data_dir = Some(keys.path().join(format!("node-{i}")));
        let n = Netget::new(o).unwrap();
        n.register_with_network().await.unwrap();
        assert!(connected_to(&n, &r1.url), "{:?}", n.connected_to());
        nodes.push(n);
    }
    let settled = common::wait_until(Duration::from_secs(10), || async {
        ids_of(&r2.url, "web").await.len() == 10
    })
    .await;
    assert!(settled.is_some(), "r2 did not learn r1's nodes");

    // Frozen: its nodes' sessions go silent, they fail over to r2, which takes their entries.
    r1.signal("STOP");
    let owned_by_r2 = |d: &BTreeMap<String, String>| {
        d.len() == 10
            && d.values()
                .all(|v| v.split(' ').nth(1) == Some(id2.as_str()))
    };
    let moved = common::wait_until(Duration::from_secs(20), || async {
        dump(&r2.url).await.is_some_and(|d| owned_by_r2(&d))
    })
    .await;
    assert!(moved.is_some(), "{:?}", dump(&r2.url).await);
    // Frozen past the liveness bound (2 s) as r1 sees it too: its sessions' last pings are
    // older than that once it runs again.
    let frozen_for = moved.unwrap();
    if frozen_for < Duration::from_secs(3) {
        // Bounded: waits out the rest of the bound, not for an outcome.
        tokio::time::sleep(Duration::from_secs(3) - frozen_for).await;
    }
    r1.signal("CONT");

    // Both registries agree: each node once, held by r2; nothing of r1's old sessions left.
    let agreed = common::wait_until(Duration::from_secs(20), || async {
        let (a, b) = (dump(&r1.url).await, dump(&r2.url).await);
        a.is_some() && a == b && b.as_ref().is_some_and(owned_by_r2)
    })
    .await;
    assert!(
        agreed.is_some(),
        "r1 {:?}\nr2 {:?}",
        dump(&r1.url).await,
        dump(&r2.url).await
    );
    // And it stays so while r1 catches up with whatever it had queued.
    for _ in 0..10 {
        let (a, b) = (dump(&r1.url).await, dump(&r2.url).await);
        assert!(
            a == b && b.as_ref().is_some_and(owned_by_r2),
            "r1 {a:?}\nr2 {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in &nodes {
        n.stop().await.unwrap();
    }
}

/// One raw session kept alive the way a node keeps it (a `ping` every interval it was given),
/// counting the answers it reads and noting when the registry ends it.
struct Kept {
    pongs: Arc<std::sync::atomic::AtomicU64>,
    ended: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn kept_session(url: &str, i: usize) -> Kept {
    use futures_util::StreamExt;
    use netget::client::send_message;
    use netget::wire::{ClientMessage, ServerMessage};
    use tokio_tungstenite::tungstenite::Message;
    let mut c = netget::testsuite::open(url).await.unwrap();
    send_message(
        &mut c.socket,
        &ClientMessage::Register {
            id: 1,
            name: netget::model::ServiceName::new("paused").unwrap(),
            instance_id: netget::model::InstanceId::new(&format!("p{i}")).ok(),
            instance: netget::testsuite::payload(i),
        },
    )
    .await
    .unwrap();
    let pongs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ended = Arc::new(Mutex::new(None));
    let (p, e) = (pongs.clone(), ended.clone());
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(c.welcome.ping_interval);
        let mut id = 10;
        let why = loop {
            tokio::select! {
                _ = tick.tick() => {
                    id += 1;
                    if let Err(err) = send_message(&mut c.socket, &ClientMessage::Ping { id }).await {
                        break format!("send: {err}");
                    }
                }
                frame = c.socket.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(ServerMessage::Pong { .. }) = ServerMessage::parse(&t) {
                            p.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Some(Ok(Message::Close(f))) => break format!("closed: {f:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => break format!("read: {err}"),
                    None => break "ended".to_string(),
                },
            }
        };
        *e.lock().unwrap() = Some(why);
    });
    Kept { pongs, ended, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_paused_for_less_than_the_session_timeout_reads_what_arrived_before_judging_liveness(
) {
    // A process can be paused without being dead: a VM's stolen time, swapping, a debugger, a
    // loaded machine. Its sessions' pings wait in the kernel meanwhile, and once it runs again
    // it must read them before it decides that a session went silent.
    let dir = tempfile::tempdir().unwrap();
    let reg = registry_on(dir.path(), &[]);
    let mut sessions = Vec::new();
    for i in 0..40 {
        sessions.push(kept_session(&reg.url, i).await);
    }
    let held = common::wait_until(Duration::from_secs(10), || async {
        ids_of(&reg.url, "paused").await.len() == 40
    })
    .await;
    assert!(held.is_some(), "{:?}", ids_of(&reg.url, "paused").await);

    // Paused for 1.8 s, under the 2 s session timeout; the sessions go on pinging.
    reg.signal("STOP");
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let before: Vec<u64> = sessions
        .iter()
        .map(|s| s.pongs.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    reg.signal("CONT");

    // Every session answered again after the pause (or ended): by then the registry has judged
    // each one at least once.
    let judged = common::wait_until(Duration::from_secs(10), || async {
        sessions.iter().zip(&before).all(|(s, b)| {
            s.ended.lock().unwrap().is_some()
                || s.pongs.load(std::sync::atomic::Ordering::Relaxed) > b + 1
        })
    })
    .await;
    assert!(
        judged.is_some(),
        "the registry did not answer after the pause"
    );
    let ended: Vec<String> = sessions
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.ended
                .lock()
                .unwrap()
                .clone()
                .map(|w| format!("p{i}: {w}"))
        })
        .collect();
    assert!(
        ended.is_empty(),
        "{} of 40 sessions ended: {:?}",
        ended.len(),
        &ended[..ended.len().min(5)]
    );
    assert_eq!(ids_of(&reg.url, "paused").await.len(), 40);
    for s in sessions {
        s.task.abort();
    }
}

/// Runs a command line through `sh -c`, panicking with its output when it fails.
fn sh(line: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", line])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Network namespaces and this side's veth ends made by a test, deleted when it ends (a
/// leftover end would keep its route and break the next run).
struct Namespaces {
    names: Vec<String>,
    links: Vec<String>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for link in &self.links {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", link])
                .status();
        }
        for ns in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

/// A tmpfs mounted by a test, unmounted when it ends.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A registry key made ahead, so peers can list it before the registry starts.
fn registry_key(data: &Path) -> String {
    std::fs::create_dir_all(data).unwrap();
    let key = data.join("registry.key");
    let out = std::process::Command::new(common::bin())
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.split("public key: ")
        .nth(1)
        .and_then(|k| k.split_whitespace().next())
        .unwrap_or_else(|| panic!("keygen said {text:?}"))
        .to_string()
}

/// Service nodes `{side}{i}` of `web` on the registry at `url`, registered.
async fn nodes_on(url: &str, side: char, ids: std::ops::Range<usize>, keys: &Path) -> Vec<Netget> {
    let mut nodes = Vec::new();
    for i in ids {
        let name = format!("{side}{i}");
        let mut o = NetgetOptions::service("web", &format!("http://{name}:80"), &[url]);
        o.data_dir = Some(keys.join(&name));
        let n = Netget::new(o).unwrap();
        n.register_with_network().await.unwrap();
        nodes.push(n);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_between_registries_keeps_both_sides_serving_and_heals_to_one_directory() {
    // Two hosts, A and B, in namespaces of this test: a link between them (the one cut), and
    // a link from this process to each, over which the test and its nodes reach them. Inside
    // a namespace of its own every port is free, so the registries take a fixed one.
    let tag = std::process::id();
    let (a, b) = (format!("ngA{tag}"), format!("ngB{tag}"));
    let (ra, rb) = (format!("ra{tag}"), format!("rb{tag}"));
    let _ns = Namespaces {
        names: vec![a.clone(), b.clone()],
        links: vec![ra.clone(), rb.clone()],
    };
    for line in [
        format!("ip netns add {a}"),
        format!("ip netns add {b}"),
        format!("ip -n {a} link set lo up"),
        format!("ip -n {b} link set lo up"),
        format!("ip link add ab{tag} netns {a} type veth peer name ba{tag} netns {b}"),
        format!("ip -n {a} addr add 10.77.0.1/24 dev ab{tag}"),
        format!("ip -n {b} addr add 10.77.0.2/24 dev ba{tag}"),
        format!("ip -n {a} link set ab{tag} up"),
        format!("ip -n {b} link set ba{tag} up"),
        format!("ip link add {ra} type veth peer name ar{tag} netns {a}"),
        format!("ip link add {rb} type veth peer name br{tag} netns {b}"),
        format!("ip addr add 10.78.1.1/30 dev {ra}"),
        format!("ip addr add 10.78.2.1/30 dev {rb}"),
        format!("ip -n {a} addr add 10.78.1.2/30 dev ar{tag}"),
        format!("ip -n {b} addr add 10.78.2.2/30 dev br{tag}"),
        format!("ip link set {ra} up"),
        format!("ip link set {rb} up"),
        format!("ip -n {a} link set ar{tag} up"),
        format!("ip -n {b} link set br{tag} up"),
    ] {
        sh(&line);
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        registry_key(&dir.path().join("a")),
        registry_key(&dir.path().join("b")),
    ];
    let config = dir.path().join("netget.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nkeys = [\"{}\", \"{}\"]\ngrace = \"2s\"\n",
            keys[0], keys[1]
        ),
    )
    .unwrap();
    let start = |ns: &str, side: &str, me: &str, join: Option<&str>| {
        let data = dir.path().join(side);
        let mut cmd = std::process::Command::new("ip");
        // Gossip to a cut-off peer warns on every round; errors are enough here.
        cmd.args([
            "netns",
            "exec",
            ns,
            "env",
            "NETGET_LOG=error",
            common::bin(),
            "registry",
        ]);
        cmd.args(["--config", config.to_str().unwrap()]);
        cmd.args(["--data", data.to_str().unwrap(), "--session-timeout", "2s"]);
        cmd.args(["--listen", "0.0.0.0:7700"]);
        cmd.args(["--gossip-listen", &format!("{me}:7700")]);
        cmd.args(["--advertise", &format!("http://{me}:7700")]);
        if let Some(j) = join {
            cmd.args(["--join", j]);
        } else {
            // A lone first registry gossips from the start, waiting for B.
        }
        let g = common::spawn_command(cmd, &["registry in", ns]);
        assert!(
            g.first_line.contains("listening on"),
            "{ns}: {:?}",
            g.first_line
        );
        g
    };
    let _reg_a = start(&a, "a", "10.77.0.1", None);
    let _reg_b = start(&b, "b", "10.77.0.2", Some("http://10.77.0.1:7700"));
    let (url_a, url_b) = ("http://10.78.1.2:7700", "http://10.78.2.2:7700");
    for u in [url_a, url_b] {
        let ready = common::wait_until(Duration::from_secs(30), || cluster_ready(u, 2)).await;
        assert!(
            ready.is_some(),
            "{u}: {:?}",
            get_json(u, "/v1/cluster").await
        );
        eprintln!("{u} ready after {ready:?}");
    }

    let keydir = tempfile::tempdir().unwrap();
    let mut side_a = nodes_on(url_a, 'a', 0..4, keydir.path()).await;
    let mut side_b = nodes_on(url_b, 'b', 0..4, keydir.path()).await;
    let both = common::wait_until(Duration::from_secs(10), || async {
        let d = dump(url_a).await;
        d.as_ref().is_some_and(|d| d.len() == 8) && d == dump(url_b).await
    })
    .await;
    assert!(both.is_some(), "{:?}", dump(url_a).await);

    // The cut: A and B no longer reach each other; the test still reaches both.
    sh(&format!("ip -n {a} link set ab{tag} down"));
    sh(&format!("ip -n {b} link set ba{tag} down"));
    // Both sides keep serving their own nodes: new ones register, a leaving one leaves.
    side_a.extend(nodes_on(url_a, 'a', 4..6, keydir.path()).await);
    side_b.extend(nodes_on(url_b, 'b', 4..6, keydir.path()).await);
    side_a.remove(0).stop().await.unwrap();
    let address_of = |v: &String| v.split(' ').next().unwrap_or("").to_string();
    let own = |d: &BTreeMap<String, String>, side: char| {
        d.values()
            .map(address_of)
            .filter(|a| a.starts_with(&format!("http://{side}")))
            .count()
    };
    // Each side drops the other's nodes once the other's grace (2 s) is over.
    let split = common::wait_until(Duration::from_secs(30), || async {
        let (da, db) = (dump(url_a).await, dump(url_b).await);
        da.is_some_and(|d| own(&d, 'a') == 5 && own(&d, 'b') == 0)
            && db.is_some_and(|d| own(&d, 'b') == 6 && own(&d, 'a') == 0)
    })
    .await;
    assert!(
        split.is_some(),
        "during the partition: A {:?}\nB {:?}",
        dump(url_a).await,
        dump(url_b).await
    );
    eprintln!("partitioned: each side held only its own nodes after {split:?}");

    // Healed: one directory again, every node once, each held by the registry it is on.
    sh(&format!("ip -n {a} link set ab{tag} up"));
    sh(&format!("ip -n {b} link set ba{tag} up"));
    let healed = common::wait_until(Duration::from_secs(60), || async {
        let d = dump(url_a).await;
        d.as_ref().is_some_and(|d| d.len() == 11) && d == dump(url_b).await
    })
    .await;
    assert!(
        healed.is_some(),
        "after healing: A {:?}\nB {:?}",
        dump(url_a).await,
        dump(url_b).await
    );
    eprintln!("healed: equal directories after {healed:?}");
    let d = dump(url_a).await.unwrap();
    let id_a = registry_id(url_a).await;
    for (k, v) in &d {
        let on_a = address_of(v).starts_with("http://a");
        assert_eq!(
            v.split(' ').nth(1) == Some(id_a.as_str()),
            on_a,
            "{k} is held by the wrong registry: {v}"
        );
    }
    for n in side_a.iter().chain(side_b.iter()) {
        n.stop().await.unwrap();
    }
}

/// A registration with `kib` KiB of metadata, so a small disk fills in a few hundred writes.
fn bulky(kib: usize) -> Registration {
    let mut r = durable("10.5.0.1:80");
    r.metadata.insert(
        "blob".into(),
        serde_json::Value::String("x".repeat(kib * 1024)),
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_a_code_keeps_serving_and_recovers_and_a_read_only_one_is_refused_at_start(
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=4m tmpfs '{}'",
        data.display()
    ));
    let _mount = Tmpfs(data.clone());
    let mut reg = registry_on(&data, &[]);
    let rest = RestClient::new(&reg.url).unwrap();
    let mut session = common::raw_session(&reg.url, "development").await;

    // Disk full: writes are refused with a code and a message naming the cause, once space is
    // short; reads and sessions go on.
    let filler = data.join("filler");
    sh(&format!(
        "dd if=/dev/zero of='{}' bs=64k count=40 status=none",
        filler.display()
    ));
    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..2000 {
        let id = format!("f{i}");
        match rest.register("development", "db", &id, &bulky(4)).await {
            Ok(_) => acked.push(id),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let e = refusal.expect("4 MiB took every write");
    assert_eq!(e.code(), "NETGET_IO", "{e}");
    assert!(e.to_string().contains("space"), "{e}");
    assert!(
        !acked.is_empty(),
        "no write went through before the disk filled"
    );
    let held = rest
        .discover("development", "db", false, &[])
        .await
        .unwrap();
    assert_eq!(
        held.instances.len(),
        acked.len(),
        "a refused write is served anyway"
    );
    common::raw_send(&mut session, r#"{"type":"ping","id":1}"#).await;
    assert!(matches!(
        common::raw_recv(&mut session).await,
        netget::wire::ServerMessage::Pong { id: 1 }
    ));

    // Space back: writes go through again.
    std::fs::remove_file(&filler).unwrap();
    let again = common::wait_until(Duration::from_secs(10), || async {
        rest.register("development", "db", "after-full", &bulky(4))
            .await
            .is_ok()
    })
    .await;
    assert!(again.is_some(), "writes do not recover once space is back");
    acked.push("after-full".into());

    // A crash, and the disk comes back read-only: the registry refuses to start, saying why,
    // rather than serve without keeping what it is told.
    reg.signal("KILL");
    reg.wait_exit(Duration::from_secs(5)).unwrap();
    drop(session);
    sh(&format!("mount -o remount,ro '{}'", data.display()));
    let out = std::process::Command::new("timeout")
        .args([
            "20",
            common::bin(),
            "registry",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("NETGET_IO") && said.to_lowercase().contains("read-only"),
        "{said}"
    );

    // Writable again: nothing acknowledged was lost, and the store opens cleanly.
    sh(&format!("mount -o remount,rw '{}'", data.display()));
    let reg = registry_on(&data, &[]);
    let have = ids_of(&reg.url, "db").await;
    let want: BTreeSet<String> = acked.into_iter().collect();
    assert_eq!(have, want);
}
