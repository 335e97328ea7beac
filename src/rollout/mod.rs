//! The Rollout controller: watch events -> observe -> plan (pure) -> act -> status.

pub mod act;
#[cfg(test)]
mod act_tests;
#[cfg(test)]
mod analysis_fields_tests;
mod analysis_run_checks;
pub(crate) mod bluegreen;
mod bluegreen_abort;
pub mod cached;
pub(crate) mod canary;
#[cfg(test)]
mod canary_share_tests;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod gates;
#[cfg(test)]
mod gates_tests;
pub mod hash;
#[cfg(test)]
mod health_tests;
pub mod index;
pub mod observe;
pub mod plan;
pub mod restart;
pub mod revision;
mod role_metadata_checks;
pub mod spec_checks;
pub mod webhook_gates;
#[cfg(test)]
mod webhook_gates_tests;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, instrument, warn};

use crate::api::Scope;
use crate::api::{
    AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, HASH_LABEL, INSTANCE_ID_LABEL, Phase,
    ROLLOUT_LABEL, Rollout,
};
use crate::telemetry::{Health, Metrics};
use crate::traffic::cache::RouteCaches;
use observe::Caches;

/// Errors of one reconcile. Each is retried with backoff; none is fatal to the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write to the API server failed: (kind, name, the error). A conflict is one of these.
    #[error("writing {0} {1:?}: {2}")]
    Write(&'static str, String, #[source] Box<kube::Error>),
    /// ReplicaSet `name` is to be scaled but exists neither in the cache nor as the spec's own
    /// revision, so there is no template (or selector) to write it with (an old revision's
    /// ReplicaSet gone from the cache is never rebuilt from the spec's template).
    #[error("no pod template for {0}")]
    MissingTemplate(String),
    /// The Rollout has no name or uid, so nothing can name it as its owner (a Rollout read from
    /// the API server always has both).
    #[error("the Rollout has no uid to own what fledge creates")]
    NoOwner,
    /// A patch fledge builds did not serialize.
    #[error("serializing: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl Error {
    /// A short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Write(_, _, e) if is_conflict(e) => "conflict",
            Error::Write(..) => "write",
            Error::MissingTemplate(_) => "template",
            Error::NoOwner => "owner",
            Error::Serialize(_) => "serialize",
        }
    }
}

