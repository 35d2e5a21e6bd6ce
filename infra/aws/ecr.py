"""ECR: one repository per service and the images of build/images.json in them.

Repositories are `<project>/<service>`, scanned on push, with immutable tags, AES256-encrypted, and a
lifecycle policy keeping the last N images; drift in scanning, tag mutability or the lifecycle policy is
repaired (the encryption of a repository is fixed at its creation).

Images are published by manifest digest, and only those a repository lacks. With `image_publisher ==
"ecr"` (real AWS) each image is pushed over the registry API (`containers.push.Pusher`, the same client
`python -m containers push --ecr` uses). With `"local-store"` (the local cloud) the OCI layout is loaded
into the local cloud's image store (as `kind load` does) and its manifest is registered in the emulator's
ECR with `put_image`, so the repository lists it.

How digests round-trip: the emulator computes its own digest for a manifest put without one (FACTS.md:
"ECR image digests are not manifest digests"), but keeps the `imageDigest` given to `put_image`, and
`batch_get_image` by that digest finds it. So the local path always passes the manifest's own digest, and
`PublishedImages` asks each repository for the digests of build/images.json; real ECR computes the
manifest's digest itself, which is the same value.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pyinfra.api.command import FunctionCommand
from pyinfra.api.exceptions import OperationValueError
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from containers.artifact import Blob, BuiltImage
from containers.ecr import login
from containers.errors import ContainersError
from containers.imagesjson import ImagesFile
from containers.nodestore import ImageStore
from containers.oci import Descriptor, Manifest
from containers.push import Pusher
from containers.registry import Registry
from infra.aws.tags import tag_list, tags
from infra.changes import changes
from infra.cloud import Cloud, cloud_of
from infra.fact import ApiFact
from infra.failure import stop
from infra.settings import Settings

BUILD_FIRST = "run `python -m containers build` first"


class BuildMissing(OperationValueError):
    """build/images.json or an image's layout is missing or not what it should be."""


def repository_name(settings: Settings, service: str) -> str:
    return f"{settings.project}/{service}"


def image_reference(settings: Settings, service: str, digest: str) -> str:
    """Where the cluster pulls `service`'s image: `<account>.dkr.ecr.<region>.amazonaws.com/<project>/
    <service>@sha256:...` (`digest` as `sha256:...` or a whole `name@sha256:...` reference)."""
    digest = digest.rsplit("@", 1)[-1]
    registry = f"{settings.account_id}.dkr.ecr.{settings.region}.amazonaws.com"
    return f"{registry}/{repository_name(settings, service)}@{digest}"


def lifecycle_policy(keep_images: int) -> dict[str, Any]:
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the last {keep_images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            }
        ]
    }


def built_images(settings: Settings) -> dict[str, str]:
    """build/images.json: service -> `name@sha256:digest`; one error line when there is none."""
    try:
        images = ImagesFile(settings.images_file).read()
    except ContainersError as err:
        raise BuildMissing(f"{err}: {BUILD_FIRST}") from None
    if not images:
        raise BuildMissing(f"{settings.images_file} is missing or empty: {BUILD_FIRST}")
    return images


class EcrRepositories(ApiFact[dict[str, dict[str, Any] | None]]):
    """The scan-on-push, tag mutability, encryption and lifecycle policy of each named repository (None
    when it does not exist) and of every other repository whose name starts with `prefix`."""

    def command(self, prefix: str, repository_names: list[str]) -> str:
        return self.request(prefix=prefix, repository_names=repository_names)

    def read(  # type: ignore[override]
        self, cloud: Cloud, prefix: str, repository_names: list[str]
    ) -> dict[str, dict[str, Any] | None]:
        ecr = cloud.client("ecr")
        found: dict[str, dict[str, Any] | None] = dict.fromkeys(repository_names)
        for page in ecr.get_paginator("describe_repositories").paginate():
            for repository in page["repositories"]:
                if repository["repositoryName"] not in found and not repository["repositoryName"].startswith(
                    prefix
                ):
                    continue
                try:
                    policy = json.loads(
                        ecr.get_lifecycle_policy(repositoryName=repository["repositoryName"])[
                            "lifecyclePolicyText"
                        ]
                    )
                except ClientError as err:
                    if err.response["Error"]["Code"] != "LifecyclePolicyNotFoundException":
                        raise
                    policy = None
                found[repository["repositoryName"]] = {
                    "scan_on_push": repository["imageScanningConfiguration"]["scanOnPush"],
                    "mutability": repository["imageTagMutability"],
                    "encryption": repository["encryptionConfiguration"]["encryptionType"],
                    "lifecycle": policy,
                }
        return found


