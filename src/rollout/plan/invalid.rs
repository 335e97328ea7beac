//! An invalid spec: the status says why, what runs keeps running, and only an abort still moves
//! traffic back to the stable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::draft::Routing;
use super::request::{consume_request, requested_by};
use super::validate::{old_routing, target};
use super::{Draft, Plan};
use crate::api::conditions as cond;
use crate::api::{Phase, RequestAction, Rollout, RolloutStatus};
use crate::traffic::{self, TrafficState};

/// An invalid spec changes nothing in the cluster: what runs keeps running. The status says
/// why, and the controller waits for a change of the Rollout or the objects it names.
pub(super) fn invalid(
    mut draft: Draft,
    rollout: &Rollout,
    old: &RolloutStatus,
    generation: Option<i64>,
    message: &str,
) -> Plan {
    let now = draft.now;
    let c = &mut draft.status.conditions;
    for (type_, status) in [
        (cond::INVALID_SPEC, true),
        (cond::READY, false),
        (cond::STALLED, true),
        (cond::RECONCILING, false),
    ] {
        cond::set(
            c,
            type_,
            status,
            cond::REASON_INVALID,
            message,
            generation,
            now,
        );
    }
    draft.status.phase = Some(Phase::Degraded);
    draft.status.message = Some(format!("InvalidSpec: {message}"));
    draft.status.observed_generation = generation;
    if old.message != draft.status.message {
        draft.warning(cond::REASON_INVALID, message);
    }
    // A request is answered now, not kept for later, so the client waiting for it learns what
    // happened. An abort is recorded as always (all traffic goes back to stable once the spec
    // is valid: what was asked, and the safe direction); anything else could surprise whoever
    // fixes the spec, so it is dropped.
    match draft.status.request.as_ref().map(|r| r.action) {
        Some(RequestAction::Abort) => consume_request(&mut draft),
        Some(action) => {
            let who = draft.status.request.take().map(|r| requested_by(&r));
            draft.warning(
                "RequestIgnored",
                format!(
                    "{} requested{}: nothing done while the spec is invalid; fix the spec and \
                     ask again",
                    action.as_str(),
                    who.unwrap_or_default()
                ),
            );
        }
        None => {}
    }
    abort_while_invalid(&mut draft, rollout);
    let revisions = crate::rollout::revision::assign(&draft.observed.replica_sets, &draft.actions);
    Plan {
        actions: draft.actions,
        status: draft.status,
        requeue_after: None,
        events: draft.events,
        revisions,
        // Nothing new is created while the spec is invalid: only existing ReplicaSets are scaled.
        templates: Default::default(),
        selector: None,
    }
}

/// An abort, or a failed analysis of the revision in flight, while the spec is invalid: the
/// stable gets all traffic through the routing fledge last applied (the spec's may be the very
/// thing that is broken), as far as the stable's available pods carry it; its ReplicaSet is
/// scaled back up for the rest. Nothing else changes until the spec is fixed.
fn abort_while_invalid(draft: &mut Draft, rollout: &Rollout) {
    let s = &draft.status;
    let (Some(stable), Some(current)) = (s.stable_revision.clone(), s.current_revision.clone())
    else {
        return;
    };
    if stable == current {
        return;
    }
    if !draft.status.abort {
        let attempt = draft.status.analysis_attempt.unwrap_or(0);
        let failed = draft.observed.analysis.runs.iter().find(|r| {
            r.hash == current
                && r.attempt == attempt
                && matches!(
                    r.phase,
                    Some(crate::api::analysis::AnalysisPhase::Failed)
                        | Some(crate::api::analysis::AnalysisPhase::Error)
                )
        });
        let Some(run) = failed else { return };
        let message = format!(
            "analysis run {} {}: {}; aborting",
            run.name,
            run.phase.unwrap_or_default().as_str(),
            run.message.clone().unwrap_or_default()
        );
        draft.status.abort = true;
        draft.status.aborted_at = Some(Time(draft.now));
        draft.warning("AnalysisFailed", message);
    }
    let Some(applied) = old_routing(rollout) else {
        return;
    };
    draft.routing = Some(Routing {
        routers: traffic::routers(applied, &rollout.name_any()),
        target: target(rollout, &stable, &current),
        rejected: None,
    });
    if draft.replica_set(&stable).is_some() {
        draft.scale(&stable, draft.replicas);
    }
    let serving = draft.canary_service_revision().unwrap_or(current);
    draft.canary_subset_to(&serving);
    let state = crate::rollout::canary::reachable(
        draft,
        TrafficState::default(),
        &TrafficState::default(),
        &serving,
        &stable,
    );
    draft.route(&state);
    draft.status.canary_weight = Some(state.weight);
}
