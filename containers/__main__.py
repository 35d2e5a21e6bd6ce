"""`python -m containers`: see containers/cli.py."""

import sys

from containers.cli import run

sys.exit(run())
