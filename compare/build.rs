//! Compiles the project's .proto files into a descriptor set, so the engine
//! can decode `application/x-protobuf` bodies field by field.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto/parallax/ingest/v1/ingest.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    std::fs::write(out, descriptors.encode_to_vec())?;
    Ok(())
}
