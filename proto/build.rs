//! Compiles `proto/bottomline/v1/*.proto` with the pure-Rust `protox` compiler (no system
//! `protoc`) and writes a file-descriptor set for gRPC reflection.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/bottomline/v1/sync.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("bottomline_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // The node's HTTP API answers with the same messages as JSON (issue #17).
        .type_attribute(".bottomline.v1", "#[derive(serde::Serialize)]")
        .compile_fds(fds)?;
    Ok(())
}
