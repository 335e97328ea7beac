//! The AnalysisRun controller: resolve the run's arguments, ask [`run::assess`] what is due,
//! take those measurements through the providers, record them, write the status, and requeue at
//! the next measurement time only. A status change wakes the owning Rollout through its watch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use super::measure::{self, Pool};
use super::providers::{MetricProvider, Providers, network::Denied};
use super::redact::Redactor;
use super::{args, run};
use crate::api::INSTANCE_ID_LABEL;
use crate::api::Rollout;
use crate::api::Scope;
use crate::api::analysis::{
    ANALYSIS_RUN_LABEL, AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisRunStatus,
};
use crate::telemetry::Metrics;

/// Errors of one reconcile, retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The status write of run (name) failed; a conflict is one of these.
    #[error("writing the status of AnalysisRun {0:?}: {1}")]
    Write(String, #[source] Box<kube::Error>),
    /// A status patch fledge builds did not serialize.
    #[error("serializing: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A provider could not release what it held for run (name), such as a Job: (name, why).
    #[error("cleaning up AnalysisRun {0:?}: {1}")]
    CleanUp(String, String),
    /// Reading the Rollout that owns run (name) failed, so whether to measure it is unknown.
    #[error("reading the Rollout that owns AnalysisRun {0:?}: {1}")]
    Owner(String, #[source] Box<kube::Error>),
}

/// How the analysis controller measures.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Run `job` metrics as Jobs (needs rights on Jobs).
    pub job_provider: bool,
    /// Measure runs that no Rollout owns (`--allow-standalone-analysis-runs`).
    pub allow_standalone_runs: bool,
    /// Address ranges no measurement connects to (`--analysis-denied-cidrs`).
    pub denied: Denied,
}

/// Measurements running at once, over all runs; more wait for a turn on their own task.
pub const MEASUREMENTS_AT_ONCE: usize = 64;

struct Context {
    client: Client,
    providers: Providers,
    pool: Pool<Providers>,
    allow_standalone_runs: bool,
    events: crate::runtime::Events,
    metrics: Arc<Metrics>,
    /// The runs' resourceVersions fledge's own status writes moved past.
    freshness: crate::freshness::Freshness,
}

/// A Job measurement in progress is looked at again on every change of its Job; this is only a
/// safety net should a watch event be lost.
const RUNNING_RECHECK: Duration = Duration::from_secs(30);

/// How long a run whose status the API server rejects waits before it is tried again.
const REJECTED_RETRY: Duration = Duration::from_secs(60);

/// Runs the AnalysisRun controller until `shutdown` resolves. Without `job_provider` Jobs are
/// neither watched nor created, so an installation that grants no rights on Jobs works.
pub async fn run(
    client: Client,
    scope: Scope,
    concurrency: u16,
    options: Options,
    metrics: Arc<Metrics>,
    events: crate::runtime::Events,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let job_provider = options.job_provider;
    let providers = match Providers::new(client.clone(), job_provider, options.denied.clone()) {
        Ok(p) => p,
        Err(error) => {
            warn!(%error, "analysis controller not started");
            return;
        }
    };
    let selector = match &scope.instance_id {
        Some(id) => format!("{INSTANCE_ID_LABEL}={id}"),
        None => format!("!{INSTANCE_ID_LABEL}"),
    };
    let (runs, jobs): (Api<AnalysisRun>, Api<Job>) = match &scope.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    // A finished measurement wakes its run; the reconcile workers never wait for one.
    let (pool, finished) = Pool::new(providers.clone(), MEASUREMENTS_AT_ONCE);
    let ctx = Arc::new(Context {
        events,
        client,
        providers,
        pool,
        allow_standalone_runs: options.allow_standalone_runs,
        metrics,
        freshness: crate::freshness::Freshness::default(),
    });
    let mut controller =
        Controller::new(runs, watcher::Config::default().labels(&selector)).reconcile_on(finished);
    if job_provider {
        controller = controller.owns(jobs, watcher::Config::default().labels(ANALYSIS_RUN_LABEL));
    } else {
        info!("job provider off: Jobs are not watched, job metrics fail");
    }
    let results = controller
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx);
    crate::runtime::drain(results, "analysis controller").await;
}

