//! The session-cache contract (`docs/contract-cache.md`), one behaviour per
//! test, checked against every implementation: each case below runs once as
//! `go::<case>` and once as `rust::<case>`. The `twins_*` tests at the end
//! compare the twins with each other.
//!
//! Needs `PARALLAX_CACHE_GO_BIN`, `PARALLAX_CACHE_RUST_BIN` and `promtool`
//! (no Kafka); `scripts/test.sh` provides them.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use parallax_conformance::cache::corpus;
use parallax_conformance::cache::model::Expected;
use parallax_conformance::cache::workload::{Operation, Rng, Workload};
use parallax_conformance::cache::{
    accounted_size, delete, fnv1a64, get, head, put, session_path, CacheError,
    DEFAULT_CONTENT_TYPE, MAX_ID_BYTES, MAX_TTL_SECS, MAX_VALUE_BYTES, SESSION_METHODS, TTL_HEADER,
    UNRESERVED,
};
use parallax_conformance::contract::{
    assert_error, assert_error_for, assert_method_not_allowed, assert_ok, assert_ok_for,
};
use parallax_conformance::http::InFlight;
use parallax_conformance::parity::{self, excerpt};
use parallax_conformance::service::assert_flags_refused;
use parallax_conformance::{
    for_each_implementation, http, metrics, service, Implementation, Request, Response, Service,
};

for_each_implementation! {
    go = Implementation::go_cache(), rust = Implementation::rust_cache();
    // Storing, reading, deleting
    put_then_get_returns_the_exact_bytes_and_content_type,
    a_value_stored_without_content_type_is_application_octet_stream,
    head_answers_the_length_and_content_type_without_a_body,
    hits_carry_no_time_derived_headers,
    delete_removes_the_entry,
    getting_a_missing_session_is_404_not_found_session,
    deleting_a_missing_session_is_404_not_found_session,
    head_of_a_missing_session_is_404_without_a_body,
    a_put_replaces_the_value_and_the_content_type,
    an_empty_value_is_allowed,
    // TTL
    an_entry_expires_after_its_ttl,
    reading_an_expired_entry_counts_an_expired_eviction,
    malformed_ttls_are_400_invalid_ttl,
    the_largest_ttl_is_accepted,
    the_default_ttl_comes_from_the_flag,
    // Ids
    malformed_ids_are_400_invalid_id_for_every_method,
    invalid_percent_escapes_are_refused_with_400,
    an_id_of_256_bytes_is_accepted,
    every_unreserved_character_is_allowed_in_an_id,
    the_method_is_checked_before_the_id,
    checks_run_in_the_contract_order,
    // Sizes
    a_value_of_exactly_1_mib_is_accepted,
    a_value_over_1_mib_is_413_value_too_large_declared_or_chunked,
    a_declared_length_over_1_mib_is_refused_before_the_body_is_sent,
    an_entry_of_exactly_the_shard_capacity_is_accepted,
    an_entry_larger_than_its_shard_is_413_and_the_old_value_stays,
    // Eviction
    a_full_shard_evicts_its_least_recently_used_entry,
    a_get_hit_makes_the_entry_the_most_recently_used,
    a_head_hit_makes_the_entry_the_most_recently_used,
    a_put_evicts_as_many_entries_as_it_needs_but_never_itself,
    a_seeded_sequence_hits_misses_and_evicts_as_the_model_predicts,
    // Concurrency
    concurrent_readers_never_see_torn_or_foreign_values,
    // Routes, methods, probes
    other_methods_on_sessions_are_405_allowing_get_head_put_delete,
    other_methods_on_probes_and_metrics_are_405_allowing_get,
    unknown_routes_are_404_not_found,
    healthz_answers_ok,
    readyz_answers_ready,
    // Metrics
    metrics_pass_promtool_check_metrics,
    metrics_expose_the_contract_families,
    metrics_count_requests_by_op_and_result,
    metrics_count_http_requests_by_route_template,
    cache_entries_and_bytes_track_the_live_entries,
    capacity_evictions_are_counted,
    // Shutdown
    sigterm_lets_an_in_flight_put_finish_and_exits_zero,
    sigint_shuts_down_like_sigterm,
    // Configuration
    flags_win_over_environment_variables,
    environment_variables_apply_when_no_flag_is_given,
    invalid_flag_values_exit_non_zero_naming_the_flag,
    // The corpus, against the contract's statuses
    corpus_statuses_follow_the_contract,
}

// ----------------------------------------------------------------------------
// Storing, reading, deleting

fn put_then_get_returns_the_exact_bytes_and_content_type(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let value = b"\x00\x01 binary \xff\r\n{\"not\":\"parsed\"}".to_vec();

    stored(
        &cache,
        put("s1", value.clone()).content_type("application/x-thing; v=1"),
    );

    assert_ok(&cache.send(&get("s1")), "application/x-thing; v=1", &value);
}

fn a_value_stored_without_content_type_is_application_octet_stream(
    implementation: &Implementation,
) {
    let cache = service(implementation).spawn();

    stored(&cache, put("s1", "raw"));

    assert_ok(&cache.send(&get("s1")), DEFAULT_CONTENT_TYPE, b"raw");
}

