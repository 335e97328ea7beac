//! PURE: the analysis gates of a Rollout. Builds AnalysisRun specs from templates, gates steps and
//! promotions on runs' phases, terminates runs no longer needed, and keeps the run history within
//! its limits. Called by the strategy machines through [`gate`] and by [`super::plan`].

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::plan::{Action, Draft};
use crate::analysis::args;
use crate::analysis::metric_rules;
use crate::api::analysis::{
    ANALYSIS_ATTEMPT_LABEL, ANALYSIS_KIND_LABEL, ANALYSIS_STEP_LABEL, AnalysisPhase, AnalysisRun,
    AnalysisRunMetadata, AnalysisRunSpec, AnalysisTemplateSpec, Argument, DryRun,
    MeasurementRetention,
};
use crate::api::gates::GateType;
use crate::api::{
    AnalysisTemplateRef, BackgroundAnalysis, HASH_LABEL, PauseReason, Rollout, RolloutAnalysis,
    RolloutSpec,
};

/// What an AnalysisRun gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// A canary `analysis` step, by index.
    Step(i32),
    /// `strategy.canary.analysis`.
    Background,
    /// `strategy.blueGreen.prePromotionAnalysis`.
    PrePromotion,
    /// `strategy.blueGreen.postPromotionAnalysis`.
    PostPromotion,
    /// A webhook gate of `spec.gates` (`webhook_gates.rs`), with its step for a traffic increase.
    Gate(GateType, Option<i32>),
}

impl RunKind {
    fn label(self) -> &'static str {
        match self {
            RunKind::Step(_) => "step",
            RunKind::Background => "background",
            RunKind::PrePromotion => "prePromotion",
            RunKind::PostPromotion => "postPromotion",
            RunKind::Gate(..) => super::webhook_gates::GATE_KIND,
        }
    }

    /// Runs beside the steps rather than gating one: the background analysis and a rollback
    /// gate. Waiting on one is not waiting at a gate.
    fn beside(self) -> bool {
        matches!(
            self,
            RunKind::Background | RunKind::Gate(GateType::Rollback, _)
        )
    }

    fn short(self) -> String {
        match self {
            RunKind::Step(i) => format!("step{i}"),
            RunKind::Background => "background".into(),
            RunKind::PrePromotion => "pre".into(),
            RunKind::PostPromotion => "post".into(),
            RunKind::Gate(..) => "gate".into(),
        }
    }
}

/// One of the Rollout's AnalysisRuns, as the planner needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedRun {
    pub name: String,
    pub hash: String,
    pub kind: RunKind,
    pub attempt: i32,
    pub phase: Option<AnalysisPhase>,
    pub message: Option<String>,
    /// `spec.terminate` is already set.
    pub terminating: bool,
    pub created: Option<Timestamp>,
    /// When it last changed: its newest measurement, else its creation.
    pub updated: Option<Timestamp>,
    /// Since when it has owed its next measurement (see [`crate::analysis::run::owed_since`]);
    /// `None` once decided. The progress deadline counts from here while a gate waits on it.
    pub owed_since: Option<Timestamp>,
    /// The gate's name, on a gate's run.
    pub gate: Option<String>,
    /// The last answer a gate's run recorded: the status code, or that none came.
    pub answer: Option<String>,
}

