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
