//! The package's exceptions: one base, `CipherflowError`, and a subclass
//! per kind of Rust error, each carrying the Rust error's message.

use cipherflow_ckks::CkksError as RustCkksError;
use cipherflow_tensor::TensorError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    CipherflowError,
    PyException,
    "Base of every cipherflow error."
);
create_exception!(
    _native,
    DpError,
    CipherflowError,
    "A differential-privacy argument or computation was refused."
);
create_exception!(
    _native,
    LedgerError,
    CipherflowError,
    "An audit-log key or proof that does not parse."
);
create_exception!(
    _native,
    ProofError,
    LedgerError,
    "A proof that parses but does not verify."
);
create_exception!(
    _native,
    CkksError,
    CipherflowError,
    "A homomorphic-encryption operation was refused."
);
create_exception!(
    _native,
    ParameterError,
    CkksError,
    "Parameters that are insecure, malformed or too small for the computation."
);
create_exception!(
    _native,
    ShapeError,
    CkksError,
    "Operands of incompatible lengths or shapes."
);
create_exception!(
    _native,
    LevelError,
    CkksError,
    "No multiplicative level left (choose parameters for a larger depth)."
);
create_exception!(
    _native,
    MissingKeyError,
    CkksError,
    "A key the operation needs is not in this context (the secret key, or Galois keys)."
);
create_exception!(
    _native,
    ReleaseError,
    CkksError,
    "A flooded release was refused (budget spent, or no noise bound)."
);
create_exception!(
    _native,
    FormatError,
    CkksError,
    "Bytes that do not parse as a key, context or vector of this parameter set."
);

create_exception!(
    _native,
    ModelError,
    CipherflowError,
    "A model that cannot be imported or run under encryption (the layer is named)."
);
create_exception!(
    _native,
    PlatformError,
    CipherflowError,
    "The platform refused a request or could not be reached (the reason is in the message)."
);
create_exception!(
    _native,
    MpcError,
    CipherflowError,
    "A secret-shared computation failed (a party, the network, or its configuration)."
);
create_exception!(
    _native,
    ProgramError,
    MpcError,
    "A program or input the parties refuse (shapes, owners, or a party running another program)."
);

create_exception!(
    _native,
    AggregationError,
    CipherflowError,
    "Secure aggregation refused a message or a step (a weak spec, a replayed round, a malformed upload)."
);
create_exception!(
    _native,
    DecryptionCheckError,
    AggregationError,
    "A decrypted sum failed its checks: a key holder's decryption share was altered."
);

/// The exception of a federated-layer error.
pub fn fed_err(e: cipherflow_fed::FedError) -> PyErr {
    let m = e.to_string();
    match e {
        cipherflow_fed::FedError::Verification(_) => DecryptionCheckError::new_err(m),
        cipherflow_fed::FedError::Ckks(c) => ckks_err(c),
        _ => AggregationError::new_err(m),
    }
}

/// The exception of a CKKS error.
pub fn ckks_err(e: RustCkksError) -> PyErr {
    let m = e.to_string();
    match e {
        RustCkksError::InsecureParameters { .. } | RustCkksError::InvalidParameters(_) => {
            ParameterError::new_err(m)
        }
        RustCkksError::NoLevelLeft(_)
        | RustCkksError::LevelMismatch(..)
        | RustCkksError::InvalidLevel(_) => LevelError::new_err(m),
        RustCkksError::MissingGaloisKey(_) => MissingKeyError::new_err(m),
        RustCkksError::Flooding(_) => ReleaseError::new_err(m),
        RustCkksError::Decode(_) | RustCkksError::ParamsMismatch => FormatError::new_err(m),
        RustCkksError::TooManyValues { .. } => ShapeError::new_err(m),
        _ => CkksError::new_err(m),
    }
}

/// The exception of a tensor error.
pub fn tensor_err(e: TensorError) -> PyErr {
    let m = e.to_string();
    match e {
        TensorError::Ckks(c) => ckks_err(c),
        TensorError::Shape(_) => ShapeError::new_err(m),
        TensorError::MissingKey(_) => MissingKeyError::new_err(m),
        TensorError::DoesNotFit(_) => ParameterError::new_err(m),
        TensorError::Invalid(ref s) if s.starts_with("malformed bytes") => FormatError::new_err(m),
        TensorError::Invalid(ref s) if s.contains("noise_bound_log2") => ReleaseError::new_err(m),
        _ => CkksError::new_err(m),
    }
}

/// Adds every exception to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CipherflowError", py.get_type::<CipherflowError>())?;
    m.add("DpError", py.get_type::<DpError>())?;
    m.add("LedgerError", py.get_type::<LedgerError>())?;
    m.add("ProofError", py.get_type::<ProofError>())?;
    m.add("CkksError", py.get_type::<CkksError>())?;
    m.add("ParameterError", py.get_type::<ParameterError>())?;
    m.add("ShapeError", py.get_type::<ShapeError>())?;
    m.add("LevelError", py.get_type::<LevelError>())?;
    m.add("MissingKeyError", py.get_type::<MissingKeyError>())?;
    m.add("ReleaseError", py.get_type::<ReleaseError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("PlatformError", py.get_type::<PlatformError>())?;
    m.add("MpcError", py.get_type::<MpcError>())?;
    m.add("ProgramError", py.get_type::<ProgramError>())?;
    m.add("AggregationError", py.get_type::<AggregationError>())?;
    m.add(
        "DecryptionCheckError",
        py.get_type::<DecryptionCheckError>(),
    )?;
    Ok(())
}
