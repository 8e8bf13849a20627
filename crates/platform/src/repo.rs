//! The model repository: each uploaded file stored once under its SHA-256
//! (`blobs/<sha256>`, written to a temporary file, flushed and renamed), its
//! metadata and the usage log in SQLite (`repo.db`). A file is checked
//! against its recorded hash every time it is read; a mismatch is an error,
//! never a model run on damaged bytes. An upload is parsed and checked
//! before anything is written, and a failed write leaves what was stored
//! before intact.

use crate::error::PlatformError;
use cipherflow_nn::io::ModelFile;
use cipherflow_nn::{Layer, Preprocessing};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Longest model name.
pub const MAX_NAME_LEN: usize = 64;

/// One version of a model in the repository.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelRecord {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Its version (1, 2, … per name).
    pub version: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Size of the file.
    pub bytes: i64,
    /// Seconds since the Unix epoch when it was uploaded.
    pub created: i64,
    /// Layers of the model.
    pub layers: usize,
    /// How many leading layers the creator lets the platform hold in the
    /// clear (all of them: the platform may run the whole model, `he`).
    pub head_layers: usize,
    /// Per-example input shape.
    pub input_shape: Vec<usize>,
    /// Number of outputs (classes).
    pub outputs: usize,
    /// The preprocessing the file stores (normalization, class names).
    pub preprocessing: Option<Preprocessing>,
    /// The bound `|x| ≤ input_bound` clients clamp inputs to (`None`: not
    /// known, so the model cannot be served encrypted).
    pub input_bound: Option<f64>,
    /// The splits served in `mpc` mode: `k` such that the platform may
    /// hold layers `0..k`, they compute something, and they compile to an
    /// encrypted head (checked at upload).
    pub splits: Vec<usize>,
    /// What the creator says of it (task, license, …).
    pub info: ModelInfo,
}

pub use cipherflow_api::{ModelInfo, MAX_INFO_LEN};

impl ModelRecord {
    /// The modes the platform can serve this model in: `he` when it holds
    /// the whole model, `mpc` when some split leaves a tail to its creator.
    pub fn modes(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.input_bound.is_none() {
            return m;
        }
        if self.head_layers == self.layers {
            m.push("he");
        }
        if !self.mpc_splits().is_empty() {
            m.push("mpc");
        }
        m
    }

    /// The splits `k` served in `mpc` mode: the platform holds layers
    /// `0..k` (at most what the creator allowed), the creator the rest.
    pub fn mpc_splits(&self) -> Vec<usize> {
        if self.input_bound.is_none() {
            return Vec::new();
        }
        self.splits.clone()
    }
}

/// What an upload states beside the file.
///
/// The file is the whole model (`layers` absent; the platform may then
/// hold all of it), or only the head the platform may hold (`layers`: the
/// whole model's layer count, `outputs`: its classes) — the tail's weights
/// never reach the platform.
#[derive(Clone, Debug, Default)]
pub struct UploadMeta {
    /// Leading layers the platform may hold: all of the file's (if given,
    /// it must say so).
    pub head_layers: Option<usize>,
    /// The whole model's layers, when the file holds only its head.
    pub layers: Option<usize>,
    /// The whole model's outputs, when the file holds only its head.
    pub outputs: Option<usize>,
    /// The inputs' bound (default: from the stored calibration, else from
    /// the normalization of images scaled to [0, 1]).
    pub input_bound: Option<f64>,
    /// A new version of an existing name needs its creator's token.
    pub creator_token: Option<String>,
    /// What the creator states about it.
    pub info: ModelInfo,
}

/// One query's usage record.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: i64,
    /// `he`.
    pub mode: String,
    /// Inputs answered.
    pub inputs: i64,
    /// Bytes received.
    pub upload_bytes: i64,
    /// Bytes sent.
    pub download_bytes: i64,
    /// Milliseconds on the server.
    pub ms: f64,
    /// `mpc` mode: bytes between the platform's party and the model host
    /// in the tail's computation (the one link the user does not see).
    pub platform_host_bytes: i64,
}

/// The repository on disk.
pub struct Repository {
    dir: PathBuf,
    pub(crate) db: Connection,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Checks a model name: 1 to 64 of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), PlatformError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(PlatformError::BadRequest(format!(
            "model name {name:?}: 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', not \
             starting with '.'"
        )))
    }
}

