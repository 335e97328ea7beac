//! PURE: the AnalysisRun state machine. Measurements in, phases and the next measurement time
//! out; no client here, so every limit is a plain unit test.
//!
//! Per metric: Failed once failures exceed `failureLimit`; Error after `consecutiveErrorLimit`
//! provider errors in a row; Inconclusive once inconclusive results (no data included) exceed
//! `inconclusiveLimit`; Successful after `count` results (or `consecutiveSuccessLimit` successes
//! in a row). Provider errors are retried and do not count towards `count`, so a Prometheus that
//! is down can end a run in Error but never in Successful. The run takes the worst phase of its
//! metrics that are not dry-run, as soon as one is decided. A run terminated before that ends
//! Terminated: no verdict, never Successful.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::condition::{Condition, Conditions};
use super::value::{MetricValue, Outcome};
use crate::api::SpecProblem;
use crate::api::analysis::{
    AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, DryRun, IntOrArg, Measurement, Metric,
    MetricResult,
};
use crate::api::{defaults, duration};

/// The shortest time between two measurements of a metric, whatever `interval` says (`0s`, or no
/// interval with a large `count`): a run never measures in a hot loop.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The most bytes of a value or a message one measurement keeps. A run keeps
/// `measurementRetention` measurements of up to 64 metrics; with this cap its status stays far
/// below the API server's object size limit, past which it could never be written again.
pub const MAX_STORED_BYTES: usize = 512;
/// Elements of a long vector a measurement shows; the rest is summarised by the length.
pub const MAX_SHOWN_ELEMENTS: usize = 5;

/// A metric to measure now: a new measurement, or one in progress to look at again.
#[derive(Clone, Debug, PartialEq)]
pub struct Due {
    pub metric: String,
    /// The measurement in progress (a running Job), when resuming one.
    pub resume: Option<Measurement>,
}

/// The run's next moves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Measure these now.
    pub due: Vec<Due>,
    /// When the next measurement falls due, if later than now.
    pub next_at: Option<Timestamp>,
}

/// A whole-number field's value; validation has refused text that is not one.
fn int(v: &Option<IntOrArg>) -> Option<i32> {
    v.as_ref().and_then(IntOrArg::value)
}

fn parse(d: Option<&str>) -> Duration {
    // Durations were checked by `validate`; a bad one here means "no wait".
    d.and_then(|d| duration::parse(d).ok()).unwrap_or_default()
}

/// The time between two measurements of `m`: its `interval`, at least [`MIN_INTERVAL`].
fn interval(m: &Metric) -> Duration {
    parse(m.interval.as_deref()).max(MIN_INTERVAL)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn result<'a>(status: &'a AnalysisRunStatus, name: &str) -> Option<&'a MetricResult> {
    status.metric_results.iter().find(|r| r.name == name)
}

fn is_dry_run(dry_run: &[DryRun], name: &str) -> bool {
    super::metric_rules::is_dry_run(dry_run, name)
}

/// The metrics that keep a run from ever being Successful: they decide the run (not dry-run)
/// and measure until the run is terminated, with no `count` and no `consecutiveSuccessLimit`.
/// Such a run can fail but, as a gate, never pass.
pub fn endless_metrics<'a>(metrics: &'a [Metric], dry_run: &[DryRun]) -> Vec<&'a str> {
    metrics
        .iter()
        .filter(|m| !is_dry_run(dry_run, &m.name))
        .filter(|m| wanted_count(m).is_none() && m.consecutive_success_limit.is_none())
        .map(|m| m.name.as_str())
        .collect()
}

fn retention(spec: &AnalysisRunSpec, name: &str) -> usize {
    super::metric_rules::retention(&spec.measurement_retention, name)
        .map_or(defaults::MEASUREMENT_RETENTION, |r| r.limit)
        .max(1) as usize
}

/// Measurements a metric asks for: `count` (0: no end), else one without an interval, else no
/// end.
/// A `count` that is an argument not known yet (a lint before the Rollout gives it) counts as a
/// number: the run will have one.
fn wanted_count(m: &Metric) -> Option<i32> {
    match (
        m.count.as_ref().map(|c| c.value().unwrap_or(1)),
        &m.interval,
    ) {
        (Some(0), _) => None,
        (Some(c), _) => Some(c),
        (None, None) => Some(1),
        (None, Some(_)) => None,
    }
}

