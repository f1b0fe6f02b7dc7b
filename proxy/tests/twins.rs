//! The proxy in front of the real twins: the Go reference as primary, the
//! Rust twin as shadow. Every answer through the proxy equals what a second
//! Go instance answers directly, and every comparison is a match. As a
//! canary, the Rust cache steps up to all reads while matching, and a
//! deliberately regressed Rust build is rolled back for its latency.
//!
//! Needs the binaries the conformance suite uses — `PARALLAX_INGEST_GO_BIN`,
//! `PARALLAX_INGEST_RUST_BIN`, `PARALLAX_CACHE_GO_BIN`,
//! `PARALLAX_CACHE_RUST_BIN`, `PARALLAX_FANOUT_GO_BIN`,
//! `PARALLAX_FANOUT_RUST_BIN` — and, for ingest, Kafka at
//! `PARALLAX_KAFKA_BROKERS` (default `127.0.0.1:9092`); `scripts/test.sh`
//! provides them all. And `promtool`.

mod support;

use parallax_conformance::cache::corpus as cache_corpus;
use parallax_conformance::corpus::{self as ingest_corpus, Kafka};
use parallax_conformance::{service, Implementation, Service, ServiceBuilder};
use support::*;

/// Starts a twin on a blocking thread (the builder waits for its log line).
async fn spawn(builder: ServiceBuilder) -> Service {
    tokio::task::spawn_blocking(move || builder.spawn())
        .await
        .unwrap()
}

