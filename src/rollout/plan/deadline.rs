//! The progress deadline: a rollout that made no progress for `progressDeadlineSeconds` is
//! reported, and with `progressDeadlineAbort` aborted.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Draft;
use crate::api::conditions as cond;
use crate::api::{Phase, RolloutStatus};

/// Reports, and with `progressDeadlineAbort` acts on, a rollout that made no progress for
/// `progressDeadlineSeconds`; returns the Progressing condition's message when it did not.
/// Paused or finished rollouts have no deadline. A gate waiting on an analysis that records its
/// measurements is progress; one whose run has owed a measurement for the whole deadline (a Job
/// that never ends, a provider call that never returns) is not, and the message names that run.
/// The requeue at the deadline is set by [`super::status::finish`], once this plan's progress is
/// known.
pub(super) fn check_progress_deadline(draft: &mut Draft, old: &RolloutStatus) -> Option<String> {
    let s = &draft.status;
    let in_progress = s.current_revision != s.stable_revision;
    let waiting = !s.pause_conditions.is_empty() || draft.spec.paused == Some(true);
    if !in_progress || waiting || s.abort {
        return None;
    }
    // Pods moving is progress; and neither a pause nor time spent with an invalid spec counts
    // against the deadline, so the clock starts again when one ends.
    let restarted = s.available_replicas != old.available_replicas
        || s.updated_replicas != old.updated_replicas
        || old.phase == Some(Phase::Paused)
        || cond::is_true(&old.conditions, cond::INVALID_SPEC);
    let seconds = draft.settings.progress_deadline_seconds;
    let since = s.last_progress_at.as_ref().map_or(draft.now, |t| t.0);
    if restarted {
        return None;
    }
    let stuck = if crate::rollout::gates::measuring(draft) {
        let (run, from) = crate::rollout::gates::stuck_run(draft, since, seconds)?;
        format!(": analysis run {run} has recorded no measurement since {from}")
    } else {
        let since = crate::rollout::gates::last_activity(draft).map_or(since, |t| t.max(since));
        if draft.now < draft.after_seconds(since, seconds) {
            return None;
        }
        String::new()
    };
    let was_exceeded = cond::find(&old.conditions, cond::PROGRESSING)
        .is_some_and(|c| c.reason == cond::REASON_DEADLINE);
    if draft.spec.progress_deadline_abort == Some(true) {
        draft.status.abort = true;
        draft.status.aborted_at = Some(Time(draft.now));
        draft.warning(
            cond::REASON_DEADLINE,
            format!("no progress for {seconds}s{stuck}: aborting (progressDeadlineAbort)"),
        );
    } else if !was_exceeded {
        draft.warning(
            cond::REASON_DEADLINE,
            format!("no progress for {seconds}s{stuck}"),
        );
    }
    Some(format!(
        "rollout made no progress within progressDeadlineSeconds{stuck}"
    ))
}
