//! Flagger -> fledge. A Canary becomes a Rollout over the same Deployment (`workloadRef`), its
//! Services, and an AnalysisTemplate for its metrics; a MetricTemplate becomes an
//! AnalysisTemplate whose query variables are arguments.

use serde_json::{Value, json};

use super::{API_VERSION, Converted, duration, metadata, note_unknown, rollout_supports};
use crate::cli::manifest::Document;

/// `{{ target }}` -> `{{args.target}}`, `{{ variables.x }}` -> `{{args.x}}`; returns the
/// argument names used.
pub fn query_to_args(query: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut used = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let var = after[..end].trim();
        let arg = var.strip_prefix("variables.").unwrap_or(var).to_string();
        if !used.contains(&arg) {
            used.push(arg.clone());
        }
        out.push_str(&format!("{{{{args.{arg}}}}}"));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    (out, used)
}

/// The provider of a MetricTemplate, with its `query` (variables already arguments), or why
/// there is none.
fn provider(template: &Value, query: &str, c: &mut Converted) -> Result<Value, String> {
    let p = &template["spec"]["provider"];
    match p["type"].as_str() {
        Some("prometheus") => {
            let mut prom = json!({});
            if let Some(a) = p["address"].as_str() {
                prom["address"] = json!(a);
            }
            if p["insecureSkipVerify"] == true {
                prom["insecure"] = json!(true);
            }
            prom["query"] = json!(query);
            if p.get("secretRef").is_some() {
                c.note(
                    "spec.provider.secretRef",
                    "credentials are not converted: set prometheus.headers or authentication",
                );
            }
            Ok(json!({"prometheus": prom}))
        }
        Some(other) => super::providers::flagger(p, query, c).ok_or_else(|| {
            format!(
                "provider type {other:?} is not supported (fledge measures with {})",
                crate::cli::lint_analysis::PROVIDERS.join(", ")
            )
        }),
        None => Err("no provider type".into()),
    }
}

/// A MetricTemplate on its own: one metric of the same name, without a condition (Flagger keeps
/// thresholds in each Canary).
pub fn metric_template(doc: &Document) -> Converted {
    let mut c = Converted::new(doc);
    let name = doc.name().to_string();
    let (query, args) = query_to_args(doc.value["spec"]["query"].as_str().unwrap_or_default());
    let provider = match provider(&doc.value, &query, &mut c) {
        Ok(p) => p,
        Err(e) => {
            c.note("spec.provider", e);
            return c;
        }
    };
    c.note(
        "spec",
        "Flagger keeps thresholds in each Canary: add a successCondition (CEL over result) to use this template on its own",
    );
    let args: Vec<Value> = args.iter().map(|a| json!({"name": a})).collect();
    let mut spec = json!({"metrics": [{"name": name, "interval": "1m", "provider": provider}]});
    if !args.is_empty() {
        spec["args"] = Value::Array(args);
    }
    c.object = Some(json!({
        "apiVersion": API_VERSION,
        "kind": "AnalysisTemplate",
        "metadata": metadata(&doc.value, false),
        "spec": spec,
    }));
    c
}

/// Steps from `stepWeights`, or `stepWeight` up to `maxWeight`.
fn weights(analysis: &Value) -> Vec<i64> {
    if let Some(list) = analysis["stepWeights"].as_array() {
        return list.iter().filter_map(Value::as_i64).collect();
    }
    let step = analysis["stepWeight"].as_i64().unwrap_or(0);
    // Flagger's default maxWeight is the total weight, 100.
    let max = analysis["maxWeight"].as_i64().unwrap_or(100);
    if step <= 0 || max <= 0 {
        return Vec::new();
    }
    let mut out: Vec<i64> = (1..).map(|i| i * step).take_while(|w| *w <= max).collect();
    if out.last() != Some(&max) && max <= 100 {
        out.push(max);
    }
    out
}

/// The Canary's analysis: `analysis`, or its pre-v1 name `canaryAnalysis`, which Flagger still
/// reads when `analysis` is not set.
fn analysis_of(spec: &Value) -> &Value {
    if spec.get("analysis").is_some() {
        &spec["analysis"]
    } else {
        &spec["canaryAnalysis"]
    }
}

