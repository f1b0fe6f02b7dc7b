//! One backend's answer as the engine sees it: status, headers, whole body.

use bytes::Bytes;

/// An answer with lower-cased header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Trailer fields after the body (gRPC's `grpc-status` lives here).
    pub trailers: Vec<(String, String)>,
}

impl Observed {
    pub fn new<'a>(
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: impl Into<Bytes>,
    ) -> Self {
        Self {
            status,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
                .collect(),
            body: body.into(),
            trailers: Vec::new(),
        }
    }

    /// The same answer with these trailer fields.
    pub fn with_trailers<'a>(
        mut self,
        trailers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.trailers = trailers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        self
    }

    /// Header `name`, or else trailer `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.header(name).or_else(|| {
            self.trailers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type without parameters, lower-cased (`application/json`).
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}
