//! [`ParamsLiteral`]: a parameter set as data — what a server publishes and
//! a client (in Python, in a browser) rebuilds into exactly the same checked
//! [`CkksParams`]. It round-trips JSON (serde) and a strict, versioned
//! binary encoding, and rebuilding re-runs every check of
//! [`ParamsBuilder::build`]: the primes are prime, NTT-friendly and
//! distinct, the security level is recomputed (a literal that claims more
//! than its moduli give is refused, and one below 128 bits needs an explicit
//! opt-in), and `P` covers a key-switching digit.

use crate::error::CkksError;
use crate::params::{CkksParams, ParamsBuilder, SecurityLevel};
use serde::{Deserialize, Serialize};

/// Largest number of ciphertext primes a literal may list.
pub const MAX_Q_PRIMES: usize = 64;
/// Largest number of special primes a literal may list.
pub const MAX_P_PRIMES: usize = 32;

const MAGIC: &[u8; 4] = b"CFPL";
const VERSION: u8 = 1;

/// A CKKS parameter set as plain data.
///
/// The moduli are given either as exact primes (`q`, `p`; what
/// [`CkksParams::literal`] writes, so a rebuild gives the same fingerprint)
/// or as bit sizes (`q_bits`, `p_bits`; the builder picks the largest
/// NTT-friendly primes of those sizes, as [`ParamsBuilder`] does). In JSON:
///
/// ```json
/// {"log_n": 13, "q_bits": [60, 40, 40], "p_bits": [60], "log_scale": 40}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsLiteral {
    /// `log2 N`, the ring degree.
    pub log_n: u32,
    /// The ciphertext primes `q_0 … q_L`, exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub q: Vec<u64>,
    /// The special primes of hybrid key switching, exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p: Vec<u64>,
    /// Bit sizes of the ciphertext primes (instead of `q`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub q_bits: Vec<u32>,
    /// Bit sizes of the special primes (instead of `p`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p_bits: Vec<u32>,
    /// The default scale is `2^log_scale`.
    pub log_scale: u32,
    /// Key-switching digits; absent: one digit per `|P|` primes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnum: Option<usize>,
    /// The security level the moduli reach (checked on rebuild when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityLevel>,
}

impl CkksParams {
    /// This parameter set as a literal with its exact primes; rebuilding it
    /// gives a parameter set with the same fingerprint.
    pub fn literal(&self) -> ParamsLiteral {
        // The builder's digit rule: without dnum, one digit per |P| primes;
        // with dnum d, ⌈(L+1)/d⌉ primes per digit — and d = dnum() gives
        // back the same digit size (see the round-trip tests).
        let dnum = (self.alpha() != self.p().len()).then(|| self.dnum());
        ParamsLiteral {
            log_n: self.log_n(),
            q: self.q().to_vec(),
            p: self.p().to_vec(),
            q_bits: Vec::new(),
            p_bits: Vec::new(),
            log_scale: self.log_scale(),
            dnum,
            security: Some(self.security()),
        }
    }
}

impl ParamsLiteral {
    /// Rebuilds the parameter set, with every check of
    /// [`ParamsBuilder::build`]; below 128-bit security only when
    /// `allow_insecure` (tests and experiments).
    pub fn build(&self, allow_insecure: bool) -> Result<CkksParams, CkksError> {
        let invalid = |m: String| Err(CkksError::InvalidParameters(m));
        let exact = !self.q.is_empty() || !self.p.is_empty();
        let sized = !self.q_bits.is_empty() || !self.p_bits.is_empty();
        if exact == sized {
            return invalid(
                "give the moduli as primes (q, p) or as bit sizes (q_bits, p_bits)".into(),
            );
        }
        if self.q.len() > MAX_Q_PRIMES
            || self.q_bits.len() > MAX_Q_PRIMES
            || self.p.len() > MAX_P_PRIMES
            || self.p_bits.len() > MAX_P_PRIMES
        {
            return invalid(format!(
                "at most {MAX_Q_PRIMES} ciphertext and {MAX_P_PRIMES} special primes"
            ));
        }
        let mut b = ParamsBuilder::new(self.log_n).log_scale(self.log_scale);
        b = if exact {
            b.primes(&self.q, &self.p)
        } else {
            b.q_bits(&self.q_bits).p_bits(&self.p_bits)
        };
        if let Some(d) = self.dnum {
            b = b.dnum(d);
        }
        if allow_insecure {
            b = b.allow_insecure();
        }
        let params = b.build()?;
        if let Some(claimed) = self.security {
            if claimed != params.security() {
                return invalid(format!(
                    "the literal claims {claimed} security, its moduli give {}",
                    params.security()
                ));
            }
        }
        Ok(params)
    }

