//! Status and messages: replica counts, the phase, kstatus conditions, the message and the
//! requeue time, from what the plan decided.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Draft, Plan};
use crate::api::conditions as cond;
use crate::api::{PauseReason, Phase, RolloutStatus};
use crate::rollout::observe::ObservedReplicaSet;

pub(super) fn count_replicas(draft: &mut Draft, hash: &str) {
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
pub(super) fn finish(
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
    let max_unavailable = draft.settings.max_unavailable;
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
        let seconds = draft.settings.progress_deadline_seconds;
        let deadline = if crate::rollout::gates::gate_waiting(&draft) {
            crate::rollout::gates::next_gate_deadline(&draft, since, seconds)
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
        templates: Default::default(),
        selector: None,
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
        Some(PauseReason::MirrorNotSupported) => super::mirror_guard::held_message(draft),
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
    if let Some(run) = crate::rollout::gates::waiting_on(draft) {
        if let Some(gate) = crate::rollout::webhook_gates::waiting_message(draft, &run) {
            return format!("revision {current}: {gate}");
        }
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
pub(super) fn selector_string(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Option<String> {
    let labels = selector.match_labels.as_ref()?;
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}
