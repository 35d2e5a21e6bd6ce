"""Benchmark: the autoscaling loop on a local cloud of its own, timed, with what its nodes would cost.

    .tox/local/bin/python -m tests.bench.autoscaling [--shoppers N]

Brings up the local stage as the integration suite does (a cloud in a temporary directory on free ports,
the images built into `build/`, the deploy), then runs `tests.integration.test_autoscaling.run_loop`:
shoppers ramp up until the HPAs and the cluster autoscaler have scaled out and every pod is Ready, then
one shopper keeps checking out while everything scales back in. Prints the loop's timings (load start →
HPAs out → first new node Ready → all pods Ready; load end → node group back to its starting size) and
the node-hours of each half, their on-demand cost at the settings' prices (`INSTANCE_PRICES_USD_PER_HOUR`,
dated) and that cost per 1,000 orders placed, at the peak and at rest. The times are the emulator's clock
(the stage's `autoscaling_time_scale`: a tenth of AWS's waits), so the node-hours are the local run's, not
a month's bill. Bounded by the stage's own timeouts; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

#: the address blocks of this benchmark's cloud
BENCH_ADDRESS_BLOCKS = "190-195"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.autoscaling", description=__doc__)
    parser.add_argument("--shoppers", type=int, default=6, help="shoppers of the ramp (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-autoscaling-") as temporary:
        root = Path(temporary)
        # the stage modules read these when imported: a cloud and logs of this run's own
        os.environ["SHOPSTACK_SUITE_STATE"] = str(root / "sim")
        os.environ["SHOPSTACK_STAGE_LOGS"] = str(root / "logs")
        from rich.console import Console

        from infra.settings import INSTANCE_PRICES_DATE, INSTANCE_PRICES_REGION, INSTANCE_PRICES_USD_PER_HOUR
        from tests.integration.stages import local, make_stage
        from tests.integration.test_autoscaling import run_loop

        # clear of the suite's own cloud (127.180-189), which may run beside this one
        local.SUITE_ADDRESS_BLOCKS = BENCH_ADDRESS_BLOCKS
        console = Console()
        stage = make_stage("local", console)
        try:
            stage.start()
            console.print(f"stage up: {stage.phases.as_dict()}")
            result = run_loop(stage, shoppers=args.shoppers, say=console.print)
        finally:
            stage.stop()
    settings = stage.settings
    instance = settings.node_group.instance_type
    price = INSTANCE_PRICES_USD_PER_HOUR[instance]
    peak_end = result.began + result.peak_seconds
    rest_end = result.ended + result.rest_seconds
    halves = (
        (
            "peak (load on)",
            result.node_hours(result.began, peak_end),
            result.orders_of_ramp,
            result.peak_seconds,
        ),
        (
            "rest (1 shopper)",
            result.node_hours(result.ended, rest_end),
            result.orders_at_rest,
            result.rest_seconds,
        ),
    )
    print()
    print(f"node group {result.start_size} -> {result.peak_size} -> {result.start_size} nodes of {instance}")
    print("| phase | seconds |")
    print("|---|---|")
    print(f"| load start → HPAs scaling out | {result.hpa_out:.0f} |")
    print(f"| load start → first new node Ready | {result.first_new_node_ready:.0f} |")
    print(f"| load start → all pods Ready | {result.all_pods_ready:.0f} |")
    print(f"| load end → node group back to {result.start_size} | {result.back_to_start:.0f} |")
    print()
    print(
        f"on-demand {instance} at ${price}/h ({INSTANCE_PRICES_REGION}, price list of {INSTANCE_PRICES_DATE})"
    )
    print("| half | wall time | node-hours | cost | orders | cost per 1,000 orders |")
    print("|---|---|---|---|---|---|")
    for what, hours, orders, seconds in halves:
        cost = hours * price
        per = f"${cost / orders * 1000:.4f}" if orders else "n/a"
        print(f"| {what} | {seconds:.0f} s | {hours:.4f} | ${cost:.5f} | {orders} | {per} |")
    print()
    failed = len(result.failed_checkouts), len(result.failed_other), len(result.failed_during_scale_in)
    print(
        f"failed: {failed[0]} checkouts and {failed[1]} other requests under load, "
        f"{failed[2]} during scale-in"
    )
    print(f"budgets broken: {len(set(result.watch.broken))}; most pods unschedulable at once: "
          f"{result.watch.unschedulable_seen}; new nodes' zones {sorted(result.new_node_zones)}")  # fmt: skip


if __name__ == "__main__":
    main()
