//! PURE: which metrics a `dryRun` or `measurementRetention` rule names. As in Argo Rollouts, a
//! rule's `metricName` is a regular expression searched for in each metric's name (`.*` names all,
//! `^latency$` exactly one), so Argo Rollouts' rules carry over unchanged; fledge's earlier `*`
//! still names all. A rule that names no metric of its run is a mistake (a typo leaves a failing
//! metric deciding the run), so it is reported, as Argo Rollouts ends such a run in Error.

use regex::Regex;

use crate::api::SpecProblem;
use crate::api::analysis::{DryRun, MeasurementRetention, Metric};

/// Whether rule `pattern` names metric `name`. An invalid pattern names nothing (and is reported
/// by [`problems`]).
pub fn matches(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern == name || Regex::new(pattern).is_ok_and(|re| re.is_match(name))
}

/// Why `pattern` cannot be a rule's `metricName`, if it cannot.
pub fn pattern_problem(pattern: &str) -> Option<String> {
    if pattern == "*" {
        return None;
    }
    Regex::new(pattern)
        .err()
        .map(|e| format!("{pattern:?} is not a valid regular expression: {e}"))
}

/// Whether `name` is measured in dry-run under `rules`.
pub fn is_dry_run(rules: &[DryRun], name: &str) -> bool {
    rules.iter().any(|r| matches(&r.metric_name, name))
}

/// The retention rule for `name`: the first that names it exactly, else the first whose pattern
/// matches it (a Rollout's rules come before its templates').
pub fn retention<'a>(
    rules: &'a [MeasurementRetention],
    name: &str,
) -> Option<&'a MeasurementRetention> {
    rules
        .iter()
        .find(|r| r.metric_name == name)
        .or_else(|| rules.iter().find(|r| matches(&r.metric_name, name)))
}

/// Each rule's `metricName` with its path: `dryRun[i].metricName`, then
/// `measurementRetention[i].metricName`.
fn patterns<'a>(
    dry_run: &'a [DryRun],
    retention: &'a [MeasurementRetention],
) -> impl Iterator<Item = (String, &'a str)> {
    let dry = dry_run
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("dryRun[{i}].metricName"), r.metric_name.as_str()));
    let kept = retention.iter().enumerate().map(|(i, r)| {
        (
            format!("measurementRetention[{i}].metricName"),
            r.metric_name.as_str(),
        )
    });
    dry.chain(kept)
}

/// Problems of the rules against the run's `metrics`: a pattern that is not a regular
/// expression, or one that names no metric. Paths are relative to the spec holding the rules.
pub fn problems(
    dry_run: &[DryRun],
    retention: &[MeasurementRetention],
    metrics: &[Metric],
) -> Vec<SpecProblem> {
    patterns(dry_run, retention)
        .filter_map(|(path, pattern)| {
            let message = match pattern_problem(pattern) {
                Some(m) => m,
                None if !metrics.iter().any(|m| matches(pattern, &m.name)) => {
                    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
                    format!("{pattern:?} names no metric of the run (its metrics: {names:?})")
                }
                None => return None,
            };
            Some(SpecProblem { path, message })
        })
        .collect()
}

/// Problems of rules alone, without the metrics they will meet (a Rollout's rules, checked
/// offline): only patterns that are not regular expressions.
pub fn pattern_problems(
    dry_run: &[DryRun],
    retention: &[MeasurementRetention],
) -> Vec<SpecProblem> {
    patterns(dry_run, retention)
        .filter_map(|(path, p)| pattern_problem(p).map(|message| SpecProblem { path, message }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str) -> Metric {
        serde_json::from_value(serde_json::json!({
            "name": name, "provider": {"web": {"url": "http://x"}},
        }))
        .unwrap()
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

    #[test]
    fn a_rule_is_searched_for_in_the_name_as_argo_rollouts_does() {
        assert!(matches(".*", "total-5xx-errors"));
        assert!(matches("*", "total-5xx-errors"));
        assert!(matches("total-5xx-errors", "total-5xx-errors"));
        // Unanchored, as Go's regexp.MatchString.
        assert!(matches("5xx", "total-5xx-errors"));
        assert!(matches("test.*", "my-test-metric"));
        assert!(!matches("^5xx", "total-5xx-errors"));
        assert!(!matches("^latency$", "latency-p99"));
        assert!(!matches("(", "a(b"));
        assert!(is_dry_run(&[dry("^err"), dry("lat")], "latency"));
        assert!(!is_dry_run(&[dry("^err")], "latency"));
    }

    #[test]
    fn an_exact_retention_rule_wins_over_a_pattern_then_the_first_pattern() {
        let rules = [keep(".*", 20), keep("errors", 3), keep("err", 5)];
        assert_eq!(retention(&rules, "errors").unwrap().limit, 3);
        assert_eq!(retention(&rules, "latency").unwrap().limit, 20);
        assert!(retention(&[keep("^x$", 2)], "latency").is_none());
    }

    #[test]
    fn bad_patterns_and_rules_naming_no_metric_are_reported_with_their_field() {
        let metrics = [metric("errors"), metric("latency")];
        let problems: Vec<String> = problems(
            &[dry("lat"), dry("(")],
            &[keep(".*", 3), keep("^nope$", 2)],
            &metrics,
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("dryRun[1].metricName: \"(\" is not a valid regular expression"),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            "measurementRetention[1].metricName: \"^nope$\" names no metric of the run (its \
             metrics: [\"errors\", \"latency\"])"
        );
        assert_eq!(
            pattern_problems(&[dry("ok"), dry("[")], &[keep("*", 1)]).len(),
            1
        );
    }
}
