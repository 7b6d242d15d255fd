//! Active health checks against real HTTP and TCP services: transitions reach watchers, one
//! lost probe flips nothing, critical instances are removed, metrics count. Each test pauses
//! tokio's clock once its instance is registered, so check intervals and timeouts run on
//! virtual time: no test waits for a real interval.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netget::client::rest::RestClient;
use netget::model::{HealthCheck, Registration, Status, WireDuration};
use netget::{EventKind, Netget, NetgetOptions};

/// A real HTTP service whose /health answers with a switchable status.
struct Target {
    url: String,
    status: Arc<AtomicU16>,
    /// The next N requests answer 500 whatever `status` says.
    fail_next: Arc<AtomicU32>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

async fn target() -> Target {
    let status = Arc::new(AtomicU16::new(200));
    let fail_next = Arc::new(AtomicU32::new(0));
    let hits = Arc::new(AtomicUsize::new(0));
    let (s, f, h) = (status.clone(), fail_next.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let (s, f, h) = (s.clone(), f.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let code = if f.load(Ordering::SeqCst) > 0 {
                    f.fetch_sub(1, Ordering::SeqCst);
                    500
                } else {
                    s.load(Ordering::SeqCst)
                };
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Target {
        url,
        status,
        fail_next,
        hits,
        task,
    }
}

fn checked(http: Option<&str>, tcp: Option<&str>, remove_after: Option<Duration>) -> Registration {
    Registration {
        address: "http://127.0.0.1:1".into(),
        ttl: Some(WireDuration(Duration::from_secs(60))),
        health: Some(HealthCheck {
            http: http.map(str::to_string),
            tcp: tcp.map(str::to_string),
            interval: Some(WireDuration(Duration::from_millis(100))),
            timeout: Some(WireDuration(Duration::from_millis(500))),
            deregister_critical_after: remove_after.map(WireDuration),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn next_status(w: &mut netget::Watch) -> (EventKind, Status) {
    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("no event in 10 s")
        .unwrap();
    (ev.kind, ev.instance.status)
}

fn client(url: &str) -> Netget {
    let mut o = NetgetOptions::client(&[url]);
    o.data_dir = None;
    Netget::new(o).unwrap()
}

#[tokio::test]
async fn http_checks_drive_passing_warning_critical_passing_and_watchers_see_each() {
    let (reg, _d) = common::registry().await;
    let svc = target().await;
    let watcher = client(&reg.url());
    let mut w = watcher.watch("api").unwrap();
    watcher.start().await.unwrap();
    watcher
        .discover_service_nodes("api", &Default::default())
        .await
        .unwrap();
    let rest = RestClient::new(&reg.url()).unwrap();
    rest.register(
        "development",
        "api",
        "a1",
        &checked(Some(&svc.url), None, None),
    )
    .await
    .unwrap();
    // Registered (and on disk): from here the clock moves only as the checks need it.
    tokio::time::pause();
    assert_eq!(next_status(&mut w).await, (EventKind::Up, Status::Passing));

    svc.status.store(429, Ordering::SeqCst);
    assert_eq!(
        next_status(&mut w).await,
        (EventKind::Changed, Status::Warning)
    );
    // Warning instances are still discovered; critical ones are not.
    assert_eq!(
        rest.discover("development", "api", true, &[])
            .await
            .unwrap()
            .instances
            .len(),
        1
    );

    svc.status.store(500, Ordering::SeqCst);
    assert_eq!(
        next_status(&mut w).await,
        (EventKind::Changed, Status::Critical)
    );
    assert!(rest
        .discover("development", "api", true, &[])
        .await
        .unwrap()
        .instances
        .is_empty());
    let all = rest
        .discover("development", "api", false, &[])
        .await
        .unwrap();
    let last = all.instances[0]
        .last_check
        .clone()
        .expect("the last check is recorded");
    assert_eq!(last.output, "HTTP 500");

    svc.status.store(200, Ordering::SeqCst);
    assert_eq!(
        next_status(&mut w).await,
        (EventKind::Changed, Status::Passing)
    );
    watcher.stop().await.unwrap();
    reg.shutdown().await.unwrap();
    svc.task.abort();
}

#[tokio::test]
async fn one_failing_probe_does_not_flip_the_status() {
    let (reg, _d) = common::registry().await;
    let svc = target().await;
    let watcher = client(&reg.url());
    let mut w = watcher.watch("api").unwrap();
    watcher.start().await.unwrap();
    watcher
        .discover_service_nodes("api", &Default::default())
        .await
        .unwrap();
    let rest = RestClient::new(&reg.url()).unwrap();
    rest.register(
        "development",
        "api",
        "a1",
        &checked(Some(&svc.url), None, None),
    )
    .await
    .unwrap();
    // Registered (and on disk): from here the clock moves only as the checks need it.
    tokio::time::pause();
    assert_eq!(next_status(&mut w).await, (EventKind::Up, Status::Passing));
    // Let the checker run, then lose exactly one probe and let three more pass.
    assert!(common::wait_until(Duration::from_secs(10), || async {
        svc.hits.load(Ordering::SeqCst) >= 2
    })
    .await
    .is_some());
    svc.fail_next.store(1, Ordering::SeqCst);
    let after = svc.hits.load(Ordering::SeqCst) + 4;
    assert!(common::wait_until(Duration::from_secs(10), || async {
        svc.hits.load(Ordering::SeqCst) >= after
    })
    .await
    .is_some());
    assert_eq!(
        svc.fail_next.load(Ordering::SeqCst),
        0,
        "the failing probe happened"
    );
    assert!(
        w.try_next().is_none(),
        "one lost probe must not produce a status change"
    );
    watcher.stop().await.unwrap();
    reg.shutdown().await.unwrap();
    svc.task.abort();
}

#[tokio::test]
async fn a_service_that_stops_answering_is_flagged_then_removed() {
    let (reg, _d) = common::registry().await;
    let svc = target().await;
    let watcher = client(&reg.url());
    let mut w = watcher.watch("api").unwrap();
    watcher.start().await.unwrap();
    watcher
        .discover_service_nodes("api", &Default::default())
        .await
        .unwrap();
    let rest = RestClient::new(&reg.url()).unwrap();
    let reg_body = checked(Some(&svc.url), None, Some(Duration::from_millis(500)));
    rest.register("development", "api", "a1", &reg_body)
        .await
        .unwrap();
    // Registered (and on disk): from here the clock moves only as the checks need it.
    tokio::time::pause();
    assert_eq!(next_status(&mut w).await, (EventKind::Up, Status::Passing));
    svc.task.abort(); // the service dies
    assert_eq!(
        next_status(&mut w).await,
        (EventKind::Changed, Status::Critical)
    );
    assert_eq!(
        next_status(&mut w).await.0,
        EventKind::Down,
        "removed after deregisterCriticalAfter"
    );
    assert!(rest
        .discover("development", "api", false, &[])
        .await
        .unwrap()
        .instances
        .is_empty());
    // The removal is counted just after watchers are told: wait for the count (bounded).
    let counted = r#"netget_deregistrations_total{reason="critical"} 1"#;
    let scrape = || async {
        let metrics = rest.send(hyper::Method::GET, "/metrics", None).await;
        String::from_utf8_lossy(&metrics.unwrap()).into_owned()
    };
    let seen = common::wait_until(Duration::from_secs(5), || async {
        scrape().await.contains(counted)
    })
    .await;
    assert!(seen.is_some(), "{}", scrape().await);
    watcher.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test]
async fn tcp_checks_follow_a_port_that_closes() {
    let (reg, _d) = common::registry().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let watcher = client(&reg.url());
    let mut w = watcher.watch("db").unwrap();
    watcher.start().await.unwrap();
    watcher
        .discover_service_nodes("db", &Default::default())
        .await
        .unwrap();
    let rest = RestClient::new(&reg.url()).unwrap();
    rest.register("development", "db", "d1", &checked(None, Some(&addr), None))
        .await
        .unwrap();
    // Registered (and on disk): from here the clock moves only as the checks need it.
    tokio::time::pause();
    assert_eq!(next_status(&mut w).await, (EventKind::Up, Status::Passing));
    // Stays passing while the port accepts: wait (bounded) for a recorded check, however slow
    // the checker's first probe is on a busy machine.
    let checked_once = common::wait_until(Duration::from_secs(10), || async {
        rest.discover("development", "db", false, &[])
            .await
            .unwrap()
            .instances[0]
            .last_check
            .is_some()
    })
    .await;
    assert!(checked_once.is_some(), "no TCP check recorded in 10 s");
    let now = rest
        .discover("development", "db", false, &[])
        .await
        .unwrap();
    assert_eq!(now.instances[0].status, Status::Passing);
    assert!(now.instances[0]
        .last_check
        .as_ref()
        .unwrap()
        .output
        .contains("success"));
    drop(listener);
    assert_eq!(
        next_status(&mut w).await,
        (EventKind::Changed, Status::Critical)
    );
    watcher.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_session_node_declares_its_own_health_check() {
    let (reg, _d) = common::registry().await;
    let svc = target().await;
    let mut o = NetgetOptions::service("web", "http://127.0.0.1:1", &[&reg.url()]);
    o.data_dir = None;
    o.health = checked(Some(&svc.url), None, None).health;
    let node = Netget::new(o).unwrap();
    node.register_with_network().await.unwrap();
    tokio::time::pause();
    svc.status.store(500, Ordering::SeqCst);
    let rest = RestClient::new(&reg.url()).unwrap();
    let flagged = common::wait_until(Duration::from_secs(10), || async {
        rest.discover("development", "web", true, &[])
            .await
            .unwrap()
            .instances
            .is_empty()
    })
    .await;
    assert!(
        flagged.is_some(),
        "the registry runs the check a session declared"
    );
    node.stop().await.unwrap();
    reg.shutdown().await.unwrap();
    svc.task.abort();
}

#[tokio::test]
async fn a_missed_ttl_turns_critical_before_removal_and_a_heartbeat_recovers() {
    let (reg, _d) = common::registry().await;
    let watcher = client(&reg.url());
    let mut w = watcher.watch("ttl").unwrap();
    watcher.start().await.unwrap();
    watcher
        .discover_service_nodes("ttl", &Default::default())
        .await
        .unwrap();
    let rest = RestClient::new(&reg.url()).unwrap();
    let r = Registration {
        address: "http://127.0.0.1:1".into(),
        ttl: Some(WireDuration(Duration::from_millis(400))),
        ..Default::default()
    };
    rest.register("development", "ttl", "t1", &r).await.unwrap();
    // Registered (and on disk): from here the clock moves only as the checks need it.
    tokio::time::pause();
    assert_eq!(next_status(&mut w).await, (EventKind::Up, Status::Passing));
    assert_eq!(
        next_status(&mut w).await,
        (EventKind::Changed, Status::Critical)
    );
    rest.heartbeat("development", "ttl", "t1").await.unwrap();
    assert_eq!(
        next_status(&mut w).await,
        (EventKind::Changed, Status::Passing)
    );
    watcher.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}
