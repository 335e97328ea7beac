//! Argo Rollouts -> fledge. Field names are mostly the same (fledge follows Argo Rollouts where
//! the idea is the same); this maps what differs and names what has no equivalent.

use serde_json::{Value, json};

use super::{API_VERSION, Converted, copy, duration, metadata, note_unknown, rollout_supports};
use crate::cli::manifest::Document;

const SPEC_FIELDS: [&str; 10] = [
    "replicas",
    "selector",
    "template",
    "minReadySeconds",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "progressDeadlineAbort",
    "paused",
    "restartAt",
    "workloadRef",
];

/// An Argo Rollout.
pub fn rollout(doc: &Document) -> Vec<Converted> {
    let mut c = Converted::new(doc);
    let src = &doc.value["spec"];
    let mut spec = json!({});
    copy(src, &mut spec, &SPEC_FIELDS[..9]);
    copy(src, &mut spec, &["rollbackWindow"]);
    if let Some(w) = src.get("workloadRef") {
        let mut r = json!({
            "apiVersion": w["apiVersion"].as_str().unwrap_or("apps/v1"),
            "kind": w["kind"],
            "name": w["name"],
        });
        match w["scaleDown"].as_str() {
            None | Some("never") => {}
            Some(mode @ ("onsuccess" | "progressively")) => r["scaleDown"] = json!(mode),
            Some(other) => {
                r["scaleDown"] = json!("onsuccess");
                c.note(
                    "spec.workloadRef.scaleDown",
                    format!("{other:?} is not supported: the Deployment is scaled to 0 once the Rollout is healthy (onsuccess)"),
                );
            }
        }
        if w["kind"] != "Deployment" {
            c.note(
                "spec.workloadRef.kind",
                "only a Deployment can be referenced",
            );
        }
        spec["workloadRef"] = r;
    }
    if let Some(a) = src.get("analysis") {
        if rollout_supports(&["analysis"]) {
            spec["analysis"] = a.clone();
        } else {
            c.note(
                "spec.analysis",
                "AnalysisRun history limits are not supported by this fledge version",
            );
        }
    }
    let known: Vec<&str> = SPEC_FIELDS
        .iter()
        .copied()
        .chain(["strategy", "analysis", "rollbackWindow"])
        .collect();
    note_unknown(&mut c, src, "spec", &known, "no fledge equivalent");

    let strategy = &src["strategy"];
    if let Some(canary) = strategy.get("canary") {
        spec["strategy"] = json!({"canary": self::canary(canary, &mut c)});
    } else if let Some(bg) = strategy.get("blueGreen") {
        spec["strategy"] = json!({"blueGreen": blue_green(bg, &mut c)});
    } else {
        c.note(
            "spec.strategy",
            "neither canary nor blueGreen: converted as a canary without steps",
        );
        spec["strategy"] = json!({"canary": {}});
    }
    c.object = Some(json!({
        "apiVersion": API_VERSION,
        "kind": "Rollout",
        "metadata": metadata(&doc.value, false),
        "spec": spec,
    }));
    vec![c]
}

const CANARY_FIELDS: [&str; 11] = [
    "stableService",
    "canaryService",
    "maxSurge",
    "maxUnavailable",
    "scaleDownDelaySeconds",
    "abortScaleDownDelaySeconds",
    "dynamicStableScale",
    "canaryMetadata",
    "stableMetadata",
    "minPodsPerReplicaSet",
    "scaleDownDelayRevisionLimit",
];

