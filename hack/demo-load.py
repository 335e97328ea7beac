#!/usr/bin/env python3
"""The demo's clients: real requests through the local gateway at a fixed rate, and what they saw.

Sends RATE requests per second (default 100) to URL with `Host: HOST`, whether or not earlier ones
have answered, and records for each the status (0: no answer) and the revision that answered (the
pod agent's `x-fledge-revision` header). Every half second it rewrites SUMMARY_FILE (JSON) with
what the requests of the last WINDOW seconds (default 2) saw, and the totals since the start:

    {"window": {"total": 200, "errors": 0, "revisions": {"6f9c...": 150, "7d4b...": 50}},
     "all": {"total": 1234, "errors": 0, "revisions": {...}, "first_error": null,
             "last_error": null}, "since": 0.0}

(`first_error`/`last_error`: when the first and the last failed request was sent, in seconds.)

An error is a 5xx or no answer. `hack/demo-load.py URL HOST SUMMARY_FILE [RATE] [WINDOW]`.
"""
import collections
import http.client
import json
import os
import queue
import sys
import threading
import time
import urllib.parse

url, host, summary_file = sys.argv[1], sys.argv[2], sys.argv[3]
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 100.0
window = float(sys.argv[5]) if len(sys.argv) > 5 else 2.0
parsed = urllib.parse.urlparse(url)
lock = threading.Lock()
recent = collections.deque()  # (sent, status, revision)
totals = {"total": 0, "errors": 0, "revisions": collections.Counter(),
          "first_error": None, "last_error": None}  # when, in seconds since the start
start = time.monotonic()
work = queue.Queue()


def record(sent, status, revision):
    with lock:
        recent.append((sent, status, revision))
        totals["total"] += 1
        if status == 0 or status >= 500:
            totals["errors"] += 1
            t = sent - start
            totals["first_error"] = t if totals["first_error"] is None else totals["first_error"]
            totals["last_error"] = t
        totals["revisions"][revision] += 1


def worker():
    conn = None
    while True:
        sent = work.get()
        status, revision = 0, ""
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
            conn.request("GET", "/", headers={"Host": host})
            r = conn.getresponse()
            r.read()
            status, revision = r.status, r.getheader("x-fledge-revision", "")
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
        record(sent, status, revision)


def summarize():
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        with lock:
            while recent and recent[0][0] < now - window - 5:
                recent.popleft()
            # Requests sent in the window that ended a second ago: those have all answered.
            last = [r for r in recent if now - window - 1 <= r[0] < now - 1]
            doc = {
                "window": {
                    "total": len(last),
                    "errors": sum(1 for _, s, _ in last if s == 0 or s >= 500),
                    "revisions": collections.Counter(r for _, _, r in last),
                },
                "all": dict(totals, revisions=dict(totals["revisions"])),
                "since": now - start,
            }
        tmp = summary_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, summary_file)


# Enough workers that a slow answer never lowers the rate.
for _ in range(max(4, int(rate // 10))):
    threading.Thread(target=worker, daemon=True).start()
threading.Thread(target=summarize, daemon=True).start()
next_at = time.monotonic()
while True:
    next_at += 1.0 / rate
    delay = next_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    work.put(time.monotonic())
