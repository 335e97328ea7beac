//! Snapshot tests of what the offline commands print, against files in `src/cli/testdata/`.
//! `FLEDGE_UPDATE_SNAPSHOTS=1 cargo test --lib cli::` rewrites the expected files; review the
//! diff before committing it.

use super::exit;
use super::manifest::parse;

fn testdata(name: &str) -> String {
    let path = format!("{}/src/cli/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn snapshot(name: &str, actual: &str) {
    let path = format!("{}/src/cli/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    // Only `1` rewrites: a variable left set to anything else must not turn every snapshot
    // test into a pass that compares nothing.
    if std::env::var("FLEDGE_UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).expect("writing the snapshot");
        eprintln!("snapshot {name} rewritten (FLEDGE_UPDATE_SNAPSHOTS=1): review the diff");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (FLEDGE_UPDATE_SNAPSHOTS=1 writes it)"));
    assert!(
        expected == actual,
        "{name} differs from the output:\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn lint_text(name: &str, text: &str) -> (String, u8) {
    let docs = parse(text).expect("fixture parses");
    super::lint::render(name, &super::lint::lint(&docs))
}

/// Converts a fixture, checks the output passes lint, and compares it with its snapshot.
fn convert(fixture: &str) -> String {
    let docs = parse(&testdata(fixture)).expect("fixture parses");
    let out = super::convert::convert(&docs).expect("converts");
    let (lint, code) = lint_text("converted", &out);
    assert_eq!(
        code,
        exit::OK,
        "the output of convert must pass lint:\n{lint}\n{out}"
    );
    snapshot(&fixture.replace(".yaml", ".converted.yaml"), &out);
    out
}

#[test]
fn convert_argo_canary() {
    let out = convert("argo-canary.yaml");
    assert!(
        out.contains("trafficRouting"),
        "the unsupported router is named"
    );
    assert!(out.contains("experiment"), "the experiment step is named");
}

#[test]
fn convert_argo_blue_green() {
    let out = convert("argo-bluegreen.yaml");
    assert!(out.contains("kind: Service"), "other objects pass through");
}

/// Istio as Argo Rollouts users bring it: no stableService/canaryService with a
/// destinationRule, several VirtualServices, TLS and TCP routes; the output lints clean.
#[test]
fn convert_argo_istio_subsets_virtual_services_tls_and_tcp_routes() {
    let out = convert("argo-istio.yaml");
    assert!(!out.contains("stableService: subsets"), "{out}");
    assert!(out.contains("virtualServices:"), "{out}");
    assert!(
        out.contains("sniHosts:") && out.contains("tcpRoutes:"),
        "{out}"
    );
    assert!(
        out.contains("destinationRule.additionalSubsetNames"),
        "the Experiment subsets are named: {out}"
    );
}

/// Only Istio with a destinationRule does without the Services; admission says so.
#[test]
fn lint_refuses_a_router_without_services_unless_istio_subsets_split() {
    let rollout = |routing: &str| {
        format!(
            "apiVersion: fledge.dev/v1alpha1\nkind: Rollout\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template: {{metadata: {{labels: {{app: web}}}}, spec: {{containers: [{{name: a, image: i}}]}}}}\n  strategy: {{canary: {{trafficRouting: {routing}}}}}\n"
        )
    };
    let subsets = "{istio: {virtualService: {name: web}, destinationRule: {name: web, canarySubsetName: c, stableSubsetName: s}}}";
    let (out, code) = lint_text("ok.yaml", &rollout(subsets));
    assert_eq!(code, exit::OK, "{out}");
    for (routing, message) in [
        (
            "{istio: {virtualService: {name: web}}}",
            "needs both stableService and canaryService",
        ),
        (
            "{gatewayAPI: {httpRoutes: [{name: web}]}, istio: {virtualService: {name: web}, destinationRule: {name: web, canarySubsetName: c, stableSubsetName: s}}}",
            "needs both stableService and canaryService",
        ),
        (
            "{istio: {virtualService: {name: web}, virtualServices: [{name: other}], destinationRule: {name: web, canarySubsetName: c, stableSubsetName: s}}}",
            "set exactly one of virtualService or virtualServices",
        ),
        (
            "{istio: {destinationRule: {name: web, canarySubsetName: c, stableSubsetName: s}}}",
            "set exactly one of virtualService or virtualServices",
        ),
    ] {
        let (out, code) = lint_text("bad.yaml", &rollout(routing));
        assert_eq!(code, exit::FAILED, "{routing}: {out}");
        assert!(out.contains(message), "{routing}: {out}");
    }
}

#[test]
fn convert_argo_analysis() {
    let out = convert("argo-analysis.yaml");
    assert!(
        out.contains("result[0] >= 0.95 && size(result) > 0"),
        "expr-lang became CEL"
    );
    assert!(
        out.contains("datadog:") && out.contains("secretRef"),
        "the datadog metric is mapped"
    );
}

#[test]
fn convert_argo_workload_ref_without_selector_scaled_down_progressively() {
    let out = convert("argo-workload-ref.yaml");
    let docs = parse(&out).expect("output parses");
    let rollout = &docs[0].value;
    assert_eq!(rollout["kind"], "Rollout");
    assert!(rollout["spec"].get("selector").is_none(), "{out}");
    assert_eq!(rollout["spec"]["workloadRef"]["scaleDown"], "progressively");
    assert!(
        !out.contains("Did not map"),
        "nothing dropped or changed: {out}"
    );
}

#[test]
fn convert_flagger_canary() {
    let out = convert("flagger-canary.yaml");
    assert!(
        out.contains("{{args.target}}"),
        "Flagger query variables became arguments"
    );
    assert!(
        out.contains("successCondition: result <= 5"),
        "thresholdRange became a condition"
    );
    // The condition must judge what the query gives: one number.
    let converted = parse(&out).unwrap();
    let metric = converted
        .iter()
        .flat_map(|d| {
            d.value["spec"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|m| m["successCondition"].is_string())
        .unwrap();
    let conditions =
        crate::analysis::condition::Conditions::compile(metric["successCondition"].as_str(), None)
            .unwrap();
    let judge = |n| conditions.judge(&crate::analysis::value::MetricValue::Number(n));
    assert_eq!(
        judge(3.0),
        Ok(crate::api::analysis::AnalysisPhase::Successful)
    );
    assert_eq!(judge(7.0), Ok(crate::api::analysis::AnalysisPhase::Failed));
    // A single value also reads as `result[0]` (Argo Rollouts' idiom), so either form judges it.
    let indexed = crate::analysis::condition::Conditions::compile(Some("result[0] <= 5"), None);
    assert_eq!(
        indexed
            .unwrap()
            .judge(&crate::analysis::value::MetricValue::Number(3.0)),
        Ok(crate::api::analysis::AnalysisPhase::Successful)
    );
}

#[test]
fn convert_keeps_a_condition_that_uses_an_argument() {
    let docs = parse(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args: [{name: max}]
  metrics:
  - name: m
    successCondition: "result[0] <= {{args.max}}"
    provider: {prometheus: {address: "http://p", query: up}}
"#,
    )
    .unwrap();
    let out = super::convert::convert(&docs).unwrap();
    assert!(
        out.contains("successCondition: result[0] <= {{args.max}}") && !out.contains("left out"),
        "{out}"
    );
}

#[test]
fn convert_carries_argo_mirror_matches_over_by_method_path_headers_and_alternatives() {
    let docs = parse(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1}]}
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      trafficRouting: {plugins: {argoproj-labs/gatewayAPI: {httpRoute: web, namespace: default}}}
      steps:
      - setMirrorRoute:
          name: by-header
          percentage: 35
          match: [{headers: {x-test: {exact: "yes"}, agent: {prefix: curl}}}]
      - setMirrorRoute:
          name: by-path
          match: [{method: {exact: GET}, path: {prefix: /api}}]
      - setMirrorRoute:
          name: either
          match:
          - {method: {exact: POST}, headers: {x-test: {regex: "y.*"}}}
          - {path: {exact: /health}}
      - setWeight: 20
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: job}
spec:
  metrics:
  - name: smoke
    provider:
      job:
        metadata: {labels: {team: web}, annotations: {owner: me}}
        spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}}
"#,
    )
    .unwrap();
    let out = super::convert::convert(&docs).unwrap();
    let converted = parse(&out).unwrap();
    let rollout = &converted
        .iter()
        .find(|d| d.value["kind"] == "Rollout")
        .unwrap()
        .value;
    let steps = rollout["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .unwrap();
    assert_eq!(steps.len(), 4, "{out}");
    let mirror = &steps[0]["setMirrorRoute"];
    assert_eq!(mirror["percentage"], 35);
    assert_eq!(
        mirror["match"],
        serde_json::json!([
            {"headerName": "agent", "headerValue": {"prefix": "curl"}},
            {"headerName": "x-test", "headerValue": {"exact": "yes"}},
        ])
    );
    // Method and path carry over; several alternatives become anyOf.
    assert_eq!(
        steps[1]["setMirrorRoute"],
        serde_json::json!({"name": "by-path", "method": {"exact": "GET"}, "path": {"prefix": "/api"}})
    );
    assert_eq!(
        steps[2]["setMirrorRoute"]["anyOf"],
        serde_json::json!([
            {"method": {"exact": "POST"},
             "headers": [{"headerName": "x-test", "headerValue": {"regex": "y.*"}}]},
            {"path": {"exact": "/health"}},
        ])
    );
    assert!(
        !out.contains("].setMirrorRoute"),
        "no note about the mirrors: {out}"
    );
    let template = &converted
        .iter()
        .find(|d| d.value["kind"] == "AnalysisTemplate")
        .unwrap()
        .value;
    assert_eq!(
        template["spec"]["metrics"][0]["provider"]["job"]["metadata"],
        serde_json::json!({"labels": {"team": "web"}, "annotations": {"owner": "me"}})
    );
    // What convert wrote passes lint.
    let (report, code) = lint_text("converted.yaml", &out);
    assert_eq!(code, exit::OK, "{report}");
}

#[test]
fn convert_refuses_input_with_nothing_to_convert() {
    let docs = parse("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n").unwrap();
    let err = super::convert::convert(&docs).unwrap_err();
    assert!(err.contains("nothing to convert"), "{err}");
}

#[test]
fn lint_reports_every_problem_with_its_path() {
    let (out, code) = lint_text("broken.yaml", &testdata("lint-broken.yaml"));
    assert_eq!(code, exit::FAILED);
    snapshot("lint-broken.out", &out);
}

#[test]
fn lint_fills_in_arguments_as_a_run_does() {
    // `max` has no value (the Rollout gives it): a stand-in valid where it stands is put in.
    // `word` has one, and each field is checked with it as a run writes it: a literal string in
    // the condition (no longer code), refused outside quotes in a query. Placeholders in
    // queries and URLs are filled in too, and one naming no argument is reported at its field.
    let (out, code) = lint_text(
        "t.yaml",
        r#"
apiVersion: fledge.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args: [{name: max}, {name: floor, value: "0.5"}, {name: word, value: "1m]) or vector(1"}]
  metrics:
  - name: ok
    successCondition: "result <= {{args.max}} && result >= {{ args.floor }}"
    provider: {prometheus: {address: "{{args.max}}", query: 'x{a="{{args.max}}"}'}}
  - name: bad
    failureCondition: "result < {{args.word}}"
    provider: {web: {url: "http://x/{{args.nope}}"}}
  - name: window
    successCondition: "result < 1"
    provider: {prometheus: {address: "http://p", query: 'rate(x[{{args.word}}])'}}
"#,
    );
    assert_eq!(code, exit::FAILED);
    assert_eq!(
        out,
        r#"t.yaml: AnalysisTemplate "t": error: spec.metrics[1].provider.web.url: uses {{args.nope}} but no argument "nope" is declared
t.yaml: AnalysisTemplate "t": error: spec.metrics[2].provider.prometheus.query: argument "word" stands outside quotes in the query, where only a number, a duration (like 5m) or a metric or label name may stand, and its value is none of those: put it in a quoted label matcher (label="{{args.NAME}}") to use any text
t.yaml: 1 object checked, 2 errors, 0 warnings
"#
    );
}

/// Every manifest a user copies lints clean, file by file as a user would lint it: a new
/// example or template is in by being in the directory.
#[test]
fn lint_passes_every_example_and_ready_made_template() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut linted = Vec::new();
    for dir in ["examples", "analysis-templates"] {
        let files = super::manifest::yaml_files(&root.join(dir)).expect("readable");
        assert!(!files.is_empty(), "no YAML under {dir}/");
        for file in files {
            let name = file.strip_prefix(root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).expect("readable");
            let (out, code) = lint_text(&name, &text);
            linted.push(name);
            if code != exit::OK || out.contains("warning:") {
                failures.push(out);
            }
        }
    }
    assert!(
        linted.contains(&"examples/argocd/application.yaml".to_string()),
        "subdirectories are walked: {linted:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lint_warns_of_gates_that_cannot_pass_and_metrics_that_cannot_fail() {
    let (out, code) = lint_text(
        "w.yaml",
        r#"
apiVersion: fledge.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: soak}
spec:
  dryRun: [{metricName: shadow}]
  metrics:
  - name: errors                 # no count: measures until stopped
    interval: 1m
    failureCondition: result > 0
    provider: {prometheus: {address: "http://p", query: up}}
  - name: shadow                 # endless too, but dry-run: it decides nothing
    interval: 1m
    failureCondition: result > 0
    provider: {prometheus: {address: "http://p", query: up}}
  - name: anything               # ends, but no condition: every value is a success
    provider: {web: {url: "http://x"}}
---
apiVersion: fledge.dev/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1}]}
  strategy:
    canary:
      analysis: {templates: [{templateName: soak}]}
      steps:
      - setWeight: 10
      - analysis: {templates: [{templateName: soak}, {templateName: elsewhere}]}
      - analysis: {templates: [{templateName: soak, clusterScope: true}]}
