//! Gather the world for one Rollout from the controller's caches: its ReplicaSets, the Services
//! it names and the Deployment it references. The result is plain data for the pure planner.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::cached::CachedPod;
use super::cached::CachedReplicaSet;

use crate::api::{
    AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, HASH_LABEL, REVISION_ANNOTATION,
    Rollout, TrafficRouting,
};

/// Everything the planner needs to know beyond the Rollout itself.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The pod template to run: the Rollout's own, or its `workloadRef` Deployment's. An error
    /// is a message for the `InvalidSpec` condition.
    pub template: Result<PodTemplateSpec, String>,
    /// The ReplicaSets this Rollout owns.
    pub replica_sets: Vec<ObservedReplicaSet>,
    /// Each Service the strategy names that exists, with the revision hash its selector pins
    /// (if any). A name missing from the map is a Service that does not exist.
    pub services: BTreeMap<String, Option<String>>,
    /// `spec.replicas` of the `workloadRef` Deployment, when there is one.
    pub workload_replicas: Option<i32>,
    /// `spec.selector` of the `workloadRef` Deployment, when there is one: the pods' selector
    /// of a Rollout that sets none.
    pub workload_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// The routing objects the canary's traffic routers read.
    pub traffic: crate::traffic::Objects,
    /// The classes of the parent Gateways of the HTTPRoutes and GRPCRoutes in `traffic`.
    pub gateway_classes: Vec<crate::traffic::features::ParentClass>,
    /// With a traffic router: the pods each Service the strategy names lists as ready in its
    /// EndpointSlices, which is what gateways route to. A Service left out could not be read
    /// (no cache, no permission): its revision's available pods stand in.
    pub endpoints: BTreeMap<String, Vec<ListedPod>>,
    /// Pods of the stable revision, read only while a restart (`spec.restartAt`) is pending.
    pub pods: Vec<ObservedPod>,
    /// The Rollout's AnalysisRuns and the templates it names.
    pub analysis: super::gates::AnalysisObserved,
}

/// A pod a Service's EndpointSlices list as ready.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedPod {
    pub name: String,
    /// When fledge first saw it listed; `None` when it was listed before fledge's watch began.
    pub since: Option<Timestamp>,
}

/// What the restart needs of one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedPod {
    pub name: String,
    /// The revision (pod-template hash) it runs.
    pub hash: String,
    pub created: Option<Timestamp>,
    /// Condition `Ready` is True.
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
}

