//! One line of state per Rollout, the table of `list rollouts`, and what `status --watch` waits for.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{Phase, Rollout};

/// Where a rollout stands for a pipeline waiting on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The desired revision is stable and available.
    Healthy,
    /// Aborted, invalid or out of time: waiting longer will not help.
    Failed,
}

/// The outcome once the controller has seen the current spec; None while it is still working.
pub fn outcome(rollout: &Rollout) -> Option<Outcome> {
    let status = rollout.status.as_ref()?;
    if status.observed_generation != rollout.metadata.generation {
        return None;
    }
    match status.phase? {
        Phase::Healthy => Some(Outcome::Healthy),
        Phase::Degraded => Some(Outcome::Failed),
        Phase::Progressing | Phase::Paused => None,
    }
}

/// `web  Paused  step 3/6  weight 50%  paused at step 3; waiting for ...`
pub fn line(rollout: &Rollout) -> String {
    let s = rollout.status.clone().unwrap_or_default();
    let phase = s.phase.map_or("Unknown", Phase::as_str);
    let mut out = format!("{}  {phase}", rollout.name_any());
    if let Some(c) = &rollout.spec.strategy.canary {
        let i = s.current_step_index.unwrap_or(0);
        out.push_str(&format!("  step {i}/{}", c.steps.len()));
    }
    if let Some(w) = s.canary_weight {
        out.push_str(&format!("  weight {w}%"));
    }
    if let Some(m) = s.message.filter(|m| !m.is_empty()) {
        out.push_str(&format!("  {m}"));
    }
    out
}

/// Column headers of `list rollouts`; `wide` adds revisions and the message.
pub fn header(all_namespaces: bool, wide: bool) -> Vec<&'static str> {
    let mut h = Vec::new();
    if all_namespaces {
        h.push("NAMESPACE");
    }
    h.extend([
        "NAME", "STRATEGY", "PHASE", "STEP", "WEIGHT", "READY", "AGE",
    ]);
    if wide {
        h.extend(["STABLE", "CURRENT", "MESSAGE"]);
    }
    h
}

/// One row of `list rollouts`, matching [`header`].
pub fn row(rollout: &Rollout, all_namespaces: bool, wide: bool, now: Timestamp) -> Vec<String> {
    let s = rollout.status.clone().unwrap_or_default();
    let mut r = Vec::new();
    if all_namespaces {
        r.push(rollout.namespace().unwrap_or_default());
    }
    let (strategy, step) = match &rollout.spec.strategy.canary {
        Some(c) => (
            "Canary",
            format!("{}/{}", s.current_step_index.unwrap_or(0), c.steps.len()),
        ),
        None => ("BlueGreen", "-".to_string()),
    };
    r.push(rollout.name_any());
    r.push(strategy.into());
    r.push(s.phase.map_or("Unknown", Phase::as_str).into());
    r.push(step);
    r.push(s.canary_weight.map_or("-".into(), |w| format!("{w}%")));
    r.push(format!(
        "{}/{}",
        s.available_replicas.unwrap_or(0),
        rollout.spec.replicas.unwrap_or(1)
    ));
    r.push(age(rollout, now));
    if wide {
        r.push(s.stable_revision.unwrap_or_default());
        r.push(s.current_revision.unwrap_or_default());
        r.push(s.message.unwrap_or_default());
    }
    r
}

/// Age like kubectl prints it: 45s, 12m, 3h, 2d.
fn age(rollout: &Rollout, now: Timestamp) -> String {
    let Some(created) = rollout.metadata.creation_timestamp.as_ref() else {
        return "-".into();
    };
    let secs = now.duration_since(created.0).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Lays out rows in columns separated by three spaces, like `kubectl get`.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c + 1 == r.len() {
                    v.clone()
                } else {
                    format!("{v:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(status: serde_json::Value, generation: i64) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "generation": generation,
                         "creationTimestamp": "2026-11-23T10:00:00Z"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}},
                     "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn outcome_waits_for_the_controller_to_see_the_spec() {
        let healthy = serde_json::json!({"phase": "Healthy", "observedGeneration": 2});
        assert_eq!(
            outcome(&rollout(healthy.clone(), 2)),
            Some(Outcome::Healthy)
        );
        assert_eq!(
            outcome(&rollout(healthy, 3)),
            None,
            "an older generation is not an answer"
        );
        let degraded = serde_json::json!({"phase": "Degraded", "observedGeneration": 2});
        assert_eq!(outcome(&rollout(degraded, 2)), Some(Outcome::Failed));
        let paused = serde_json::json!({"phase": "Paused", "observedGeneration": 2});
        assert_eq!(outcome(&rollout(paused, 2)), None);
    }

    #[test]
    fn line_and_table_snapshot() {
        let r = rollout(
            serde_json::json!({"phase": "Paused", "observedGeneration": 1, "currentStepIndex": 1,
                               "canaryWeight": 50, "availableReplicas": 4, "stableRevision": "aaa",
                               "currentRevision": "bbb", "message": "paused at step 1"}),
            1,
        );
        assert_eq!(
            line(&r),
            "web  Paused  step 1/2  weight 50%  paused at step 1"
        );
        let now: Timestamp = "2026-11-23T10:05:00Z".parse().unwrap();
        let mut rows = vec![header(true, true).into_iter().map(String::from).collect()];
        rows.push(row(&r, true, true, now));
        assert_eq!(
            table(&rows),
            "NAMESPACE   NAME   STRATEGY   PHASE    STEP   WEIGHT   READY   AGE   STABLE   CURRENT   MESSAGE\n\
             shop        web    Canary     Paused   1/2    50%      4/4     5m    aaa      bbb       paused at step 1\n"
        );
    }
}