/// The default input bound of a model file (see [`UploadMeta`]): the
/// largest input its stored statistics saw, else what its normalization
/// makes of images scaled to [0, 1]; `None` without either.
pub fn default_input_bound(file: &ModelFile) -> Option<f64> {
    let p = file.preprocessing.as_ref()?;
    if let Some(b) = p.calibration.as_ref().and_then(|c| c.bounds.first()) {
        return Some(f64::from(*b));
    }
    // Images scaled to [0, 1], then (x − mean) / std per channel.
    p.mean
        .iter()
        .zip(&p.std)
        .map(|(&m, &s)| {
            let (m, s) = (f64::from(m), f64::from(s).abs().max(1e-6));
            (m / s).abs().max(((1.0 - m) / s).abs())
        })
        .reduce(f64::max)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created INTEGER NOT NULL,
    layers INTEGER NOT NULL,
    head_layers INTEGER NOT NULL,
    input_shape TEXT NOT NULL,
    outputs INTEGER NOT NULL,
    preprocessing TEXT,
    input_bound REAL,
    creator_token_sha256 TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    splits TEXT,
    info TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    mode TEXT NOT NULL,
    inputs INTEGER NOT NULL,
    upload_bytes INTEGER NOT NULL,
    download_bytes INTEGER NOT NULL,
    ms REAL NOT NULL,
    platform_host_bytes INTEGER NOT NULL DEFAULT 0
);";

const COLUMNS: &str = "name, version, sha256, bytes, created, layers, head_layers, input_shape, \
                       outputs, preprocessing, input_bound, splits, info";

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<(ModelRecord, String, Option<String>)> {
    let layers: i64 = row.get(5)?;
    let head: i64 = row.get(6)?;
    let outputs: i64 = row.get(8)?;
    Ok((
        ModelRecord {
            name: row.get(0)?,
            version: row.get(1)?,
            sha256: row.get(2)?,
            bytes: row.get(3)?,
            created: row.get(4)?,
            layers: usize::try_from(layers).unwrap_or(0),
            head_layers: usize::try_from(head).unwrap_or(0),
            input_shape: Vec::new(),
            outputs: usize::try_from(outputs).unwrap_or(0),
            preprocessing: None,
            input_bound: row.get(10)?,
            splits: row
                .get::<_, Option<String>>(11)?
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
            info: row
                .get::<_, Option<String>>(12)?
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
        },
        row.get(7)?,
        row.get(9)?,
    ))
}

fn finish(
    (mut r, shape, pre): (ModelRecord, String, Option<String>),
) -> Result<ModelRecord, PlatformError> {
    r.input_shape = serde_json::from_str(&shape)
        .map_err(|e| PlatformError::Storage(format!("stored input shape: {e}")))?;
    r.preprocessing = pre
        .map(|p| Preprocessing::from_json(&p))
        .transpose()
        .map_err(|e| PlatformError::Storage(format!("stored preprocessing: {e}")))?;
    Ok(r)
}

