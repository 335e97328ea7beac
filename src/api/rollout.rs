//! The `Rollout` custom resource.
//!
//! Field names follow Argo Rollouts where the idea is the same, so a migration is mostly a change
//! of `apiVersion`. Every field's doc comment becomes its description in `kubectl explain`.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::duration::DURATION_PATTERN;

/// The most pods a Rollout, a canary scale or a blue-green preview may ask for. Far above any
/// real cluster, and low enough that every percentage and sum of replica counts the controller
/// computes fits in an i32 (100 times it is 10^8).
pub const MAX_REPLICAS: i32 = 1_000_000;

/// A Rollout replaces a Deployment: it runs the pods of `template` and moves each new revision
/// from 0% to 100% of traffic in steps (canary) or in one switch (blue-green).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "fledge.dev",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "flro",
    category = "fledge",
    scale = r#"{"specReplicasPath":".spec.replicas","statusReplicasPath":".status.replicas","labelSelectorPath":".status.selector"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Current","type":"integer","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Up-to-date","type":"integer","jsonPath":".status.updatedReplicas"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.availableReplicas"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"integer","jsonPath":".status.currentStepIndex"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("has(self.spec.template) != has(self.spec.workloadRef)").message("spec: set exactly one of template or workloadRef"),
    validation = Rule::new("!has(self.spec.gates) || self.spec.gates.all(g, self.spec.gates.filter(h, h.name == g.name).size() == 1)").message("spec.gates: names must be unique"),
    validation = Rule::new("!has(self.spec.gates) || has(self.spec.strategy.canary) || !self.spec.gates.exists(g, g.type == 'confirmTrafficIncrease')").message("spec.gates: confirmTrafficIncrease needs the canary strategy"),
    validation = Rule::new("has(self.spec.selector) || has(self.spec.workloadRef)").message("spec.selector: required unless workloadRef names the Deployment whose selector is used"),
    validation = Rule::new("!has(self.spec.template) || !has(self.spec.selector) || !has(self.spec.selector.matchLabels) || self.spec.selector.matchLabels.all(k, has(self.spec.template.metadata) && has(self.spec.template.metadata.labels) && k in self.spec.template.metadata.labels && self.spec.template.metadata.labels[k] == self.spec.selector.matchLabels[k])").message("spec.selector.matchLabels must match spec.template.metadata.labels"),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Number of desired pods. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub replicas: Option<i32>,

    /// Label selector for the pods. It must match the labels of the pod template. Required with
    /// `template`; with `workloadRef` it may be left out, and the referenced Deployment's
    /// selector is used (as in Argo Rollouts). When both are there, this one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_selector")]
    pub selector: Option<LabelSelector>,

    /// The pod template of the application. Exactly one of `template` and `workloadRef` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_template")]
    pub template: Option<PodTemplateSpec>,

    /// An existing Deployment whose pod template this Rollout runs, for migrating a Deployment
    /// without rewriting it. Exactly one of `template` and `workloadRef` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,

    /// Seconds a new pod must be ready, without any container crashing, to count as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: Option<i32>,

    /// How many old ReplicaSets (scaled to 0) to keep for rollback. Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: Option<i32>,

    /// Seconds a rollout may go without progress before it is reported failed
    /// (`Progressing=False`, reason `ProgressDeadlineExceeded`). Pauses do not count. An analysis
    /// a step or promotion waits for is progress while it records measurements; one that owes a
    /// measurement for this long (a Job that never ends, a provider that never answers) is not,
    /// and the message names its run, so this must exceed the longest single measurement.
    /// Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: Option<i32>,

    /// Abort the rollout when the progress deadline is exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,

    /// Stop the rollout where it is, as if paused by `kubectl fledge pause`, until set back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// How a new revision replaces the stable one.
    pub strategy: Strategy,

    /// Restart: pods of the stable revision created before this time (RFC 3339) are replaced,
    /// `maxUnavailable` (at least one) at a time, without a new revision. Set by
    /// `kubectl fledge restart`; a time in the future schedules the restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<Time>,
    /// A return to one of the last few revisions skips the steps, pauses and analyses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindow>,
    /// How many finished AnalysisRuns to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunHistory>,
    /// Who hears about this Rollout: channels and the events each gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<super::notification::RolloutNotifications>,
    /// Webhooks that hold the rollout until an outside system answers yes (`confirmRollout`,
    /// `confirmTrafficIncrease`, `confirmPromotion`), or abort it when one does (`rollback`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub gates: Vec<super::gates::WebhookGate>,
}

