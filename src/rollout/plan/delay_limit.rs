//! `scaleDownDelayRevisionLimit`: how many old revisions may wait out the scale-down delay at
//! once, as Argo Rollouts counts them (newest first, by revision number).

use std::collections::BTreeSet;

use super::Draft;
use crate::rollout::observe::ObservedReplicaSet;

/// Of the old revisions that still have pods and would wait out the delay, the hashes of those
/// beyond the limit: all but the newest `limit`, which are scaled down without waiting. A new
/// promotion restarts the delay of the ones kept, so a Rollout promoted often keeps at most
/// `limit` old revisions up instead of one per promotion.
pub(super) fn beyond_limit(draft: &Draft, waiting: &[&ObservedReplicaSet]) -> BTreeSet<String> {
    let Some(limit) = draft.settings.scale_down_delay_revision_limit else {
        return BTreeSet::new();
    };
    let mut newest_first = waiting.to_vec();
    // The revision number follows the last time a revision was rolled out (a revert renumbers
    // it); the creation time and the name break ties so the order is total.
    newest_first
        .sort_by(|a, b| (b.revision, b.created, &b.name).cmp(&(a.revision, a.created, &a.name)));
    newest_first
        .into_iter()
        .skip(usize::try_from(limit).unwrap_or(0))
        .map(|rs| rs.hash.clone())
        .collect()
}
