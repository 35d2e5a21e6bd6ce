"""Image references, parsed as Docker does: `[registry/]name[:tag][@sha256:hex]`.

A registry prefix (`123456789012.dkr.ecr.us-east-1.amazonaws.com/...`, `localhost:5000/...`) is recognised
by its first component holding a dot or a colon, or being `localhost`; the store drops it, because an image
is the same bytes whichever registry it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from containers.nodestore.errors import ImagePullError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class Reference:
    name: str
    tag: str | None = None
    digest: str | None = None
    registry: str | None = None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.name}" if self.registry else self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def named_tag(self) -> str:
        """`name:tag` without the registry (`latest` when no tag is given)."""
        return f"{self.name}:{self.tag or DEFAULT_TAG}"


def parse(text: str) -> Reference:
    """Parse a reference; a malformed one is an `ImagePullError` (a kubelet reports InvalidImageName)."""
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST.match(digest):
            raise ImagePullError(f"invalid image reference {text!r}: digest must be sha256:<64 hex>")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not TAG.match(tag):
            raise ImagePullError(f"invalid image reference {text!r}: bad tag {tag!r}")
    registry = None
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    if not NAME.match(rest):
        raise ImagePullError(f"invalid image reference {text!r}: bad name {rest!r}")
    return Reference(rest, tag, digest, registry)
