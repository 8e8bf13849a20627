//! The federation's own records in its audit log (ledger custom entries):
//! one definition for the coordinator that writes them and the parties
//! that check them.
//!
//! Each record is the ledger's canonical encoding ([`Writer`], [`Reader`]:
//! big-endian integers, length-prefixed strings and lists) behind a version
//! byte, decoded strictly — another version, a short or over-long payload,
//! an unknown enum value is refused — so a record has exactly one encoding
//! and an auditor reads the same fields the parties checked.

use crate::config::KeysMode;
use crate::error::{FedError, Result};
use crate::packing::PackingPlan;
use cipherflow_ckks::multiparty::Crs;
use cipherflow_ledger::entry::CustomEntry;
use cipherflow_ledger::{DecodeError, Reader, Writer};

/// The custom-entry kind of [`KeySetupRecord`].
pub const KIND_KEY_SETUP: &str = "key-setup";
/// The custom-entry kind of [`FederationRecord`].
pub const KIND_FEDERATION: &str = "federation";
/// The custom-entry kind of [`RoundAbortedRecord`].
pub const KIND_ROUND_ABORTED: &str = "round-aborted";
/// The custom-entry kind of [`RegionSumRecord`].
pub const KIND_REGION_SUM: &str = "region-sum";

/// Version byte of the records' encodings.
pub const RECORD_VERSION: u8 = 1;

/// Most key holders or q-bit entries a record lists.
const MAX_LIST: usize = 1 << 16;

fn writer() -> Writer {
    let mut w = Writer::default();
    w.u8(RECORD_VERSION);
    w
}

/// Opens a record's payload, runs `read`, and requires every byte read.
fn read_record<T>(
    data: &[u8],
    what: &str,
    read: impl FnOnce(&mut Reader<'_>) -> std::result::Result<T, DecodeError>,
) -> Result<T> {
    let parse = || {
        let mut r = Reader::new(data);
        let v = r.u8("version")?;
        if v != RECORD_VERSION {
            return Err(DecodeError::Version(v));
        }
        let value = read(&mut r)?;
        r.finish()?;
        Ok(value)
    };
    parse().map_err(|e: DecodeError| FedError::Refused(format!("malformed {what} entry: {e}")))
}

fn read_list(r: &mut Reader<'_>, field: &'static str) -> std::result::Result<usize, DecodeError> {
    let n = r.count(4, field)?;
    if n > MAX_LIST {
        return Err(DecodeError::TooMany(field, n));
    }
    Ok(n)
}

/// The completed threshold key setup, as logged: the CRS every client
/// encrypts under, the key epoch, the threshold and the key holders.
/// Clients check it against what they pinned before they encrypt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetupRecord {
    /// The key epoch.
    pub epoch: u64,
    /// The CRS.
    pub crs: [u8; 32],
    /// Decryption threshold `t`.
    pub threshold: u64,
    /// The key holders' party ids.
    pub parties: Vec<u64>,
}

impl KeySetupRecord {
    /// The record of a key setup.
    pub fn new(epoch: u64, crs: &Crs, threshold: usize, parties: Vec<u64>) -> Self {
        Self {
            epoch,
            crs: crs.0,
            threshold: threshold as u64,
            parties,
        }
    }

    /// As a ledger custom entry:
    /// `version | epoch:u64 | crs:[32] | threshold:u64 | parties:u32-count u64…`.
    pub fn to_entry(&self) -> CustomEntry {
        let mut w = writer();
        w.u64(self.epoch);
        w.hash(&self.crs);
        w.u64(self.threshold);
        w.len(self.parties.len());
        for p in &self.parties {
            w.u64(*p);
        }
        CustomEntry {
            kind: KIND_KEY_SETUP.into(),
            data: w.into_bytes(),
        }
    }

