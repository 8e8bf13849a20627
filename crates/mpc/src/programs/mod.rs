//! Complete private programs.

pub mod logreg;
pub mod predict;
pub mod train;
