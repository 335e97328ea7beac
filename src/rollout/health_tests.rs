//! Argo CD and Flux judge a Rollout by its status alone. These tests take statuses the planner
//! really produces, in every phase, and check what each tool concludes from them:
//!
//! - Flux (`wait: true` / `healthChecks`) computes kstatus, the rules of
//!   sigs.k8s.io/cli-utils `status.Compute` for a resource with standard conditions, restated in
//!   [`kstatus`]: a Kustomization is Ready when every object is Current and fails on Failed.
//! - Argo CD runs the health checks and resource actions of `integrations/argocd` in its Lua 5.1
//!   interpreter; here Debian's `lua5.1` runs the same files, in a sandbox that offers only what
//!   Argo CD's does, and every action's result is fed back into the planner.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::fixtures::*;
use super::gates::{RunKind, run_name};
use super::plan::plan;
use crate::api::analysis::AnalysisPhase;
use crate::api::conditions as cond;
use crate::api::{Phase, Request, RequestAction, Rollout};

/// The status kstatus computes (sigs.k8s.io/cli-utils/pkg/kstatus/status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

/// kstatus for a resource of a kind it has no special rules for: deletion, then
/// `observedGeneration` against `generation`, then the first `Reconciling` or `Stalled` condition
/// that is True; without any of them the resource is Current.
fn kstatus(obj: &Value) -> KStatus {
    if obj["metadata"]["deletionTimestamp"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        return KStatus::Terminating;
    }
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) && generation != observed
    {
        return KStatus::InProgress;
    }
    for c in obj["status"]["conditions"].as_array().into_iter().flatten() {
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some(cond::RECONCILING), Some("True")) => return KStatus::InProgress,
            (Some(cond::STALLED), Some("True")) => return KStatus::Failed,
            _ => {}
        }
    }
    KStatus::Current
}

/// One Rollout as the controller leaves it, and what Flux and Argo CD must make of it.
struct Case {
    name: &'static str,
    sim: Sim,
    kstatus: KStatus,
    argocd: &'static str,
}

/// A Rollout of 2 replicas whose first revision is Healthy; `web:2` is the next revision.
fn healthy_canary(steps: Vec<crate::api::CanaryStep>) -> Sim {
    Sim::healthy(RolloutBuilder::canary().replicas(2).steps(steps).build())
}

