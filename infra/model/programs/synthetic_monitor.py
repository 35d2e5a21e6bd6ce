"""The synthetic monitor's journey probe: a shopper who buys through the shop's public entrance (the ALB)
every `JOURNEY_INTERVAL_SECONDS`, and the blackbox exporter's targets.

Every request carries the W3C baggage `synthetic_request=true` (as the load generator's shoppers do), so
telemetry tells this traffic from people's. The journey is the home page (which starts the session),
a product, adding it to the cart and checking out; it succeeds when every step answers 2xx.

The shop is `$SHOP_URL` when set; otherwise the ALB of the Ingress `$SHOP_INGRESS` in `$POD_NAMESPACE`,
`http://<status.loadBalancer.ingress[0].hostname>`, read from the Kubernetes API with the pod's service
account, and read again until the load balancer exists (a first deploy makes it after this pod starts).

    GET /metrics   the journey's last result, duration and each step's, runs and failures by step
                   (Prometheus' text format; nothing about a journey before the first one ran)
    GET /targets   Prometheus' HTTP service discovery: one target per page in `$PROBES` (JSON, name ->
                   path), probed by the blackbox exporter at `$BLACKBOX_ADDRESS` with `$PROBE_MODULE`
                   (`__param_target`, `__param_module` and a `probe` label); [] until the shop is known
    GET /healthz   200

Serves on `$BIND_HOST:$PORT` (0.0.0.0:9116); stops on SIGTERM. Standard library only: it runs in the
Python base image from a ConfigMap.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

BAGGAGE = "synthetic_request=true"
USER_AGENT = "shopstack-synthetic-monitor"
JOURNEY = "checkout"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: a VISA test number payment accepts (Luhn), as the load generator's shoppers use
CARD = "4577463706433047"


def log(message: str) -> None:
    print(f"synthetic-monitor: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    shop_url: str
    ingress: str
    namespace: str
    interval: float
    timeout: float
    product: str
    probes: dict[str, str]
    module: str
    blackbox: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        probes = json.loads(env.get("PROBES") or '{"home": "/"}')
        if not isinstance(probes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.startswith("/") for k, v in probes.items()
        ):
            raise ValueError('PROBES must be a JSON object of names to paths, such as {"home": "/"}')
        return cls(
            shop_url=(env.get("SHOP_URL") or "").rstrip("/"),
            ingress=env.get("SHOP_INGRESS", ""),
            namespace=env.get("POD_NAMESPACE", "default"),
            interval=float(env.get("JOURNEY_INTERVAL_SECONDS", "60")),
            timeout=float(env.get("REQUEST_TIMEOUT_SECONDS", "10")),
            product=env.get("JOURNEY_PRODUCT", "66VCHSJNUP"),
            probes=probes,
            module=env.get("PROBE_MODULE", "http_2xx"),
            blackbox=env.get("BLACKBOX_ADDRESS", "127.0.0.1:9115"),
        )


def ingress_url(settings: Settings, timeout: float = 10) -> str | None:
    """`http://<hostname or ip>` of the Ingress's load balancer, from the API; None while it has none."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not settings.ingress:
        return None
    with open(f"{SERVICE_ACCOUNT}/token") as token_file:
        token = token_file.read().strip()
    context = ssl.create_default_context(cafile=f"{SERVICE_ACCOUNT}/ca.crt")
    path = f"/apis/networking.k8s.io/v1/namespaces/{settings.namespace}/ingresses/{settings.ingress}"
    request = urllib.request.Request(
        f"https://{host}:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
        ingress = json.load(answer)
    balancers = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    for balancer in balancers:
        address = balancer.get("hostname") or balancer.get("ip")
        if address:
            return f"http://{address}"
    return None


@dataclass
class Result:
    success: bool
    seconds: float
    steps: dict[str, float]
    failed_step: str | None
    finished: float


@dataclass
class State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    shop_url: str | None = None
    last: Result | None = None
    runs: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def record(self, result: Result) -> None:
        with self.lock:
            self.last = result
            self.runs["success" if result.success else "failure"] += 1
            if result.failed_step is not None:
                self.failures[result.failed_step] += 1

    def metrics(self) -> str:
        with self.lock:
            last, runs, failures, shop = self.last, dict(self.runs), dict(self.failures), self.shop_url
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            out.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)

        journey = f'journey="{JOURNEY}"'
        metric(
            "synthetic_shop_discovered",
            "gauge",
            "Whether the shop's public address is known.",
            [(journey, 1 if shop else 0)],
        )
        metric(
            "synthetic_journey_runs_total",
            "counter",
            "Journeys run, by result.",
            [(f'{journey},result="{r}"', runs.get(r, 0)) for r in ("success", "failure")],
        )
        metric(
            "synthetic_journey_failures_total",
            "counter",
            "Failed journeys, by the step that failed.",
            [(f'{journey},step="{s}"', n) for s, n in sorted(failures.items())],
        )
        if last is not None:
            metric(
                "synthetic_journey_success",
                "gauge",
                "Whether the last journey succeeded.",
                [(journey, 1 if last.success else 0)],
            )
            metric(
                "synthetic_journey_duration_seconds",
                "gauge",
                "How long the last journey took.",
                [(journey, last.seconds)],
            )
            metric(
                "synthetic_journey_step_duration_seconds",
                "gauge",
                "How long each step of the last journey took.",
                [(f'{journey},step="{s}"', t) for s, t in last.steps.items()],
            )
            metric(
                "synthetic_journey_last_run_timestamp_seconds",
                "gauge",
                "When the last journey ended.",
                [(journey, last.finished)],
            )
        return "\n".join(out) + "\n"


