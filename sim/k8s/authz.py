"""Authorization: the emulator authorizes every request of everyone, for every verb, resource and
subresource alike (the proxy, exec and port-forward included), as an API server with
`--authorization-mode=AlwaysAllow` does. There is nothing to check on the way in; what it serves is
`authorization.k8s.io/v1`, so that `kubectl auth can-i` (a SelfSubjectAccessReview) answers yes."""

from __future__ import annotations

from sim.k8s import errors, resources
from sim.k8s.errors import ApiError
from sim.k8s.messages import Request, Response
from sim.k8s.objects import Obj

GROUP = "authorization.k8s.io"
VERSION = "v1"
#: The reviews one may create: plural -> kind.
REVIEWS = {rt.plural: rt.kind for rt in resources.REVIEW_TYPES}
ALLOWED = {"allowed": True, "reason": "the local emulator authorizes every request"}


def api_group() -> Obj:
    gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [gv], "preferredVersion": gv}


def answer(req: Request, path: str) -> Response:
    """`/apis/authorization.k8s.io[/v1[/<review>]]`: the group, its resources, or a review, allowed."""
    if path == f"/apis/{GROUP}":
        return Response.json(api_group())
    if path == f"/apis/{GROUP}/{VERSION}":
        reviews = [
            {"name": name, "singularName": "", "namespaced": False, "kind": kind, "verbs": ["create"]}
            for name, kind in REVIEWS.items()
        ]
        return Response.json(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{GROUP}/{VERSION}",
                "resources": reviews,
            }
        )
    name = path.rsplit("/", 1)[-1]
    if req.method != "POST" or name not in REVIEWS:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    review = req.json() or {}
    if not isinstance(review, dict):
        raise errors.bad_request("the body of the request must be an object")
    review["status"] = dict(ALLOWED)
    return Response.json(review, 201)
