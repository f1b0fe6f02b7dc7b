//! Backpressure between the two topics.
//!
//! One consumer reads both topics, and librdkafka does not read them at the
//! same pace: over a backlog it can deliver a hundred thousand primary
//! records before the first shadow record. Their partners exist, a little
//! further along the shadow topic, but the primary's pending records would
//! hit the bound and be reported missing. So a side whose pending records
//! reach three quarters of the bound is paused while the other side still
//! has records to read (consumer lag above zero), and resumed once its
//! pending records fall to half the bound or the other side has caught up.
//! The bound then only bites when the other side has nothing more to give —
//! when the records really are missing.
//!
//! Never both sides at once: if both sides' pending records are high (the
//! twins publish different ids altogether) one keeps reading, and expiry
//! drains the other.
//!
//! Pausing here is a decision only; the differ carries it out by not
//! polling that side's consumer (see [`differ`](crate::differ)).

use crate::record::Side;

/// A pause or a resume of one side's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Pause(Side),
    Resume(Side),
}

/// Which sides are paused, and when to change that.
#[derive(Debug)]
pub struct Gate {
    pause_at: usize,
    resume_at: usize,
    paused: [bool; 2],
}

impl Gate {
    pub fn new(max_pending: usize) -> Self {
        Gate {
            pause_at: (max_pending / 4 * 3).max(1),
            resume_at: max_pending / 2,
            paused: [false; 2],
        }
    }

    pub fn is_paused(&self, side: Side) -> bool {
        self.paused[side as usize]
    }

    /// Decides from the pending counts and whether each side is `behind`
    /// (has records in Kafka it has not read, or its lag is not known yet);
    /// the caller applies the changes.
    pub fn update(&mut self, pending: [usize; 2], behind: [bool; 2]) -> Vec<Change> {
        let mut changes = Vec::new();
        for side in Side::ALL {
            let (s, o) = (side as usize, side.other() as usize);
            if self.paused[s] {
                if pending[s] <= self.resume_at || !behind[o] {
                    self.paused[s] = false;
                    changes.push(Change::Resume(side));
                }
            } else if pending[s] >= self.pause_at && behind[o] && !self.paused[o] {
                self.paused[s] = true;
                changes.push(Change::Pause(side));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Side::{Primary, Shadow};

    #[test]
    fn a_side_far_ahead_pauses_while_the_other_has_records_to_read() {
        let mut gate = Gate::new(100);
        assert!(gate.update([74, 0], [false, true]).is_empty());
        assert_eq!(
            gate.update([75, 0], [false, true]),
            [Change::Pause(Primary)]
        );
        assert!(gate.is_paused(Primary));
        // Still above half the bound and the shadow still behind: stays paused.
        assert!(gate.update([60, 0], [false, true]).is_empty());
        assert_eq!(
            gate.update([50, 0], [false, true]),
            [Change::Resume(Primary)]
        );
    }

    #[test]
    fn a_paused_side_resumes_when_the_other_has_caught_up() {
        let mut gate = Gate::new(100);
        gate.update([90, 0], [false, true]);
        assert_eq!(
            gate.update([90, 0], [false, false]),
            [Change::Resume(Primary)]
        );
        // And does not pause again while the other has nothing to give:
        // the bound (overflow) decides from here.
        assert!(gate.update([99, 0], [false, false]).is_empty());
    }

    #[test]
    fn a_side_does_not_pause_when_the_other_is_caught_up() {
        let mut gate = Gate::new(100);
        assert!(gate.update([0, 80], [false, false]).is_empty());
        assert_eq!(gate.update([0, 80], [true, false]), [Change::Pause(Shadow)]);
    }

    #[test]
    fn both_sides_are_never_paused_at_once() {
        let mut gate = Gate::new(100);
        assert_eq!(
            gate.update([80, 80], [true, true]),
            [Change::Pause(Primary)]
        );
        assert!(gate.update([80, 80], [true, true]).is_empty());
        assert!(!gate.is_paused(Shadow));
    }

    #[test]
    fn a_bound_of_one_still_pauses_and_resumes() {
        let mut gate = Gate::new(1);
        assert_eq!(gate.update([1, 0], [false, true]), [Change::Pause(Primary)]);
        assert_eq!(
            gate.update([0, 0], [false, true]),
            [Change::Resume(Primary)]
        );
    }
}
