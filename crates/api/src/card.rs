//! A model's card: `GET /v1/models/NAME`, and each entry of the list.

use serde::{Deserialize, Serialize};

/// Longest text of a [`ModelInfo`] field.
pub const MAX_INFO_LEN: usize = 200;

/// What a creator states about a model, shown when browsing and searched.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelInfo {
    /// Its task (e.g. "digit classification").
    pub task: Option<String>,
    /// Its license.
    pub license: Option<String>,
    /// Who made it.
    pub creator: Option<String>,
    /// Its accuracy as the creator measured it (0 to 1).
    pub accuracy: Option<f64>,
    /// Its input domain: the platform measures `plain-tail` leakage on
    /// public data of this name (e.g. "mnist").
    pub domain: Option<String>,
}

impl ModelInfo {
    /// Checks lengths and characters (printable, at most
    /// [`MAX_INFO_LEN`]) and the accuracy's range; the reason otherwise.
    pub fn check(&self) -> Result<(), String> {
        for (what, v) in [
            ("task", &self.task),
            ("license", &self.license),
            ("creator", &self.creator),
            ("domain", &self.domain),
        ] {
            if let Some(v) = v {
                if v.len() > MAX_INFO_LEN || v.chars().any(char::is_control) {
                    return Err(format!(
                        "{what}: at most {MAX_INFO_LEN} printable characters"
                    ));
                }
            }
        }
        match self.accuracy {
            Some(a) if !(0.0..=1.0).contains(&a) => Err(format!("accuracy {a}: from 0 to 1")),
            _ => Ok(()),
        }
    }

    /// Whether `needle` (lower case) occurs in `name` or any text field.
    pub fn matches(&self, name: &str, needle: &str) -> bool {
        std::iter::once(Some(name))
            .chain([&self.task, &self.license, &self.creator, &self.domain].map(Option::as_deref))
            .flatten()
            .any(|t| t.to_lowercase().contains(needle))
    }
}

/// One version of a model as the platform shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelCard {
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
    /// Leading layers the creator lets the platform hold.
    pub head_layers: usize,
    /// Per-example input shape.
    pub input_shape: Vec<usize>,
    /// Number of outputs (classes).
    pub outputs: usize,
    /// The normalization and class names the file stores, as
    /// `cipherflow-nn` writes them (a client passes them on as they are).
    pub preprocessing: Option<serde_json::Value>,
    /// The bound `|x| ≤ input_bound` clients clamp inputs to (`None`: the
    /// model cannot be served encrypted).
    pub input_bound: Option<f64>,
    /// The splits served in `mpc` mode.
    pub splits: Vec<usize>,
    /// What the creator states.
    pub info: ModelInfo,
    /// The modes it is served in: `he`, `mpc`.
    pub modes: Vec<String>,
    /// The encrypted query of the whole model (the model's own page, `he`
    /// mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub he: Option<HeQuery>,
    /// Its splits (the model's own page, `mpc` mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpc: Option<MpcSplits>,
    /// What `plain-tail` mode would reveal (the model's own page, `mpc`
    /// mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_tail: Option<PlainTail>,
}

impl ModelCard {
    /// The class names, when the preprocessing lists them, all as text.
    pub fn class_names(&self) -> Option<Vec<String>> {
        let names: Vec<String> = self
            .preprocessing
            .as_ref()?
            .get("class_names")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()?;
        (!names.is_empty()).then_some(names)
    }
}

/// A model the platform evaluates whole on encrypted inputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeQuery {
    /// The evaluation spec clients make keys for, as `cipherflow-tensor`
    /// writes it (passed on as it is).
    pub spec: serde_json::Value,
    /// What an answer reveals of the model.
    pub output_privacy: String,
    /// One query's time on the platform when it was tried.
    pub measured_ms: f64,
    /// Rotation keys a client makes.
    pub rotations: usize,
}

/// The splits of a model served in `mpc` mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MpcSplits {
    /// The splits offered.
    pub splits: Vec<usize>,
    /// The cheapest split: the least under encryption.
    pub recommended: Option<usize>,
    /// Figures of every head prepared so far.
    pub measured: Vec<HeadFigures>,
    /// The model host online, if any.
    pub host: Option<HostInfo>,
}

/// A prepared head's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadFigures {
    /// Its split.
    pub k: usize,
    /// The head's last layer.
    pub after: String,
    /// Its time on the platform.
    pub head_ms: f64,
    /// Rotation keys it needs.
    pub rotations: usize,
    /// Its ring degree, log₂.
    pub log_n: u32,
    /// Evaluation key bytes a user uploads once.
    pub key_bytes: usize,
    /// Bytes a query sends.
    pub upload_bytes: usize,
    /// Bytes a query receives.
    pub download_bytes: usize,
}

/// A model host as users see it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Its CA certificate (DER, hex), which users verify it against.
    pub ca: String,
    /// SHA-256 of that certificate (what a user may pin out of band).
    pub fingerprint: String,
}

/// The plain-tail leakage measured on a model's public data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlainTail {
    /// The public data's name.
    pub domain: Option<String>,
    /// Where the measurement stands, in words.
    pub status: String,
    /// Per split measured.
    pub leakage: Vec<SplitLeakage>,
}