fn canary(src: &Value, c: &mut Converted) -> Value {
    let mut out = json!({});
    copy(src, &mut out, &CANARY_FIELDS);
    copy(src, &mut out, &["antiAffinity"]);
    let path = "spec.strategy.canary";
    let mut steps = Vec::new();
    for (i, step) in src["steps"].as_array().into_iter().flatten().enumerate() {
        let here = format!("{path}.steps[{i}]");
        if let Some(s) = canary_step(step, &here, c) {
            steps.push(s);
        }
    }
    if !steps.is_empty() {
        out["steps"] = Value::Array(steps);
    }
    if let Some(t) = src.get("trafficRouting") {
        if rollout_supports(&["strategy", "canary", "trafficRouting"]) {
            if let Some(r) = traffic_routing(t, c) {
                out["trafficRouting"] = r;
            }
        } else {
            c.note(
                &format!("{path}.trafficRouting"),
                "traffic routers are not supported by this fledge version: traffic follows the share of available pods",
            );
        }
    }
    if out.get("trafficRouting").is_none()
        && let Some(o) = out.as_object_mut()
        && o.remove("minPodsPerReplicaSet").is_some()
    {
        // Argo Rollouts ignores it without a router; fledge refuses it.
        c.note(
            &format!("{path}.minPodsPerReplicaSet"),
            "applies only with a traffic router, and none was converted: dropped",
        );
    }
    if let Some(a) = src.get("analysis") {
        if rollout_supports(&["strategy", "canary", "analysis"]) {
            out["analysis"] = analysis_ref(a, &format!("{path}.analysis"), c, true);
        } else {
            c.note(
                &format!("{path}.analysis"),
                "background analysis is not supported by this fledge version; the steps still pause where they did",
            );
        }
    }
    let known: Vec<&str> = CANARY_FIELDS
        .iter()
        .copied()
        .chain(["steps", "trafficRouting", "analysis", "antiAffinity"])
        .collect();
    note_unknown(c, src, path, &known, "no fledge equivalent");
    out
}

/// One step; None when it is dropped (the note says why).
fn canary_step(step: &Value, path: &str, c: &mut Converted) -> Option<Value> {
    let manual = || json!({"pause": {}});
    if let Some(w) = step.get("setWeight") {
        return Some(json!({"setWeight": w}));
    }
    if let Some(p) = step.get("pause") {
        return Some(match p.get("duration") {
            None => manual(),
            Some(d) => match duration(d) {
                Some((d, exact)) => {
                    if !exact {
                        c.note(
                            &format!("{path}.pause.duration"),
                            format!("rounded up to whole seconds: {d}"),
                        );
                    }
                    json!({"pause": {"duration": d}})
                }
                None => {
                    c.note(
                        &format!("{path}.pause.duration"),
                        format!("{d} is not a duration: the pause waits for a promote"),
                    );
                    manual()
                }
            },
        });
    }
    if let Some(s) = step.get("setCanaryScale") {
        let mut out = json!({});
        copy(s, &mut out, &["weight", "replicas", "matchTrafficWeight"]);
        return Some(json!({"setCanaryScale": out}));
    }
    if let Some(a) = step.get("analysis") {
        if rollout_supports(&["strategy", "canary", "steps", "analysis"]) {
            return Some(
                json!({"analysis": analysis_ref(a, &format!("{path}.analysis"), c, false)}),
            );
        }
        c.note(
            &format!("{path}.analysis"),
            "analysis steps are not supported by this fledge version: replaced by a pause until promoted, so the gate stays",
        );
        return Some(manual());
    }
    if let Some(r) = step.get("setMirrorRoute") {
        return mirror_route(r, &format!("{path}.setMirrorRoute"), c);
    }
    for route in ["setHeaderRoute", "setMirrorRoute"] {
        if let Some(r) = step.get(route) {
            if rollout_supports(&["strategy", "canary", "steps", route]) {
                return Some(json!({ route: r }));
            }
            c.note(
                &format!("{path}.{route}"),
                "not supported by this fledge version: step dropped",
            );
            return None;
        }
    }
    if step.get("experiment").is_some() {
        c.note(
            &format!("{path}.experiment"),
            "experiments have no fledge equivalent: replaced by a pause until promoted",
        );
        return Some(manual());
    }
    c.note(path, "step has no fledge equivalent: dropped");
    None
}