/// Every phase the planner can put a Rollout in, each reached the way a real rollout gets there.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut case = |name, sim: Sim, kstatus, argocd| {
        cases.push(Case {
            name,
            sim,
            kstatus,
            argocd,
        })
    };

    let sim = healthy_canary(vec![w(50), pause_forever()]);
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    case("healthy", sim, KStatus::Current, "Healthy");

    // Git changed the spec; the controller has not reconciled it yet.
    let mut sim = healthy_canary(vec![w(50), pause_forever()]);
    sim.set_image("web:2");
    case(
        "new spec not observed yet",
        sim,
        KStatus::InProgress,
        "Progressing",
    );

    // The canary's pods are being created.
    let mut sim = healthy_canary(vec![w(50), pause_forever()]);
    sim.set_image("web:2");
    sim.reconcile();
    assert_eq!(sim.status().phase, Some(Phase::Progressing));
    case("progressing", sim, KStatus::InProgress, "Progressing");

    // Waiting at an indefinite pause step for a promote.
    let mut sim = healthy_canary(vec![w(50), pause_forever(), w(100)]);
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    case("paused at a step", sim, KStatus::InProgress, "Suspended");

    // A timed pause step.
    let mut sim = healthy_canary(vec![w(50), pause("10m")]);
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    case("in a timed pause", sim, KStatus::InProgress, "Suspended");

    // Paused by a request in the middle of a rollout.
    let mut sim = healthy_canary(vec![w(50), pause_forever()]);
    sim.set_image("web:2");
    sim.reconcile();
    sim.request(RequestAction::Pause);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    case("paused by request", sim, KStatus::InProgress, "Suspended");

    // Blue-green waiting for a manual promotion.
    let mut sim = manual_blue_green();
    sim.set_image("web:2");
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    case(
        "blue-green awaiting promotion",
        sim,
        KStatus::InProgress,
        "Suspended",
    );

    // Paused in Git (`spec.paused: true`) in the middle of a rollout.
    let mut sim = healthy_canary(vec![w(50), pause_forever(), w(100)]);
    sim.set_image("web:2");
    sim.reconcile();
    sim.set_paused(true);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    case("paused in Git", sim, KStatus::InProgress, "Suspended");

    // A step's analysis came back Inconclusive: paused for a human to judge.
    let (mut sim, run) = at_step_analysis();
    finish_run(&mut sim, &run, AnalysisPhase::Inconclusive);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Paused));
    case(
        "analysis inconclusive",
        sim,
        KStatus::InProgress,
        "Suspended",
    );

    // A step's analysis failed: aborted by the controller, all traffic back on stable.
    let (mut sim, run) = at_step_analysis();
    finish_run(&mut sim, &run, AnalysisPhase::Failed);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    case("aborted by analysis", sim, KStatus::Failed, "Degraded");

    // Blue-green: the preview ReplicaSet is still coming up.
    let mut sim = manual_blue_green();
    sim.set_image("web:2");
    sim.reconcile();
    assert_eq!(sim.status().phase, Some(Phase::Progressing));
    case(
        "blue-green preview progressing",
        sim,
        KStatus::InProgress,
        "Progressing",
    );

    // Aborted: all traffic back on stable.
    let mut sim = healthy_canary(vec![w(50), pause_forever()]);
    sim.set_image("web:2");
    sim.settle();
    sim.request(RequestAction::Abort);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    case("aborted", sim, KStatus::Failed, "Degraded");

    // No progress within progressDeadlineSeconds: the canary's pod never becomes available.
    let mut sim = Sim::healthy(
        RolloutBuilder::canary()
            .replicas(2)
            .steps([w(50), pause_forever()])
            .progress_deadline(60)
            .build(),
    );
    sim.set_image("web:2");
    sim.reconcile();
    sim.sync_pods();
    sim.reconcile();
    sim.advance(60);
    sim.reconcile();
    assert_eq!(sim.status().phase, Some(Phase::Degraded));
    case(
        "progress deadline exceeded",
        sim,
        KStatus::Failed,
        "Degraded",
    );

    // A Service the spec names does not exist.
    let rollout = RolloutBuilder::canary().replicas(2).build();
    let world = ObservedBuilder::for_rollout(&rollout)
        .without_service(CANARY_SVC)
        .build();
    let mut sim = Sim::new(rollout);
    sim.world = world;
    sim.reconcile();
    assert!(cond::is_true(&sim.status().conditions, cond::INVALID_SPEC));
    case("invalid spec", sim, KStatus::Failed, "Degraded");

    // Promoted through all steps: Healthy again on the new revision.
    let mut sim = healthy_canary(vec![w(50), pause_forever()]);
    sim.set_image("web:2");
    sim.settle();
    sim.request(RequestAction::Promote);
    sim.settle();
    assert_eq!(sim.status().phase, Some(Phase::Healthy));
    assert_eq!(sim.status().stable_revision, Some(hash_of("web:2")));
    case("promoted", sim, KStatus::Current, "Healthy");

    cases
}

/// A Healthy blue-green Rollout of 2 replicas that waits for a manual promotion.
fn manual_blue_green() -> Sim {
    Sim::healthy(
        RolloutBuilder::blue_green()
            .replicas(2)
            .auto_promotion(false)
            .build(),
    )
}

/// A canary waiting on its step analysis, and that analysis run's name.
fn at_step_analysis() -> (Sim, String) {
    let rollout = RolloutBuilder::canary()
        .replicas(2)
        .steps([w(50), analysis_step(), w(100)])
        .build();
    let mut sim = with_errors_template(rollout);
    sim.set_image("web:2");
    sim.settle();
    let attempt = sim.status().analysis_attempt.unwrap_or(0);
    let run = run_name(NAME, &hash_of("web:2"), RunKind::Step(1), attempt);
    (sim, run)
}

fn to_json(rollout: &Rollout) -> Value {
    let mut value = serde_json::to_value(rollout).expect("a Rollout serializes");
    // As the API server returns it: with its kind, which the Lua scripts may look at.
    value["apiVersion"] = json!("fledge.dev/v1alpha1");
    value["kind"] = json!("Rollout");
    value
}

#[test]
fn kstatus_follows_the_phase_in_every_case() {
    for case in cases() {
        let obj = to_json(&case.sim.rollout);
        let got = kstatus(&obj);
        assert_eq!(got, case.kstatus, "kstatus of {}: {obj:#}", case.name);
        // Whatever reader a tool uses, Ready agrees: True exactly when kstatus says Current.
        let ready = case
            .sim
            .rollout
            .status
            .as_ref()
            .is_some_and(|s| cond::is_true(&s.conditions, cond::READY));
        let observed = case
            .sim
            .rollout
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            == case.sim.rollout.metadata.generation;
        if observed {
            assert_eq!(ready, got == KStatus::Current, "Ready in {}", case.name);
        }
    }
}

