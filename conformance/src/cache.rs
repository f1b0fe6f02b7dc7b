//! The session-cache contract (`docs/contract-cache.md`): its limits, error
//! table, request shapes and storage arithmetic.
//!
//! # Layout
//! - [`model`]: the contract's storage model (shards, accounting, LRU), run
//!   in the test to predict every answer of a single-threaded sequence.
//! - [`workload`]: seeded, reproducible operation sequences.
//! - [`corpus`]: requests both twins must answer byte for byte alike.

pub mod corpus;
pub mod model;
pub mod workload;

use crate::contract::{ErrorAnswer, METHOD_NOT_ALLOWED, NO_SUCH_ROUTE};
use crate::http::Request;

/// Largest accepted value.
pub const MAX_VALUE_BYTES: usize = 1_048_576;
/// Longest id.
pub const MAX_ID_BYTES: usize = 256;
/// Largest `X-Session-TTL` and `--default-ttl-secs`.
pub const MAX_TTL_SECS: u64 = 604_800;
/// The per-entry overhead in an entry's accounted size.
pub const ENTRY_OVERHEAD_BYTES: u64 = 64;
/// The content type of a value stored without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// `Allow` of a 405 on `/v1/sessions/…`.
pub const SESSION_METHODS: &str = "GET, HEAD, PUT, DELETE";
/// The TTL request header.
pub const TTL_HEADER: &str = "X-Session-TTL";
/// Every byte an id may hold (RFC 3986 unreserved).
pub const UNRESERVED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// Every error answer of the contract's error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    InvalidId,
    InvalidTtl,
    NotFoundSession,
    NotFound,
    MethodNotAllowed,
    ValueTooLarge,
    EntryTooLarge,
}

impl ErrorAnswer for CacheError {
    fn status(self) -> u16 {
        match self {
            CacheError::InvalidId | CacheError::InvalidTtl => 400,
            CacheError::NotFoundSession | CacheError::NotFound => 404,
            CacheError::MethodNotAllowed => 405,
            CacheError::ValueTooLarge | CacheError::EntryTooLarge => 413,
        }
    }

    fn code(self) -> &'static str {
        match self {
            CacheError::InvalidId => "invalid_id",
            CacheError::InvalidTtl => "invalid_ttl",
            CacheError::NotFoundSession => "not_found_session",
            CacheError::NotFound => "not_found",
            CacheError::MethodNotAllowed => "method_not_allowed",
            CacheError::ValueTooLarge => "value_too_large",
            CacheError::EntryTooLarge => "entry_too_large",
        }
    }

    fn message(self) -> &'static str {
        match self {
            CacheError::InvalidId => "session id must be 1-256 bytes of A-Z a-z 0-9 - . _ ~",
            CacheError::InvalidTtl => "X-Session-TTL must be whole seconds from 1 to 604800",
            CacheError::NotFoundSession => "no such session",
            CacheError::NotFound => NO_SUCH_ROUTE,
            CacheError::MethodNotAllowed => METHOD_NOT_ALLOWED,
            CacheError::ValueTooLarge => "value exceeds 1048576 bytes",
            CacheError::EntryTooLarge => "entry exceeds the capacity of its shard",
        }
    }
}

/// `/v1/sessions/{id}`, the id sent as is (not percent-encoded).
pub fn session_path(id: &str) -> String {
    format!("/v1/sessions/{id}")
}

/// `PUT /v1/sessions/{id}` with `value` and no `Content-Type`.
pub fn put(id: &str, value: impl Into<Vec<u8>>) -> Request {
    Request::put(&session_path(id)).body(value)
}

/// `GET /v1/sessions/{id}`.
pub fn get(id: &str) -> Request {
    Request::get(&session_path(id))
}

/// `HEAD /v1/sessions/{id}`.
pub fn head(id: &str) -> Request {
    Request::head(&session_path(id))
}

/// `DELETE /v1/sessions/{id}`.
pub fn delete(id: &str) -> Request {
    Request::delete(&session_path(id))
}

/// An entry's accounted size: `len(id) + len(value) + len(content_type) + 64`.
pub fn accounted_size(id: &str, value_len: usize, content_type: &str) -> u64 {
    (id.len() + value_len + content_type.len()) as u64 + ENTRY_OVERHEAD_BYTES
}

/// FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The shard of `id` among `shards`: `fnv1a64(id) mod shards`.
pub fn shard_of(id: &str, shards: u64) -> usize {
    usize::try_from(fnv1a64(id.as_bytes()) % shards).expect("shard index fits usize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_accounted_size_adds_the_documented_overhead() {
        assert_eq!(accounted_size("abc", 10, "text/plain"), 3 + 10 + 10 + 64);
    }

    #[test]
    fn error_bodies_are_the_contract_json() {
        assert_eq!(
            CacheError::InvalidTtl.body(),
            r#"{"code":"invalid_ttl","message":"X-Session-TTL must be whole seconds from 1 to 604800"}"#
        );
    }
}
