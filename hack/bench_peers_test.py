"""Unit tests of hack/bench_audit.py (the audit log, /proc and report code of the peer benchmark).
Run: python3 -m unittest discover -s hack -p 'bench_*_test.py'   (hack/test.sh does)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_audit as audit  # noqa: E402

T = audit.parse_time("2026-11-30T09:00:00Z")  # the events below are seconds after this


def event(user, verb, resource, name, at, rv=None, sub=None, stage="ResponseComplete", code=200, group="apps",
          ns="ns", done=None):
    e = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "stage": stage, "verb": verb,
        "user": {"username": user, "groups": ["system:masters"]},
        "objectRef": {"resource": resource, "namespace": ns, "name": name, "apiGroup": group},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": f"2026-11-30T09:00:{at:09.6f}Z",
        "stageTimestamp": f"2026-11-30T09:00:{(done if done is not None else at + 0.01):09.6f}Z",
    }
    if sub:
        e["objectRef"]["subresource"] = sub
    if rv:
        e["level"] = "RequestResponse"
        e["responseObject"] = {"kind": "ReplicaSet", "metadata": {"name": name, "resourceVersion": rv}}
    return json.dumps(e)


class AuditTest(unittest.TestCase):
    def test_parse_keeps_complete_events_only(self):
        lines = [
            event("bench-fledge", "patch", "rollouts", "a", 1.0, rv="5", sub="status", group="fledge.dev"),
            event("bench-fledge", "watch", "rollouts", "", 2.0, stage="ResponseStarted"),
            "not json",
            json.dumps({"kind": "EventList"}),
        ]
        evs = audit.read_events(lines)
        self.assertEqual(len(evs), 1)
        e = evs[0]
        self.assertEqual((e["user"], e["verb"], e["resource"], e["rv"]), ("bench-fledge", "patch", "rollouts/status", "5"))
        self.assertAlmostEqual(e["completed"] - e["received"], 0.01, places=3)

    def test_window_and_counts(self):
        evs = audit.read_events([
            event("bench-fledge", "patch", "replicasets", "a", 1.0),
            event("bench-fledge", "get", "replicasets", "a", 2.0),
            event("bench-fledge", "create", "events", "e", 3.0, group=""),
            event("bench-argo-rollouts", "patch", "replicasets", "a", 2.5),
            event("bench-fledge", "patch", "replicasets", "a", 9.0),
        ])
        ev = audit.in_window(evs, "bench-fledge", T + 1.0, T + 9.0)
        self.assertEqual(len(ev), 3)
        self.assertEqual(audit.count_by(audit.writes(ev)), {("patch", "replicasets"): 1, ("create", "events"): 1})

    def test_a_write_answered_with_the_current_version_changed_nothing(self):
        evs = audit.read_events([
            event("fledge-admin", "create", "replicasets", "a", 1.0, rv="10"),
            event("bench-fledge", "patch", "replicasets", "a", 2.0, rv="11"),   # changed it
            event("bench-fledge", "patch", "replicasets", "a", 3.0, rv="11"),   # no-op
            event("system:kcm", "update", "replicasets", "a", 4.0, rv="12", sub="status"),
            event("bench-fledge", "patch", "replicasets", "a", 5.0, rv="12"),   # no-op after kcm's write
            event("bench-fledge", "patch", "replicasets", "b", 6.0, rv="12"),   # another object: a change
            event("bench-fledge", "patch", "replicasets", "a", 7.0, rv="12", code=409),  # failed: not counted
        ])
        noops = audit.noop_writes(evs, "bench-fledge", T, T + 100)
        self.assertEqual([e["received"] - T for e in noops], [3.0, 5.0])
        # Outside the window they are not the user's concern.
        self.assertEqual(audit.noop_writes(evs, "bench-fledge", T + 4.0, T + 100)[0]["received"] - T, 5.0)

    def test_the_first_write_after_the_breach_per_rollout(self):
        evs = audit.read_events([
            event("bench-fledge", "patch", "replicasets", "app-1-abc", 1.0),   # before: not it
            event("bench-fledge", "patch", "replicasets", "app-10-def", 3.0),
            event("bench-fledge", "patch", "replicasets", "app-1-abc", 4.0, code=409),  # failed
            event("bench-fledge", "get", "replicasets", "app-1-abc", 4.5),     # a read
            event("bench-fledge", "patch", "replicasets", "app-1-abc", 5.0),
            event("bench-fledge", "patch", "replicasets", "app-1-abc", 6.0),   # not the first
            event("bench-flagger", "patch", "replicasets", "app-1-abc", 2.5),  # someone else
            event("bench-fledge", "create", "events", "app-1.123", 2.5, group=""),
        ])
        first = audit.first_writes(evs, "bench-fledge", {"app-1", "app-10"}, {"replicasets"}, T + 2.0)
        self.assertEqual({k: v - T for k, v in first.items()}, {"app-1": 5.0, "app-10": 3.0})

    def test_the_last_write_is_the_users_own(self):
        evs = audit.read_events([
            event("bench-fledge", "patch", "replicasets", "a", 1.0),
            event("bench-fledge", "get", "replicasets", "a", 4.0),
            event("system:kcm", "update", "replicasets", "a", 5.0),
        ])
        self.assertEqual(audit.last_write(evs, "bench-fledge") - T, 1.0)
        self.assertIsNone(audit.last_write(evs, "bench-argo-rollouts"))

    def test_noops_are_ordered_by_completion(self):
        # Received first but answered last: the other write came in between.
        evs = audit.read_events([
            event("x", "create", "replicasets", "a", 1.0, rv="1"),
            event("bench-fledge", "patch", "replicasets", "a", 2.0, rv="2", done=5.0),
            event("y", "patch", "replicasets", "a", 3.0, rv="1", done=3.5),
        ])
        self.assertEqual(audit.noop_writes(evs, "bench-fledge", T, T + 100), [])


class ProcTest(unittest.TestCase):
    def test_cpu_and_rss(self):
        stat = "1234 (rollouts contr) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0"
        self.assertEqual(audit.proc_cpu_seconds(stat, 100), 3.0)
        self.assertEqual(audit.proc_rss_mib("Name:\tx\nVmRSS:\t   2048 kB\n"), 2.0)
        self.assertIsNone(audit.proc_rss_mib("Name:\tx\n"))

    def test_prometheus_sum(self):
        text = ('# HELP fledge_reconcile_total x\nfledge_reconcile_total 42\n'
                'rollout_reconcile_count{name="a",namespace="n"} 3\nrollout_reconcile_count{name="b",namespace="n"} 0\n'
                'rollout_reconcile_count{name="c",namespace="n"} 1\nrollout_reconcile_sum{name="a"} 9\n')
        self.assertEqual(audit.prometheus_sum(text, "fledge_reconcile_total"), 42)
        self.assertEqual(audit.prometheus_sum(text, "rollout_reconcile_count", "name"), 2)
        self.assertEqual(audit.prometheus_sum(text, "rollout_reconcile_count", "name", positive_only=False), 3)
        self.assertEqual(audit.prometheus_sum(text, "missing"), 0)


class ReportTest(unittest.TestCase):
    META = {"command": "hack/bench-peers.sh 10", "date": "2026-11-30 09:00 UTC", "duration_min": 12.0, "n": 10,
            "cores": 2, "mem_gib": 24.0, "load_start": "1 2 3", "load_end": "4 5 6",
            "versions": {"fledge": "0.1.0", "argo-rollouts": "v1.9.3", "flagger": "v1.44.0", "kubernetes": "v1.33.13"},
            "controllers": ["fledge", "argo-rollouts", "flagger"], "scenarios": ["idle", "burst"]}

    def test_ratios_and_missing_values(self):
        self.assertEqual(audit.ratio(1, 4), "0.25")
        self.assertEqual(audit.ratio(1, 0), "n/a")
        self.assertEqual(audit.ratio(None, 3), "n/a")
        self.assertEqual(audit.fmt(None), "n/a")
        self.assertEqual(audit.fmt(2.50), "2.5")
        self.assertEqual(audit.fmt(3.0), "3")
        self.assertEqual(audit.fmt(1234.4), "1234")

    def test_render(self):
        results = {
            "fledge": {"idle": {"rss_mib": 10.0, "cpu_s": 0.0}, "burst": {
                "to_done_s": 30.0, "rollout_steps": 40, "writes_by": {"patch rollouts/status": 80}}},
            "argo-rollouts": {"idle": {"rss_mib": 100.0, "cpu_s": 9.0}, "burst": {
                "to_done_s": 60.0, "rollout_steps": 40, "writes_by": {"update rollouts/status": 120, "create events": 40}}},
        }
        md = audit.render(self.META, results, "## Notes\n\nsome notes\n")
        self.assertIn("N = 10 rollouts", md)
        self.assertIn("| RSS at steady state (MiB) | 10 | 100 | n/a | 0.10 | n/a |", md)
        self.assertIn("| seconds until all fully promoted | 30 | 60 | n/a | 0.50 | n/a |", md)
        self.assertIn("| patch rollouts/status | 2 | 0 | n/a |", md)
        self.assertIn("| update rollouts/status | 0 | 3 | n/a |", md)
        self.assertIn("`hack/bench-peers.sh 10`", md)
        self.assertTrue(md.rstrip().endswith("some notes"))

    def test_render_routed(self):
        meta = dict(self.META, scenarios=["routed"], routed_n=5)
        results = {
            "fledge": {"routed": {"routed_n": 5, "traffic_splits": 5, "to_step1_s": 4.0, "rollout_steps": 20,
                                  "writes_by": {"patch trafficsplits": 20}}},
            "flagger": {"routed": {"routed_n": 5, "traffic_splits": 5, "to_step1_s": 40.0, "rollout_steps": 20,
                                   "writes_by": {"update trafficsplits": 30}}},
        }
        md = audit.render(meta, results, "notes")
        self.assertIn("routed burst: 5 rollouts", md)
        self.assertIn("## Routed burst", md)
        self.assertIn("| TrafficSplits the controller made | 5 | n/a | 5 | n/a | 1.00 |", md)
        self.assertIn("| seconds until all at step 1 (weight 20, paused) | 4 | n/a | 40 | n/a | 0.10 |", md)
        self.assertIn("| patch trafficsplits | 1 | n/a | 0 |", md)
        self.assertIn("| update trafficsplits | 0 | n/a | 1.5 |", md)


if __name__ == "__main__":
    unittest.main()