impl ObservedRun {
    pub fn from_run(run: &AnalysisRun) -> Option<ObservedRun> {
        let labels = run.metadata.labels.as_ref()?;
        let kind = match labels.get(ANALYSIS_KIND_LABEL)?.as_str() {
            "step" => RunKind::Step(labels.get(ANALYSIS_STEP_LABEL)?.parse().ok()?),
            "background" => RunKind::Background,
            "prePromotion" => RunKind::PrePromotion,
            "postPromotion" => RunKind::PostPromotion,
            super::webhook_gates::GATE_KIND => RunKind::Gate(
                GateType::parse(labels.get(super::webhook_gates::GATE_TYPE_LABEL)?)?,
                labels.get(ANALYSIS_STEP_LABEL).and_then(|s| s.parse().ok()),
            ),
            _ => return None,
        };
        let status = run.status.as_ref();
        Some(ObservedRun {
            name: run.metadata.name.clone()?,
            hash: labels.get(HASH_LABEL)?.clone(),
            kind,
            attempt: labels
                .get(ANALYSIS_ATTEMPT_LABEL)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            phase: status.and_then(|s| s.phase),
            message: status.and_then(|s| s.message.clone()),
            terminating: run.spec.terminate,
            created: run.metadata.creation_timestamp.as_ref().map(|t| t.0),
            updated: status
                .into_iter()
                .flat_map(|s| &s.metric_results)
                .flat_map(|r| &r.measurements)
                .filter_map(|m| m.finished_at.as_ref().or(m.started_at.as_ref()))
                .map(|t| t.0)
                .max()
                .or(run.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            owed_since: crate::analysis::run::owed_since(
                &run.spec,
                status,
                run.metadata.creation_timestamp.as_ref().map(|t| t.0),
            ),
            gate: labels.get(super::webhook_gates::GATE_LABEL).cloned(),
            answer: matches!(kind, RunKind::Gate(..))
                .then(|| {
                    let last = status?.metric_results.first()?.measurements.last()?;
                    Some(match &last.value {
                        Some(v) => v.clone(),
                        None if last.phase == AnalysisPhase::Running => return None,
                        None => "none (the request failed)".to_string(),
                    })
                })
                .flatten(),
        })
    }
}

/// What the planner knows about analysis: the Rollout's runs and the templates it names.
#[derive(Clone, Debug, Default)]
pub struct AnalysisObserved {
    pub runs: Vec<ObservedRun>,
    /// The referenced templates that exist, by (clusterScope, name).
    pub templates: BTreeMap<(bool, String), AnalysisTemplateSpec>,
    /// The Rollout as JSON, for arguments taken from its fields.
    pub rollout: serde_json::Value,
}

/// One analysis a Rollout asks for: its templates, and what the Rollout adds to the run.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub templates: &'a [AnalysisTemplateRef],
    pub args: &'a [Argument],
    /// Rules added to (and taken before) the templates' own.
    pub dry_run: &'a [DryRun],
    pub measurement_retention: &'a [MeasurementRetention],
    pub metadata: Option<&'a AnalysisRunMetadata>,
}

impl<'a> From<&'a RolloutAnalysis> for Request<'a> {
    fn from(a: &'a RolloutAnalysis) -> Self {
        Request {
            templates: &a.templates,
            args: &a.args,
            dry_run: &a.dry_run,
            measurement_retention: &a.measurement_retention,
            metadata: a.analysis_run_metadata.as_ref(),
        }
    }
}

impl<'a> From<&'a BackgroundAnalysis> for Request<'a> {
    fn from(a: &'a BackgroundAnalysis) -> Self {
        Request {
            templates: &a.templates,
            args: &a.args,
            dry_run: &a.dry_run,
            measurement_retention: &a.measurement_retention,
            metadata: a.analysis_run_metadata.as_ref(),
        }
    }
}

/// Every analysis a Rollout's spec asks for, with the field path for messages.
pub fn references(rollout: &Rollout) -> Vec<(String, Request<'_>)> {
    references_in(&rollout.spec)
}

