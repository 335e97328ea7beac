//! `kubectl fledge`: the commands people use on a running Rollout, and the offline ones for
//! manifests. Pure formatting and decisions live here; the binary (src/bin/kubectl-fledge/)
//! does the I/O.

pub mod convert;
pub mod gitops;
pub mod lint;
pub mod lint_analysis;
pub mod lint_gates;
pub mod manifest;
pub mod request;
pub mod schema_check;
pub mod status;
pub mod timeline;
pub mod tree;
pub mod undo;

/// Exit codes scripts can rely on.
pub mod exit {
    /// Done, or Healthy.
    pub const OK: u8 = 0;
    /// Failed: Degraded, aborted, or an error.
    pub const FAILED: u8 = 1;
    /// Gave up waiting.
    pub const TIMEOUT: u8 = 2;
}
#[cfg(test)]
mod snapshots;
