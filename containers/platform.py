"""The platform the images are built for: OS, architecture, Python, glibc; its wheel tags and markers.

Wheels are chosen for this declared target, never for the machine that builds, so a build on a laptop
and one on CI pick the same files. The glibc bound is the lowest of the base image's and of the hosts
the local cloud runs the image's layers on: a manylinux wheel newer than it is not chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from packaging.tags import Tag, compatible_tags, cpython_tags

ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64"}

# The manylinux aliases of PEP 600 for the tags older wheels still carry.
LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


@dataclass(frozen=True)
class Target:
    """A Linux CPython target, as declared in images.toml."""

    os: str
    architecture: str
    python: str
    python_full: str
    glibc: str

    @property
    def machine(self) -> str:
        return ARCHITECTURES[self.architecture]

    @property
    def python_tuple(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    @property
    def platform_tags(self) -> list[str]:
        """Platform tags from the most specific (newest manylinux allowed) to the most general."""
        glibc_major, glibc_minor = (int(part) for part in self.glibc.split("."))
        tags: list[str] = []
        for minor in range(glibc_minor, 4, -1):
            tags.append(f"manylinux_{glibc_major}_{minor}_{self.machine}")
            legacy = LEGACY_MANYLINUX.get((glibc_major, minor))
            if legacy:
                tags.append(f"{legacy}_{self.machine}")
        tags.append(f"linux_{self.machine}")
        return tags

    @cached_property
    def wheel_tags(self) -> list[Tag]:
        """Every wheel tag this target accepts, most preferred first (the order pip and uv use)."""
        interpreter = f"cp{self.python_tuple[0]}{self.python_tuple[1]}"
        return [
            *cpython_tags(self.python_tuple, abis=[interpreter], platforms=self.platform_tags),
            *compatible_tags(self.python_tuple, interpreter=interpreter, platforms=self.platform_tags),
        ]

    @cached_property
    def tag_priority(self) -> dict[Tag, int]:
        return {tag: rank for rank, tag in enumerate(self.wheel_tags)}

    @property
    def markers(self) -> dict[str, str]:
        """The PEP 508 marker environment of the target's interpreter."""
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python_full,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python_full,
            "python_version": self.python,
            "sys_platform": "linux",
        }

    def describe(self) -> dict[str, str]:
        """The target as a derivation input."""
        return {
            "os": self.os,
            "architecture": self.architecture,
            "python": self.python_full,
            "glibc": self.glibc,
        }

    def __str__(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.os}/{self.architecture}-glibc{self.glibc}"
