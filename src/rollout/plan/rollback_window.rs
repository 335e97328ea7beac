//! `rollbackWindow`: a return to one of the last few revisions is rolled out at once, as Argo
//! Rollouts decides it, but ordered by revision numbers rather than creation times.

use super::Draft;
use crate::rollout::observe::ObservedReplicaSet;

/// True when revision `hash` is a rollback within `rollbackWindow.revisions`: its ReplicaSet
/// still exists and is older than the stable's, with fewer than that many ReplicaSets made
/// between the two.
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
    // Ordered by the revision numbers fledge records on its ReplicaSets. Argo Rollouts compares
    // creation times, which the API server keeps to the second: two revisions made within one
    // second would not be ordered, and a return to the older would run the steps. The times
    // serve only where a ReplicaSet has no number (made before numbering existed).
    let numbered = |h: &str| draft.replica_set(h).and_then(|rs| rs.revision).is_some();
    let between = if numbered(hash) && numbered(stable) {
        made_between(draft, hash, stable, |rs| rs.revision)
    } else {
        made_between(draft, hash, stable, |rs| rs.created)
    };
    between.is_some_and(|n| n < usize::try_from(window).unwrap_or(0))
}

/// How many ReplicaSets were made between revision `back` and the stable, in the order `key`
/// gives; `None` when `back` is not the older of the two or either has no key.
fn made_between<K: Ord>(
    draft: &Draft,
    back: &str,
    stable: &str,
    key: impl Fn(&ObservedReplicaSet) -> Option<K>,
) -> Option<usize> {
    let back = draft.replica_set(back).and_then(&key)?;
    let stable = draft.replica_set(stable).and_then(&key)?;
    if back >= stable {
        return None;
    }
    Some(
        draft
            .observed
            .replica_sets
            .iter()
            .filter(|rs| key(rs).is_some_and(|k| back < k && k < stable))
            .count(),
    )
}
