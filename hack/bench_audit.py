"""The pure half of hack/bench_peers.py: reading the API server's audit log, /proc figures,
Prometheus text, and rendering docs/benchmarks.md. No process, no network, no clock: unit-tested
by hack/bench_peers_test.py.
"""

import json
from collections import Counter
from datetime import datetime

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def parse_time(text):
    """An audit timestamp ("2026-11-30T08:55:48.123456Z") as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_event(line):
    """One audit log line as a small dict, or None for lines that are not complete events.

    The policy (hack/bench-peers.sh) omits the RequestReceived and ResponseStarted stages, so
    every request appears once, when its response is complete (a watch: when it ends).
    """
    try:
        e = json.loads(line)
    except ValueError:
        return None
    if e.get("kind") != "Event" or e.get("stage") != "ResponseComplete":
        return None
    ref = e.get("objectRef") or {}
    resp = e.get("responseObject") or {}
    meta = resp.get("metadata") or {}
    resource = ref.get("resource", "")
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    return {
        "user": (e.get("user") or {}).get("username", ""),
        "verb": e.get("verb", ""),
        "group": ref.get("apiGroup", ""),
        "resource": resource,
        "namespace": ref.get("namespace", ""),
        "name": ref.get("name") or meta.get("name", ""),
        "received": parse_time(e["requestReceivedTimestamp"]),
        "completed": parse_time(e["stageTimestamp"]),
        "code": (e.get("responseStatus") or {}).get("code", 0),
        # Only writes logged at RequestResponse level carry it (the policy's first rule).
        "rv": meta.get("resourceVersion") if resp.get("kind") != "Status" else None,
    }


def read_events(lines):
    return [ev for ev in (parse_event(line) for line in lines) if ev is not None]


def in_window(events, user, start, end):
    """The user's requests received in [start, end)."""
    return [e for e in events if e["user"] == user and start <= e["received"] < end]


def count_by(events, key=("verb", "resource")):
    return Counter(tuple(e[k] for k in key) for e in events)


def writes(events):
    return [e for e in events if e["verb"] in WRITE_VERBS]


def last_write(events, user):
    """When the user's last write was received (seconds since the epoch), or None."""
    times = [e["received"] for e in writes(events) if e["user"] == user]
    return max(times) if times else None


def owner_of(object_name, names):
    """The rollout among `names` that an object is named after: itself, or `<rollout>-<hash>`
    (a ReplicaSet). "app-1" is not "app-10"'s owner."""
    if object_name in names:
        return object_name
    head = object_name.rsplit("-", 1)[0]
    return head if head in names else None


def first_writes(events, user, names, resources, since):
    """Per rollout in `names`: the API server's time of the user's first write after `since` to
    one of `resources` named after that rollout (see `owner_of`)."""
    first = {}
    for e in sorted(events, key=lambda e: e["received"]):
        if e["user"] != user or e["received"] < since or e["verb"] not in WRITE_VERBS:
            continue
        if e["resource"] not in resources or e["code"] >= 400:
            continue
        owner = owner_of(e["name"], names)
        if owner is not None:
            first.setdefault(owner, e["received"])
    return first


def noop_writes(all_events, user, start, end):
    """The user's successful updates and patches in [start, end) that changed nothing.

    A write that changes an object gives it a new resourceVersion (etcd's revision of that
    write, unique); one that changes nothing answers with the version the object already had.
    So, going through every logged write response in completion order (all users: the policy
    logs the responses of writes to the resources the controllers write), a write by `user`
    whose answer carries the object's current version is a no-op.
    """
    last = {}
    noops = []
    for e in sorted(all_events, key=lambda e: e["completed"]):
        if e["verb"] not in ("create", "update", "patch") or not e["rv"] or e["code"] >= 300:
            continue
        base = e["resource"].split("/")[0]
        key = (e["group"], base, e["namespace"], e["name"])
        if (
            e["user"] == user
            and start <= e["received"] < end
            and e["verb"] != "create"
            and last.get(key) == e["rv"]
        ):
            noops.append(e)
        last[key] = e["rv"]
    return noops


