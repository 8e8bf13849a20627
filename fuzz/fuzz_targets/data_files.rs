//! Fuzzes the data-file readers (IDX images and labels, CSV; gzip or not)
//! on the bytes of a file the user brings. Any input must give Ok or a
//! typed error, never a panic or an unbounded allocation.
#![no_main]
use cipherflow_nn::data::{load_csv, load_idx_images, load_idx_labels, CsvOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let gz = which & 0x80 != 0;
    let path = std::env::temp_dir().join(format!(
        "cipherflow-fuzz-{}.{}",
        std::process::id(),
        if gz { "gz" } else { "bin" }
    ));
    if std::fs::write(&path, rest).is_err() {
        return;
    }
    match which % 3 {
        0 => {
            let _ = load_idx_images(&path);
        }
        1 => {
            let _ = load_idx_labels(&path);
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
