//! Special functions used by the accountants: log-space arithmetic, the log of
//! binomial coefficients, `erfc`/normal tails with full relative precision far
//! into the tails.

use std::f64::consts::{LN_2, PI, SQRT_2};

/// `ln(e^a + e^b)` without overflow; `-inf` is the log of zero.
pub(crate) fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// `ln|C(n, k)|` for real `n` and integer `k >= 0` (through `ln|Γ|`).
pub(crate) fn log_comb(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// `ln(erfc(x))`, accurate for large positive `x` where `erfc` underflows.
pub(crate) fn log_erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 20.0 {
        return libm::erfc(x).ln();
    }
    // Asymptotic expansion at infinity:
    // ln erfc(x) = -x² - ln(x √π) + ln(1 - 1/(2x²) + 3/(4x⁴) - 15/(8x⁶) + 105/(16x⁸) - …)
    // written as a series in 1/x² of the logarithm; the first omitted term is
    // O(x⁻¹⁰) < 1e-13 for x ≥ 20.
    let r = 1.0 / (x * x);
    -x * x - x.ln() - 0.5 * PI.ln() - 0.5 * r + 0.625 * r * r - (37.0 / 24.0) * r * r * r
        + (353.0 / 64.0) * r * r * r * r
}

/// `ln Φ(z)` for the standard normal CDF Φ.
#[allow(dead_code)]
pub(crate) fn log_ndtr(z: f64) -> f64 {
    if z > 5.0 {
        // Φ(z) = 1 - Φ̄(z) with Φ̄(z) tiny: use log1p for full precision.
        (-normal_sf(z)).ln_1p()
    } else {
        log_erfc(-z / SQRT_2) - LN_2
    }
}

/// Standard normal survival function Φ̄(z) = P(Z > z), full relative
/// precision in the upper tail (until it underflows below ~1e-308).
pub(crate) fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / SQRT_2)
}

/// Standard normal CDF Φ(z) = P(Z ≤ z), full relative precision in the lower tail.
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / SQRT_2)
}

/// The smaller tail of the standard normal at `z`, together with a flag
/// telling which one it is: `(Φ(z), true)` for `z < 0`, `(Φ̄(z), false)`
/// otherwise. Interval masses are computed from these without cancellation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail {
    /// Mass of the smaller tail.
    pub small: f64,
    /// True when `small` is the lower tail Φ(z).
    pub lower: bool,
}

impl Tail {
    pub(crate) fn at(z: f64) -> Tail {
        if z == f64::NEG_INFINITY {
            Tail {
                small: 0.0,
                lower: true,
            }
        } else if z == f64::INFINITY {
            Tail {
                small: 0.0,
                lower: false,
            }
        } else if z < 0.0 {
            Tail {
                small: normal_cdf(z),
                lower: true,
            }
        } else {
            Tail {
                small: normal_sf(z),
                lower: false,
            }
        }
    }

    /// Φ(z) itself.
    pub(crate) fn cdf(self) -> f64 {
        if self.lower {
            self.small
        } else {
            1.0 - self.small
        }
    }

    /// Φ̄(z) itself.
    pub(crate) fn sf(self) -> f64 {
        if self.lower {
            1.0 - self.small
        } else {
            self.small
        }
    }
}

/// `Φ(b) - Φ(a)` for `a ≤ b` given as tails, without catastrophic cancellation
/// when both points lie in the same tail.
pub(crate) fn normal_mass_between(a: Tail, b: Tail) -> f64 {
    let m = match (a.lower, b.lower) {
        (true, true) => b.small - a.small,
        (false, false) => a.small - b.small,
        (true, false) => 1.0 - a.small - b.small,
        // a ≥ 0 > b cannot happen for a ≤ b; treat as empty.
        (false, true) => 0.0,
    };
    m.max(0.0)
}

/// Inverse of the standard normal upper tail for tiny probabilities:
/// the `z > 0` with Φ̄(z) = p, for `0 < p < 0.5`, by Newton iterations on
/// `ln Φ̄` (accurate to ~1e-12).
pub(crate) fn normal_isf(p: f64) -> f64 {
    if p.is_nan() || p <= 0.0 {
        return f64::INFINITY;
    }
    if p >= 0.5 {
        return 0.0;
    }
    let target = p.ln();
    // Start from the asymptotic solution of z²/2 + ln(z √(2π)) = -ln p.
    let mut z = (-2.0 * target).sqrt().max(0.5);
    for _ in 0..100 {
        let lsf = log_erfc(z / SQRT_2) - LN_2;
        // d/dz ln Φ̄(z) = -φ(z)/Φ̄(z)
        let log_phi = -0.5 * z * z - 0.5 * (2.0 * PI).ln();
        let slope = -(log_phi - lsf).exp();
        let step = (lsf - target) / slope;
        z -= step;
        if z < 0.0 {
            z = 0.0;
        }
        if step.abs() < 1e-13 * z.max(1.0) {
            break;
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_erfc_matches_direct_and_asymptotic() {
        for &x in &[-3.0, -0.5, 0.0, 0.7, 3.0, 10.0, 19.9] {
            let direct = libm::erfc(x).ln();
            assert!((log_erfc(x) - direct).abs() < 1e-12 * direct.abs().max(1.0));
        }
        // Continuity across the switch to the asymptotic series.
        let a = libm::erfc(19.999_999).ln();
        let b = log_erfc(20.0);
        assert!((a - b).abs() < 1e-4, "{a} {b}");
        // Known value (mpmath): ln erfc(30) = -903.974117110644...
        let v = log_erfc(30.0);
        assert!((v - (-903.974_117_110_644)).abs() < 1e-9, "{v}");
    }

    #[test]
    fn isf_inverts_sf() {
        for &p in &[0.4, 1e-3, 1e-10, 1e-22, 1e-100] {
            let z = normal_isf(p);
            let back = (log_erfc(z / SQRT_2) - LN_2).exp();
            assert!(((back - p) / p).abs() < 1e-9, "{p} {z} {back}");
        }
    }

    #[test]
    fn masses_between() {
        let m = normal_mass_between(Tail::at(-1.0), Tail::at(1.0));
        assert!((m - 0.682_689_492_137_086).abs() < 1e-14);
        let m = normal_mass_between(Tail::at(10.0), Tail::at(10.001));
        let want = normal_sf(10.0) - normal_sf(10.001);
        assert!(((m - want) / want).abs() < 1e-12);
    }
}
