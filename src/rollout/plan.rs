//! PURE: (rollout, observed world, now) -> Plan { actions, new status, requeue }.
//!
//! Every decision the controller makes lives here or in the strategy machines it calls
//! ([`super::canary`], [`super::bluegreen`]). Nothing here touches the network, so each transition
//! is a plain unit test.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use kube::{Resource, ResourceExt};

use super::hash::template_hash;
use super::observe::{Observed, ObservedReplicaSet, referenced_services};
use crate::api::conditions::{self as cond};
use crate::api::{
    Limit, PauseReason, Phase, Request, RequestAction, Rollout, RolloutSpec, RolloutStatus,
    TrafficRouting, scaled_value,
};
use crate::traffic::{self, Found, ObjectKey, Target, TrafficRouter, TrafficState, Write};

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
    /// Scale the `workloadRef` Deployment to 0 (`scaleDown: onsuccess`).
    ScaleDownWorkload { name: String },
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
        spec: Box<crate::api::analysis::AnalysisRunSpec>,
    },
    /// Stop an AnalysisRun that is no longer needed (`spec.terminate`).
    TerminateAnalysisRun { name: String },
    /// Delete a finished AnalysisRun beyond the run history limits.
    DeleteAnalysisRun { name: String },
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
            Action::ScaleDownWorkload { name } => write!(f, "scale Deployment {name} to 0"),
            Action::ApplyRoute { key, .. } => write!(f, "apply {key}"),
            Action::DeleteRoute { key } => write!(f, "delete {key}"),
            Action::AddFinalizer => write!(f, "add finalizer"),
            Action::RemoveFinalizer => write!(f, "remove finalizer"),
            Action::EvictPod { name } => write!(f, "evict Pod {name}"),
            Action::CreateAnalysisRun { name, .. } => write!(f, "create AnalysisRun {name}"),
            Action::TerminateAnalysisRun { name } => write!(f, "terminate AnalysisRun {name}"),
            Action::DeleteAnalysisRun { name } => write!(f, "delete AnalysisRun {name}"),
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

/// Defaults, as documented on the API fields.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;

/// The plan under construction, shared by the strategy machines.
pub(crate) struct Draft<'a> {
    pub spec: &'a RolloutSpec,
    pub rollout_name: String,
    pub namespace: String,
    pub observed: &'a Observed,
    pub now: Timestamp,
    /// Desired pods.
    pub replicas: i32,
    pub status: RolloutStatus,
    pub actions: Vec<Action>,
    pub events: Vec<PlanEvent>,
    pub requeue_at: Option<Timestamp>,
    /// The traffic routers, when the canary has `trafficRouting`.
    pub routing: Option<Routing>,
    /// AnalysisRuns a gate asked for in this plan; others still running are terminated.
    pub wanted_runs: Vec<(String, super::analysis::RunKind)>,
    /// Old revisions whose size the strategy decided in this plan (they may still carry traffic,
    /// or keep the rollout available): not scaled down by the history clean-up.
    pub held: BTreeSet<String>,
}

/// The routers of a Rollout and what they need to render.
pub(crate) struct Routing {
    pub routers: Vec<Box<dyn TrafficRouter>>,
    pub target: Target,
    /// Why traffic may not move now (a gateway rejected a route), quoted in the status.
    pub rejected: Option<String>,
}

