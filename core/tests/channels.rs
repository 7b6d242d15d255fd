//! Publish/subscribe channels: delivery to current subscribers, network isolation, failover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use netget::{Netget, NetgetOptions};

fn client(urls: &[&str], network: &str) -> Netget {
    let mut o = NetgetOptions::client(urls);
    o.network = network.into();
    o.data_dir = None;
    Netget::new(o).unwrap()
}

async fn next(s: &mut netget::Subscription) -> netget::ChannelMessage {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("no message within 5 s")
        .expect("ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_reach_every_current_subscriber_of_the_network_only() {
    let (reg, _d) = common::registry_with(|c| {
        c.with_open_networks(&["development", "production"])
            .unwrap()
    })
    .await;
    let url = reg.url();
    let (a, b, pubr) = (
        client(&[&url], "development"),
        client(&[&url], "development"),
        client(&[&url], "development"),
    );
    let prod = client(&[&url], "production");
    let mut sa = a.subscribe("chat").unwrap();
    let mut sb = b.subscribe("chat").unwrap();
    let mut sp = prod.subscribe("chat").unwrap();
    // Subscriptions are set up asynchronously: wait until both are counted.
    let ready = common::wait_until(Duration::from_secs(5), || async {
        pubr.publish("chat", serde_json::json!({"probe": true}))
            .await
            .unwrap()
            == 2
    })
    .await;
    assert!(ready.is_some());

    let delivered = pubr
        .publish("chat", serde_json::json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(delivered, 2);
    for s in [&mut sa, &mut sb] {
        // Probes published while waiting may still be on their way: skip them (bounded by
        // `next`), however late they come.
        let m = loop {
            let m = next(s).await;
            if m.data.get("probe").is_none() {
                break m;
            }
        };
        assert_eq!(m.channel.as_str(), "chat");
        assert_eq!(m.data["text"], "hi");
        assert_eq!(m.from.as_deref(), Some(pubr.public_key().as_str()));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sp.next())
            .await
            .is_err(),
        "production must not see development's channel"
    );
    // An unsubscribed client stops receiving.
    drop(sb);
    let gone = common::wait_until(Duration::from_secs(5), || async {
        pubr.publish("chat", serde_json::json!("x")).await.unwrap() == 1
    })
    .await;
    assert!(gone.is_some());
    assert_eq!(
        pubr.publish("chat", serde_json::json!("y")).await.unwrap(),
        1
    );
    // Bad channel names and oversized data are refused.
    assert_eq!(
        pubr.publish("bad name", serde_json::json!(1))
            .await
            .unwrap_err()
            .code(),
        "NETGET_INVALID_INPUT"
    );
    assert!(a.subscribe("").is_err());
    for n in [a, b, pubr, prod] {
        n.stop().await.unwrap();
    }
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_a_node_through_failover() {
    let mut first = common::spawn_registry(&[]);
    let second = common::spawn_registry(&[]);
    let (a, b) = (first.url.clone(), second.url.clone());
    let listener = client(&[&a, &b], "development");
    let mut sub = listener.subscribe("events").unwrap();
    listener.start().await.unwrap();
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5)).unwrap();
    let talker = client(&[&b], "development");
    let reached = common::wait_until(Duration::from_secs(10), || async {
        talker
            .publish("events", serde_json::json!("after failover"))
            .await
            .unwrap()
            == 1
    })
    .await;
    assert!(
        reached.is_some(),
        "the subscription must be re-established on the second registry"
    );
    assert_eq!(next(&mut sub).await.data, "after failover");
    listener.stop().await.unwrap();
    talker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_network_watch_sees_every_service_change_with_a_snapshot_first() {
    let (reg, _d) = common::registry_with(|c| {
        c.with_open_networks(&["development", "production"])
            .unwrap()
    })
    .await;
    let url = reg.url();
    let rest = netget::client::rest::RestClient::new(&url).unwrap();
    let r = netget::Registration {
        address: "http://127.0.0.1:1".into(),
        ..Default::default()
    };
    rest.register("development", "existing", "e1", &r)
        .await
        .unwrap();
    let mut s = common::raw_session(&url, "development").await;
    common::raw_send(&mut s, r#"{"type":"watchNetwork","id":1}"#).await;
    match common::raw_recv(&mut s).await {
        netget::wire::ServerMessage::Result {
            id: 1,
            data: netget::wire::ResultData::Watching { instances },
        } => {
            assert_eq!(instances.len(), 1);
            assert_eq!(instances[0].name.as_str(), "existing");
        }
        other => panic!("{other:?}"),
    }
    rest.register("development", "brand-new", "n1", &r)
        .await
        .unwrap();
    rest.register("production", "elsewhere", "p1", &r)
        .await
        .unwrap();
    rest.deregister("development", "existing", "e1")
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        if let netget::wire::ServerMessage::Event { name, event } = common::raw_recv(&mut s).await {
            seen.push((name.to_string(), event.kind));
        }
    }
    assert_eq!(
        seen,
        vec![
            ("brand-new".to_string(), netget::EventKind::Up),
            ("existing".to_string(), netget::EventKind::Down)
        ],
        "every development change, nothing from production"
    );
    reg.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_twice_on_one_session_counts_and_delivers_once() {
    use futures_util::SinkExt;
    use netget::client::recv_message;
    use netget::wire::{ClientMessage, ResultData, ServerMessage};
    let (reg, _d) = common::registry().await;
    let mut raw = netget::testsuite::open(&reg.url()).await.unwrap();
    let channel = netget::model::ChannelName::new("dup").unwrap();
    let subscribe = |id| ClientMessage::Subscribe {
        id,
        channel: channel.clone(),
    };
    let frame = |m: &ClientMessage| {
        tokio_tungstenite::tungstenite::Message::text(serde_json::to_string(m).unwrap())
    };
    // A second subscribe to the same channel (what a client sends when it re-sends its
    // subscriptions as a session starts while a subscribe of its own is on the way), and a
    // publish right behind it in the same write: the registry handles them in order.
    raw.socket.feed(frame(&subscribe(1))).await.unwrap();
    raw.socket.feed(frame(&subscribe(2))).await.unwrap();
    raw.socket
        .feed(frame(&ClientMessage::Publish {
            id: 3,
            channel: channel.clone(),
            data: serde_json::json!({"n": 1}),
        }))
        .await
        .unwrap();
    raw.socket.flush().await.unwrap();
    let (mut delivered, mut messages) = (None, 0);
    // Three answers and the message itself; then nothing more.
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_secs(5), recv_message(&mut raw.socket))
            .await
            .expect("an answer within 5 s")
            .unwrap()
        {
            ServerMessage::Result {
                id: 3,
                data: ResultData::Published { delivered: d },
            } => delivered = Some(d),
            ServerMessage::Message(_) => messages += 1,
            ServerMessage::Result { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        delivered,
        Some(1),
        "one session subscribed, however often it asked"
    );
    let extra =
        tokio::time::timeout(Duration::from_millis(300), recv_message(&mut raw.socket)).await;
    assert!(
        extra.is_err() && messages == 1,
        "the message came twice: {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_just_under_the_frame_limit_is_delivered_and_one_over_it_is_refused() {
    use common::{error_code, raw_close_code, raw_recv, raw_send, raw_session};
    use netget::wire::ServerMessage;

    let (reg, _d) = common::registry().await;
    let url = reg.url();
    let listener = client(&[&url], "development");
    let mut sub = listener.subscribe("big").unwrap();
    let mut publisher = raw_session(&url, "development").await;
    // A publish frame of 64 KiB less a little: delivered whole, though the message frame the
    // subscriber gets (with `from`) is over 64 KiB.
    let text = "x".repeat(64 * 1024 - 200);
    // The subscription may not be in place for the first publish: publish until it arrives.
    let frame = format!(r#"{{"type":"publish","id":1,"channel":"big","data":{{"t":"{text}"}}}}"#);
    let mut subscribed = None;
    for _ in 0..50 {
        raw_send(&mut publisher, &frame).await;
        assert!(matches!(
            raw_recv(&mut publisher).await,
            ServerMessage::Result { .. }
        ));
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            subscribed = Some(m);
            break;
        }
    }
    let got = subscribed.clone().expect("the subscriber got nothing");
    assert_eq!(got.data["t"].as_str(), Some(text.as_str()));
    // One over the limit: refused with its code, the publisher's session closed, nothing sent.
    let frame = format!(
        r#"{{"type":"publish","id":2,"channel":"big","data":{{"t":"{}"}}}}"#,
        "y".repeat(64 * 1024)
    );
    raw_send(&mut publisher, &frame).await;
    assert_eq!(
        error_code(&raw_recv(&mut publisher).await),
        "NETGET_TOO_LARGE"
    );
    assert_eq!(raw_close_code(&mut publisher).await, Some(1009));
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        while let Some(m) = sub.next().await {
            assert!(
                m.data["t"].as_str().is_some_and(|t| t.starts_with('x')),
                "an oversized message was delivered"
            );
        }
    })
    .await;
    listener.stop().await.unwrap();
    reg.shutdown().await.unwrap();
}
