//! The HTTP contract (`docs/contract-cache.md`), request by request, against
//! the router in-process: every status, error body and header it names.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;

use parallax_common::metrics::Metrics;
use parallax_session_cache::handler::{router, App};
use parallax_session_cache::Cache;

const INVALID_ID: &str =
    r#"{"code":"invalid_id","message":"session id must be 1-256 bytes of A-Z a-z 0-9 - . _ ~"}"#;
const INVALID_TTL: &str =
    r#"{"code":"invalid_ttl","message":"X-Session-TTL must be whole seconds from 1 to 604800"}"#;
const NOT_FOUND_SESSION: &str = r#"{"code":"not_found_session","message":"no such session"}"#;
const NOT_FOUND: &str = r#"{"code":"not_found","message":"no such route"}"#;
const METHOD_NOT_ALLOWED: &str =
    r#"{"code":"method_not_allowed","message":"method not allowed on this route"}"#;
const VALUE_TOO_LARGE: &str =
    r#"{"code":"value_too_large","message":"value exceeds 1048576 bytes"}"#;
const ENTRY_TOO_LARGE: &str =
    r#"{"code":"entry_too_large","message":"entry exceeds the capacity of its shard"}"#;

const MIB: usize = 1_048_576;

/// A cache service in-process: `service().capacity(n).shards(k).build()`.
struct ServiceBuilder {
    capacity_bytes: u64,
    shards: u32,
    default_ttl: Duration,
}

fn service() -> ServiceBuilder {
    ServiceBuilder {
        capacity_bytes: 64 * MIB as u64,
        shards: 4,
        default_ttl: Duration::from_secs(3600),
    }
}

impl ServiceBuilder {
    fn capacity(mut self, bytes: u64) -> Self {
        self.capacity_bytes = bytes;
        self
    }

    fn shards(mut self, shards: u32) -> Self {
        self.shards = shards;
        self
    }

    fn default_ttl_secs(mut self, secs: u64) -> Self {
        self.default_ttl = Duration::from_secs(secs);
        self
    }

    fn build(self) -> Service {
        let cache = Arc::new(Cache::new(self.capacity_bytes, self.shards));
        Service {
            router: router(App::new(cache, self.default_ttl, Metrics::new())),
        }
    }
}

struct Service {
    router: Router,
}

/// What came back.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the status and the exact JSON error body.
    #[track_caller]
    fn assert_error(&self, status: StatusCode, body: &str) {
        assert_eq!((self.status, self.text()), (status, body));
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

impl Service {
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn call(&self, method: Method, uri: &str) -> Answer {
        self.send(request(method, uri).body(Body::empty()).unwrap())
            .await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri).await
    }

    async fn head(&self, uri: &str) -> Answer {
        self.call(Method::HEAD, uri).await
    }

    async fn delete(&self, uri: &str) -> Answer {
        self.call(Method::DELETE, uri).await
    }

    /// PUT with a declared `Content-Length`, as curl sends it.
    async fn put(&self, uri: &str, value: impl Into<Bytes>) -> Answer {
        self.put_with(uri, value, &[]).await
    }

    async fn put_with(
        &self,
        uri: &str,
        value: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let value = value.into();
        let mut builder = request(Method::PUT, uri).header("content-length", value.len());
        for (name, v) in headers {
            builder = builder.header(*name, *v);
        }
        self.send(builder.body(Body::from(value)).unwrap()).await
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.text().to_owned()
    }
}

