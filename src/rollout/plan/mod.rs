//! PURE: (rollout, observed world, now) -> Plan { actions, new status, requeue }.
//!
//! Every decision the controller makes lives here or in the strategy machines it calls
//! ([`super::canary`], [`super::bluegreen`]). Nothing here touches the network, so each transition
//! is a plain unit test. [`plan`] calls the steps in the files below in an order that is part of
//! the behaviour; docs/design.md ("Inside `plan()`") says which and why.

mod anti_affinity;
mod deadline;
mod delay_limit;
mod deletion;
mod draft;
mod history;
mod invalid;
mod mirror_guard;
mod new_revision;
mod request;
mod retire_routes;
mod role_metadata;
mod rollback_window;
mod selector;
mod settings;
mod status;
mod subset_pins;
mod templates;
#[cfg(test)]
mod tests;
mod validate;
mod workload;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::hash::template_hash;
use super::observe::Observed;
use crate::api::conditions as cond;
use crate::api::{Rollout, RolloutStatus};
use crate::traffic::ObjectKey;

pub use deletion::{cleanup, deletion};
pub(crate) use draft::Draft;
pub(crate) use settings::{Settings, max_unavailable};
pub use validate::{routings, target};

/// What the controller should do for one Rollout, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The status to write; unchanged means no write.
    pub status: RolloutStatus,
    /// When time alone will change the plan (a pause ends, an old ReplicaSet may go).
    pub requeue_after: Option<Duration>,
    /// Kubernetes Events to record.
    pub events: Vec<PlanEvent>,
    /// Revision number of each ReplicaSet (by hash) an `ApplyReplicaSet` writes, recorded in its
    /// `fledge.dev/revision` annotation.
    pub revisions: std::collections::BTreeMap<String, i64>,
    /// The template of each ReplicaSet (by hash) an `ApplyReplicaSet` may have to create: only
    /// the spec's own revision has one (see `templates.rs`).
    pub templates: std::collections::BTreeMap<String, k8s_openapi::api::core::v1::PodTemplateSpec>,
    /// The pods' selector a ReplicaSet the plan creates gets (one that exists keeps its own):
    /// the Rollout's, or its `workloadRef` Deployment's. None when the spec is invalid.
    pub selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// One write. The act layer applies them in order; each is idempotent.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create, or scale, the ReplicaSet of revision `hash`.
    ApplyReplicaSet { hash: String, replicas: i32 },
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit`.
    DeleteReplicaSet { name: String },
    /// Pin Service `name`'s selector to revision `hash`.
    PinService { name: String, hash: String },
    /// Scale the `workloadRef` Deployment to `replicas` (`scaleDown: onsuccess`,
    /// `progressively`).
    ScaleWorkload { name: String, replicas: i32 },
    /// Server-side apply a routing object (only the fields fledge manages).
    ApplyRoute {
        key: ObjectKey,
        body: serde_json::Value,
    },
    /// Delete a routing object fledge created.
    DeleteRoute { key: ObjectKey },
    /// Take the revision hash out of Service `name`'s selector (the Rollout is being deleted).
    UnpinService { name: String },
    /// Add [`FINALIZER`], so that deleting the Rollout gives the stable all traffic first.
    AddFinalizer,
    /// Remove [`FINALIZER`]: the cleanup is done.
    RemoveFinalizer,
    /// Evict pod `name` so its ReplicaSet replaces it (restart).
    EvictPod { name: String },
    /// Create an AnalysisRun owned by the Rollout.
    CreateAnalysisRun {
        name: String,
        labels: std::collections::BTreeMap<String, String>,
        annotations: std::collections::BTreeMap<String, String>,
        spec: Box<crate::api::analysis::AnalysisRunSpec>,
    },
    /// Stop an AnalysisRun that is no longer needed (`spec.terminate`).
    TerminateAnalysisRun { name: String },
    /// Delete a finished AnalysisRun beyond the run history limits.
    DeleteAnalysisRun { name: String },
    /// Put the role metadata `metadata` on revision `hash`'s pod template and pods, taking off
    /// what `previous` (the metadata recorded on its ReplicaSet) put there and it no longer has.
    SetRoleMetadata {
        hash: String,
        previous: crate::api::PodMetadata,
        metadata: crate::api::PodMetadata,
    },
}

/// One line per action for logs: what is written, never whole bodies (a route's document or a
/// run's spec can be kilobytes, and the full plan is at debug level).
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::ApplyReplicaSet { hash, replicas } => write!(f, "scale {hash} to {replicas}"),
            Action::DeleteReplicaSet { name } => write!(f, "delete ReplicaSet {name}"),
            Action::PinService { name, hash } => write!(f, "pin Service {name} to {hash}"),
            Action::UnpinService { name } => write!(f, "unpin Service {name}"),
            Action::ScaleWorkload { name, replicas } => {
                write!(f, "scale Deployment {name} to {replicas}")
            }
            Action::ApplyRoute { key, .. } => write!(f, "apply {key}"),
            Action::DeleteRoute { key } => write!(f, "delete {key}"),
            Action::AddFinalizer => write!(f, "add finalizer"),
            Action::RemoveFinalizer => write!(f, "remove finalizer"),
            Action::EvictPod { name } => write!(f, "evict Pod {name}"),
            Action::CreateAnalysisRun { name, .. } => write!(f, "create AnalysisRun {name}"),
            Action::TerminateAnalysisRun { name } => write!(f, "terminate AnalysisRun {name}"),
            Action::DeleteAnalysisRun { name } => write!(f, "delete AnalysisRun {name}"),
            Action::SetRoleMetadata { hash, .. } => write!(f, "set role metadata of {hash}"),
        }
    }
}

/// The actions as one short line each, for logs.
pub fn summary(actions: &[Action]) -> String {
    actions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Finalizer on Rollouts with a traffic router: their routing objects are put back before the
/// Rollout goes.
pub const FINALIZER: &str = "fledge.dev/traffic-cleanup";

/// A Kubernetes Event the controller records.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Decides everything for one Rollout.
pub fn plan(rollout: &Rollout, observed: &Observed, now: Timestamp) -> Plan {
    let old = rollout.status.clone().unwrap_or_default();
    let generation = rollout.metadata.generation;
    let replicas = rollout
        .spec
        .replicas
        .unwrap_or(crate::api::defaults::REPLICAS)
        .max(0);
    let mut draft = Draft {
        spec: &rollout.spec,
        rollout_name: rollout.metadata.name.clone().unwrap_or_default(),
        namespace: rollout.metadata.namespace.clone().unwrap_or_default(),
        observed,
        now,
        replicas,
        settings: Settings::of(&rollout.spec, replicas),
        // A wait for the gateways lasts only as long as each plan keeps waiting: one that no
        // longer waits leaves the field unset.
        status: RolloutStatus {
            gateway_wait_since: None,
            ..old.clone()
        },
        gateway_wait_since: old.gateway_wait_since.as_ref().map(|t| t.0),
        actions: Vec::new(),
        events: Vec::new(),
        requeue_at: None,
        routing: None,
        wanted_runs: Vec::new(),
        held: BTreeSet::new(),
    };
    // A selector that cannot be resolved now (its Deployment briefly gone) leaves the one the
    // status shows, so the `/scale` subresource keeps selecting the pods that run.
    let selector = selector::effective(rollout, observed);
    if let Ok(s) = &selector {
        draft.status.selector = status::selector_string(s);
    }
    let selector = match selector {
        Ok(s) => s,
        Err(message) => return invalid::invalid(draft, rollout, &old, generation, &message),
    };

    let template = match validate::validate(rollout, observed) {
        Ok(template) => template,
        Err(message) => return invalid::invalid(draft, rollout, &old, generation, &message),
    };
    let hash = template_hash(template);
    match validate::routing(rollout, observed, &old, &hash) {
        Ok(r) => draft.routing = r,
        Err(message) => return invalid::invalid(draft, rollout, &old, generation, &message),
    }
    cond::remove(&mut draft.status.conditions, cond::INVALID_SPEC);
    retire_routes::retire_routing(&mut draft, rollout, &old, generation);
    if draft.routing.is_some() && !rollout.finalizers().iter().any(|f| f == FINALIZER) {
        draft.actions.push(Action::AddFinalizer);
    }

    new_revision::track_revision(&mut draft, &hash);
    request::consume_request(&mut draft);
    status::count_replicas(&mut draft, &hash);
    let deadline_exceeded = deadline::check_progress_deadline(&mut draft, &old);

    if rollout.spec.strategy.blue_green.is_some() {
        crate::rollout::bluegreen::plan(&mut draft, &hash);
    } else {
        crate::rollout::canary::plan(&mut draft, &hash);
    }
    crate::rollout::restart::plan(&mut draft);

    history::retire_old_revisions(&mut draft);
    crate::rollout::gates::retire(&mut draft);
    workload::scale_workload(&mut draft);
    role_metadata::sync_role_metadata(&mut draft, &hash);
    let mut plan = status::finish(draft, &old, generation, deadline_exceeded);
    plan.revisions = crate::rollout::revision::assign(&observed.replica_sets, &plan.actions);
    plan.templates = templates::for_new_replica_sets(&plan.actions, template, &hash);
    plan.selector = Some(selector);
    anti_affinity::add_to_new_replica_sets(
        &mut plan.templates,
        &rollout.spec,
        plan.status.stable_revision.as_deref(),
        rollout.metadata.namespace.as_deref().unwrap_or_default(),
    );
    plan
}
