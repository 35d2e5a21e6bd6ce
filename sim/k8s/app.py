"""The wire: a lean ASGI app that maps the Kubernetes REST API onto the model in `store`.

Discovery is served in its legacy form only (`/api`, `/apis`, per group-version resource lists): kubectl
asks for aggregated discovery first but falls back when the answer is plain `application/json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

import yaml

from sim.k8s import conversion, errors, eviction, metrics, openapi, podlogs, resources, streaming, tables
from sim.k8s.errors import ApiError
from sim.k8s.resources import KUBERNETES_VERSION, ResourceType
from sim.k8s.store import Obj, Store
from sim.k8s.validation import validate
from sim.serving import RequestHead

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
#: Reads a pod's log: (pod, query parameters) -> its whole text. The kubelet plugs in here.
LogSource = podlogs.LogSource

MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_WATCH_SECONDS = 1800
MAX_WATCH_SECONDS = 3600
BOOKMARK_SECONDS = 5.0
FLUSH_SECONDS = 0.2
READY_CHECKS = ("ping", "log", "etcd", "informer-sync", "poststarthook/start-apiserver-admission-initializer")
AUTHZ_GROUP = "authorization.k8s.io"
AUTHZ_REVIEWS = {rt.plural: rt.kind for rt in resources.REVIEW_TYPES}
PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


class Request:
    def __init__(self, scope: Scope, body: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: dict[str, str] = {
            k: v[0]
            for k, v in parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True).items()
        }
        self.headers: dict[str, str] = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.body = body

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")

    def json(self) -> Any:
        if not self.body:
            return None
        ctype = self.headers.get("content-type", "application/json")
        if "protobuf" in ctype or "cbor" in ctype:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
            )
        try:
            return json.loads(self.body)
        except ValueError:
            pass
        try:
            return yaml.safe_load(self.body)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from exc

    @property
    def wants_table(self) -> bool:
        return "as=Table" in self.headers.get("accept", "")

    @property
    def manager(self) -> str:
        if self.query.get("fieldManager"):
            return self.query["fieldManager"]
        return self.headers.get("user-agent", "unknown").split("/", 1)[0] or "unknown"

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"


class Response:
    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []

    @classmethod
    def json(cls, data: Any, status: int = 200, warnings: list[str] | None = None) -> Response:
        headers = [
            ("warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"') for w in warnings or []
        ]
        return cls(status, json.dumps(data, separators=(",", ":")).encode(), headers=headers)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/plain; charset=utf-8")


def _status_ok(details: Obj) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _resource_list(group: str, version: str) -> Obj:
    out = []
    for rt in resources.resources_in(group, version):
        entry: Obj = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(resources.RESOURCE_VERBS),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        out.append(entry)
        for sub in rt.subresources:
            sub_entry: Obj = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": {"scale": "Scale", "log": "Pod", "eviction": "Eviction"}.get(sub, rt.kind),
                "verbs": list(resources.SUBRESOURCE_VERBS[sub]),
            }
            if sub == "scale":
                sub_entry["group"] = "autoscaling"
                sub_entry["version"] = "v1"
            if sub == "eviction":  # kubectl drain evicts only when discovery names the group/version
                sub_entry["group"] = "policy"
                sub_entry["version"] = "v1"
            out.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}".lstrip("/"),
        "resources": out,
    }


def _api_group(group: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


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
                if self.store.data_dir is not None:
                    self._flusher = asyncio.create_task(self._flush_loop())
                for hook in self.on_startup:
                    await hook()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in reversed(self.on_shutdown):
                    try:
                        await hook()
                    except Exception:  # the others must still run, and the snapshot be written
                        log.exception("shutdown hook failed")
                if self._flusher is not None:
                    self._flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._flusher
                if self.store.data_dir is not None:
                    self.store.save()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _flush_loop(self) -> None:
        """Write the snapshot when something changed, at most every FLUSH_SECONDS (until cancelled)."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if self.store.dirty:
                try:
                    self.store.save()
                except OSError:
                    log.exception("could not write the snapshot")

    # ------------------------------------------------------------------ routing

    async def dispatch(self, req: Request, receive: Receive, send: Send) -> Response | None:
        path = req.path.rstrip("/") or "/"
        if path == "/version":
            return Response.json(
                {
                    "major": "1",
                    "minor": "30",
                    "gitVersion": KUBERNETES_VERSION,
                    "gitCommit": "shopstack-sim",
                    "gitTreeState": "clean",
                    "buildDate": "2024-04-17T00:00:00Z",
                    "goVersion": "go1.22.2",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self._health(req, path)
        if path == "/api":
            return Response.json(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": req.headers.get("host", "127.0.0.1")}
                    ],
                }
            )
        if path == "/apis":
            groups = [_api_group(g, v) for g, v in resources.group_versions().items() if g]
            groups.append(_api_group(AUTHZ_GROUP, ["v1"]))
            if self.metrics_source is not None:
                groups.append(metrics.api_group())
            return Response.json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path.startswith(f"/apis/{AUTHZ_GROUP}"):
            return self._authorization(req, path)
        if self.metrics_source is not None and path.startswith(f"/apis/{metrics.GROUP}"):
            return self._metrics(req, path, self.metrics_source)
        if path.startswith("/openapi/"):
            return self._openapi(req, path)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            versions = resources.group_versions().get(parts[1])
            if not versions:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if len(parts) == 2:
                return Response.json(_api_group(parts[1], versions))
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not resources.resources_in(group, version):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            return Response.json(_resource_list(group, version))
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

    def _authorization(self, req: Request, path: str) -> Response:
        """Everyone may do everything (the emulator has no authorization): `kubectl auth can-i` says yes."""
        if path == f"/apis/{AUTHZ_GROUP}":
            return Response.json(_api_group(AUTHZ_GROUP, ["v1"]))
        if path == f"/apis/{AUTHZ_GROUP}/v1":
            reviews = [
                {"name": name, "singularName": "", "namespaced": False, "kind": kind, "verbs": ["create"]}
                for name, kind in AUTHZ_REVIEWS.items()
            ]
            return Response.json(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{AUTHZ_GROUP}/v1",
                    "resources": reviews,
                }
            )
        name = path.rsplit("/", 1)[-1]
        if req.method != "POST" or name not in AUTHZ_REVIEWS:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        review = req.json() or {}
        if not isinstance(review, dict):
            raise errors.bad_request("the body of the request must be an object")
        review["status"] = {"allowed": True, "reason": "the local emulator authorizes every request"}
        return Response.json(review, 201)

    def _metrics(self, req: Request, path: str, source: metrics.Samples) -> Response:
        """metrics.k8s.io/v1beta1: read-only PodMetrics and NodeMetrics from the measured usage."""
        rest = path.strip("/").split("/")[2:]
        if req.method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on {metrics.GROUP}")
        if not rest:
            return Response.json(metrics.api_group())
        if rest[0] != metrics.VERSION:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(rest) == 1:
            return Response.json(metrics.resource_list())
        return Response.json(metrics.serve(self.store, source, rest[1:], req.query))

    def _health(self, req: Request, path: str) -> Response:
        if "verbose" in req.query:
            checks = "".join(f"[+]{c} ok\n" for c in READY_CHECKS)
            return Response.text(f"{checks}{path.strip('/').split('/')[0]} check passed\n")
        return Response.text("ok")

    def _openapi(self, req: Request, path: str) -> Response:
        """The documents of `openapi`, with their ETag; a v3 document asked for by an old hash is
        redirected to the current one (as kube-openapi does), one asked for by its hash never changes."""
        headers = [("cache-control", "no-cache, private")]
        if path == "/openapi/v3":
            served = openapi.v3_root()
        elif path == "/openapi/v2":
            accept = req.headers.get("accept", "")
            if "protobuf" in accept:
                served = openapi.v2_protobuf()
            elif not accept or "json" in accept or "*/*" in accept:
                served = openapi.v2_json()
            else:
                raise ApiError(
                    406, "NotAcceptable", f"only application/json and protobuf are served, not {accept}"
                )
        else:
            gv = path.removeprefix("/openapi/v3/")
            documents = openapi.v3_documents()
            if gv not in documents:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            served = documents[gv]
            if "hash" in req.query:
                if req.query["hash"] != served.etag:
                    location = f"{path}?hash={served.etag}"
                    return Response(301, b"", headers=[("location", location), *headers])
                headers = [
                    ("cache-control", "public, immutable"),
                    ("expires", "Thu, 31 Dec 2099 00:00:00 GMT"),
                ]
        headers.append(("etag", f'"{served.etag}"'))
        if req.headers.get("if-none-match", "").strip('"') == served.etag:
            return Response(304, b"", served.content_type, headers)
        return Response(200, served.body, served.content_type, headers)

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
