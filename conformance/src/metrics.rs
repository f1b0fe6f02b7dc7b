//! Reading a Prometheus text exposition, and `promtool check metrics`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of an exposition (comments and blank lines skipped).
pub fn samples(exposition: &str) -> Vec<Sample> {
    exposition
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_sample)
        .collect()
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
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
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

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, rest) = match line.find('{') {
        Some(_) => {
            let close = line.rfind('}')?;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_at(line.find(char::is_whitespace)?),
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        labels.insert(name.trim().to_owned(), value);
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
