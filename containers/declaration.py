"""The image declaration (containers/images.toml) and the pinned base images it names (bases/*.toml).

The declaration is data: one short entry per service and a few settings shared by all. Everything is
checked when it is read, and a mistake is reported as one line naming the file, the image and the field:
an unknown module, a dependency group the lock file does not have, a port or user out of range.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from containers.errors import ContainersError
from containers.oci import Descriptor
from containers.platform import ARCHITECTURES, Target

PROJECT_GROUP = "project"
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MODULE = re.compile(r"^services\.([a-z_][a-z0-9_]*)$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE_KEYS = {"module", "group", "port", "user"}
TOP_KEYS = {"repository", "source", "base", "bytecode", "target", "images"}
TARGET_KEYS = {"os", "architecture", "python", "glibc"}


@dataclass(frozen=True)
class ImageSpec:
    """One image: what it runs, with which locked dependencies, on which port, as which user."""

    name: str
    module: str
    group: str
    port: int
    user: int

    @property
    def package(self) -> str:
        """The package under services/ (`payment` for `services.payment`)."""
        return self.module.split(".", 1)[1]


@dataclass(frozen=True)
class BaseImage:
    """A base image pinned by digest: a fixed-output input recorded in the repository.

    Its config blob (which carries the layers' diff_ids) is fetched by digest, once, where its registry
    is reachable; its layers only when pushing to a registry that does not have them yet.
    """

    name: str
    reference: str
    registry: str
    repository: str
    index: str
    manifest: str
    config: str
    python: str
    os: str
    architecture: str
    layers: tuple[Descriptor, ...]
    env: tuple[str, ...]
    recorded_from: str

    def describe(self) -> dict[str, Any]:
        """The base as a derivation input: what identifies its bytes."""
        return {
            "reference": self.reference,
            "manifest": self.manifest,
            "config": self.config,
            "layers": [layer.to_json() for layer in self.layers],
        }


@dataclass(frozen=True)
class Declaration:
    path: Path
    repository: str
    source: str
    base: BaseImage
    target: Target
    images: Mapping[str, ImageSpec]
    bytecode: bool = True

    def select(self, names: Iterable[str] | None) -> list[ImageSpec]:
        if not names:
            return list(self.images.values())
        chosen = []
        for name in names:
            if name not in self.images:
                known = ", ".join(self.images)
                raise ContainersError(f"{self.path.name}: no image named {name!r} (declared: {known})")
            chosen.append(self.images[name])
        return chosen


def load(path: Path, lock_groups: Mapping[str, str]) -> Declaration:
    """Read and check a declaration. `lock_groups` maps each group or extra in uv.lock to its kind."""
    data = _read_toml(path)
    where = path.name
    _no_unknown_keys(where, data, TOP_KEYS)
    repository = _string(where, data, "repository")
    if not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", repository):
        raise ContainersError(f"{where}: repository {repository!r} is not a valid repository name")
    base = load_base(path.parent / "bases" / f"{_string(where, data, 'base')}.toml")
    target = _target(where, data.get("target"), base)
    images_data = data.get("images")
    if not isinstance(images_data, dict) or not images_data:
        raise ContainersError(f"{where}: [images] must declare at least one image")
    images = {name: _image(where, name, entry, lock_groups) for name, entry in images_data.items()}
    modules: dict[str, str] = {}
    for spec in images.values():
        if spec.module in modules:
            raise ContainersError(
                f"{where}: images {modules[spec.module]!r} and {spec.name!r} both run {spec.module}"
            )
        modules[spec.module] = spec.name
    bytecode = data.get("bytecode", True)
    if not isinstance(bytecode, bool):
        raise ContainersError(f"{where}: bytecode must be true or false")
    return Declaration(path, repository, _string(where, data, "source"), base, target, images, bytecode)


def check_modules(project: Path, specs: Iterable[ImageSpec], declaration: str = "images.toml") -> None:
    """Each selected image's module must be a runnable package of the project (`python -m` needs __main__)."""
    for spec in specs:
        package = project / "services" / spec.package
        if not (package / "__main__.py").is_file():
            missing = "no such package" if not package.is_dir() else "it has no __main__.py"
            raise ContainersError(
                f"{declaration}: image {spec.name!r}: unknown module {spec.module} "
                f"({missing} at services/{spec.package})"
            )


def load_base(path: Path) -> BaseImage:
    data = _read_toml(path)
    where = f"bases/{path.name}"
    reference = _string(where, data, "reference")
    registry, _, rest = reference.partition("/")
    repository = rest.rsplit(":", 1)[0].split("@", 1)[0]
    digests = {key: _string(where, data, key) for key in ("index", "manifest", "config")}
    for key, value in digests.items():
        if not DIGEST.match(value):
            raise ContainersError(f"{where}: {key} {value!r} is not a sha256 digest")
    layers = []
    for number, layer in enumerate(data.get("layers", [])):
        try:
            descriptor = Descriptor(layer["media_type"], layer["digest"], int(layer["size"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ContainersError(f"{where}: layer {number} needs media_type, digest and size") from err
        if not DIGEST.match(descriptor.digest):
            raise ContainersError(
                f"{where}: layer {number} digest {descriptor.digest!r} is not a sha256 digest"
            )
        layers.append(descriptor)
    if not layers:
        raise ContainersError(f"{where}: a base image records at least one layer")
    return BaseImage(
        name=path.stem,
        reference=reference,
        registry=registry,
        repository=repository,
        index=digests["index"],
        manifest=digests["manifest"],
        config=digests["config"],
        python=_string(where, data, "python"),
        os=_string(where, data, "os"),
        architecture=_string(where, data, "architecture"),
        layers=tuple(layers),
        env=tuple(str(item) for item in data.get("env", [])),
        recorded_from=str(data.get("recorded_from", "")),
    )


def lock_groups(lock_file: Path) -> dict[str, str]:
    """The dependency groups and extras the lock file holds for the project: name → "group" or "extra"."""
    data = _read_toml(lock_file)
    project = [package for package in data.get("package", []) if "editable" in package.get("source", {})]
    found: dict[str, str] = {}
    for package in project:
        for name in package.get("optional-dependencies", {}):
            found[name] = "extra"
        for name in package.get("dev-dependencies", {}):
            found[name] = "group"
    return found


def _image(where: str, name: str, entry: Any, groups: Mapping[str, str]) -> ImageSpec:
    if not NAME.match(name):
        raise ContainersError(f"{where}: image name {name!r} must be lower-case letters, digits and dashes")
    if not isinstance(entry, dict):
        raise ContainersError(f"{where}: image {name!r} must be a table with {', '.join(sorted(IMAGE_KEYS))}")
    _no_unknown_keys(f"{where}: image {name!r}", entry, IMAGE_KEYS)
    module = entry.get("module")
    if not isinstance(module, str) or not MODULE.match(module):
        raise ContainersError(
            f"{where}: image {name!r}: unknown module {module!r} (expected services.<package>)"
        )
    group = entry.get("group", PROJECT_GROUP)
    if group != PROJECT_GROUP and group not in groups:
        known = ", ".join([PROJECT_GROUP, *sorted(groups)])
        raise ContainersError(
            f"{where}: image {name!r}: dependency group {group!r} is not in uv.lock (known: {known}); "
            "add it to pyproject.toml and run `uv lock`"
        )
    port = entry.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ContainersError(f"{where}: image {name!r}: port {port!r} is not a TCP port (1-65535)")
    user = entry.get("user")
    if not isinstance(user, int) or isinstance(user, bool) or not 1 <= user <= 2**31 - 1:
        raise ContainersError(
            f"{where}: image {name!r}: user {user!r} must be a non-root numeric uid (1-2147483647)"
        )
    return ImageSpec(name, module, group, port, user)


def _target(where: str, data: Any, base: BaseImage) -> Target:
    if not isinstance(data, dict):
        raise ContainersError(f"{where}: [target] (os, architecture, python, glibc) is required")
    _no_unknown_keys(f"{where}: [target]", data, TARGET_KEYS)
    values = {key: _string(f"{where}: [target]", data, key) for key in sorted(TARGET_KEYS)}
    if values["os"] != "linux" or values["architecture"] not in ARCHITECTURES:
        raise ContainersError(f"{where}: [target] must be linux on one of {', '.join(ARCHITECTURES)}")
    if not re.fullmatch(r"3\.\d+", values["python"]) or not re.fullmatch(r"2\.\d+", values["glibc"]):
        raise ContainersError(f"{where}: [target] python must look like 3.11 and glibc like 2.28")
    if not base.python.startswith(values["python"] + "."):
        raise ContainersError(
            f"{where}: [target] python {values['python']} but base {base.name} has {base.python}"
        )
    if (base.os, base.architecture) != (values["os"], values["architecture"]):
        raise ContainersError(
            f"{where}: [target] is {values['os']}/{values['architecture']} but base {base.name} is not"
        )
    return Target(values["os"], values["architecture"], values["python"], base.python, values["glibc"])


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError as err:
        raise ContainersError(f"{path}: no such file") from err
    except tomllib.TOMLDecodeError as err:
        raise ContainersError(f"{path.name}: {err}") from err


def _string(where: str, data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ContainersError(f"{where}: {key} must be a non-empty string")
    return value


def _no_unknown_keys(where: str, data: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ContainersError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
