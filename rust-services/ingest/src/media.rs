//! Content negotiation: which decoder reads the request, which encoder
//! writes the response.

use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::HeaderMap;

/// The two encodings of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Protobuf,
    Json,
}

impl Media {
    /// The `Content-Type` this service writes for the encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Media::Protobuf => "application/x-protobuf",
            Media::Json => "application/json",
        }
    }

    /// Parses one media range, ignoring parameters and case.
    pub fn parse(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(Media::Json)
        } else if [
            "application/x-protobuf",
            "application/protobuf",
            "application/vnd.google.protobuf",
        ]
        .iter()
        .any(|m| essence.eq_ignore_ascii_case(m))
        {
            Some(Media::Protobuf)
        } else {
            None
        }
    }
}

/// The request's encoding, from `Content-Type`; `None` means 415.
pub fn request_media(headers: &HeaderMap) -> Option<Media> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Media::parse)
}

/// The response's encoding: the first supported type named in `Accept`,
/// else the request's.
pub fn response_media(headers: &HeaderMap, request: Media) -> Media {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(Media::parse)
        .unwrap_or(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        let h = headers(&[("content-type", "Application/JSON; charset=utf-8")]);
        assert_eq!(request_media(&h), Some(Media::Json));
    }

    #[test]
    fn protobuf_aliases_are_accepted() {
        for t in [
            "application/x-protobuf",
            "application/protobuf",
            "application/vnd.google.protobuf",
        ] {
            assert_eq!(Media::parse(t), Some(Media::Protobuf), "{t}");
        }
    }

    #[test]
    fn missing_or_other_content_type_is_unsupported() {
        assert_eq!(request_media(&headers(&[])), None);
        assert_eq!(
            request_media(&headers(&[("content-type", "text/plain")])),
            None
        );
    }

    #[test]
    fn accept_picks_the_first_supported_type_ignoring_q_values() {
        let h = headers(&[(
            "accept",
            "text/html, application/x-protobuf;q=0.1, application/json",
        )]);
        assert_eq!(response_media(&h, Media::Json), Media::Protobuf);
    }

    #[test]
    fn wildcard_or_missing_accept_falls_back_to_the_request_type() {
        assert_eq!(
            response_media(&headers(&[("accept", "*/*")]), Media::Json),
            Media::Json
        );
        assert_eq!(
            response_media(&headers(&[]), Media::Protobuf),
            Media::Protobuf
        );
    }
}
