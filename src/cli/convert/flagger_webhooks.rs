//! Flagger's webhooks, each to what fledge has for it: the confirm and rollback hooks to webhook
//! gates (`spec.gates`), the checks (pre-rollout, rollout, post-rollout) to analyses with the
//! `web` provider measuring the status code, and event hooks to a webhook notification channel.
//! None is dropped: what differs is said in a note.

use serde_json::{Value, json};

use super::{API_VERSION, Converted, duration};
use crate::rollout::webhook_gates::YES;

/// What the webhooks add to the Rollout and beside it.
#[derive(Default)]
pub struct Hooks {
    /// `spec.gates`.
    pub gates: Vec<Value>,
    /// `spec.notifications.subscriptions`.
    pub subscriptions: Vec<Value>,
    /// AnalysisTemplates and NotificationChannels.
    pub objects: Vec<Converted>,
}

/// A DNS label from a hook's name ("promotion gate" -> "promotion-gate"), at most 40 characters.
fn label(name: &str, i: usize) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(40);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        format!("hook-{i}")
    } else {
        out
    }
}

/// Converts `spec.analysis.webhooks` of Canary `name`; `strategy` gains the analyses. A
/// blue-green's rollout hooks are asked `iterations` times: the number Flagger runs, which the
/// caller works out (the kubernetes provider runs 10 when the Canary sets none).
pub fn convert(
    doc_meta: &Value,
    name: &str,
    analysis: &Value,
    interval: &str,
    iterations: Option<i64>,
    strategy: &mut Value,
    c: &mut Converted,
) -> Hooks {
    let mut out = Hooks::default();
    let namespace = doc_meta["namespace"].as_str();
    let threshold = analysis["threshold"].as_i64().unwrap_or(1).max(1);
    let iterations = iterations.unwrap_or(1).max(1);
    let blue_green = strategy.get("blueGreen").is_some();
    let mut used: Vec<String> = Vec::new();
    for (i, hook) in analysis["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.analysis.webhooks[{i}]");
        let kind = hook["type"].as_str().unwrap_or("rollout");
        let hook_name = hook["name"].as_str().unwrap_or_default();
        let mut short = label(hook_name, i);
        if used.contains(&short) {
            short = format!("{short}-{i}");
        }
        used.push(short.clone());
        // Fields fledge has no room for: each said, none silently dropped.
        for (field, why) in [
            (
                "retries",
                "not converted: fledge asks the hook once per check; a failed ask counts against failureLimit, as Flagger counts a check whose retries all failed",
            ),
            (
                "disableTLS",
                "not converted: fledge verifies the hook's certificate; give the hook a certificate the cluster trusts, or an http:// address",
            ),
            (
                "muteAlert",
                "not converted: fledge sends no alert per webhook failure (its notifications follow the rollout's events), so there is nothing to mute",
            ),
        ] {
            if hook
                .get(field)
                .is_some_and(|v| v != &json!(false) && v != &json!(0))
            {
                c.note(&format!("{path}.{field}"), why);
            }
        }
        let Some(url) = hook["url"].as_str() else {
            c.note(
                &path,
                format!("{kind} webhook {hook_name:?} has no url: nothing to call"),
            );
            continue;
        };
        let timeout = hook
            .get("timeout")
            .and_then(duration)
            .and_then(|(d, _)| crate::api::duration::parse(&d).ok())
            .map(|d| d.as_secs().clamp(1, 60));
        let metadata: serde_json::Map<String, Value> = hook["metadata"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let text = v
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string());
                (k.clone(), json!(text))
            })
            .collect();
        let gate_type = match kind {
            "confirm-rollout" => Some("confirmRollout"),
            "confirm-traffic-increase" => Some("confirmTrafficIncrease"),
            "confirm-promotion" => Some("confirmPromotion"),
            "rollback" => Some("rollback"),
            _ => None,
        };
        if let Some(t) = gate_type {
            if t == "confirmTrafficIncrease" && blue_green {
                c.note(
                    &path,
                    format!("confirm-traffic-increase webhook {hook_name:?}: a blue-green rollout never raises traffic step by step, so it has no such gate; use confirmPromotion to hold the switch"),
                );
                continue;
            }
            let mut gate = json!({"name": short, "type": t, "url": url, "interval": interval});
            if let Some(s) = timeout {
                gate["timeoutSeconds"] = json!(s);
            }
            if !metadata.is_empty() {
                gate["metadata"] = Value::Object(metadata.clone());
            }
            out.gates.push(gate);
            continue;
        }
        if kind == "event" {
            let channel = format!("{name}-{short}");
            out.subscriptions.push(json!({"channel": channel}));
            let mut meta = json!({"name": channel});
            if let Some(ns) = namespace {
                meta["namespace"] = json!(ns);
            }
            out.objects.push(Converted {
                source: format!("{} ({path})", c.source),
                object: Some(json!({
                    "apiVersion": API_VERSION,
                    "kind": "NotificationChannel",
                    "metadata": meta,
                    "spec": {"type": "webhook", "secretRef": {"name": channel}},
                })),
                notes: vec![format!(
                    "{path}: event webhook {hook_name:?}: fledge reads a channel's address from a Secret: create Secret {channel:?} with key address: {url}. It receives fledge's notification JSON (event, message, revision), not Flagger's event payload"
                )],
            });
            continue;
        }
        // A check: an analysis whose metric asks the hook and reads its status code.
        let (phase, step) = match kind {
            "pre-rollout" => ("Progressing", "pre"),
            "post-rollout" => ("Succeeded", "post"),
            "rollout" => ("Progressing", "rollout"),
            other => {
                c.note(
                    &path,
                    format!("webhook {hook_name:?} of unknown type {other:?}: not converted"),
                );
                continue;
            }
        };
        let body = json!({"name": name, "namespace": namespace.unwrap_or("default"),
                          "phase": phase, "metadata": metadata});
        let mut web = json!({"url": url, "method": "POST", "body": body.to_string(),
                             "measureStatusCode": true});
        if let Some(s) = timeout {
            web["timeoutSeconds"] = json!(s);
        }
        let mut metric = json!({"name": short, "provider": {"web": web}, "successCondition": YES});
        match step {
            // Asked until it passes; `threshold` failures roll back, as in Flagger.
            "pre" => {
                metric["interval"] = json!(interval);
                metric["consecutiveSuccessLimit"] = json!(1);
                metric["failureLimit"] = json!(threshold - 1);
                metric["consecutiveErrorLimit"] = json!(threshold);
            }
            "rollout" => {
                metric["interval"] = json!(interval);
                metric["failureLimit"] = json!(threshold - 1);
                metric["consecutiveErrorLimit"] = json!(threshold);
                if blue_green {
                    metric["count"] = json!(iterations);
                }
            }
            _ => {}
        }
        let template = format!("{name}-{short}");
        let reference = json!({"templateName": template});
        let add = |strategy: &mut Value, field: &[&str]| {
            let mut at = strategy;
            for f in field {
                at = &mut at[*f];
                if at.is_null() {
                    *at = json!({});
                }
            }
            match at.get_mut("templates").and_then(Value::as_array_mut) {
                Some(list) => list.push(reference.clone()),
                None => at["templates"] = json!([reference.clone()]),
            }
        };
        let step_analysis = json!({"analysis": {"templates": [reference.clone()]}});
        let note = match (step, blue_green) {
            ("pre", false) => {
                // Flagger calls it once the canary runs, before any traffic: one pod, then the
                // canary sized by its weight again.
                let scale = |s: Value| json!({"setCanaryScale": s});
                insert_step(strategy, 0, scale(json!({"matchTrafficWeight": true})));
                insert_step(strategy, 0, step_analysis);
                insert_step(strategy, 0, scale(json!({"replicas": 1})));
                "pre-rollout webhook: an analysis step on one canary pod before the first traffic; it fails the rollout once it failed `threshold` times"
            }
            ("rollout", false) => {
                add(strategy, &["canary", "analysis"]);
                "rollout webhook: a metric of the background analysis, asked each interval; `threshold` failures abort"
            }
            ("post", false) => {
                let at = strategy["canary"]["steps"].as_array().map_or(0, Vec::len);
                insert_step(strategy, at, step_analysis);
                "post-rollout webhook: Flagger calls it after promotion and only logs a failure; here it is a last analysis step before promotion, and a failure aborts"
            }
            ("pre", true) | ("rollout", true) => {
                add(strategy, &["blueGreen", "prePromotionAnalysis"]);
                "webhook: part of the pre-promotion analysis; a failure aborts before the switch"
            }
            _ => {
                add(strategy, &["blueGreen", "postPromotionAnalysis"]);
                "post-rollout webhook: a post-promotion analysis; a failure switches back and aborts (Flagger only logs it)"
            }
        };
        c.note(&path, format!("{note} (AnalysisTemplate {template:?})"));
        let mut meta = json!({"name": template});
        if let Some(ns) = namespace {
            meta["namespace"] = json!(ns);
        }
        out.objects.push(Converted {
            source: format!("{} ({path})", c.source),
            object: Some(json!({
                "apiVersion": API_VERSION,
                "kind": "AnalysisTemplate",
                "metadata": meta,
                "spec": {"metrics": [metric]},
            })),
            notes: Vec::new(),
        });
    }
    out
}

fn insert_step(strategy: &mut Value, at: usize, step: Value) {
    let canary = &mut strategy["canary"];
    match canary.get_mut("steps").and_then(Value::as_array_mut) {
        Some(steps) => steps.insert(at.min(steps.len()), step),
        None => canary["steps"] = json!([step]),
    }
}
