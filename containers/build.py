"""The builder: read the declaration, plan every image's derivations, realise them, write the layouts.

Per image the plan is: the project's lock files imported → the group's locked closure → one fetch and one
install per wheel → a dependency layer per group (shared by every image of that group) → the image's
sources imported → its code layer → its config → its manifest ("app"), and with `full` the same on the
pinned base. The closure is realised before the rest is planned (its output says which wheels exist),
like Nix's import-from-derivation.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from containers import declaration as declaration_module
from containers.artifact import BuiltImage
from containers.declaration import PROJECT_GROUP, Declaration, ImageSpec
from containers.derivation import Derivation
from containers.errors import ContainersError
from containers.imagesjson import ImagesFile
from containers.layout import write_layout
from containers.lock import LockedWheel, uv_binary, uv_version
from containers.oci import Descriptor
from containers.realise import Mismatch, Realiser, Reporter, SilentReporter
from containers.recipes import bytecode, code, deps, image
from containers.recipes.sources import import_sources, package_files
from containers.store import Store

APP, FULL = "app", "full"
LOCK_FILES = ("pyproject.toml", "uv.lock")
COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names
SHORT_COMMIT = 12
# what a service accepts as SERVICE_VERSION (it goes out in a response header)
SERVICE_VERSION = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True)
class BuildOptions:
    project: Path
    store: Path
    out: Path
    declaration: Path | None = None
    only: Sequence[str] = ()
    full: bool = False
    check: bool = False
    jobs: int = 4
    revision: str | None = None
    epoch: int | None = None

    @property
    def declaration_path(self) -> Path:
        return self.declaration or self.project / "containers" / "images.toml"


@dataclass
class BuildResult:
    images: dict[str, dict[str, BuiltImage]]
    built: int
    reused: int
    checked: int
    mismatches: list[Mismatch]
    seconds: float
    built_steps: list[str] = field(default_factory=list)

    def line(self) -> str:
        count = len(self.images)
        text = f"built {self.built}, reused {self.reused} steps; {count} image{'s' * (count != 1)}"
        if self.checked or self.mismatches:
            text += f"; checked {self.checked}, {len(self.mismatches)} not reproducible"
        return f"{text} in {self.seconds:.1f}s"


def source_date_epoch(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not value.isdigit():
        raise ContainersError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds")
    return int(value)


def project_version(project: Path) -> str:
    with (project / "pyproject.toml").open("rb") as stream:
        return str(tomllib.load(stream).get("project", {}).get("version", "0"))


def git_revision(project: Path, paths: Sequence[str]) -> str:
    """The last commit that touched any of `paths`; "unknown" outside a git work tree."""
    try:
        result = subprocess.run(
            ["git", "log", "-1", "--format=%H", "--", *paths],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() or "unknown"


def service_version(version: str, revision: str) -> str:
    """What the image's `SERVICE_VERSION` says: `<version>+<revision>`, a commit id shortened."""
    if COMMIT_ID.fullmatch(revision):
        revision = revision[:SHORT_COMMIT]
    named = f"{version}+{revision}"
    if not SERVICE_VERSION.fullmatch(named):
        raise ContainersError(
            f"the image's SERVICE_VERSION {named!r} would not start the service: the version and the "
            "revision must be printable ASCII without spaces, 128 characters in all"
        )
    return named


