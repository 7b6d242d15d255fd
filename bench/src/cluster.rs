//! `netget-vs-etcd cluster`: a cluster of three netget registries against a 3-member etcd
//! cluster, on one machine, in one run. Each side is used as a registry is (netget: sessions;
//! etcd: lease + put, watch on the prefix), and the table gives netget, etcd and the ratio:
//!
//! - a change made on the first member, pushed to a watcher on the third: p50/p99, idle and under
//!   cluster-wide churn (changes/s spread over the three);
//! - registrations/s spread over the three (netget: acknowledged by the owner, and visible on
//!   every registry; etcd: committed by the cluster);
//! - memory per instance on a member that only holds copies (netget: a replica; etcd: a follower);
//! - bytes a member sends per second at rest (gossip and link pings; raft heartbeats), read
//!   from the loopback interface's counters, so the machine should be otherwise quiet;
//! - a member killed while 1,000 nodes depend on it, until all are served again (netget: the
//!   registry holding their sessions; etcd: the leader);
//! - a new member joining a cluster of over 100k instances, until it serves all of them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use netget::client::rest::RestClient;
use netget::client::{recv_message, send_message};
use netget::model::{InstanceId, ServiceName};
use netget::testsuite::{open, payload};
use netget::wire::{ClientMessage, ServerMessage};
use serde::Serialize;

use crate::procs::{rss, start_etcd_cluster, start_netget_with, Proc, TempDir};
use crate::stats::{etcd_value, Latency};
use crate::{bounded, etcd_side, netget_side, Res};

/// What the cluster comparison does; every count bounds a loop.
#[derive(Debug, Clone, Args, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOpts {
    /// The netget binary (default: `netget` next to this binary).
    #[arg(long)]
    pub netget: Option<std::path::PathBuf>,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    pub etcd: std::path::PathBuf,
    /// Changes pushed from the first member to a watcher on the third.
    #[arg(long, default_value_t = 500)]
    pub events: usize,
    /// Time between two of them, milliseconds.
    #[arg(long, default_value_t = 10)]
    pub pace_ms: u64,
    /// Background changes per second, cluster-wide, during the churn phase.
    #[arg(long, default_value_t = 5_000)]
    pub churn: u64,
    /// Registrations spread over the three members.
    #[arg(long, default_value_t = 30_000)]
    pub registrations: usize,
    /// Client connections (spread over the members) and requests in flight.
    #[arg(long, default_value_t = 48)]
    pub inflight: usize,
    /// netget only: nodes held by the registry that is killed.
    #[arg(long, default_value_t = 1_000)]
    pub killed: usize,
    /// Instances in the cluster when a new registry joins (and for the memory figure).
    #[arg(long, default_value_t = 100_000)]
    pub join_instances: usize,
    /// Where the results go, as JSON.
    #[arg(long, default_value = "target/bench/cluster.json")]
    pub out: std::path::PathBuf,
}

/// The figures of one side.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFigures {
    /// First member → watcher on the third, idle.
    pub cross_idle: Latency,
    /// The same under churn.
    pub cross_churn: Latency,
    /// Churn changes actually made per second during that phase.
    pub churn_per_sec: f64,
    /// Registrations/s acknowledged, spread over the members.
    pub registrations_per_sec: f64,
    /// netget only: the same counted until every registry shows all of them.
    pub replicated_per_sec: Option<f64>,
    /// Bytes of RSS per instance on a member that holds only copies.
    pub bytes_per_copy: Option<f64>,
    /// Bytes a member sends per second at rest (loopback bytes of the whole cluster ÷ 3).
    pub written_per_sec_at_rest: Option<f64>,
    /// netget only: seconds from SIGKILL of a registry holding `killed` nodes until every one
    /// is owned by a survivor, seen on both.
    pub killed_recovery_secs: Option<f64>,
    /// Seconds from starting a new registry (netget) or adding a member (etcd) until it serves
    /// every instance (netget: `/health` ready with all of them; etcd: a serializable count).
    pub join_ready_secs: Option<f64>,
}

