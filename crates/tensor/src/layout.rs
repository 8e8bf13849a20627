//! Encrypted tensors: ciphertexts plus the logical shape and the packing
//! layout, and the client-side packing, encryption and decryption.
//!
//! Two layouts:
//! * [`Layout::Replicated`] (latency mode, one input per ciphertext): the
//!   flattened tensor, zero-padded to a power-of-two `chunk ≤ slots`, is
//!   repeated across all slots, so that slot rotations wrap around the
//!   vector correctly (what the diagonal method needs). Tensors longer than
//!   the slot count are split into `slots`-sized chunks, one ciphertext each.
//! * [`Layout::Batched`] (throughput mode, CryptoNets-style): one
//!   ciphertext per tensor element, slot `k` holding example `k`: no
//!   rotations at all, up to `slots` examples per pass.

use crate::TensorError;
use cipherflow_ckks::{Ciphertext, CkksParams, Decryptor, Encoder, Encryptor};
use rand_core::{CryptoRng, RngCore};

/// How a tensor is laid out in ciphertext slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Latency mode: padded to `chunk` (a power of two dividing the slot
    /// count) and replicated; longer tensors split in `slots`-sized chunks.
    Replicated {
        /// Period of the replication (power of two, ≤ slots).
        chunk: usize,
    },
    /// Throughput mode: one ciphertext per element, slot `k` = example `k`.
    Batched {
        /// Number of examples (≤ slots).
        batch: usize,
    },
}

/// The chunk (replication period) of a vector of `len` entries in `slots` slots.
pub fn replicated_chunk(len: usize, slots: usize) -> usize {
    len.max(1).next_power_of_two().min(slots)
}

/// Slot vectors of the replicated packing of `values`.
pub fn pack_replicated(values: &[f64], slots: usize) -> Vec<Vec<f64>> {
    let chunk = replicated_chunk(values.len(), slots);
    let blocks = values.len().div_ceil(chunk).max(1);
    (0..blocks)
        .map(|b| {
            (0..slots)
                .map(|t| values.get(b * chunk + t % chunk).copied().unwrap_or(0.0))
                .collect()
        })
        .collect()
}

/// An encrypted tensor.
#[derive(Clone, Debug)]
pub struct EncTensor {
    pub(crate) cts: Vec<Ciphertext>,
    pub(crate) shape: Vec<usize>,
    pub(crate) layout: Layout,
}

impl EncTensor {
    /// Assembles a tensor from ciphertexts (checked against the layout).
    pub fn from_parts(
        cts: Vec<Ciphertext>,
        shape: Vec<usize>,
        layout: Layout,
        slots: usize,
    ) -> Result<Self, TensorError> {
        let len: usize = shape.iter().product();
        let want = match layout {
            Layout::Replicated { chunk } => {
                if !chunk.is_power_of_two() || chunk > slots || (len > slots && chunk != slots) {
                    return Err(TensorError::Shape(format!("invalid chunk {chunk}")));
                }
                len.div_ceil(chunk).max(1)
            }
            Layout::Batched { batch } => {
                if batch == 0 || batch > slots {
                    return Err(TensorError::Shape(format!(
                        "batch {batch} not in 1..={slots}"
                    )));
                }
                len
            }
        };
        if len == 0 || cts.len() != want {
            return Err(TensorError::Shape(format!(
                "{} ciphertexts for shape {shape:?} in {layout:?} (want {want})",
                cts.len()
            )));
        }
        Ok(Self { cts, shape, layout })
    }

    /// Encrypts one tensor (latency mode) at `level` and `scale`.
    #[allow(clippy::too_many_arguments)]
    pub fn encrypt<R: RngCore + CryptoRng>(
        encryptor: &Encryptor,
        encoder: &Encoder,
        values: &[f64],
        shape: &[usize],
        level: usize,
        scale: f64,
        rng: &mut R,
    ) -> Result<Self, TensorError> {
        let len: usize = shape.iter().product();
        if len != values.len() || len == 0 {
            return Err(TensorError::Shape(format!(
                "{} values for shape {shape:?}",
                values.len()
            )));
        }
        let slots = encoder.slots();
        let cts = pack_replicated(values, slots)
            .iter()
            .map(|v| encryptor.encrypt(&encoder.encode(v, level, scale)?, rng))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_parts(
            cts,
            shape.to_vec(),
            Layout::Replicated {
                chunk: replicated_chunk(len, slots),
            },
            slots,
        )
    }

    /// Encrypts up to `slots` examples of the same shape (throughput mode):
    /// ciphertext `e` holds element `e` of every example.
    #[allow(clippy::too_many_arguments)]
    pub fn encrypt_batch<R: RngCore + CryptoRng>(
        encryptor: &Encryptor,
        encoder: &Encoder,
        examples: &[Vec<f64>],
        shape: &[usize],
        level: usize,
        scale: f64,
        rng: &mut R,
    ) -> Result<Self, TensorError> {
        let len: usize = shape.iter().product();
        let slots = encoder.slots();
        if examples.is_empty() || examples.len() > slots {
            return Err(TensorError::Shape(format!(
                "{} examples for {slots} slots",
                examples.len()
            )));
        }
        if examples.iter().any(|e| e.len() != len) {
            return Err(TensorError::Shape(format!(
                "an example is not of shape {shape:?}"
            )));
        }
        let cts = (0..len)
            .map(|e| {
                let col: Vec<f64> = examples
                    .iter()
                    .map(|x| x.get(e).copied().unwrap_or(0.0))
                    .collect();
                encryptor
                    .encrypt(&encoder.encode(&col, level, scale)?, rng)
                    .map_err(TensorError::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_parts(
            cts,
            shape.to_vec(),
            Layout::Batched {
                batch: examples.len(),
            },
            slots,
        )
    }

    /// Decrypts: one vector per example (one in latency mode).
    pub fn decrypt(&self, dec: &Decryptor) -> Result<Vec<Vec<f64>>, TensorError> {
        let len = self.len();
        match self.layout {
            Layout::Replicated { chunk } => {
                let mut out = Vec::with_capacity(len);
                for ct in &self.cts {
                    let v = dec.decrypt_values(ct)?;
                    out.extend(v.iter().take(chunk));
                }
                out.truncate(len);
                Ok(vec![out])
            }
            Layout::Batched { batch } => {
                let cols = self
                    .cts
                    .iter()
                    .map(|ct| dec.decrypt_values(ct))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((0..batch)
                    .map(|k| {
                        cols.iter()
                            .map(|c| c.get(k).copied().unwrap_or(0.0))
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// The ciphertexts.
    pub fn ciphertexts(&self) -> &[Ciphertext] {
        &self.cts
    }

    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of logical entries.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no entries (never, for a valid tensor).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The packing layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Level of the ciphertexts.
    pub fn level(&self) -> usize {
        self.cts.first().map_or(0, Ciphertext::level)
    }

    /// Scale of the ciphertexts.
    pub fn scale(&self) -> f64 {
        self.cts.first().map_or(1.0, Ciphertext::scale)
    }

    /// Size in bytes of the serialized ciphertexts (what travels).
    pub fn byte_size(&self, params: &CkksParams) -> Result<usize, TensorError> {
        let mut n = 0;
        for ct in &self.cts {
            n += ct.to_bytes(params)?.len();
        }
        Ok(n)
    }

    /// The same tensor with another logical shape of the same size (flatten).
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self, TensorError> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(TensorError::Shape(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }
}
