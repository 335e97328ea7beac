#!/usr/bin/env python3
"""Runs fledge, Argo Rollouts and Flagger in turn on one local control plane with the same
workloads and writes docs/benchmarks.md. Started by hack/bench-peers.sh, which builds the
binaries and starts the cluster (with an audit policy) first; see that script for usage.

Each controller runs as a child process with a client certificate of its own
(CN=bench-<controller>), so the audit log tells its requests apart. For each controller: install
its CRDs, create N rollouts in a fresh namespace, then the scenarios in order (idle, burst, cold
start; breach on a smaller set), then delete the namespace and stop the controller.
"""

import argparse
import base64
import concurrent.futures
import http.client
import json
import math
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_audit as audit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STEPS = 4  # setWeight 20, pause 10s, setWeight 60, pause 10s
CLUSTER = os.environ.get("FLEDGE_CLUSTER_DIR", "")


def log(msg):
    print(f"bench {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


def kubectl(*args, stdin=None, check=True, kubeconfig=None):
    env = dict(os.environ)
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    r = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:4])}: {r.stderr.strip()}")
    return r.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except Exception:
        return None, ""


# --- identities ------------------------------------------------------------------------------
def kubeconfig_for(name, workdir):
    """A kubeconfig with a client certificate CN=bench-<name>, signed by the cluster's CA, in
    group system:masters: each controller gets every right (as its chart's cluster role would
    mostly give) and a name of its own in the audit log."""
    pki = os.path.join(CLUSTER, "pki")
    key, crt = os.path.join(workdir, f"{name}.key"), os.path.join(workdir, f"{name}.crt")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
                   check=True, capture_output=True)
    csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", f"/O=system:masters/CN=bench-{name}"],
                         check=True, capture_output=True).stdout
    ext = tempfile.NamedTemporaryFile("w", delete=False, dir=workdir)
    ext.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=clientAuth\n")
    ext.close()
    subprocess.run(["openssl", "x509", "-req", "-CA", f"{pki}/ca.crt", "-CAkey", f"{pki}/ca.key", "-set_serial",
                    str(int.from_bytes(os.urandom(8), "big")), "-days", "30", "-extfile", ext.name, "-out", crt],
                   input=csr, check=True, capture_output=True)
    admin = open(os.environ["KUBECONFIG"]).read()
    b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()  # noqa: E731
    text = re.sub(r"client-certificate-data: .*", f"client-certificate-data: {b64(crt)}", admin)
    text = re.sub(r"client-key-data: .*", f"client-key-data: {b64(key)}", text)
    path = os.path.join(workdir, f"{name}.kubeconfig")
    open(path, "w").write(text)
    return path


# --- the controllers -----------------------------------------------------------------------
class Controller:
    # What the controller writes to take the canary's share away on an abort: without a router,
    # the canary ReplicaSet's replicas.
    abort_writes = {"replicasets"}
    name = ""
    kind = ""  # the resource polled for progress
    # The kinds the harness deletes to take the N rollouts away before the breach.
    workload_kinds = ()
    # The analysis interval of the breach's metric: the shortest the controller allows.
    breach_interval_s = 1

    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.proc = None
        self.kubeconfig = kubeconfig_for(self.name, workdir)
        self.user = f"bench-{self.name}"
        self.health_port, self.metrics_port = free_port(), free_port()

    def start(self, ns):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        logf = open(os.path.join(self.workdir, f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen(self.command(ns), env=env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        return time.time()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_s(self):
        return audit.proc_cpu_seconds(open(f"/proc/{self.proc.pid}/stat").read(), os.sysconf("SC_CLK_TCK"))

    def rss_mib(self):
        return audit.proc_rss_mib(open(f"/proc/{self.proc.pid}/status").read())

    def ready(self):
        code, _ = http_get(self.ready_url())
        return code == 200

    def reconciled(self):
        """How many rollouts (or reconciles) the controller's metrics say it has reconciled, or
        None where its metrics do not say."""
        return None

    def install_crds(self):
        files = self.crd_files()
        args = ["apply", "--server-side", "--force-conflicts"]
        for f in files:
            args += ["-f", f]
        kubectl(*args)
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def template(app, image):
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]},
    }


def rollout(api_version, app, image, analysis):
    """fledge's and Argo Rollouts' Rollout (the same fields): a replica-ratio canary."""
    canary = {"steps": [{"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 60},
                        {"pause": {"duration": "10s"}}]}
    if analysis:
        canary = {"steps": [{"setWeight": 20}, {"pause": {}}],
                  "analysis": {"templates": [{"templateName": "bench-breach"}]}}
    return [{
        "apiVersion": api_version, "kind": "Rollout", "metadata": {"name": app},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}},
                 "template": template(app, image), "strategy": {"canary": canary}},
    }]