---
# Another namespace's "soak" is not this file's template: nothing to judge.
apiVersion: fledge.dev/v1alpha1
kind: Rollout
metadata: {name: api, namespace: other}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api:1}]}
  strategy:
    canary:
      steps:
      - analysis: {templates: [{templateName: soak}]}
"#,
    );
    assert_eq!(code, exit::OK, "warnings do not fail lint: {out}");
    assert_eq!(
        out,
        r#"w.yaml: AnalysisTemplate "soak": warning: spec.metrics[2]: no successCondition or failureCondition: every value measured is a success, so only provider errors can fail the analysis
w.yaml: Rollout "web": warning: spec.strategy.canary.steps[1].analysis: AnalysisTemplate "soak": metric "errors" measures until its run is stopped (an interval with no count, or count 0), so the run can fail but never succeed and the rollout waits here for a promote; give the metric a count or a consecutiveSuccessLimit, or use it as background analysis
w.yaml: 3 objects checked, 0 errors, 2 warnings
"#
    );
}

#[test]
fn lint_skips_what_is_not_fledge_s_and_fails_on_nothing() {
    // Argo CD's Application shares argoproj.io with Argo Rollouts but is not a Rollout object;
    // a file of such objects only (a Service, Flux's objects) has nothing to be wrong.
    let (out, code) = lint_text(
        "gitops.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\n---\n\
         apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: web}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
    );
    assert_eq!(code, exit::OK, "{out}");
    assert_eq!(
        out,
        "gitops.yaml: 0 objects checked, 0 errors, 0 warnings (skipped: \
         Application \"web\", Kustomization \"web\", Service \"a\")\n\
         gitops.yaml: no Rollout, AnalysisTemplate or ClusterAnalysisTemplate found\n"
    );
    let (out, code) = lint_text("empty.yaml", "# nothing\n");
    assert_eq!(code, exit::FAILED, "{out}");
}

