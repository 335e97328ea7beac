//! The planner with webhook gates (`spec.gates`): held while a confirm gate has not answered
//! yes, on at the yes, aborted by a rollback gate's yes, passed by a promote, stopped by an
//! abort, asked again for a new revision.

use super::fixtures::*;
use super::gates::ObservedRun;
use super::plan::Action;
use super::webhook_gates::{YES, run_name};
use crate::api::analysis::AnalysisPhase;
use crate::api::conditions as cond;
use crate::api::gates::{GateType, WebhookGate};
use crate::api::{Phase, RequestAction, Rollout};

const URL: &str = "http://approvals.example:8080/gate?token=s3cret";

fn webhook(name: &str, type_: GateType) -> WebhookGate {
    WebhookGate {
        name: name.into(),
        type_,
        url: URL.into(),
        ..Default::default()
    }
}

fn with_gates(mut rollout: Rollout, gates: Vec<WebhookGate>) -> Rollout {
    rollout.spec.gates = gates;
    rollout
}

/// The run of gate `gate` for the current revision (and `step`).
fn gate_run(sim: &Sim, gate: &str, step: Option<i32>) -> String {
    let s = sim.status();
    run_name(
        NAME,
        s.current_revision.as_deref().unwrap(),
        gate,
        step,
        s.analysis_attempt.unwrap_or(0),
    )
}

fn run_mut<'a>(sim: &'a mut Sim, name: &str) -> &'a mut ObservedRun {
    sim.world
        .analysis
        .runs
        .iter_mut()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no run {name}"))
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

fn message(sim: &Sim) -> String {
    sim.status().message.clone().unwrap_or_default()
}

#[test]
fn a_confirm_promotion_gate_holds_after_the_last_step_until_it_answers_yes() {
    let rollout = RolloutBuilder::canary().replicas(2).steps([w(50)]).build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("approve", GateType::ConfirmPromotion)],
    ));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    let name = gate_run(&sim, "approve", None);
    assert_eq!(created(&sim), vec![name.clone()]);
    // Held with the last step's sizes, all steps done, not promoted.
    assert_eq!(sim.sizes(&v2, &v1), (1, 1));
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Progressing));
    let m = message(&sim);
    assert!(
        m.contains("waiting for gate approve (confirmPromotion at approvals.example:8080)")
            && m.contains("no answer yet"),
        "{m}"
    );
    assert!(!m.contains("s3cret") && !m.contains("/gate"), "{m}");

    // The gate said no: still held, and the status says what it answered.
    run_mut(&mut sim, &name).answer = Some("403".into());
    run_mut(&mut sim, &name).phase = Some(AnalysisPhase::Running);
    sim.settle();
    assert!(
        message(&sim).contains("last answer 403"),
        "{}",
        message(&sim)
    );
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v1.as_str()));
    let progressing = cond::find(&sim.status().conditions, cond::PROGRESSING).unwrap();
    assert!(
        progressing.message.contains("gate approve"),
        "{progressing:?}"
    );

    finish_run(&mut sim, &name, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
}

#[test]
fn the_gate_run_posts_and_waits_for_a_2xx_without_ever_failing() {
    let rollout = RolloutBuilder::canary().steps([w(50)]).build();
    let mut gate = webhook("approve", GateType::ConfirmRollout);
    gate.metadata.insert("ticket".into(), "CHG-1".into());
    gate.interval = Some("1m".into());
    let mut sim = updating(with_gates(rollout, vec![gate]));
    let p = sim.reconcile();
    let (labels, spec) = p
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreateAnalysisRun { labels, spec, .. } => Some((labels.clone(), spec.clone())),
            _ => None,
        })
        .expect("the gate's run is created");
    assert_eq!(labels["fledge.dev/gate"], "approve");
    assert_eq!(labels["fledge.dev/gate-type"], "confirmRollout");
    let m = &spec.metrics[0];
    let web = m.provider.web.as_ref().unwrap();
    assert_eq!(web.url, URL);
    assert_eq!(web.measure_status_code, Some(true));
    assert_eq!(web.method, Some(crate::api::analysis::WebMethod::Post));
    let body: serde_json::Value = serde_json::from_str(web.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["name"], NAME);
    assert_eq!(body["namespace"], NAMESPACE);
    assert_eq!(body["type"], "confirm-rollout");
    assert_eq!(body["checksum"], hash_of("web:2"));
    assert_eq!(body["metadata"]["ticket"], "CHG-1");
    assert_eq!(m.success_condition.as_deref(), Some(YES));
    assert_eq!(m.failure_condition, None);
    assert_eq!(m.interval.as_deref(), Some("1m"));
    assert_eq!(m.consecutive_success_limit, Some(1));
    for limit in [
        &m.failure_limit,
        &m.inconclusive_limit,
        &m.consecutive_error_limit,
    ] {
        assert_eq!(limit, &Some(i32::MAX.into()));
    }
}

