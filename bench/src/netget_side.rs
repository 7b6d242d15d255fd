//! The netget half: a `netget registry` child process driven over 127.0.0.1 with the pieces of
//! `netget bench` (sessions pipelined, REST client, the same payload).

use std::path::Path;
use std::time::{Duration, Instant};

use netget::client::rest::RestClient;
use netget::client::{recv_message, send_message, Connection};
use netget::model::{InstanceId, ServiceName};
use netget::testsuite::{open, payload, pipeline, register_many};
use netget::wire::{ClientMessage, ResultData, ServerMessage};

use crate::procs::{rss, start_holder, start_netget};
use crate::stats::{sample, sent_at, strided, CpuMeter, Latency, PhaseCpu};
use crate::{bounded, wrk, Figures, Opts, Res};

fn name(s: &str) -> Res<ServiceName> {
    Ok(ServiceName::new(s)?)
}

/// Keeps reading a session, so it answers the registry's pings and its instances stay (a
/// session silent for the session timeout is ended and its instances removed).
pub(crate) fn keep_reading(mut conn: Connection) {
    tokio::spawn(async move { while recv_message(&mut conn.socket).await.is_ok() {} });
}

/// Registers `range` over `conns`, `window` requests in flight on each; returns registrations/s.
pub(crate) async fn register(
    conns: Vec<Connection>,
    range: std::ops::Range<usize>,
    window: usize,
) -> Res<(Vec<Connection>, f64)> {
    let n = range.len();
    let sessions = conns.len();
    let mut batches = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let mut msgs = Vec::new();
        for i in strided(range.clone(), sessions, s) {
            msgs.push(ClientMessage::Register {
                id: i as u64,
                name: name(&format!("bench-{}", i % 100))?,
                instance_id: InstanceId::new(&format!("i-{i}")).ok(),
                instance: payload(i),
            });
        }
        batches.push(msgs);
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sessions);
    for (mut conn, msgs) in conns.into_iter().zip(batches) {
        tasks.push(tokio::spawn(async move {
            let refused = pipeline(&mut conn.socket, msgs, window).await;
            (conn, refused)
        }));
    }
    let mut held = Vec::with_capacity(sessions);
    for t in tasks {
        let (conn, refused) = t.await?;
        let refused = refused?;
        if refused > 0 {
            return Err(format!("netget refused {refused} registrations").into());
        }
        held.push(conn);
    }
    Ok((held, n as f64 / start.elapsed().as_secs_f64()))
}

/// `queries` HTTP discoveries of a 10-instance service, `inflight` at once over keep-alive
/// connections; returns queries/s.
async fn discovery(url: &str, queries: usize, inflight: usize) -> Res<f64> {
    let rest = RestClient::new(url)?;
    let per = queries / inflight.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..inflight.max(1) {
        let rest = rest.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let d = rest
                    .discover("development", "bench-discovery", true, &[])
                    .await
                    .map_err(|e| e.to_string())?;
                if d.instances.len() != 10 {
                    return Err(format!("expected 10 instances, got {}", d.instances.len()));
                }
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * inflight.max(1)) as f64 / start.elapsed().as_secs_f64())
}

/// HTTP discovery of the 10-instance service driven by wrk for `wrk_secs`, after checking
/// once that the request wrk repeats answers the 10 instances. Returns queries/s and the CPU.
async fn wrk_discovery(
    opts: &Opts,
    url: &str,
    pid: Option<u32>,
    dir: &Path,
) -> Res<(f64, PhaseCpu)> {
    let req = wrk::Request {
        base: url,
        path: "/v1/networks/development/services/bench-discovery?healthy=true",
        json: None,
    };
    let (status, body) = req.once().await?;
    let answer: netget::model::Discovery = serde_json::from_str(&body)
        .map_err(|e| format!("netget's discovery answer ({status}): {e}: {body}"))?;
    if status != 200 || answer.instances.len() != 10 {
        return Err(format!(
            "netget's discovery answered {status} with {} instances",
            answer.instances.len()
        )
        .into());
    }
    req.measure("netget discovery driven by wrk", opts, pid, dir)
        .await
}