#[test]
fn lint_names_argo_rollouts_objects_and_unknown_fledge_kinds() {
    let (out, code) = lint_text(
        "mixed.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\n---\n\
         apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: c}\n---\n\
         apiVersion: fledge.dev/v1alpha1\nkind: Rolout\nmetadata: {name: r}\n",
    );
    assert_eq!(code, exit::FAILED);
    assert_eq!(
        out,
        "mixed.yaml: Experiment \"e\": warning: Argo Rollouts Experiment: fledge does not run \
         Experiments (ReplicaSets side by side for a fixed time); run the candidate as a canary \
         Rollout with an analysis step instead\n\
         mixed.yaml: Canary \"c\": error: apiVersion: flagger.app/v1beta1 Canary is not a fledge \
         object: `kubectl fledge convert` converts it\n\
         mixed.yaml: Rolout \"r\": error: kind: \"Rolout\" is not a fledge kind: fledge.dev/v1alpha1 \
         serves Rollout, AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun\n\
         mixed.yaml: 2 objects checked, 2 errors, 1 warning (skipped: Experiment \"e\")\n"
    );
}

#[test]
fn lint_of_kinds_fledge_does_not_run_says_so() {
    let (out, code) = lint_text(
        "experiments.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\n---\n\
         apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: r}\n",
    );
    assert_eq!(code, exit::OK, "{out}");
    assert!(
        out.ends_with(
            "experiments.yaml: holds only kinds fledge does not run (Experiment \"e\", \
             AnalysisRun \"r\"): nothing to check\n"
        ),
        "{out}"
    );
    assert!(out.contains("AnalysisRun \"r\": warning: Argo Rollouts AnalysisRun: fledge does not run AnalysisRuns from manifests"), "{out}");
    let docs = parse(
        "apiVersion: argoproj.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\n---\n\
         apiVersion: argoproj.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: r}\n",
    )
    .unwrap();
    let converted = super::convert::convert(&docs).unwrap();
    assert_eq!(
        converted.matches("fledge does not run").count(),
        2,
        "{converted}"
    );
}

