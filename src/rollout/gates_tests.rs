//! The planner with analysis: step, background, pre- and post-promotion gates, abort on failure,
//! pause on inconclusive, termination of runs no longer needed, history limits.

use super::fixtures::*;
use super::gates::{ObservedRun, RunKind, run_name};
use super::plan::Action;
use crate::api::analysis::AnalysisPhase;
use crate::api::conditions as cond;
use crate::api::{
    AnalysisRunHistory, BackgroundAnalysis, CanaryStep, PauseReason, Phase, RequestAction, Rollout,
};

fn run<'a>(sim: &'a Sim, name: &str) -> Option<&'a ObservedRun> {
    sim.world.analysis.runs.iter().find(|r| r.name == name)
}

fn created(sim: &Sim) -> Vec<String> {
    sim.plans
        .iter()
        .flat_map(|p| &p.actions)
        .filter_map(|a| match a {
            Action::CreateAnalysisRun { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Names of the runs the plans so far terminated.
fn terminated(sim: &Sim) -> Vec<String> {
    sim.plans
        .iter()
        .flat_map(|p| &p.actions)
        .filter_map(|a| match a {
            Action::TerminateAnalysisRun { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The name of the current revision's run of `kind` in its current analysis attempt.
fn current_run(sim: &Sim, kind: RunKind) -> String {
    let s = sim.status();
    run_name(
        NAME,
        s.current_revision.as_deref().unwrap(),
        kind,
        s.analysis_attempt.unwrap_or(0),
    )
}

fn canary_rollout(steps: Vec<CanaryStep>) -> Rollout {
    RolloutBuilder::canary().replicas(2).steps(steps).build()
}

#[test]
fn a_step_analysis_blocks_until_successful_then_the_rollout_goes_on() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::Step(1));
    assert_eq!(created(&sim), vec![name.clone()]);
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.status().phase, Some(Phase::Progressing));
    // Waiting on a run needs no requeue: its status change wakes the Rollout.
    let last = sim.plans.last().unwrap();
    assert!(last.actions.is_empty());

    finish_run(&mut sim, &name, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    // The finished run stays, as history.
    assert!(run(&sim, &name).is_some());
}

#[test]
fn the_run_spec_has_the_templates_metrics_and_resolved_args() {
    let mut sim = with_errors_template(canary_rollout(vec![analysis_step()]));
    sim.set_image("web:2");
    let p = sim.reconcile();
    let spec = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreateAnalysisRun { spec, labels, .. } => Some((spec.clone(), labels.clone())),
            _ => None,
        })
        .expect("a run is created");
    assert_eq!(spec.0.metrics[0].name, "errors");
    assert_eq!(spec.0.args[0].value.as_deref(), Some("web-canary"));
    assert_eq!(spec.1.get("fledge.dev/step").map(String::as_str), Some("0"));
    assert_eq!(spec.1.get(crate::api::HASH_LABEL), Some(&hash_of("web:2")));
}

#[test]
fn a_failed_step_analysis_aborts_with_weight_0_in_the_same_plan() {
    for phase in [AnalysisPhase::Failed, AnalysisPhase::Error] {
        let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
        let v1 = hash_of("web:1");
        sim.set_image("web:2");
        let v2 = hash_of("web:2");
        sim.settle();
        assert_eq!(sim.sizes(&v2, &v1), (1, 1));
        let name = current_run(&sim, RunKind::Step(1));
        finish_run(&mut sim, &name, phase);
        let p = sim.reconcile();
        assert!(p.status.abort, "{phase:?}");
        // Without a router: the stable first, then the canary as the stable's pods are
        // available (maxUnavailable 0).
        assert_eq!(
            p.actions,
            vec![Action::ApplyReplicaSet {
                hash: v1.clone(),
                replicas: 2
            }]
        );
        assert!(
            p.events
                .iter()
                .any(|e| e.reason == "AnalysisFailed" && e.warning)
        );
        sim.settle();
        assert_eq!(sim.status().phase, Some(Phase::Degraded));
        assert_eq!(sim.status().canary_weight, Some(0));
        assert_eq!(sim.sizes(&v2, &v1), (0, 2));
        // The canary's pods are gone: the canary Service selects the stable's again.
        assert_eq!(sim.service(CANARY_SVC).as_deref(), Some(v1.as_str()));
        assert_eq!(sim.service(STABLE_SVC).as_deref(), Some(v1.as_str()));
    }
}

#[test]
fn inconclusive_pauses_promote_continues() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &name, AnalysisPhase::Inconclusive);
    let p = sim.reconcile();
    assert_eq!(p.status.phase, Some(Phase::Paused));
    assert!(
        p.status
            .pause_conditions
            .iter()
            .any(|c| c.reason == PauseReason::InconclusiveAnalysis)
    );
    assert!(p.status.message.as_ref().unwrap().contains("inconclusive"));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));

    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
}

