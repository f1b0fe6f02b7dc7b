//! One connection's bounded outgoing queue, with drop-oldest.
//!
//! The broadcaster must never wait for a client, so it does not send to the
//! socket: it pushes the shared frame into the connection's [`Outbox`] and
//! wakes the connection's task, which writes when the socket can take it.
//!
//! # Why a mutex and a waker, not a channel
//! The queue must drop its *oldest* notification when full, and count
//! consecutive drops; a bounded channel can only refuse the newest (or,
//! like `tokio::sync::broadcast`, drop silently and report the lag later, to
//! the receiver). A `VecDeque` behind a `parking_lot::Mutex` does exactly
//! what the contract says. The lock is held for a push or a pop — never
//! across an `.await` — so a blocking mutex is right (the mini-redis
//! argument), and it is uncontended except for the moment a broadcaster and
//! the connection's own task meet. The task's waker and a "changed" flag
//! live under the same mutex (16 bytes, where a `tokio::sync::Notify` plus
//! its `Notified` future would cost ~120 per connection): a push sets the
//! flag and wakes the task, so a push between the task's "queue empty"
//! check and its wait is never lost.
//!
//! An empty `VecDeque` owns no allocation, so an idle connection's outbox is
//! a few dozen bytes; a busy one holds at most `capacity` frames, each a
//! reference to a frame shared with every other subscriber.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::time::Instant;

/// Queue bounds, from `--queue-capacity` and `--drop-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Notifications queued before the oldest is dropped.
    pub capacity: usize,
    /// Consecutive drops after which the connection is closed with 1013.
    pub drop_limit: u32,
}

/// A queued frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A notification frame and when it was queued (for the delivery lag).
    Notification { frame: Bytes, queued_at: Instant },
    /// A subscription frame. Never dropped: it tells the client which
    /// notifications it will get, and its position in the queue separates
    /// notifications broadcast before a change of subscriptions from those
    /// broadcast after. At most one is queued at a time: the connection
    /// reads no further client op until it has been written.
    Subscribed(Bytes),
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued without dropping anything.
    Queued,
    /// Queued after dropping the oldest queued notification.
    DroppedOldest,
    /// The oldest was dropped and that made `drop_limit` drops in a row:
    /// the connection is now closing with 1013 and its queue is emptied.
    DropLimitReached,
    /// The connection is closing; the frame was not queued.
    Closing,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Entry>,
    /// How many of `entries` are notifications.
    notifications: usize,
    /// Drops since a queued frame was last written.
    consecutive_drops: u32,
    /// Set once the connection is closing, with its close code.
    close: Option<u16>,
    /// Something changed since the task last looked.
    changed: bool,
    /// The connection task, when it waits for a change.
    waker: Option<Waker>,
}

/// The queue shared between broadcasters and one connection's task.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<Queue>,
}

