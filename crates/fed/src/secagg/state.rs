//! A party's state as bytes (a host keeps it between messages: Flower's
//! `context.state`), versioned and strict: every length is bounded before
//! allocation, every field validated, no trailing bytes.

use super::party::{PartyPolicy, SecAggParty};
use super::SecAggSpec;
use crate::error::{FedError, Result};
use crate::roster::KxSecret;
use cipherflow_ckks::multiparty::{Crs, SecretShare, ShamirShare};
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"CFSAGP02";
/// Largest state accepted (shares of up to [`super::MAX_PARTIES`] parties).
const MAX_STATE: usize = 1 << 31;
/// Largest single field.
const MAX_FIELD: usize = 1 << 28;

/// A bounds-checked cursor. (`cipherflow_ckks`' own reader is private to
/// that crate and speaks its object headers; this state is the federated
/// layer's format.)
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

fn bad(what: &str) -> FedError {
    FedError::Encoding(format!("secure-aggregation party state: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| bad("length"))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| bad("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| bad("u64"))?))
    }
    fn arr32(&mut self) -> Result<[u8; 32]> {
        self.take(32)?.try_into().map_err(|_| bad("32 bytes"))
    }
    fn flag(&mut self) -> Result<bool> {
        match self.take(1)?.first() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(bad("flag")),
        }
    }
    fn field(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.u64()?).map_err(|_| bad("length"))?;
        if n > MAX_FIELD {
            return Err(bad("field too large"));
        }
        self.take(n)
    }
}

fn put_field(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

impl SecAggParty {
    /// The whole state, secrets included (zeroized on drop): store it where
    /// only this party reads it.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(MAGIC);
        put_field(&mut out, self.spec.to_json()?.as_bytes());
        out.extend_from_slice(&(self.policy.min_quorum as u64).to_le_bytes());
        out.push(u8::from(self.policy.honest_majority));
        out.extend_from_slice(&u64::from(self.policy.min_stat_sec_bits).to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.crs.0);
        out.extend_from_slice(self.kx.to_bytes().as_ref());
        put_field(&mut out, &self.key.to_bytes());
        out.extend_from_slice(&(self.peers.len() as u64).to_le_bytes());
        for p in &self.peers {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&(self.received.len() as u64).to_le_bytes());
        for s in &self.received {
            put_field(&mut out, &s.to_bytes());
        }
        match &self.last_upload {
            Some((r, h, s)) => {
                out.push(1);
                out.extend_from_slice(&r.to_le_bytes());
                out.extend_from_slice(h);
                out.extend_from_slice(s.as_ref());
            }
            None => out.push(0),
        }
        match &self.last_decrypt {
            Some((r, c, seed)) => {
                out.push(1);
                out.extend_from_slice(&r.to_le_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(seed.as_ref());
            }
            None => out.push(0),
        }
        Ok(out)
    }

    /// Restores [`SecAggParty::to_bytes`]' state, validated.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        if data.len() > MAX_STATE {
            return Err(bad("too large"));
        }
        let mut r = Reader { data, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(bad("not a party state (or another version)"));
        }
        let spec_text = std::str::from_utf8(r.field()?).map_err(|_| bad("spec"))?;
        let spec = SecAggSpec::from_json(spec_text)?;
        let min_quorum = usize::try_from(r.u64()?).map_err(|_| bad("policy"))?;
        let honest_majority = r.flag()?;
        let min_stat_sec_bits = u32::try_from(r.u64()?).map_err(|_| bad("policy"))?;
        let policy = PartyPolicy {
            min_quorum,
            honest_majority,
            min_stat_sec_bits,
        };
        policy.check(&spec)?;
        let id = r.u64()?;
        if id == 0 || id > spec.parties as u64 {
            return Err(bad("party id"));
        }
        let crs = Crs(r.arr32()?);
        let kx = KxSecret::from_bytes(*Zeroizing::new(r.arr32()?));
        let packing = spec.packing()?;
        let params = packing.params()?;
        let key = SecretShare::from_bytes(&params, r.field()?)?;
        if key.party_id() != Some(id) {
            return Err(bad("key share of another party"));
        }
        let n_peers = usize::try_from(r.u64()?).map_err(|_| bad("peers"))?;
        if n_peers != 0 && n_peers != spec.parties {
            return Err(bad("peer count"));
        }
        let peers = (0..n_peers)
            .map(|_| r.arr32())
            .collect::<Result<Vec<_>>>()?;
        let n_recv = usize::try_from(r.u64()?).map_err(|_| bad("shares"))?;
        if n_recv > spec.parties || (n_peers == 0 && n_recv != 0) {
            return Err(bad("share count"));
        }
        let mut received: Vec<ShamirShare> = Vec::with_capacity(n_recv);
        for _ in 0..n_recv {
            let s = ShamirShare::from_bytes(&params, r.field()?)?;
            if s.to() != id || received.iter().any(|g| g.from() == s.from()) {
                return Err(bad("a share addressed elsewhere or twice"));
            }
            received.push(s);
        }
        let last_upload = if r.flag()? {
            let round = r.u64()?;
            let hash = r.arr32()?;
            let seed = Zeroizing::new(r.arr32()?);
            Some((round, hash, seed))
        } else {
            None
        };
        let last_decrypt = if r.flag()? {
            Some((r.u64()?, r.arr32()?, Zeroizing::new(r.arr32()?)))
        } else {
            None
        };
        if r.pos != data.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            spec,
            policy,
            id,
            crs,
            kx,
            key,
            params,
            packing,
            peers,
            received,
            last_upload,
            last_decrypt,
        })
    }
}
