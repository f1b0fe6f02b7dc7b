//! The join: pairing each primary record with the shadow record of the same
//! `event-id` within a window, in bounded memory. Pure and synchronous — it
//! is handed records and the time, and knows nothing of Kafka — so the
//! window and classification rules are tested on in-memory records.
//!
//! # Rules
//! - A record waits (is *pending*) until a record with its event id arrives
//!   on the other side; then the two are a pair, compared by the caller.
//! - Duplicates pair in arrival order: each side keeps a FIFO per event id,
//!   and an arriving record takes the oldest waiting partner. So a batch the
//!   client retried on both twins pairs up copy for copy, and a copy only
//!   one twin published is left over and reported as missing or extra.
//! - The window runs on the differ's clock (arrival time at the differ, not
//!   the records' timestamps): a record pending for `window` is reported
//!   unpaired. Wall-clock arrival needs no agreement between the twins'
//!   clocks and still expires records when the other twin writes nothing at
//!   all; the cost is that a backlog read with `--from-beginning` must reach
//!   both topics within the window of each other (raise the window for a
//!   large backlog).
//! - At most `max_pending` records wait per side. When a side is full its
//!   oldest pending record is evicted and reported unpaired (overflow), so
//!   memory is bounded by count whatever the twins do.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record::{Record, Side};

/// Why a record ended up without a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpaired {
    /// It waited a whole window.
    Expired,
    /// Its side reached `max_pending` and it was the oldest.
    Overflow,
    /// The run ended while it waited.
    End,
}

/// What the join hands back: a pair to compare, or a record left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    Pair {
        event_id: String,
        primary: Record,
        shadow: Record,
    },
    Alone {
        event_id: String,
        side: Side,
        record: Record,
        why: Unpaired,
    },
}

/// Pending records of both sides.
#[derive(Debug)]
pub struct Joiner {
    window: Duration,
    max_pending: usize,
    sides: [Pending; 2],
    next_seq: u64,
}

/// One side's waiting records, by id (for pairing) and by age (for expiry
/// and eviction). Sequence numbers grow with arrival, so the first entry of
/// `by_age` is the oldest pending record; both indexes hold exactly the
/// pending records, nothing stale. The id is stored once, shared by both.
#[derive(Debug, Default)]
struct Pending {
    by_id: HashMap<Arc<str>, VecDeque<Entry>>,
    by_age: BTreeMap<u64, Arc<str>>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    arrived: Instant,
    record: Record,
}

impl Joiner {
    /// # Panics
    /// When `max_pending` is zero (validated by the caller's configuration).
    pub fn new(window: Duration, max_pending: usize) -> Self {
        assert!(max_pending > 0, "max_pending must be at least 1");
        Joiner {
            window,
            max_pending,
            sides: [Pending::default(), Pending::default()],
            next_seq: 0,
        }
    }

    /// Records waiting on `side`.
    pub fn pending(&self, side: Side) -> usize {
        self.sides[side as usize].by_age.len()
    }

