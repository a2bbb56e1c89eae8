//! Compiles the .proto files with protox (pure Rust, no protoc binary needed) and generates the
//! tonic client and server code. The encoded descriptor set is kept for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files =
        ["api/api.proto", "oxidex/v1/discovery.proto", "oxidex/v1/flow.proto", "oxidex/v1/token.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