/// Checks what admission cannot: the first of [`problems`], as `path: message`.
pub fn validate(metrics: &[Metric]) -> Result<(), String> {
    match problems(metrics).into_iter().next() {
        Some(p) => Err(p.to_string()),
        None => Ok(()),
    }
}

/// Every problem admission cannot catch: durations in range, unique metric names, one provider,
/// conditions that compile. Paths are relative to the spec holding `metrics`.
pub fn problems(metrics: &[Metric]) -> Vec<SpecProblem> {
    each_metric(metrics, metric_problems)
}

/// Unique names, then `check`'s problems of each metric, at paths under `metrics[i]`.
pub fn each_metric(
    metrics: &[Metric],
    mut check: impl FnMut(&Metric) -> Vec<SpecProblem>,
) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        if metrics[..i].iter().any(|o| o.name == m.name) {
            out.push(SpecProblem {
                path: format!("metrics[{i}].name"),
                message: format!("{:?} is used by two metrics", m.name),
            });
        }
        out.extend(check(m).into_iter().map(|p| SpecProblem {
            path: format!("metrics[{i}].{}", p.path),
            message: p.message,
        }));
    }
    out
}

/// [`problems`] of one metric, at paths relative to it.
pub fn metric_problems(m: &Metric) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    let mut add = |path: &str, message: String| {
        out.push(SpecProblem {
            path: path.to_string(),
            message,
        })
    };
    let p = &m.provider;
    for (field, d) in [
        ("interval", m.interval.as_deref()),
        ("initialDelay", m.initial_delay.as_deref()),
        (
            "provider.prometheus.timeout",
            p.prometheus.as_ref().and_then(|p| p.timeout.as_deref()),
        ),
        (
            "provider.graphite.from",
            p.graphite.as_ref().and_then(|g| g.from.as_deref()),
        ),
        (
            "provider.graphite.timeout",
            p.graphite.as_ref().and_then(|g| g.timeout.as_deref()),
        ),
        (
            "provider.influxdb.timeout",
            p.influxdb.as_ref().and_then(|i| i.timeout.as_deref()),
        ),
        (
            "provider.datadog.interval",
            p.datadog.as_ref().and_then(|d| d.interval.as_deref()),
        ),
        (
            "provider.datadog.timeout",
            p.datadog.as_ref().and_then(|d| d.timeout.as_deref()),
        ),
        (
            "provider.newRelic.timeout",
            p.new_relic.as_ref().and_then(|n| n.timeout.as_deref()),
        ),
        (
            "provider.cloudWatch.interval",
            p.cloud_watch.as_ref().and_then(|c| c.interval.as_deref()),
        ),
        (
            "provider.cloudWatch.timeout",
            p.cloud_watch.as_ref().and_then(|c| c.timeout.as_deref()),
        ),
    ] {
        if let Some(Err(e)) = d.map(duration::parse) {
            add(field, e);
        }
    }
    for (field, v) in [
        ("count", &m.count),
        ("failureLimit", &m.failure_limit),
        ("inconclusiveLimit", &m.inconclusive_limit),
        ("consecutiveErrorLimit", &m.consecutive_error_limit),
    ] {
        match v {
            Some(IntOrArg::Int(n)) if *n < 0 => add(field, format!("{n} is below 0")),
            Some(IntOrArg::Text(t)) if t.trim().parse::<u32>().is_err() => {
                add(field, format!("{t:?} is not a whole number of at least 0"))
            }
            _ => {}
        }
    }
    if int(&m.count) == Some(0) && m.interval.is_none() {
        add(
            "count",
            "0 measures until the run is terminated, which needs an interval".into(),
        );
    }
    if m.provider.kinds().len() != 1 {
        add(
            "provider",
            "set exactly one of prometheus, web, job, graphite, influxdb, datadog, newRelic, \
             cloudWatch"
                .into(),
        );
    }
    for (field, condition) in [
        ("successCondition", &m.success_condition),
        ("failureCondition", &m.failure_condition),
    ] {
        if let Some(source) = condition
            && let Err(e) = Condition::compile(source)
        {
            add(
                field,
                format!("{source:?} is not a valid CEL expression: {e}"),
            );
        }
    }
    out
}