impl ObservedPod {
    pub fn from_pod(pod: &CachedPod) -> Option<Self> {
        Some(ObservedPod {
            name: pod.name_any(),
            hash: pod.labels().get(HASH_LABEL)?.clone(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            ready: pod.ready,
            terminating: pod.metadata.deletion_timestamp.is_some(),
        })
    }
}

/// What the planner needs of one owned ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedReplicaSet {
    pub name: String,
    pub hash: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas`: pods that exist.
    pub current: i32,
    pub ready: i32,
    pub available: i32,
    pub created: Option<Timestamp>,
    /// The revision number fledge recorded on it (`fledge.dev/revision`), if any.
    pub revision: Option<i64>,
    /// The role metadata fledge recorded on it (`fledge.dev/role-metadata`); empty when none.
    pub role_metadata: crate::api::PodMetadata,
    /// One of its pods lacks some of `role_metadata`.
    pub pods_out_of_role: bool,
}

impl ObservedReplicaSet {
    pub fn from_replica_set(rs: &CachedReplicaSet) -> Option<Self> {
        let hash = rs.labels().get(HASH_LABEL)?.clone();
        Some(ObservedReplicaSet {
            name: rs.name_any(),
            hash,
            replicas: rs.spec.replicas.unwrap_or(1),
            current: rs.status.replicas,
            ready: rs.status.ready_replicas.unwrap_or(0),
            available: rs.status.available_replicas.unwrap_or(0),
            created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            revision: rs
                .annotations()
                .get(REVISION_ANNOTATION)
                .and_then(|v| v.parse().ok()),
            // A record that does not parse is rewritten whole by the next sync.
            role_metadata: rs
                .annotations()
                .get(crate::api::pod_metadata::ROLE_METADATA_ANNOTATION)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default(),
            pods_out_of_role: false,
        })
    }
}

/// A pod the ReplicaSet controller created from a template read just before fledge changed its
/// role metadata misses it, or still carries a key of the role it lost: such a ReplicaSet is
/// marked, so the plan writes its pods again. Only Rollouts with role metadata cost a walk of
/// the pod cache.
fn mark_pods_out_of_role(
    replica_sets: &mut [ObservedReplicaSet],
    rollout: &Rollout,
    pods: &Store<CachedPod>,
    ns: &str,
) {
    let (stable, new) = crate::api::pod_metadata::roles(&rollout.spec.strategy);
    let roles: Vec<&crate::api::PodMetadata> = stable.into_iter().chain(new).collect();
    if roles.iter().all(|r| r.is_empty())
        && replica_sets.iter().all(|rs| rs.role_metadata.is_empty())
    {
        return;
    }
    for pod in pods.state() {
        if pod.namespace().as_deref() != Some(ns) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(owner) = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
        else {
            continue;
        };
        let Some(rs) = replica_sets.iter_mut().find(|rs| rs.name == owner.name) else {
            continue;
        };
        if rs
            .role_metadata
            .out_of_role(roles.iter().copied(), pod.labels(), pod.annotations())
        {
            rs.pods_out_of_role = true;
        }
    }
}

/// The Services a Rollout's strategy names, with the field that names them (for messages).
pub fn referenced_services(rollout: &Rollout) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(c) = &rollout.spec.strategy.canary {
        out.extend(
            c.stable_service
                .clone()
                .map(|s| ("strategy.canary.stableService", s)),
        );
        out.extend(
            c.canary_service
                .clone()
                .map(|s| ("strategy.canary.canaryService", s)),
        );
    }
    if let Some(b) = &rollout.spec.strategy.blue_green {
        out.push(("strategy.blueGreen.activeService", b.active_service.clone()));
        out.extend(
            b.preview_service
                .clone()
                .map(|s| ("strategy.blueGreen.previewService", s)),
        );
    }
    out
}

/// The caches observe reads from.
pub struct Caches {
    pub replica_sets: Store<CachedReplicaSet>,
    /// The ReplicaSet cache's names by owning Rollout.
    pub replica_set_owners: super::index::OwnerIndex,
    pub services: Store<Service>,
    pub deployments: Store<Deployment>,
    /// Pods of fledge's ReplicaSets (those with the pod-template-hash label).
    pub pods: Store<CachedPod>,
    pub analysis: AnalysisCaches,
}

/// The caches of analysis objects.
pub struct AnalysisCaches {
    /// AnalysisRuns labelled with a Rollout's name.
    pub runs: Store<AnalysisRun>,
    /// The run cache's names by owning Rollout.
    pub run_owners: super::index::OwnerIndex,
    pub templates: Store<AnalysisTemplate>,
    pub cluster_templates: Store<ClusterAnalysisTemplate>,
}

impl Default for AnalysisCaches {
    /// Empty caches, for tests and benchmarks.
    fn default() -> Self {
        AnalysisCaches {
            runs: kube::runtime::reflector::store().0,
            run_owners: Default::default(),
            templates: kube::runtime::reflector::store().0,
            cluster_templates: kube::runtime::reflector::store().0,
        }
    }
}

/// The Rollout's own AnalysisRuns (labelled with its name, controlled by it) and the templates
/// it references that exist.
fn observe_analysis(rollout: &Rollout, caches: &AnalysisCaches) -> super::gates::AnalysisObserved {
    use super::gates::{AnalysisObserved, ObservedRun, references};
    let ns = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let uid = rollout.uid();
    let refs = references(rollout);
    let names = caches.run_owners.names(&ns, &name);
    if refs.is_empty() && names.is_empty() {
        return AnalysisObserved::default();
    }
    let runs = names
        .into_iter()
        .filter_map(|run| caches.runs.get(&ObjectRef::new(&run).within(&ns)))
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        })
        .filter_map(|r| ObservedRun::from_run(&r))
        .collect();
    let mut templates = BTreeMap::new();
    for (_, request) in &refs {
        for t in request.templates {
            let cluster = t.cluster_scope == Some(true);
            let spec = if cluster {
                caches
                    .cluster_templates
                    .get(&ObjectRef::new(&t.template_name))
                    .map(|c| c.spec.clone().into())
            } else {
                caches
                    .templates
                    .get(&ObjectRef::new(&t.template_name).within(&ns))
                    .map(|c| c.spec.clone())
            };
            if let Some(spec) = spec {
                templates.insert((cluster, t.template_name.clone()), spec);
            }
        }
    }
    // Only arguments read from the Rollout's fields need it.
    let uses_fields = refs.iter().any(|(_, request)| {
        request
            .args
            .iter()
            .any(|a| a.value_from.as_ref().is_some_and(|f| f.field_ref.is_some()))
    }) || templates.values().any(|t| {
        t.args
            .iter()
            .any(|a| a.value_from.as_ref().is_some_and(|f| f.field_ref.is_some()))
    });
    let rollout_json = if uses_fields {
        serde_json::to_value(rollout).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    AnalysisObserved {
        runs,
        templates,
        rollout: rollout_json,
    }
}

/// Reads the world of `rollout` from the caches. Never touches the network.
pub fn observe(rollout: &Rollout, caches: &Caches) -> Observed {
    let ns = rollout.namespace().unwrap_or_default();
    let uid = rollout.uid();

    let name = rollout.name_any();
    let replica_sets = caches
        .replica_set_owners
        .names(&ns, &name)
        .into_iter()
        .filter_map(|rs| caches.replica_sets.get(&ObjectRef::new(&rs).within(&ns)))
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        })
        .filter_map(|rs| ObservedReplicaSet::from_replica_set(&rs))
        .collect();
    let mut replica_sets: Vec<ObservedReplicaSet> = replica_sets;
    mark_pods_out_of_role(&mut replica_sets, rollout, &caches.pods, &ns);

    let services = referenced_services(rollout)
        .into_iter()
        .filter_map(|(_, name)| {
            let svc = caches.services.get(&ObjectRef::new(&name).within(&ns))?;
            let hash = svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.get(HASH_LABEL).cloned());
            Some((name, hash))
        })
        .collect();

    let workload = match (&rollout.spec.template, &rollout.spec.workload_ref) {
        (None, Some(w)) => caches.deployments.get(&ObjectRef::new(&w.name).within(&ns)),
        _ => None,
    };
    let workload_selector = workload
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .map(|s| s.selector.clone());
    let (template, workload_replicas) = match (&rollout.spec.template, &rollout.spec.workload_ref) {
        (Some(t), _) => (Ok(t.clone()), None),
        (None, Some(w)) => match &workload {
            Some(d) => {
                let spec = d.spec.as_ref();
                (
                    spec.map(|s| s.template.clone())
                        .ok_or_else(|| format!("workloadRef: Deployment {:?} has no spec", w.name)),
                    spec.and_then(|s| s.replicas).or(Some(1)),
                )
            }
            None => (
                Err(format!(
                    "workloadRef: Deployment {:?} not found in namespace {ns:?}",
                    w.name
                )),
                None,
            ),
        },
        (None, None) => (Err("spec: set one of template or workloadRef".into()), None),
    };

    // Pods are read only while a restart is pending: walking the pod cache costs, and nothing
    // else needs them.
    let pods = match super::restart::pending_hash(rollout) {
        Some(hash) => {
            let owner = format!("{name}-{hash}");
            caches
                .pods
                .state()
                .iter()
                .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
                .filter(|p| {
                    p.owner_references()
                        .iter()
                        .any(|o| o.controller == Some(true) && o.name == owner)
                })
                .filter_map(|p| ObservedPod::from_pod(p))
                .collect()
        }
        None => Vec::new(),
    };

    Observed {
        template,
        replica_sets,
        services,
        workload_replicas,
        workload_selector,
        traffic: Default::default(),
        gateway_classes: Vec::new(),
        endpoints: BTreeMap::new(),
        pods,
        analysis: observe_analysis(rollout, &caches.analysis),
    }
}

/// The kinds of routing objects `routings` (a Rollout's, see [`super::plan::routings`]) edit,
/// whose caches must run before [`observe_traffic`] reads them.
pub fn route_kinds(rollout: &Rollout, routings: &[&TrafficRouting]) -> Vec<crate::traffic::Kind> {
    use crate::traffic::Kind;
    let mut kinds: Vec<Kind> = routings
        .iter()
        .flat_map(|r| crate::traffic::kinds(r, &rollout.name_any()))
        .collect();
    // Routers send traffic to the Services' endpoints: a revision gets weight only once they
    // list its pods (see `traffic::endpoints`).
    if !kinds.is_empty() {
        kinds.push(Kind::EndpointSlice);
    }
    // Gateway API routes: their parents' classes say what the gateway implements.
    if kinds
        .iter()
        .any(|k| matches!(k, Kind::HttpRoute | Kind::GrpcRoute))
    {
        kinds.extend([Kind::Gateway, Kind::GatewayClass]);
    }
    kinds
}

/// The classes of the parent Gateways of the HTTPRoutes and GRPCRoutes in `traffic`, from the
/// caches (their kinds are among [`route_kinds`]). A Gateway or class not (yet) readable is left
/// out: fledge then knows nothing of what that gateway implements.
pub fn observe_gateway_classes(
    rollout: &Rollout,
    traffic: &crate::traffic::Objects,
    routes: &crate::traffic::cache::RouteCaches,
) -> Vec<crate::traffic::features::ParentClass> {
    use crate::traffic::features::{ParentClass, parent_gateways, supported_features};
    use crate::traffic::{Found, Kind, ObjectKey};
    let ns = rollout.namespace().unwrap_or_default();
    let key = |kind, name: &str| ObjectKey {
        kind,
        name: name.to_string(),
    };
    let mut out = Vec::new();
    for (route_key, found) in traffic {
        let (Kind::HttpRoute | Kind::GrpcRoute, Found::Object(route)) = (route_key.kind, found)
        else {
            continue;
        };
        for (gw_ns, gw_name) in parent_gateways(route, &ns) {
            let Found::Object(gateway) = routes.get(&gw_ns, &key(Kind::Gateway, &gw_name)) else {
                continue;
            };
            let Some(class) = gateway
                .pointer("/spec/gatewayClassName")
                .and_then(serde_json::Value::as_str)
            else {
                continue;
            };
            let supported = match routes.get("", &key(Kind::GatewayClass, class)) {
                Found::Object(c) => supported_features(&c),
                _ => Vec::new(),
            };
            out.push(ParentClass {
                route: route_key.clone(),
                gateway: format!("{gw_ns}/{gw_name}"),
                class: class.to_string(),
                supported,
            });
        }
    }
    out
}

/// The pods each Service the strategy names lists as ready, for a Rollout with a traffic router
/// (the EndpointSlice cache is among its [`route_kinds`]); Services that cannot be read are left
/// out.
pub fn observe_endpoints(
    rollout: &Rollout,
    routings: &[&TrafficRouting],
    routes: &crate::traffic::cache::RouteCaches,
) -> BTreeMap<String, Vec<ListedPod>> {
    if routings.is_empty() {
        return BTreeMap::new();
    }
    let ns = rollout.namespace().unwrap_or_default();
    referenced_services(rollout)
        .into_iter()
        .filter_map(|(_, service)| {
            let pods = routes.ready_pods(&ns, &service).ok()?;
            let pods = pods
                .into_iter()
                .map(|(name, since)| ListedPod { name, since })
                .collect();
            Some((service, pods))
        })
        .collect()
}

/// Reads the routing objects of `routings` (a Rollout's, see [`super::plan::routings`]) from
/// their caches (which [`crate::traffic::cache::RouteCaches::ensure`] started).
pub fn observe_traffic(
    rollout: &Rollout,
    routings: &[&TrafficRouting],
    routes: &crate::traffic::cache::RouteCaches,
) -> crate::traffic::Objects {
    let ns = rollout.namespace().unwrap_or_default();
    routings
        .iter()
        .flat_map(|routing| crate::traffic::routers(routing, &rollout.name_any()))
        .flat_map(|r| r.reads())
        .map(|key| {
            let found = routes.get(&ns, &key);
            (key, found)
        })
        .collect()
}
