//! Errors of the neural-network crate.

use thiserror::Error;

/// Everything that can go wrong when building, training, loading or saving
/// a model. Untrusted inputs (files, specs, shapes) produce these, never a
/// panic.
#[derive(Debug, Error)]
pub enum NnError {
    /// A tensor did not have the shape a layer or file expected.
    #[error("shape mismatch in {context}: expected {expected:?}, got {got:?}")]
    Shape {
        /// Where the mismatch was found.
        context: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A layer or model configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// `backward` was called without a preceding training `forward`.
    #[error("{0}: backward called before forward")]
    NoForward(&'static str),
    /// A data file could not be parsed.
    #[error("bad data file {path}: {reason}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model file (safetensors or ONNX) is malformed or does not fit the
    /// model.
    #[error("bad model file: {0}")]
    ModelFile(String),
    /// An ONNX graph uses operators the importer does not support.
    #[error("unsupported ONNX nodes: {}", .0.join(", "))]
    UnsupportedOnnx(Vec<String>),
    /// Training diverged (a loss or gradient is NaN or infinite).
    #[error("training diverged: {0}")]
    NonFinite(String),
    /// Differential-privacy accounting failed.
    #[error(transparent)]
    Dp(#[from] cipherflow_dp::DpError),
    /// An I/O error, with the path involved.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error (in the message; not repeated as a source,
        /// so a report that prints the cause chain names it once).
        cause: std::io::Error,
    },
}

impl NnError {
    pub(crate) fn shape(context: impl Into<String>, expected: &[usize], got: &[usize]) -> Self {
        NnError::Shape {
            context: context.into(),
            expected: expected.to_vec(),
            got: got.to_vec(),
        }
    }

    pub(crate) fn io(path: &std::path::Path, cause: std::io::Error) -> Self {
        NnError::Io {
            path: path.display().to_string(),
            cause,
        }
    }
}
