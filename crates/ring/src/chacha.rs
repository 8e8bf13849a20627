//! ChaCha20 for expanding public seeds in WebAssembly: four blocks at a
//! time, one block per lane of 128-bit SIMD vectors, with exactly the
//! keystream of `rand_chacha`'s `ChaCha20Rng` (64-bit block counter in words
//! 12–13, 64-bit stream in words 14–15, four blocks per buffer).
//!
//! Why not `rand_chacha` there: its vector backend (`ppv-lite86`) has no
//! WebAssembly SIMD path, and its portable one was a third of the browser's
//! key generation in the profile. Natively `rand_chacha` (SSE2, AVX2) stays
//! in use; the algorithm here is written once over a 4-lane type, compiled
//! natively with plain arrays so that its tests compare it with
//! `rand_chacha` word for word, and in WebAssembly with `v128`, which
//! [`self_test`] compares with the array form at run time before any use
//! (through [`crate::simd_self_test`]).
//!
//! In WebAssembly it is also the secret generator of
//! [`crate::sampler::secure_rng`] (keys, noise): the generator's key and
//! buffered keystream (its fields) are zeroized when dropped. Copies the
//! block function leaves in registers and its stack frame are not (nor
//! does `rand_chacha` zeroize anything).
//!
//! SIMD128 is enabled for the block function only, but a WebAssembly
//! module is validated whole: the module needs a browser with SIMD128
//! (Chrome and Edge 91, Firefox 89, Safari 16.4 and later); others cannot
//! load it, and the page says so.

use rand_core::block::{BlockRng, BlockRngCore, CryptoBlockRng};
use rand_core::SeedableRng;
use zeroize::Zeroize;

/// Four 32-bit lanes: the operations a ChaCha quarter-round needs.
trait Lanes: Copy {
    fn from_words(w: [u32; 4]) -> Self;
    fn to_words(self) -> [u32; 4];
    fn splat(x: u32) -> Self {
        Self::from_words([x; 4])
    }
    fn add(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn rotl<const R: u32>(self) -> Self;
    /// Stores four vectors `rows` (words `col .. col + 4` of four blocks,
    /// block `j` in lane `j`) as block `j`'s words: `out[16·j + col + r]`
    /// is lane `j` of `rows[r]`. `col` is 0, 4, 8 or 12.
    #[inline(always)]
    fn store_transposed(rows: [Self; 4], col: usize, out: &mut [u32; 64]) {
        for (r, v) in rows.into_iter().enumerate() {
            for (j, w) in v.to_words().into_iter().enumerate() {
                if let Some(o) = out.get_mut(16 * j + col + r) {
                    *o = w;
                }
            }
        }
    }
}

/// The portable lanes: plain arrays (native builds and the reference).
#[derive(Clone, Copy)]
struct Words([u32; 4]);

impl Lanes for Words {
    #[inline(always)]
    fn from_words(w: [u32; 4]) -> Self {
        Self(w)
    }
    #[inline(always)]
    fn to_words(self) -> [u32; 4] {
        self.0
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        let [a, b, c, d] = self.0;
        let [e, f, g, h] = o.0;
        Self([
            a.wrapping_add(e),
            b.wrapping_add(f),
            c.wrapping_add(g),
            d.wrapping_add(h),
        ])
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        let [a, b, c, d] = self.0;
        let [e, f, g, h] = o.0;
        Self([a ^ e, b ^ f, c ^ g, d ^ h])
    }
    #[inline(always)]
    fn rotl<const R: u32>(self) -> Self {
        Self(self.0.map(|x| x.rotate_left(R)))
    }
}

#[cfg(target_arch = "wasm32")]
mod simd {
    use super::Lanes;
    use core::arch::wasm32::{
        i32x4_shuffle, i8x16_shuffle, u32x4, u32x4_add, u32x4_extract_lane, u32x4_shl, u32x4_shr,
        u64x2_extract_lane, v128, v128_or, v128_xor,
    };