/// A Flagger Canary: the Rollout, its two Services, and an AnalysisTemplate for its metrics.
pub fn canary(doc: &Document, all: &[Document]) -> Vec<Converted> {
    let mut c = Converted::new(doc);
    let src = &doc.value["spec"];
    let name = doc.name().to_string();
    let namespace = doc.value["metadata"]["namespace"].as_str();
    let target = &src["targetRef"];
    let target_name = target["name"].as_str().unwrap_or(&name).to_string();
    if target["kind"] != "Deployment" {
        c.note(
            "spec.targetRef.kind",
            format!(
                "{} cannot be referenced: only a Deployment can",
                target["kind"]
            ),
        );
        return vec![c];
    }
    let deployment = all
        .iter()
        .find(|d| d.kind() == "Deployment" && d.name() == target_name)
        .map(|d| &d.value);
    // Without the Deployment, the Rollout takes its selector from it at run time (workloadRef);
    // only the Services written here must guess its pods' labels.
    let selector = match deployment.map(|d| &d["spec"]["selector"]) {
        Some(s) if s.is_object() => Some(s.clone()),
        _ => {
            c.note(
                "spec.targetRef",
                format!(
                    "Deployment {target_name:?} is not in the input: the Rollout reads its selector from it, but the Services it writes select app={target_name:?}, and spec.replicas should be its replica count"
                ),
            );
            None
        }
    };
    let pod_labels = selector
        .as_ref()
        .map_or_else(|| json!({"app": target_name}), |s| s["matchLabels"].clone());
    let svc = &src["service"];
    note_unknown(
        &mut c,
        svc,
        "spec.service",
        &["name", "port", "targetPort"],
        "no fledge equivalent: the Services below carry port and targetPort only",
    );
    let svc_name = svc["name"].as_str().unwrap_or(&target_name).to_string();
    let stable_svc = format!("{svc_name}-primary");
    let canary_svc = format!("{svc_name}-canary");

    let analysis = analysis_of(src);
    if src.get("analysis").is_none() && src.get("canaryAnalysis").is_some() {
        c.note(
            "spec.canaryAnalysis",
            "Flagger's pre-v1 name of spec.analysis: converted as spec.analysis",
        );
    }
    let interval = match analysis.get("interval").map(duration) {
        Some(Some((d, _))) => d,
        Some(None) => {
            c.note("spec.analysis.interval", "not a duration: 1m is used");
            "1m".into()
        }
        None => "1m".into(),
    };
    let provider = src["provider"].as_str();
    if provider.is_none() {
        c.note(
            "spec.provider",
            "not set: Flagger takes its --mesh-provider flag (istio unless set); converted without a traffic router, traffic follows the share of available canary pods. Set trafficRouting if your Flagger ran with a mesh",
        );
    }
    // Flagger runs blue-green (A/B testing with `match`) whenever `iterations` is set, whatever
    // the weights say; with the kubernetes provider it always does, 10 iterations unless set.
    let mut iterations = analysis["iterations"].as_i64().filter(|i| *i > 0);
    if provider == Some("kubernetes") && iterations.is_none() {
        iterations = Some(10);
        if !weights(analysis).is_empty() {
            c.note(
                "spec.analysis.stepWeight",
                "the kubernetes provider has no traffic weights: Flagger runs blue-green with 10 iterations instead, and so does the Rollout",
            );
        }
    } else if iterations.is_some() && !weights(analysis).is_empty() {
        c.note(
            "spec.analysis.iterations",
            "with iterations set, Flagger runs blue-green (A/B testing with match) and ignores the weights: converted as blue-green",
        );
    }
    let blue_green = iterations.is_some();
    let mut template =
        analysis_template(doc, &name, &target_name, &svc_name, &interval, &mut c, all);
    // Blue-green checks the metrics `iterations` times before the switch; without a count the
    // pre-promotion analysis would never finish.
    if let (Some(n), Some(t)) = (iterations, template.object.as_mut()) {
        for metric in t["spec"]["metrics"].as_array_mut().into_iter().flatten() {
            metric["count"] = json!(n);
        }
    }
    let has_template = template.object.is_some();

    let mut strategy = if blue_green || analysis.get("match").is_some() {
        if analysis.get("match").is_some() {
            c.note(
                "spec.analysis.match",
                "A/B testing by header is converted as blue-green with a preview Service; route the header with setHeaderRoute once a traffic router is set",
            );
        }
        let iterations = iterations.unwrap_or(1);
        let mut bg = json!({
            "activeService": stable_svc,
            "previewService": canary_svc,
        });
        match (
            has_template,
            rollout_supports(&["strategy", "blueGreen", "prePromotionAnalysis"]),
        ) {
            (true, true) => {
                bg["prePromotionAnalysis"] = json!({"templates": [{"templateName": name}]});
            }
            (true, false) => {
                bg["autoPromotionEnabled"] = json!(false);
                c.note(
                    "spec.analysis.metrics",
                    format!("pre-promotion analysis is not supported by this fledge version: the metrics are in AnalysisTemplate {name:?}, and a person promotes after checking them"),
                );
            }
            _ => {
                let seconds = crate::api::duration::parse(&interval).map_or(60, |d| d.as_secs())
                    * iterations as u64;
                bg["autoPromotionSeconds"] = json!(seconds);
            }
        }
        json!({"blueGreen": bg})
    } else {
        let mut steps: Vec<Value> = Vec::new();
        for w in weights(analysis) {
            steps.push(json!({"setWeight": w}));
            steps.push(json!({"pause": {"duration": interval}}));
        }
        let mut canary = json!({"stableService": stable_svc, "canaryService": canary_svc});
        if has_template {
            if rollout_supports(&["strategy", "canary", "analysis"]) {
                canary["analysis"] = json!({"templates": [{"templateName": name}]});
            } else {
                c.note(
                    "spec.analysis.metrics",
                    format!("background analysis is not supported by this fledge version: the metrics are in AnalysisTemplate {name:?} but nothing runs them; the last step waits for a promote instead"),
                );
                steps.push(json!({"pause": {}}));
            }
        }
        if !steps.is_empty() {
            canary["steps"] = Value::Array(steps);
        }
        json!({"canary": canary})
    };
    let hooks = super::flagger_webhooks::convert(
        &doc.value["metadata"],
        &name,
        analysis,
        &interval,
        iterations,
        &mut strategy,
        &mut c,
    );
    traffic(src, &svc_name, &mut strategy, &mut c);

    let mut spec = json!({
        "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target_name, "scaleDown": "onsuccess"},
        "strategy": strategy,
    });
    if let Some(selector) = selector {
        spec["selector"] = selector;
    }
    if !hooks.gates.is_empty() {
        spec["gates"] = Value::Array(hooks.gates);
    }
    if !hooks.subscriptions.is_empty() {
        spec["notifications"] = json!({"subscriptions": hooks.subscriptions});
    }
    if let Some(r) = deployment.and_then(|d| d["spec"].get("replicas")) {
        spec["replicas"] = r.clone();
    }
    if let Some(p) = src.get("progressDeadlineSeconds") {
        spec["progressDeadlineSeconds"] = p.clone();
    }
    if src["skipAnalysis"] == true {
        c.note(
            "spec.skipAnalysis",
            "no fledge equivalent: promote with `kubectl fledge promote --full`",
        );
    }
    if src.get("autoscalerRef").is_some() {
        c.note(
            "spec.autoscalerRef",
            format!("point the HorizontalPodAutoscaler at the Rollout instead: scaleTargetRef {{apiVersion: {API_VERSION}, kind: Rollout, name: {name}}}"),
        );
    }
    note_unknown(
        &mut c,
        src,
        "spec",
        &[
            "targetRef",
            "service",
            "analysis",
            "progressDeadlineSeconds",
            "skipAnalysis",
            "autoscalerRef",
            "provider",
            "ingressRef",
            "canaryAnalysis",
        ],
        "no fledge equivalent",
    );
    note_unknown(
        &mut c,
        analysis,
        "spec.analysis",
        &[
            "interval",
            "threshold",
            "maxWeight",
            "stepWeight",
            "stepWeights",
            "iterations",
            "match",
            "metrics",
            "webhooks",
        ],
        "no fledge equivalent",
    );
    c.object = Some(json!({
        "apiVersion": API_VERSION,
        "kind": "Rollout",
        "metadata": metadata(&doc.value, false),
        "spec": spec,
    }));

    let mut out = vec![c];
    for svc_out in [&stable_svc, &canary_svc] {
        let port = svc["port"].as_i64().unwrap_or(80);
        let mut port_spec = json!({"name": "http", "port": port, "protocol": "TCP"});
        port_spec["targetPort"] = svc.get("targetPort").cloned().unwrap_or(json!(port));
        let mut meta = json!({"name": svc_out});
        if let Some(ns) = namespace {
            meta["namespace"] = json!(ns);
        }
        out.push(Converted {
            source: format!("{} (spec.service)", out[0].source),
            object: Some(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta,
                "spec": {"selector": pod_labels, "ports": [port_spec]},
            })),
            notes: vec![format!(
                "Flagger owned a Service {svc_out:?}: delete the Canary (its Services go with it) before applying this one"
            )],
        });
    }
    if template.object.is_some() || !template.notes.is_empty() {
        out.push(template);
    }
    out.extend(hooks.objects);
    out
}

