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
        .filter(|k| is_hop_by_hop(k.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether a header of this name belongs to one hop: the fixed list above
/// or any `Proxy-*` (names compared without case). Names listed in
/// `Connection` are hop-by-hop too; the caller knows those. The one rule
/// both the `HeaderMap` path ([`strip_hop_by_hop`]) and the raw HTTP/1.1
/// path ([`crate::h1`]) apply.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_str().as_bytes()))
        || (name.len() >= 6 && name[..6].eq_ignore_ascii_case(b"proxy-"))
}

/// Whether `value` reads as header text (`HeaderValue::to_str`'s rule:
/// visible ASCII, space and tab): only such earlier `X-Forwarded-For`
/// values are kept.
fn is_text(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Writes the `X-Forwarded-For` value after this hop into `out`: the
/// earlier values that are text, folded into one comma-separated line,
/// then `client` (an IPv4-mapped address as IPv4).
pub fn write_forwarded_for<'a>(
    earlier: impl IntoIterator<Item = &'a [u8]>,
    client: IpAddr,
    out: &mut Vec<u8>,
) {
    use std::io::Write;
    for value in earlier {
        if is_text(value) {
            out.extend_from_slice(value);
            out.extend_from_slice(b", ");
        }
    }
    match client.to_canonical() {
        IpAddr::V4(v4) => write_ipv4(v4, out),
        v6 => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `address` as `Ipv4Addr`'s `Display` writes it (dotted decimal), without
/// the formatting machinery: this runs on every proxied request, where
/// `write!` cost about 1K instructions (callgrind, issue 16).
fn write_ipv4(address: std::net::Ipv4Addr, out: &mut Vec<u8>) {
    for (i, octet) in address.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

/// Appends `client` to `X-Forwarded-For`, folding earlier values into one
/// comma-separated line.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    // The longest IPv6 text is 45 bytes: the common case (no earlier
    // value) allocates once, for the header value itself.
    let mut value = Vec::with_capacity(48);
    write_forwarded_for(
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes()),
        client,
        &mut value,
    );
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
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
    fn hop_by_hop_names_are_known_without_case() {
        for name in [
            "Connection",
            "keep-alive",
            "TE",
            "Trailer",
            "transfer-encoding",
            "UPGRADE",
        ] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        assert!(is_hop_by_hop(b"Proxy-Authorization"));
        assert!(!is_hop_by_hop(b"proxy"));
        assert!(!is_hop_by_hop(b"content-length"));
        assert!(!is_hop_by_hop(b"x-forwarded-for"));
    }

    #[test]
    fn forwarded_for_keeps_only_earlier_values_that_are_text() {
        let mut out = Vec::new();
        let earlier: [&[u8]; 2] = [b"10.0.0.1", b"\xff"];
        write_forwarded_for(earlier, "127.0.0.1".parse().unwrap(), &mut out);
        assert_eq!(out, b"10.0.0.1, 127.0.0.1");
    }

    #[test]
    fn an_ipv4_client_is_written_as_display_writes_it() {
        // Every octet value in every position, and edges.
        let octets =
            (0..=255u8).flat_map(|o| [[o, 0, 0, 1], [10, o, 1, 0], [1, 2, o, 3], [9, 99, 100, o]]);
        for address in octets
            .map(std::net::Ipv4Addr::from)
            .chain([std::net::Ipv4Addr::BROADCAST])
        {
            let mut out = Vec::new();
            write_forwarded_for([], IpAddr::V4(address), &mut out);
            assert_eq!(out, address.to_string().into_bytes());
        }
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
