"""`python -m sim.standins.blackbox --listen IP:PORT -- BINARY ARGS...`: Debian's
`prometheus-blackbox-exporter` in place of the blackbox exporter's image, listening on the pod's address
(`--web.listen-address`), with the container's args otherwise as given. The modules' probes go where the
targets Prometheus passes say; those are addresses, not cluster names, in this project (the ALB's), and the
binary resolves any other name with the host's resolver, as the image would with its pod's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sim.standins.binaries import StandInError, with_listen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.standins.blackbox", description=__doc__)
    parser.add_argument("--listen", required=True, help="the pod's HOST:PORT")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the binary and the container's args")
    args = parser.parse_args(argv)
    command = [arg for arg in args.command if arg != "--"]
    if not command:
        print("standin_blackbox: no binary after --", file=sys.stderr)
        return 2
    try:
        final = [command[0], *with_listen(command[1:], args.listen)]
    except StandInError as err:
        print(f"standin_blackbox: {err}", file=sys.stderr)
        return 2
    os.execv(final[0], final)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