#[test]
fn inconclusive_then_abort_aborts() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &name, AnalysisPhase::Inconclusive);
    sim.settle();
    sim.request(RequestAction::Abort);
    sim.settle();
    assert!(sim.status().abort);
    assert_eq!(sim.status().canary_weight, Some(0));
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
}

#[test]
fn retry_after_a_failed_analysis_starts_a_new_run() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    sim.settle();
    let first = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &first, AnalysisPhase::Failed);
    sim.settle();
    sim.request(RequestAction::Retry);
    sim.settle();
    let second = current_run(&sim, RunKind::Step(1));
    assert_ne!(first, second);
    assert_eq!(created(&sim), vec![first.clone(), second.clone()]);
    assert!(
        run(&sim, &first).is_some(),
        "the failed run stays as history"
    );
    finish_run(&mut sim, &second, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

fn with_background(steps: Vec<CanaryStep>, starting_step: i32) -> Rollout {
    let mut r = canary_rollout(steps);
    let a = errors_analysis();
    r.spec.strategy.canary.as_mut().unwrap().analysis = Some(BackgroundAnalysis {
        templates: a.templates,
        args: a.args,
        starting_step: Some(starting_step),
        ..Default::default()
    });
    r
}

#[test]
fn background_analysis_starts_at_its_step_and_is_terminated_when_the_rollout_ends() {
    let mut sim = with_errors_template(with_background(vec![w(50), pause_forever(), w(100)], 1));
    sim.set_image("web:2");
    sim.tick();
    let name = current_run(&sim, RunKind::Background);
    assert!(run(&sim, &name).is_none(), "not before startingStep");
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
    assert!(run(&sim, &name).is_some());
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert!(
        sim.plans
            .iter()
            .flat_map(|p| &p.actions)
            .any(|a| *a == Action::TerminateAnalysisRun { name: name.clone() })
    );
    assert!(run(&sim, &name).unwrap().terminating);
    // The run ends Terminated: no verdict, and nothing for the promoted rollout to act on.
    finish_run(&mut sim, &name, AnalysisPhase::Terminated);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert!(!sim.status().abort);
}

/// Every way the step walk stops early, each while an analysis step's run is measuring (say 5
/// measurements a minute apart): a pause request, `spec.paused`, an Inconclusive background
/// analysis. The step's run and the background run are kept, and once the pause ends the step
/// still waits for that same run's verdict: it never passes on a run stopped without its data.
#[test]
fn a_pause_during_a_step_analysis_keeps_its_runs_and_the_step_still_waits_for_them() {
    for how in ["pause request", "spec.paused", "inconclusive background"] {
        let mut sim =
            with_errors_template(with_background(vec![w(50), analysis_step(), w(100)], 0));
        let v1 = hash_of("web:1");
        sim.set_image("web:2");
        sim.settle();
        assert_eq!(sim.status().current_step_index, Some(1), "{how}");
        let step = current_run(&sim, RunKind::Step(1));
        let bg = current_run(&sim, RunKind::Background);
        assert!(
            run(&sim, &step).is_some() && run(&sim, &bg).is_some(),
            "{how}"
        );
        match how {
            "pause request" => sim.request(RequestAction::Pause),
            "spec.paused" => sim.set_paused(true),
            _ => finish_run(&mut sim, &bg, AnalysisPhase::Inconclusive),
        }
        sim.settle();
        assert_eq!(sim.status().phase, Some(Phase::Paused), "{how}");
        assert_eq!(terminated(&sim), Vec::<String>::new(), "{how}");
        assert!(!run(&sim, &step).unwrap().terminating, "{how}");
        assert!(!run(&sim, &bg).unwrap().terminating, "{how}");

        match how {
            "pause request" => sim.request(RequestAction::Resume),
            "spec.paused" => sim.set_paused(false),
            _ => sim.request(RequestAction::Promote),
        }
        sim.settle();
        assert_eq!(sim.status().current_step_index, Some(1), "{how}");
        assert_eq!(sim.status().phase, Some(Phase::Progressing), "{how}");
        assert_eq!(sim.status().stable_revision.as_deref(), Some(v1.as_str()));
        assert_eq!(created(&sim).len(), 2, "{how}: no new run");

        finish_run(&mut sim, &step, AnalysisPhase::Successful);
        sim.settle();
        assert_eq!(sim.status().phase, Some(Phase::Healthy), "{how}");
    }
}

/// A blue-green preview pod becoming unavailable stops the machine before the pre-promotion
/// gate; its run is still needed and keeps measuring.
#[test]
fn a_pre_promotion_run_survives_the_preview_becoming_unavailable() {
    let mut sim = with_errors_template(blue_green(true, false));
    let v1 = hash_of("web:1");
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let pre = current_run(&sim, RunKind::PrePromotion);
    assert!(run(&sim, &pre).is_some());
    sim.world
        .replica_sets
        .iter_mut()
        .find(|rs| rs.hash == v2)
        .unwrap()
        .available = 1;
    sim.reconcile();
    assert_eq!(terminated(&sim), Vec::<String>::new());
    assert!(!run(&sim, &pre).unwrap().terminating);
    sim.settle();
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v1.as_str()));
    finish_run(&mut sim, &pre, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

/// A gateway reporting `Accepted=False` holds the steps before the analysis step's gate; the
/// step's run is still needed and keeps measuring.
#[test]
fn a_step_run_survives_a_gateway_rejecting_the_route() {
    use crate::traffic::Found;
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .gateway("web")
        .steps([w(50), analysis_step(), w(100)])
        .build();
    let mut sim = Sim::new(rollout);
    let (key, doc) = http_route("web");
    sim.world.traffic.insert(key.clone(), Found::Object(doc));
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), errors_template());
    sim.settle();
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
    let step = current_run(&sim, RunKind::Step(1));
    assert!(run(&sim, &step).is_some());
    sim.plans.clear();

    let Some(Found::Object(mut doc)) = sim.world.traffic.get(&key).cloned() else {
        panic!("no route");
    };
    doc["status"] = serde_json::json!({"parents": [{"parentRef": {"name": "eg"}, "conditions": [
        {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "no listener"}]}]});
    sim.world
        .traffic
        .insert(key.clone(), Found::Object(doc.clone()));
    sim.settle();
    assert!(
        sim.status()
            .pause_conditions
            .iter()
            .any(|p| p.reason == PauseReason::TrafficRouteNotAccepted)
    );
    assert_eq!(terminated(&sim), Vec::<String>::new());

    doc.as_object_mut().unwrap().remove("status");
    sim.world.traffic.insert(key, Found::Object(doc));
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(1));
    finish_run(&mut sim, &step, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

/// A step skipped by a promote no longer needs its run: that one is terminated.
#[test]
fn a_promote_past_an_analysis_step_terminates_its_run() {
    let mut sim = with_errors_template(canary_rollout(vec![
        w(50),
        analysis_step(),
        pause_forever(),
    ]));
    sim.set_image("web:2");
    sim.settle();
    let step = current_run(&sim, RunKind::Step(1));
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().current_step_index, Some(2));
    assert_eq!(terminated(&sim), vec![step.clone()]);
    assert!(run(&sim, &step).unwrap().terminating);
}