/// Which returns to an earlier revision are rolled out at once, as Argo Rollouts'
/// `rollbackWindow`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindow {
    /// A revision whose ReplicaSet still exists and was created before the stable's, with fewer
    /// than this many ReplicaSets created between the two, is promoted without the steps, pauses
    /// and analyses (1: only the revision just before the stable). 0 or unset: never. The order
    /// is that of the revision numbers (`fledge.dev/revision`), not of creation times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub revisions: Option<i32>,
}

/// How many finished AnalysisRuns a Rollout keeps, beyond those of the revision in progress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunHistory {
    /// Successful and Terminated (stopped when no longer needed) runs to keep. Defaults to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_run_history_limit: Option<i32>,
    /// Failed, Error and Inconclusive runs to keep. Defaults to 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub unsuccessful_run_history_limit: Option<i32>,
}

/// Analysis for a step or a blue-green promotion: one AnalysisRun made of these templates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// The templates whose metrics the run measures.
    #[schemars(length(min = 1, max = 16))]
    pub templates: Vec<AnalysisTemplateRef>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<super::analysis::Argument>,
    /// Metrics of the run measured in dry-run: recorded, never deciding the run, added to the
    /// templates' own `dryRun` rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub dry_run: Vec<super::analysis::DryRun>,
    /// How many measurements of some of the run's metrics to keep; taken before the templates'
    /// own `measurementRetention` rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub measurement_retention: Vec<super::analysis::MeasurementRetention>,
    /// Labels and annotations put on the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<super::analysis::AnalysisRunMetadata>,
}

/// Background analysis: runs beside the canary steps until the rollout ends.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundAnalysis {
    /// The templates whose metrics the run measures.
    #[schemars(length(min = 1, max = 16))]
    pub templates: Vec<AnalysisTemplateRef>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<super::analysis::Argument>,
    /// Metrics of the run measured in dry-run: recorded, never deciding the run, added to the
    /// templates' own `dryRun` rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub dry_run: Vec<super::analysis::DryRun>,
    /// How many measurements of some of the run's metrics to keep; taken before the templates'
    /// own `measurementRetention` rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub measurement_retention: Vec<super::analysis::MeasurementRetention>,
    /// Labels and annotations put on the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<super::analysis::AnalysisRunMetadata>,
    /// Index of the step at which the analysis starts. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_step: Option<i32>,
}

/// A reference to an AnalysisTemplate, or a ClusterAnalysisTemplate with `clusterScope`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Name of the template.
    #[schemars(length(min = 1))]
    pub template_name: String,
    /// The template is a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
}

/// Kubernetes bounds label maps by their total size, which CEL's cost estimate cannot see; without
/// explicit bounds the API server refuses the selector-matches-template rule as too expensive.
/// 64 labels of at most 63 characters are far beyond what selectors use.
fn bound_labels(schema: &mut schemars::Schema, pointer: &str) {
    if let Some(labels) = schema.pointer_mut(pointer).and_then(|v| v.as_object_mut()) {
        labels.insert("maxProperties".into(), 64.into());
        labels.insert(
            "additionalProperties".into(),
            serde_json::json!({"type": "string", "maxLength": 63}),
        );
    }
}

fn bounded_selector(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<LabelSelector>();
    bound_labels(&mut schema, "/properties/matchLabels");
    schema
}

fn bounded_template(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<PodTemplateSpec>();
    bound_labels(&mut schema, "/properties/metadata/properties/labels");
    schema
}

