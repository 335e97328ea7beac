//! Retiring routes: routing objects the spec no longer names give the stable all traffic again.

use std::collections::BTreeSet;

use kube::ResourceExt;

use super::validate::{pending_writes, spec_routing, target};
use super::{Action, Draft};
use crate::api::conditions as cond;
use crate::api::{Rollout, RolloutStatus, TrafficRouting};
use crate::traffic::{self, Found, ObjectKey};

/// Routing objects the spec no longer names (its `trafficRouting` changed or was removed in
/// the middle of a rollout) give the stable all traffic again and lose what fledge added, ahead
/// of everything else in the plan. Until that is done, `appliedTrafficRouting` keeps naming them.
/// An object that cannot be read (its API or cache is unavailable, or it is gone) may still send
/// traffic to the canary, so the routing is kept, with a condition, and retried.
pub(super) fn retire_routing(
    draft: &mut Draft,
    rollout: &Rollout,
    old: &RolloutStatus,
    generation: Option<i64>,
) {
    let spec = spec_routing(draft.spec);
    let applied = old
        .applied_traffic_routing
        .as_ref()
        .filter(|a| Some(*a) != spec);
    let (writes, unreadable) = match applied {
        Some(applied) => {
            // An object the new routing still names is the new routing's to write.
            let kept: BTreeSet<ObjectKey> = spec
                .map(|s| traffic::routers(s, &rollout.name_any()))
                .unwrap_or_default()
                .iter()
                .flat_map(|r| r.reads())
                .collect();
            let objects = &draft.observed.traffic;
            (
                removal_writes(rollout, applied, objects, &kept),
                unreadable(rollout, applied, objects, &kept),
            )
        }
        None => (Vec::new(), None),
    };
    draft.status.applied_traffic_routing = if writes.is_empty() && unreadable.is_none() {
        spec.cloned()
    } else {
        applied.cloned()
    };
    draft.actions.splice(0..0, writes);
    let conditions = &mut draft.status.conditions;
    let Some(why) = unreadable else {
        cond::remove(conditions, cond::RETIRED_ROUTING_PENDING);
        return;
    };
    let message = format!(
        "a routing taken out of trafficRouting cannot be given back to the stable: {why}; it \
         stays in status.appliedTrafficRouting and is retried"
    );
    let reported = cond::find(&old.conditions, cond::RETIRED_ROUTING_PENDING)
        .is_some_and(|c| c.message == message);
    cond::set(
        conditions,
        cond::RETIRED_ROUTING_PENDING,
        true,
        cond::REASON_ROUTING_UNREADABLE,
        &message,
        generation,
        draft.now,
    );
    if !reported {
        draft.warning("RoutingNotRetired", message);
    }
    let at = draft.after_seconds(draft.now, RETIRE_RETRY_SECONDS);
    draft.requeue_at(at);
}

/// How often a routing that could not be read is looked at again.
const RETIRE_RETRY_SECONDS: i32 = 30;

/// Why `routing`'s objects (other than those in `kept`) cannot be given back to the stable now,
/// if they cannot: one is not read, its API is unavailable, or an object it needs is missing.
/// An object fledge creates itself (a TrafficSplit, a canary Ingress) may be missing.
fn unreadable(
    rollout: &Rollout,
    routing: &TrafficRouting,
    objects: &traffic::Objects,
    kept: &BTreeSet<ObjectKey>,
) -> Option<String> {
    let status = rollout.status.clone().unwrap_or_default();
    let stable = status.stable_revision.unwrap_or_default();
    let current = status.current_revision.unwrap_or_else(|| stable.clone());
    let target = target(rollout, &stable, &current);
    for router in traffic::routers(routing, &rollout.name_any()) {
        let keys = router.reads();
        if keys.iter().any(|k| kept.contains(k)) {
            continue;
        }
        for key in &keys {
            match objects.get(key) {
                Some(Found::Object(_)) => {}
                Some(Found::NoApi(why)) => return Some(format!("cannot read {key}: {why}")),
                None => return Some(format!("{key} was not read")),
                // check() requires the objects the router edits and not the ones it creates.
                Some(Found::Missing) => {
                    if let Err(why) = router.check(objects, &target) {
                        return Some(why);
                    }
                }
            }
        }
    }
    None
}

/// The writes that give the stable all traffic on `routing`'s objects and take out what fledge
/// added, between the revisions the status records; objects in `kept` are left alone.
pub(super) fn removal_writes(
    rollout: &Rollout,
    routing: &TrafficRouting,
    objects: &traffic::Objects,
    kept: &BTreeSet<ObjectKey>,
) -> Vec<Action> {
    let status = rollout.status.clone().unwrap_or_default();
    let stable = status.stable_revision.unwrap_or_default();
    let current = status.current_revision.unwrap_or_else(|| stable.clone());
    let target = target(rollout, &stable, &current);
    let mut actions = Vec::new();
    for router in traffic::routers(routing, &rollout.name_any()) {
        if router.reads().iter().any(|k| kept.contains(k)) {
            continue;
        }
        if let Ok(writes) = router.remove_all(objects, &target) {
            actions.extend(pending_writes(objects, writes));
        }
    }
    actions
}