/// A run stopped before its metrics decided (terminated by hand, say) has no verdict: the step
/// does not pass on it. The rollout pauses for a person, as on an Inconclusive run.
#[test]
fn a_terminated_step_run_never_passes_the_step() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    let v1 = hash_of("web:1");
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let step = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &step, AnalysisPhase::Terminated);
    sim.settle();
    let s = sim.status();
    assert_eq!(s.current_step_index, Some(1));
    assert_eq!(s.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(s.phase, Some(Phase::Paused));
    assert!(
        s.pause_conditions
            .iter()
            .any(|p| p.reason == PauseReason::InconclusiveAnalysis)
    );
    assert!(s.message.as_deref().unwrap().contains("promote"), "{s:?}");
    // A person accepts it, as an Inconclusive run.
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
}

#[test]
fn a_failing_background_analysis_aborts() {
    let mut sim = with_errors_template(with_background(vec![w(50), pause_forever(), w(100)], 0));
    sim.set_image("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::Background);
    finish_run(&mut sim, &name, AnalysisPhase::Failed);
    let p = sim.reconcile();
    assert!(p.status.abort);
    sim.settle();
    assert_eq!(sim.status().canary_weight, Some(0));
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
}

fn blue_green(pre: bool, post: bool) -> Rollout {
    let mut r = RolloutBuilder::blue_green()
        .replicas(2)
        .scale_down_delay(30)
        .build();
    let bg = r.spec.strategy.blue_green.as_mut().unwrap();
    bg.pre_promotion_analysis = pre.then(errors_analysis);
    bg.post_promotion_analysis = post.then(errors_analysis);
    r
}

#[test]
fn pre_promotion_analysis_gates_the_switch() {
    let mut sim = with_errors_template(blue_green(true, false));
    let v1 = hash_of("web:1");
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::PrePromotion);
    assert!(run(&sim, &name).is_some());
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v1.as_str()));
    assert_eq!(sim.service(PREVIEW_SVC).as_deref(), Some(v2.as_str()));
    finish_run(&mut sim, &name, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn a_failed_pre_promotion_analysis_keeps_the_old_active_service() {
    let mut sim = with_errors_template(blue_green(true, false));
    let v1 = hash_of("web:1");
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::PrePromotion);
    finish_run(&mut sim, &name, AnalysisPhase::Failed);
    sim.settle();
    assert!(sim.status().abort);
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v1.as_str()));
    // The preview stays up for abortScaleDownDelaySeconds (30 by default), then goes.
    assert_eq!(sim.service(PREVIEW_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.sizes(&v2, &v1), (2, 2));
    sim.advance(30);
    sim.settle();
    assert_eq!(sim.service(PREVIEW_SVC).as_deref(), Some(v1.as_str()));
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
    // The active Service never pointed at the new revision.
    assert!(!sim.plans.iter().flat_map(|p| &p.actions).any(|a| *a
        == Action::PinService {
            name: ACTIVE_SVC.into(),
            hash: v2.clone()
        }));
}