/// The run's arguments with values: literals as given, Secrets read now (and marked so).
async fn resolve_args(ctx: &Context, run: &AnalysisRun) -> Result<args::Values, String> {
    let ns = run.namespace().unwrap_or_default();
    let mut out = BTreeMap::new();
    for a in &run.spec.args {
        let value = match (&a.value, &a.value_from) {
            (Some(v), _) => args::ArgValue::text(v.clone()),
            (None, Some(from)) => match (&from.secret_key_ref, &from.field_ref) {
                (Some(s), _) => args::ArgValue::secret(
                    super::providers::secret_value(&ctx.client, &ns, s)
                        .await
                        .map_err(|e| format!("argument {:?}: {e}", a.name))?,
                ),
                (None, Some(f)) => {
                    return Err(format!(
                        "argument {:?}: fieldRef {:?} is resolved by the Rollout that creates the run",
                        a.name, f.field_path
                    ));
                }
                (None, None) => return Err(format!("argument {:?} has no value", a.name)),
            },
            (None, None) => return Err(format!("argument {:?} has no value", a.name)),
        };
        out.insert(a.name.clone(), value);
    }
    Ok(out)
}

/// The spec with `{{args}}` replaced and checked, with what takes the Secrets' values out of
/// what the run shows; or why the run cannot start (redacted too).
async fn resolved_spec(
    ctx: &Context,
    run: &AnalysisRun,
) -> Result<(AnalysisRunSpec, Redactor), String> {
    let values = resolve_args(ctx, run).await?;
    let mut redactor = Redactor::new(
        values
            .values()
            .filter(|v| v.secret)
            .filter_map(|v| v.text.clone()),
    );
    let mut written = Vec::new();
    let mut spec = run.spec.clone();
    let substituted = spec
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            args::substitute_metric_with(m, &values, &mut written)
                .map_err(|p| format!("metrics[{i}].{p}"))
        })
        .collect::<Result<_, _>>();
    written.iter().for_each(|w| redactor.add(w));
    spec.metrics = substituted.map_err(|e| redactor.text(&e))?;
    run::validate(&spec.metrics).map_err(|e| redactor.text(&e))?;
    // A run a Rollout creates had its rules checked by the Rollout's validation; one created
    // by hand ends in Error here, as in Argo Rollouts.
    if let Some(p) =
        super::metric_rules::problems(&spec.dry_run, &spec.measurement_retention, &spec.metrics)
            .first()
    {
        return Err(redactor.text(&p.to_string()));
    }
    Ok((spec, redactor))
}

