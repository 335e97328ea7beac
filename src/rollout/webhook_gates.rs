//! PURE: the webhook gates of a Rollout (`spec.gates`). Each gate is asked by an AnalysisRun the
//! planner creates, with one `web` metric that measures the answer's status code, so the HTTP call
//! happens in the analysis controller like any measurement (the denied address ranges, timeouts,
//! Secret headers and the wake-up of the Rollout included), and the planner only reads the run's
//! phase. A confirm gate's run measures until its first yes (Successful) and never fails: it has
//! no failure condition and limits no one reaches. A rollback gate's run fails on its first yes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::gates::{ObservedRun, RunKind};
use super::plan::{Action, Draft};
use crate::api::analysis::{
    ANALYSIS_ATTEMPT_LABEL, ANALYSIS_KIND_LABEL, ANALYSIS_STEP_LABEL, AnalysisPhase,
    AnalysisRunSpec, Metric, MetricProvider, WebMethod, WebMetric,
};
use crate::api::defaults;
use crate::api::gates::{GateType, WebhookGate};
use crate::api::{HASH_LABEL, RolloutSpec, SpecProblem};

/// Label on a gate's AnalysisRun: the gate's name.
pub const GATE_LABEL: &str = "fledge.dev/gate";
/// Label on a gate's AnalysisRun: the gate's type.
pub const GATE_TYPE_LABEL: &str = "fledge.dev/gate-type";
/// The value of [`ANALYSIS_KIND_LABEL`] on a gate's run.
pub const GATE_KIND: &str = "gate";

/// What a webhook answers to mean yes: any 2xx status, as Flagger reads it.
pub const YES: &str = "result >= 200 && result < 300";

/// A limit no run reaches: a confirm gate waits, whatever it hears, until a yes or a person.
const NEVER: i32 = i32::MAX;

/// The problems admission could not see: each gate's URL and interval.
pub fn problems(spec: &RolloutSpec) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    for (i, g) in spec.gates.iter().enumerate() {
        let at = |field: &str| format!("gates[{i}].{field}");
        match reqwest::Url::parse(&g.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            Ok(_) => out.push(SpecProblem {
                path: at("url"),
                message: "must be an http or https URL with a host".into(),
            }),
            Err(e) => out.push(SpecProblem {
                path: at("url"),
                message: format!("not a URL: {e}"),
            }),
        }
        if let Some(d) = &g.interval
            && let Err(e) = crate::api::duration::parse(d)
        {
            out.push(SpecProblem {
                path: at("interval"),
                message: e,
            });
        }
        if g.type_ == GateType::ConfirmTrafficIncrease && spec.strategy.canary.is_none() {
            out.push(SpecProblem {
                path: at("type"),
                message: "confirmTrafficIncrease needs the canary strategy".into(),
            });
        }
        if spec.gates[..i].iter().any(|h| h.name == g.name) {
            out.push(SpecProblem {
                path: at("name"),
                message: format!("{:?} is the name of an earlier gate", g.name),
            });
        }
    }
    out
}

/// The URL's host (and port), what messages show of a gate: never its path or query, which may
/// carry a token.
pub fn host(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_else(|| "an invalid URL".into())
}

/// The name of gate `gate`'s run for revision `hash` (and step, for a traffic increase).
pub fn run_name(rollout: &str, hash: &str, gate: &str, step: Option<i32>, attempt: i32) -> String {
    let mut name = format!("{rollout}-{hash}-gate-{gate}");
    if let Some(i) = step {
        name.push_str(&format!("-step{i}"));
    }
    if attempt > 0 {
        name.push_str(&format!("-{attempt}"));
    }
    name
}

