"""A kind cluster beside an AWS emulator container: `tox -e kind` starts both and runs
`pyinfra inventory/kind.py deploy.py` with the variables `infra.targets.kind_cluster` reads.
"""

from infra.targets import TargetError, kind_cluster

try:
    hosts = [("@shopstack/kind", kind_cluster())]
except TargetError as err:
    raise SystemExit(f"inventory/kind.py: {err}") from None