#[test]
fn a_failed_post_promotion_analysis_switches_back() {
    let mut sim = with_errors_template(blue_green(false, true));
    let v1 = hash_of("web:1");
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::PostPromotion);
    assert!(run(&sim, &name).is_some());
    // Switched, but the old revision is still the stable one, at full size.
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(sim.sizes(&v2, &v1), (2, 2));

    finish_run(&mut sim, &name, AnalysisPhase::Failed);
    let p = sim.reconcile();
    assert_eq!(
        p.actions.first(),
        Some(&Action::PinService {
            name: ACTIVE_SVC.into(),
            hash: v1.clone()
        }),
        "switching back comes first"
    );
    sim.settle();
    assert!(sim.status().abort);
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v1.as_str()));
    assert_eq!(sim.sizes(&v2, &v1), (2, 2), "abortScaleDownDelaySeconds");
    sim.advance(30);
    sim.settle();
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
}

#[test]
fn a_passed_post_promotion_analysis_completes_the_promotion() {
    let mut sim = with_errors_template(blue_green(false, true));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::PostPromotion);
    finish_run(&mut sim, &name, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn a_full_promotion_skips_the_blue_green_analyses() {
    let mut sim = with_errors_template(blue_green(true, true));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let pre = current_run(&sim, RunKind::PrePromotion);
    assert!(run(&sim, &pre).is_some());

    sim.request(RequestAction::PromoteFull);
    sim.settle();
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(created(&sim), vec![pre.clone()], "no post-promotion run");
    let terminated = sim
        .plans
        .iter()
        .flat_map(|p| &p.actions)
        .any(|a| *a == Action::TerminateAnalysisRun { name: pre.clone() });
    assert!(terminated, "the pre-promotion run is no longer needed");
}

#[test]
fn a_promote_switches_but_the_post_promotion_analysis_still_decides() {
    let mut r = blue_green(false, true);
    r.spec
        .strategy
        .blue_green
        .as_mut()
        .unwrap()
        .auto_promotion_enabled = Some(false);
    let mut sim = with_errors_template(r);
    sim.set_image("web:2");
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));

    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v1.as_str()));
    let post = current_run(&sim, RunKind::PostPromotion);
    finish_run(&mut sim, &post, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    assert!(!sim.status().switch_approved);
}

