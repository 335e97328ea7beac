//! The revisions an Istio DestinationRule's subsets are pinned to follow the decisions the
//! stable and canary Services follow: the canary subset moves to a new revision only once the
//! routes send it nothing (a canary replaced in flight, a revert, an abort), and the stable subset
//! moves to the promoted revision before the routes give it all traffic. Without Services
//! (Istio's subset-level split) the subsets are the only thing that separates the revisions.

use super::Draft;

impl Draft<'_> {
    /// Without a canary Service, the revision the routers' objects send the canary's traffic to
    /// (a DestinationRule's canary subset), when they pin one.
    pub(crate) fn canary_subset_revision(&self) -> Option<String> {
        let routing = self.routing.as_ref()?;
        routing
            .routers
            .iter()
            .find_map(|r| r.canary_revision(&self.observed.traffic))
    }

    /// From here on in this plan, the routes render the canary subset pinned to `hash`.
    pub(crate) fn canary_subset_to(&mut self, hash: &str) {
        if let Some(r) = self.routing.as_mut() {
            r.target.canary_hash = hash.to_string();
        }
    }

    /// From here on in this plan, the routes render the stable subset pinned to `hash`.
    pub(crate) fn stable_subset_to(&mut self, hash: &str) {
        if let Some(r) = self.routing.as_mut() {
            r.target.stable_hash = hash.to_string();
        }
    }
}
