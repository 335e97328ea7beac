//! `kubectl fledge get rollout NAME`: the Rollout as a tree of its revisions, AnalysisRuns and
//! conditions. A pure function of plain data, so what people see is covered by snapshot tests;
//! the binary fetches the data and redraws it with `-w`.

use std::fmt::Write;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::Value;

use crate::api::{CanaryStep, HASH_LABEL, Phase, REVISION_ANNOTATION, Rollout};

/// Everything `get rollout` shows.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub rollout: Rollout,
    /// The Rollout's ReplicaSets.
    pub replica_sets: Vec<ReplicaSet>,
    /// Its AnalysisRuns, when the AnalysisRun CRD is installed.
    pub runs: Vec<RunView>,
}

/// What is shown of an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunView {
    pub name: String,
    pub phase: String,
    pub message: Option<String>,
    pub created: Option<Timestamp>,
    pub metrics: Vec<MetricView>,
}

/// One metric's result in an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricView {
    pub name: String,
    pub phase: String,
    pub measurements: usize,
    /// The last measurement: (value, phase).
    pub last: Option<(String, String)>,
}

impl RunView {
    /// Reads an AnalysisRun (`fledge.dev/v1alpha1`) as JSON: `status.phase`, `status.message`
    /// and `status.metricResults[] {name, phase, measurements[] {value, phase}}`.
    pub fn from_json(run: &Value) -> RunView {
        let status = &run["status"];
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let metrics = status["metricResults"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let measurements = m["measurements"].as_array().map_or(&[][..], |v| v);
                MetricView {
                    name: text(&m["name"]),
                    phase: text(&m["phase"]),
                    measurements: measurements.len(),
                    last: measurements
                        .last()
                        .map(|x| (text(&x["value"]), text(&x["phase"]))),
                }
            })
            .collect();
        RunView {
            name: text(&run["metadata"]["name"]),
            phase: match text(&status["phase"]) {
                p if p.is_empty() => "Pending".into(),
                p => p,
            },
            message: status["message"].as_str().map(String::from),
            created: run["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok()),
            metrics,
        }
    }
}

/// ANSI colours, only on a terminal.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Green for good, yellow for waiting, red for bad, blue for moving, grey for stopped.
    fn state(self, state: &str) -> String {
        let code = match state {
            "Healthy" | "Successful" | "True" | "stable" => "32",
            "Paused" | "Inconclusive" | "Pending" => "33",
            "Degraded" | "Failed" | "Error" | "False" => "31",
            "Progressing" | "Running" | "canary" => "34",
            "Terminated" => "90",
            _ => return state.to_string(),
        };
        self.paint(code, state)
    }

    fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// The revisions, newest first: (number, hash, role, images, ReplicaSet name, pods).
fn revisions(s: &Snapshot) -> Vec<[String; 6]> {
    let status = s.rollout.status.clone().unwrap_or_default();
    let mut sets: Vec<&ReplicaSet> = s.replica_sets.iter().collect();
    let number = |rs: &ReplicaSet| -> Option<i64> {
        rs.annotations().get(REVISION_ANNOTATION)?.parse().ok()
    };
    sets.sort_by(|a, b| {
        number(b)
            .cmp(&number(a))
            .then(
                b.metadata
                    .creation_timestamp
                    .cmp(&a.metadata.creation_timestamp),
            )
            .then(a.name_any().cmp(&b.name_any()))
    });
    sets.iter()
        .map(|rs| {
            let hash = rs.labels().get(HASH_LABEL).cloned().unwrap_or_default();
            let role = if Some(&hash) == status.stable_revision.as_ref() {
                "stable"
            } else if Some(&hash) == status.current_revision.as_ref() {
                "canary"
            } else {
                "old"
            };
            let images: Vec<String> = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default();
            let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let st = rs.status.clone().unwrap_or_default();
            let ready = st.ready_replicas.unwrap_or(0);
            let mut pods = format!("{ready}/{} ready", st.replicas);
            if desired != st.replicas {
                pods.push_str(&format!(", scaling to {desired}"));
            }
            [
                number(rs).map_or("#?".into(), |n| format!("#{n}")),
                hash,
                role.to_string(),
                if images.is_empty() {
                    "-".into()
                } else {
                    images.join(",")
                },
                rs.name_any(),
                pods,
            ]
        })
        .collect()
}

/// What a canary step does, in the words of the manifest.
pub fn describe_step(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        format!("setWeight {w}")
    } else if let Some(p) = &step.pause {
        match &p.duration {
            Some(d) => format!("pause {d}"),
            None => "pause (until promoted)".into(),
        }
    } else if let Some(sc) = &step.set_canary_scale {
        match (sc.weight, sc.replicas) {
            (Some(w), _) => format!("setCanaryScale weight {w}"),
            (_, Some(n)) => format!("setCanaryScale replicas {n}"),
            _ => "setCanaryScale matchTrafficWeight".into(),
        }
    } else {
        "step".into()
    }
}

