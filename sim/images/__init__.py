"""The local cloud's image store: OCI images loaded like `kind load`, run from their own layers.

reference.py parses references; unpack.py unpacks one layer safely and atomically; rootfs.py merges an
image's layers; runspec.py turns an image config into what a runtime starts (paths rewritten into the
rootfs, `python` as the host's interpreter of the image's major.minor); store.py holds blobs, names and
caches; `python -m sim.images load build/oci/<name>` is the CLI.
"""

from sim.images.errors import ImageError, ImagePullError
from sim.images.runspec import RunSpec
from sim.images.store import ImageStore

__all__ = ["ImageError", "ImagePullError", "ImageStore", "RunSpec"]
