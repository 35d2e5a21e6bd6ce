"""`python -m sim.standins.prometheus --api-server URL -- PROMETHEUS ARGS...`: the real `prometheus` binary,
finding the pods its config's Kubernetes discovery asks for in the local cluster.

Two things stand between the pod's config and this machine: Debian's `prometheus` is built without
Kubernetes discovery, and a local process has no in-cluster service-account token. So this wrapper reads
the config the pod mounts (`--config.file`), replaces each `kubernetes_sd_configs` (role `pod`) with a
`file_sd_configs` whose file it keeps up to date from the cluster's API, carrying the same
`__meta_kubernetes_pod_*` labels Prometheus's own discovery gives, so the config's relabelling works
unchanged (in `scrape_configs` and in `alerting.alertmanagers` alike). An `http_sd_configs` whose URL names
a cluster Service, which the binary cannot resolve here, becomes a file discovery too, fetched by this
wrapper (which resolves it) at the config's `refresh_interval`. Relative `rule_files` are made absolute
against the mounted config's directory. Prometheus runs as its child and dies with it; a config it cannot
read exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from sim.standins.binaries import is_cluster_name
from sim.supervisor.lifeline import die_with_parent

CONFIG_FLAG = "--config.file="
LOCAL_API_TOKEN = "shopstack-local"  # what the local API's kubeconfigs carry (sim/k8s/kubeconfig.py)
REFRESH_SECONDS = 5.0
META = "__meta_kubernetes_"

log = logging.getLogger("standin_prometheus")


def _label_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def pod_targets(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """One pod as the target groups of Prometheus's `role: pod` discovery: one per container port."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ip = status.get("podIP")
    if not ip:
        return []
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    common = {
        f"{META}namespace": meta.get("namespace", ""),
        f"{META}pod_name": meta["name"],
        f"{META}pod_ip": ip,
        f"{META}pod_uid": meta.get("uid", ""),
        f"{META}pod_node_name": spec.get("nodeName", ""),
        f"{META}pod_host_ip": status.get("hostIP", ""),
        f"{META}pod_phase": status.get("phase", ""),
        f"{META}pod_ready": str(ready).lower(),
    }
    for kind, values in (("label", meta.get("labels") or {}), ("annotation", meta.get("annotations") or {})):
        for key, value in values.items():
            common[f"{META}pod_{kind}_{_label_name(key)}"] = str(value)
            common[f"{META}pod_{kind}present_{_label_name(key)}"] = "true"
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            common[f"{META}pod_controller_kind"] = owner.get("kind", "")
            common[f"{META}pod_controller_name"] = owner.get("name", "")
    groups = []
    for container in spec.get("containers") or []:
        labels = {**common, f"{META}pod_container_name": container["name"]}
        ports = container.get("ports") or []
        for port in ports:
            groups.append(
                {
                    "targets": [f"{ip}:{port['containerPort']}"],
                    "labels": {
                        **labels,
                        f"{META}pod_container_port_name": port.get("name", ""),
                        f"{META}pod_container_port_number": str(port["containerPort"]),
                        f"{META}pod_container_port_protocol": port.get("protocol", "TCP"),
                    },
                }
            )
        if not ports:
            groups.append({"targets": [ip], "labels": labels})
    return groups


class HttpDiscovery:
    """One `http_sd_configs` entry whose URL the binary cannot resolve, kept as a file of target groups."""

    def __init__(self, url: str, target: Path) -> None:
        self.url = url
        self.target = target

    def refresh(self, http: httpx.Client) -> None:
        response = httpx.get(self.url, timeout=10)  # not with the cluster API's token
        response.raise_for_status()
        groups = response.json()
        if not isinstance(groups, list):
            raise ValueError(f"{self.url} did not answer a list of target groups")
        partial = self.target.with_name(f".{self.target.name}.tmp")
        partial.write_text(json.dumps(groups, indent=1))
        os.replace(partial, self.target)


class Discovery:
    """One `kubernetes_sd_configs` entry, kept as a file of target groups."""

    def __init__(self, api_server: str, namespaces: list[str], target: Path) -> None:
        self.api_server = api_server.rstrip("/")
        self.namespaces = namespaces
        self.target = target

    def pods(self, http: httpx.Client) -> list[dict[str, Any]]:
        paths = [f"/api/v1/namespaces/{ns}/pods" for ns in self.namespaces] or ["/api/v1/pods"]
        items: list[dict[str, Any]] = []
        for path in paths:
            response = http.get(f"{self.api_server}{path}")
            response.raise_for_status()
            items += response.json().get("items", [])
        return items

    def refresh(self, http: httpx.Client) -> None:
        groups = [group for pod in self.pods(http) for group in pod_targets(pod)]
        partial = self.target.with_name(f".{self.target.name}.tmp")
        partial.write_text(json.dumps(groups, indent=1))
        os.replace(partial, self.target)


