#![doc = include_str!("../README.md")]
//!
//! Module map: [`card`] (a model's card and its sections: `he`, `mpc`,
//! plain-tail leakage), [`answers`] (the other answers: lists, uploads,
//! sessions, refusals, the federation's dashboard).

mod answers;
mod card;

pub use answers::{ErrorBody, FederationSummary, ModelList, Round, SessionOpened, Uploaded};
pub use card::{
    ExampleImage, HeQuery, HeadFigures, HostInfo, ModelCard, ModelInfo, MpcSplits, PlainTail,
    SplitLeakage, MAX_EXAMPLE_SIDE, MAX_INFO_LEN, MIN_EXAMPLE_SIDE,
};