impl Draft<'_> {
    pub fn replica_set(&self, hash: &str) -> Option<&ObservedReplicaSet> {
        self.observed.replica_sets.iter().find(|rs| rs.hash == hash)
    }

    /// Pods of revision `hash` that are available.
    pub fn available(&self, hash: &str) -> i32 {
        self.replica_set(hash).map_or(0, |rs| rs.available)
    }

    /// True when revision `hash` has exactly `replicas` pods asked for, exactly that many exist
    /// and all are available. A scale-down is done only once its pods are gone: until then the
    /// old pods still take their share of the traffic.
    pub fn settled(&self, hash: &str, replicas: i32) -> bool {
        match self.replica_set(hash) {
            Some(rs) => {
                rs.replicas == replicas && rs.current == replicas && rs.available >= replicas
            }
            None => replicas == 0,
        }
    }

    /// Scales revision `hash` to `replicas` (creating its ReplicaSet when needed); no action when
    /// it is already there. A later call for the same revision replaces an earlier one.
    pub fn scale(&mut self, hash: &str, replicas: i32) {
        self.actions
            .retain(|a| !matches!(a, Action::ApplyReplicaSet { hash: h, .. } if h == hash));
        let unchanged = match self.replica_set(hash) {
            Some(rs) => rs.replicas == replicas,
            None => replicas == 0,
        };
        if !unchanged {
            self.actions.push(Action::ApplyReplicaSet {
                hash: hash.to_string(),
                replicas,
            });
        }
    }

    /// Old revisions keep their pods until `seconds` from now.
    pub fn delay_scale_down(&mut self, seconds: i32) {
        let at = self.after_seconds(self.now, seconds);
        self.status.scale_down_at = Some(Time(at));
    }

    /// Points Service `name` at revision `hash`, unless it already is.
    pub fn pin(&mut self, name: Option<&String>, hash: &str) {
        let Some(name) = name else { return };
        self.actions
            .retain(|a| !matches!(a, Action::PinService { name: n, .. } if n == name));
        if self.observed.services.get(name) != Some(&Some(hash.to_string())) {
            self.actions.push(Action::PinService {
                name: name.clone(),
                hash: hash.to_string(),
            });
        }
    }

    pub fn requeue_at(&mut self, at: Timestamp) {
        self.requeue_at = Some(self.requeue_at.map_or(at, |t| t.min(at)));
    }

    pub fn event(&mut self, reason: &'static str, message: impl Into<String>) {
        self.events.push(PlanEvent {
            warning: false,
            reason,
            message: message.into(),
        });
    }

    pub fn warning(&mut self, reason: &'static str, message: impl Into<String>) {
        self.events.push(PlanEvent {
            warning: true,
            reason,
            message: message.into(),
        });
    }

    pub fn has_pause(&self, reason: PauseReason) -> bool {
        self.status
            .pause_conditions
            .iter()
            .any(|p| p.reason == reason)
    }

    /// Adds a pause condition (once) and returns when it started.
    pub fn pause(&mut self, reason: PauseReason) -> Timestamp {
        if let Some(p) = self
            .status
            .pause_conditions
            .iter()
            .find(|p| p.reason == reason)
        {
            return p.start_time.0;
        }
        self.status
            .pause_conditions
            .push(crate::api::PauseCondition {
                reason,
                start_time: Time(self.now),
            });
        self.now
    }

    pub fn unpause(&mut self, reason: PauseReason) {
        self.status.pause_conditions.retain(|p| p.reason != reason);
    }

    /// Paused by a person: a `pause` request or `spec.paused`.
    pub fn user_paused(&self) -> bool {
        self.spec.paused == Some(true) || self.has_pause(PauseReason::UserPaused)
    }

    /// Makes the routing objects hold `state`: writes where they do not yet, ahead of every other
    /// action (an abort's weight 0 goes out before any scaling). Returns true when they hold it
    /// already, which is when a step that set it is done.
    pub fn route(&mut self, state: &TrafficState) -> bool {
        let actions = self.route_writes(state);
        let held = actions.is_empty();
        let objects = &self.observed.traffic;
        let unreported = self
            .routing
            .iter()
            .flat_map(|r| &r.routers)
            .find(|r| r.unreported(objects));
        if !held && let Some(r) = unreported {
            let what = r
                .reads()
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            self.warning(
                "RouteNotReported",
                format!("{what} has no status from any gateway: fledge cannot tell whether traffic follows its weights"),
            );
        }
        // Only this routing's own earlier writes are replaced: the writes that give a retired
        // route back to the stable (see `retire_routing`) stay.
        let own: BTreeSet<ObjectKey> = self
            .routing
            .iter()
            .flat_map(|r| &r.routers)
            .flat_map(|r| r.reads())
            .collect();
        self.actions.retain(|a| match a {
            Action::ApplyRoute { key, .. } | Action::DeleteRoute { key } => !own.contains(key),
            _ => true,
        });
        self.actions.splice(0..0, actions);
        held
    }

    /// The writes that would make the routing objects hold `state`; none when they do.
    pub fn route_writes(&self, state: &TrafficState) -> Vec<Action> {
        let Some(routing) = &self.routing else {
            return Vec::new();
        };
        let objects = &self.observed.traffic;
        let mut writes = Vec::new();
        for router in &routing.routers {
            // check() passed in validate(), so a render error here is a state the objects
            // cannot take (e.g. too many header conditions); it leaves them as they are.
            if let Ok(w) = router.render(objects, &routing.target, state) {
                writes.extend(w);
            }
        }
        pending_writes(objects, writes)
    }

    /// The revision the canary Service selects now, if it is pinned.
    pub fn canary_service_revision(&self) -> Option<String> {
        let name = self
            .spec
            .strategy
            .canary
            .as_ref()?
            .canary_service
            .as_ref()?;
        self.observed.services.get(name).cloned().flatten()
    }

    /// The canary weight the routing objects carry now, as read back from them.
    pub fn routed_weight(&self) -> Option<i32> {
        let routing = self.routing.as_ref()?;
        routing
            .routers
            .iter()
            .filter(|r| r.carries_weight())
            .map(|r| r.verify(&self.observed.traffic, &routing.target).weight)
            .next()
            .flatten()
    }

    /// Whether the routing objects carry a header or mirror route now, as read back.
    pub fn routes_extra(&self) -> bool {
        let Some(routing) = &self.routing else {
            return false;
        };
        routing.routers.iter().any(|r| {
            let read = r.verify(&self.observed.traffic, &routing.target);
            !read.header_routes.is_empty() || !read.mirror_routes.is_empty()
        })
    }

    pub fn after_seconds(&self, from: Timestamp, seconds: i32) -> Timestamp {
        from.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            seconds.max(0),
        )))
        .unwrap_or(Timestamp::MAX)
    }
}

