//! What a diff run found: the four classes, the counts behind them and the
//! summary table the CLI prints.

use std::fmt;

use serde::Serialize;

use crate::samples::Sample;

/// How one event's records compare. `matched` and `different` count pairs;
/// the other two count records left without a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Matched,
    MissingInShadow,
    ExtraInShadow,
    Different,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::Matched,
        Class::MissingInShadow,
        Class::ExtraInShadow,
        Class::Different,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Matched => "matched",
            Class::MissingInShadow => "missing_in_shadow",
            Class::ExtraInShadow => "extra_in_shadow",
            Class::Different => "different",
        }
    }
}

/// The outcome of a run over both topics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KafkaComparison {
    pub primary_topic: String,
    pub shadow_topic: String,
    pub matched: u64,
    pub missing_in_shadow: u64,
    pub extra_in_shadow: u64,
    pub different: u64,
    /// Records consumed, per side.
    pub consumed_primary: u64,
    pub consumed_shadow: u64,
    /// Records that could not be joined (no `event-id` header), per side.
    /// Not a class: they are neither paired nor reported as missing.
    pub without_event_id_primary: u64,
    pub without_event_id_shadow: u64,
    /// Records evicted because a side's pending bound was reached (already
    /// counted as missing or extra).
    pub overflowed: u64,
    /// The last samples of differences, oldest first.
    pub samples: Vec<Sample>,
}

impl KafkaComparison {
    pub fn count(&self, class: Class) -> u64 {
        match class {
            Class::Matched => self.matched,
            Class::MissingInShadow => self.missing_in_shadow,
            Class::ExtraInShadow => self.extra_in_shadow,
            Class::Different => self.different,
        }
    }

    pub(crate) fn add(&mut self, class: Class) {
        match class {
            Class::Matched => self.matched += 1,
            Class::MissingInShadow => self.missing_in_shadow += 1,
            Class::ExtraInShadow => self.extra_in_shadow += 1,
            Class::Different => self.different += 1,
        }
    }

    /// Whether the twins' topics differ in any way the diff counts
    /// (records without an event id on one side only count too).
    pub fn has_differences(&self) -> bool {
        self.missing_in_shadow + self.extra_in_shadow + self.different > 0
            || self.without_event_id_primary != self.without_event_id_shadow
    }
}

/// The summary table, then one line per kept sample.
impl fmt::Display for KafkaComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kafka-diff: {} (primary) vs {} (shadow)",
            self.primary_topic, self.shadow_topic
        )?;
        writeln!(f, "{:<24}{:>12}", "result", "records")?;
        for class in Class::ALL {
            writeln!(f, "{:<24}{:>12}", class.as_str(), self.count(class))?;
        }
        writeln!(
            f,
            "consumed {} primary, {} shadow; without event-id {} primary, {} shadow; overflowed {}",
            self.consumed_primary,
            self.consumed_shadow,
            self.without_event_id_primary,
            self.without_event_id_shadow,
            self.overflowed
        )?;
        for sample in &self.samples {
            writeln!(f, "  {sample}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_matches_mean_no_differences() {
        let mut c = KafkaComparison::default();
        c.add(Class::Matched);
        assert!(!c.has_differences());
        for class in [
            Class::MissingInShadow,
            Class::ExtraInShadow,
            Class::Different,
        ] {
            let mut c = c.clone();
            c.add(class);
            assert!(c.has_differences(), "{class:?}");
        }
    }

    #[test]
    fn the_table_lists_every_class() {
        let mut c = KafkaComparison {
            primary_topic: "events".into(),
            shadow_topic: "events.shadow".into(),
            ..Default::default()
        };
        c.add(Class::Different);
        let table = c.to_string();
        for class in Class::ALL {
            assert!(table.contains(class.as_str()), "{table}");
        }
        assert!(
            table.contains("different                          1"),
            "{table}"
        );
    }
}
