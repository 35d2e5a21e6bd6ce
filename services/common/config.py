"""Service configuration: environment variables only, the same names in every stage.

Each service declares its own settings by subclassing `ServiceSettings`; pydantic-settings reads the
variables (case-insensitively) and a bad value fails start-up with one line naming the variable.

`SERVICE_VERSION` names the build the service runs: the image build sets it to `<version>+<revision>`,
and a service started from a checkout is `dev`. It goes out in a response header, so it is one token of
printable ASCII.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A configuration variable is missing or malformed."""


#: the longest a drain may hold its caller (a preStop hook), within any sensible grace period
MAX_DRAIN_SECONDS = 300.0


class ServiceSettings(BaseSettings):
    """Settings every service has: where it listens, its flags file, its log level, the build it runs and
    how long it drains and shuts down."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    bind_host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    flags_file: Path | None = None
    log_level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0)
    service_version: str = Field(default="dev", pattern=r"^[\x21-\x7e]{1,128}$")
    drain_seconds: float = Field(default=10.0, ge=0, le=MAX_DRAIN_SECONDS)

    @classmethod
    def from_env(cls) -> Self:
        """Read the settings from the environment, raising `ConfigError` that names each bad variable."""
        try:
            return cls()
        except ValidationError as err:
            problems = "; ".join(
                f"{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in err.errors()
            )
            raise ConfigError(f"invalid configuration: {problems}") from None
