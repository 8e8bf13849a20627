//! Composition of discretised PLDs by FFT: every component is transformed
//! once, raised to its repetition count in the frequency domain (polar form),
//! multiplied, and transformed back — one inverse FFT for the whole
//! heterogeneous composition.
//!
//! The output window comes from Chernoff bounds on the composed loss; mass
//! that could fall above the window is bounded by `tail` and added to the
//! +∞ mass (pessimistic), mass below it can only alias upwards (also
//! pessimistic). Tiny negative values produced by floating-point FFT
//! round-off are clamped to zero, which can only increase δ.

use super::pmf::Pmf;
use crate::error::DpError;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Largest FFT length used for one composition.
pub(crate) const MAX_FFT_LEN: usize = 1 << 25;

/// Masses below this are dropped at the ends of a component before
/// composition (moved pessimistically: top → +∞, bottom → lowest point).
const TRIM_FLOOR: f64 = 1e-250;

/// Smallest 2^a·3^b·5^c ≥ n (fast FFT sizes, little padding).
fn fft_len(n: usize) -> usize {
    let n = n.max(2);
    let mut best = n.next_power_of_two();
    let mut p5 = 1usize;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            let mut m = p35;
            while m < n {
                m *= 2;
            }
            best = best.min(m);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
}

type Plans = (Arc<dyn RealToComplex<f64>>, Arc<dyn ComplexToReal<f64>>);

