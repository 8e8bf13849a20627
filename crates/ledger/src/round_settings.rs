//! What a [`RoundOpened`](crate::entry::RoundOpened) entry records: typed
//! parameter values and the round's differential-privacy settings, with
//! the accountant that recomputes ε as a typed value — every number the
//! recomputation needs is a field, nothing is parsed back from text.

use crate::codec::{DecodeError, Reader, Writer};
use crate::merkle::Hash;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A round parameter's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamValue {
    /// A name (a federation, a strategy, a model id).
    Text(String),
    /// A count or an identifier.
    U64(u64),
    /// A real number (exact: its IEEE-754 bits are encoded).
    F64(f64),
    /// A digest.
    Hash(#[serde(with = "crate::codec::hex_hash")] Hash),
    /// A list of counts (the bit sizes of a modulus chain).
    U64s(Vec<u64>),
}

impl From<&str> for ParamValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_string())
    }
}
impl From<String> for ParamValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}
impl From<u64> for ParamValue {
    fn from(v: u64) -> Self {
        Self::U64(v)
    }
}
impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        Self::F64(v)
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => write!(f, "{s}"),
            Self::U64(v) => write!(f, "{v}"),
            Self::F64(v) => write!(f, "{v}"),
            Self::Hash(h) => write!(f, "{}", hex::encode(h)),
            Self::U64s(v) => write!(f, "{v:?}"),
        }
    }
}

/// Most elements of a [`ParamValue::U64s`].
const MAX_PARAM_LIST: usize = 1 << 12;

impl ParamValue {
    pub(crate) fn encode_into(&self, w: &mut Writer) {
        match self {
            Self::Text(s) => {
                w.u8(1);
                w.str(s);
            }
            Self::U64(v) => {
                w.u8(2);
                w.u64(*v);
            }
            Self::F64(v) => {
                w.u8(3);
                w.f64(*v);
            }
            Self::Hash(h) => {
                w.u8(4);
                w.hash(h);
            }
            Self::U64s(v) => {
                w.u8(5);
                w.len(v.len());
                for x in v {
                    w.u64(*x);
                }
            }
        }
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("parameter type")? {
            1 => Self::Text(r.string("parameter value")?),
            2 => Self::U64(r.u64("parameter value")?),
            3 => Self::F64(r.f64("parameter value")?),
            4 => Self::Hash(r.hash("parameter value")?),
            5 => {
                let n = r.count(8, "parameter value")?;
                if n > MAX_PARAM_LIST {
                    return Err(DecodeError::TooMany("parameter value", n));
                }
                Self::U64s(
                    (0..n)
                        .map(|_| r.u64("parameter value"))
                        .collect::<Result<_, _>>()?,
                )
            }
            other => {
                return Err(DecodeError::WrongType {
                    expected: "parameter value",
                    found: other,
                })
            }
        })
    }
}

/// The integer noise of distributed DP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistributedNoiseKind {
    /// Discrete Gaussian shares.
    DiscreteGaussian,
    /// Skellam shares.
    Skellam,
}

/// Distributed DP: each of `clients` adds a share of integer noise to its
/// quantized update; ε holds while at least `min_survivors` shares are in
/// the decrypted sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributedDp {
    /// The noise distribution.
    pub noise: DistributedNoiseKind,
    /// Clients sampled per round.
    pub clients: u64,
    /// Fewest surviving noise shares the guarantee assumes.
    pub min_survivors: u64,
    /// Standard deviation of the summed noise (integer units).
    pub target_stddev: f64,
    /// L1 sensitivity of the quantized sum.
    pub l1: f64,
    /// L2 sensitivity of the quantized sum.
    pub l2: f64,
    /// Coordinates of an update.
    pub dim: u64,
}

/// Which accountant recomputes a round's ε.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DpAccounting {
    /// No differential privacy: σ and δ are 0 and ε is reported as +∞.
    NoDp,
    /// Rényi DP of the subsampled Gaussian mechanism.
    Rdp,
    /// Privacy-loss distribution of the subsampled Gaussian mechanism.
    Pld,
    /// Distributed integer noise under secure aggregation.
    Distributed(DistributedDp),
}

impl fmt::Display for DpAccounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDp => write!(f, "none"),
            Self::Rdp => write!(f, "rdp"),
            Self::Pld => write!(f, "pld"),
            Self::Distributed(d) => {
                let kind = match d.noise {
                    DistributedNoiseKind::DiscreteGaussian => "discrete-gaussian",
                    DistributedNoiseKind::Skellam => "skellam",
                };
                write!(
                    f,
                    "distributed {kind} (clients {}, min survivors {}, stddev {}, l1 {}, l2 {}, dim {})",
                    d.clients, d.min_survivors, d.target_stddev, d.l1, d.l2, d.dim
                )
            }
        }
    }
}

