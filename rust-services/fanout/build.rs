//! Compiles `proto/parallax/fanout/v1/fanout.proto` into the encoded
//! descriptor set that server reflection serves (`OUT_DIR/descriptors.bin`).
//! protox compiles the .proto in Rust, so building needs no `protoc`.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/parallax/fanout/v1/fanout.proto";
    println!("cargo:rerun-if-changed={proto}");
    let mut descriptors = protox::compile([proto], ["../../proto"])?;
    // Without comments and source positions, as protoc-gen-go embeds them
    // in the Go twin: both twins' reflection answers alike.
    for file in &mut descriptors.file {
        file.source_code_info = None;
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("descriptors.bin");
    std::fs::write(out, descriptors.encode_to_vec())?;
    Ok(())
}
