//! `netget-vs-etcd`: netget and etcd side by side, on one machine, in one run.
//!
//! Starts a `netget registry` and a single-node etcd (Debian's `etcd-server`) on 127.0.0.1, each
//! with a temporary data dir, drives both with the same load-generator shape (the same
//! connections and requests in flight, the same ~200-byte metadata payload, the same instance
//! counts), and prints one table with netget, etcd and the ratio for each figure. The results go
//! to a JSON file (`--out`) that `bench/plot.py` draws. Run by hand (`bench/run.sh`), never in CI.

mod budget;
mod cluster;
mod etcd_side;
mod netget_side;
mod procs;
mod report;
mod stats;
mod wrk;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use stats::Latency;

/// Errors of the run: each says which phase failed and why.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(
    name = "netget-vs-etcd",
    about = "netget and etcd side by side on this machine: one table, netget ÷ etcd for each figure"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A cluster of three netget registries against a 3-member etcd cluster.
    Cluster(cluster::ClusterOpts),
    /// (internal) Hold `count` netget sessions with one instance each until stdin closes.
    #[command(hide = true)]
    HoldNetget {
        #[arg(long)]
        url: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        service: String,
    },
    /// (internal) Hold `count` etcd leases with one key each until stdin closes.
    #[command(hide = true)]
    HoldEtcd {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        ttl: i64,
        #[arg(long)]
        prefix: String,
    },
}

/// What a run does; every count bounds a loop, and every phase is bounded in time as well.
#[derive(Debug, Clone, Args, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Opts {
    /// The netget binary (default: `netget` next to this binary, i.e. target/release/netget).
    #[arg(long)]
    pub netget: Option<PathBuf>,
    /// The etcd binary.
    #[arg(long, default_value = "etcd")]
    pub etcd: PathBuf,
    /// Instances registered first (registrations/s and the first RSS figure).
    #[arg(long = "instances-small", default_value_t = 10_000)]
    pub small: usize,
    /// Instances registered in all (the second RSS figure and bytes per instance).
    #[arg(long = "instances", default_value_t = 100_000)]
    pub large: usize,
    /// Client connections of the load generator (netget sessions / etcd client connections).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Requests in flight at once, over all connections.
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// Discovery queries (10 instances per answer). Enough for netget's phase to last about a
    /// second: with 20,000 it lasted 0.3–0.5 s, and one burst of another tenant's work on the
    /// shared cores could halve a round's figure.
    #[arg(long, default_value_t = 60_000)]
    pub queries: usize,
    /// Durable registrations (netget REST, etcd puts).
    #[arg(long, default_value_t = 20_000)]
    pub durable: usize,
    /// Watchers of the many-watchers latency phase.
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// Writes pushed to a single watcher.
    #[arg(long, default_value_t = 2_000)]
    pub events_one: usize,
    /// Writes pushed to the many watchers.
    #[arg(long, default_value_t = 200)]
    pub events_many: usize,
    /// Time between two writes pushed to a single watcher, milliseconds (a fixed rate).
    #[arg(long, default_value_t = 2)]
    pub pace_ms: u64,
    /// Time between two writes pushed to the many watchers, milliseconds: a rate both systems
    /// sustain on 2 cores, so the figure is the fan-out's latency, not a growing backlog.
    #[arg(long, default_value_t = 20)]
    pub pace_many_ms: u64,
    /// Rounds: each runs both systems, netget first in odd rounds and etcd first in even
    /// ones, so a machine that slows down or speeds up during the run weighs on both alike; each
    /// figure is the mean over the rounds, and the table shows the spread of the ratio.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Nodes killed at once (SIGKILL of the process holding them).
    #[arg(long, default_value_t = 10_000)]
    pub killed: usize,
    /// TTL of the etcd leases of killed nodes, seconds.
    #[arg(long, default_value_t = 5)]
    pub etcd_ttl: i64,
    /// Seconds the comparison may take. Past them, the side in progress stops before its next
    /// phase and the table shows the rounds completed, marked as partial. Default: the work
    /// asked for at a slow machine's rates, plus half again (`budget::default_for`).
    #[arg(long)]
    pub budget_secs: Option<u64>,
    /// Seconds of each wrk phase (discovery driven by wrk against both sides).
    #[arg(long, default_value_t = 5)]
    pub wrk_secs: u64,
    /// Connections wrk keeps open (one thread).
    #[arg(long, default_value_t = 64)]
    pub wrk_connections: usize,
    /// Where the results go, as JSON.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
}

/// The figures of one system.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Registrations/s over the first `small` instances.
    pub registrations_small_per_sec: f64,
    /// Registrations/s from `small` to `large` instances.
    pub registrations_large_per_sec: f64,
    /// Durable registrations/s (netget: REST PUT with a TTL, answered after fsync; etcd: lease
    /// grant + put, as a registry registers).
    pub durable_per_sec: f64,
    /// etcd only: bare puts/s (no lease), its cheapest durable write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durable_put_per_sec: Option<f64>,
    /// Discovery queries/s, 10 instances per answer.
    pub discovery_per_sec: f64,
    /// netget only: discovery queries/s over client sessions (WebSocket), as the client
    /// libraries discover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_session_per_sec: Option<f64>,
    /// Discovery queries/s with wrk as the load generator (netget: HTTP GET; etcd: its JSON
    /// gateway, `POST /v3/kv/range` by prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_wrk_per_sec: Option<f64>,
    /// etcd only: the same with serializable (not linearizable) reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_serializable_per_sec: Option<f64>,
    /// Watch push latency with one watcher.
    pub watch_one: Latency,
    /// Watch push latency with many watchers.
    pub watch_many: Latency,
    /// RSS before registering, KiB.
    pub rss_empty_kib: Option<u64>,
    /// RSS with `small` instances, KiB.
    pub rss_small_kib: Option<u64>,
    /// Anonymous part of it, KiB.
    pub rss_anon_small_kib: Option<u64>,
    /// RSS with `large` instances, KiB.
    pub rss_large_kib: Option<u64>,
    /// Anonymous part of it, KiB.
    pub rss_anon_large_kib: Option<u64>,
    /// Nodes killed.
    pub killed: usize,
    /// Seconds from SIGKILL to discovery answering empty.
    pub vanish_secs: f64,
    /// Nodes alive at once just before the kill: netget, sessions open on the registry (its
    /// `netget_sessions` gauge); etcd, keys attached to live leases.
    pub held: u64,
    /// RSS of the registry while it holds them, KiB.
    pub rss_held_kib: Option<u64>,
    /// CPU each phase cost the registry and the load generator.
    pub cpu: std::collections::BTreeMap<String, stats::PhaseCpu>,
}

