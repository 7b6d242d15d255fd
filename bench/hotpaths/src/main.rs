//! The hot paths one at a time, for counting their instructions under callgrind: the
//! regression guard of `make test` (`bench/callgrind.py`, BENCHMARKS.md "Instruction counts").
//!
//! `netget-hotpaths <path> <iterations>` does the path's setup, then runs the path `iterations`
//! times. The guard runs it at N and 2N iterations and takes the difference over N, so the setup
//! (and process start and exit) cancels out and what is left is the cost of one operation.
//! The paths are those of the criterion bench (`core/benches/directory.rs`), with smaller setups
//! where the size does not change the path (10k instances instead of 100k: a lookup is a hash
//! probe either way), because under valgrind everything runs ~50 times slower.
//!
//! `netget-hotpaths list` prints the path names, one a line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use netget::model::{Discovery, Instance, InstanceId, NetworkName, Registration, ServiceName};
use netget::registry::directory::{Directory, Owner};
use netget::wire::{ClientMessage, EncodedAnswer, ServerMessage};
use netget::{DiscoverOptions, EventKind, Netget, NetgetOptions, Registry, RegistryConfig};

/// Every path, in the order of the guard's table.
const PATHS: &[&str] = &[
    "directory/discover",
    "directory/discover-memoized",
    "directory/register-update",
    "directory/fanout-1000-watchers",
    "protocol/parse-register",
    "protocol/encode-event",
    "protocol/decode-discovery",
    "protocol/parse-result-frame",
    "client/pick-cached",
];

/// The registration of the criterion bench's directory benchmarks.
fn reg(i: usize) -> Registration {
    let mut metadata = serde_json::Map::new();
    metadata.insert("zone".into(), format!("zone-{}", i % 3).into());
    metadata.insert("build".into(), format!("{i:040x}").into());
    Registration {
        address: format!("http://127.0.0.1:{}", 10_000 + i),
        tags: vec![format!("shard-{}", i % 8)],
        metadata,
        version: Some("1.0.0".into()),
        ..Default::default()
    }
}

