"""Feature flags: OpenFeature with the flagd provider reading a flagd-format JSON file in process.

The file (`FLAGS_FILE`, mounted from a ConfigMap in the cluster) is polled and reloaded on change, so a
flag flips without a restart. Without a file every flag takes its default: off. Which flags exist and the
file's format are `flag_contract`'s.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TypeVar

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.exception import OpenFeatureError
from openfeature.flag_evaluation import FlagEvaluationDetails
from opentelemetry import trace

from services.common.flag_contract import Flag

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 500

T = TypeVar("T")


class FlagsNotReady(Exception):
    """The flags file could not be loaded when the service started."""


class FeatureFlags:
    """Typed access to the flags, recording each evaluation on the current span."""

    def __init__(self, client: OpenFeatureClient) -> None:
        self._client = client

    @classmethod
    def from_file(cls, path: Path | None, domain: str) -> FeatureFlags:
        """Start the flagd provider on `path` and wait until it has loaded the file."""
        if path is None:
            log.info("FLAGS_FILE is not set: every feature flag is off")
            return cls(api.get_client(domain))
        try:
            json.loads(path.read_text())
        except OSError as err:
            raise FlagsNotReady(f"FLAGS_FILE {path} cannot be read: {err.strerror}") from None
        except ValueError as err:
            raise FlagsNotReady(f"FLAGS_FILE {path} is not JSON: {err}") from None
        provider = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(path),
            deadline_ms=POLL_INTERVAL_MS,
        )
        try:
            api.set_provider_and_wait(provider, domain)
        except OpenFeatureError as err:
            provider.shutdown()
            raise FlagsNotReady(f"FLAGS_FILE {path} is not a valid flagd flag definition") from err
        return cls(api.get_client(domain))

    def enabled(self, flag: Flag) -> bool:
        return self._record(self._client.get_boolean_details(flag, False)).value

    def number(self, flag: Flag) -> float:
        """A numeric flag (a probability or a count); 0 when off."""
        return self._record(self._client.get_float_details(flag, 0.0)).value

    @staticmethod
    def _record(details: FlagEvaluationDetails[T]) -> FlagEvaluationDetails[T]:
        trace.get_current_span().add_event(
            "feature_flag.evaluation",
            {
                "feature_flag.key": details.flag_key,
                "feature_flag.result.variant": details.variant or "",
                "feature_flag.result.value": str(details.value),
            },
        )
        return details

    def shutdown(self) -> None:
        self._client.provider.shutdown()
