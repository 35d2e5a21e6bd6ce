"""The service-code step: a service's package and services/common (with their templates, static files and
data), with their bytecode, packed as one layer under /app."""

from __future__ import annotations

import shutil

from containers import tarball
from containers.derivation import BuildContext, Derivation, Recipe
from containers.hashing import canonical_json
from containers.recipes import bytecode, rootfs
from containers.tarball import LayerTree


def pack_code(context: BuildContext) -> None:
    staging = context.out / "staging"
    shutil.copytree(context.inputs["sources"], staging)
    if context.args["bytecode"]:
        bytecode.compile_tree(staging, rootfs.APP)
    tree = LayerTree()
    tree.add_tree(staging, rootfs.APP.lstrip("/"))
    info = tree.write(context.out / "layer.tar.gz", int(context.args["mtime"]))
    (context.out / "layer.json").write_bytes(canonical_json(info.to_json()))
    shutil.rmtree(staging)


PACK = Recipe("pack-code", pack_code, (tarball, rootfs, bytecode))


def code_layer(image: str, sources: Derivation, mtime: int, compile_bytecode: bool) -> Derivation:
    return Derivation(
        name=f"layer-code-{image}",
        recipe=PACK,
        args={
            "mtime": mtime,
            "zlib": tarball.ZLIB_VERSION,
            "compress_level": tarball.COMPRESS_LEVEL,
            "bytecode": bytecode.compiler() if compile_bytecode else None,
        },
        inputs={"sources": sources},
    )