/// Argo's `setMirrorRoute`: its `match` is a list of alternatives (OR), each of a method, a path
/// and headers (a map) that must all hold. One alternative becomes fledge's `method`, `path` and
/// `match` (header conditions); several become `anyOf`. An alternative with no condition matches
/// every request, as in Argo Rollouts, so the mirror then takes all requests.
fn mirror_route(r: &Value, path: &str, c: &mut Converted) -> Option<Value> {
    let mut out = json!({});
    copy(r, &mut out, &["name", "percentage"]);
    let alternatives: Vec<Value> = r["match"]
        .as_array()
        .into_iter()
        .flatten()
        .map(mirror_alternative)
        .collect();
    if alternatives
        .iter()
        .any(|a| a.as_object().is_some_and(|a| a.is_empty()))
    {
        return Some(json!({ "setMirrorRoute": out }));
    }
    match alternatives.as_slice() {
        [] => {}
        [only] => {
            for (from, to) in [("method", "method"), ("path", "path"), ("headers", "match")] {
                if let Some(v) = only.get(from) {
                    out[to] = v.clone();
                }
            }
        }
        many if many.len() <= MIRROR_ALTERNATIVES => out["anyOf"] = Value::Array(many.to_vec()),
        many => {
            c.note(
                &format!("{path}.match"),
                format!(
                    "{} alternatives, fledge takes at most {MIRROR_ALTERNATIVES}: step dropped \
                     (no requests are mirrored at it, rather than more than chosen)",
                    many.len()
                ),
            );
            return None;
        }
    }
    Some(json!({ "setMirrorRoute": out }))
}

/// The most alternatives fledge's `setMirrorRoute.anyOf` holds.
const MIRROR_ALTERNATIVES: usize = 8;

/// Argo's StringMatch as fledge's: the one of `exact`, `prefix`, `regex` that is set (Argo leaves
/// the others empty).
fn string_match(m: &Value) -> Option<Value> {
    ["exact", "prefix", "regex"].iter().find_map(|k| {
        m.get(*k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(|v| json!({ (*k): v }))
    })
}

/// One of Argo's `RouteMatch`es as fledge's `{method, path, headers}`.
fn mirror_alternative(m: &Value) -> Value {
    let mut out = json!({});
    for field in ["method", "path"] {
        if let Some(v) = m.get(field).and_then(string_match) {
            out[field] = v;
        }
    }
    let headers: Vec<Value> = m["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let value = string_match(value)?;
            Some(json!({"headerName": name, "headerValue": value}))
        })
        .collect();
    if !headers.is_empty() {
        out["headers"] = Value::Array(headers);
    }
    out
}

/// `{templates, args}` (and `startingStep` for background analysis), as fledge spells them.
fn analysis_ref(src: &Value, path: &str, c: &mut Converted, background: bool) -> Value {
    let mut out = json!({});
    let templates: Vec<Value> = src["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut r = json!({"templateName": t["templateName"]});
            if t["clusterScope"] == true {
                r["clusterScope"] = json!(true);
            }
            r
        })
        .collect();
    out["templates"] = Value::Array(templates);
    if let Some(args) = src.get("args") {
        out["args"] = args.clone();
    }
    run_rules(src, &mut out, path, c);
    if let Some(md) = src.get("analysisRunMetadata") {
        let mut m = json!({});
        copy(md, &mut m, &["labels", "annotations"]);
        if m.as_object().is_some_and(|m| !m.is_empty()) {
            out["analysisRunMetadata"] = m;
        }
    }
    let mut known = vec![
        "templates",
        "args",
        "dryRun",
        "measurementRetention",
        "analysisRunMetadata",
    ];
    if background {
        known.push("startingStep");
        copy(src, &mut out, &["startingStep"]);
    }
    note_unknown(c, src, path, &known, "no fledge equivalent");
    out
}

/// `dryRun` and `measurementRetention`, of a template or of a Rollout's analysis: the same rules
/// (a regular expression for the metric names). A retention `limit` of 0 is Argo Rollouts' way to
/// say "the default", which fledge writes by leaving the rule out.
fn run_rules(src: &Value, out: &mut Value, path: &str, c: &mut Converted) {
    let dry: Vec<Value> = src["dryRun"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| json!({"metricName": r["metricName"]}))
        .collect();
    if !dry.is_empty() {
        out["dryRun"] = Value::Array(dry);
    }
    let mut kept = Vec::new();
    for (i, r) in src["measurementRetention"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        match r["limit"].as_i64() {
            Some(n) if n > 0 => kept.push(json!({"metricName": r["metricName"], "limit": n})),
            _ => c.note(
                &format!("{path}.measurementRetention[{i}].limit"),
                format!(
                    "{} keeps the default ({} measurements): rule left out",
                    r["limit"],
                    crate::api::defaults::MEASUREMENT_RETENTION
                ),
            ),
        }
    }
    if !kept.is_empty() {
        out["measurementRetention"] = Value::Array(kept);
    }
}

