//! Generates the wire types from `proto/`, the contract shared with Go, and
//! the encoded descriptor set of the gRPC service that server reflection
//! serves (`OUT_DIR/descriptors.bin`). protox compiles the .proto in Rust,
//! so building needs no `protoc`.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/parallax/ingest/v1/ingest.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../../proto"])?;
    prost_build::Config::new()
        // Sorted map entries: the deterministic encoding Go writes with
        // `proto.MarshalOptions{Deterministic: true}`.
        .btree_map(["."])
        // Payloads become slices of the request body: no copy on decode.
        .bytes(["."])
        .compile_fds(descriptors)?;

    let service = "../../proto/parallax/ingest/v1/ingest_service.proto";
    println!("cargo:rerun-if-changed={service}");
    let mut reflection = protox::compile([service], ["../../proto"])?;
    // Without comments and source positions, as protoc-gen-go embeds them
    // in the Go twin: both twins' reflection answers alike.
    for file in &mut reflection.file {
        file.source_code_info = None;
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    std::fs::write(out, reflection.encode_to_vec())?;
    Ok(())
}