def _cluster_url(url: str) -> bool:
    host = urlsplit(url).hostname
    return bool(host) and is_cluster_name(str(host))


def rewrite(
    config: dict[str, Any], api_server: str, config_dir: Path, workdir: Path
) -> tuple[dict[str, Any], list[Discovery | HttpDiscovery]]:
    """`config` with its Kubernetes discovery, and its HTTP discovery of cluster Services, as files this
    wrapper writes, and its rule files absolute."""
    discoveries: list[Discovery | HttpDiscovery] = []
    alertmanagers = (config.get("alerting") or {}).get("alertmanagers") or []
    sections = [(s, s.get("job_name", "job")) for s in config.get("scrape_configs") or []]
    sections += [(a, f"alertmanagers-{i}") for i, a in enumerate(alertmanagers)]
    for section, name in sections:
        kept = []
        for sd in section.pop("kubernetes_sd_configs", None) or []:
            if sd.get("role", "pod") != "pod":
                raise ValueError(f"{name}: only role pod is supported, not {sd['role']}")
            target = workdir / f"targets-{_label_name(name)}-{len(discoveries)}.json"
            names = (sd.get("namespaces") or {}).get("names") or []
            discoveries.append(Discovery(sd.get("api_server", api_server), list(names), target))
            kept.append({"files": [str(target)], "refresh_interval": "5s"})
        remote = []
        for sd in section.pop("http_sd_configs", None) or []:
            if not _cluster_url(str(sd.get("url", ""))):
                remote.append(sd)
                continue
            target = workdir / f"targets-{_label_name(name)}-{len(discoveries)}.json"
            discoveries.append(HttpDiscovery(str(sd["url"]), target))
            kept.append({"files": [str(target)], "refresh_interval": sd.get("refresh_interval", "5s")})
        if remote:
            section["http_sd_configs"] = remote
        if kept:
            section["file_sd_configs"] = [*(section.get("file_sd_configs") or []), *kept]
    config["rule_files"] = [str(config_dir / rule) for rule in config.get("rule_files") or []]
    return config, discoveries


def keep_discovering(discoveries: list[Discovery | HttpDiscovery], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {LOCAL_API_TOKEN}"}
    with httpx.Client(headers=headers, timeout=10) as http:
        while not stop.is_set():
            for discovery in discoveries:
                where = discovery.url if isinstance(discovery, HttpDiscovery) else discovery.api_server
                try:
                    discovery.refresh(http)
                except (httpx.HTTPError, ValueError, OSError) as err:
                    log.warning("discovery from %s failed: %s", where, err)
            stop.wait(REFRESH_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m sim.standins.prometheus", description=__doc__)
    parser.add_argument("--api-server", required=True)
    parser.add_argument("prometheus", nargs=argparse.REMAINDER, help="-- the prometheus binary and its args")
    args = parser.parse_args(argv)
    command = [arg for arg in args.prometheus if arg != "--"]
    configs = [i for i, arg in enumerate(command) if arg.startswith(CONFIG_FLAG)]
    if not command or not configs:
        print("standin_prometheus: no `prometheus --config.file=...` command after --", file=sys.stderr)
        return 2
    source = Path(command[configs[-1]].removeprefix(CONFIG_FLAG))
    try:
        config, discoveries = rewrite(
            yaml.safe_load(source.read_text()) or {}, args.api_server, source.parent, Path.cwd()
        )
    except (OSError, yaml.YAMLError, ValueError) as err:
        print(f"standin_prometheus: cannot use {source}: {err}", file=sys.stderr)
        return 2
    target = Path.cwd() / "prometheus.yml"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    command[configs[-1]] = f"{CONFIG_FLAG}{target}"
    stop = threading.Event()
    threading.Thread(target=keep_discovering, args=(discoveries, stop), daemon=True).start()
    prometheus = subprocess.Popen(command, preexec_fn=die_with_parent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: prometheus.send_signal(number))
    code = prometheus.wait()
    stop.set()
    return code


if __name__ == "__main__":
    sys.exit(main())
