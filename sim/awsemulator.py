"""`python -m sim.awsemulator`: the local cloud's AWS emulator. moto's server, run as `python -m moto.server`
runs it (moto's WSGI app on werkzeug's threaded server with moto's request handler, the same `-H`/`-p`
options, `MOTO_PORT`, exit 0 on SIGTERM and SIGINT), with the local cloud's own admin routes in front:

    POST /_shopstack/eks/<account>/<region>/<cluster>/endpoint
    {"endpoint": "http://127.0.0.1:<port>", "certificateAuthority": {"data": "<base64 of a PEM>"}}

The EKS binding (`sim.eks`) calls it once it serves a cluster's Kubernetes API; from then on
`DescribeCluster` reports that endpoint and CA instead of moto's made-up ones (an `eks.amazonaws.com`
address no one serves and random CA data no client can parse), so what a user of EKS does first
(`aws eks update-kubeconfig`, then kubectl; or an SDK's client from `describe_cluster` and a token) reaches
the local API. It answers 200 with the cluster's new values, 404 when there is no such cluster, 400 for
a body without them, 405 for another method.

moto does not implement EKS add-ons, which the deploy uses (the VPC CNI's network policy agent), so the
launcher serves EKS's add-on API itself (`EksAddons`) with its request and response shapes and errors:

    POST   /clusters/<cluster>/addons                      CreateAddon
    GET    /clusters/<cluster>/addons                      ListAddons (maxResults, nextToken)
    GET    /clusters/<cluster>/addons/<addon>              DescribeAddon
    POST   /clusters/<cluster>/addons/<addon>/update       UpdateAddon
    DELETE /clusters/<cluster>/addons/<addon>              DeleteAddon

of the clusters moto holds (an add-on goes with its cluster). As everything in the emulator, an add-on is
ACTIVE at once and an update done at once. The add-ons are EKS's own (`ADDON_VERSIONS`, at their default
version unless `addonVersion` names another), their `configurationValues` a JSON or YAML object (the VPC
CNI's `enableNetworkPolicy` "true" or "false").

moto does not check a node group's sizes; EKS does, and the cluster autoscaler and the deploy rely on it.
So `CreateNodegroup` and `UpdateNodegroupConfig` (`POST /clusters/<cluster>/node-groups[/<group>/
update-config]`) whose `scalingConfig`, with what the group has for what the request leaves out, is not
min <= desired <= max fail as in EKS (`NodegroupSizes`: 400 `InvalidParameterException`, EKS's message)
before moto sees them. moto tags clusters only; EKS tags node groups too (the cluster autoscaler's
auto-discovery tags), so `TagResource`, `UntagResource` and `ListTagsForResource` of a node group's ARN
(`/tags/<arn>`) are answered here, on moto's node group (`NodegroupTags`).

DynamoDB's requests run one at a time, so that a conditional write is atomic as in DynamoDB (moto checks
and writes in the request's thread). S3's object listings are written by `sim.aws.s3_listing` from moto's
model, in microseconds an object instead of moto's millisecond. Every other path is moto's (`/moto-api/`
included), through moto's dispatcher with its per-request costs taken out (`sim.aws.serving`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import yaml

from sim import aws
from sim.aws import s3_listing

#: an admin request's body is small JSON; anything larger is refused unread
MAX_BODY_BYTES = 64 * 1024
#: the X-Amz-Target of DynamoDB's requests (its JSON protocol's operation name follows it)
DYNAMODB_TARGET = "DynamoDB_20120810."


def set_eks_endpoint(
    account: str, region: str, name: str, endpoint: str, ca_data: str
) -> dict[str, Any] | None:
    """Make moto's EKS cluster `name` report `endpoint` and the CA `ca_data`; None if it does not exist."""
    from moto.eks.models import eks_backends

    try:
        clusters = eks_backends[account][region].clusters
    except KeyError:  # a region moto does not know has no clusters
        return None
    cluster = clusters.get(name)
    if cluster is None:
        return None
    cluster.endpoint = endpoint
    cluster.certificate_authority = {"data": ca_data}
    return {"name": name, "arn": cluster.arn, "endpoint": endpoint, "certificateAuthority": {"data": ca_data}}


