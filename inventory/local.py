"""The offline local cloud: `pyinfra inventory/local.py deploy.py`.

Starts the local cloud (`python -m sim up`) when it is not running. Its state directory is
$SHOPSTACK_SIM_STATE (default `.sim`); settings beyond the defaults come from $SHOPSTACK_SETTINGS (TOML) or
`--data key=value`.
"""

import os
from pathlib import Path

from infra.stages import TargetError
from infra.stages.emulator import local_cloud

try:
    hosts = [("@shopstack/local", local_cloud(Path(os.environ.get("SHOPSTACK_SIM_STATE", ".sim"))))]
except TargetError as err:
    raise SystemExit(f"inventory/local.py: {err}") from None