fn head_answers_the_length_and_content_type_without_a_body(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    stored(
        &cache,
        put("s1", vec![b'h'; 1234]).content_type("text/plain"),
    );

    let (response, after) = cache.send_then_drain(&head("s1"));

    assert_eq!(response.status, 200);
    assert_eq!(response.content_type(), Some("text/plain"));
    assert_eq!(response.header("Content-Length"), Some("1234"));
    assert_eq!(excerpt(&after), "", "bytes after the HEAD answer");
}

/// The twins must agree byte for byte, so nothing depends on when the
/// entry was written.
fn hits_carry_no_time_derived_headers(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    stored(&cache, put("s1", "v"));

    for request in [get("s1"), head("s1")] {
        let response = cache.send(&request);
        assert_eq!(response.status, 200, "{}", request.method);
        for header in ["Expires", "Age", "Last-Modified"] {
            assert_eq!(response.header(header), None, "{} hit", request.method);
        }
    }
}

fn delete_removes_the_entry(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    stored(&cache, put("s1", "v"));

    no_content(&cache, delete("s1"));

    assert_error(&cache.send(&get("s1")), CacheError::NotFoundSession);
}

fn getting_a_missing_session_is_404_not_found_session(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    assert_error(&cache.send(&get("never")), CacheError::NotFoundSession);
}

fn deleting_a_missing_session_is_404_not_found_session(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    assert_error(&cache.send(&delete("never")), CacheError::NotFoundSession);
}

fn head_of_a_missing_session_is_404_without_a_body(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    let (response, after) = cache.send_then_drain(&head("never"));

    assert_eq!(response.status, 404);
    assert_eq!(excerpt(&after), "", "bytes after the HEAD answer");
}