/// [`references`] of a spec.
pub fn references_in(spec: &RolloutSpec) -> Vec<(String, Request<'_>)> {
    let mut out: Vec<(String, Request<'_>)> = Vec::new();
    if let Some(c) = &spec.strategy.canary {
        for (i, s) in c.steps.iter().enumerate() {
            if let Some(a) = &s.analysis {
                out.push((format!("strategy.canary.steps[{i}].analysis"), a.into()));
            }
        }
        if let Some(a) = &c.analysis {
            out.push(("strategy.canary.analysis".into(), a.into()));
        }
    }
    if let Some(b) = &spec.strategy.blue_green {
        for (field, a) in [
            ("prePromotionAnalysis", &b.pre_promotion_analysis),
            ("postPromotionAnalysis", &b.post_promotion_analysis),
        ] {
            if let Some(a) = a {
                out.push((format!("strategy.blueGreen.{field}"), a.into()));
            }
        }
    }
    out
}

/// The AnalysisRun spec for `request`'s templates with the Rollout's arguments: metrics of all
/// templates, arguments merged and fields of the Rollout read, the Rollout's dry-run and
/// retention rules ahead of the templates'. Secret references stay references; the analysis
/// controller reads them when measuring.
pub fn build_spec(
    observed: &AnalysisObserved,
    namespace: &str,
    request: Request<'_>,
) -> Result<AnalysisRunSpec, String> {
    let given = request.args;
    let mut spec = AnalysisRunSpec {
        dry_run: request.dry_run.to_vec(),
        measurement_retention: request.measurement_retention.to_vec(),
        ..Default::default()
    };
    let mut template_args = Vec::new();
    let mut template_rules = Vec::new();
    for (i, t) in request.templates.iter().enumerate() {
        let cluster = t.cluster_scope == Some(true);
        let template = observed
            .templates
            .get(&(cluster, t.template_name.clone()))
            .ok_or_else(|| match cluster {
                true => format!(
                    "templates[{i}]: ClusterAnalysisTemplate {:?} not found",
                    t.template_name
                ),
                false => format!(
                    "templates[{i}]: AnalysisTemplate {:?} not found in namespace {namespace:?}",
                    t.template_name
                ),
            })?;
        for m in &template.metrics {
            if spec.metrics.iter().any(|x| x.name == m.name) {
                return Err(format!(
                    "templates[{i}]: metric {:?} is in two templates",
                    m.name
                ));
            }
            spec.metrics.push(m.clone());
        }
        template_args.extend(template.args.iter().cloned());
        spec.dry_run.extend(template.dry_run.iter().cloned());
        spec.measurement_retention
            .extend(template.measurement_retention.iter().cloned());
        template_rules.push((i, t, template));
    }
    // A rule naming no metric would leave the metric it meant deciding the run.
    if let Some(p) = metric_rules::problems(
        request.dry_run,
        request.measurement_retention,
        &spec.metrics,
    )
    .first()
    {
        return Err(p.to_string());
    }
    for (i, t, template) in template_rules {
        if let Some(p) = metric_rules::problems(
            &template.dry_run,
            &template.measurement_retention,
            &spec.metrics,
        )
        .first()
        {
            return Err(format!(
                "templates[{i}]: template {:?}: {p}",
                t.template_name
            ));
        }
    }
    let mut merged = args::merge(&template_args, given).map_err(|e| format!("args: {e}"))?;
    for a in &mut merged {
        let field = a
            .value_from
            .as_ref()
            .and_then(|f| f.field_ref.as_ref())
            .map(|f| f.field_path.clone());
        if let Some(path) = field {
            a.value = Some(
                args::field(&observed.rollout, &path)
                    .map_err(|e| format!("args: argument {:?}: {e}", a.name))?,
            );
            a.value_from = None;
        }
        let secret = a
            .value_from
            .as_ref()
            .is_some_and(|f| f.secret_key_ref.is_some());
        if a.value.is_none() && !secret {
            return Err(format!(
                "args: argument {:?} has no value: give it in the Rollout's analysis args",
                a.name
            ));
        }
    }
    let problems = crate::analysis::lint::lint_metrics(&spec.metrics, &merged);
    if let Some(p) = problems.first() {
        return Err(p.to_string());
    }
    spec.args = merged;
    Ok(spec)
}

/// Checks every analysis the spec names can be built; the message names the field.
pub fn validate(rollout: &Rollout, observed: &AnalysisObserved) -> Result<(), String> {
    let ns = rollout.metadata.namespace.clone().unwrap_or_default();
    for (field, request) in references(rollout) {
        build_spec(observed, &ns, request).map_err(|e| format!("{field}.{e}"))?;
    }
    Ok(())
}

/// What a gate says.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// The run is being created or is measuring.
    Waiting,
    /// Successful, or Inconclusive and accepted by a promote.
    Passed,
    /// Failed or Error: abort.
    Failed(String),
    /// Inconclusive: pause until a promote or an abort.
    Inconclusive(String),
}

/// The name of the run of `kind` for revision `hash`.
pub fn run_name(rollout: &str, hash: &str, kind: RunKind, attempt: i32) -> String {
    let base = format!("{rollout}-{hash}-{}", kind.short());
    if attempt > 0 {
        format!("{base}-{attempt}")
    } else {
        base
    }
}

