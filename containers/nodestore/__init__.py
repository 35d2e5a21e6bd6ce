"""A node's image store: OCI images loaded like `kind load`, run from their own layers.

The build's other end: the local cloud's kubelets run images from it, and the deploy loads images into it
(`image_publisher = "local-store"`); it imports nothing of either.

reference.py parses references; unpack.py unpacks one layer safely and atomically; rootfs.py merges an
image's layers; runspec.py turns an image config into what a runtime starts (paths rewritten into the
rootfs, `python` as the host's interpreter of the image's major.minor); store.py holds blobs, names and
caches; `python -m containers.nodestore load build/oci/<name>` is the CLI.
"""

from containers.nodestore.errors import ImageError, ImagePullError
from containers.nodestore.runspec import RunSpec
from containers.nodestore.store import ImageStore

__all__ = ["ImageError", "ImagePullError", "ImageStore", "RunSpec"]
