//! The load tool behind `netget bench`: drives a real registry over loopback and prints
//! registrations/s, discovery queries/s, watch push latency and the registry's memory.
//!
//! By default it starts the registry as a child process of the same binary, so the RSS it reports
//! is the registry's alone; `--registry URL` drives one already running (no RSS then).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::SinkExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

use crate::client::rest::RestClient;
use crate::client::{Connection, Dial, Socket};
use crate::error::{Error, Result};
use crate::identity::NodeKey;
use crate::model::{InstanceId, NetworkName, Registration, ServiceName, WireDuration};
use crate::wire::{ClientMessage, ServerMessage};

/// Options of `netget bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Registry to drive; default: start one as a child process (needed for RSS figures).
    #[arg(long)]
    pub registry: Option<String>,
    /// Instances to register.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// WebSocket sessions the instances are spread over.
    #[arg(long, default_value_t = 50)]
    pub sessions: usize,
    /// Requests in flight at once, over all sessions/connections.
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// Discovery queries to send (over HTTP and again over WebSocket).
    #[arg(long, default_value_t = 20_000)]
    pub queries: usize,
    /// Watchers of the watched service.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Changes pushed to the watchers.
    #[arg(long, default_value_t = 500)]
    pub events: usize,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Instead of the load phases: register this many instances with an HTTP health check
    /// every `--check-interval` against a local server, and measure the registry's CPU and
    /// memory while it runs them.
    #[arg(long, default_value_t = 0)]
    pub health_checks: usize,
    /// Interval of those checks.
    #[arg(long, default_value = "10s", value_parser = |s: &str| WireDuration::parse(s).map_err(|e| e.to_string()))]
    pub check_interval: WireDuration,
    /// How long to measure CPU for, in seconds.
    #[arg(long, default_value_t = 30)]
    pub window: u64,
    /// Instead of the load phases: register this many instances over HTTP (durable: each
    /// acknowledged after fsync), one at a time and then `--inflight` at a time, then restart
    /// the registry and time how long it takes to load them back.
    #[arg(long, default_value_t = 0)]
    pub durable: usize,
}

/// The figures one run produces.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    /// Instances registered.
    pub instances: usize,
    /// Session registrations per second.
    pub registrations_per_sec: f64,
    /// HTTP discovery queries per second (10 instances per answer).
    pub http_discovery_per_sec: f64,
    /// WebSocket discovery queries per second (10 instances per answer).
    pub ws_discovery_per_sec: f64,
    /// Watch push latency, write sent to event received, microseconds.
    pub watch_p50_us: f64,
    /// 99th percentile of the same.
    pub watch_p99_us: f64,
    /// Watchers during the latency phase.
    pub watchers: usize,
    /// Registry RSS before registering, KiB.
    pub rss_before_kib: Option<u64>,
    /// Registry RSS with all instances registered, KiB.
    pub rss_after_kib: Option<u64>,
    /// (after - before) / instances, bytes.
    pub bytes_per_instance: Option<f64>,
}

/// A registry started as a child process; killed when dropped.
pub(crate) struct ChildRegistry {
    pub(crate) child: tokio::process::Child,
    pub(crate) url: String,
    data: PathBuf,
    /// Remove the data dir when dropped.
    owns_data: bool,
}