    /// The strict binary encoding: magic `CFPL`, version, `log_n`,
    /// `log_scale`, `dnum` (u16, 0 = absent), security (0 absent, 1
    /// insecure, 2/3/4 = 128/192/256 bits), then `|q|`, the primes of `q`
    /// (u64 little-endian), `|p|` and `p`. Only literals with exact primes
    /// have one.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let small = |v: u64, what: &str, max: u64| {
            if v > max {
                Err(CkksError::InvalidParameters(format!(
                    "{what} {v} is too large"
                )))
            } else {
                Ok(v)
            }
        };
        if !self.q_bits.is_empty() || !self.p_bits.is_empty() || self.q.is_empty() {
            return Err(CkksError::InvalidParameters(
                "only a literal with exact primes has a binary encoding".into(),
            ));
        }
        let mut out = Vec::with_capacity(16 + 8 * (self.q.len() + self.p.len()));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(small(u64::from(self.log_n), "log_n", 255)? as u8);
        out.push(small(u64::from(self.log_scale), "log_scale", 255)? as u8);
        let dnum = small(self.dnum.unwrap_or(0) as u64, "dnum", u64::from(u16::MAX))? as u16;
        out.extend_from_slice(&dnum.to_le_bytes());
        out.push(match self.security {
            None => 0,
            Some(SecurityLevel::Insecure) => 1,
            Some(SecurityLevel::Bits128) => 2,
            Some(SecurityLevel::Bits192) => 3,
            Some(SecurityLevel::Bits256) => 4,
        });
        for (list, max) in [(&self.q, MAX_Q_PRIMES), (&self.p, MAX_P_PRIMES)] {
            out.push(small(list.len() as u64, "prime count", max as u64)? as u8);
            for x in list {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Decodes [`ParamsLiteral::to_bytes`]'s encoding, refusing anything
    /// else (wrong magic or version, counts over the limits, truncation,
    /// trailing bytes). The result still has to be [`built`](Self::build).
    pub fn from_bytes(data: &[u8]) -> Result<Self, CkksError> {
        let bad = |m: &str| CkksError::Decode(format!("parameters literal: {m}"));
        let mut r = data;
        let mut take = |n: usize| -> Result<&[u8], CkksError> {
            if r.len() < n {
                return Err(bad("truncated"));
            }
            let (head, rest) = r.split_at(n);
            r = rest;
            Ok(head)
        };
        if take(4)? != MAGIC {
            return Err(bad("not a parameters literal (magic)"));
        }
        let version = take(1)?[0];
        if version != VERSION {
            return Err(bad(&format!(
                "version {version}, this build reads {VERSION}"
            )));
        }
        let log_n = u32::from(take(1)?[0]);
        let log_scale = u32::from(take(1)?[0]);
        let d = take(2)?;
        let dnum = usize::from(u16::from_le_bytes([d[0], d[1]]));
        let security = match take(1)?[0] {
            0 => None,
            1 => Some(SecurityLevel::Insecure),
            2 => Some(SecurityLevel::Bits128),
            3 => Some(SecurityLevel::Bits192),
            4 => Some(SecurityLevel::Bits256),
            s => return Err(bad(&format!("unknown security level {s}"))),
        };
        let mut lists = [Vec::new(), Vec::new()];
        for (list, max) in lists.iter_mut().zip([MAX_Q_PRIMES, MAX_P_PRIMES]) {
            let count = usize::from(take(1)?[0]);
            if count > max {
                return Err(bad(&format!("{count} primes, at most {max}")));
            }
            let bytes = take(8 * count)?;
            *list = bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect();
        }
        if !r.is_empty() {
            return Err(bad(&format!("{} trailing bytes", r.len())));
        }
        let [q, p] = lists;
        if q.is_empty() {
            return Err(bad("no ciphertext primes"));
        }
        Ok(Self {
            log_n,
            q,
            p,
            q_bits: Vec::new(),
            p_bits: Vec::new(),
            log_scale,
            dnum: (dnum != 0).then_some(dnum),
            security,
        })
    }
}