#[test]
fn convert_passes_argo_cd_objects_through() {
    let docs = parse(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\n---\n\
         apiVersion: argoproj.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\n",
    )
    .unwrap();
    let out = super::convert::convert(&docs).unwrap();
    assert!(out.contains("kind: Application"), "{out}");
    assert!(out.contains("fledge does not run Experiments"), "{out}");
    let only_argo_cd =
        parse("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web}\n")
            .unwrap();
    assert!(super::convert::convert(&only_argo_cd).is_err());
}

#[test]
fn plan_canary_and_blue_green() {
    let docs = parse(&testdata("plan-input.yaml")).unwrap();
    let out = super::timeline::render(&docs).expect("plans");
    snapshot("plan-input.out", &out);
}

#[test]
fn convert_flagger_blue_green() {
    // Flagger's documented Kubernetes blue/green: iterations instead of weights.
    let docs = parse(
        r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: kubernetes
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 60
  service: {port: 9898, portDiscovery: true}
  analysis:
    interval: 30s
    threshold: 2
    iterations: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
    webhooks:
    - name: load-test
      url: http://flagger-loadtester.test/
      timeout: 5s
      metadata: {type: cmd, cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"}
"#,
    )
    .unwrap();
    let out = super::convert::convert(&docs).unwrap();
    let (lint, code) = lint_text("converted", &out);
    assert_eq!(code, exit::OK, "{lint}\n{out}");
    let converted = parse(&out).unwrap();
    let rollout = &converted[0].value;
    assert_eq!(
        rollout["spec"]["strategy"]["blueGreen"],
        serde_json::json!({"activeService": "podinfo-primary", "previewService": "podinfo-canary",
                           "autoPromotionSeconds": 300,
                           "prePromotionAnalysis": {"templates": [{"templateName": "podinfo-load-test"}]}}),
        "10 iterations of 30s before the switch, the load test before it\n{out}"
    );
    assert_eq!(rollout["spec"]["workloadRef"]["name"], "podinfo");
    for note in [
        "spec.service.portDiscovery: no fledge equivalent",
        "built-in metric \"request-success-rate\"",
        "webhook: part of the pre-promotion analysis",
        "Deployment \"podinfo\" is not in the input",
    ] {
        assert!(out.contains(note), "{note:?} in\n{out}");
    }
    let kinds: Vec<&str> = converted.iter().map(|d| d.kind()).collect();
    assert_eq!(
        kinds,
        ["Rollout", "Service", "Service", "AnalysisTemplate"],
        "no template for the metrics (none converted), one for the load test"
    );
    let metric = &converted[3].value["spec"]["metrics"][0];
    assert_eq!(metric["count"], 10, "{out}");
    assert_eq!(metric["provider"]["web"]["measureStatusCode"], true);
}

#[test]
fn convert_maps_every_flagger_webhook_type() {
    let docs = parse(
        r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 3
    stepWeight: 50
    maxWeight: 50
    webhooks:
    - {name: ask, type: confirm-rollout, url: "http://gate.test/gate/check"}
    - {name: smoke, type: pre-rollout, url: "http://tester.test/", timeout: 30s, metadata: {cmd: "curl x"}}
    - {name: load, type: rollout, url: "http://tester.test/", metadata: {cmd: "hey y"}}
    - {name: more, type: confirm-traffic-increase, url: "http://gate.test/gate/more"}
    - {name: "promotion gate", type: confirm-promotion, url: "http://gate.test/gate/approve"}
    - {name: cleanup, type: post-rollout, url: "http://tester.test/cleanup"}
    - {name: stop, type: rollback, url: "http://gate.test/rollback/check"}
    - {name: tell, type: event, url: "http://events.test/"}
"#,
    )
    .unwrap();
    let out = super::convert::convert(&docs).unwrap();
    let converted = parse(&out).unwrap();
    let (lint, code) = super::lint::render("converted.yaml", &super::lint::lint(&converted));
    assert_eq!(code, exit::OK, "{lint}\n{out}");
    assert!(
        !out.lines()
            .any(|l| l.contains("webhooks[") && l.contains("no fledge equivalent")),
        "no webhook dropped\n{out}"
    );
    let spec = &converted[0].value["spec"];
    let gates: Vec<(&str, &str)> = spec["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        gates,
        [
            ("ask", "confirmRollout"),
            ("more", "confirmTrafficIncrease"),
            ("promotion-gate", "confirmPromotion"),
            ("stop", "rollback"),
        ]
    );
    assert_eq!(spec["gates"][0]["interval"], "1m");
    let steps = spec["strategy"]["canary"]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["setCanaryScale"]["replicas"], 1);
    assert_eq!(
        steps[1]["analysis"]["templates"][0]["templateName"],
        "podinfo-smoke"
    );
    assert_eq!(steps[2]["setCanaryScale"]["matchTrafficWeight"], true);
    assert_eq!(steps[3]["setWeight"], 50);
    assert_eq!(
        steps.last().unwrap()["analysis"]["templates"][0]["templateName"],
        "podinfo-cleanup"
    );
    assert_eq!(
        spec["strategy"]["canary"]["analysis"]["templates"][0]["templateName"],
        "podinfo-load"
    );
    assert_eq!(
        spec["notifications"]["subscriptions"][0]["channel"],
        "podinfo-tell"
    );
    let kinds: Vec<(&str, &str)> = converted.iter().map(|d| (d.kind(), d.name())).collect();
    for k in [
        ("AnalysisTemplate", "podinfo-smoke"),
        ("AnalysisTemplate", "podinfo-load"),
        ("AnalysisTemplate", "podinfo-cleanup"),
        ("NotificationChannel", "podinfo-tell"),
    ] {
        assert!(kinds.contains(&k), "{k:?} in {kinds:?}");
    }
    let smoke = converted
        .iter()
        .find(|d| d.name() == "podinfo-smoke")
        .unwrap();
    let m = &smoke.value["spec"]["metrics"][0];
    assert_eq!(m["failureLimit"], 2, "threshold 3");
    assert_eq!(m["provider"]["web"]["timeoutSeconds"], 30);
    assert!(
        m["provider"]["web"]["body"]
            .as_str()
            .unwrap()
            .contains("curl x")
    );
    assert!(out.contains("create Secret \"podinfo-tell\" with key address: http://events.test/"));
}

