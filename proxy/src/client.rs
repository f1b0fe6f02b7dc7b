//! A small HTTP/1.1 client for the proxy's own calls to other tools —
//! Prometheus's query API, replicas' admin APIs, a differ's admin listener
//! — never for client traffic (that is [`crate::upstream`]). One connection
//! per call, a deadline on the whole exchange, the body read whole.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0:?} is not an http:// address")]
    Address(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Http {
        addr: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Sends `method` to `base` + `path_and_query` (`base` is `http://host:port`
/// with an optional path prefix), with `bearer` as the token when given.
pub async fn call(
    method: Method,
    base: &str,
    path_and_query: &str,
    bearer: Option<&str>,
    body: Option<(&'static str, Bytes)>,
    timeout: Duration,
) -> Result<Answer, CallError> {
    let with_scheme = if base.contains("://") {
        base.to_owned()
    } else {
        format!("http://{base}")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|_| CallError::Address(base.to_owned()))?;
    if uri.scheme_str() != Some("http") {
        return Err(CallError::Address(base.to_owned()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| CallError::Address(base.to_owned()))?
        .clone();
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(80);
    let prefix = uri.path().trim_end_matches('/');
    let target = format!("{prefix}{path_and_query}");
    let addr = authority.to_string();
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|source| CallError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let http = |source| CallError::Http {
            addr: addr.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(conn);
        let mut request = http::Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, authority.as_str());
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let (content_type, bytes) = body.unwrap_or(("text/plain", Bytes::new()));
        if !bytes.is_empty() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(bytes))
            .map_err(|_| CallError::Address(base.to_owned()))?;
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| CallError::Timeout {
            addr: addr.clone(),
            timeout,
        })?
}

/// `s` escaped for a URL query value.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape(r#"sum(rate(x{a="b"}[5s]))"#),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B5s%5D%29%29"
        );
    }

    #[tokio::test]
    async fn a_bad_address_is_an_error_not_a_panic() {
        let e = call(
            Method::GET,
            "https://x:1",
            "/",
            None,
            None,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, CallError::Address(_)), "{e}");
        let e = call(
            Method::GET,
            "127.0.0.1:1",
            "/",
            None,
            None,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, CallError::Connect { .. }), "{e}");
    }
}