/// A reference to the Deployment whose pod template a Rollout runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.apiVersion == 'apps/v1' && self.kind == 'Deployment'").message("workloadRef must name an apps/v1 Deployment"))]
pub struct WorkloadRef {
    /// API version of the workload; only `apps/v1`.
    pub api_version: String,
    /// Kind of the workload; only `Deployment`.
    pub kind: String,
    /// Name of the Deployment, in the Rollout's namespace.
    #[schemars(length(min = 1))]
    pub name: String,
    /// What to do with the Deployment's own pods: `never` leaves them, `onsuccess` scales the
    /// Deployment to 0 once the Rollout is Healthy, `progressively` scales it down as the
    /// Rollout's pods become available (to `replicas` minus the Rollout's available pods, never
    /// while the Rollout has none available, never up) and to 0 once the Rollout is Healthy.
    /// Defaults to `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
}

/// When to scale down a referenced Deployment.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum ScaleDown {
    /// Leave the Deployment as it is.
    #[default]
    Never,
    /// Scale the Deployment to 0 once the Rollout is Healthy.
    Onsuccess,
    /// Scale the Deployment down as the Rollout's pods become available, so that together they
    /// keep `replicas` available pods; to 0 once the Rollout is Healthy.
    Progressively,
}

/// The deployment strategy: exactly one of `canary` and `blueGreen`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.canary) != has(self.blueGreen)").message("spec.strategy: set exactly one of canary or blueGreen"))]
pub struct Strategy {
    /// Move traffic to the new revision in steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    /// Run the new revision beside the stable one and switch the active Service at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// Canary: the new revision gets a growing share of traffic, step by step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.trafficRouting) || (has(self.stableService) && has(self.canaryService)) || (has(self.trafficRouting.istio) && has(self.trafficRouting.istio.destinationRule) && !has(self.trafficRouting.gatewayAPI) && !has(self.trafficRouting.smi) && !has(self.trafficRouting.nginx))").message("strategy.canary.trafficRouting needs both stableService and canaryService (only trafficRouting.istio with a destinationRule, and no other router, splits by subsets without them)"))]
#[x_kube(validation = Rule::new("has(self.trafficRouting) || !has(self.steps) || !self.steps.exists(s, has(s.setHeaderRoute) || has(s.setMirrorRoute))").message("setHeaderRoute and setMirrorRoute steps need strategy.canary.trafficRouting"))]
#[x_kube(validation = Rule::new("has(self.trafficRouting) || !has(self.minPodsPerReplicaSet)").message("strategy.canary.minPodsPerReplicaSet needs strategy.canary.trafficRouting"))]
pub struct CanaryStrategy {
    /// Service whose selector fledge pins to the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    /// Service whose selector fledge pins to the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    /// The steps, in order. No steps: the new revision is promoted as soon as it is available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub steps: Vec<CanaryStep>,
    /// How many pods above `replicas` may exist during the update (number or percentage).
    /// Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// How many pods below `replicas` may be unavailable during the update (number or
    /// percentage). Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds the old stable ReplicaSet stays up after promotion, so clients still routed to it
    /// drain. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: Option<i32>,
    /// How many old ReplicaSets may wait out `scaleDownDelaySeconds` at once: the newest this
    /// many keep their pods for the delay, older ones are scaled down right away. Unset: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Seconds the canary ReplicaSet stays up after an abort, for debugging; 0 keeps it until
    /// the next revision or a retry. Only used with a traffic router: without one the canary's
    /// pods carry traffic, so they go as soon as the stable's pods are available to replace
    /// them. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// With a traffic router, scale the stable ReplicaSet down as traffic moves to the canary
    /// instead of keeping it at full size until promotion. Traffic moves back to the stable
    /// (abort, revert) only as its pods become available again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_stable_scale: Option<bool>,
    /// With a traffic router, the fewest pods the canary and the stable ReplicaSet are asked for
    /// while either is asked for any (capped at `replicas`), so that a small weight never rests
    /// on one pod. Needs `trafficRouting`. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_REPLICAS))]
    pub min_pods_per_replica_set: Option<i32>,
    /// Shift traffic by editing the routing objects a gateway or mesh reads. Without it the
    /// canary's weight is its share of the pods behind the Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Background analysis, from `startingStep` until the rollout ends. Failed or Error aborts
    /// the rollout; Inconclusive pauses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,
    /// Labels and annotations on the canary's pods while they are the canary. A promotion
    /// replaces them with `stableMetadata`, in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<super::PodMetadata>,
    /// Labels and annotations on the stable's pods while they are the stable (the first
    /// revision's too). A revision that stops being the stable loses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<super::PodMetadata>,
    /// Keep a new revision's pods off the nodes of the stable revision's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<super::AntiAffinity>,
}

/// The routing objects fledge edits to move traffic. Several routers may be given; each gets the
/// same weights. Requires `stableService` and `canaryService`, except Istio with a
/// `destinationRule` alone, whose subsets separate the revisions.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.gatewayAPI) || has(self.istio) || has(self.smi) || has(self.nginx)").message("trafficRouting: set at least one of gatewayAPI, istio, smi, nginx"))]
pub struct TrafficRouting {
    /// Gateway API routes (`gateway.networking.k8s.io/v1`): fledge sets the weights of the
    /// backendRefs that point at `stableService` and `canaryService`, and nothing else.
    #[serde(
        default,
        rename = "gatewayAPI",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRouting>,
    /// Istio VirtualService (and optionally DestinationRule subsets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
    /// An SMI TrafficSplit that fledge creates and owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi: Option<SmiRouting>,
    /// ingress-nginx: a canary Ingress cloned from `stableIngress`, owned by fledge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxRouting>,
}

/// Gateway API routes whose stable/canary backendRefs fledge weighs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("size(self.httpRoutes) + size(self.grpcRoutes) > 0").message("gatewayAPI: name at least one of httpRoutes or grpcRoutes"))]
pub struct GatewayApiRouting {
    /// HTTPRoutes in the Rollout's namespace.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub http_routes: Vec<RouteRef>,
    /// GRPCRoutes in the Rollout's namespace.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub grpc_routes: Vec<RouteRef>,
}

/// A route in the Rollout's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteRef {
    /// The route's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Istio routing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.virtualService) != (has(self.virtualServices) && size(self.virtualServices) > 0)").message("istio: set exactly one of virtualService or virtualServices"))]
pub struct IstioRouting {
    /// The VirtualService whose routes carry the weights. Exactly one of `virtualService` and
    /// `virtualServices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    /// Several VirtualServices, each weighed at every step as `virtualService` would be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub virtual_services: Vec<IstioVirtualService>,
    /// With a DestinationRule, the VirtualService routes to subsets of one host and fledge pins
    /// each subset to its revision; without one, to the stable and canary Services as hosts.
    /// With one, `stableService` and `canaryService` may be left out: the subsets alone
    /// separate the revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
}

impl IstioRouting {
    /// The VirtualServices, with the field each comes from (for messages).
    pub fn virtual_services(&self) -> Vec<(String, &IstioVirtualService)> {
        let one = self
            .virtual_service
            .iter()
            .map(|v| ("virtualService".to_string(), v));
        let many = self
            .virtual_services
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("virtualServices[{i}]"), v));
        one.chain(many).collect()
    }
}

