"""The deploy's stages as host data: what each inventory gives its host.

The stages differ only in data: where AWS is (the emulator's endpoint, or the standard AWS settings), how
Kubernetes is reached (the local cloud's kubeconfig, or an EKS token), where images go (the local cloud's
image store as well as ECR, or ECR alone). Everything else is `infra.settings.Settings`' defaults, which
any stage can override with a file of settings (`SHOPSTACK_SETTINGS=path.toml`) or `--data key=value`.

`aws` is a real account and imports nothing of the local cloud; `emulator` is the one place the deploy
touches the simulator (the local cloud, or kind beside an AWS emulator container).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class TargetError(Exception):
    """The target cannot be used as it is; the message is one line saying why and what to do."""


def settings_file(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings in `$SHOPSTACK_SETTINGS` (TOML), or none."""
    path = env.get("SHOPSTACK_SETTINGS")
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise TargetError(f"SHOPSTACK_SETTINGS={path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise TargetError(f"SHOPSTACK_SETTINGS={path}: not TOML: {err}") from None
