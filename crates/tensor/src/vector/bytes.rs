//! Byte formats of vector contexts and vectors: versioned, strict
//! (trailing bytes, unknown flags and out-of-range lengths are refused),
//! every length checked against the input before anything is allocated,
//! every key parsed by its own validating decoder.
//!
//! * Context: `"CFVC"`, version, flags (bit 0: secret key, bit 1:
//!   relinearization key), release budget and releases made (u64 LE each),
//!   then length-prefixed (u64 LE) sections: parameters (their literal),
//!   public key, secret key (if flagged), relinearization key (if
//!   flagged), Galois keys.
//! * Vector: `"CFVV"`, version, value count (u32 LE), clean flag, then the
//!   ciphertext (whose own header names the parameter set). The proven
//!   noise bound does not travel: a receiver cannot check it.

use super::context::VectorContext;
use super::ops::CkksVector;
use crate::layout::replicated_chunk;
use crate::TensorError;
use cipherflow_ckks::{
    Ciphertext, CkksParams, GaloisKeys, ParamsLiteral, PublicKey, RelinKey, SecretKey,
};
use zeroize::Zeroizing;

const CONTEXT_MAGIC: &[u8; 4] = b"CFVC";
const VECTOR_MAGIC: &[u8; 4] = b"CFVV";
const VERSION: u8 = 1;
const FLAG_SECRET: u8 = 1;
const FLAG_RELIN: u8 = 2;

fn bad(m: &str) -> TensorError {
    TensorError::Invalid(format!("malformed bytes: {m}"))
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TensorError> {
        if n > self.data.len() {
            return Err(bad("truncated"));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TensorError> {
        self.take(1)?
            .first()
            .copied()
            .ok_or_else(|| bad("truncated"))
    }

    fn u32(&mut self) -> Result<u32, TensorError> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| bad("truncated"))?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, TensorError> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| bad("truncated"))?;
        Ok(u64::from_le_bytes(b))
    }

    fn section(&mut self) -> Result<&'a [u8], TensorError> {
        let len = usize::try_from(self.u64()?).map_err(|_| bad("section length"))?;
        self.take(len)
    }

    fn header(&mut self, magic: &[u8; 4]) -> Result<(), TensorError> {
        if self.take(4)? != magic {
            return Err(bad("wrong magic"));
        }
        match self.u8()? {
            VERSION => Ok(()),
            v => Err(bad(&format!("unsupported version {v}"))),
        }
    }
}

fn push_section(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
}

impl VectorContext {
    /// The context as bytes: with the secret key only when
    /// `include_secret_key` (then the bytes are as secret as the key and
    /// are zeroized when dropped).
    pub fn to_bytes(&self, include_secret_key: bool) -> Result<Zeroizing<Vec<u8>>, TensorError> {
        let secret = match (include_secret_key, &self.sk) {
            (true, Some(sk)) => Some(sk.to_bytes()),
            (true, None) => {
                return Err(TensorError::MissingKey(
                    "this public context has no secret key to include".into(),
                ))
            }
            (false, _) => None,
        };
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(CONTEXT_MAGIC);
        out.push(VERSION);
        let flags = if secret.is_some() { FLAG_SECRET } else { 0 }
            | if self.rlk.is_some() { FLAG_RELIN } else { 0 };
        out.push(flags);
        let (released, budget) = self.releases();
        out.extend_from_slice(&budget.to_le_bytes());
        out.extend_from_slice(&released.to_le_bytes());
        push_section(&mut out, &self.params.literal().to_bytes()?);
        push_section(&mut out, &self.pk.to_bytes());
        if let Some(sk) = &secret {
            push_section(&mut out, sk);
        }
        if let Some(rlk) = &self.rlk {
            push_section(&mut out, &rlk.to_bytes());
        }
        push_section(&mut out, &self.read_galois()?.to_bytes(&self.params));
        Ok(out)
    }

    /// Parses a context; parameters below 128-bit security are refused
    /// unless `allow_insecure`.
    pub fn from_bytes(data: &[u8], allow_insecure: bool) -> Result<Self, TensorError> {
        let mut c = Cursor { data };
        c.header(CONTEXT_MAGIC)?;
        let flags = c.u8()?;
        if flags & !(FLAG_SECRET | FLAG_RELIN) != 0 {
            return Err(bad("unknown flags"));
        }
        let budget = c.u64()?;
        let released = c.u64()?;
        if released > budget {
            return Err(bad("more releases than the budget"));
        }
        let params: CkksParams = ParamsLiteral::from_bytes(c.section()?)?.build(allow_insecure)?;
        let pk = PublicKey::from_bytes(&params, c.section()?)?;
        let sk = if flags & FLAG_SECRET != 0 {
            Some(SecretKey::from_bytes(&params, c.section()?)?)
        } else {
            None
        };
        let rlk = if flags & FLAG_RELIN != 0 {
            Some(RelinKey::from_bytes(&params, c.section()?)?)
        } else {
            None
        };
        let galois = GaloisKeys::from_bytes(&params, c.section()?)?;
        if !c.data.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Self::assemble(&params, pk, sk, rlk, galois, released, budget)
    }

    /// A vector as bytes (without its noise bound).
    pub fn vector_to_bytes(&self, v: &CkksVector) -> Result<Vec<u8>, TensorError> {
        let ct = v.ct.to_bytes(&self.params)?;
        let len = u32::try_from(v.len).map_err(|_| bad("length"))?;
        let mut out = Vec::with_capacity(ct.len() + 10);
        out.extend_from_slice(VECTOR_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&len.to_le_bytes());
        out.push(u8::from(v.clean));
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Parses a vector of this context's parameter set, at its level's
    /// canonical scale.
    pub fn vector_from_bytes(&self, data: &[u8]) -> Result<CkksVector, TensorError> {
        let mut c = Cursor { data };
        c.header(VECTOR_MAGIC)?;
        let len = usize::try_from(c.u32()?).map_err(|_| bad("length"))?;
        if len == 0 || len > self.slots() {
            return Err(bad(&format!("{len} values not in 1..={}", self.slots())));
        }
        let clean = match c.u8()? {
            0 => false,
            1 => true,
            _ => return Err(bad("clean flag")),
        };
        let ct = Ciphertext::from_bytes(&self.params, c.data)?;
        if ct.size() != 2 {
            return Err(bad("a vector's ciphertext has two components"));
        }
        if ct.scale() != self.scale_at(ct.level())? {
            return Err(bad("the scale is not its level's canonical scale"));
        }
        Ok(CkksVector::new(
            ct,
            len,
            replicated_chunk(len, self.slots()),
            clean,
            None,
        ))
    }
}
