"""`python -m sim.telemetry.collector --config=FILE [--listen-address ADDRESS]`: the collector image's
stand-in (see `sim.telemetry.collector.run`)."""

from __future__ import annotations

import sys

from sim.telemetry.collector.contrib import CONTRIB
from sim.telemetry.collector.run import main

if __name__ == "__main__":
    sys.exit(main(CONTRIB))
