//! Micro-benchmarks of the hot paths: directory register/discover, watch fan-out, protocol
//! encode/decode, and the client's cached discovery. Run: `cargo bench -p netget-core`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use netget::model::{Instance, InstanceId, NetworkName, Registration, ServiceName};
use netget::registry::directory::{Directory, Owner};
use netget::wire::{ClientMessage, EncodedAnswer, ServerMessage};
use netget::{DiscoverOptions, Netget, NetgetOptions, Registry, RegistryConfig};

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

fn inst(net: &NetworkName, service: &str, i: usize) -> Instance {
    Instance::from_registration(
        net.clone(),
        ServiceName::new(service).unwrap(),
        InstanceId::new(&format!("i-{i}")).unwrap(),
        reg(i),
        "bench",
    )
}

fn directory(c: &mut Criterion) {
    let net = NetworkName::new("development").unwrap();
    let owner = Owner::Session {
        session: 1,
        key: Arc::from("k"),
    };
    let d = Directory::new("bench", std::slice::from_ref(&net));
    // 100k instances over 1,000 services, as a large registry holds them.
    for i in 0..100_000 {
        d.register(inst(&net, &format!("svc-{}", i % 1000), i), owner.clone())
            .unwrap();
    }
    for i in 0..10 {
        d.register(inst(&net, "ten", i), owner.clone()).unwrap();
    }
    let ten = ServiceName::new("ten").unwrap();
    let svc = ServiceName::new("svc-7").unwrap();
    c.bench_function("directory/discover 10 of 100k", |b| {
        b.iter(|| black_box(d.discover(&net, &ten, true, &[]).unwrap()))
    });
    let tag = vec!["shard-3".to_string()];
    c.bench_function("directory/discover 10 of 100k, cached JSON answer", |b| {
        b.iter(|| black_box(d.discover_memoized(&net, &ten, EncodedAnswer::of).unwrap()))
    });
    c.bench_function("directory/discover by tag (100 instances)", |b| {
        b.iter(|| black_box(d.discover(&net, &svc, true, &tag).unwrap()))
    });
    let mut n = 0usize;
    c.bench_function("directory/register update in 100k", |b| {
        b.iter(|| {
            n += 1;
            d.register(inst(&net, "svc-1", n % 100 * 1000 + 1), owner.clone())
                .unwrap()
        })
    });

    // Fan-out: one change pushed to 1,000 watchers of one service is one broadcast send.
    let fan = ServiceName::new("fan").unwrap();
    let receivers: Vec<_> = (0..1000).map(|_| d.watch(&net, &fan).unwrap().1).collect();
    let mut m = 0usize;
    c.bench_function("directory/register with 1000 watchers", |b| {
        b.iter(|| {
            m += 1;
            // A changed instance each time (its version): an unchanged re-registration
            // publishes nothing, and would measure a plain update after ten iterations.
            let mut changed = inst(&net, "fan", m % 10);
            changed.version = Some(format!("1.0.{m}"));
            d.register(changed, owner.clone()).unwrap()
        })
    });
    drop(receivers);
}

fn protocol(c: &mut Criterion) {
    let text = serde_json::to_string(&ClientMessage::Register {
        id: 1,
        name: ServiceName::new("web").unwrap(),
        instance_id: Some(InstanceId::new("w1").unwrap()),
        instance: reg(1),
    })
    .unwrap();
    c.bench_function("protocol/decode register", |b| {
        b.iter(|| black_box(ClientMessage::parse(&text).unwrap()))
    });
    let net = NetworkName::new("development").unwrap();
    let event = ServerMessage::Event {
        name: ServiceName::new("web").unwrap(),
        event: Arc::new(netget::WatchEvent {
            kind: netget::EventKind::Up,
            instance: Arc::new(inst(&net, "web", 1)),
        }),
    };
    c.bench_function("protocol/encode event", |b| {
        b.iter(|| black_box(event.to_text()))
    });
    // What a client does with every discovery answer: decode 10 instances with ~200 bytes of
    // metadata each (`netget::testsuite::payload`).
    let answer = serde_json::to_vec(&netget::model::Discovery {
        name: ServiceName::new("web").unwrap(),
        network: net.clone(),
        instances: (0..10)
            .map(|i| {
                Arc::new(Instance::from_registration(
                    net.clone(),
                    ServiceName::new("web").unwrap(),
                    InstanceId::new(&format!("i-{i}")).unwrap(),
                    netget::testsuite::payload(i),
                    "bench",
                ))
            })
            .collect(),
    })
    .unwrap();
    c.bench_function("protocol/decode a 10-instance discovery answer", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(&answer).unwrap();
            black_box(serde_json::from_str::<netget::model::Discovery>(text).unwrap())
        })
    });
    // The same answer as a session `result` frame, through the client's frame decoder.
    let frame = format!(
        r#"{{"type":"result","id":7,"data":{}}}"#,
        String::from_utf8(answer.clone()).unwrap()
    );
    c.bench_function(
        "protocol/decode a 10-instance discovery result frame",
        |b| b.iter(|| black_box(ServerMessage::parse(&frame).unwrap())),
    );
}

fn cached_discovery(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (registry, client) = rt.block_on(async {
        let registry = Registry::spawn(RegistryConfig::ephemeral(dir.path().to_path_buf()))
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
    c.bench_function("client/cached discover_service_node (10 instances)", |b| {
        b.iter(|| black_box(client.pick_cached("cached", &opts).unwrap()))
    });
    c.bench_function("client/discover_service_node via async API (cached)", |b| {
        b.iter(|| {
            rt.block_on(async { black_box(client.discover_service_node("cached").await.unwrap()) })
        })
    });
    rt.block_on(async {
        client.stop().await.unwrap();
        registry.shutdown().await.unwrap();
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = directory, protocol, cached_discovery
}
criterion_main!(benches);