    /// Takes a record that arrived at `now`: pairs it with the oldest waiting
    /// record of the same id on the other side, or makes it wait (evicting
    /// this side's oldest when the side is full).
    pub fn push(
        &mut self,
        side: Side,
        event_id: String,
        record: Record,
        now: Instant,
        out: &mut Vec<Joined>,
    ) {
        if let Some(partner) = self.sides[side.other() as usize].take(&event_id) {
            let (primary, shadow) = match side {
                Side::Primary => (record, partner),
                Side::Shadow => (partner, record),
            };
            out.push(Joined::Pair {
                event_id,
                primary,
                shadow,
            });
            return;
        }
        if self.pending(side) >= self.max_pending {
            if let Some((id, entry)) = self.sides[side as usize].pop_oldest() {
                out.push(alone(side, id, entry, Unpaired::Overflow));
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let pending = &mut self.sides[side as usize];
        let id: Arc<str> = Arc::from(event_id);
        pending.by_age.insert(seq, Arc::clone(&id));
        pending
            .by_id
            .entry(id)
            // Room for exactly one: duplicates are the exception.
            .or_insert_with(|| VecDeque::with_capacity(1))
            .push_back(Entry {
                seq,
                arrived: now,
                record,
            });
    }

    /// Reports every record that has waited `window` or longer at `now`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Joined>) {
        for side in Side::ALL {
            let pending = &mut self.sides[side as usize];
            while pending
                .oldest_arrival()
                .is_some_and(|at| now.saturating_duration_since(at) >= self.window)
            {
                let (id, entry) = pending.pop_oldest().expect("an oldest entry");
                out.push(alone(side, id, entry, Unpaired::Expired));
            }
        }
    }

    /// Reports every pending record: the run is over, no partner will come.
    pub fn finish(&mut self, out: &mut Vec<Joined>) {
        for side in Side::ALL {
            while let Some((id, entry)) = self.sides[side as usize].pop_oldest() {
                out.push(alone(side, id, entry, Unpaired::End));
            }
        }
    }
}

fn alone(side: Side, event_id: String, entry: Entry, why: Unpaired) -> Joined {
    Joined::Alone {
        event_id,
        side,
        record: entry.record,
        why,
    }
}

impl Pending {
    /// Removes and returns the oldest waiting record with this id.
    fn take(&mut self, id: &str) -> Option<Record> {
        let queue = self.by_id.get_mut(id)?;
        let entry = queue.pop_front()?;
        if queue.is_empty() {
            self.by_id.remove(id);
        }
        self.by_age.remove(&entry.seq);
        Some(entry.record)
    }

    fn oldest_arrival(&self) -> Option<Instant> {
        let (_, id) = self.by_age.first_key_value()?;
        self.by_id.get(id.as_ref())?.front().map(|e| e.arrived)
    }

