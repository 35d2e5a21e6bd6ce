"""Facts read from the cloud's APIs instead of a shell.

A pyinfra fact is a command the host runs and a `process` that turns its output into data. The hosts of
this deploy are an AWS account and its cluster (`infra.connector`), so a fact's "command" is a request to
read: the fact's name and its arguments, which the connector answers in process by calling the fact's
`read` with the host's `Cloud` and writing the result as JSON. pyinfra's own machinery (planning, `--dry`,
`pyinfra INVENTORY fact infra.aws.facts.Vpc name=...`, fact errors failing the host) works unchanged.

A subclass names its arguments in `command` (pyinfra binds a fact's arguments by `command`'s signature)
and implements `read`; the result must be JSON data (dates become strings).

    class Bucket(ApiFact[dict | None]):
        def command(self, name: str) -> str:
            return self.request(name=name)

        def read(self, cloud: Cloud, name: str) -> dict | None:
            ...
"""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any, TypeVar

from pyinfra.api.facts import FactBase

from infra.cloud import Cloud

T = TypeVar("T")

#: the first word of every fact's command: what the connector recognises as a read
READ = "shopstack-read"


class ApiFact(FactBase[T]):
    def request(self, **arguments: Any) -> str:
        """The command that asks the connector to run `read(cloud, **arguments)`."""
        encoded = base64.urlsafe_b64encode(json.dumps(arguments, default=str).encode()).decode()
        return f"{READ} {type(self).__module__}:{type(self).__qualname__} {encoded}"

    def read(self, cloud: Cloud, **arguments: Any) -> T:
        raise NotImplementedError

    def process(self, output: list[str]) -> T:
        return json.loads("\n".join(output))  # type: ignore[no-any-return]


def answer(cloud: Cloud, command: str) -> str:
    """Run the read that `command` (from `ApiFact.request`) asks for; its result as JSON text."""
    word, target, encoded = command.split(" ", 2)
    if word != READ:
        raise ValueError(f"not a read request: {command[:60]}")
    module_name, _, class_name = target.partition(":")
    fact_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(fact_class, type) and issubclass(fact_class, ApiFact)):
        raise ValueError(f"{target} is not an ApiFact")
    arguments = json.loads(base64.urlsafe_b64decode(encoded))
    return json.dumps(fact_class().read(cloud, **arguments), default=str)
