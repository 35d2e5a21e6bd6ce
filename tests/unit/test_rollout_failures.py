"""Which pod failures end a rollout wait at once (`infra.k8s.rollout.permanent_failure`), and which are left
to the timeout because the kubelet may still cure them."""

from __future__ import annotations

from typing import Any

import pytest

from infra.k8s.rollout import CRASH_LOOP_RESTARTS, permanent_failure


def pod(*containers: dict[str, Any], phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "cart-abc"},
        "status": {"phase": phase, "containerStatuses": list(containers), **status},
    }


def waiting(reason: str, message: str = "", restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": "cart",
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}},
        **extra,
    }


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("CreateContainerError", "working dir /app does not exist in the image"),
        ("CreateContainerConfigError", 'configmap "flags" not found'),
        ("InvalidImageName", "couldn't parse image reference"),
        ("ErrImagePull", "image 'shop/cart@sha256:00' not found: no image with digest sha256:00 is loaded"),
        ("ImagePullBackOff", "failed to pull: manifest for shop/cart:v2 not found"),
    ],
)
def test_a_container_that_can_never_start_is_named_with_its_reason(reason: str, message: str) -> None:
    assert (
        permanent_failure(pod(waiting(reason, message)))
        == f"pod cart-abc container cart: {reason}: {message}"
    )


def test_a_crash_loop_is_permanent_after_a_few_restarts_with_the_last_exit() -> None:
    last = {"lastState": {"terminated": {"reason": "Error", "exitCode": 3}}}
    almost = waiting("CrashLoopBackOff", "back-off 20s", CRASH_LOOP_RESTARTS - 1, **last)
    assert permanent_failure(pod(almost)) is None
    looping = waiting("CrashLoopBackOff", "back-off 40s", CRASH_LOOP_RESTARTS, **last)
    why = f"CrashLoopBackOff: {CRASH_LOOP_RESTARTS} restarts, last Error (exit code 3)"
    assert permanent_failure(pod(looping)) == f"pod cart-abc container cart: {why}"


@pytest.mark.parametrize(
    "container",
    [
        waiting("ContainerCreating"),
        waiting("ErrImagePull", "dial tcp: connection refused"),  # the registry may come back
        {"name": "cart", "restartCount": 0, "state": {"running": {"startedAt": "2026-12-05T00:00:00Z"}}},
    ],
)
def test_what_may_still_succeed_is_not_permanent(container: dict[str, Any]) -> None:
    assert permanent_failure(pod(container)) is None


def test_a_pod_the_kubelet_could_not_start_is_permanent() -> None:
    failed = pod(phase="Failed", reason="StartError", message="no address left in 127.1.0.0/16")
    assert permanent_failure(failed) == "pod cart-abc: StartError: no address left in 127.1.0.0/16"
