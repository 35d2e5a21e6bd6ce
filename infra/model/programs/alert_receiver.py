"""Alertmanager's webhook receiver: keeps the notifications it is sent, for whoever asks.

    POST /alerts           a notification (Alertmanager's webhook payload, version 4): 200, kept
    GET  /alerts           {"notifications": [{"received": <unix seconds>, ...payload}, ...]}, oldest first;
                           `?since=<unix seconds>` only those received after it
    GET  /healthz          200
    GET  /metrics          alert_receiver_notifications_total{status="firing|resolved"}, in Prometheus' text

It keeps the last `KEEP` notifications in memory (a restart forgets them, as a pager's inbox would not, but
this one is only read by checks). Serves on `$BIND_HOST:$PORT` (0.0.0.0:8080); stops on SIGTERM.
Standard library only: it runs in the Python base image from a ConfigMap.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KEEP = 2000
MAX_BODY_BYTES = 4 * 1024 * 1024


class Inbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._counts: Counter[str] = Counter()

    def add(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self._kept.append({"received": time.time(), **payload})
            self._counts[str(payload.get("status", "unknown"))] += 1

    def since(self, moment: float) -> list[dict[str, Any]]:
        with self._lock:
            return [n for n in self._kept if n["received"] > moment]

    def metrics(self) -> str:
        with self._lock:
            counts = dict(self._counts)
        lines = [
            "# HELP alert_receiver_notifications_total Notifications received from Alertmanager, by status.",
            "# TYPE alert_receiver_notifications_total counter",
        ]
        for status in sorted({"firing", "resolved", *counts}):
            lines.append(f'alert_receiver_notifications_total{{status="{status}"}} {counts.get(status, 0)}')
        return "\n".join(lines) + "\n"


def handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "shopstack-alert-receiver"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._answer(status, json.dumps({"error": message}).encode())

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                self._answer(200, b'{"status":"ok"}')
            elif url.path == "/metrics":
                self._answer(200, inbox.metrics().encode(), "text/plain; version=0.0.4")
            elif url.path == "/alerts":
                since = parse_qs(url.query).get("since", ["0"])[0]
                try:
                    moment = float(since)
                except ValueError:
                    self._error(400, "since must be a number of seconds since the epoch")
                    return
                self._answer(200, json.dumps({"notifications": inbox.since(moment)}).encode())
            else:
                self._error(404, f"no such path: {url.path}")

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/alerts":
                self._error(404, f"no such path: {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                self._error(400, "a notification needs a JSON body (Content-Length)")
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self._error(400, "the body is not JSON")
                return
            if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
                self._error(400, "not an Alertmanager notification: no alerts list")
                return
            inbox.add(payload)
            self._answer(200, b"{}")

    return Handler


def main() -> None:
    host = os.environ.get("BIND_HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), handler(Inbox()))
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"alert receiver on {host}:{port}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
