"""What the API server says about itself rather than its objects: `/version`, the health checks
(`/healthz`, `/livez`, `/readyz`), discovery (`/api`, `/apis`, each group, each group-version's resource
list) and the OpenAPI documents of `openapi` (v2 in JSON or protobuf, v3 per group-version), with their
ETags.

Discovery is served in its legacy form only: kubectl asks for aggregated discovery first but falls back
when the answer is plain `application/json`. The groups served apart from the resource table are listed
too: `authorization.k8s.io` (`authz`) and, where the node agent measures usage, `metrics.k8s.io`.
"""

from __future__ import annotations

from sim.k8s import authz, metrics, openapi, resources
from sim.k8s.errors import ApiError
from sim.k8s.messages import Request, Response
from sim.k8s.objects import Obj
from sim.k8s.resources import KUBERNETES_VERSION

READY_CHECKS = ("ping", "log", "etcd", "informer-sync", "poststarthook/start-apiserver-admission-initializer")
VERSION = {
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
#: The kinds discovery names for subresources whose kind is not their resource's.
SUBRESOURCE_KINDS = {
    ("Deployment", "scale"): "Scale",
    ("ReplicaSet", "scale"): "Scale",
    ("StatefulSet", "scale"): "Scale",
    ("Pod", "eviction"): "Eviction",
    ("Pod", "proxy"): "PodProxyOptions",
    ("Service", "proxy"): "ServiceProxyOptions",
}
#: Subresources served in another group-version than their resource's (kubectl drain evicts only when
#: discovery names the eviction's).
SUBRESOURCE_GROUP_VERSIONS = {"scale": ("autoscaling", "v1"), "eviction": ("policy", "v1")}


def not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def answer(req: Request, path: str, *, metrics_served: bool) -> Response | None:
    """The answer when `path` (without its trailing slash) is one of these; None when it is not (a
    resource's path, or a group served apart)."""
    if path == "/version":
        return Response.json(VERSION)
    if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
        return health(req, path)
    if path.startswith("/openapi/"):
        return openapi_document(req, path)
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
        groups = [api_group(g, v) for g, v in resources.group_versions().items() if g]
        groups.append(authz.api_group())
        if metrics_served:
            groups.append(metrics.api_group())
        return Response.json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[0] == "apis" and len(parts) in (2, 3):
        versions = resources.group_versions().get(parts[1])
        if not versions:
            return None  # a group served apart, or none at all: not discovery's to say
        if len(parts) == 2:
            return Response.json(api_group(parts[1], versions))
        group, version = parts[1], parts[2]
    else:
        return None
    if not resources.resources_in(group, version):
        raise not_found()
    return Response.json(resource_list(group, version))


def api_group(group: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": gvs,
        "preferredVersion": gvs[0],
    }


def resource_list(group: str, version: str) -> Obj:
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
                "kind": SUBRESOURCE_KINDS.get((rt.kind, sub), rt.kind),
                "verbs": list(resources.SUBRESOURCE_VERBS[sub]),
            }
            if sub in SUBRESOURCE_GROUP_VERSIONS:
                sub_entry["group"], sub_entry["version"] = SUBRESOURCE_GROUP_VERSIONS[sub]
            out.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}".lstrip("/"),
        "resources": out,
    }


def health(req: Request, path: str) -> Response:
    if "verbose" in req.query:
        checks = "".join(f"[+]{c} ok\n" for c in READY_CHECKS)
        return Response.text(f"{checks}{path.strip('/').split('/')[0]} check passed\n")
    return Response.text("ok")


def openapi_document(req: Request, path: str) -> Response:
    """The documents of `openapi`, with their ETag; a v3 document asked for by an old hash is redirected
    to the current one (as kube-openapi does), one asked for by its hash never changes."""
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
            raise not_found()
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
