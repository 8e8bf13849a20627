#!/usr/bin/env python3
"""Peer-library CKKS micro-benchmarks (Microsoft SEAL via tenseal.sealapi, OpenFHE).

Prints one JSON object per line and per operation on stdout, in the same
contract as `cipherflow-cli bench ckks --json`:

    {"lib":"seal","preset":"n13","op":"mul_relin_rescale","median_us":...,
     "min_us":...,"threads":1,"reps":...}

OpenFHE lines also carry "dnum" (number of large digits of HYBRID key
switching).  Everything human-readable (versions, notes, skipped libraries)
goes to stderr, so stdout can be piped straight into ratios.py.

Methodology (kept identical for both libraries and matching ours):
  * single thread (OMP_NUM_THREADS=1 is forced before OpenFHE is imported;
    SEAL is single-threaded anyway);
  * every op works on fresh ciphertexts at the top level (all data primes);
  * one untimed warm-up call, then `reps` timed calls with
    time.perf_counter_ns(); median and min are reported in microseconds;
  * the timed region is one Python call into the library (plus, for
    mul_relin_rescale and decrypt, the two or three calls that make up the
    op), so a few hundred nanoseconds of binding overhead per call are
    included.  For encode/decrypt the vector of N/2 doubles has to cross the
    Python/C++ boundary: SEAL's binding only takes/returns Python lists
    (element-wise conversion), OpenFHE's encode takes a numpy array (buffer
    copy).  Measured at n13 the list conversion costs ~40 us against ~600 us
    for SEAL's encode (and less, relatively, at larger N), so it is noise
    at the precision these comparisons need.

Op definitions:
  encode            encode N/2 real slots at scale 2^40 (top level)
  encrypt_pk        public-key encryption of an encoded plaintext
  encrypt_sk        symmetric (secret-key) encryption of an encoded plaintext
  add               ct + ct
  mul_plain         ct * pt
  mul               ct * ct without relinearization (size-3 result)
  relin             relinearize a size-3 ct
  rescale           rescale a (relinearized) product to the next level
  mul_relin_rescale mul, then relin, then rescale, in sequence
  rotate            rotate slots by 1 step (Galois / automorphism key)
  decrypt           decrypt AND decode to N/2 doubles -- counted together,
                    as the SEAL reference figures count "decrypt"
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

# Must happen before OpenFHE (libgomp) is loaded anywhere.
os.environ["OMP_NUM_THREADS"] = "1"

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.environ.get("PEERS_VENV") or os.path.join(HERE, ".venv")

# Presets: (log2 N, coefficient-modulus bit sizes in SEAL's convention: the
# first is the 60-bit base prime, the middle ones are the 40-bit rescaling
# primes, the LAST one is the key-switching special prime).  Scale is 2^40.
PRESETS = {
    "n13": (13, [60, 40, 40, 60]),
    "n14": (14, [60] + [40] * 6 + [60]),
    "n15": (15, [60] + [40] * 16 + [60]),
    "n16": (16, [60] + [40] * 30 + [60]),
}
LOG_SCALE = 40

OPS = [
    "encode", "encrypt_pk", "encrypt_sk", "add", "mul_plain", "mul", "relin",
    "rescale", "mul_relin_rescale", "rotate", "decrypt",
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def reexec_in_venv():
    """Run under bench/.venv's interpreter when invoked with another python."""
    vpy = os.path.join(VENV, "bin", "python")
    if os.environ.get("PEERS_NO_REEXEC") or not os.path.exists(vpy):
        return
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    os.environ["PEERS_NO_REEXEC"] = "1"
    os.execv(vpy, [vpy, os.path.abspath(__file__)] + sys.argv[1:])


def time_op(fn, reps, setup=None):
    """Warm up once, then time `reps` calls of fn(). Returns (median_us, min_us).

    `setup`, if given, runs untimed before every call (for ops that consume
    their input)."""
    if setup is not None:
        setup()
    fn()  # warm-up
    samples = []
    for _ in range(reps):
        if setup is not None:
            setup()
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
        samples.append(t1 - t0)
    return statistics.median(samples) / 1000.0, min(samples) / 1000.0


