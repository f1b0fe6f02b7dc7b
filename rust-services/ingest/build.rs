//! Generates the wire types from `proto/`, the contract shared with Go.
//! protox compiles the .proto in Rust, so building needs no `protoc`.

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
    Ok(())
}