/// The AnalysisTemplate holding a Canary's metrics, and the arguments the Rollout passes it.
fn analysis_template(
    doc: &Document,
    name: &str,
    target: &str,
    service: &str,
    interval: &str,
    canary: &mut Converted,
    all: &[Document],
) -> Converted {
    let mut c = Converted {
        source: format!("{} (spec.analysis.metrics)", canary.source),
        ..Default::default()
    };
    let analysis = analysis_of(&doc.value["spec"]);
    let namespace = doc.value["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let threshold = analysis["threshold"].as_i64();
    let mut metrics = Vec::new();
    let mut args: Vec<String> = Vec::new();
    let mut values = serde_json::Map::new();
    for (i, m) in analysis["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.analysis.metrics[{i}]");
        let metric_name = m["name"].as_str().unwrap_or_default();
        let Some(template_name) = m["templateRef"]["name"].as_str() else {
            c.note(
                &path,
                format!("built-in metric {metric_name:?} depends on the mesh's Prometheus metrics: use a ClusterAnalysisTemplate from analysis-templates/ instead"),
            );
            continue;
        };
        // Flagger looks the template up in templateRef.namespace, else the Canary's.
        let template_ns = m["templateRef"]["namespace"]
            .as_str()
            .or(doc.value["metadata"]["namespace"].as_str());
        let Some(template) = all.iter().find(|d| {
            d.kind() == "MetricTemplate"
                && d.name() == template_name
                && d.value["metadata"]["namespace"]
                    .as_str()
                    .zip(template_ns)
                    .is_none_or(|(have, want)| have == want)
        }) else {
            c.note(
                &format!("{path}.templateRef"),
                format!(
                    "MetricTemplate {template_name:?}{} is not in the input: convert them together",
                    template_ns
                        .map(|ns| format!(" of namespace {ns:?}"))
                        .unwrap_or_default()
                ),
            );
            continue;
        };
        let (mut query, used) =
            query_to_args(template.value["spec"]["query"].as_str().unwrap_or_default());
        let metric_interval = m
            .get("interval")
            .and_then(duration)
            .map_or(interval.to_string(), |(d, _)| d);
        for arg in &used {
            let value = match arg.as_str() {
                "name" => json!(name),
                "namespace" => json!(namespace),
                "target" => json!(target),
                "service" => json!(service),
                "interval" => json!(metric_interval),
                "ingress" => doc.value["spec"]["ingressRef"]["name"].clone(),
                other => m["templateVariables"][other].clone(),
            };
            if value.is_null() {
                c.note(&path, format!("no value for query variable {arg:?}"));
            }
            // The template's arguments serve every metric: one that another metric already
            // gives a different value gets a name of this metric's own.
            let own = match values.get(arg) {
                Some(v) if *v != value => {
                    let renamed = format!("{arg}_{i}");
                    query = query.replace(
                        &format!("{{{{args.{arg}}}}}"),
                        &format!("{{{{args.{renamed}}}}}"),
                    );
                    renamed
                }
                _ => arg.clone(),
            };
            if !args.contains(&own) {
                args.push(own.clone());
                values.insert(own, value);
            }
        }
        // The template's notes belong to the template's own conversion.
        let provider = match provider(&template.value, &query, &mut Converted::default()) {
            Ok(p) => p,
            Err(e) => {
                c.note(
                    &format!("{path}.templateRef"),
                    format!("MetricTemplate {template_name:?}: {e}"),
                );
                continue;
            }
        };
        // Flagger's queries give one value, which fledge hands to conditions as a number (not a
        // one-item list: `result[0]` on it is an evaluation error); a New Relic result is a row
        // (a map), whose one value each condition reads.
        let judged = |op: &str, bound: &Value| {
            if provider.get("newRelic").is_some() {
                format!("result.all(k, result[k] {op} {bound})")
            } else {
                format!("result {op} {bound}")
            }
        };
        let mut conditions = Vec::new();
        if let Some(min) = m["thresholdRange"].get("min") {
            conditions.push(judged(">=", min));
        }
        if let Some(max) = m["thresholdRange"].get("max") {
            conditions.push(judged("<=", max));
        }
        // The deprecated per-metric `threshold`: a custom metric fails above it.
        if m.get("thresholdRange").is_none()
            && let Some(max) = m.get("threshold").filter(|t| t.is_number())
        {
            conditions.push(judged("<=", max));
        }
        let mut metric = json!({
            "name": metric_name.replace(' ', "-"),
            "interval": interval,
            "provider": provider,
        });
        if !conditions.is_empty() {
            metric["successCondition"] = json!(conditions.join(" && "));
        }
        // Flagger rolls back when failed checks reach `threshold`; a metric fails when its
        // failures exceed `failureLimit`.
        if let Some(t) = threshold {
            metric["failureLimit"] = json!((t - 1).max(0));
        }
        metrics.push(metric);
    }
    if metrics.is_empty() {
        canary.notes.append(&mut c.notes);
        return Converted::default();
    }
    // The template serves this Canary only, so the arguments carry their values.
    let mut spec = json!({"metrics": metrics});
    if !args.is_empty() {
        spec["args"] = Value::Array(
            args.iter()
                .map(|a| {
                    let v = &values[a];
                    json!({"name": a, "value": v.as_str().map(String::from).unwrap_or_else(|| v.to_string())})
                })
                .collect(),
        );
    }
    let mut meta = json!({"name": name});
    if let Some(ns) = doc.value["metadata"]["namespace"].as_str() {
        meta["namespace"] = json!(ns);
    }
    c.object = Some(json!({
        "apiVersion": API_VERSION,
        "kind": "AnalysisTemplate",
        "metadata": meta,
        "spec": spec,
    }));
    c
}

