//! Deleting a Rollout with [`FINALIZER`]: its routing objects and Services are put back before
//! the finalizer goes.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::retire_routes::removal_writes;
use super::validate::routings;
use super::{Action, FINALIZER, Plan};
use crate::api::Rollout;
use crate::rollout::observe::{Observed, referenced_services};

/// PURE: the plan for a Rollout being deleted: the [`cleanup`] actions and nothing else. The
/// status stays as it is (nothing writes the status of a Rollout on its way out), no Event is
/// recorded and nothing waits for time.
pub fn deletion(rollout: &Rollout, observed: &Observed) -> Plan {
    Plan {
        actions: cleanup(rollout, observed),
        status: rollout.status.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// PURE: what deleting a Rollout with [`FINALIZER`] needs: its routing objects give the stable all
/// traffic again and lose what fledge added, its Services lose the revision pin, and then the
/// finalizer goes. Routing objects that cannot be read (their API is gone) are left.
pub fn cleanup(rollout: &Rollout, observed: &Observed) -> Vec<Action> {
    if !rollout.finalizers().iter().any(|f| f == FINALIZER) {
        return Vec::new();
    }
    let mut actions: Vec<Action> = routings(rollout)
        .into_iter()
        .flat_map(|r| removal_writes(rollout, r, &observed.traffic, &BTreeSet::new()))
        .collect();
    for (_, name) in referenced_services(rollout) {
        if matches!(observed.services.get(&name), Some(Some(_))) {
            actions.push(Action::UnpinService { name });
        }
    }
    actions.push(Action::RemoveFinalizer);
    actions
}
