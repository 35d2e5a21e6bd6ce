"""Pods of the real payment image (built by the project's builder) run by the kubelet on loopback:
from the image's own layers, probed, restarted, OOM-killed, stopped gracefully, with their logs."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from containers.nodestore import ImageStore
from sim.kubelet import Kubelet, KubeletConfig, PodRuntime
from tests.conftest import BuiltImage
from tests.kubelet.helpers import ProcessFacts, alive, container, get, log_contains, pod, real, wait_until
from tests.kubelet.oci import layer_bytes, write_layout

pytestmark = pytest.mark.timeout(120)
SOURCE_TREE = str(Path(__file__).resolve().parents[2])
READY_PROBE = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}


@pytest.fixture
async def running() -> AsyncIterator[list[PodRuntime]]:
    """Pods a test starts; every one is stopped at the end, whatever happened."""
    pods: list[PodRuntime] = []
    try:
        yield pods
    finally:
        for runtime in pods:
            await runtime.stop(grace=2)


async def start(
    pods: list[PodRuntime], manifest: dict[str, object], ip: str, config: KubeletConfig
) -> PodRuntime:
    runtime = PodRuntime(manifest, ip, config)
    pods.append(runtime)
    return await runtime.start()


def ready(status: dict[str, object]) -> bool:
    conditions = {c["type"]: c["status"] for c in status["conditions"]}  # type: ignore[attr-defined]
    return conditions["Ready"] == "True" and conditions["ContainersReady"] == "True"


async def test_a_pod_runs_from_its_image_layers_and_turns_ready(
    running: list[PodRuntime],
    kubelet: KubeletConfig,
    pod_ip: str,
    payment_image: BuiltImage,
    image_store: ImageStore,
) -> None:
    manifest = pod(
        payment_image.reference, readinessProbe=READY_PROBE, env=[{"name": "LOG_LEVEL", "value": "info"}]
    )
    runtime = await start(running, manifest, pod_ip, kubelet)
    status = await wait_until(runtime, ready)
    assert status["phase"] == "Running"
    assert status["podIP"] == pod_ip
    state = container(status)
    assert state["ready"]
    assert state["started"]
    assert state["restartCount"] == 0
    assert "running" in state["state"]
    assert state["imageID"].endswith(payment_image.reference.split("@")[1])

    assert await get(f"http://{pod_ip}:8080/healthz") == 200

    pid = runtime.containers["app"].process.pid  # type: ignore[union-attr]
    facts = ProcessFacts.of(pid)
    layers = str(image_store.root / "layers")
    assert facts.cwd.startswith(layers)
    assert facts.argv[1:] == ["-m", "services.payment"]
    assert not facts.argv[0].startswith(SOURCE_TREE)  # the host's Python, not the project's venv
    assert facts.environ["BIND_HOST"] == pod_ip
    assert facts.environ["HOSTNAME"] == "payment-0"
    for entry in facts.environ["PYTHONPATH"].split(":"):
        assert real(entry).startswith(layers)
    assert any(path.startswith(layers) for path in facts.mapped_libraries)  # compiled deps from the layers
    assert not any(path.startswith(SOURCE_TREE) for path in facts.mapped_libraries)

    usage = runtime.usage()["containers"][0]["usage"]
    assert int(usage["memory"].removesuffix("Ki")) > 10_000


async def test_a_failing_liveness_probe_restarts_the_container(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage, tmp_path: Path
) -> None:
    fail_once = tmp_path / "fail-once"
    liveness = {
        "exec": {"command": ["sh", "-c", 'if [ -e "$FAIL_ONCE" ]; then rm "$FAIL_ONCE"; exit 1; fi']},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    manifest = pod(
        payment_image.reference,
        grace=5,
        env=[{"name": "FAIL_ONCE", "value": str(fail_once)}],
        readinessProbe=READY_PROBE,
        livenessProbe=liveness,
    )
    runtime = await start(running, manifest, pod_ip, kubelet)
    await wait_until(runtime, ready)
    first_pid = runtime.containers["app"].process.pid  # type: ignore[union-attr]
    fail_once.touch()
    status = await wait_until(runtime, lambda s: container(s)["restartCount"] == 1 and ready(s))
    state = container(status)
    terminated = state["lastState"]["terminated"]
    assert terminated["reason"] in ("Completed", "Error")  # payment exits 0 on SIGTERM
    assert "finishedAt" in terminated
    assert runtime.containers["app"].process.pid != first_pid  # type: ignore[union-attr]
    assert await get(f"http://{pod_ip}:8080/healthz") == 200

    previous, current = runtime.logs("app", previous=True), runtime.logs("app")
    assert f"[{first_pid}]" in previous
    assert f"[{first_pid}]" not in current
    assert "Running on" in current
    assert len(runtime.logs("app", tail=1).splitlines()) == 1


async def test_a_memory_limit_below_the_rss_gets_the_container_oomkilled(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    manifest = pod(payment_image.reference, restart="Never", resources={"limits": {"memory": "24Mi"}})
    runtime = await start(running, manifest, pod_ip, kubelet)
    status = await wait_until(runtime, lambda s: "terminated" in container(s)["state"])
    terminated = container(status)["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137
    status = await wait_until(runtime, lambda s: s["phase"] == "Failed")
    assert container(status)["restartCount"] == 0


async def test_an_oomkilled_container_restarts_with_back_off(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    manifest = pod(payment_image.reference, resources={"limits": {"memory": "24Mi"}})
    runtime = await start(running, manifest, pod_ip, kubelet)
    status = await wait_until(runtime, lambda s: container(s)["restartCount"] >= 2)
    assert container(status)["lastState"]["terminated"]["reason"] == "OOMKilled"
    waiting = await wait_until(runtime, lambda s: "waiting" in container(s)["state"])
    assert container(waiting)["state"]["waiting"]["reason"] == "CrashLoopBackOff"


async def test_stop_runs_pre_stop_then_sigterm_within_the_grace_period(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage, tmp_path: Path
) -> None:
    marker = tmp_path / "pre-stop"
    pre_stop = (
        "import os, time, urllib.request\n"
        "url = f\"http://{os.environ['BIND_HOST']}:8080/healthz\"\n"
        "status = urllib.request.urlopen(url, timeout=2).status\n"
        "open(os.environ['MARKER'], 'w').write(f'{status} {time.time()}')\n"
    )
    manifest = pod(
        payment_image.reference,
        grace=8,
        env=[{"name": "MARKER", "value": str(marker)}],
        readinessProbe=READY_PROBE,
        lifecycle={"preStop": {"exec": {"command": ["python", "-c", pre_stop]}}},
    )
    runtime = await start(running, manifest, pod_ip, kubelet)
    await wait_until(runtime, ready)
    pid = runtime.containers["app"].process.pid  # type: ignore[union-attr]
    began = time.time()
    await runtime.stop()
    took = time.time() - began
    status_code, at = marker.read_text().split()
    assert status_code == "200"  # the container still served while its preStop hook ran
    assert began <= float(at)
    assert took < 8
    state = container(runtime.status())["state"]["terminated"]
    assert state["exitCode"] == 0  # it exited on SIGTERM, not on the SIGKILL after the grace period
    assert not alive(pid)
    assert runtime.status()["phase"] in ("Succeeded", "Running", "Failed")


async def test_a_pre_stop_sleep_keeps_the_container_serving_before_sigterm(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    manifest = pod(
        payment_image.reference,
        grace=8,
        readinessProbe=READY_PROBE,
        lifecycle={"preStop": {"sleep": {"seconds": 2}}},
    )
    runtime = await start(running, manifest, pod_ip, kubelet)
    await wait_until(runtime, ready)
    began = time.monotonic()
    stopping = asyncio.create_task(runtime.stop())
    await asyncio.sleep(1)
    assert not stopping.done()
    assert await get(f"http://{pod_ip}:8080/healthz") == 200  # still serving while it sleeps
    await stopping
    assert 2 <= time.monotonic() - began < 8
    assert container(runtime.status())["state"]["terminated"]["exitCode"] == 0


async def test_a_container_that_ignores_sigterm_is_killed_after_the_grace_period(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    ignore = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    manifest = pod(payment_image.reference, grace=1, command=["python", "-c", ignore])
    runtime = await start(running, manifest, pod_ip, kubelet)
    await log_contains(runtime, "up")
    began = time.monotonic()
    await runtime.stop()
    assert 0.9 <= time.monotonic() - began < 5
    assert container(runtime.status())["state"]["terminated"]["exitCode"] == 137


async def test_an_unknown_image_is_err_image_pull(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str
) -> None:
    runtime = await start(running, pod("shopstack/nope@sha256:" + "0" * 64), pod_ip, kubelet)
    status = await wait_until(
        runtime,
        lambda s: (
            "waiting" in container(s)["state"]
            and container(s)["state"]["waiting"]["reason"] != "ContainerCreating"
        ),
    )
    waiting = container(status)["state"]["waiting"]
    assert waiting["reason"] == "ErrImagePull"
    assert "not found" in waiting["message"]
    later = await wait_until(
        runtime, lambda s: container(s)["state"]["waiting"]["reason"] == "ImagePullBackOff"
    )
    assert later["phase"] == "Pending"


async def test_a_python_version_mismatch_is_a_clear_container_error(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, tmp_path: Path
) -> None:
    layout = tmp_path / "oci" / "future"
    write_layout(
        layout, [layer_bytes([("app/main.py", b"print(1)\n")])], labels={"io.shopstack.python": "3.99"}
    )
    digest = kubelet.images.load(layout, name="shopstack/future").digest
    runtime = await start(running, pod(f"shopstack/future@{digest}"), pod_ip, kubelet)
    status = await wait_until(
        runtime, lambda s: container(s)["state"].get("waiting", {}).get("reason") == "CreateContainerError"
    )
    message = container(status)["state"]["waiting"]["message"]
    assert re.search(r"needs Python 3\.99 .* this host has Python .*3\.11", message)


async def test_logs_follow_the_current_instance_until_it_ends(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    script = "import time\nprint('first', flush=True)\ntime.sleep(0.5)\nprint('second', flush=True)\n"
    manifest = pod(payment_image.reference, restart="Never", command=["python", "-c", script])
    runtime = await start(running, manifest, pod_ip, kubelet)
    await log_contains(runtime, "first")

    async def follow() -> str:
        return "".join([chunk async for chunk in runtime.follow("app")])

    assert await asyncio.wait_for(follow(), 10) == "first\nsecond\n"
    status = await wait_until(runtime, lambda s: s["phase"] == "Succeeded")
    assert container(status)["state"]["terminated"]["reason"] == "Completed"
    with pytest.raises(LookupError):
        runtime.logs("app", previous=True)


async def test_a_node_runs_pods_side_by_side_and_stops_them_all(
    kubelet: KubeletConfig, payment_image: BuiltImage
) -> None:
    node = Kubelet(kubelet)
    ips = ["127.61.200.1", "127.61.200.2"]
    try:
        for index, ip in enumerate(ips):
            await node.run_pod(
                pod(payment_image.reference, name=f"payment-{index}", readinessProbe=READY_PROBE), ip
            )
        for runtime in node.pods().values():
            await wait_until(runtime, ready)
        for ip in ips:
            assert await get(f"http://{ip}:8080/healthz") == 200
        pids = [runtime.containers["app"].process.pid for runtime in node.pods().values()]  # type: ignore[union-attr]
        assert len(node.metrics()) == 2
        manifest = pod(payment_image.reference, name="payment-0")
        await log_contains(node.pods()["uid-payment-0"], "Running on")
        assert b"Running on" in await node.read_log(manifest, {"container": "app", "tailLines": "5"})
        assert len(await node.read_log(manifest, {"limitBytes": "10"})) == 10
        with pytest.raises(LookupError, match="previous terminated container"):
            await node.read_log(manifest, {"previous": "true"})
        with pytest.raises(LookupError, match="not valid"):
            await node.read_log(manifest, {"container": "nope"})
    finally:
        await node.stop_all(grace=5)
    assert not any(alive(pid) for pid in pids)
    assert node.pods() == {}


class MutableConfig:
    """ConfigMaps a test can change, as the API server would."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, str]] = {}

    def data(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return self.objects.get((kind, name))


async def test_a_config_map_volume_is_seen_at_its_mount_path_and_updated_in_place(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    config = MutableConfig()
    config.objects[("ConfigMap", "flags")] = {"flags.json": '{"v": 1}'}
    kubelet.config_source = config
    reader = (
        "import os, time\n"
        "path = os.environ['FLAGS_FILE']\n"
        "print('path', path, flush=True)\n"
        "for _ in range(200):\n"
        "    print(open(path).read(), flush=True)\n"
        "    time.sleep(0.1)\n"
    )
    manifest = pod(
        payment_image.reference,
        command=["python", "-c", reader],
        env=[{"name": "FLAGS_FILE", "value": "/etc/flags/flags.json"}],
        volumeMounts=[{"name": "flags", "mountPath": "/etc/flags", "readOnly": True}],
    )
    manifest["spec"]["volumes"] = [{"name": "flags", "configMap": {"name": "flags"}}]  # type: ignore[index]
    runtime = await start(running, manifest, pod_ip, kubelet)
    await log_contains(runtime, '{"v": 1}')
    assert "path /etc/flags" not in runtime.logs("app")  # translated to the pod's volume directory
    config.objects[("ConfigMap", "flags")] = {"flags.json": '{"v": 2}'}
    await runtime.refresh_volumes()
    await log_contains(runtime, '{"v": 2}')
    assert container(runtime.status())["restartCount"] == 0


async def test_a_missing_config_map_is_a_config_error(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    manifest = pod(payment_image.reference, volumeMounts=[{"name": "flags", "mountPath": "/etc/flags"}])
    manifest["spec"]["volumes"] = [{"name": "flags", "configMap": {"name": "absent"}}]  # type: ignore[index]
    runtime = await start(running, manifest, pod_ip, kubelet)
    status = await wait_until(
        runtime,
        lambda s: container(s)["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError",
    )
    assert "configmap 'absent' not found" in container(status)["state"]["waiting"]["message"]


async def test_cpu_usage_is_measured_for_the_autoscaler(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    busy = "print('busy', flush=True)\nwhile True:\n    pass\n"
    runtime = await start(
        running, pod(payment_image.reference, command=["python", "-c", busy]), pod_ip, kubelet
    )
    await log_contains(runtime, "busy")
    await asyncio.sleep(0.6)
    cores = int(runtime.usage()["containers"][0]["usage"]["cpu"].removesuffix("n")) / 1e9
    assert 0.3 < cores < 1.5


async def test_a_failing_startup_probe_restarts_the_container_and_holds_liveness_back(
    running: list[PodRuntime], kubelet: KubeletConfig, pod_ip: str, payment_image: BuiltImage
) -> None:
    manifest = pod(
        payment_image.reference,
        grace=2,
        startupProbe={"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2},
        livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1},
    )
    runtime = await start(running, manifest, pod_ip, kubelet)
    status = await wait_until(runtime, lambda s: container(s)["restartCount"] >= 1)
    state = container(status)
    assert state["started"] is False
    assert state["ready"] is False
    assert "Startup probe failed" in state["lastState"]["terminated"].get("message", "")
