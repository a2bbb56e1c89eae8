//! Compiles the .proto files with protox (pure Rust, no protoc binary needed) and generates the
//! tonic client and server code. The encoded descriptor set is kept for gRPC server reflection.
//!
//! Feature `server` (the default) generates servers and transport clients; without it (feature
//! `client-wasm`) only transport-free clients are generated, which build for wasm32. Feature
//! `serde` derives serde on the flow-step messages (see [`FLOW_STEP_MESSAGES`]).

use std::path::PathBuf;

use prost::Message;

/// The messages of a `FlowStep`, which the gateway embeds in a page as JSON and the UI reads.
const FLOW_STEP_MESSAGES: &[&str] = &[
    "FlowStep",
    "Redirect",
    "ErrorPage",
    "ConnectorInfo",
    "ClientInfo",
    "ConnectorChooser",
    "PasswordForm",
    "ScopeInfo",
    "Approval",
    "OobCode",
    "DeviceSuccess",
    "DeviceEntry",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files =
        ["api/api.proto", "oxidex/v1/discovery.proto", "oxidex/v1/flow.proto", "oxidex/v1/token.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    let server = std::env::var_os("CARGO_FEATURE_SERVER").is_some();
    let mut builder =
        tonic_prost_build::configure().build_client(true).build_server(server).build_transport(server);
    if std::env::var_os("CARGO_FEATURE_SERDE").is_some() {
        for m in FLOW_STEP_MESSAGES {
            builder = builder.message_attribute(
                format!(".oxidex.v1.{m}"),
                "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
            );
        }
        builder = builder.enum_attribute(
            ".oxidex.v1.FlowStep.step",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"snake_case\")]",
        );
    }
    builder.compile_fds(fds)?;
    Ok(())
}
