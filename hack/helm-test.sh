#!/usr/bin/env bash
# Checks charts/fledge: its CRDs equal crds/, `helm lint` passes for every values file in
# charts/fledge/ci/, and every rendering is accepted by a server-side dry-run apply on the
# cluster in KUBECONFIG (the local control plane in `make test`).
#   hack/helm-test.sh            all of it (needs a cluster)
#   hack/helm-test.sh offline    CRD sync check, lint and render only
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*" >&2; }
chart=charts/fledge

step "chart CRDs match crds/"
for f in crds/*.yaml; do
  if ! cmp -s "$f" "$chart/crds/$(basename "$f")"; then
    echo "$chart/crds/$(basename "$f") is stale: run \`make crds\`" >&2
    exit 1
  fi
done
for f in "$chart"/crds/*.yaml; do
  [ -e "crds/$(basename "$f")" ] || { echo "$f has no source in crds/: remove it" >&2; exit 1; }
done

helm=$(bash hack/build-helm.sh)
source hack/versions.sh   # K8S_VERSION: render for the Kubernetes the tests run on
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name=values-file pairs; the defaults render with no values file.
renders=(default=)
for f in "$chart"/ci/*-values.yaml; do
  name=$(basename "$f" -values.yaml)
  renders+=("$name=$f")
done

for r in "${renders[@]}"; do
  name=${r%%=*} values=${r#*=}
  args=(); [ -n "$values" ] && args=(--values "$values")
  step "helm lint ($name)"
  "$helm" lint --strict "$chart" "${args[@]}"
  "$helm" template fledge "$chart" --namespace fledge-system --kube-version "$K8S_VERSION" "${args[@]}" >"$out/$name.yaml"
done

# Values that would install a broken controller must not render, and must say why; their
# nearest good neighbours must still render, so a check never refuses more than it should.
step "renders that must fail, and their neighbours that must not"
template() { "$helm" template fledge "$chart" --namespace fledge-system --kube-version "$K8S_VERSION" "$@"; }
must_fail() {
  local want=$1 err; shift
  if err=$(template "$@" 2>&1 >/dev/null); then
    echo "helm template $* rendered, but must fail: $want" >&2
    exit 1
  fi
  grep -qF -- "$want" <<<"$err" || { echo "helm template $*: failed without saying \"$want\": $err" >&2; exit 1; }
}
must_render() { template "$@" >/dev/null || { echo "helm template $* must render" >&2; exit 1; }; }
must_fail "controller.leaderElection.enabled=false with controller.replicas=2" --set controller.leaderElection.enabled=false
must_render --set controller.leaderElection.enabled=false --set controller.replicas=1
must_fail "controller.leaderElection.renewDeadlineSeconds=15 is not below leaseDurationSeconds=15" --set controller.leaderElection.renewDeadlineSeconds=15
must_fail "controller.leaderElection.renewDeadlineSeconds=10 is not below leaseDurationSeconds=4" --set controller.leaderElection.leaseDurationSeconds=4
must_render --set controller.leaderElection.leaseDurationSeconds=4 --set controller.leaderElection.renewDeadlineSeconds=3 --set controller.leaderElection.retryPeriodSeconds=1
must_fail "controller.leaderElection.retryPeriodSeconds=10 is not below renewDeadlineSeconds=10" --set controller.leaderElection.retryPeriodSeconds=10
must_render --set controller.leaderElection.retryPeriodSeconds=9
must_fail "controller.metricsPort and controller.healthPort are both 8081" --set controller.metricsPort=8081
must_fail "at '/instanceId': 'Team_A' does not match pattern" --set instanceId=Team_A
must_fail "at '/instanceId': 'team.a' does not match pattern" --set instanceId=team.a
must_fail "at '/instanceId': maxLength" --set instanceId="$(printf 'a%.0s' {1..46})"
must_render --set instanceId="team-a$(printf '0%.0s' {1..39})"
must_fail "podDisruptionBudget.minAvailable=2 with controller.replicas=2" --set podDisruptionBudget.minAvailable=2
must_fail "podDisruptionBudget.minAvailable=67% with controller.replicas=3" --set controller.replicas=3 --set podDisruptionBudget.minAvailable=67%
must_render --set controller.replicas=3 --set podDisruptionBudget.minAvailable=66%
must_fail "rbac.analysis.secretNames is set but rbac.analysis.secrets is false" --set rbac.analysis.secrets=false --set 'rbac.analysis.secretNames={a}'
template --set rbac.analysis.secrets=true --set 'rbac.analysis.secretNames={a,b}' | grep -qF 'resourceNames: ["a","b"]' \
  || { echo "rbac.analysis.secretNames does not become the Secrets rule's resourceNames" >&2; exit 1; }
if template --set rolloutStatusPolicy.enabled=false | grep -qE '^kind: ValidatingAdmissionPolicy'; then
  echo "rolloutStatusPolicy.enabled=false still renders the status policy" >&2; exit 1
fi

# The rendering is what it claims: least-privilege, hardened and highly available, whatever the
# values in ci/.
step "rendered manifests: security and availability settings"
python3 - "$out"/*.yaml <<'PY'
import re, sys, yaml
bad = []
for path in sys.argv[1:]:
    file = path.rsplit('/', 1)[-1]
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    # Highly available and observable by default: every values file in ci/ keeps these.
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    if not any(k == "PodDisruptionBudget" for k, _ in kinds):
        bad.append(f"{file}: no PodDisruptionBudget")
    if not any(k == "Service" and n.endswith("-metrics") for k, n in kinds):
        bad.append(f"{file}: no metrics Service")
    # The controller uses the job provider exactly when it may: no Jobs watched without rights.
    jobs = any("batch" in r["apiGroups"] and "jobs" in r["resources"]
               for d in docs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"])
    args = [a for d in docs if d["kind"] == "Deployment" for a in d["spec"]["template"]["spec"]["containers"][0]["args"]]
    if f"--job-provider={str(jobs).lower()}" not in args:
        bad.append(f"{file}: rights on Jobs {'granted' if jobs else 'not granted'}, but the controller has {[a for a in args if a.startswith('--job-provider')]}")
    # Analyses never reach the cloud metadata service, and measure only Rollouts' runs, unless
    # a values file says otherwise on purpose.
    if file == "default.yaml":
        if "--allow-standalone-analysis-runs=false" not in args:
            bad.append(f"{file}: standalone AnalysisRuns are measured by default")
        denied = [a for a in args if a.startswith("--analysis-denied-cidrs=")]
        if not denied or "169.254.0.0/16" not in denied[0].split("=", 1)[1].split(","):
            bad.append(f"{file}: the metadata range is not denied by default: {denied}")
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        where = f"{file}: {kind}/{name}"
        if kind == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            if pod["securityContext"].get("runAsNonRoot") is not True:
                bad.append(f"{where}: pod may run as root")
            if pod["securityContext"].get("seccompProfile", {}).get("type") != "RuntimeDefault":
                bad.append(f"{where}: pod lacks seccomp RuntimeDefault")
            args = pod["containers"][0].get("args", [])
            if doc["spec"].get("replicas", 1) < 2 or "--leader-elect=true" not in args:
                bad.append(f"{where}: not 2+ replicas with --leader-elect=true")
            # The leader stops acting before a standby may take over, and retries before it stops.
            flags = dict(a.split("=", 1) for a in args if a.startswith("--lease-"))
            try:
                lease, renew, retry = (int(flags[f"--lease-{k}-seconds"]) for k in ("duration", "renew-deadline", "retry-period"))
                if not retry < renew < lease:
                    bad.append(f"{where}: leader election needs retry period < renew deadline < lease duration: {flags}")
            except (KeyError, ValueError):
                bad.append(f"{where}: lease duration, renew deadline and retry period not all passed as whole seconds: {flags}")
            for c in pod["containers"]:
                sc = c.get("securityContext", {})
                checks = {
                    "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
                    "allowPrivilegeEscalation=false": sc.get("allowPrivilegeEscalation") is False,
                    "capabilities drop ALL": sc.get("capabilities", {}).get("drop") == ["ALL"],
                    "seccomp RuntimeDefault": sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
                    "liveness on /healthz": c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
                    "readiness on /readyz": c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
                    "resource requests": bool(c.get("resources", {}).get("requests")),
                    "cpu and memory limits": {"cpu", "memory"} <= set(c.get("resources", {}).get("limits", {})),
                }
                bad += [f"{where}: {c['name']} lacks {k}" for k, ok in checks.items() if not ok]
        if kind in ("Role", "ClusterRole"):
            for rule in doc.get("rules", []):
                if "*" in rule.get("verbs", []) or "*" in rule.get("resources", []):
                    bad.append(f"{where}: wildcard rule {rule}")
                if "fledge.dev" in rule.get("apiGroups", []) and "rollouts" in rule.get("resources", []):
                    # patch is for metadata.finalizers only; update, create and delete never.
                    if set(rule["verbs"]) - {"get", "list", "watch", "patch"}:
                        bad.append(f"{where}: may replace or delete Rollouts: {rule}")
                if "secrets" in rule.get("resources", []) and set(rule["verbs"]) != {"get"}:
                    bad.append(f"{where}: more than get on Secrets: {rule}")
                if "secrets" in rule.get("resources", []) and file == "default.yaml":
                    bad.append(f"{where}: Secrets granted by default: {rule}")
                # The rollout manager reads what `kubectl fledge` reads and writes only requests.
                if name.endswith("-rollout-manager"):
                    if rule["resources"] == ["rollouts/status"]:
                        if rule["verbs"] != ["patch"]:
                            bad.append(f"{where}: patch only on rollouts/status: {rule}")
                    elif set(rule["verbs"]) - {"get", "list", "watch"}:
                        bad.append(f"{where}: a rollout manager writes only requests: {rule}")
                    if {"pods", "events"} & set(rule["resources"]):
                        bad.append(f"{where}: the plugin reads no pods or Events: {rule}")

# The Rollout status policy: on in every rendering, it exempts exactly the controller's
# ServiceAccount, guards every status field of the CRD but `request`, and binds the Rollouts of
# this installation (its namespace in namespaced mode, its instance id).
crd = next(d for d in yaml.safe_load_all(open("crds/fledge.yaml"))
           if d and d["spec"]["names"]["kind"] == "Rollout")
status_fields = {f for v in crd["spec"]["versions"]
                 for f in v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]}
for path in sys.argv[1:]:
    file = path.rsplit('/', 1)[-1]
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    policies = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    if len(policies) != 1 or len(bindings) != 1:
        bad.append(f"{file}: not one status policy and one binding: {len(policies)}, {len(bindings)}")
        continue
    policy, binding = policies[0]["spec"], bindings[0]["spec"]
    where = f"{file}: ValidatingAdmissionPolicy/{policies[0]['metadata']['name']}"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    controller = f"system:serviceaccount:{deployment['metadata']['namespace']}:{sa}"
    rules = policy["matchConstraints"]["resourceRules"]
    if rules != [{"apiGroups": ["fledge.dev"], "apiVersions": ["*"], "operations": ["UPDATE"],
                  "resources": ["rollouts/status"]}]:
        bad.append(f"{where}: does not match every status write of Rollouts: {rules}")
    if policy.get("failurePolicy") != "Fail":
        bad.append(f"{where}: failurePolicy is not Fail")
    conditions = [c["expression"] for c in policy.get("matchConditions", [])]
    if conditions != [f'request.userInfo.username != "{controller}"']:
        bad.append(f"{where}: does not exempt exactly {controller}: {conditions}")
    changed = next(v["expression"] for v in policy["variables"] if v["name"] == "changed")
    guarded = set(re.findall(r"object\.\?status\.\?(\w+) == oldObject\.\?status\.\?\1 \? \[\] : \['status\.\1'\]", changed))
    if guarded != status_fields - {"request"}:
        bad.append(f"{where}: leaves status fields unguarded: {sorted(status_fields - {'request'} - guarded)}, "
                   f"guards what only clients write or the CRD lacks: {sorted(guarded - (status_fields - {'request'}))}")
    if [v["expression"] for v in policy["validations"]] != ["size(variables.changed) == 0"]:
        bad.append(f"{where}: validations {policy['validations']}")
    if binding["policyName"] != policies[0]["metadata"]["name"] or binding["validationActions"] != ["Deny"]:
        bad.append(f"{where}: binding does not deny with it: {binding}")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    namespace = next((a.split("=", 1)[1] for a in args if a.startswith("--namespace=")), None)
    selector = binding["matchResources"].get("namespaceSelector")
    want = None if namespace is None else {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}]}
    if selector != want:
        bad.append(f"{where}: namespaceSelector {selector}, the controller watches {namespace or 'every namespace'}")
    instance = next((a.split("=", 1)[1] for a in args if a.startswith("--instance-id=")), None)
    selector = binding["matchResources"].get("objectSelector")
    want = ({"matchLabels": {"fledge.dev/instance-id": instance}} if instance else
            {"matchExpressions": [{"key": "fledge.dev/instance-id", "operator": "DoesNotExist"}]})
    if selector != want:
        bad.append(f"{where}: objectSelector {selector}, the controller's instance id is {instance}")
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# docs/install.md lists the controller's rules verb by verb; the all-features rendering grants
# every optional one, so the two must be equal.
step "controller RBAC equals the table in docs/install.md"
python3 - docs/install.md "$out/all-features.yaml" <<'PY'
import re, sys, yaml
doc, rendered = sys.argv[1:]

def flatten(rows):
    out = {}
    for group, resources, verbs in rows:
        for r in resources:
            out.setdefault((group, r), set()).update(verbs)
    return out

table = []
for line in open(doc):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 4 and re.fullmatch(r'[a-z0-9.-]+|"" \(core\)', cells[0]) and cells[0] != "---":
        split = lambda c: [x.strip() for x in c.split(",")]
        table.append(("" if cells[0].startswith('""') else cells[0], split(cells[1]), split(cells[2])))
granted = []
for d in yaml.safe_load_all(open(rendered)):
    if d and d["kind"] in ("Role", "ClusterRole") and not d["metadata"]["name"].endswith("-rollout-manager"):
        granted += [(g, r["resources"], r["verbs"]) for r in d["rules"] for g in r["apiGroups"]]
want, got = flatten(table), flatten(granted)
bad = [f"{g or 'core'}/{r}: docs say {sorted(want.get((g, r), []))}, the chart grants {sorted(got.get((g, r), []))}"
       for g, r in sorted(set(want) | set(got)) if want.get((g, r)) != got.get((g, r))]
# Rollouts, Services, pods and Deployments are read from the watch caches only; AnalysisRuns
# and their status are patched, never replaced.
never = {("fledge.dev", "rollouts"): "get", ("", "services"): "get", ("", "pods"): "get",
         ("apps", "deployments"): "get", ("fledge.dev", "analysisruns"): "update",
         ("fledge.dev", "analysisruns/status"): "get update"}
bad += [f"{g or 'core'}/{r}: the controller never uses {v}" for (g, r), vs in never.items()
        for v in vs.split() if v in got.get((g, r), ())]
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

[ "${1:-}" = offline ] && exit 0

step "server-side dry-run apply of every rendering"
kubectl get namespace fledge-system >/dev/null 2>&1 || kubectl create namespace fledge-system >/dev/null
# The optional ServiceMonitor needs its CRD; a stand-in is installed for real (a dry-run CRD
# would not make its kind served).
kubectl apply --server-side -f hack/testdata/servicemonitor-crd.yaml >/dev/null
kubectl wait --for condition=Established --timeout=60s crd/servicemonitors.monitoring.coreos.com >/dev/null
for r in "${renders[@]}"; do
  name=${r%%=*} values=${r#*=}
  args=(); [ -n "$values" ] && args=(--values "$values")
  # --include-crds: the CRDs are dry-run applied too, exactly as helm would install them.
  "$helm" template fledge "$chart" --namespace fledge-system --kube-version "$K8S_VERSION" --include-crds "${args[@]}" >"$out/$name-crds.yaml"
  echo "-- $name" >&2
  kubectl apply --server-side --dry-run=server --field-manager=helm-test -f "$out/$name-crds.yaml"
done