    /// From a custom entry's data (the caller checks the kind).
    pub fn parse(data: &[u8]) -> Result<Self> {
        read_record(data, "key-setup", |r| {
            let epoch = r.u64("epoch")?;
            let crs = r.hash("crs")?;
            let threshold = r.u64("threshold")?;
            let n = read_list(r, "parties")?;
            let parties = (0..n)
                .map(|_| r.u64("parties"))
                .collect::<std::result::Result<_, _>>()?;
            Ok(Self {
                epoch,
                crs,
                threshold,
                parties,
            })
        })
    }
}

/// The federation a log belongs to, logged once when the coordinator first
/// starts: its name, the digest of its configuration, the key epoch and
/// CRS, how keys are held, and the packing every ciphertext follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederationRecord {
    /// Federation name.
    pub federation: String,
    /// [`FederationConfig::digest`](crate::FederationConfig::digest).
    pub config_digest: [u8; 32],
    /// The CRS of the key epoch.
    pub crs: [u8; 32],
    /// The key epoch.
    pub epoch: u64,
    /// Threshold keys or a key service.
    pub keys: KeysMode,
    /// Decryption threshold.
    pub threshold: u64,
    /// Enrolled clients.
    pub clients: u64,
    /// Ring degree (log2) of the ciphertexts.
    pub log_n: u32,
    /// Bits of each ciphertext prime.
    pub q_bits: Vec<u32>,
    /// Bits the integers are shifted by inside a ciphertext.
    pub shift: u32,
    /// Statistical security of the flooding noise, in bits.
    pub stat_sec_bits: u32,
    /// Model parameters.
    pub dim: u64,
    /// Ciphertexts per update.
    pub chunks: u64,
    /// Coordinates per slot.
    pub pack: u32,
    /// Bits per packed coordinate.
    pub field_bits: u32,
}

fn keys_tag(k: KeysMode) -> u8 {
    match k {
        KeysMode::Threshold => 1,
        KeysMode::KeyService => 2,
    }
}

impl FederationRecord {
    /// The record of a federation with this packing.
    pub fn new(
        federation: &str,
        config_digest: [u8; 32],
        crs: &Crs,
        epoch: u64,
        keys: KeysMode,
        (threshold, clients): (usize, usize),
        packing: &PackingPlan,
    ) -> Self {
        Self {
            federation: federation.to_string(),
            config_digest,
            crs: crs.0,
            epoch,
            keys,
            threshold: threshold as u64,
            clients: clients as u64,
            log_n: packing.log_n,
            q_bits: packing.q_bits.clone(),
            shift: packing.shift,
            stat_sec_bits: packing.stat_sec_bits,
            dim: packing.dim as u64,
            chunks: packing.chunks as u64,
            pack: packing.pack,
            field_bits: packing.field_bits,
        }
    }

    /// As a ledger custom entry (fields in declaration order; `keys` as
    /// 1 = threshold, 2 = key service).
    pub fn to_entry(&self) -> CustomEntry {
        let mut w = writer();
        w.str(&self.federation);
        w.hash(&self.config_digest);
        w.hash(&self.crs);
        w.u64(self.epoch);
        w.u8(keys_tag(self.keys));
        w.u64(self.threshold);
        w.u64(self.clients);
        w.u32(self.log_n);
        w.len(self.q_bits.len());
        for b in &self.q_bits {
            w.u32(*b);
        }
        w.u32(self.shift);
        w.u32(self.stat_sec_bits);
        w.u64(self.dim);
        w.u64(self.chunks);
        w.u32(self.pack);
        w.u32(self.field_bits);
        CustomEntry {
            kind: KIND_FEDERATION.into(),
            data: w.into_bytes(),
        }
    }