fn a_put_replaces_the_value_and_the_content_type(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    stored(&cache, put("s1", "first").content_type("text/plain"));

    stored(
        &cache,
        put("s1", r#"{"second":2}"#).content_type("application/json"),
    );

    assert_ok(
        &cache.send(&get("s1")),
        "application/json",
        br#"{"second":2}"#,
    );
}

fn an_empty_value_is_allowed(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    stored(&cache, put("s1", Vec::new()).content_type("text/plain"));

    let response = cache.send(&get("s1"));
    assert_ok(&response, "text/plain", b"");
    assert_eq!(response.header("Content-Length"), Some("0"));
    let response = cache.send(&head("s1"));
    assert_eq!(
        (response.status, response.header("Content-Length")),
        (200, Some("0"))
    );
}

// ----------------------------------------------------------------------------
// TTL

fn an_entry_expires_after_its_ttl(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let written = Instant::now();

    stored(&cache, put("s1", "v").header(TTL_HEADER, "1"));

    assert_expires_after_one_second(&cache, "s1", written);
}

fn reading_an_expired_entry_counts_an_expired_eviction(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let written = Instant::now();
    stored(&cache, put("s1", "v").header(TTL_HEADER, "1"));

    assert_expires_after_one_second(&cache, "s1", written);

    // Whether the read or the sweep removed it, it was removed once.
    assert_evictions_and_gauges(&scrape(&cache), ("expired", 1), 0, 0);
}

/// Digits only, 1–604800: no sign, fraction, exponent, hex, inner space, or
/// empty value. (Leading and trailing blanks are not part of an HTTP field
/// value, so `" 1"` cannot be told from `"1"` on the wire.)
fn malformed_ttls_are_400_invalid_ttl(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    for ttl in [
        "0",
        "604801",
        "-1",
        "+1",
        "1.5",
        "1 0",
        "abc",
        "",
        "1e3",
        "0x10",
        "18446744073709551617",
    ] {
        let response = cache.send(&put("s1", "v").header(TTL_HEADER, ttl));
        assert_error_for(
            &response,
            CacheError::InvalidTtl,
            format!("X-Session-TTL {ttl:?}"),
        );
    }
    assert_error(&cache.send(&get("s1")), CacheError::NotFoundSession);
}

fn the_largest_ttl_is_accepted(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    stored(
        &cache,
        put("s1", "v").header(TTL_HEADER, &MAX_TTL_SECS.to_string()),
    );

    assert_ok(&cache.send(&get("s1")), DEFAULT_CONTENT_TYPE, b"v");
}

/// A PUT without `X-Session-TTL` lives `--default-ttl-secs`; one with the
/// header lives as long as it says.
fn the_default_ttl_comes_from_the_flag(implementation: &Implementation) {
    let cache = service(implementation)
        .flag("--default-ttl-secs", 1)
        .spawn();
    let written = Instant::now();
    stored(&cache, put("default", "v"));
    stored(&cache, put("explicit", "v").header(TTL_HEADER, "60"));

    assert_expires_after_one_second(&cache, "default", written);

    assert_eq!(cache.send(&get("explicit")).status, 200, "explicit TTL");
}

// ----------------------------------------------------------------------------
// Ids

/// The id is the raw path after `/v1/sessions/`, never percent-decoded.
fn malformed_ids_are_400_invalid_id_for_every_method(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let too_long = "i".repeat(MAX_ID_BYTES + 1);
    let ids = [
        "",
        &too_long,
        "a%20b",
        "a%2Fb",
        "%41",
        "a/b",
        "a/",
        "caf\u{e9}",
        "a+b",
        "a!b",
        "a*b",
        "a'b",
        "a(b)",
        "a,b",
        "a;b",
        "a=b",
        "a:b",
        "a@b",
        "a$b",
        "a&b",
    ];

    for id in ids {
        for request in [get(id), put(id, "v"), delete(id)] {
            let what = format!("{} {}", request.method, request.path);
            assert_error_for(&cache.send(&request), CacheError::InvalidId, what);
        }
        let (response, after) = cache.send_then_drain(&head(id));
        assert_eq!(response.status, 400, "HEAD {}", session_path(id));
        assert_eq!(excerpt(&after), "", "bytes after HEAD {}", session_path(id));
    }
}

/// Not a valid request target at all: the HTTP layer may refuse it before the
/// service sees it (Go's net/http does, in plain text), so only the status is
/// part of the contract.
fn invalid_percent_escapes_are_refused_with_400(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    // No bodies: a server refusing the request line may close the connection
    // before a body is written, which would race with the answer.
    for id in ["%zz", "a%", "%4"] {
        for request in [get(id), delete(id)] {
            let response = cache.send(&request);
            assert_eq!(response.status, 400, "{} {}", request.method, request.path);
        }
    }
}

fn an_id_of_256_bytes_is_accepted(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let id = "i".repeat(MAX_ID_BYTES);

    stored(&cache, put(&id, "v"));

    assert_ok(&cache.send(&get(&id)), DEFAULT_CONTENT_TYPE, b"v");
}

/// Including ids a path-cleaning router would rewrite: `.` and `..`.
fn every_unreserved_character_is_allowed_in_an_id(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    for id in [
        UNRESERVED, "-", "_", "~", ".", "..", "...", "a..b", ".hidden",
    ] {
        stored(&cache, put(id, id));
        assert_ok_for(
            &cache.send(&get(id)),
            DEFAULT_CONTENT_TYPE,
            id.as_bytes(),
            format!("GET {}", session_path(id)),
        );
    }
}

fn the_method_is_checked_before_the_id(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    let response = cache.send(&Request::post("/v1/sessions/bad%20id"));

    assert_error(&response, CacheError::MethodNotAllowed);
    assert_eq!(response.header("Allow"), Some(SESSION_METHODS));
}

/// id → `X-Session-TTL` → value size → entry size.
fn checks_run_in_the_contract_order(implementation: &Implementation) {
    let cache = small_cache(implementation, 1, 2048);
    let too_large = vec![b'x'; MAX_VALUE_BYTES + 1];

    for (request, error, what) in [
        (
            put("bad%20id", too_large.clone()).header(TTL_HEADER, "0"),
            CacheError::InvalidId,
            "bad id, bad TTL, value too large",
        ),
        (
            put("s1", too_large.clone()).header(TTL_HEADER, "0"),
            CacheError::InvalidTtl,
            "bad TTL, value too large",
        ),
        (
            put("s1", too_large),
            CacheError::ValueTooLarge,
            "value too large for the contract and the shard",
        ),
        (
            put("s1", vec![b'x'; 4096]),
            CacheError::EntryTooLarge,
            "value too large for the shard",
        ),
    ] {
        assert_error_for(&cache.send(&request), error, what);
    }
}

// ----------------------------------------------------------------------------
// Sizes

fn a_value_of_exactly_1_mib_is_accepted(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let value: Vec<u8> = (0..MAX_VALUE_BYTES).map(|i| (i % 251) as u8).collect();

    stored(&cache, put("big", value.clone()));

    assert_ok(&cache.send(&get("big")), DEFAULT_CONTENT_TYPE, &value);
}

fn a_value_over_1_mib_is_413_value_too_large_declared_or_chunked(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let value = vec![b'x'; MAX_VALUE_BYTES + 1];

    for (request, what) in [
        (put("big", value.clone()), "declared length"),
        (put("big", value).chunked(), "chunked"),
    ] {
        assert_error_for(&cache.send(&request), CacheError::ValueTooLarge, what);
    }
    assert_error(&cache.send(&get("big")), CacheError::NotFoundSession);
}

/// A client announcing too large a value learns it without sending it.
fn a_declared_length_over_1_mib_is_refused_before_the_body_is_sent(
    implementation: &Implementation,
) {
    let cache = service(implementation).spawn();
    let announced =
        put("big", Vec::new()).header("Content-Length", &(MAX_VALUE_BYTES + 1).to_string());

    let response = http::try_send(cache.addr(), &announced)
        .unwrap_or_else(|e| panic!("no answer without the body: {e}"));

    assert_error(&response, CacheError::ValueTooLarge);
}

/// `--capacity-bytes 3002 --shards 3`: each shard holds 1000 bytes
/// (integer division), and an entry of exactly 1000 fits.
fn an_entry_of_exactly_the_shard_capacity_is_accepted(implementation: &Implementation) {
    let cache = small_cache(implementation, 3, 3002);

    stored(&cache, sized_put("s1", 1000));

    assert_eq!(cache.send(&get("s1")).status, 200);
}

fn an_entry_larger_than_its_shard_is_413_and_the_old_value_stays(implementation: &Implementation) {
    let cache = small_cache(implementation, 3, 3002);
    stored(&cache, put("s1", "old").content_type("text/plain"));

    let response = cache.send(&sized_put("s1", 1001));

    assert_error(&response, CacheError::EntryTooLarge);
    assert_ok(&cache.send(&get("s1")), "text/plain", b"old");
}

// ----------------------------------------------------------------------------
// Eviction

/// One shard of 300 bytes holds three entries of 100.
fn a_full_shard_evicts_its_least_recently_used_entry(implementation: &Implementation) {
    let cache = three_entry_shard(implementation);
    fill(&cache, &["a", "b", "c"]);

    stored(&cache, sized_put("d", 100));

    assert_present(
        &cache,
        &[("a", false), ("b", true), ("c", true), ("d", true)],
    );
}

fn a_get_hit_makes_the_entry_the_most_recently_used(implementation: &Implementation) {
    a_hit_makes_the_entry_the_most_recently_used(implementation, get);
}

fn a_head_hit_makes_the_entry_the_most_recently_used(implementation: &Implementation) {
    a_hit_makes_the_entry_the_most_recently_used(implementation, head);
}

fn a_hit_makes_the_entry_the_most_recently_used(
    implementation: &Implementation,
    read: fn(&str) -> Request,
) {
    let cache = three_entry_shard(implementation);
    fill(&cache, &["a", "b", "c"]);
    assert_eq!(cache.send(&read("a")).status, 200);

    stored(&cache, sized_put("d", 100));

    assert_present(
        &cache,
        &[("a", true), ("b", false), ("c", true), ("d", true)],
    );
}

/// An entry as large as the shard pushes out everything else, and stays.
fn a_put_evicts_as_many_entries_as_it_needs_but_never_itself(implementation: &Implementation) {
    let cache = three_entry_shard(implementation);
    fill(&cache, &["a", "b", "c"]);

    stored(&cache, sized_put("whole", 300));

    assert_present(
        &cache,
        &[("a", false), ("b", false), ("c", false), ("whole", true)],
    );
}

/// Shards, accounting and per-shard LRU as the contract's model
/// ([`parallax_conformance::cache::model`]) predicts them: every status,
/// every hit's bytes, then the final counters.
fn a_seeded_sequence_hits_misses_and_evicts_as_the_model_predicts(implementation: &Implementation) {
    let cache = eviction_cache(implementation);
    let mut model = EVICTION_WORKLOAD.model();
    let operations = EVICTION_WORKLOAD.sequence();

    let mut answered = Vec::new();
    let mut statuses = BTreeMap::<u16, usize>::new();
    for (index, operation) in operations.iter().enumerate() {
        let expected = model.apply(operation);
        let response = cache.send(&operation.request());
        if let Some(problem) = disagreement(operation, &expected, &response) {
            panic!(
                "operation {index} of seed {:#x}: {problem}\nthe operations before it:\n{}",
                EVICTION_WORKLOAD.seed,
                recent(&answered)
            );
        }
        answered.push(format!("{index}: {operation} -> {}", response.status));
        *statuses.entry(response.status).or_default() += 1;
    }

    // The sequence covers what it claims to: hits, misses, refusals, evictions.
    assert!(
        [200, 204, 404, 413]
            .iter()
            .all(|status| statuses.get(status) > Some(&20))
            && model.capacity_evictions() > 200,
        "statuses {statuses:?}, {} capacity evictions",
        model.capacity_evictions()
    );
    assert_evictions_and_gauges(
        &scrape(&cache),
        ("capacity", model.capacity_evictions()),
        model.entries(),
        model.bytes(),
    );
}

// ----------------------------------------------------------------------------
// Concurrency

/// Eight threads PUT and GET 50 ids for about two seconds. Every value names
/// its id and writer and ends in a checksum, and its Content-Type names the
/// writer too, so a torn, mixed or foreign answer cannot pass. Ids below
/// [`SHARED_IDS`] are written by every thread; the others by one owner.
/// Afterwards every id holds the last value one of its writers wrote.
fn concurrent_readers_never_see_torn_or_foreign_values(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    let deadline = Instant::now() + CONCURRENT_RUN;

    let outcomes: Vec<WriterOutcome> = thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let cache = &cache;
                scope.spawn(move || run_writer(cache, writer, deadline))
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().expect("writer thread"))
            .collect()
    });

    let problems: Vec<&String> = outcomes.iter().flat_map(|o| &o.problems).collect();
    assert!(
        problems.is_empty(),
        "{} bad answers under concurrency, e.g.:\n{}",
        problems.len(),
        problems
            .iter()
            .take(10)
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let hits: usize = outcomes.iter().map(|o| o.hits).sum();
    let puts: usize = outcomes.iter().map(|o| o.last_written.len()).sum();
    assert!(
        hits > 100 && puts > 50,
        "too little traffic: {hits} hits, {puts} ids written"
    );

    for id in 0..CONCURRENT_IDS {
        let candidates: BTreeSet<&[u8]> = outcomes
            .iter()
            .filter_map(|o| o.last_written.get(&id).map(Vec::as_slice))
            .collect();
        if id >= SHARED_IDS {
            assert!(candidates.len() <= 1, "id {id} has a single writer");
        }
        let response = cache.send(&get(&concurrent_id(id)));
        match response.status {
            200 => assert!(
                candidates.contains(response.body.as_slice()),
                "final value of {} is no writer's last: {}",
                concurrent_id(id),
                excerpt(&response.body)
            ),
            status => assert!(
                candidates.is_empty(),
                "{} answered {status} although it was written",
                concurrent_id(id)
            ),
        }
    }
}

