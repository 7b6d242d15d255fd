//! What a session sends: one bounded queue of frames, and the feeds (watched services, a watched
//! network, subscribed channels) that the session's writer reads itself.
//!
//! The writer task owns the socket's sending half. Requests' answers reach it through the queue;
//! a feed's events do not pass through the queue at all: the writer follows each feed directly,
//! so an event costs one task wake-up per watcher (the writer's) instead of two (a forwarder's,
//! then the writer's). With 1,000 watchers of one service that is 1,000 wake-ups per event fewer,
//! and no forwarder task per watch to keep in memory.
//!
//! Order is the queue's: a feed followed after an answer (the snapshot of a `watch`) pushes
//! nothing before that answer is written, and a feed dropped before an answer (`unwatch`) pushes
//! nothing after it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::{self, AbortHandle, Abortable, SelectAll};
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;

use crate::model::{ChannelName, ServiceName};

/// How many outgoing items may queue for one session before senders wait.
const OUTBOX: usize = 1024;

/// Frames written per flush at most, so a writer under a steady stream of events still flushes
/// (and its stall bound measures one batch, not the whole stream).
const MAX_BATCH: usize = 256;

/// A stream of frames a session's writer follows: the events of a watch, a channel's messages.
pub(super) type Feed = Pin<Box<dyn Stream<Item = Message> + Send>>;

/// What a feed follows; following a key again replaces the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FeedKey {
    /// One service's changes.
    Service(ServiceName),
    /// Every change of the session's network.
    Network,
    /// One channel's messages.
    Channel(ChannelName),
}

/// One item of the queue.
enum Outgoing {
    /// A frame to write.
    Frame(Message),
    /// Start (or replace) following a feed (boxed: rare, and every slot of the queue is as
    /// large as its largest item).
    Follow(Box<(FeedKey, Feed)>),
    /// Stop following a feed.
    Unfollow(FeedKey),
}

/// The queue ran full for longer than the sender would wait, or the writer is gone.
#[derive(Debug)]
pub(super) struct Refused;

/// The sending side of a session's outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Outbox {
    tx: mpsc::Sender<Outgoing>,
}

impl Outbox {
    /// A new outbox and its writer task over `sink`. Every write of the writer is bounded by
    /// `stall`: a peer whose TCP window stays shut that long ends the writer, which ends the
    /// session.
    pub(super) fn spawn(
        sink: futures_util::stream::SplitSink<WebSocket, Message>,
        stall: Duration,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        (Outbox { tx }, tokio::spawn(write_loop(sink, rx, stall)))
    }

    /// Queues a frame, waiting while the queue is full.
    pub(super) async fn send(&self, m: Message) -> Result<(), Refused> {
        self.queue(Outgoing::Frame(m)).await
    }

    /// Queues a frame if there is room now.
    pub(super) fn try_send(&self, m: Message) -> Result<(), TryRefused> {
        self.tx.try_send(Outgoing::Frame(m)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(Outgoing::Frame(m)) => TryRefused::Full(m),
            _ => TryRefused::Closed,
        })
    }

    /// Has the writer follow `feed` from after everything queued so far.
    pub(super) async fn follow(&self, key: FeedKey, feed: Feed) -> Result<(), Refused> {
        self.queue(Outgoing::Follow(Box::new((key, feed)))).await
    }

    /// Has the writer drop the feed of `key` (if any) after everything queued so far.
    pub(super) async fn unfollow(&self, key: FeedKey) -> Result<(), Refused> {
        self.queue(Outgoing::Unfollow(key)).await
    }

    async fn queue(&self, item: Outgoing) -> Result<(), Refused> {
        self.tx.send(item).await.map_err(|_| Refused)
    }
}

/// Why [`Outbox::try_send`] did not queue.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TryRefused {
    /// The queue is full (the peer is not reading, or not yet): here is the frame back.
    Full(Message),
    /// The writer is gone.
    Closed,
}

/// The feeds a writer follows. Each is polled only when its channel woke it (`SelectAll`), so
/// an event costs the same whether the session follows one feed or hundreds; each is abortable,
/// so that one can be dropped by its key.
#[derive(Default)]
struct Feeds {
    /// Made with the first feed: most sessions follow none.
    streams: Option<SelectAll<Abortable<Feed>>>,
    keys: Vec<(FeedKey, AbortHandle)>,
}

impl Feeds {
    fn follow(&mut self, key: FeedKey, feed: Feed) {
        self.unfollow(&key);
        let (feed, handle) = stream::abortable(feed);
        self.streams.get_or_insert_with(SelectAll::new).push(feed);
        self.keys.push((key, handle));
    }

    /// Stops following `key`: its feed ends, and is dropped, at the next poll.
    fn unfollow(&mut self, key: &FeedKey) {
        self.keys.retain(|(k, handle)| {
            if k == key {
                handle.abort();
            }
            k != key
        });
    }

    /// Drops every feed now.
    fn clear(&mut self) {
        self.keys.clear();
        self.streams = None;
    }

