"""A collector configuration file as the stand-in reads it: its sections, component ids and pipelines.

The file is the OpenTelemetry Collector's own format: `receivers`, `processors`, `exporters`,
`connectors` and `extensions` map component ids (`type` or `type/name`) to their settings, and `service`
names the extensions to start and the pipelines (`traces`, `metrics`, `logs`, or `<signal>/<name>`)
wiring them. String values may hold `${env:NAME}`, `${env:NAME:-default}` or `${NAME}`, expanded from the
environment as the collector does (a value that is one reference whole is read again as YAML, so that
`${env:PORT}` can be a number); `$$` is a literal `$`.

Everything here is structure: whether a component type exists and what its settings mean is the
distribution's business (`components`). A configuration this module cannot read raises `ConfigError`,
whose message is the one line the stand-in exits with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

Signal = Literal["traces", "metrics", "logs"]
Kind = Literal["receivers", "processors", "exporters", "connectors", "extensions"]
SIGNALS: tuple[Signal, ...] = get_args(Signal)
KINDS: tuple[Kind, ...] = get_args(Kind)
SERVICE_KEYS = ("extensions", "pipelines", "telemetry")
PIPELINE_KEYS = ("receivers", "processors", "exporters")

_TYPE = re.compile(r"[a-zA-Z][0-9a-zA-Z_]*")
_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class ConfigError(Exception):
    """A configuration the stand-in refuses; the message is one line naming what and why."""


@dataclass(frozen=True, order=True)
class ComponentId:
    """A component's id: its `type` and, for a second instance of a type, a `name` (`otlp/jaeger`)."""

    type: str
    name: str = ""

    @classmethod
    def parse(cls, text: object, where: str) -> ComponentId:
        if not isinstance(text, str) or not text:
            raise ConfigError(f"{where}: {text!r} is not a component id")
        kind, slash, name = text.partition("/")
        if not _TYPE.fullmatch(kind) or (slash and not name.strip()):
            raise ConfigError(f"{where}: {text!r} is not a component id (type[/name])")
        return cls(kind, name)

    def __str__(self) -> str:
        return f"{self.type}/{self.name}" if self.name else self.type


@dataclass(frozen=True)
class Pipeline:
    id: ComponentId  # its type is the signal
    receivers: tuple[ComponentId, ...]
    processors: tuple[ComponentId, ...]
    exporters: tuple[ComponentId, ...]

    @property
    def signal(self) -> Signal:
        return cast(Signal, self.id.type)


@dataclass(frozen=True)
class Config:
    #: kind -> id -> the settings as written (an empty mapping for `id:` with nothing after it)
    components: Mapping[Kind, Mapping[ComponentId, dict[str, Any]]]
    extensions: tuple[ComponentId, ...]
    pipelines: tuple[Pipeline, ...]
    telemetry: dict[str, Any]

    def settings(self, kind: Kind, component: ComponentId) -> dict[str, Any]:
        return dict(self.components[kind][component])

    def used(self, kind: Kind) -> list[ComponentId]:
        """The components of `kind` that some pipeline (or, for extensions, the service) uses, in order."""
        if kind == "extensions":
            return list(self.extensions)
        found: dict[ComponentId, None] = {}
        for pipeline in self.pipelines:
            if kind == "connectors":
                ids = [*pipeline.receivers, *pipeline.exporters]
                found |= dict.fromkeys(i for i in ids if i in self.components["connectors"])
            elif kind == "processors":
                found |= dict.fromkeys(pipeline.processors)
            else:
                ends = pipeline.receivers if kind == "receivers" else pipeline.exporters
                found |= dict.fromkeys(i for i in ends if i not in self.components["connectors"])
        return list(found)


def config_path(argument: str) -> Path:
    """The file a `--config` value names: a path or a `file:` URI (the other providers are refused)."""
    scheme, colon, rest = argument.partition(":")
    if colon and scheme in ("env", "yaml", "http", "https"):
        raise ConfigError(f"--config={argument}: the {scheme} config provider is not implemented here")
    return Path(rest if colon and scheme == "file" else argument)


def load(path: Path, env: Mapping[str, str]) -> Config:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read the config file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not YAML: {' '.join(str(err).split())}") from None
    return parse(document, env)


