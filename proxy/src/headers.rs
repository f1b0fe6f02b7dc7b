//! Header rewriting at the hop between the proxy and an upstream.
//!
//! RFC 9110 §7.6.1: `Connection` and every header it names belong to one
//! hop and are not forwarded, and neither are the classic hop-by-hop headers
//! (`Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`,
//! `Upgrade`) — except `TE: trailers`, which gRPC needs end to end. Framing is redone by hyper on each side. `Host` is left as the
//! client sent it; `X-Forwarded-For` gets the client's address appended.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The fixed hop-by-hop headers (besides any `Proxy-*`).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Removes every hop-by-hop header from `headers`, except `TE: trailers`,
/// which says the client takes trailers and is forwarded (RFC 9110 §10.1.4;
/// the one `TE` HTTP/2 allows; gRPC servers require it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    // Names listed in Connection first, while it is still there.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends `client` to `X-Forwarded-For`, folding earlier values into one
/// comma-separated line.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let client = client.to_canonical();
    if !headers.contains_key(&X_FORWARDED_FOR) {
        // The common case, on every request: the address formatted on the
        // stack, so the header value is the only allocation.
        use std::io::Write;
        let mut buf = [0u8; 48]; // the longest IPv6 text is 45 bytes
        let mut cursor = &mut buf[..];
        if write!(cursor, "{client}").is_ok() {
            let len = 48 - cursor.len();
            if let Ok(value) = HeaderValue::from_bytes(&buf[..len]) {
                headers.insert(X_FORWARDED_FOR.clone(), value);
            }
        }
        return;
    }
    let client = client.to_string();
    let mut joined = String::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(v) = value.to_str() {
            joined.push_str(v);
            joined.push_str(", ");
        }
    }
    joined.push_str(&client);
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Trace-Hop"),
            ("x-trace-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "close"),
            ("te", "gzip"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "example"),
            ("content-type", "text/plain"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["content-type", "host", "x-keep"]);
    }

    #[test]
    fn te_trailers_alone_is_forwarded() {
        let mut h = map(&[("te", "gzip, trailers"), ("connection", "TE")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h[header::TE], "trailers");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2, 127.0.0.1");
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.1");
        let mut h = HeaderMap::new();
        let longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        append_forwarded_for(&mut h, longest.parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], longest);
    }
}
