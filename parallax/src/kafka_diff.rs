//! `parallax kafka-diff`: the Kafka side-effect diff of the twins
//! (`parallax-kafka-diff`). Sets up telemetry and hands over; the flags,
//! the run and the exit codes (0 same, 1 different, 2 cannot run) are the
//! library's.

pub use parallax_kafka_diff::Args as KafkaDiffArgs;

pub fn run(args: &KafkaDiffArgs) -> ! {
    parallax_common::telemetry::init();
    std::process::exit(parallax_kafka_diff::cli::run(args))
}