#[test]
fn a_missing_template_or_a_bad_condition_is_an_invalid_spec() {
    let mut sim = Sim::new(canary_rollout(vec![analysis_step()]));
    let p = sim.reconcile();
    let invalid = cond::find(&p.status.conditions, cond::INVALID_SPEC).expect("InvalidSpec");
    assert!(
        invalid.message.contains(
            "strategy.canary.steps[0].analysis.templates[0]: AnalysisTemplate \"errors\" not found"
        ),
        "{}",
        invalid.message
    );

    let mut bad = errors_template();
    bad.metrics[0].success_condition = Some("result <".into());
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), bad);
    let p = sim.reconcile();
    let invalid = cond::find(&p.status.conditions, cond::INVALID_SPEC).expect("InvalidSpec");
    assert!(
        invalid.message.contains("successCondition"),
        "{}",
        invalid.message
    );

    let mut r = canary_rollout(vec![analysis_step()]);
    r.spec.strategy.canary.as_mut().unwrap().steps[0]
        .analysis
        .as_mut()
        .unwrap()
        .args
        .clear();
    let mut sim = Sim::new(r);
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), errors_template());
    let p = sim.reconcile();
    let invalid = cond::find(&p.status.conditions, cond::INVALID_SPEC).expect("InvalidSpec");
    assert!(
        invalid.message.contains("\"service\" has no value"),
        "{}",
        invalid.message
    );
}

