"""`pods/NAME/log?follow=true` (`kubectl logs -f`): what the log holds, then what the container writes.

The log source (the node agent's `read_log`) answers with a container's whole current log; following
reads it again every `FOLLOW_SECONDS` and sends what was added. The stream ends, as the kubelet's does, when
the followed container has stopped and its last output is sent (a new instance, after a restart, is not
followed), when the pod is gone (deleted, or no longer on its node), or when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.store import Obj, Store

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
#: Reads a pod's log: (pod, query parameters) -> its whole text (`sim.k8s.app.KubeApp`'s `log_source`).
LogSource = Callable[[Obj, dict[str, str]], Awaitable[bytes]]

FOLLOW_SECONDS = 0.25
PODS = resources.by_key("pods")


def _container(pod: Obj, query: dict[str, str]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return query.get("container") or str(containers[0].get("name", ""))


def _stopped(pod: Obj, container: str) -> bool:
    """Whether the container has terminated (or the pod has finished)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    for entry in status.get("containerStatuses") or []:
        if entry.get("name") == container:
            return "terminated" in (entry.get("state") or {})
    return False


async def follow(
    store: Store, log_source: LogSource, pod: Obj, query: dict[str, str], receive: Receive, send: Send
) -> None:
    """Answer a follow request: errors before the first byte are a `Status` (raised as `ApiError`)."""
    whole_query = {k: v for k, v in query.items() if k not in ("follow", "tailLines", "limitBytes")}
    first = await log_source(pod, {k: v for k, v in query.items() if k != "follow"})
    sent = len(await log_source(pod, whole_query))
    namespace, name, uid = pod["metadata"].get("namespace"), pod["metadata"]["name"], pod["metadata"]["uid"]
    container = _container(pod, query)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    disconnected = asyncio.ensure_future(_until_disconnect(receive))
    try:
        while not disconnected.done():
            await asyncio.wait({disconnected}, timeout=FOLLOW_SECONDS)
            try:
                current = store.get(PODS, namespace, name)
                if current["metadata"]["uid"] != uid:
                    return
                stopped = _stopped(current, container)
                text = await log_source(current, whole_query)
            except ApiError:  # deleted, or gone from its node
                return
            if len(text) < sent:  # another instance of the container: the followed one has ended
                return
            if len(text) > sent:
                await send({"type": "http.response.body", "body": text[sent:], "more_body": True})
                sent = len(text)
            if stopped:
                return
    finally:
        disconnected.cancel()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