#[test]
fn convert_maps_graphite_influxdb_and_datadog_metrics_of_both_peers() {
    let argo = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\nspec:\n  \
        args: [{name: service}]\n  metrics:\n  \
        - name: graphite\n    successCondition: result < 0.05\n    provider:\n      graphite:\n        \
          address: http://graphite:8080\n        query: |\n          target=asPercent(\n            stats.{{args.service}}.errors, stats.{{args.service}}.requests)&from=-10min\n  \
        - name: influx\n    provider:\n      influxdb:\n        profile: influx-prod\n        query: 'from(bucket: \"b\") |> range(start: -5m)'\n  \
        - name: datadog\n    provider:\n      datadog:\n        apiVersion: v2\n        interval: 5m\n        \
          queries: {a: 'sum:errors{service:{{args.service}}}', b: 'sum:hits{service:{{args.service}}}'}\n        \
          formula: a / b\n        secretRef: {name: dd, namespaced: true}\n";
    let out = super::convert::convert(&parse(argo).unwrap()).unwrap();
    let converted = parse(&out).unwrap();
    let (lint, code) = super::lint::render("converted.yaml", &super::lint::lint(&converted));
    assert_eq!(code, exit::OK, "{lint}\n{out}");
    let t = &converted[0].value["spec"]["metrics"];
    assert_eq!(
        t[0]["provider"]["graphite"]["query"],
        "asPercent( stats.{{args.service}}.errors, stats.{{args.service}}.requests)"
    );
    assert_eq!(t[0]["provider"]["graphite"]["from"], "10m");
    assert_eq!(
        t[1]["provider"]["influxdb"]["tokenSecret"]["name"],
        "influx-prod"
    );
    assert!(out.contains("set address and org here"), "{out}");
    assert_eq!(t[2]["provider"]["datadog"]["formula"], "a / b");
    assert_eq!(t[2]["provider"]["datadog"]["secretRef"]["name"], "dd");

    let flagger = "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: errors}\nspec:\n  \
        provider: {type: datadog, address: https://api.datadoghq.eu, secretRef: {name: datadog}}\n  \
        query: 'sum:requests.error{service:{{ target }}}.as_count()'\n";
    let out = super::convert::convert(&parse(flagger).unwrap()).unwrap();
    let d = &parse(&out).unwrap()[0].value["spec"]["metrics"][0]["provider"]["datadog"];
    assert_eq!(
        d["query"],
        "sum:requests.error{service:{{args.target}}}.as_count()"
    );
    assert_eq!(d["address"], "https://api.datadoghq.eu");
    assert!(out.contains("datadog_api_key"), "{out}");
}