    /// Removes the oldest pending record of the side. It is the front of its
    /// id's queue: older records of the same id left first (paired from the
    /// front, or expired before it).
    fn pop_oldest(&mut self) -> Option<(String, Entry)> {
        let (_, id) = self.by_age.pop_first()?;
        let queue = self.by_id.get_mut(id.as_ref())?;
        let entry = queue.pop_front()?;
        if queue.is_empty() {
            self.by_id.remove(id.as_ref());
        }
        Some((id.as_ref().to_owned(), entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(30);

    fn record(offset: i64) -> Record {
        Record {
            partition: 0,
            offset,
            timestamp_ms: None,
            key: None,
            headers: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Short labels of what came out: `pair:id`, `primary:id:Expired`.
    fn labels(out: &[Joined]) -> Vec<String> {
        out.iter()
            .map(|j| match j {
                Joined::Pair { event_id, .. } => format!("pair:{event_id}"),
                Joined::Alone {
                    event_id,
                    side,
                    why,
                    ..
                } => format!("{}:{event_id}:{why:?}", side.as_str()),
            })
            .collect()
    }

    struct Run {
        joiner: Joiner,
        start: Instant,
        out: Vec<Joined>,
        offset: i64,
    }

    impl Run {
        fn new(max_pending: usize) -> Self {
            Run {
                joiner: Joiner::new(WINDOW, max_pending),
                start: Instant::now(),
                out: Vec::new(),
                offset: 0,
            }
        }

        fn at(&self, secs: u64) -> Instant {
            self.start + Duration::from_secs(secs)
        }

        fn push(&mut self, secs: u64, side: Side, id: &str) -> &mut Self {
            self.offset += 1;
            let now = self.at(secs);
            self.joiner
                .push(side, id.into(), record(self.offset), now, &mut self.out);
            self
        }

        fn expire(&mut self, secs: u64) -> &mut Self {
            let now = self.at(secs);
            self.joiner.expire(now, &mut self.out);
            self
        }

        fn labels(&mut self) -> Vec<String> {
            labels(&std::mem::take(&mut self.out))
        }
    }

    use Side::{Primary, Shadow};

    #[test]
    fn records_with_the_same_event_id_pair_whichever_side_comes_first() {
        let mut run = Run::new(10);
        run.push(0, Primary, "a").push(1, Shadow, "a");
        run.push(2, Shadow, "b").push(3, Primary, "b");
        assert_eq!(run.labels(), ["pair:a", "pair:b"]);
        assert_eq!(run.joiner.pending(Primary), 0);
        assert_eq!(run.joiner.pending(Shadow), 0);
    }

    #[test]
    fn a_pair_keeps_primary_and_shadow_apart() {
        let mut run = Run::new(10);
        run.push(0, Shadow, "a").push(0, Primary, "a");
        match &run.out[0] {
            Joined::Pair {
                primary, shadow, ..
            } => assert_eq!((primary.offset, shadow.offset), (2, 1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_record_without_a_partner_expires_after_exactly_one_window() {
        let mut run = Run::new(10);
        run.push(0, Primary, "a").push(5, Shadow, "x");
        assert!(run.expire(29).labels().is_empty());
        assert_eq!(run.expire(30).labels(), ["primary:a:Expired"]);
        assert_eq!(run.joiner.pending(Shadow), 1);
        assert_eq!(run.expire(35).labels(), ["shadow:x:Expired"]);
    }

    #[test]
    fn a_partner_arriving_after_the_window_does_not_pair() {
        let mut run = Run::new(10);
        run.push(0, Primary, "a").expire(31).push(31, Shadow, "a");
        assert_eq!(run.labels(), ["primary:a:Expired"]);
        assert_eq!(run.joiner.pending(Shadow), 1);
    }

    #[test]
    fn duplicates_pair_copy_for_copy_in_arrival_order() {
        let mut run = Run::new(10);
        run.push(0, Primary, "a").push(1, Primary, "a");
        run.push(2, Shadow, "a").push(3, Shadow, "a");
        assert_eq!(run.labels(), ["pair:a", "pair:a"]);
        assert_eq!(run.joiner.pending(Primary) + run.joiner.pending(Shadow), 0);
    }

    #[test]
    fn a_duplicate_on_one_side_only_is_left_over() {
        let mut run = Run::new(10);
        run.push(0, Primary, "a")
            .push(1, Shadow, "a")
            .push(2, Shadow, "a");
        assert_eq!(run.labels(), ["pair:a"]);
        assert_eq!(run.expire(40).labels(), ["shadow:a:Expired"]);
    }

    #[test]
    fn pairing_takes_the_oldest_copy_so_the_younger_expires_later() {
        let mut run = Run::new(10);
        run.push(0, Primary, "a")
            .push(20, Primary, "a")
            .push(21, Shadow, "a");
        match &run.out[0] {
            Joined::Pair { primary, .. } => assert_eq!(primary.offset, 1),
            other => panic!("{other:?}"),
        }
        run.out.clear();
        assert!(run.expire(49).labels().is_empty());
        assert_eq!(run.expire(50).labels(), ["primary:a:Expired"]);
    }

    #[test]
    fn a_full_side_evicts_its_oldest_record_as_overflow() {
        let mut run = Run::new(2);
        run.push(0, Primary, "a")
            .push(1, Primary, "b")
            .push(2, Primary, "c");
        assert_eq!(run.labels(), ["primary:a:Overflow"]);
        assert_eq!(run.joiner.pending(Primary), 2);
        // The other side has its own bound.
        run.push(3, Shadow, "x").push(4, Shadow, "y");
        assert!(run.labels().is_empty());
        // Pairing frees room without evicting.
        run.push(5, Shadow, "b").push(6, Primary, "z");
        assert_eq!(run.labels(), ["pair:b"]);
    }

    #[test]
    fn finishing_reports_everything_still_pending() {
        let mut run = Run::new(10);
        run.push(0, Primary, "a").push(1, Shadow, "b");
        run.joiner.finish(&mut run.out);
        assert_eq!(run.labels(), ["primary:a:End", "shadow:b:End"]);
        assert_eq!(run.joiner.pending(Primary), 0);
    }

    #[test]
    fn memory_holds_only_pending_records_however_many_pairs_passed() {
        let mut run = Run::new(4);
        for i in 0..10_000 {
            let id = format!("e{i}");
            run.push(0, Primary, &id).push(0, Shadow, &id);
        }
        assert_eq!(run.out.len(), 10_000);
        let sides = &run.joiner.sides;
        assert!(sides
            .iter()
            .all(|s| s.by_id.is_empty() && s.by_age.is_empty()));
    }
}
