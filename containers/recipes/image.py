"""The image steps: the image config, the image manifest, and the pinned base image's config (fetched).

Two variants of each image share their layers:
- "app": the image's own layers only (dependencies, code). Complete on its own: the local cloud unpacks
  these layers and runs the entrypoint with the host's Python of the same major.minor.
- "full": the same layers on the pinned base image, whose layers it references by digest and whose
  config (env, history, diff_ids) it extends. This is what a cluster's container runtime runs.

Both carry `SERVICE_VERSION` in their environment, naming the build (`<version>+<revision>`): the service
reports it in every response and in its telemetry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from containers import oci
from containers.declaration import BaseImage, ImageSpec
from containers.derivation import BuildContext, Derivation, FixedOutput, Recipe
from containers.errors import ContainersError
from containers.hashing import canonical_json
from containers.oci import Descriptor, History, ImageConfig, Manifest
from containers.recipes import rootfs
from containers.registry import Registry
from containers.tarball import LayerInfo

PYTHON_LABEL = "io.shopstack.python"
VERSION_ENV = "SERVICE_VERSION"


def created_at(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def layer_inputs(inputs: Mapping[str, Path]) -> list[LayerInfo]:
    names = sorted(name for name in inputs if name.startswith("layer-"))
    return [LayerInfo.from_json(json.loads((inputs[name] / "layer.json").read_bytes())) for name in names]


def make_config(context: BuildContext) -> None:
    args = context.args
    layers = layer_inputs(context.inputs)
    created = created_at(int(args["mtime"]))
    history = [History(created, created_by) for created_by in args["history"]]
    env = list(args["env"])
    labels = dict(args["labels"])
    diff_ids = [layer.diff_id for layer in layers]
    if "base-config" in context.inputs:
        base = json.loads((context.inputs["base-config"] / "config.json").read_bytes())
        base_config = base.get("config", {})
        ours = {item.split("=", 1)[0] for item in env}
        env = [item for item in base_config.get("Env", []) if item.split("=", 1)[0] not in ours] + env
        labels = {**(base_config.get("Labels") or {}), **labels}
        diff_ids = list(base["rootfs"]["diff_ids"]) + diff_ids
        history = [
            History(
                entry.get("created", ""),
                entry.get("created_by", ""),
                entry.get("comment", ""),
                bool(entry.get("empty_layer", False)),
            )
            for entry in base.get("history", [])
        ] + history
    config = ImageConfig(
        created=created,
        os=args["os"],
        architecture=args["architecture"],
        user=f"{args['user']}:{args['user']}",
        env=env,
        entrypoint=["python", "-m", args["module"]],
        working_dir=rootfs.APP,
        exposed_ports=[f"{args['port']}/tcp"],
        labels=labels,
        diff_ids=diff_ids,
        history=history,
    )
    data = config.to_bytes()
    (context.out / "config.json").write_bytes(data)
    (context.out / "descriptor.json").write_bytes(canonical_json(Descriptor.of(oci.CONFIG, data).to_json()))


def make_manifest(context: BuildContext) -> None:
    config = Descriptor.from_json(json.loads((context.inputs["config"] / "descriptor.json").read_bytes()))
    own = [Descriptor(oci.LAYER_GZIP, layer.digest, layer.size) for layer in layer_inputs(context.inputs)]
    base = [Descriptor.from_json(layer) for layer in context.args["base_layers"]]
    manifest = Manifest(config, [*base, *own], dict(context.args["annotations"]))
    data = manifest.to_bytes()
    (context.out / "manifest.json").write_bytes(data)
    (context.out / "descriptor.json").write_bytes(canonical_json(Descriptor.of(oci.MANIFEST, data).to_json()))


def fetch_base_config(context: BuildContext) -> None:
    args = context.args
    try:
        with Registry(args["registry"]) as registry:
            registry.get_blob(args["repository"], args["digest"], context.out / "config.json")
    except ContainersError as err:
        raise ContainersError(
            f"the base image's config {args['digest'][:19]}… is needed once for full images and is not "
            f"in the store; fetching it from {args['registry']} failed ({err}); app images need no base"
        ) from err


def fetch_base_layer(context: BuildContext) -> None:
    args = context.args
    with Registry(args["registry"]) as registry:
        registry.get_blob(args["repository"], args["digest"], context.out / "layer.tar.gz")


CONFIG = Recipe("image-config", make_config, (oci, rootfs))
MANIFEST = Recipe("image-manifest", make_manifest, (oci,))
BASE_CONFIG = Recipe("fetch-base-config", fetch_base_config, ())
BASE_LAYER = Recipe("fetch-base-layer", fetch_base_layer, ())


def base_config(base: BaseImage) -> Derivation:
    return Derivation(
        name=f"base-config-{base.name}",
        recipe=BASE_CONFIG,
        args={"registry": base.registry, "repository": base.repository, "digest": base.config},
        fixed=FixedOutput(base.config.removeprefix("sha256:"), "file", "config.json"),
    )


def base_layer(base: BaseImage, layer: Descriptor) -> Derivation:
    hexdigest = layer.digest.removeprefix("sha256:")
    return Derivation(
        name=f"base-layer-{base.name}-{hexdigest[:16]}",
        recipe=BASE_LAYER,
        args={"registry": base.registry, "repository": base.repository, "digest": layer.digest},
        fixed=FixedOutput(hexdigest, "file", "layer.tar.gz"),
    )


def _layers(layers: Sequence[Derivation]) -> dict[str, Derivation]:
    return {f"layer-{number:02d}": layer for number, layer in enumerate(layers)}


def image_config(
    spec: ImageSpec,
    layers: Sequence[Derivation],
    history: Sequence[str],
    *,
    labels: Mapping[str, str],
    service_version: str,
    mtime: int,
    os: str,
    architecture: str,
    base: BaseImage | None,
) -> Derivation:
    inputs: dict[str, Derivation] = _layers(layers)
    if base is not None:
        inputs["base-config"] = base_config(base)
    args: dict[str, Any] = {
        "module": spec.module,
        "port": spec.port,
        "user": spec.user,
        "env": [*rootfs.environment(spec.port), f"{VERSION_ENV}={service_version}"],
        "labels": dict(labels),
        "history": list(history),
        "mtime": mtime,
        "os": os,
        "architecture": architecture,
    }
    suffix = "-full" if base is not None else ""
    return Derivation(name=f"config-{spec.name}{suffix}", recipe=CONFIG, args=args, inputs=inputs)


def image_manifest(
    spec: ImageSpec, config: Derivation, layers: Sequence[Derivation], base: BaseImage | None
) -> Derivation:
    annotations: dict[str, str] = {}
    base_layers: list[dict[str, Any]] = []
    if base is not None:
        annotations = {oci.BASE_NAME: base.reference, oci.BASE_DIGEST: base.manifest}
        base_layers = [layer.to_json() for layer in base.layers]
    suffix = "-full" if base is not None else ""
    return Derivation(
        name=f"image-{spec.name}{suffix}",
        recipe=MANIFEST,
        args={"annotations": annotations, "base_layers": base_layers},
        inputs={"config": config, **_layers(layers)},
    )