/// Decides everything for one Rollout.
pub fn plan(rollout: &Rollout, observed: &Observed, now: Timestamp) -> Plan {
    let old = rollout.status.clone().unwrap_or_default();
    let generation = rollout.metadata.generation;
    let mut draft = Draft {
        spec: &rollout.spec,
        rollout_name: rollout.metadata.name.clone().unwrap_or_default(),
        namespace: rollout.metadata.namespace.clone().unwrap_or_default(),
        observed,
        now,
        replicas: rollout.spec.replicas.unwrap_or(1).max(0),
        status: old.clone(),
        actions: Vec::new(),
        events: Vec::new(),
        requeue_at: None,
        routing: None,
        wanted_runs: Vec::new(),
        held: BTreeSet::new(),
    };
    draft.status.selector = selector_string(&rollout.spec);

    let template = match validate(rollout, observed) {
        Ok(template) => template,
        Err(message) => return invalid(draft, rollout, &old, generation, &message),
    };
    let hash = template_hash(template);
    match routing(rollout, observed, &old, &hash) {
        Ok(r) => draft.routing = r,
        Err(message) => return invalid(draft, rollout, &old, generation, &message),
    }
    cond::remove(&mut draft.status.conditions, cond::INVALID_SPEC);
    retire_routing(&mut draft, rollout, &old, generation);
    if draft.routing.is_some() && !rollout.finalizers().iter().any(|f| f == FINALIZER) {
        draft.actions.push(Action::AddFinalizer);
    }

    track_revision(&mut draft, &hash);
    consume_request(&mut draft);
    count_replicas(&mut draft, &hash);
    let deadline_exceeded = check_progress_deadline(&mut draft, &old);

    if rollout.spec.strategy.blue_green.is_some() {
        super::bluegreen::plan(&mut draft, &hash);
    } else {
        super::canary::plan(&mut draft, &hash);
    }
    super::restart::plan(&mut draft);

    retire_old_revisions(&mut draft);
    super::analysis::retire(&mut draft);
    scale_down_workload(&mut draft);
    let mut plan = finish(draft, &old, generation, deadline_exceeded);
    plan.revisions = super::revision::assign(&observed.replica_sets, &plan.actions);
    plan
}

/// Checks what admission could not: the template source and the Services exist. Returns the
/// template to run.
fn validate<'a>(
    rollout: &Rollout,
    observed: &'a Observed,
) -> Result<&'a k8s_openapi::api::core::v1::PodTemplateSpec, String> {
    let template = observed.template.as_ref().map_err(Clone::clone)?;
    let ns = rollout.metadata.namespace.as_deref().unwrap_or_default();
    for (field, name) in referenced_services(rollout) {
        if !observed.services.contains_key(&name) {
            return Err(format!(
                "{field}: Service {name:?} not found in namespace {ns:?}"
            ));
        }
    }
    if let Some(problem) = super::spec_checks::problems(&rollout.spec)
        .into_iter()
        .next()
    {
        return Err(problem.to_string());
    }
    super::analysis::validate(rollout, &observed.analysis)?;
    Ok(template)
}

/// The routers of a canary with `trafficRouting`, checked against the objects they edit.
fn routing(
    rollout: &Rollout,
    observed: &Observed,
    old: &RolloutStatus,
    hash: &str,
) -> Result<Option<Routing>, String> {
    let Some(canary) = &rollout.spec.strategy.canary else {
        return Ok(None);
    };
    let Some(spec) = &canary.traffic_routing else {
        return Ok(None);
    };
    let routers = traffic::routers(spec, &rollout.name_any());
    let target = target(
        rollout,
        old.stable_revision.as_deref().unwrap_or(hash),
        hash,
    );
    for router in &routers {
        router.check(&observed.traffic, &target)?;
    }
    for (i, step) in canary.steps.iter().enumerate() {
        let routes = [
            (
                false,
                "setHeaderRoute",
                step.set_header_route.as_ref().map(|h| h.matches.len()),
            ),
            (
                true,
                "setMirrorRoute",
                step.set_mirror_route.as_ref().map(|m| m.matches.len()),
            ),
        ];
        for (mirror, field, count) in routes {
            let Some(count) = count else { continue };
            if let Some(why) = routers.iter().find_map(|r| r.unsupported(mirror, count)) {
                return Err(format!("strategy.canary.steps[{i}].{field}: {why}"));
            }
        }
    }
    let rejected = routers.iter().find_map(|r| r.rejected(&observed.traffic));
    Ok(Some(Routing {
        routers,
        target,
        rejected,
    }))
}