impl Drop for ChildRegistry {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if self.owns_data {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

async fn start_child() -> Result<ChildRegistry> {
    let data = std::env::temp_dir().join(format!("netget-bench-{}", std::process::id()));
    start_child_on(data, true).await
}

/// A registry config (`netget.toml`) for load from one process: a load generator or a test is
/// one IP sending far more than a real node would, so the rate limits (and the per-session cap)
/// are lifted and the figures measure the registry, not the limiter.
pub const LOAD_LIMITS: &str = "[limits]\nrequests_per_second_per_session = 0\nrequests_per_second_per_ip = 0\nmax_instances_per_session = 1000000\nmax_connections = 1000000\nmax_connections_per_ip = 1000000\n";

async fn start_child_on(data: PathBuf, owns_data: bool) -> Result<ChildRegistry> {
    start_child_with(data, owns_data, LOAD_LIMITS, &[]).await
}

/// A registry child process over `data`, configured by `config` (a `netget.toml`) and `extra`
/// flags.
pub(crate) async fn start_child_with(
    data: PathBuf,
    owns_data: bool,
    config: &str,
    extra: &[String],
) -> Result<ChildRegistry> {
    let exe =
        std::env::current_exe().map_err(|e| Error::Io(format!("cannot find own binary: {e}")))?;
    std::fs::create_dir_all(&data).map_err(|e| Error::Io(e.to_string()))?;
    let file = data.join("netget.toml");
    std::fs::write(&file, config).map_err(|e| Error::Io(e.to_string()))?;
    let mut child = tokio::process::Command::new(exe)
        .args(["registry", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .arg("--data")
        .arg(&data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Io(format!("cannot start registry: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Internal("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| Error::timeout("registry start", Duration::from_secs(10)))?
        .map_err(|e| Error::Io(e.to_string()))?
        .ok_or_else(|| Error::Internal("registry exited before listening".into()))?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| Error::Internal(format!("unexpected registry output: {line}")))?
        .to_string();
    Ok(ChildRegistry {
        child,
        url,
        data,
        owns_data,
    })
}

pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// ~200 bytes of metadata, as the etcd comparison uses.
pub fn payload(i: usize) -> Registration {
    let mut metadata = serde_json::Map::new();
    metadata.insert("zone".into(), format!("zone-{}", i % 3).into());
    metadata.insert("owner".into(), "team-platform".into());
    metadata.insert("build".into(), format!("{:040x}", i).into());
    metadata.insert(
        "description".into(),
        "benchmark instance with about two hundred bytes of metadata".into(),
    );
    Registration {
        address: format!("http://127.0.0.1:{}", 10_000 + i % 50_000),
        tags: vec!["bench".into(), format!("shard-{}", i % 8)],
        metadata,
        version: Some("1.0.0".into()),
        ..Default::default()
    }
}

pub async fn open(url: &str) -> Result<Connection> {
    open_from(url, None).await
}

/// The same, connecting from `local` (the system's choice when `None`).
pub(crate) async fn open_from(url: &str, local: Option<std::net::IpAddr>) -> Result<Connection> {
    let mut dial = Dial::new(NetworkName::new("development")?, NodeKey::generate()?);
    dial.local_address = local;
    Connection::open(url, &dial).await
}

/// Sends `msgs` on one socket with at most `window` unanswered, returning when all are answered.
pub async fn pipeline(
    socket: &mut Socket,
    msgs: Vec<ClientMessage>,
    window: usize,
) -> Result<usize> {
    let total = msgs.len();
    let mut it = msgs.into_iter();
    let (mut sent, mut done, mut errors) = (0usize, 0usize, 0usize);
    while done < total {
        while sent - done < window {
            let Some(m) = it.next() else { break };
            let text = serde_json::to_string(&m).map_err(|e| Error::Internal(e.to_string()))?;
            socket
                .feed(Message::text(text))
                .await
                .map_err(|e| Error::Unreachable(e.to_string()))?;
            sent += 1;
        }
        socket
            .flush()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        match crate::client::recv_message(socket).await? {
            ServerMessage::Result { .. } => done += 1,
            ServerMessage::Error { .. } => {
                done += 1;
                errors += 1;
            }
            _ => {}
        }
    }
    Ok(errors)
}

/// What the health-check phase measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Checked instances.
    pub instances: usize,
    /// Check interval, seconds.
    pub interval_secs: f64,
    /// Probes the target server answered during the window, per second.
    pub probes_per_sec: f64,
    /// Registry CPU over the window, in percent of one core.
    pub cpu_percent: f64,
    /// Registry RSS at the end, KiB.
    pub rss_kib: Option<u64>,
}

pub(crate) fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

async fn measure_health(args: &BenchArgs) -> Result<HealthReport> {
    let child = start_child().await?;
    let pid = child.child.id();
    // The checked service: answers 200 on /health and counts the probes.
    let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Io(e.to_string()))?;
    let target = format!(
        "http://{}/health",
        listener
            .local_addr()
            .map_err(|e| Error::Io(e.to_string()))?
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let rest = RestClient::new(&child.url)?;
    let n = args.health_checks;
    let workers = args.inflight.max(1);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (rest, target) = (rest.clone(), target.clone());
        let interval = args.check_interval;
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(workers) {
                let mut reg = payload(i);
                reg.health = Some(crate::model::HealthCheck {
                    http: Some(target.clone()),
                    interval: Some(interval),
                    ..Default::default()
                });
                rest.register(
                    "development",
                    &format!("checked-{}", i % 100),
                    &format!("h-{i}"),
                    &reg,
                )
                .await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Internal(e.to_string()))??;
    }
    // Let every check start (they spread over one interval), then measure a window.
    tokio::time::sleep(args.check_interval.0 + Duration::from_secs(1)).await;
    let (t0, h0, start) = (
        cpu_ticks(pid),
        hits.load(std::sync::atomic::Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.window)).await;
    let (t1, h1, took) = (
        cpu_ticks(pid),
        hits.load(std::sync::atomic::Ordering::Relaxed),
        start.elapsed(),
    );
    server.abort();
    // Linux reports CPU time in clock ticks of 1/100 s.
    let cpu_percent = match (t0, t1) {
        (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / 100.0 / took.as_secs_f64() * 100.0,
        _ => 0.0,
    };
    Ok(HealthReport {
        instances: n,
        interval_secs: args.check_interval.0.as_secs_f64(),
        probes_per_sec: (h1 - h0) as f64 / took.as_secs_f64(),
        cpu_percent,
        rss_kib: rss_kib(pid),
    })
}

/// What the durable-write phase measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DurableReport {
    /// Registrations over HTTP one at a time (each waits for its own fsync), per second.
    pub sequential_per_sec: f64,
    /// Registrations with `inflight` concurrent requests (fsyncs shared), per second.
    pub batched_per_sec: f64,
    /// Concurrency of the batched run.
    pub inflight: usize,
    /// CPU of the registry process per batched registration, microseconds (10 ms ticks).
    pub registry_cpu_us: Option<f64>,
    /// CPU of this load generator per batched registration, microseconds.
    pub generator_cpu_us: Option<f64>,
    /// Store writes per commit (fsync) during the batched run, from the registry's `/metrics`.
    pub writes_per_commit: Option<f64>,
    /// Mean time of one commit during the batched run, milliseconds.
    pub commit_ms: Option<f64>,
    /// Registrations stored when restarting.
    pub stored: usize,
    /// From starting the registry process to it listening with everything loaded, seconds.
    pub restart_secs: f64,
}

/// The store's commits, writes and total commit seconds, from a registry's `/metrics`.
async fn store_stats(rest: &RestClient) -> Result<[f64; 3]> {
    let text = rest.metrics().await?;
    Ok([
        "netget_store_commits_total",
        "netget_store_writes_total",
        "netget_store_commit_duration_seconds_sum",
    ]
    .map(|name| crate::client::rest::metric_value(&text, name).unwrap_or(0.0)))
}

pub async fn register_many(url: &str, ids: std::ops::Range<usize>, workers: usize) -> Result<f64> {
    let rest = RestClient::new(url)?;
    let n = ids.len();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers.max(1) {
        let rest = rest.clone();
        let ids: Vec<usize> = ids.clone().skip(w).step_by(workers.max(1)).collect();
        tasks.push(tokio::spawn(async move {
            for i in ids {
                let mut reg = payload(i);
                reg.ttl = Some(WireDuration(Duration::from_secs(3600)));
                rest.register(
                    "development",
                    &format!("durable-{}", i % 100),
                    &format!("d-{i}"),
                    &reg,
                )
                .await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Internal(e.to_string()))??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn measure_durable(args: &BenchArgs) -> Result<DurableReport> {
    let data = std::env::temp_dir().join(format!("netget-bench-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut report = DurableReport {
        inflight: args.inflight,
        stored: args.durable,
        ..Default::default()
    };
    {
        let child = start_child_on(data.clone(), false).await?;
        let sequential = args.durable.min(2_000);
        report.sequential_per_sec = register_many(&child.url, 0..sequential, 1).await?;
        let pid = child.child.id();
        let me = Some(std::process::id());
        let rest = RestClient::new(&child.url)?;
        let stats_before = store_stats(&rest).await?;
        let before = (cpu_ticks(pid), cpu_ticks(me));
        report.batched_per_sec =
            register_many(&child.url, sequential..args.durable, args.inflight).await?;
        let per_op = |a: Option<u64>, b: Option<u64>| {
            let ticks = b?.checked_sub(a?)?;
            Some(ticks as f64 * 10_000.0 / (args.durable - sequential).max(1) as f64)
        };
        report.registry_cpu_us = per_op(before.0, cpu_ticks(pid));
        report.generator_cpu_us = per_op(before.1, cpu_ticks(me));
        let stats_after = store_stats(&rest).await?;
        let commits = stats_after[0] - stats_before[0];
        if commits > 0.0 {
            report.writes_per_commit = Some((stats_after[1] - stats_before[1]) / commits);
            report.commit_ms = Some((stats_after[2] - stats_before[2]) / commits * 1000.0);
        }
        drop(child); // SIGKILL: what was acknowledged is on disk
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let child = start_child_on(data.clone(), true).await?;
    report.restart_secs = start.elapsed().as_secs_f64();
    let health = RestClient::new(&child.url)?.health().await?;
    let loaded = health
        .get("instances")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize;
    if loaded != args.durable {
        return Err(Error::Internal(format!(
            "restart loaded {loaded} of {} registrations",
            args.durable
        )));
    }
    Ok(report)
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> Result<()> {
    if args.durable > 0 {
        let r = measure_durable(&args).await?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| Error::Internal(e.to_string()))?
            );
        } else {
            println!("netget bench — durable HTTP registrations (fsync before the answer)");
            println!(
                "  one at a time                {:>12.0} /s",
                r.sequential_per_sec
            );
            println!(
                "  {:>3} in flight (group commit) {:>12.0} /s",
                r.inflight, r.batched_per_sec
            );
            if let (Some(writes), Some(ms)) = (r.writes_per_commit, r.commit_ms) {
                println!(
                    "  store                        {writes:>9.1} writes per commit, {ms:.2} ms per commit"
                );
            }
            if let (Some(registry), Some(generator)) = (r.registry_cpu_us, r.generator_cpu_us) {
                println!(
                    "  CPU per registration         {registry:>9.1} µs registry, {generator:.1} µs load generator"
                );
            }
            println!(
                "  restart with {:>7} stored    {:>11.2} s",
                r.stored, r.restart_secs
            );
        }
        return Ok(());
    }
    if args.health_checks > 0 {
        let r = measure_health(&args).await?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| Error::Internal(e.to_string()))?
            );
        } else {
            println!(
                "netget bench — {} instances with an HTTP check every {}s",
                r.instances, r.interval_secs
            );
            println!("  probes answered/s            {:>12.0}", r.probes_per_sec);
            println!(
                "  registry CPU                 {:>11.1}% of one core",
                r.cpu_percent
            );
            if let Some(rss) = r.rss_kib {
                println!(
                    "  registry RSS                 {:>10.1} MiB",
                    rss as f64 / 1024.0
                );
            }
        }
        return Ok(());
    }
    let report = measure(&args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?
        );
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &BenchReport) {
    println!(
        "netget bench — {} instances, {} watchers",
        r.instances, r.watchers
    );
    println!(
        "  session registrations/s      {:>12.0}",
        r.registrations_per_sec
    );
    println!(
        "  discovery/s (HTTP, 10 inst.) {:>12.0}",
        r.http_discovery_per_sec
    );
    println!(
        "  discovery/s (WS, 10 inst.)   {:>12.0}",
        r.ws_discovery_per_sec
    );
    println!("  watch push p50               {:>10.0} µs", r.watch_p50_us);
    println!("  watch push p99               {:>10.0} µs", r.watch_p99_us);
    if let (Some(b), Some(a), Some(per)) = (r.rss_before_kib, r.rss_after_kib, r.bytes_per_instance)
    {
        println!(
            "  registry RSS                 {:>8.1} MiB → {:.1} MiB ({per:.0} B/instance)",
            b as f64 / 1024.0,
            a as f64 / 1024.0
        );
    }
}

/// Runs every phase and returns the figures.
pub async fn measure(args: &BenchArgs) -> Result<BenchReport> {
    let child = match &args.registry {
        Some(_) => None,
        None => Some(start_child().await?),
    };
    let url = match (&args.registry, &child) {
        (Some(u), _) => u.clone(),
        (None, Some(c)) => c.url.clone(),
        (None, None) => return Err(Error::Internal("no registry".into())),
    };
    let pid = child.as_ref().and_then(|c| c.child.id());
    let mut report = BenchReport {
        instances: args.instances,
        watchers: args.watchers,
        ..Default::default()
    };
    report.rss_before_kib = rss_kib(pid);

    // Phase 1: registrations over sessions, pipelined.
    let sessions = args.sessions.clamp(1, args.instances.max(1));
    let window = (args.inflight / sessions).max(1);
    let mut conns = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        conns.push(open(&url).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, mut conn) in conns.into_iter().enumerate() {
        let msgs: Vec<ClientMessage> = (s..args.instances)
            .step_by(sessions)
            .map(|i| ClientMessage::Register {
                id: i as u64,
                name: ServiceName::new(&format!("bench-{}", i % 100))
                    .unwrap_or_else(|_| unreachable!()),
                instance_id: InstanceId::new(&format!("i-{i}")).ok(),
                instance: payload(i),
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let errors = pipeline(&mut conn.socket, msgs, window).await;
            (conn, errors)
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        let (conn, errors) = t.await.map_err(|e| Error::Internal(e.to_string()))?;
        let errors = errors?;
        if errors > 0 {
            return Err(Error::Internal(format!(
                "{errors} registrations were refused"
            )));
        }
        // Keep reading the session (answering the registry's pings): a session that stops
        // reading is ended after the session timeout, and its instances with it.
        held.push(tokio::spawn(async move {
            let mut conn = conn;
            while crate::client::recv_message(&mut conn.socket).await.is_ok() {}
        }));
    }
    report.registrations_per_sec = args.instances as f64 / start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    report.rss_after_kib = rss_kib(pid);
    if let (Some(b), Some(a)) = (report.rss_before_kib, report.rss_after_kib) {
        report.bytes_per_instance =
            Some((a.saturating_sub(b) * 1024) as f64 / args.instances.max(1) as f64);
    }

    // Phase 2: discovery of a service with 10 instances, over HTTP and over WebSocket.
    let mut disc = open(&url).await?;
    let regs: Vec<ClientMessage> = (0..10)
        .map(|i| ClientMessage::Register {
            id: i,
            name: ServiceName::new("bench-discovery").unwrap_or_else(|_| unreachable!()),
            instance_id: InstanceId::new(&format!("d-{i}")).ok(),
            instance: payload(i as usize),
        })
        .collect();
    pipeline(&mut disc.socket, regs, 10).await?;
    report.http_discovery_per_sec = http_discovery(&url, args.queries, args.inflight).await?;
    let mut q = open(&url).await?;
    let msgs: Vec<ClientMessage> = (0..args.queries)
        .map(|i| ClientMessage::Discover {
            id: i as u64,
            name: ServiceName::new("bench-discovery").unwrap_or_else(|_| unreachable!()),
            healthy_only: true,
            tags: vec![],
        })
        .collect();
    let start = Instant::now();
    let refused = pipeline(&mut q.socket, msgs, args.inflight).await?;
    // A refused query (rate limit, a bug) is not an answer: the figure would count it as one.
    if refused > 0 {
        return Err(Error::Internal(format!(
            "{refused} of {} WebSocket discovery queries were refused",
            args.queries
        )));
    }
    report.ws_discovery_per_sec = args.queries as f64 / start.elapsed().as_secs_f64();

    // Phase 3: watch push latency.
    let (p50, p99) = watch_latency(&url, args.watchers, args.events).await?;
    report.watch_p50_us = p50;
    report.watch_p99_us = p99;
    for h in held {
        h.abort();
    }
    drop(child);
    Ok(report)
}

async fn http_discovery(url: &str, queries: usize, inflight: usize) -> Result<f64> {
    let rest = RestClient::new(url)?;
    let workers = inflight.max(1);
    let per = queries / workers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let rest = rest.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let d = rest
                    .discover("development", "bench-discovery", true, &[])
                    .await?;
                if d.instances.len() != 10 {
                    return Err(Error::Internal(format!(
                        "expected 10 instances, got {}",
                        d.instances.len()
                    )));
                }
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::Internal(e.to_string()))??;
    }
    Ok((per * workers) as f64 / start.elapsed().as_secs_f64())
}

async fn watch_latency(url: &str, watchers: usize, events: usize) -> Result<(f64, f64)> {
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let samples: Arc<Mutex<Vec<Duration>>> =
        Arc::new(Mutex::new(Vec::with_capacity(watchers * events)));
    let name = ServiceName::new("bench-watch").unwrap_or_else(|_| unreachable!());
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut c = open(url).await?;
        crate::client::send_message(
            &mut c.socket,
            &ClientMessage::Watch {
                id: 1,
                name: name.clone(),
            },
        )
        .await?;
        // The snapshot answer.
        loop {
            if let ServerMessage::Result { .. } = crate::client::recv_message(&mut c.socket).await?
            {
                break;
            }
        }
        let (sent, samples) = (sent.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < events {
                let msg = match tokio::time::timeout(
                    Duration::from_secs(10),
                    crate::client::recv_message(&mut c.socket),
                )
                .await
                {
                    Ok(Ok(m)) => m,
                    _ => break,
                };
                if let ServerMessage::Event { event, .. } = msg {
                    let now = Instant::now();
                    let seq = event.instance.metadata.get("seq").and_then(|v| v.as_u64());
                    if let Some(t) =
                        seq.and_then(|s| sent.lock().ok().and_then(|m| m.get(&s).copied()))
                    {
                        if let Ok(mut v) = samples.lock() {
                            v.push(now - t);
                        }
                    }
                    seen += 1;
                }
            }
        }));
    }
    let mut writer = open(url).await?;
    for seq in 0..events as u64 {
        let mut reg = payload(0);
        reg.metadata.insert("seq".into(), seq.into());
        if let Ok(mut m) = sent.lock() {
            m.insert(seq, Instant::now());
        }
        crate::client::send_message(
            &mut writer.socket,
            &ClientMessage::Register {
                id: seq,
                name: name.clone(),
                instance_id: InstanceId::new("w").ok(),
                instance: reg,
            },
        )
        .await?;
        loop {
            if let ServerMessage::Result { .. } | ServerMessage::Error { .. } =
                crate::client::recv_message(&mut writer.socket).await?
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut v = samples.lock().map(|v| v.clone()).unwrap_or_default();
    if v.is_empty() {
        return Err(Error::Internal("no watch events were received".into()));
    }
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    Ok((pct(0.50), pct(0.99)))
}
