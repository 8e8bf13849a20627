//! Shared helpers of the federated tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use cipherflow_fed::config::FederationConfig;
use cipherflow_nn::data::{load_breast_cancer, load_digits, Dataset, Standardizer};
use std::path::Path;

/// The shipped breast-cancer data, standardised on the train split.
pub fn breast_cancer() -> (Dataset, Dataset) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/breast_cancer.csv");
    let d = load_breast_cancer(&path).unwrap();
    let (mut train, mut test) = d.split(0.2, 7).unwrap();
    let s = Standardizer::fit(&train).unwrap();
    s.apply(&mut train).unwrap();
    s.apply(&mut test).unwrap();
    (train, test)
}

/// The shipped 8×8 digits data (pixels scaled to [0, 1]), split 80/20.
pub fn digits() -> (Dataset, Dataset) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/digits.csv.gz");
    load_digits(&path).unwrap().split(0.2, 7).unwrap()
}

/// A breast-cancer federation configuration (logistic regression).
pub fn config(name: &str, rounds: u64, extra: &str) -> FederationConfig {
    FederationConfig::parse(&format!(
        "name = \"{name}\"\nrounds = {rounds}\nmodel = \"logreg\"\ninput = [30]\nclasses = 2\n\
         round_timeout_s = 5\n{extra}\n[training]\nepochs = 2\nbatch_size = 16\nlr = 0.1\n"
    ))
    .unwrap()
}