/// No series of `name` has a `result`/`outcome` other than those allowed.
fn assert_only(exposition: &str, name: &str, label: &str, allowed: &[&str]) {
    for s in parallax_conformance::metrics::samples(exposition) {
        if s.name == name && s.value > 0.0 {
            let value = s.label(label).unwrap_or("");
            assert!(
                allowed.contains(&value),
                "{name}{:?} = {}",
                s.labels,
                s.value
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_batches_through_the_proxy_all_match() {
    let primary = spawn(service(&Implementation::go())).await;
    let direct = spawn(service(&Implementation::go())).await;
    let shadow = spawn(service(&Implementation::rust())).await;
    let proxy = proxy()
        .primary(primary.addr())
        .shadow(shadow.addr())
        // The Kafka-backed shadow's first answers can pass the default 1 s
        // on a loaded box: a `shadow_timeout` that says nothing about the
        // comparison tested here.
        .set("shadow_timeout_ms = 10000")
        .tables(
            r#"
            [[services.routes]]
            template = "/v1/events"
            [services.routes.compare]
            headers = ["content-type", "retry-after", "allow"]
            protobuf_message = "parallax.ingest.v1.IngestResponse"
            "#,
        )
        .start()
        .await;

    let mut sent = 0.0;
    for entry in ingest_corpus::corpus() {
        if entry.kafka != Kafka::Reachable {
            continue;
        }
        let proxied = wire(proxy.addr, entry.request.clone()).await;
        let expected = wire(direct.addr(), entry.request).await;
        assert_eq!(
            proxied.status,
            entry.status,
            "{}: {}",
            entry.name,
            proxied.text()
        );
        assert_eq!(
            comparable(&proxied),
            comparable(&expected),
            "{}",
            entry.name
        );
        sent += 1.0;
    }
    proxy.settle(sent).await;
    let metrics = proxy.metrics().await;
    assert_only(&metrics, "parallax_comparisons_total", "result", &["match"]);
    // Bodies over the default 1 MiB mirror limit are not compared.
    assert_only(
        &metrics,
        "parallax_mirror_total",
        "outcome",
        &["compared", "body_too_large"],
    );
    let compared = sum(&metrics, "parallax_mirror_total", "outcome", "compared");
    let too_large = sum(
        &metrics,
        "parallax_mirror_total",
        "outcome",
        "body_too_large",
    );
    assert_eq!(compared + too_large, sent, "{metrics}");
    assert!(
        too_large <= 2.0,
        "only the two bodies of 8 MiB exceed the limit:\n{metrics}"
    );
    assert_eq!(
        proxy.admin_json("/admin/mismatches").await["services"]["svc"],
        serde_json::json!({})
    );

    // Both twins are local processes found from their ports.
    for backend in ["primary", "shadow"] {
        let rss = parallax_conformance::metrics::value(
            &metrics,
            "parallax_backend_resident_memory_bytes",
            &[("backend", backend)],
        );
        assert!(rss.unwrap_or(0.0) > 1e6, "{backend}: {metrics}");
        let cpu = parallax_conformance::metrics::value(
            &metrics,
            "parallax_backend_cpu_seconds_total",
            &[("backend", backend)],
        );
        assert!(cpu.is_some(), "{backend}: {metrics}");
    }
    parallax_conformance::metrics::promtool_check(&metrics).unwrap();

    // The shadow really published what it accepted: its topic has records.
    let shadow_records = tokio::task::spawn_blocking(move || shadow.records_now().len())
        .await
        .unwrap();
    assert!(shadow_records > 0);
}

/// The ingest corpus (hostile bodies and wire types included) sent by
/// Python's `http.client`, a client this project did not write: through the
/// proxy (Go primary, Rust shadow), straight to a second Go, and straight
/// to a second Rust. All three answer alike, and the proxy finds no
/// mismatch: no false mismatch, and no parity difference for a false match
/// to hide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_corpus_sent_by_python_gets_identical_answers_and_no_mismatch() {
    let primary = spawn(service(&Implementation::go())).await;
    let shadow = spawn(service(&Implementation::rust())).await;
    let go = spawn(service(&Implementation::go())).await;
    let rust = spawn(service(&Implementation::rust())).await;
    let proxy = proxy()
        .primary(primary.addr())
        .shadow(shadow.addr())
        .tables(
            r#"
            [[services.routes]]
            template = "/v1/events"
            [services.routes.compare]
            headers = ["content-type", "retry-after", "allow"]
            protobuf_message = "parallax.ingest.v1.IngestResponse"
            "#,
        )
        .start()
        .await;
    let entries: Vec<_> = ingest_corpus::corpus()
        .into_iter()
        .filter(|e| e.kafka == Kafka::Reachable)
        .collect();
    let requests: Vec<_> = entries.iter().map(|e| e.request.clone()).collect();
    let proxied = python_send(proxy.addr, requests.clone()).await;
    let from_go = python_send(go.addr(), requests.clone()).await;
    let from_rust = python_send(rust.addr(), requests).await;
    let mut sent = 0.0;
    for (i, entry) in entries.iter().enumerate() {
        let (p, g, r) = match (&proxied[i], &from_go[i], &from_rust[i]) {
            (Ok(p), Ok(g), Ok(r)) => (p, g, r),
            // http.client cannot send this request (an exchange it refuses
            // on its side): all three must fail alike.
            (p, g, r) => {
                assert!(
                    p.is_err() && g.is_err() && r.is_err(),
                    "{}: {p:?} {g:?} {r:?}",
                    entry.name
                );
                continue;
            }
        };
        sent += 1.0;
        assert_eq!(p.status, entry.status, "{}", entry.name);
        assert_eq!(comparable(p), comparable(g), "{}: proxy vs Go", entry.name);
        let essence = |x: &parallax_conformance::Response| {
            (
                x.status,
                x.header("content-type").map(str::to_owned),
                x.body.clone(),
            )
        };
        assert_eq!(essence(g), essence(r), "{}: Go vs Rust", entry.name);
    }
    assert!(
        sent as usize > entries.len() * 9 / 10,
        "python sent {sent} of {}",
        entries.len()
    );
    proxy.settle(sent).await;
    let metrics = proxy.metrics().await;
    assert_only(&metrics, "parallax_comparisons_total", "result", &["match"]);
    assert_eq!(
        proxy.admin_json("/admin/mismatches").await["services"]["svc"],
        serde_json::json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_corpus_through_the_proxy_all_matches() {
    let with_flags = |imp: &Implementation| {
        cache_corpus::flags()
            .into_iter()
            .fold(service(imp), |b, (flag, value)| b.flag(flag, value))
    };
    let primary = spawn(with_flags(&Implementation::go_cache())).await;
    let direct = spawn(with_flags(&Implementation::go_cache())).await;
    let shadow = spawn(with_flags(&Implementation::rust_cache())).await;
    let proxy = proxy()
        .primary(primary.addr())
        .shadow(shadow.addr())
        .tables(
            r#"
            [services.compare]
            headers = ["content-type", "allow"]

            [[services.routes]]
            template = "/v1/sessions/{id}"
            [services.routes.compare]
            headers = ["content-type", "allow"]
            "#,
        )
        .start()
        .await;

    let mut sent = 0.0;
    for step in cache_corpus::corpus() {
        let proxied = wire(proxy.addr, step.request.clone()).await;
        // The shadow's copy must land before the next step reads its state.
        sent += 1.0;
        proxy.settle(sent).await;
        let expected = wire(direct.addr(), step.request).await;
        assert_eq!(
            proxied.status,
            step.status,
            "{}: {}",
            step.name,
            proxied.text()
        );
        assert_eq!(comparable(&proxied), comparable(&expected), "{}", step.name);
    }
    let metrics = proxy.metrics().await;
    assert_only(&metrics, "parallax_comparisons_total", "result", &["match"]);
    assert_only(
        &metrics,
        "parallax_mirror_total",
        "outcome",
        &["compared", "body_too_large"],
    );
    let matched = sum(&metrics, "parallax_comparisons_total", "result", "match");
    let too_large = sum(
        &metrics,
        "parallax_mirror_total",
        "outcome",
        "body_too_large",
    );
    assert_eq!(matched + too_large, sent, "{metrics}");
    assert!(
        too_large <= 2.0,
        "only the values over 1 MiB exceed the limit:\n{metrics}"
    );
    parallax_conformance::metrics::promtool_check(&metrics).unwrap();
}

/// Drives `GET /v1/sessions/user-{i}` through the proxy until the canary of
/// `svc` is in `want`; every answer must be the stored value. Fails after
/// 20 s.
async fn read_until(proxy: &TestProxy, users: usize, want: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut i = 0;
    loop {
        for _ in 0..10 {
            let id = format!("user-{}", i % users);
            let answer = wire(proxy.addr, parallax_conformance::cache::get(&id)).await;
            assert_eq!(answer.status, 200, "{id}: {}", answer.text());
            assert_eq!(answer.body, format!("session of {id}").into_bytes());
            i += 1;
        }
        let state = proxy.admin_json("/admin/canary").await["services"]["svc"].clone();
        if state["state"] == want {
            return state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "canary never reached {want}: {state}"
        );
    }
}

/// The Go cache as primary, a Rust cache as the canary: writes stay with the
/// primary and are mirrored (so both hold the same sessions), reads are
/// canaried.
async fn canary_over_the_cache_twins(
    shadow: &Service,
    primary: &Service,
    canary: &str,
) -> TestProxy {
    let proxy = proxy()
        .primary(primary.addr())
        .shadow(shadow.addr())
        .tables(&format!(
            "[services.canary]\nmethods = \"safe\"\nwindow_secs = 0.2\nmin_requests = 20\n{canary}\n\
             [services.compare]\nheaders = [\"content-type\", \"allow\"]\n\
             [[services.routes]]\ntemplate = \"/v1/sessions/{{id}}\""
        ))
        .start()
        .await;
    for i in 0..50 {
        let id = format!("user-{i}");
        let put = wire(
            proxy.addr,
            parallax_conformance::cache::put(&id, format!("session of {id}")),
        )
        .await;
        assert_eq!(put.status, 204, "{}", put.text());
    }
    proxy.settle(50.0).await;
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_of_the_rust_cache_steps_up_to_complete_with_every_comparison_matching() {
    let primary = spawn(service(&Implementation::go_cache())).await;
    let shadow = spawn(service(&Implementation::rust_cache())).await;
    let proxy = canary_over_the_cache_twins(
        &shadow,
        &primary,
        "weights_percent = [20, 100]\nstep_secs = 0.6\nmax_mismatch_rate = 0.01\np99_slack_ms = 1000",
    )
    .await;
    let state = read_until(&proxy, 50, "complete").await;
    assert_eq!(state["weight_percent"], 100.0);
    let metrics = proxy.metrics().await;
    assert_only(&metrics, "parallax_comparisons_total", "result", &["match"]);
    assert_eq!(
        sum(
            &metrics,
            "parallax_canary_rollbacks_total",
            "service",
            "svc"
        ),
        0.0
    );
    let served = sum(
        &metrics,
        "parallax_canary_requests_total",
        "backend",
        "shadow",
    );
    assert!(served >= 20.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_of_a_regressed_rust_cache_is_rolled_back_for_latency() {
    let primary = spawn(service(&Implementation::go_cache())).await;
    // The deliberately regressed build the gate test uses: 30 ms per answer.
    let shadow =
        spawn(service(&Implementation::rust_cache()).flag("--debug-delay-us", 30_000)).await;
    let proxy = canary_over_the_cache_twins(
        &shadow,
        &primary,
        "weights_percent = [50]\nmax_p99_ratio = 2\np99_slack_ms = 10",
    )
    .await;
    let state = read_until(&proxy, 50, "rolled_back").await;
    assert_eq!(state["rollback"]["reason"], "latency", "{state}");
    // Clients are back on the Go primary: no read reaches the canary now.
    let before = sum(
        &proxy.metrics().await,
        "parallax_canary_requests_total",
        "backend",
        "shadow",
    );
    for i in 0..20 {
        let id = format!("user-{i}");
        assert_eq!(
            wire(proxy.addr, parallax_conformance::cache::get(&id))
                .await
                .status,
            200
        );
    }
    let after = sum(
        &proxy.metrics().await,
        "parallax_canary_requests_total",
        "backend",
        "shadow",
    );
    assert_eq!(before, after);
}

/// gRPC end to end: grpcurl (a client nobody here wrote) calls
/// `IngestService/Publish` on the proxy over TLS; the proxy speaks h2c to
/// the Go twin (primary) and the Rust twin (shadow) and compares their
/// answers as gRPC — status, message, and each response message decoded
/// at its fields. The twins answer alike, so every comparison matches,
/// rejections and errors included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_to_the_twins_is_compared_message_by_message() {
    // The shadow's deadline is 10 s, not 1: on a loaded 2-core box the
    // Rust twin's first Kafka-backed answer took longer than a second, a
    // `shadow_timeout` that says nothing about the comparison tested here.
    let primary = spawn(service(&Implementation::go()).grpc()).await;
    let shadow = spawn(service(&Implementation::rust()).grpc()).await;
    let cert = TestCert::new("twins-grpc");
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"http://{}\"\nshadow = \"http://{}\"\nprimary_http2 = true\nshadow_http2 = true\nshadow_timeout_ms = 10000\n[services.tls]\ncert_file = {:?}\nkey_file = {:?}\n[services.compare]\nprotobuf_message = \"parallax.ingest.v1.IngestResponse\"\n[[services.routes]]\ntemplate = \"/parallax.ingest.v1.IngestService/Publish\"\n",
        primary.grpc_addr(),
        shadow.grpc_addr(),
        cert.cert_file.display().to_string(),
        cert.key_file.display().to_string(),
    );
    let proxy = proxy_from_toml(&toml).await;
    let calls = [
        r#"{"events":[{"eventId":"tls-1","tenantId":"acme","type":"click","payload":"aGk="}]}"#,
        r#"{"events":[{"eventId":"tls-2","tenantId":"acme","type":"click"},{"eventId":"tls-3","tenantId":"acme"}]}"#,
        r#"{"events":[]}"#,
    ];
    let addr = proxy.addr;
    let cert_file = cert.cert_file.clone();
    let outputs = tokio::task::spawn_blocking(move || {
        calls
            .iter()
            .map(|json| {
                let root = parallax_conformance::grpc::repo_root();
                let mut child = std::process::Command::new(parallax_conformance::grpc::grpcurl())
                    .arg("-cacert")
                    .arg(&cert_file)
                    .args(["-authority", "localhost", "-format-error", "-import-path"])
                    .arg(root.join("proto"))
                    .args([
                        "-proto",
                        "parallax/ingest/v1/ingest_service.proto",
                        "-d",
                        "@",
                    ])
                    .arg(addr.to_string())
                    .arg("parallax.ingest.v1.IngestService/Publish")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("grpcurl starts (scripts/deps.sh installs it)");
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(json.as_bytes())
                    .unwrap();
                let out = child.wait_with_output().unwrap();
                (
                    out.status.code(),
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(outputs[0].0, Some(0), "{}", outputs[0].1);
    assert!(outputs[0].1.contains("\"accepted\": 1"), "{}", outputs[0].1);
    assert!(outputs[1].1.contains("missing_type"), "{}", outputs[1].1);
    proxy.settle(calls.len() as f64).await;
    let metrics = proxy.metrics().await;
    let route = "/parallax.ingest.v1.IngestService/Publish";
    let compared = parallax_conformance::metrics::value(
        &metrics,
        "parallax_comparisons_total",
        &[("route", route), ("result", "match")],
    );
    assert_eq!(compared, Some(calls.len() as f64), "{metrics}");
    assert_only(&metrics, "parallax_comparisons_total", "result", &["match"]);
}

/// A blocking GET of a twin's `name{labels}` metric.
fn twin_metric(twin: &Service, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = twin
        .send(&parallax_conformance::Request::get("/metrics"))
        .text();
    parallax_conformance::metrics::value(&text, name, labels).unwrap_or(0.0)
}

/// Streaming gRPC end to end, with descriptors by server reflection:
/// grpcurl (itself by reflection, through the proxy) and Python's grpcio
/// subscribe over TLS; the proxy takes the fan-out's descriptors from the
/// Go twin (primary) at start-up, mirrors the `Subscribe` stream to the
/// Rust twin (shadow, with a planted difference in the second
/// notification) and pairs each client's two streams message by message:
/// one mismatch per stream, at the protobuf field path of the planted
/// field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_subscribe_streams_are_paired_message_by_message_with_descriptors_by_reflection() {
    let primary = spawn(service(&Implementation::go_fanout()).grpc()).await;
    let shadow = spawn(
        service(&Implementation::rust_fanout())
            .grpc()
            .flag("--test-plant-grpc-mismatch", "n-2"),
    )
    .await;
    let cert = TestCert::new("twins-grpc-stream");
    let route = "/parallax.fanout.v1.FanoutService/Subscribe";
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"http://{}\"\nshadow = \"http://{}\"\nprimary_http2 = true\nshadow_http2 = true\nshadow_timeout_ms = 30000\n[services.tls]\ncert_file = {:?}\nkey_file = {:?}\n[[services.routes]]\ntemplate = \"{route}\"\ncompare = {{ descriptors = \"reflection\", protobuf_message = \"parallax.fanout.v1.Notification\" }}\n",
        primary.grpc_addr(),
        shadow.grpc_addr(),
        cert.cert_file.display().to_string(),
        cert.key_file.display().to_string(),
    );
    let proxy = proxy_from_toml(&toml).await;
    let addr = proxy.addr;
    let cert_file = cert.cert_file.clone();
    let grpcurl = tokio::task::spawn_blocking(move || {
        // Descriptors by reflection on the client's side too: its
        // bidirectional stream goes through the mirrored proxy as well.
        let mut child = std::process::Command::new(parallax_conformance::grpc::grpcurl())
            .arg("-cacert")
            .arg(&cert_file)
            .args([
                "-authority",
                "localhost",
                "-format-error",
                "-max-time",
                "30",
            ])
            .args(["-d", "@"])
            .arg(addr.to_string())
            .arg("parallax.fanout.v1.FanoutService/Subscribe")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("grpcurl starts (scripts/deps.sh installs it)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"topics":["t"],"limit":3}"#)
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    });
    // And Python's grpcio, over TLS too. (The shadow's copy of a stream
    // must end within shadow_timeout_ms: 30 s here, for the clients'
    // start-up.)
    let mut request = Vec::new();
    prost::encoding::string::encode(1, &"t".to_owned(), &mut request);
    prost::encoding::uint32::encode(2, &3, &mut request);
    let cert_file = cert.cert_file.clone();
    let grpcio = tokio::task::spawn_blocking(move || {
        let child = parallax_conformance::grpc::spawn_grpcio(
            addr,
            route,
            &[("py", request)],
            true,
            Some((&cert_file, "localhost")),
        );
        parallax_conformance::grpc::grpcio_lines(child)
    });
    // Both twins hold both streams (the proxy opened the shadow's beside
    // the primary's) before anything is published.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for (name, twin) in [("primary", &primary), ("shadow", &shadow)] {
        while twin_metric(twin, "fanout_connections", &[]) < 2.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the {name} never got the Subscribe stream; proxy: {}",
                proxy.metrics().await
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    for twin in [&primary, &shadow] {
        for i in 1..=3 {
            let n = parallax_conformance::fanout::notification("t", &format!("{{\"n\": {i}}}"))
                .id(&format!("n-{i}"))
                .published_at(1_764_000_000_000_000 + i);
            parallax_conformance::fanout::publish(twin, &n);
        }
    }
    let (code, output) = grpcurl.await.unwrap();
    assert_eq!(code, Some(0), "{output}");
    let lines = grpcio.await.unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("py OK \"\" - - "), "{lines:?}");
    assert_eq!(
        lines[0].matches(',').count(),
        2,
        "three messages: {lines:?}"
    );
    assert_eq!(output.matches("\"bodyJson\"").count(), 3, "{output}");
    assert!(
        output.contains("\"publishedAtUnixUs\": \"1764000000000002\""),
        "{output}"
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let metrics = proxy.metrics().await;
        let compared = parallax_conformance::metrics::value(
            &metrics,
            "parallax_comparisons_total",
            &[("route", route), ("result", "mismatch")],
        );
        if compared == Some(2.0) || std::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for result in ["match", "mismatch"] {
        let want = if result == "mismatch" {
            Some(2.0)
        } else {
            None
        };
        let got = parallax_conformance::metrics::value(
            &metrics,
            "parallax_comparisons_total",
            &[("route", route), ("result", result)],
        );
        assert_eq!(got.filter(|v| *v > 0.0), want, "{result}: {metrics}");
    }
    let samples = proxy.admin_json("/admin/mismatches").await;
    let kept = samples["services"]["svc"][route]
        .as_array()
        .unwrap_or_else(|| panic!("no mismatch samples: {samples}"));
    assert_eq!(kept.len(), 2, "{samples}");
    for sample in kept {
        let paths: Vec<(&str, &str)> = sample["mismatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["path"].as_str().unwrap(), d["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(paths, [("/1/publishedAtUnixUs", "value")], "{sample}");
    }
}

/// Unary gRPC with descriptors by reflection, through the proxy over h2c:
/// Python's grpcio publishes batches; the proxy took the ingest
/// descriptors from the Go twin at start-up and every answer matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_through_the_proxy_over_h2c_matches_with_descriptors_by_reflection() {
    let primary = spawn(service(&Implementation::go()).grpc()).await;
    let shadow = spawn(service(&Implementation::rust()).grpc()).await;
    let route = "/parallax.ingest.v1.IngestService/Publish";
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"http://{}\"\nshadow = \"http://{}\"\nprimary_http2 = true\nshadow_http2 = true\nshadow_timeout_ms = 10000\n[services.compare]\ndescriptors = \"reflection\"\nprotobuf_message = \"parallax.ingest.v1.IngestResponse\"\n[[services.routes]]\ntemplate = \"{route}\"\n",
        primary.grpc_addr(),
        shadow.grpc_addr(),
    );
    let proxy = proxy_from_toml(&toml).await;
    let batches: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            // EventBatch { events: [Event { event_id, tenant_id: "t", type: "x"/"" }] }
            let mut event = Vec::new();
            prost::encoding::string::encode(1, &format!("g-{i}"), &mut event);
            prost::encoding::string::encode(2, &"t".to_owned(), &mut event);
            if i % 2 == 0 {
                prost::encoding::string::encode(3, &"x".to_owned(), &mut event);
            }
            let mut batch = Vec::new();
            prost::encoding::bytes::encode(1, &event, &mut batch);
            (format!("b{i}"), batch)
        })
        .collect();
    let addr = proxy.addr;
    let lines = tokio::task::spawn_blocking(move || {
        let calls: Vec<(&str, Vec<u8>)> = batches
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect();
        parallax_conformance::grpc::run_grpcio(addr, &calls)
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains(" OK ")), "{lines:?}");
    proxy.settle(5.0).await;
    let metrics = proxy.metrics().await;
    let matched = parallax_conformance::metrics::value(
        &metrics,
        "parallax_comparisons_total",
        &[("route", route), ("result", "match")],
    );
    assert_eq!(matched, Some(5.0), "{metrics}");
    assert_only(&metrics, "parallax_comparisons_total", "result", &["match"]);
}

/// Runs grpcurl with `args` on a blocking thread: its exit code and its
/// output, stdout then stderr.
async fn grpcurl(args: Vec<String>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(parallax_conformance::grpc::grpcurl())
            .args(&args)
            .output()
            .expect("grpcurl starts (scripts/deps.sh installs it)");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .unwrap()
}

/// Server reflection is a bidirectional stream whose client waits for each
/// answer before it asks on: `grpcurl list` and `describe` through a
/// mirrored route complete, and each stream is mirrored to the shadow
/// twin and compared once the client ended it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_list_and_describe_by_reflection_get_through_a_mirrored_route() {
    let primary = spawn(service(&Implementation::go_fanout()).grpc()).await;
    let shadow = spawn(service(&Implementation::rust_fanout()).grpc()).await;
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"http://{}\"\nshadow = \"http://{}\"\nprimary_http2 = true\nshadow_http2 = true\nshadow_timeout_ms = 10000\n",
        primary.grpc_addr(),
        shadow.grpc_addr(),
    );
    let proxy = proxy_from_toml(&toml).await;
    let addr = proxy.addr.to_string();
    let args = |verb: &str| -> Vec<String> {
        ["-plaintext", "-max-time", "30", addr.as_str(), verb]
            .map(String::from)
            .to_vec()
    };
    let (code, listed) = grpcurl(args("list")).await;
    assert_eq!(code, Some(0), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l == "parallax.fanout.v1.FanoutService"),
        "{listed}"
    );
    let (code, described) = grpcurl(args("describe")).await;
    assert_eq!(code, Some(0), "{described}");
    assert!(
        described.contains("parallax.fanout.v1.FanoutService is a service:")
            && described.contains("rpc Subscribe ("),
        "{described}"
    );

    // At least one reflection stream per run, each mirrored and compared
    // (the twins' reflection services need not answer alike).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let metrics = proxy.metrics().await;
        let compared = sum(&metrics, "parallax_mirror_total", "outcome", "compared");
        if compared >= 2.0 || std::time::Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        sum(&metrics, "parallax_mirror_total", "outcome", "compared") >= 2.0,
        "{metrics}"
    );
    assert_only(&metrics, "parallax_mirror_total", "outcome", &["compared"]);
}

/// `descriptors = "reflection"` against a primary without reflection (the
/// ingest twin's HTTP port) stops the start with an error naming the
/// setting; a message the reflected descriptors lack names
/// `protobuf_message`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptors_by_reflection_fail_the_start_naming_the_setting() {
    let twin = spawn(service(&Implementation::go()).grpc()).await;
    let config = |primary: String, http2: bool, message: &str| {
        let toml = format!(
            "admin_listen = \"127.0.0.1:0\"\n[[services]]\nname = \"svc\"\nlisten = \"127.0.0.1:0\"\nprimary = \"http://{primary}\"\nshadow = \"http://{primary}\"\nprimary_http2 = {http2}\nshadow_http2 = {http2}\n[[services.routes]]\ntemplate = \"/x\"\ncompare = {{ descriptors = \"reflection\", protobuf_message = \"{message}\" }}\n"
        );
        // Loaded from a file, as `parallax proxy --config` does: the file
        // alone is valid, whatever the primary describes (Config::load and
        // --check do not ask it); the start checks the message names.
        let file =
            std::env::temp_dir().join(format!("reflection-{}-{http2}.toml", std::process::id()));
        std::fs::write(&file, toml).unwrap();
        let loaded = parallax_proxy::Config::load(&file);
        std::fs::remove_file(&file).unwrap();
        loaded.unwrap_or_else(|e| panic!("the file alone is valid: {e}"))
    };
    let no_reflection = config(
        twin.addr().to_string(),
        false,
        "parallax.ingest.v1.IngestResponse",
    );
    let e = parallax_proxy::Proxy::bind(&no_reflection)
        .await
        .err()
        .expect("a primary without reflection fails the start")
        .to_string();
    assert!(
        e.starts_with(
            "services[0].routes[0].compare.descriptors: cannot fetch descriptors from the primary"
        ),
        "{e}"
    );
    assert!(e.contains("does not serve gRPC server reflection"), "{e}");

    let missing = config(
        twin.grpc_addr().to_string(),
        true,
        "parallax.ingest.v1.Nope",
    );
    let e = parallax_proxy::Proxy::bind(&missing)
        .await
        .err()
        .expect("a message the primary does not describe fails the start")
        .to_string();
    assert!(
        e.starts_with("services[0].routes[0].compare.protobuf_message: \"parallax.ingest.v1.Nope\" is not a message of the primary's server reflection"),
        "{e}"
    );
}
