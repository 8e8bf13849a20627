//! How the pages write sizes, durations, numbers and names.

/// A byte count: `B`, `KiB` or `MiB` with one decimal.
pub fn bytes(n: f64) -> String {
    const KIB: f64 = 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    if n >= MIB {
        format!("{:.1} MiB", n / MIB)
    } else if n >= KIB {
        format!("{:.1} KiB", n / KIB)
    } else {
        format!("{n:.0} B")
    }
}

/// A duration in milliseconds: whole `ms` below a second, else seconds
/// with two decimals.
pub fn ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// A ratio from 0 to 1 as a percentage with one decimal.
pub fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

/// A model name the platform accepts: letters, digits, `-`, `_`, `.`, at
/// most 64, not starting with `.` (the platform checks it again).
pub fn name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match chars.next() {
        Some(c) if c != '.' && allowed(c) => s.len() <= 64 && chars.all(allowed),
        _ => false,
    }
}

/// A number field's text as a number in `range`, or `None` (empty text is
/// `None` too: the caller decides whether the field is required).
pub fn number_in(s: &str, range: impl std::ops::RangeBounds<f64>) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && range.contains(&v)).then_some(v)
}

/// The number of layers the platform may hold: `all` (or empty) is
/// `Some(None)`; a positive whole number of at most six digits is
/// `Some(Some(k))`; anything else `None`.
pub fn head_layers(s: &str) -> Option<Option<u32>> {
    let s = s.trim();
    if s.is_empty() || s == "all" {
        return Some(None);
    }
    let digits_ok = s.len() <= 6 && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    digits_ok.then(|| s.parse().ok()).flatten().map(Some)
}

/// Softmax of logits (the probabilities shown beside a query's scores).
pub fn softmax(scores: &[f64]) -> Vec<f64> {
    let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ex: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
    let sum: f64 = ex.iter().sum();
    ex.iter().map(|e| e / sum).collect()
}

/// The index of the largest score (the first of equal ones).
pub fn argmax(scores: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &s) in scores.iter().enumerate() {
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1024.0), "1.0 KiB");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1048576.0), "3.0 MiB");
        assert_eq!(ms(12.4), "12 ms");
        assert_eq!(ms(999.0), "999 ms");
        assert_eq!(ms(1234.0), "1.23 s");
        assert_eq!(percent(0.9), "90.0 %");
    }

    #[test]
    fn names() {
        for ok in ["digits", "a", "x.y-z_1", &"a".repeat(64)] {
            assert!(name_ok(ok), "{ok}");
        }
        for bad in ["", ".hidden", "bad name!", "ü", "a/b", &"a".repeat(65)] {
            assert!(!name_ok(bad), "{bad}");
        }
    }

    #[test]
    fn number_fields() {
        assert_eq!(number_in("0.9", 0.0..=1.0), Some(0.9));
        assert_eq!(number_in("1.5", 0.0..=1.0), None);
        assert_eq!(number_in("NaN", 0.0..=1.0), None);
        assert_eq!(number_in("", 0.0..=1.0), None);
        assert_eq!(head_layers(""), Some(None));
        assert_eq!(head_layers("all"), Some(None));
        assert_eq!(head_layers("4"), Some(Some(4)));
        assert_eq!(head_layers("999999"), Some(Some(999_999)));
        for bad in ["0", "04", "1234567", "-1", "2.5", "x"] {
            assert_eq!(head_layers(bad), None, "{bad}");
        }
    }

    #[test]
    fn scores() {
        let p = softmax(&[1.0, 3.0, 3.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[1] > p[0] && (p[1] - p[2]).abs() < 1e-15);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[]), None);
        // Huge logits do not overflow.
        assert!(softmax(&[1e300, 0.0])[0] > 0.99);
    }
}
