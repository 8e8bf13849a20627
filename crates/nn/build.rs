//! Generates the ONNX message types with prost from `proto/onnx_subset.proto`,
//! parsed by protox (pure Rust, so no `protoc` is needed on the machine).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx_subset.proto");
    let fds = protox::compile(["proto/onnx_subset.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
