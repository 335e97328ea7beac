//! `kubectl fledge plan FILE|-`: a Rollout as a timeline, offline. Each step with the traffic
//! share after it, the pauses and analyses, the shortest time to full promotion and what a person
//! must do. Steps are read from the manifest as written, so analysis and routing steps show up
//! whatever this build's types know; pod counts come from the controller's own arithmetic
//! ([`crate::rollout::canary::targets`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde_json::Value;

use super::manifest::Document;
use crate::api::Rollout;
use crate::api::gates::GateType;

/// The timeline of every Rollout in `documents`; AnalysisTemplates in the same stream give the
/// analyses their durations.
pub fn render(documents: &[Document]) -> Result<String, String> {
    let templates: BTreeMap<&str, &Value> = documents
        .iter()
        .filter(|d| matches!(d.kind(), "AnalysisTemplate" | "ClusterAnalysisTemplate"))
        .map(|d| (d.name(), &d.value))
        .collect();
    let mut out = String::new();
    let rollouts: Vec<&Document> = documents.iter().filter(|d| d.kind() == "Rollout").collect();
    if rollouts.is_empty() {
        return Err("no Rollout in the input".into());
    }
    for (i, doc) in rollouts.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&rollout(&doc.value, &templates)?);
    }
    Ok(out)
}

/// "1h30m", "45s", "0s".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// How long an analysis of `refs` takes: Some(known time), or None when it never ends on its own
/// (a metric without `count`); the strings say what is unknown.
fn analysis_time(
    refs: &Value,
    templates: &BTreeMap<&str, &Value>,
    notes: &mut Vec<String>,
) -> Option<Duration> {
    let mut longest = Duration::ZERO;
    let mut endless = false;
    for t in refs["templates"].as_array().into_iter().flatten() {
        let name = t["templateName"].as_str().unwrap_or_default();
        let Some(template) = templates.get(name) else {
            notes.push(format!(
                "the duration of analysis {name:?} is not known: its template is not in this input"
            ));
            continue;
        };
        for m in template["spec"]["metrics"].as_array().into_iter().flatten() {
            let parse = |f: &str| {
                m[f].as_str()
                    .and_then(|s| crate::api::duration::parse(s).ok())
                    .unwrap_or_default()
            };
            let Some(count) = m["count"].as_u64() else {
                endless = true;
                continue;
            };
            let t = parse("initialDelay") + parse("interval") * count.saturating_sub(1) as u32;
            longest = longest.max(t);
        }
    }
    (!endless).then_some(longest)
}

