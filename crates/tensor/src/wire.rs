//! The bytes that travel between a client and a server of an encrypted
//! model: an encrypted tensor ([`EncTensor::to_bytes`]) and the client's
//! evaluation keys ([`EvalKeys`]). Versioned, strictly parsed: every
//! length is bounded before anything is allocated, every ciphertext and
//! key is checked against the model's parameters (`cipherflow-ckks`'s own
//! decoders), trailing bytes are refused, and the keys must be exactly the
//! ones the model's spec asks for.

use crate::client::{InputSpec, KeySet};
use crate::layout::{EncTensor, Layout};
use crate::TensorError;
use cipherflow_ckks::{
    rotation_galois_element, Ciphertext, CkksParams, GaloisKeys, PublicKey, RelinKey,
};

const TENSOR_MAGIC: &[u8; 4] = b"CFET";
const KEYS_MAGIC: &[u8; 4] = b"CFEK";
const VERSION: u8 = 1;
/// Most ciphertexts one encrypted tensor may hold.
pub const MAX_TENSOR_CIPHERTEXTS: usize = 1 << 16;
/// Largest single ciphertext or key accepted (bytes).
pub const MAX_PART_BYTES: usize = 1 << 29;
/// Most dimensions of a tensor's shape.
const MAX_DIMS: usize = 8;

fn bad(m: impl Into<String>) -> TensorError {
    TensorError::Invalid(format!("malformed bytes: {}", m.into()))
}

/// A cursor over untrusted bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TensorError> {
        if n > self.0.len() {
            return Err(bad(format!("{what} cut short")));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, TensorError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }

    fn u32(&mut self, what: &str) -> Result<usize, TensorError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a) as usize)
    }

    /// A length-prefixed part of at most [`MAX_PART_BYTES`].
    fn part(&mut self, what: &str) -> Result<&'a [u8], TensorError> {
        let n = self.u32(what)?;
        if n > MAX_PART_BYTES {
            return Err(bad(format!(
                "{what} of {n} bytes (at most {MAX_PART_BYTES})"
            )));
        }
        self.take(n, what)
    }

    fn header(&mut self, magic: &[u8; 4], what: &str) -> Result<(), TensorError> {
        if self.take(4, what)? != magic {
            return Err(bad(format!("not {what}")));
        }
        match self.u8(what)? {
            VERSION => Ok(()),
            v => Err(bad(format!(
                "{what} version {v}, this build reads {VERSION}"
            ))),
        }
    }

    fn end(&self, what: &str) -> Result<(), TensorError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("{} bytes after {what}", self.0.len())))
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: usize) -> Result<(), TensorError> {
    let v = u32::try_from(v).map_err(|_| bad(format!("{v} does not fit 32 bits")))?;
    out.extend_from_slice(&v.to_le_bytes());
    Ok(())
}

fn put_part(out: &mut Vec<u8>, b: &[u8]) -> Result<(), TensorError> {
    put_u32(out, b.len())?;
    out.extend_from_slice(b);
    Ok(())
}

impl EncTensor {
    /// The tensor as bytes: layout, shape, then each ciphertext.
    pub fn to_bytes(&self, params: &CkksParams) -> Result<Vec<u8>, TensorError> {
        let mut out = TENSOR_MAGIC.to_vec();
        out.push(VERSION);
        let (tag, arg) = match self.layout {
            Layout::Replicated { chunk } => (0u8, chunk),
            Layout::Batched { batch } => (1u8, batch),
        };
        out.push(tag);
        put_u32(&mut out, arg)?;
        out.push(u8::try_from(self.shape.len()).map_err(|_| bad("too many dimensions"))?);
        for &d in &self.shape {
            put_u32(&mut out, d)?;
        }
        put_u32(&mut out, self.cts.len())?;
        for ct in &self.cts {
            put_part(&mut out, &ct.to_bytes(params)?)?;
        }
        Ok(out)
    }

