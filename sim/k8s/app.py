"""The wire: a lean ASGI app that maps the Kubernetes REST API onto the model in `store`.

`KubeApp.dispatch` sends what is not REST elsewhere (`discovery`: version, health, discovery and OpenAPI;
`authz`: access reviews; `metrics`: metrics.k8s.io; `proxy`: the proxy subresources, taken before the body
is read, since they stream it) and routes the rest: collections (list, watch, create, delete) and items
(get, replace, patch, delete) and their subresources (status, scale, log, eviction; exec and port-forward
through `streaming`), in the version asked for (`conversion`) and as a Table when asked (`tables`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence

from sim.k8s import (
    authz,
    conversion,
    discovery,
    errors,
    eviction,
    metrics,
    podlogs,
    proxy,
    resources,
    streaming,
    tables,
)
from sim.k8s.errors import ApiError
from sim.k8s.messages import Receive, Request, Response, Scope, Send
from sim.k8s.resources import ResourceType
from sim.k8s.store import Obj, Store
from sim.k8s.validation import validate
from sim.serving import RequestHead

log = logging.getLogger(__name__)

#: Reads a pod's log: (pod, query parameters) -> its whole text. The kubelet plugs in here.
LogSource = podlogs.LogSource

MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_WATCH_SECONDS = 1800
MAX_WATCH_SECONDS = 3600
BOOKMARK_SECONDS = 5.0
PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


def _status_ok(details: Obj) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _selector_text(obj: Obj) -> str:
    sel = (obj.get("spec") or {}).get("selector") or {}
    labels = sel.get("matchLabels", {}) if "matchLabels" in sel or "matchExpressions" in sel else sel
    parts = [f"{k}={v}" for k, v in labels.items()]
    ops = {"In": "in", "NotIn": "notin"}
    for expr in sel.get("matchExpressions") or []:
        if expr["operator"] in ops:
            parts.append(f"{expr['key']} {ops[expr['operator']]} ({','.join(expr.get('values') or [])})")
        elif expr["operator"] == "Exists":
            parts.append(expr["key"])
        else:
            parts.append("!" + expr["key"])
    return ",".join(parts)


def _scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0), "selector": _selector_text(obj)},
    }


async def placeholder_log(pod: Obj, query: dict[str, str]) -> bytes:
    """Until a kubelet runs the pod's containers, there is no output to show."""
    return b""