/// "12s", "5m", "3h", "2d".
pub fn age(since: Option<Timestamp>, now: Timestamp) -> String {
    let Some(since) = since else {
        return "-".into();
    };
    let secs = now.duration_since(since).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Lays out `rows` under a tree: `├─ ` before each but the last, `└─ ` before the last.
fn branches(
    out: &mut String,
    rows: &[Vec<String>],
    colour: impl Fn(&[String], usize, &str) -> String,
) {
    let widths: Vec<usize> = (0..rows.iter().map(Vec::len).max().unwrap_or(0))
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let prefix = if i + 1 == rows.len() {
            "└─ "
        } else {
            "├─ "
        };
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                let pad = widths[c].saturating_sub(v.chars().count());
                let shown = colour(row, c, v);
                if c + 1 == row.len() {
                    shown
                } else {
                    format!("{shown}{}", " ".repeat(pad))
                }
            })
            .collect();
        let _ = writeln!(out, "  {prefix}{}", cells.join("  ").trim_end());
    }
}

/// The whole view. `colour` adds ANSI colours (for a terminal).
pub fn render(s: &Snapshot, now: Timestamp, colour: bool) -> String {
    let p = Paint(colour);
    let r = &s.rollout;
    let status = r.status.clone().unwrap_or_default();
    let mut out = String::new();
    let phase = status.phase.map_or("Unknown", Phase::as_str);
    let _ = writeln!(
        out,
        "{} {}  (namespace {})",
        p.bold("Rollout"),
        p.bold(&r.name_any()),
        r.namespace().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  Phase:      {}{}",
        p.state(phase),
        status
            .message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    );
    if let Some(c) = &r.spec.strategy.canary {
        let n = c.steps.len();
        let i = status.current_step_index.unwrap_or(0).max(0) as usize;
        let step = match c.steps.get(i) {
            Some(step) => format!(" ({})", describe_step(step)),
            None if n > 0 => " (all steps done)".into(),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  Strategy:   Canary, step {i}/{n}{step}, canary weight {}",
            status.canary_weight.map_or("-".into(), |w| format!("{w}%"))
        );
    } else if let Some(b) = &r.spec.strategy.blue_green {
        let _ = writeln!(
            out,
            "  Strategy:   BlueGreen, active Service {}{}",
            b.active_service,
            b.preview_service
                .as_ref()
                .map(|s| format!(", preview Service {s}"))
                .unwrap_or_default()
        );
    }
    for pause in &status.pause_conditions {
        let _ = writeln!(
            out,
            "  Paused:     {:?} for {}",
            pause.reason,
            age(Some(pause.start_time.0), now)
        );
    }
    if r.spec.paused == Some(true) {
        let _ = writeln!(out, "  Paused:     spec.paused is true");
    }
    if status.abort {
        let _ = writeln!(
            out,
            "  Aborted:    {} ago; `kubectl fledge retry {}` starts the steps again",
            age(status.aborted_at.as_ref().map(|t| t.0), now),
            r.name_any()
        );
    }
    let _ = writeln!(
        out,
        "  Replicas:   desired {}, current {}, updated {}, ready {}, available {}",
        r.spec.replicas.unwrap_or(1),
        status.replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        status.ready_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0)
    );
    if let Some(at) = &r.spec.restart_at {
        let done = status.restarted_at.as_ref().is_some_and(|t| t.0 >= at.0);
        let _ = writeln!(
            out,
            "  Restart:    pods older than {} {}",
            at.0,
            if done { "replaced" } else { "being replaced" }
        );
    }

    let _ = writeln!(out, "{}", p.bold("Revisions"));
    let revs: Vec<Vec<String>> = revisions(s).into_iter().map(Vec::from).collect();
    if revs.is_empty() {
        let _ = writeln!(out, "  (no ReplicaSets yet)");
    } else {
        branches(
            &mut out,
            &revs,
            |_, c, v| if c == 2 { p.state(v) } else { v.into() },
        );
    }

    if !s.runs.is_empty() {
        let _ = writeln!(out, "{}", p.bold("AnalysisRuns"));
        let mut runs: Vec<&RunView> = s.runs.iter().collect();
        runs.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        for (i, run) in runs.iter().enumerate() {
            let last = i + 1 == runs.len();
            let _ = writeln!(
                out,
                "  {}{}  {}  {}{}",
                if last { "└─ " } else { "├─ " },
                run.name,
                p.state(&run.phase),
                age(run.created, now),
                run.message
                    .as_ref()
                    .map(|m| format!("  {m}"))
                    .unwrap_or_default()
            );
            let indent = if last { "     " } else { "  │  " };
            for m in &run.metrics {
                let measured = match &m.last {
                    Some((value, phase)) => format!(
                        "{} measurement{}, last {value} ({})",
                        m.measurements,
                        if m.measurements == 1 { "" } else { "s" },
                        p.state(phase)
                    ),
                    None => "no measurement yet".into(),
                };
                let _ = writeln!(
                    out,
                    "  {indent}{}  {}  {measured}",
                    m.name,
                    p.state(&m.phase)
                );
            }
        }
    }

    if !status.conditions.is_empty() {
        let _ = writeln!(out, "{}", p.bold("Conditions"));
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    age(Some(c.last_transition_time.0), now),
                ]
            })
            .collect();
        branches(
            &mut out,
            &rows,
            // Whether a condition is good news depends on its type.
            |row, c, v| match (row[0].as_str(), v, c) {
                ("Ready" | "Available", "True", 1) => p.paint("32", v),
                ("Ready" | "Available", "False", 1) => p.paint("33", v),
                ("Stalled" | "InvalidSpec", "True", 1) => p.paint("31", v),
                ("Paused", "True", 1) => p.paint("33", v),
                _ => v.into(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> Snapshot {
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "generation": 2},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}},
                     "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 75}]}}},
            "status": {"phase": "Paused", "message": "paused at step 1; waiting for the pause to end or a promote",
                       "currentStepIndex": 1, "canaryWeight": 50, "stableRevision": "aaaa", "currentRevision": "bbbb",
                       "replicas": 5, "updatedReplicas": 2, "readyReplicas": 5, "availableReplicas": 5,
                       "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-23T10:04:00Z"}],
                       "conditions": [
                         {"type": "Available", "status": "True", "reason": "AvailableReplicas", "message": "",
                          "lastTransitionTime": "2026-11-23T09:00:00Z"},
                         {"type": "Paused", "status": "True", "reason": "RolloutPaused", "message": "",
                          "lastTransitionTime": "2026-11-23T10:04:00Z"}]}
        }))
        .unwrap();
        let rs =
            |hash: &str, revision: &str, image: &str, replicas: i32, ready: i32| -> ReplicaSet {
                serde_json::from_value(json!({
                "metadata": {"name": format!("web-{hash}"), "labels": {HASH_LABEL: hash},
                             "annotations": {REVISION_ANNOTATION: revision},
                             "creationTimestamp": "2026-11-23T09:00:00Z"},
                "spec": {"replicas": replicas, "selector": {},
                         "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
                "status": {"replicas": ready.max(replicas), "readyReplicas": ready}
            }))
            .unwrap()
            };
        let run = RunView::from_json(&json!({
            "metadata": {"name": "web-bbbb-1", "creationTimestamp": "2026-11-23T10:03:00Z"},
            "status": {"phase": "Running", "metricResults": [
                {"name": "success-rate", "phase": "Running",
                 "measurements": [{"value": "0.97", "phase": "Successful"}, {"value": "0.99", "phase": "Successful"}]},
                {"name": "latency", "phase": "Pending"}]}
        }));
        Snapshot {
            rollout,
            replica_sets: vec![
                rs("aaaa", "1", "web:1", 3, 3),
                rs("bbbb", "2", "web:2", 2, 2),
            ],
            runs: vec![run],
        }
    }

    #[test]
    fn renders_a_paused_canary() {
        let now: Timestamp = "2026-11-23T10:05:00Z".parse().unwrap();
        assert_eq!(
            render(&snapshot(), now, false),
            "\
Rollout web  (namespace shop)
  Phase:      Paused: paused at step 1; waiting for the pause to end or a promote
  Strategy:   Canary, step 1/3 (pause (until promoted)), canary weight 50%
  Paused:     CanaryPauseStep for 60s
  Replicas:   desired 4, current 5, updated 2, ready 5, available 5
Revisions
  ├─ #2  bbbb  canary  web:2  web-bbbb  2/2 ready
  └─ #1  aaaa  stable  web:1  web-aaaa  3/3 ready
AnalysisRuns
  └─ web-bbbb-1  Running  2m
       success-rate  Running  2 measurements, last 0.99 (Successful)
       latency  Pending  no measurement yet
Conditions
  ├─ Available  True  AvailableReplicas  65m
  └─ Paused     True  RolloutPaused      60s
"
        );
    }

    #[test]
    fn colours_only_when_asked_and_handles_an_empty_rollout() {
        let now: Timestamp = "2026-11-23T10:05:00Z".parse().unwrap();
        let coloured = render(&snapshot(), now, true);
        assert!(coloured.contains("\x1b[33mPaused\x1b[0m"), "{coloured}");
        assert!(!render(&snapshot(), now, false).contains('\x1b'));
        let mut bare = Snapshot {
            rollout: snapshot().rollout,
            replica_sets: Vec::new(),
            runs: Vec::new(),
        };
        bare.rollout.status = None;
        let text = render(&bare, now, false);
        assert!(
            text.contains("Phase:      Unknown") && text.contains("(no ReplicaSets yet)"),
            "{text}"
        );
    }

    #[test]
    fn an_analysis_run_without_status_is_pending() {
        let run = RunView::from_json(&json!({"metadata": {"name": "r"}}));
        assert_eq!(run.phase, "Pending");
        assert!(run.metrics.is_empty());
    }
}