def checkout_form() -> dict[str, Any]:
    return {
        "email": "synthetic-monitor@example.com",
        "address": {
            "street_address": "1 Probe Street",
            "zip_code": "94043",
            "city": "Mountain View",
            "state": "CA",
            "country": "United States",
        },
        "credit_card": {
            "number": CARD,
            "cvv": "123",
            "expiration_year": datetime.now(UTC).year + 5,
            "expiration_month": 12,
        },
    }


def run_journey(shop: str, settings: Settings) -> Result:
    """One checkout journey against `shop`, as a new shopper (its own session)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    headers = {"baggage": BAGGAGE, "User-Agent": USER_AGENT, "Accept": "application/json, text/html"}
    item = {"product_id": settings.product, "quantity": 1}
    steps: list[tuple[str, str, str, dict[str, Any] | None]] = [
        ("home", "GET", "/", None),
        ("product", "GET", f"/api/products/{settings.product}", None),
        ("add_to_cart", "POST", "/api/cart", item),
        ("checkout", "POST", "/api/checkout", checkout_form()),
    ]
    timings: dict[str, float] = {}
    began = time.monotonic()
    for name, method, path, body in steps:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            shop + path,
            data=data,
            method=method,
            headers=headers | ({"Content-Type": "application/json"} if data is not None else {}),
        )
        started = time.monotonic()
        try:
            with opener.open(request, timeout=settings.timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as err:
            err.read()
            timings[name] = time.monotonic() - started
            log(f"{name}: {method} {path} answered {err.code}")
            return Result(False, time.monotonic() - began, timings, name, time.time())
        except (OSError, ValueError) as err:
            timings[name] = time.monotonic() - started
            log(f"{name}: {method} {path} failed: {err}")
            return Result(False, time.monotonic() - began, timings, name, time.time())
        timings[name] = time.monotonic() - started
    return Result(True, time.monotonic() - began, timings, None, time.time())


def keep_probing(
    settings: Settings,
    state: State,
    stop: threading.Event,
    discover: Callable[[Settings], str | None] = ingress_url,
) -> None:
    while not stop.is_set():
        shop = settings.shop_url or None
        if shop is None:
            try:
                shop = discover(settings)
            except (OSError, ValueError) as err:
                log(f"the Ingress {settings.ingress} could not be read: {err}")
        with state.lock:
            if shop != state.shop_url:
                log(f"the shop is {shop}")
            state.shop_url = shop
        if shop is not None:
            state.record(run_journey(shop, settings))
        stop.wait(settings.interval)


def targets(settings: Settings, state: State) -> list[dict[str, Any]]:
    with state.lock:
        shop = state.shop_url
    if shop is None:
        return []
    return [
        {
            "targets": [settings.blackbox],
            "labels": {"__param_target": shop + path, "__param_module": settings.module, "probe": name},
        }
        for name, path in settings.probes.items()
    ]


def handler(settings: Settings, state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = USER_AGENT

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                self._answer(200, state.metrics().encode(), "text/plain; version=0.0.4")
            elif path == "/targets":
                self._answer(200, json.dumps(targets(settings, state)).encode(), "application/json")
            elif path == "/healthz":
                self._answer(200, b'{"status":"ok"}', "application/json")
            else:
                self._answer(404, json.dumps({"error": f"no such path: {path}"}).encode(), "application/json")

    return Handler


def main() -> None:
    try:
        settings = Settings.from_env(dict(os.environ))
    except ValueError as err:
        log(str(err))
        raise SystemExit(2) from None
    host = os.environ.get("BIND_HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "9116"))
    state, stop = State(), threading.Event()
    server = ThreadingHTTPServer((host, port), handler(settings, state))
    server.daemon_threads = True

    def finish(signum: int, frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    threading.Thread(target=keep_probing, args=(settings, state, stop), daemon=True).start()
    log(f"serving on {host}:{port}, a journey every {settings.interval:g} s")
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