/// A VirtualService and the routes of it that fledge weighs: its HTTP routes by name, its TLS
/// routes by port and SNI hosts, its TCP routes by port.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// The VirtualService's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Names of the HTTP routes to weigh. Empty: the VirtualService must have at most one HTTP
    /// route, which is weighed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// The TLS routes to weigh. Empty: the VirtualService must have at most one TLS route,
    /// which is weighed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tls_routes: Vec<IstioTlsRoute>,
    /// The TCP routes to weigh. Empty: the VirtualService must have at most one TCP route,
    /// which is weighed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tcp_routes: Vec<IstioTcpRoute>,
}

/// Selects the TLS routes of a VirtualService whose matches name one port, this one, and
/// together exactly these SNI hosts (in any order), as Argo Rollouts does.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioTlsRoute {
    /// The port the route's matches name. Unset: routes whose matches name no port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i64>,
    /// The SNI hosts the route's matches name, all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
}

/// Selects the TCP routes of a VirtualService whose matches name one port, this one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioTcpRoute {
    /// The port the route's matches name. Unset: routes whose matches name no port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i64>,
}

/// A DestinationRule with a stable and a canary subset.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioDestinationRule {
    /// The DestinationRule's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The subset fledge pins to the canary revision.
    #[schemars(length(min = 1))]
    pub canary_subset_name: String,
    /// The subset fledge pins to the stable revision.
    #[schemars(length(min = 1))]
    pub stable_subset_name: String,
}

