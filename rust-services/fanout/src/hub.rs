//! The topic registry: which connections get which notifications.
//!
//! # Structure and locks
//! - `topics: RwLock<HashMap<topic, Mutex<Vec<Arc<Conn>>>>>`. A broadcast
//!   takes the read lock and then the topic's mutex, and pushes the shared
//!   frame into every subscriber's [`Outbox`] while holding both. The topic
//!   mutex serialises broadcasts *of one topic*, so every subscriber sees
//!   that topic's notifications in one order, the order they were
//!   accepted; broadcasts of different topics run in parallel.
//! - A change of a connection's subscriptions takes the write lock, updates
//!   the lists and queues the connection's subscription frame before
//!   releasing it. No broadcast is half-way through meanwhile, so the frame
//!   cleanly separates notifications broadcast under the old set (queued
//!   before it) from those under the new one (queued after it).
//! - `conns: Mutex<Slab<Arc<Conn>>>` holds every open connection, subscribed
//!   or not, so a shutdown can close them all.
//!
//! All three are `parking_lot` locks, held for in-memory work only and
//! never across an `.await`. The broadcaster's work per subscriber is one
//! uncontended mutex, a `VecDeque` push and a wake-up: it never waits for a
//! client (see [`outbox`](crate::outbox)).
//!
//! # Why not `tokio::sync::broadcast`
//! A broadcast channel per topic keeps a ring per *topic*, not a queue per
//! *connection*: a connection on 64 topics would poll 64 receivers, the
//! contract's per-connection capacity and "N drops in a row" could not be
//! expressed, and lag would only be discovered (as `Lagged(n)`) when the
//! receiver next reads — never by the broadcaster, which is where the
//! contract wants the slow consumer closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use slab::Slab;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::frame;
use crate::metrics::FanoutMetrics;
use crate::op::Op;
use crate::outbox::{Limits, Outbox, Pushed};
use crate::topics::{InvalidTopics, TopicSet, MAX_TOPICS};
use crate::ws::close;

/// One WebSocket connection as the registry sees it.
#[derive(Debug)]
pub struct Conn {
    /// Its key in the hub's connection slab.
    key: usize,
    /// A gRPC `Subscribe` stream ([`grpc`](crate::grpc)): it is queued
    /// `Notification` messages instead of frames, and no subscription
    /// frames.
    stream: bool,
    pub outbox: Outbox,
}

/// A topic's subscribers; the mutex orders the topic's broadcasts.
type Subscribers = Mutex<Vec<Arc<Conn>>>;
/// Topic name → subscribers; a topic without subscribers has no entry.
type Registry = HashMap<Box<str>, Subscribers>;

/// The registry of connections and their topics.
pub struct Hub {
    topics: RwLock<Registry>,
    conns: Mutex<Slab<Arc<Conn>>>,
    /// Signalled when the last connection goes away.
    emptied: Notify,
    shutting_down: AtomicBool,
    limits: Limits,
    metrics: FanoutMetrics,
}

impl Hub {
    pub fn new(limits: Limits, metrics: FanoutMetrics) -> Self {
        Self {
            topics: RwLock::default(),
            conns: Mutex::default(),
            emptied: Notify::new(),
            shutting_down: AtomicBool::new(false),
            limits,
            metrics,
        }
    }

    pub fn metrics(&self) -> &FanoutMetrics {
        &self.metrics
    }

    /// Registers a new connection on `topics` and queues its first
    /// subscription frame. During a shutdown the connection is registered
    /// already closing with 1001.
    pub fn connect(&self, topics: &TopicSet) -> Arc<Conn> {
        self.register(topics, false)
    }

    /// Registers a gRPC stream on `topics`: a connection that gets each
    /// notification as a `Notification` message and no subscription
    /// frames. During a shutdown it is registered already closing.
    pub fn connect_stream(&self, topics: &TopicSet) -> Arc<Conn> {
        self.register(topics, true)
    }