    /// WebAssembly SIMD128 lanes.
    #[derive(Clone, Copy)]
    pub(super) struct Simd(v128);

    impl Lanes for Simd {
        #[inline(always)]
        fn from_words(w: [u32; 4]) -> Self {
            let [a, b, c, d] = w;
            Self(u32x4(a, b, c, d))
        }
        #[inline(always)]
        fn to_words(self) -> [u32; 4] {
            [
                u32x4_extract_lane::<0>(self.0),
                u32x4_extract_lane::<1>(self.0),
                u32x4_extract_lane::<2>(self.0),
                u32x4_extract_lane::<3>(self.0),
            ]
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Self(u32x4_add(self.0, o.0))
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            Self(v128_xor(self.0, o.0))
        }
        #[inline(always)]
        fn rotl<const R: u32>(self) -> Self {
            // Whole-byte rotations are one byte shuffle per lane (little-endian).
            match R {
                16 => Self(i8x16_shuffle::<
                    2,
                    3,
                    0,
                    1,
                    6,
                    7,
                    4,
                    5,
                    10,
                    11,
                    8,
                    9,
                    14,
                    15,
                    12,
                    13,
                >(self.0, self.0)),
                8 => Self(i8x16_shuffle::<
                    3,
                    0,
                    1,
                    2,
                    7,
                    4,
                    5,
                    6,
                    11,
                    8,
                    9,
                    10,
                    15,
                    12,
                    13,
                    14,
                >(self.0, self.0)),
                _ => Self(v128_or(u32x4_shl(self.0, R), u32x4_shr(self.0, 32 - R))),
            }
        }
        #[inline(always)]
        fn store_transposed(rows: [Self; 4], col: usize, out: &mut [u32; 64]) {
            // A 4×4 transpose in shuffles, then two 64-bit extractions
            // per block where the portable form extracts each word.
            let [a, b, c, d] = rows.map(|v| v.0);
            let ab_lo = i32x4_shuffle::<0, 4, 1, 5>(a, b);
            let ab_hi = i32x4_shuffle::<2, 6, 3, 7>(a, b);
            let cd_lo = i32x4_shuffle::<0, 4, 1, 5>(c, d);
            let cd_hi = i32x4_shuffle::<2, 6, 3, 7>(c, d);
            let blocks = [
                i32x4_shuffle::<0, 1, 4, 5>(ab_lo, cd_lo),
                i32x4_shuffle::<2, 3, 6, 7>(ab_lo, cd_lo),
                i32x4_shuffle::<0, 1, 4, 5>(ab_hi, cd_hi),
                i32x4_shuffle::<2, 3, 6, 7>(ab_hi, cd_hi),
            ];
            for (j, v) in blocks.into_iter().enumerate() {
                if let Some(dst) = out.get_mut(16 * j + col..16 * j + col + 4) {
                    let (lo, hi) = (u64x2_extract_lane::<0>(v), u64x2_extract_lane::<1>(v));
                    dst.copy_from_slice(&[
                        lo as u32,
                        (lo >> 32) as u32,
                        hi as u32,
                        (hi >> 32) as u32,
                    ]);
                }
            }
        }
    }

