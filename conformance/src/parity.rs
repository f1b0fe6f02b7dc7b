//! Checking a list of requests against the contract's statuses and against
//! the other twin, for any contract.
//!
//! Requests are sent in list order, so a list may build state (a PUT, then
//! the GET that reads it back).

use std::thread;

use crate::cache::fnv1a64;
use crate::http::{Request, Response};
use crate::service::Service;

/// What the twins must agree on: status, the headers a client acts on, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub retry_after: Option<String>,
    pub allow: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn of(response: &Response) -> Answer {
        let header = |name| response.header(name).map(str::to_owned);
        Answer {
            status: response.status,
            content_type: header("Content-Type"),
            // Where there is a body, it is compared and its framing (chunked
            // or length) does not matter; without one (HEAD) the declared
            // length is the answer.
            content_length: header("Content-Length").filter(|_| response.body.is_empty()),
            retry_after: header("Retry-After"),
            allow: header("Allow"),
            body: excerpt(&response.body),
        }
    }
}

/// One request of a contract's corpus, and the status the contract
/// prescribes for it (so two twins that agree on a wrong answer are still
/// caught).
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    /// The status the contract prescribes.
    pub status: u16,
    pub request: Request,
}

/// A [`Step`].
pub fn step(name: &'static str, status: u16, request: Request) -> Step {
    Step {
        name,
        status,
        request,
    }
}

/// Asserts a corpus is usable: unique step names, at least `good` steps
/// the contract answers with a 2xx and at least `bad` with a 4xx or 5xx.
#[track_caller]
pub fn assert_corpus_shape(steps: &[Step], good: usize, bad: usize) {
    let names: std::collections::BTreeSet<_> = steps.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), steps.len(), "step names must be unique");
    let successes = steps.iter().filter(|s| s.status < 300).count();
    let failures = steps.iter().filter(|s| s.status >= 400).count();
    assert!(successes >= good, "{successes} good steps, wanted {good}");
    assert!(failures >= bad, "{failures} bad steps, wanted {bad}");
}

/// Asserts `service` (of the twin `twin`) answers every step, in order,
/// with the status the contract prescribes.
#[track_caller]
pub fn assert_statuses(twin: &str, steps: &[Step], service: &Service) {
    let wrong = wrong_statuses(
        steps
            .iter()
            .map(|step| (step.name, &step.request, step.status, service)),
    );
    assert!(
        wrong.is_empty(),
        "{twin} answers {} of {} corpus steps against the contract:\n{}",
        wrong.len(),
        steps.len(),
        wrong.join("\n")
    );
}

/// Asserts the twins give the same [`Answer`] to every step, in order.
#[track_caller]
pub fn assert_twins_agree(steps: &[Step], go: &Service, rust: &Service) {
    let differences = twin_differences(
        steps
            .iter()
            .map(|step| (step.name, &step.request, [go, rust])),
    );
    assert!(
        differences.is_empty(),
        "the twins differ on {} of {} corpus steps:\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n")
    );
}

/// Sends each `(name, request, expected status, service)` in order; one line
/// per answer whose status is not the expected one.
pub fn wrong_statuses<'a>(
    cases: impl IntoIterator<Item = (&'a str, &'a Request, u16, &'a Service)>,
) -> Vec<String> {
    cases
        .into_iter()
        .filter_map(|(name, request, expected, service)| {
            let response = service.send(request);
            (response.status != expected).then(|| {
                format!(
                    "{name}: expected {expected}, got {} {:?}",
                    response.status,
                    excerpt(&response.body)
                )
            })
        })
        .collect()
}

/// Sends each `(name, request, [go, rust])` to both twins at once, in list
/// order; one description per request whose [`Answer`]s differ.
pub fn twin_differences<'a>(
    cases: impl IntoIterator<Item = (&'a str, &'a Request, [&'a Service; 2])>,
) -> Vec<String> {
    cases
        .into_iter()
        .filter_map(|(name, request, [go, rust])| {
            let (go_answer, rust_answer) = thread::scope(|scope| {
                let go_answer = scope.spawn(|| go.send(request));
                let rust_answer = rust.send(request);
                (go_answer.join().expect("go request"), rust_answer)
            });
            let (go_answer, rust_answer) = (Answer::of(&go_answer), Answer::of(&rust_answer));
            (go_answer != rust_answer)
                .then(|| format!("{name}:\n  go:   {go_answer:?}\n  rust: {rust_answer:?}"))
        })
        .collect()
}

/// A body for messages: text as is (escaped), binary as hex; long ones cut
/// after a prefix and summarised by length and FNV-1a, so two long bodies
/// that differ after the shown prefix still show different summaries.
pub fn excerpt(body: &[u8]) -> String {
    const SHOWN: usize = 600;
    let text = match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => text.to_owned(),
        _ => body.iter().map(|b| format!("{b:02x}")).collect(),
    };
    if text.len() <= SHOWN {
        text
    } else {
        let mut cut = SHOWN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(
            "{}… ({} bytes, fnv {:016x})",
            &text[..cut],
            body.len(),
            fnv1a64(body)
        )
    }
}