/// Bytes sent on the loopback interface so far (all processes: the cluster under test is
/// what talks there while it rests; TCP and UDP alike, headers included).
fn loopback_sent() -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = dev.lines().find(|l| l.trim_start().starts_with("lo:"))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .nth(8)?
        .parse()
        .ok()
}

/// Bytes per second each of `members` members sends at rest, over `window`.
async fn at_rest(members: usize, window: Duration) -> Option<f64> {
    let before = loopback_sent()?;
    tokio::time::sleep(window).await;
    let after = loopback_sent()?;
    Some(after.saturating_sub(before) as f64 / window.as_secs_f64() / members.max(1) as f64)
}

/// Runs `change(i)` `rate` times per second over `tasks` tasks until `stop`; returns how many
/// changes were made.
fn churn<F, Fut>(
    rate: u64,
    tasks: usize,
    stop: Arc<AtomicBool>,
    change: F,
) -> tokio::task::JoinHandle<u64>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let change = Arc::new(change);
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (change, stop, done) = (change.clone(), stop.clone(), done.clone());
        let every = Duration::from_secs_f64(tasks as f64 / rate.max(1) as f64);
        handles.push(tokio::spawn(async move {
            let t0 = tokio::time::Instant::now();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until(t0 + every * k as u32).await;
                if !change(t, k).await {
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
        }));
    }
    tokio::spawn(async move {
        for h in handles {
            let _ = h.await;
        }
        done.load(Ordering::Relaxed)
    })
}

/// Three `netget registry` processes, the first gossiping, the others joining it; waits until
/// each is ready.
async fn netget_cluster(exe: &Path, dir: &Path) -> Res<Vec<(Proc, String)>> {
    let mut members = Vec::new();
    let first_dir = dir.join("r0");
    std::fs::create_dir_all(&first_dir)?;
    let gossip = vec!["--gossip-listen".to_string(), "127.0.0.1:0".to_string()];
    let first = start_netget_with(exe, &first_dir, &gossip).await?;
    let join = vec!["--join".to_string(), first.1.clone()];
    members.push(first);
    for i in 1..3 {
        let d = dir.join(format!("r{i}"));
        std::fs::create_dir_all(&d)?;
        members.push(start_netget_with(exe, &d, &join).await?);
    }
    for (_, url) in &members {
        wait_linked(url, 3).await?;
    }
    Ok(members)
}

