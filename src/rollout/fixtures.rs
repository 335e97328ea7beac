//! Builders for planner tests: a Rollout, an observed world, and [`Sim`], a fake cluster on a fake
//! clock that applies each plan's writes, feeds the plan's status back into the Rollout and checks
//! at every reconcile that the planner is deterministic and reaches a fixpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::hash::template_hash;
use super::observe::{Observed, ObservedReplicaSet, referenced_services};
use super::plan::{Action, Plan, plan};
use crate::api::analysis::{AnalysisPhase, AnalysisTemplateSpec};
use crate::api::conditions as cond;
use crate::api::{
    AnalysisTemplateRef, BlueGreenStrategy, CanaryStep, CanaryStrategy, PauseStep, Phase, Request,
    RequestAction, Rollout, RolloutAnalysis, RolloutSpec, RolloutStatus, SetCanaryScale, Strategy,
    WorkloadRef,
};

pub const NAME: &str = "web";
pub const NAMESPACE: &str = "shop";
pub const STABLE_SVC: &str = "web-stable";
pub const CANARY_SVC: &str = "web-canary";
pub const ACTIVE_SVC: &str = "web-active";
pub const PREVIEW_SVC: &str = "web-preview";

/// The fake clock's origin.
pub fn t0() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("valid timestamp")
}

pub fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

pub fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), NAME.to_string())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// The revision of the pod template running `image`.
pub fn hash_of(image: &str) -> String {
    template_hash(&template(image))
}

pub fn w(weight: i32) -> CanaryStep {
    CanaryStep {
        set_weight: Some(weight),
        ..Default::default()
    }
}

pub fn pause(duration: &str) -> CanaryStep {
    CanaryStep {
        pause: Some(PauseStep {
            duration: Some(duration.into()),
        }),
        ..Default::default()
    }
}

pub fn pause_forever() -> CanaryStep {
    CanaryStep {
        pause: Some(PauseStep { duration: None }),
        ..Default::default()
    }
}

/// A `setHeaderRoute` step named `name`: requests with `x-beta: 1` go to the canary.
pub fn header(name: &str) -> CanaryStep {
    CanaryStep {
        set_header_route: Some(crate::api::SetHeaderRoute {
            name: name.into(),
            matches: vec![crate::api::HeaderRouteMatch {
                header_name: "x-beta".into(),
                header_value: crate::api::HeaderValueMatch {
                    exact: Some("1".into()),
                    ..Default::default()
                },
            }],
        }),
        ..Default::default()
    }
}

