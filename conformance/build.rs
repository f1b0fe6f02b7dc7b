//! Generates the suite's own protobuf types from the shared contract, so the
//! suite never depends on an implementation's generated code. protox compiles
//! the .proto in Rust: no `protoc` needed.

fn main() {
    let proto = "../proto/parallax/ingest/v1/ingest.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../proto"]).expect("ingest.proto compiles");
    prost_build::Config::new()
        // Sorted map keys make prost's encoding the contract's deterministic one.
        .btree_map(["."])
        .bytes(["."])
        .compile_fds(descriptors)
        .expect("generate Rust types from ingest.proto");
}