/// `queries` discoveries of a 10-instance service over `conns` client sessions (WebSocket, the
/// way the client libraries discover), `inflight` at once over all of them; each answer is
/// decoded and checked. Returns queries/s.
async fn session_discovery(
    conns: Vec<Connection>,
    queries: usize,
    inflight: usize,
) -> Res<(Vec<Connection>, f64)> {
    let sessions = conns.len().max(1);
    let window = (inflight / sessions).max(1);
    let per = queries / sessions;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sessions);
    for mut conn in conns {
        tasks.push(tokio::spawn(async move {
            let service = name("bench-discovery").map_err(|e| e.to_string())?;
            let (mut sent, mut done) = (0usize, 0usize);
            while done < per {
                while sent < per && sent - done < window {
                    let q = ClientMessage::Discover {
                        id: sent as u64,
                        name: service.clone(),
                        healthy_only: true,
                        tags: vec![],
                    };
                    send_message(&mut conn.socket, &q)
                        .await
                        .map_err(|e| e.to_string())?;
                    sent += 1;
                }
                match recv_message(&mut conn.socket)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    ServerMessage::Result {
                        data: ResultData::Discovery(d),
                        ..
                    } => {
                        if d.instances.len() != 10 {
                            return Err(format!(
                                "expected 10 instances, got {}",
                                d.instances.len()
                            ));
                        }
                        done += 1;
                    }
                    ServerMessage::Error { error, .. } => return Err(error.message),
                    _ => {}
                }
            }
            Ok::<_, String>(conn)
        }));
    }
    let mut held = Vec::with_capacity(sessions);
    for t in tasks {
        held.push(t.await??);
    }
    Ok((
        held,
        (per * sessions) as f64 / start.elapsed().as_secs_f64(),
    ))
}

/// `watchers` sessions watch one service; one writer session re-registers an instance of it
/// `events` times, `pace` apart. Each sample runs from the moment the writer sends its
/// `register` to the moment a watcher has decoded the event.
/// `watchers` sessions on `url` watch one service; a writer on `writer_url` (the same registry,
/// or another of its cluster) changes it `events` times, `pace` apart.
pub(crate) async fn watch(
    url: &str,
    writer_url: &str,
    pid: Option<u32>,
    watchers: usize,
    events: usize,
    pace: Duration,
) -> Res<(Latency, PhaseCpu)> {
    let service = name("bench-watch")?;
    let sent = sent_at(events);
    let mut tasks = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        let mut c = open(url).await?;
        send_message(
            &mut c.socket,
            &ClientMessage::Watch {
                id: 1,
                name: service.clone(),
            },
        )
        .await?;
        // The answer with the current instances; events follow.
        loop {
            match recv_message(&mut c.socket).await? {
                ServerMessage::Result { .. } => break,
                ServerMessage::Error { error, .. } => {
                    return Err(format!("watch refused: {}", error.message).into())
                }
                _ => {}
            }
        }
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(events);
            let mut seen = 0;
            while seen < events {
                let msg = match tokio::time::timeout(
                    Duration::from_secs(10),
                    recv_message(&mut c.socket),
                )
                .await
                {
                    Ok(Ok(m)) => m,
                    _ => break,
                };
                let now = Instant::now();
                match msg {
                    ServerMessage::Event { event, .. } => {
                        seen += 1;
                        let seq = event.instance.metadata.get("seq").and_then(|v| v.as_u64());
                        if let Some(d) = sample(&sent, seq, now) {
                            got.push(d);
                        }
                    }
                    // A watcher that fell behind gets the whole service instead of the events.
                    ServerMessage::Snapshot { .. } => seen += 1,
                    _ => {}
                }
            }
            got
        }));
    }
    let mut writer = open(writer_url).await?;
    let meter = CpuMeter::start(pid);
    let t0 = tokio::time::Instant::now();
    for seq in 0..events {
        // A fixed rate, not a fixed gap after each answer: both systems are offered the same
        // load (as long as they keep up with it).
        tokio::time::sleep_until(t0 + pace * seq as u32).await;
        let mut reg = payload(0);
        reg.metadata.insert("seq".into(), (seq as u64).into());
        let msg = ClientMessage::Register {
            id: seq as u64,
            name: service.clone(),
            instance_id: InstanceId::new("w").ok(),
            instance: reg,
        };
        if let Some(slot) = sent.get(seq) {
            let _ = slot.set(Instant::now());
        }
        send_message(&mut writer.socket, &msg).await?;
        loop {
            match recv_message(&mut writer.socket).await? {
                ServerMessage::Result { .. } => break,
                ServerMessage::Error { error, .. } => {
                    return Err(format!("write refused: {}", error.message).into())
                }
                _ => {}
            }
        }
    }
    let mut samples = Vec::with_capacity(watchers * events);
    for t in tasks {
        samples.extend(t.await?);
    }
    let cpu = meter.stop(samples.len());
    Ok((Latency::of(samples, events, watchers), cpu))
}

