//! PURE: which notifications a plan makes owed, read from what the planner already decided (its
//! Kubernetes Events and the status it writes), recorded into that same status so the write that
//! makes a change durable also makes its notification durable.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::analysis::{AnalysisPhase, AnalysisRun};
use crate::api::conditions as cond;
use crate::api::notification::{NotificationEvent, NotificationRecord, Subscription};
use crate::api::{PauseReason, Rollout, RolloutStatus};
use crate::rollout::plan::PlanEvent;

/// Records kept in the status: those still owed, and the last ones delivered, which is what
/// keeps a new leader from sending one again.
pub const MAX_RECORDS: usize = 20;
/// The longest message text recorded; the status is no place for essays.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// One owed message that bounding the records dropped before it was delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropped {
    pub event: NotificationEvent,
    pub target: String,
}

/// The subscriptions that apply to `rollout`: its own, then the controller's defaults unless it
/// skips them.
pub fn subscriptions<'a>(
    rollout: &'a Rollout,
    defaults: &'a [Subscription],
) -> Vec<&'a Subscription> {
    let own = rollout.spec.notifications.as_ref();
    let mut subs: Vec<&Subscription> = own
        .map(|n| n.subscriptions.iter().collect())
        .unwrap_or_default();
    if own.and_then(|n| n.skip_defaults) != Some(true) {
        subs.extend(defaults.iter());
    }
    subs
}

/// Adds to `status.notifications` the notifications this plan owes (one record per event, with
/// the channels that want it), skipping any whose key is already recorded, and bounds the
/// records. `old` is the status the plan started from, `events` the Kubernetes Events it
/// records, `failed_runs` the AnalysisRuns of the revision in flight (for the failed metric's
/// name, value and condition). Returns what bounding dropped before delivery.
pub fn record(
    rollout: &Rollout,
    old: &RolloutStatus,
    status: &mut RolloutStatus,
    events: &[PlanEvent],
    defaults: &[Subscription],
    failed_runs: &[&AnalysisRun],
    now: Timestamp,
) -> Vec<Dropped> {
    let subs = subscriptions(rollout, defaults);
    if subs.is_empty() {
        return Vec::new();
    }
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let ns = rollout.metadata.namespace.clone().unwrap_or_default();
    let promote = format!("kubectl fledge promote {name} -n {ns}");
    let abort = format!("kubectl fledge abort {name} -n {ns}");
    let revision = status.current_revision.clone().unwrap_or_default();
    let attempt = status.analysis_attempt.unwrap_or(0);

    let mut found: Vec<Found> = Vec::new();
    let mut abort_cause: Option<(String, BTreeMap<String, String>)> = None;
    for e in events {
        let mut f = match e.reason {
            "NewRevision" => Found::new(NotificationEvent::NewRevision, &e.message),
            "StepCompleted" => {
                let step = step_of(&e.message);
                let mut f = Found::new(NotificationEvent::StepCompleted, &e.message);
                f.detail = step.clone();
                if let Some(s) = step {
                    f.details.insert("step".into(), s);
                }
                f
            }
            "AnalysisInconclusive" => {
                let mut f = Found::new(
                    NotificationEvent::AnalysisInconclusive,
                    &format!("{}. To continue: {promote}; to stop: {abort}", e.message),
                );
                f.detail = status.current_step_index.map(|i| i.to_string());
                f.details.insert("command".into(), promote.clone());
                f
            }
            "AnalysisFailed" => {
                let mut f = Found::new(NotificationEvent::AnalysisFailed, &e.message);
                if let Some(d) = failed_runs.iter().find_map(|r| failed_metric(r)) {
                    f.details = d;
                }
                abort_cause = Some((e.message.clone(), f.details.clone()));
                f
            }
            "AbortRequested" => {
                abort_cause.get_or_insert_with(|| (e.message.clone(), BTreeMap::new()));
                continue;
            }
            "Promoted" => Found::new(NotificationEvent::Promoted, &e.message),
            cond::REASON_DEADLINE => {
                abort_cause.get_or_insert_with(|| (e.message.clone(), BTreeMap::new()));
                Found::new(NotificationEvent::ProgressDeadlineExceeded, &e.message)
            }
            "Restarted" => {
                let mut f = Found::new(NotificationEvent::Restarted, &e.message);
                f.revision = status.stable_revision.clone();
                f.detail = rollout
                    .spec
                    .restart_at
                    .as_ref()
                    .map(|t| t.0.as_second().to_string());
                f
            }
            _ => continue,
        };
        if f.revision.is_none() {
            f.revision = Some(revision.clone());
        }
        found.push(f);
    }
    if status.abort && !old.abort {
        let (cause, details) = abort_cause.unwrap_or_else(|| ("aborted".into(), BTreeMap::new()));
        let mut f = Found::new(
            NotificationEvent::Aborted,
            &format!("aborted, all traffic back on the stable revision: {cause}"),
        );
        f.details = details;
        f.revision = Some(revision.clone());
        found.push(f);
    }
    if let Some(step) = waiting_for_a_person(rollout, old, status) {
        let at = step.map(|i| format!(" at step {i}")).unwrap_or_default();
        let mut f = Found::new(
            NotificationEvent::Paused,
            &format!("paused{at}, waiting for a person. To continue: {promote}"),
        );
        f.detail = step.map(|i| i.to_string());
        if let Some(i) = step {
            f.details.insert("step".into(), i.to_string());
        }
        f.details.insert("command".into(), promote.clone());
        f.revision = Some(revision.clone());
        found.push(f);
    }

    // A channel that gets the failure (or the deadline) that caused an abort is not sent the
    // abort as well: one page per incident.
    let cause_targets: Vec<String> = subs
        .iter()
        .filter(|s| {
            found.iter().any(|f| {
                matches!(
                    f.event,
                    NotificationEvent::AnalysisFailed | NotificationEvent::ProgressDeadlineExceeded
                ) && s.wants(f.event)
            })
        })
        .map(|s| s.target())
        .collect();

    for f in found {
        let rev = f.revision.clone().unwrap_or_default();
        let mut key = format!("{rev}/{attempt}/{}", f.event.as_str());
        if let Some(d) = &f.detail {
            key = format!("{key}/{d}");
        }
        if status.notifications.iter().any(|r| r.key == key) {
            continue;
        }
        let mut pending: Vec<String> = Vec::new();
        for s in subs.iter().filter(|s| s.wants(f.event)) {
            let t = s.target();
            if f.event == NotificationEvent::Aborted && cause_targets.contains(&t) {
                continue;
            }
            if !pending.contains(&t) {
                pending.push(t);
            }
        }
        if pending.is_empty() {
            continue;
        }
        status.notifications.push(NotificationRecord {
            key,
            event: f.event,
            revision: rev,
            message: capped(f.message),
            details: f.details,
            time: Time(now),
            pending,
            sent: Vec::new(),
            failed: Vec::new(),
        });
    }
    bound(&mut status.notifications)
}

