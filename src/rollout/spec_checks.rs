//! Checks of a Rollout's spec beyond what admission can express (durations, surge limits, Service
//! names). Pure: the controller reports the first problem as `InvalidSpec`, and `kubectl fledge
//! lint` reports them all, offline, with the same words.

use crate::api::{Limit, MAX_REPLICAS, RolloutSpec, SpecProblem, scaled_value};

/// Every problem of `spec`, in field order.
pub fn problems(spec: &RolloutSpec) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    let mut add = |path: String, message: String| out.push(SpecProblem { path, message });
    // The schema has these maxima, but a Rollout stored before it had them (or under an older
    // CRD) may not, and all replica arithmetic relies on them.
    let over = |n: Option<i32>| {
        n.filter(|n| *n > MAX_REPLICAS)
            .map(|n| format!("must be at most {MAX_REPLICAS}, not {n}"))
    };
    if let Some(m) = over(spec.replicas) {
        add("replicas".into(), m);
    }
    if let Some(c) = &spec.strategy.canary {
        for (i, step) in c.steps.iter().enumerate() {
            if let Some(d) = step.pause.as_ref().and_then(|p| p.duration.as_deref())
                && let Err(e) = crate::api::duration::parse(d)
            {
                add(format!("strategy.canary.steps[{i}].pause.duration"), e);
            }
            if let Some(m) = over(step.set_canary_scale.as_ref().and_then(|s| s.replicas)) {
                add(
                    format!("strategy.canary.steps[{i}].setCanaryScale.replicas"),
                    m,
                );
            }
        }
        let replicas = spec.replicas.unwrap_or(crate::api::defaults::REPLICAS);
        if let Err(e) = scaled_value(c.max_surge.as_ref(), replicas, Limit::MaxSurge) {
            add("strategy.canary.maxSurge".into(), e);
        }
        if let Err(e) = scaled_value(c.max_unavailable.as_ref(), replicas, Limit::MaxUnavailable) {
            add("strategy.canary.maxUnavailable".into(), e);
        }
        if let (Some(s), Some(k)) = (&c.stable_service, &c.canary_service)
            && s == k
        {
            add(
                "strategy.canary.canaryService".into(),
                format!(
                    "must differ from stableService ({s:?}): each is pinned to its own revision"
                ),
            );
        }
    }
    if let Some(m) = over(
        spec.strategy
            .blue_green
            .as_ref()
            .and_then(|b| b.preview_replica_count),
    ) {
        add("strategy.blueGreen.previewReplicaCount".into(), m);
    }
    if let Some(b) = &spec.strategy.blue_green
        && let Err(e) = scaled_value(
            b.max_unavailable.as_ref(),
            spec.replicas.unwrap_or(crate::api::defaults::REPLICAS),
            Limit::MaxUnavailable,
        )
    {
        add("strategy.blueGreen.maxUnavailable".into(), e);
    }
    if let Some(b) = &spec.strategy.blue_green
        && b.preview_service.as_deref() == Some(b.active_service.as_str())
    {
        add(
            "strategy.blueGreen.previewService".into(),
            format!(
                "must differ from activeService ({:?}): each is pinned to its own revision",
                b.active_service
            ),
        );
    }
    out.extend(crate::rollout::webhook_gates::problems(spec));
    out.extend(super::role_metadata_checks::problems(spec));
    out.extend(super::analysis_run_checks::problems(spec));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BlueGreenStrategy, CanaryStep, CanaryStrategy, PauseStep, Strategy};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn reports_every_problem_with_its_path() {
        let spec = RolloutSpec {
            strategy: Strategy {
                canary: Some(CanaryStrategy {
                    stable_service: Some("web".into()),
                    canary_service: Some("web".into()),
                    steps: vec![
                        CanaryStep {
                            pause: Some(PauseStep {
                                duration: Some("5 min".into()),
                            }),
                            ..Default::default()
                        },
                        CanaryStep {
                            set_weight: Some(50),
                            ..Default::default()
                        },
                    ],
                    max_surge: Some(IntOrString::String("lots".into())),
                    max_unavailable: Some(IntOrString::Int(-1)),
                    ..Default::default()
                }),
                blue_green: None,
            },
            ..Default::default()
        };
        let found: Vec<String> = problems(&spec).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "strategy.canary.steps[0].pause.duration: invalid duration \"5 min\": use a number and a unit s, m or h, like 30s, 5m, 1h30m",
                "strategy.canary.maxSurge: \"lots\" is neither a number nor a percentage like 25%",
                "strategy.canary.maxUnavailable: -1 is negative",
                "strategy.canary.canaryService: must differ from stableService (\"web\"): each is pinned to its own revision",
            ]
        );
    }

    #[test]
    fn blue_green_services_must_differ_and_a_good_spec_has_no_problem() {
        let mut spec = RolloutSpec {
            strategy: Strategy {
                canary: None,
                blue_green: Some(BlueGreenStrategy {
                    active_service: "web".into(),
                    preview_service: Some("web".into()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        };
        assert_eq!(problems(&spec)[0].path, "strategy.blueGreen.previewService");
        spec.strategy.blue_green.as_mut().unwrap().preview_service = Some("web-preview".into());
        assert_eq!(problems(&spec), []);
    }
}
