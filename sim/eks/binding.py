"""The EKS binding: keeps one local Kubernetes (`HostedCluster`) per ACTIVE EKS cluster in the AWS
emulator, and each one's Nodes equal to its node groups.

Every `POLL_SECONDS` it reads the emulator (in a worker thread: boto3 blocks) and reconciles: a new ACTIVE
cluster gets an API server on a free loopback port, its own address range and a kubeconfig; a cluster that
is gone or no longer ACTIVE is stopped; node groups are planned (`sim.eks.nodes.plan_nodes`) and applied.
Once a cluster's API serves, the emulator is told its endpoint and CA (a self-signed one made for the
cluster), which `DescribeCluster` then reports as EKS does; told again whenever it reports another endpoint
(a cluster made anew under the same name, a binding restarted on other ports).
`clusters.json` in the state directory is rewritten atomically after every change. A failed read is
logged and retried on the next poll; a cluster that fails to start is retried likewise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sim.cluster import split_addresses
from sim.eks.emulator import ACTIVE, EksCluster, Emulator, new_certificate_authority
from sim.eks.hosted import Addresses, HostedCluster
from sim.eks.nodes import plan_nodes

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
#: clusters take 127.N.0.0/16 for N in this range: pods in its lower half, Services in its upper half
#: (clear of the default Service CIDR 127.96/16, the tests' 127.61-127.121 and the pytest plugin's 127.200+)
ADDRESS_BLOCKS = range(160, 200)
#: after the emulator would not take a cluster's endpoint, try again this much later (a plain moto has no
#: admin route: the cluster then serves all the same, but `DescribeCluster` reports moto's made-up one)
PUBLISH_RETRY_SECONDS = 10.0


def addresses_for(block: int) -> Addresses:
    return Addresses(*split_addresses(f"127.{block}.0.0/16"))


class AddressBlocks:
    """The free address blocks; a stopped cluster's block is given out again."""

    def __init__(self, blocks: Iterable[int] = ADDRESS_BLOCKS) -> None:
        self.free = sorted(blocks)
        self.taken: dict[str, int] = {}

    def take(self, cluster: str) -> Addresses:
        if not self.free:
            raise RuntimeError(f"no address block left for cluster {cluster}")
        self.taken[cluster] = self.free.pop(0)
        return addresses_for(self.taken[cluster])

    def give_back(self, cluster: str) -> None:
        block = self.taken.pop(cluster, None)
        if block is not None:
            self.free = sorted([*self.free, block])


def write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


