//! Crash-only recovery from storage failures.
//!
//! A write of the coordinator's state, payload files or ledger can fail
//! half-way through a protocol step (a full disk, an I/O error, a ledger
//! locked too long): the state may then hold a change the ledger lacks, and
//! the in-memory coordinator disagrees with both. Rather than unwind every
//! step, [`Recovering`] drops the coordinator and opens it again from disk
//! — exactly what happens after a crash, which `Coordinator::open`
//! reconciles (state first, ledger second, missing ledger entries written
//! once) and the kill/restart tests cover. While it cannot be reopened,
//! every call fails with [`FedError::NotReady`], which peers retry.

use super::Coordinator;
use crate::error::{FedError, Result};

/// Opens the coordinator again from its state and ledger.
pub type Reopen = Box<dyn Fn() -> Result<Coordinator> + Send + Sync>;

/// A failure of the coordinator's own storage (state database — SQLite, or
/// Postgres and its connection —, payload files, ledger).
pub fn is_storage_failure(e: &FedError) -> bool {
    matches!(
        e,
        FedError::Store(_) | FedError::Postgres(_) | FedError::Io { .. } | FedError::Ledger(_)
    )
}

/// A coordinator that is reopened from disk after a storage failure.
pub struct Recovering {
    coord: Option<Coordinator>,
    reopen: Option<Reopen>,
}

impl std::fmt::Debug for Recovering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovering")
            .field("open", &self.coord.is_some())
            .field("can_reopen", &self.reopen.is_some())
            .finish()
    }
}

impl Recovering {
    /// Wraps `coord`; without [`Self::set_reopen`] a failure is only
    /// reported.
    pub fn new(coord: Coordinator) -> Self {
        Self {
            coord: Some(coord),
            reopen: None,
        }
    }

    /// How to reopen the coordinator.
    pub fn set_reopen(&mut self, reopen: Reopen) {
        self.reopen = Some(reopen);
    }

    /// The coordinator, unless it is waiting to be reopened.
    pub fn get(&self) -> Option<&Coordinator> {
        self.coord.as_ref()
    }

    /// Runs `f` on the coordinator (reopening it first if a failure left
    /// it closed); after a storage failure, logs it and reopens.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut Coordinator) -> Result<T>) -> Result<T> {
        if self.coord.is_none() {
            self.recover()?;
        }
        let c = self
            .coord
            .as_mut()
            .ok_or_else(|| FedError::NotReady("the coordinator is recovering".into()))?;
        let out = f(c);
        if let Err(e) = &out {
            if is_storage_failure(e) {
                tracing::error!(error = %e, "coordinator storage failure: reopening from disk");
                // The error goes back to the caller either way.
                let _ = self.recover();
            }
        }
        out
    }

    fn recover(&mut self) -> Result<()> {
        let Some(reopen) = &self.reopen else {
            return Ok(());
        };
        // The old coordinator goes first: it holds the state's lock.
        self.coord = None;
        match reopen() {
            Ok(c) => {
                tracing::warn!("coordinator reopened from its state and ledger");
                self.coord = Some(c);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "coordinator cannot be reopened yet");
                Err(FedError::NotReady(format!(
                    "coordinator storage unavailable: {e}"
                )))
            }
        }
    }
}
