"""A kind cluster beside an AWS emulator container: `tox -e kind` starts both and runs
`pyinfra inventory/kind.py deploy.py` with the variables `infra.stages.emulator.kind_cluster` reads.
"""

from infra.stages import TargetError
from infra.stages.emulator import kind_cluster

try:
    hosts = [("@shopstack/kind", kind_cluster())]
except TargetError as err:
    raise SystemExit(f"inventory/kind.py: {err}") from None
