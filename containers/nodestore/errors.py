"""The image store's errors: a bad image, and an image the store does not have (ErrImagePull)."""

from __future__ import annotations


class ImageError(Exception):
    """An image cannot be run here: corrupt blob, unsafe layer, unsupported format, no matching Python."""


class ImagePullError(ImageError):
    """The reference names no loaded image: what a kubelet reports as ErrImagePull."""
