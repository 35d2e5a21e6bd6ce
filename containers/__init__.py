"""Nix-style, content-addressed, reproducible OCI images for the shop, built without a Docker daemon.

What is built
    `containers/images.toml` declares every image (one line per service: module, dependency group, port,
    user); `python -m containers build` reads it and nothing else describes an image. An image's layers
    are the locked dependencies of its group under /opt/shopstack (one layer per group, shared by every
    image of that group) and its code under /app (services/common and the service's package, with their
    templates, static files and data); bytecode is compiled in unchecked-hash mode.

Derivations and the store (derivation.py, store.py, realise.py)
    Every step is a derivation: import the lock files, resolve the group's closure (uv export, evaluated
    for the declared target), fetch each wheel (fixed output: the lock's sha256), install each wheel into
    its own store path (pypa installer), pack the dependency layer, import the service's sources (fixed
    output: their content hash), pack the code layer, write the image config, write the manifest. A
    step's output lives at `<store>/<key>-<name>`, where the key hashes its recipe's source text, its
    arguments (target platform, Python and tool versions, mtime, user, port...) and its inputs' output
    hashes. A step whose key is in the store is not run; keying on inputs' outputs gives early cut-off
    (a rebuilt input that comes out the same stops the rebuild there). So a change to one service's code
    rebuilds that service's sources, code layer, config and manifest, and nothing else; a change to
    services/common rebuilds every code layer; a change to uv.lock rebuilds only the wheels that changed
    and the layers that hold them.

Reproducible bytes (tarball.py, recipes/bytecode.py)
    Sorted entries with every parent directory, uid/gid 0 without names, one mtime (SOURCE_DATE_EPOCH,
    else 0), modes 0755/0644, gzip without name or time; no build path in any file (installs are staged
    with the image's paths, pycs are compiled with the image's paths, records and caches stay out of the
    layers). Two builds in different directories, by different users, at different times give the same
    digests; `build --check` rebuilds every step and compares, like `nix build --check`. The inputs that
    do change bytes are keyed: the zlib version (compressed bytes) and the building CPython's version
    (bytecode).

Images and the base (oci.py, layout.py, recipes/image.py, bases/)
    Two variants share the same layers. The "app" image holds only the image's own layers: it is
    complete, and it is what the local cloud runs (it unpacks the layers and starts the entrypoint with
    the host's Python of the same major.minor, which the `io.shopstack.python` label declares). The
    "full" image (`--full`) puts the same layers on the base python:3.11-slim, pinned by digest in
    bases/python-3.11-slim.toml. The base is a fixed-output input: its manifest, config and layer
    descriptors are recorded in the repository; its config blob (for the layers' diff_ids, env and
    history) is fetched by digest once, where its registry is reachable, and checked; its layers are
    never needed to build, only to push to a registry that lacks them (then mounted from a repository
    of that registry, e.g. an ECR pull-through cache, or copied through the store). A full image's OCI
    layout therefore omits the base layers' blobs, which the image-layout specification allows.
    Both run as a numeric non-root user, with entrypoint `python -m services.<package>`, PYTHONPATH,
    working dir /app, the exposed port, and the OCI labels source, revision (the last commit that
    touched the image's inputs, or `--revision`) and version. Their environment's SERVICE_VERSION names
    the build, `<version>+<revision>` (a commit id shortened to 12 hex digits); the service reports it
    in every response and in its telemetry. It is a build input like any other: the same revision gives
    the same digests, another revision another config, so another digest for every image, while the
    layers stay shared.

Outputs and distribution (build.py, push.py, registry.py, ecr.py, imagesjson.py, gc.py)
    `build/oci/<name>/` is an OCI image layout per image (refs `app` and `full`), its blobs hard-linked
    from the store; `build/images.json` maps each service to a digest-pinned reference. `push` speaks the
    distribution API (HEAD to skip, cross-repository mount, monolithic or chunked upload, manifest PUT by
    digest), authenticates with an ECR token when asked, and records the pushed references in
    images.json. `gc` keeps what images.json and the layouts need and deletes the rest of the store.
"""
