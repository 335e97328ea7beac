//! The planner with what a Rollout adds to its runs: `dryRun`, `measurementRetention` and
//! `analysisRunMetadata` of a step, background or blue-green analysis reach the run it creates,
//! and rules or labels that cannot work are an InvalidSpec naming the field.

use std::collections::BTreeMap;

use super::fixtures::*;
use super::plan::{Action, Plan};
use crate::api::analysis::{AnalysisRunMetadata, AnalysisRunSpec, DryRun, MeasurementRetention};
use crate::api::conditions as cond;
use crate::api::{BackgroundAnalysis, Phase, Rollout, RolloutAnalysis};

type Created = (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    AnalysisRunSpec,
);

fn created(plans: &[Plan]) -> Vec<Created> {
    plans
        .iter()
        .flat_map(|p| &p.actions)
        .filter_map(|a| match a {
            Action::CreateAnalysisRun {
                labels,
                annotations,
                spec,
                ..
            } => Some((labels.clone(), annotations.clone(), (**spec).clone())),
            _ => None,
        })
        .collect()
}

fn dry(name: &str) -> DryRun {
    DryRun {
        metric_name: name.into(),
    }
}

fn keep(name: &str, limit: i32) -> MeasurementRetention {
    MeasurementRetention {
        metric_name: name.into(),
        limit,
    }
}

/// The `errors` analysis, with the fields a Rollout adds to its run.
fn with_fields() -> RolloutAnalysis {
    RolloutAnalysis {
        dry_run: vec![dry("^err")],
        measurement_retention: vec![keep(".*", 20)],
        analysis_run_metadata: Some(AnalysisRunMetadata {
            labels: BTreeMap::from([("team".to_string(), "payments".to_string())]),
            annotations: BTreeMap::from([(
                "example.com/dashboard".to_string(),
                "https://grafana.example.com/d/web".to_string(),
            )]),
        }),
        ..errors_analysis()
    }
}

/// The `errors` template with a dry-run rule of its own.
fn template_with_rules() -> crate::api::analysis::AnalysisTemplateSpec {
    let mut t = errors_template();
    t.dry_run = vec![dry("errors")];
    t.measurement_retention = vec![keep("errors", 3)];
    t
}

fn step(analysis: RolloutAnalysis) -> crate::api::CanaryStep {
    crate::api::CanaryStep {
        analysis: Some(analysis),
        ..Default::default()
    }
}

#[test]
fn a_step_run_carries_the_rollouts_rules_ahead_of_the_templates_and_its_metadata() {
    let r = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), step(with_fields())])
        .build();
    let mut sim = with_errors_template(r);
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), template_with_rules());
    sim.set_image("web:2");
    sim.settle();
    let runs = created(&sim.plans);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (labels, annotations, spec) = &runs[0];
    assert_eq!(spec.dry_run, vec![dry("^err"), dry("errors")]);
    assert_eq!(
        spec.measurement_retention,
        vec![keep(".*", 20), keep("errors", 3)]
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(labels.get("fledge.dev/step").map(String::as_str), Some("1"));
    assert_eq!(labels.get(crate::api::HASH_LABEL), Some(&hash_of("web:2")));
    assert_eq!(
        annotations.get("example.com/dashboard").map(String::as_str),
        Some("https://grafana.example.com/d/web")
    );
}

#[test]
fn background_and_blue_green_runs_carry_them_too() {
    let a = with_fields();
    let mut r = RolloutBuilder::canary().replicas(2).steps([w(50)]).build();
    r.spec.strategy.canary.as_mut().unwrap().analysis = Some(BackgroundAnalysis {
        templates: a.templates.clone(),
        args: a.args.clone(),
        dry_run: a.dry_run.clone(),
        measurement_retention: a.measurement_retention.clone(),
        analysis_run_metadata: a.analysis_run_metadata.clone(),
        starting_step: None,
    });
    let mut bg = RolloutBuilder::blue_green().replicas(2).build();
    let s = bg.spec.strategy.blue_green.as_mut().unwrap();
    s.pre_promotion_analysis = Some(a.clone());
    for rollout in [r, bg] {
        let mut sim = with_errors_template(rollout);
        sim.set_image("web:2");
        sim.settle();
        let runs = created(&sim.plans);
        assert_eq!(runs.len(), 1, "{runs:?}");
        let (labels, annotations, spec) = &runs[0];
        assert_eq!(spec.dry_run, vec![dry("^err")]);
        assert_eq!(spec.measurement_retention, vec![keep(".*", 20)]);
        assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
        assert!(annotations.contains_key("example.com/dashboard"));
    }
}

fn invalid_message(rollout: Rollout) -> String {
    let mut sim = Sim::new(rollout);
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), template_with_rules());
    let p = sim.reconcile();
    assert!(created(std::slice::from_ref(&p)).is_empty());
    assert_ne!(p.status.phase, Some(Phase::Healthy));
    cond::find(&p.status.conditions, cond::INVALID_SPEC)
        .expect("InvalidSpec")
        .message
        .clone()
}

#[test]
fn a_rule_naming_no_metric_or_a_bad_expression_is_an_invalid_spec_naming_the_field() {
    let mut a = errors_analysis();
    a.dry_run = vec![dry("^latency$")];
    let r = RolloutBuilder::canary()
        .replicas(2)
        .steps([step(a)])
        .build();
    let message = invalid_message(r);
    assert!(
        message.contains(
            "strategy.canary.steps[0].analysis.dryRun[0].metricName: \"^latency$\" names no \
             metric of the run"
        ),
        "{message}"
    );

    let mut a = errors_analysis();
    a.measurement_retention = vec![keep("(", 5)];
    let r = RolloutBuilder::canary()
        .replicas(2)
        .steps([step(a)])
        .build();
    let message = invalid_message(r);
    assert!(
        message.contains(
            "strategy.canary.steps[0].analysis.measurementRetention[0].metricName: \"(\" is not \
             a valid regular expression"
        ),
        "{message}"
    );

    // The template's own rule is checked against the run's metrics too.
    let mut sim = Sim::new(
        RolloutBuilder::canary()
            .replicas(2)
            .steps([analysis_step()])
            .build(),
    );
    let mut t = errors_template();
    t.dry_run = vec![dry("latency")];
    sim.world
        .analysis
        .templates
        .insert((false, "errors".into()), t);
    let p = sim.reconcile();
    let message = &cond::find(&p.status.conditions, cond::INVALID_SPEC)
        .expect("InvalidSpec")
        .message;
    assert!(
        message.contains(
            "strategy.canary.steps[0].analysis.templates[0]: template \"errors\": \
             dryRun[0].metricName: \"latency\" names no metric"
        ),
        "{message}"
    );
}
