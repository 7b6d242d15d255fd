//! Tests of the directory: registration, ownership, expiry, discovery and its cached answer,
//! watches.

use std::time::Duration;

use super::*;
use crate::model::Registration;

fn net(s: &str) -> NetworkName {
    NetworkName::new(s).unwrap()
}

fn inst(network: &str, name: &str, id: &str, tags: &[&str]) -> Instance {
    Instance::from_registration(
        net(network),
        ServiceName::new(name).unwrap(),
        InstanceId::new(id).unwrap(),
        Registration {
            address: format!("http://127.0.0.1/{id}"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        },
        "r1",
    )
}

fn rest() -> Owner {
    Owner::Rest {
        ttl: Some(Duration::from_secs(30)),
        token: None,
    }
}

fn dir() -> Directory {
    Directory::new("r1", &[net("development"), net("production")])
}

#[test]
fn the_cached_discovery_answer_follows_every_change_of_the_service() {
    let d = dir();
    let dev = net("development");
    let web = ServiceName::new("web").unwrap();
    let answer =
        |d: &Directory| -> Discovery { d.discover_memoized(&dev, &web, Discovery::clone).unwrap() };
    let ids =
        |a: &Discovery| -> Vec<String> { a.instances.iter().map(|i| i.id.to_string()).collect() };
    assert!(answer(&d).instances.is_empty());
    d.register(inst("development", "web", "a", &[]), rest())
        .unwrap();
    assert_eq!(ids(&answer(&d)), ["a"]);
    d.register(inst("development", "web", "b", &[]), rest())
        .unwrap();
    assert_eq!(ids(&answer(&d)), ["a", "b"], "a new instance shows");
    // A check result that leaves the status as it was still changes `lastCheck`.
    let key_a = (dev.clone(), web.clone(), InstanceId::new("a").unwrap());
    d.record_check(&key_a, Status::Passing, "HTTP 200".into())
        .unwrap();
    let a = answer(&d);
    let last = a.instances[0].last_check.as_ref().map(|c| c.output.clone());
    assert_eq!(last.as_deref(), Some("HTTP 200"));
    d.record_check(&key_a, Status::Critical, "HTTP 500".into())
        .unwrap();
    assert_eq!(
        ids(&answer(&d)),
        ["b"],
        "a critical instance leaves healthy answers"
    );
    assert_eq!(
        d.discover(&dev, &web, false, &[]).unwrap().instances.len(),
        2
    );
    d.deregister(
        &(dev.clone(), web.clone(), InstanceId::new("b").unwrap()),
        &rest(),
    )
    .unwrap();
    assert!(answer(&d).instances.is_empty(), "a removed instance goes");
    let all = d.discover(&dev, &web, false, &[]).unwrap();
    assert_eq!(ids(&all), ["a"]);
}

#[test]
fn discovery_filters_by_tag_and_stays_within_the_service() {
    let d = dir();
    d.register(inst("development", "web", "a", &["v1"]), rest())
        .unwrap();
    d.register(inst("development", "web", "b", &["v2"]), rest())
        .unwrap();
    d.register(inst("development", "db", "c", &["v1"]), rest())
        .unwrap();
    let web = ServiceName::new("web").unwrap();
    let got = d
        .discover(&net("development"), &web, true, &["v1".into()])
        .unwrap();
    assert_eq!(got.instances.len(), 1);
    assert_eq!(got.instances[0].id.as_str(), "a");
    assert_eq!(
        d.discover(&net("development"), &web, true, &[])
            .unwrap()
            .instances
            .len(),
        2
    );
}

#[test]
fn networks_are_isolated() {
    let d = dir();
    d.register(inst("development", "web", "a", &[]), rest())
        .unwrap();
    let web = ServiceName::new("web").unwrap();
    assert!(d
        .discover(&net("production"), &web, false, &[])
        .unwrap()
        .instances
        .is_empty());
    let key = (
        net("production"),
        web.clone(),
        InstanceId::new("a").unwrap(),
    );
    assert_eq!(
        d.deregister(&key, &rest()).unwrap_err().code(),
        "NETGET_NOT_FOUND"
    );
    assert_eq!(
        d.discover(&net("development"), &web, false, &[])
            .unwrap()
            .instances
            .len(),
        1
    );
    assert_eq!(
        d.discover(&net("staging"), &web, false, &[])
            .unwrap_err()
            .code(),
        "NETGET_UNKNOWN_NETWORK"
    );
}

#[test]
fn watchers_see_up_changed_down() {
    let d = dir();
    let web = ServiceName::new("web").unwrap();
    let (snap, mut rx) = d.watch(&net("development"), &web).unwrap();
    assert!(snap.is_empty());
    d.register(inst("development", "web", "a", &[]), rest())
        .unwrap();
    d.register(inst("development", "web", "a", &["v2"]), rest())
        .unwrap();
    d.register(inst("development", "web", "a", &["v2"]), rest())
        .unwrap(); // no change, no event
    let key = (net("development"), web, InstanceId::new("a").unwrap());
    d.deregister(&key, &rest()).unwrap();
    let kinds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| e.event.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![EventKind::Up, EventKind::Changed, EventKind::Down]
    );
}