#[test]
fn history_keeps_the_newest_runs_within_the_limits() {
    let mut r = canary_rollout(vec![analysis_step()]);
    r.spec.analysis = Some(AnalysisRunHistory {
        successful_run_history_limit: Some(1),
        unsuccessful_run_history_limit: Some(1),
    });
    let mut sim = with_errors_template(r);
    let mut names = Vec::new();
    for (i, phase) in [
        AnalysisPhase::Successful,
        AnalysisPhase::Failed,
        AnalysisPhase::Successful,
        AnalysisPhase::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        sim.set_image(&format!("web:{}", i + 2));
        sim.settle();
        let name = current_run(&sim, RunKind::Step(0));
        finish_run(&mut sim, &name, phase);
        sim.advance(1);
        sim.settle();
        names.push(name);
    }
    let mut left: Vec<&str> = sim
        .world
        .analysis
        .runs
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    left.sort();
    let mut want = vec![names[1].as_str(), names[2].as_str(), names[3].as_str()];
    want.sort();
    // The current revision's run, and of the older ones the newest of each kind.
    assert_eq!(left, want);
}

#[test]
fn a_long_analysis_is_not_a_missed_progress_deadline() {
    let mut r = canary_rollout(vec![w(50), analysis_step(), w(100)]);
    r.spec.progress_deadline_seconds = Some(60);
    r.spec.progress_deadline_abort = Some(true);
    let mut sim = with_errors_template(r);
    sim.set_image("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::Step(1));
    // Ten minutes of measurements 10 s apart, each moving on the time the next one is owed from,
    // then a pass.
    for _ in 0..60 {
        sim.advance(10);
        let run = &mut sim.world.analysis.runs[0];
        run.phase = Some(AnalysisPhase::Running);
        run.updated = Some(sim.now);
        run.owed_since = Some(sim.now + k8s_openapi::jiff::SignedDuration::from_secs(10));
        sim.settle();
        assert!(!sim.status().abort, "{:?}", sim.status().message);
        assert_eq!(sim.status().phase, Some(Phase::Progressing));
    }
    sim.advance(5);
    finish_run(&mut sim, &name, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert!(!sim.status().abort);
}

#[test]
fn an_inconclusive_pre_promotion_analysis_pauses_and_promote_switches() {
    let mut sim = with_errors_template(blue_green(true, false));
    let v1 = hash_of("web:1");
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = current_run(&sim, RunKind::PrePromotion);
    finish_run(&mut sim, &name, AnalysisPhase::Inconclusive);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v1.as_str()));
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().accepted_analysis_runs, vec![name]);
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn an_inconclusive_background_analysis_pauses_the_steps_until_promote() {
    let mut sim = with_errors_template(with_background(vec![w(50), pause("1m"), w(100)], 0));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let step = sim.status().current_step_index;
    let name = current_run(&sim, RunKind::Background);
    finish_run(&mut sim, &name, AnalysisPhase::Inconclusive);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    // The timed pause ends meanwhile; the steps still wait.
    sim.advance(120);
    sim.settle();
    assert_eq!(sim.status().current_step_index, step);
    sim.request(RequestAction::Promote);
    sim.settle();
    sim.advance(120);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
}

/// A revision analysed, aborted, reverted in Git, then re-applied: its runs are kept as history
/// under deterministic names, and the re-applied revision must not abort at once on the old
/// failed run. It gets fresh runs, and waits for them.
#[test]
fn a_revision_re_applied_after_an_abort_gets_fresh_runs() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    let v1 = hash_of("web:1");
    sim.set_image("web:2");
    sim.settle();
    let failed = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &failed, AnalysisPhase::Failed);
    sim.settle();
    assert!(sim.status().abort);
    // The revert: back on stable, the failed run stays as history.
    sim.set_image("web:1");
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert!(run(&sim, &failed).is_some());
    // And the same template again.
    sim.set_image("web:2");
    sim.settle();
    let s = sim.status();
    assert!(!s.abort, "aborted at once on the old run: {:?}", s.message);
    assert_eq!(s.current_step_index, Some(1));
    assert_eq!(s.stable_revision.as_deref(), Some(v1.as_str()));
    let fresh = current_run(&sim, RunKind::Step(1));
    assert_ne!(fresh, failed);
    assert_eq!(created(&sim), vec![failed.clone(), fresh.clone()]);
    finish_run(&mut sim, &fresh, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert!(
        run(&sim, &failed).is_some(),
        "the failed run stays as history"
    );
}

