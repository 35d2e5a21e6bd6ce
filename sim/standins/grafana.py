"""`python -m sim.standins.grafana`: what the Grafana images' stand-in runs in a pod (no Grafana binary
can be installed here).

At start it reads the provisioning directory as Grafana does (`datasources/*.yaml` and
`dashboards/*.yaml` providers, with `$VAR`/`${VAR}` expanded from the environment, each file provider's
`options.path` holding the dashboards' JSON files) and stops with one line naming the bad file if any
is invalid. Then it serves the read-only part of Grafana's HTTP API that checks need: `/api/health`,
`/api/datasources`, `/api/search` (uid, title, tags, folder of each dashboard, `query` filters by
title), `/api/dashboards/uid/<uid>`, `/metrics` for Prometheus's scrape, and the data source query API the
panels' queries go through, `POST /api/ds/query`, answered by querying the provisioned Prometheus as
Grafana does (`sim.standins.grafana_query`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from quart import Quart, Response, request

from sim.serving import serve_until_signalled
from sim.standins.grafana_query import query_data

VERSION = "11.2.0-standin"
GRACEFUL_TIMEOUT_SECONDS = 2.0


class ProvisioningError(Exception):
    """A provisioning or dashboard file Grafana would refuse; the message names the file."""


@dataclass
class Provisioned:
    datasources: list[dict[str, Any]] = field(default_factory=list)
    #: uid -> (folder, dashboard)
    dashboards: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


def _yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(os.path.expandvars(path.read_text()))
    except (OSError, yaml.YAMLError) as err:
        raise ProvisioningError(f"{path}: not readable YAML: {err}") from None
    if not isinstance(document, dict):
        raise ProvisioningError(f"{path}: not a YAML mapping")
    if document.get("apiVersion") != 1:
        raise ProvisioningError(f"{path}: apiVersion must be 1")
    return document


def _datasources(path: Path) -> list[dict[str, Any]]:
    entries = _load_yaml(path).get("datasources") or []
    if not isinstance(entries, list):
        raise ProvisioningError(f"{path}: datasources must be a list")
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("type"):
            raise ProvisioningError(f"{path}: every datasource needs a name and a type")
        if entry["type"] == "prometheus" and not str(entry.get("url", "")).startswith(
            ("http://", "https://")
        ):
            raise ProvisioningError(f"{path}: datasource {entry['name']!r} needs an http(s) url")
        found.append(entry)
    return found


def _json_files(directory: Path) -> list[Path]:
    """The JSON files below `directory`, hidden directories skipped as Grafana does (a ConfigMap volume
    keeps its files in `..data` and timestamped `..` directories, with symlinks at the top)."""
    found = []
    for parent, directories, files in os.walk(directory):
        directories[:] = [d for d in directories if not d.startswith(".")]
        found += [Path(parent) / name for name in files if name.endswith(".json")]
    return sorted(found)


def _dashboards(path: Path, into: dict[str, tuple[str, dict[str, Any]]]) -> None:
    providers = _load_yaml(path).get("providers") or []
    if not isinstance(providers, list):
        raise ProvisioningError(f"{path}: providers must be a list")
    for provider in providers:
        if not isinstance(provider, dict) or provider.get("type", "file") != "file":
            raise ProvisioningError(f"{path}: only file providers are supported")
        folder = str(provider.get("folder") or "General")
        directory = Path(str((provider.get("options") or {}).get("path") or ""))
        if not directory.is_dir():
            raise ProvisioningError(
                f"{path}: provider {provider.get('name')!r}: {directory} is not a directory"
            )
        for board_file in _json_files(directory):
            try:
                board = json.loads(board_file.read_text())
            except (OSError, ValueError) as err:
                raise ProvisioningError(f"{board_file}: not a JSON dashboard: {err}") from None
            if not isinstance(board, dict) or not board.get("uid") or not board.get("title"):
                raise ProvisioningError(f"{board_file}: a dashboard needs a uid and a title")
            if board["uid"] in into:
                raise ProvisioningError(f"{board_file}: dashboard uid {board['uid']!r} is provisioned twice")
            into[board["uid"]] = (folder, board)


def load(provisioning: Path) -> Provisioned:
    """Everything provisioned under `provisioning`; `ProvisioningError` for the first bad file."""
    if not provisioning.is_dir():
        raise ProvisioningError(f"{provisioning}: the provisioning directory does not exist")
    result = Provisioned()
    for path in _yaml_files(provisioning / "datasources"):
        result.datasources += _datasources(path)
    for path in _yaml_files(provisioning / "dashboards"):
        _dashboards(path, result.dashboards)
    return result


def create_app(provisioned: Provisioned) -> Quart:
    app = Quart(__name__)

    def answer(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    @app.get("/api/health")
    async def health() -> Response:
        return answer({"database": "ok", "version": VERSION})

    @app.get("/api/datasources")
    async def datasources() -> Response:
        keys = ("uid", "name", "type", "url", "access", "isDefault")
        listed = [
            {"id": i, **{k: source[k] for k in keys if k in source}}
            for i, source in enumerate(provisioned.datasources, 1)
        ]
        return answer(listed)

    @app.get("/api/search")
    async def search() -> Response:
        query = request.args.get("query", "").lower()
        found = [
            {
                "uid": uid,
                "title": board["title"],
                "type": "dash-db",
                "url": f"/d/{uid}",
                "tags": board.get("tags") or [],
                "folderTitle": folder,
            }
            for uid, (folder, board) in sorted(provisioned.dashboards.items(), key=lambda i: i[1][1]["title"])
            if query in board["title"].lower()
        ]
        return answer(found)

    @app.get("/api/dashboards/uid/<uid>")
    async def dashboard(uid: str) -> Response:
        if uid not in provisioned.dashboards:
            return answer({"message": "Dashboard not found"}, 404)
        folder, board = provisioned.dashboards[uid]
        return answer({"dashboard": board, "meta": {"folderTitle": folder, "provisioned": True}})

    @app.post("/api/ds/query")
    async def ds_query() -> Response:
        body = await request.get_json(force=True, silent=True)
        status, answer_body = await query_data(provisioned.datasources, body)
        return answer(answer_body, status)

    @app.get("/metrics")
    async def metrics() -> Response:
        text = (
            "# TYPE grafana_stand_in_dashboards gauge\n"
            f"grafana_stand_in_dashboards {len(provisioned.dashboards)}\n"
        )
        return Response(text, content_type="text/plain; version=0.0.4")

    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sim.standins.grafana", description=__doc__)
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve on")
    parser.add_argument("--provisioning", required=True, type=Path, help="Grafana's provisioning directory")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen {args.listen!r} is not HOST:PORT")
    try:
        provisioned = load(args.provisioning)
    except ProvisioningError as err:
        print(f"grafana stand-in: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    serve_until_signalled(create_app(provisioned), host, int(port), GRACEFUL_TIMEOUT_SECONDS)


if __name__ == "__main__":
    main()