/// Runs the phase `fut`, failing with `what` if it takes more than two minutes (no phase
/// should), or before it starts if the comparison's time budget is spent.
pub async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = Res<T>>) -> Res<T> {
    budget::check(what)?;
    let limit = Duration::from_secs(120);
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}").into()),
        Err(_) => Err(format!("{what}: not done within {limit:?}").into()),
    }
}

/// Tells the parent a holder is ready, then waits for stdin to close (the parent exited or
/// dropped it) or three minutes, whichever comes first.
pub async fn holder_ready(held: usize) -> Res<()> {
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    println!("ready {held}");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::io::stdin().read_to_end(&mut sink),
    )
    .await;
    Ok(())
}

async fn compare(opts: Opts) -> Res<()> {
    let started = Instant::now();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    if opts.large < opts.small {
        return Err("--instances must be at least --instances-small".into());
    }
    let netget_exe = match &opts.netget {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no parent directory")?
            .join("netget"),
    };
    if !netget_exe.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release)",
            netget_exe.display()
        )
        .into());
    }
    let tmp = procs::TempDir::create(
        std::env::temp_dir().join(format!("netget-vs-etcd-{}", std::process::id())),
    )?;
    let (mut netget, mut etcd) = (Vec::new(), Vec::new());
    let rounds = opts.rounds.max(1);
    let mut partial = None;
    for round in 0..rounds {
        let netget_dir = procs::TempDir::create(tmp.0.join(format!("netget-{round}")))?;
        let etcd_dir = procs::TempDir::create(tmp.0.join(format!("etcd-{round}")))?;
        eprintln!("round {} of {rounds}", round + 1);
        let both = async {
            if round % 2 == 0 {
                let n = netget_side::run(&opts, &netget_exe, &netget_dir.0).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
                    n,
                    etcd_side::run(&opts, &opts.etcd, &etcd_dir.0).await?,
                ))
            } else {
                let e = etcd_side::run(&opts, &opts.etcd, &etcd_dir.0).await?;
                Ok((
                    netget_side::run(&opts, &netget_exe, &netget_dir.0).await?,
                    e,
                ))
            }
        };
        match both.await {
            Ok((n, e)) => {
                netget.push(n);
                etcd.push(e);
            }
            Err(e) if budget::is_spent(e.as_ref()) => {
                eprintln!("{e}: round {} left unfinished", round + 1);
                partial = Some(format!(
                    "{} of {rounds} rounds: {e} in round {} ({:.0} s in)",
                    netget.len(),
                    round + 1,
                    started.elapsed().as_secs_f64()
                ));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if netget.is_empty() {
        return Err(format!(
            "no round completed within the budget ({}): give more with --budget-secs",
            partial.unwrap_or_default()
        )
        .into());
    }
    let mut report = report::Report::new(
        &opts,
        &netget,
        &etcd,
        started.elapsed(),
        loadavg.trim().to_string(),
    )?;
    report.partial = partial;
    report.print();
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.out, serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "results: {} ({:.0} s)",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn main_async(cli: Cli) -> Res<()> {
    match cli.cmd {
        Some(Cmd::Cluster(opts)) => {
            let budget = Duration::from_secs(600);
            tokio::time::timeout(budget, cluster::compare(opts))
                .await
                .map_err(|_| format!("the cluster comparison took more than {budget:?}"))?
        }
        Some(Cmd::HoldNetget {
            url,
            count,
            service,
        }) => netget_side::hold(url, count, service).await,
        Some(Cmd::HoldEtcd {
            endpoint,
            count,
            ttl,
            prefix,
        }) => etcd_side::hold(endpoint, count, ttl, prefix).await,
        None => {
            let budget = cli
                .opts
                .budget_secs
                .map_or_else(|| budget::default_for(&cli.opts), Duration::from_secs);
            eprintln!("time budget: {:.0} s", budget.as_secs_f64());
            budget::start(budget);
            // Past the budget no phase starts, and each is bounded (two minutes), so this limit
            // is only for a phase that hangs past its own bound.
            let hard = budget + Duration::from_secs(300);
            // Dropping the comparison (hard limit, Ctrl-C, SIGTERM) kills every child.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::time::timeout(hard, compare(cli.opts)) => {
                    r.map_err(|_| format!("the comparison hung past its budget ({hard:?})"))?
                }
                _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
                _ = term.recv() => Err("terminated".into()),
            }
        }
    }
}

/// The load generator's allocator, for both sides alike (netget's clients and etcd's): decoding
/// answers allocates a string per field, and glibc's malloc was a tenth of the generator's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(main_async(cli));
    // Children are killed by now; do not wait for lingering tasks (open sockets) to end.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