/// What the routers need to know of `rollout`, with the revisions it moves between.
pub fn target(rollout: &Rollout, stable_hash: &str, canary_hash: &str) -> Target {
    let canary = rollout.spec.strategy.canary.as_ref();
    Target {
        rollout: rollout.name_any(),
        namespace: rollout.namespace().unwrap_or_default(),
        stable_service: canary
            .and_then(|c| c.stable_service.clone())
            .unwrap_or_default(),
        canary_service: canary
            .and_then(|c| c.canary_service.clone())
            .unwrap_or_default(),
        stable_hash: stable_hash.to_string(),
        canary_hash: canary_hash.to_string(),
        owner: rollout.controller_owner_ref(&()),
    }
}

/// The actions for router writes that would change something.
fn pending_writes(objects: &traffic::Objects, writes: Vec<Write>) -> Vec<Action> {
    writes
        .into_iter()
        .filter_map(|w| match w {
            Write::Apply { key, body } => {
                let current = match objects.get(&key) {
                    Some(Found::Object(v)) => Some(v),
                    _ => None,
                };
                traffic::changes(&body, current).then_some(Action::ApplyRoute { key, body })
            }
            Write::Delete { key } => matches!(objects.get(&key), Some(Found::Object(_)))
                .then_some(Action::DeleteRoute { key }),
        })
        .collect()
}

fn spec_routing(spec: &RolloutSpec) -> Option<&TrafficRouting> {
    spec.strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
}

/// The traffic routings of `rollout`: the spec's, and the one fledge last applied when that
/// differs (its objects still carry fledge's changes until [`retire_routing`] undoes them).
pub fn routings(rollout: &Rollout) -> Vec<&TrafficRouting> {
    let spec = spec_routing(&rollout.spec);
    let applied = rollout
        .status
        .as_ref()
        .and_then(|s| s.applied_traffic_routing.as_ref())
        .filter(|a| Some(*a) != spec);
    spec.into_iter().chain(applied).collect()
}