class EksBinding:
    def __init__(
        self,
        aws_endpoint: str,
        state_dir: Path,
        image_store: Path,
        host: str = "127.0.0.1",
        address_blocks: Iterable[int] = ADDRESS_BLOCKS,
        alb_admin_url: str | None = None,
    ) -> None:
        self.aws_endpoint = aws_endpoint
        self.alb_admin_url = alb_admin_url  # the ALB data plane's, for the clusters' pod readiness gates
        self.state_dir = state_dir
        self.image_store = image_store
        self.host = host
        self.emulator = Emulator(aws_endpoint)
        self.clusters: dict[str, HostedCluster] = {}
        self.blocks = AddressBlocks(address_blocks)
        self.state_file = state_dir / "clusters.json"
        self._warned: dict[tuple[str, str], str] = {}
        self._read_error: str | None = None
        #: each running cluster's CA (base64 of a PEM), as `DescribeCluster` reports it
        self.authorities: dict[str, str] = {}
        self._publish_failed: dict[str, float] = {}

    def describe(self) -> dict[str, Any]:
        """What `clusters.json` and `GET /clusters` say: each running cluster by name."""
        return {name: cluster.describe() for name, cluster in sorted(self.clusters.items())}

    def _write_state(self) -> None:
        write_json_atomically(self.state_file, self.describe())

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every POLL_SECONDS until `stop` is set; then stop every cluster. A pass under way
        (a node drain can take a pod's grace period) is cut short by `stop`."""
        for stale in (self.state_dir / "kubeconfig").glob("*"):  # left by a binding that was killed
            if stale.is_file():
                stale.unlink(missing_ok=True)
        self._write_state()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                poll = asyncio.create_task(self.poll())
                await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    poll.cancel()
                    await asyncio.gather(poll, return_exceptions=True)
                    break
                poll.result()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):
                        await asyncio.shield(stopping)
        finally:
            stopping.cancel()
            await self.stop_all()

    async def poll(self) -> None:
        """One read of the emulator and one reconcile pass."""
        try:
            wanted = await asyncio.to_thread(self.emulator.read)
        except (BotoCoreError, ClientError) as err:  # the emulator is down or busy: try again next time
            message = f"{type(err).__name__}: {err}"
            if message != self._read_error:
                log.warning("reading EKS clusters from %s: %s", self.aws_endpoint, message)
            self._read_error = message
            return
        self._read_error = None
        try:
            changed = await self.reconcile(wanted)
        except Exception:  # a bug in one pass must not take every cluster down: the next pass retries
            log.exception("reconciling the EKS clusters")
            changed = True
        if changed:
            self._write_state()

    async def reconcile(self, wanted: dict[str, EksCluster]) -> bool:
        changed = False
        for name in [n for n in self.clusters if n not in wanted or wanted[n].status != ACTIVE]:
            await self._stop(name)
            changed = True
        for name, eks in sorted(wanted.items()):
            if eks.status != ACTIVE:
                continue
            hosted = self.clusters.get(name)
            if hosted is None:
                hosted = await self._start(eks)
                if hosted is None:
                    continue
                changed = True
            await self._publish(eks, hosted)
            plan = plan_nodes(eks.region, eks.nodegroups, hosted.nodes, hosted.leaving())
            self._warn(name, plan.problems)
            hosted.follow(plan, self._write_state)
        return changed

    def _warn(self, cluster: str, problems: dict[str, str]) -> None:
        """Log each node group's problem once (until it changes)."""
        for group, problem in problems.items():
            if self._warned.get((cluster, group)) != problem:
                log.warning("cluster %s: node group %s is skipped: %s", cluster, group, problem)
                self._warned[cluster, group] = problem
        for key in [k for k in self._warned if k[0] == cluster and k[1] not in problems]:
            del self._warned[key]

    async def _publish(self, eks: EksCluster, hosted: HostedCluster) -> None:
        """Have the emulator's `DescribeCluster` report `hosted`'s API and CA, unless it already does; a
        failure is logged once and retried PUBLISH_RETRY_SECONDS later."""
        if eks.endpoint == hosted.url:
            return
        now = asyncio.get_running_loop().time()
        failed = self._publish_failed.get(eks.name)
        if failed is not None and now - failed < PUBLISH_RETRY_SECONDS:
            return
        if eks.name not in self.authorities:
            self.authorities[eks.name] = await asyncio.to_thread(new_certificate_authority)
        publish = self.emulator.publish_endpoint
        try:
            await asyncio.to_thread(publish, eks, hosted.url, self.authorities[eks.name])
        except OSError as err:
            if failed is None:
                log.warning("cluster %s: the emulator did not take its endpoint: %s", eks.name, err)
            self._publish_failed[eks.name] = now
            return
        self._publish_failed.pop(eks.name, None)
        log.info("cluster %s: DescribeCluster reports its endpoint %s", eks.name, hosted.url)

    async def _start(self, eks: EksCluster) -> HostedCluster | None:
        addresses = self.blocks.take(eks.name)
        hosted = HostedCluster(
            eks,
            addresses,
            aws_endpoint=self.aws_endpoint,
            image_store=self.image_store,
            state_dir=self.state_dir,
            host=self.host,
            alb_admin_url=self.alb_admin_url,
        )
        self.clusters[eks.name] = hosted  # from now on `stop_all` stops it, even if starting is cut short
        try:
            await hosted.start()
        except Exception:
            log.exception("starting the API server of cluster %s", eks.name)
            await self._stop(eks.name)
            return None
        return hosted

    async def _stop(self, name: str) -> None:
        hosted = self.clusters.pop(name)
        self.authorities.pop(name, None)
        self._publish_failed.pop(name, None)
        await hosted.stop()
        self.blocks.give_back(name)
        self._write_state()

    async def stop_all(self) -> None:
        """Stop every cluster (and so every pod); remove `clusters.json`."""
        await asyncio.gather(*(self._stop(name) for name in list(self.clusters)), return_exceptions=True)
        self.state_file.unlink(missing_ok=True)
