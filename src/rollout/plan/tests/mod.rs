//! Tier 1 of docs/design.md ("Test tiers"): the pure planner, one test per transition, and
//! property tests over whole simulated rollouts, one file per topic. Every reconcile of a [`Sim`]
//! also checks determinism, the status fixpoint and kstatus (see [`crate::rollout::fixtures`]).

mod anti_affinity;
mod bluegreen;
mod bluegreen_abort;
mod canary;
mod deadline;
mod delay_limit;
mod deletion;
mod history;
mod invalid;
mod istio_subsets;
mod min_pods;
mod mirror_guard;
mod properties;
mod replicas;
mod requests;
mod restart_safety;
mod revisions;
mod role_metadata;
mod rollback;
mod rollback_window;
mod services;
mod status;
mod templates;
mod traffic;
mod workload;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Action, Plan, plan};
use crate::api::conditions as cond;
use crate::api::{Limit, scaled_value};
use crate::api::{PauseReason, Phase, RequestAction, Rollout, RolloutStatus};
use crate::rollout::canary::{Bounds, next_sizes, targets};
use crate::rollout::fixtures::*;
use crate::rollout::observe::{Observed, ObservedReplicaSet};

fn reasons(plan: &Plan) -> Vec<&'static str> {
    plan.events.iter().map(|e| e.reason).collect()
}

/// The plan of a settled run that promoted the new revision.
fn promotion(plans: &[Plan]) -> &Plan {
    plans
        .iter()
        .find(|p| reasons(p).contains(&"Promoted"))
        .expect("a plan promoted the new revision")
}

fn condition<'a>(status: &'a RolloutStatus, type_: &str) -> (&'a str, &'a str) {
    let c = cond::find(&status.conditions, type_).unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.as_str(), c.reason.as_str())
}

fn apply_rs(hash: &str, replicas: i32) -> Action {
    Action::ApplyReplicaSet {
        hash: hash.into(),
        replicas,
    }
}

fn pin(name: &str, hash: &str) -> Action {
    Action::PinService {
        name: name.into(),
        hash: hash.into(),
    }
}

fn has_pause(status: &RolloutStatus, reason: PauseReason) -> bool {
    status.pause_conditions.iter().any(|p| p.reason == reason)
}

/// Makes at most one more pod of each ReplicaSet available: slow pods.
fn ready_one(sim: &mut Sim) {
    for rs in &mut sim.world.replica_sets {
        rs.available = (rs.available + 1).min(rs.current);
        rs.ready = rs.available;
    }
}