/// SMI TrafficSplit (`split.smi-spec.io/v1alpha2`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmiRouting {
    /// Name of the TrafficSplit fledge creates. Defaults to the Rollout's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split_name: Option<String>,
    /// The Service clients address (the TrafficSplit's root). Defaults to `stableService`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_service: Option<String>,
}

/// ingress-nginx canary routing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NginxRouting {
    /// The Ingress that routes to `stableService`; fledge clones it into
    /// `<rollout>-<stableIngress>-canary` pointing at `canaryService`.
    #[schemars(length(min = 1, max = 253))]
    pub stable_ingress: String,
    /// Annotation prefix of the ingress controller. Defaults to `nginx.ingress.kubernetes.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
}

/// One canary step: exactly one action.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.setWeight), has(self.pause), has(self.setCanaryScale), has(self.setHeaderRoute), has(self.setMirrorRoute), has(self.analysis)].filter(x, x).size() == 1").message("each step must set exactly one of setWeight, pause, setCanaryScale, setHeaderRoute, setMirrorRoute, analysis"))]
pub struct CanaryStep {
    /// Percentage of traffic for the canary, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,
    /// Wait: for `duration`, or without one until `kubectl fledge promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Size the canary independently of its traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Send requests whose headers match to the canary only (needs `trafficRouting`). With no
    /// `match`, removes the header route of that name. Removed when the rollout ends. The canary
    /// gets at least one pod for it, and the route is in place only while a canary pod is
    /// available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Copy a share of the matching requests to the canary; responses are discarded (needs
    /// `trafficRouting`). With none of `match`, `method`, `path`, `anyOf` and `percentage`,
    /// removes the mirror route of that name. Removed when the rollout ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
    /// Run an analysis; the step is done when it is Successful. Failed or Error aborts the
    /// rollout; Inconclusive (or Terminated, stopped by hand) pauses it until a promote
    /// (continue) or an abort. A pause keeps the run measuring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
}

/// A header-based route to the canary.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Name of the route, unique among the header and mirror routes of the Rollout.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// All of these must match (AND). Empty: remove the route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<HeaderRouteMatch>,
}

/// A mirror route to the canary.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.anyOf) || size(self.anyOf) == 0 || !(has(self.method) || has(self.path) || (has(self.match) && size(self.match) > 0))").message("setMirrorRoute: anyOf cannot be combined with match, method or path; put those in its alternatives"))]
pub struct SetMirrorRoute {
    /// Name of the route, unique among the header and mirror routes of the Rollout.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Percentage of the matching requests to mirror. Defaults to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percentage: Option<i32>,
    /// Mirror only requests whose headers all match. With `method` and `path`, one alternative:
    /// all that are set must hold (AND), as `match` always meant. None of `match`, `method`,
    /// `path`, `anyOf`: all requests of the routes. The conditions narrow the routes' own
    /// matches, never widen them: a request the routes do not send to the stable Service is
    /// never mirrored.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<HeaderRouteMatch>,
    /// Mirror only requests of this HTTP method (AND with `match` and `path`). Gateway API
    /// HTTPRoutes match a method exactly; a GRPCRoute has no HTTP method to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<super::mirror_match::StringMatch>,
    /// Mirror only requests whose path matches (AND with `match` and `method`). A GRPCRoute has
    /// no HTTP path to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<super::mirror_match::StringMatch>,
    /// Several alternatives, like Argo Rollouts' `setMirrorRoute.match`: a request is mirrored
    /// when any one of them matches (OR); the conditions inside one must all hold (AND). Not
    /// together with `match`, `method` or `path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub any_of: Vec<super::mirror_match::MirrorMatch>,
}

