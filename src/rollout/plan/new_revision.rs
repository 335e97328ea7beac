//! A new revision in the spec: the steps start again, a revert to stable skips them, the very
//! first deployment goes straight to stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Draft;
use crate::api::PauseReason;

/// Notices a new revision in the spec: a fresh start of the steps, a revert to stable that needs
/// no steps, or the very first deployment, which goes straight to stable.
pub(super) fn track_revision(draft: &mut Draft, hash: &str) {
    let attempt = crate::rollout::gates::next_attempt(draft);
    let in_window = super::rollback_window::within(draft, hash);
    let s = &mut draft.status;
    if s.stable_revision.is_none() {
        s.stable_revision = Some(hash.to_string());
    }
    if s.current_revision.as_deref() == Some(hash) {
        return;
    }
    let first = s.current_revision.is_none();
    if !first {
        // A revision that comes back (a revert, the same template re-applied after an abort)
        // starts a new analysis attempt: its old runs, kept as history, decide nothing.
        s.analysis_attempt = Some(attempt);
    }
    let abandoned = s
        .current_revision
        .replace(hash.to_string())
        .filter(|prev| Some(prev) != s.stable_revision.as_ref());
    s.current_step_index = Some(0);
    s.abort = false;
    s.aborted_at = None;
    s.promote_full = false;
    s.switch_approved = false;
    s.accepted_analysis_runs.clear();
    s.last_progress_at = Some(Time(draft.now));
    s.pause_conditions
        .retain(|p| p.reason == PauseReason::UserPaused);
    let to_stable = s.stable_revision.as_deref() == Some(hash);
    // A canary replaced before promotion never served as stable: its pods go at once, unless
    // they may still carry traffic: with a router, until the routes send it none; on a revert
    // without one, as the stable's pods become available (see `canary::plan`).
    let drained = draft.spec.strategy.canary.is_some() && (draft.routing.is_some() || to_stable);
    if let Some(prev) = abandoned
        && !drained
    {
        draft.scale(&prev, 0);
    }
    let fast = in_window && !to_stable && !first;
    if to_stable || fast {
        let steps = draft
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps.len());
        draft.status.current_step_index = Some(steps as i32);
    }
    // As a full promotion: no step, pause or analysis (a blue-green switches without waiting).
    draft.status.promote_full = fast;
    if first {
        draft.event(
            "Deploying",
            format!("first revision {hash}: deploying at full scale"),
        );
    } else if to_stable {
        draft.event(
            "RolledBack",
            format!("back to stable revision {hash}: skipping all steps"),
        );
    } else if fast {
        draft.event(
            "RolledBack",
            format!(
                "back to revision {hash}, within rollbackWindow: skipping the steps and analysis"
            ),
        );
    } else {
        draft.event(
            "NewRevision",
            format!("new revision {hash}: starting the steps"),
        );
    }
}