/// The AnalysisRun that asks `gate`: a POST of Flagger's webhook payload (so receivers written
/// for Flagger answer unchanged), its status code measured at the gate's interval.
pub fn run_spec(
    gate: &WebhookGate,
    rollout: &str,
    namespace: &str,
    hash: &str,
    step: Option<i32>,
) -> AnalysisRunSpec {
    let phase = match gate.type_ {
        GateType::ConfirmRollout => "Waiting",
        GateType::ConfirmPromotion => "WaitingPromotion",
        GateType::ConfirmTrafficIncrease | GateType::Rollback => "Progressing",
    };
    let mut body = serde_json::json!({
        "name": rollout,
        "namespace": namespace,
        "phase": phase,
        "checksum": hash,
        "type": gate.type_.flagger_name(),
        "gate": gate.name,
        "revision": hash,
        "metadata": gate.metadata,
    });
    if let Some(i) = step {
        body["step"] = i.into();
    }
    let confirm = gate.type_ != GateType::Rollback;
    let metric = Metric {
        name: gate.name.clone(),
        provider: MetricProvider {
            web: Some(WebMetric {
                url: gate.url.clone(),
                method: Some(WebMethod::Post),
                headers: gate.headers.clone(),
                body: Some(body.to_string()),
                timeout_seconds: gate.timeout_seconds,
                measure_status_code: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
        interval: Some(
            gate.interval
                .clone()
                .unwrap_or_else(|| format!("{}s", defaults::GATE_INTERVAL.as_secs())),
        ),
        // Until a decision: the first yes, or (rollback) the end of the rollout.
        count: Some(0.into()),
        success_condition: confirm.then(|| YES.to_string()),
        failure_condition: (!confirm).then(|| YES.to_string()),
        failure_limit: Some(if confirm { NEVER } else { 0 }.into()),
        inconclusive_limit: Some(NEVER.into()),
        consecutive_error_limit: Some(NEVER.into()),
        consecutive_success_limit: confirm.then_some(1),
        ..Default::default()
    };
    AnalysisRunSpec {
        metrics: vec![metric],
        ..Default::default()
    }
}

fn labels(
    hash: &str,
    gate: &WebhookGate,
    step: Option<i32>,
    attempt: i32,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = std::collections::BTreeMap::from([
        (HASH_LABEL.to_string(), hash.to_string()),
        (ANALYSIS_KIND_LABEL.to_string(), GATE_KIND.to_string()),
        (ANALYSIS_ATTEMPT_LABEL.to_string(), attempt.to_string()),
        (GATE_LABEL.to_string(), gate.name.clone()),
        (GATE_TYPE_LABEL.to_string(), gate.type_.as_str().to_string()),
    ]);
    if let Some(i) = step {
        labels.insert(ANALYSIS_STEP_LABEL.to_string(), i.to_string());
    }
    labels
}

/// The run of `gate` for this revision and attempt: observed, or created by this plan (`None`
/// then). Either way the plan wants it, so it is not terminated.
fn ensure<'a>(
    d: &mut Draft<'a>,
    hash: &str,
    gate: &WebhookGate,
    step: Option<i32>,
) -> Option<&'a ObservedRun> {
    let attempt = d.status.analysis_attempt.unwrap_or(0);
    let name = run_name(&d.rollout_name, hash, &gate.name, step, attempt);
    let accepted = d.status.accepted_analysis_runs.contains(&name);
    let observed: &'a [ObservedRun] = &d.observed.analysis.runs;
    let run = observed.iter().find(|r| r.name == name);
    // A gate a person passed asks no more: its run may stop.
    if !accepted {
        d.wanted_runs
            .push((name.clone(), RunKind::Gate(gate.type_, step)));
    }
    if run.is_none()
        && !accepted
        && !d
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { name: n, .. } if *n == name))
    {
        let spec = run_spec(gate, &d.rollout_name, &d.namespace, hash, step);
        d.actions.push(Action::CreateAnalysisRun {
            name: name.clone(),
            labels: labels(hash, gate, step, attempt),
            annotations: Default::default(),
            spec: Box::new(spec),
        });
        d.event(
            "GateAsked",
            format!(
                "asking gate {} ({}) at {}",
                gate.name,
                gate.type_.as_str(),
                host(&gate.url)
            ),
        );
    }
    run
}