    /// Parses [`EncTensor::to_bytes`] for `params`, refusing anything
    /// malformed, oversized or inconsistent with its layout.
    pub fn from_bytes(params: &CkksParams, bytes: &[u8]) -> Result<Self, TensorError> {
        let mut r = Reader(bytes);
        r.header(TENSOR_MAGIC, "an encrypted tensor")?;
        let layout = match (r.u8("layout")?, r.u32("layout")?) {
            (0, chunk) => Layout::Replicated { chunk },
            (1, batch) => Layout::Batched { batch },
            (t, _) => return Err(bad(format!("layout {t}"))),
        };
        let dims = usize::from(r.u8("shape")?);
        if dims == 0 || dims > MAX_DIMS {
            return Err(bad(format!("{dims} dimensions (1 to {MAX_DIMS})")));
        }
        let shape = (0..dims)
            .map(|_| r.u32("shape"))
            .collect::<Result<Vec<_>, _>>()?;
        let len = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("shape overflows"))?;
        let count = r.u32("ciphertext count")?;
        if count == 0
            || count > MAX_TENSOR_CIPHERTEXTS
            || len > MAX_TENSOR_CIPHERTEXTS * params.slots()
        {
            return Err(bad(format!(
                "{count} ciphertexts for {len} values (at most {MAX_TENSOR_CIPHERTEXTS})"
            )));
        }
        let mut cts = Vec::with_capacity(count);
        for _ in 0..count {
            cts.push(Ciphertext::from_bytes(params, r.part("a ciphertext")?)?);
        }
        r.end("the tensor")?;
        Self::from_parts(cts, shape, layout, params.slots())
    }
}

/// What a server needs of a client's keys: the public key (to
/// re-randomize outputs), the relinearization key and exactly the Galois
/// keys of the model's rotations.
#[derive(Debug)]
pub struct EvalKeys {
    /// Public key.
    pub pk: PublicKey,
    /// Relinearization key.
    pub rlk: RelinKey,
    /// Galois keys.
    pub gk: GaloisKeys,
}

impl KeySet {
    /// The keys a server needs, as bytes (no secret key).
    pub fn eval_key_bytes(&self) -> Result<Vec<u8>, TensorError> {
        let params = self.params();
        let mut out = KEYS_MAGIC.to_vec();
        out.push(VERSION);
        put_part(&mut out, &self.pk.to_bytes())?;
        put_part(&mut out, &self.rlk.to_bytes())?;
        put_part(&mut out, &self.gk.to_bytes(params))?;
        Ok(out)
    }
}