/// `text`, cut to [`MAX_STORED_BYTES`] (on a character boundary) with a note of its full size.
pub fn capped(text: String) -> String {
    if text.len() <= MAX_STORED_BYTES {
        return text;
    }
    let mut end = MAX_STORED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len())
}

/// A value as a measurement stores it: JSON text, a long vector (or JSON array) as its first
/// elements and its length, and never more than [`MAX_STORED_BYTES`]. The conditions judged the
/// whole value; this is only the record.
pub fn stored_value(v: &MetricValue) -> String {
    let summary =
        |shown: Vec<String>, len: usize| format!("[{},...] ({len} elements)", shown.join(","));
    capped(match v {
        MetricValue::List(items) if items.len() > MAX_SHOWN_ELEMENTS => summary(
            items[..MAX_SHOWN_ELEMENTS]
                .iter()
                .map(ToString::to_string)
                .collect(),
            items.len(),
        ),
        MetricValue::Json(serde_json::Value::Array(items)) if items.len() > MAX_SHOWN_ELEMENTS => {
            summary(
                items[..MAX_SHOWN_ELEMENTS]
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                items.len(),
            )
        }
        v => v.to_string(),
    })
}

/// The measurement an outcome gives: judged by the conditions when it is a value.
pub fn measurement(
    outcome: Outcome,
    conditions: &Conditions,
    started_at: Timestamp,
    now: Timestamp,
) -> Measurement {
    let (phase, value, message, metadata) = match outcome {
        Outcome::Value(v) => match conditions.judge(&v) {
            Ok(phase) => (phase, Some(stored_value(&v)), None, Default::default()),
            Err(e) => (
                AnalysisPhase::Error,
                Some(stored_value(&v)),
                Some(e),
                Default::default(),
            ),
        },
        Outcome::NoData(message) => (
            AnalysisPhase::Inconclusive,
            None,
            Some(message),
            Default::default(),
        ),
        Outcome::Error(message) => (
            AnalysisPhase::Error,
            None,
            Some(message),
            Default::default(),
        ),
        Outcome::Decided(phase, message) => (phase, None, Some(message), Default::default()),
        Outcome::Running(metadata) => (AnalysisPhase::Running, None, None, metadata),
    };
    let finished = phase != AnalysisPhase::Running;
    Measurement {
        phase,
        value,
        message: message.map(capped),
        started_at: Some(Time(started_at)),
        finished_at: finished.then_some(Time(now)),
        metadata,
    }
}

/// Records a measurement of metric `name`: a measurement in progress is replaced by its next
/// state; a finished one updates the counters. Keeps the last `measurementRetention`.
pub fn record(spec: &AnalysisRunSpec, status: &mut AnalysisRunStatus, name: &str, m: Measurement) {
    let dry_run = is_dry_run(&spec.dry_run, name);
    let keep = retention(spec, name);
    let r = match status.metric_results.iter().position(|r| r.name == name) {
        Some(i) => &mut status.metric_results[i],
        None => {
            status.metric_results.push(MetricResult {
                name: name.to_string(),
                phase: AnalysisPhase::Running,
                dry_run,
                ..Default::default()
            });
            let last = status.metric_results.len() - 1;
            &mut status.metric_results[last]
        }
    };
    if r.measurements
        .last()
        .is_some_and(|l| l.phase == AnalysisPhase::Running)
    {
        r.measurements.pop();
    }
    match m.phase {
        AnalysisPhase::Running | AnalysisPhase::Pending => {}
        AnalysisPhase::Error => {
            r.error += 1;
            r.consecutive_error += 1;
            r.consecutive_success = 0;
        }
        phase => {
            r.count += 1;
            r.consecutive_error = 0;
            match phase {
                AnalysisPhase::Successful => {
                    r.successful += 1;
                    r.consecutive_success += 1;
                }
                AnalysisPhase::Failed => {
                    r.failed += 1;
                    r.consecutive_success = 0;
                }
                _ => {
                    r.inconclusive += 1;
                    r.consecutive_success = 0;
                }
            }
        }
    }
    r.measurements.push(m);
    let excess = r.measurements.len().saturating_sub(keep);
    r.measurements.drain(..excess);
}