/// Process-wide cache of FFT plans (planning costs about as much as two
/// transforms, so repeated compositions — calibration, schedules,
/// accountants queried every round — should not redo it). Bounded: plans above `MAX_CACHED_LEN` are not kept, and the
/// cache is cleared when it holds more than `MAX_CACHED_PLANS` sizes.
fn plans(n: usize) -> Plans {
    const MAX_CACHED_LEN: usize = 1 << 23;
    const MAX_CACHED_PLANS: usize = 12;
    static CACHE: OnceLock<Mutex<HashMap<usize, Plans>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(map) = cache.lock() {
        if let Some(p) = map.get(&n) {
            return p.clone();
        }
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let p: Plans = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    if n <= MAX_CACHED_LEN {
        if let Ok(mut map) = cache.lock() {
            if map.len() >= MAX_CACHED_PLANS {
                map.clear();
            }
            map.insert(n, p.clone());
        }
    }
    p
}

/// `ln Σ p_i e^{λ·ℓ_i}` for several λ at once (all of one sign), by Horner's
/// rule in the direction where the ratio e^{±λΔ} is below one (no overflow;
/// end points have mass ≥ `TRIM_FLOOR` so no underflow to zero either).
fn log_mgf(pmf: &Pmf, lambdas: &[f64]) -> Vec<f64> {
    let d = pmf.interval;
    let mut out = Vec::with_capacity(lambdas.len());
    for chunk in lambdas.chunks(4) {
        let mut acc = [0.0f64; 4];
        let mut r = [0.0f64; 4];
        for (k, &l) in chunk.iter().enumerate() {
            r[k] = (-(l.abs()) * d).exp();
        }
        let positive = chunk.first().is_some_and(|l| *l > 0.0);
        if positive {
            // Σ p_i r^{n−1−i}, r = e^{−λΔ}; anchored at the top loss.
            for &p in &pmf.probs {
                for k in 0..4 {
                    acc[k] = acc[k] * r[k] + p;
                }
            }
        } else {
            // Σ p_i r^{i}, r = e^{λΔ} (λ < 0); anchored at the bottom loss.
            for &p in pmf.probs.iter().rev() {
                for k in 0..4 {
                    acc[k] = acc[k] * r[k] + p;
                }
            }
        }
        let (lo, hi) = pmf.loss_range();
        for (k, &l) in chunk.iter().enumerate() {
            let anchor = if positive { hi } else { lo };
            out.push(acc[k].ln() + l * anchor);
        }
    }
    out
}

/// Composition of `(pmf, count)` components, all on the same grid spacing.
pub(crate) fn compose(components: &[(Pmf, u64)], tail: f64) -> Result<Pmf, DpError> {
    let interval = components.first().map(|c| c.0.interval).unwrap_or(1e-4);
    // Trim and collect the infinity mass.
    let mut parts: Vec<(Pmf, u64)> = Vec::with_capacity(components.len());
    let mut log_finite = 0.0f64; // ln Π (1 − inf_k)^{T_k}
    for (pmf, count) in components {
        let mut p = pmf.clone();
        p.trim(TRIM_FLOOR);
        log_finite += *count as f64 * (-p.infinity).ln_1p();
        if !p.probs.is_empty() {
            parts.push((p, *count));
        }
    }
    let mut infinity = -log_finite.exp_m1();
    if parts.is_empty() {
        return Ok(Pmf {
            offset: 0,
            probs: Vec::new(),
            infinity: infinity.min(1.0),
            interval,
        });
    }
    // Absolute index range of the composition.
    let mut base: i128 = 0;
    let mut span: i128 = 0;
    for (p, t) in &parts {
        base += i128::from(p.offset) * i128::from(*t);
        span += (p.probs.len() as i128 - 1) * i128::from(*t);
    }
    // Chernoff window (in loss units), then in indices relative to `base`.
    let log_inv_tail = (1.0 / tail).ln();
    let grid: Vec<f64> = (-40..=18).map(|k| 2f64.powf(f64::from(k) / 2.0)).collect();
    let neg: Vec<f64> = grid.iter().map(|l| -l).collect();
    let mut k_pos = vec![0.0f64; grid.len()];
    let mut k_neg = vec![0.0f64; grid.len()];
    for (p, t) in &parts {
        let t = *t as f64;
        for (acc, v) in k_pos.iter_mut().zip(log_mgf(p, &grid)) {
            *acc += t * v;
        }
        for (acc, v) in k_neg.iter_mut().zip(log_mgf(p, &neg)) {
            *acc += t * v;
        }
    }
    let mut upper = f64::INFINITY;
    let mut lower = f64::NEG_INFINITY;
    for (i, &l) in grid.iter().enumerate() {
        let u = (k_pos[i] + log_inv_tail) / l;
        if u.is_finite() {
            upper = upper.min(u);
        }
        let lo = -(k_neg[i] + log_inv_tail) / l;
        if lo.is_finite() {
            lower = lower.max(lo);
        }
    }
    let base_loss = base as f64 * interval;
    let rel_hi = if upper.is_finite() {
        (((upper - base_loss) / interval).ceil() as i128).clamp(0, span)
    } else {
        span
    };
    let rel_lo = if lower.is_finite() {
        (((lower - base_loss) / interval).floor() as i128).clamp(0, rel_hi)
    } else {
        0
    };
    let needed = rel_hi - rel_lo + 1;
    if needed > MAX_FFT_LEN as i128 {
        return Err(DpError::TooLarge(format!(
            "the composed PLD would need {needed} grid points at discretisation {interval} \
             (limit {MAX_FFT_LEN}); use the RDP accountant or a coarser discretisation"
        )));
    }
    let needed = needed as usize;
    let n = fft_len(needed);
    let (fwd, inv) = plans(n);
    let mut buf = fwd.make_input_vec();
    let mut spec = fwd.make_output_vec();
    let mut acc: Vec<Complex<f64>> = vec![Complex::new(1.0, 0.0); spec.len()];
    for (p, t) in &parts {
        buf.iter_mut().for_each(|x| *x = 0.0);
        for (i, &v) in p.probs.iter().enumerate() {
            if let Some(slot) = buf.get_mut(i % n) {
                *slot += v;
            }
        }
        fwd.process(&mut buf, &mut spec)
            .map_err(|e| DpError::TooLarge(format!("FFT failed: {e}")))?;
        let tf = *t as f64;
        let odd = t % 2 == 1;
        let last = spec.len() - 1;
        for (k, (a, z)) in acc.iter_mut().zip(spec.iter()).enumerate() {
            let zt = if k == 0 || (k == last && n.is_multiple_of(2)) {
                // Real bins: power of a real number with its sign.
                let m = z.re.abs().powf(tf);
                Complex::new(if z.re < 0.0 && odd { -m } else { m }, 0.0)
            } else {
                // |z|^T underflows for most high frequencies of a smooth
                // composed distribution: test that before the polar power.
                let log_mag = tf * 0.5 * z.norm_sqr().ln();
                if log_mag < -745.0 || a.re == 0.0 && a.im == 0.0 {
                    Complex::new(0.0, 0.0)
                } else {
                    let mag = log_mag.exp();
                    let ang = tf * z.im.atan2(z.re);
                    Complex::new(mag * ang.cos(), mag * ang.sin())
                }
            };
            *a *= zt;
        }
    }
    inv.process(&mut acc, &mut buf)
        .map_err(|e| DpError::TooLarge(format!("inverse FFT failed: {e}")))?;
    let scale = 1.0 / n as f64;
    let mut probs = Vec::with_capacity(needed);
    for rel in rel_lo..=rel_hi {
        let pos = (rel % n as i128) as usize;
        let v = buf.get(pos).copied().unwrap_or(0.0) * scale;
        probs.push(if v > 0.0 { v } else { 0.0 });
    }
    infinity = (infinity + tail).min(1.0);
    let offset = i64::try_from(base + rel_lo)
        .map_err(|_| DpError::TooLarge("composed loss index overflows i64".into()))?;
    let mut out = Pmf {
        offset,
        probs,
        infinity,
        interval,
    };
    out.trim(0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_len() {
        assert_eq!(fft_len(1), 2);
        assert_eq!(fft_len(7), 8);
        assert_eq!(fft_len(11), 12);
        assert_eq!(fft_len(13), 15);
        assert_eq!(fft_len(1025), 1080);
        // Sizes that are already 2^a·3^b·5^c are kept.
        for n in [12, 15, 45, 150, 1080] {
            assert_eq!(fft_len(n), n, "{n}");
        }
    }

    fn convolve_power(probs: &[f64], t: u64) -> Vec<f64> {
        let mut direct = vec![1.0f64];
        for _ in 0..t {
            let mut next = vec![0.0; direct.len() + probs.len() - 1];
            for (i, x) in direct.iter().enumerate() {
                for (j, y) in probs.iter().enumerate() {
                    next[i + j] += x * y;
                }
            }
            direct = next;
        }
        direct
    }

    /// Every repetition count, odd and even, with a component whose
    /// alternating sum (the FFT's real Nyquist bin) is negative: the sign
    /// of a real bin's power depends on the parity of the count.
    #[test]
    fn every_count_matches_direct_convolution() {
        let a = Pmf {
            offset: 0,
            probs: vec![0.1, 0.6, 0.3],
            infinity: 0.0,
            interval: 1.0,
        };
        for t in 1..=6u64 {
            let direct = convolve_power(&a.probs, t);
            let c = compose(&[(a.clone(), t)], 1e-300).unwrap();
            let mut got = vec![0.0; direct.len()];
            for (i, p) in c.probs.iter().enumerate() {
                got[(c.offset as usize) + i] = *p;
            }
            for (x, y) in got.iter().zip(&direct) {
                assert!((x - y).abs() < 1e-14, "t = {t}: {got:?} vs {direct:?}");
            }
        }
    }

    /// The composition-window tail is added to the mass at +∞, exactly.
    #[test]
    fn the_window_tail_goes_to_infinity() {
        let a = Pmf {
            offset: -1,
            probs: vec![0.25, 0.5, 0.2],
            infinity: 0.05,
            interval: 0.5,
        };
        let c = compose(&[(a, 2)], 1e-6).unwrap();
        let want = 1.0 - 0.95f64.powi(2) + 1e-6;
        assert!(
            (c.infinity - want).abs() < 1e-15,
            "{} vs {want}",
            c.infinity
        );
    }

    /// A wide component composed many times: the Chernoff window keeps all
    /// but `tail` of the mass (what is left out is at most `tail`, which
    /// went to +∞), and the kept part equals direct convolution.
    #[test]
    fn the_window_keeps_all_but_the_tail() {
        let n = 60;
        let raw: Vec<f64> = (0..n)
            .map(|i| (-((i as f64 - 20.0) / 6.0).powi(2)).exp())
            .collect();
        let total: f64 = raw.iter().sum();
        let probs: Vec<f64> = raw.iter().map(|p| p / total).collect();
        let a = Pmf {
            offset: -20,
            probs: probs.clone(),
            infinity: 0.0,
            interval: 0.1,
        };
        let t = 12;
        let tail = 1e-6;
        let c = compose(&[(a, t)], tail).unwrap();
        let kept: f64 = c.probs.iter().sum();
        assert!(kept >= 1.0 - tail - 1e-12, "kept {kept}");
        assert!(kept + c.infinity >= 1.0 - 1e-12);
        assert!(c.probs.len() < (n - 1) * t as usize + 1, "the window trims");
        // Mass below the window aliases into it (upwards: pessimistic), so
        // every kept point holds at least the true mass, and the excess is
        // what lay below — at most `tail`.
        let direct = convolve_power(&probs, t);
        let start = (c.offset + 20 * t as i64) as usize;
        let mut excess = 0.0;
        for (i, p) in c.probs.iter().enumerate() {
            assert!(*p >= direct[start + i] - 1e-13, "{i}");
            excess += p - direct[start + i];
        }
        assert!(excess <= tail + 1e-12, "excess {excess}");
        let above: f64 = direct[start + c.probs.len()..].iter().sum();
        assert!(above <= tail, "mass above the window {above}");
    }

    #[test]
    fn composing_matches_direct_convolution() {
        let a = Pmf {
            offset: -2,
            probs: vec![0.1, 0.2, 0.3, 0.35],
            infinity: 0.05,
            interval: 0.5,
        };
        // Direct: a ⊛ a ⊛ a.
        let mut direct = vec![1.0f64];
        for _ in 0..3 {
            let mut next = vec![0.0; direct.len() + a.probs.len() - 1];
            for (i, x) in direct.iter().enumerate() {
                for (j, y) in a.probs.iter().enumerate() {
                    next[i + j] += x * y;
                }
            }
            direct = next;
        }
        let c = compose(&[(a, 3)], 1e-300).unwrap();
        assert_eq!(c.offset, -6);
        for (x, y) in c.probs.iter().zip(&direct) {
            assert!((x - y).abs() < 1e-14);
        }
        assert!((c.infinity - (1.0 - 0.95f64.powi(3))).abs() < 1e-14);
    }
}