/// True when the Rollout that owns `run` exists (an owner reference alone can be written by
/// whoever creates the run).
async fn owned_by_a_rollout(ctx: &Context, run: &AnalysisRun) -> Result<bool, Error> {
    let Some((name, uid)) = measure::owning_rollout(run) else {
        return Ok(false);
    };
    let rollouts =
        Api::<Rollout>::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    // A list narrowed to the name, not a get: the chart grants list and watch on Rollouts (the
    // Rollout controller reads them from a cache) but no get.
    let found = rollouts
        .list(&kube::api::ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .map_err(|e| Error::Owner(run.name_any(), Box::new(e)))?;
    Ok(found
        .items
        .iter()
        .any(|r| r.metadata.uid.as_deref() == Some(uid.as_str())))
}

#[instrument(skip_all, fields(run = %run.name_any(), namespace = run.namespace().unwrap_or_default()))]
async fn reconcile(run: Arc<AnalysisRun>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let uid = run.uid().unwrap_or_default();
    if run.metadata.deletion_timestamp.is_some() {
        ctx.freshness.forget(&uid);
        return Ok(Requeue::await_change());
    }
    if ctx
        .freshness
        .is_stale(&uid, &run.resource_version().unwrap_or_default())
    {
        // A copy from before the last status written would find the measurement just recorded
        // still due and take it again. The watch brings the write in a moment, and with it the
        // next reconcile; the requeue is only in case it never does.
        tracing::debug!("cache predates our last write; waiting for it");
        return Ok(Requeue::requeue(Duration::from_secs(5)));
    }
    let old = run.status.clone().unwrap_or_default();
    if old.phase.is_some_and(AnalysisPhase::is_terminal) {
        ctx.freshness.forget(&uid);
        ctx.pool.forget(&run);
        clean_up(&ctx, &run).await?;
        return Ok(Requeue::await_change());
    }
    let mut status = old.clone();
    let now = Timestamp::now();

    // A run created directly would be measured from the controller's network position.
    let spec = if ctx.allow_standalone_runs || owned_by_a_rollout(&ctx, &run).await? {
        resolved_spec(&ctx, &run).await
    } else {
        Err(measure::STANDALONE_REFUSED.to_string())
    };
    let (spec, redactor) = match spec {
        Ok(spec) => spec,
        Err(message) => {
            // An invalid run never measures; the Rollout reads Error and aborts.
            status
                .started_at
                .get_or_insert(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            status.phase = Some(AnalysisPhase::Error);
            status.message = Some(message);
            save(&ctx, &run, &old, &mut status).await?;
            record_phase(&ctx, &run, &status).await;
            return Ok(Requeue::await_change());
        }
    };

    run::assess(&spec, &mut status, now);
    // Measurements run on tasks of their own (see `measure`): take the finished ones, start
    // the due ones, and never wait for a provider here.
    let measured = ctx.pool.take(&run, &status);
    for f in &measured {
        let m = &f.measurement;
        tracing::debug!(metric = %f.metric, phase = m.phase.as_str(), value = ?m.value, message = ?m.message, "measured");
        run::record(&spec, &mut status, &f.metric, m.clone());
    }
    let now = Timestamp::now();
    let schedule = run::assess(&spec, &mut status, now);
    save(&ctx, &run, &old, &mut status).await?;
    // Written: the pool lets go of them. A write lost to a conflict returned above with them
    // still in the pool, to be recorded from a fresher copy rather than measured again.
    ctx.pool.recorded(&run, &measured);
    // Only on a status that was written (or needed no write): a measurement started on one
    // that a conflict threw away would wait for a status that never comes. A status the API
    // server refused ends the run (see `save`), and nothing more is measured then.
    if !status.phase.is_some_and(AnalysisPhase::is_terminal) {
        ctx.pool
            .start(&run, &spec.metrics, &status, &schedule.due, &redactor);
    }
    // Counted once recorded. A Job still running is looked at again later: one measurement,
    // counted when it ends.
    for f in measured
        .iter()
        .filter(|f| f.measurement.phase.is_terminal())
    {
        ctx.metrics
            .measurement(f.provider, f.measurement.phase.as_str());
    }
    if status.phase != old.phase {
        info!(phase = ?status.phase, message = ?status.message, "analysis run phase");
        record_phase(&ctx, &run, &status).await;
    }
    if status.phase.is_some_and(AnalysisPhase::is_terminal) {
        ctx.pool.forget(&run);
        clean_up(&ctx, &run).await?;
        return Ok(Requeue::await_change());
    }
    let waiting_on_jobs = schedule.due.iter().any(|d| d.resume.is_some());
    // A measurement under way wakes the run when it finishes.
    let due_idle = |d: &run::Due| d.resume.is_none() && !ctx.pool.busy(&run, &d.metric);
    Ok(if schedule.due.iter().any(due_idle) {
        // Measurements back to back (no interval): go on at once.
        Requeue::requeue(Duration::from_millis(100))
    } else {
        let next = schedule.next_at.map(|at| {
            let d = Duration::try_from(at.duration_since(now)).unwrap_or_default();
            Duration::from_millis(
                u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX),
            )
        });
        match (next, waiting_on_jobs) {
            (Some(d), true) => Requeue::requeue(d.min(RUNNING_RECHECK)),
            (Some(d), false) => Requeue::requeue(d),
            (None, true) => Requeue::requeue(RUNNING_RECHECK),
            (None, false) => Requeue::await_change(),
        }
    })
}

/// An Event on the run when it ends, so `kubectl describe` tells why, and a count by phase.
async fn record_phase(ctx: &Context, run: &AnalysisRun, status: &AnalysisRunStatus) {
    let Some(phase) = status.phase.filter(|p| p.is_terminal()) else {
        return;
    };
    ctx.metrics.analysis_run_ended(phase.as_str());
    let event = Event {
        // Terminated is no failure: the run was stopped because it is no longer needed.
        type_: if matches!(phase, AnalysisPhase::Successful | AnalysisPhase::Terminated) {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: format!("AnalysisRun{}", phase.as_str()),
        note: status.message.clone(),
        action: "Measure".into(),
        secondary: None,
    };
    ctx.events.publish(event, run.object_ref(&()));
}

async fn clean_up(ctx: &Context, run: &AnalysisRun) -> Result<(), Error> {
    ctx.providers
        .clean_up(run)
        .await
        .map_err(|e| Error::CleanUp(run.name_any(), e))
}

/// Writes `status`. Should the API server reject it as invalid (422: too large, say), writing it
/// again can never succeed: the run ends Error on its last accepted status instead, and its
/// message (and the Event [`record_phase`] sends) gives the server's reason.
async fn save(
    ctx: &Context,
    run: &AnalysisRun,
    old: &AnalysisRunStatus,
    status: &mut AnalysisRunStatus,
) -> Result<(), Error> {
    match write_status(ctx, run, old, status).await {
        Err(Error::Write(name, e)) if matches!(*e, kube::Error::Api(ref s) if s.code == 422) => {
            let reason = match *e {
                kube::Error::Api(ref s) => s.message.clone(),
                _ => String::new(),
            };
            warn!(run = %name, %reason, "status rejected by the API server; the run ends Error");
            *status = run::rejected(old, &reason, Timestamp::now());
            write_status(ctx, run, old, status).await
        }
        other => other,
    }
}

/// Writes the status when it changed, guarded by the resourceVersion the measurements were
/// based on: a reconcile that worked from a stale copy loses its write (409 Conflict: the patch
/// sets that resourceVersion, which the API server checks) and runs again.
async fn write_status(
    ctx: &Context,
    run: &AnalysisRun,
    old: &AnalysisRunStatus,
    status: &AnalysisRunStatus,
) -> Result<(), Error> {
    if old == status {
        return Ok(());
    }
    let name = run.name_any();
    let value = serde_json::to_value(status).map_err(Error::Serialize)?;
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": run.resource_version()},
        {"op": "add", "path": "/status", "value": value},
    ]))
    .map_err(Error::Serialize)?;
    let written =
        Api::<AnalysisRun>::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default())
            .patch_status(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .map_err(|e| Error::Write(name, Box::new(e)))?;
    // A patch the API server found to change nothing (a time that differs only below the
    // second it stores) keeps the version, and the watch brings no news to wait for.
    if written.resource_version() != run.resource_version() {
        ctx.freshness.superseded(
            &run.uid().unwrap_or_default(),
            run.resource_version().into_iter().collect(),
        );
    }
    Ok(())
}

fn error_policy(run: Arc<AnalysisRun>, error: &Error, _: Arc<Context>) -> Requeue {
    match error {
        Error::Write(_, e) if matches!(**e, kube::Error::Api(ref s) if s.code == 409) => {
            tracing::debug!(run = %run.name_any(), %error, "stale copy, retrying");
            Requeue::requeue(Duration::from_millis(200))
        }
        // Invalid even as the last accepted status ended in Error: the same write fails the same
        // way, so try again only now and then.
        Error::Write(_, e) if matches!(**e, kube::Error::Api(ref s) if s.code == 422) => {
            warn!(run = %run.name_any(), %error, "status rejected by the API server");
            Requeue::requeue(REJECTED_RETRY)
        }
        _ => {
            warn!(run = %run.name_any(), %error, "analysis reconcile failed");
            Requeue::requeue(Duration::from_secs(5))
        }
    }
}