fn names(refs: &Value) -> String {
    let names: Vec<&str> = refs["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["templateName"].as_str())
        .collect();
    names.join(", ")
}

fn rollout(value: &Value, templates: &BTreeMap<&str, &Value>) -> Result<String, String> {
    let typed: Rollout = serde_json::from_value(value.clone())
        .map_err(|e| format!("not a valid Rollout (run `kubectl fledge lint`): {e}"))?;
    let name = value["metadata"]["name"].as_str().unwrap_or("ROLLOUT");
    let replicas = typed.spec.replicas.unwrap_or(1).max(0);
    let mut out = String::new();
    let mut total = Duration::ZERO;
    let mut humans: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let promote = format!("`kubectl fledge promote {name}`");

    if let (Some(c), Some(raw)) = (
        &typed.spec.strategy.canary,
        value["spec"]["strategy"].get("canary"),
    ) {
        let router = raw.get("trafficRouting").is_some();
        let _ = writeln!(
            out,
            "Rollout {name:?}: canary, {replicas} replicas, {}",
            if router {
                "traffic split by the traffic router"
            } else {
                "no traffic router: traffic follows the share of available pods"
            }
        );
        let background = raw.get("analysis");
        let mut rows = vec![vec![
            "STEP".to_string(),
            "ACTION".into(),
            "CANARY PODS".into(),
            "STABLE PODS".into(),
            "CANARY TRAFFIC".into(),
            "WAITS FOR".into(),
        ]];
        let steps = raw["steps"].as_array().cloned().unwrap_or_default();
        let mut weight = 0;
        // Pods and traffic before the step, where a gate holds the rollout.
        let mut before = vec!["0".to_string(), replicas.to_string(), "0%".to_string()];
        let gate_row = |rows: &mut Vec<Vec<String>>, before: &[String], type_: GateType| {
            for (action, waits) in gates(&typed.spec, type_, &promote) {
                let mut row = vec!["-".to_string(), action];
                row.extend(before.iter().cloned());
                row.push(waits);
                rows.push(row);
            }
        };
        gate_row(&mut rows, &before, GateType::ConfirmRollout);
        for (i, step) in steps.iter().enumerate() {
            let (canary_pods, stable_pods) = crate::rollout::canary::targets(c, i as i32, replicas);
            if let Some(w) = step["setWeight"].as_i64() {
                if w as i32 > weight {
                    gate_row(&mut rows, &before, GateType::ConfirmTrafficIncrease);
                }
                weight = w as i32;
            }
            let traffic = if router {
                weight
            } else {
                share(canary_pods, stable_pods)
            };
            if !router && step.get("setWeight").is_some() && traffic != weight {
                notes.push(format!(
                    "step {i} asks for {weight}% but, without a traffic router, the canary gets {traffic}%: {canary_pods} of {} pods",
                    canary_pods + stable_pods
                ));
            }
            let (action, waits) = if let Some(w) = step.get("setWeight") {
                (
                    format!("setWeight {w}"),
                    "the canary's pods to be available".to_string(),
                )
            } else if let Some(p) = step.get("pause") {
                match p["duration"].as_str() {
                    Some(d) => {
                        let t = crate::api::duration::parse(d).unwrap_or_default();
                        total += t;
                        (format!("pause {d}"), human(t))
                    }
                    None => {
                        humans.push(format!("promote at step {i} ({promote})"));
                        ("pause".into(), format!("a person: {promote}"))
                    }
                }
            } else if let Some(a) = step.get("analysis") {
                let what = format!("analysis {}", names(a));
                match analysis_time(a, templates, &mut notes) {
                    Some(t) => {
                        total += t;
                        (what, format!("its result, {} at best", human(t)))
                    }
                    None => {
                        humans.push(format!(
                            "end the analysis at step {i}: a metric without count never completes ({promote})"
                        ));
                        (
                            what,
                            format!("a person: a metric without count runs until {promote}"),
                        )
                    }
                }
            } else if let Some(s) = step.get("setCanaryScale") {
                let how = match (s.get("weight"), s.get("replicas")) {
                    (Some(w), _) => format!("weight {w}"),
                    (_, Some(n)) => format!("replicas {n}"),
                    _ => "matchTrafficWeight".into(),
                };
                (
                    format!("setCanaryScale {how}"),
                    "the canary's pods to be available".into(),
                )
            } else if let Some(h) = step.get("setHeaderRoute") {
                (
                    format!("setHeaderRoute {}", h["name"].as_str().unwrap_or_default()),
                    "-".into(),
                )
            } else if let Some(m) = step.get("setMirrorRoute") {
                (
                    format!(
                        "setMirrorRoute {} ({}% mirrored)",
                        m["name"].as_str().unwrap_or_default(),
                        m["percentage"].as_i64().unwrap_or(0)
                    ),
                    "-".into(),
                )
            } else {
                ("(unknown step)".into(), "-".into())
            };
            before = vec![
                canary_pods.to_string(),
                stable_pods.to_string(),
                format!("{traffic}%"),
            ];
            rows.push(vec![
                i.to_string(),
                action,
                canary_pods.to_string(),
                stable_pods.to_string(),
                format!("{traffic}%"),
                waits,
            ]);
        }
        gate_row(&mut rows, &before, GateType::ConfirmPromotion);
        rows.push(vec![
            "-".into(),
            "promote".into(),
            replicas.to_string(),
            "0".into(),
            "100%".into(),
            format!(
                "old pods go {}s later (scaleDownDelaySeconds)",
                c.scale_down_delay_seconds
                    .unwrap_or(crate::api::defaults::SCALE_DOWN_DELAY_SECONDS)
            ),
        ]);
        out.push_str(&super::status::table(&rows));
        if let Some(b) = background {
            let from = b["startingStep"].as_i64().unwrap_or(0);
            let _ = writeln!(
                out,
                "Background analysis {} runs from step {from} until promotion; a failure aborts.",
                names(b)
            );
        }
    } else if let Some(b) = &typed.spec.strategy.blue_green {
        let raw = &value["spec"]["strategy"]["blueGreen"];
        let _ = writeln!(
            out,
            "Rollout {name:?}: blue-green, {replicas} replicas, active Service {}{}",
            b.active_service,
            b.preview_service
                .as_ref()
                .map(|p| format!(", preview Service {p}"))
                .unwrap_or_default()
        );
        let preview = b
            .preview_replica_count
            .unwrap_or(replicas)
            .clamp(0, replicas);
        let mut rows = vec![vec![
            "STEP".to_string(),
            "ACTION".into(),
            "NEW PODS".into(),
            "TRAFFIC TO NEW".into(),
            "WAITS FOR".into(),
        ]];
        for (action, waits) in gates(&typed.spec, GateType::ConfirmRollout, &promote) {
            rows.push(vec!["-".into(), action, "0".into(), "0%".into(), waits]);
        }
        let mut n = 0;
        let mut row = |action: String, pods: i32, traffic: &str, waits: String| {
            rows.push(vec![
                n.to_string(),
                action,
                pods.to_string(),
                traffic.into(),
                waits,
            ]);
            n += 1;
        };
        row(
            "deploy the new revision behind the preview Service".into(),
            preview,
            "0%",
            "its pods to be available".into(),
        );
        if let Some(a) = raw.get("prePromotionAnalysis") {
            let waits = match analysis_time(a, templates, &mut notes) {
                Some(t) => {
                    total += t;
                    format!("its result, {} at best", human(t))
                }
                None => {
                    humans.push(format!("end the pre-promotion analysis ({promote})"));
                    format!("a person: a metric without count runs until {promote}")
                }
            };
            row(
                format!("prePromotionAnalysis {}", names(a)),
                preview,
                "0%",
                waits,
            );
        }
        let waits = if b.auto_promotion_enabled == Some(false) {
            humans.push(format!("promote ({promote})"));
            format!("a person: {promote}")
        } else {
            let t = Duration::from_secs(b.auto_promotion_seconds.unwrap_or(0).max(0) as u64);
            total += t;
            format!("autoPromotionSeconds: {}", human(t))
        };
        row("promote".into(), preview, "0%", waits);
        for (action, waits) in gates(&typed.spec, GateType::ConfirmPromotion, &promote) {
            row(action, preview, "0%", waits);
        }
        row(
            "switch the active Service".into(),
            replicas,
            "100%",
            "the new revision at full size".into(),
        );
        if let Some(a) = raw.get("postPromotionAnalysis") {
            let waits = match analysis_time(a, templates, &mut notes) {
                Some(t) => {
                    total += t;
                    format!("its result, {} at best", human(t))
                }
                None => format!("a metric without count runs until {promote}"),
            };
            row(
                format!("postPromotionAnalysis {}", names(a)),
                replicas,
                "100%",
                waits,
            );
        }
        let delay = b
            .scale_down_delay_seconds
            .unwrap_or(crate::api::defaults::SCALE_DOWN_DELAY_SECONDS);
        row(
            format!("scale down the old revision after {delay}s"),
            replicas,
            "100%",
            "-".into(),
        );
        out.push_str(&super::status::table(&rows));
    } else {
        return Err(format!("Rollout {name:?} has no strategy"));
    }

    for (action, _) in gates(&typed.spec, GateType::Rollback, &promote) {
        let _ = writeln!(
            out,
            "{action} is asked until promotion; a yes aborts the rollout."
        );
    }
    if typed.spec.paused == Some(true) {
        humans.insert(
            0,
            "unpause: spec.paused is true (set it to false)".to_string(),
        );
    }
    let _ = writeln!(
        out,
        "Shortest time to full promotion: {} plus the time pods take to become available.",
        human(total)
    );
    // A confirm gate waits for an outside system, not for a person, but the rollout does not
    // promote on its own either: say who it waits for.
    let confirms: Vec<String> = typed
        .spec
        .gates
        .iter()
        .filter(|g| g.type_ != GateType::Rollback)
        .map(|g| g.name.clone())
        .collect();
    if humans.is_empty() && confirms.is_empty() {
        let _ = writeln!(
            out,
            "No person needs to act: the rollout promotes on its own unless an analysis fails."
        );
    } else if humans.is_empty() {
        let _ = writeln!(
            out,
            "No person needs to act, but the rollout promotes only once its gates ({}) answer yes, \
             or a person runs {promote}.",
            confirms.join(", ")
        );
    } else {
        let _ = writeln!(out, "A person must:");
        for h in humans {
            let _ = writeln!(out, "  - {h}");
        }
    }
    for n in notes {
        let _ = writeln!(out, "Note: {n}.");
    }
    Ok(out)
}

/// The rows of the webhook gates of `type_`: what holds the rollout, and what ends the wait.
fn gates(spec: &crate::api::RolloutSpec, type_: GateType, promote: &str) -> Vec<(String, String)> {
    spec.gates
        .iter()
        .filter(|g| g.type_ == type_)
        .map(|g| {
            let host = crate::rollout::webhook_gates::host(&g.url);
            (
                format!("gate {} ({}) at {host}", g.name, type_.as_str()),
                format!("a yes (2xx) from {host}, or {promote}"),
            )
        })
        .collect()
}

/// The canary's share of pods, in percent, as the controller computes its weight.
fn share(canary: i32, stable: i32) -> i32 {
    if canary + stable == 0 {
        return 0;
    }
    (f64::from(canary) * 100.0 / f64::from(canary + stable)).round() as i32
}