fn request(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

// --- PUT, GET, HEAD, DELETE ---------------------------------------------

#[tokio::test]
async fn put_answers_204_without_a_body() {
    let answer = service().build().put("/v1/sessions/abc", "hello").await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
}

#[tokio::test]
async fn get_returns_the_stored_bytes_and_content_type() {
    let svc = service().build();
    svc.put_with(
        "/v1/sessions/abc",
        "{\"user\":1}",
        &[("content-type", "application/json; charset=utf-8")],
    )
    .await;
    let answer = svc.get("/v1/sessions/abc").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "{\"user\":1}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(answer.header("content-length"), Some("10"));
}

#[tokio::test]
async fn a_value_without_content_type_is_octet_stream() {
    let svc = service().build();
    svc.put("/v1/sessions/abc", "x").await;
    let answer = svc.get("/v1/sessions/abc").await;
    assert_eq!(
        answer.header("content-type"),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn values_are_opaque_bytes() {
    let svc = service().build();
    let value: Vec<u8> = (0..=255).collect();
    svc.put("/v1/sessions/bin", value.clone()).await;
    assert_eq!(svc.get("/v1/sessions/bin").await.body, value);
}

#[tokio::test]
async fn an_empty_value_is_stored() {
    let svc = service().build();
    assert_eq!(
        svc.put("/v1/sessions/empty", "").await.status,
        StatusCode::NO_CONTENT
    );
    let answer = svc.get("/v1/sessions/empty").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("content-length"), Some("0"));
}

#[tokio::test]
async fn a_value_sent_chunked_without_length_is_stored() {
    let svc = service().build();
    let chunks = futures::stream::iter(["ab", "cd", "ef"].map(Ok::<_, std::io::Error>));
    let answer = svc
        .send(
            request(Method::PUT, "/v1/sessions/chunked")
                .body(Body::from_stream(chunks))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(svc.get("/v1/sessions/chunked").await.text(), "abcdef");
}

#[tokio::test]
async fn put_replaces_value_and_content_type() {
    let svc = service().build();
    svc.put_with("/v1/sessions/k", "one", &[("content-type", "text/plain")])
        .await;
    svc.put_with("/v1/sessions/k", "two!", &[("content-type", "text/html")])
        .await;
    let answer = svc.get("/v1/sessions/k").await;
    assert_eq!(answer.text(), "two!");
    assert_eq!(answer.header("content-type"), Some("text/html"));
}

#[tokio::test]
async fn get_of_an_unknown_id_is_404_not_found_session() {
    service()
        .build()
        .get("/v1/sessions/nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND_SESSION);
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let svc = service().build();
    svc.put_with(
        "/v1/sessions/abc",
        "hello",
        &[("content-type", "text/plain")],
    )
    .await;
    let answer = svc.head("/v1/sessions/abc").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("content-length"), Some("5"));
    assert_eq!(answer.header("content-type"), Some("text/plain"));
}

#[tokio::test]
async fn head_of_an_unknown_id_is_404_without_a_body() {
    let answer = service().build().head("/v1/sessions/nobody").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.body.is_empty());
}

#[tokio::test]
async fn head_errors_carry_no_body_whatever_the_status() {
    let svc = service().build();
    for (uri, status) in [
        ("/v1/sessions/bad%20id", StatusCode::BAD_REQUEST),
        ("/healthz", StatusCode::METHOD_NOT_ALLOWED),
        ("/metrics", StatusCode::METHOD_NOT_ALLOWED),
        ("/nowhere", StatusCode::NOT_FOUND),
    ] {
        let answer = svc.head(uri).await;
        assert_eq!(answer.status, status, "{uri}");
        assert!(answer.body.is_empty(), "{uri}: {:?}", answer.body);
    }
}

#[tokio::test]
async fn hits_send_nothing_time_derived() {
    let svc = service().build();
    svc.put("/v1/sessions/k", "v").await;
    for answer in [
        svc.get("/v1/sessions/k").await,
        svc.head("/v1/sessions/k").await,
    ] {
        for name in ["expires", "age", "last-modified", "cache-control", "etag"] {
            assert_eq!(answer.header(name), None, "{name}");
        }
    }
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let svc = service().build();
    svc.put("/v1/sessions/k", "v").await;
    let answer = svc.delete("/v1/sessions/k").await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
    svc.get("/v1/sessions/k")
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND_SESSION);
    svc.delete("/v1/sessions/k")
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND_SESSION);
}

// --- the id ---------------------------------------------------------------

#[tokio::test]
async fn ids_are_checked_on_the_raw_path() {
    let svc = service().build();
    let too_long = format!("/v1/sessions/{}", "a".repeat(257));
    for uri in [
        "/v1/sessions/",
        "/v1/sessions/bad%20id",
        "/v1/sessions/%41",
        "/v1/sessions/a/b",
        "/v1/sessions//",
        "/v1/sessions/a+b",
        "/v1/sessions/a:b",
        too_long.as_str(),
    ] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            svc.call(method.clone(), uri)
                .await
                .assert_error(StatusCode::BAD_REQUEST, INVALID_ID);
        }
    }
}