#: the EKS add-ons the emulator knows, at their default version on Kubernetes 1.30
ADDON_VERSIONS = {
    "vpc-cni": "v1.18.3-eksbuild.2",
    "coredns": "v1.11.1-eksbuild.9",
    "kube-proxy": "v1.30.0-eksbuild.3",
    "aws-ebs-csi-driver": "v1.34.0-eksbuild.1",
    "eks-pod-identity-agent": "v1.3.2-eksbuild.2",
}
RESOLVE_CONFLICTS = ("OVERWRITE", "NONE", "PRESERVE")
_ADDON_PATH = re.compile(r"^/clusters/([^/]+)/addons(?:/([^/]+)(/update)?)?/?$")


class AddonError(Exception):
    """An EKS error: its HTTP status, `x-amzn-ErrorType` and JSON body."""

    def __init__(self, status: int, code: str, message: str, **fields: str | None) -> None:
        super().__init__(message)
        self.status, self.code = status, code
        self.body = {"message": message, **{k: v for k, v in fields.items() if v is not None}}


class EksAddons:
    """EKS's add-on API over moto's clusters. An add-on is kept with the identity of the cluster it was
    made for (its ARN and creation time), so it is gone with that cluster, and with `/moto-api/reset`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (account, region, cluster) -> (cluster identity, {addon name: addon})
        self._addons: dict[tuple[str, str, str], tuple[tuple[str, str], dict[str, dict[str, Any]]]] = {}

    @staticmethod
    def matches(path: str) -> bool:
        return _ADDON_PATH.match(path) is not None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body = self._route(environ)
            headers = [("Content-Type", "application/json")]
        except AddonError as err:
            status, body = err.status, err.body
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", err.code)]
        payload = json.dumps(body).encode()
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}", [*headers, ("Content-Length", str(len(payload)))]
        )
        return [payload]

    def _route(self, environ: WSGIEnvironment) -> tuple[int, dict[str, Any]]:
        match = _ADDON_PATH.match(str(environ.get("PATH_INFO") or ""))
        assert match is not None
        cluster_name, addon_name, update = unquote(match.group(1)), match.group(2), match.group(3)
        method = str(environ.get("REQUEST_METHOD") or "GET")
        account, region = _account_and_region(environ)
        with self._lock:
            addons = self._cluster_addons(account, region, cluster_name)
            if addon_name is None:
                if method == "POST":
                    return 200, {"addon": self._create(account, region, cluster_name, addons, environ)}
                if method == "GET":
                    return 200, _page(sorted(addons), parse_qs(str(environ.get("QUERY_STRING") or "")))
            else:
                addon_name = unquote(addon_name)
                addon = addons.get(addon_name)
                if addon is None:
                    raise AddonError(
                        404,
                        "ResourceNotFoundException",
                        f"No addon: {addon_name} found in cluster: {cluster_name}",
                        clusterName=cluster_name,
                        addonName=addon_name,
                    )
                if update and method == "POST":
                    return 200, {"update": _update(addon, _request_body(environ))}
                if not update and method == "GET":
                    return 200, {"addon": addon}
                if not update and method == "DELETE":
                    del addons[addon_name]
                    return 200, {"addon": {**addon, "status": "DELETING", "modifiedAt": time.time()}}
        raise AddonError(
            405, "InvalidRequestException", f"{method} is not allowed on {environ.get('PATH_INFO')}"
        )

    def _cluster_addons(self, account: str, region: str, name: str) -> dict[str, dict[str, Any]]:
        from moto.eks.models import eks_backends

        try:
            cluster = eks_backends[account][region].clusters.get(name)
        except KeyError:
            cluster = None
        key = (account, region, name)
        if cluster is None:
            self._addons.pop(key, None)
            raise AddonError(
                404, "ResourceNotFoundException", f"No cluster found for name: {name}.", clusterName=name
            )
        identity = (str(cluster.arn), str(cluster.created_at))
        kept = self._addons.get(key)
        if kept is None or kept[0] != identity:
            kept = (identity, {})
            self._addons[key] = kept
        return kept[1]

    def _create(
        self,
        account: str,
        region: str,
        cluster: str,
        addons: dict[str, dict[str, Any]],
        environ: WSGIEnvironment,
    ) -> dict[str, Any]:
        request = _request_body(environ)
        name = request.get("addonName")
        if not isinstance(name, str) or not name:
            raise AddonError(400, "InvalidParameterException", "addonName is required", clusterName=cluster)
        if name not in ADDON_VERSIONS:
            raise AddonError(
                400,
                "InvalidParameterException",
                f"Addon {name} specified is not supported in 1.30 kubernetes version",
                clusterName=cluster,
                addonName=name,
            )
        if name in addons:
            raise AddonError(
                409, "ResourceInUseException", "Addon already exists.", clusterName=cluster, addonName=name
            )
        _check_common(request, cluster, name)
        now = time.time()
        addon: dict[str, Any] = {
            "addonName": name,
            "clusterName": cluster,
            "status": "ACTIVE",
            "addonVersion": request.get("addonVersion") or ADDON_VERSIONS[name],
            "health": {"issues": []},
            "addonArn": f"arn:aws:eks:{region}:{account}:addon/{cluster}/{name}/{uuid.uuid4()}",
            "createdAt": now,
            "modifiedAt": now,
            "tags": dict(request.get("tags") or {}),
            "publisher": "eks",
            "owner": "aws",
        }
        for key in ("serviceAccountRoleArn", "configurationValues"):
            if request.get(key):
                addon[key] = request[key]
        addons[name] = addon
        return addon


def _account_and_region(environ: WSGIEnvironment) -> tuple[str, str]:
    """The caller's account (moto's, for its access key) and region, from the request's signature."""
    from moto.iam.models import get_account_id_from

    match = aws.SIGV4_CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION") or ""))
    if match is None or match.group(3) != "eks":
        raise AddonError(403, "AccessDeniedException", "the request is not signed for eks (SigV4)")
    return get_account_id_from(match.group(1)), match.group(2)