/// Marks the queue changed and wakes its task after unlocking.
fn wake(mut queue: MutexGuard<'_, Queue>) {
    queue.changed = true;
    let waker = queue.waker.take();
    drop(queue);
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a notification frame, dropping the oldest queued notification
    /// when `limits.capacity` are queued already. Never blocks on the client.
    pub fn push_notification(&self, frame: Bytes, queued_at: Instant, limits: Limits) -> Pushed {
        let mut queue = self.queue.lock();
        if queue.close.is_some() {
            return Pushed::Closing;
        }
        let mut pushed = Pushed::Queued;
        if queue.notifications >= limits.capacity {
            let oldest = queue
                .entries
                .iter()
                .position(|e| matches!(e, Entry::Notification { .. }))
                .expect("a full queue holds notifications");
            queue.entries.remove(oldest);
            queue.notifications -= 1;
            queue.consecutive_drops += 1;
            pushed = Pushed::DroppedOldest;
            if queue.consecutive_drops >= limits.drop_limit {
                queue.close = Some(crate::ws::close::TRY_AGAIN_LATER);
                queue.entries = VecDeque::new();
                queue.notifications = 0;
                wake(queue);
                return Pushed::DropLimitReached;
            }
        }
        queue
            .entries
            .push_back(Entry::Notification { frame, queued_at });
        queue.notifications += 1;
        wake(queue);
        pushed
    }

    /// Queues a subscription frame (never dropped).
    pub fn push_subscribed(&self, frame: Bytes) {
        let mut queue = self.queue.lock();
        if queue.close.is_some() {
            return;
        }
        queue.entries.push_back(Entry::Subscribed(frame));
        wake(queue);
    }

    /// The next frame to write, unless the connection is closing.
    pub fn pop(&self) -> Option<Entry> {
        let mut queue = self.queue.lock();
        let entry = queue.entries.pop_front()?;
        if matches!(entry, Entry::Notification { .. }) {
            queue.notifications -= 1;
        }
        if queue.entries.is_empty() {
            // Give back the burst's allocation: idle connections are the
            // common case and should cost nothing here.
            queue.entries = VecDeque::new();
        }
        Some(entry)
    }

    /// A frame taken from the queue has been written completely: the run
    /// of consecutive drops is over.
    pub fn written(&self) {
        self.queue.lock().consecutive_drops = 0;
    }

    /// Starts closing with `code` unless a close already started; empties
    /// the queue. Returns the code the connection closes with.
    pub fn close(&self, code: u16) -> u16 {
        let mut queue = self.queue.lock();
        let code = *queue.close.get_or_insert(code);
        queue.entries = VecDeque::new();
        queue.notifications = 0;
        wake(queue);
        code
    }

    /// The close code, once a close has started.
    pub fn closing(&self) -> Option<u16> {
        self.queue.lock().close
    }

    /// Ready once a push or close happened since the last `Ready` (at once
    /// if one happened while nobody waited); otherwise keeps `cx`'s waker.
    pub fn poll_changed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut queue = self.queue.lock();
        if std::mem::take(&mut queue.changed) {
            return Poll::Ready(());
        }
        if !queue
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            queue.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Resolves after a push or close, as [`Outbox::poll_changed`].
    pub async fn changed(&self) {
        std::future::poll_fn(|cx| self.poll_changed(cx)).await
    }

    /// Number of queued notifications.
    pub fn queued_notifications(&self) -> usize {
        self.queue.lock().notifications
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        capacity: 3,
        drop_limit: 4,
    };

    fn frame(n: u32) -> Bytes {
        Bytes::from(n.to_string())
    }

    fn push(outbox: &Outbox, n: u32) -> Pushed {
        outbox.push_notification(frame(n), Instant::now(), LIMITS)
    }

    fn drain(outbox: &Outbox) -> Vec<String> {
        std::iter::from_fn(|| outbox.pop())
            .map(|e| match e {
                Entry::Notification { frame, .. } => String::from_utf8(frame.to_vec()).unwrap(),
                Entry::Subscribed(f) => format!("sub:{}", String::from_utf8(f.to_vec()).unwrap()),
            })
            .collect()
    }

    #[test]
    fn a_full_queue_drops_its_oldest_notification() {
        let outbox = Outbox::new();
        for n in 1..=3 {
            assert_eq!(push(&outbox, n), Pushed::Queued);
        }
        assert_eq!(push(&outbox, 4), Pushed::DroppedOldest);
        assert_eq!(push(&outbox, 5), Pushed::DroppedOldest);
        assert_eq!(drain(&outbox), ["3", "4", "5"]);
    }

    #[test]
    fn the_drop_limit_in_a_row_closes_with_1013_and_empties_the_queue() {
        let outbox = Outbox::new();
        for n in 1..=3 {
            push(&outbox, n);
        }
        for n in 4..=6 {
            assert_eq!(push(&outbox, n), Pushed::DroppedOldest);
        }
        assert_eq!(push(&outbox, 7), Pushed::DropLimitReached);
        assert_eq!(outbox.closing(), Some(1013));
        assert_eq!(outbox.pop(), None);
        assert_eq!(push(&outbox, 8), Pushed::Closing);
    }

    #[test]
    fn a_written_frame_resets_the_run_of_drops() {
        let outbox = Outbox::new();
        for n in 1..=3 {
            push(&outbox, n);
        }
        for n in 4..=6 {
            assert_eq!(push(&outbox, n), Pushed::DroppedOldest);
        }
        outbox.pop();
        outbox.written();
        assert_eq!(push(&outbox, 7), Pushed::Queued);
        for n in 8..=10 {
            assert_eq!(push(&outbox, n), Pushed::DroppedOldest);
        }
        assert_eq!(outbox.closing(), None);
        assert_eq!(push(&outbox, 11), Pushed::DropLimitReached);
    }

    #[test]
    fn subscription_frames_are_never_dropped_and_keep_their_place() {
        let outbox = Outbox::new();
        push(&outbox, 1);
        outbox.push_subscribed(Bytes::from_static(b"s"));
        push(&outbox, 2);
        push(&outbox, 3);
        assert_eq!(outbox.queued_notifications(), 3);
        push(&outbox, 4);
        push(&outbox, 5);
        assert_eq!(drain(&outbox), ["sub:s", "3", "4", "5"]);
    }

    #[test]
    fn the_first_close_code_wins() {
        let outbox = Outbox::new();
        push(&outbox, 1);
        assert_eq!(outbox.close(1001), 1001);
        assert_eq!(outbox.close(1013), 1001);
        assert_eq!(outbox.pop(), None);
    }

    #[tokio::test]
    async fn a_push_while_nobody_waits_is_not_lost() {
        let outbox = Outbox::new();
        push(&outbox, 1);
        tokio::time::timeout(std::time::Duration::from_secs(1), outbox.changed())
            .await
            .expect("the stored permit wakes the next wait");
    }
}