impl EvalKeys {
    /// Parses [`KeySet::eval_key_bytes`] for the model `spec` describes
    /// (built as `params`): every key checked, the Galois keys exactly
    /// those of the spec's rotations.
    pub fn from_bytes(
        params: &CkksParams,
        spec: &InputSpec,
        bytes: &[u8],
    ) -> Result<Self, TensorError> {
        let mut r = Reader(bytes);
        r.header(KEYS_MAGIC, "evaluation keys")?;
        let pk = PublicKey::from_bytes(params, r.part("the public key")?)?;
        let rlk = RelinKey::from_bytes(params, r.part("the relinearization key")?)?;
        let gk = GaloisKeys::from_bytes(params, r.part("the Galois keys")?)?;
        r.end("the keys")?;
        let mut want: Vec<u64> = spec
            .rotations
            .iter()
            .map(|&s| rotation_galois_element(params, s))
            .filter(|&g| g != 1)
            .collect();
        want.sort_unstable();
        want.dedup();
        let have: Vec<u64> = gk.elements().collect();
        if have != want {
            return Err(TensorError::Invalid(format!(
                "the Galois keys cover {} rotations, the model uses exactly {}",
                have.len(),
                want.len()
            )));
        }
        Ok(Self { pk, rlk, gk })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::{EncryptedModel, Mode, Plan};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn setup(mode: Mode) -> (EncryptedModel, KeySet, EncTensor) {
        let text = r#"{"input":[6],"layers":[{"type":"dense","units":3}]}"#;
        let model = cipherflow_nn::spec::ModelSpec::parse(text)
            .unwrap()
            .build(1)
            .unwrap();
        let s = EncryptedModel::new(&Plan::compile(&model).unwrap(), mode).unwrap();
        let client = s.client().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let keys = KeySet::generate(&client, &mut rng).unwrap();
        let x = client
            .encrypt(
                &keys.sk,
                &[vec![0.5; 6], vec![0.25; 6]][..mode_batch(mode)],
                &mut rng,
            )
            .unwrap();
        (s, keys, x)
    }

    fn mode_batch(mode: Mode) -> usize {
        if mode == Mode::Latency {
            1
        } else {
            2
        }
    }

    #[test]
    fn tensors_and_keys_round_trip() {
        for mode in [Mode::Latency, Mode::Throughput] {
            let (s, keys, x) = setup(mode);
            let params = s.plan().params();
            let b = x.to_bytes(params).unwrap();
            let back = EncTensor::from_bytes(params, &b).unwrap();
            assert_eq!(back.to_bytes(params).unwrap(), b);
            assert_eq!(back.layout(), x.layout());
            let kb = keys.eval_key_bytes().unwrap();
            let ek = EvalKeys::from_bytes(params, &s.input_spec(), &kb).unwrap();
            let out = s.run(&ek.rlk, &ek.gk, &back).unwrap();
            assert_eq!(
                out.decrypt(&keys.decryptor()).unwrap().len(),
                mode_batch(mode)
            );
        }
    }

    /// A tensor header with `dims`, `count` ciphertexts declared and
    /// `tail` after it.
    fn header(dims: &[u32], count: u32, tail: &[u8]) -> Vec<u8> {
        let mut b = TENSOR_MAGIC.to_vec();
        b.push(VERSION);
        b.push(1);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(dims.len() as u8);
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(tail);
        b
    }

    fn refusal(params: &CkksParams, b: &[u8]) -> String {
        EncTensor::from_bytes(params, b).unwrap_err().to_string()
    }

    #[test]
    fn each_bound_is_checked_at_its_edge() {
        let (s, _, _) = setup(Mode::Throughput);
        let params = s.plan().params();
        let slots = params.slots() as u32;
        let max = MAX_TENSOR_CIPHERTEXTS as u32;
        // Dimensions: none, or more than 8, refused as such; 8 pass.
        assert!(refusal(params, &header(&[], 1, &[])).contains("0 dimensions"));
        assert!(refusal(params, &header(&[1; 9], 1, &[])).contains("9 dimensions"));
        assert!(!refusal(params, &header(&[1; 8], 1, &[])).contains("dimensions"));
        // Ciphertext count: 0 and MAX + 1 refused before reading; MAX
        // passes the bound (and is then cut short).
        assert!(refusal(params, &header(&[1], 0, &[])).contains("at most"));
        assert!(refusal(params, &header(&[1], max + 1, &[])).contains("at most"));
        assert!(refusal(params, &header(&[1], max, &[])).contains("cut short"));
        // Values: MAX·slots pass the bound, one more does not.
        let edge = refusal(params, &header(&[max, slots], 1, &[]));
        assert!(!edge.contains("values (at most"), "{edge}");
        let over = refusal(params, &header(&[max, slots, 1, 2], 1, &[]));
        assert!(over.contains("values (at most"), "{over}");
        // A part's length: over the bound refused as such, at the bound
        // read (and cut short).
        let part = |n: u32| refusal(params, &header(&[1], 1, &n.to_le_bytes()));
        assert!(part(MAX_PART_BYTES as u32 + 1).contains("at most"));
        assert!(part(MAX_PART_BYTES as u32).contains("cut short"));
    }

    #[test]
    fn hostile_bytes_are_refused_with_a_reason() {
        let (s, keys, x) = setup(Mode::Latency);
        let params = s.plan().params();
        let b = x.to_bytes(params).unwrap();
        // Every truncation, a trailing byte, a flipped magic, version,
        // layout, huge counts and dimensions.
        for n in 0..b.len() {
            assert!(
                EncTensor::from_bytes(params, &b[..n]).is_err(),
                "cut at {n}"
            );
        }
        let mut longer = b.clone();
        longer.push(0);
        let e = EncTensor::from_bytes(params, &longer).unwrap_err();
        assert!(e.to_string().contains("after the tensor"), "{e}");
        for (at, v) in [(0, b'X'), (4, 9), (5, 7), (10, 200)] {
            let mut m = b.clone();
            m[at] = v;
            assert!(
                EncTensor::from_bytes(params, &m).is_err(),
                "byte {at} = {v}"
            );
        }
        let mut huge = b.clone();
        let count_at = 4 + 1 + 1 + 4 + 1 + 4;
        huge[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = EncTensor::from_bytes(params, &huge).unwrap_err();
        assert!(e.to_string().contains("ciphertexts"), "{e}");
        // Keys: truncated, or for another model's rotations.
        let kb = keys.eval_key_bytes().unwrap();
        let spec = s.input_spec();
        for n in [0, 5, kb.len() / 2, kb.len() - 1] {
            assert!(EvalKeys::from_bytes(params, &spec, &kb[..n]).is_err());
        }
        let mut other = spec.clone();
        other
            .rotations
            .push(other.rotations.last().copied().unwrap_or(0) + 1);
        let e = EvalKeys::from_bytes(params, &other, &kb).unwrap_err();
        assert!(e.to_string().contains("Galois keys cover"), "{e}");
    }
}