def _request_body(environ: WSGIEnvironment) -> dict[str, Any]:
    body = _json_body(environ)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise AddonError(400, "InvalidParameterException", "the request body must be a JSON object")
    return body


def _check_common(request: dict[str, Any], cluster: str, name: str) -> None:
    conflicts = request.get("resolveConflicts")
    if conflicts is not None and conflicts not in RESOLVE_CONFLICTS:
        raise AddonError(
            400,
            "InvalidParameterException",
            f"resolveConflicts must be one of {', '.join(RESOLVE_CONFLICTS)}",
            clusterName=cluster,
            addonName=name,
        )
    values = request.get("configurationValues")
    if values is None:
        return
    try:
        parsed = yaml.safe_load(values) if isinstance(values, str) else None
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, dict):
        raise AddonError(
            400,
            "InvalidParameterException",
            "ConfigurationValue provided in request is not supported: not a JSON or YAML object",
            clusterName=cluster,
            addonName=name,
        )
    policy = parsed.get("enableNetworkPolicy")
    if name == "vpc-cni" and policy is not None and policy not in ("true", "false"):
        raise AddonError(
            400,
            "InvalidParameterException",
            "ConfigurationValue provided in request is not supported: Json schema validation failed with "
            f"error: [$.enableNetworkPolicy: does not match the regex pattern ^(true|false)$] ({policy!r})",
            clusterName=cluster,
            addonName=name,
        )