#[test]
fn convert_maps_new_relic_and_cloudwatch_metrics_of_both_peers() {
    let argo = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args: [{name: app}, {name: lb}]
  metrics:
  - name: success-rate
    successCondition: result.successRate >= 0.95
    provider:
      newRelic:
        profile: nr-prod
        timeout: 10
        query: FROM Transaction SELECT percentage(count(*), WHERE httpResponseCode != 500) as successRate where appName = '{{ args.app }}'
  - name: error-rate
    interval: 1m
    successCondition: result < 0.01
    provider:
      cloudWatch:
        interval: 5m
        metricDataQueries:
        - id: rate
          expression: errors / requests
        - id: errors
          metricStat:
            metric:
              namespace: AWS/ApplicationELB
              metricName: HTTPCode_Target_5XX_Count
              dimensions: [{name: LoadBalancer, value: "{{args.lb}}"}]
            period: 300
            stat: Sum
            unit: Count
          returnData: false
        - id: requests
          metricStat:
            metric: {namespace: AWS/ApplicationELB, metricName: RequestCount}
            period: 300
            stat: Sum
          returnData: false
"#;
    let out = super::convert::convert(&parse(argo).unwrap()).unwrap();
    let converted = parse(&out).unwrap();
    let (lint, code) = super::lint::render("converted.yaml", &super::lint::lint(&converted));
    assert_eq!(code, exit::OK, "{lint}\n{out}");
    let t = &converted[0].value["spec"]["metrics"];
    let nr = &t[0]["provider"]["newRelic"];
    assert_eq!(nr["secretRef"]["name"], "nr-prod");
    assert_eq!(nr["timeout"], "10s");
    assert!(
        nr["query"]
            .as_str()
            .unwrap()
            .contains("appName = '{{ args.app }}'"),
        "{out}"
    );
    assert!(out.contains("personal-api-key"), "{out}");
    let cw = &t[1]["provider"]["cloudWatch"];
    assert_eq!(cw["interval"], "5m");
    assert_eq!(cw["metricDataQueries"][1]["metricStat"]["period"], 300);
    assert_eq!(cw["metricDataQueries"][2]["returnData"], false);

    let flagger = r#"apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: cw}
spec:
  provider: {type: cloudwatch, region: ap-northeast-1}
  query: |
    [
      {"Id": "e1", "Expression": "m1 / m2", "Label": "Error Rate"},
      {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "MyKubernetesServices", "MetricName": "ErrorCount",
        "Dimensions": [{"Name": "appName", "Value": "{{ name }}.{{ namespace }}"}]},
        "Period": 60, "Stat": "Sum", "Unit": "Count"}, "ReturnData": false},
      {"Id": "m2", "MetricStat": {"Metric": {"Namespace": "MyKubernetesServices", "MetricName": "RequestCount",
        "Dimensions": [{"Name": "appName", "Value": "{{ name }}.{{ namespace }}"}]},
        "Period": 60, "Stat": "Sum", "Unit": "Count"}, "ReturnData": false}
    ]
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: nr}
spec:
  provider: {type: newrelic, secretRef: {name: newrelic}}
  query: SELECT filter(sum(newrelic.timeslice.value), WHERE metricTimesliceName = 'Errors/all') / sum(newrelic.timeslice.value) * 100 FROM Metric WHERE appName = '{{ target }}'