/// Holds the rollout at a confirm gate of `type_`: true while any such gate has not answered
/// yes (nor been passed by a promote). Never fails.
pub(crate) fn confirm(d: &mut Draft, hash: &str, type_: GateType, step: Option<i32>) -> bool {
    let spec = d.spec;
    let mut held = false;
    for gate in spec.gates.iter().filter(|g| g.type_ == type_) {
        let attempt = d.status.analysis_attempt.unwrap_or(0);
        let name = run_name(&d.rollout_name, hash, &gate.name, step, attempt);
        if d.status.accepted_analysis_runs.contains(&name) {
            continue;
        }
        let run = ensure(d, hash, gate, step);
        if run.and_then(|r| r.phase) != Some(AnalysisPhase::Successful) {
            held = true;
        }
    }
    held
}

/// Asks the rollback gates; on a yes sets the abort (the strategy then runs its abort path) and
/// returns true.
pub(crate) fn rollback(d: &mut Draft, hash: &str) -> bool {
    let spec = d.spec;
    for gate in spec.gates.iter().filter(|g| g.type_ == GateType::Rollback) {
        let run = ensure(d, hash, gate, None);
        if run.and_then(|r| r.phase) == Some(AnalysisPhase::Failed) {
            d.status.abort = true;
            d.status.aborted_at = Some(Time(d.now));
            d.warning(
                "RollbackGate",
                format!(
                    "rollback gate {} at {} answered yes: aborting",
                    gate.name,
                    host(&gate.url)
                ),
            );
            return true;
        }
    }
    false
}

/// The current revision's confirm gates that have not answered yes and that no promote passed:
/// what a promote passes.
pub(crate) fn waiting_confirm_runs(d: &Draft) -> Vec<String> {
    let attempt = d.status.analysis_attempt.unwrap_or(0);
    d.observed
        .analysis
        .runs
        .iter()
        .filter(|r| {
            Some(&r.hash) == d.status.current_revision.as_ref()
                && r.attempt == attempt
                && matches!(r.kind, RunKind::Gate(t, _) if t != GateType::Rollback)
                && r.phase != Some(AnalysisPhase::Successful)
                && !r.terminating
                && !d.status.accepted_analysis_runs.contains(&r.name)
        })
        .map(|r| r.name.clone())
        .collect()
}

/// True when the rollout still needs gate run `r` of the revision in flight: its gate is still
/// in the spec, and still ahead or open.
pub(crate) fn needed(d: &Draft, r: &ObservedRun, type_: GateType, step: Option<i32>) -> bool {
    let in_spec = d
        .spec
        .gates
        .iter()
        .any(|g| g.type_ == type_ && r.gate.as_deref() == Some(g.name.as_str()));
    let open = !d.status.accepted_analysis_runs.contains(&r.name);
    let ahead = match (type_, step) {
        (GateType::ConfirmTrafficIncrease, Some(i)) => {
            i >= d.status.current_step_index.unwrap_or(0)
        }
        (GateType::ConfirmRollout, _) if d.spec.strategy.canary.is_some() => {
            d.status.current_step_index.unwrap_or(0) == 0
        }
        _ => true,
    };
    in_spec && open && ahead
}

/// What the rollout waits for at gate run `run`, for the status message: the gate, its URL's
/// host and the last answer. `None` when `run` is not a gate's.
pub(crate) fn waiting_message(d: &Draft, run: &str) -> Option<String> {
    let attempt = d.status.analysis_attempt.unwrap_or(0);
    let hash = d.status.current_revision.clone().unwrap_or_default();
    let observed = d.observed.analysis.runs.iter().find(|r| r.name == run);
    let gate = d.spec.gates.iter().find(|g| {
        [None, d.status.current_step_index]
            .into_iter()
            .any(|step| run_name(&d.rollout_name, &hash, &g.name, step, attempt) == run)
    })?;
    let answer = match observed.and_then(|r| r.answer.as_deref()) {
        Some(a) => format!("last answer {a}"),
        None => "no answer yet".into(),
    };
    Some(format!(
        "waiting for gate {} ({} at {}): {answer}; promote to pass it, abort to stop",
        gate.name,
        gate.type_.as_str(),
        host(&gate.url)
    ))
}
