//! Removes the Kafka topics a run created.
//!
//! The twins' topics are named after the run (`parallax-{run}-…`, `{run}`
//! being `px<milliseconds>`), and Kafka creates them on their first write.
//! A run whose topics nobody joins afterwards — A/A, a capacity search —
//! would otherwise leave them in the broker for good: two per ingest A/A
//! run of `scripts/aa-fairness.sh`, hundreds over a day of benchmarks, each
//! with its log segments on disk. The run's id is unique, so every topic
//! whose name holds it is this run's and no one else's.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;

/// Why a run's topics could not be listed or removed.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("cannot reach Kafka at {brokers} to remove this run's topics ({reason}); remove topics named with {run} by hand")]
    Unreachable {
        brokers: String,
        run: String,
        reason: String,
    },
    #[error("Kafka refused to delete topic {topic}: {reason}")]
    Refused { topic: String, reason: String },
}

/// The names in `topics` that belong to run `run`: they hold its id as a
/// whole `-`-separated part (`px17` is not `px1`'s).
pub fn of_run<'a>(topics: impl IntoIterator<Item = &'a str>, run: &str) -> Vec<String> {
    topics
        .into_iter()
        .filter(|t| !run.is_empty() && t.split('-').any(|part| part == run))
        .map(str::to_owned)
        .collect()
}

/// Deletes every topic on `brokers` that belongs to run `run` ([`of_run`]);
/// the names deleted.
pub fn delete_run_topics(
    brokers: &str,
    run: &str,
    timeout: Duration,
) -> Result<Vec<String>, TopicsError> {
    let unreachable = |e: KafkaError| TopicsError::Unreachable {
        brokers: brokers.to_owned(),
        run: run.to_owned(),
        reason: e.to_string(),
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(unreachable)?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(unreachable)?;
    let names = of_run(metadata.topics().iter().map(|t| t.name()), run);
    if names.is_empty() {
        return Ok(names);
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let results = runtime
        .block_on(admin.delete_topics(&refs, &options))
        .map_err(unreachable)?;
    for result in results {
        if let Err((topic, code)) = result {
            return Err(TopicsError::Refused {
                topic,
                reason: code.to_string(),
            });
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_topics_are_those_named_with_its_whole_id() {
        let topics = [
            "parallax-px1764-go-a",
            "parallax-px1764-go-b",
            "parallax-px17640-go",
            "orders",
            "px1764",
        ];
        assert_eq!(
            of_run(topics, "px1764"),
            ["parallax-px1764-go-a", "parallax-px1764-go-b", "px1764"]
        );
        assert!(of_run(topics, "").is_empty(), "no id, no topics");
    }
}