def emit(lib, preset, op, med, mn, reps, **extra):
    rec = {"lib": lib, "preset": preset, "op": op,
           "median_us": round(med, 3), "min_us": round(mn, 3),
           "threads": 1, "reps": reps}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def check_close(what, got, want, tol):
    err = max(abs(g - w) for g, w in zip(got, want))
    if err > tol:
        raise RuntimeError(f"sanity check failed for {what}: max error {err:g} > {tol:g}")


def random_slots(n, seed):
    rng = random.Random(seed)
    return [rng.uniform(-1.0, 1.0) for _ in range(n)]


# --------------------------------------------------------------------------
# Microsoft SEAL through tenseal.sealapi (low-level binding of SEAL 4.x)
# --------------------------------------------------------------------------

def bench_seal(preset, reps, ops):
    import tenseal.sealapi as seal

    logn, bits = PRESETS[preset]
    n = 1 << logn
    scale = float(2 ** LOG_SCALE)

    parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(n, bits))
    # n13..n15 fit SEAL's 128-bit table (log2 QP <= 218/438/881), so SEAL
    # checks them. SEAL's table stops at N=2^15 (MaxBitCount is 0 beyond), so
    # n16 runs with the check off, like OpenFHE's HEStd_NotSet; its 1320-bit
    # QP is below the ~1770-bit 128-bit estimate for N=2^16 anyway.
    sec = seal.SEC_LEVEL_TYPE.TC128
    if seal.CoeffModulus.MaxBitCount(n, sec) == 0:
        sec = seal.SEC_LEVEL_TYPE.NONE
    ctx = seal.SEALContext(parms, True, sec)
    if not ctx.parameters_set():
        raise RuntimeError(f"SEAL rejected {preset}: {ctx.parameters_error_message()}")

    keygen = seal.KeyGenerator(ctx)
    sk = keygen.secret_key()
    pk = seal.PublicKey()
    keygen.create_public_key(pk)
    rk = seal.RelinKeys()
    keygen.create_relin_keys(rk)
    # The binding's create_galois_keys(list, GaloisKeys) resolves to the
    # Galois-ELEMENT overload (checked by introspection: [1] yields key elt 1),
    # so pass the element of a 1-step left rotation, 3^1 mod 2N, and verify.
    gk = seal.GaloisKeys()
    elt = pow(3, 1, 2 * n)
    keygen.create_galois_keys([elt], gk)
    if not gk.has_key(elt):  # binding resolved to the "steps" overload instead
        gk = seal.GaloisKeys()
        keygen.create_galois_keys([1], gk)
    if not gk.has_key(elt):
        raise RuntimeError("could not create the SEAL Galois key for a 1-step rotation")

    encoder = seal.CKKSEncoder(ctx)
    encryptor = seal.Encryptor(ctx, pk, sk)
    evaluator = seal.Evaluator(ctx)
    decryptor = seal.Decryptor(ctx, sk)
    slots = encoder.slot_count()

    x = random_slots(slots, 1)
    y = random_slots(slots, 2)
    pt_x, pt_y = seal.Plaintext(), seal.Plaintext()
    encoder.encode(x, scale, pt_x)
    encoder.encode(y, scale, pt_y)
    ct_x, ct_y = seal.Ciphertext(), seal.Ciphertext()
    encryptor.encrypt(pt_x, ct_x)
    encryptor.encrypt(pt_y, ct_y)
    ct3 = seal.Ciphertext()
    evaluator.multiply(ct_x, ct_y, ct3)          # size 3
    ct2 = seal.Ciphertext()
    evaluator.relinearize(ct3, rk, ct2)          # size 2, scale 2^80

    def dec(ct):
        p = seal.Plaintext()
        decryptor.decrypt(ct, p)
        return encoder.decode_double(p)

    # Sanity: results must be right before their timings mean anything.
    k = 8
    prod = [a * b for a, b in zip(x, y)]
    r = seal.Ciphertext()
    evaluator.rescale_to_next(ct2, r)
    check_close("seal mul_relin_rescale", dec(r)[:k], prod[:k], 1e-4)
    evaluator.rotate_vector(ct_x, 1, gk, r)
    check_close("seal rotate", dec(r)[:k], x[1:k + 1], 1e-4)
    sym = seal.Ciphertext()
    encryptor.encrypt_symmetric(pt_x, sym)
    check_close("seal encrypt_sk", dec(sym)[:k], x[:k], 1e-4)

    # Destinations are allocated once and reused (each keeps its size/level
    # from one call to the next, so no reallocation inside the timed region).
    out_pt = seal.Plaintext()
    out = seal.Ciphertext()
    t3, t2, t1 = seal.Ciphertext(), seal.Ciphertext(), seal.Ciphertext()

    def mul_relin_rescale():
        evaluator.multiply(ct_x, ct_y, t3)
        evaluator.relinearize(t3, rk, t2)
        evaluator.rescale_to_next(t2, t1)

    def decrypt_decode():
        decryptor.decrypt(ct_x, out_pt)
        encoder.decode_double(out_pt)

    table = {
        "encode": lambda: encoder.encode(x, scale, out_pt),
        "encrypt_pk": lambda: encryptor.encrypt(pt_x, out),
        "encrypt_sk": lambda: encryptor.encrypt_symmetric(pt_x, out),
        "add": lambda: evaluator.add(ct_x, ct_y, out),
        "mul_plain": lambda: evaluator.multiply_plain(ct_x, pt_y, out),
        "mul": lambda: evaluator.multiply(ct_x, ct_y, out),
        "relin": lambda: evaluator.relinearize(ct3, rk, out),
        "rescale": lambda: evaluator.rescale_to_next(ct2, out),
        "mul_relin_rescale": mul_relin_rescale,
        "rotate": lambda: evaluator.rotate_vector(ct_x, 1, gk, out),
        "decrypt": decrypt_decode,
    }
    for op in ops:
        med, mn = time_op(table[op], reps)
        emit("seal", preset, op, med, mn, reps)