// ----------------------------------------------------------------------------
// Routes, methods, probes

fn other_methods_on_sessions_are_405_allowing_get_head_put_delete(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    for method in ["POST", "PATCH", "OPTIONS"] {
        let response = cache.send(&Request::new(method, "/v1/sessions/x").body("v"));
        assert_error_for(&response, CacheError::MethodNotAllowed, method);
        assert_eq!(response.header("Allow"), Some(SESSION_METHODS), "{method}");
    }
}

/// `HEAD` is a method other than GET, so it too is refused (without a body).
fn other_methods_on_probes_and_metrics_are_405_allowing_get(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    for path in ["/healthz", "/readyz", "/metrics"] {
        for method in ["POST", "PUT", "DELETE", "HEAD"] {
            assert_method_not_allowed(&cache, method, path, "GET", CacheError::MethodNotAllowed);
        }
    }
}

fn unknown_routes_are_404_not_found(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    for request in [
        Request::get("/"),
        Request::get("/v1/sessions"),
        Request::put("/v1/session/x").body("v"),
        Request::get("/v2/sessions/x"),
        Request::get("/healthz/"),
        Request::get("/metrics/x"),
        Request::delete("/nope"),
    ] {
        let what = format!("{} {}", request.method, request.path);
        assert_error_for(&cache.send(&request), CacheError::NotFound, what);
    }
}

