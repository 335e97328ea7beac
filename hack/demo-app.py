#!/usr/bin/env python3
"""The demo's stand-in for the application's metrics (KWOK pods run no containers).

Serves /metrics with `demo_http_requests_total{code="200"|"500"}` growing at 50 requests per
second; the share of 500s is read from the file given as the second argument (0 when missing),
so the demo can make a release "bad". Writes the port it listens on to the first argument.

    hack/demo-app.py PORT_FILE ERROR_SHARE_FILE
"""
import http.server
import sys
import threading
import time

port_file, share_file = sys.argv[1], sys.argv[2]
counts = {"200": 0.0, "500": 0.0}
lock = threading.Lock()


def share():
    try:
        with open(share_file) as f:
            return min(max(float(f.read().strip() or 0), 0.0), 1.0)
    except (OSError, ValueError):
        return 0.0


def grow():
    while True:
        time.sleep(0.1)
        s = share()
        with lock:
            counts["200"] += 5 * (1 - s)
            counts["500"] += 5 * s


class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with lock:
            body = "# TYPE demo_http_requests_total counter\n" + "".join(
                f'demo_http_requests_total{{code="{c}"}} {n}\n' for c, n in counts.items()
            )
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
threading.Thread(target=grow, daemon=True).start()
server.serve_forever()
