//! The `workloadRef` Deployment's own pods during a migration (`workloadRef.scaleDown`): left
//! alone (`never`), scaled to 0 once the Rollout is Healthy (`onsuccess`), or scaled down as the
//! Rollout's pods become available (`progressively`), as Argo Rollouts does.

use super::{Action, Draft};
use crate::api::ScaleDown;

/// Scales the Deployment to what its `scaleDown` mode asks for now, when that is not what it has.
pub(super) fn scale_workload(draft: &mut Draft) {
    let Some(w) = &draft.spec.workload_ref else {
        return;
    };
    let Some(current) = draft.observed.workload_replicas else {
        return;
    };
    let healthy = draft.status.current_revision == draft.status.stable_revision
        && draft
            .status
            .stable_revision
            .as_deref()
            .is_some_and(|h| draft.settled(h, draft.replicas));
    let target = match (w.scale_down.unwrap_or_default(), healthy) {
        (ScaleDown::Never, _) | (ScaleDown::Onsuccess, false) => return,
        (ScaleDown::Onsuccess | ScaleDown::Progressively, true) => 0,
        (ScaleDown::Progressively, false) => {
            let available = draft
                .observed
                .replica_sets
                .iter()
                .map(|rs| rs.available)
                .sum();
            progressive_target(draft.replicas, current, available)
        }
    };
    if target != current {
        draft.actions.push(Action::ScaleWorkload {
            name: w.name.clone(),
            replicas: target,
        });
    }
}

/// The Deployment's size while the Rollout takes over: together they keep the Rollout's
/// `replicas` available, so each available Rollout pod (of any revision) replaces one of the
/// Deployment's. Nothing goes while the Rollout has no available pod to replace it, and the
/// Deployment never grows: its pods run the same template, so more of them would not replace
/// Rollout pods that fail any better than the Rollout's own ReplicaSet does.
fn progressive_target(replicas: i32, current: i32, rollout_available: i32) -> i32 {
    if rollout_available <= 0 {
        return current;
    }
    replicas
        .saturating_sub(rollout_available)
        .clamp(0, current.max(0))
}