class KubeApp:
    """The ASGI application. `store` holds the state; `log_source` answers `pods/log`."""

    def __init__(
        self,
        store: Store,
        log_source: LogSource = placeholder_log,
        streams: streaming.PodStreams | None = None,
        metrics_source: metrics.Samples | None = None,
        bookmark_seconds: float = BOOKMARK_SECONDS,
        on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
        on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.store = store
        self.log_source = log_source
        #: Runs `pods/exec` and opens `pods/portforward` connections (the node agent); None: no nodes.
        self.streams = streams
        #: The pods' measured usage (the node agent's): serves metrics.k8s.io when given.
        self.metrics_source = metrics_source
        #: Run in the wire's loop at lifespan startup (in order) and shutdown (in reverse order),
        #: e.g. the scheduler and node agent that share the store.
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.bookmark_seconds = bookmark_seconds
        #: `services/NAME/proxy` and `pods/NAME/proxy`: requests passed on to the pods
        self.proxy = proxy.Proxy(store)
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ ASGI plumbing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await streaming.serve_websocket(scope, receive, send, self.store, self.streams)
            return
        if scope["type"] != "http":
            return
        target = proxy.match(scope)
        if target is not None:  # streamed both ways: the body is not read here
            await self.proxy.serve(scope, receive, send, target)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                await self._send(
                    send,
                    Response.json(ApiError(413, "RequestEntityTooLarge", "body too large").status(), 413),
                )
                return
        request = Request(scope, body)
        try:
            response = await self.dispatch(request, receive, send)
        except ApiError as exc:
            response = Response.json(exc.status(), exc.code)
        except Exception as exc:  # a bug must still answer as the API does, with a Status
            log.exception("internal error on %s %s", request.method, request.path)
            response = Response.json(ApiError(500, "InternalError", f"internal error: {exc}").status(), 500)
        if response is not None:
            await self._send(send, response)

    def claims(self, head: RequestHead) -> bool:
        """A SPDY upgrade is served on its raw connection (`sim.serving.TakesConnections`)."""
        return streaming.claims_spdy(head)

    async def take(
        self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await streaming.serve_spdy(head, reader, writer, self.store, self.streams)

    @staticmethod
    async def _send(send: Send, response: Response) -> None:
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
        ]
        headers += [(k.encode(), v.encode()) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.store.snapshots is not None:
                    self._flusher = asyncio.create_task(self.store.snapshots.flush_every())
                for hook in self.on_startup:
                    await hook()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in reversed(self.on_shutdown):
                    try:
                        await hook()
                    except Exception:  # the others must still run, and the snapshot be written
                        log.exception("shutdown hook failed")
                await self.proxy.close()
                if self._flusher is not None:
                    self._flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._flusher
                if self.store.snapshots is not None:
                    self.store.snapshots.save()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ routing

    async def dispatch(self, req: Request, receive: Receive, send: Send) -> Response | None:
        path = req.path.rstrip("/") or "/"
        answered = discovery.answer(req, path, metrics_served=self.metrics_source is not None)
        if answered is not None:
            return answered
        if path.startswith(f"/apis/{authz.GROUP}"):
            return authz.answer(req, path)
        if self.metrics_source is not None and path.startswith(f"/apis/{metrics.GROUP}"):
            return Response.json(metrics.answer(self.store, self.metrics_source, req.method, path, req.query))
        return await self._route(req, path, receive, send)

    async def _route(self, req: Request, path: str, receive: Receive, send: Send) -> Response | None:
        """A resource's path: `/api/v1/...` or `/apis/GROUP/VERSION/...`, then `[namespaces/NS/]PLURAL
        [/NAME[/SUBRESOURCE]]`."""
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise discovery.not_found()
        if not resources.resources_in(group, version):
            raise discovery.not_found()
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        rt = resources.find(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rt.namespaced:
            namespace = None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (
            sub is not None
            and sub not in rt.subresources
            and not (rt is resources.NAMESPACE and sub == "finalize")
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            return await self._collection(req, rt, namespace, receive, send)
        return await self._item(req, rt, namespace, name, sub, receive, send)

    # ------------------------------------------------------------------ collections

    def _validator(self, req: Request, warnings: list[str]) -> Callable[[Obj], None]:
        mode = req.query.get("fieldValidation")

        def check(obj: Obj) -> None:
            validate(obj, mode, warnings)

        return check

    async def _collection(
        self, req: Request, rt: ResourceType, namespace: str | None, receive: Receive, send: Send
    ) -> Response | None:
        q = req.query
        if req.method == "GET":
            if req.flag("watch"):
                await self._watch(req, rt, namespace, receive, send)
                return None
            limit = int(q["limit"]) if q.get("limit", "").isdigit() else None
            listed = self.store.list(
                conversion.storage_type(rt),
                namespace,
                q.get("labelSelector"),
                q.get("fieldSelector"),
                limit,
                q.get("continue") or None,
            )
            listed = conversion.list_from_storage(rt, listed)
            if req.wants_table:
                return Response.json(
                    tables.table(rt, listed["items"], listed["metadata"], q.get("includeObject", "Metadata"))
                )
            return Response.json(listed)
        if req.method == "POST":
            body = req.json()
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be an object")
            if body.get("kind") not in (None, rt.kind):
                raise errors.bad_request(
                    f"the kind {body.get('kind')!r} does not match the resource {rt.plural}"
                )
            warnings: list[str] = []
            created = self.store.create(
                conversion.storage_type(rt),
                conversion.to_storage(rt, body),
                namespace,
                manager=req.manager,
                dry_run=req.dry_run,
                validate=self._validator(req, warnings),
            )
            return Response.json(conversion.from_storage(rt, created), 201, warnings)
        if req.method == "DELETE":
            body = req.json() or {}
            listed = self.store.delete_collection(
                conversion.storage_type(rt),
                namespace,
                q.get("labelSelector"),
                q.get("fieldSelector"),
                q.get("propagationPolicy") or body.get("propagationPolicy"),
            )
            listed = conversion.list_from_storage(rt, listed)
            return Response.json(listed)
        raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {rt.plural}")

    async def _watch(
        self, req: Request, rt: ResourceType, namespace: str | None, receive: Receive, send: Send
    ) -> None:
        q = req.query
        watcher = self.store.watch(
            conversion.storage_type(rt),
            namespace,
            q.get("labelSelector"),
            q.get("fieldSelector"),
            q.get("resourceVersion"),
        )
        timeout = DEFAULT_WATCH_SECONDS
        if q.get("timeoutSeconds", "").isdigit():
            timeout = min(int(q["timeoutSeconds"]), MAX_WATCH_SECONDS)
        bookmarks = req.flag("allowWatchBookmarks")
        as_table = req.wants_table
        include = q.get("includeObject", "Metadata")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        content_type = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache, private")],
            }
        )
        disconnected = asyncio.ensure_future(self._until_disconnect(receive))
        first = True
        try:
            while not disconnected.done():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                getter = asyncio.ensure_future(watcher.queue.get())
                wait = min(remaining, self.bookmark_seconds)
                done, _ = await asyncio.wait(
                    {getter, disconnected}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if bookmarks and not disconnected.done() and watcher.queue.empty():
                        mark = {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": rt.kind,
                                "apiVersion": rt.api_version,
                                "metadata": {"resourceVersion": str(self.store.rv)},
                            },
                        }
                        await send(
                            {
                                "type": "http.response.body",
                                "body": json.dumps(mark).encode() + b"\n",
                                "more_body": True,
                            }
                        )
                    continue
                item = getter.result()
                if item is None:
                    break
                if item["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    item = {"type": item["type"], "object": conversion.from_storage(rt, item["object"])}
                if as_table and item["type"] != "ERROR":
                    obj = item["object"]
                    item = {
                        "type": item["type"],
                        "object": tables.table(
                            rt,
                            [obj],
                            {"resourceVersion": obj["metadata"]["resourceVersion"]},
                            include,
                            with_columns=first,
                        ),
                    }
                    first = False
                await send(
                    {
                        "type": "http.response.body",
                        "body": json.dumps(item, separators=(",", ":")).encode() + b"\n",
                        "more_body": True,
                    }
                )
        finally:
            self.store.unwatch(watcher)
            disconnected.cancel()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _until_disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    # ------------------------------------------------------------------ items

    async def _item(
        self,
        req: Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        sub: str | None,
        receive: Receive,
        send: Send,
    ) -> Response | None:
        store = self.store
        warnings: list[str] = []
        check = self._validator(req, warnings)
        if sub in ("exec", "portforward"):
            pod = store.get(rt, namespace, name)
            streaming.check_request(self.streams, pod, sub, {k: [v] for k, v in req.query.items()})
            raise streaming.upgrade_required(req.headers)
        if sub == "log":
            pod = store.get(rt, namespace, name)
            if req.flag("follow"):
                await podlogs.follow(store, self.log_source, pod, req.query, receive, send)
                return None
            return Response(200, await self.log_source(pod, req.query), "text/plain")
        if sub == "scale":
            return self._scale(req, rt, namespace, name)
        if sub == "eviction":
            return self._evict(req, namespace, name)
        if sub == "finalize":
            sub = None
        if conversion.storage_type(rt) is not rt:
            return self._converted_item(req, rt, namespace, name, sub)
        if req.method == "GET":
            obj = store.get(rt, namespace, name)
            if req.wants_table:
                return Response.json(
                    tables.table(
                        rt,
                        [obj],
                        {"resourceVersion": obj["metadata"]["resourceVersion"]},
                        req.query.get("includeObject", "Metadata"),
                    )
                )
            return Response.json(obj)
        if req.method == "PUT":
            body = req.json()
            if not isinstance(body, dict):
                raise errors.bad_request("the body of the request must be an object")
            updated = store.update(
                rt,
                namespace,
                name,
                body,
                subresource=sub,
                manager=req.manager,
                dry_run=req.dry_run,
                validate=check,
            )
            return Response.json(updated, 200, warnings)
        if req.method == "PATCH":
            ctype = req.headers.get("content-type", "").split(";")[0].strip()
            patch_type = PATCH_TYPES.get(ctype)
            if patch_type is None:
                raise ApiError(
                    415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
                )
            body = req.json()
            existed = True
            if patch_type == "apply":
                try:
                    store.get(rt, namespace, name)
                except ApiError:
                    existed = False
            patched = store.patch(
                rt,
                namespace,
                name,
                patch_type,
                body,
                subresource=sub,
                manager=req.manager,
                force=req.flag("force"),
                dry_run=req.dry_run,
                validate=check,
            )
            return Response.json(patched, 200 if existed else 201, warnings)
        if req.method == "DELETE":
            options = req.json() or {}
            if not isinstance(options, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            propagation = req.query.get("propagationPolicy") or options.get("propagationPolicy")
            if options.get("orphanDependents") is True and not propagation:
                propagation = "Orphan"
            if req.dry_run or "All" in (options.get("dryRun") or []):
                gone = store.delete(
                    rt,
                    namespace,
                    name,
                    propagation=propagation,
                    preconditions=options.get("preconditions"),
                    dry_run=True,
                )
                return Response.json(gone)
            grace = req.query.get("gracePeriodSeconds") or options.get("gracePeriodSeconds")
            gone = store.delete(
                rt,
                namespace,
                name,
                propagation=propagation,
                preconditions=options.get("preconditions"),
                grace_period=int(grace) if grace is not None and str(grace).lstrip("-").isdigit() else None,
            )
            if rt.kind == "Pod" or gone["metadata"].get("deletionTimestamp"):
                return Response.json(gone)
            details = {"name": name, "kind": rt.plural, "uid": gone["metadata"]["uid"]}
            if rt.group:
                details["group"] = rt.group
            return Response.json(_status_ok(details))
        raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {rt.plural}/{name}")

    def _converted_item(
        self, req: Request, rt: ResourceType, namespace: str | None, name: str, sub: str | None
    ) -> Response:
        """An item served at a version other than its storage's: convert in, act on storage, convert out.
        Patches apply to the object as this version shows it (apply patches merge, without field owners)."""
        from sim.k8s import patch as patches

        storage = conversion.storage_type(rt)
        warnings: list[str] = []
        if req.method == "GET":
            obj = conversion.from_storage(rt, self.store.get(storage, namespace, name))
            if req.wants_table:
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return Response.json(
                    tables.table(rt, [obj], meta, req.query.get("includeObject", "Metadata"))
                )
            return Response.json(obj)
        if req.method == "DELETE":
            gone = self.store.delete(storage, namespace, name, dry_run=req.dry_run)
            details = {"name": name, "kind": rt.plural, "group": rt.group, "uid": gone["metadata"]["uid"]}
            return Response.json(_status_ok(details))
        body = req.json()
        if req.method == "PUT":
            wanted = body
        elif req.method == "PATCH":
            kind = PATCH_TYPES.get(req.headers.get("content-type", "").split(";")[0].strip())
            current = conversion.from_storage(rt, self.store.get(storage, namespace, name))
            if kind == "json":
                wanted = patches.json_patch(current, body)
            elif kind == "strategic":
                wanted = patches.strategic_merge(rt.kind, current, body)
            elif kind in ("merge", "apply"):
                wanted = patches.json_merge_patch(current, body)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", "the body of the request was in an unknown format"
                )
            if not (isinstance(body, dict) and (body.get("metadata") or {}).get("resourceVersion")):
                wanted["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        else:
            raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {rt.plural}/{name}")
        if not isinstance(wanted, dict):
            raise errors.bad_request("the body of the request must be an object")
        updated = self.store.update(
            storage,
            namespace,
            name,
            conversion.to_storage(rt, wanted),
            subresource=sub,
            manager=req.manager,
            dry_run=req.dry_run,
            validate=self._validator(req, warnings),
        )
        return Response.json(conversion.from_storage(rt, updated), 200, warnings)

    def _evict(self, req: Request, namespace: str | None, name: str) -> Response:
        if req.method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on pods/{name}/eviction")
        body = req.json() or {}
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be an Eviction")
        return Response.json(eviction.evict(self.store, namespace or "default", name, body), 201)

    def _scale(self, req: Request, rt: ResourceType, namespace: str | None, name: str) -> Response:
        from sim.k8s import patch as patches

        obj = self.store.get(rt, namespace, name)
        current = _scale(obj)
        if req.method == "GET":
            return Response.json(current)
        body = req.json()
        if req.method == "PUT":
            wanted = body
        elif req.method == "PATCH":
            ctype = req.headers.get("content-type", "").split(";")[0].strip()
            kind = PATCH_TYPES.get(ctype)
            if kind == "json":
                wanted = patches.json_patch(current, body)
            elif kind in ("merge", "strategic", "apply"):
                wanted = patches.json_merge_patch(current, body)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
                )
        else:
            raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on scale")
        if not isinstance(wanted, dict):
            raise errors.bad_request("the body of the request must be an object")
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                "Scale",
                name,
                [
                    {
                        "type": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": "must be greater than or equal to 0",
                    }
                ],
            )
        obj.setdefault("spec", {})["replicas"] = replicas
        want_rv = (wanted.get("metadata") or {}).get("resourceVersion")
        obj["metadata"]["resourceVersion"] = want_rv or obj["metadata"]["resourceVersion"]
        updated = self.store.update(rt, namespace, name, obj, manager=req.manager, dry_run=req.dry_run)
        return Response.json(_scale(updated))
