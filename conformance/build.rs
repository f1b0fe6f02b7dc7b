//! Generates the suite's own protobuf types from the shared contract, so the
//! suite never depends on an implementation's generated code.

fn main() {
    let proto = "../proto/parallax/ingest/v1/ingest.proto";
    println!("cargo:rerun-if-changed={proto}");
    prost_build::Config::new()
        // Sorted map keys make prost's encoding the contract's deterministic one.
        .btree_map(["."])
        .bytes(["."])
        .compile_protos(&[proto], &["../proto"])
        .expect("compile ingest.proto (needs protoc on PATH or $PROTOC)");
}