def routed_rollout(api_version, app, image):
    """The same Rollout with an SMI TrafficSplit between two Services (fledge and Argo Rollouts
    share these fields). The Services are headless: the API server allocates no ClusterIP for
    them, which at N = 1,000 is what stopped Flagger (hack/bench_notes_n200.md)."""
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{app}-{role}"},
                 "spec": {"clusterIP": "None", "selector": {"app": app}, "ports": [{"port": 80, "targetPort": 80}]}}
                for role in ("stable", "canary")]
    r = rollout(api_version, app, image, None)[0]
    r["spec"]["strategy"]["canary"].update(
        {"stableService": f"{app}-stable", "canaryService": f"{app}-canary", "trafficRouting": {"smi": {}}})
    return services + [r]


def smi_crd():
    """SMI's TrafficSplit CRD at v1alpha2, the version all three write here (fledge's only one;
    Argo Rollouts' `--traffic-split-api-version`; Flagger's provider `smi:v1alpha2`). No mesh
    reads the splits: the scenario measures what the controllers write and when."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "trafficsplits.split.smi-spec.io"},
            "spec": {"group": "split.smi-spec.io", "scope": "Namespaced",
                     "names": {"kind": "TrafficSplit", "plural": "trafficsplits", "singular": "trafficsplit",
                               "listKind": "TrafficSplitList"},
                     "versions": [{"name": "v1alpha2", "served": True, "storage": True, "schema": schema}]}}


def analysis_template(api_version, result, query):
    """fledge's and Argo Rollouts' AnalysisTemplate: the query, measured every second."""
    return {"apiVersion": api_version, "kind": "AnalysisTemplate", "metadata": {"name": "bench-breach"},
            "spec": {"metrics": [{"name": "errors", "interval": "1s", "failureLimit": 0,
                                  "successCondition": f"{result} < 0.5", "failureCondition": f"{result} >= 0.5",
                                  "provider": {"prometheus": {"address": os.environ["FLEDGE_PROMETHEUS_URL"],
                                                              "query": query}}}]}}


class Fledge(Controller):
    name, kind, title = "fledge", "rollouts.fledge.dev", "fledge"
    workload_kinds = ("rollouts.fledge.dev",)

    def command(self, ns):
        return [self.args.fledge_bin, "controller", "--leader-elect=false", "--namespace", ns,
                "--metrics-addr", f"127.0.0.1:{self.metrics_port}", "--health-addr", f"127.0.0.1:{self.health_port}",
                "--log-level", "warn", *self.args.fledge_arg]

    def ready_url(self):
        return f"http://127.0.0.1:{self.health_port}/readyz"

    def reconciled(self):
        code, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        return audit.prometheus_sum(text, "fledge_reconcile_total") if code == 200 else 0

    def crd_files(self):
        return [os.path.join(REPO, "crds", f) for f in sorted(os.listdir(os.path.join(REPO, "crds")))]

    def breach_template(self, query):
        return analysis_template("fledge.dev/v1alpha1", "result", query)

    def objects(self, i, image, analysis=None, prefix="app", routed=False):
        if routed:
            return routed_rollout("fledge.dev/v1alpha1", f"{prefix}{i}", image)
        return rollout("fledge.dev/v1alpha1", f"{prefix}{i}", image, analysis)

    def state(self, o):
        s, m = o.get("status") or {}, o["metadata"]
        current = s.get("observedGeneration") == m.get("generation")
        healthy = current and s.get("phase") == "Healthy"
        return {
            "initial": healthy,
            "step1": current and (s.get("currentStepIndex") or 0) >= 1,
            "done": healthy and s.get("currentStepIndex") == STEPS and s.get("stableRevision") == s.get("currentRevision"),
            "weight": s.get("canaryWeight"),
            "aborted": bool(s.get("abort")),
        }


class ArgoRollouts(Controller):
    name, kind, title = "argo-rollouts", "rollouts.argoproj.io", "Argo Rollouts"
    workload_kinds = ("rollouts.argoproj.io",)

    def command(self, ns):
        return [self.args.argo_bin, "--kubeconfig", self.kubeconfig, "--namespaced", "--namespace", ns,
                "--leader-elect=false", "--loglevel", "warn", "--traffic-split-api-version", "v1alpha2",
                "--healthzPort", str(self.health_port), "--metricsport", str(self.metrics_port)]

    def ready_url(self):
        return f"http://127.0.0.1:{self.health_port}/healthz"

    def reconciled(self):
        code, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        return audit.prometheus_sum(text, "rollout_reconcile_count", "name") if code == 200 else 0

    def crd_files(self):
        d = os.path.join(self.args.argo_home, "crds")
        return [os.path.join(d, f) for f in sorted(os.listdir(d))]

    def breach_template(self, query):
        # Argo Rollouts' `result` is the query's vector.
        return analysis_template("argoproj.io/v1alpha1", "result[0]", query)

    def objects(self, i, image, analysis=None, prefix="app", routed=False):
        if routed:
            return routed_rollout("argoproj.io/v1alpha1", f"{prefix}{i}", image)
        return rollout("argoproj.io/v1alpha1", f"{prefix}{i}", image, analysis)

    def state(self, o):
        s, m = o.get("status") or {}, o["metadata"]
        current = str(s.get("observedGeneration")) == str(m.get("generation"))
        healthy = current and s.get("phase") == "Healthy"
        return {
            "initial": healthy,
            "step1": current and (s.get("currentStepIndex") or 0) >= 1,
            "done": healthy and s.get("currentStepIndex") == STEPS and s.get("stableRS") == s.get("currentPodHash"),
            # A replica-ratio canary has no weights in its status: the canary's share of the pods.
            "weight": (((s.get("canary") or {}).get("weights") or {}).get("canary", {}).get("weight")
                       if (s.get("canary") or {}).get("weights")
                       else round(100 * (s.get("updatedReplicas") or 0) / max(1, s.get("replicas") or 0))),
            "aborted": bool(s.get("abort")),
        }


class Flagger(Controller):
    name, kind, title = "flagger", "canaries.flagger.app", "Flagger"
    abort_writes = {"httproutes"}
    # The Deployments are the user's; the primaries and Services go with their Canary.
    workload_kinds = ("canaries.flagger.app", "deployments")
    # Flagger raises an analysis interval under 10 s to 10 s (GetAnalysisInterval in its
    # pkg/apis/flagger/v1beta1/canary.go).
    breach_interval_s = 10

    def command(self, ns):
        return [self.args.flagger_bin, "-kubeconfig", self.kubeconfig, "-namespace", ns,
                "-mesh-provider", "gatewayapi:v1", "-metrics-server", os.environ["FLEDGE_PROMETHEUS_URL"],
                "-log-level", "error", "-enable-leader-election=false", "-port", str(self.health_port),
                *os.environ.get("BENCH_FLAGGER_ARGS", "").split()]

    def ready_url(self):
        return f"http://127.0.0.1:{self.health_port}/healthz"

    def reconciled(self):
        # Set for a canary on its first tick of the scheduler (one `interval` after start).
        code, text = http_get(f"http://127.0.0.1:{self.health_port}/metrics")
        return audit.prometheus_sum(text, "flagger_canary_status", "name", positive_only=False) if code == 200 else 0

    def crd_files(self):
        d = os.path.join(self.args.flagger_home, "crds")
        return [os.path.join(d, f) for f in sorted(os.listdir(d))]

    def breach_template(self, query):
        return {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "bench-breach"},
                "spec": {"provider": {"type": "prometheus", "address": os.environ["FLEDGE_PROMETHEUS_URL"]},
                         "query": query}}

    def objects(self, i, image, analysis=None, prefix="app", routed=False):
        app = f"{prefix}{i}"
        a = {"interval": "10s", "threshold": 1, "stepWeights": [20, 60], "metrics": []}
        if analysis:
            # Many small steps, one an interval (800 s in all), keep it in the canary phase while
            # the metric turns. A failed check rolls back at the next tick (threshold 1).
            a = {"interval": f"{self.breach_interval_s}s", "threshold": 1, "stepWeights": list(range(20, 100, 1)),
                 "metrics": [{"name": "errors", "interval": "1m", "thresholdRange": {"max": 0.5},
                              "templateRef": {"name": "bench-breach"}}]}
        return [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}}, "template": template(app, image)}},
            {"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": app},
             "spec": {"provider": "smi:v1alpha2" if routed else "gatewayapi:v1", "progressDeadlineSeconds": 600,
                      "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                      "service": {"port": 80} if routed else
                      {"port": 80, "gatewayRefs": [{"name": "local", "namespace": "fledge-gateway"}]},
                      "analysis": a}},
        ]

    def state(self, o):
        s = o.get("status") or {}
        phase = s.get("phase")
        return {
            "initial": phase == "Initialized",
            "step1": (s.get("canaryWeight") or 0) >= 20 or phase in ("Promoting", "Finalising", "Succeeded"),
            "done": phase == "Succeeded",
            "weight": s.get("canaryWeight"),
            "aborted": phase == "Failed",
        }


CONTROLLERS = {"fledge": Fledge, "argo-rollouts": ArgoRollouts, "flagger": Flagger}


# --- the audit log -------------------------------------------------------------------------
class AuditLog:
    def __init__(self, path):
        self.path, self.offset, self.events = path, 0, []

    def refresh(self):
        if not os.path.exists(self.path):
            return self.events
        # The API server rotates its log past --audit-log-maxsize (0 means 100 MB, not "never":
        # cluster.sh sets 1 TB); reading on from an old offset in a new file would miscount.
        if os.path.getsize(self.path) < self.offset:
            raise RuntimeError(f"{self.path} was rotated: the request counts would be wrong")
        with open(self.path) as f:
            f.seek(self.offset)
            data = f.read()
        cut = data.rfind("\n") + 1
        self.offset += len(data[:cut].encode())
        self.events += audit.read_events(data[:cut].splitlines())
        return self.events

    def settle(self):
        # Blocking-mode audit writes the event before the response; a short wait lets the last
        # responses of a window land in the file.
        time.sleep(1)
        return self.refresh()


# --- the scenarios ---------------------------------------------------------------------------
def in_ns(objs, ns):
    return [dict(o, metadata=dict(o["metadata"], namespace=ns)) for o in objs]


PLURALS = {"Rollout": "rollouts", "Service": "services", "AnalysisTemplate": "analysistemplates", "Deployment": "deployments",
           "Canary": "canaries", "MetricTemplate": "metrictemplates", "Node": "nodes"}


class Api:
    """Server-side applies straight to the API server as the cluster's admin, many at once:
    `kubectl apply` sends one object after another, which takes minutes for a thousand on a
    busy machine, and the burst is meant to change every rollout at once."""

    def __init__(self):
        cfg = open(os.environ["KUBECONFIG"]).read()
        field = lambda k: re.search(rf"{k}: (\S+)", cfg).group(1)  # noqa: E731
        self.host, self.port = re.search(r"server: https://([^:]+):(\d+)", cfg).groups()
        d = tempfile.mkdtemp(dir=CLUSTER)
        crt, key = os.path.join(d, "admin.crt"), os.path.join(d, "admin.key")
        open(crt, "wb").write(base64.b64decode(field("client-certificate-data")))
        open(key, "wb").write(base64.b64decode(field("client-key-data")))
        self.ctx = ssl.create_default_context(cadata=base64.b64decode(field("certificate-authority-data")).decode())
        self.ctx.load_cert_chain(crt, key)
        self.local = threading.local()

    def path(self, o, sub=""):
        group, _, version = o["apiVersion"].rpartition("/")
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        m = o["metadata"]
        ns = f"/namespaces/{m['namespace']}" if m.get("namespace") else ""
        return f"{base}{ns}/{PLURALS[o['kind']]}/{m['name']}{sub}?fieldManager=bench&force=true"

    def apply(self, o, sub=""):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPSConnection(self.host, int(self.port), context=self.ctx, timeout=60)
        body = json.dumps(o).encode()
        conn.request("PATCH", self.path(o, sub), body, {"Content-Type": "application/apply-patch+yaml"})
        r = conn.getresponse()
        text = r.read()
        if r.status >= 300:
            raise RuntimeError(f"apply {o['kind']} {o['metadata']['name']}: {r.status} {text[:300]!r}")


API = None


def apply_objects(objs, sub=""):
    global API
    API = API or Api()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda o: API.apply(o, sub), objs))


def states(ctl, ns, prefix="app"):
    out = kubectl("get", ctl.kind, "-n", ns, "-o", "json")
    return {o["metadata"]["name"]: ctl.state(o) for o in json.loads(out)["items"]
            if o["metadata"]["name"].startswith(prefix)}


def wait_all(ctl, ns, n, keys, since, timeout, prefix="app"):
    """Polls every second until each of `keys` has been seen true for all n objects; returns
    {key: seconds from `since` until the last object got there} (None where it timed out)."""
    first = {k: {} for k in keys}
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = time.time()
        try:
            st = states(ctl, ns, prefix)
        except RuntimeError as e:
            log(f"poll failed: {e}")
            st = {}
        for name, s in st.items():
            for k in keys:
                if s.get(k) and name not in first[k]:
                    first[k][name] = now
        if all(len(first[k]) >= n for k in keys):
            break
        if not ctl.alive():
            raise RuntimeError(f"{ctl.name} exited; see {ctl.workdir}/{ctl.name}.log")
        time.sleep(max(0.0, 1 - (time.time() - now)))
    got = {k: len(first[k]) for k in keys}
    log(f"{ctl.name}: reached {got} of {n}")
    return {k: (max(first[k].values()) - since if len(first[k]) >= n else None) for k in keys}, got


def request_figures(events, user, start, end):
    ev = audit.in_window(events, user, start, end)
    w = audit.writes(ev)
    return ev, w


def scenario_idle(ctl, log_, seconds):
    cpu0, t0 = ctl.cpu_s(), time.time()
    time.sleep(seconds)
    cpu1, t1 = ctl.cpu_s(), time.time()
    events = log_.settle()
    ev, w = request_figures(events, ctl.user, t0, t1)
    minutes = (t1 - t0) / 60
    return {"rss_mib": round(ctl.rss_mib(), 1), "cpu_s": round(cpu1 - cpu0, 2),
            "cpu_s_per_min": round((cpu1 - cpu0) / minutes, 2), "requests_per_min": round(len(ev) / minutes, 1),
            "writes_per_min": round(len(w) / minutes, 1), "window_s": round(t1 - t0),
            "writes_by": {f"{v} {r}": c for (v, r), c in audit.count_by(w).items()}}


def scenario_burst(ctl, ns, n, log_, timeout, prefix="app", routed=False):
    cpu0 = ctl.cpu_s()
    # Only the workloads change: the Services a routed rollout has stay as they are.
    objs = in_ns([o for i in range(n) for o in ctl.objects(i, "registry.example/app:2", prefix=prefix, routed=routed)
                  if o["kind"] != "Service"], ns)
    t0 = time.time()
    apply_objects(objs)
    applied = time.time() - t0
    times, got = wait_all(ctl, ns, n, ("step1", "done"), t0, timeout, prefix)
    t1 = time.time()
    cpu1 = ctl.cpu_s()
    time.sleep(2)
    events = log_.settle()
    ev, w = request_figures(events, ctl.user, t0, t1)
    noops = audit.noop_writes(events, ctl.user, t0, t1)
    by = audit.count_by(w)
    return {"to_step1_s": times["step1"] and round(times["step1"], 1), "to_done_s": times["done"] and round(times["done"], 1),
            "reached_step1": got["step1"], "reached_done": got["done"], "apply_s": round(applied, 1),
            "rss_mib": round(ctl.rss_mib(), 1), "cpu_s": round(cpu1 - cpu0, 2), "requests": len(ev), "writes": len(w),
            "writes_per_rollout": round(len(w) / n, 2), "writes_per_rollout_step": round(len(w) / n / STEPS, 2),
            "rollout_steps": n * STEPS, "noop_writes": len(noops),
            "noop_by": {f"{v} {r}": c for (v, r), c in audit.count_by(noops).items()},
            "writes_by": {f"{v} {r}": c for (v, r), c in by.items()}}


def delete_workloads(ctl, ns, settle):
    """Takes the rollouts of the scenarios before away, so that the next measures only its own."""
    for kind in ctl.workload_kinds:
        kubectl("delete", kind, "--all", "-n", ns, "--wait=true", "--timeout=600s")
    time.sleep(settle)


def scenario_routed(ctl, ns, n, log_, timeout, settle):
    """The burst again, on n rollouts of their own whose traffic an SMI TrafficSplit splits: the
    controller now also writes the split at each step (and, for fledge, waits for the canary's
    pods to be listed behind its Service before it gives them a share)."""
    delete_workloads(ctl, ns, settle)
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(smi_crd()))
    kubectl("wait", "--for=condition=Established", "crd/trafficsplits.split.smi-spec.io", "--timeout=60s")
    objs = in_ns([o for i in range(n) for o in ctl.objects(i, "registry.example/app:1", prefix="routed", routed=True)], ns)
    apply_objects(objs)
    times, _ = wait_all(ctl, ns, n, ("initial",), time.time(), timeout, "routed")
    if times["initial"] is None:
        raise RuntimeError("routed: not every rollout got to its first steady state")
    time.sleep(settle)
    res = scenario_burst(ctl, ns, n, log_, timeout, prefix="routed", routed=True)
    # The splits the controller made: one per rollout, or the scenario measured no routing.
    splits = json.loads(kubectl("get", "trafficsplits.split.smi-spec.io", "-n", ns, "-o", "json"))["items"]
    res["traffic_splits"] = sum(1 for s in splits if s["metadata"]["name"].startswith("routed"))
    res["routed_n"] = n
    return res


def wait_quiet(ctl, log_, quiet, timeout):
    """Waits until the controller has written nothing for `quiet` seconds (work it deferred, such
    as the old ReplicaSets' scale-down delay after a promotion, is not the restart's); returns
    the seconds waited."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        last = audit.last_write(log_.settle(), ctl.user)
        if last is None or time.time() - last >= quiet:
            break
    return round(time.time() - t0, 1)