def _update(addon: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    _check_common(request, addon["clusterName"], addon["addonName"])
    params = []
    for key, kind in (
        ("addonVersion", "AddonVersion"),
        ("serviceAccountRoleArn", "ServiceAccountRoleArn"),
        ("resolveConflicts", "ResolveConflicts"),
        ("configurationValues", "ConfigurationValues"),
    ):
        if request.get(key) is not None:
            params.append({"type": kind, "value": str(request[key])})
            if key != "resolveConflicts":
                addon[key] = request[key]
    now = time.time()
    addon["modifiedAt"] = now
    return {"id": str(uuid.uuid4()), "status": "Successful", "type": "AddonUpdate", "params": params,
            "createdAt": now, "errors": []}  # fmt: skip


def _page(names: list[str], query: dict[str, list[str]]) -> dict[str, Any]:
    try:
        size = int(query.get("maxResults", ["100"])[0])
        start = int(query.get("nextToken", ["0"])[0] or 0)
    except ValueError:
        raise AddonError(
            400, "InvalidParameterException", "maxResults and nextToken must be numbers"
        ) from None
    if not 1 <= size <= 100:
        raise AddonError(400, "InvalidParameterException", "maxResults must be from 1 to 100")
    page: dict[str, Any] = {"addons": names[start : start + size]}
    if start + size < len(names):
        page["nextToken"] = str(start + size)
    return page


_NODEGROUP_PATH = re.compile(r"^/clusters/([^/]+)/node-groups(?:/([^/]+)/update-config)?/?$")


class NodegroupSizes:
    """EKS's checks of a node group's `scalingConfig` (minSize <= desiredSize <= maxSize), which moto
    does not make, with the messages EKS gives: `CreateNodegroup` checks the request's sizes (moto's
    defaults for those it leaves out), `UpdateNodegroupConfig` the request's over the group's own."""

    @staticmethod
    def matches(environ: WSGIEnvironment) -> bool:
        path = str(environ.get("PATH_INFO") or "")
        return environ.get("REQUEST_METHOD") == "POST" and _NODEGROUP_PATH.match(path) is not None

    def check(self, environ: WSGIEnvironment) -> AddonError | None:
        """The error EKS answers the request with, or None to pass it on (its body is read and put back,
        so that moto reads it as sent)."""
        match = _NODEGROUP_PATH.match(str(environ.get("PATH_INFO") or ""))
        assert match is not None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if not 0 < length <= MAX_BODY_BYTES:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            request = json.loads(body)
        except ValueError:
            return None
        scaling = request.get("scalingConfig") if isinstance(request, dict) else None
        if not isinstance(scaling, dict) or not scaling:
            return None
        cluster = unquote(match.group(1))
        group = unquote(match.group(2)) if match.group(2) else str(request.get("nodegroupName") or "")
        if match.group(2) is None:
            return self._sizes({**DEFAULT_SCALING, **scaling}, cluster, group, update=False)
        current = _nodegroup_scaling(environ, cluster, group)
        if current is None:  # no such group: moto says so
            return None
        return self._sizes({**current, **scaling}, cluster, group, update=True)

    @staticmethod
    def _sizes(sizes: dict[str, Any], cluster: str, group: str, *, update: bool) -> AddonError | None:
        try:
            low, desired, high = (int(sizes[key]) for key in ("minSize", "desiredSize", "maxSize"))
        except (KeyError, TypeError, ValueError):
            return None  # botocore validates the types; moto answers the rest
        if low > high:
            message = "minSize can't be greater than maxSize"
        elif desired > high:
            message = "desiredSize can't be greater than maxSize"
        elif low > desired:
            message = (
                f"Minimum capacity {low} can't be greater than desired size {desired}"
                if update
                else "minSize can't be greater than desiredSize"
            )
        else:
            return None
        return AddonError(400, "InvalidParameterException", message, clusterName=cluster, nodegroupName=group)


#: moto's sizes of a node group made without them
DEFAULT_SCALING = {"minSize": 2, "maxSize": 2, "desiredSize": 2}


def _nodegroup_scaling(environ: WSGIEnvironment, cluster: str, group: str) -> dict[str, Any] | None:
    """The sizes moto holds for node group `group` of `cluster` (the caller's account and region)."""
    from moto.eks.models import eks_backends
    from moto.iam.models import get_account_id_from

    match = aws.SIGV4_CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION") or ""))
    if match is None:
        return None
    try:
        found = eks_backends[get_account_id_from(match.group(1))][match.group(2)].clusters.get(cluster)
    except KeyError:
        return None
    nodegroup = found.nodegroups.get(group) if found is not None else None
    return dict(nodegroup.scaling_config) if nodegroup is not None else None


_NODEGROUP_TAGS_PATH = re.compile(r"^/tags/(arn:[^/]+:eks:[^/]+:\d+:nodegroup/.+)$")


class NodegroupTags:
    """EKS's tag API for node group ARNs, on moto's node groups (moto's own handles clusters only)."""

    @staticmethod
    def matches(path: str) -> bool:
        return _NODEGROUP_TAGS_PATH.match(unquote(path)) is not None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        match = _NODEGROUP_TAGS_PATH.match(unquote(str(environ.get("PATH_INFO") or "")))
        assert match is not None
        arn, method = match.group(1), str(environ.get("REQUEST_METHOD") or "GET")
        nodegroup = _nodegroup_by_arn(arn)
        if nodegroup is None:
            error = AddonError(404, "NotFoundException", "Resource was not found")
            return _error_response(error, start_response)
        body: dict[str, Any] = {}
        if method == "GET":
            body = {"tags": dict(nodegroup.tags)}
        elif method == "POST":
            request = _json_body(environ)
            tags = request.get("tags") if isinstance(request, dict) else None
            if not isinstance(tags, dict):
                return _error_response(
                    AddonError(400, "InvalidParameterException", "tags are required"), start_response
                )
            nodegroup.tags.update({str(k): str(v) for k, v in tags.items()})
        elif method == "DELETE":
            for key in parse_qs(str(environ.get("QUERY_STRING") or "")).get("tagKeys", []):
                nodegroup.tags.pop(key, None)
        else:
            return _error_response(
                AddonError(405, "InvalidRequestException", f"{method} is not allowed"), start_response
            )
        payload = json.dumps(body).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]