#[test]
fn kstatus_sees_a_deleted_rollout_as_terminating() {
    let sim = healthy_canary(vec![w(50)]);
    let mut obj = to_json(&sim.rollout);
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert_eq!(kstatus(&obj), KStatus::Terminating);
}

// Argo CD.

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/argocd/fledge.dev")
}

/// A JSON value as a Lua table constructor, the way Argo CD hands objects to its scripts.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => {
            let items: Vec<_> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<_> = fields
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_literal(&json!(k)), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Runs `script` with the global `obj` and prints its result as JSON. The script's environment
/// holds only what Argo CD's sandbox offers, so a script that needs more fails here too.
const RUNNER: &str = r#"
local function encode(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v == math.floor(v) then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  end
  local n = #v
  local is_array = n > 0
  for k, _ in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= math.floor(k) then is_array = false end
  end
  local parts = {}
  if is_array then
    for i = 1, n do parts[i] = encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, x in pairs(v) do table.insert(parts, encode(tostring(k)) .. ":" .. encode(x)) end
  return "{" .. table.concat(parts, ",") .. "}"
end
local chunk = assert(loadfile(SCRIPT))
setfenv(chunk, {
  obj = OBJ, ipairs = ipairs, pairs = pairs, next = next, type = type, tostring = tostring,
  tonumber = tonumber, table = table, string = string, math = math, error = error,
})
io.write(encode(chunk()))
"#;

fn run_lua(script: &Path, obj: &Value) -> Value {
    let lua = std::env::var("FLEDGE_LUA").unwrap_or_else(|_| "lua5.1".into());
    let program = format!(
        "local SCRIPT = {}\nlocal OBJ = {}\n{RUNNER}",
        lua_literal(&json!(script.to_string_lossy())),
        lua_literal(obj)
    );
    let mut child = Command::new(&lua)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "running {lua}: {e}; install Lua 5.1 (`bash hack/tools.sh` does) or set FLEDGE_LUA"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(program.as_bytes())
        .expect("writing the program");
    let out = child.wait_with_output().expect("lua runs");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed no JSON ({e}): {}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Drops nulls and empty lists and maps, which Lua cannot tell apart.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

const ACTIONS: [(&str, RequestAction); 6] = [
    ("promote", RequestAction::Promote),
    ("promote-full", RequestAction::PromoteFull),
    ("abort", RequestAction::Abort),
    ("retry", RequestAction::Retry),
    ("pause", RequestAction::Pause),
    ("resume", RequestAction::Resume),
];

#[test]
fn argocd_rollout_health_in_every_case() {
    let script = argocd_dir().join("Rollout/health.lua");
    for case in cases() {
        let hs = run_lua(&script, &to_json(&case.sim.rollout));
        assert_eq!(hs["status"], case.argocd, "{}: {hs}", case.name);
        assert!(hs["message"].is_string(), "{}: {hs}", case.name);
    }
    // Before the controller has written any status.
    let fresh = RolloutBuilder::canary().build();
    let hs = run_lua(&script, &to_json(&fresh));
    assert_eq!(hs["status"], "Progressing", "{hs}");
}

/// Files `action` on the case's Rollout and plans once: whether the controller acted on it, that
/// is consumed it and decided differently than without it (a pause of a paused rollout is
/// consumed but changes nothing).
fn accepted(case: &Case, action: RequestAction) -> bool {
    let (world, now) = (&case.sim.world, case.sim.now);
    let without = plan(&case.sim.rollout, world, now);
    let mut rollout = case.sim.rollout.clone();
    rollout.status.get_or_insert_with(Default::default).request = Some(Request {
        action,
        requested_by: Some("alice".into()),
    });
    let with = plan(&rollout, world, now);
    let ignored = with.events.iter().any(|e| e.reason == "RequestIgnored");
    with.status.request.is_none() && !ignored && with.status != without.status
}

/// Whether the status was computed from the current spec; Argo CD can only judge by the status.
fn observed(case: &Case) -> bool {
    case.sim
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        == case.sim.rollout.metadata.generation
}

/// The actions Argo CD offers are exactly the requests the controller would act on: for every
/// case, each action is filed and planned, and it is enabled iff the controller acted on it.
#[test]
fn argocd_actions_offered_are_the_requests_the_controller_accepts() {
    let discovery = argocd_dir().join("Rollout/actions/discovery.lua");
    for case in cases().iter().filter(|c| observed(c)) {
        let offered = run_lua(&discovery, &to_json(&case.sim.rollout));
        let names: BTreeSet<&str> = offered
            .as_object()
            .expect("discovery returns a map")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            ACTIONS.iter().map(|(n, _)| *n).collect(),
            "{}: every action is listed",
            case.name
        );
        for (name, action) in ACTIONS {
            let enabled = offered[name]["disabled"] == json!(false);
            assert_eq!(
                enabled,
                accepted(case, action),
                "{}: action {name} offered={enabled}, but the controller disagrees",
                case.name
            );
        }
    }
}

/// Each action changes nothing but `status.request`, and the controller consumes what it wrote.
#[test]
fn argocd_actions_file_a_status_request_the_controller_consumes() {
    for case in cases() {
        let before = to_json(&case.sim.rollout);
        for (name, action) in ACTIONS {
            let script = argocd_dir().join(format!("Rollout/actions/{name}/action.lua"));
            let after = run_lua(&script, &before);
            assert_eq!(
                after["status"]["request"],
                json!({"action": action.as_str(), "requestedBy": "argocd"}),
                "{}: {name}",
                case.name
            );
            let mut rest = after.clone();
            rest["status"]
                .as_object_mut()
                .expect("a status")
                .remove("request");
            assert_eq!(
                normalized(&rest),
                normalized(&before),
                "{}: {name} changed more than status.request",
                case.name
            );
            // What Argo CD would patch in is a valid Rollout, and planning consumes its request
            // (with an invalid spec too: it is answered with a RequestIgnored warning).
            let rollout: Rollout = serde_json::from_value(after)
                .unwrap_or_else(|e| panic!("{}: {name} returned no Rollout: {e}", case.name));
            let plan = plan(&rollout, &case.sim.world, case.sim.now);
            assert_eq!(plan.status.request, None, "{}: {name}", case.name);
        }
    }
}

#[test]
fn argocd_analysis_run_health_by_phase() {
    let script = argocd_dir().join("AnalysisRun/health.lua");
    let run = |status: Value| {
        json!({
            "apiVersion": "fledge.dev/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "web-7d9f-1", "namespace": "shop", "generation": 1},
            "spec": {"metrics": [{"name": "success-rate"}]},
            "status": status,
        })
    };
    for (phase, want) in [
        ("Pending", "Progressing"),
        ("Running", "Progressing"),
        ("Successful", "Healthy"),
        ("Failed", "Degraded"),
        ("Error", "Degraded"),
        ("Inconclusive", "Suspended"),
        // A background analysis stopped at promotion is nothing wrong.
        ("Terminated", "Healthy"),
    ] {
        let hs = run_lua(
            &script,
            &run(json!({"phase": phase, "message": format!("metric success-rate: {phase}")})),
        );
        assert_eq!(hs["status"], want, "{phase}: {hs}");
        assert_eq!(hs["message"], format!("metric success-rate: {phase}"));
        let hs = run_lua(&script, &run(json!({"phase": phase})));
        assert_eq!(hs["message"], format!("AnalysisRun is {phase}"));
    }
    let hs = run_lua(&script, &run(Value::Null));
    assert_eq!(hs["status"], "Progressing", "no status yet: {hs}");
}

/// The ConfigMap snippet users copy embeds exactly the tested Lua files.
#[test]
fn argocd_cm_snippet_embeds_the_tested_scripts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/argocd/argocd-cm.yaml");
    let cm: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("argocd-cm.yaml")).unwrap();
    let data = &cm["data"];
    let file = |p: &str| std::fs::read_to_string(argocd_dir().join(p)).expect(p);
    let stale = "integrations/argocd/argocd-cm.yaml is stale: run hack/gen-argocd-cm.py";
    for kind in ["Rollout", "AnalysisRun"] {
        assert_eq!(
            data[format!("resource.customizations.health.fledge.dev_{kind}")],
            json!(file(&format!("{kind}/health.lua"))),
            "{stale}"
        );
    }
    let actions: Value = serde_yaml::from_str(
        data["resource.customizations.actions.fledge.dev_Rollout"]
            .as_str()
            .expect("actions"),
    )
    .unwrap();
    assert_eq!(
        actions["discovery.lua"],
        json!(file("Rollout/actions/discovery.lua")),
        "{stale}"
    );
    let definitions = actions["definitions"].as_array().expect("definitions");
    assert_eq!(definitions.len(), ACTIONS.len(), "{stale}");
    for ((name, _), definition) in ACTIONS.iter().zip(definitions) {
        assert_eq!(definition["name"], *name, "{stale}");
        assert_eq!(
            definition["action.lua"],
            json!(file(&format!("Rollout/actions/{name}/action.lua"))),
            "{stale}"
        );
    }
}