impl DpAccounting {
    /// Its canonical bytes (as inside an entry): equal exactly when the
    /// accountants are equal, floats compared by their bits — a key for
    /// caches of recomputed ε.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode_into(&mut w);
        w.buf
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        match self {
            Self::NoDp => w.u8(0),
            Self::Rdp => w.u8(1),
            Self::Pld => w.u8(2),
            Self::Distributed(d) => {
                w.u8(3);
                w.u8(match d.noise {
                    DistributedNoiseKind::DiscreteGaussian => 1,
                    DistributedNoiseKind::Skellam => 2,
                });
                w.u64(d.clients);
                w.u64(d.min_survivors);
                w.f64(d.target_stddev);
                w.f64(d.l1);
                w.f64(d.l2);
                w.u64(d.dim);
            }
        }
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("accountant")? {
            0 => Self::NoDp,
            1 => Self::Rdp,
            2 => Self::Pld,
            3 => {
                let noise = match r.u8("noise")? {
                    1 => DistributedNoiseKind::DiscreteGaussian,
                    2 => DistributedNoiseKind::Skellam,
                    other => {
                        return Err(DecodeError::WrongType {
                            expected: "distributed noise",
                            found: other,
                        })
                    }
                };
                Self::Distributed(DistributedDp {
                    noise,
                    clients: r.u64("clients")?,
                    min_survivors: r.u64("min_survivors")?,
                    target_stddev: r.f64("target_stddev")?,
                    l1: r.f64("l1")?,
                    l2: r.f64("l2")?,
                    dim: r.u64("dim")?,
                })
            }
            other => {
                return Err(DecodeError::WrongType {
                    expected: "accountant",
                    found: other,
                })
            }
        })
    }
}

/// Differential-privacy settings of a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpSettings {
    /// The accountant that recomputes ε.
    pub accountant: DpAccounting,
    /// Sampling rate q in (0, 1].
    pub sampling_rate: f64,
    /// Noise multiplier σ > 0.
    pub noise_multiplier: f64,
    /// δ in (0, 1).
    pub delta: f64,
    /// DP-SGD steps taken in this round.
    pub steps_this_round: u64,
    /// Steps in all rounds so far, this one included.
    pub steps_cumulative: u64,
}

impl DpSettings {
    /// The same accountant, q, σ and δ, bit for bit (the steps may differ).
    pub fn same_mechanism(&self, other: &DpSettings) -> bool {
        self.accountant == other.accountant
            && self.sampling_rate.to_bits() == other.sampling_rate.to_bits()
            && self.noise_multiplier.to_bits() == other.noise_multiplier.to_bits()
            && self.delta.to_bits() == other.delta.to_bits()
    }