/// An Istio VirtualService reference: its HTTP route names, TLS routes (port, SNI hosts) and TCP
/// routes (port) are fledge's fields of the same names.
fn virtual_service(src: &Value, path: &str, c: &mut Converted) -> Value {
    let mut v = json!({"name": src["name"]});
    copy(src, &mut v, &["routes", "tlsRoutes", "tcpRoutes"]);
    note_unknown(
        c,
        src,
        path,
        &["name", "routes", "tlsRoutes", "tcpRoutes"],
        "no fledge equivalent",
    );
    v
}

fn traffic_routing(src: &Value, c: &mut Converted) -> Option<Value> {
    let path = "spec.strategy.canary.trafficRouting";
    let mut out = json!({});
    if let Some(i) = src.get("istio") {
        let mut istio = json!({});
        if let Some(vs) = i.get("virtualService") {
            istio["virtualService"] =
                virtual_service(vs, &format!("{path}.istio.virtualService"), c);
        }
        if let Some(list) = i["virtualServices"].as_array() {
            let list: Vec<Value> = list
                .iter()
                .enumerate()
                .map(|(n, vs)| {
                    virtual_service(vs, &format!("{path}.istio.virtualServices[{n}]"), c)
                })
                .collect();
            if !list.is_empty() {
                istio["virtualServices"] = Value::Array(list);
            }
        }
        if let Some(dr) = i.get("destinationRule") {
            let mut d = json!({});
            let fields = ["name", "canarySubsetName", "stableSubsetName"];
            copy(dr, &mut d, &fields);
            note_unknown(
                c,
                dr,
                &format!("{path}.istio.destinationRule"),
                &fields,
                "no fledge equivalent (fledge runs no Experiments)",
            );
            istio["destinationRule"] = d;
        }
        note_unknown(
            c,
            i,
            &format!("{path}.istio"),
            &["virtualService", "virtualServices", "destinationRule"],
            "no fledge equivalent",
        );
        out["istio"] = istio;
    }
    if let Some(s) = src.get("smi") {
        let mut smi = json!({});
        copy(s, &mut smi, &["trafficSplitName", "rootService"]);
        out["smi"] = smi;
    }
    if let Some(n) = src.get("nginx") {
        let mut nginx = json!({});
        copy(n, &mut nginx, &["stableIngress", "annotationPrefix"]);
        if nginx.get("stableIngress").is_none()
            && let Some(first) = n["stableIngresses"].as_array().and_then(|l| l.first())
        {
            nginx["stableIngress"] = first.clone();
            c.note(
                &format!("{path}.nginx.stableIngresses"),
                "only the first Ingress is routed",
            );
        }
        note_unknown(
            c,
            n,
            &format!("{path}.nginx"),
            &["stableIngress", "stableIngresses", "annotationPrefix"],
            "no fledge equivalent",
        );
        out["nginx"] = nginx;
    }
    for (name, plugin) in src["plugins"].as_object().into_iter().flatten() {
        if name.ends_with("gatewayAPI") {
            let mut http: Vec<Value> = plugin["httpRoutes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| json!({"name": r["name"]}))
                .collect();
            if let Some(r) = plugin["httpRoute"].as_str() {
                http.push(json!({"name": r}));
            }
            let mut grpc: Vec<Value> = plugin["grpcRoutes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| json!({"name": r["name"]}))
                .collect();
            if let Some(r) = plugin["grpcRoute"].as_str() {
                grpc.push(json!({"name": r}));
            }
            let mut g = json!({"httpRoutes": http});
            if !grpc.is_empty() {
                g["grpcRoutes"] = Value::Array(grpc);
            }
            if plugin.get("namespace").is_some() {
                c.note(
                    &format!("{path}.plugins.{name}.namespace"),
                    "routes are looked up in the Rollout's namespace",
                );
            }
            out["gatewayAPI"] = g;
        } else {
            c.note(
                &format!("{path}.plugins.{name}"),
                "traffic router plugins are not supported",
            );
        }
    }
    note_unknown(
        c,
        src,
        path,
        &["istio", "smi", "nginx", "plugins"],
        "this traffic router is not supported",
    );
    out.as_object()
        .is_some_and(|o| !o.is_empty())
        .then_some(out)
}

const BLUE_GREEN_FIELDS: [&str; 11] = [
    "activeService",
    "previewService",
    "autoPromotionEnabled",
    "autoPromotionSeconds",
    "previewReplicaCount",
    "scaleDownDelaySeconds",
    "scaleDownDelayRevisionLimit",
    "abortScaleDownDelaySeconds",
    "maxUnavailable",
    "activeMetadata",
    "previewMetadata",
];

fn blue_green(src: &Value, c: &mut Converted) -> Value {
    let path = "spec.strategy.blueGreen";
    let mut out = json!({});
    copy(src, &mut out, &BLUE_GREEN_FIELDS);
    copy(src, &mut out, &["antiAffinity"]);
    for field in ["prePromotionAnalysis", "postPromotionAnalysis"] {
        let Some(a) = src.get(field) else { continue };
        if rollout_supports(&["strategy", "blueGreen", field]) {
            out[field] = analysis_ref(a, &format!("{path}.{field}"), c, false);
        } else if field == "prePromotionAnalysis" {
            out["autoPromotionEnabled"] = json!(false);
            c.note(
                &format!("{path}.{field}"),
                "not supported by this fledge version: autoPromotionEnabled is false instead, so a person promotes after checking",
            );
        } else {
            c.note(
                &format!("{path}.{field}"),
                "not supported by this fledge version",
            );
        }
    }
    let known: Vec<&str> = BLUE_GREEN_FIELDS
        .iter()
        .copied()
        .chain([
            "prePromotionAnalysis",
            "postPromotionAnalysis",
            "antiAffinity",
        ])
        .collect();
    note_unknown(c, src, path, &known, "no fledge equivalent");
    out
}

const METRIC_FIELDS: [&str; 7] = [
    "name",
    "count",
    "failureLimit",
    "inconclusiveLimit",
    "consecutiveErrorLimit",
    "consecutiveSuccessLimit",
    "provider",
];

/// An Argo AnalysisTemplate or ClusterAnalysisTemplate.
pub fn analysis_template(doc: &Document) -> Converted {
    let mut c = Converted::new(doc);
    let cluster = doc.kind() == "ClusterAnalysisTemplate";
    let src = &doc.value["spec"];
    let mut spec = json!({});
    if let Some(args) = src["args"].as_array() {
        let args: Vec<Value> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut out = json!({"name": a["name"]});
                copy(a, &mut out, &["value"]);
                if let Some(from) = a.get("valueFrom") {
                    if from.get("secretKeyRef").is_some() || from.get("fieldRef").is_some() {
                        out["valueFrom"] = from.clone();
                    } else {
                        c.note(
                            &format!("spec.args[{i}].valueFrom"),
                            "only secretKeyRef and fieldRef are supported: the Rollout must pass this argument",
                        );
                    }
                }
                out
            })
            .collect();
        spec["args"] = Value::Array(args);
    }
    let mut metrics = Vec::new();
    for (i, m) in src["metrics"].as_array().into_iter().flatten().enumerate() {
        if let Some(m) = metric(m, &format!("spec.metrics[{i}]"), &mut c) {
            metrics.push(m);
        }
    }
    run_rules(src, &mut spec, "spec", &mut c);
    note_unknown(
        &mut c,
        src,
        "spec",
        &["args", "metrics", "dryRun", "measurementRetention"],
        "no fledge equivalent",
    );
    if metrics.is_empty() {
        c.note(
            "spec.metrics",
            "no metric could be converted, so neither could the template",
        );
        return c;
    }
    spec["metrics"] = Value::Array(metrics);
    c.object = Some(json!({
        "apiVersion": super::API_VERSION,
        "kind": doc.kind(),
        "metadata": metadata(&doc.value, cluster),
        "spec": spec,
    }));
    c
}

