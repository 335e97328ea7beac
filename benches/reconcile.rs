//! Cost of one reconcile's pure work at scale: `observe` (reading the caches) and `plan`.
//!
//! `cargo bench --bench reconcile [-- ROLLOUTS]` prints time per call for a fleet of ROLLOUTS
//! Rollouts (default 10,000), each with 3 ReplicaSets and 2 Services in the caches. No cluster.

use std::hint::black_box;
use std::time::{Duration, Instant};

use fledge::api::Rollout;
use fledge::rollout::cached::CachedReplicaSet;
use fledge::rollout::index::OwnerIndex;
use fledge::rollout::observe::{Caches, observe};
use fledge::rollout::plan::plan;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::json;

fn rollout(i: usize) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": format!("web-{i}"), "namespace": format!("team-{}", i % 100), "uid": format!("uid-{i}"), "generation": 2},
        "spec": {
            "replicas": 10,
            "selector": {"matchLabels": {"app": format!("web-{i}")}},
            "template": {"metadata": {"labels": {"app": format!("web-{i}")}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}},
            "strategy": {"canary": {
                "stableService": format!("web-{i}-stable"), "canaryService": format!("web-{i}-canary"),
                "steps": [{"setWeight": 10}, {"pause": {"duration": "1m"}}, {"setWeight": 50}, {"pause": {}}],
            }},
        },
    }))
    .expect("rollout JSON")
}

fn replica_set(r: &Rollout, hash: &str, replicas: i32) -> ReplicaSet {
    let name = r.metadata.name.clone().unwrap();
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("{name}-{hash}"), "namespace": r.metadata.namespace,
            "labels": {"fledge.dev/rollout": name, "rollouts-pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout", "name": name, "uid": r.metadata.uid, "controller": true}],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"rollouts-pod-template-hash": hash}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }))
    .expect("replica set JSON")
}

fn service(r: &Rollout, suffix: &str) -> Service {
    let name = r.metadata.name.clone().unwrap();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-{suffix}"), "namespace": r.metadata.namespace},
        "spec": {"selector": {"app": name}},
    }))
    .expect("service JSON")
}

fn fill<K: kube::Resource<DynamicType = ()> + Clone>(writer: &mut Writer<K>, objects: Vec<K>) {
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
}

fn time<T>(what: &str, iterations: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(f());
    }
    let per_call = start.elapsed() / iterations;
    println!("{what:<48} {per_call:>12.2?} per call ({iterations} calls)");
    per_call
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let rollouts: Vec<Rollout> = (0..n).map(rollout).collect();

    let (rs_store, mut rs_writer) = reflector::store();
    let rs_owners = OwnerIndex::default();
    let (svc_store, mut svc_writer) = reflector::store();
    let (deploy_store, _deploy_writer) = reflector::store::<Deployment>();
    for r in &rollouts {
        for rs in [
            replica_set(r, "old1", 0),
            replica_set(r, "stable", 5),
            replica_set(r, "canary", 5),
        ] {
            // Read from their JSON, as the controller reads them.
            let rs: CachedReplicaSet =
                serde_json::from_value(serde_json::to_value(rs).unwrap()).unwrap();
            rs_owners.apply(&watcher::Event::Apply(rs.clone()));
            fill(&mut rs_writer, vec![rs]);
        }
        fill(
            &mut svc_writer,
            vec![service(r, "stable"), service(r, "canary")],
        );
    }
    let caches = Caches {
        replica_sets: rs_store,
        replica_set_owners: rs_owners,
        services: svc_store,
        deployments: deploy_store,
        pods: kube::runtime::reflector::store().0,
        analysis: Default::default(),
    };
    println!(
        "fleet: {n} Rollouts, {} ReplicaSets, {} Services in the caches",
        3 * n,
        2 * n
    );

    let target = &rollouts[n / 2];
    let observed = observe(target, &caches);
    let now = Timestamp::now();
    let iterations = (2_000_000 / n.max(1)).clamp(20, 20_000) as u32;
    let observe_cost = time("observe (cache reads for one Rollout)", iterations, || {
        observe(target, &caches)
    });
    let plan_cost = time("plan (pure decision for one Rollout)", 20_000, || {
        plan(target, &observed, now)
    });
    let resync = (observe_cost + plan_cost) * n as u32;
    println!("a full resync of {n} Rollouts costs about {resync:.2?} of CPU in observe + plan");

    // The same Rollout routed through an HTTPRoute: the routers render and compare the route in
    // every plan.
    let mut routed = target.clone();
    routed.metadata.finalizers = Some(vec!["fledge.dev/traffic-cleanup".into()]);
    routed
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routing = Some(
        serde_json::from_value(json!({"gatewayAPI": {"httpRoutes": [{"name": "web"}]}}))
            .expect("routing JSON"),
    );
    let name = target.metadata.name.clone().unwrap();
    let route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": target.metadata.namespace, "resourceVersion": "1"},
        "spec": {"parentRefs": [{"name": "eg"}], "hostnames": ["shop.example.com"], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [{"name": "cdn", "port": 80}]},
            {"backendRefs": [{"name": format!("{name}-stable"), "port": 80, "weight": 100},
                             {"name": format!("{name}-canary"), "port": 80, "weight": 0}]}]},
    });
    let mut routed_world = observed.clone();
    routed_world.traffic.insert(
        fledge::traffic::ObjectKey {
            kind: fledge::traffic::Kind::HttpRoute,
            name: "web".into(),
        },
        fledge::traffic::Found::Object(route),
    );
    time("plan with an HTTPRoute (render + compare)", 20_000, || {
        plan(&routed, &routed_world, now)
    });
}