    fn register(&self, topics: &TopicSet, stream: bool) -> Arc<Conn> {
        let conn = {
            let mut conns = self.conns.lock();
            let entry = conns.vacant_entry();
            let conn = Arc::new(Conn {
                key: entry.key(),
                stream,
                outbox: Outbox::new(),
            });
            entry.insert(conn.clone());
            conn
        };
        self.metrics.connections.inc();
        {
            let mut registry = self.topics.write();
            for topic in topics.iter() {
                registry
                    .entry(topic.into())
                    .or_default()
                    .get_mut()
                    .push(conn.clone());
            }
            if !stream {
                conn.outbox.push_subscribed(frame::subscribed(topics));
            }
        }
        if self.shutting_down.load(Ordering::Acquire) {
            conn.outbox.close(close::GOING_AWAY);
        }
        conn
    }

    /// Applies a client op to `conn`, whose current set is `topics`, and
    /// queues the new subscription frame. Fails, changing nothing, when a
    /// subscribe would take the set over [`MAX_TOPICS`].
    pub fn apply(
        &self,
        conn: &Arc<Conn>,
        topics: &mut TopicSet,
        op: &Op,
    ) -> Result<(), InvalidTopics> {
        let mut next = topics.clone();
        match op {
            Op::Subscribe(names) => names.iter().for_each(|n| {
                next.insert(n);
            }),
            Op::Unsubscribe(names) => names.iter().for_each(|n| {
                next.remove(n);
            }),
        }
        if next.len() > MAX_TOPICS {
            return Err(InvalidTopics);
        }
        next.shrink_to_fit();
        let subscribed = frame::subscribed(&next);
        let mut registry = self.topics.write();
        for removed in topics.iter().filter(|t| !next.contains(t)) {
            remove(&mut registry, removed, conn);
        }
        for added in next.iter().filter(|t| !topics.contains(t)) {
            registry
                .entry(added.into())
                .or_default()
                .get_mut()
                .push(conn.clone());
        }
        conn.outbox.push_subscribed(subscribed);
        drop(registry);
        *topics = next;
        Ok(())
    }

    /// Forgets `conn` (subscribed to `topics`) after its task ended.
    pub fn disconnect(&self, conn: &Arc<Conn>, topics: &TopicSet) {
        if !topics.is_empty() {
            let mut registry = self.topics.write();
            for topic in topics.iter() {
                remove(&mut registry, topic, conn);
            }
        }
        let mut conns = self.conns.lock();
        conns.remove(conn.key);
        let empty = conns.is_empty();
        drop(conns);
        self.metrics.connections.dec();
        if empty {
            self.emptied.notify_waiters();
        }
    }

    /// Queues `frame` for every connection subscribed to `topic`; returns
    /// how many there were. Never waits for a client.
    pub fn broadcast(&self, topic: &str, frame: &Bytes) -> usize {
        let registry = self.topics.read();
        let Some(subscribers) = registry.get(topic) else {
            return 0;
        };
        let subscribers = subscribers.lock();
        let now = Instant::now();
        // The gRPC message, encoded once, at the first stream.
        let mut message: Option<Option<Bytes>> = None;
        for conn in subscribers.iter() {
            let queued = if conn.stream {
                match message.get_or_insert_with(|| crate::grpc::notification_message(frame)) {
                    Some(message) => message.clone(),
                    // Not a notification frame: only a foreign Kafka
                    // record can be that, and it has no Notification.
                    None => continue,
                }
            } else {
                frame.clone()
            };
            match conn.outbox.push_notification(queued, now, self.limits) {
                Pushed::Queued | Pushed::Closing => {}
                Pushed::DroppedOldest => self.metrics.dropped_queue_full.inc(),
                Pushed::DropLimitReached => {
                    self.metrics.dropped_queue_full.inc();
                    self.metrics.dropped_slow_consumer.inc();
                }
            }
        }
        subscribers.len()
    }

    /// Starts closing every connection with 1001, and every one that
    /// connects from now on.
    pub fn close_all(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let conns: Vec<Arc<Conn>> = self.conns.lock().iter().map(|(_, c)| c.clone()).collect();
        for conn in conns {
            conn.outbox.close(close::GOING_AWAY);
        }
    }

    /// Resolves once no connection is open.
    pub async fn closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.conns.lock().is_empty() {
                return;
            }
            emptied.await;
        }
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.lock().len()
    }

    /// Connections subscribed to `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.topics.read().get(topic).map_or(0, |s| s.lock().len())
    }
}

