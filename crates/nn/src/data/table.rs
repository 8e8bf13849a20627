//! CSV tables with a header: numeric feature columns, an optional label
//! column and an optional id column, named by the caller. A bad value is
//! reported with its row (as a spreadsheet counts it, the header being
//! row 1) and its column's name.

use super::inputs::{InputOptions, Inputs, MAX_VALUES};
use crate::NnError;
use ndarray::Array2;
use std::collections::BTreeMap;
use std::path::Path;

fn bad(path: &Path, reason: impl Into<String>) -> NnError {
    NnError::Data {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Labels as class indices: integers as they are; otherwise the distinct
/// names, sorted, numbered from 0 (and returned as class names).
fn class_indices(raw: Vec<String>) -> (Vec<usize>, Option<Vec<String>>) {
    if let Ok(v) = raw
        .iter()
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
    {
        return (v, None);
    }
    let names: BTreeMap<&str, usize> = raw.iter().map(|s| (s.as_str(), 0)).collect();
    let names: Vec<String> = names.keys().map(|s| s.to_string()).collect();
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let v = raw
        .iter()
        .map(|s| index.get(s.as_str()).copied().unwrap_or(0))
        .collect();
    (v, Some(names))
}

/// Parses a CSV table (already read and decompressed).
pub fn parse_table(path: &Path, bytes: &[u8], opts: &InputOptions) -> Result<Inputs, NnError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = r
        .headers()
        .map_err(|e| bad(path, format!("header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let find = |name: &Option<String>, what: &str| -> Result<Option<usize>, NnError> {
        match name {
            None => Ok(None),
            Some(n) => header.iter().position(|h| h == n).map(Some).ok_or_else(|| {
                bad(
                    path,
                    format!("no {what} column {n:?} (columns: {})", header.join(", ")),
                )
            }),
        }
    };
    let label_col = find(&opts.label_column, "label")?;
    let id_col = find(&opts.id_column, "id")?;
    let feature_cols: Vec<usize> = (0..header.len())
        .filter(|&c| Some(c) != label_col && Some(c) != id_col)
        .collect();
    if feature_cols.is_empty() {
        return Err(bad(path, "no feature columns"));
    }
    let (mut values, mut ids, mut raw_labels) = (Vec::new(), Vec::new(), Vec::new());
    for (i, rec) in r.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| bad(path, format!("row {row}: {e}")))?;
        if rec.len() != header.len() {
            return Err(bad(
                path,
                format!(
                    "row {row}: {} fields, the header has {}",
                    rec.len(),
                    header.len()
                ),
            ));
        }
        if values.len() + feature_cols.len() > MAX_VALUES {
            return Err(bad(path, format!("more than {MAX_VALUES} values")));
        }
        for &c in &feature_cols {
            let field = rec.get(c).unwrap_or("");
            let name = header.get(c).map_or("", String::as_str);
            let v: f32 = field.parse().map_err(|_| {
                bad(
                    path,
                    format!(
                        "row {row}, column {name:?}: {field:?} is not a number (a column \
                         that is not a feature is named as the label or id column)"
                    ),
                )
            })?;
            if !v.is_finite() {
                return Err(bad(path, format!("row {row}, column {name:?}: not finite")));
            }
            values.push(v);
        }
        ids.push(match id_col {
            Some(c) => rec.get(c).unwrap_or("").to_string(),
            None => (row - 2).to_string(),
        });
        if let Some(c) = label_col {
            raw_labels.push(rec.get(c).unwrap_or("").to_string());
        }
    }
    if ids.is_empty() {
        return Err(bad(path, "no data rows"));
    }
    let width = feature_cols.len();
    let (labels, class_names) = match label_col {
        Some(_) => {
            let (l, n) = class_indices(raw_labels);
            (Some(l), n)
        }
        None => (None, None),
    };
    Ok(Inputs {
        features: Array2::from_shape_vec((ids.len(), width), values)
            .map_err(|e| bad(path, e.to_string()))?,
        ids,
        shape: vec![width],
        labels,
        class_names,
    })
}
