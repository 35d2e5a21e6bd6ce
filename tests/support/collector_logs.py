"""The shop's logs as the deployed collector keeps them: its `debug` exporter writes every log record to
the collector's own log at `detailed` verbosity, and `CollectorLogs` reads them back from there (the
collector pods' logs, through the Kubernetes API: `kubectl logs` at every stage).

`parse` reads the debug exporter's text (the collector's `otlptext` format: `ResourceLog #0`,
`Resource attributes:`, `-> key: Str(value)`, `LogRecord #0`, `Body: Str(...)`, `Trace ID: ...`), a
body or value running over several lines included, and skips every other line of the log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from lightkube import Client
from lightkube.resources.core_v1 import Pod

NAME_LABEL = "app.kubernetes.io/name"
COLLECTOR = "otel-collector"
TAIL_LINES = 50_000
POLL_INTERVAL_SECONDS = 1.0
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\t\w+\t(?P<message>.*)$")
_ATTRIBUTE = re.compile(r"^\s+-> (?P<key>[^:]+): (?P<value>.*)$")
_VALUE = re.compile(r"^(?P<type>Str|Int|Double|Bool|Map|Slice|Bytes|Empty)\((?P<text>.*)\)$", re.DOTALL)
_FIELDS = (
    "ObservedTimestamp",
    "Timestamp",
    "SeverityText",
    "SeverityNumber",
    "Body",
    "Trace ID",
    "Span ID",
    "Flags",
)


@dataclass
class LogRecord:
    service: str = ""
    body: str = ""
    severity_text: str = ""
    severity_number: int = 0
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)


def value_text(written: str) -> str:
    """The text inside `Type(...)`; the whole text when it is not written so."""
    match = _VALUE.match(written)
    return match.group("text") if match else written


def _entries(lines: Iterable[str]) -> Iterator[list[str]]:
    """The debug exporter's detailed entries: from a `ResourceLog #0` message to its JSON fields line."""
    entry: list[str] | None = None
    for line in lines:
        started = _ENTRY.match(line)
        if started and started.group("message") == "ResourceLog #0":
            entry = [started.group("message")]
        elif entry is not None:
            if line.startswith("\t{"):
                yield entry
                entry = None
            elif started:  # another entry began: this one was cut off
                entry = None
            else:
                entry.append(line)


def parse(text: str) -> list[LogRecord]:
    records: list[LogRecord] = []
    for entry in _entries(text.splitlines()):
        resource: dict[str, str] = {}  # values as written (`Str(...)`) until the entry is read
        #: each record's resource, fields and attributes
        written: list[tuple[dict[str, str], dict[str, str], dict[str, str]]] = []
        target: dict[str, str] | None = None  # where `-> key: value` lines go
        last: tuple[dict[str, str], str] | None = None  # where a value's next line goes
        for line in entry:
            attribute = _ATTRIBUTE.match(line)
            name, colon, rest = line.partition(": ")
            if line.startswith("ResourceLog #"):
                resource, target, last = {}, None, None
            elif line == "Resource attributes:":
                target, last = resource, None
            elif line.startswith("LogRecord #"):
                written.append((resource, {}, {}))
                target, last = None, None
            elif line == "Attributes:" and written:
                target, last = written[-1][2], None
            elif attribute and target is not None:
                target[attribute.group("key")] = attribute.group("value")
                last = (target, attribute.group("key"))
            elif written and colon and name in _FIELDS:
                written[-1][1][name] = rest
                target, last = None, (written[-1][1], name)
            elif line.startswith(("Resource SchemaURL", "ScopeLogs", "InstrumentationScope")):
                target, last = None, None
            elif last is not None:  # a value that runs over several lines
                values, key = last
                values[key] = f"{values[key]}\n{line}"
        for record_resource, fields, attributes in written:
            resource_values = {k: value_text(v) for k, v in record_resource.items()}
            severity = fields.get("SeverityNumber", "")
            records.append(
                LogRecord(
                    service=resource_values.get("service.name", ""),
                    body=value_text(fields.get("Body", "")),
                    severity_text=fields.get("SeverityText", ""),
                    severity_number=int(severity.rpartition("(")[2].rstrip(")") or 0),
                    trace_id=fields.get("Trace ID") or None,
                    span_id=fields.get("Span ID") or None,
                    attributes={k: value_text(v) for k, v in attributes.items()},
                    resource=resource_values,
                )
            )
    return records


class CollectorLogs:
    """The log records the collector wrote out, read with `read` (the text of the collector's log)."""

    def __init__(self, read: Callable[[], str]) -> None:
        self.read = read

    def records(self, service: str | None = None, trace_id: str | None = None) -> list[LogRecord]:
        return [
            r
            for r in parse(self.read())
            if (service is None or r.service == service) and (trace_id is None or r.trace_id == trace_id)
        ]

    def wait_for_logs(
        self,
        predicate: Callable[[LogRecord], bool] | None = None,
        *,
        service: str | None = None,
        trace_id: str | None = None,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[LogRecord]:
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records(service, trace_id) if predicate is None or predicate(r)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {count} log record(s) of service={service} trace_id={trace_id} in the collector's "
                    f"log after {timeout:g}s ({len(found)} found)"
                )
            time.sleep(POLL_INTERVAL_SECONDS)


def pod_logs(kube: Client, namespace: str, tail_lines: int = TAIL_LINES) -> Callable[[], str]:
    """Reads the logs of the collector's pods through the Kubernetes API (`pods/log`)."""

    def read() -> str:
        pods = kube.list(Pod, namespace=namespace, labels={NAME_LABEL: COLLECTOR})
        texts = []
        for pod in pods:
            if pod.metadata is None or pod.metadata.name is None:
                continue
            lines = kube.log(pod.metadata.name, namespace=namespace, tail_lines=tail_lines, newlines=True)
            texts.append("".join(lines))
        return "\n".join(texts)

    return read