/// One header condition.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRouteMatch {
    /// The header's name, like `x-canary`.
    #[schemars(length(min = 1, max = 256))]
    pub header_name: String,
    /// How its value must match.
    pub header_value: HeaderValueMatch,
}

/// Exactly one of `exact`, `prefix`, `regex`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1").message("headerValue: set exactly one of exact, prefix, regex"))]
pub struct HeaderValueMatch {
    /// The value, exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub exact: Option<String>,
    /// A prefix of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub prefix: Option<String>,
    /// A regular expression the value matches (the router's dialect: RE2 for Envoy-based ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub regex: Option<String>,
}

/// A pause step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait, like `30s`, `5m`, `1h` or `1h30m`. No duration: wait for a promote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub duration: Option<String>,
}

/// Canary size for the following steps: exactly one of `weight`, `replicas`, `matchTrafficWeight`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.weight), has(self.replicas), has(self.matchTrafficWeight) && self.matchTrafficWeight].filter(x, x).size() == 1").message("setCanaryScale must set exactly one of weight, replicas, matchTrafficWeight: true"))]
pub struct SetCanaryScale {
    /// Canary pods as a percentage of `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
    /// Canary pods as a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub replicas: Option<i32>,
    /// Go back to sizing the canary by its traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// Blue-green: the new revision runs beside the stable one behind `previewService`; promotion
/// switches `activeService` to it at once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service that receives production traffic; fledge pins its selector to the active revision.
    #[schemars(length(min = 1))]
    pub active_service: String,
    /// Service that reaches the new revision before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Pods of the new revision before promotion. Defaults to `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub preview_replica_count: Option<i32>,
    /// Promote on its own once the new revision is available. Defaults to true; when false the
    /// rollout waits for `kubectl fledge promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// With auto promotion, seconds to wait after the new revision is available. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub auto_promotion_seconds: Option<i32>,
    /// Seconds the old revision stays up after the switch. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: Option<i32>,
    /// How many old ReplicaSets may wait out `scaleDownDelaySeconds` at once: the newest this
    /// many keep their pods for the delay, older ones are scaled down right away. Unset: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Seconds the new revision keeps its pods, behind `previewService`, after an abort, for
    /// debugging; then they are scaled to 0 and `previewService` goes back to the stable
    /// revision. 0 keeps them until the next revision or a retry. Defaults to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// How many pods of the stable revision a restart (`restartAt`) may take down at once
    /// (number or percentage of `replicas`, rounded down; at least one). Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Analysis of the preview before the switch: `activeService` moves only once it is
    /// Successful; Failed or Error aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Analysis after the switch, while the old revision is still at full size: on failure
    /// `activeService` switches back to it and the rollout aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Labels and annotations on the pods of the revision behind `activeService`. A revision
    /// that stops being active loses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<super::PodMetadata>,
    /// Labels and annotations on the new revision's pods until the switch, which replaces them
    /// with `activeMetadata`, in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<super::PodMetadata>,
    /// Keep a new revision's pods off the nodes of the active revision's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<super::AntiAffinity>,
}