#[tokio::test]
async fn every_unreserved_character_and_256_bytes_make_a_valid_id() {
    let svc = service().build();
    let longest = format!("/v1/sessions/{}", "z".repeat(256));
    for uri in [
        "/v1/sessions/AZaz09-._~",
        "/v1/sessions/..",
        longest.as_str(),
    ] {
        assert_eq!(
            svc.put(uri, "v").await.status,
            StatusCode::NO_CONTENT,
            "{uri}"
        );
        assert_eq!(svc.get(uri).await.text(), "v", "{uri}");
    }
}

#[tokio::test]
async fn a_query_string_is_not_part_of_the_id() {
    let svc = service().build();
    svc.put("/v1/sessions/abc?x=1", "v").await;
    assert_eq!(svc.get("/v1/sessions/abc").await.text(), "v");
}

// --- methods and routes --------------------------------------------------

#[tokio::test]
async fn other_methods_on_sessions_are_405_with_allow() {
    let svc = service().build();
    for method in [Method::POST, Method::PATCH, Method::OPTIONS] {
        let answer = svc.call(method, "/v1/sessions/abc").await;
        answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED);
        assert_eq!(answer.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    }
}

#[tokio::test]
async fn the_method_is_checked_before_the_id() {
    let svc = service().build();
    for uri in ["/v1/sessions/bad%20id", "/v1/sessions/"] {
        svc.call(Method::POST, uri)
            .await
            .assert_error(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED);
    }
}

#[tokio::test]
async fn health_and_readiness_answer_json() {
    let svc = service().build();
    let health = svc.get("/healthz").await;
    assert_eq!(
        (health.status, health.text()),
        (StatusCode::OK, r#"{"status":"ok"}"#)
    );
    assert_eq!(health.header("content-type"), Some("application/json"));
    let ready = svc.get("/readyz").await;
    assert_eq!(
        (ready.status, ready.text()),
        (StatusCode::OK, r#"{"status":"ready"}"#)
    );
}

#[tokio::test]
async fn other_methods_on_get_routes_are_405_allow_get() {
    let svc = service().build();
    for uri in ["/healthz", "/readyz", "/metrics"] {
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let answer = svc.call(method, uri).await;
            answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED);
            assert_eq!(answer.header("allow"), Some("GET"));
        }
    }
}

#[tokio::test]
async fn anything_else_is_404_not_found() {
    let svc = service().build();
    for (method, uri) in [
        (Method::GET, "/"),
        (Method::GET, "/v1/sessions"),
        (Method::PUT, "/v1/sessions"),
        (Method::GET, "/v1/session/abc"),
        (Method::GET, "/v2/sessions/abc"),
        (Method::GET, "/healthz/"),
        (Method::POST, "/nowhere"),
    ] {
        svc.call(method, uri)
            .await
            .assert_error(StatusCode::NOT_FOUND, NOT_FOUND);
    }
}

// --- PUT checks and their order ------------------------------------------

#[tokio::test]
async fn a_malformed_ttl_is_400_invalid_ttl() {
    let svc = service().build();
    for ttl in ["0", "604801", "-1", "+1", "1.5", "abc", "", "1 2"] {
        svc.put_with("/v1/sessions/k", "v", &[("x-session-ttl", ttl)])
            .await
            .assert_error(StatusCode::BAD_REQUEST, INVALID_TTL);
    }
    assert_eq!(
        svc.get("/v1/sessions/k").await.status,
        StatusCode::NOT_FOUND,
        "nothing was stored"
    );
}

#[tokio::test]
async fn ttl_bounds_are_accepted() {
    let svc = service().build();
    for ttl in ["1", "604800"] {
        let answer = svc
            .put_with("/v1/sessions/k", "v", &[("x-session-ttl", ttl)])
            .await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{ttl}");
    }
}