/// Routing objects the spec no longer names (its `trafficRouting` changed or was removed in
/// the middle of a rollout) give the stable all traffic again and lose what fledge added, ahead
/// of everything else in the plan. Until that is done, `appliedTrafficRouting` keeps naming them.
/// An object that cannot be read (its API or cache is unavailable, or it is gone) may still send
/// traffic to the canary, so the routing is kept, with a condition, and retried.
fn retire_routing(
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
fn removal_writes(
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

/// An invalid spec changes nothing in the cluster: what runs keeps running. The status says
/// why, and the controller waits for a change of the Rollout or the objects it names.
fn invalid(
    mut draft: Draft,
    rollout: &Rollout,
    old: &RolloutStatus,
    generation: Option<i64>,
    message: &str,
) -> Plan {
    let now = draft.now;
    let c = &mut draft.status.conditions;
    for (type_, status) in [
        (cond::INVALID_SPEC, true),
        (cond::READY, false),
        (cond::STALLED, true),
        (cond::RECONCILING, false),
    ] {
        cond::set(
            c,
            type_,
            status,
            cond::REASON_INVALID,
            message,
            generation,
            now,
        );
    }
    draft.status.phase = Some(Phase::Degraded);
    draft.status.message = Some(format!("InvalidSpec: {message}"));
    draft.status.observed_generation = generation;
    if old.message != draft.status.message {
        draft.warning(cond::REASON_INVALID, message);
    }
    // A request is answered now, not kept for later, so the client waiting for it learns what
    // happened. An abort is recorded as always (all traffic goes back to stable once the spec
    // is valid: what was asked, and the safe direction); anything else could surprise whoever
    // fixes the spec, so it is dropped.
    match draft.status.request.as_ref().map(|r| r.action) {
        Some(RequestAction::Abort) => consume_request(&mut draft),
        Some(action) => {
            let who = draft.status.request.take().map(|r| requested_by(&r));
            draft.warning(
                "RequestIgnored",
                format!(
                    "{} requested{}: nothing done while the spec is invalid; fix the spec and \
                     ask again",
                    action.as_str(),
                    who.unwrap_or_default()
                ),
            );
        }
        None => {}
    }
    abort_while_invalid(&mut draft, rollout);
    let revisions = super::revision::assign(&draft.observed.replica_sets, &draft.actions);
    Plan {
        actions: draft.actions,
        status: draft.status,
        requeue_after: None,
        events: draft.events,
        revisions,
    }
}

/// An abort, or a failed analysis of the revision in flight, while the spec is invalid: the
/// stable gets all traffic through the routing fledge last applied (the spec's may be the very
/// thing that is broken), as far as the stable's available pods carry it; its ReplicaSet is
/// scaled back up for the rest. Nothing else changes until the spec is fixed.
fn abort_while_invalid(draft: &mut Draft, rollout: &Rollout) {
    let s = &draft.status;
    let (Some(stable), Some(current)) = (s.stable_revision.clone(), s.current_revision.clone())
    else {
        return;
    };
    if stable == current {
        return;
    }
    if !draft.status.abort {
        let attempt = draft.status.analysis_attempt.unwrap_or(0);
        let failed = draft.observed.analysis.runs.iter().find(|r| {
            r.hash == current
                && r.attempt == attempt
                && matches!(
                    r.phase,
                    Some(crate::api::analysis::AnalysisPhase::Failed)
                        | Some(crate::api::analysis::AnalysisPhase::Error)
                )
        });
        let Some(run) = failed else { return };
        let message = format!(
            "analysis run {} {}: {}; aborting",
            run.name,
            run.phase.unwrap_or_default().as_str(),
            run.message.clone().unwrap_or_default()
        );
        draft.status.abort = true;
        draft.status.aborted_at = Some(Time(draft.now));
        draft.warning("AnalysisFailed", message);
    }
    let Some(applied) = old_routing(rollout) else {
        return;
    };
    draft.routing = Some(Routing {
        routers: traffic::routers(applied, &rollout.name_any()),
        target: target(rollout, &stable, &current),
        rejected: None,
    });
    if draft.replica_set(&stable).is_some() {
        draft.scale(&stable, draft.replicas);
    }
    let serving = draft.canary_service_revision().unwrap_or(current);
    let state = super::canary::reachable(
        draft,
        TrafficState::default(),
        &TrafficState::default(),
        &serving,
        &stable,
    );
    draft.route(&state);
    draft.status.canary_weight = Some(state.weight);
}

/// The routing fledge last applied, as the status records it.
fn old_routing(rollout: &Rollout) -> Option<&TrafficRouting> {
    rollout
        .status
        .as_ref()
        .and_then(|s| s.applied_traffic_routing.as_ref())
}

/// Notices a new revision in the spec: a fresh start of the steps, a revert to stable that needs
/// no steps, or the very first deployment, which goes straight to stable.
fn track_revision(draft: &mut Draft, hash: &str) {
    let attempt = super::analysis::next_attempt(draft);
    let s = &mut draft.status;
    if s.stable_revision.is_none() {
        s.stable_revision = Some(hash.to_string());
    }
    if s.current_revision.as_deref() == Some(hash) {
        return;
    }
    let first = s.current_revision.is_none();
    if !first {
        // A revision that comes back (a revert, the same template re-applied after an abort)
        // starts a new analysis attempt: its old runs, kept as history, decide nothing.
        s.analysis_attempt = Some(attempt);
    }
    let abandoned = s
        .current_revision
        .replace(hash.to_string())
        .filter(|prev| Some(prev) != s.stable_revision.as_ref());
    s.current_step_index = Some(0);
    s.abort = false;
    s.aborted_at = None;
    s.promote_full = false;
    s.switch_approved = false;
    s.accepted_analysis_runs.clear();
    s.last_progress_at = Some(Time(draft.now));
    s.pause_conditions
        .retain(|p| p.reason == PauseReason::UserPaused);
    let to_stable = s.stable_revision.as_deref() == Some(hash);
    // A canary replaced before promotion never served as stable: its pods go at once, unless
    // they may still carry traffic: with a router, until the routes send it none; on a revert
    // without one, as the stable's pods become available (see `canary::plan`).
    let drained = draft.spec.strategy.canary.is_some() && (draft.routing.is_some() || to_stable);
    if let Some(prev) = abandoned
        && !drained
    {
        draft.scale(&prev, 0);
    }
    if to_stable {
        let steps = draft
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps.len());
        draft.status.current_step_index = Some(steps as i32);
    }
    if first {
        draft.event(
            "Deploying",
            format!("first revision {hash}: deploying at full scale"),
        );
    } else if to_stable {
        draft.event(
            "RolledBack",
            format!("back to stable revision {hash}: skipping all steps"),
        );
    } else {
        draft.event(
            "NewRevision",
            format!("new revision {hash}: starting the steps"),
        );
    }
}

/// Acts on a client's runtime request and clears it, in the same status write.
fn consume_request(draft: &mut Draft) {
    let Some(request) = draft.status.request.take() else {
        return;
    };
    let who = requested_by(&request);
    let in_progress = draft.status.current_revision != draft.status.stable_revision;
    let steps = draft
        .spec
        .strategy
        .canary
        .as_ref()
        .map(|c| c.steps.len() as i32);
    let inconclusive = super::analysis::inconclusive_runs(draft);
    let attempt = super::analysis::next_attempt(draft);
    let s = &mut draft.status;
    let (reason, message) = match request.action {
        RequestAction::Abort if in_progress && !s.abort => {
            s.abort = true;
            s.aborted_at = Some(Time(draft.now));
            (
                "AbortRequested",
                format!("abort requested{who}: all traffic back to stable"),
            )
        }
        RequestAction::Retry if s.abort => {
            // The analysis starts over in new runs; the failed ones stay as history.
            s.analysis_attempt = Some(attempt);
            s.accepted_analysis_runs.clear();
            s.abort = false;
            s.aborted_at = None;
            s.promote_full = false;
            s.switch_approved = false;
            s.current_step_index = Some(0);
            s.last_progress_at = Some(Time(draft.now));
            s.pause_conditions
                .retain(|p| p.reason == PauseReason::UserPaused);
            (
                "RetryRequested",
                format!("retry requested{who}: starting the steps again"),
            )
        }
        RequestAction::Promote
            if in_progress
                && !s.abort
                && s.pause_conditions
                    .iter()
                    .any(|p| p.reason == PauseReason::InconclusiveAnalysis) =>
        {
            s.pause_conditions
                .retain(|p| p.reason != PauseReason::InconclusiveAnalysis);
            s.last_progress_at = Some(Time(draft.now));
            let names = inconclusive.join(", ");
            s.accepted_analysis_runs.extend(inconclusive);
            (
                "PromoteRequested",
                format!(
                    "promote requested{who}: inconclusive analysis {names} accepted, continuing"
                ),
            )
        }
        RequestAction::Promote if in_progress && !s.abort => {
            let paused_step = s.pause_conditions.iter().any(|p| {
                matches!(
                    p.reason,
                    PauseReason::CanaryPauseStep | PauseReason::BlueGreenPause
                )
            });
            s.pause_conditions.retain(|p| {
                !matches!(
                    p.reason,
                    PauseReason::CanaryPauseStep | PauseReason::BlueGreenPause
                )
            });
            s.last_progress_at = Some(Time(draft.now));
            match steps {
                Some(n) => {
                    let i = s.current_step_index.unwrap_or(0);
                    s.current_step_index = Some((i + 1).min(n));
                    let what = if paused_step {
                        "pause ended"
                    } else {
                        "step skipped"
                    };
                    (
                        "PromoteRequested",
                        format!("promote requested{who}: step {i} {what}"),
                    )
                }
                None => {
                    s.switch_approved = true;
                    (
                        "PromoteRequested",
                        format!("promote requested{who}: switching to the new revision"),
                    )
                }
            }
        }
        RequestAction::PromoteFull if in_progress && !s.abort => {
            s.promote_full = true;
            s.pause_conditions
                .retain(|p| p.reason == PauseReason::UserPaused);
            s.last_progress_at = Some(Time(draft.now));
            (
                "PromoteFullRequested",
                format!(
                    "full promotion requested{who}: skipping the remaining steps, pauses and \
                     analyses"
                ),
            )
        }
        RequestAction::Pause => {
            if !s
                .pause_conditions
                .iter()
                .any(|p| p.reason == PauseReason::UserPaused)
            {
                s.pause_conditions.push(crate::api::PauseCondition {
                    reason: PauseReason::UserPaused,
                    start_time: Time(draft.now),
                });
            }
            ("PauseRequested", format!("pause requested{who}"))
        }
        RequestAction::Resume
            if s.pause_conditions
                .iter()
                .any(|p| p.reason == PauseReason::UserPaused) =>
        {
            s.pause_conditions
                .retain(|p| p.reason != PauseReason::UserPaused);
            s.last_progress_at = Some(Time(draft.now));
            ("ResumeRequested", format!("resume requested{who}"))
        }
        action => {
            let why = match action {
                RequestAction::Retry => "the rollout is not aborted",
                RequestAction::Resume => "the rollout is not paused by a pause request",
                _ if s.abort => "the rollout is aborted",
                _ => "no rollout is in progress",
            };
            let message = format!("{} requested{who}: nothing to do, {why}", action.as_str());
            draft.warning("RequestIgnored", message);
            return;
        }
    };
    draft.event(reason, message);
}

/// " by <who>" for event messages, when the request says who filed it.
fn requested_by(request: &Request) -> String {
    request
        .requested_by
        .as_ref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default()
}

/// Reports, and with `progressDeadlineAbort` acts on, a rollout that made no progress for
/// `progressDeadlineSeconds`; returns the Progressing condition's message when it did not.
/// Paused or finished rollouts have no deadline. A gate waiting on an analysis that records its
/// measurements is progress; one whose run has owed a measurement for the whole deadline (a Job
/// that never ends, a provider call that never returns) is not, and the message names that run.
/// The requeue at the deadline is set by [`finish`], once this plan's progress is known.
fn check_progress_deadline(draft: &mut Draft, old: &RolloutStatus) -> Option<String> {
    let s = &draft.status;
    let in_progress = s.current_revision != s.stable_revision;
    let waiting = !s.pause_conditions.is_empty() || draft.spec.paused == Some(true);
    if !in_progress || waiting || s.abort {
        return None;
    }
    // Pods moving is progress; and neither a pause nor time spent with an invalid spec counts
    // against the deadline, so the clock starts again when one ends.
    let restarted = s.available_replicas != old.available_replicas
        || s.updated_replicas != old.updated_replicas
        || old.phase == Some(Phase::Paused)
        || cond::is_true(&old.conditions, cond::INVALID_SPEC);
    let seconds = progress_deadline_seconds(draft.spec);
    let since = s.last_progress_at.as_ref().map_or(draft.now, |t| t.0);
    if restarted {
        return None;
    }
    let stuck = if super::analysis::measuring(draft) {
        let (run, from) = super::analysis::stuck_run(draft, since, seconds)?;
        format!(": analysis run {run} has recorded no measurement since {from}")
    } else {
        let since = super::analysis::last_activity(draft).map_or(since, |t| t.max(since));
        if draft.now < draft.after_seconds(since, seconds) {
            return None;
        }
        String::new()
    };
    let was_exceeded = cond::find(&old.conditions, cond::PROGRESSING)
        .is_some_and(|c| c.reason == cond::REASON_DEADLINE);
    if draft.spec.progress_deadline_abort == Some(true) {
        draft.status.abort = true;
        draft.status.aborted_at = Some(Time(draft.now));
        draft.warning(
            cond::REASON_DEADLINE,
            format!("no progress for {seconds}s{stuck}: aborting (progressDeadlineAbort)"),
        );
    } else if !was_exceeded {
        draft.warning(
            cond::REASON_DEADLINE,
            format!("no progress for {seconds}s{stuck}"),
        );
    }
    Some(format!(
        "rollout made no progress within progressDeadlineSeconds{stuck}"
    ))
}

fn progress_deadline_seconds(spec: &RolloutSpec) -> i32 {
    spec.progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS)
}

