//! Flagger Canaries that converted into rollouts behaving otherwise than Flagger ran them (issue
//! 17), each checked against Flagger's own defaults (pkg/controller/scheduler.go,
//! pkg/apis/flagger/v1beta1/canary.go) and each output checked by lint.

use serde_json::{Value, json};

use crate::cli::exit;
use crate::cli::manifest::parse;

/// Converts `yaml`, asserts lint passes the output, and returns it with its documents.
fn converted(yaml: &str) -> (String, Vec<Value>) {
    let docs = parse(yaml).expect("input parses");
    let out = super::super::convert(&docs).expect("converts");
    let (report, code) =
        crate::cli::lint::render("converted", &crate::cli::lint::lint(&parse(&out).unwrap()));
    assert_eq!(
        code,
        exit::OK,
        "convert's output must lint:\n{report}\n{out}"
    );
    let values = parse(&out).unwrap().into_iter().map(|d| d.value).collect();
    (out, values)
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:?}"))
}

/// A Canary over Deployment `web` with `spec` merged in (`provider`, `analysis`, ...).
fn canary(spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\n\
         spec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
         metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: web:1}}]}}\n\
         ---\napiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: web, namespace: shop}}\n\
         spec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\n  \
         service: {{port: 80}}\n{spec}"
    )
}

const TEMPLATE: &str = "---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\n\
metadata: {name: errors, namespace: shop}\nspec:\n  provider: {type: prometheus, address: http://prom:9090}\n  \
query: 'sum(rate(errors{route=\"{{ variables.route }}\", app=\"{{ target }}\"}[{{ interval }}]))'\n";

