//! Wire types generated from `proto/parallax/ingest/v1/ingest.proto`.
#![allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]

include!(concat!(env!("OUT_DIR"), "/parallax.ingest.v1.rs"));
