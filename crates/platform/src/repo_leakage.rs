//! The measured `plain-tail` leakage of each model version and split, in
//! the repository's SQLite file (table `leakage`): what an inversion
//! network trained on public data of the model's domain recovers from the
//! activations at that split (`crate::leakage`).

use crate::error::PlatformError;
use crate::leakage::LeakageExample;
use crate::repo::Repository;
use rusqlite::params;

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
    example TEXT,
    PRIMARY KEY (name, version, k)
);";

/// Adds the `example` column to a repository made before it existed (its
/// splits then show no example until measured again).
pub(crate) fn migrate(db: &rusqlite::Connection) -> Result<(), PlatformError> {
    let has_example = db
        .prepare("SELECT 1 FROM pragma_table_info('leakage') WHERE name = 'example'")?
        .exists([])?;
    if !has_example {
        db.execute("ALTER TABLE leakage ADD COLUMN example TEXT", [])?;
    }
    Ok(())
}

pub use cipherflow_api::{ExampleImage, SplitLeakage, MAX_EXAMPLE_SIDE};

/// The images of a leakage example, when it is an image small enough to
/// show (see [`ExampleImage::from_values`]).
pub fn example_image(e: &LeakageExample) -> Option<ExampleImage> {
    ExampleImage::from_values(&e.shape, &e.original, &e.reconstruction)
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
             public_inputs, held_out, agreement, example) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                l.agreement_on_reconstructions,
                l.example
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| PlatformError::Storage(format!("leakage example: {e}")))?
            ],
        )?;
        Ok(())
    }

    /// The leakage measured for `name` v`version`, by split.
    pub fn leakage(&self, name: &str, version: i64) -> Result<Vec<SplitLeakage>, PlatformError> {
        let mut st = self.db.prepare(
            "SELECT k, domain, activations, ssim, psnr, public_inputs, held_out, agreement, \
             example FROM leakage WHERE name = ?1 AND version = ?2 ORDER BY k",
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
                // A damaged example is not shown; the figures still are.
                example: r
                    .get::<_, Option<String>>(8)?
                    .and_then(|j| serde_json::from_str::<ExampleImage>(&j).ok())
                    .filter(ExampleImage::valid),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn example(shape: &[usize], len: usize) -> LeakageExample {
        LeakageExample {
            shape: shape.to_vec(),
            original: (0..len).map(|i| i as f32 / len as f32).collect(),
            reconstruction: vec![0.5; len],
        }
    }

    /// Images become 8-bit pixels, clamped and rounded; tabular inputs,
    /// large images, other channel counts and short vectors give none.
    #[test]
    fn examples_are_images_or_nothing() {
        let mut e = example(&[1, 4, 4], 16);
        e.original[..4].copy_from_slice(&[-0.5, 0.0, 0.5, 1.5]);
        e.reconstruction[..4].copy_from_slice(&[0.25, 1.0, 0.999, f32::NAN]);
        let img = example_image(&e).unwrap();
        assert_eq!(img.shape, [1, 4, 4]);
        assert_eq!(img.original[..4], [0, 0, 128, 255]);
        // NaN clamps to NaN, which casts to 0: never out of range.
        assert_eq!(img.reconstruction[..5], [64, 255, 255, 0, 128]);
        assert_eq!(
            example_image(&example(&[8, 8], 64)).unwrap().shape,
            [1, 8, 8]
        );
        assert!(example_image(&example(&[3, 4, 4], 48)).is_some());
        for bad in [
            example(&[64], 64),
            example(&[2, 4, 4], 32),
            example(&[1, 65, 65], 65 * 65),
            example(&[1, 8, 8], 63),
            example(&[1, 0, 8], 0),
            example(&[1, 64], 64),
            example(&[1, 3, 8], 24),
        ] {
            assert_eq!(example_image(&bad), None, "{:?}", bad.shape);
        }
    }

    fn leakage(k: usize, example: Option<ExampleImage>) -> SplitLeakage {
        SplitLeakage {
            k,
            domain: "digits".into(),
            activations: 10,
            ssim: 0.5,
            psnr: 12.0,
            public_inputs: 100,
            held_out: 20,
            agreement_on_reconstructions: None,
            example,
        }
    }

    /// Stored and read back; a damaged stored example (bad JSON, sizes
    /// that do not fit its shape) is dropped and the figures still read.
    #[test]
    fn examples_round_trip_and_damage_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open(dir.path()).unwrap();
        let img = example_image(&example(&[1, 8, 8], 64)).unwrap();
        repo.put_leakage("m", 1, &leakage(1, Some(img.clone())))
            .unwrap();
        repo.put_leakage("m", 1, &leakage(2, None)).unwrap();
        assert_eq!(
            repo.leakage("m", 1).unwrap(),
            vec![leakage(1, Some(img.clone())), leakage(2, None)]
        );
        let mut short = img.clone();
        short.reconstruction.pop();
        for damage in [
            "{not json".to_string(),
            serde_json::to_string(&short).unwrap(),
        ] {
            repo.db
                .execute(
                    "UPDATE leakage SET example = ?1 WHERE k = 1",
                    params![damage],
                )
                .unwrap();
            assert_eq!(repo.leakage("m", 1).unwrap()[0], leakage(1, None));
        }
    }

    /// A repository made before examples were kept gains the column and
    /// keeps its figures.
    #[test]
    fn old_repositories_gain_the_column() {
        let dir = tempfile::tempdir().unwrap();
        {
            let repo = Repository::open(dir.path()).unwrap();
            repo.db.execute_batch("DROP TABLE leakage;").unwrap();
            repo.db
                .execute_batch(&SCHEMA.replace("    example TEXT,\n", ""))
                .unwrap();
            repo.db
                .execute(
                    "INSERT INTO leakage (name, version, k, domain, activations, ssim, psnr, \
                     public_inputs, held_out, agreement) \
                     VALUES ('m', 1, 1, 'digits', 10, 0.5, 12.0, 100, 20, NULL)",
                    [],
                )
                .unwrap();
            let has_example = repo
                .db
                .prepare("SELECT 1 FROM pragma_table_info('leakage') WHERE name = 'example'")
                .unwrap()
                .exists([])
                .unwrap();
            assert!(!has_example, "the old schema has no example column");
        }
        let repo = Repository::open(dir.path()).unwrap();
        assert_eq!(repo.leakage("m", 1).unwrap(), vec![leakage(1, None)]);
    }
}