/// Instances of `service` discovery returns (all, healthy or not).
async fn count(rest: &RestClient, service: &str) -> Res<usize> {
    match rest.discover("development", service, false, &[]).await {
        Ok(d) => Ok(d.instances.len()),
        Err(netget::Error::NotFound(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// `n` sessions each holding one instance in a child process; SIGKILL it, then poll discovery
/// until the service is empty. Returns the seconds from the signal to the empty answer, the
/// sessions the registry had open just before, and its RSS then.
async fn killed_nodes(
    url: &str,
    pid: Option<u32>,
    n: usize,
    limit: Duration,
) -> Res<(f64, u64, Option<u64>)> {
    let service = "killed-nodes";
    let args: Vec<String> = vec![
        "hold-netget".into(),
        "--url".into(),
        url.into(),
        "--count".into(),
        n.to_string(),
        "--service".into(),
        service.into(),
    ];
    let mut holder = start_holder(&args, Duration::from_secs(120)).await?;
    let rest = RestClient::new(url)?;
    let before = count(&rest, service).await?;
    if before != n {
        return Err(format!("{before} of {n} held instances are discoverable").into());
    }
    let sessions = rest
        .metric("netget_sessions")
        .await?
        .ok_or("the registry's /metrics has no netget_sessions")? as u64;
    let rss_held = rss(pid).0;
    let killed_at = holder.kill()?;
    loop {
        if count(&rest, service).await? == 0 {
            return Ok((killed_at.elapsed().as_secs_f64(), sessions, rss_held));
        }
        if killed_at.elapsed() > limit {
            return Err(format!("killed nodes still discoverable after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every netget figure, in one registry process.
pub async fn run(opts: &Opts, exe: &Path, dir: &Path) -> Res<Figures> {
    let mut f = Figures::default();
    let (mut registry, url) = start_netget(exe, dir).await?;
    let pid = registry.pid();
    eprintln!("netget: registry {url} (pid {pid:?})");
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.rss_empty_kib = rss(pid).0;

    let sessions = opts.connections.max(1);
    let window = (opts.inflight / sessions).max(1);
    let mut conns = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        conns.push(open(&url).await?);
    }
    let meter = CpuMeter::start(pid);
    let (conns, rate) = bounded(
        "netget registrations",
        register(conns, 0..opts.small, window),
    )
    .await?;
    f.cpu
        .insert("registrationsSmall".into(), meter.stop(opts.small));
    f.registrations_small_per_sec = rate;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (f.rss_small_kib, f.rss_anon_small_kib) = rss(pid);
    let meter = CpuMeter::start(pid);
    let (held, rate) = bounded(
        "netget registrations",
        register(conns, opts.small..opts.large, window),
    )
    .await?;
    f.cpu.insert(
        "registrationsLarge".into(),
        meter.stop(opts.large - opts.small),
    );
    held.into_iter().for_each(keep_reading);
    f.registrations_large_per_sec = rate;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (f.rss_large_kib, f.rss_anon_large_kib) = rss(pid);
    eprintln!(
        "netget: {} then {} registrations/s, RSS {:?} KiB",
        f.registrations_small_per_sec as u64, rate as u64, f.rss_large_kib
    );

    let mut disc = open(&url).await?;
    let regs: Vec<ClientMessage> = (0..10)
        .map(|i| -> Res<ClientMessage> {
            Ok(ClientMessage::Register {
                id: i,
                name: name("bench-discovery")?,
                instance_id: InstanceId::new(&format!("d-{i}")).ok(),
                instance: payload(i as usize),
            })
        })
        .collect::<Res<_>>()?;
    pipeline(&mut disc.socket, regs, 10).await?;
    keep_reading(disc);
    let meter = CpuMeter::start(pid);
    f.discovery_per_sec = bounded(
        "netget discovery",
        discovery(&url, opts.queries, opts.inflight),
    )
    .await?;
    f.cpu.insert("discovery".into(), meter.stop(opts.queries));
    let (rate, cpu) = wrk_discovery(opts, &url, pid, dir).await?;
    f.discovery_wrk_per_sec = Some(rate);
    f.cpu.insert("discoveryWrk".into(), cpu);
    let mut conns = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections.max(1) {
        conns.push(open(&url).await?);
    }
    let meter = CpuMeter::start(pid);
    let (conns, rate) = bounded(
        "netget session discovery",
        session_discovery(conns, opts.queries, opts.inflight),
    )
    .await?;
    f.cpu
        .insert("discoverySession".into(), meter.stop(opts.queries));
    f.discovery_session_per_sec = Some(rate);
    drop(conns);
    eprintln!(
        "netget: {} discoveries/s over HTTP, {} driven by wrk, {} over client sessions",
        f.discovery_per_sec as u64,
        f.discovery_wrk_per_sec.unwrap_or(0.0) as u64,
        rate as u64
    );

    let (pace, pace_many) = (
        Duration::from_millis(opts.pace_ms),
        Duration::from_millis(opts.pace_many_ms),
    );
    let cpu;
    (f.watch_one, cpu) = bounded(
        "netget watch",
        watch(&url, &url, pid, 1, opts.events_one, pace),
    )
    .await?;
    f.cpu.insert("watchOne".into(), cpu);
    let cpu;
    (f.watch_many, cpu) = bounded(
        "netget watch",
        watch(&url, &url, pid, opts.watchers, opts.events_many, pace_many),
    )
    .await?;
    f.cpu.insert("watchMany".into(), cpu);
    eprintln!(
        "netget: watch p99 {:.0} µs (1 watcher), {:.0} µs ({} watchers)",
        f.watch_one.p99_us, f.watch_many.p99_us, opts.watchers
    );

    let meter = CpuMeter::start(pid);
    f.durable_per_sec = bounded("netget durable registrations", async {
        Ok(register_many(&url, 0..opts.durable, opts.inflight).await?)
    })
    .await?;
    f.cpu.insert("durable".into(), meter.stop(opts.durable));
    eprintln!(
        "netget: {} durable registrations/s",
        f.durable_per_sec as u64
    );

    // Every instance registered so far is still there (the sessions holding them answered
    // their pings throughout).
    let health = RestClient::new(&url)?.health().await?;
    let instances = health
        .get("instances")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let expected = (opts.large + 10 + opts.durable) as u64;
    if instances != expected {
        return Err(format!("netget holds {instances} instances, expected {expected}").into());
    }

    f.killed = opts.killed;
    (f.vanish_secs, f.held, f.rss_held_kib) = bounded(
        "netget killed nodes",
        killed_nodes(&url, pid, opts.killed, Duration::from_secs(60)),
    )
    .await?;
    eprintln!(
        "netget: {} sessions open at once (RSS {:?} KiB); {} killed nodes gone in {:.2} s",
        f.held, f.rss_held_kib, opts.killed, f.vanish_secs
    );
    registry.check_alive()?;
    Ok(f)
}

/// The child process of the killed-nodes phase: `count` sessions, one instance each, kept alive
/// (pings answered) until stdin closes or three minutes pass.
pub async fn hold(url: String, count: usize, service: String) -> Res<()> {
    let service = name(&service)?;
    let workers = 64;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let (url, service) = (url.clone(), service.clone());
        tasks.push(tokio::spawn(async move {
            let mut held = 0;
            for i in strided(0..count, workers, w) {
                let mut c = open(&url).await?;
                let msg = ClientMessage::Register {
                    id: 1,
                    name: service.clone(),
                    instance_id: InstanceId::new(&format!("k-{i}")).ok(),
                    instance: payload(i),
                };
                send_message(&mut c.socket, &msg).await?;
                loop {
                    match recv_message(&mut c.socket).await? {
                        ServerMessage::Result { .. } => break,
                        ServerMessage::Error { error, .. } => {
                            return Err(netget::Error::Internal(error.message))
                        }
                        _ => {}
                    }
                }
                // Reading from now on answers the registry's pings, so the session stays up
                // while the others are being opened.
                keep_reading(c);
                held += 1;
            }
            Ok::<_, netget::Error>(held)
        }));
    }
    let mut held = 0;
    for t in tasks {
        held += t.await??;
    }
    crate::holder_ready(held).await
}