#[test]
fn a_session_instance_cannot_be_taken_by_another_key_but_can_by_its_own() {
    let d = dir();
    let s1 = Owner::Session {
        session: 1,
        key: Arc::from("k1"),
    };
    let s2 = Owner::Session {
        session: 2,
        key: Arc::from("k2"),
    };
    let s3 = Owner::Session {
        session: 3,
        key: Arc::from("k1"),
    };
    d.register(inst("development", "web", "a", &[]), s1)
        .unwrap();
    assert_eq!(
        d.register(inst("development", "web", "a", &[]), s2)
            .unwrap_err()
            .code(),
        "NETGET_FORBIDDEN"
    );
    d.register(inst("development", "web", "a", &[]), s3)
        .unwrap();
    // The old session closing does not remove what the reconnected node now owns.
    let key = (
        net("development"),
        ServiceName::new("web").unwrap(),
        InstanceId::new("a").unwrap(),
    );
    assert_eq!(d.remove_session(1, std::slice::from_ref(&key)), 0);
    assert_eq!(d.remove_session(3, &[key]), 1);
}

#[tokio::test(start_paused = true)]
async fn rest_registrations_turn_critical_then_expire_unless_renewed() {
    let d = dir();
    let t0 = Instant::now();
    let ttl = Owner::Rest {
        ttl: Some(Duration::from_millis(100)),
        token: None,
    };
    d.register(inst("development", "web", "a", &[]), ttl.clone())
        .unwrap();
    d.register(inst("development", "web", "b", &[]), ttl)
        .unwrap();
    let web = ServiceName::new("web").unwrap();
    let key_b = (
        net("development"),
        web.clone(),
        InstanceId::new("b").unwrap(),
    );
    tokio::time::advance(Duration::from_millis(60)).await;
    d.heartbeat(&key_b, &rest()).unwrap();
    let status = |id: &str| {
        d.get(&(
            net("development"),
            web.clone(),
            InstanceId::new(id).unwrap(),
        ))
        .map(|i| i.status)
    };
    // a missed its TTL: critical (not returned as healthy), not yet removed.
    assert_eq!(d.expire(t0 + Duration::from_millis(130)), 0);
    assert_eq!(status("a"), Some(Status::Critical));
    assert_eq!(status("b"), Some(Status::Passing));
    assert!(d
        .get(&(
            net("development"),
            web.clone(),
            InstanceId::new("a").unwrap()
        ))
        .unwrap()
        .last_check
        .clone()
        .unwrap()
        .output
        .contains("TTL expired"));
    // One more TTL without a heartbeat: removed.
    assert_eq!(d.expire(t0 + Duration::from_millis(230)), 1);
    assert_eq!(status("a"), None);
    assert_eq!(status("b"), Some(Status::Critical));
    // A heartbeat brings a critical instance back.
    d.heartbeat(&key_b, &rest()).unwrap();
    assert_eq!(status("b"), Some(Status::Passing));
}

#[test]
fn heartbeats_do_not_grow_the_expiry_heap() {
    let d = dir();
    let owner = Owner::Rest {
        ttl: Some(Duration::from_secs(3600)),
        token: None,
    };
    d.register(inst("development", "web", "a", &[]), owner.clone())
        .unwrap();
    let key = (
        net("development"),
        ServiceName::new("web").unwrap(),
        InstanceId::new("a").unwrap(),
    );
    for _ in 0..10_000 {
        d.heartbeat(&key, &owner).unwrap();
        d.register(inst("development", "web", "a", &[]), owner.clone())
            .unwrap();
    }
    assert_eq!(d.scheduled_expiries(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_renewed_registration_survives_its_first_deadline_and_expires_later() {
    let d = dir();
    let owner = Owner::Rest {
        ttl: Some(Duration::from_millis(100)),
        token: None,
    };
    d.register(inst("development", "web", "a", &[]), owner.clone())
        .unwrap();
    let key = (
        net("development"),
        ServiceName::new("web").unwrap(),
        InstanceId::new("a").unwrap(),
    );
    tokio::time::advance(Duration::from_millis(50)).await;
    d.heartbeat(&key, &owner).unwrap();
    let renewed = Instant::now();
    assert_eq!(
        d.expire(renewed + Duration::from_millis(60)),
        0,
        "renewed: rescheduled"
    );
    assert_eq!(d.get(&key).unwrap().status, Status::Passing);
    assert_eq!(d.expire(renewed + Duration::from_millis(150)), 0);
    assert_eq!(d.get(&key).unwrap().status, Status::Critical);
    assert_eq!(d.expire(renewed + Duration::from_millis(300)), 1);
}
