//! Fuzzes the data-file readers on the bytes of a file the user brings:
//! the shipped sets' IDX and CSV loaders, and `load_inputs` /
//! `stream_inputs` (PNG, JPEG, `.npy`, IDX, CSV tables with a header; gzip
//! or not). Any input must give Ok or a typed error, never a panic or an
//! unbounded allocation.
#![no_main]
use cipherflow_nn::data::{
    load_csv, load_idx_images, load_idx_labels, load_inputs, stream_inputs, CsvOptions,
    InputOptions,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let gz = which & 0x80 != 0;
    let ext = match (which % 6, gz) {
        (_, true) => "gz",
        (5, _) => "csv",
        _ => "bin",
    };
    let path = std::env::temp_dir().join(format!("cipherflow-fuzz-{}.{ext}", std::process::id()));
    if std::fs::write(&path, rest).is_err() {
        return;
    }
    let opts = InputOptions {
        shape: (which & 0x40 != 0).then(|| vec![1, 8, 8]),
        label_column: Some("label".into()),
        id_column: None,
        labels: None,
    };
    match which % 6 {
        0 => {
            let _ = load_idx_images(&path);
        }
        1 => {
            let _ = load_idx_labels(&path);
        }
        3 | 5 => {
            let _ = load_inputs(&path, &opts);
        }
        4 => {
            if let Ok(s) = stream_inputs(&path, &opts, 3) {
                for chunk in s.take(64) {
                    if chunk.is_err() {
                        break;
                    }
                }
            }
        }
        _ => {
            let _ = load_csv(
                &path,
                &CsvOptions {
                    skip_lines: 1,
                    num_classes: None,
                },
            );
        }
    }
});