#[tokio::test]
async fn the_id_is_checked_before_the_ttl() {
    service()
        .build()
        .put_with("/v1/sessions/a%2Fb", "v", &[("x-session-ttl", "nope")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, INVALID_ID);
}

#[tokio::test]
async fn the_ttl_is_checked_before_the_body_size() {
    service()
        .build()
        .put_with(
            "/v1/sessions/k",
            vec![0; MIB + 1],
            &[("x-session-ttl", "0")],
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, INVALID_TTL);
}

#[tokio::test]
async fn a_value_of_exactly_1_mib_is_accepted() {
    let svc = service().build();
    assert_eq!(
        svc.put("/v1/sessions/big", vec![7; MIB]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(svc.get("/v1/sessions/big").await.body.len(), MIB);
}

#[tokio::test]
async fn a_declared_length_over_1_mib_is_413_before_reading() {
    let answer = service()
        .build()
        .send(
            request(Method::PUT, "/v1/sessions/k")
                .header("content-length", MIB + 1)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    answer.assert_error(StatusCode::PAYLOAD_TOO_LARGE, VALUE_TOO_LARGE);
}

#[tokio::test]
async fn a_counted_body_over_1_mib_is_413() {
    let svc = service().build();
    let chunks = futures::stream::iter(
        (0..5).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0; MIB / 4 + 1]))),
    );
    svc.send(
        request(Method::PUT, "/v1/sessions/k")
            .body(Body::from_stream(chunks))
            .unwrap(),
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, VALUE_TOO_LARGE);
}

#[tokio::test]
async fn the_body_size_is_checked_before_the_entry_size() {
    // Shards of 1 KiB: a 1 MiB + 1 value is too large as a value first.
    service()
        .capacity(1024)
        .shards(1)
        .build()
        .put("/v1/sessions/k", vec![0; MIB + 1])
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, VALUE_TOO_LARGE);
}

#[tokio::test]
async fn an_entry_larger_than_its_shard_is_413_and_keeps_the_old_entry() {
    // One shard of 200 bytes; "k" + 100 + "application/octet-stream" + 64 = 189.
    let svc = service().capacity(200).shards(1).build();
    assert_eq!(
        svc.put("/v1/sessions/k", vec![1; 100]).await.status,
        StatusCode::NO_CONTENT
    );
    svc.put("/v1/sessions/k", vec![2; 112])
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, ENTRY_TOO_LARGE);
    assert_eq!(svc.get("/v1/sessions/k").await.body, vec![1; 100]);
}

#[tokio::test]
async fn the_content_type_counts_towards_the_entry_size() {
    // 1 + 111 + 24 + 64 = 200 fits exactly; one more content-type byte does not.
    let svc = service().capacity(200).shards(1).build();
    assert_eq!(
        svc.put("/v1/sessions/k", vec![0; 111]).await.status,
        StatusCode::NO_CONTENT
    );
    svc.put_with(
        "/v1/sessions/k",
        vec![0; 111],
        &[("content-type", "application/octet-streamX")],
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, ENTRY_TOO_LARGE);
}

// --- eviction and expiry through HTTP -------------------------------------