fn set_weights(rollout: &Value) -> Vec<i64> {
    rollout["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["setWeight"].as_i64())
        .collect()
}

#[test]
fn step_weight_without_max_weight_climbs_to_flaggers_default_of_100() {
    let (out, docs) = converted(&canary(
        "  provider: istio\n  analysis: {interval: 1m, threshold: 2, stepWeight: 20}\n",
    ));
    assert_eq!(
        set_weights(kind(&docs, "Rollout")),
        [20, 40, 60, 80, 100],
        "{out}"
    );
}

#[test]
fn iterations_with_weights_is_blue_green_as_flagger_runs_it_and_says_so() {
    let (out, docs) = converted(&canary(
        "  provider: istio\n  analysis: {interval: 30s, threshold: 2, iterations: 4, stepWeight: 10, maxWeight: 50}\n",
    ));
    let rollout = kind(&docs, "Rollout");
    assert!(rollout["spec"]["strategy"]["canary"].is_null(), "{out}");
    assert_eq!(
        rollout["spec"]["strategy"]["blueGreen"]["autoPromotionSeconds"], 120,
        "4 iterations of 30s\n{out}"
    );
    assert!(
        out.contains("spec.analysis.iterations: with iterations set"),
        "{out}"
    );
}

#[test]
fn a_canary_without_provider_says_what_convert_assumed_and_kubernetes_is_blue_green() {
    let (out, docs) = converted(&canary(
        "  analysis: {interval: 1m, threshold: 2, stepWeight: 50}\n",
    ));
    let rollout = kind(&docs, "Rollout");
    assert_eq!(set_weights(rollout), [50, 100], "{out}");
    assert!(rollout["spec"]["strategy"]["canary"]["trafficRouting"].is_null());
    assert!(
        out.contains("spec.provider: not set: Flagger takes its --mesh-provider flag"),
        "{out}"
    );
    // The kubernetes provider: Flagger runs blue-green, 10 iterations, whatever the weights.
    let (out, docs) = converted(&canary(
        "  provider: kubernetes\n  analysis: {interval: 1m, threshold: 2, stepWeight: 50}\n",
    ));
    let bg = &kind(&docs, "Rollout")["spec"]["strategy"]["blueGreen"];
    assert_eq!(bg["autoPromotionSeconds"], 600, "{out}");
    assert!(
        out.contains("spec.analysis.stepWeight: the kubernetes provider"),
        "{out}"
    );
}

#[test]
fn a_metric_template_is_looked_up_in_the_namespace_its_ref_names() {
    let other = TEMPLATE
        .replace("namespace: shop", "namespace: ops")
        .replace("'sum(rate(errors", "'max(rate(errors");
    let (out, docs) = converted(&format!(
        "{}{TEMPLATE}{other}",
        canary(
            "  provider: istio\n  analysis:\n    interval: 1m\n    threshold: 2\n    stepWeight: 50\n    metrics:\n    \
             - name: errors\n      templateRef: {name: errors, namespace: ops}\n      templateVariables: {route: a}\n      \
             thresholdRange: {max: 1}\n",
        )
    ));
    let template = docs
        .iter()
        .find(|d| d["kind"] == "AnalysisTemplate" && d["metadata"]["name"] == "web")
        .unwrap();
    let query = template["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
        .as_str()
        .unwrap();
    assert!(query.starts_with("max("), "the ops template's query: {out}");
}

#[test]
fn a_metrics_own_threshold_becomes_its_condition() {
    let (out, docs) = converted(&format!(
        "{}{TEMPLATE}",
        canary(
            "  provider: istio\n  analysis:\n    interval: 1m\n    threshold: 2\n    stepWeight: 50\n    metrics:\n    \
             - name: errors\n      templateRef: {name: errors}\n      templateVariables: {route: a}\n      threshold: 5\n",
        )
    ));
    let template = docs
        .iter()
        .find(|d| d["kind"] == "AnalysisTemplate" && d["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(
        template["spec"]["metrics"][0]["successCondition"], "result <= 5",
        "{out}"
    );
}

#[test]
fn webhook_retries_disable_tls_and_mute_alert_each_get_a_note() {
    let (out, _) = converted(&canary(
        "  provider: istio\n  analysis:\n    interval: 1m\n    threshold: 2\n    stepWeight: 50\n    webhooks:\n    \
         - {name: smoke, type: rollout, url: https://hooks.example/, retries: 3, disableTLS: true, muteAlert: true}\n",
    ));
    for field in ["retries", "disableTLS", "muteAlert"] {
        assert!(
            out.contains(&format!("spec.analysis.webhooks[0].{field}: not converted")),
            "{field}: {out}"
        );
    }
}

#[test]
fn metrics_sharing_a_template_keep_their_own_variables() {
    let (out, docs) = converted(&format!(
        "{}{TEMPLATE}",
        canary(
            "  provider: istio\n  analysis:\n    interval: 1m\n    threshold: 2\n    stepWeight: 50\n    metrics:\n    \
             - name: checkout\n      templateRef: {name: errors}\n      templateVariables: {route: checkout}\n      thresholdRange: {max: 1}\n    \
             - name: cart\n      templateRef: {name: errors}\n      templateVariables: {route: cart}\n      thresholdRange: {max: 1}\n",
        )
    ));
    let template = docs
        .iter()
        .find(|d| d["kind"] == "AnalysisTemplate" && d["metadata"]["name"] == "web")
        .unwrap();
    let args = &template["spec"]["args"];
    let value = |name: &str| {
        args.as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["value"].clone())
    };
    assert_eq!(value("route"), Some(json!("checkout")), "{out}");
    assert_eq!(value("route_1"), Some(json!("cart")), "{out}");
    let second = template["spec"]["metrics"][1]["provider"]["prometheus"]["query"]
        .as_str()
        .unwrap();
    assert!(
        second.contains("{{args.route_1}}") && second.contains("{{args.target}}"),
        "{second}"
    );
}

#[test]
fn blue_green_metrics_count_the_iterations_so_the_analysis_ends() {
    let (out, docs) = converted(&format!(
        "{}{TEMPLATE}",
        canary(
            "  provider: kubernetes\n  analysis:\n    interval: 1m\n    threshold: 2\n    iterations: 3\n    metrics:\n    \
             - name: errors\n      templateRef: {name: errors}\n      templateVariables: {route: a}\n      thresholdRange: {max: 1}\n",
        )
    ));
    let rollout = kind(&docs, "Rollout");
    assert_eq!(
        rollout["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"]["templates"][0]["templateName"],
        "web",
        "{out}"
    );
    let template = docs
        .iter()
        .find(|d| d["kind"] == "AnalysisTemplate" && d["metadata"]["name"] == "web")
        .unwrap();
    assert_eq!(template["spec"]["metrics"][0]["count"], 3, "{out}");
}

#[test]
fn the_pre_v1_canary_analysis_field_is_read_as_analysis() {
    let (out, docs) = converted(&canary(
        "  provider: istio\n  canaryAnalysis: {interval: 1m, threshold: 2, stepWeight: 25, maxWeight: 50}\n",
    ));
    assert_eq!(set_weights(kind(&docs, "Rollout")), [25, 50], "{out}");
    assert!(
        out.contains("spec.canaryAnalysis: Flagger's pre-v1 name"),
        "{out}"
    );
    assert!(
        !out.contains("spec.canaryAnalysis: no fledge equivalent"),
        "{out}"
    );
}

/// With the kubernetes provider Flagger runs 10 iterations when none are set: a rollout webhook
/// is asked that many times before the switch, not once.
#[test]
fn a_rollout_webhook_of_the_kubernetes_provider_counts_its_ten_iterations() {
    let (out, docs) = converted(&canary(
        "  provider: kubernetes\n  analysis:\n    interval: 1m\n    threshold: 2\n    webhooks:\n    \
         - {name: smoke, type: rollout, url: https://hooks.example/}\n",
    ));
    let counts: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "AnalysisTemplate")
        .flat_map(|t| t["spec"]["metrics"].as_array().into_iter().flatten())
        .filter(|m| !m["provider"]["web"].is_null())
        .map(|m| &m["count"])
        .collect();
    assert_eq!(counts, [&json!(10)], "{out}");
}

#[test]
fn ingress_ref_is_used_by_the_nginx_provider_and_noted_with_any_other() {
    let (out, docs) = converted(&canary(
        "  provider: nginx\n  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: web}\n  \
         analysis: {interval: 1m, threshold: 2, stepWeight: 50}\n",
    ));
    let routing = &kind(&docs, "Rollout")["spec"]["strategy"]["canary"]["trafficRouting"];
    assert_eq!(routing["nginx"]["stableIngress"], "web", "{out}");
    assert!(!out.contains("spec.ingressRef"), "{out}");
    // Flagger's other providers do not read it: said, not silently dropped.
    let (out, docs) = converted(&canary(
        "  provider: istio\n  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: web}\n  \
         analysis: {interval: 1m, threshold: 2, stepWeight: 50}\n",
    ));
    let routing = &kind(&docs, "Rollout")["spec"]["strategy"]["canary"]["trafficRouting"];
    assert_eq!(routing["istio"]["virtualService"]["name"], "web", "{out}");
    assert!(
        out.contains("spec.ingressRef: only the nginx provider routes through it"),
        "{out}"
    );
}

/// The nginx provider needs the Ingress: without `ingressRef` no router is written (before, a
/// router with `stableIngress: null`).
#[test]
fn the_nginx_provider_without_ingress_ref_gets_no_router_and_a_note() {
    let (out, docs) = converted(&canary(
        "  provider: nginx\n  analysis: {interval: 1m, threshold: 2, stepWeight: 50}\n",
    ));
    let rollout = kind(&docs, "Rollout");
    assert!(
        rollout["spec"]["strategy"]["canary"]["trafficRouting"].is_null(),
        "{out}"
    );
    assert!(
        out.contains("spec.ingressRef: the nginx provider needs it"),
        "{out}"
    );
}

/// A Canary whose Deployment is not in the input: the Rollout takes the selector from the
/// Deployment at run time (workloadRef without selector) instead of a guessed `app: <name>`; only
/// the Services it writes must still guess, and a note says so.
#[test]
fn without_its_deployment_the_rollout_guesses_no_selector() {
    let yaml = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: web, namespace: shop}\n\
                spec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  \
                service: {port: 80}\n  provider: istio\n  \
                analysis: {interval: 1m, threshold: 2, stepWeight: 50}\n";
    let (out, docs) = converted(yaml);
    let rollout = kind(&docs, "Rollout");
    assert!(rollout["spec"]["selector"].is_null(), "{out}");
    assert_eq!(rollout["spec"]["workloadRef"]["name"], "web");
    let service = kind(&docs, "Service");
    assert_eq!(service["spec"]["selector"], json!({"app": "web"}), "{out}");
    assert!(
        out.contains("the Services it writes select app=\"web\""),
        "{out}"
    );
}