pub fn scale_replicas(n: i32) -> CanaryStep {
    CanaryStep {
        set_canary_scale: Some(SetCanaryScale {
            replicas: Some(n),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn scale_weight(weight: i32) -> CanaryStep {
    CanaryStep {
        set_canary_scale: Some(SetCanaryScale {
            weight: Some(weight),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn match_traffic() -> CanaryStep {
    CanaryStep {
        set_canary_scale: Some(SetCanaryScale {
            match_traffic_weight: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An AnalysisTemplate `errors`: one Prometheus metric, measured 3 times, 10 s apart.
pub fn errors_template() -> AnalysisTemplateSpec {
    serde_yaml::from_str(
        r#"
args: [{name: service}]
metrics:
- name: errors
  interval: 10s
  count: 3
  successCondition: result < 0.05
  provider: {prometheus: {address: "http://prometheus:9090", query: 'errors{svc="{{args.service}}"}'}}
"#,
    )
    .unwrap()
}

/// An analysis by the `errors` template of the canary Service.
pub fn errors_analysis() -> RolloutAnalysis {
    RolloutAnalysis {
        templates: vec![AnalysisTemplateRef {
            template_name: "errors".into(),
            cluster_scope: None,
        }],
        args: vec![crate::api::analysis::Argument {
            name: "service".into(),
            value: Some("web-canary".into()),
            value_from: None,
        }],
        ..Default::default()
    }
}

/// A step that runs [`errors_analysis`].
pub fn analysis_step() -> CanaryStep {
    CanaryStep {
        analysis: Some(errors_analysis()),
        ..Default::default()
    }
}

/// A Healthy Sim whose namespace has the `errors` template.
pub fn with_errors_template(rollout: Rollout) -> Sim {
    let mut sim = Sim::new(rollout);
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), errors_template());
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    sim.plans.clear();
    sim
}

/// A healthy rollout of `web:1` that has just been changed to `web:2`.
pub fn updating(rollout: Rollout) -> Sim {
    let mut sim = Sim::healthy(rollout);
    sim.set_image("web:2");
    sim
}

/// The analysis controller finishes run `name` with `phase`.
pub fn finish_run(sim: &mut Sim, name: &str, phase: AnalysisPhase) {
    let run = sim
        .world
        .analysis
        .runs
        .iter_mut()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no run {name}"));
    run.phase = Some(phase);
    run.message = Some(format!("metric \"errors\": {}", phase.as_str()));
}

pub fn pct(p: i32) -> IntOrString {
    IntOrString::String(format!("{p}%"))
}

pub fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}

/// `app: web`: the selector of the Rollout and of its `workloadRef` Deployment.
pub fn app_selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("app".to_string(), NAME.to_string())])),
        match_expressions: None,
    }
}

/// A Rollout named `web` in namespace `shop`, running `web:1`, generation 1.
pub struct RolloutBuilder {
    rollout: Rollout,
}

impl RolloutBuilder {
    fn new(strategy: Strategy) -> Self {
        let mut rollout = Rollout::new(
            NAME,
            RolloutSpec {
                replicas: Some(1),
                selector: Some(app_selector()),
                template: Some(template("web:1")),
                strategy,
                ..Default::default()
            },
        );
        rollout.metadata.namespace = Some(NAMESPACE.into());
        rollout.metadata.generation = Some(1);
        RolloutBuilder { rollout }
    }

    /// A canary with a stable and a canary Service and no steps.
    pub fn canary() -> Self {
        Self::new(Strategy {
            canary: Some(CanaryStrategy {
                stable_service: Some(STABLE_SVC.into()),
                canary_service: Some(CANARY_SVC.into()),
                ..Default::default()
            }),
            blue_green: None,
        })
    }

    /// A blue-green with an active and a preview Service.
    pub fn blue_green() -> Self {
        Self::new(Strategy {
            canary: None,
            blue_green: Some(BlueGreenStrategy {
                active_service: ACTIVE_SVC.into(),
                preview_service: Some(PREVIEW_SVC.into()),
                ..Default::default()
            }),
        })
    }

    fn canary_mut(&mut self) -> &mut CanaryStrategy {
        canary_of(&mut self.rollout)
    }

    fn blue_green_mut(&mut self) -> &mut BlueGreenStrategy {
        self.rollout
            .spec
            .strategy
            .blue_green
            .as_mut()
            .expect("a blue-green rollout")
    }

    pub fn replicas(mut self, n: i32) -> Self {
        self.rollout.spec.replicas = Some(n);
        self
    }

    pub fn image(mut self, image: &str) -> Self {
        self.rollout.spec.template = Some(template(image));
        self
    }

    pub fn steps(mut self, steps: impl IntoIterator<Item = CanaryStep>) -> Self {
        self.canary_mut().steps = steps.into_iter().collect();
        self
    }

    pub fn max_surge(mut self, v: IntOrString) -> Self {
        self.canary_mut().max_surge = Some(v);
        self
    }

    pub fn max_unavailable(mut self, v: IntOrString) -> Self {
        self.canary_mut().max_unavailable = Some(v);
        self
    }

    /// Traffic through HTTPRoute `route` (see [`http_route`]).
    pub fn gateway(mut self, route: &str) -> Self {
        self.canary_mut().traffic_routing = Some(crate::api::TrafficRouting {
            gateway_api: Some(crate::api::GatewayApiRouting {
                http_routes: vec![crate::api::RouteRef { name: route.into() }],
                grpc_routes: vec![],
            }),
            ..Default::default()
        });
        self
    }

    pub fn canary_service(mut self, name: Option<&str>) -> Self {
        self.canary_mut().canary_service = name.map(Into::into);
        self
    }

    /// `scaleDownDelaySeconds` of either strategy.
    pub fn scale_down_delay(mut self, seconds: i32) -> Self {
        if let Some(c) = self.rollout.spec.strategy.canary.as_mut() {
            c.scale_down_delay_seconds = Some(seconds);
        }
        if let Some(b) = self.rollout.spec.strategy.blue_green.as_mut() {
            b.scale_down_delay_seconds = Some(seconds);
        }
        self
    }

    /// Any other blue-green field.
    pub fn blue_green_with(mut self, set: impl FnOnce(&mut BlueGreenStrategy)) -> Self {
        set(self.blue_green_mut());
        self
    }

    pub fn preview_replicas(mut self, n: i32) -> Self {
        self.blue_green_mut().preview_replica_count = Some(n);
        self
    }

    pub fn auto_promotion(mut self, enabled: bool) -> Self {
        self.blue_green_mut().auto_promotion_enabled = Some(enabled);
        self
    }

    pub fn auto_promotion_seconds(mut self, seconds: i32) -> Self {
        self.blue_green_mut().auto_promotion_seconds = Some(seconds);
        self
    }

    pub fn revision_history_limit(mut self, n: i32) -> Self {
        self.rollout.spec.revision_history_limit = Some(n);
        self
    }

    pub fn progress_deadline(mut self, seconds: i32) -> Self {
        self.rollout.spec.progress_deadline_seconds = Some(seconds);
        self
    }

    pub fn progress_deadline_abort(mut self) -> Self {
        self.rollout.spec.progress_deadline_abort = Some(true);
        self
    }

    /// Leaves the pods' selector to the `workloadRef` Deployment.
    pub fn without_selector(mut self) -> Self {
        self.rollout.spec.selector = None;
        self
    }

    /// Runs the pod template of Deployment `name` instead of an own template.
    pub fn workload_ref(mut self, name: &str) -> Self {
        self.rollout.spec.template = None;
        self.rollout.spec.workload_ref = Some(WorkloadRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.into(),
            scale_down: None,
        });
        self
    }

    pub fn status(mut self, status: RolloutStatus) -> Self {
        self.rollout.status = Some(status);
        self
    }

    pub fn build(self) -> Rollout {
        self.rollout
    }
}

/// The world a plan is made from: the Rollout's template, its ReplicaSets and Services.
pub struct ObservedBuilder {
    observed: Observed,
}

impl ObservedBuilder {
    /// The Rollout's own template, every Service it names (unpinned), no ReplicaSet.
    pub fn for_rollout(rollout: &Rollout) -> Self {
        ObservedBuilder {
            observed: Observed {
                template: rollout
                    .spec
                    .template
                    .clone()
                    .ok_or_else(|| "no template".to_string()),
                replica_sets: Vec::new(),
                services: referenced_services(rollout)
                    .into_iter()
                    .map(|(_, name)| (name, None))
                    .collect(),
                workload_replicas: None,
                workload_selector: None,
                traffic: Default::default(),
                gateway_classes: Vec::new(),
                endpoints: BTreeMap::new(),
                pods: Vec::new(),
                analysis: Default::default(),
            },
        }
    }

    /// ReplicaSet of revision `hash` asking for `replicas` pods, all created, `available` of them
    /// available.
    pub fn rs(self, hash: &str, replicas: i32, available: i32) -> Self {
        let mut this = self;
        let created = t0() - secs(1000) + secs(this.observed.replica_sets.len() as i64);
        this.observed.replica_sets.push(ObservedReplicaSet {
            name: format!("{NAME}-{hash}"),
            hash: hash.into(),
            replicas,
            current: replicas,
            ready: available,
            available,
            created: Some(created),
            revision: None,
            ..Default::default()
        });
        this
    }

    /// Service `name` exists, pinned to `hash` (or to nothing).
    pub fn service(mut self, name: &str, hash: Option<&str>) -> Self {
        self.observed
            .services
            .insert(name.into(), hash.map(Into::into));
        self
    }

    pub fn without_service(mut self, name: &str) -> Self {
        self.observed.services.remove(name);
        self
    }

    /// The referenced Deployment exists with `image` and `replicas`, selecting `app: web`.
    pub fn workload(mut self, image: &str, replicas: i32) -> Self {
        self.observed.template = Ok(template(image));
        self.observed.workload_replicas = Some(replicas);
        self.observed.workload_selector = Some(app_selector());
        self
    }

    pub fn template_error(mut self, message: &str) -> Self {
        self.observed.template = Err(message.into());
        self
    }

    pub fn build(self) -> Observed {
        self.observed
    }
}

/// Applies fledge's own writes to `world`, as the API server would: ReplicaSet specs and
/// annotations, Service selectors, deletions. What other controllers do in reaction (pods
/// created, deleted, becoming available) is a separate step: [`Sim::sync_pods`], [`Sim::pods_ready`].
pub fn apply_writes(world: &mut Observed, actions: &[Action], now: Timestamp) {
    // Numbered as act numbers them (`fledge.dev/revision`).
    let revisions = crate::rollout::revision::assign(&world.replica_sets, actions);
    for action in actions {
        match action {
            Action::ApplyReplicaSet { hash, replicas } => {
                match world.replica_sets.iter_mut().find(|rs| rs.hash == *hash) {
                    Some(rs) => {
                        rs.replicas = *replicas;
                    }
                    None => {
                        let newest = world.replica_sets.iter().filter_map(|rs| rs.created).max();
                        let created = match newest {
                            Some(t) if t >= now => t + SignedDuration::from_nanos(1),
                            _ => now,
                        };
                        world.replica_sets.push(ObservedReplicaSet {
                            name: format!("{NAME}-{hash}"),
                            hash: hash.clone(),
                            replicas: *replicas,
                            created: Some(created),
                            revision: revisions.get(hash).copied(),
                            ..Default::default()
                        });
                    }
                }
            }
            Action::DeleteReplicaSet { name } => world.replica_sets.retain(|rs| rs.name != *name),
            Action::PinService { name, hash } => {
                assert!(
                    world.services.contains_key(name),
                    "pinned a missing Service {name}"
                );
                world.services.insert(name.clone(), Some(hash.clone()));
            }
            Action::ScaleWorkload { replicas, .. } => world.workload_replicas = Some(*replicas),
            Action::ApplyRoute { key, body } => {
                let doc = match world.traffic.get(key) {
                    Some(crate::traffic::Found::Object(doc)) => server_side_apply(doc, body),
                    _ => body.clone(),
                };
                world
                    .traffic
                    .insert(key.clone(), crate::traffic::Found::Object(doc));
            }
            Action::DeleteRoute { key } => {
                world
                    .traffic
                    .insert(key.clone(), crate::traffic::Found::Missing);
            }
            Action::UnpinService { name } => {
                world.services.insert(name.clone(), None);
            }
            Action::AddFinalizer | Action::RemoveFinalizer => {}
            Action::EvictPod { name } => {
                if let Some(p) = world.pods.iter_mut().find(|p| p.name == *name) {
                    p.terminating = true;
                }
            }
            Action::CreateAnalysisRun { name, labels, .. } => {
                let run = crate::api::AnalysisRun {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(labels.clone()),
                        creation_timestamp: Some(
                            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                        ),
                        ..Default::default()
                    },
                    spec: Default::default(),
                    status: None,
                };
                let observed = super::gates::ObservedRun::from_run(&run)
                    .expect("a created run has the labels observe reads");
                world.analysis.runs.push(observed);
            }
            Action::TerminateAnalysisRun { name } => {
                for r in world.analysis.runs.iter_mut().filter(|r| r.name == *name) {
                    r.terminating = true;
                }
            }
            Action::DeleteAnalysisRun { name } => world.analysis.runs.retain(|r| r.name != *name),
            Action::SetRoleMetadata { hash, metadata, .. } => {
                let rs = world.replica_sets.iter_mut().find(|rs| rs.hash == *hash);
                let rs = rs.expect("role metadata set on a ReplicaSet that exists");
                rs.role_metadata = metadata.clone();
                rs.pods_out_of_role = false;
            }
        }
    }
}

/// The writes of a plan to the Rollout's own metadata: its finalizer.
pub fn apply_rollout_writes(rollout: &mut Rollout, actions: &[Action]) {
    for action in actions {
        match action {
            Action::AddFinalizer => rollout
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(super::plan::FINALIZER.to_string()),
            Action::RemoveFinalizer => {
                if let Some(f) = rollout.metadata.finalizers.as_mut() {
                    f.retain(|f| f != super::plan::FINALIZER);
                }
            }
            _ => {}
        }
    }
}

/// Checks that `first`, planned from (`rollout`, `world`, `now`), is what the controller can
/// rely on: planning again gives the same plan, and planning with its status once its writes are
/// applied (nothing else changed) gives no action, the same status, requeue and no event.
pub fn assert_fixpoint(rollout: &Rollout, world: &Observed, now: Timestamp, first: &Plan) {
    assert_eq!(
        &plan(rollout, world, now),
        first,
        "planning twice on the same inputs differs"
    );
    let mut next = rollout.clone();
    next.status = Some(first.status.clone());
    apply_rollout_writes(&mut next, &first.actions);
    let mut applied = world.clone();
    apply_writes(&mut applied, &first.actions, now);
    let again = plan(&next, &applied, now);
    // A routing write is seen by the very next plan (no other controller has to act), which may
    // then complete a step: that plan must itself be a fixpoint.
    if first.actions.iter().any(|a| {
        matches!(
            a,
            Action::ApplyRoute { .. } | Action::DeleteRoute { .. } | Action::AddFinalizer
        )
    }) {
        assert!(
            !again.actions.iter().any(|a| first.actions.contains(a)),
            "a routing write repeats: {again:#?}"
        );
        return assert_fixpoint(&next, &applied, now, &again);
    }
    assert_eq!(
        again.actions,
        vec![],
        "not a fixpoint: actions after {first:#?}"
    );
    assert_eq!(again.status, first.status, "not a fixpoint: status changed");
    assert_eq!(
        again.requeue_after, first.requeue_after,
        "not a fixpoint: requeue changed"
    );
    assert_eq!(again.events, vec![], "not a fixpoint: events repeated");
}

/// kstatus: Ready only when Healthy, Reconciling while Progressing or Paused, Stalled when
/// Degraded; observedGeneration on the status and every condition.
pub fn assert_kstatus(status: &RolloutStatus, generation: Option<i64>) {
    let phase = status.phase.expect("a phase");
    let is = |t| cond::is_true(&status.conditions, t);
    assert_eq!(
        is(cond::READY),
        phase == Phase::Healthy,
        "Ready in {phase:?}"
    );
    assert_eq!(
        is(cond::RECONCILING),
        matches!(phase, Phase::Progressing | Phase::Paused),
        "Reconciling in {phase:?}"
    );
    assert_eq!(
        is(cond::STALLED),
        phase == Phase::Degraded,
        "Stalled in {phase:?}"
    );
    assert_eq!(status.observed_generation, generation);
    for c in &status.conditions {
        assert_eq!(
            c.observed_generation, generation,
            "observedGeneration of {}",
            c.type_
        );
    }
}

fn canary_of(rollout: &mut Rollout) -> &mut CanaryStrategy {
    rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .expect("a canary rollout")
}

/// A fake cluster running one Rollout on a fake clock.
pub struct Sim {
    pub rollout: Rollout,
    pub world: Observed,
    pub now: Timestamp,
    /// Every plan made, oldest first.
    pub plans: Vec<Plan>,
}

impl Sim {
    /// The Rollout just applied: its Services exist, unpinned; no ReplicaSet yet.
    pub fn new(rollout: Rollout) -> Self {
        let world = ObservedBuilder::for_rollout(&rollout).build();
        Sim {
            rollout,
            world,
            now: t0(),
            plans: Vec::new(),
        }
    }

    /// A Rollout whose first revision is deployed and Healthy.
    pub fn healthy(rollout: Rollout) -> Self {
        let mut sim = Sim::new(rollout);
        sim.settle();
        assert_eq!(sim.status().phase, Some(Phase::Healthy));
        sim.plans.clear();
        sim
    }

    /// The Rollout's canary strategy, to change a field mid-test.
    pub fn canary_mut(&mut self) -> &mut CanaryStrategy {
        canary_of(&mut self.rollout)
    }

    pub fn status(&self) -> &RolloutStatus {
        self.rollout.status.as_ref().expect("planned at least once")
    }

    pub fn rs(&self, hash: &str) -> Option<&ObservedReplicaSet> {
        self.world.replica_sets.iter().find(|rs| rs.hash == hash)
    }

    /// Pods revision `hash` asks for (0 without a ReplicaSet).
    pub fn size(&self, hash: &str) -> i32 {
        self.rs(hash).map_or(0, |rs| rs.replicas)
    }

    /// (size, size) of two revisions.
    pub fn sizes(&self, canary: &str, stable: &str) -> (i32, i32) {
        (self.size(canary), self.size(stable))
    }

    /// The revision Service `name` selects.
    pub fn service(&self, name: &str) -> Option<String> {
        self.world.services.get(name).cloned().flatten()
    }

    /// One reconcile: plan, check determinism, fixpoint and kstatus, apply the writes and the
    /// status.
    pub fn reconcile(&mut self) -> Plan {
        let plan = plan(&self.rollout, &self.world, self.now);
        assert_fixpoint(&self.rollout, &self.world, self.now, &plan);
        assert_kstatus(&plan.status, self.rollout.metadata.generation);
        assert!(
            plan.status.request.is_none(),
            "a request was left in the status"
        );
        apply_writes(&mut self.world, &plan.actions, self.now);
        apply_rollout_writes(&mut self.rollout, &plan.actions);
        self.rollout.status = Some(plan.status.clone());
        self.plans.push(plan.clone());
        plan
    }

    /// The ReplicaSet controller: each ReplicaSet gets the pods it asks for; removed pods are
    /// gone at once, new ones are not available yet.
    pub fn sync_pods(&mut self) {
        for rs in &mut self.world.replica_sets {
            rs.current = rs.replicas;
            rs.ready = rs.ready.min(rs.replicas);
            rs.available = rs.available.min(rs.replicas);
        }
    }

    /// Kubelet: every existing pod becomes available.
    pub fn pods_ready(&mut self) {
        for rs in &mut self.world.replica_sets {
            rs.ready = rs.current;
            rs.available = rs.current;
        }
    }

    /// Reconcile, then the world catches up: pods created or removed, and available.
    pub fn tick(&mut self) -> Plan {
        let plan = self.reconcile();
        self.sync_pods();
        self.pods_ready();
        plan
    }

    /// Ticks until a reconcile changes nothing (no action, same status) and the pods are as asked;
    /// returns the plans.
    pub fn settle(&mut self) -> Vec<Plan> {
        let mut plans = Vec::new();
        for _ in 0..100 {
            let before = (self.rollout.status.clone(), self.world.replica_sets.clone());
            let plan = self.tick();
            let quiet = plan.actions.is_empty()
                && before.0.as_ref() == Some(&plan.status)
                && before.1 == self.world.replica_sets;
            plans.push(plan);
            if quiet {
                return plans;
            }
        }
        panic!("no fixpoint after 100 reconciles: {:#?}", self.status());
    }

    pub fn advance(&mut self, seconds: i64) {
        self.now += secs(seconds);
    }

    /// Moves the clock to when `plan` asked to be requeued.
    pub fn advance_to_requeue(&mut self, plan: &Plan) {
        let after = plan.requeue_after.expect("a requeue");
        self.now += SignedDuration::try_from(after).expect("small duration");
    }

    /// Files a runtime request, as `kubectl fledge <action>` does.
    pub fn request(&mut self, action: RequestAction) {
        let status = self.rollout.status.get_or_insert_with(Default::default);
        status.request = Some(Request {
            action,
            requested_by: Some("alice".into()),
        });
    }

    /// Changes the pod template (a new revision), as a Git sync would.
    pub fn set_image(&mut self, image: &str) {
        self.rollout.spec.template = Some(template(image));
        self.world.template = Ok(template(image));
        self.bump_generation();
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.rollout.spec.paused = Some(paused);
        self.bump_generation();
    }

    fn bump_generation(&mut self) {
        let g = self.rollout.metadata.generation.unwrap_or(0);
        self.rollout.metadata.generation = Some(g + 1);
    }
}

/// `requeue_after` of `seconds`.
pub fn after(seconds: u64) -> Option<Duration> {
    Some(Duration::from_secs(seconds))
}

/// Roughly what the API server makes of fledge's server-side apply: objects merge field by field,
/// lists and values are replaced, and fledge's own annotations that the body leaves out go.
pub fn server_side_apply(
    current: &serde_json::Value,
    body: &serde_json::Value,
) -> serde_json::Value {
    use serde_json::Value;
    fn merge(into: &mut Value, from: &Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (slot, v) => *slot = v.clone(),
        }
    }
    let mut out = current.clone();
    if let Some(a) = out
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        let keep = body.pointer("/metadata/annotations");
        a.retain(|k, _| !k.starts_with("fledge.dev/") || keep.and_then(|b| b.get(k)).is_some());
    }
    merge(&mut out, body);
    out
}

/// HTTPRoute `name` as a user writes it: one rule to the stable Service.
pub fn http_route(name: &str) -> (crate::traffic::ObjectKey, serde_json::Value) {
    (
        crate::traffic::ObjectKey {
            kind: crate::traffic::Kind::HttpRoute,
            name: name.into(),
        },
        serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": "1", "annotations": {}},
            "spec": {"parentRefs": [{"name": "eg"}],
                     "rules": [{"backendRefs": [{"name": STABLE_SVC, "port": 80}]}]},
        }),
    )
}
