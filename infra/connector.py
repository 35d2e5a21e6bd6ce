"""`@shopstack/<name>`: a pyinfra connector whose target is an AWS account and its EKS cluster.

pyinfra's connectors say where commands run (`@local`, `@ssh`, `@docker`). This deploy's target is no
machine but two APIs, so its connector holds a `Cloud` (boto3 session + Kubernetes client) made from the
host's data when pyinfra connects, answers facts' read requests in process (`infra.fact`), and refuses
shell commands and file transfers with one line saying so. Operations act through `FunctionCommand`s that
get the host and use `cloud_of(host)`.

On disconnect, which pyinfra does at the end of every run, failed or not, the connector runs the
cleanups operations registered (the deploy lock's release) and prints how many calls the run made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.base import BaseConnector
from pyinfra.connectors.util import CommandOutput, OutputLine

from infra.cloud import Cloud
from infra.fact import READ, answer
from infra.settings import Settings, SettingsError

log = logging.getLogger("pyinfra")


class CloudConnector(BaseConnector):
    handles_execution = True
    cloud: Cloud | None = None

    @staticmethod
    def make_names_data(name: str | None = None) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        if not name:
            raise ConnectError("name the target: @shopstack/<name>, for example @shopstack/local")
        yield f"@shopstack/{name}", {}, ["@shopstack"]

    def connect(self) -> None:
        self.cleanups: list[Callable[[], None]] = []
        try:
            self.cloud = Cloud(Settings.parse(self.host.data.dict()))  # type: ignore[no-untyped-call]
            self.cloud.verify_account()
        except (SettingsError, PermissionError) as err:
            raise ConnectError(str(err)) from None
        except (BotoCoreError, ClientError) as err:
            raise ConnectError(f"AWS does not answer: {err}") from None

    def on_disconnect(self, cleanup: Callable[[], None]) -> None:
        """Run `cleanup` when the run ends, however it ends."""
        self.cleanups.append(cleanup)

    def disconnect(self) -> None:
        for cleanup in reversed(getattr(self, "cleanups", [])):
            try:
                cleanup()
            except Exception as err:  # noqa: BLE001 - one failed cleanup must not skip the others
                log.error(f"{self.host.print_prefix}cleanup failed: {err}")
        if self.cloud is not None:
            log.info(f"{self.host.print_prefix}{self.cloud.summary()}")

    def run_shell_command(self, command: Any, print_output: bool, print_input: bool, **_: Any) -> Any:
        text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        if not text.startswith(f"{READ} "):
            return False, _output(
                "stderr", f"@shopstack runs API reads and functions, not shell: {text[:80]}"
            )
        assert self.cloud is not None, "connect() first"
        try:
            return True, _output("stdout", answer(self.cloud, text))
        except Exception as err:  # noqa: BLE001 - a failed read is reported as the fact's error
            return False, _output("stderr", f"{type(err).__name__}: {err}")

    def put_file(self, *_: Any, **__: Any) -> bool:
        raise ConnectError("@shopstack hosts take no files: their state is in AWS and Kubernetes")

    def get_file(self, *_: Any, **__: Any) -> bool:
        raise ConnectError("@shopstack hosts hold no files: their state is in AWS and Kubernetes")


def _output(buffer: str, text: str) -> CommandOutput:
    return CommandOutput([OutputLine(buffer, line) for line in text.splitlines() or [""]])
