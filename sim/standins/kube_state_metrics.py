"""`python -m sim.standins.kube_state_metrics --api-server URL --listen IP -- ARGS...`: what the
kube-state-metrics image's stand-in runs (kube-state-metrics is a Go program with no Debian package).

It reads the objects from the local cluster's API at each scrape and reports them as kube-state-metrics 2.x
does, with the same metric names, label names and value conventions, for the resources and metrics it
implements (`FAMILIES`):

    deployments               kube_deployment_spec_replicas, kube_deployment_status_replicas{,_available,
                              _unavailable,_updated}, kube_deployment_metadata_generation,
                              kube_deployment_status_observed_generation
    statefulsets              kube_statefulset_replicas, kube_statefulset_status_replicas{,_ready,_current,
                              _updated}
    horizontalpodautoscalers  kube_horizontalpodautoscaler_spec_{min,max}_replicas,
                              kube_horizontalpodautoscaler_status_{current,desired}_replicas
    pods                      kube_pod_status_phase, kube_pod_status_ready,
                              kube_pod_container_status_{restarts_total,running,waiting,terminated},
                              kube_pod_container_status_{waiting,last_terminated}_reason

The container's args are kube-state-metrics' own: `--port` (metrics, with `/livez`), `--telemetry-port`
(`/readyz`, `/metrics` of its own), `--namespaces`, `--resources` (of those above); any other flag, or a
resource it does not implement, is refused in one line. It serves on the pod's address.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from quart import Quart, Response, request

from sim.serving import serve_until_signalled

LOCAL_API_TOKEN = "shopstack-local"  # what the local API's kubeconfigs carry (sim/k8s/kubeconfig.py)
GRACEFUL_TIMEOUT_SECONDS = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")

Sample = tuple[dict[str, str], float]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    help: str
    samples: Callable[[dict[str, Any]], list[Sample]]


def _meta(obj: dict[str, Any], kind: str) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    return {"namespace": str(meta.get("namespace", "")), kind: str(meta.get("name", ""))}


def _value(kind: str, path: str, default: float | None = 0.0) -> Callable[[dict[str, Any]], list[Sample]]:
    """One sample of the object: the number at `path` (dotted) in it, or `default` (None: no sample)."""

    def samples(obj: dict[str, Any]) -> list[Sample]:
        found: Any = obj
        for key in path.split("."):
            found = found.get(key) if isinstance(found, dict) else None
        if found is None:
            if default is None:
                return []
            found = default
        return [(_meta(obj, kind), float(found))]

    return samples


def _pod_labels(pod: dict[str, Any]) -> dict[str, str]:
    meta = pod.get("metadata") or {}
    return {
        "namespace": str(meta.get("namespace", "")),
        "pod": str(meta.get("name", "")),
        "uid": str(meta.get("uid", "")),
    }


def _phase(pod: dict[str, Any]) -> list[Sample]:
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    return [(_pod_labels(pod) | {"phase": p}, 1.0 if p == phase else 0.0) for p in PHASES]


def _ready(pod: dict[str, Any]) -> list[Sample]:
    conditions = (pod.get("status") or {}).get("conditions") or []
    status = next((c.get("status") for c in conditions if c.get("type") == "Ready"), None)
    if status is None:
        return []
    return [
        (_pod_labels(pod) | {"condition": c}, 1.0 if status.lower() == c else 0.0)
        for c in ("true", "false", "unknown")
    ]


def _containers(pod: dict[str, Any]) -> Iterable[tuple[dict[str, str], dict[str, Any]]]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        yield _pod_labels(pod) | {"container": str(status.get("name", ""))}, status


def _restarts(pod: dict[str, Any]) -> list[Sample]:
    return [(labels, float(s.get("restartCount") or 0)) for labels, s in _containers(pod)]


def _state_is(state: str) -> Callable[[dict[str, Any]], list[Sample]]:
    def samples(pod: dict[str, Any]) -> list[Sample]:
        return [(labels, 1.0 if state in (s.get("state") or {}) else 0.0) for labels, s in _containers(pod)]

    return samples


def _waiting_reason(pod: dict[str, Any]) -> list[Sample]:
    found = []
    for labels, status in _containers(pod):
        waiting = (status.get("state") or {}).get("waiting")
        if waiting is not None and waiting.get("reason"):
            found.append((labels | {"reason": str(waiting["reason"])}, 1.0))
    return found


def _last_terminated_reason(pod: dict[str, Any]) -> list[Sample]:
    found = []
    for labels, status in _containers(pod):
        terminated = (status.get("lastState") or {}).get("terminated")
        if terminated is not None and terminated.get("reason"):
            found.append((labels | {"reason": str(terminated["reason"])}, 1.0))
    return found


FAMILIES: dict[str, list[Family]] = {
    "deployments": [
        Family("kube_deployment_spec_replicas", "gauge", "Number of desired pods for a deployment.",
               _value("deployment", "spec.replicas", 1)),
        Family("kube_deployment_status_replicas", "gauge", "The number of replicas per deployment.",
               _value("deployment", "status.replicas")),
        Family("kube_deployment_status_replicas_available", "gauge",
               "The number of available replicas per deployment.",
               _value("deployment", "status.availableReplicas")),
        Family("kube_deployment_status_replicas_unavailable", "gauge",
               "The number of unavailable replicas per deployment.",
               _value("deployment", "status.unavailableReplicas")),
        Family("kube_deployment_status_replicas_updated", "gauge",
               "The number of updated replicas per deployment.",
               _value("deployment", "status.updatedReplicas")),
        Family("kube_deployment_metadata_generation", "gauge",
               "Sequence number representing a specific generation of the desired state.",
               _value("deployment", "metadata.generation")),
        Family("kube_deployment_status_observed_generation", "gauge",
               "The generation observed by the deployment controller.",
               _value("deployment", "status.observedGeneration")),
    ],
    "statefulsets": [
        Family("kube_statefulset_replicas", "gauge", "Number of desired pods for a StatefulSet.",
               _value("statefulset", "spec.replicas", 1)),
        Family("kube_statefulset_status_replicas", "gauge", "The number of replicas per StatefulSet.",
               _value("statefulset", "status.replicas")),
        Family("kube_statefulset_status_replicas_ready", "gauge",
               "The number of ready replicas per StatefulSet.",
               _value("statefulset", "status.readyReplicas")),
        Family("kube_statefulset_status_replicas_current", "gauge",
               "The number of current replicas per StatefulSet.",
               _value("statefulset", "status.currentReplicas")),
        Family("kube_statefulset_status_replicas_updated", "gauge",
               "The number of updated replicas per StatefulSet.",
               _value("statefulset", "status.updatedReplicas")),
    ],
    "horizontalpodautoscalers": [
        Family("kube_horizontalpodautoscaler_spec_min_replicas", "gauge",
               "Lower limit for the number of pods that can be set by the autoscaler, default 1.",
               _value("horizontalpodautoscaler", "spec.minReplicas", 1)),
        Family("kube_horizontalpodautoscaler_spec_max_replicas", "gauge",
               "Upper limit for the number of pods that can be set by the autoscaler; cannot be smaller "
               "than MinReplicas.",
               _value("horizontalpodautoscaler", "spec.maxReplicas", None)),
        Family("kube_horizontalpodautoscaler_status_current_replicas", "gauge",
               "Current number of replicas of pods managed by this autoscaler.",
               _value("horizontalpodautoscaler", "status.currentReplicas")),
        Family("kube_horizontalpodautoscaler_status_desired_replicas", "gauge",
               "Desired number of replicas of pods managed by this autoscaler.",
               _value("horizontalpodautoscaler", "status.desiredReplicas")),
    ],
    "pods": [
        Family("kube_pod_status_phase", "gauge", "The pods current phase.", _phase),
        Family("kube_pod_status_ready", "gauge", "Describes whether the pod is ready to serve requests.",
               _ready),
        Family("kube_pod_container_status_restarts_total", "counter",
               "The number of container restarts per container.", _restarts),
        Family("kube_pod_container_status_running", "gauge",
               "Describes whether the container is currently in running state.", _state_is("running")),
        Family("kube_pod_container_status_waiting", "gauge",
               "Describes whether the container is currently in waiting state.", _state_is("waiting")),
        Family("kube_pod_container_status_terminated", "gauge",
               "Describes whether the container is currently in terminated state.", _state_is("terminated")),
        Family("kube_pod_container_status_waiting_reason", "gauge",
               "Describes the reason the container is currently in waiting state.", _waiting_reason),
        Family("kube_pod_container_status_last_terminated_reason", "gauge",
               "Describes the last reason the container was in terminated state.", _last_terminated_reason),
    ],
}  # fmt: skip
#: the API path of each resource's list in a namespace
PATHS = {
    "deployments": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "statefulsets": "/apis/apps/v1/namespaces/{namespace}/statefulsets",
    "horizontalpodautoscalers": "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers",
    "pods": "/api/v1/namespaces/{namespace}/pods",
}


class ConfigError(Exception):
    """Args the stand-in does not implement; one line."""


@dataclass(frozen=True)
class Options:
    port: int
    telemetry_port: int
    namespaces: tuple[str, ...]
    resources: tuple[str, ...]


def parse_options(args: Sequence[str]) -> Options:
    """kube-state-metrics' own flags, those the stand-in implements."""
    values: dict[str, str] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"{arg!r}: give kube-state-metrics' flags as --flag=value")
        flag, _, value = arg[2:].partition("=")
        if flag not in ("port", "telemetry-port", "namespaces", "resources"):
            raise ConfigError(f"--{flag} is not implemented by the kube-state-metrics stand-in")
        values[flag] = value
    resources = tuple(r for r in values.get("resources", ",".join(FAMILIES)).split(",") if r)
    unknown = sorted(set(resources) - set(FAMILIES))
    if unknown:
        raise ConfigError(
            f"--resources={','.join(unknown)}: the stand-in implements {', '.join(sorted(FAMILIES))} only"
        )
    namespaces = tuple(n for n in values.get("namespaces", "").split(",") if n)
    if not namespaces:
        raise ConfigError("the stand-in watches named namespaces only: give --namespaces")
    try:
        return Options(
            int(values.get("port", "8080")), int(values.get("telemetry-port", "8081")), namespaces, resources
        )
    except ValueError as err:
        raise ConfigError(f"a port is not a number: {err}") from None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(options: Options, objects: dict[str, list[dict[str, Any]]]) -> str:
    """The metrics of `objects` (resource -> items) in Prometheus' text format."""
    lines: list[str] = []
    for resource in options.resources:
        for family in FAMILIES[resource]:
            lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
            for obj in objects.get(resource, []):
                for labels, value in family.samples(obj):
                    rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                    lines.append(f"{family.name}{{{rendered}}} {value:g}")
    return "\n".join(lines) + "\n"