fn remove(registry: &mut Registry, topic: &str, conn: &Arc<Conn>) {
    if let Some(list) = registry.get_mut(topic) {
        let list = list.get_mut();
        if let Some(at) = list.iter().position(|c| Arc::ptr_eq(c, conn)) {
            // Order among subscribers does not matter; order of frames
            // within each subscriber's queue does, and is untouched.
            list.swap_remove(at);
        }
        if list.is_empty() {
            registry.remove(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Entry;
    use parallax_common::metrics::Metrics;

    fn hub(capacity: usize, drop_limit: u32) -> (Hub, Metrics) {
        let metrics = Metrics::new();
        let fanout = FanoutMetrics::register(&metrics);
        (
            Hub::new(
                Limits {
                    capacity,
                    drop_limit,
                },
                fanout,
            ),
            metrics,
        )
    }

    fn set(names: &[&str]) -> TopicSet {
        TopicSet::from_list(names.iter().copied()).unwrap()
    }

    /// Everything queued for `conn`, as text.
    fn drain(conn: &Conn) -> Vec<String> {
        std::iter::from_fn(|| conn.outbox.pop())
            .map(|e| match e {
                Entry::Notification { frame, .. } | Entry::Subscribed(frame) => {
                    String::from_utf8(frame.to_vec()).unwrap()
                }
            })
            .collect()
    }

    fn notification(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[test]
    fn a_new_connection_is_told_its_sorted_topics_first() {
        let (hub, _) = hub(8, 8);
        let conn = hub.connect(&set(&["b", "a"]));
        assert_eq!(drain(&conn), [r#"{"op":"subscribed","topics":["a","b"]}"#]);
        assert_eq!(hub.connections(), 1);
    }

    #[test]
    fn a_notification_reaches_exactly_the_subscribers_of_its_topic() {
        let (hub, _) = hub(8, 8);
        let ab = hub.connect(&set(&["a", "b"]));
        let b = hub.connect(&set(&["b"]));
        let c = hub.connect(&set(&["c"]));
        for conn in [&ab, &b, &c] {
            drain(conn);
        }
        assert_eq!(hub.broadcast("a", &notification("A")), 1);
        assert_eq!(hub.broadcast("b", &notification("B")), 2);
        assert_eq!(hub.broadcast("nobody", &notification("N")), 0);
        assert_eq!(drain(&ab), ["A", "B"]);
        assert_eq!(drain(&b), ["B"]);
        assert!(drain(&c).is_empty());
    }

    #[test]
    fn every_subscriber_shares_the_one_serialised_frame() {
        let (hub, _) = hub(8, 8);
        let x = hub.connect(&set(&["t"]));
        let y = hub.connect(&set(&["t"]));
        for conn in [&x, &y] {
            conn.outbox.pop();
        }
        let frame = notification("shared");
        hub.broadcast("t", &frame);
        for conn in [&x, &y] {
            match conn.outbox.pop() {
                Some(Entry::Notification { frame: queued, .. }) => {
                    assert_eq!(queued.as_ptr(), frame.as_ptr(), "same bytes, not a copy")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn notifications_of_a_topic_keep_their_order_per_connection() {
        let (hub, _) = hub(1000, 1000);
        let conn = hub.connect(&set(&["t", "u"]));
        drain(&conn);
        for i in 0..100 {
            hub.broadcast(
                if i % 3 == 0 { "u" } else { "t" },
                &notification(&i.to_string()),
            );
        }
        let got: Vec<u32> = drain(&conn).iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_broadcasters_give_every_subscriber_the_same_order() {
        let (hub, _) = hub(100_000, 100_000);
        let hub = Arc::new(hub);
        let conns: Vec<_> = (0..4).map(|_| hub.connect(&set(&["t"]))).collect();
        conns.iter().for_each(|c| {
            drain(c);
        });
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        hub.broadcast("t", &notification(&format!("{t}-{i}")));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let first = drain(&conns[0]);
        assert_eq!(first.len(), 8000);
        for conn in &conns[1..] {
            assert_eq!(drain(conn), first);
        }
    }

    #[test]
    fn subscribe_and_unsubscribe_change_the_set_and_queue_a_frame() {
        let (hub, _) = hub(8, 8);
        let mut topics = set(&["a", "b"]);
        let conn = hub.connect(&topics);
        drain(&conn);
        hub.apply(&conn, &mut topics, &Op::Subscribe(set(&["c", "a"])))
            .unwrap();
        hub.broadcast("c", &notification("C"));
        hub.apply(&conn, &mut topics, &Op::Unsubscribe(set(&["a", "x"])))
            .unwrap();
        hub.broadcast("a", &notification("A"));
        hub.apply(&conn, &mut topics, &Op::Unsubscribe(set(&["b", "c"])))
            .unwrap();
        hub.broadcast("b", &notification("B"));
        assert_eq!(
            drain(&conn),
            [
                r#"{"op":"subscribed","topics":["a","b","c"]}"#,
                "C",
                r#"{"op":"subscribed","topics":["b","c"]}"#,
                r#"{"op":"subscribed","topics":[]}"#,
            ]
        );
        assert_eq!(hub.subscribers("a"), 0);
        assert_eq!(hub.subscribers("b"), 0);
        assert!(topics.is_empty());
    }

    #[test]
    fn a_subscribe_past_64_topics_changes_nothing() {
        let (hub, _) = hub(8, 8);
        let names: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
        let mut topics = TopicSet::from_list(names.iter().map(|s| s.as_str())).unwrap();
        let conn = hub.connect(&topics);
        drain(&conn);
        // Re-subscribing to held topics is fine; a 65th is not.
        hub.apply(&conn, &mut topics, &Op::Subscribe(set(&["t0"])))
            .unwrap();
        drain(&conn);
        assert_eq!(
            hub.apply(&conn, &mut topics, &Op::Subscribe(set(&["new"]))),
            Err(InvalidTopics)
        );
        assert_eq!(topics.len(), 64);
        assert_eq!(hub.subscribers("new"), 0);
        assert!(drain(&conn).is_empty());
    }

    #[test]
    fn disconnect_forgets_the_connection_everywhere() {
        let (hub, metrics) = hub(8, 8);
        let topics = set(&["a", "b"]);
        let conn = hub.connect(&topics);
        let other = hub.connect(&set(&["a"]));
        assert!(metrics.render().contains("fanout_connections 2"));
        hub.disconnect(&conn, &topics);
        assert_eq!(hub.subscribers("a"), 1);
        assert_eq!(hub.subscribers("b"), 0);
        assert_eq!(hub.connections(), 1);
        assert!(metrics.render().contains("fanout_connections 1"));
        drop(other);
    }

    #[test]
    fn a_slow_connection_is_closed_and_counted_while_others_keep_receiving() {
        let (hub, metrics) = hub(2, 3);
        let slow = hub.connect(&set(&["t"]));
        let fast = hub.connect(&set(&["t"]));
        drain(&slow);
        drain(&fast);
        for i in 0..5 {
            hub.broadcast("t", &notification(&i.to_string()));
            assert_eq!(drain(&fast), [i.to_string()]);
            fast.outbox.written();
        }
        // slow: 0,1 queued; 2,3,4 each dropped the oldest; the third drop closed it.
        assert_eq!(slow.outbox.closing(), Some(1013));
        assert!(drain(&slow).is_empty());
        let text = metrics.render();
        assert!(
            text.contains(r#"fanout_dropped_total{reason="queue_full"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"fanout_dropped_total{reason="slow_consumer_closed"} 1"#));
        // Further broadcasts skip the closing connection.
        hub.broadcast("t", &notification("later"));
        assert!(drain(&slow).is_empty());
        assert!(metrics
            .render()
            .contains(r#"fanout_dropped_total{reason="queue_full"} 3"#));
    }

    #[test]
    fn close_all_closes_open_and_later_connections_with_1001() {
        let (hub, _) = hub(8, 8);
        let before = hub.connect(&set(&["a"]));
        hub.close_all();
        let after = hub.connect(&set(&["a"]));
        assert_eq!(before.outbox.closing(), Some(1001));
        assert_eq!(after.outbox.closing(), Some(1001));
    }

    #[tokio::test]
    async fn closed_resolves_when_the_last_connection_goes() {
        let (hub, _) = hub(8, 8);
        let hub = Arc::new(hub);
        let topics = set(&["a"]);
        let conn = hub.connect(&topics);
        let waiter = tokio::spawn({
            let hub = hub.clone();
            async move { hub.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        hub.disconnect(&conn, &topics);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