class PublishedImages(ApiFact[dict[str, bool]]):
    """For each repository -> manifest digest: whether the image is published (in the repository and, when
    `image_store` is given, loaded in that image store)."""

    def command(self, wanted: dict[str, str], image_store: str | None = None) -> str:
        return self.request(wanted=wanted, image_store=image_store)

    def read(self, cloud: Cloud, wanted: dict[str, str], image_store: str | None = None) -> dict[str, bool]:  # type: ignore[override]
        ecr = cloud.client("ecr")
        loaded = set(ImageStore(Path(image_store)).images()) if image_store else None
        published = {}
        for repository, digest in wanted.items():
            try:
                images = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageDigest": digest}])
            except ClientError as err:
                if err.response["Error"]["Code"] != "RepositoryNotFoundException":
                    raise
                images = {"images": []}
            in_ecr = any(image["imageId"].get("imageDigest") == digest for image in images["images"])
            published[repository] = in_ecr and (loaded is None or digest in loaded)
        return published


@operation()
def repositories(
    services: list[str] | None = None, keep_images: int = 30, present: bool = True
) -> Generator[FunctionCommand, None, None]:
    """One ECR repository per service of `services` (by default those of build/images.json), keeping the
    last `keep_images` images. `present=False` deletes them (by default every `<project>/` repository)."""
    settings = cloud_of(host).settings
    if services is None and present:
        try:
            services = sorted(built_images(settings))
        except BuildMissing as err:
            yield stop(str(err))
            return
    wanted = [repository_name(settings, service) for service in services or []]
    current = host.get_fact(EcrRepositories, prefix=repository_name(settings, ""), repository_names=wanted)
    names = wanted if services is not None else sorted(current)
    policy = lifecycle_policy(keep_images)
    commands: list[FunctionCommand] = []
    for repository in names:
        found = current.get(repository)
        if not present:
            if found is not None:
                commands.append(FunctionCommand(_delete_repository, (repository,), {}))
            continue
        if found is None:
            commands.append(FunctionCommand(_create_repository, (repository, policy), {}))
            continue
        if found["scan_on_push"] is not True:
            commands.append(
                FunctionCommand(
                    _configure,
                    (
                        repository,
                        "put_image_scanning_configuration",
                        {"imageScanningConfiguration": {"scanOnPush": True}},
                    ),
                    {},
                )
            )
        if found["mutability"] != "IMMUTABLE":
            commands.append(
                FunctionCommand(
                    _configure,
                    (repository, "put_image_tag_mutability", {"imageTagMutability": "IMMUTABLE"}),
                    {},
                )
            )
        if found["lifecycle"] != policy:
            commands.append(
                FunctionCommand(
                    _configure,
                    (repository, "put_lifecycle_policy", {"lifecyclePolicyText": json.dumps(policy)}),
                    {},
                )
            )
    state = "scanned on push, immutable, with a lifecycle policy" if present else "absent"
    yield from changes(commands, f"repositories {', '.join(names) or '(none)'} are {state}")


def _create_repository(state: State, host: Host, repository: str, policy: dict[str, Any]) -> None:
    cloud = cloud_of(host)
    ecr = cloud.client("ecr")
    ecr.create_repository(
        repositoryName=repository,
        imageScanningConfiguration={"scanOnPush": True},
        imageTagMutability="IMMUTABLE",
        encryptionConfiguration={"encryptionType": "AES256"},
        tags=tag_list(tags(cloud.settings.project, repository)),
    )
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=json.dumps(policy))


