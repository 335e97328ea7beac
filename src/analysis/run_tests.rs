//! The run state machine, one test per rule: limits, no data, dry-run, retention, scheduling.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::condition::Conditions;
use super::run::{Due, assess, measurement, record, validate};
use super::value::{MetricValue, Outcome};
use crate::api::analysis::{
    AnalysisPhase::{self, *},
    AnalysisRunSpec, AnalysisRunStatus, DryRun, MeasurementRetention, Metric, MetricProvider,
    PrometheusMetric,
};

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn metric(name: &str) -> Metric {
    Metric {
        name: name.into(),
        provider: MetricProvider {
            prometheus: Some(PrometheusMetric {
                address: "http://prometheus".into(),
                query: "x".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        interval: Some("10s".into()),
        count: Some(3.into()),
        success_condition: Some("result < 0.05".into()),
        ..Default::default()
    }
}

fn spec(metrics: Vec<Metric>) -> AnalysisRunSpec {
    AnalysisRunSpec {
        metrics,
        ..Default::default()
    }
}

/// A run driven by hand: each `measure` records one outcome for a metric at a time.
struct Sim {
    spec: AnalysisRunSpec,
    status: AnalysisRunStatus,
}

impl Sim {
    fn new(spec: AnalysisRunSpec) -> Sim {
        let mut sim = Sim {
            spec,
            status: AnalysisRunStatus::default(),
        };
        assess(&sim.spec, &mut sim.status, t0());
        sim
    }

    fn measure(&mut self, name: &str, outcome: Outcome, now: Timestamp) -> AnalysisPhase {
        let m = self.spec.metrics.iter().find(|m| m.name == name).unwrap();
        let c = Conditions::compile(
            m.success_condition.as_deref(),
            m.failure_condition.as_deref(),
        )
        .unwrap();
        let mm = measurement(outcome, &c, now, now);
        record(&self.spec, &mut self.status, name, mm);
        assess(&self.spec, &mut self.status, now);
        self.status.phase.unwrap()
    }

    fn value(&mut self, name: &str, v: f64, now: Timestamp) -> AnalysisPhase {
        self.measure(name, Outcome::Value(MetricValue::Number(v)), now)
    }

    fn result(&self, name: &str) -> &crate::api::analysis::MetricResult {
        self.status
            .metric_results
            .iter()
            .find(|r| r.name == name)
            .unwrap()
    }
}

#[test]
fn first_measurement_after_initial_delay_then_every_interval() {
    let mut m = metric("errors");
    m.initial_delay = Some("5s".into());
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(sim.status.phase, Some(Running));
    let s = assess(&sim.spec, &mut sim.status.clone(), at(1));
    assert_eq!((s.due.len(), s.next_at), (0, Some(at(5))));
    let s = assess(&sim.spec, &mut sim.status.clone(), at(5));
    assert_eq!(
        s.due,
        vec![Due {
            metric: "errors".into(),
            resume: None
        }]
    );
    sim.value("errors", 0.01, at(5));
    let s = assess(&sim.spec, &mut sim.status.clone(), at(6));
    assert_eq!((s.due.len(), s.next_at), (0, Some(at(15))));
}

#[test]
fn successful_after_count_results() {
    let mut sim = Sim::new(spec(vec![metric("errors")]));
    assert_eq!(sim.value("errors", 0.01, at(0)), Running);
    assert_eq!(sim.value("errors", 0.01, at(10)), Running);
    assert_eq!(sim.value("errors", 0.01, at(20)), Successful);
    assert_eq!(sim.result("errors").successful, 3);
    // A decided run has nothing left to do.
    let s = assess(&sim.spec, &mut sim.status, at(100));
    assert!(s.due.is_empty() && s.next_at.is_none());
}

#[test]
fn one_failure_over_the_default_limit_fails_the_run() {
    let mut sim = Sim::new(spec(vec![metric("errors")]));
    assert_eq!(sim.value("errors", 0.2, at(0)), Failed);
    assert!(
        sim.status
            .message
            .as_ref()
            .unwrap()
            .contains("failureLimit 0"),
        "{:?}",
        sim.status.message
    );
}

#[test]
fn failures_within_the_limit_are_tolerated() {
    let mut m = metric("errors");
    m.failure_limit = Some(1.into());
    m.count = Some(4.into());
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(sim.value("errors", 0.2, at(0)), Running);
    assert_eq!(sim.value("errors", 0.01, at(10)), Running);
    assert_eq!(sim.value("errors", 0.2, at(20)), Failed);
}

#[test]
fn consecutive_errors_reach_the_limit_and_never_count_as_results() {
    let mut sim = Sim::new(spec(vec![metric("errors")]));
    let down = || Outcome::Error("connection refused".into());
    for i in 0..3 {
        assert_eq!(sim.measure("errors", down(), at(i * 10)), Running);
    }
    assert_eq!(sim.result("errors").count, 0);
    assert_eq!(sim.measure("errors", down(), at(30)), Error);
    assert!(
        sim.status
            .message
            .as_ref()
            .unwrap()
            .contains("connection refused")
    );
}

#[test]
fn a_result_resets_the_consecutive_errors() {
    let mut m = metric("errors");
    m.consecutive_error_limit = Some(2.into());
    m.count = Some(10.into());
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(
        sim.measure("errors", Outcome::Error("x".into()), at(0)),
        Running
    );
    assert_eq!(sim.value("errors", 0.0, at(10)), Running);
    assert_eq!(
        sim.measure("errors", Outcome::Error("x".into()), at(20)),
        Running
    );
    assert_eq!(sim.result("errors").consecutive_error, 1);
    assert_eq!(
        sim.measure("errors", Outcome::Error("x".into()), at(30)),
        Error
    );
    assert_eq!(sim.result("errors").error, 3);
}

#[test]
fn no_data_is_inconclusive_never_success() {
    let mut sim = Sim::new(spec(vec![metric("errors")]));
    let phase = sim.measure(
        "errors",
        Outcome::NoData("the query returned no data".into()),
        at(0),
    );
    assert_eq!(phase, Inconclusive);
    assert!(sim.status.message.as_ref().unwrap().contains("no data"));
}

#[test]
fn inconclusive_within_the_limit_is_tolerated() {
    let mut m = metric("errors");
    m.inconclusive_limit = Some(1.into());
    m.count = Some(2.into());
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(
        sim.measure("errors", Outcome::NoData("none".into()), at(0)),
        Running
    );
    assert_eq!(sim.value("errors", 0.0, at(10)), Successful);
}

#[test]
fn both_conditions_unmet_is_inconclusive() {
    let mut m = metric("latency");
    m.success_condition = Some("result < 100".into());
    m.failure_condition = Some("result > 500".into());
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(sim.value("latency", 300.0, at(0)), Inconclusive);
}

#[test]
fn consecutive_successes_end_early() {
    let mut m = metric("errors");
    m.count = None; // with an interval: no end
    m.consecutive_success_limit = Some(2);
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(sim.value("errors", 0.0, at(0)), Running);
    assert_eq!(sim.value("errors", 0.0, at(10)), Successful);
}

#[test]
fn without_count_or_interval_one_measurement() {
    let mut m = metric("smoke");
    m.count = None;
    m.interval = None;
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(sim.value("smoke", 0.0, at(0)), Successful);
}

#[test]
fn with_an_interval_and_no_count_it_runs_until_terminated() {
    let mut m = metric("errors");
    m.count = None;
    let mut sim = Sim::new(spec(vec![m]));
    for i in 0..20 {
        assert_eq!(sim.value("errors", 0.0, at(i * 10)), Running);
    }
    sim.spec.terminate = true;
    assess(&sim.spec, &mut sim.status, at(300));
    // A background analysis ends so with its rollout: stopped, no verdict, never a success.
    assert_ne!(sim.status.phase, Some(Successful));
    assert!(sim.status.phase.is_some_and(AnalysisPhase::is_terminal));
}

/// An analysis step of 5 measurements a minute apart; someone pauses the rollout after the first
/// and the run is terminated: it must not end Successful on 1 of its 5 measurements, nor on none.
#[test]
fn a_run_terminated_before_its_count_is_never_successful() {
    let mut m = metric("errors");
    m.count = Some(5.into());
    m.interval = Some("1m".into());
    let mut sim = Sim::new(spec(vec![m.clone()]));
    assert_eq!(sim.value("errors", 0.0, at(0)), Running);
    sim.spec.terminate = true;
    assess(&sim.spec, &mut sim.status, at(30));
    assert_ne!(sim.status.phase, Some(Successful), "{:?}", sim.status);
    assert!(sim.status.phase.is_some_and(AnalysisPhase::is_terminal));
    assert_ne!(sim.result("errors").phase, Successful);

    let mut sim = Sim::new(spec(vec![m]));
    sim.spec.terminate = true;
    assess(&sim.spec, &mut sim.status, at(1));
    assert_ne!(sim.status.phase, Some(Successful), "{:?}", sim.status);
    assert!(sim.status.phase.is_some_and(AnalysisPhase::is_terminal));
    assert!(
        sim.status
            .message
            .as_deref()
            .unwrap()
            .contains("terminated")
    );
}

/// Metrics that decided before the terminate keep their verdict: all passed is still a pass.
#[test]
fn a_run_whose_metrics_all_passed_stays_successful_when_terminated() {
    let mut m = metric("errors");
    m.count = Some(1.into());
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(sim.value("errors", 0.0, at(0)), Successful);
    sim.spec.terminate = true;
    assess(&sim.spec, &mut sim.status, at(1));
    assert_eq!(sim.status.phase, Some(Successful));
}

#[test]
fn count_0_runs_until_terminated_and_needs_an_interval() {
    let mut m = metric("errors");
    m.count = Some(0.into());
    let mut sim = Sim::new(spec(vec![m.clone()]));
    for i in 0..5 {
        assert_eq!(sim.value("errors", 0.0, at(i * 10)), Running);
    }
    m.interval = None;
    assert!(validate(&[m]).unwrap_err().contains("needs an interval"));
}

#[test]
fn termination_keeps_a_failure() {
    let mut m = metric("errors");
    m.count = None;
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(sim.value("errors", 1.0, at(0)), Failed);
    sim.spec.terminate = true;
    assess(&sim.spec, &mut sim.status, at(10));
    assert_eq!(sim.status.phase, Some(Failed));
}

#[test]
fn dry_run_metrics_are_recorded_but_never_decide() {
    let mut s = spec(vec![metric("errors"), metric("latency")]);
    s.dry_run = vec![DryRun {
        metric_name: "latency".into(),
    }];
    let mut sim = Sim::new(s);
    assert_eq!(sim.value("latency", 10.0, at(0)), Running);
    assert_eq!(sim.result("latency").phase, Failed);
    assert!(sim.result("latency").dry_run);
    sim.value("errors", 0.0, at(0));
    sim.value("errors", 0.0, at(10));
    assert_eq!(sim.value("errors", 0.0, at(20)), Successful);
}

#[test]
fn a_dry_run_rule_is_a_regular_expression_as_in_argo_rollouts() {
    let mut s = spec(vec![metric("total-5xx-errors"), metric("latency")]);
    s.dry_run = vec![DryRun {
        metric_name: "5xx".into(),
    }];
    let mut sim = Sim::new(s);
    assert_eq!(sim.value("total-5xx-errors", 10.0, at(0)), Running);
    assert!(sim.result("total-5xx-errors").dry_run);
    assert_eq!(sim.value("latency", 10.0, at(0)), Failed);
}

#[test]
fn a_run_of_only_dry_run_metrics_ends_when_they_do() {
    let mut s = spec(vec![metric("errors")]);
    s.dry_run = vec![DryRun {
        metric_name: "*".into(),
    }];
    let mut sim = Sim::new(s);
    assert_eq!(sim.value("errors", 1.0, at(0)), Successful);
}

#[test]
fn the_worst_metric_decides() {
    let mut sim = Sim::new(spec(vec![metric("a"), metric("b")]));
    assert_eq!(
        sim.measure("a", Outcome::NoData("none".into()), at(0)),
        Inconclusive
    );
    let mut sim = Sim::new(spec(vec![metric("a"), metric("b")]));
    sim.value("a", 0.0, at(0));
    assert_eq!(sim.value("b", 1.0, at(0)), Failed);
}

#[test]
fn retention_keeps_the_last_measurements() {
    let mut m = metric("errors");
    m.count = Some(30.into());
    let mut s = spec(vec![m.clone(), {
        let mut o = m;
        o.name = "other".into();
        o
    }]);
    s.measurement_retention = vec![MeasurementRetention {
        metric_name: "errors".into(),
        limit: 3,
    }];
    let mut sim = Sim::new(s);
    for i in 0..12 {
        sim.value("errors", i as f64 / 1000.0, at(i * 10));
        sim.value("other", 0.0, at(i * 10));
    }
    let kept: Vec<_> = sim
        .result("errors")
        .measurements
        .iter()
        .map(|m| m.value.clone().unwrap())
        .collect();
    assert_eq!(kept, vec!["0.009", "0.01", "0.011"]);
    assert_eq!(sim.result("errors").count, 12);
    assert_eq!(sim.result("other").measurements.len(), 10);
}

#[test]
fn a_running_measurement_is_resumed_and_replaced() {
    let mut sim = Sim::new(spec(vec![metric("job")]));
    let meta = std::collections::BTreeMap::from([("job-name".to_string(), "j1".to_string())]);
    assert_eq!(
        sim.measure("job", Outcome::Running(meta.clone()), at(0)),
        Running
    );
    let s = assess(&sim.spec, &mut sim.status.clone(), at(1));
    assert_eq!(s.due.len(), 1);
    assert_eq!(s.due[0].resume.as_ref().unwrap().metadata, meta);
    sim.measure(
        "job",
        Outcome::Decided(Successful, "Job j1 succeeded".into()),
        at(5),
    );
    assert_eq!(sim.result("job").measurements.len(), 1);
    assert_eq!(sim.result("job").successful, 1);
}

#[test]
fn an_evaluation_error_is_an_error_measurement() {
    let mut m = metric("errors");
    m.success_condition = Some("result.rate > 1".into());
    let mut sim = Sim::new(spec(vec![m]));
    sim.value("errors", 0.5, at(0));
    let r = sim.result("errors");
    assert_eq!((r.error, r.count), (1, 0));
    assert!(r.measurements[0].message.is_some());
}

#[test]
fn validate_names_the_field() {
    let mut bad = metric("a");
    bad.success_condition = Some("result >".into());
    let err = validate(&[metric("ok"), bad]).unwrap_err();
    assert!(err.starts_with("metrics[1].successCondition: "), "{err}");
    let err = validate(&[metric("a"), metric("a")]).unwrap_err();
    assert!(err.contains("used by two metrics"), "{err}");
    let mut bad = metric("a");
    bad.interval = Some("1d".into());
    assert!(
        validate(&[bad])
            .unwrap_err()
            .starts_with("metrics[0].interval")
    );
}

/// `interval: 0s`, or no interval with a large count, measured every 100 ms: now at most once a
/// second.
#[test]
fn an_interval_of_0s_or_none_measures_at_most_once_a_second() {
    for interval in [Some("0s"), None] {
        let mut m = metric("errors");
        m.interval = interval.map(Into::into);
        m.count = Some(1000.into());
        let mut sim = Sim::new(spec(vec![m]));
        assert_eq!(sim.value("errors", 0.0, at(0)), Running);
        let s = assess(&sim.spec, &mut sim.status.clone(), at(0));
        assert!(s.due.is_empty(), "{interval:?}: due again at once");
        assert_eq!(s.next_at, Some(at(1)), "{interval:?}");
        // A provider error is retried no faster.
        sim.measure("errors", Outcome::Error("connection refused".into()), at(1));
        let s = assess(&sim.spec, &mut sim.status.clone(), at(1));
        assert_eq!((s.due.len(), s.next_at), (0, Some(at(2))), "{interval:?}");
    }
}

/// A Prometheus query answering a vector of 20 000 series, kept 10 times over by the default
/// retention for each of 64 metrics: the status must stay far below the API server's object size
/// limit (about 1.5 MiB), or the run could never be written again and its gate would wait forever.
#[test]
fn a_huge_vector_is_stored_as_its_length_and_the_status_stays_small() {
    let huge = MetricValue::List((0..20_000).map(|i| MetricValue::Number(i as f64)).collect());
    let mut m = metric("m");
    m.success_condition = Some("size(result) > 0".into());
    m.count = Some(100.into());
    let metrics: Vec<Metric> = (0..64)
        .map(|i| {
            let mut m = m.clone();
            m.name = format!("m{i}");
            m
        })
        .collect();
    let mut sim = Sim::new(spec(metrics));
    let noisy = "x".repeat(100_000);
    for round in 0..12 {
        for i in 0..64 {
            let name = format!("m{i}");
            let outcome = if round % 2 == 0 {
                Outcome::Value(huge.clone())
            } else {
                Outcome::Error(noisy.clone())
            };
            sim.measure(&name, outcome, at(round * 10));
        }
    }
    let first = &sim.result("m0").measurements[0];
    let value = first.value.as_deref().unwrap();
    assert!(value.contains("20000 elements"), "{}", &value[..80]);
    assert!(value.len() <= 1024, "{} bytes", value.len());
    let message = sim.result("m0").measurements[1].message.as_deref().unwrap();
    assert!(message.len() <= 1024, "{} bytes", message.len());
    let size = serde_json::to_vec(&sim.status).unwrap().len();
    assert!(size < 1024 * 1024, "status of {size} bytes");
}

/// A long text value (a web provider's JSON) is cut on a character boundary, saying how long it
/// was; a short one is kept as it is.
#[test]
fn long_values_are_cut_short_ones_kept() {
    let c = Conditions::compile(None, None).unwrap();
    let long = MetricValue::Json(serde_json::Value::String("é".repeat(2000)));
    let m = measurement(Outcome::Value(long), &c, at(0), at(0));
    let v = m.value.unwrap();
    assert!(
        v.len() <= 600 && v.ends_with("bytes in all)"),
        "{} bytes",
        v.len()
    );
    let m = measurement(
        Outcome::Value(MetricValue::List(vec![
            MetricValue::Number(1.0),
            MetricValue::Number(2.0),
        ])),
        &c,
        at(0),
        at(0),
    );
    assert_eq!(m.value.as_deref(), Some("[1,2]"));
}

/// The API server refused the status a reconcile computed (422: too large, or invalid): the run
/// ends Error on the last status it accepted, and says why, instead of retrying every 200 ms.
#[test]
fn a_rejected_status_ends_the_run_in_error_saying_why() {
    let mut sim = Sim::new(spec(vec![metric("errors")]));
    sim.value("errors", 0.0, at(0));
    let old = sim.status.clone();
    let s = super::run::rejected(&old, "Request entity too large: limit is 3145728", at(5));
    assert_eq!(s.phase, Some(Error));
    assert!(
        s.message
            .as_deref()
            .unwrap()
            .contains("rejected the run's status: Request entity too large"),
        "{s:?}"
    );
    assert_eq!(s.metric_results, old.metric_results);
    let s = super::run::rejected(&old, &"y".repeat(10_000), at(5));
    assert!(s.message.unwrap().len() <= 1024);
}

/// What the progress deadline counts from: the measurement in progress, else the next one due;
/// nothing once decided.
#[test]
fn owed_since_is_the_measurement_in_progress_or_the_next_one_due() {
    use super::run::owed_since;
    let mut m = metric("errors");
    m.initial_delay = Some("5s".into());
    let mut sim = Sim::new(spec(vec![m]));
    assert_eq!(owed_since(&sim.spec, None, Some(at(0))), Some(at(5)));
    assert_eq!(owed_since(&sim.spec, Some(&sim.status), None), Some(at(5)));
    sim.value("errors", 0.0, at(5));
    assert_eq!(owed_since(&sim.spec, Some(&sim.status), None), Some(at(15)));
    let meta = std::collections::BTreeMap::from([("job-name".to_string(), "j1".to_string())]);
    sim.measure("errors", Outcome::Running(meta), at(16));
    assert_eq!(owed_since(&sim.spec, Some(&sim.status), None), Some(at(16)));
    sim.measure("errors", Outcome::Value(MetricValue::Number(0.0)), at(20));
    sim.value("errors", 0.0, at(30));
    assert_eq!(sim.status.phase, Some(Successful));
    assert_eq!(owed_since(&sim.spec, Some(&sim.status), None), None);
}