async def read_objects(http: httpx.AsyncClient, options: Options) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in options.resources:
        items: list[dict[str, Any]] = []
        for namespace in options.namespaces:
            response = await http.get(PATHS[resource].format(namespace=namespace))
            response.raise_for_status()
            items += response.json().get("items") or []
        found[resource] = items
    return found


def create_app(options: Options, api_server: str) -> Quart:
    """One app on both ports, answering as kube-state-metrics does on each (`/metrics` is the objects'
    on `--port`, its own on `--telemetry-port`)."""
    app = Quart("kube_state_metrics")
    headers = {"Authorization": f"Bearer {LOCAL_API_TOKEN}"}
    state = {"scrapes": 0, "errors": 0}

    def telemetry_port() -> bool:
        server = request.scope.get("server") or (None, None)
        return bool(server[1] == options.telemetry_port)

    @app.get("/metrics")
    async def metrics() -> Response:
        if telemetry_port():
            text = (
                "# HELP kube_state_metrics_stand_in_scrapes_total Scrapes of the metrics port, by result.\n"
                "# TYPE kube_state_metrics_stand_in_scrapes_total counter\n"
                f'kube_state_metrics_stand_in_scrapes_total{{result="success"}} {state["scrapes"]}\n'
                f'kube_state_metrics_stand_in_scrapes_total{{result="error"}} {state["errors"]}\n'
            )
            return Response(text, content_type=CONTENT_TYPE)
        async with httpx.AsyncClient(base_url=api_server, headers=headers, timeout=10) as http:
            try:
                objects = await read_objects(http, options)
            except (httpx.HTTPError, ValueError) as err:
                state["errors"] += 1
                return Response(f"listing the objects failed: {err}\n", status=500, content_type=CONTENT_TYPE)
        state["scrapes"] += 1
        return Response(exposition(options, objects), content_type=CONTENT_TYPE)

    @app.get("/livez")
    @app.get("/readyz")
    @app.get("/healthz")
    async def health() -> Response:
        return Response("OK", content_type="text/plain")

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.standins.kube_state_metrics", description=__doc__)
    parser.add_argument("--api-server", required=True)
    parser.add_argument("--listen", required=True, help="the pod's address")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- kube-state-metrics' own flags")
    args = parser.parse_args(argv)
    try:
        options = parse_options([a for a in args.args if a != "--"])
    except ConfigError as err:
        print(f"standin_kube_state_metrics: {err}", file=sys.stderr)
        return 2
    app = create_app(options, args.api_server.rstrip("/"))
    ports = [options.port, options.telemetry_port]
    serve_until_signalled(app, args.listen, ports, GRACEFUL_TIMEOUT_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