    /// The next frame of any feed; pending while there is none (and forever with no feeds).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Message> {
        match self.streams.as_mut().map(|s| s.poll_next_unpin(cx)) {
            Some(Poll::Ready(Some(m))) => Poll::Ready(m),
            // No feed left: the writer polls again once a Follow arrives through the queue.
            _ => Poll::Pending,
        }
    }

    async fn next(&mut self) -> Message {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

/// Writes what the queue and the feeds bring until the queue closes, a close frame is written,
/// or a write stalls past `stall`.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    stall: Duration,
) {
    let mut feeds = Feeds::default();
    loop {
        // The queue first: what was queued before a feed was followed goes out before it.
        let first = tokio::select! {
            biased;
            item = rx.recv() => match item {
                Some(item) => item,
                None => return,
            },
            m = feeds.next() => Outgoing::Frame(m),
        };
        // Batch what is already there into one flush: under load this turns many small writes
        // into one syscall.
        let batch = async {
            let mut closing = take(first, &mut sink, &mut feeds).await?;
            let mut written = 1;
            while !closing && written < MAX_BATCH {
                if let Ok(item) = rx.try_recv() {
                    closing = take(item, &mut sink, &mut feeds).await?;
                } else if let Some(m) = feeds.next().now_or_never() {
                    sink.feed(m).await?;
                } else {
                    break;
                }
                written += 1;
            }
            sink.flush().await?;
            Ok::<bool, axum::Error>(closing)
        };
        // Most batches are written on their first poll (the socket has room): the stall timer
        // is armed only for one that has to wait, not once per batch.
        let outcome = {
            let mut batch = std::pin::pin!(batch);
            match std::future::poll_fn(|cx| Poll::Ready(batch.as_mut().poll(cx))).await {
                Poll::Ready(done) => Ok(done),
                Poll::Pending => tokio::time::timeout(stall, batch).await,
            }
        };
        match outcome {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                return;
            }
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Acts on one queued item; whether it was the close frame.
async fn take(
    item: Outgoing,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    feeds: &mut Feeds,
) -> Result<bool, axum::Error> {
    match item {
        Outgoing::Frame(m) => {
            let closing = matches!(m, Message::Close(_));
            if closing {
                // Nothing follows a close frame: let go of the feeds (and their receivers) now.
                feeds.clear();
            }
            sink.feed(m).await?;
            Ok(closing)
        }
        Outgoing::Follow(follow) => {
            let (key, feed) = *follow;
            feeds.follow(key, feed);
            Ok(false)
        }
        Outgoing::Unfollow(key) => {
            feeds.unfollow(&key);
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> Message {
        Message::Text(s.into())
    }

    fn feed(items: Vec<&'static str>) -> Feed {
        Box::pin(futures_util::stream::iter(items.into_iter().map(text)))
    }

    fn drain(feeds: &mut Feeds) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Message::Text(t)) = feeds.next().now_or_never() {
            out.push(t.to_string());
        }
        out
    }

    #[test]
    fn every_feed_is_read_and_an_ended_feed_is_dropped() {
        let mut feeds = Feeds::default();
        assert!(feeds.next().now_or_never().is_none(), "no feed: pending");
        feeds.follow(FeedKey::Network, feed(vec!["n1", "n2", "n3"]));
        feeds.follow(
            FeedKey::Channel(ChannelName::new("c").unwrap()),
            feed(vec!["c1"]),
        );
        let mut got = drain(&mut feeds);
        got.sort();
        assert_eq!(got, ["c1", "n1", "n2", "n3"]);
        assert!(feeds.next().now_or_never().is_none(), "both ended: pending");
        assert!(feeds.streams.as_ref().is_some_and(|s| s.is_empty()));
    }

    #[test]
    fn following_a_key_again_replaces_its_feed_and_unfollow_drops_it() {
        let mut feeds = Feeds::default();
        let web = || FeedKey::Service(ServiceName::new("web").unwrap());
        feeds.follow(web(), feed(vec!["old"]));
        feeds.follow(web(), feed(vec!["new"]));
        assert_eq!(feeds.keys.len(), 1);
        assert_eq!(drain(&mut feeds), ["new"]);
        feeds.follow(web(), feed(vec!["x"]));
        feeds.unfollow(&web());
        assert_eq!(drain(&mut feeds), Vec::<String>::new());
        assert!(feeds.keys.is_empty());
    }

    #[tokio::test]
    async fn a_feed_that_gets_an_event_wakes_the_writer_whichever_it_is() {
        // Many idle feeds and one that receives later: the receiving one is found, by its own
        // wake-up, not by polling all of them.
        let mut feeds = Feeds::default();
        let mut senders = Vec::new();
        for i in 0..50 {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
            senders.push(tx);
            let rx = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|m| (m, rx))
            });
            feeds.follow(
                FeedKey::Channel(ChannelName::new(&format!("c{i}")).unwrap()),
                Box::pin(rx),
            );
        }
        assert!(feeds.next().now_or_never().is_none());
        let sender = senders.get(37).unwrap().clone();
        tokio::spawn(async move { sender.send(text("late")).unwrap() });
        let got = tokio::time::timeout(Duration::from_secs(5), feeds.next())
            .await
            .expect("the writer is woken by the feed that received");
        assert!(matches!(got, Message::Text(t) if t == "late"));
    }
}