def parse(document: Any, env: Mapping[str, str]) -> Config:
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError("the configuration must be a mapping of sections")
    document = expand(document, env)
    unknown = sorted(set(document) - {*KINDS, "service"})
    if unknown:
        raise ConfigError(f"unknown section {unknown[0]!r} (sections: {', '.join([*KINDS, 'service'])})")
    components: dict[Kind, dict[ComponentId, dict[str, Any]]] = {}
    for kind in KINDS:
        section = document.get(kind) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{kind}: must be a mapping of component ids to settings")
        components[kind] = {}
        for key, value in section.items():
            component = ComponentId.parse(key, kind)
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{kind}::{component}: its settings must be a mapping")
            components[kind][component] = dict(value or {})
    overlap = set(components["connectors"]) & (set(components["receivers"]) | set(components["exporters"]))
    if overlap:
        raise ConfigError(f"connectors::{min(overlap)}: also configured as a receiver or exporter")
    service = document.get("service")
    if not isinstance(service, dict):
        raise ConfigError("service: missing, or not a mapping (it names the pipelines)")
    unknown = sorted(set(service) - set(SERVICE_KEYS))
    if unknown:
        raise ConfigError(f"service: unknown key {unknown[0]!r} (keys: {', '.join(SERVICE_KEYS)})")
    extensions = tuple(_ids(service.get("extensions"), "service::extensions"))
    for extension in extensions:
        if extension not in components["extensions"]:
            raise ConfigError(f"service::extensions: references extension {str(extension)!r}, not configured")
    pipelines = tuple(_pipelines(service.get("pipelines"), components))
    telemetry = service.get("telemetry") or {}
    if not isinstance(telemetry, dict):
        raise ConfigError("service::telemetry: must be a mapping")
    return Config(components, extensions, pipelines, telemetry)


def _ids(value: Any, where: str) -> Iterator[ComponentId]:
    if value is None:
        return
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of component ids")
    seen: set[ComponentId] = set()
    for item in value:
        component = ComponentId.parse(item, where)
        if component in seen:
            raise ConfigError(f"{where}: {component} is listed twice")
        seen.add(component)
        yield component


def _pipelines(value: Any, components: Mapping[Kind, Mapping[ComponentId, Any]]) -> Iterator[Pipeline]:
    if not isinstance(value, dict) or not value:
        raise ConfigError("service::pipelines: there must be at least one pipeline")
    for key, body in value.items():
        where = f"service::pipelines::{key}"
        pipeline_id = ComponentId.parse(key, "service::pipelines")
        if pipeline_id.type not in SIGNALS:
            raise ConfigError(f"{where}: a pipeline is traces, metrics or logs, not {pipeline_id.type!r}")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: must be a mapping of receivers, processors and exporters")
        unknown = sorted(set(body) - set(PIPELINE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
        lists = {key: tuple(_ids(body.get(key), f"{where}::{key}")) for key in PIPELINE_KEYS}
        for role, kinds in (
            ("receivers", ("receivers", "connectors")),
            ("processors", ("processors",)),
            ("exporters", ("exporters", "connectors")),
        ):
            for component in lists[role]:
                if not any(component in components[cast(Kind, k)] for k in kinds):
                    what = role[:-1]
                    raise ConfigError(
                        f"{where}: references {what} {str(component)!r}, which is not configured"
                    )
        if not lists["receivers"]:
            raise ConfigError(f"{where}: must have at least one receiver")
        if not lists["exporters"]:
            raise ConfigError(f"{where}: must have at least one exporter")
        yield Pipeline(pipeline_id, lists["receivers"], lists["processors"], lists["exporters"])


def expand(node: Any, env: Mapping[str, str]) -> Any:
    """`node` with the environment references in its strings expanded (keys are left as they are)."""
    if isinstance(node, dict):
        return {key: expand(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [expand(item, env) for item in node]
    if not isinstance(node, str) or "$" not in node:
        return node
    whole = _REFERENCE.fullmatch(node)
    expanded = _REFERENCE.sub(lambda match: _resolve(match, env), node)
    if whole and whole.group(0) != "$$":
        try:
            return yaml.safe_load(expanded) if expanded else expanded
        except yaml.YAMLError:
            return expanded
    return expanded


def _resolve(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match.group(0) == "$$":
        return "$"
    reference = match.group(1)
    provider, colon, rest = reference.partition(":")
    if not colon:
        provider, rest = "env", reference
    if provider != "env":
        raise ConfigError(f"${{{reference}}}: the {provider} config provider is not implemented here")
    name, _, default = rest.partition(":-")
    if not _ENV_NAME.fullmatch(name):
        raise ConfigError(f"${{{reference}}}: {name!r} is not an environment variable name")
    return env.get(name, default)