#[test]
fn a_confirm_rollout_gate_keeps_the_new_revision_at_zero_pods_until_yes() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("start", GateType::ConfirmRollout)],
    ));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
    assert_eq!(sim.status().current_step_index, Some(0));
    assert!(message(&sim).contains("gate start (confirmRollout"));
    let name = gate_run(&sim, "start", None);
    finish_run(&mut sim, &name, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.sizes(&v2, &v1), (1, 1));
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    // Passed once: the pause step after it is not held by it again.
    assert_eq!(created(&sim), vec![name]);
}

#[test]
fn a_confirm_traffic_increase_gate_holds_each_raise_of_the_weight() {
    let rollout = RolloutBuilder::canary()
        .replicas(4)
        .steps([w(25), pause("10s"), w(25), w(50)])
        .build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("more", GateType::ConfirmTrafficIncrease)],
    ));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    // Before the first raise (0 to 25): no canary pod yet.
    assert_eq!(sim.sizes(&v2, &v1), (0, 4));
    let first = gate_run(&sim, "more", Some(0));
    finish_run(&mut sim, &first, AnalysisPhase::Successful);
    let p = sim.settle().pop().unwrap();
    assert_eq!(sim.sizes(&v2, &v1), (1, 3));
    sim.advance_to_requeue(&p);
    sim.settle();
    // Step 2 keeps 25: no question. Step 3 raises to 50: held with step 2's sizes.
    assert_eq!(sim.status().current_step_index, Some(3));
    assert_eq!(sim.sizes(&v2, &v1), (1, 3));
    let second = gate_run(&sim, "more", Some(3));
    assert_eq!(created(&sim), vec![first, second.clone()]);
    finish_run(&mut sim, &second, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
}

#[test]
fn a_rollback_gate_that_answers_yes_aborts_the_rollout() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), pause_forever()])
        .build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("stop", GateType::Rollback)],
    ));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    let name = gate_run(&sim, "stop", None);
    assert_eq!(created(&sim), vec![name.clone()]);
    // Asked beside the steps: it holds nothing.
    assert_eq!(sim.sizes(&v2, &v1), (1, 1));
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    let spec = sim
        .plans
        .iter()
        .flat_map(|p| &p.actions)
        .find_map(|a| match a {
            Action::CreateAnalysisRun { spec, .. } => Some(spec.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(spec.metrics[0].failure_condition.as_deref(), Some(YES));
    assert_eq!(spec.metrics[0].failure_limit, Some(0.into()));

    finish_run(&mut sim, &name, AnalysisPhase::Failed);
    let p = sim.reconcile();
    assert!(p.status.abort);
    assert!(
        p.events.iter().any(|e| e.reason == "RollbackGate"
            && e.message
                .contains("rollback gate stop at approvals.example:8080 answered yes")),
        "{:?}",
        p.events
    );
    sim.settle();
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
}

#[test]
fn a_promote_passes_a_waiting_gate_and_its_run_stops() {
    let rollout = RolloutBuilder::canary().replicas(2).steps([w(50)]).build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("approve", GateType::ConfirmPromotion)],
    ));
    let v2 = hash_of("web:2");
    sim.settle();
    let name = gate_run(&sim, "approve", None);
    run_mut(&mut sim, &name).phase = Some(AnalysisPhase::Running);
    sim.request(RequestAction::Promote);
    let p = sim.reconcile();
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == "PromoteRequested" && e.message.contains("passed by hand")),
        "{:?}",
        p.events
    );
    sim.settle();
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(terminated(&sim), vec![name]);
}