/// Labels of the run of `kind` for revision `hash`.
pub fn run_labels(hash: &str, kind: RunKind, attempt: i32) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (HASH_LABEL.to_string(), hash.to_string()),
        (ANALYSIS_KIND_LABEL.to_string(), kind.label().to_string()),
        (ANALYSIS_ATTEMPT_LABEL.to_string(), attempt.to_string()),
    ]);
    if let RunKind::Step(i) = kind {
        labels.insert(ANALYSIS_STEP_LABEL.to_string(), i.to_string());
    }
    labels
}

/// Gates on the analysis of `kind` for revision `hash`: creates its run when there is none, and
/// says what its phase means for the rollout.
pub(crate) fn gate(d: &mut Draft, hash: &str, kind: RunKind, request: Request<'_>) -> Gate {
    let attempt = d.status.analysis_attempt.unwrap_or(0);
    let name = run_name(&d.rollout_name, hash, kind, attempt);
    d.wanted_runs.push((name.clone(), kind));
    let Some(run) = d.observed.analysis.runs.iter().find(|r| r.name == name) else {
        if d.actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { name: n, .. } if *n == name))
        {
            return Gate::Waiting;
        }
        match build_spec(&d.observed.analysis, &d.namespace, request) {
            Ok(spec) => {
                let metadata = request.metadata.cloned().unwrap_or_default();
                // fledge's labels last: they are how it finds its runs again.
                let mut labels = metadata.labels;
                labels.extend(run_labels(hash, kind, attempt));
                d.actions.push(Action::CreateAnalysisRun {
                    name: name.clone(),
                    labels,
                    annotations: metadata.annotations,
                    spec: Box::new(spec),
                });
                d.event(
                    "AnalysisRunCreated",
                    format!("analysis run {name} started ({})", kind.label()),
                );
                return Gate::Waiting;
            }
            // validate() built it already; a template changing in between is caught next time.
            Err(e) => return Gate::Failed(format!("analysis run {name}: {e}")),
        }
    };
    let message = || {
        format!(
            "analysis run {name} {}: {}",
            run.phase.unwrap_or_default().as_str(),
            run.message.clone().unwrap_or_default()
        )
    };
    match run.phase {
        Some(AnalysisPhase::Successful) => Gate::Passed,
        Some(AnalysisPhase::Inconclusive | AnalysisPhase::Terminated)
            if d.status.accepted_analysis_runs.contains(&name) =>
        {
            Gate::Passed
        }
        Some(AnalysisPhase::Inconclusive) => Gate::Inconclusive(message()),
        // Stopped before it decided (by hand: fledge keeps the runs it still needs): no verdict
        // either way, so a person decides, as on an Inconclusive run.
        Some(AnalysisPhase::Terminated) => Gate::Inconclusive(message()),
        Some(AnalysisPhase::Failed | AnalysisPhase::Error) => Gate::Failed(message()),
        _ => Gate::Waiting,
    }
}

/// Acts on what a gate said; returns true when the machine should stop where it is (waiting,
/// paused or aborting). On Failed the abort is set, for the machine to run its abort path.
pub(crate) fn hold(d: &mut Draft, gate: Gate) -> bool {
    match gate {
        Gate::Passed => false,
        Gate::Waiting => true,
        Gate::Inconclusive(message) => {
            if !d.has_pause(PauseReason::InconclusiveAnalysis) {
                d.warning(
                    "AnalysisInconclusive",
                    format!("{message}; paused: promote to continue, abort to stop"),
                );
            }
            d.pause(PauseReason::InconclusiveAnalysis);
            true
        }
        Gate::Failed(message) => {
            d.status.abort = true;
            d.status.aborted_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(d.now));
            d.warning("AnalysisFailed", format!("{message}; aborting"));
            true
        }
    }
}

