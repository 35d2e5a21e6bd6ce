"""Service configuration: environment variables only, the same names in every stage.

Each service declares its own settings by subclassing `ServiceSettings`; pydantic-settings reads the
variables (case-insensitively) and a bad value fails start-up with one line naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A configuration variable is missing or malformed."""


class ServiceSettings(BaseSettings):
    """Settings every service has: where it listens, its flags file and its log level."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    bind_host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    flags_file: Path | None = None
    log_level: str = Field(default="INFO", pattern=r"^(?i:debug|info|warning|error|critical)$")
    shutdown_timeout_seconds: float = Field(default=10.0, gt=0)

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
