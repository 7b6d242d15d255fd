//! Publish/subscribe channels of a registry, scoped per network.
//!
//! Delivery is at most once to the subscribers present when a message is published: a channel
//! is a broadcast with a small buffer, nothing is stored, and a subscriber that falls more than
//! the buffer behind loses the oldest messages (its session is told nothing; PROTOCOL.md says so).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::model::{ChannelMessage, ChannelName, NetworkName};

/// Messages one subscriber may fall behind by before it loses the oldest.
const CHANNEL_BUFFER: usize = 256;

/// The sending end of one channel.
type ChannelSender = broadcast::Sender<Arc<ChannelMessage>>;

/// The receiving end of one channel subscription.
pub type ChannelReceiver = broadcast::Receiver<Arc<ChannelMessage>>;

/// Every live channel of a registry. A channel exists while someone subscribes to it.
#[derive(Debug, Default)]
pub struct Channels {
    map: Mutex<HashMap<(NetworkName, ChannelName), ChannelSender>>,
}

impl Channels {
    /// Subscribes to a channel of a network.
    pub fn subscribe(&self, network: &NetworkName, channel: &ChannelName) -> ChannelReceiver {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((network.clone(), channel.clone()))
            .or_insert_with(|| broadcast::channel(CHANNEL_BUFFER).0)
            .subscribe()
    }

    /// Hands `message` to the channel's current subscribers; returns how many there were.
    pub fn publish(&self, network: &NetworkName, message: ChannelMessage) -> usize {
        let key = (network.clone(), message.channel.clone());
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = map.get(&key) else {
            return 0;
        };
        match tx.send(Arc::new(message)) {
            Ok(n) => n,
            Err(_) => {
                // Everyone left: forget the channel.
                map.remove(&key);
                0
            }
        }
    }

    /// Forgets channels nobody subscribes to any more.
    pub fn sweep(&self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(channel: &str, n: u64) -> ChannelMessage {
        ChannelMessage {
            channel: ChannelName::new(channel).unwrap(),
            data: n.into(),
            from: None,
        }
    }

    #[test]
    fn messages_reach_current_subscribers_of_the_same_network_only() {
        let c = Channels::default();
        let dev = NetworkName::new("development").unwrap();
        let prod = NetworkName::new("production").unwrap();
        let chat = ChannelName::new("chat").unwrap();
        assert_eq!(c.publish(&dev, msg("chat", 0)), 0, "nobody subscribed yet");
        let mut a = c.subscribe(&dev, &chat);
        let mut p = c.subscribe(&prod, &chat);
        assert_eq!(c.publish(&dev, msg("chat", 1)), 1);
        assert_eq!(a.try_recv().unwrap().data, 1);
        assert!(
            p.try_recv().is_err(),
            "production subscribers see nothing of development"
        );
        drop(a);
        drop(p);
        assert_eq!(c.publish(&dev, msg("chat", 2)), 0);
        c.sweep();
        assert!(c.map.lock().unwrap().is_empty());
    }
}
