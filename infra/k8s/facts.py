"""What the deploy owns in the cluster: every object carrying its prune label, of the kinds asked for.

`LiveObjects` is the one read the apply and prune operations plan from. Namespaced kinds are listed
across all namespaces (the model may place objects outside its own namespace, e.g. in kube-system), and
cluster-scoped kinds cluster-wide, always selected by the deploy's prune label, so objects made by
others (kubectl, controllers) are never seen and never touched. Before the cluster exists it is empty.
"""

from __future__ import annotations

from typing import Any

from lightkube import ALL_NS
from lightkube.codecs import resource_registry
from lightkube.core import resource as lkr
from lightkube.core.exceptions import LoadResourceError

from infra.cloud import Cloud
from infra.fact import ApiFact
from infra.model.common import PRUNE_LABEL, PRUNE_VALUE

Obj = dict[str, Any]


def object_key(obj: Obj) -> str:
    """`apiVersion kind namespace/name` (namespace empty when cluster-scoped): one object's identity."""
    meta = obj.get("metadata") or {}
    return f"{obj['apiVersion']} {obj['kind']} {meta.get('namespace') or ''}/{meta['name']}"


def resource_class(api_version: str, kind: str) -> Any:
    """lightkube's class for a kind, with one clear error when it does not know it."""
    try:
        return resource_registry.load(api_version, kind)
    except LoadResourceError:
        raise ValueError(f"unknown Kubernetes kind {api_version} {kind}") from None


def is_namespaced(api_version: str, kind: str) -> bool:
    return issubclass(resource_class(api_version, kind), lkr.NamespacedResource)


class LiveObjects(ApiFact[dict[str, Obj]]):
    """The deploy's live objects of `kinds` ([apiVersion, kind] pairs), keyed by `object_key`, without
    their managedFields and status."""

    def command(self, kinds: list[list[str]]) -> str:
        return self.request(kinds=sorted({(a, k) for a, k in kinds}))

    def read(self, cloud: Cloud, kinds: list[list[str]]) -> dict[str, Obj]:  # type: ignore[override]
        client = cloud.kube()
        if client is None:
            return {}
        live: dict[str, Obj] = {}
        for api_version, kind in kinds:
            res = resource_class(api_version, kind)
            selector: dict[str, Any] = {"labels": {PRUNE_LABEL: PRUNE_VALUE}}
            if issubclass(res, lkr.NamespacedResource):
                selector["namespace"] = ALL_NS
            for item in client.list(res, **selector):
                obj = item.to_dict() if hasattr(item, "to_dict") else dict(item)
                obj["apiVersion"], obj["kind"] = api_version, kind
                obj.pop("status", None)
                (obj.get("metadata") or {}).pop("managedFields", None)
                live[object_key(obj)] = obj
        return live
