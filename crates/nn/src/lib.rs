#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! * [`layers`]: Dense, Conv2d, average, max and global pooling, padding,
//!   Flatten, Reshape, LSTM and GRU, ReLU, LeakyReLU, Square, polynomial
//!   activations (HE-friendly), Sigmoid, Tanh, GELU, Softmax — each with
//!   forward, backward and per-example gradient norms;
//! * [`Sequential`] models whose parameter names and layouts match
//!   PyTorch's `nn.Sequential`, so weights move between the two through
//!   [`io::safetensors`]; [`io::onnx`] imports ONNX graphs of the same layers;
//! * [`loss`]: softmax cross-entropy, logistic loss, mean squared error;
//! * [`optim`]: SGD (momentum, weight decay), Adam, learning-rate schedules;
//! * [`SecureSgd`]: DP-SGD with Poisson sampling, per-example clipping from
//!   layer-wise norms (no per-example backward passes) and Gaussian noise,
//!   reporting each step to a [`cipherflow_dp::PrivacyAccountant`];
//! * [`data`]: the files a user brings (images, image folders, `.npy`,
//!   IDX, CSV tables), the shipped sets' loaders, splits, standardisation,
//!   IID and Dirichlet partitions for federated experiments;
//! * [`Preprocessing`]: a model's input normalization and class names,
//!   stored with it and applied by every command;
//! * [`examples`]: the shipped example data sets and models, embedded, and
//!   where MNIST is looked for at run time;
//! * [`spec`] and [`train`]: models and training runs described in TOML or
//!   JSON, and the training loop the CLI and the federated client use.
//!
//! Tensors are `f32`, batch first; images are NCHW as in PyTorch.

pub mod data;
mod error;
pub mod examples;
pub mod io;
pub mod layers;
pub mod loss;
pub mod optim;
mod preprocess;
mod secure_sgd;
mod sequential;
pub mod spec;
pub mod train;

pub use error::NnError;
pub use layers::{Layer, Param};
pub use preprocess::{Calibration, Preprocessing, PREPROCESSING_KEY};
pub use secure_sgd::{DpConfig, SecureSgd, StepReport};
pub use sequential::Sequential;

/// The tensor type of this crate: `f32`, batch first.
pub type Tensor = ndarray::ArrayD<f32>;