def scenario_cold_start(ctl, ns, n, log_, window, quiet=15, timeout=300):
    waited = wait_quiet(ctl, log_, quiet, timeout)
    ctl.stop()
    time.sleep(1)
    t0 = ctl.start(ns)
    to_ready = to_reconciled = None
    while time.time() - t0 < window:
        now = time.time() - t0
        if to_ready is None and ctl.ready():
            to_ready = now
        if to_reconciled is None:
            r = ctl.reconciled()
            if r is not None and r >= n:
                to_reconciled = now
        if to_ready is not None and (to_reconciled is not None or ctl.reconciled() is None):
            break
        time.sleep(0.1)
    rest = window - (time.time() - t0)
    if rest > 0:
        time.sleep(rest)
    events = log_.settle()
    ev, w = request_figures(events, ctl.user, t0, t0 + window)
    return {"quiet_wait_s": waited,
            "to_ready_s": to_ready and round(to_ready, 2), "to_reconciled_s": to_reconciled and round(to_reconciled, 2),
            "requests": len(ev), "writes": len(w), "writes_by": {f"{v} {r}": c for (v, r), c in audit.count_by(w).items()},
            "rss_mib": round(ctl.rss_mib(), 1)}


class Exporter:
    """A scrape target of the cluster's Prometheus whose `bench_errors` gauge the harness sets."""

    def __init__(self):
        self.value = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"# TYPE bench_errors gauge\nbench_errors {exporter.value}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A scrape that timed out closes its connection first: nothing to report.
        self.server.handle_error = lambda *a: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        targets = os.environ["FLEDGE_PROMETHEUS_TARGETS_DIR"]
        self.file = os.path.join(targets, "bench.json")
        json.dump([{"targets": [f"127.0.0.1:{self.server.server_address[1]}"], "labels": {"job": "bench"}}],
                  open(self.file + ".tmp", "w"))
        os.rename(self.file + ".tmp", self.file)
        self.query = 'max(bench_errors{job="bench"})'
        # Prometheus picks the file up within a second or two; wait until it has a sample.
        deadline = time.time() + 60
        while time.time() < deadline:
            code, text = http_get(os.environ["FLEDGE_PROMETHEUS_URL"] + "/api/v1/query?query=" +
                                  urllib.request.quote(self.query))
            if code == 200 and json.loads(text)["data"]["result"]:
                return
            time.sleep(0.5)
        raise RuntimeError("Prometheus never scraped the bench exporter")

    def close(self):
        os.remove(self.file)
        self.server.shutdown()