/// The number of a new analysis attempt: above the current one and above every attempt a run
/// still carries, so a new attempt's run names are never those of an old run, even should the
/// status have lost count.
pub(crate) fn next_attempt(d: &Draft) -> i32 {
    let runs = d.observed.analysis.runs.iter().map(|r| r.attempt);
    runs.chain(d.status.analysis_attempt)
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

/// Names of the current revision's Inconclusive (or Terminated) runs, which a promote accepts.
pub(crate) fn inconclusive_runs(d: &Draft) -> Vec<String> {
    let attempt = d.status.analysis_attempt.unwrap_or(0);
    d.observed
        .analysis
        .runs
        .iter()
        .filter(|r| {
            Some(&r.hash) == d.status.current_revision.as_ref()
                && r.attempt == attempt
                && matches!(
                    r.phase,
                    Some(AnalysisPhase::Inconclusive | AnalysisPhase::Terminated)
                )
        })
        .map(|r| r.name.clone())
        .collect()
}

/// True when the rollout still needs run `r`: it belongs to the current revision's current
/// attempt, which is in flight, and its gate is still ahead or open (an analysis step not yet
/// passed, the background analysis, a blue-green analysis). A plan that stopped before reaching
/// the gate (a pause, a route not accepted, preview pods unavailable) did not look at such a
/// run, and must not stop it: stopped, it would have no verdict to resume with.
fn needed(d: &Draft, r: &ObservedRun) -> bool {
    let s = &d.status;
    let in_flight = s.current_revision != s.stable_revision && !s.abort && !s.promote_full;
    if !in_flight
        || Some(&r.hash) != s.current_revision.as_ref()
        || r.attempt != s.analysis_attempt.unwrap_or(0)
    {
        return false;
    }
    let canary = d.spec.strategy.canary.as_ref();
    let blue_green = d.spec.strategy.blue_green.as_ref();
    match r.kind {
        RunKind::Step(i) => {
            i >= s.current_step_index.unwrap_or(0)
                && canary
                    .and_then(|c| usize::try_from(i).ok().and_then(|i| c.steps.get(i)))
                    .is_some_and(|step| step.analysis.is_some())
        }
        RunKind::Background => canary.is_some_and(|c| c.analysis.is_some()),
        RunKind::PrePromotion => blue_green.is_some_and(|b| b.pre_promotion_analysis.is_some()),
        RunKind::PostPromotion => blue_green.is_some_and(|b| b.post_promotion_analysis.is_some()),
        RunKind::Gate(t, step) => super::webhook_gates::needed(d, r, t, step),
    }
}

/// Terminates running AnalysisRuns the rollout no longer needs (the rollout ended or aborted,
/// the step was skipped, the revision was replaced), and deletes finished ones beyond the history
/// limits. A run a gate asked for in this plan, or one still [`needed`], is never terminated.
/// The current revision's runs count only once it is replaced, so the decision does not depend
/// on which gates this plan happened to pass through.
pub(crate) fn retire(d: &mut Draft) {
    let mut keep_successful = d.settings.successful_run_history_limit;
    let mut keep_unsuccessful = d.settings.unsuccessful_run_history_limit;
    // A rollout that has nothing in flight (promoted, or back on stable) needs no analysis,
    // whatever gates this plan passed on its way there.
    if d.status.current_revision == d.status.stable_revision {
        d.wanted_runs.clear();
    }
    let attempt = d.status.analysis_attempt.unwrap_or(0);
    let current = d.status.current_revision.clone();
    let mut runs: Vec<ObservedRun> = d
        .observed
        .analysis
        .runs
        .iter()
        .filter(|r| !d.wanted_runs.iter().any(|(n, _)| *n == r.name))
        .cloned()
        .collect();
    // The current revision's runs are not history yet; the limits apply to the others.
    let is_current = |r: &ObservedRun| Some(&r.hash) == current.as_ref() && r.attempt == attempt;
    // Newest first; names break ties so the order is total.
    runs.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    for r in runs {
        match r.phase {
            Some(p) if p.is_terminal() && is_current(&r) => {}
            Some(p) if p.is_terminal() => {
                // A Terminated run passed nothing but failed nothing either: it does not push
                // a failure, worth a post-mortem, out of the history.
                let keep = if matches!(p, AnalysisPhase::Successful | AnalysisPhase::Terminated) {
                    &mut keep_successful
                } else {
                    &mut keep_unsuccessful
                };
                if *keep > 0 {
                    *keep -= 1;
                } else {
                    d.actions.push(Action::DeleteAnalysisRun { name: r.name });
                }
            }
            _ if !r.terminating && !needed(d, &r) => d
                .actions
                .push(Action::TerminateAnalysisRun { name: r.name }),
            _ => {}
        }
    }
}

/// The first run a gate of this plan waits for, for the status message.
pub(crate) fn waiting_on(d: &Draft) -> Option<String> {
    waiting(d)
        .find(|(_, kind)| !kind.beside())
        .map(|(name, _)| name.clone())
}

fn waiting<'a>(d: &'a Draft) -> impl Iterator<Item = &'a (String, RunKind)> {
    d.wanted_runs.iter().filter(|(name, _)| {
        d.observed
            .analysis
            .runs
            .iter()
            .find(|r| r.name == *name)
            .is_none_or(|r| !r.phase.is_some_and(AnalysisPhase::is_terminal))
    })
}