/// A metric's phase from its counters, with the reason.
fn metric_phase(m: &Metric, r: &MetricResult) -> (AnalysisPhase, Option<String>) {
    let failure_limit = int(&m.failure_limit).unwrap_or(defaults::FAILURE_LIMIT);
    let inconclusive_limit = int(&m.inconclusive_limit).unwrap_or(defaults::INCONCLUSIVE_LIMIT);
    let error_limit = int(&m.consecutive_error_limit)
        .unwrap_or(defaults::CONSECUTIVE_ERROR_LIMIT)
        .max(1);
    let last_message = || {
        r.measurements
            .iter()
            .rev()
            .find_map(|x| x.message.clone())
            .map(|msg| format!(": {msg}"))
            .unwrap_or_default()
    };
    if r.failed > failure_limit {
        let value = r
            .measurements
            .iter()
            .rev()
            .find(|x| x.phase == AnalysisPhase::Failed)
            .and_then(|x| x.value.clone())
            .unwrap_or_default();
        return (
            AnalysisPhase::Failed,
            Some(format!(
                "metric {:?}: {} failed measurements exceed failureLimit {failure_limit} (last value {value})",
                m.name, r.failed
            )),
        );
    }
    if r.consecutive_error >= error_limit {
        return (
            AnalysisPhase::Error,
            Some(format!(
                "metric {:?}: {} errors in a row reach consecutiveErrorLimit {error_limit}{}",
                m.name,
                r.consecutive_error,
                last_message()
            )),
        );
    }
    if r.inconclusive > inconclusive_limit {
        return (
            AnalysisPhase::Inconclusive,
            Some(format!(
                "metric {:?}: {} inconclusive measurements exceed inconclusiveLimit {inconclusive_limit}{}",
                m.name,
                r.inconclusive,
                last_message()
            )),
        );
    }
    if let Some(limit) = m.consecutive_success_limit
        && r.consecutive_success >= limit
    {
        return (AnalysisPhase::Successful, None);
    }
    if wanted_count(m).is_some_and(|c| r.count >= c) {
        return (AnalysisPhase::Successful, None);
    }
    (AnalysisPhase::Running, None)
}

/// Since when the run has owed its next measurement: the start of the measurement in progress
/// (a Job running), else when the next one fell due (the last one's end plus the interval, or
/// the run's start plus `initialDelay`), the earliest over the metrics that decide the run.
/// `created` stands for the start of a run the controller has not picked up. A run that records
/// its measurements keeps moving this forward; one that stays behind it (a Job that never ends, a
/// provider call that never returns, no controller) makes no progress. `None` once decided.
pub fn owed_since(
    spec: &AnalysisRunSpec,
    status: Option<&AnalysisRunStatus>,
    created: Option<Timestamp>,
) -> Option<Timestamp> {
    if status
        .and_then(|s| s.phase)
        .is_some_and(AnalysisPhase::is_terminal)
    {
        return None;
    }
    let started = status
        .and_then(|s| s.started_at.as_ref())
        .map(|t| t.0)
        .or(created)?;
    let only_dry_run = spec
        .metrics
        .iter()
        .all(|m| is_dry_run(&spec.dry_run, &m.name));
    spec.metrics
        .iter()
        .filter(|m| only_dry_run || !is_dry_run(&spec.dry_run, &m.name))
        .filter_map(|m| {
            let r = status.and_then(|s| result(s, &m.name));
            if r.is_some_and(|r| r.phase.is_terminal()) {
                return None;
            }
            Some(match r.and_then(|r| r.measurements.last()) {
                Some(l) if l.phase == AnalysisPhase::Running => {
                    l.started_at.as_ref().map_or(started, |t| t.0)
                }
                Some(l) => match &l.finished_at {
                    Some(finished) => plus(finished.0, interval(m)),
                    None => started,
                },
                None => plus(started, parse(m.initial_delay.as_deref())),
            })
        })
        .min()
        .or(Some(started))
}