# --------------------------------------------------------------------------
# OpenFHE (openfhe-python)
# --------------------------------------------------------------------------

def bench_openfhe(preset, reps, ops, dnum):
    import numpy as np
    import openfhe as ofhe

    logn, bits = PRESETS[preset]
    n = 1 << logn
    depth = len(bits) - 2          # number of 40-bit rescaling primes
    towers = depth + 1
    if dnum > towers:
        log(f"openfhe {preset}: dnum={dnum} > {towers} towers, using dnum={towers}")
        dnum = towers

    p = ofhe.CCParamsCKKSRNS()
    p.SetMultiplicativeDepth(depth)
    p.SetScalingModSize(LOG_SCALE)
    p.SetFirstModSize(bits[0])
    p.SetRingDim(n)
    p.SetBatchSize(n // 2)
    p.SetSecurityLevel(ofhe.SecurityLevel.HEStd_NotSet)  # honour the ring dim
    p.SetScalingTechnique(ofhe.ScalingTechnique.FIXEDMANUAL)  # explicit rescale
    p.SetKeySwitchTechnique(ofhe.KeySwitchTechnique.HYBRID)
    p.SetNumLargeDigits(dnum)
    cc = ofhe.GenCryptoContext(p)
    for feat in (ofhe.PKESchemeFeature.PKE, ofhe.PKESchemeFeature.KEYSWITCH,
                 ofhe.PKESchemeFeature.LEVELEDSHE):
        cc.Enable(feat)
    if cc.GetRingDimension() != n:
        raise RuntimeError(f"OpenFHE chose ring dim {cc.GetRingDimension()} instead of {n}")

    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalRotateKeyGen(keys.secretKey, [1])
    slots = n // 2

    x = np.array(random_slots(slots, 1), dtype=np.float64)
    y = np.array(random_slots(slots, 2), dtype=np.float64)
    pt_x = cc.MakeCKKSPackedPlaintext(x)
    pt_y = cc.MakeCKKSPackedPlaintext(y)
    ct_x = cc.Encrypt(keys.publicKey, pt_x)
    ct_y = cc.Encrypt(keys.publicKey, pt_y)
    ct3 = cc.EvalMultNoRelin(ct_x, ct_y)
    ct2 = cc.Relinearize(ct3)

    def dec(ct):
        pt = cc.Decrypt(keys.secretKey, ct)
        pt.SetLength(slots)
        return pt.GetRealPackedValue()

    k = 8
    r = cc.Rescale(ct2)
    check_close("openfhe mul_relin_rescale", dec(r)[:k], list(x[:k] * y[:k]), 1e-4)
    r = cc.EvalRotate(ct_x, 1)
    check_close("openfhe rotate", dec(r)[:k], list(x[1:k + 1]), 1e-4)
    r = cc.Encrypt(keys.secretKey, pt_x)
    check_close("openfhe encrypt_sk", dec(r)[:k], list(x[:k]), 1e-4)

    sk, pk = keys.secretKey, keys.publicKey

    def mul_relin_rescale():
        cc.Rescale(cc.Relinearize(cc.EvalMultNoRelin(ct_x, ct_y)))

    table = {
        "encode": lambda: cc.MakeCKKSPackedPlaintext(x),
        "encrypt_pk": lambda: cc.Encrypt(pk, pt_x),
        "encrypt_sk": lambda: cc.Encrypt(sk, pt_x),
        "add": lambda: cc.EvalAdd(ct_x, ct_y),
        "mul_plain": lambda: cc.EvalMult(ct_x, pt_y),
        "mul": lambda: cc.EvalMultNoRelin(ct_x, ct_y),
        "relin": lambda: cc.Relinearize(ct3),
        "rescale": lambda: cc.Rescale(ct2),
        "mul_relin_rescale": mul_relin_rescale,
        "rotate": lambda: cc.EvalRotate(ct_x, 1),
        # OpenFHE's Decrypt decodes the plaintext (CKKS decode) before it
        # returns, so this is decrypt + decode like the SEAL line.
        "decrypt": lambda: cc.Decrypt(sk, ct_x),
    }
    for op in ops:
        med, mn = time_op(table[op], reps)
        emit("openfhe", preset, op, med, mn, reps, dnum=dnum)


# --------------------------------------------------------------------------

def versions():
    out = {}
    try:
        import tenseal
        out["tenseal"] = tenseal.__version__
    except Exception as e:  # noqa: BLE001
        out["tenseal"] = f"unavailable ({e})"
    try:
        from importlib.metadata import version
        out["openfhe"] = version("openfhe")
        import openfhe  # noqa: F401  (import can fail even when installed)
    except Exception as e:  # noqa: BLE001
        out["openfhe"] = f"unavailable ({type(e).__name__}: {e})"
    return out


def main():
    reexec_in_venv()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS),
                    help="preset to run (repeatable; default n13)")
    ap.add_argument("--reps", type=int, default=10, help="timed repetitions per op")
    ap.add_argument("--lib", choices=["seal", "openfhe", "all"], default="all")
    ap.add_argument("--dnum", type=int, default=3,
                    help="OpenFHE HYBRID key switching: number of large digits (default 3)")
    ap.add_argument("--op", action="append", choices=OPS,
                    help="only these ops (repeatable; default all)")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.dnum < 1:
        ap.error("--dnum must be >= 1")
    presets = args.preset or ["n13"]
    ops = args.op or OPS

    v = versions()
    log(f"peers.py: python {sys.version.split()[0]}, tenseal {v['tenseal']}, "
        f"openfhe {v['openfhe']}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")

    libs = ["seal", "openfhe"] if args.lib == "all" else [args.lib]
    status = 0
    for lib in libs:
        if v["tenseal" if lib == "seal" else "openfhe"].startswith("unavailable"):
            log(f"peers.py: skipping {lib}: not installed in this Python "
                f"(run bench/setup_venv.sh)")
            if args.lib != "all":
                status = 1
            continue
        for preset in presets:
            t0 = time.time()
            try:
                if lib == "seal":
                    bench_seal(preset, args.reps, ops)
                else:
                    bench_openfhe(preset, args.reps, ops, args.dnum)
            except Exception as e:  # noqa: BLE001
                log(f"peers.py: {lib} {preset} failed: {type(e).__name__}: {e}")
                status = 1
                continue
            log(f"peers.py: {lib} {preset} done in {time.time() - t0:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
