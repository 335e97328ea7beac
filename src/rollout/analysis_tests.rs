//! The planner with analysis: step, background, pre- and post-promotion gates, abort on failure,
//! pause on inconclusive, termination of runs no longer needed, history limits.

use super::analysis::{ObservedRun, RunKind, run_name};
use super::fixtures::*;
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

fn canary_rollout(steps: Vec<CanaryStep>) -> Rollout {
    RolloutBuilder::canary().replicas(2).steps(steps).build()
}

#[test]
fn a_step_analysis_blocks_until_successful_then_the_rollout_goes_on() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = run_name(NAME, &v2, RunKind::Step(1), 0);
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
        finish_run(&mut sim, &run_name(NAME, &v2, RunKind::Step(1), 0), phase);
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
        assert_eq!(sim.service(CANARY_SVC).as_deref(), Some(v2.as_str()));
        assert_eq!(sim.service(STABLE_SVC).as_deref(), Some(v1.as_str()));
    }
}

#[test]
fn inconclusive_pauses_promote_continues() {
    let mut sim = with_errors_template(canary_rollout(vec![w(50), analysis_step(), w(100)]));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    let name = run_name(NAME, &v2, RunKind::Step(1), 0);
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
    let v2 = hash_of("web:2");
    sim.settle();
    finish_run(
        &mut sim,
        &run_name(NAME, &v2, RunKind::Step(1), 0),
        AnalysisPhase::Inconclusive,
    );
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
    let v2 = hash_of("web:2");
    sim.settle();
    let first = run_name(NAME, &v2, RunKind::Step(1), 0);
    finish_run(&mut sim, &first, AnalysisPhase::Failed);
    sim.settle();
    sim.request(RequestAction::Retry);
    sim.settle();
    let second = run_name(NAME, &v2, RunKind::Step(1), 1);
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
    });
    r
}

#[test]
fn background_analysis_starts_at_its_step_and_is_terminated_when_the_rollout_ends() {
    let mut sim = with_errors_template(with_background(vec![w(50), pause_forever(), w(100)], 1));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    let name = run_name(NAME, &v2, RunKind::Background, 0);
    sim.tick();
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
}

#[test]
fn a_failing_background_analysis_aborts() {
    let mut sim = with_errors_template(with_background(vec![w(50), pause_forever(), w(100)], 0));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    finish_run(
        &mut sim,
        &run_name(NAME, &v2, RunKind::Background, 0),
        AnalysisPhase::Failed,
    );
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
    let name = run_name(NAME, &v2, RunKind::PrePromotion, 0);
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
    finish_run(
        &mut sim,
        &run_name(NAME, &v2, RunKind::PrePromotion, 0),
        AnalysisPhase::Failed,
    );
    sim.settle();
    assert!(sim.status().abort);
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v1.as_str()));
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
    let name = run_name(NAME, &v2, RunKind::PostPromotion, 0);
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
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
}

#[test]
fn a_passed_post_promotion_analysis_completes_the_promotion() {
    let mut sim = with_errors_template(blue_green(false, true));
    sim.set_image("web:2");
    let v2 = hash_of("web:2");
    sim.settle();
    finish_run(
        &mut sim,
        &run_name(NAME, &v2, RunKind::PostPromotion, 0),
        AnalysisPhase::Successful,
    );
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
    let pre = run_name(NAME, &v2, RunKind::PrePromotion, 0);
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
    let post = run_name(NAME, &v2, RunKind::PostPromotion, 0);
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
        let hash = hash_of(&format!("web:{}", i + 2));
        sim.settle();
        let name = run_name(NAME, &hash, RunKind::Step(0), 0);
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
    let v2 = hash_of("web:2");
    sim.settle();
    let name = run_name(NAME, &v2, RunKind::Step(1), 0);
    assert_eq!(sim.plans.last().unwrap().requeue_after, None);
    // Ten minutes of measurements, then a pass.
    sim.advance(600);
    sim.world.analysis.runs[0].phase = Some(AnalysisPhase::Running);
    sim.world.analysis.runs[0].updated = Some(sim.now);
    sim.settle();
    assert!(!sim.status().abort, "{:?}", sim.status().message);
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
    let name = run_name(NAME, &v2, RunKind::PrePromotion, 0);
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
    finish_run(
        &mut sim,
        &run_name(NAME, &v2, RunKind::Background, 0),
        AnalysisPhase::Inconclusive,
    );
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
