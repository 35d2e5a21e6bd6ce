"""`python -m containers.nodestore`: the local cloud's image store from the command line, like `kind load`.

    python -m containers.nodestore [--store DIR] load LAYOUT [--name NAME] [--tag TAG]
    python -m containers.nodestore [--store DIR] resolve REFERENCE
    python -m containers.nodestore [--store DIR] list

The store defaults to $SHOPSTACK_IMAGE_STORE, else .sim/images. A failure is one line, exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from containers.nodestore.errors import ImageError
from containers.nodestore.store import ImageStore


def default_store() -> Path:
    return Path(os.environ.get("SHOPSTACK_IMAGE_STORE", ".sim/images"))


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m containers.nodestore", description=__doc__.split("\n\n")[0])
    top.add_argument(
        "--store", type=Path, default=None, help="default: $SHOPSTACK_IMAGE_STORE or .sim/images"
    )
    commands = top.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="import OCI image layouts (their `app` manifest)")
    load.add_argument("layouts", nargs="+", type=Path)
    load.add_argument("--name", help="the image name (default: from <out>/images.json, else the directory)")
    load.add_argument("--tag", default="latest")
    resolve = commands.add_parser("resolve", help="unpack an image and print how it runs, as JSON")
    resolve.add_argument("reference")
    commands.add_parser("list", help="loaded images")
    args = top.parse_args(argv)
    store = ImageStore(args.store or default_store())
    try:
        if args.command == "load":
            for layout in args.layouts:
                loaded = store.load(layout, args.name, args.tag)
                print(
                    f"loaded {loaded.names[0]} {loaded.digest} "
                    f"({loaded.layers} layers, {loaded.bytes / 1e6:.1f} MB)"
                )
        elif args.command == "resolve":
            spec = store.resolve(args.reference)
            print(
                json.dumps(
                    {
                        "digest": spec.digest,
                        "argv": spec.argv,
                        "env": spec.env,
                        "workingDir": str(spec.working_dir),
                        "user": spec.user,
                        "rootfs": str(spec.rootfs),
                    },
                    indent=2,
                )
            )
        else:
            for digest, names in sorted(store.images().items()):
                print(digest, " ".join(names))
    except ImageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
