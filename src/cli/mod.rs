//! `kubectl fledge`: the commands people use on a running Rollout. Pure formatting and
//! decisions live here; the binary (src/bin/kubectl-fledge.rs) does the I/O.

pub mod gitops;
pub mod request;
pub mod status;

/// Exit codes scripts can rely on.
pub mod exit {
    /// Done, or Healthy.
    pub const OK: u8 = 0;
    /// Failed: Degraded, aborted, or an error.
    pub const FAILED: u8 = 1;
    /// Gave up waiting.
    pub const TIMEOUT: u8 = 2;
}
