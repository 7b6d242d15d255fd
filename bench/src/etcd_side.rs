//! The etcd half: a single-node etcd child process used the way a registry uses it. An instance
//! is a key `/services/<network>/<name>/<id>` holding the same JSON as a netget registration,
//! attached to a lease of its own with a TTL; discovery is a get by prefix; push is a watch on
//! the prefix. The load generator has the same shape as the netget half: `connections` client
//! connections, `inflight` requests in flight over them.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, PutOptions, WatchOptions};
use netget::model::Registration;

use crate::procs::{rss, start_etcd, start_holder};
use crate::stats::{etcd_value, sample, sent_at, strided, CpuMeter, Latency, PhaseCpu};
use crate::{bounded, wrk, Figures, Opts, Res};

const PREFIX: &str = "/services/development/";

/// TTL of the leases of the load phases: long enough to outlive the run.
const LONG_TTL: i64 = 900;

pub(crate) async fn connect(endpoint: &str) -> Res<Client> {
    Ok(Client::connect([endpoint], None).await?)
}

/// Runs `work(client, indices)` on `inflight` tasks over `clients`, indices of `range` strided
/// among them; returns operations (indices) per second.
async fn spread<F, Fut>(
    clients: &[Client],
    range: std::ops::Range<usize>,
    inflight: usize,
    work: F,
) -> Res<f64>
where
    F: Fn(Client, Vec<usize>) -> Fut,
    Fut: std::future::Future<Output = Result<(), etcd_client::Error>> + Send + 'static,
{
    let n = range.len();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(inflight);
    for t in 0..inflight.max(1) {
        let client = clients[t % clients.len()].clone();
        tasks.push(tokio::spawn(work(
            client,
            strided(range.clone(), inflight.max(1), t),
        )));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Registers `range` as a registry would, under services `<service>-0` .. `<service>-99`: a
/// lease grant, then a put attached to it.
pub(crate) async fn register(
    clients: &[Client],
    service: &'static str,
    range: std::ops::Range<usize>,
    inflight: usize,
) -> Res<f64> {
    spread(clients, range, inflight, move |mut c, ids| async move {
        for i in ids {
            let lease = c.lease_grant(LONG_TTL, None).await?.id();
            let key = format!("{PREFIX}{service}-{}/i-{i}", i % 100);
            c.put(
                key,
                etcd_value(i, None),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        }
        Ok(())
    })
    .await
}

/// Gets of the prefix of a 10-instance service, each answer decoded as netget's client decodes
/// its own; returns queries/s.
async fn discovery(
    clients: &[Client],
    queries: usize,
    inflight: usize,
    serializable: bool,
) -> Res<f64> {
    let per = queries / inflight.max(1);
    let total = per * inflight.max(1);
    spread(clients, 0..total, inflight, move |mut c, ids| async move {
        let prefix = format!("{PREFIX}bench-discovery/");
        let mut opts = GetOptions::new().with_prefix();
        if serializable {
            opts = opts.with_serializable();
        }
        for _ in ids {
            let answer = c.get(prefix.as_str(), Some(opts.clone())).await?;
            let decoded = answer
                .kvs()
                .iter()
                .filter_map(|kv| serde_json::from_slice::<Registration>(kv.value()).ok())
                .count();
            if decoded != 10 {
                return Err(etcd_client::Error::InvalidArgs(format!(
                    "expected 10 instances, got {decoded}"
                )));
            }
        }
        Ok(())
    })
    .await
}

/// `watchers` connections each watch the prefix of one service; one writer puts an instance of
/// it `events` times, `pace` apart. Each sample runs from the moment the writer sends its put to
/// the moment a watcher has decoded the event.
/// (`endpoint`: the watchers'; `writer`: the writer's, the same member or another.)
pub(crate) async fn watch(
    endpoint: &str,
    writer: &str,
    pid: Option<u32>,
    watchers: usize,
    events: usize,
    pace: Duration,
) -> Res<(Latency, PhaseCpu)> {
    let prefix = format!("{PREFIX}bench-watch/");
    let sent = sent_at(events);
    let mut tasks = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        let mut client = connect(endpoint).await?;
        let mut stream = client
            .watch(prefix.as_str(), Some(WatchOptions::new().with_prefix()))
            .await?;
        loop {
            let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .map_err(|_| "etcd did not confirm a watch within 10 s")??
                .ok_or("etcd closed a watch")?;
            if r.created() {
                break;
            }
        }
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut got = Vec::with_capacity(events);
            let mut seen = 0;
            while seen < events {
                let msg =
                    match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
                        Ok(Ok(Some(m))) => m,
                        _ => break,
                    };
                let now = Instant::now();
                for ev in msg.events() {
                    seen += 1;
                    let seq = ev
                        .kv()
                        .and_then(|kv| serde_json::from_slice::<Registration>(kv.value()).ok())
                        .and_then(|r| r.metadata.get("seq").and_then(|v| v.as_u64()));
                    if let Some(d) = sample(&sent, seq, now) {
                        got.push(d);
                    }
                }
            }
            got
        }));
    }
    let mut writer = connect(writer).await?;
    let key = format!("{prefix}w");
    let meter = CpuMeter::start(pid);
    let t0 = tokio::time::Instant::now();
    for seq in 0..events {
        // A fixed rate, not a fixed gap after each answer: both systems are offered the same
        // load (as long as they keep up with it).
        tokio::time::sleep_until(t0 + pace * seq as u32).await;
        // Encoding the value counts, as encoding the `register` message does for netget.
        if let Some(slot) = sent.get(seq) {
            let _ = slot.set(Instant::now());
        }
        writer
            .put(key.as_str(), etcd_value(0, Some(seq as u64)), None)
            .await?;
    }
    let mut samples = Vec::with_capacity(watchers * events);
    for t in tasks {
        samples.extend(t.await?);
    }
    let cpu = meter.stop(samples.len());
    Ok((Latency::of(samples, events, watchers), cpu))
}

