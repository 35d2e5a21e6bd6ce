"""`python -m containers`: build, push and garbage-collect the shop's images.

    python -m containers build [--check] [--full] [--only NAME ...] [--store DIR] [--out DIR]
    python -m containers push --registry HOST[:PORT] [--ecr] [--variant app|full] [--only NAME ...]
    python -m containers gc [--image-store DIR] [--dry-run] [--runtime-only]
    python -m containers verify [--repair] [--store DIR]

Progress goes to stderr, the one-line summary to stdout; a failure is one line on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from containers.build import APP, FULL, Builder, BuildOptions
from containers.errors import ContainersError
from containers.progress import RichReporter, summary


def default_store(out: Path) -> Path:
    return Path(os.environ.get("SHOPSTACK_STORE", out / "store"))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m containers", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--project", type=Path, default=Path.cwd(), help="the source tree (default: .)")
        sub.add_argument("--declaration", type=Path, help="default: PROJECT/containers/images.toml")
        sub.add_argument(
            "--out", type=Path, default=Path("build"), help="layouts and images.json (default: build)"
        )
        sub.add_argument("--store", type=Path, help="the store (default: $SHOPSTACK_STORE or OUT/store)")
        sub.add_argument("--only", nargs="+", default=[], metavar="NAME", help="these images only")
        sub.add_argument("--full", action="store_true", help="also build the images on the pinned base")
        sub.add_argument("--jobs", type=int, default=4, help="steps run at once (default: 4)")
        sub.add_argument("--revision", help="org.opencontainers.image.revision (default: from git)")

    build = commands.add_parser("build", help="build the declared images into the store and OUT/oci")
    common(build)
    build.add_argument(
        "--check", action="store_true", help="rebuild every step and compare, like nix build --check"
    )

    push = commands.add_parser("push", help="build, then push to an OCI registry and record OUT/images.json")
    common(push)
    push.add_argument(
        "--registry", help="host[:port] or URL (plain HTTP only for loopback; default with --ecr)"
    )
    push.add_argument(
        "--variant", choices=[APP, FULL], default=FULL, help="which image to push (default: full)"
    )
    push.add_argument(
        "--ecr", action="store_true", help="authenticate with an ECR token (boto3, AWS_* settings)"
    )
    push.add_argument("--region", help="the ECR region (default: from the AWS settings)")
    push.add_argument(
        "--base-from", help="a repository of the same registry holding the base layers (mounted)"
    )
    push.add_argument("--tag", help="also tag each pushed manifest")
    push.add_argument("--chunk-size", type=int, default=8 << 20, help="blobs above this upload in chunks")

    gc = commands.add_parser("gc", help="delete store paths that OUT/images.json and OUT/oci do not need")
    gc.add_argument("--out", type=Path, default=Path("build"))
    gc.add_argument("--store", type=Path)
    gc.add_argument(
        "--image-store",
        type=Path,
        action="append",
        default=None,
        help="a local cloud image store whose loaded images are kept too; repeatable "
        "(default: $SHOPSTACK_IMAGE_STORE, else .sim/images)",
    )
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    gc.add_argument(
        "--runtime-only", action="store_true", help="keep images' blobs only, not what built them"
    )
    verify = commands.add_parser("verify", help="hash every store path again against its build record")
    verify.add_argument("--out", type=Path, default=Path("build"))
    verify.add_argument("--store", type=Path)
    verify.add_argument(
        "--repair", action="store_true", help="delete corrupt paths: the next build remakes them"
    )
    return top


def build_options(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        project=args.project,
        declaration=args.declaration,
        store=args.store or default_store(args.out),
        out=args.out,
        only=args.only,
        full=args.full or (args.command == "push" and args.variant == FULL),
        check=getattr(args, "check", False),
        jobs=args.jobs,
        revision=args.revision,
    )


def run(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "build":
            return command_build(args)
        if args.command == "push":
            return command_push(args)
        if args.command == "verify":
            return command_verify(args)
        return command_gc(args)
    except ContainersError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def command_build(args: argparse.Namespace) -> int:
    with RichReporter() as reporter:
        result = Builder(build_options(args), reporter).build()
    for mismatch in result.mismatches:
        print(
            f"not reproducible: {mismatch.name}: {mismatch.first_difference} differs "
            f"(stored {mismatch.stored[:12]}, rebuilt {mismatch.rebuilt[:12]})",
            file=sys.stderr,
        )
    summary(result.line())
    return 1 if result.mismatches else 0


def command_push(args: argparse.Namespace) -> int:
    from containers.ecr import login
    from containers.imagesjson import ImagesFile
    from containers.push import Pusher
    from containers.registry import Credentials, Registry

    credentials: Credentials | None = None
    registry_name = args.registry
    if args.ecr:
        ecr = login(args.region)
        credentials, registry_name = ecr.credentials, args.registry or ecr.registry
    if not registry_name:
        raise ContainersError("push needs --registry HOST[:PORT] (or --ecr)")
    with RichReporter() as reporter:
        builder = Builder(build_options(args), reporter)
        result = builder.build()
        reporter.phase("push")
        images = [variants[args.variant] for variants in result.images.values()]
        with Registry(registry_name, credentials, chunk_size=args.chunk_size) as registry:
            pusher = Pusher(
                registry,
                builder.declaration.repository,
                fetch_base_layer=builder.fetch_base_layer,
                base_from=args.base_from,
                tag=args.tag,
                progress=reporter.note,
            )
            report = pusher.push(images, ImagesFile(args.out / "images.json"))
    summary(f"{result.line()}; {report.line()}")
    return 0


def command_gc(args: argparse.Namespace) -> int:
    from containers.gc import collect

    image_stores = args.image_store or [Path(os.environ.get("SHOPSTACK_IMAGE_STORE", ".sim/images"))]
    report = collect(
        args.store or default_store(args.out),
        args.out,
        image_stores=image_stores,
        dry_run=args.dry_run,
        runtime_only=args.runtime_only,
    )
    summary(report.line())
    return 0


def command_verify(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from containers.store import Store
    from containers.verify import verify

    store = Store(args.store or default_store(args.out))
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("verify", total=None)
        report = verify(
            store,
            repair=args.repair,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    for corrupt in report.corrupt:
        print(corrupt.line(), file=sys.stderr)
    summary(report.line())
    return 1 if report.corrupt and not report.repaired else 0
