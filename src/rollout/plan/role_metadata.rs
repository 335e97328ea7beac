//! Role metadata (`canaryMetadata`/`stableMetadata`, `previewMetadata`/`activeMetadata`): which
//! labels and annotations each ReplicaSet's pods should carry for the role its revision holds
//! once this plan's other writes are done, as Argo Rollouts' ephemeral metadata does.

use super::{Action, Draft};
use crate::api::PodMetadata;

/// The metadata each revision's role asks for, against what its ReplicaSet records: one
/// `SetRoleMetadata` per ReplicaSet that differs. Runs after the strategy, so a promotion in this
/// plan already moves the metadata: the stable's metadata goes to the revision that became the
/// stable, and the revision that stopped being it loses its own.
pub(super) fn sync_role_metadata(d: &mut Draft, current: &str) {
    let (stable_md, new_md) = crate::api::pod_metadata::roles(&d.spec.strategy);
    let (stable_md, new_md) = (stable_md.cloned(), new_md.cloned());
    let stable = d.status.stable_revision.clone();
    // The first revision, and a revision fully promoted, is the stable and nothing else.
    let promoted = stable.as_deref().is_none_or(|s| s == current);
    let wanted = |hash: &str| -> PodMetadata {
        let role = if hash == current && !promoted {
            &new_md
        } else if hash == current || stable.as_deref() == Some(hash) {
            &stable_md
        } else {
            &None
        };
        role.clone().unwrap_or_default()
    };
    let deleted = |name: &str| {
        d.actions
            .iter()
            .any(|a| matches!(a, Action::DeleteReplicaSet { name: n } if n == name))
    };
    let mut writes = Vec::new();
    for rs in d
        .observed
        .replica_sets
        .iter()
        .filter(|rs| !deleted(&rs.name))
    {
        let want = wanted(&rs.hash);
        if rs.role_metadata != want || rs.pods_out_of_role {
            // A stray pod may keep a key of a role this revision no longer holds, which its
            // record no longer names: the write takes every role key it does not want off.
            let previous = if rs.pods_out_of_role {
                rs.role_metadata
                    .with_keys_of(stable_md.iter().chain(new_md.iter()))
            } else {
                rs.role_metadata.clone()
            };
            writes.push(Action::SetRoleMetadata {
                hash: rs.hash.clone(),
                previous,
                metadata: want,
            });
        }
    }
    // A ReplicaSet this plan creates gets its role's metadata right after it is created.
    let created = d.replica_set(current).is_none()
        && d.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyReplicaSet { hash, .. } if hash == current));
    let want = wanted(current);
    if created && !want.is_empty() {
        writes.push(Action::SetRoleMetadata {
            hash: current.to_string(),
            previous: PodMetadata::default(),
            metadata: want,
        });
    }
    d.actions.extend(writes);
}