"#;
    let out = super::convert::convert(&parse(flagger).unwrap()).unwrap();
    let converted = parse(&out).unwrap();
    let cw = &converted[0].value["spec"]["metrics"][0]["provider"]["cloudWatch"];
    assert_eq!(cw["region"], "ap-northeast-1");
    let q = &cw["metricDataQueries"];
    assert_eq!(q[0]["id"], "e1");
    assert_eq!(q[0]["expression"], "m1 / m2");
    assert_eq!(q[1]["metricStat"]["metric"]["metricName"], "ErrorCount");
    assert_eq!(
        q[1]["metricStat"]["metric"]["dimensions"][0]["value"],
        "{{args.name}}.{{args.namespace}}"
    );
    assert_eq!(q[2]["returnData"], false);
    let nr = &converted[1].value["spec"]["metrics"][0]["provider"]["newRelic"];
    assert_eq!(nr["secretRef"]["name"], "newrelic");
    assert!(out.contains("newrelic_query_key"), "{out}");
    let (lint, code) = super::lint::render("converted.yaml", &super::lint::lint(&converted));
    assert_eq!(code, exit::OK, "{lint}\n{out}");
}

#[test]
fn convert_argo_replica_and_revision_fields() {
    let out = convert("argo-replica-fields.yaml");
    assert!(out.contains("minPodsPerReplicaSet: 2"), "{out}");
    assert!(out.contains("rollbackWindow:\n    revisions: 3"), "{out}");
    assert!(out.contains("abortScaleDownDelaySeconds: 0"), "{out}");
    assert!(out.contains("maxUnavailable: 1"), "{out}");
    assert_eq!(
        out.matches("scaleDownDelayRevisionLimit").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains(
            "spec.strategy.canary.minPodsPerReplicaSet: applies only with a traffic router"
        ),
        "{out}"
    );
}