    /// [`super::blocks4`] on SIMD128 (enabled for this function only: the
    /// rest of the module is scalar, where SIMD128 code generation was slower).
    #[target_feature(enable = "simd128")]
    pub(super) fn blocks4(key: &[u32; 8], counter: u64, stream: u64, out: &mut [u32; 64]) {
        super::blocks4_with::<Simd>(key, counter, stream, out);
    }
}

/// "expand 32-byte k".
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

#[inline(always)]
fn quarter<V: Lanes>(x: &mut [V; 16], a: usize, b: usize, c: usize, d: usize) {
    // The indices are the constants of `double_round`: in bounds.
    #[allow(clippy::indexing_slicing)]
    {
        x[a] = x[a].add(x[b]);
        x[d] = x[d].xor(x[a]).rotl::<16>();
        x[c] = x[c].add(x[d]);
        x[b] = x[b].xor(x[c]).rotl::<12>();
        x[a] = x[a].add(x[b]);
        x[d] = x[d].xor(x[a]).rotl::<8>();
        x[c] = x[c].add(x[d]);
        x[b] = x[b].xor(x[c]).rotl::<7>();
    }
}

/// Blocks `counter .. counter + 4` of the stream `stream` under `key`,
/// block after block, into `out`: lane `j` of vector `i` is word `i` of
/// block `counter + j`.
#[inline(always)]
fn blocks4_with<V: Lanes>(key: &[u32; 8], counter: u64, stream: u64, out: &mut [u32; 64]) {
    let pos: [u64; 4] = [0, 1, 2, 3].map(|j| counter.wrapping_add(j));
    let mut init = [V::splat(0); 16];
    for (v, &s) in init.iter_mut().zip(&SIGMA) {
        *v = V::splat(s);
    }
    for (v, &k) in init.iter_mut().skip(4).zip(key) {
        *v = V::splat(k);
    }
    let [w12, w13, w14, w15] = [
        V::from_words(pos.map(|p| p as u32)),
        V::from_words(pos.map(|p| (p >> 32) as u32)),
        V::splat(stream as u32),
        V::splat((stream >> 32) as u32),
    ];
    let [.., a, b, c, d] = &mut init;
    (*a, *b, *c, *d) = (w12, w13, w14, w15);
    let mut x = init;
    for _ in 0..10 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for (col, (xs, inits)) in x.chunks_exact(4).zip(init.chunks_exact(4)).enumerate() {
        if let (&[x0, x1, x2, x3], &[i0, i1, i2, i3]) = (xs, inits) {
            let rows = [x0.add(i0), x1.add(i1), x2.add(i2), x3.add(i3)];
            V::store_transposed(rows, 4 * col, out);
        }
    }
}

/// Four blocks, by the fastest path this build has.
fn blocks4(key: &[u32; 8], counter: u64, stream: u64, out: &mut [u32; 64]) {
    #[cfg(target_arch = "wasm32")]
    simd::blocks4(key, counter, stream, out);
    #[cfg(not(target_arch = "wasm32"))]
    blocks4_with::<Words>(key, counter, stream, out);
}

/// Checks the SIMD path against the portable one on blocks that carry
/// across the counter's 32-bit halves; run before the first use in
/// WebAssembly (a fault there would silently change every expanded `a`,
/// which the server could not decrypt against). Natively it compares the
/// portable path with itself.
pub(crate) fn self_test() -> bool {
    let key: [u32; 8] = core::array::from_fn(|i| 0x0101_0101u32.wrapping_mul(i as u32 + 7));
    [0u64, 0xffff_fffe, u64::MAX - 1].iter().all(|&counter| {
        let stream = counter ^ 0x0123_4567_89ab_cdef;
        let (mut fast, mut reference) = ([0u32; 64], [0u32; 64]);
        blocks4(&key, counter, stream, &mut fast);
        blocks4_with::<Words>(&key, counter, stream, &mut reference);
        fast == reference
    })
}

/// A buffer of four blocks (keystream: zeroized when dropped).
#[derive(Clone)]
pub struct Buffer([u32; 64]);

impl Drop for Buffer {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Default for Buffer {
    fn default() -> Self {
        Self([0; 64])
    }
}

impl AsRef<[u32]> for Buffer {
    fn as_ref(&self) -> &[u32] {
        &self.0
    }
}

impl AsMut<[u32]> for Buffer {
    fn as_mut(&mut self) -> &mut [u32] {
        &mut self.0
    }
}

/// ChaCha20's block function with its key, 64-bit block counter and
/// 64-bit stream (zeroized when dropped): the core of [`ChaCha20x4Rng`].
#[derive(Clone)]
pub struct Core {
    key: [u32; 8],
    counter: u64,
    stream: u64,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.key.zeroize();
        self.counter.zeroize();
        self.stream.zeroize();
    }
}

/// ChaCha20 generating four blocks at a time (SIMD128 in WebAssembly),
/// with `rand_chacha::ChaCha20Rng`'s output for the same seed.
pub type ChaCha20x4Rng = BlockRng<Core>;

impl SeedableRng for Core {
    type Seed = [u8; 32];

