//! Reading a Prometheus text exposition, and `promtool check metrics`.
//!
//! The samples are read by `parallax_process::prom`, the project's one
//! parser (a crate that links none of the twins' code, so the suite stays
//! black-box); what is here is what a conformance check asks of them.

use std::io::Write;
use std::process::{Command, Stdio};

use parallax_process::prom;
pub use parallax_process::prom::Sample;

/// Every sample of an exposition (comments and blank lines skipped).
pub fn samples(exposition: &str) -> Vec<Sample> {
    prom::parse(exposition)
}

/// The type a `# TYPE name type` line gives the family `name`.
pub fn family_type<'a>(exposition: &'a str, name: &str) -> Option<&'a str> {
    exposition.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("TYPE"), Some(n), Some(kind)) if n == name => Some(kind),
            _ => None,
        }
    })
}

/// The value of the sample named `name` whose labels include all of `labels`.
pub fn value(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(exposition)
        .into_iter()
        .find(|s| s.name == name && s.matches(labels))
        .map(|s| s.value)
}

/// Asserts every `(family, type)` is declared by a `# TYPE` line.
#[track_caller]
pub fn assert_family_types(exposition: &str, families: &[(&str, &str)]) {
    for (family, kind) in families {
        assert_eq!(
            family_type(exposition, family),
            Some(*kind),
            "# TYPE of {family} in:\n{exposition}"
        );
    }
}

/// Asserts, for every `(label values, value)` of `expected`, that the sample
/// `name` with `label_names` set to those values has that value.
///
/// ```
/// # use parallax_conformance::metrics::assert_values;
/// let exposition = "http_requests_total{route=\"/healthz\",status=\"200\"} 1\n";
/// assert_values(exposition, "http_requests_total", ["route", "status"], &[(["/healthz", "200"], 1.0)]);
/// ```
#[track_caller]
pub fn assert_values<const N: usize>(
    exposition: &str,
    name: &str,
    label_names: [&str; N],
    expected: &[([&str; N], f64)],
) {
    for (label_values, expected) in expected {
        let labels: Vec<(&str, &str)> = label_names.into_iter().zip(*label_values).collect();
        assert_eq!(
            value(exposition, name, &labels),
            Some(*expected),
            "{name}{labels:?} in:\n{exposition}"
        );
    }
}

/// Runs `promtool check metrics` on `exposition`.
///
/// # Panics
/// When `promtool` is not on `PATH`: the suite requires it (Debian package
/// `prometheus`; CI installs it).
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool could not be started ({e}): install it \
                 (Debian: apt-get install prometheus) — CI installs it"
            )
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{route="/v1/events",status="200"} 3
http_requests_total{status="404",route="unmatched"} 1
# TYPE ingest_kafka_produce_errors_total counter
ingest_kafka_produce_errors_total 0
http_request_duration_seconds_bucket{route="/healthz",le="+Inf"} 2
"#;

    #[test]
    fn finds_samples_by_name_and_labels_in_any_order() {
        assert_eq!(
            value(EXPOSITION, "http_requests_total", &[("route", "unmatched")]),
            Some(1.0)
        );
        assert_eq!(
            value(
                EXPOSITION,
                "http_requests_total",
                &[("status", "200"), ("route", "/v1/events")]
            ),
            Some(3.0)
        );
        assert_eq!(
            value(EXPOSITION, "ingest_kafka_produce_errors_total", &[]),
            Some(0.0)
        );
        assert_eq!(
            value(
                EXPOSITION,
                "http_request_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(2.0)
        );
    }

    #[test]
    fn reads_family_types() {
        assert_eq!(
            family_type(EXPOSITION, "http_requests_total"),
            Some("counter")
        );
        assert_eq!(family_type(EXPOSITION, "missing"), None);
    }
}
