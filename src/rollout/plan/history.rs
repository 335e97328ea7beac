//! History: old revisions scaled down after their delay and deleted beyond
//! `revisionHistoryLimit`.

use super::{Action, Draft};
use crate::rollout::observe::ObservedReplicaSet;

/// Old revisions (neither stable nor current): scaled to 0 once their delay is over, and deleted
/// beyond `revisionHistoryLimit`.
pub(super) fn retire_old_revisions(draft: &mut Draft) {
    let keep = [
        draft.status.stable_revision.clone(),
        draft.status.current_revision.clone(),
    ];
    let old: Vec<ObservedReplicaSet> = draft
        .observed
        .replica_sets
        .iter()
        .filter(|rs| !keep.contains(&Some(rs.hash.clone())))
        .cloned()
        .collect();
    let delay_until = draft.status.scale_down_at.as_ref().map(|t| t.0);
    // A revision this plan already sized (an abandoned canary going to 0, or one that still
    // carries traffic) is settled.
    let planned = |draft: &Draft, rs: &ObservedReplicaSet| {
        draft.held.contains(&rs.hash)
            || draft
                .actions
                .iter()
                .any(|a| matches!(a, Action::ApplyReplicaSet { hash, .. } if *hash == rs.hash))
    };
    let unsettled: Vec<&ObservedReplicaSet> = old
        .iter()
        .filter(|rs| rs.replicas > 0 && !planned(draft, rs))
        .collect();
    let no_delay = super::delay_limit::beyond_limit(draft, &unsettled);
    let mut scaled_to_zero = Vec::new();
    let mut waiting = false;
    for rs in old {
        match delay_until {
            _ if planned(draft, &rs) || rs.replicas == 0 => scaled_to_zero.push(rs),
            Some(at) if at > draft.now && !no_delay.contains(&rs.hash) => {
                draft.requeue_at(at);
                waiting = true;
            }
            _ => {
                // Counts for the history now, or the next plan would find one more to delete.
                draft.scale(&rs.hash, 0);
                scaled_to_zero.push(rs);
            }
        }
    }
    if !waiting {
        draft.status.scale_down_at = None;
    }
    let limit = draft.settings.revision_history_limit as usize;
    // Newest first; names break ties so the order is total.
    scaled_to_zero.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    // As Deployments do, a ReplicaSet goes only once its pods are gone: its status still counts
    // them until then.
    for rs in scaled_to_zero
        .into_iter()
        .skip(limit)
        .filter(|rs| rs.current == 0)
    {
        draft
            .actions
            .retain(|a| !matches!(a, Action::ApplyReplicaSet { hash, .. } if *hash == rs.hash));
        draft
            .actions
            .push(Action::DeleteReplicaSet { name: rs.name });
    }
}
