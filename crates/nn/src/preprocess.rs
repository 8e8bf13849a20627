//! What a model expects done to its inputs before they reach it — per-
//! channel normalization (torchvision's `Normalize(mean, std)`) — the
//! names of its classes, and optionally the range of the values entering
//! each layer on calibration data ([`Calibration`]: what an encrypted run
//! needs to approximate ReLU and friends). Stored with the model
//! (safetensors metadata, an ONNX `metadata_props` entry, both under
//! [`PREPROCESSING_KEY`]) so that every command applies the same thing the
//! model was trained with.

use crate::{NnError, Sequential, Tensor};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// The metadata key of a model's preprocessing (JSON).
pub const PREPROCESSING_KEY: &str = "cipherflow.preprocessing";

/// Most channels a normalization names.
const MAX_CHANNELS: usize = 4096;
/// Most class names.
const MAX_CLASSES: usize = 100_000;
/// Longest class name.
const MAX_NAME: usize = 256;

/// A model's preprocessing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// Subtracted per channel (one value: every channel).
    pub mean: Vec<f32>,
    /// Divided by per channel, after the mean (one value: every channel).
    pub std: Vec<f32>,
    /// Class names, in class-index order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
    /// Activation ranges measured on calibration data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// The largest `|x|` entering each layer of a model on some inputs (after
/// normalization): the interval an approximation of a non-polynomial
/// activation must cover. A statistic of the data it was measured on:
/// training stores it only for models trained without differential
/// privacy (a DP guarantee does not cover it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// One bound per layer, by layer index.
    pub bounds: Vec<f32>,
    /// How many inputs they were measured on.
    pub inputs: usize,
}

/// Most layers a calibration describes.
const MAX_LAYERS: usize = 1 << 16;

/// Inputs run per forward pass when measuring.
const MEASURE_CHUNK: usize = 256;

impl Calibration {
    /// Measures the bounds on `[N, F]` inputs (already normalized), a chunk
    /// at a time.
    pub fn measure(model: &mut Sequential, features: &Array2<f32>) -> Result<Self, NnError> {
        let shape = model.input_shape().to_vec();
        let per: usize = shape.iter().product();
        if features.ncols() != per || features.nrows() == 0 {
            return Err(NnError::shape(
                "calibration inputs",
                &[features.nrows().max(1), per],
                features.shape(),
            ));
        }
        let mut bounds = vec![0f32; model.layers().len()];
        for chunk in features.axis_chunks_iter(ndarray::Axis(0), MEASURE_CHUNK) {
            let mut dims = vec![chunk.nrows()];
            dims.extend(&shape);
            let x = Tensor::from_shape_vec(ndarray::IxDyn(&dims), chunk.iter().copied().collect())
                .map_err(|e| NnError::Config(format!("calibration inputs: {e}")))?;
            for (b, v) in bounds.iter_mut().zip(model.input_bounds(&x)?) {
                *b = b.max(v);
            }
        }
        Ok(Calibration {
            bounds,
            inputs: features.nrows(),
        })
    }

    fn validate(&self) -> Result<(), NnError> {
        if self.bounds.len() > MAX_LAYERS
            || self.bounds.iter().any(|b| !b.is_finite() || *b < 0.0)
            || self.inputs == 0
        {
            return Err(config(
                "calibration bounds must be finite, non-negative, at most one per layer, \
                 measured on at least one input",
            ));
        }
        Ok(())
    }
}

fn config(msg: impl Into<String>) -> NnError {
    NnError::Config(msg.into())
}

impl Preprocessing {
    /// `(x − mean[c]) / std[c]` per channel `c`.
    pub fn normalize(mean: Vec<f32>, std: Vec<f32>) -> Result<Self, NnError> {
        let p = Preprocessing {
            mean,
            std,
            class_names: None,
            calibration: None,
        };
        p.validate()?;
        Ok(p)
    }