def _configure(state: State, host: Host, repository: str, method: str, arguments: dict[str, Any]) -> None:
    getattr(cloud_of(host).client("ecr"), method)(repositoryName=repository, **arguments)


def _delete_repository(state: State, host: Host, repository: str) -> None:
    cloud_of(host).client("ecr").delete_repository(repositoryName=repository, force=True)


def layout_image(layout: Path, service: str, digest: str) -> BuiltImage:
    """The image `digest` of the OCI layout at `layout`, as the pusher takes it (a blob the layout does not
    hold has no path, like a full image's base layers)."""
    blobs = layout / "blobs" / "sha256"
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError):
        raise BuildMissing(f"{layout} is not an OCI image layout: {BUILD_FIRST}") from None
    for entry in index.get("manifests") or []:
        if entry.get("digest") == digest:
            descriptor = Descriptor.from_json(entry)
            break
    else:
        raise BuildMissing(f"{layout} has no image {digest} (build/images.json names it): {BUILD_FIRST}")
    manifest_path = blobs / digest.removeprefix("sha256:")
    if not manifest_path.is_file():
        raise BuildMissing(f"{layout} lacks the manifest {digest}: {BUILD_FIRST}")
    manifest = Manifest.from_bytes(manifest_path.read_bytes())

    def blob(of: Descriptor) -> Blob:
        path = blobs / of.digest.removeprefix("sha256:")
        return Blob(of, path if path.is_file() else None)

    return BuiltImage(
        name=service,
        variant=descriptor.annotations.get("org.opencontainers.image.ref.name", "app"),
        manifest=descriptor,
        manifest_path=manifest_path,
        config=blob(manifest.config),
        layers=tuple(blob(layer) for layer in manifest.layers),
        store_names=(),
    )


@operation()
def publish_images(images: Mapping[str, str] | None = None) -> Generator[FunctionCommand, None, None]:
    """Publish the images `images` (service -> `name@sha256:digest`; build/images.json when None) that
    their repositories lack."""
    settings = cloud_of(host).settings
    try:
        images = dict(images) if images is not None else built_images(settings)
    except BuildMissing as err:
        yield stop(str(err))
        return
    wanted = {
        repository_name(settings, service): reference.rsplit("@", 1)[-1]
        for service, reference in sorted(images.items())
    }
    store = str(settings.image_store) if settings.image_publisher == "local-store" else None
    published = host.get_fact(PublishedImages, wanted=wanted, image_store=store)
    missing = [service for service in sorted(images) if not published[repository_name(settings, service)]]
    commands = []
    for service in missing:
        digest = wanted[repository_name(settings, service)]
        try:
            built = layout_image(settings.build_dir / "oci" / service, service, digest)
        except BuildMissing as err:
            yield stop(str(err))
            return
        commands.append(FunctionCommand(_publish, (built,), {}))
    yield from changes(commands, f"the {len(images)} images of {settings.images_file} are published")


def push_to_registry(registry: Registry, project: str, image: BuiltImage) -> str:
    """Push `image` to `<project>/<name>` over the registry API (only the blobs the registry lacks);
    its reference by digest. The layout must hold every blob: there is no base registry to copy from."""
    return Pusher(registry, project).push_image(image)


def _publish(state: State, host: Host, image: BuiltImage) -> None:
    cloud = cloud_of(host)
    settings = cloud.settings
    repository = repository_name(settings, image.name)
    data = image.manifest_path.read_bytes()
    if settings.image_publisher == "ecr":
        ecr_login = login(client=cloud.client("ecr"))
        with Registry(ecr_login.registry, ecr_login.credentials) as registry:
            push_to_registry(registry, settings.project, image)
    else:
        assert settings.image_store is not None, "Settings checks local-store has an image_store"
        layout = image.manifest_path.parents[2]
        ImageStore(settings.image_store).load(layout, name=repository, ref=image.variant)
        cloud.client("ecr").put_image(
            repositoryName=repository,
            imageManifest=data.decode(),
            imageManifestMediaType=image.manifest.media_type,
            imageDigest=image.digest,
        )
    host.log_styled(f"published {image_reference(settings, image.name, image.digest)}")
