//! A problem with a spec, at a field path: what `InvalidSpec` conditions, run errors and
//! `kubectl fledge lint` report. Shared by the Rollout and AnalysisRun sides.

use std::fmt;

/// One problem, at a field path relative to the spec that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