class Builder:
    def __init__(self, options: BuildOptions, reporter: Reporter | None = None) -> None:
        self.options = options
        self.project = options.project.absolute()
        self.store = Store(options.store)
        self.realiser = Realiser(
            self.store, jobs=options.jobs, check=options.check, reporter=reporter or SilentReporter()
        )
        groups = declaration_module.lock_groups(self.project / "uv.lock")
        self.groups = groups
        self.declaration: Declaration = declaration_module.load(options.declaration_path, groups)
        self.specs = self.declaration.select(options.only)
        declaration_module.check_modules(self.project, self.specs, options.declaration_path.name)
        self.mtime = source_date_epoch(options.epoch)
        if self.declaration.bytecode:
            bytecode.check_compiler(self.declaration.target.python)
        self.installs: dict[str, Derivation] = {}

    # -- planning --------------------------------------------------------------------------------

    def dependency_layers(self) -> dict[str, list[Derivation]]:
        """The dependency layers of each group the selected images use (realising their closures)."""
        target = self.declaration.target
        lock_sources = import_sources("src-lock", self.project, LOCK_FILES)
        uv = uv_version(uv_binary())
        wanted = sorted({PROJECT_GROUP, *(spec.group for spec in self.specs)})
        closures = {
            group: deps.closure(group, self.groups.get(group, ""), lock_sources, target, uv)
            for group in wanted
        }
        realised = dict(zip(wanted, self.realiser.realise(closures.values()), strict=True))
        wheels = {group: deps.read_closure(found.path) for group, found in realised.items()}
        project_files = {wheel.filename for wheel in wheels[PROJECT_GROUP]}
        project_layer = self._layer(PROJECT_GROUP, closures[PROJECT_GROUP], wheels[PROJECT_GROUP])
        layers = {PROJECT_GROUP: [project_layer]}
        for group in wanted:
            if group == PROJECT_GROUP:
                continue
            extra = [wheel for wheel in wheels[group] if wheel.filename not in project_files]
            layers[group] = [project_layer, *([self._layer(group, closures[group], extra)] if extra else [])]
        return layers

    def _layer(self, group: str, closure: Derivation, wheels: list[LockedWheel]) -> Derivation:
        installs = []
        for wheel in wheels:
            install = self.installs.get(wheel.filename)
            if install is None:
                install = self.installs[wheel.filename] = deps.installed(
                    wheel, self.declaration.target, self.declaration.bytecode
                )
            installs.append(install)
        return deps.dependency_layer(group, closure, installs, self.mtime)

    def image_plans(self, dependency_layers: dict[str, list[Derivation]]) -> dict[str, dict[str, Derivation]]:
        plans: dict[str, dict[str, Derivation]] = {}
        version = project_version(self.project)
        for spec in self.specs:
            files = ["services/__init__.py", *package_files(self.project, "services/common")]
            files += package_files(self.project, f"services/{spec.package}")
            sources = import_sources(f"src-{spec.name}", self.project, files)
            layers = [
                *dependency_layers[spec.group],
                code.code_layer(spec.name, sources, self.mtime, self.declaration.bytecode),
            ]
            history = [f"shopstack containers: {layer.name}" for layer in layers]
            revision = self.revision(spec)
            labels = self.labels(spec, version, revision)
            variants = {APP: None, **({FULL: self.declaration.base} if self.options.full else {})}
            plans[spec.name] = {}
            for variant, base in variants.items():
                config = image.image_config(
                    spec,
                    layers,
                    history,
                    labels=labels,
                    service_version=service_version(version, revision),
                    mtime=self.mtime,
                    os=self.declaration.target.os,
                    architecture=self.declaration.target.architecture,
                    base=base,
                )
                plans[spec.name][variant] = image.image_manifest(spec, config, layers, base)
        return plans

    def revision(self, spec: ImageSpec) -> str:
        """`--revision`, or the last commit that touched the image's inputs."""
        return self.options.revision or git_revision(
            self.project,
            [
                "services/__init__.py",
                "services/common",
                f"services/{spec.package}",
                *LOCK_FILES,
                str(self.options.declaration_path.relative_to(self.project))
                if self.options.declaration_path.is_relative_to(self.project)
                else "containers",
            ],
        )

    def labels(self, spec: ImageSpec, version: str, revision: str) -> dict[str, str]:
        return {
            "org.opencontainers.image.title": spec.name,
            "org.opencontainers.image.source": self.declaration.source,
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.version": version,
            image.PYTHON_LABEL: self.declaration.target.python,
        }

    # -- running ---------------------------------------------------------------------------------

    def build(self) -> BuildResult:
        started = time.monotonic()
        plans = self.image_plans(self.dependency_layers())
        targets = [derivation for variants in plans.values() for derivation in variants.values()]
        self.realiser.realise(targets)
        images: dict[str, dict[str, BuiltImage]] = {}
        for name, variants in plans.items():
            images[name] = {
                variant: BuiltImage.from_store(
                    self.store, name, variant, self.realiser.outcomes[derivation.name].realisation
                )
                for variant, derivation in variants.items()
            }
        self.write_outputs(images)
        outcomes = self.realiser.outcomes.values()
        return BuildResult(
            images=images,
            built=self.realiser.count("built"),
            reused=self.realiser.count("reused"),
            checked=self.realiser.count("checked"),
            mismatches=list(self.realiser.mismatches),
            seconds=time.monotonic() - started,
            built_steps=sorted(outcome.derivation.name for outcome in outcomes if outcome.status == "built"),
        )

    def fetch_base_layer(self, layer: Descriptor) -> Path:
        """A base layer's blob, fetched by digest into the store once (for pushes that must copy it)."""
        (found,) = self.realiser.realise([image.base_layer(self.declaration.base, layer)])
        return found.path / "layer.tar.gz"

    def write_outputs(self, images: dict[str, dict[str, BuiltImage]]) -> None:
        out = self.options.out
        for name, variants in images.items():
            write_layout(out / "oci" / name, list(variants.values()))
        references = {
            name: f"{self.declaration.repository}/{name}@{variants[APP].digest}"
            for name, variants in images.items()
        }
        ImagesFile(out / "images.json").update(references)