/// Plain puts (no lease, so nothing that expires): etcd's cheapest durable write, one raft
/// entry each. Not a registration; the stricter comparison for netget's durable ones.
async fn bare_puts(clients: &[Client], n: usize, inflight: usize) -> Res<f64> {
    spread(clients, 0..n, inflight, |mut c, ids| async move {
        for i in ids {
            let key = format!("{PREFIX}bare-{}/d-{i}", i % 100);
            c.put(key, etcd_value(i, None), None).await?;
        }
        Ok(())
    })
    .await
}

/// Keys under `prefix`, fetched with their values as discovery would.
pub(crate) async fn count(client: &Client, prefix: &str) -> Res<usize> {
    let mut kv = client.kv_client().max_decoding_message_size(256 << 20);
    Ok(kv
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?
        .kvs()
        .len())
}

/// `n` leases with a TTL of `ttl` seconds kept alive by a child process, one key each; SIGKILL
/// it, then poll the prefix until it is empty. Returns the seconds from the signal to the empty
/// answer, the keys held just before, and etcd's RSS then.
async fn killed_nodes(
    endpoint: &str,
    pid: Option<u32>,
    client: &Client,
    n: usize,
    ttl: i64,
    limit: Duration,
) -> Res<(f64, u64, Option<u64>)> {
    let prefix = format!("{PREFIX}killed-nodes/");
    let args: Vec<String> = vec![
        "hold-etcd".into(),
        "--endpoint".into(),
        endpoint.into(),
        "--count".into(),
        n.to_string(),
        "--ttl".into(),
        ttl.to_string(),
        "--prefix".into(),
        prefix.clone(),
    ];
    let mut holder = start_holder(&args, Duration::from_secs(120)).await?;
    let before = count(client, &prefix).await?;
    if before != n {
        return Err(format!("{before} of {n} held keys are in etcd").into());
    }
    let rss_held = rss(pid).0;
    let killed_at = holder.kill()?;
    loop {
        if count(client, &prefix).await? == 0 {
            return Ok((killed_at.elapsed().as_secs_f64(), before as u64, rss_held));
        }
        if killed_at.elapsed() > limit {
            return Err(format!("killed nodes' keys still in etcd after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Discovery through etcd's JSON gateway (`POST /v3/kv/range`, the 10 keys of the service's
/// prefix, linearizable as the gRPC reads above) driven by wrk for `wrk_secs`, after checking
/// once that the request wrk repeats answers the 10 keys. Returns queries/s and the CPU.
async fn wrk_discovery(
    opts: &Opts,
    endpoint: &str,
    pid: Option<u32>,
    dir: &Path,
) -> Res<(f64, PhaseCpu)> {
    let prefix = format!("{PREFIX}bench-discovery/");
    // The end of a prefix range: the prefix with its last byte one higher ('/' + 1 = '0').
    let end = format!("{PREFIX}bench-discovery0");
    let body = format!(
        r#"{{"key":"{}","range_end":"{}"}}"#,
        wrk::base64(prefix.as_bytes()),
        wrk::base64(end.as_bytes())
    );
    let req = wrk::Request {
        base: endpoint,
        path: "/v3/kv/range",
        json: Some(&body),
    };
    let (status, answer) = req.once().await?;
    let kvs = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v.get("kvs").and_then(|k| k.as_array()).map(Vec::len));
    if status != 200 || kvs != Some(10) {
        return Err(
            format!("etcd's JSON gateway answered {status} with {kvs:?} keys: {answer}").into(),
        );
    }
    req.measure("etcd discovery driven by wrk", opts, pid, dir)
        .await
}

/// Every etcd figure, in one etcd process.
pub async fn run(opts: &Opts, exe: &Path, dir: &Path) -> Res<Figures> {
    let mut f = Figures::default();
    let (mut etcd, endpoint) = start_etcd(exe, dir).await?;
    let pid = etcd.pid();
    eprintln!("etcd: {endpoint} (pid {pid:?})");
    let mut clients = Vec::with_capacity(opts.connections.max(1));
    for _ in 0..opts.connections.max(1) {
        clients.push(connect(&endpoint).await?);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.rss_empty_kib = rss(pid).0;

    let meter = CpuMeter::start(pid);
    f.registrations_small_per_sec = bounded(
        "etcd registrations",
        register(&clients, "bench", 0..opts.small, opts.inflight),
    )
    .await?;
    f.cpu
        .insert("registrationsSmall".into(), meter.stop(opts.small));
    tokio::time::sleep(Duration::from_millis(300)).await;
    (f.rss_small_kib, f.rss_anon_small_kib) = rss(pid);
    let meter = CpuMeter::start(pid);
    f.registrations_large_per_sec = bounded(
        "etcd registrations",
        register(&clients, "bench", opts.small..opts.large, opts.inflight),
    )
    .await?;
    f.cpu.insert(
        "registrationsLarge".into(),
        meter.stop(opts.large - opts.small),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    (f.rss_large_kib, f.rss_anon_large_kib) = rss(pid);
    eprintln!(
        "etcd: {} then {} registrations/s, RSS {:?} KiB",
        f.registrations_small_per_sec as u64, f.registrations_large_per_sec as u64, f.rss_large_kib
    );

    let mut c = clients[0].clone();
    for i in 0..10 {
        let lease = c.lease_grant(LONG_TTL, None).await?.id();
        c.put(
            format!("{PREFIX}bench-discovery/d-{i}"),
            etcd_value(i, None),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    }
    let meter = CpuMeter::start(pid);
    f.discovery_per_sec = bounded(
        "etcd discovery",
        discovery(&clients, opts.queries, opts.inflight, false),
    )
    .await?;
    f.cpu.insert("discovery".into(), meter.stop(opts.queries));
    f.discovery_serializable_per_sec = Some(
        bounded(
            "etcd discovery",
            discovery(&clients, opts.queries, opts.inflight, true),
        )
        .await?,
    );
    let (rate, cpu) = wrk_discovery(opts, &endpoint, pid, dir).await?;
    f.discovery_wrk_per_sec = Some(rate);
    f.cpu.insert("discoveryWrk".into(), cpu);
    eprintln!(
        "etcd: {} discoveries/s ({:?} serializable), {} through the JSON gateway driven by wrk",
        f.discovery_per_sec as u64,
        f.discovery_serializable_per_sec.map(|v| v as u64),
        rate as u64
    );

    let (pace, pace_many) = (
        Duration::from_millis(opts.pace_ms),
        Duration::from_millis(opts.pace_many_ms),
    );
    let cpu;
    (f.watch_one, cpu) = bounded(
        "etcd watch",
        watch(&endpoint, &endpoint, pid, 1, opts.events_one, pace),
    )
    .await?;
    f.cpu.insert("watchOne".into(), cpu);
    let cpu;
    (f.watch_many, cpu) = bounded(
        "etcd watch",
        watch(
            &endpoint,
            &endpoint,
            pid,
            opts.watchers,
            opts.events_many,
            pace_many,
        ),
    )
    .await?;
    f.cpu.insert("watchMany".into(), cpu);
    eprintln!(
        "etcd: watch p99 {:.0} µs (1 watcher), {:.0} µs ({} watchers)",
        f.watch_one.p99_us, f.watch_many.p99_us, opts.watchers
    );

    // netget's durable registrations have a TTL, so etcd's are registrations as above.
    let meter = CpuMeter::start(pid);
    f.durable_per_sec = bounded(
        "etcd durable registrations",
        register(&clients, "durable", 0..opts.durable, opts.inflight),
    )
    .await?;
    f.cpu.insert("durable".into(), meter.stop(opts.durable));
    let meter = CpuMeter::start(pid);
    f.durable_put_per_sec = Some(
        bounded(
            "etcd bare puts",
            bare_puts(&clients, opts.durable, opts.inflight),
        )
        .await?,
    );
    f.cpu.insert("durablePut".into(), meter.stop(opts.durable));
    eprintln!(
        "etcd: {} durable registrations/s, {:?} bare puts/s",
        f.durable_per_sec as u64,
        f.durable_put_per_sec.map(|v| v as u64)
    );

    // Every key written so far is still there: the registrations, the discovered service, the
    // watched instance, the durable registrations and the bare puts.
    let keys = clients[0]
        .clone()
        .get(
            PREFIX,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await?
        .count();
    let expected = (opts.large + 10 + 1 + 2 * opts.durable) as i64;
    if keys != expected {
        return Err(format!("etcd holds {keys} instances, expected {expected}").into());
    }

    f.killed = opts.killed;
    (f.vanish_secs, f.held, f.rss_held_kib) = bounded(
        "etcd killed nodes",
        killed_nodes(
            &endpoint,
            pid,
            &clients[0],
            opts.killed,
            opts.etcd_ttl,
            Duration::from_secs(90),
        ),
    )
    .await?;
    eprintln!(
        "etcd: {} killed nodes gone in {:.2} s",
        opts.killed, f.vanish_secs
    );
    etcd.check_alive()?;
    Ok(f)
}

/// A default request of the type a channel carries: etcd-client exports the keep-alive
/// request type only with its server build, but the keeper's sender names it.
fn blank<T: Default>(_: &tokio::sync::mpsc::Sender<T>) -> T {
    T::default()
}

/// The child process of the killed-nodes phase: `count` leases of `ttl` seconds with one key
/// each, renewed every ttl/3 over one keep-alive stream per connection (as Go's clientv3
/// lessor does), until stdin closes or three minutes pass.
pub async fn hold(endpoint: String, count: usize, ttl: i64, prefix: String) -> Res<()> {
    let conns = 8;
    let mut clients = Vec::with_capacity(conns);
    let mut lists: Vec<Arc<Mutex<Vec<i64>>>> = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut c = connect(&endpoint).await?;
        // A keep-alive stream must start on a lease; this one holds no key.
        let anchor = c.lease_grant(ttl, None).await?.id();
        let (keeper, mut stream) = c.lease_keep_alive(anchor).await?;
        let list = Arc::new(Mutex::new(vec![anchor]));
        tokio::spawn(async move { while let Ok(Some(_)) = stream.message().await {} });
        let ids = list.clone();
        let every = Duration::from_millis((ttl.max(1) as u64) * 1000 / 3);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let now: Vec<i64> = ids.lock().map(|v| v.to_vec()).unwrap_or_default();
                for id in now {
                    let mut req = blank(&keeper.sender);
                    req.id = id;
                    if keeper.sender.send(req).await.is_err() {
                        return;
                    }
                }
            }
        });
        clients.push(c);
        lists.push(list);
    }
    let inflight = 64;
    let mut tasks = Vec::with_capacity(inflight);
    for t in 0..inflight {
        let mut c = clients[t % conns].clone();
        let list = lists[t % conns].clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            for i in strided(0..count, inflight, t) {
                let lease = c.lease_grant(ttl, None).await?.id();
                if let Ok(mut l) = list.lock() {
                    l.push(lease);
                }
                c.put(
                    format!("{prefix}k-{i}"),
                    etcd_value(i, None),
                    Some(PutOptions::new().with_lease(lease)),
                )
                .await?;
            }
            Ok::<_, etcd_client::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    crate::holder_ready(count).await
}
