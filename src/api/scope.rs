//! Which objects a controller handles, shared by the Rollout and AnalysisRun controllers.

/// Which Rollouts (and their AnalysisRuns) this controller handles.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Only this namespace; all when None.
    pub namespace: Option<String>,
    /// Only objects labelled `fledge.dev/instance-id=<id>`; without an id, only objects that
    /// have no such label, so two installations never fight over one Rollout.
    pub instance_id: Option<String>,
}
