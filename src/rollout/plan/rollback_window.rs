//! `rollbackWindow`: a return to one of the last few revisions is rolled out at once, as Argo
//! Rollouts decides it (by the ReplicaSets' creation times).

use super::Draft;

/// True when revision `hash` is a rollback within `rollbackWindow.revisions`: its ReplicaSet
/// still exists and was created before the stable's, with fewer than that many ReplicaSets
/// created between the two.
pub(super) fn within(draft: &Draft, hash: &str) -> bool {
    let Some(window) = draft
        .spec
        .rollback_window
        .as_ref()
        .and_then(|w| w.revisions)
        .filter(|n| *n > 0)
    else {
        return false;
    };
    let Some(stable) = draft.status.stable_revision.as_deref() else {
        return false;
    };
    let created = |h: &str| draft.replica_set(h).and_then(|rs| rs.created);
    let (Some(back), Some(stable_at)) = (created(hash), created(stable)) else {
        return false;
    };
    if back >= stable_at {
        return false;
    }
    let between = draft
        .observed
        .replica_sets
        .iter()
        .filter(|rs| rs.created.is_some_and(|c| back < c && c < stable_at))
        .count();
    between < usize::try_from(window).unwrap_or(0)
}