def scenario_breach(ctl, ns, n, log_, exporter, timeout, settle):
    """n rollouts with a background analysis of the exporter's gauge go to their first step;
    then the gauge turns bad: seconds until each one's canary weight is 0 (aborted). The N
    rollouts of the other scenarios are deleted first, so that each controller measures with the
    same n: at N = 200, Flagger's rate-limited client spent its budget on the 200 and none of the
    20 rolled back within 120 s."""
    delete_workloads(ctl, ns, settle)
    exporter.value = 0
    kubectl("apply", "-n", ns, "-f", "-", stdin=json.dumps(ctl.breach_template(exporter.query)))
    objs = lambda image: in_ns([o for i in range(n) for o in ctl.objects(i, image, analysis=True, prefix="breach")], ns)  # noqa: E731
    apply_objects(objs("registry.example/app:1"))
    times, _ = wait_all(ctl, ns, n, ("initial",), time.time(), timeout, "breach")
    if times["initial"] is None:
        raise RuntimeError("breach: not every rollout got to its first steady state")
    apply_objects(objs("registry.example/app:2"))
    times, _ = wait_all(ctl, ns, n, ("step1",), time.time(), timeout, "breach")
    if times["step1"] is None:
        raise RuntimeError("breach: not every rollout got to its first step")
    exporter.value = 1
    t_bad = time.time()
    zero, aborted = {}, {}
    while time.time() - t_bad < 120 and len(zero) < n:
        now = time.time()
        for name, s in states(ctl, ns, "breach").items():
            if s["aborted"]:
                aborted.setdefault(name, now - t_bad)
                if not s.get("weight"):
                    zero.setdefault(name, now - t_bad)
        time.sleep(0.2)
    exporter.value = 0

    def median(d):
        v = sorted(d.values())
        return round(v[len(v) // 2], 2) if v else None

    # The same moment without the harness's polling: the API server's time of the controller's
    # first write, after the turn, that takes the canary's share away.
    written = audit.first_writes(log_.settle(), ctl.user, set(zero), ctl.abort_writes, t_bad)
    written = {k: v - t_bad for k, v in written.items()}
    return {"interval_s": ctl.breach_interval_s, "breach_n": n, "reached_zero": len(zero), "bad_at": t_bad,
            "to_write_median_s": median(written),
            "to_write_max_s": round(max(written.values()), 2) if len(written) == n else None,
            "to_abort_median_s": median(aborted), "to_zero_median_s": median(zero),
            "to_zero_max_s": round(max(zero.values()), 2) if len(zero) == n else None}


def add_nodes(n):
    """Fake nodes roomy enough for every pod of the run (the cluster's three hold 110 pods each)."""
    pods = max(110, math.ceil(3 * n / 4) + 20)
    docs = []
    for i in range(4):
        docs.append({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": f"kwok-bench-{i}", "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                                  "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-bench-{i}"}},
                     "status": {"allocatable": {"cpu": "1000", "memory": "4Ti", "pods": str(pods)},
                                "capacity": {"cpu": "1000", "memory": "4Ti", "pods": str(pods)}}})
    apply_objects(docs)
    apply_objects(docs, "/status")  # capacity is status: an apply of the node leaves it out
    kubectl("wait", "--for=condition=Ready", "node", "-l", "type=kwok", "--timeout=120s")