/// A revision that passed its analysis, was rolled back, and comes back: its old Successful run
/// must not pass the new attempt's gate at once.
#[test]
fn a_revision_that_comes_back_never_passes_on_its_old_successful_run() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let passed = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &passed, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    // Rolled forward to v3, then back to v2 (an undo): v2 is a new attempt, analysed again.
    sim.set_image("web:3");
    sim.settle();
    let v3_run = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &v3_run, AnalysisPhase::Successful);
    sim.settle();
    sim.set_image("web:2");
    sim.settle();
    let s = sim.status();
    assert_eq!(
        s.stable_revision.as_deref(),
        Some(hash_of("web:3").as_str())
    );
    assert_eq!(s.current_step_index, Some(1), "{:?}", s.message);
    let fresh = current_run(&sim, RunKind::Step(1));
    assert_ne!(fresh, passed);
    assert!(run(&sim, &fresh).is_some());
}

/// The attempt is counted above every attempt a run carries, so fresh names hold even if the
/// status lost its count (a restore from a backup without status, say).
#[test]
fn a_lost_attempt_count_still_gives_fresh_runs() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    sim.settle();
    let failed = current_run(&sim, RunKind::Step(1));
    finish_run(&mut sim, &failed, AnalysisPhase::Failed);
    sim.settle();
    sim.set_image("web:1");
    sim.settle();
    sim.rollout.status.as_mut().unwrap().analysis_attempt = None;
    sim.set_image("web:2");
    sim.settle();
    assert!(!sim.status().abort, "{:?}", sim.status().message);
    assert_ne!(current_run(&sim, RunKind::Step(1)), failed);
}

/// A gate on a run that never records a measurement (a web metric to a black-hole address with a
/// long timeout, a Job that never ends) held the rollout forever: the progress deadline now
/// counts from when the run began to owe a measurement, and the message names the run.
#[test]
fn a_gate_whose_run_records_nothing_trips_the_progress_deadline_naming_the_run() {
    for abort in [false, true] {
        let mut r = canary_rollout(vec![w(50), analysis_step(), w(100)]);
        r.spec.progress_deadline_seconds = Some(60);
        r.spec.progress_deadline_abort = Some(abort);
        let mut sim = with_errors_template(r);
        sim.set_image("web:2");
        sim.settle();
        let name = current_run(&sim, RunKind::Step(1));
        // Picked up by the analysis controller, whose first measurement never returns.
        run_mut(&mut sim, &name).phase = Some(AnalysisPhase::Running);
        let p = sim.settle().pop().unwrap();
        assert_eq!(sim.status().phase, Some(Phase::Progressing));
        // Nothing about the run will change: the rollout looks again at the deadline.
        assert_eq!(p.requeue_after, after(60), "{abort}");
        sim.advance_to_requeue(&p);
        sim.settle();
        let s = sim.status();
        let progressing = cond::find(&s.conditions, cond::PROGRESSING).unwrap();
        if abort {
            assert!(s.abort);
            assert!(
                sim.plans
                    .iter()
                    .flat_map(|p| &p.events)
                    .any(|e| e.reason == cond::REASON_DEADLINE && e.message.contains(&name)),
                "the warning names the run"
            );
        } else {
            assert_eq!(progressing.reason, cond::REASON_DEADLINE, "{s:?}");
            assert_eq!(s.phase, Some(Phase::Degraded));
            assert!(
                progressing
                    .message
                    .contains(&format!("analysis run {name}")),
                "{}",
                progressing.message
            );
        }
    }
}

fn run_mut<'a>(sim: &'a mut Sim, name: &str) -> &'a mut ObservedRun {
    sim.world
        .analysis
        .runs
        .iter_mut()
        .find(|r| r.name == name)
        .unwrap()
}
