//! `netget soak`: holds many sessions on registries it starts (one, or a cluster) for a chosen
//! time, with churn, watchers and keepalives, and reports at every interval what a registry
//! that leaks or stalls would show: its memory and open files, the watchers' event latency,
//! and errors. Then, with `--flood`, one address floods a registry with connections and
//! requests while another measures its own latency (RELIABILITY.md).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::bench::{
    cpu_ticks, open_from, payload, rss_kib, start_child_with, ChildRegistry, LOAD_LIMITS,
};
use crate::client::rest::RestClient;
use crate::client::send_message;
use crate::error::{Error, Result};
use crate::model::{InstanceId, ServiceName, WireDuration};
use crate::wire::{ClientMessage, ServerMessage};

/// Options of `netget soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Sessions to hold, spread over the registries; each registers one instance.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Registries to start: 1, or a cluster of this many.
    #[arg(long, default_value_t = 1)]
    pub registries: usize,
    /// Of the sessions, how many also watch the service they register in and time its events.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// How long to hold them.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: WireDuration,
    /// Time between report lines.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: WireDuration,
    /// Sessions closed and opened again per second, in percent of `--sessions`.
    #[arg(long, default_value_t = 1.0)]
    pub churn: f64,
    /// Growth of memory or open files from the first report to the last that fails the run,
    /// in percent.
    #[arg(long, default_value_t = 25.0)]
    pub max_growth: f64,
    /// Local addresses the sessions connect from, 127.0.0.1 to 127.0.0.N in turn: one address
    /// has about 28,000 ephemeral ports towards one registry, so 100k sessions need 4 or more.
    #[arg(long, default_value_t = 1)]
    pub sources: u8,
    /// Then flood a registry (with its default limits) from one address for this long, while
    /// another address measures its latency; 0 skips it.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub flood: WireDuration,
}

fn parse_duration(s: &str) -> std::result::Result<WireDuration, String> {
    WireDuration::parse(s).map_err(|e| e.to_string())
}