/// What a client decodes in the bench's discovery answer: ~200 bytes of metadata an instance
/// (`netget::testsuite::payload`, which is behind the `testsuite` feature; a copy here keeps
/// this crate on the features `make dist` builds).
fn payload(i: usize) -> Registration {
    let mut metadata = serde_json::Map::new();
    metadata.insert("zone".into(), format!("zone-{}", i % 3).into());
    metadata.insert("owner".into(), "team-platform".into());
    metadata.insert("build".into(), format!("{i:040x}").into());
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

fn inst(net: &NetworkName, service: &str, i: usize, reg: Registration) -> Instance {
    Instance::from_registration(
        net.clone(),
        ServiceName::new(service).unwrap(),
        InstanceId::new(&format!("i-{i}")).unwrap(),
        reg,
        "bench",
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [list] if list == "list" => PATHS.iter().for_each(|p| println!("{p}")),
        [path, n] => {
            let n: usize = n.parse().expect("iterations: a whole number");
            run(path, n);
        }
        _ => {
            eprintln!("usage: netget-hotpaths <path> <iterations> | list");
            std::process::exit(2);
        }
    }
}

fn run(path: &str, n: usize) {
    match path {
        "directory/discover"
        | "directory/discover-memoized"
        | "directory/register-update"
        | "directory/fanout-1000-watchers" => directory(path, n),
        "protocol/parse-register" => {
            let text = serde_json::to_string(&ClientMessage::Register {
                id: 1,
                name: ServiceName::new("web").unwrap(),
                instance_id: Some(InstanceId::new("w1").unwrap()),
                instance: reg(1),
            })
            .unwrap();
            for _ in 0..n {
                black_box(ClientMessage::parse(black_box(&text)).unwrap());
            }
        }
        "protocol/encode-event" => {
            let net = NetworkName::new("development").unwrap();
            let event = ServerMessage::Event {
                name: ServiceName::new("web").unwrap(),
                event: Arc::new(netget::WatchEvent {
                    kind: EventKind::Up,
                    instance: Arc::new(inst(&net, "web", 1, reg(1))),
                }),
            };
            for _ in 0..n {
                black_box(black_box(&event).to_text());
            }
        }
        "protocol/decode-discovery" => {
            let answer = answer();
            for _ in 0..n {
                black_box(serde_json::from_str::<Discovery>(black_box(&answer)).unwrap());
            }
        }
        "protocol/parse-result-frame" => {
            // The same answer as a session `result` frame, through the client's frame decoder.
            let frame = format!(r#"{{"type":"result","id":7,"data":{}}}"#, answer());
            for _ in 0..n {
                black_box(ServerMessage::parse(black_box(&frame)).unwrap());
            }
        }
        "client/pick-cached" => pick_cached(n),
        _ => {
            eprintln!("unknown path {path:?}; the paths are: {}", PATHS.join(" "));
            std::process::exit(2);
        }
    }
}

/// A 10-instance discovery answer as the registry sends it.
fn answer() -> String {
    let net = NetworkName::new("development").unwrap();
    serde_json::to_string(&Discovery {
        name: ServiceName::new("web").unwrap(),
        network: net.clone(),
        instances: (0..10)
            .map(|i| Arc::new(inst(&net, "web", i, payload(i))))
            .collect(),
    })
    .unwrap()
}

fn directory(path: &str, n: usize) {
    let net = NetworkName::new("development").unwrap();
    let owner = Owner::Session {
        session: 1,
        key: Arc::from("k"),
    };
    let d = Directory::new("bench", std::slice::from_ref(&net));
    // 10k instances over 1,000 services (10 each), and the 10-instance service `ten`.
    for i in 0..10_000 {
        let service = format!("svc-{}", i % 1000);
        d.register(inst(&net, &service, i, reg(i)), owner.clone())
            .unwrap();
    }
    for i in 0..10 {
        d.register(inst(&net, "ten", i, reg(i)), owner.clone())
            .unwrap();
    }
    let ten = ServiceName::new("ten").unwrap();
    match path {
        "directory/discover" => {
            for _ in 0..n {
                black_box(d.discover(&net, black_box(&ten), true, &[]).unwrap());
            }
        }
        "directory/discover-memoized" => {
            for _ in 0..n {
                black_box(
                    d.discover_memoized(&net, black_box(&ten), EncodedAnswer::of)
                        .unwrap(),
                );
            }
        }
        "directory/register-update" => {
            // svc-1 holds i-1, i-1001, … i-9001: each register updates one of them with what it
            // holds already (a session's re-registration), as the criterion bench does.
            for k in 0..n {
                let i = k % 10 * 1000 + 1;
                black_box(
                    d.register(inst(&net, "svc-1", i, reg(i)), owner.clone())
                        .unwrap(),
                );
            }
        }
        "directory/fanout-1000-watchers" => {
            let fan = ServiceName::new("fan").unwrap();
            let mut receivers: Vec<_> = (0..1000).map(|_| d.watch(&net, &fan).unwrap().1).collect();
            // Each receiver takes the event, as each watcher's session does: without that the
            // path would be one broadcast send and the cost per watcher would not count.
            // Instance k % 10 takes registration k % 20 by turns, so every register changes it
            // (an unchanged one publishes nothing) with the same 20 registrations whatever n is.
            let mut taken = 0usize;
            for k in 0..n {
                d.register(inst(&net, "fan", k % 10, reg(k % 20)), owner.clone())
                    .unwrap();
                for rx in &mut receivers {
                    while let Ok(change) = rx.try_recv() {
                        black_box(change);
                        taken += 1;
                    }
                }
            }
            // Every register must have reached every watcher, or the count measures less.
            assert_eq!(taken, n * receivers.len(), "events lost in the fan-out");
        }
        _ => unreachable!("directory path {path}"),
    }
}

/// `Netget::pick_cached` of a client whose cache holds a 10-instance service.
///
/// The registry and the client run on a current-thread runtime that is driven only while the
/// setup runs: while the loop runs nothing polls their tasks (pings, keepalives, the session's
/// reader), so no background work lands in the count. On a multi-thread runtime those tasks run
/// whenever their timers fire, a varying number of times in the N and 2N runs: measured so (two
/// workers), the count per operation moved by up to 0.3 % from run to run.
/// `pick_cached` is synchronous and reads only the cache, so freezing the runtime does not
/// change what it does.
fn pick_cached(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("netget-hotpaths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (registry, client) = rt.block_on(async {
        let registry = Registry::spawn(RegistryConfig::ephemeral(dir.clone()))
            .await
            .unwrap();
        let rest = netget::client::rest::RestClient::new(&registry.url()).unwrap();
        for i in 0..10 {
            rest.register("development", "cached", &format!("c{i}"), &reg(i))
                .await
                .unwrap();
        }
        let client = Netget::new(NetgetOptions::client(&[&registry.url()])).unwrap();
        assert!(client
            .discover_service_node("cached")
            .await
            .unwrap()
            .is_some());
        (registry, client)
    });
    let opts = DiscoverOptions::default();
    for _ in 0..n {
        black_box(client.pick_cached(black_box("cached"), &opts).unwrap());
    }
    rt.block_on(async {
        client.stop().await.unwrap();
        registry.shutdown().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