/// A gate of this plan (not the background analysis) waits for its run, whose status changes
/// wake the Rollout: no progress-deadline requeue is needed meanwhile.
pub(crate) fn gate_waiting(d: &Draft) -> bool {
    waiting(d).any(|(_, kind)| !kind.beside())
}

/// The current revision's runs that gate a step or a promotion (not the background one).
fn gating_runs<'a>(d: &'a Draft) -> impl Iterator<Item = &'a ObservedRun> {
    let attempt = d.status.analysis_attempt.unwrap_or(0);
    let current = d.status.current_revision.clone();
    d.observed.analysis.runs.iter().filter(move |r| {
        Some(&r.hash) == current.as_ref() && r.attempt == attempt && !r.kind.beside()
    })
}

/// The gating runs still measuring.
fn measuring_runs<'a>(d: &'a Draft) -> impl Iterator<Item = &'a ObservedRun> {
    gating_runs(d).filter(|r| !r.terminating && !r.phase.is_some_and(AnalysisPhase::is_terminal))
}

/// A gating analysis is measuring: waiting for it is progress as long as it records
/// measurements (see [`stuck_run`]).
pub(crate) fn measuring(d: &Draft) -> bool {
    measuring_runs(d).next().is_some()
}

/// When each measuring gate's run passes the progress deadline: `seconds` after it began to owe
/// a measurement it has not recorded, counted from `since` (the rollout's last progress) at the
/// earliest. A run that measures moves its own deadline on.
fn gate_deadlines<'a>(
    d: &'a Draft,
    since: Timestamp,
    seconds: i32,
) -> impl Iterator<Item = (&'a ObservedRun, Timestamp)> {
    measuring_runs(d).map(move |r| {
        let from = r.owed_since.map_or(since, |t| t.max(since));
        (r, d.after_seconds(from, seconds))
    })
}

/// The measuring gate's run that made no progress within the deadline (the first to pass it),
/// with the time from which it has owed a measurement.
pub(crate) fn stuck_run(d: &Draft, since: Timestamp, seconds: i32) -> Option<(String, Timestamp)> {
    gate_deadlines(d, since, seconds)
        .filter(|(_, at)| d.now >= *at)
        .min_by(|(a, x), (b, y)| x.cmp(y).then(a.name.cmp(&b.name)))
        .map(|(r, _)| (r.name.clone(), r.owed_since.unwrap_or(since).max(since)))
}

/// The earliest time a measuring gate's run passes the progress deadline, to look again then:
/// a run that records nothing does not change, so its status would never wake the rollout. A run
/// this plan creates owes its first measurement from now.
pub(crate) fn next_gate_deadline(d: &Draft, since: Timestamp, seconds: i32) -> Option<Timestamp> {
    let created = waiting(d)
        .filter(|(name, kind)| {
            !kind.beside() && !d.observed.analysis.runs.iter().any(|r| r.name == *name)
        })
        .map(|_| d.after_seconds(d.now.max(since), seconds));
    gate_deadlines(d, since, seconds)
        .map(|(_, at)| at)
        .chain(created)
        .min()
}

/// When a gating analysis last measured, so the progress deadline counts from there once it
/// ends.
pub(crate) fn last_activity(d: &Draft) -> Option<Timestamp> {
    gating_runs(d).filter_map(|r| r.updated).max()
}