    /// A round without differential privacy (one step, the `cumulative`-th):
    /// σ and δ are 0 and ε is reported as +∞.
    pub fn no_dp(sampling_rate: f64, cumulative: u64) -> Self {
        Self {
            accountant: DpAccounting::NoDp,
            sampling_rate,
            noise_multiplier: 0.0,
            delta: 0.0,
            steps_this_round: 1,
            steps_cumulative: cumulative,
        }
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        self.accountant.encode_into(w);
        w.f64(self.sampling_rate);
        w.f64(self.noise_multiplier);
        w.f64(self.delta);
        w.u64(self.steps_this_round);
        w.u64(self.steps_cumulative);
    }

    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            accountant: DpAccounting::decode_from(r)?,
            sampling_rate: r.f64("sampling_rate")?,
            noise_multiplier: r.f64("noise_multiplier")?,
            delta: r.f64("delta")?,
            steps_this_round: r.u64("steps_this_round")?,
            steps_cumulative: r.u64("steps_cumulative")?,
        })
    }

    /// Checks q ∈ (0, 1], σ > 0, δ ∈ (0, 1), all finite, the distributed
    /// accountant's parameters (counts ≥ 1, survivors ≤ clients, positive
    /// finite bounds) and `steps_cumulative >= steps_this_round`.
    /// [`DpAccounting::NoDp`] marks a round without differential privacy:
    /// its σ and δ must be 0 and its ε is reported as +∞.
    pub fn validate(&self) -> Result<(), String> {
        let q = self.sampling_rate;
        if !(q.is_finite() && q > 0.0 && q <= 1.0) {
            return Err(format!("sampling rate q = {q} is not in (0, 1]"));
        }
        if self.accountant == DpAccounting::NoDp {
            if self.noise_multiplier != 0.0 || self.delta != 0.0 {
                return Err("a round without DP must have σ = 0 and δ = 0".into());
            }
            return Ok(());
        }
        if let DpAccounting::Distributed(d) = &self.accountant {
            if d.clients == 0 || d.dim == 0 {
                return Err("distributed DP needs at least one client and one coordinate".into());
            }
            if d.min_survivors == 0 || d.min_survivors > d.clients {
                return Err(format!(
                    "min_survivors {} is not in 1..={}",
                    d.min_survivors, d.clients
                ));
            }
            for (name, v) in [
                ("target_stddev", d.target_stddev),
                ("l1", d.l1),
                ("l2", d.l2),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!("{name} = {v} is not a finite value > 0"));
                }
            }
        }
        let s = self.noise_multiplier;
        if !(s.is_finite() && s > 0.0) {
            return Err(format!("noise multiplier σ = {s} is not a finite σ > 0"));
        }
        let d = self.delta;
        if !(d.is_finite() && d > 0.0 && d < 1.0) {
            return Err(format!("δ = {d} is not in (0, 1)"));
        }
        if self.steps_cumulative < self.steps_this_round {
            return Err(format!(
                "steps_cumulative {} < steps_this_round {}",
                self.steps_cumulative, self.steps_this_round
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn distributed() -> DpSettings {
        DpSettings {
            accountant: DpAccounting::Distributed(DistributedDp {
                noise: DistributedNoiseKind::DiscreteGaussian,
                clients: 10,
                min_survivors: 7,
                target_stddev: 50.0,
                l1: 100.0,
                l2: 10.0,
                dim: 64,
            }),
            sampling_rate: 0.5,
            noise_multiplier: 5.0,
            delta: 1e-5,
            steps_this_round: 1,
            steps_cumulative: 1,
        }
    }

    fn with(f: impl Fn(&mut DistributedDp)) -> DpSettings {
        let mut s = distributed();
        if let DpAccounting::Distributed(d) = &mut s.accountant {
            f(d);
        }
        s
    }

    #[test]
    fn distributed_parameters_are_checked() {
        assert_eq!(distributed().validate(), Ok(()));
        let bad: [(&str, DpSettings); 7] = [
            ("no clients", with(|d| d.clients = 0)),
            ("no coordinates", with(|d| d.dim = 0)),
            ("no survivors", with(|d| d.min_survivors = 0)),
            (
                "more survivors than clients",
                with(|d| d.min_survivors = 11),
            ),
            ("stddev", with(|d| d.target_stddev = 0.0)),
            ("l1", with(|d| d.l1 = f64::INFINITY)),
            ("l2", with(|d| d.l2 = f64::NAN)),
        ];
        for (what, s) in bad {
            assert!(s.validate().is_err(), "{what}");
        }
        assert_eq!(with(|d| d.min_survivors = 10).validate(), Ok(()));
    }

    #[test]
    fn accountants_and_values_round_trip_and_unknown_tags_are_refused() {
        for s in [
            distributed(),
            DpSettings {
                accountant: DpAccounting::Pld,
                ..distributed()
            },
        ] {
            let mut w = Writer::default();
            s.encode_into(&mut w);
            let mut r = Reader::new(&w.buf);
            assert_eq!(DpSettings::decode_from(&mut r).unwrap(), s);
            r.finish().unwrap();
            for tag in [4u8, 255] {
                let mut b = w.buf.clone();
                b[0] = tag;
                assert!(matches!(
                    DpSettings::decode_from(&mut Reader::new(&b)),
                    Err(DecodeError::WrongType {
                        expected: "accountant",
                        ..
                    })
                ));
            }
        }
        let mut b = Vec::new();
        let mut w = Writer::default();
        DpAccounting::Distributed(DistributedDp {
            noise: DistributedNoiseKind::Skellam,
            clients: 1,
            min_survivors: 1,
            target_stddev: 1.0,
            l1: 1.0,
            l2: 1.0,
            dim: 1,
        })
        .encode_into(&mut w);
        b.extend_from_slice(&w.buf);
        b[1] = 3;
        assert!(matches!(
            DpAccounting::decode_from(&mut Reader::new(&b)),
            Err(DecodeError::WrongType {
                expected: "distributed noise",
                ..
            })
        ));
        for v in [
            ParamValue::from("x"),
            ParamValue::from(7u64),
            ParamValue::from(-0.0f64),
            ParamValue::Hash([3; 32]),
            ParamValue::U64s(vec![1, 2]),
        ] {
            let mut w = Writer::default();
            v.encode_into(&mut w);
            let back = ParamValue::decode_from(&mut Reader::new(&w.buf)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{v:?}"));
            let mut b = w.buf.clone();
            b[0] = 6;
            assert!(ParamValue::decode_from(&mut Reader::new(&b)).is_err());
        }
        let mut w = Writer::default();
        w.u8(5);
        w.u32(u32::MAX);
        assert_eq!(
            ParamValue::decode_from(&mut Reader::new(&w.buf)),
            Err(DecodeError::Truncated("parameter value"))
        );
    }
}
