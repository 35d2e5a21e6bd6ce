"""`python -m sim.standins.jaeger --config=FILE [--listen-address ADDRESS]`: the Jaeger image's stand-in."""

from __future__ import annotations

import sys

from sim.standins.jaeger.distribution import JAEGER
from sim.telemetry.collector.run import main

if __name__ == "__main__":
    sys.exit(main(JAEGER))
