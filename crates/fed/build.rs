//! Generates the protocol's message types and gRPC services with
//! tonic-prost-build from `proto/fed.proto`, parsed by protox (pure Rust,
//! so no `protoc` is needed on the machine).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/fed.proto");
    let fds = protox::compile(["proto/fed.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