#[tokio::test]
async fn the_least_recently_used_session_is_evicted_first() {
    // One shard holding three 100-byte entries: (1 + 11 + 24 + 64) each.
    let svc = service().capacity(300).shards(1).build();
    for id in ["a", "b", "c"] {
        svc.put(&format!("/v1/sessions/{id}"), "12345678901").await;
    }
    svc.get("/v1/sessions/a").await;
    svc.head("/v1/sessions/b").await;
    svc.put("/v1/sessions/d", "12345678901").await;
    assert_eq!(
        svc.get("/v1/sessions/c").await.status,
        StatusCode::NOT_FOUND
    );
    for id in ["a", "b", "d"] {
        assert_eq!(
            svc.get(&format!("/v1/sessions/{id}")).await.status,
            StatusCode::OK,
            "{id}"
        );
    }
    let metrics = svc.metrics().await;
    assert!(metrics.contains(r#"cache_evictions_total{reason="capacity"} 1"#));
    assert!(metrics.contains("cache_entries 3\n"));
    assert!(metrics.contains("cache_bytes 300\n"));
}

#[tokio::test(start_paused = true)]
async fn a_session_expires_after_its_ttl() {
    let svc = service().build();
    svc.put_with("/v1/sessions/k", "v", &[("x-session-ttl", "2")])
        .await;
    tokio::time::advance(Duration::from_millis(1999)).await;
    assert_eq!(svc.get("/v1/sessions/k").await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_millis(1)).await;
    svc.get("/v1/sessions/k")
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND_SESSION);
    let metrics = svc.metrics().await;
    assert!(metrics.contains(r#"cache_evictions_total{reason="expired"} 1"#));
    assert!(metrics.contains(r#"cache_requests_total{op="get",result="miss"} 1"#));
    assert!(metrics.contains("cache_entries 0\n"));
}

#[tokio::test(start_paused = true)]
async fn without_a_ttl_header_the_default_ttl_applies() {
    let svc = service().default_ttl_secs(10).build();
    svc.put("/v1/sessions/k", "v").await;
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(svc.head("/v1/sessions/k").await.status, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        svc.head("/v1/sessions/k").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn deleting_an_expired_session_is_404_and_counts_it_expired() {
    let svc = service().build();
    svc.put_with("/v1/sessions/k", "v", &[("x-session-ttl", "1")])
        .await;
    tokio::time::advance(Duration::from_secs(1)).await;
    svc.delete("/v1/sessions/k")
        .await
        .assert_error(StatusCode::NOT_FOUND, NOT_FOUND_SESSION);
    let metrics = svc.metrics().await;
    assert!(metrics.contains(r#"cache_evictions_total{reason="expired"} 1"#));
    assert!(metrics.contains(r#"cache_requests_total{op="delete",result="miss"} 1"#));
}

// --- metrics ---------------------------------------------------------------

#[tokio::test]
async fn requests_are_counted_by_op_and_result() {
    let svc = service().capacity(1000).shards(1).build();
    svc.put("/v1/sessions/k", "v").await; // put stored
    svc.put_with("/v1/sessions/k", "v", &[("x-session-ttl", "x")])
        .await; // put invalid (400)
    svc.put("/v1/sessions/k", vec![0; 2000]).await; // put invalid (413)
    svc.get("/v1/sessions/k").await; // get hit
    svc.get("/v1/sessions/zz").await; // get miss
    svc.get("/v1/sessions/a%20b").await; // get invalid
    svc.head("/v1/sessions/k").await; // head hit
    svc.head("/v1/sessions/zz").await; // head miss
    svc.head("/v1/sessions/").await; // head invalid
    svc.delete("/v1/sessions/k").await; // delete deleted
    svc.delete("/v1/sessions/k").await; // delete miss
    svc.delete("/v1/sessions/a/b").await; // delete invalid
    svc.call(Method::POST, "/v1/sessions/k").await; // 405: no op
    let metrics = svc.metrics().await;
    for (op, result, n) in [
        ("put", "stored", 1),
        ("put", "invalid", 2),
        ("get", "hit", 1),
        ("get", "miss", 1),
        ("get", "invalid", 1),
        ("head", "hit", 1),
        ("head", "miss", 1),
        ("head", "invalid", 1),
        ("delete", "deleted", 1),
        ("delete", "miss", 1),
        ("delete", "invalid", 1),
    ] {
        let series = format!(r#"cache_requests_total{{op="{op}",result="{result}"}} {n}"#);
        assert!(metrics.contains(&series), "missing {series} in\n{metrics}");
    }
    assert!(!metrics.contains(r#"op="post""#));
}

#[tokio::test]
async fn http_metrics_label_every_session_path_with_the_route_template() {
    let svc = service().build();
    svc.put("/v1/sessions/abc", "v").await;
    svc.get("/v1/sessions/").await;
    svc.get("/v1/sessions/a/b").await;
    svc.call(Method::POST, "/v1/sessions/abc").await;
    svc.get("/nowhere").await;
    svc.get("/healthz").await;
    let metrics = svc.metrics().await;
    for series in [
        r#"http_requests_total{route="/v1/sessions/{id}",status="204"} 1"#,
        r#"http_requests_total{route="/v1/sessions/{id}",status="400"} 2"#,
        r#"http_requests_total{route="/v1/sessions/{id}",status="405"} 1"#,
        r#"http_requests_total{route="unmatched",status="404"} 1"#,
        r#"http_requests_total{route="/healthz",status="200"} 1"#,
    ] {
        assert!(metrics.contains(series), "missing {series} in\n{metrics}");
    }
    assert!(!metrics.contains("{*rest}"));
    assert!(!metrics.contains(r#"route="/v1/sessions/""#));
}

#[tokio::test]
async fn metrics_include_process_metrics() {
    let metrics = service().build().metrics().await;
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "cache_entries",
        "cache_bytes",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
}