/// Old revisions (neither stable nor current): scaled to 0 once their delay is over, and deleted
/// beyond `revisionHistoryLimit`.
fn retire_old_revisions(draft: &mut Draft) {
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
    let mut scaled_to_zero = Vec::new();
    let mut waiting = false;
    for rs in old {
        // A revision this plan already sized (an abandoned canary going to 0, or one that still
        // carries traffic) is settled.
        let planned = draft.held.contains(&rs.hash)
            || draft
                .actions
                .iter()
                .any(|a| matches!(a, Action::ApplyReplicaSet { hash, .. } if *hash == rs.hash));
        match delay_until {
            _ if planned || rs.replicas == 0 => scaled_to_zero.push(rs),
            Some(at) if at > draft.now => {
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
    let limit = draft
        .spec
        .revision_history_limit
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0) as usize;
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

/// `workloadRef.scaleDown: onsuccess`: the Deployment's own pods go once the Rollout is serving.
fn scale_down_workload(draft: &mut Draft) {
    let Some(w) = &draft.spec.workload_ref else {
        return;
    };
    let healthy = draft.status.current_revision == draft.status.stable_revision
        && draft
            .status
            .stable_revision
            .as_deref()
            .is_some_and(|h| draft.settled(h, draft.replicas));
    if w.scale_down == Some(crate::api::ScaleDown::Onsuccess)
        && healthy
        && draft.observed.workload_replicas.unwrap_or(0) > 0
    {
        draft.actions.push(Action::ScaleDownWorkload {
            name: w.name.clone(),
        });
    }
}

fn count_replicas(draft: &mut Draft, hash: &str) {
    let sets = &draft.observed.replica_sets;
    let s = &mut draft.status;
    // Saturating: ReplicaSets scaled out of band could add up past i32::MAX.
    let sum = |n: fn(&ObservedReplicaSet) -> i32| sets.iter().map(n).fold(0, i32::saturating_add);
    s.replicas = Some(sum(|r| r.current));
    s.ready_replicas = Some(sum(|r| r.ready));
    s.available_replicas = Some(sum(|r| r.available));
    s.updated_replicas = Some(
        sets.iter()
            .filter(|r| r.hash == hash)
            .map(|r| r.current)
            .fold(0, i32::saturating_add),
    );
}

/// Phase, message and conditions from the decided state; stamps progress.
fn finish(
    mut draft: Draft,
    old: &RolloutStatus,
    generation: Option<i64>,
    deadline_exceeded: Option<String>,
) -> Plan {
    let now = draft.now;
    let s = &draft.status;
    let stable = s.stable_revision.clone().unwrap_or_default();
    let complete = s.current_revision.as_deref() == Some(stable.as_str());
    let paused = !s.pause_conditions.is_empty() || draft.spec.paused == Some(true);
    let healthy = complete && draft.settled(&stable, draft.replicas);
    let max_unavailable = draft
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| {
            scaled_value(
                c.max_unavailable.as_ref(),
                draft.replicas,
                Limit::MaxUnavailable,
            )
            .ok()
        })
        .unwrap_or(0);
    let available = s.available_replicas.unwrap_or(0) >= draft.replicas - max_unavailable;

    let (phase, reason, message) = if s.abort {
        (
            Phase::Degraded,
            cond::REASON_ABORTED,
            "rollout aborted: the stable revision has all traffic".to_string(),
        )
    } else if let Some(message) = deadline_exceeded {
        (Phase::Degraded, cond::REASON_DEADLINE, message)
    } else if paused && !complete {
        (Phase::Paused, cond::REASON_PAUSED, pause_message(&draft))
    } else if healthy {
        (
            Phase::Healthy,
            cond::REASON_HEALTHY,
            format!("revision {stable} is stable and available"),
        )
    } else if complete && paused {
        (Phase::Paused, cond::REASON_PAUSED, pause_message(&draft))
    } else {
        (
            Phase::Progressing,
            cond::REASON_PROGRESSING,
            progress_message(&draft),
        )
    };

    // Progress: a step done, a revision change, pods created or becoming available, or a
    // pause or abort just ended. Only a change stamps the time, so an idle rollout writes nothing.
    let progressed = s.current_step_index != old.current_step_index
        || s.current_revision != old.current_revision
        || s.stable_revision != old.stable_revision
        || s.updated_replicas != old.updated_replicas
        || s.available_replicas != old.available_replicas
        || old.phase != Some(Phase::Progressing);
    if progressed && phase == Phase::Progressing {
        draft.status.last_progress_at = Some(Time(now));
    }
    // Only a progressing rollout runs against its deadline; wake up when it passes.
    let in_progress = draft.status.current_revision != draft.status.stable_revision;
    // Waiting for an analysis that measures is not a lack of progress, and the run's status
    // changes wake us; one that stops measuring is, and nothing would wake us: look again when
    // it passes the deadline.
    if in_progress && phase == Phase::Progressing {
        let since = draft.status.last_progress_at.as_ref().map_or(now, |t| t.0);
        let seconds = progress_deadline_seconds(draft.spec);
        let deadline = if super::analysis::gate_waiting(&draft) {
            super::analysis::next_gate_deadline(&draft, since, seconds)
        } else {
            Some(draft.after_seconds(since, seconds))
        };
        if let Some(at) = deadline {
            draft.requeue_at(at);
        }
    }

    let g = generation;
    let c = &mut draft.status.conditions;
    let progressing = !matches!(reason, cond::REASON_ABORTED | cond::REASON_DEADLINE);
    for (type_, status) in [
        (cond::READY, phase == Phase::Healthy),
        (cond::STALLED, phase == Phase::Degraded),
        (
            cond::RECONCILING,
            matches!(phase, Phase::Progressing | Phase::Paused),
        ),
        (cond::PROGRESSING, progressing),
        (cond::PAUSED, phase == Phase::Paused),
    ] {
        cond::set(c, type_, status, reason, &message, g, now);
    }
    let (avail_reason, avail_message) = if available {
        (
            cond::REASON_AVAILABLE,
            "the stable revision has its desired available pods".to_string(),
        )
    } else {
        (
            cond::REASON_UNAVAILABLE,
            format!(
                "fewer than {} pods of the stable revision are available",
                draft.replicas
            ),
        )
    };
    cond::set(
        c,
        cond::AVAILABLE,
        available,
        avail_reason,
        &avail_message,
        g,
        now,
    );

    draft.status.phase = Some(phase);
    draft.status.message = Some(message);
    draft.status.observed_generation = generation;

    let requeue_after = draft.requeue_at.map(|at| {
        let d = Duration::try_from(at.duration_since(now)).unwrap_or_default();
        // Round up to whole milliseconds so a requeue never fires just before its deadline.
        let millis = d.as_nanos().div_ceil(1_000_000);
        Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    });
    Plan {
        actions: draft.actions,
        status: draft.status,
        requeue_after,
        events: draft.events,
        revisions: Default::default(),
    }
}

fn pause_message(draft: &Draft) -> String {
    if draft.spec.paused == Some(true) {
        return "paused by spec.paused".into();
    }
    match draft.status.pause_conditions.first().map(|p| p.reason) {
        Some(PauseReason::UserPaused) => "paused by a pause request; resume to continue".into(),
        Some(PauseReason::TrafficRouteNotAccepted) => format!(
            "traffic held: {}",
            draft
                .routing
                .as_ref()
                .and_then(|r| r.rejected.clone())
                .unwrap_or_else(|| "a route is not accepted".into())
        ),
        Some(PauseReason::BlueGreenPause) => "new revision ready; waiting for promotion".into(),
        Some(PauseReason::InconclusiveAnalysis) => {
            "analysis inconclusive; promote to continue or abort to stop".into()
        }
        _ => format!(
            "paused at step {}; waiting for the pause to end or a promote",
            draft.status.current_step_index.unwrap_or(0)
        ),
    }
}

fn progress_message(draft: &Draft) -> String {
    let current = draft.status.current_revision.clone().unwrap_or_default();
    if let Some(run) = super::analysis::waiting_on(draft) {
        return format!("revision {current}: waiting for analysis run {run}");
    }
    match draft.status.current_step_index {
        Some(i) if draft.spec.strategy.canary.is_some() => format!(
            "revision {current}: step {i}, canary weight {}%",
            draft.status.canary_weight.unwrap_or(0)
        ),
        _ => format!(
            "revision {current}: waiting for {} available pods",
            draft.replicas
        ),
    }
}

/// The pods' label selector as a string, for the `/scale` subresource.
fn selector_string(spec: &RolloutSpec) -> Option<String> {
    let labels = spec.selector.match_labels.as_ref()?;
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}
