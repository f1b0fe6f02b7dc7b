//! Generates the wire types from `proto/`, the contract shared with Go.
//! Needs `protoc` on PATH (Debian: protobuf-compiler) or in `PROTOC`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/parallax/ingest/v1/ingest.proto";
    println!("cargo:rerun-if-changed={proto}");
    prost_build::Config::new()
        // Sorted map entries: the deterministic encoding Go writes with
        // `proto.MarshalOptions{Deterministic: true}`.
        .btree_map(["."])
        // Payloads become slices of the request body: no copy on decode.
        .bytes(["."])
        .compile_protos(&[proto], &["../../proto"])?;
    Ok(())
}