/// What every session task adds to, and each report reads (and resets, for the latencies).
struct Tally {
    open: AtomicUsize,
    /// Handshakes in flight: a burst of thousands at once would time out against any server;
    /// real fleets do not start in the same millisecond either.
    opening: tokio::sync::Semaphore,
    errors: AtomicU64,
    /// The first few errors, said at the end.
    first_errors: Mutex<Vec<String>>,
    events: AtomicU64,
    /// Watch latencies since the last report, in microseconds.
    latencies: Mutex<Vec<u64>>,
    /// Local addresses to connect from (`--sources`): 127.0.0.1 to 127.0.0.N.
    sources: u8,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            open: AtomicUsize::new(0),
            opening: tokio::sync::Semaphore::new(64),
            errors: AtomicU64::new(0),
            first_errors: Mutex::new(Vec::new()),
            events: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            sources: 1,
        }
    }

    /// The address session `n` connects from: the system's choice with one source.
    fn source(&self, n: usize) -> Option<std::net::IpAddr> {
        (self.sources > 1)
            .then(|| std::net::IpAddr::from([127, 0, 0, 1 + (n % usize::from(self.sources)) as u8]))
    }

    fn error(&self, session: usize, e: &Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_errors.lock() {
            if first.len() < 5 {
                first.push(format!("session {session}: {e}"));
            }
        }
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Services the sessions register in, session `n` in the `n % SERVICES`th: each registration
/// reaches a tenth of the watchers. With every watcher on one service, the 10,000 registrations
/// of the opening made a million events for the soak's own process to read on two cores shared
/// with the registry, and starved of CPU it missed its sessions' keepalives (the registry then
/// rightly closed them): the load generator, not the registry, was the limit.
const SERVICES: usize = 10;

fn churned(n: usize) -> ServiceName {
    ServiceName::new(&format!("soak-{}", n % SERVICES))
        .unwrap_or_else(|_| unreachable!("a valid name"))
}

/// One session: registers, maybe watches, answers and sends keepalives until `until`, or until
/// its turn to churn (`life`), then reopens — all of it counted in `tally`.
async fn session(url: String, n: usize, watch: bool, life: Duration, tally: Arc<Tally>) {
    let mut generation = 0u64;
    loop {
        match hold(&url, n, generation, watch, life, &tally).await {
            Ok(true) => generation += 1,
            Ok(false) => return,
            Err(e) => {
                tally.error(n, &e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Holds one session for `life`; `Ok(true)` to churn into a new one, `Ok(false)` when stopped.
async fn hold(
    url: &str,
    n: usize,
    generation: u64,
    watch: bool,
    life: Duration,
    tally: &Tally,
) -> Result<bool> {
    let mut c = {
        let _turn = tally.opening.acquire().await;
        open_from(url, tally.source(n)).await?
    };
    let name = churned(n);
    let mut reg = payload(n);
    reg.metadata.insert("sentAt".into(), now_micros().into());
    send_message(
        &mut c.socket,
        &ClientMessage::Register {
            id: 1,
            name: name.clone(),
            instance_id: InstanceId::new(&format!("s{n}-{generation}")).ok(),
            instance: reg,
        },
    )
    .await?;
    if watch {
        send_message(&mut c.socket, &ClientMessage::Watch { id: 2, name }).await?;
    }
    tally.open.fetch_add(1, Ordering::Relaxed);
    let outcome = keep(&mut c, watch, life, tally).await;
    tally.open.fetch_sub(1, Ordering::Relaxed);
    outcome
}

async fn keep(
    c: &mut crate::client::Connection,
    watch: bool,
    life: Duration,
    tally: &Tally,
) -> Result<bool> {
    // Keepalives as the client libraries keep them: the registry pings every `pingInterval`
    // and reading answers its pings (the WebSocket stack pongs). Sending application pings on
    // top, as this did, doubled the frames of every idle session: with 17,000 sessions the
    // keepalives alone kept both processes busy enough to slow new sessions to a trickle.
    let ends = tokio::time::sleep_until(tokio::time::Instant::now() + life);
    tokio::pin!(ends);
    loop {
        tokio::select! {
            _ = &mut ends => {
                let _ = c.socket.close(None).await;
                return Ok(true);
            }
            frame = c.socket.next() => match frame {
                None => return Err(Error::Closed("the registry closed the session".into())),
                Some(Err(e)) => return Err(Error::Unreachable(e.to_string())),
                Some(Ok(Message::Text(text))) => match ServerMessage::parse(&text) {
                    Ok(ServerMessage::Error { error, .. }) => {
                        return Err(Error::Protocol(format!("refused: {} {}", error.code, error.message)));
                    }
                    Ok(ServerMessage::Event { event, .. }) if watch => {
                        tally.events.fetch_add(1, Ordering::Relaxed);
                        if let Some(sent) = event.instance.metadata.get("sentAt").and_then(|v| v.as_u64()) {
                            if event.kind == crate::model::EventKind::Up {
                                if let Ok(mut l) = tally.latencies.lock() {
                                    l.push(now_micros().saturating_sub(sent));
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(Error::Protocol(format!("unreadable frame: {e}"))),
                },
                // Why the registry ended it, for the report (the stream ends right after).
                Some(Ok(Message::Close(Some(f)))) => {
                    return Err(Error::Closed(format!("the registry closed the session ({} {})", u16::from(f.code), f.reason)));
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Open files of a process, from /proc.
fn open_files(pid: Option<u32>) -> Option<usize> {
    Some(
        std::fs::read_dir(format!("/proc/{}/fd", pid?))
            .ok()?
            .count(),
    )
}

fn percentile(v: &mut [u64], p: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[((v.len() as f64 * p) as usize).min(v.len() - 1)])
}

/// Starts `n` registries, the later ones joining the first, and waits until each serves the
/// whole cluster.
async fn start_registries(
    n: usize,
    config: &str,
    what: &str,
) -> Result<(Vec<ChildRegistry>, tempdir::Dir)> {
    let dir = tempdir::Dir::new(what)?;
    let mut all: Vec<ChildRegistry> = Vec::new();
    for i in 0..n {
        let extra: Vec<String> = match (n, all.first()) {
            (1, _) => vec![],
            (_, None) => vec!["--gossip-listen".into(), "127.0.0.1:0".into()],
            (_, Some(first)) => vec!["--join".into(), first.url.clone()],
        };
        all.push(start_child_with(dir.0.join(format!("r{i}")), false, config, &extra).await?);
    }
    if n > 1 {
        for r in &all {
            let rest = RestClient::new(&r.url)?;
            let ready = async {
                for _ in 0..300 {
                    if let Ok(h) = rest.health().await {
                        if h["ready"] == true && h["cluster"]["live"].as_u64() == Some(n as u64) {
                            return true;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            };
            if !ready.await {
                return Err(Error::Internal(format!(
                    "registry {} did not see a ready cluster of {n} within 30 s",
                    r.url
                )));
            }
        }
    }
    Ok((all, dir))
}

/// A scratch folder removed when dropped.
mod tempdir {
    use crate::error::{Error, Result};

    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(what: &str) -> Result<Dir> {
            let p = std::env::temp_dir().join(format!("netget-{what}-{}", std::process::id()));
            std::fs::create_dir_all(&p).map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
            Ok(Dir(p))
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Open files beyond the sessions' sockets: the registries' listeners, store, watchers of the
/// report, the flood's connections.
const SPARE_FILES: u64 = 1_000;

/// Raises this process's open-file limit to its hard limit (each session is a socket here too,
/// and the registry it starts inherits the limit) and refuses a run that cannot fit under it.
fn raise_fd_limit(sessions: usize) -> Result<()> {
    let limit = crate::registry::listener::raise_open_file_limit();
    let needed = sessions as u64 + SPARE_FILES;
    if limit < needed {
        return Err(Error::InvalidInput(format!(
            "--sessions {sessions} needs {needed} open files in this process and in the registry, \
             but the limit here is {limit} and cannot be raised further (its hard limit, ulimit -Hn); \
             raise the hard limit first (as a privileged user: ulimit -Hn {needed}, or \
             LimitNOFILE= for a service), or hold at most {} sessions",
            limit.saturating_sub(SPARE_FILES)
        )));
    }
    Ok(())
}

pub async fn run(a: SoakArgs) -> Result<()> {
    if a.registries == 0 || a.sessions == 0 || a.sources == 0 {
        return Err(Error::InvalidInput(
            "--registries, --sessions and --sources must be at least 1".into(),
        ));
    }
    raise_fd_limit(a.sessions)?;
    // Room for every session, and the sessions a churn has closed but not yet let go of.
    let limits = format!(
        "{LOAD_LIMITS}max_sessions = {}\n",
        a.sessions + a.sessions / 10 + 100
    );
    let (registries, _dir) = start_registries(a.registries, &limits, "soak").await?;
    let pids: Vec<Option<u32>> = registries.iter().map(|r| r.child.id()).collect();
    let tally = Arc::new(Tally {
        sources: a.sources,
        ..Tally::new()
    });
    let duration = a.duration.0;
    // Each session lives `sessions / (churn% × sessions)` seconds before it is reopened, so
    // that `churn` percent of them turn over each second; their lives are staggered.
    let per_second = (a.sessions as f64 * a.churn / 100.0).max(0.0);
    let life = if per_second > 0.0 {
        Duration::from_secs_f64(a.sessions as f64 / per_second)
    } else {
        duration * 2
    };
    println!(
        "soak: {} sessions ({} watching) on {} registr{}, {:.0} reopened per second, for {:?}",
        a.sessions,
        a.watchers.min(a.sessions),
        a.registries,
        if a.registries == 1 { "y" } else { "ies" },
        per_second,
        duration
    );
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(a.sessions);
    for n in 0..a.sessions {
        let url = registries[n % registries.len()].url.clone();
        let first = life.mul_f64((n as f64 + 1.0) / a.sessions as f64);
        let tally = tally.clone();
        let watch = n < a.watchers;
        tasks.push(tokio::spawn(async move {
            // The first life is a fraction of the others, so reopenings are spread in time.
            match hold(&url, n, u64::MAX, watch, first, &tally).await {
                Ok(true) => session(url, n, watch, life, tally).await,
                Err(e) => {
                    tally.error(n, &e);
                    session(url, n, watch, life, tally).await
                }
                Ok(false) => {}
            }
        }));
        if n % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    let opened = async {
        while tally.open.load(Ordering::Relaxed) < a.sessions && started.elapsed() < duration {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    opened.await;
    // What the watchers timed while everything was opening is not the steady state.
    if let Ok(mut l) = tally.latencies.lock() {
        l.clear();
    }
    println!("soak: all sessions open after {:?}", started.elapsed());
    println!(
        "{:>7} {:>8} {:>10} {:>8} {:>7} {:>10} {:>8} {:>7}",
        "time", "sessions", "rss MiB", "fds", "cpu %", "events", "p99 ms", "errors"
    );
    let mut first: Option<(u64, usize)> = None;
    let mut last = (0u64, 0usize);
    let mut worst_p99 = 0u64;
    let holding = Instant::now();
    // The registries' CPU over each interval, in percent of one core.
    let cpu = || pids.iter().filter_map(|p| cpu_ticks(*p)).sum::<u64>();
    let (mut ticks, mut ticked) = (cpu(), Instant::now());
    while holding.elapsed() < duration {
        tokio::time::sleep(a.interval.0.min(duration.saturating_sub(holding.elapsed()))).await;
        let rss: u64 = pids.iter().filter_map(|p| rss_kib(*p)).sum();
        let fds: usize = pids.iter().filter_map(|p| open_files(*p)).sum();
        let mut lat = tally
            .latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        let p99 = percentile(&mut lat, 0.99);
        let now_ticks = cpu();
        // Clock ticks are 1/100 s: ticks per second is percent of one core.
        let cpu_pct = now_ticks.saturating_sub(ticks) as f64 / ticked.elapsed().as_secs_f64();
        (ticks, ticked) = (now_ticks, Instant::now());
        worst_p99 = worst_p99.max(p99.unwrap_or(0));
        println!(
            "{:>6.0}s {:>8} {:>10.1} {:>8} {:>7.1} {:>10} {:>8} {:>7}",
            holding.elapsed().as_secs_f64(),
            tally.open.load(Ordering::Relaxed),
            rss as f64 / 1024.0,
            fds,
            cpu_pct,
            tally.events.load(Ordering::Relaxed),
            p99.map(|v| format!("{:.2}", v as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            tally.errors.load(Ordering::Relaxed)
        );
        first.get_or_insert((rss, fds));
        last = (rss, fds);
    }
    for t in &tasks {
        t.abort();
    }
    let errors = tally.errors.load(Ordering::Relaxed);
    let (rss0, fds0) = first.unwrap_or(last);
    let growth = |a: f64, b: f64| if a > 0.0 { (b - a) / a * 100.0 } else { 0.0 };
    let (rss_growth, fds_growth) = (
        growth(rss0 as f64, last.0 as f64),
        growth(fds0 as f64, last.1 as f64),
    );
    println!(
        "soak: {errors} errors; memory {rss_growth:+.1}%, open files {fds_growth:+.1}% from the first report to the last; worst watch p99 {:.2} ms",
        worst_p99 as f64 / 1000.0
    );
    if let Ok(first) = tally.first_errors.lock() {
        for e in first.iter() {
            println!("soak: error: {e}");
        }
    }
    drop(registries);
    let mut failures = Vec::new();
    if errors > 0 {
        failures.push(format!("{errors} errors"));
    }
    if rss_growth > a.max_growth || fds_growth > a.max_growth {
        failures.push(format!("growth beyond {}%", a.max_growth));
    }
    if a.watchers > 0 && tally.events.load(Ordering::Relaxed) == 0 && per_second > 0.0 {
        failures.push("the watchers saw no event".into());
    }
    if a.flood.0 > Duration::ZERO {
        flood(a.flood.0).await?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "soak failed: {}",
            failures.join(", ")
        )))
    }
}

/// One GET over a kept-alive connection; its latency, or `None` when refused or cut.
async fn get(conn: &mut TcpStream, path: &str) -> Option<Duration> {
    let t = Instant::now();
    let req = format!("GET {path} HTTP/1.1\r\nhost: soak\r\n\r\n");
    conn.write_all(req.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&got[..head]).to_ascii_lowercase();
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= head + 4 + len {
                return text.starts_with("http/1.1 200").then(|| t.elapsed());
            }
        }
    }
}

async fn connect_from(ip: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((ip, 0)))?;
    s.connect(to).await
}

/// 127.0.0.1 queries a registry (its limits, at a lower request rate) every 5 ms, before and while
/// 127.0.0.2 opens connections past its cap and sends requests as fast as they are answered;
/// prints the quiet client's p50/p99 both times.
async fn flood(length: Duration) -> Result<()> {
    // The registry's own limits, with the per-address request rate (and burst) lowered from
    // 20,000/s (50,000) to 2,000/s: one process here cannot send 20,000/s on top of serving
    // them, and the point is the limiter at work.
    let (registries, _dir) = start_registries(
        1,
        "[limits]\nrequests_per_second_per_ip = 2000\nburst_per_ip = 2000\n",
        "flood",
    )
    .await?;
    let url = &registries[0].url;
    let to: SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| Error::Internal(format!("{url}: {e}")))?;
    let path = "/v1/networks/development/services";
    // The measuring client runs on a thread and runtime of its own, so the flood's tasks in
    // this process do not queue it: what it sees is the registry's answer time.
    let measure = move |length: Duration| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Internal(e.to_string()))?;
            rt.block_on(async move {
                let dial = || async {
                    connect_from([127, 0, 0, 1], to)
                        .await
                        .map_err(|e| Error::Unreachable(e.to_string()))
                };
                let mut conn = dial().await?;
                let (mut lat, mut failed) = (Vec::new(), 0usize);
                let until = Instant::now() + length;
                // A client as clients are: a query every 5 ms, well within its address's
                // rate limit.
                let mut every = tokio::time::interval(Duration::from_millis(5));
                while Instant::now() < until {
                    every.tick().await;
                    match get(&mut conn, path).await {
                        Some(d) => lat.push(d.as_micros() as u64),
                        None => {
                            failed += 1;
                            conn = dial().await?;
                        }
                    }
                }
                Ok::<_, Error>((lat, failed))
            })
        })
    };
    let joined = |h: std::thread::JoinHandle<Result<(Vec<u64>, usize)>>| {
        h.join()
            .map_err(|_| Error::Internal("the measuring thread panicked".into()))?
    };
    let (mut quiet, quiet_failed) = joined(measure(length))?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (answered, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut flooders = Vec::new();
    for _ in 0..800 {
        let (stop, answered, refused) = (stop.clone(), answered.clone(), refused.clone());
        flooders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut c) = connect_from([127, 0, 0, 2], to).await else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while !stop.load(Ordering::Relaxed) {
                    match get(&mut c, path).await {
                        Some(_) => answered.fetch_add(1, Ordering::Relaxed),
                        None => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    };
                }
            }
        }));
    }
    let (mut loud, loud_failed) = joined(measure(length))?;
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.abort();
    }
    let ms = |v: Option<u64>| v.map(|v| v as f64 / 1000.0).unwrap_or(f64::NAN);
    let (q50, q99) = (
        ms(percentile(&mut quiet, 0.5)),
        ms(percentile(&mut quiet, 0.99)),
    );
    let (l50, l99) = (
        ms(percentile(&mut loud, 0.5)),
        ms(percentile(&mut loud, 0.99)),
    );
    println!(
        "flood: from 127.0.0.2, 800 connections for {length:?}: {} answered, {} refused or cut",
        answered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    println!(
        "flood: 127.0.0.1 alone: p50 {q50:.2} ms, p99 {q99:.2} ms, {quiet_failed} failed; during the flood: p50 {l50:.2} ms, p99 {l99:.2} ms, {loud_failed} failed ({:.1}x p99)",
        l99 / q99
    );
    if loud_failed > 0 {
        return Err(Error::Internal(format!(
            "flood: {loud_failed} of the other client's requests failed during the flood"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_sessions_than_the_open_file_limit_are_refused_with_what_to_do() {
        let e = raise_fd_limit(usize::MAX / 2).unwrap_err();
        assert_eq!(e.code(), "NETGET_INVALID_INPUT");
        let text = e.to_string();
        assert!(text.contains("ulimit -Hn"), "{text}");
        assert!(text.contains("or hold at most"), "{text}");
        assert!(raise_fd_limit(10).is_ok());
    }

    #[test]
    fn sessions_are_spread_over_the_source_addresses_in_turn() {
        let mut t = Tally::new();
        assert_eq!(t.source(7), None, "one source: the system's choice");
        t.sources = 4;
        let ips: Vec<_> = (0..5).filter_map(|n| t.source(n)).collect();
        let want: Vec<std::net::IpAddr> = [1, 2, 3, 4, 1]
            .iter()
            .map(|&d| std::net::IpAddr::from([127, 0, 0, d]))
            .collect();
        assert_eq!(ips, want);
    }
}