/// What the controller has observed and done. Also the place where clients (`kubectl fledge`)
/// file runtime requests, so that a Git sync agent never sees drift in `spec`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Healthy, Progressing, Paused or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// A human-readable explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Index of the canary step being executed; equals the number of steps when all are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Pod-template hash of the revision that serves production traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Pod-template hash of the revision the spec asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Percentage of traffic the canary receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods of the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Ready pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Available pods of all revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Label selector of the pods, as a string, for the `/scale` subresource (HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Why the rollout is paused, and since when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_conditions: Vec<PauseCondition>,
    /// The rollout was aborted: the stable revision has all traffic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort: bool,
    /// When the rollout was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Old revisions keep their pods until this time (`scaleDownDelaySeconds` after the last
    /// promotion), so clients still routed to them drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<Time>,
    /// Since when the pods of a revision that the routes no longer send traffic to have waited
    /// for a gateway that has not yet read the routes as they stand (a Git revert or a replaced
    /// canary; an abort waits from its own delay). The wait lasts a minute at most. Unset when
    /// nothing waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_wait_since: Option<Time>,
    /// A full promotion was requested: the remaining steps, pauses and analyses are skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_full: bool,
    /// Blue-green: switching `activeService` to the new revision is decided (a promote request,
    /// or auto-promotion came due); it waits only for the new revision to be fully available.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub switch_approved: bool,
    /// The `trafficRouting` fledge last routed through. When the spec's changes or goes, the
    /// routing objects it no longer names are given back to the stable and lose what fledge
    /// added, and this follows the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_traffic_routing: Option<TrafficRouting>,
    /// Last time the rollout made progress (a step done, pods became available), for
    /// `progressDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_at: Option<Time>,
    /// Bumped by each new revision (one that comes back included) and each retry of an aborted
    /// rollout, so its analysis starts over in new AnalysisRuns: runs of an earlier attempt never
    /// decide a gate of this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_attempt: Option<i32>,
    /// AnalysisRuns whose Inconclusive (or Terminated) result a promote accepted: they count as
    /// Successful.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_analysis_runs: Vec<String>,
    /// A runtime request from a client, consumed by the controller. Written by
    /// `kubectl fledge promote|abort|retry|pause|resume` into the status subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// When the last restart (`spec.restartAt`) finished: every pod of the stable revision is
    /// newer than `spec.restartAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// Conditions: `Ready`, `Reconciling`, `Stalled` (kstatus), `Progressing`, `Available`,
    /// `Paused`, `InvalidSpec`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Notifications decided, oldest first: those still owed to a channel, and the last ones
    /// sent, so that none is sent twice (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub notifications: Vec<super::notification::NotificationRecord>,
}

/// The phase of a rollout.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Moving towards the desired revision.
    Progressing,
    /// Waiting: a pause step, a manual promotion, or a user pause.
    Paused,
    /// The desired revision is stable and fully available.
    Healthy,
    /// Aborted, invalid, or out of time.
    Degraded,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Healthy => "Healthy",
            Phase::Degraded => "Degraded",
        }
    }
}

/// Why a rollout is paused.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// `CanaryPauseStep`, `BlueGreenPause`, `UserPaused` or `InconclusiveAnalysis`.
    pub reason: PauseReason,
    /// When the pause started.
    pub start_time: Time,
}

/// Reasons for a pause.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseReason {
    /// A canary `pause` step.
    CanaryPauseStep,
    /// Blue-green waiting for promotion.
    BlueGreenPause,
    /// A gateway did not accept a route fledge edits (or could not resolve its backends): no
    /// more traffic is shifted until it does.
    TrafficRouteNotAccepted,
    /// Paused by `kubectl fledge pause` or `spec.paused`.
    UserPaused,
    /// An analysis was Inconclusive: promote continues, abort aborts.
    InconclusiveAnalysis,
    /// A `setMirrorRoute` step whose mirror a parent Gateway's class says it does not implement
    /// (`status.supportedFeatures`): the mirror is not written; promote skips the step, abort
    /// aborts.
    MirrorNotSupported,
}

/// A runtime request filed by a client into the status subresource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// What to do.
    pub action: RequestAction,
    /// Who asked, for the Event the controller records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// The runtime requests.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RequestAction {
    /// End the current pause, or skip the current step.
    Promote,
    /// Skip all remaining steps and analysis.
    PromoteFull,
    /// Put all traffic back on stable and stop.
    Abort,
    /// Start the steps of an aborted rollout again.
    Retry,
    /// Stop where the rollout is.
    Pause,
    /// Continue after a `pause` request.
    Resume,
}

impl RequestAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Promote => "promote",
            RequestAction::PromoteFull => "promoteFull",
            RequestAction::Abort => "abort",
            RequestAction::Retry => "retry",
            RequestAction::Pause => "pause",
            RequestAction::Resume => "resume",
        }
    }
}
