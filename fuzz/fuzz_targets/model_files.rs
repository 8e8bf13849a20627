//! Fuzzes model files a user or a peer brings: ONNX protobuf (and export of
//! what imports), safetensors (architecture in the metadata, then weights),
//! `io::load` on either (with the preprocessing metadata), and JSON/TOML
//! model specifications. Any input must give Ok or a typed error, never a panic
//! or an unbounded allocation.
#![no_main]
use cipherflow_nn::io::{self, onnx, onnx_export, safetensors};
use cipherflow_nn::spec::ModelSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(m) = onnx::import_bytes(rest) {
                // What imports exports, and reads back.
                if let Ok(bytes) = onnx_export::export(&m, None) {
                    let _ = onnx::import_bytes(&bytes);
                }
            }
        }
        3 => {
            let path =
                std::env::temp_dir().join(format!("cipherflow-fuzz-{}.model", std::process::id()));
            if std::fs::write(&path, rest).is_ok() {
                let _ = io::load(&path);
            }
        }
        1 => {
            // load_model reads a file (size-checked before reading).
            let path = std::env::temp_dir()
                .join(format!("cipherflow-fuzz-{}.safetensors", std::process::id()));
            if std::fs::write(&path, rest).is_ok() {
                if let Ok(mut m) = safetensors::load_model(&path) {
                    let _ = safetensors::load_weights_bytes(&mut m, rest);
                }
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(spec) = ModelSpec::parse(text) {
                    let _ = spec.build(0);
                }
            }
        }
    }
});