/// Keeps at most [`MAX_RECORDS`]: delivered ones go first, oldest first; owed ones only when
/// there are more owed than that.
fn bound(records: &mut Vec<NotificationRecord>) -> Vec<Dropped> {
    let mut dropped = Vec::new();
    while records.len() > MAX_RECORDS {
        let at = records
            .iter()
            .position(|r| r.pending.is_empty())
            .unwrap_or(0);
        let r = records.remove(at);
        dropped.extend(r.pending.into_iter().map(|target| Dropped {
            event: r.event,
            target,
        }));
    }
    dropped
}

struct Found {
    event: NotificationEvent,
    message: String,
    /// Tells two events of one kind and revision apart (the step, the restart).
    detail: Option<String>,
    details: BTreeMap<String, String>,
    revision: Option<String>,
}

impl Found {
    fn new(event: NotificationEvent, message: &str) -> Found {
        Found {
            event,
            message: message.to_string(),
            detail: None,
            details: BTreeMap::new(),
            revision: None,
        }
    }
}

/// The step of a `StepCompleted` Event: the planner writes "step <i> (<what>) completed".
fn step_of(message: &str) -> Option<String> {
    let rest = message.strip_prefix("step ")?;
    let n = rest.split(' ').next()?;
    n.parse::<i32>().ok().map(|i| i.to_string())
}

/// A pause that only a person ends began in this plan: a canary pause step without a duration
/// (`Some(step)`), or a blue-green rollout without auto-promotion (`Some(None)`).
fn waiting_for_a_person(
    rollout: &Rollout,
    old: &RolloutStatus,
    new: &RolloutStatus,
) -> Option<Option<i32>> {
    let began = |reason: PauseReason| {
        new.pause_conditions.iter().any(|p| p.reason == reason)
            && !old.pause_conditions.iter().any(|p| p.reason == reason)
    };
    let strategy = &rollout.spec.strategy;
    if let Some(c) = &strategy.canary
        && began(PauseReason::CanaryPauseStep)
    {
        let i = new.current_step_index.unwrap_or(0);
        let step = c.steps.get(usize::try_from(i).ok()?)?;
        return step
            .pause
            .as_ref()
            .filter(|p| p.duration.is_none())
            .map(|_| Some(i));
    }
    if let Some(bg) = &strategy.blue_green
        && began(PauseReason::BlueGreenPause)
        && bg.auto_promotion_enabled == Some(false)
    {
        return Some(None);
    }
    None
}

/// The metric that failed (or errored) a run: its name, its last value and the condition that
/// value broke.
pub fn failed_metric(run: &AnalysisRun) -> Option<BTreeMap<String, String>> {
    let status = run.status.as_ref()?;
    let m = status
        .metric_results
        .iter()
        .find(|m| !m.dry_run && matches!(m.phase, AnalysisPhase::Failed | AnalysisPhase::Error))?;
    let mut d = BTreeMap::new();
    d.insert("metric".to_string(), m.name.clone());
    d.insert(
        "run".to_string(),
        run.metadata.name.clone().unwrap_or_default(),
    );
    let value = m
        .measurements
        .iter()
        .rev()
        .find(|x| x.phase == m.phase)
        .or(m.measurements.last());
    if let Some(v) = value.and_then(|x| x.value.clone()) {
        d.insert("value".into(), v);
    }
    let spec = run.spec.metrics.iter().find(|x| x.name == m.name);
    let condition = match m.phase {
        AnalysisPhase::Error => m.message.clone(),
        _ => spec.and_then(|s| {
            s.failure_condition
                .clone()
                .or_else(|| s.success_condition.as_ref().map(|c| format!("!({c})")))
        }),
    };
    if let Some(c) = condition {
        d.insert("condition".into(), c);
    }
    Some(d)
}

fn capped(mut text: String) -> String {
    if text.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
