#![forbid(unsafe_code)]
//! fledge: progressive delivery for Kubernetes.
//!
//! Data flows one way: watch events -> [`rollout::observe`] -> [`rollout::plan`] (pure) ->
//! [`rollout::act`] -> status. The map of the code is docs/design.md.

pub mod analysis;
pub mod api;
pub mod cli;
pub mod client;
pub mod freshness;
pub mod leader;
pub mod notify;
pub mod rollout;
pub mod runtime;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod traffic;

/// Errors at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),

    #[error("serialization error: {0}")]
    Serialization(#[source] serde_json::Error),

    #[error("telemetry: {0}")]
    Telemetry(String),

    #[error("Kubernetes client configuration: {0}")]
    Config(String),

    #[error("leader election: {0}")]
    Leader(String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
