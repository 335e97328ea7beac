//! Restart (`spec.restartAt`): the stable revision's pods created before that time are replaced,
//! a few at a time, without a new revision. Called by [`super::plan`]; pure.
//!
//! Pods are evicted (so PodDisruptionBudgets hold) and their ReplicaSet recreates them. At most
//! `maxUnavailable` (at least one) of the stable revision's pods are unready or going at any time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::observe::ObservedPod;
use super::plan::{Action, Draft};
use crate::api::{Rollout, RolloutSpec, RolloutStatus};

/// The stable revision whose pods a pending restart replaces; None when no restart is pending.
pub fn pending_hash(rollout: &Rollout) -> Option<String> {
    let status = rollout.status.as_ref()?;
    pending(&rollout.spec, status)?;
    status.stable_revision.clone()
}

/// The restart time, when a restart is asked for and not yet done.
fn pending(spec: &RolloutSpec, status: &RolloutStatus) -> Option<Timestamp> {
    let at = spec.restart_at.as_ref()?.0;
    let done = status.restarted_at.as_ref().is_some_and(|t| t.0 >= at);
    (!done).then_some(at)
}

/// While pods are being replaced, look again this often even if no watch event comes: the pod
/// cache and the ReplicaSet status arrive on different watches.
const RECHECK: SignedDuration = SignedDuration::from_secs(5);

pub(crate) fn plan(d: &mut Draft) {
    let Some(at) = pending(d.spec, &d.status) else {
        return;
    };
    if d.now < at {
        d.requeue_at(at);
        return;
    }
    let Some(stable) = d.status.stable_revision.clone() else {
        return;
    };
    let desired = d.replica_set(&stable).map_or(0, |rs| rs.replicas);
    let pods: Vec<&ObservedPod> = d
        .observed
        .pods
        .iter()
        .filter(|p| p.hash == stable)
        .collect();
    let mut old: Vec<&ObservedPod> = pods
        .iter()
        .copied()
        .filter(|p| !p.terminating && p.created.is_none_or(|c| c < at))
        .collect();
    let ready = pods.iter().filter(|p| p.ready && !p.terminating).count() as i32;
    let going = pods.iter().any(|p| p.terminating);

    if old.is_empty() {
        if !going && ready >= desired {
            d.status.restarted_at = Some(Time(d.now));
            d.event(
                "Restarted",
                format!("every pod of revision {stable} is newer than restartAt"),
            );
        } else {
            d.requeue_at(d.now + RECHECK);
        }
        return;
    }

    let max_unavailable = crate::rollout::plan::max_unavailable(d.spec, desired).max(1);
    let unavailable = (desired - ready).max(0);
    let budget = (max_unavailable - unavailable).max(0) as usize;
    // Oldest first; names break ties so a repeated plan picks the same pods.
    old.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    for pod in old.into_iter().take(budget) {
        d.actions.push(Action::EvictPod {
            name: pod.name.clone(),
        });
        d.event(
            "RestartingPod",
            format!("evicting pod {} (created before restartAt)", pod.name),
        );
    }
    d.requeue_at(d.now + RECHECK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::fixtures::*;
    use crate::rollout::plan::Plan;

    fn pod(name: &str, hash: &str, created: Timestamp) -> ObservedPod {
        ObservedPod {
            name: name.into(),
            hash: hash.into(),
            created: Some(created),
            ready: true,
            terminating: false,
        }
    }

    fn evicted(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::EvictPod { name } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The ReplicaSet controller and the kubelet: evicted pods go, a ready replacement comes.
    fn replace_evicted(sim: &mut Sim, n: &mut u32) {
        let hash = sim.status().stable_revision.clone().unwrap();
        let gone = sim.world.pods.iter().filter(|p| p.terminating).count();
        sim.world.pods.retain(|p| !p.terminating);
        for _ in 0..gone {
            *n += 1;
            let p = pod(&format!("new-{n}"), &hash, sim.now);
            sim.world.pods.push(p);
        }
    }

    #[test]
    fn replaces_old_pods_one_at_a_time_then_records_the_restart() {
        let mut sim = Sim::healthy(RolloutBuilder::canary().replicas(3).build());
        let stable = hash_of("web:1");
        let before = sim.now;
        sim.world.pods = (0..3)
            .map(|i| pod(&format!("old-{i}"), &stable, before - secs(100 - i)))
            .collect();
        sim.advance(10);
        sim.rollout.spec.restart_at = Some(Time(sim.now));
        sim.advance(1);

        let mut order = Vec::new();
        let mut n = 0;
        for _ in 0..3 {
            let plan = sim.reconcile();
            let names = evicted(&plan);
            assert_eq!(
                names.len(),
                1,
                "maxUnavailable 0 still restarts one pod at a time"
            );
            order.extend(names);
            // While the replacement is not ready, nothing more goes.
            let plan = sim.reconcile();
            assert!(evicted(&plan).is_empty());
            replace_evicted(&mut sim, &mut n);
            sim.advance(1);
        }
        assert_eq!(order, ["old-0", "old-1", "old-2"], "oldest first");
        assert!(sim.status().restarted_at.is_none());
        let plan = sim.reconcile();
        assert!(evicted(&plan).is_empty());
        assert_eq!(sim.status().restarted_at, Some(Time(sim.now)));
        assert!(plan.events.iter().any(|e| e.reason == "Restarted"));
        // Done: nothing more, ever, until restartAt changes.
        assert!(sim.reconcile().actions.is_empty());
    }

    #[test]
    fn max_unavailable_sets_how_many_go_at_once_and_a_future_time_waits() {
        let mut sim = Sim::healthy(
            RolloutBuilder::canary()
                .replicas(4)
                .max_unavailable(pct(50))
                .build(),
        );
        let stable = hash_of("web:1");
        let at = sim.now + secs(60);
        sim.world.pods = (0..4)
            .map(|i| pod(&format!("old-{i}"), &stable, sim.now - secs(10 - i)))
            .collect();
        sim.rollout.spec.restart_at = Some(Time(at));
        let plan = sim.reconcile();
        assert!(evicted(&plan).is_empty(), "not before restartAt");
        assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(60)));
        sim.advance(60);
        assert_eq!(evicted(&sim.reconcile()), ["old-0", "old-1"]);
    }
}