/// A write lost a race: 409, or the 422 the API server answers when the status patch's
/// resourceVersion test fails (no field causes, unlike a validation error).
fn is_conflict(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(s) if s.code == 409 => true,
        kube::Error::Api(s) if s.code == 422 => {
            s.details.as_ref().is_none_or(|d| d.causes.is_empty())
        }
        _ => false,
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub rollouts: Store<Rollout>,
    pub metrics: Arc<Metrics>,
    pub events: crate::runtime::Events,
    /// Caches of the routing objects (HTTPRoutes, VirtualServices, ...), started on first use.
    pub routes: RouteCaches,
    /// Sends the notifications Rollouts' statuses owe.
    pub notifier: Arc<crate::notify::Notifier>,
    /// Which cached Rollouts predate fledge's own last write to them.
    pub freshness: crate::freshness::Freshness,
    /// True once every cache but the Rollouts' holds its first full list: a plan made against a
    /// half-filled cache could take "not cached yet" for "does not exist".
    pub synced: tokio::sync::watch::Receiver<bool>,
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Cached objects keep only what fledge reads: managedFields and the last-applied annotation are
/// often the biggest part of an object and are never used.
fn slim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(a) = obj.meta_mut().annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Where the controller reports: its metrics, its readiness and its Events.
pub struct Reports {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub events: crate::runtime::Events,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    scope: Scope,
    concurrency: u16,
    reports: Reports,
    notify: crate::notify::Options,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Reports {
        metrics,
        health,
        events,
    } = reports;
    let rollout_selector = match &scope.instance_id {
        Some(id) => format!("{INSTANCE_ID_LABEL}={id}"),
        None => format!("!{INSTANCE_ID_LABEL}"),
    };
    let rollouts_wc = watcher::Config::default().labels(&rollout_selector);

    // The caches of related objects are filled by tasks of their own, and reconciles start only
    // once each holds its first full list: a plan made against a half-filled cache could take
    // "not cached yet" for "does not exist" (a Service missing, a ReplicaSet to create). Each
    // task forwards what changed to the controller, which maps it to Rollouts.
    let rs_owners = index::OwnerIndex::default();
    // Only the fields a plan reads are parsed and kept, the template as JSON
    // (`cached/replica_set.rs`).
    let rs_events = {
        let rs_owners = rs_owners.clone();
        watcher(
            api::<cached::CachedReplicaSet>(&client, &scope),
            watcher::Config::default().labels(ROLLOUT_LABEL),
        )
        .map_ok(move |event| {
            rs_owners.apply(&event);
            event
        })
    };
    let (rs_store, rs_changes) = cache(rs_events);
    let (svc_store, svc_changes) = cache(watcher(
        api::<Service>(&client, &scope),
        watcher::Config::default(),
    ));
    let (deploy_store, deploy_changes) = cache(watcher(
        api::<Deployment>(&client, &scope),
        watcher::Config::default(),
    ));
    // Pods of fledge's ReplicaSets, for restarts. Their changes need no trigger: a pod going or
    // becoming ready changes its ReplicaSet's status, which does.
    // Only their metadata and readiness are parsed and kept (`cached/pod.rs`).
    let (pod_store, pod_changes) = cache(watcher(
        api::<cached::CachedPod>(&client, &scope),
        watcher::Config::default().labels(HASH_LABEL),
    ));
    // The cache's task stops when nobody takes its changes, so they are taken and dropped.
    tokio::spawn(pod_changes.for_each(|_| futures::future::ready(())));
    let run_owners = index::OwnerIndex::default();
    let run_events = {
        let run_owners = run_owners.clone();
        watcher(
            api::<AnalysisRun>(&client, &scope),
            watcher::Config::default().labels(ROLLOUT_LABEL),
        )
        .map_ok(move |event| {
            run_owners.apply(&event);
            event
        })
    };
    let (run_store, run_changes) = cache(run_events);
    let (template_store, template_changes) = cache(watcher(
        api::<AnalysisTemplate>(&client, &scope),
        watcher::Config::default(),
    ));
    let (cluster_template_store, cluster_template_changes) = cache(watcher(
        Api::<ClusterAnalysisTemplate>::all(client.clone()),
        watcher::Config::default(),
    ));
    // The controller, and with it the list of the Rollouts, starts beside the other caches
    // rather than after them: on a cold start with 3,000 Rollouts that list took 1.2 s of the
    // 1.7 s to the last first reconcile. Reconciles wait for the other caches instead
    // (`Context::synced`). Cached Rollouts are slimmed like the rest (no managedFields). With
    // 10,000 Rollouts the two took fledge's RSS a minute after a restart from 439 to 299 MiB.
    let (rollouts, rollout_writer) = reflector::store();
    let rollout_events = watcher(api::<Rollout>(&client, &scope), rollouts_wc)
        .modify(slim)
        .reflect(rollout_writer)
        .applied_objects();
    let controller = Controller::for_stream(rollout_events, rollouts.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    // One waiter per store: kube's `Store::wait_until_ready` keeps a single waker.
    let filled = {
        let (rs, svc, pod) = (rs_store.clone(), svc_store.clone(), pod_store.clone());
        let (run, template) = (run_store.clone(), template_store.clone());
        let (cluster_template, deploy) = (cluster_template_store.clone(), deploy_store.clone());
        async move {
            rs.wait_until_ready().await?;
            svc.wait_until_ready().await?;
            pod.wait_until_ready().await?;
            run.wait_until_ready().await?;
            template.wait_until_ready().await?;
            cluster_template.wait_until_ready().await?;
            deploy.wait_until_ready().await
        }
    };
    let synced = async move {
        match filled.await {
            Ok(()) => {
                info!("caches synced");
                health.set_ready(true);
                let _ = synced_tx.send(true);
            }
            // A store's writer is gone: its cache stopped, which happens only at shutdown.
            Err(error) => warn!(%error, "a cache stopped before it was filled"),
        }
    };
    let (routes, route_changes) =
        RouteCaches::new(client.clone(), scope.namespace.clone(), rollouts.clone());
    let notifier = crate::notify::Notifier::new(
        client.clone(),
        notify.http,
        metrics.clone(),
        events.clone(),
        notify.defaults,
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        caches: Caches {
            replica_sets: rs_store,
            replica_set_owners: rs_owners,
            services: svc_store,
            deployments: deploy_store,
            pods: pod_store,
            analysis: observe::AnalysisCaches {
                runs: run_store,
                run_owners,
                templates: template_store,
                cluster_templates: cluster_template_store,
            },
        },
        rollouts: rollouts.clone(),
        metrics: metrics.clone(),
        events,
        routes,
        notifier: notifier.clone(),
        freshness: crate::freshness::Freshness::default(),
        synced: synced_rx,
    });

    {
        let (rollouts, metrics) = (rollouts.clone(), metrics.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                update_phase_gauge(&rollouts, &metrics);
            }
        });
    }

    let by_service = rollouts.clone();
    let by_deployment = rollouts.clone();
    let by_template = rollouts.clone();
    let by_cluster_template = rollouts.clone();
    let results = controller
        .owns_stream(rs_changes)
        .reconcile_on(route_changes)
        // A run's status change wakes its Rollout at once: no polling for analysis results.
        .owns_stream(run_changes)
        .watches_stream(template_changes, move |t: AnalysisTemplate| {
            referencing(&by_template, &t, |r| uses_template(r, &t.name_any(), false))
        })
        .watches_stream(
            cluster_template_changes,
            move |t: ClusterAnalysisTemplate| {
                by_cluster_template
                    .state()
                    .iter()
                    .filter(|r| uses_template(r, &t.name_any(), true))
                    .map(|r| ObjectRef::from(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(svc_changes, move |svc: Service| {
            referencing(&by_service, &svc, |r| {
                observe::referenced_services(r)
                    .into_iter()
                    .any(|(_, name)| name == svc.name_any())
            })
        })
        .watches_stream(deploy_changes, move |d: Deployment| {
            referencing(&by_deployment, &d, |r| {
                r.spec
                    .workload_ref
                    .as_ref()
                    .is_some_and(|w| w.name == d.name_any())
            })
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    futures::join!(crate::runtime::drain(results, "controller"), synced);
    notifier.stop().await;
}

/// Fills a cache from `events` on a task of its own; returns the store and a stream of the
/// objects that changed, for the controller's triggers.
fn cache<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + std::fmt::Debug + 'static,
{
    let (store, writer) = reflector::store();
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let changes = events
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(changes);
        while let Some(change) = changes.next().await {
            // Watch errors are retried by the backoff; the controller only needs the objects.
            if let Ok(obj) = change
                && tx.unbounded_send(Ok(obj)).is_err()
            {
                break;
            }
        }
    });
    (store, rx)
}

/// True when the Rollout's analysis names template `name` (cluster-scoped or not).
fn uses_template(rollout: &Rollout, name: &str, cluster: bool) -> bool {
    gates::references(rollout).iter().any(|(_, request)| {
        request
            .templates
            .iter()
            .any(|t| t.template_name == name && (t.cluster_scope == Some(true)) == cluster)
    })
}

/// Rollouts in `obj`'s namespace for which `refers` holds.
fn referencing<K: Resource>(
    rollouts: &Store<Rollout>,
    obj: &K,
    refers: impl Fn(&Rollout) -> bool,
) -> Vec<ObjectRef<Rollout>> {
    let ns = obj.meta().namespace.clone();
    rollouts
        .state()
        .iter()
        .filter(|r| r.metadata.namespace == ns && refers(r))
        .map(|r| ObjectRef::from(r.as_ref()))
        .collect()
}

#[instrument(skip_all, fields(rollout = %rollout.name_any(), namespace = rollout.namespace().unwrap_or_default()))]
async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if ctx.synced.clone().wait_for(|synced| *synced).await.is_err() {
        // The caches stopped before they were filled: fledge is shutting down.
        return Ok(Requeue::await_change());
    }
    let _timer = ctx.metrics.reconcile_timer();
    let uid = rollout.uid().unwrap_or_default();
    if ctx
        .freshness
        .is_stale(&uid, &rollout.resource_version().unwrap_or_default())
    {
        // The watch brings fledge's own write in a moment, and with it the next reconcile; the
        // requeue is only in case it never does.
        tracing::debug!("cache predates our last write; waiting for it");
        return Ok(Requeue::requeue(Duration::from_secs(5)));
    }
    // The routings are read once: their kinds' caches start before the routing objects are
    // read from them.
    let routings = plan::routings(&rollout);
    let kinds = observe::route_kinds(&rollout, &routings);
    ctx.routes.ensure(&kinds).await;

    tracing::debug!("reconciling");
    let mut observed = observe::observe(&rollout, &ctx.caches);
    observed.traffic = observe::observe_traffic(&rollout, &routings, &ctx.routes);
    observed.gateway_classes =
        observe::observe_gateway_classes(&rollout, &observed.traffic, &ctx.routes);
    observed.endpoints = observe::observe_endpoints(&rollout, &routings, &ctx.routes);
    if rollout.meta().deletion_timestamp.is_some() {
        let cleanup = plan::deletion(&rollout, &observed);
        if !cleanup.actions.is_empty() {
            info!(actions = %plan::summary(&cleanup.actions), "cleaning up before deletion");
            // Cleaning up is idempotent: it needs no guard against a stale cache.
            act::apply(
                &ctx.client,
                &rollout,
                &ctx.caches.replica_sets,
                &ctx.caches.services,
                &cleanup,
            )
            .await?;
            ctx.freshness.forget(&uid);
        }
        return Ok(Requeue::await_change());
    }
    let (ns, name) = (rollout.namespace().unwrap_or_default(), rollout.name_any());
    // Messages a status owes from before (a restart, a new leader) are queued again.
    ctx.notifier.offer(&ns, &name, rollout.status.as_ref());
    let now = Timestamp::now();
    let mut plan = plan::plan(&rollout, &observed, now);
    let dropped = {
        let failed = failed_runs(&ctx, &ns, &observed, &plan);
        let failed: Vec<&AnalysisRun> = failed.iter().map(AsRef::as_ref).collect();
        let old = rollout.status.clone().unwrap_or_default();
        crate::notify::record::record(
            &rollout,
            &old,
            &mut plan.status,
            &plan.events,
            &ctx.notifier.defaults,
            &failed,
            now,
        )
    };
    if !plan.actions.is_empty() {
        info!(actions = %plan::summary(&plan.actions), "acting");
        tracing::debug!(actions = ?plan.actions, "acting in full");
    }
    let superseded = act::apply(
        &ctx.client,
        &rollout,
        &ctx.caches.replica_sets,
        &ctx.caches.services,
        &plan,
    )
    .await?;
    ctx.freshness.superseded(&uid, superseded);
    publish_events(&ctx, &rollout, &plan.events);
    for d in dropped {
        warn!(channel = %d.target, event = d.event.as_str(), "notification dropped: too many owed");
        ctx.metrics
            .notification("unknown", d.event.as_str(), "dropped");
    }
    ctx.notifier.offer(&ns, &name, Some(&plan.status));
    // A routing API that is not served (or a cache not synced yet) is looked at again, so that
    // installing its CRD is enough.
    let mut requeue = plan.requeue_after;
    if kinds.iter().any(|k| ctx.routes.unavailable(*k)) {
        let again = Duration::from_secs(30);
        requeue = Some(requeue.map_or(again, |r| r.min(again)));
    }
    Ok(match requeue {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}

/// The AnalysisRuns of the revision in flight that failed, when the plan reports a failure: the
/// notification names the metric, its value and its condition.
fn failed_runs(
    ctx: &Context,
    ns: &str,
    observed: &observe::Observed,
    plan: &plan::Plan,
) -> Vec<Arc<AnalysisRun>> {
    if !plan.events.iter().any(|e| e.reason == "AnalysisFailed") {
        return Vec::new();
    }
    let current = plan.status.current_revision.as_deref();
    observed
        .analysis
        .runs
        .iter()
        .filter(|r| Some(r.hash.as_str()) == current)
        .filter(|r| {
            matches!(
                r.phase,
                Some(crate::api::analysis::AnalysisPhase::Failed)
                    | Some(crate::api::analysis::AnalysisPhase::Error)
            )
        })
        .filter_map(|r| {
            ctx.caches
                .analysis
                .runs
                .get(&ObjectRef::new(&r.name).within(ns))
        })
        .collect()
}

fn publish_events(ctx: &Context, rollout: &Rollout, events: &[plan::PlanEvent]) {
    let reference = rollout.object_ref(&());
    for e in events {
        let event = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.into(),
            note: Some(e.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        ctx.events.publish(event, reference.clone());
    }
}

/// Counts Rollouts by phase for the `fledge_rollouts` gauge. Runs on a timer, not per reconcile,
/// because it walks every cached Rollout.
fn update_phase_gauge(rollouts: &Store<Rollout>, metrics: &Metrics) {
    let mut counts = [
        (Phase::Progressing, 0),
        (Phase::Paused, 0),
        (Phase::Healthy, 0),
        (Phase::Degraded, 0),
    ];
    for r in rollouts.state() {
        if let Some(p) = r.status.as_ref().and_then(|s| s.phase)
            && let Some(c) = counts.iter_mut().find(|(q, _)| *q == p)
        {
            c.1 += 1;
        }
    }
    let counts: Vec<(String, i64)> = counts
        .iter()
        .map(|(p, n)| (p.as_str().to_string(), *n))
        .collect();
    metrics.set_rollouts_by_phase(&counts);
}

fn error_policy(rollout: Arc<Rollout>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.reconcile_error(error.metric_label());
    if error.metric_label() == "conflict" {
        // Someone (usually a client filing a request) changed the Rollout meanwhile; the watch
        // brings the new version at once.
        tracing::debug!(rollout = %rollout.name_any(), %error, "conflict, retrying");
        return Requeue::requeue(Duration::from_millis(200));
    }
    warn!(rollout = %rollout.name_any(), %error, "reconcile failed");
    Requeue::requeue(Duration::from_secs(5))
}