#[test]
fn an_abort_while_held_at_a_gate_aborts_and_stops_the_gate() {
    let rollout = RolloutBuilder::canary().replicas(2).steps([w(50)]).build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("approve", GateType::ConfirmPromotion)],
    ));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    let name = gate_run(&sim, "approve", None);
    run_mut(&mut sim, &name).phase = Some(AnalysisPhase::Running);
    sim.request(RequestAction::Abort);
    sim.settle();
    assert!(sim.status().abort);
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
    assert_eq!(terminated(&sim), vec![name]);
}

#[test]
fn a_new_revision_asks_the_gate_again() {
    let rollout = RolloutBuilder::canary().replicas(2).steps([w(50)]).build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("approve", GateType::ConfirmPromotion)],
    ));
    sim.settle();
    let first = gate_run(&sim, "approve", None);
    finish_run(&mut sim, &first, AnalysisPhase::Successful);
    // A new revision before the old one's promotion was planned: its own question.
    sim.set_image("web:3");
    sim.settle();
    let v3 = hash_of("web:3");
    let second = gate_run(&sim, "approve", None);
    assert_ne!(first, second);
    assert!(second.contains(&v3));
    assert_eq!(created(&sim), vec![first, second]);
    assert_ne!(sim.status().stable_revision.as_deref(), Some(v3.as_str()));
}

#[test]
fn waiting_at_a_gate_never_exceeds_the_progress_deadline() {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50)])
        .progress_deadline(60)
        .progress_deadline_abort()
        .build();
    let mut sim = updating(with_gates(
        rollout,
        vec![webhook("approve", GateType::ConfirmPromotion)],
    ));
    sim.settle();
    let name = gate_run(&sim, "approve", None);
    // The analysis controller asks every 30s, for an hour: each "no" is a measurement.
    for _ in 0..120 {
        sim.advance(30);
        let now = sim.now;
        let run = run_mut(&mut sim, &name);
        run.phase = Some(AnalysisPhase::Running);
        run.answer = Some("403".into());
        run.updated = Some(now);
        run.owed_since = Some(now + secs(30));
        sim.settle();
    }
    assert!(!sim.status().abort);
    assert_eq!(sim.status().phase, Some(Phase::Progressing));
}

#[test]
fn blue_green_gates_hold_the_preview_and_the_switch() {
    let rollout = RolloutBuilder::blue_green().replicas(2).build();
    let mut sim = updating(with_gates(
        rollout,
        vec![
            webhook("start", GateType::ConfirmRollout),
            webhook("approve", GateType::ConfirmPromotion),
        ],
    ));
    let (v1, v2) = (hash_of("web:1"), hash_of("web:2"));
    sim.settle();
    assert_eq!(sim.sizes(&v2, &v1), (0, 2));
    let start = gate_run(&sim, "start", None);
    finish_run(&mut sim, &start, AnalysisPhase::Successful);
    sim.settle();
    // The preview runs; the switch waits for the second gate.
    assert_eq!(sim.sizes(&v2, &v1), (2, 2));
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v1.as_str()));
    assert!(message(&sim).contains("gate approve (confirmPromotion"));
    let approve = gate_run(&sim, "approve", None);
    finish_run(&mut sim, &approve, AnalysisPhase::Successful);
    sim.settle();
    assert_eq!(sim.service(ACTIVE_SVC).as_deref(), Some(v2.as_str()));
    assert_eq!(sim.status().stable_revision.as_deref(), Some(v2.as_str()));
}

#[test]
fn a_gate_admission_could_not_check_is_an_invalid_spec_naming_the_field() {
    for (gate, field) in [
        (
            WebhookGate {
                url: "http://[::1".into(),
                ..webhook("a", GateType::ConfirmRollout)
            },
            "gates[0].url",
        ),
        (
            WebhookGate {
                interval: Some("5x".into()),
                ..webhook("a", GateType::ConfirmRollout)
            },
            "gates[0].interval",
        ),
    ] {
        let mut sim = Sim::new(with_gates(RolloutBuilder::canary().build(), vec![gate]));
        let p = sim.reconcile();
        let invalid = cond::find(&p.status.conditions, cond::INVALID_SPEC).expect("invalid");
        assert!(invalid.message.contains(field), "{}", invalid.message);
    }
    let bg = with_gates(
        RolloutBuilder::blue_green().build(),
        vec![webhook("a", GateType::ConfirmTrafficIncrease)],
    );
    let problems = crate::rollout::spec_checks::problems(&bg.spec);
    assert_eq!(problems[0].path, "gates[0].type");
}