    /// From a custom entry's data (the caller checks the kind).
    pub fn parse(data: &[u8]) -> Result<Self> {
        read_record(data, "federation", |r| {
            let federation = r.string("federation")?;
            let config_digest = r.hash("config_digest")?;
            let crs = r.hash("crs")?;
            let epoch = r.u64("epoch")?;
            let keys = match r.u8("keys")? {
                1 => KeysMode::Threshold,
                2 => KeysMode::KeyService,
                other => return Err(DecodeError::UnknownKind(u16::from(other))),
            };
            let threshold = r.u64("threshold")?;
            let clients = r.u64("clients")?;
            let log_n = r.u32("log_n")?;
            let n = read_list(r, "q_bits")?;
            let q_bits = (0..n)
                .map(|_| r.u32("q_bits"))
                .collect::<std::result::Result<_, _>>()?;
            Ok(Self {
                federation,
                config_digest,
                crs,
                epoch,
                keys,
                threshold,
                clients,
                log_n,
                q_bits,
                shift: r.u32("shift")?,
                stat_sec_bits: r.u32("stat_sec_bits")?,
                dim: r.u64("dim")?,
                chunks: r.u64("chunks")?,
                pack: r.u32("pack")?,
                field_bits: r.u32("field_bits")?,
            })
        })
    }
}

/// A round given up (too few uploads, or no quorum of key holders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundAbortedRecord {
    /// The round.
    pub round: u64,
    /// Why, in words.
    pub reason: String,
}

impl RoundAbortedRecord {
    /// As a ledger custom entry: `version | round:u64 | reason:str`.
    pub fn to_entry(&self) -> CustomEntry {
        let mut w = writer();
        w.u64(self.round);
        w.str(&self.reason);
        CustomEntry {
            kind: KIND_ROUND_ABORTED.into(),
            data: w.into_bytes(),
        }
    }

    /// From a custom entry's data (the caller checks the kind).
    pub fn parse(data: &[u8]) -> Result<Self> {
        read_record(data, "round-aborted", |r| {
            Ok(Self {
                round: r.u64("round")?,
                reason: r.string("reason")?,
            })
        })
    }
}

/// A regional aggregator's sum accepted by the coordinator: which region,
/// the head of the region's ledger that committed it (so an auditor holding
/// the region's log checks the same commitment), the committing entry, the
/// sum's SHA-256 and the contributor set's root. The contributors' own
/// UpdateReceived entries follow in the coordinator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSumRecord {
    /// The round.
    pub round: u64,
    /// The region's id.
    pub region: String,
    /// The region ledger's tree size at the signed head.
    pub region_tree_size: u64,
    /// Its root hash.
    pub region_root: [u8; 32],
    /// The index of the region's AggregateComputed entry.
    pub region_entry: u64,
    /// SHA-256 of the regional sum.
    pub sum_hash: [u8; 32],
    /// Contributors.
    pub contributors: u64,
    /// Merkle root of the contributor set (the region entry's).
    pub inputs_root: [u8; 32],
}

impl RegionSumRecord {
    /// As a ledger custom entry: `version | round:u64 | region:str |
    /// tree_size:u64 | root:32 | entry:u64 | sum:32 | contributors:u64 |
    /// inputs_root:32`.
    pub fn to_entry(&self) -> CustomEntry {
        let mut w = writer();
        w.u64(self.round);
        w.str(&self.region);
        w.u64(self.region_tree_size);
        w.hash(&self.region_root);
        w.u64(self.region_entry);
        w.hash(&self.sum_hash);
        w.u64(self.contributors);
        w.hash(&self.inputs_root);
        CustomEntry {
            kind: KIND_REGION_SUM.into(),
            data: w.into_bytes(),
        }
    }

