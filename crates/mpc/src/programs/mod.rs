//! Complete private programs.

pub mod handoff;
pub mod logreg;
pub mod predict;
pub mod train;