/// Waits until the registry at `url` follows all its `n - 1` peers over open links.
async fn wait_linked(url: &str, n: usize) -> Res<()> {
    let rest = RestClient::new(url)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = rest.health().await?;
        let c = &v["cluster"];
        let unlinked = c["unlinked"].as_array().map_or(1, Vec::len);
        if c["live"].as_u64() == Some(n as u64) && unlinked == 0 && v["ready"] == true {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(
                format!("{url} did not link to its {} peers within 30 s: {v}", n - 1).into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Instances of `service` on the registry behind `rest`, with their owners.
async fn owners(rest: &RestClient, service: &str) -> Res<Vec<String>> {
    match rest.discover("development", service, false, &[]).await {
        Ok(d) => Ok(d.instances.iter().map(|i| i.registry.to_string()).collect()),
        Err(netget::Error::NotFound(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Instances of the registration phase's services (`bench-0` .. `bench-99`) at `url`.
async fn registered(url: &str) -> Res<u64> {
    let services = RestClient::new(url)?.services("development").await?;
    Ok(services
        .iter()
        .filter(|s| {
            s.name
                .as_str()
                .strip_prefix("bench-")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(|s| s.instances as u64)
        .sum())
}

async fn total_instances(url: &str) -> Res<u64> {
    let h = RestClient::new(url)?.health().await?;
    Ok(h["instances"].as_u64().unwrap_or(0))
}

async fn netget_side(opts: &ClusterOpts, exe: &Path, dir: &Path) -> Res<ClusterFigures> {
    let mut f = ClusterFigures::default();
    let members = netget_cluster(exe, dir).await?;
    let urls: Vec<String> = members.iter().map(|(_, u)| u.clone()).collect();
    let pids: Vec<Option<u32>> = members.iter().map(|(p, _)| p.pid()).collect();
    eprintln!("netget cluster: {urls:?}");
    f.written_per_sec_at_rest = at_rest(3, Duration::from_secs(5)).await;
    let pace = Duration::from_millis(opts.pace_ms);
    let (idle, _) = bounded(
        "netget cross watch",
        netget_side::watch(&urls[2], &urls[0], pids[2], 1, opts.events, pace),
    )
    .await?;
    f.cross_idle = idle;
    // Churn: sessions on every registry keep changing instances of their own.
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = 24;
    let mut sessions = Vec::new();
    for t in 0..tasks {
        sessions.push(Arc::new(tokio::sync::Mutex::new(open(&urls[t % 3]).await?)));
    }
    let churn_name = ServiceName::new("bench-churn")?;
    let started = Instant::now();
    let churned = churn(opts.churn, tasks, stop.clone(), move |t, k| {
        let session = sessions[t].clone();
        let name = churn_name.clone();
        async move {
            let mut s = session.lock().await;
            let mut reg = payload(t);
            reg.metadata.insert("k".into(), k.into());
            let msg = ClientMessage::Register {
                id: k,
                name,
                instance_id: InstanceId::new(&format!("c-{t}-{}", k % 20)).ok(),
                instance: reg,
            };
            if send_message(&mut s.socket, &msg).await.is_err() {
                return false;
            }
            loop {
                match recv_message(&mut s.socket).await {
                    Ok(ServerMessage::Result { .. }) => return true,
                    Ok(ServerMessage::Error { .. }) | Err(_) => return false,
                    Ok(_) => {}
                }
            }
        }
    });
    let (busy, _) = bounded(
        "netget cross watch under churn",
        netget_side::watch(&urls[2], &urls[0], pids[2], 1, opts.events, pace),
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let changes = churned.await?;
    f.churn_per_sec = changes as f64 / started.elapsed().as_secs_f64();
    f.cross_churn = busy;
    // Registrations spread over the three, acknowledged, then visible on all.
    let conns_n = opts.inflight.clamp(3, 48);
    let mut conns = Vec::new();
    for c in 0..conns_n {
        conns.push(open(&urls[c % 3]).await?);
    }
    let started = Instant::now();
    let (held, per_sec) = bounded(
        "netget registrations",
        netget_side::register(conns, 0..opts.registrations, 32),
    )
    .await?;
    f.registrations_per_sec = per_sec;
    let n = opts.registrations as u64;
    loop {
        let mut all = true;
        for u in &urls {
            all &= registered(u).await? >= n;
        }
        if all {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err("registrations not visible on every registry within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f.replicated_per_sec = Some(n as f64 / started.elapsed().as_secs_f64());
    drop(held);
    // Memory per copy: the third registry, before and after the first holds `join_instances`.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss(pids[2]).0;
    let mut conns = Vec::new();
    for _ in 0..16 {
        conns.push(open(&urls[0]).await?);
    }
    let big = 1_000_000..1_000_000 + opts.join_instances;
    let (held, _) = bounded(
        "netget large registration",
        netget_side::register(conns, big, 64),
    )
    .await?;
    for c in held {
        netget_side::keep_reading(c);
    }
    let expected = total_instances(&urls[0]).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while total_instances(&urls[2]).await? < expected {
        if Instant::now() > deadline {
            return Err("the third registry did not hold every copy within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_after = rss(pids[2]).0;
    if let (Some(a), Some(b)) = (rss_after, rss_before) {
        f.bytes_per_copy = Some(a.saturating_sub(b) as f64 * 1024.0 / opts.join_instances as f64);
    }
    // A fourth registry joins: ready with every instance.
    let d = dir.join("r3");
    std::fs::create_dir_all(&d)?;
    let join = vec!["--join".to_string(), urls[0].clone()];
    let t0 = Instant::now();
    let (_fourth, url4) = start_netget_with(exe, &d, &join).await?;
    let rest4 = RestClient::new(&url4)?;
    loop {
        let h = rest4.health().await.unwrap_or_default();
        if h["ready"] == true && h["instances"].as_u64().unwrap_or(0) >= expected {
            break;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(format!("the joining registry was not ready within 120 s: {h}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f.join_ready_secs = Some(t0.elapsed().as_secs_f64());
    f.killed_recovery_secs = Some(bounded("netget killed registry", killed(opts, members)).await?);
    Ok(f)
}

/// `opts.killed` nodes (client sessions that fail over) on the first registry; SIGKILL it; the
/// seconds until every one is owned by a survivor, as both survivors show.
async fn killed(opts: &ClusterOpts, mut members: Vec<(Proc, String)>) -> Res<f64> {
    use netget::{Netget, NetgetOptions};
    let urls: Vec<String> = members.iter().map(|(_, u)| u.clone()).collect();
    let all: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut nodes = Vec::with_capacity(opts.killed);
    for i in 0..opts.killed {
        let node = Netget::new(NetgetOptions {
            in_order: true,
            data_dir: None,
            ..NetgetOptions::service(
                "bench-killed",
                &format!("http://127.0.0.1:{}", 10_000 + i),
                &all,
            )
        })?;
        node.register_with_network().await?;
        nodes.push(node);
    }
    let survivors = [RestClient::new(&urls[1])?, RestClient::new(&urls[2])?];
    let a_id = RestClient::new(&urls[0])?.health().await?["registryId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let killed_at = members[0].0.kill()?;
    loop {
        let mut done = true;
        for rest in &survivors {
            let o = owners(rest, "bench-killed").await.unwrap_or_default();
            done &= o.len() == opts.killed && o.iter().all(|r| *r != a_id);
        }
        if done {
            break;
        }
        if killed_at.elapsed() > Duration::from_secs(60) {
            return Err("the killed registry's nodes were not taken over within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = killed_at.elapsed().as_secs_f64();
    for n in nodes {
        let _ = n.stop().await;
    }
    Ok(secs)
}

async fn etcd_side(opts: &ClusterOpts, dir: &Path) -> Res<ClusterFigures> {
    let mut f = ClusterFigures::default();
    let members = start_etcd_cluster(&opts.etcd, dir, 3).await?;
    let urls: Vec<String> = members.iter().map(|(_, u)| u.clone()).collect();
    let pids: Vec<Option<u32>> = members.iter().map(|(p, _)| p.pid()).collect();
    eprintln!("etcd cluster: {urls:?}");
    f.written_per_sec_at_rest = at_rest(3, Duration::from_secs(5)).await;
    let pace = Duration::from_millis(opts.pace_ms);
    let (idle, _) = bounded(
        "etcd cross watch",
        etcd_side::watch(&urls[2], &urls[0], pids[2], 1, opts.events, pace),
    )
    .await?;
    f.cross_idle = idle;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = 24;
    let mut clients = Vec::new();
    for t in 0..tasks {
        clients.push(etcd_side::connect(&urls[t % 3]).await?);
    }
    let started = Instant::now();
    let churned = churn(opts.churn, tasks, stop.clone(), move |t, k| {
        let mut c = clients[t].clone();
        async move {
            let key = format!("/services/development/bench-churn/c-{t}-{}", k % 20);
            c.put(key, etcd_value(t, Some(k)), None).await.is_ok()
        }
    });
    let (busy, _) = bounded(
        "etcd cross watch under churn",
        etcd_side::watch(&urls[2], &urls[0], pids[2], 1, opts.events, pace),
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let changes = churned.await?;
    f.churn_per_sec = changes as f64 / started.elapsed().as_secs_f64();
    f.cross_churn = busy;
    let mut clients = Vec::new();
    for c in 0..opts.inflight.clamp(3, 48) {
        clients.push(etcd_side::connect(&urls[c % 3]).await?);
    }
    f.registrations_per_sec = bounded(
        "etcd registrations",
        etcd_side::register(&clients, "bench", 0..opts.registrations, opts.inflight),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss(pids[2]).0;
    let first = [etcd_side::connect(&urls[0]).await?];
    let big = 1_000_000..1_000_000 + opts.join_instances;
    bounded(
        "etcd large registration",
        etcd_side::register(&first, "bench-large", big, opts.inflight),
    )
    .await?;
    // The follower applies what the leader committed within moments; let it settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss(pids[2]).0;
    if let (Some(a), Some(b)) = (rss_after, rss_before) {
        f.bytes_per_copy = Some(a.saturating_sub(b) as f64 * 1024.0 / opts.join_instances as f64);
    }
    // The joiner stays up: with it, the cluster has four members, and losing the leader must
    // leave a quorum of three.
    let (joined, _joiner) = bounded("etcd join", etcd_join(opts, dir, &urls[0])).await?;
    f.join_ready_secs = Some(joined);
    f.killed_recovery_secs = Some(bounded("etcd killed leader", etcd_killed(opts, members)).await?);
    Ok(f)
}

/// A fourth member added (`member add`, then started): the seconds from the add until it serves,
/// from its own state (a serializable read), as many keys as the cluster holds.
async fn etcd_join(opts: &ClusterOpts, dir: &Path, first: &str) -> Res<(f64, Proc)> {
    let prefix = "/services/";
    let count = |c: etcd_client::Client| async move {
        let mut kv = c.kv_client();
        let opts = etcd_client::GetOptions::new()
            .with_prefix()
            .with_count_only()
            .with_serializable();
        Ok::<i64, etcd_client::Error>(kv.get(prefix, Some(opts)).await?.count())
    };
    let mut client = etcd_side::connect(first).await?;
    let expected = count(client.clone()).await?;
    let t0 = Instant::now();
    let (joiner, url) = crate::procs::join_etcd_member(&opts.etcd, dir, &mut client).await?;
    loop {
        let got = tokio::time::timeout(Duration::from_millis(500), async {
            let c = etcd_side::connect(&url).await.ok()?;
            count(c).await.ok()
        })
        .await;
        if matches!(got, Ok(Some(n)) if n >= expected) {
            return Ok((t0.elapsed().as_secs_f64(), joiner));
        }
        if t0.elapsed() > Duration::from_secs(110) {
            return Err(format!(
                "the joining etcd member did not serve {expected} keys within 110 s"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `opts.killed` leases with a key each, kept alive through a follower; SIGKILL the leader; the
/// seconds until both survivors serve every key again (a linearizable read needs a new leader).
async fn etcd_killed(opts: &ClusterOpts, mut members: Vec<(Proc, String)>) -> Res<f64> {
    let urls: Vec<String> = members.iter().map(|(_, u)| u.clone()).collect();
    let mut leader = None;
    for (i, u) in urls.iter().enumerate() {
        let status = etcd_side::connect(u).await?.status().await?;
        let me = status.header().map(|h| h.member_id());
        if me == Some(status.leader()) {
            leader = Some(i);
        }
    }
    let leader = leader.ok_or("no etcd member says it leads")?;
    let survivors: Vec<&String> = urls
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, u)| u)
        .collect();
    let prefix = "/services/development/bench-killed/".to_string();
    let args: Vec<String> = vec![
        "hold-etcd".into(),
        "--endpoint".into(),
        survivors[0].clone(),
        "--count".into(),
        opts.killed.to_string(),
        "--ttl".into(),
        "5".into(),
        "--prefix".into(),
        prefix.clone(),
    ];
    let _holder = crate::procs::start_holder(&args, Duration::from_secs(120)).await?;
    let mut readers = Vec::new();
    for u in &survivors {
        readers.push(etcd_side::connect(u).await?);
    }
    let killed_at = members[leader].0.kill()?;
    loop {
        let mut done = true;
        for r in &readers {
            let n = tokio::time::timeout(Duration::from_millis(500), etcd_side::count(r, &prefix))
                .await;
            done &= matches!(n, Ok(Ok(n)) if n == opts.killed);
        }
        if done {
            return Ok(killed_at.elapsed().as_secs_f64());
        }
        if killed_at.elapsed() > Duration::from_secs(60) {
            return Err("etcd's survivors did not serve every key within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs both sides and prints the table.
pub async fn compare(opts: ClusterOpts) -> Res<()> {
    let exe = match &opts.netget {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no parent directory")?
            .join("netget"),
    };
    let tmp = TempDir::create(
        std::env::temp_dir().join(format!("netget-vs-etcd-cluster-{}", std::process::id())),
    )?;
    let started = Instant::now();
    let ndir = TempDir::create(tmp.0.join("netget"))?;
    let netget = netget_side(&opts, &exe, &ndir.0).await?;
    let edir = TempDir::create(tmp.0.join("etcd"))?;
    let etcd = etcd_side(&opts, &edir.0).await?;
    print(&opts, &netget, &etcd);
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::json!({ "options": opts, "netget": netget, "etcd": etcd,
        "seconds": started.elapsed().as_secs_f64() });
    std::fs::write(&opts.out, serde_json::to_vec_pretty(&json)?)?;
    eprintln!(
        "results: {} ({:.0} s)",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print(opts: &ClusterOpts, n: &ClusterFigures, e: &ClusterFigures) {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}×", a / b)
        } else {
            "-".into()
        }
    };
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.1} {unit}"));
    println!(
        "{:<58} {:>14} {:>14} {:>9}",
        "3 members on loopback", "netget", "etcd", "ratio"
    );
    let lat = |what: &str, a: &Latency, b: &Latency| {
        for (p, x, y) in [("p50", a.p50_us, b.p50_us), ("p99", a.p99_us, b.p99_us)] {
            println!(
                "{:<58} {:>11.0} µs {:>11.0} µs {:>9}",
                format!("{what}, {p}"),
                x,
                y,
                ratio(x, y)
            );
        }
    };
    lat(
        "change on 1st → watcher on 3rd, idle",
        &n.cross_idle,
        &e.cross_idle,
    );
    lat(
        &format!(
            "the same, under churn ({:.0} / {:.0} changes/s made)",
            n.churn_per_sec, e.churn_per_sec
        ),
        &n.cross_churn,
        &e.cross_churn,
    );
    println!(
        "{:<58} {:>12.0}/s {:>12.0}/s {:>9}",
        format!("registrations/s over the three ({})", opts.registrations),
        n.registrations_per_sec,
        e.registrations_per_sec,
        ratio(n.registrations_per_sec, e.registrations_per_sec)
    );
    if let Some(r) = n.replicated_per_sec {
        println!(
            "{:<58} {:>12.0}/s {:>14} {:>9}",
            "  netget, counted until visible on every registry",
            r,
            "-",
            ratio(r, e.registrations_per_sec)
        );
    }
    // A figure each side may lack, as `value unit`, with their ratio.
    let row = |what: String, a: Option<f64>, b: Option<f64>, unit: &str| {
        println!(
            "{:<58} {:>14} {:>14} {:>9}",
            what,
            opt(a, unit),
            opt(b, unit),
            ratio(a.unwrap_or(0.0), b.unwrap_or(0.0))
        );
    };
    row(
        format!(
            "memory per copy on the 3rd member ({} instances)",
            opts.join_instances
        ),
        n.bytes_per_copy,
        e.bytes_per_copy,
        "B",
    );
    row(
        "bytes sent per second per member at rest (loopback)".into(),
        n.written_per_sec_at_rest,
        e.written_per_sec_at_rest,
        "B/s",
    );
    row(
        format!(
            "a member killed, {} nodes: all served again (see doc)",
            opts.killed
        ),
        n.killed_recovery_secs,
        e.killed_recovery_secs,
        "s",
    );
    row(
        format!(
            "a new member serving every instance (> {})",
            opts.join_instances
        ),
        n.join_ready_secs,
        e.join_ready_secs,
        "s",
    );
}