fn metric(src: &Value, path: &str, c: &mut Converted) -> Option<Value> {
    let mut out = json!({});
    copy(src, &mut out, &METRIC_FIELDS[..6]);
    // The names Argo Rollouts used before failureLimit and inconclusiveLimit.
    for (old, new) in [
        ("maxFailures", "failureLimit"),
        ("maxInconclusive", "inconclusiveLimit"),
    ] {
        if let Some(v) = src.get(old)
            && out.get(new).is_none()
        {
            out[new] = v.clone();
        }
    }
    for f in ["interval", "initialDelay"] {
        let Some(v) = src.get(f) else { continue };
        match v
            .as_str()
            .filter(|s| s.contains("{{"))
            .map(|_| (v.clone(), true))
            .or_else(|| duration(v).map(|(d, exact)| (json!(d), exact)))
        {
            Some((d, exact)) => {
                if !exact {
                    c.note(
                        &format!("{path}.{f}"),
                        format!("rounded up to whole seconds: {d}"),
                    );
                }
                out[f] = d;
            }
            None => c.note(
                &format!("{path}.{f}"),
                format!("{v} is not a duration: left out"),
            ),
        }
    }
    for f in ["successCondition", "failureCondition"] {
        let Some(expr) = src[f].as_str() else {
            continue;
        };
        match super::expr::to_cel(expr) {
            Ok(cel) => {
                if let Err(e) = crate::analysis::lint::compile_condition(&cel) {
                    c.note(
                        &format!("{path}.{f}"),
                        format!("{expr:?} left out: its CEL form does not compile: {e}"),
                    );
                } else {
                    out[f] = json!(cel);
                }
            }
            Err(e) => c.note(&format!("{path}.{f}"), format!("{expr:?} left out: {e}")),
        }
    }
    let provider = &src["provider"];
    let p = if let Some(p) = provider.get("prometheus") {
        let mut o = json!({});
        copy(
            p,
            &mut o,
            &[
                "address",
                "query",
                "timeout",
                "headers",
                "authentication",
                "insecure",
            ],
        );
        note_unknown(
            c,
            p,
            &format!("{path}.provider.prometheus"),
            &[
                "address",
                "query",
                "timeout",
                "headers",
                "authentication",
                "insecure",
            ],
            "no fledge equivalent",
        );
        json!({"prometheus": o})
    } else if let Some(w) = provider.get("web") {
        let fields = [
            "url",
            "method",
            "headers",
            "body",
            "jsonPath",
            "timeoutSeconds",
        ];
        let mut o = json!({});
        copy(w, &mut o, &fields);
        note_unknown(
            c,
            w,
            &format!("{path}.provider.web"),
            &fields,
            "no fledge equivalent",
        );
        json!({"web": o})
    } else if let Some(g) = provider.get("graphite") {
        json!({"graphite": super::providers::argo_graphite(g, &format!("{path}.provider.graphite"), c)})
    } else if let Some(i) = provider.get("influxdb") {
        json!({"influxdb": super::providers::argo_influxdb(i, &format!("{path}.provider.influxdb"), c)})
    } else if let Some(d) = provider.get("datadog") {
        json!({"datadog": super::providers::argo_datadog(d, &format!("{path}.provider.datadog"), c)})
    } else if let Some(n) = provider.get("newRelic") {
        json!({"newRelic": super::providers::argo_newrelic(n, &format!("{path}.provider.newRelic"), c)})
    } else if let Some(w) = provider.get("cloudWatch") {
        json!({"cloudWatch": super::providers::argo_cloudwatch(w, &format!("{path}.provider.cloudWatch"), c)})
    } else if let Some(j) = provider.get("job") {
        let mut job = json!({"spec": j["spec"]});
        if let Some(m) = j.get("metadata") {
            let mut md = json!({});
            copy(m, &mut md, &["labels", "annotations"]);
            note_unknown(
                c,
                m,
                &format!("{path}.provider.job.metadata"),
                &["labels", "annotations"],
                "no fledge equivalent",
            );
            if md.as_object().is_some_and(|o| !o.is_empty()) {
                job["metadata"] = md;
            }
        }
        json!({ "job": job })
    } else {
        let name = provider
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_else(|| "none".into());
        c.note(
            &format!("{path}.provider.{name}"),
            format!(
                "metric {:?} dropped: fledge measures with {}",
                src["name"].as_str().unwrap_or_default(),
                crate::cli::lint_analysis::PROVIDERS.join(", ")
            ),
        );
        return None;
    };
    out["provider"] = p;
    let known: Vec<&str> = METRIC_FIELDS
        .iter()
        .copied()
        .chain([
            "interval",
            "initialDelay",
            "successCondition",
            "failureCondition",
            "maxFailures",
            "maxInconclusive",
        ])
        .collect();
    note_unknown(c, src, path, &known, "no fledge equivalent");
    Some(out)
}