fn healthz_answers_ok(implementation: &Implementation) {
    assert_probe(implementation, "/healthz", r#"{"status":"ok"}"#);
}

/// The cache has no dependency, so it is ready as soon as it listens.
fn readyz_answers_ready(implementation: &Implementation) {
    assert_probe(implementation, "/readyz", r#"{"status":"ready"}"#);
}

// ----------------------------------------------------------------------------
// Metrics

fn metrics_pass_promtool_check_metrics(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    exercise(&cache);

    let exposition = scrape(&cache);

    if let Err(problems) = metrics::promtool_check(&exposition) {
        panic!("{problems}\n--- exposition ---\n{exposition}");
    }
}

fn metrics_expose_the_contract_families(implementation: &Implementation) {
    let cache = three_entry_shard(implementation);
    exercise(&cache);
    fill(&cache, &["e1", "e2", "e3", "e4"]);

    let exposition = scrape(&cache);

    metrics::assert_family_types(
        &exposition,
        &[
            ("cache_requests_total", "counter"),
            ("cache_evictions_total", "counter"),
            ("cache_entries", "gauge"),
            ("cache_bytes", "gauge"),
            ("http_requests_total", "counter"),
            ("http_request_duration_seconds", "histogram"),
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
        ],
    );
}

/// `invalid` covers 400 and 413 on PUT, and a 400 on any op.
fn metrics_count_requests_by_op_and_result(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    exercise(&cache);

    let exposition = scrape(&cache);

    metrics::assert_values(
        &exposition,
        "cache_requests_total",
        ["op", "result"],
        &[
            (["put", "stored"], 3.0),
            (["put", "invalid"], 2.0),
            (["get", "hit"], 2.0),
            (["get", "miss"], 1.0),
            (["get", "invalid"], 1.0),
            (["head", "hit"], 1.0),
            (["head", "miss"], 1.0),
            (["delete", "deleted"], 1.0),
            (["delete", "miss"], 1.0),
        ],
    );
}

fn metrics_count_http_requests_by_route_template(implementation: &Implementation) {
    let cache = service(implementation).spawn();
    exercise(&cache);

    let exposition = scrape(&cache);

    let sessions = "/v1/sessions/{id}";
    metrics::assert_values(
        &exposition,
        "http_requests_total",
        ["route", "status"],
        &[
            ([sessions, "204"], 4.0),
            ([sessions, "200"], 3.0),
            ([sessions, "404"], 3.0),
            ([sessions, "400"], 2.0),
            ([sessions, "413"], 1.0),
            (["/healthz", "200"], 1.0),
            (["unmatched", "404"], 1.0),
        ],
    );
}

fn cache_entries_and_bytes_track_the_live_entries(implementation: &Implementation) {
    let cache = service(implementation).spawn();

    stored(&cache, put("one", "1").content_type("text/plain"));
    stored(&cache, put("two", "22"));
    assert_gauges(
        &scrape(&cache),
        2,
        accounted_size("one", 1, "text/plain") + accounted_size("two", 2, DEFAULT_CONTENT_TYPE),
    );

    stored(&cache, put("one", "longer").content_type("text/plain"));
    no_content(&cache, delete("two"));
    assert_gauges(&scrape(&cache), 1, accounted_size("one", 6, "text/plain"));
}

fn capacity_evictions_are_counted(implementation: &Implementation) {
    let cache = three_entry_shard(implementation);
    fill(&cache, &["a", "b", "c", "d"]);

    stored(&cache, sized_put("whole", 300));

    assert_evictions_and_gauges(&scrape(&cache), ("capacity", 4), 1, 300);
}

// ----------------------------------------------------------------------------
// Shutdown

fn sigterm_lets_an_in_flight_put_finish_and_exits_zero(implementation: &Implementation) {
    shuts_down_gracefully_on(implementation, "TERM");
}

fn sigint_shuts_down_like_sigterm(implementation: &Implementation) {
    shuts_down_gracefully_on(implementation, "INT");
}

fn shuts_down_gracefully_on(implementation: &Implementation, signal: &str) {
    let mut cache = service(implementation).spawn();
    let in_flight = InFlight::begin(cache.addr(), &put("drain", vec![b'd'; 4096]));

    cache.signal(signal);
    thread::sleep(SIGNAL_SETTLE);
    let response = in_flight.finish();

    assert_eq!(response.status, 204, "in-flight PUT: {}", response.text());
    let status = cache.wait_for_exit(GRACE_AND_MARGIN);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status after SIG{signal}: {status:?}"
    );
}

// ----------------------------------------------------------------------------
// Configuration

/// `CACHE_*` would make a 1000-byte shard; the flags make a large one.
fn flags_win_over_environment_variables(implementation: &Implementation) {
    let cache = service(implementation)
        .env("CACHE_SHARDS", "1")
        .env("CACHE_CAPACITY_BYTES", "1000")
        .flag("--shards", 1)
        .flag("--capacity-bytes", 100_000)
        .spawn();

    stored(&cache, sized_put("s1", 5000));
}

fn environment_variables_apply_when_no_flag_is_given(implementation: &Implementation) {
    let cache = service(implementation)
        .env("CACHE_SHARDS", "1")
        .env("CACHE_CAPACITY_BYTES", "1000")
        .spawn();

    assert_error(
        &cache.send(&sized_put("s1", 1001)),
        CacheError::EntryTooLarge,
    );
}

fn invalid_flag_values_exit_non_zero_naming_the_flag(implementation: &Implementation) {
    assert_flags_refused(
        implementation,
        &[
            ("--shards", "0"),
            ("--shards", "65537"),
            ("--default-ttl-secs", "0"),
            ("--default-ttl-secs", "604801"),
            ("--capacity-bytes", "lots"),
        ],
    );
}

// ----------------------------------------------------------------------------
// The corpus and the twins

fn corpus_statuses_follow_the_contract(implementation: &Implementation) {
    let cache = corpus_cache(implementation);

    parity::assert_statuses(implementation.name, &corpus::corpus(), &cache);
}

/// For every corpus request, in order: the same status, `Content-Type`,
/// `Content-Length` of bodiless answers, `Allow` and body.
#[test]
fn twins_answer_the_corpus_byte_for_byte() {
    let go = corpus_cache(&Implementation::go_cache());
    let rust = corpus_cache(&Implementation::rust_cache());

    parity::assert_twins_agree(&corpus::corpus(), &go, &rust);
}

/// The seeded sequence gives both twins the same answers, one for one, and
/// leaves them with the same counters.
#[test]
fn twins_answer_a_seeded_sequence_identically() {
    let go = eviction_cache(&Implementation::go_cache());
    let rust = eviction_cache(&Implementation::rust_cache());
    let operations = EVICTION_WORKLOAD.sequence();

    let names: Vec<String> = operations
        .iter()
        .enumerate()
        .map(|(index, operation)| format!("{index}: {operation}"))
        .collect();
    let requests: Vec<Request> = operations.iter().map(Operation::request).collect();
    let differences = parity::twin_differences(
        names
            .iter()
            .zip(&requests)
            .map(|(name, request)| (name.as_str(), request, [&go, &rust])),
    );
    assert!(
        differences.is_empty(),
        "the twins differ on {} of {} operations; the first:\n{}",
        differences.len(),
        operations.len(),
        differences[..differences.len().min(5)].join("\n")
    );

    let counters = |cache: &Service| {
        let exposition = scrape(cache);
        (
            metrics::value(&exposition, "cache_entries", &[]),
            metrics::value(&exposition, "cache_bytes", &[]),
            metrics::value(
                &exposition,
                "cache_evictions_total",
                &[("reason", "capacity")],
            ),
        )
    };
    assert_eq!(counters(&go), counters(&rust), "entries, bytes, evictions");
}

// ----------------------------------------------------------------------------
// Helpers

/// How long after a signal the suite lets the service start shutting down
/// before it acts ("shutting down" is not observable from outside).
const SIGNAL_SETTLE: Duration = Duration::from_millis(300);
/// The default 10 s grace period plus a margin.
const GRACE_AND_MARGIN: Duration = Duration::from_secs(15);
/// How long after its one-second TTL an entry may still be served.
const EXPIRY_SLACK: Duration = Duration::from_secs(2);
/// How often an expiring entry is read.
const EXPIRY_POLL: Duration = Duration::from_millis(50);

/// The seeded sequence: six shards of 1025 bytes (6150 / 6, rounded down),
/// entries of about 100 to 500 accounted bytes, so shards overflow all the
/// time. Six, not a power of two, so the shard depends on every bit of the
/// hash (with four, any hash with the right low bits would pass).
const EVICTION_WORKLOAD: Workload = Workload {
    seed: 0x5eed_ca5e,
    operations: 2000,
    ids: 60,
    value_bytes: (10, 400),
    shards: 6,
    capacity_bytes: 6150,
};

const WRITERS: usize = 8;
const CONCURRENT_IDS: usize = 50;
/// Ids below this are written by every writer; the rest by `id % WRITERS`.
const SHARED_IDS: usize = 25;
const CONCURRENT_RUN: Duration = Duration::from_secs(2);

fn small_cache(implementation: &Implementation, shards: u64, capacity_bytes: u64) -> Service {
    service(implementation)
        .flag("--shards", shards)
        .flag("--capacity-bytes", capacity_bytes)
        .spawn()
}

/// One shard of 300 bytes: three [`sized_put`]s of 100 fill it.
fn three_entry_shard(implementation: &Implementation) -> Service {
    small_cache(implementation, 1, 300)
}

fn eviction_cache(implementation: &Implementation) -> Service {
    with_flags(implementation, EVICTION_WORKLOAD.flags())
}

fn corpus_cache(implementation: &Implementation) -> Service {
    with_flags(implementation, corpus::flags())
}

fn with_flags(implementation: &Implementation, flags: [(&str, u64); 2]) -> Service {
    flags
        .into_iter()
        .fold(service(implementation), |builder, (flag, value)| {
            builder.flag(flag, value)
        })
        .spawn()
}

/// A PUT (no `Content-Type`) whose entry accounts exactly `size` bytes.
fn sized_put(id: &str, size: u64) -> Request {
    let overhead = accounted_size(id, 0, DEFAULT_CONTENT_TYPE);
    put(id, vec![b's'; usize::try_from(size - overhead).unwrap()])
}

/// Stores a 100-byte entry under each id, in order.
fn fill(cache: &Service, ids: &[&str]) {
    for id in ids {
        stored(cache, sized_put(id, 100));
    }
}

/// Asserts which ids answer GET with 200 (`true`) or 404 (`false`). GETs
/// reorder the LRU, so this is the last look at a cache.
#[track_caller]
fn assert_present(cache: &Service, expected: &[(&str, bool)]) {
    let actual: Vec<(&str, bool)> = expected
        .iter()
        .map(|(id, _)| (*id, cache.send(&get(id)).status == 200))
        .collect();
    assert_eq!(actual, expected, "which ids are still cached");
}

/// Sends `request` and asserts `204` with nothing after the head.
#[track_caller]
fn no_content(cache: &Service, request: Request) {
    let (response, after) = cache.send_then_drain(&request);
    assert_eq!(
        response.status,
        204,
        "{} {}: {}",
        request.method,
        request.path,
        response.text()
    );
    assert_eq!(excerpt(&after), "", "bytes after the 204");
}

/// [`no_content`] for a PUT.
#[track_caller]
fn stored(cache: &Service, request: Request) {
    no_content(cache, request);
}

/// Reads `id` every [`EXPIRY_POLL`] until it misses: never earlier than
/// one second after `written` (taken before the PUT was sent, so before the
/// service's write time), and at most [`EXPIRY_SLACK`] later.
#[track_caller]
fn assert_expires_after_one_second(cache: &Service, id: &str, written: Instant) {
    let ttl = Duration::from_secs(1);
    loop {
        let response = cache.send(&get(id));
        let answered = written.elapsed();
        match response.status {
            200 if answered < ttl + EXPIRY_SLACK => thread::sleep(EXPIRY_POLL),
            200 => panic!("{id} still served {answered:?} after a PUT with a 1 s TTL"),
            404 => {
                assert!(
                    answered >= ttl,
                    "{id} expired {answered:?} after a PUT with a 1 s TTL"
                );
                assert_error(&response, CacheError::NotFoundSession);
                return;
            }
            status => panic!("GET {id}: {status} {}", response.text()),
        }
    }
}

#[track_caller]
fn assert_probe(implementation: &Implementation, path: &str, body: &str) {
    let cache = service(implementation).spawn();

    let response = cache.send(&Request::get(path));

    assert_eq!((response.status, response.text().as_str()), (200, body));
}

/// Three stores, two refused PUTs, hits and misses of every kind, a probe
/// and an unknown route.
fn exercise(cache: &Service) {
    let requests = [
        (put("m-1", "one"), 204),
        (put("m-2", "two"), 204),
        (put("m-1", "uno"), 204),
        (put("m-3", "x").header(TTL_HEADER, "0"), 400),
        (put("m-3", vec![0; MAX_VALUE_BYTES + 1]), 413),
        (get("m-1"), 200),
        (get("m-2"), 200),
        (get("nope"), 404),
        (get("bad%20id"), 400),
        (head("m-1"), 200),
        (head("nope"), 404),
        (delete("m-2"), 204),
        (delete("m-2"), 404),
        (Request::get("/healthz"), 200),
        (Request::get("/nope"), 404),
    ];
    for (request, status) in requests {
        let response = cache.send(&request);
        assert_eq!(
            response.status,
            status,
            "{} {}: {}",
            request.method,
            request.path,
            response.text()
        );
    }
}

fn scrape(cache: &Service) -> String {
    let response = cache.send(&Request::get("/metrics"));
    assert_eq!(response.status, 200, "GET /metrics");
    response.text()
}

/// Asserts `cache_entries` and `cache_bytes`.
#[track_caller]
fn assert_gauges(exposition: &str, entries: usize, bytes: u64) {
    let gauge = |name| metrics::value(exposition, name, &[]);
    assert_eq!(
        (gauge("cache_entries"), gauge("cache_bytes")),
        (Some(entries as f64), Some(bytes as f64)),
        "(cache_entries, cache_bytes) in:\n{exposition}"
    );
}

/// Asserts `cache_evictions_total{reason}` and the gauges.
#[track_caller]
fn assert_evictions_and_gauges(
    exposition: &str,
    (reason, evictions): (&str, u64),
    entries: usize,
    bytes: u64,
) {
    let evicted = metrics::value(exposition, "cache_evictions_total", &[("reason", reason)]);
    assert_eq!(
        evicted,
        Some(evictions as f64),
        "{reason} evictions in:\n{exposition}"
    );
    assert_gauges(exposition, entries, bytes);
}

/// How `response` differs from what the model expects, if it does.
fn disagreement(operation: &Operation, expected: &Expected, response: &Response) -> Option<String> {
    let problem = |what: &str| {
        Some(format!(
            "{operation}: expected {what}, got {} with {} bytes (fnv {:016x}) and Content-Type {:?}",
            response.status,
            response.body.len(),
            fnv1a64(&response.body),
            response.content_type()
        ))
    };
    if response.status != expected.status() {
        return problem(&format!("status {}", expected.status()));
    }
    match (expected, operation) {
        (Expected::Hit(entry), _)
            if response.content_type() != Some(entry.content_type.as_str()) =>
        {
            problem(&format!("Content-Type {:?}", entry.content_type))
        }
        (Expected::Hit(entry), Operation::Get { .. }) if response.body != entry.value => {
            problem("the stored bytes")
        }
        (Expected::Hit(entry), Operation::Head { .. })
            if response.header("Content-Length")
                != Some(entry.value.len().to_string().as_str()) =>
        {
            problem(&format!("Content-Length {}", entry.value.len()))
        }
        _ => None,
    }
}

/// The last few lines of `log`, for context in a failure message.
fn recent(log: &[String]) -> String {
    log[log.len().saturating_sub(8)..].join("\n")
}

/// The id of concurrent-test slot `n`.
fn concurrent_id(n: usize) -> String {
    format!("conc-{n:02}")
}

/// What one writer thread saw and did.
struct WriterOutcome {
    /// The last value this writer stored, by id slot.
    last_written: BTreeMap<usize, Vec<u8>>,
    hits: usize,
    problems: Vec<String>,
}

/// `{id}|{writer}|{seq}|{filler}|{fnv1a64 of everything before, hex}`.
fn concurrent_value(id: &str, writer: usize, seq: usize, rng: &mut Rng) -> Vec<u8> {
    let len = rng.between(10, 4000);
    let mut value = format!("{id}|{writer}|{seq}|").into_bytes();
    value.extend(rng.bytes(len).into_iter().filter(|b| *b != b'|'));
    value.push(b'|');
    let checksum = fnv1a64(&value);
    value.extend(format!("{checksum:016x}").bytes());
    value
}

fn writer_content_type(writer: usize) -> String {
    format!("application/x-writer-{writer}")
}

/// Why `response` cannot be a value a writer allowed to write slot `slot`
/// stored there, if it cannot.
fn malformed(slot: usize, response: &Response) -> Option<String> {
    let id = concurrent_id(slot);
    let body = &response.body;
    let bad = |why: &str| Some(format!("GET {id}: {why}: {}", excerpt(body)));
    let Some(split) = body.iter().rposition(|b| *b == b'|') else {
        return bad("no checksum");
    };
    let (signed, checksum) = (&body[..=split], &body[split + 1..]);
    if checksum != format!("{:016x}", fnv1a64(signed)).as_bytes() {
        return bad("torn value (checksum mismatch)");
    }
    let text = String::from_utf8_lossy(signed);
    let mut fields = text.split('|');
    if fields.next() != Some(id.as_str()) {
        return bad("another id's value");
    }
    let Some(writer) = fields.next().and_then(|w| w.parse::<usize>().ok()) else {
        return bad("no writer");
    };
    if writer >= WRITERS || (slot >= SHARED_IDS && writer != slot % WRITERS) {
        return bad(&format!(
            "value of writer {writer}, who never wrote this id"
        ));
    }
    if response.content_type() != Some(writer_content_type(writer).as_str()) {
        return bad(&format!(
            "value of writer {writer} with Content-Type {:?}",
            response.content_type()
        ));
    }
    None
}

fn run_writer(cache: &Service, writer: usize, deadline: Instant) -> WriterOutcome {
    let mut rng = Rng::new(0xc0c0 + writer as u64);
    let mut outcome = WriterOutcome {
        last_written: BTreeMap::new(),
        hits: 0,
        problems: Vec::new(),
    };
    let mut seq = 0;
    while Instant::now() < deadline {
        let slot = rng.below(CONCURRENT_IDS);
        let id = concurrent_id(slot);
        let may_write = slot < SHARED_IDS || slot % WRITERS == writer;
        if may_write && rng.below(2) == 0 {
            seq += 1;
            let value = concurrent_value(&id, writer, seq, &mut rng);
            let request = put(&id, value.clone()).content_type(&writer_content_type(writer));
            let response = cache.send(&request);
            if response.status == 204 {
                outcome.last_written.insert(slot, value);
            } else {
                outcome
                    .problems
                    .push(format!("PUT {id}: {} {}", response.status, response.text()));
            }
            continue;
        }
        let response = cache.send(&get(&id));
        match response.status {
            200 => {
                outcome.hits += 1;
                outcome.problems.extend(malformed(slot, &response));
            }
            404 => {}
            status => outcome
                .problems
                .push(format!("GET {id}: {status} {}", response.text())),
        }
    }
    outcome
}