/// The status to write when the API server rejected the one a reconcile computed (422: too
/// large, or invalid): the last status it accepted, ended in Error with the server's reason. The
/// run cannot record its measurements, so it cannot pass; failing it tells the rollout now, in
/// the run's own status, instead of retrying the same write forever.
pub fn rejected(old: &AnalysisRunStatus, reason: &str, now: Timestamp) -> AnalysisRunStatus {
    let mut status = old.clone();
    status.started_at.get_or_insert(Time(now));
    status.phase = Some(AnalysisPhase::Error);
    status.message = Some(capped(format!(
        "the API server rejected the run's status: {reason}"
    )));
    status
}

/// Recomputes every metric's phase and the run's, and says what to measure when. `now` starts
/// the run's clock on its first call.
pub fn assess(spec: &AnalysisRunSpec, status: &mut AnalysisRunStatus, now: Timestamp) -> Schedule {
    let started = status.started_at.get_or_insert(Time(now)).0;
    if status.phase.is_some_and(AnalysisPhase::is_terminal) {
        return Schedule::default();
    }

    let mut run_phase: Option<(AnalysisPhase, String)> = None;
    let mut all_done = true;
    for m in &spec.metrics {
        let dry_run = is_dry_run(&spec.dry_run, &m.name);
        let (phase, message) = match result(status, &m.name) {
            Some(r) => metric_phase(m, r),
            None => (AnalysisPhase::Pending, None),
        };
        if let Some(r) = status.metric_results.iter_mut().find(|r| r.name == m.name) {
            r.phase = phase;
            r.message = message.clone();
            r.dry_run = dry_run;
        }
        if dry_run {
            continue;
        }
        if !phase.is_terminal() {
            all_done = false;
            continue;
        }
        let rank = |p: AnalysisPhase| match p {
            AnalysisPhase::Failed => 3,
            AnalysisPhase::Error => 2,
            AnalysisPhase::Inconclusive => 1,
            _ => 0,
        };
        if rank(phase) > run_phase.as_ref().map_or(0, |(p, _)| rank(*p)) {
            run_phase = Some((phase, message.unwrap_or_default()));
        }
    }
    // Dry-run metrics run as long as the others; a run of only dry-run metrics ends with them.
    let only_dry_run = spec
        .metrics
        .iter()
        .all(|m| is_dry_run(&spec.dry_run, &m.name));
    if only_dry_run {
        all_done = spec
            .metrics
            .iter()
            .all(|m| result(status, &m.name).is_some_and(|r| metric_phase(m, r).0.is_terminal()));
    }

    let decided = match run_phase {
        Some((phase, message)) => Some((phase, message)),
        None if all_done => Some((AnalysisPhase::Successful, "all metrics passed".to_string())),
        // Stopped before its metrics decided: no verdict. Never Successful, so no gate can pass
        // on measurements that were not taken.
        None if spec.terminate => {
            for r in &mut status.metric_results {
                if !r.phase.is_terminal() {
                    r.phase = AnalysisPhase::Terminated;
                }
            }
            Some((
                AnalysisPhase::Terminated,
                "terminated before its metrics decided".to_string(),
            ))
        }
        None => None,
    };
    if let Some((phase, message)) = decided {
        status.phase = Some(phase);
        status.message = Some(message);
        return Schedule::default();
    }

    let mut schedule = Schedule::default();
    for m in &spec.metrics {
        let r = result(status, &m.name);
        if r.is_some_and(|r| r.phase.is_terminal()) {
            continue;
        }
        let last = r.and_then(|r| r.measurements.last());
        if let Some(l) = last.filter(|l| l.phase == AnalysisPhase::Running) {
            schedule.due.push(Due {
                metric: m.name.clone(),
                resume: Some(l.clone()),
            });
            continue;
        }
        let at = match last.and_then(|l| l.finished_at.as_ref()) {
            Some(finished) => plus(finished.0, interval(m)),
            None => plus(started, parse(m.initial_delay.as_deref())),
        };
        if at <= now {
            schedule.due.push(Due {
                metric: m.name.clone(),
                resume: None,
            });
        } else {
            schedule.next_at = Some(schedule.next_at.map_or(at, |t| t.min(at)));
        }
    }
    status.phase = Some(AnalysisPhase::Running);
    status.message = None;
    schedule
}