def proc_cpu_seconds(stat_text, ticks_per_second=100):
    """utime + stime of a /proc/<pid>/stat line, in seconds."""
    # The command name (field 2) may contain spaces; the fields after its ")" are fixed.
    fields = stat_text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def proc_rss_mib(status_text):
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def prometheus_sum(text, name, distinct_label=None, positive_only=True):
    """The sum of a metric's samples in Prometheus text format; with `distinct_label`, the
    number of distinct values of that label among samples (with a positive value, unless
    `positive_only` is false)."""
    total, seen = 0.0, set()
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric = head.split("{")[0]
        if metric != name:
            continue
        v = float(value)
        if distinct_label:
            for part in head.partition("{")[2].rstrip("}").split(","):
                k, _, val = part.partition("=")
                if k == distinct_label and (v > 0 or not positive_only):
                    seen.add(val)
        total += v
    return len(seen) if distinct_label else total


# --- the report --------------------------------------------------------------------------------

CONTROLLERS = (("fledge", "fledge"), ("argo-rollouts", "Argo Rollouts"), ("flagger", "Flagger"))


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else f"{v:.0f}"
    return str(v)


def ratio(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def table(rows, results, scenario):
    """A markdown table: one row per (label, key, lower_is_better), a column per controller,
    then fledge/peer ratios."""
    head = ["figure"] + [title for _, title in CONTROLLERS] + ["fledge/Argo", "fledge/Flagger"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key in rows:
        vals = [((results.get(c) or {}).get(scenario) or {}).get(key) for c, _ in CONTROLLERS]
        out.append(
            "| "
            + " | ".join([label] + [fmt(v) for v in vals] + [ratio(vals[0], vals[1]), ratio(vals[0], vals[2])])
            + " |"
        )
    return "\n".join(out)


def counts_table(results, scenario, key, per):
    """Writes by verb and resource, per `per` (e.g. rollouts x steps), a column per controller."""
    keys = set()
    for c, _ in CONTROLLERS:
        keys |= set((((results.get(c) or {}).get(scenario) or {}).get(key) or {}).keys())
    if not keys:
        return "(no writes recorded)"
    head = ["verb resource"] + [title for _, title in CONTROLLERS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in sorted(keys):
        row = [k]
        for c, _ in CONTROLLERS:
            r = ((results.get(c) or {}).get(scenario) or {})
            n, d = (r.get(key) or {}).get(k), r.get(per)
            row.append("n/a" if not r else fmt(round((n or 0) / d, 2) if d else n or 0))
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


SCENARIO_ROWS = {
    "setup": [("seconds from the controller's start until all N were at their first steady state", "to_initial_s")],
    "idle": [
        ("RSS at steady state (MiB)", "rss_mib"),
        ("CPU seconds over the idle window", "cpu_s"),
        ("CPU seconds per idle minute", "cpu_s_per_min"),
        ("API requests per idle minute (watches counted when they end)", "requests_per_min"),
        ("writes per idle minute", "writes_per_min"),
    ],
    "burst": [
        ("seconds the harness took to apply the new images (included below)", "apply_s"),
        ("seconds until all at step 1 (weight 20, paused)", "to_step1_s"),
        ("seconds until all fully promoted", "to_done_s"),
        ("RSS after the burst (MiB)", "rss_mib"),
        ("CPU seconds during the burst", "cpu_s"),
        ("API requests during the burst", "requests"),
        ("writes per rollout", "writes_per_rollout"),
        ("writes per rollout per canary step", "writes_per_rollout_step"),
        ("writes that changed nothing", "noop_writes"),
    ],
    "routed": [
        ("rollouts in this scenario", "routed_n"),
        ("TrafficSplits the controller made", "traffic_splits"),
        ("seconds the harness took to apply the new images (included below)", "apply_s"),
        ("seconds until all at step 1 (weight 20, paused)", "to_step1_s"),
        ("seconds until all fully promoted", "to_done_s"),
        ("CPU seconds during the burst", "cpu_s"),
        ("API requests during the burst", "requests"),
        ("writes per rollout", "writes_per_rollout"),
        ("writes per rollout per canary step", "writes_per_rollout_step"),
        ("writes that changed nothing", "noop_writes"),
    ],
    "breach": [
        ("analysis interval used (s)", "interval_s"),
        ("median seconds from bad metric to the abort (status)", "to_abort_median_s"),
        ("median seconds from bad metric to canary weight 0", "to_zero_median_s"),
        ("max seconds from bad metric to weight 0", "to_zero_max_s"),
        ("median seconds from bad metric to the controller's write that took the share away (audit log)", "to_write_median_s"),
        ("max seconds from bad metric to that write (audit log)", "to_write_max_s"),
    ],
    "cold_start": [
        ("seconds waited, before the restart, until the controller had written nothing for 15 s", "quiet_wait_s"),
        ("seconds to ready (health endpoint)", "to_ready_s"),
        ("seconds until every rollout reconciled once", "to_reconciled_s"),
        ("API requests in the first minute", "requests"),
        ("writes made by the restart", "writes"),
        ("RSS a minute after the restart (MiB)", "rss_mib"),
    ],
}

SCENARIO_TITLES = {
    "setup": "Taking over N new rollouts",
    "idle": "Idle",
    "burst": "Burst: every rollout gets a new image at once",
    "routed": "Routed burst: the same steps through an SMI TrafficSplit (all three)",
    "breach": "Breach to weight 0",
    "cold_start": "Cold start",
}


def render(meta, results, notes, notes_path="hack/bench_notes.md"):
    """docs/benchmarks.md from the run's metadata, per-controller results and fixed notes (read
    from notes_path, which the report names)."""
    v = meta.get("versions") or {}
    lines = [
        "# fledge side by side with Argo Rollouts and Flagger",
        "",
        "Generated by `hack/bench-peers.sh`; do not edit by hand (the notes are in"
        f" `{notes_path}`).",
        "",
        f"- Command: `{meta['command']}`",
        f"- Last run: {meta['date']}, {meta['duration_min']:.0f} minutes",
        f"- N = {meta['n']} rollouts (idle, burst, cold start); routed burst: {meta.get('routed_n', 'n/a')}"
        f" rollouts; breach: {meta.get('breach_n', 'n/a')} rollouts",
        f"- Machine: {meta['cores']} cores, {meta['mem_gib']:.0f} GiB memory; load average at the"
        f" start {meta['load_start']}, at the end {meta['load_end']} (the machine is shared:"
        " timings are noisy, counts are not)",
        f"- Versions: fledge {v.get('fledge', '?')}, Argo Rollouts {v.get('argo-rollouts', '?')},"
        f" Flagger {v.get('flagger', '?')}, Kubernetes {v.get('kubernetes', '?')}",
        f"- Scenarios: {', '.join(meta['scenarios'])}",
        "",
        "| controller | run started | N | load average before | after |",
        "|---|---|---|---|---|",
    ]
    for c, title in CONTROLLERS:
        run = (results.get(c) or {}).get("run")
        if run:
            lines.append(f"| {title} | {run['date']} | {run['n']} | {run['load_start']} | {run['load_end']} |")
        err = (results.get(c) or {}).get("error")
        if err:
            lines.append(f"| {title} | FAILED: {err} | | | |")
    lines.append("")
    for scenario in ["setup"] + list(meta["scenarios"]):
        if scenario == "write_cost":
            continue
        lines += [f"## {SCENARIO_TITLES[scenario]}", "", table(SCENARIO_ROWS[scenario], results, scenario), ""]
        if scenario in ("burst", "routed"):
            lines += [
                "### Write cost: writes per rollout per canary step, by verb and resource",
                "",
                counts_table(results, scenario, "writes_by", "rollout_steps"),
                "",
            ]
    lines += [notes.strip(), ""]
    return "\n".join(lines)