N_SCENARIOS = ("idle", "burst", "cold_start")


def run_controller(name, args, workdir, log_, exporter):
    ctl = CONTROLLERS[name](args, workdir)
    ns = f"bench-{name}"
    res = {}
    # A controller given no N rollouts (`--n-for flagger=0`) runs only the scenarios that bring
    # their own (routed, breach).
    n = args.n_for.get(name, args.n)
    scenarios = [s for s in args.scenarios if n > 0 or s not in N_SCENARIOS]
    log(f"{name}: CRDs, namespace, {n} rollouts, {scenarios}")
    ctl.install_crds()
    kubectl("delete", "ns", ns, "--ignore-not-found", "--wait=true", "--timeout=300s")
    kubectl("create", "ns", ns)
    apply_objects(in_ns([o for i in range(n) for o in ctl.objects(i, "registry.example/app:1")], ns))
    try:
        t0 = ctl.start(ns)
        if n > 0:
            times, _ = wait_all(ctl, ns, n, ("initial",), t0, args.timeout)
            res["setup"] = {"to_initial_s": times["initial"] and round(times["initial"], 1)}
            if times["initial"] is None:
                raise RuntimeError(f"{name}: not every rollout got to its first steady state")
        time.sleep(args.settle)
        if "idle" in scenarios:
            log(f"{name}: idle for {args.idle_seconds}s")
            res["idle"] = scenario_idle(ctl, log_, args.idle_seconds)
            log(f"{name}: idle {res['idle']}")
        if "burst" in scenarios:
            log(f"{name}: burst")
            res["burst"] = scenario_burst(ctl, ns, n, log_, args.timeout)
            log(f"{name}: burst {dict((k, v) for k, v in res['burst'].items() if not isinstance(v, dict))}")
            if res["burst"]["to_done_s"] is None:
                # The report says so; the other scenarios still run on what there is.
                res["error"] = f"the burst did not finish within {args.timeout}s"
                log(f"{name}: {res['error']}")
            time.sleep(args.settle)
        if "cold_start" in scenarios:
            log(f"{name}: cold start")
            res["cold_start"] = scenario_cold_start(ctl, ns, n, log_, args.cold_window)
            log(f"{name}: cold start {res['cold_start']}")
        if "routed" in scenarios:
            log(f"{name}: routed burst with {args.routed_n} rollouts")
            res["routed"] = scenario_routed(ctl, ns, args.routed_n, log_, args.timeout, args.settle)
            log(f"{name}: routed {dict((k, v) for k, v in res['routed'].items() if not isinstance(v, dict))}")
        if "breach" in scenarios:
            log(f"{name}: breach with {args.breach_n} rollouts")
            res["breach"] = scenario_breach(ctl, ns, args.breach_n, log_, exporter, args.timeout, args.settle)
            log(f"{name}: breach {res['breach']}")
    except Exception as e:  # the report says what failed; the next controller still runs
        log(f"{name}: FAILED: {e}")
        res["error"] = str(e)
    finally:
        kubectl("delete", "ns", ns, "--wait=true", "--timeout=600s", check=False)
        ctl.stop()
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--controllers", default="fledge,argo-rollouts,flagger")
    p.add_argument("--scenarios", default="idle,burst,cold_start,routed,breach")
    p.add_argument("--idle-seconds", type=int, default=300)
    p.add_argument("--cold-window", type=int, default=60)
    p.add_argument("--breach-n", type=int, default=20)
    p.add_argument("--n-for", action="append", default=[], metavar="CONTROLLER=N",
                   help="N for one controller (0: only the scenarios with rollouts of their own)")
    p.add_argument("--routed-n", type=int, default=200,
                   help="rollouts of the routed burst (Flagger makes three ClusterIP Services for each)")
    p.add_argument("--settle", type=int, default=10)
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--fledge-bin", default=os.path.join(REPO, "target/release/fledge"))
    p.add_argument("--fledge-arg", action="append", default=[], help="extra argument for fledge controller")
    p.add_argument("--argo-home", default="")
    p.add_argument("--flagger-home", default="")
    p.add_argument("--results", default=os.path.join(REPO, "docs/benchmarks.json"),
                   help="results JSON; controllers not run keep their earlier results")
    p.add_argument("--out", default=os.path.join(REPO, "docs/benchmarks.md"))
    p.add_argument("--command", default="hack/bench-peers.sh")
    p.add_argument("--notes", default=os.path.join(HERE, "bench_notes.md"),
                   help="the fixed notes the report ends with")
    p.add_argument("--versions", default="{}")
    p.add_argument("--render-only", action="store_true")
    p.add_argument("--merge", nargs="*", default=[],
                   help="results files of other runs (one controller each) to merge into --results")
    args = p.parse_args()
    args.scenarios = args.scenarios.split(",")
    args.n_for = {c: int(v) for c, v in (x.split("=", 1) for x in args.n_for)}
    args.argo_bin = os.path.join(args.argo_home, "bin/argo-rollouts")
    args.flagger_bin = os.path.join(args.flagger_home, "bin/flagger")

    old = json.load(open(args.results)) if os.path.exists(args.results) else {"results": {}, "meta": {}}
    results = old["results"]
    meta = old.get("meta") or {}
    for f in args.merge:
        other = json.load(open(f))
        results.update(other["results"])
        meta["load_end"] = other["meta"].get("load_end", meta.get("load_end"))
    if args.merge:
        json.dump({"meta": meta, "results": results}, open(args.results, "w"), indent=1, sort_keys=True)
    if not args.render_only:
        started = time.time()
        load_start = open("/proc/loadavg").read().split()[:3]
        workdir = tempfile.mkdtemp(prefix="bench-", dir=CLUSTER)
        log_ = AuditLog(os.path.join(CLUSTER, "logs/audit.log"))
        add_nodes(max(args.n, args.routed_n) + args.breach_n)
        exporter = Exporter() if "breach" in args.scenarios else None
        for name in args.controllers.split(","):
            run = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "n": args.n_for.get(name, args.n),
                   "load_start": " ".join(open("/proc/loadavg").read().split()[:3])}
            results[name] = run_controller(name, args, workdir, log_, exporter)
            run["load_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
            results[name]["run"] = run
            # Kept as each controller ends: a run stopped later keeps what it measured.
            json.dump({"meta": meta, "results": results}, open(args.results, "w"), indent=1, sort_keys=True)
        mem = int(open("/proc/meminfo").read().split()[1]) / 1024 / 1024
        meta = {"command": args.command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                "duration_min": (time.time() - started) / 60, "n": args.n, "cores": os.cpu_count(), "mem_gib": mem,
                "load_start": " ".join(load_start), "load_end": " ".join(open("/proc/loadavg").read().split()[:3]),
                "versions": json.loads(args.versions), "controllers": list(CONTROLLERS),
                "scenarios": args.scenarios, "idle_seconds": args.idle_seconds, "breach_n": args.breach_n,
                "routed_n": args.routed_n}
        json.dump({"meta": meta, "results": results}, open(args.results, "w"), indent=1, sort_keys=True)
    notes = open(args.notes).read()
    shown = os.path.relpath(os.path.abspath(args.notes), REPO)
    open(args.out, "w").write(audit.render(meta, results, notes, shown))
    log(f"wrote {args.out}")
    failed = [c for c, r in results.items() if r.get("error")]
    if failed:
        log(f"failed: {failed}")
        sys.exit(1)


if __name__ == "__main__":
    main()