impl Repository {
    /// Opens (or creates) the repository in `dir`.
    pub fn open(dir: &Path) -> Result<Self, PlatformError> {
        std::fs::create_dir_all(dir.join("blobs"))?;
        let db = Connection::open(dir.join("repo.db"))?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        // Repositories made before splits were recorded gain the column
        // (their models then offer no mpc split until uploaded again).
        let has_splits = db
            .prepare("SELECT 1 FROM pragma_table_info('models') WHERE name = 'splits'")?
            .exists([])?;
        if !has_splits {
            db.execute("ALTER TABLE models ADD COLUMN splits TEXT", [])?;
        }
        let has_info = db
            .prepare("SELECT 1 FROM pragma_table_info('models') WHERE name = 'info'")?
            .exists([])?;
        if !has_info {
            db.execute("ALTER TABLE models ADD COLUMN info TEXT", [])?;
        }
        db.execute_batch(crate::repo_leakage::SCHEMA)?;
        crate::repo_leakage::migrate(&db)?;
        let has_link = db
            .prepare("SELECT 1 FROM pragma_table_info('usage') WHERE name = 'platform_host_bytes'")?
            .exists([])?;
        if !has_link {
            db.execute(
                "ALTER TABLE usage ADD COLUMN platform_host_bytes INTEGER NOT NULL DEFAULT 0",
                [],
            )?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            db,
        })
    }

    fn blob(&self, sha: &str) -> PathBuf {
        self.dir.join("blobs").join(sha)
    }

    /// Checks and stores an upload as the next version of `name`; returns
    /// its record and the creator's token (needed to delete it; only its
    /// hash is stored).
    pub fn add(
        &mut self,
        name: &str,
        bytes: &[u8],
        meta: &UploadMeta,
    ) -> Result<(ModelRecord, String), PlatformError> {
        check_name(name)?;
        let file = cipherflow_nn::io::load_bytes(bytes)?;
        let head_layers = file.model.layers().len();
        if let Some(h) = meta.head_layers.filter(|&h| h != head_layers) {
            return Err(PlatformError::BadRequest(format!(
                "head_layers {h}, but the file holds {head_layers} layers: upload only the \
                 layers the platform may hold (with layers and outputs of the whole model); \
                 the tail's weights stay with you"
            )));
        }
        let (layers, outputs) = match (meta.layers, meta.outputs) {
            (None, None) => (head_layers, file.model.output_shape().iter().product()),
            (Some(l), Some(o)) if l > head_layers && l <= 4096 && (1..=1 << 16).contains(&o) => {
                (l, o)
            }
            (Some(l), Some(o)) => {
                return Err(PlatformError::BadRequest(format!(
                    "layers {l} and outputs {o}: a whole model of more layers than the \
                     {head_layers} uploaded (at most 4096), with 1 to 65536 outputs"
                )))
            }
            _ => {
                return Err(PlatformError::BadRequest(
                    "a head-only upload gives both layers and outputs of the whole model".into(),
                ))
            }
        };
        if let Some(n) = file
            .preprocessing
            .as_ref()
            .and_then(|p| p.class_names.as_ref())
            .map(Vec::len)
            .filter(|&n| n != outputs)
        {
            return Err(PlatformError::BadRequest(format!(
                "{n} class names for a model of {outputs} outputs"
            )));
        }
        if file
            .model
            .layers()
            .iter()
            .any(|l| matches!(l, Layer::Recurrent(_)))
        {
            return Err(PlatformError::BadRequest(
                "recurrent layers cannot run encrypted".into(),
            ));
        }
        let input_bound = match meta.input_bound {
            Some(b) if b.is_finite() && b > 0.0 && b <= 1048576.0 => Some(b),
            Some(b) => {
                return Err(PlatformError::BadRequest(format!(
                    "input_bound {b} (positive, at most 2^20)"
                )))
            }
            None => default_input_bound(&file),
        };
        let token = match (self.creator_hash(name)?, &meta.creator_token) {
            (None, _) => {
                let mut t = [0u8; 32];
                rand_core::RngCore::fill_bytes(
                    &mut cipherflow_ring::sampler::secure_rng()
                        .map_err(|e| PlatformError::Storage(e.to_string()))?,
                    &mut t,
                );
                hex::encode(t)
            }
            (Some(h), Some(t)) if sha256_hex(t.as_bytes()) == h => t.clone(),
            (Some(_), _) => {
                return Err(PlatformError::Forbidden(format!(
                    "{name} exists: a new version needs its creator's token"
                )))
            }
        };
        if input_bound.is_none() {
            return Err(PlatformError::BadRequest(
                "the bound of the model's inputs is unknown (no stored statistics or \
                 normalization), so it cannot run encrypted: give input_bound"
                    .into(),
            ));
        }
        let splits = serde_json::to_string(&crate::split::servable_splits(
            &file.model,
            head_layers.min(layers.saturating_sub(1)),
        ))
        .map_err(|e| PlatformError::Storage(e.to_string()))?;
        meta.info.check().map_err(PlatformError::BadRequest)?;
        let info =
            serde_json::to_string(&meta.info).map_err(|e| PlatformError::Storage(e.to_string()))?;
        let sha = sha256_hex(bytes);
        let path = self.blob(&sha);
        if !path.exists() {
            let tmp = self.dir.join("blobs").join(format!("{sha}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        let pre = file
            .preprocessing
            .as_ref()
            .map(Preprocessing::to_json)
            .transpose()
            .map_err(|e| PlatformError::BadRequest(e.to_string()))?;
        let shape = serde_json::to_string(file.model.input_shape())
            .map_err(|e| PlatformError::Storage(e.to_string()))?;
        let tx = self.db.transaction()?;
        let version: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO models (name, version, sha256, bytes, created, layers, head_layers, \
             input_shape, outputs, preprocessing, input_bound, creator_token_sha256, splits, \
             info) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                name,
                version,
                sha,
                bytes.len() as i64,
                now(),
                layers as i64,
                head_layers as i64,
                shape,
                outputs as i64,
                pre,
                input_bound,
                sha256_hex(token.as_bytes()),
                splits,
                info,
            ],
        )?;
        tx.commit()?;
        let rec = self.get(name, Some(version))?;
        Ok((rec, token))
    }

    /// The latest version of `name` (or `version`), unless deleted.
    pub fn get(&self, name: &str, version: Option<i64>) -> Result<ModelRecord, PlatformError> {
        check_name(name)?;
        let sql = format!(
            "SELECT {COLUMNS} FROM models WHERE name = ?1 AND deleted = 0 AND \
             (?2 IS NULL OR version = ?2) ORDER BY version DESC LIMIT 1"
        );
        let row = self
            .db
            .query_row(&sql, params![name, version], record)
            .optional()?;
        finish(row.ok_or_else(|| PlatformError::NotFound(format!("model {name}")))?)
    }

    /// The latest version of every model, by name.
    pub fn list(&self) -> Result<Vec<ModelRecord>, PlatformError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM models m WHERE deleted = 0 AND version = \
             (SELECT MAX(version) FROM models WHERE name = m.name AND deleted = 0) ORDER BY name"
        );
        let mut st = self.db.prepare(&sql)?;
        let rows = st.query_map([], record)?;
        rows.map(|r| finish(r?)).collect()
    }

    /// Reads a model's file, checked against its recorded hash.
    pub fn load(&self, rec: &ModelRecord) -> Result<ModelFile, PlatformError> {
        let bytes = std::fs::read(self.blob(&rec.sha256))?;
        if sha256_hex(&bytes) != rec.sha256 {
            return Err(PlatformError::Storage(format!(
                "the stored file of {} v{} does not match its SHA-256: refusing to use it",
                rec.name, rec.version
            )));
        }
        Ok(cipherflow_nn::io::load_bytes(&bytes)?)
    }

    /// The hash of the creator token of `name` (any version, deleted or
    /// not: a name stays its creator's).
    fn creator_hash(&self, name: &str) -> Result<Option<String>, PlatformError> {
        Ok(self
            .db
            .query_row(
                "SELECT creator_token_sha256 FROM models WHERE name = ?1 LIMIT 1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Checks that `token` is the creator's of `name` (an existing model).
    pub fn check_creator(&self, name: &str, token: &str, act: &str) -> Result<(), PlatformError> {
        self.get(name, None)?;
        let given = sha256_hex(token.as_bytes());
        if self.creator_hash(name)?.as_deref() != Some(given.as_str()) {
            return Err(PlatformError::Forbidden(format!(
                "only the creator of {name} may {act}"
            )));
        }
        Ok(())
    }

    /// Deletes every version of `name`, for the creator holding `token`.
    pub fn delete(&mut self, name: &str, token: &str) -> Result<(), PlatformError> {
        check_name(name)?;
        self.check_creator(name, token, "delete it")?;
        self.db.execute(
            "UPDATE models SET deleted = 1 WHERE name = ?1",
            params![name],
        )?;
        Ok(())
    }

    /// Records one query's usage.
    pub fn record_usage(&self, u: &Usage) -> Result<(), PlatformError> {
        self.db.execute(
            "INSERT INTO usage (at, model, version, mode, inputs, upload_bytes, download_bytes, \
             ms, platform_host_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                now(),
                u.model,
                u.version,
                u.mode,
                u.inputs,
                u.upload_bytes,
                u.download_bytes,
                u.ms,
                u.platform_host_bytes
            ],
        )?;
        Ok(())
    }

    /// Usage records of `name`, oldest first.
    pub fn usage(&self, name: &str) -> Result<Vec<Usage>, PlatformError> {
        let mut st = self.db.prepare(
            "SELECT model, version, mode, inputs, upload_bytes, download_bytes, ms, \
             platform_host_bytes FROM usage WHERE model = ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![name], |r| {
            Ok(Usage {
                model: r.get(0)?,
                version: r.get(1)?,
                mode: r.get(2)?,
                inputs: r.get(3)?,
                upload_bytes: r.get(4)?,
                download_bytes: r.get(5)?,
                ms: r.get(6)?,
                platform_host_bytes: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The digits CNN's file and its number of layers.
    fn model_bytes() -> (Vec<u8>, usize) {
        let m = cipherflow_nn::examples::digits_cnn().unwrap();
        (
            cipherflow_nn::io::safetensors::to_bytes(&m).unwrap(),
            m.layers().len(),
        )
    }

    #[test]
    fn uploads_are_versioned_checked_and_deleted_only_by_their_creator() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = Repository::open(dir.path()).unwrap();
        let (b, layers) = model_bytes();
        let mut meta = UploadMeta {
            head_layers: Some(layers),
            input_bound: Some(1.0),
            ..UploadMeta::default()
        };
        let (r1, token) = repo.add("digits", &b, &meta).unwrap();
        // A new version only from the creator.
        assert!(matches!(
            repo.add("digits", &b, &meta),
            Err(PlatformError::Forbidden(_))
        ));
        meta.creator_token = Some(token.clone());
        let (r2, same) = repo.add("digits", &b, &meta).unwrap();
        assert_eq!(same, token);
        assert_eq!((r1.version, r2.version), (1, 2));
        assert_eq!(r1.sha256, r2.sha256, "stored once");
        assert_eq!(r2.modes(), vec!["he", "mpc"]);
        assert_eq!(r2.mpc_splits(), (1..layers).collect::<Vec<_>>());
        assert_eq!(repo.list().unwrap(), vec![r2.clone()]);
        assert_eq!(repo.load(&r1).unwrap().model.layers().len(), layers);
        // Garbage, a bad name, too many head layers: refused, nothing stored.
        for (name, bytes, m) in [
            ("x", b"not a model".to_vec(), UploadMeta::default()),
            ("../etc", b.clone(), UploadMeta::default()),
            (
                "x",
                b.clone(),
                UploadMeta {
                    head_layers: Some(layers + 1),
                    ..UploadMeta::default()
                },
            ),
        ] {
            assert!(repo.add(name, &bytes, &m).is_err());
        }
        assert_eq!(repo.list().unwrap().len(), 1);
        // A damaged file is refused, never run.
        std::fs::write(dir.path().join("blobs").join(&r1.sha256), b"flipped").unwrap();
        let e = repo.load(&r1).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        // Deletion needs the creator's token; reopening keeps everything.
        assert!(matches!(
            repo.delete("digits", "wrong"),
            Err(PlatformError::Forbidden(_))
        ));
        drop(repo);
        let mut repo = Repository::open(dir.path()).unwrap();
        assert_eq!(repo.list().unwrap().len(), 1);
        repo.delete("digits", &token).unwrap();
        assert!(repo.list().unwrap().is_empty());
        assert!(matches!(
            repo.get("digits", None),
            Err(PlatformError::NotFound(_))
        ));
    }

    #[test]
    fn a_head_only_upload_keeps_the_tail_with_its_creator() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = Repository::open(dir.path()).unwrap();
        let m = cipherflow_nn::examples::digits_cnn().unwrap();
        let layers = m.layers().len();
        let (head, _tail) = m.split_at(2).unwrap();
        let hb = cipherflow_nn::io::safetensors::to_bytes(&head).unwrap();
        let meta = UploadMeta {
            layers: Some(layers),
            outputs: Some(10),
            input_bound: Some(1.0),
            ..UploadMeta::default()
        };
        let (r, _) = repo.add("split", &hb, &meta).unwrap();
        assert_eq!((r.layers, r.head_layers, r.outputs), (layers, 2, 10));
        assert_eq!(r.modes(), vec!["mpc"]);
        assert_eq!(r.mpc_splits(), vec![1, 2]);
        assert_eq!(
            repo.load(&r).unwrap().model.layers().len(),
            2,
            "the head only"
        );
        // A whole model with fewer layers allowed is refused: the platform
        // would hold the tail's weights.
        let whole = cipherflow_nn::io::safetensors::to_bytes(&m).unwrap();
        let e = repo
            .add(
                "whole",
                &whole,
                &UploadMeta {
                    head_layers: Some(2),
                    input_bound: Some(1.0),
                    ..UploadMeta::default()
                },
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("tail's weights stay with you"),
            "{e}"
        );
        // Inconsistent figures of the whole model are refused.
        for (l, o) in [
            (Some(2), Some(10)),
            (Some(layers), None),
            (Some(layers), Some(0)),
        ] {
            let bad = UploadMeta {
                layers: l,
                outputs: o,
                input_bound: Some(1.0),
                ..UploadMeta::default()
            };
            assert!(repo.add("bad", &hb, &bad).is_err(), "{l:?} {o:?}");
        }
        assert_eq!(repo.list().unwrap().len(), 1);
    }
}
