//! The measured `plain-tail` leakage of each model version and split, in
//! the repository's SQLite file (table `leakage`): what an inversion
//! network trained on public data of the model's domain recovers from the
//! activations at that split (`crate::leakage`).

use crate::error::PlatformError;
use crate::repo::Repository;
use rusqlite::params;
use serde::{Deserialize, Serialize};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leakage (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    k INTEGER NOT NULL,
    domain TEXT NOT NULL,
    activations INTEGER NOT NULL,
    ssim REAL NOT NULL,
    psnr REAL NOT NULL,
    public_inputs INTEGER NOT NULL,
    held_out INTEGER NOT NULL,
    agreement REAL,
    PRIMARY KEY (name, version, k)
);";

/// The leakage of one split as the platform measured and shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitLeakage {
    /// The split.
    pub k: usize,
    /// The public data set the attack was trained on.
    pub domain: String,
    /// Activations per input at the cut.
    pub activations: usize,
    /// Mean SSIM of the reconstructions of held-out inputs (1: identical).
    pub ssim: f64,
    /// Their mean PSNR (dB).
    pub psnr: f64,
    /// Public inputs the attack trained on.
    pub public_inputs: usize,
    /// Held-out inputs it was scored on.
    pub held_out: usize,
    /// Fraction of reconstructions the model classifies as it classifies
    /// the originals — known only when the platform holds the whole model
    /// (else the creator measures it: `cipherflow model splits`).
    pub agreement_on_reconstructions: Option<f64>,
}

impl Repository {
    /// Records the leakage of split `l.k` of `name` v`version`.
    pub fn put_leakage(
        &self,
        name: &str,
        version: i64,
        l: &SplitLeakage,
    ) -> Result<(), PlatformError> {
        self.db.execute(
            "INSERT OR REPLACE INTO leakage (name, version, k, domain, activations, ssim, psnr, \
             public_inputs, held_out, agreement) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                name,
                version,
                l.k as i64,
                l.domain,
                l.activations as i64,
                l.ssim,
                l.psnr,
                l.public_inputs as i64,
                l.held_out as i64,
                l.agreement_on_reconstructions
            ],
        )?;
        Ok(())
    }

    /// The leakage measured for `name` v`version`, by split.
    pub fn leakage(&self, name: &str, version: i64) -> Result<Vec<SplitLeakage>, PlatformError> {
        let mut st = self.db.prepare(
            "SELECT k, domain, activations, ssim, psnr, public_inputs, held_out, agreement \
             FROM leakage WHERE name = ?1 AND version = ?2 ORDER BY k",
        )?;
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        let rows = st.query_map(params![name, version], |r| {
            Ok(SplitLeakage {
                k: n(r.get(0)?),
                domain: r.get(1)?,
                activations: n(r.get(2)?),
                ssim: r.get(3)?,
                psnr: r.get(4)?,
                public_inputs: n(r.get(5)?),
                held_out: n(r.get(6)?),
                agreement_on_reconstructions: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