def _nodegroup_by_arn(arn: str) -> Any:
    """moto's node group whose ARN is `arn`, or None."""
    from moto.eks.models import eks_backends

    parts = arn.split(":")
    try:
        clusters = eks_backends[parts[4]][parts[3]].clusters
    except (KeyError, IndexError):
        return None
    for cluster in list(clusters.values()):
        for nodegroup in list(cluster.nodegroups.values()):
            if nodegroup.arn == arn:
                return nodegroup
    return None


def _error_response(error: AddonError, start_response: StartResponse) -> Iterable[bytes]:
    payload = json.dumps(error.body).encode()
    start_response(
        f"{error.status} {_REASONS.get(error.status, 'Error')}",
        [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", error.code),
            ("Content-Length", str(len(payload))),
        ],
    )
    return [payload]


class AdminRoutes:
    """The admin routes under `aws.ADMIN_PREFIX`, EKS's add-on API, its node group size checks and node
    group tags, and S3's object listings (`s3_listing`); every other request goes to `moto`."""

    def __init__(self, moto: WSGIApplication) -> None:
        self.moto = moto
        self.addons = EksAddons()
        self.nodegroup_sizes = NodegroupSizes()
        self.nodegroup_tags = NodegroupTags()
        #: DynamoDB's writes are atomic per item (a condition is checked and the item written as one); moto
        #: reads, checks and writes in the calling thread of a threaded server, so two concurrent
        #: conditional writes could both pass their condition and one be lost: its requests run one at a time
        self.dynamodb = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if EksAddons.matches(path):
            return self.addons(environ, start_response)
        if NodegroupTags.matches(path):
            return self.nodegroup_tags(environ, start_response)
        listing_request = s3_listing.listing_request(environ)
        if listing_request is not None:
            listing = s3_listing.list_objects_v2(listing_request, start_response)
            if listing is not None:
                return listing
        if NodegroupSizes.matches(environ):
            error = self.nodegroup_sizes.check(environ)
            if error is not None:
                return _error_response(error, start_response)
        if str(environ.get("HTTP_X_AMZ_TARGET") or "").startswith(DYNAMODB_TARGET):
            with self.dynamodb:
                return list(self.moto(environ, start_response))
        if not path.startswith(aws.ADMIN_PREFIX):
            return self.moto(environ, start_response)
        status, body = self._route(environ, path.removeprefix(aws.ADMIN_PREFIX).split("/"))
        payload = json.dumps(body, sort_keys=True).encode()
        start_response(
            f"{status} {_REASONS[status]}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _route(self, environ: WSGIEnvironment, parts: list[str]) -> tuple[int, dict[str, Any]]:
        if len(parts) != 5 or parts[0] != "eks" or parts[4] != "endpoint" or not all(parts[1:4]):
            return 404, {"error": f"no such path: {environ.get('PATH_INFO')}"}
        if environ.get("REQUEST_METHOD") != "POST":
            return 405, {"error": f"{environ.get('REQUEST_METHOD')} is not allowed; POST"}
        account, region, name = (unquote(part) for part in parts[1:4])
        request = _json_body(environ)
        endpoint = request.get("endpoint") if isinstance(request, dict) else None
        authority = request.get("certificateAuthority") if isinstance(request, dict) else None
        ca_data = authority.get("data") if isinstance(authority, dict) else None
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            return 400, {"error": 'the body must give "endpoint", an http:// or https:// URL'}
        if not isinstance(ca_data, str) or not ca_data:
            return 400, {"error": 'the body must give "certificateAuthority": {"data": <base64 PEM>}'}
        cluster = set_eks_endpoint(account, region, name, endpoint, ca_data)
        if cluster is None:
            return 404, {"error": f"no EKS cluster {name} in account {account}, region {region}"}
        return 200, cluster


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
}


def _json_body(environ: WSGIEnvironment) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= MAX_BODY_BYTES:
        return None
    try:
        return json.loads(environ["wsgi.input"].read(length))
    except ValueError:
        return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim.awsemulator",
        description="Run moto's server with the local cloud's admin routes (EKS clusters' endpoints).",
    )
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "-p", "--port", type=int, default=aws.DEFAULT_PORT, help="port to serve (default: %(default)s)"
    )
    return parser.parse_args(argv)


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs (SQS queues, ...) from it
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.serving import run_simple

    from sim.aws.serving import Dispatcher, RequestHandler

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit)
    app = AdminRoutes(Dispatcher(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=RequestHandler)


if __name__ == "__main__":
    main()
