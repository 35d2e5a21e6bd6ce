"""A client for the OCI distribution API (registry HTTP API v2): the calls a push and a pull need.

Blobs: HEAD to skip what the registry has, a cross-repository mount where a blob is already in another
repository of the same registry, else an upload: monolithic (POST then one PUT with the digest) up to
`chunk_size`, chunked above it (PATCH ranges, then a closing PUT). Manifests: HEAD, PUT by digest (or
tag), GET. Authentication follows the registry's challenge: HTTP basic (ECR's token is basic auth) or a
bearer token from the realm it names (Docker Hub, anonymous or with credentials).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import httpx

from containers.errors import ContainersError
from containers.oci import MANIFEST_TYPES, digest_of

DEFAULT_CHUNK = 8 << 20
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")
DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io"}
ACCEPT = ", ".join(
    [
        *MANIFEST_TYPES,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def api_url(registry: str) -> str:
    """The API base URL of a registry given as host[:port] or URL; plain HTTP only for loopback."""
    if registry.startswith(("http://", "https://")):
        return registry.rstrip("/")
    if registry in DOCKER_HUB:
        return "https://registry-1.docker.io"
    scheme = "http" if LOOPBACK.match(registry) else "https"
    return f"{scheme}://{registry.rstrip('/')}"


def reference_host(registry: str) -> str:
    """The host[:port] that image references use for this registry."""
    return urlsplit(api_url(registry)).netloc if "://" in registry else registry.rstrip("/")


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def _with_digest(location: str, digest: str) -> str:
    """The upload URL with `digest` added to its query (which carries the registry's upload state)."""
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


class RegistryAuth(httpx.Auth):
    """Answers 401 challenges: basic credentials, or a bearer token fetched from the challenge's realm."""

    requires_response_body = True

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self.header: str | None = None
        self.tokens: dict[str, str] = {}

    def _basic(self) -> str:
        assert self.credentials is not None
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.header is not None:
            request.headers["Authorization"] = self.header
        response = yield request
        if response.status_code != 401 or "www-authenticate" not in response.headers:
            return
        scheme, params = _challenge(response.headers["www-authenticate"])
        if scheme == "basic" and self.credentials is not None:
            self.header = self._basic()
        elif scheme == "bearer" and "realm" in params:
            scope = params.get("scope", "")
            token = self.tokens.get(scope)
            if token is None:
                query: dict[str, str] = {key: params[key] for key in ("service", "scope") if key in params}
                token_request = httpx.Request("GET", params["realm"], params=query)
                if self.credentials is not None:
                    token_request.headers["Authorization"] = self._basic()
                token_response = yield token_request
                if token_response.status_code != 200:
                    return
                body = token_response.json()
                token = str(body.get("token") or body.get("access_token") or "")
                self.tokens[scope] = token
            self.header = f"Bearer {token}"
        else:
            return
        request.headers["Authorization"] = self.header
        yield request


class Registry:
    """One registry, spoken to over the distribution API."""

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = reference_host(registry)
        self.url = api_url(registry)
        self.chunk_size = chunk_size
        self.uploads: list[str] = []
        self.client = httpx.Client(
            base_url=self.url,
            auth=RegistryAuth(credentials),
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": "shopstack-containers"},
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calls -------------------------------------------------------------------------------

    def ping(self) -> None:
        response = self._send("GET", "/v2/")
        if response.status_code != 200:
            self._fail(response, "GET /v2/")

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._send("HEAD", f"/v2/{repository}/blobs/{digest}")
        if response.status_code in (200, 404):
            return response.status_code == 200
        self._fail(response, f"HEAD blob {repository}@{digest}")

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        """Ask for a cross-repository mount; False when the registry cannot (the blob must be uploaded)."""
        response = self._send(
            "POST", f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": source_repository}
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            self._send("DELETE", self._location(response))  # the upload session it opened instead
            return False
        self._fail(response, f"mount {digest} from {source_repository} into {repository}")

    def upload_blob(self, repository: str, digest: str, source: Path) -> None:
        """Upload a blob: monolithic up to `chunk_size`, chunked above it."""
        response = self._send("POST", f"/v2/{repository}/blobs/uploads/")
        if response.status_code != 202:
            self._fail(response, f"start upload {repository}@{digest}")
        size = source.stat().st_size
        location = self._location(response)
        octets = {"Content-Type": "application/octet-stream"}
        with source.open("rb") as stream:
            if size <= self.chunk_size:
                response = self._send(
                    "PUT", _with_digest(location, digest), content=stream.read(), headers=octets
                )
            else:
                offset = 0
                while chunk := stream.read(self.chunk_size):
                    span = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                    response = self._send("PATCH", location, content=chunk, headers={**octets, **span})
                    if response.status_code != 202:
                        self._fail(response, f"upload chunk of {repository}@{digest}")
                    location = self._location(response)
                    offset += len(chunk)
                response = self._send("PUT", _with_digest(location, digest), content=b"")
        if response.status_code != 201:
            self._fail(response, f"finish upload {repository}@{digest}")
        self.uploads.append(digest)

    def get_blob(self, repository: str, digest: str, into: Path) -> None:
        """Download a blob to `into`, checking its digest."""
        hasher = hashlib.sha256()
        try:
            with self.client.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
                if response.status_code != 200:
                    response.read()
                    self._fail(response, f"GET blob {repository}@{digest}")
                with into.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        hasher.update(chunk)
                        out.write(chunk)
        except httpx.HTTPError as err:
            raise ContainersError(f"registry {self.name}: GET blob {repository}@{digest}: {err}") from err
        got = f"sha256:{hasher.hexdigest()}"
        if got != digest:
            into.unlink()
            raise ContainersError(f"{self.name}/{repository}: blob {digest} arrived as {got}")

    def has_manifest(self, repository: str, reference: str) -> bool:
        response = self._send("HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT})
        if response.status_code in (200, 404):
            return response.status_code == 200
        self._fail(response, f"HEAD manifest {repository}:{reference}")

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        digest = digest_of(data)
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            content=data,
            headers={"Content-Type": media_type},
        )
        if response.status_code != 201:
            self._fail(response, f"PUT manifest {repository}:{reference}")
        echoed = response.headers.get("docker-content-digest")
        if echoed and echoed != digest:
            raise ContainersError(f"{self.name}/{repository}: manifest stored as {echoed}, sent {digest}")
        return digest

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        response = self._send("GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT})
        if response.status_code != 200:
            self._fail(response, f"GET manifest {repository}:{reference}")
        data = response.content
        if reference.startswith("sha256:") and digest_of(data) != reference:
            raise ContainersError(
                f"{self.name}/{repository}: manifest {reference} arrived with another digest"
            )
        return data, response.headers.get("content-type", "").split(";")[0]

    # -- plumbing --------------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        try:
            return self.client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as err:
            raise ContainersError(
                f"registry {self.name}: {method} {url}: {err.__class__.__name__}: {err}"
            ) from err

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise ContainersError(f"registry {self.name}: upload response without a Location header")
        return str(httpx.URL(self.url + "/").join(location))

    def _fail(self, response: httpx.Response, what: str) -> NoReturn:
        detail = ""
        try:
            errors = response.json().get("errors", [])
            if errors:
                detail = f" {errors[0].get('code', '')}: {errors[0].get('message', '')}"
        except ValueError:
            detail = f" {response.text[:120]}" if response.text else ""
        raise ContainersError(f"registry {self.name}: {what}: HTTP {response.status_code}{detail}")
