//! Compiles the project's .proto files into a descriptor set, so the engine
//! can decode `application/x-protobuf` bodies field by field.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The messages, and the service that carries them over gRPC (so a
    // method's request and response types can be looked up by its name).
    let protos = [
        "../proto/parallax/ingest/v1/ingest.proto",
        "../proto/parallax/ingest/v1/ingest_service.proto",
        "../proto/parallax/fanout/v1/fanout.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["../proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    std::fs::write(out, descriptors.encode_to_vec())?;
    Ok(())
}