    /// Parses `--normalize`: `MEAN,STD` (every channel), or `M1,…,Mc,S1,…,Sc`
    /// (the first half means, the second half standard deviations).
    pub fn parse_normalize(s: &str) -> Result<Self, NnError> {
        let v = s
            .split(',')
            .map(|x| x.trim().parse::<f32>())
            .collect::<Result<Vec<f32>, _>>()
            .map_err(|_| config(format!("--normalize {s:?}: expected MEAN,STD (numbers)")))?;
        if v.len() < 2 || !v.len().is_multiple_of(2) {
            return Err(config(format!(
                "--normalize {s:?}: expected MEAN,STD or M1,…,Mc,S1,…,Sc"
            )));
        }
        let (mean, std) = v.split_at(v.len() / 2);
        Self::normalize(mean.to_vec(), std.to_vec())
    }

    /// The checks on a preprocessing read from a file or given by a user.
    pub fn validate(&self) -> Result<(), NnError> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(config(
                "normalization needs as many means as standard deviations (at least one)",
            ));
        }
        if self.mean.len() > MAX_CHANNELS {
            return Err(config(format!("more than {MAX_CHANNELS} channels")));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
        {
            return Err(config(
                "normalization means must be finite and standard deviations positive",
            ));
        }
        if let Some(names) = &self.class_names {
            if names.len() > MAX_CLASSES || names.iter().any(|n| n.len() > MAX_NAME) {
                return Err(config(format!(
                    "at most {MAX_CLASSES} class names of at most {MAX_NAME} bytes"
                )));
            }
        }
        if let Some(c) = &self.calibration {
            c.validate()?;
        }
        Ok(())
    }

    /// Checks that the normalization fits inputs of `shape` (channels
    /// first): one value, or one per channel.
    pub fn check(&self, shape: &[usize]) -> Result<(), NnError> {
        self.validate()?;
        let channels = if shape.len() >= 2 {
            shape.first().copied().unwrap_or(1)
        } else {
            1
        };
        if self.mean.len() != 1 && self.mean.len() != channels {
            return Err(config(format!(
                "normalization of {} channels for inputs of shape {shape:?}",
                self.mean.len()
            )));
        }
        Ok(())
    }

    /// Normalizes `[N, F]` inputs of `shape` in place.
    pub fn apply(&self, features: &mut Array2<f32>, shape: &[usize]) -> Result<(), NnError> {
        let f: usize = shape.iter().product();
        if features.ncols() != f {
            return Err(NnError::shape("inputs", &[f], &[features.ncols()]));
        }
        self.apply_columns(features, shape, 0)
    }

    /// [`Preprocessing::apply`] to a block of each example's values: the
    /// columns of `features` are the flattened values `first..` of inputs
    /// of `shape` (a party holding some of every example's features).
    pub fn apply_columns(
        &self,
        features: &mut Array2<f32>,
        shape: &[usize],
        first: usize,
    ) -> Result<(), NnError> {
        self.check(shape)?;
        let f: usize = shape.iter().product();
        if first
            .checked_add(features.ncols())
            .is_none_or(|end| end > f)
        {
            return Err(NnError::shape("inputs", &[f], &[first, features.ncols()]));
        }
        let channels = self.mean.len();
        let plane = if channels == 1 { f } else { f / channels };
        for mut row in features.rows_mut() {
            for (i, v) in row.iter_mut().enumerate() {
                let c = ((first + i) / plane.max(1)).min(channels - 1);
                let (m, s) = (
                    self.mean.get(c).copied().unwrap_or(0.0),
                    self.std.get(c).copied().unwrap_or(1.0),
                );
                *v = (*v - m) / s;
            }
        }
        Ok(())
    }

    /// Reads class names from a text file, one per line in class-index
    /// order (blank lines and surrounding spaces ignored; at most 100,000
    /// distinct names of at most 256 bytes; the file at most 16 MiB).
    pub fn read_class_names(path: &std::path::Path) -> Result<Vec<String>, NnError> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| NnError::io(path, e))?;
        let mut text = String::new();
        f.take(16 << 20)
            .read_to_string(&mut text)
            .map_err(|e| NnError::io(path, e))?;
        Self::parse_class_names(&text, &path.display().to_string())
    }

    /// [`Preprocessing::read_class_names`] on text already read (a form's
    /// field, at most 16 MiB); `origin` names it in errors.
    pub fn parse_class_names(text: &str, origin: &str) -> Result<Vec<String>, NnError> {
        let bad = |reason: String| NnError::Data {
            path: origin.to_string(),
            reason,
        };
        if text.len() > 16 << 20 {
            return Err(bad("more than 16 MiB of class names".into()));
        }
        let names: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() < 2 || names.len() > MAX_CLASSES {
            return Err(bad(format!(
                "{} class names; give 2 to {MAX_CLASSES}, one per line",
                names.len()
            )));
        }
        if let Some(n) = names.iter().find(|n| n.len() > MAX_NAME) {
            return Err(bad(format!(
                "a class name of {} bytes (at most {MAX_NAME})",
                n.len()
            )));
        }
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("class name {:?} appears twice", w[0])));
        }
        Ok(names)
    }

    /// The JSON stored in a model file.
    pub fn to_json(&self) -> Result<String, NnError> {
        serde_json::to_string(self).map_err(|e| NnError::ModelFile(e.to_string()))
    }

    /// Reads the JSON stored in a model file (at most 16 MiB), checked.
    pub fn from_json(s: &str) -> Result<Self, NnError> {
        if s.len() > 16 << 20 {
            return Err(NnError::ModelFile(
                "preprocessing metadata over 16 MiB".into(),
            ));
        }
        let p: Preprocessing = serde_json::from_str(s)
            .map_err(|e| NnError::ModelFile(format!("{PREPROCESSING_KEY}: {e}")))?;
        p.validate()
            .map_err(|e| NnError::ModelFile(format!("{PREPROCESSING_KEY}: {e}")))?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mnist_normalization_matches_torchvision() {
        let p = Preprocessing::parse_normalize("0.1307,0.3081").unwrap();
        let mut x = Array2::from_shape_vec((1, 4), vec![0.0, 0.1307, 1.0, 0.5]).unwrap();
        p.apply(&mut x, &[1, 2, 2]).unwrap();
        let want = [
            -0.1307 / 0.3081,
            0.0,
            (1.0 - 0.1307) / 0.3081,
            (0.5 - 0.1307) / 0.3081,
        ];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn per_channel_values_reach_their_plane() {
        let p = Preprocessing::parse_normalize("1,2,3,1,1,0.5").unwrap();
        let mut x = Array2::from_elem((2, 6), 3.0f32);
        p.apply(&mut x, &[3, 1, 2]).unwrap();
        assert_eq!(x.row(1).to_vec(), vec![2.0, 2.0, 1.0, 1.0, 0.0, 0.0]);
        assert!(p.apply(&mut Array2::zeros((1, 4)), &[2, 1, 2]).is_err());
    }

    #[test]
    fn bad_normalizations_and_metadata_are_refused() {
        for s in ["", "0.5", "a,b", "0.1,0", "0.1,-1", "1,2,3", "NaN,1"] {
            assert!(Preprocessing::parse_normalize(s).is_err(), "{s:?}");
        }
        let p = Preprocessing {
            class_names: Some(vec!["cat".into(), "dog".into()]),
            ..Preprocessing::parse_normalize("0.5,0.25").unwrap()
        };
        assert_eq!(Preprocessing::from_json(&p.to_json().unwrap()).unwrap(), p);
        for j in [
            r#"{"mean":[0.5],"std":[0]}"#,
            r#"{"mean":[],"std":[]}"#,
            r#"{"mean":[0.5],"std":[1],"extra":1}"#,
            r#"{"mean":[0.5],"std":[1],"calibration":{"bounds":[-1],"inputs":3}}"#,
            r#"{"mean":[0.5],"std":[1],"calibration":{"bounds":[1],"inputs":0}}"#,
            "not json",
        ] {
            assert!(Preprocessing::from_json(j).is_err(), "{j}");
        }
    }
}
