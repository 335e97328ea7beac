//! Runtime requests (`status.request`): each changes the status flags before the strategy runs,
//! so the same plan acts on it, and is cleared in the same status write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Draft;
use crate::api::{PauseReason, Request, RequestAction};

/// Acts on a client's runtime request and clears it, in the same status write.
pub(super) fn consume_request(draft: &mut Draft) {
    let Some(request) = draft.status.request.take() else {
        return;
    };
    let who = requested_by(&request);
    let in_progress = draft.status.current_revision != draft.status.stable_revision;
    let steps = draft
        .spec
        .strategy
        .canary
        .as_ref()
        .map(|c| c.steps.len() as i32);
    let inconclusive = crate::rollout::gates::inconclusive_runs(draft);
    let gates = crate::rollout::webhook_gates::waiting_confirm_runs(draft);
    let attempt = crate::rollout::gates::next_attempt(draft);
    let s = &mut draft.status;
    let (reason, message) = match request.action {
        RequestAction::Abort if in_progress && !s.abort => {
            s.abort = true;
            s.aborted_at = Some(Time(draft.now));
            (
                "AbortRequested",
                format!("abort requested{who}: all traffic back to stable"),
            )
        }
        RequestAction::Retry if s.abort => {
            // The analysis starts over in new runs; the failed ones stay as history.
            s.analysis_attempt = Some(attempt);
            s.accepted_analysis_runs.clear();
            s.abort = false;
            s.aborted_at = None;
            s.promote_full = false;
            s.switch_approved = false;
            s.current_step_index = Some(0);
            s.last_progress_at = Some(Time(draft.now));
            s.pause_conditions
                .retain(|p| p.reason == PauseReason::UserPaused);
            (
                "RetryRequested",
                format!("retry requested{who}: starting the steps again"),
            )
        }
        RequestAction::Promote
            if in_progress
                && !s.abort
                && s.pause_conditions
                    .iter()
                    .any(|p| p.reason == PauseReason::InconclusiveAnalysis) =>
        {
            s.pause_conditions
                .retain(|p| p.reason != PauseReason::InconclusiveAnalysis);
            s.last_progress_at = Some(Time(draft.now));
            let names = inconclusive.join(", ");
            s.accepted_analysis_runs.extend(inconclusive);
            (
                "PromoteRequested",
                format!(
                    "promote requested{who}: inconclusive analysis {names} accepted, continuing"
                ),
            )
        }
        RequestAction::Promote if in_progress && !s.abort && !gates.is_empty() => {
            // A person answers for the outside system: the gate passes, the step stays.
            s.last_progress_at = Some(Time(draft.now));
            let names = gates.join(", ");
            s.accepted_analysis_runs.extend(gates);
            (
                "PromoteRequested",
                format!("promote requested{who}: gate run {names} passed by hand, continuing"),
            )
        }
        RequestAction::Promote if in_progress && !s.abort => {
            let paused_step = s.pause_conditions.iter().any(|p| {
                matches!(
                    p.reason,
                    PauseReason::CanaryPauseStep | PauseReason::BlueGreenPause
                )
            });
            s.pause_conditions.retain(|p| {
                !matches!(
                    p.reason,
                    PauseReason::CanaryPauseStep | PauseReason::BlueGreenPause
                )
            });
            s.last_progress_at = Some(Time(draft.now));
            match steps {
                Some(n) => {
                    let i = s.current_step_index.unwrap_or(0);
                    s.current_step_index = Some((i + 1).min(n));
                    let what = if paused_step {
                        "pause ended"
                    } else {
                        "step skipped"
                    };
                    (
                        "PromoteRequested",
                        format!("promote requested{who}: step {i} {what}"),
                    )
                }
                None => {
                    s.switch_approved = true;
                    (
                        "PromoteRequested",
                        format!("promote requested{who}: switching to the new revision"),
                    )
                }
            }
        }
        RequestAction::PromoteFull if in_progress && !s.abort => {
            s.promote_full = true;
            s.pause_conditions
                .retain(|p| p.reason == PauseReason::UserPaused);
            s.last_progress_at = Some(Time(draft.now));
            (
                "PromoteFullRequested",
                format!(
                    "full promotion requested{who}: skipping the remaining steps, pauses and \
                     analyses"
                ),
            )
        }
        RequestAction::Pause => {
            if !s
                .pause_conditions
                .iter()
                .any(|p| p.reason == PauseReason::UserPaused)
            {
                s.pause_conditions.push(crate::api::PauseCondition {
                    reason: PauseReason::UserPaused,
                    start_time: Time(draft.now),
                });
            }
            ("PauseRequested", format!("pause requested{who}"))
        }
        RequestAction::Resume
            if s.pause_conditions
                .iter()
                .any(|p| p.reason == PauseReason::UserPaused) =>
        {
            s.pause_conditions
                .retain(|p| p.reason != PauseReason::UserPaused);
            s.last_progress_at = Some(Time(draft.now));
            ("ResumeRequested", format!("resume requested{who}"))
        }
        action => {
            let why = match action {
                RequestAction::Retry => "the rollout is not aborted",
                RequestAction::Resume => "the rollout is not paused by a pause request",
                _ if s.abort => "the rollout is aborted",
                _ => "no rollout is in progress",
            };
            let message = format!("{} requested{who}: nothing to do, {why}", action.as_str());
            draft.warning("RequestIgnored", message);
            return;
        }
    };
    draft.event(reason, message);
}

/// " by <who>" for event messages, when the request says who filed it.
pub(super) fn requested_by(request: &Request) -> String {
    request
        .requested_by
        .as_ref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default()
}