/// Flagger's mesh provider, as a traffic router when this build has them.
fn traffic(src: &Value, service: &str, strategy: &mut Value, c: &mut Converted) {
    let provider = src["provider"].as_str().unwrap_or("kubernetes");
    if provider == "kubernetes" {
        return;
    }
    let Some(canary) = strategy.get_mut("canary") else {
        c.note(
            "spec.provider",
            format!("{provider}: a blue-green switches Services, no traffic router is used"),
        );
        return;
    };
    if !rollout_supports(&["strategy", "canary", "trafficRouting"]) {
        c.note(
            "spec.provider",
            format!("{provider}: traffic routers are not supported by this fledge version: traffic follows the share of available pods"),
        );
        return;
    }
    let name = provider.split(':').next().unwrap_or_default();
    let ingress = src["ingressRef"]["name"].as_str();
    if name != "nginx" && ingress.is_some() {
        c.note(
            "spec.ingressRef",
            format!(
                "only the nginx provider routes through it; {provider} does not, so it is dropped"
            ),
        );
    }
    let routing = match name {
        "gatewayapi" => json!({"gatewayAPI": {"httpRoutes": [{"name": service}]}}),
        "istio" => json!({"istio": {"virtualService": {"name": service}}}),
        "nginx" => match ingress {
            Some(ingress) => json!({"nginx": {"stableIngress": ingress}}),
            None => {
                c.note(
                    "spec.ingressRef",
                    "the nginx provider needs it (the Ingress to split): no traffic router is written, traffic follows the share of available pods",
                );
                return;
            }
        },
        "linkerd" | "smi" => json!({"smi": {"trafficSplitName": service}}),
        other => {
            c.note(
                "spec.provider",
                format!("{other}: not supported: traffic follows the share of available pods"),
            );
            return;
        }
    };
    c.note(
        "spec.provider",
        "the routing object Flagger generated goes with the Canary: keep an equivalent one for the Rollout",
    );
    canary["trafficRouting"] = routing;
}

#[cfg(test)]
#[path = "flagger_tests.rs"]
mod tests;