/// The leakage of one split as the platform measured and shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// A held-out input and its reconstruction (image inputs only).
    #[serde(default)]
    pub example: Option<ExampleImage>,
}

/// Largest side of an example image kept (pixels per row or column).
pub const MAX_EXAMPLE_SIDE: usize = 64;
/// Smallest side: a thinner input (`[1, F]`, a sequence) is not drawn.
pub const MIN_EXAMPLE_SIDE: usize = 4;

/// A held-out input and its reconstruction as 8-bit images, for the model
/// page: what the SSIM and PSNR figures mean, seen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExampleImage {
    /// Channels (1: grey, 3: RGB), rows, columns.
    pub shape: [usize; 3],
    /// The input, `round(255 · clamp(x, 0, 1))` per value, channel-major
    /// as the model reads it.
    pub original: Vec<u8>,
    /// The reconstruction, the same way.
    pub reconstruction: Vec<u8>,
}

impl ExampleImage {
    /// The images of an input of `shape` and its reconstruction (values in
    /// 0..1), when the shape is one (`[H, W]`, or `[C, H, W]` with 1 or 3
    /// channels, sides from [`MIN_EXAMPLE_SIDE`] to [`MAX_EXAMPLE_SIDE`])
    /// and both vectors fill it; `None` for other inputs (tabular data,
    /// sequences, large images).
    pub fn from_values(shape: &[usize], original: &[f32], reconstruction: &[f32]) -> Option<Self> {
        let shape = match *shape {
            [h, w] => [1, h, w],
            [c, h, w] if c == 1 || c == 3 => [c, h, w],
            _ => return None,
        };
        let pixels = |v: &[f32]| {
            v.iter()
                .map(|&x| (x.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect()
        };
        let e = Self {
            shape,
            original: pixels(original),
            reconstruction: pixels(reconstruction),
        };
        e.valid().then_some(e)
    }

    /// Whether the image is well formed: 1 or 3 channels, sides within
    /// bounds, both vectors filling the shape.
    pub fn valid(&self) -> bool {
        let [c, h, w] = self.shape;
        let sides = MIN_EXAMPLE_SIDE..=MAX_EXAMPLE_SIDE;
        let len = c.saturating_mul(h).saturating_mul(w);
        (c == 1 || c == 3)
            && sides.contains(&h)
            && sides.contains(&w)
            && self.original.len() == len
            && self.reconstruction.len() == len
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stated_facts_are_checked_and_searched() {
        let mut i = ModelInfo {
            task: Some("Digit classification".into()),
            ..Default::default()
        };
        assert!(i.check().is_ok());
        assert!(i.matches("cnn", "digit") && i.matches("cnn", "cnn") && !i.matches("cnn", "x"));
        i.accuracy = Some(1.5);
        assert_eq!(i.check().unwrap_err(), "accuracy 1.5: from 0 to 1");
        i.accuracy = Some(f64::NAN);
        assert!(i.check().is_err());
        i.accuracy = None;
        i.license = Some("a\nb".into());
        assert!(i.check().unwrap_err().starts_with("license"));
        i.license = Some("x".repeat(MAX_INFO_LEN + 1));
        assert!(i.check().is_err());
    }

    #[test]
    fn example_images_fit_their_shape() {
        let e = ExampleImage::from_values(&[4, 4], &[0.5; 16], &[2.0; 16]).unwrap();
        assert_eq!(e.shape, [1, 4, 4]);
        assert_eq!((e.original[0], e.reconstruction[0]), (128, 255));
        assert!(ExampleImage::from_values(&[3, 4, 4], &[0.0; 48], &[0.0; 48]).is_some());
        for (shape, n) in [
            (&[2, 4, 4][..], 32),
            (&[4, 3][..], 12),
            (&[65, 4][..], 260),
            (&[16][..], 16),
        ] {
            assert!(
                ExampleImage::from_values(shape, &vec![0.0; n], &vec![0.0; n]).is_none(),
                "{shape:?}"
            );
        }
        assert!(ExampleImage::from_values(&[4, 4], &[0.0; 16], &[0.0; 15]).is_none());
        let bad = ExampleImage {
            shape: [1, usize::MAX, usize::MAX],
            ..Default::default()
        };
        assert!(!bad.valid());
    }

    #[test]
    fn cards_read_leniently_and_list_class_names() {
        let c: ModelCard = serde_json::from_str(
            r#"{"name":"d","version":2,"modes":["he"],"input_shape":[1,8,8],"outputs":4,
                "preprocessing":{"class_names":["a","b","c","d"]},"info":{"task":"t"},"new":1}"#,
        )
        .unwrap();
        assert_eq!(c.class_names().unwrap(), ["a", "b", "c", "d"]);
        assert!(c.he.is_none() && c.info.license.is_none());
        let c: ModelCard =
            serde_json::from_str(r#"{"preprocessing":{"class_names":["a",1]}}"#).unwrap();
        assert!(c.class_names().is_none());
        // Absent sections are left out, not written as null.
        let v = serde_json::to_value(ModelCard::default()).unwrap();
        assert!(v.get("he").is_none() && v.get("mpc").is_none() && v["preprocessing"].is_null());
    }
}