    /// From a custom entry's data (the caller checks the kind).
    pub fn parse(data: &[u8]) -> Result<Self> {
        read_record(data, "region-sum", |r| {
            Ok(Self {
                round: r.u64("round")?,
                region: r.string("region")?,
                region_tree_size: r.u64("region_tree_size")?,
                region_root: r.hash("region_root")?,
                region_entry: r.u64("region_entry")?,
                sum_hash: r.hash("sum_hash")?,
                contributors: r.u64("contributors")?,
                inputs_root: r.hash("inputs_root")?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn federation() -> FederationRecord {
        FederationRecord {
            federation: "hospitals".into(),
            config_digest: [1; 32],
            crs: [2; 32],
            epoch: 3,
            keys: KeysMode::KeyService,
            threshold: 4,
            clients: 5,
            log_n: 12,
            q_bits: vec![60, 50],
            shift: 20,
            stat_sec_bits: 40,
            dim: 1000,
            chunks: 2,
            pack: 3,
            field_bits: 30,
        }
    }

    /// Round trip, then every prefix, a trailing byte, another version.
    fn strict<T: PartialEq + std::fmt::Debug>(data: &[u8], parse: fn(&[u8]) -> Result<T>, v: &T) {
        assert_eq!(&parse(data).unwrap(), v);
        for n in 0..data.len() {
            assert!(
                matches!(parse(&data[..n]), Err(FedError::Refused(_))),
                "{n}"
            );
        }
        let mut long = data.to_vec();
        long.push(0);
        let e = parse(&long).unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
        let mut other = data.to_vec();
        other[0] = RECORD_VERSION + 1;
        let e = parse(&other).unwrap_err().to_string();
        assert!(e.contains("version"), "{e}");
    }

    #[test]
    fn records_round_trip_and_are_strict() {
        let k = KeySetupRecord {
            epoch: 7,
            crs: [9; 32],
            threshold: 2,
            parties: vec![1, 2, 3],
        };
        let e = k.to_entry();
        assert_eq!(e.kind, KIND_KEY_SETUP);
        strict(&e.data, KeySetupRecord::parse, &k);

        let f = federation();
        let e = f.to_entry();
        assert_eq!(e.kind, KIND_FEDERATION);
        strict(&e.data, FederationRecord::parse, &f);
        let threshold = FederationRecord {
            keys: KeysMode::Threshold,
            ..federation()
        };
        strict(
            &threshold.to_entry().data,
            FederationRecord::parse,
            &threshold,
        );

        let a = RoundAbortedRecord {
            round: 4,
            reason: "too few uploads".into(),
        };
        let e = a.to_entry();
        assert_eq!(e.kind, KIND_ROUND_ABORTED);
        strict(&e.data, RoundAbortedRecord::parse, &a);

        let r = RegionSumRecord {
            round: 2,
            region: "north".into(),
            region_tree_size: 17,
            region_root: [5; 32],
            region_entry: 16,
            sum_hash: [6; 32],
            contributors: 9,
            inputs_root: [7; 32],
        };
        let e = r.to_entry();
        assert_eq!(e.kind, KIND_REGION_SUM);
        strict(&e.data, RegionSumRecord::parse, &r);
    }

    #[test]
    fn hostile_fields_are_refused() {
        // An unknown key mode (byte after name, digest, CRS, epoch).
        let mut d = federation().to_entry().data;
        let at = 1 + 4 + "hospitals".len() + 32 + 32 + 8;
        assert_eq!(d[at], 2);
        d[at] = 3;
        let e = FederationRecord::parse(&d).unwrap_err().to_string();
        assert!(e.contains("unknown"), "{e}");
        // A party count far beyond the bytes that follow.
        let mut d = KeySetupRecord {
            epoch: 1,
            crs: [0; 32],
            threshold: 1,
            parties: vec![1],
        }
        .to_entry()
        .data;
        let at = 1 + 8 + 32 + 8;
        d[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = KeySetupRecord::parse(&d).unwrap_err().to_string();
        assert!(e.contains("parties"), "{e}");
        // Not UTF-8.
        let mut d = RoundAbortedRecord {
            round: 1,
            reason: "x".into(),
        }
        .to_entry()
        .data;
        let last = d.len() - 1;
        d[last] = 0xff;
        assert!(RoundAbortedRecord::parse(&d).is_err());
    }
}