    /// Stream 0 from block 0, as `ChaCha20Rng::from_seed`.
    fn from_seed(seed: [u8; 32]) -> Self {
        let mut key = [0u32; 8];
        for (k, c) in key.iter_mut().zip(seed.chunks_exact(4)) {
            if let &[a, b, c, d] = c {
                *k = u32::from_le_bytes([a, b, c, d]);
            }
        }
        Self {
            key,
            counter: 0,
            stream: 0,
        }
    }
}

impl BlockRngCore for Core {
    type Item = u32;
    type Results = Buffer;

    fn generate(&mut self, results: &mut Buffer) {
        blocks4(&self.key, self.counter, self.stream, &mut results.0);
        self.counter = self.counter.wrapping_add(4);
    }
}

impl CryptoBlockRng for Core {}

#[cfg(test)]
/// The ChaCha20 keystream of `seed` on stream `stream` from its start:
/// the output of `rand_chacha::ChaCha20Rng::from_seed(seed)` after
/// `set_stream(stream)`.
pub(crate) fn seed_stream(seed: &[u8; 32], stream: u64) -> ChaCha20x4Rng {
    let mut core = Core::from_seed(*seed);
    core.stream = stream;
    BlockRng::new(core)
}

/// Fills `limb` with uniform residues below `q` by rejection: each
/// candidate is the next 64-bit word of the keystream of `seed` on
/// `stream` (low 32-bit word first, as `next_u64` reads it) masked to
/// `q`'s bit length, kept when below `q`. Reads the four-block buffers
/// directly: the same candidates as `seed_stream(seed, stream).next_u64()`
/// (a 64-bit word never straddles two buffers), without its per-word
/// bookkeeping.
pub(crate) fn uniform_limb(seed: &[u8; 32], stream: u64, q: u64, limb: &mut [u64]) {
    let mask = u64::MAX >> q.leading_zeros();
    let mut core = Core::from_seed(*seed);
    core.stream = stream;
    let mut buf = Buffer::default();
    let mut out = limb.iter_mut();
    let Some(mut next) = out.next() else {
        return;
    };
    loop {
        core.generate(&mut buf);
        for pair in buf.0.chunks_exact(2) {
            if let &[lo, hi] = pair {
                // Rejection sampling: exact uniformity; the timing depends
                // only on the public keystream.
                let v = ((u64::from(hi) << 32) | u64::from(lo)) & mask;
                if v < q {
                    *next = v;
                    match out.next() {
                        Some(c) => next = c,
                        None => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    /// RFC 8439 §2.3.2's block (its 96-bit nonce 00:00:00:09 00:00:00:4a
    /// 00:00:00:00 and counter 1 are our 64-bit counter 0x0900_0000_0000_0001 and
    /// stream 0x4a00_0000: the nonce's bytes read little-endian).
    #[test]
    fn rfc8439_block() {
        let key: [u32; 8] = core::array::from_fn(|i| {
            let b = 4 * i as u32;
            u32::from_le_bytes([b as u8, b as u8 + 1, b as u8 + 2, b as u8 + 3])
        });
        let mut out = [0u32; 64];
        blocks4_with::<Words>(&key, 0x0900_0000_0000_0001, 0x4a00_0000, &mut out);
        let want = [
            0xe4e7f110u32,
            0x15593bd1,
            0x1fdd0f50,
            0xc47120a3,
            0xc7f4d1c7,
            0x0368c033,
            0x9aaa2204,
            0x4e6cd4c3,
            0x466482d2,
            0x09aa9f07,
            0x05d7c214,
            0xa2028bd9,
            0xd19c12b5,
            0xb94e16de,
            0xe883d0cb,
            0x4e3c50a2,
        ];
        assert_eq!(&out[..16], &want);
    }

    /// Word for word `rand_chacha`'s stream, across buffer refills and on
    /// several streams (the special limbs' are above 2^32).
    #[test]
    fn equals_rand_chacha() {
        let mut seeder = ChaCha20Rng::seed_from_u64(5);
        for stream in [0u64, 1, 3, (1 << 32) + 1, u64::MAX] {
            let mut seed = [0u8; 32];
            seeder.fill_bytes(&mut seed);
            let mut ours = seed_stream(&seed, stream);
            let mut theirs = ChaCha20Rng::from_seed(seed);
            theirs.set_stream(stream);
            for _ in 0..1000 {
                assert_eq!(ours.next_u64(), theirs.next_u64());
            }
            assert_eq!(ours.next_u32(), theirs.next_u32());
            assert_eq!(ours.next_u64(), theirs.next_u64());
        }
    }

    /// The block-reading rejection sampler takes exactly the candidates
    /// `next_u64` gives, for 40- and 60-bit primes and a small one that
    /// rejects often.
    #[test]
    fn uniform_limb_equals_next_u64_rejection() {
        for (q, stream) in [(1_099_511_480_321u64, 1u64), ((1 << 60) - 93, 2), (97, 3)] {
            let seed = [q as u8; 32];
            let mut got = vec![0u64; 1000];
            uniform_limb(&seed, stream, q, &mut got);
            let mut rng = ChaCha20Rng::from_seed(seed);
            rng.set_stream(stream);
            let mask = u64::MAX >> q.leading_zeros();
            let want: Vec<u64> = (0..1000)
                .map(|_| loop {
                    let v = rng.next_u64() & mask;
                    if v < q {
                        break v;
                    }
                })
                .collect();
            assert_eq!(got, want, "q={q}");
        }
        uniform_limb(&[0; 32], 0, 97, &mut []);
    }

    /// Reads that straddle buffers (a 64-bit word after an odd number of
    /// 32-bit ones, at the end of a four-block buffer) and byte fills of
    /// odd lengths give `ChaCha20Rng`'s output.
    #[test]
    fn straddling_reads_equal_rand_chacha() {
        let seed = [0xc3u8; 32];
        let mut ours = ChaCha20x4Rng::from_seed(seed);
        let mut theirs = ChaCha20Rng::from_seed(seed);
        for _ in 0..63 {
            assert_eq!(ours.next_u32(), theirs.next_u32());
        }
        assert_eq!(
            ours.next_u64(),
            theirs.next_u64(),
            "word 63 and word 0 of the next buffer"
        );
        for len in [1usize, 3, 5, 255, 257] {
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            ours.fill_bytes(&mut a);
            theirs.fill_bytes(&mut b);
            assert_eq!(a, b, "{len} bytes");
            assert_eq!(ours.next_u32(), theirs.next_u32());
        }
    }

    /// The counter carries from its low word into its high word.
    #[test]
    fn counter_carries() {
        let seed = [7u8; 32];
        let mut theirs = ChaCha20Rng::from_seed(seed);
        theirs.set_stream(9);
        theirs.set_word_pos(16 * 0xffff_fffe);
        let mut ours = seed_stream(&seed, 9);
        ours.core.counter = 0xffff_fffe;
        for _ in 0..200 {
            assert_eq!(ours.next_u64(), theirs.next_u64());
        }
    }

    /// Seeded as a whole generator (the secret generator's path), the
    /// stream is `ChaCha20Rng`'s, bytes included.
    #[test]
    fn seedable_equals_rand_chacha() {
        let seed = [0x5au8; 32];
        let mut ours = ChaCha20x4Rng::from_seed(seed);
        let mut theirs = ChaCha20Rng::from_seed(seed);
        let (mut a, mut b) = ([0u8; 1000], [0u8; 1000]);
        ours.fill_bytes(&mut a);
        theirs.fill_bytes(&mut b);
        assert_eq!(a, b);
        assert_eq!(ours.next_u64(), theirs.next_u64());
    }

    #[test]
    fn self_test_passes() {
        assert!(self_test());
    }
}
