"""`python -m infra.policy`: the policy gate on the rendered Kubernetes state, both stages.

Every object must pass kubernetes-validate (Kubernetes 1.30, strict: no unknown fields) and checkov's
Kubernetes checks must report no failure. A check that does not apply to an object is skipped on that
object with checkov's annotation (`checkov.io/skipN: CKV_K8S_xx=reason`), next to the code that
renders it. Prints one line per failure and exits 1 if there is any. Runs where checkov is installed
(tox's lint env).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from infra.model import ModelConfig, render
from infra.model.render import IMAGE_NAMES

KUBERNETES_VERSION = "1.30.0"
SAMPLE_DIGEST = "sha256:" + "0" * 64


def sample_configs() -> list[ModelConfig]:
    """A config of each stage, shaped as the inventories fill them."""
    local_images = {name: f"127.0.0.1:5000/shopstack/{name}@{SAMPLE_DIGEST}" for name in IMAGE_NAMES}
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    aws_images = {name: f"{registry}/shopstack/{name}@{SAMPLE_DIGEST}" for name in IMAGE_NAMES}
    roles = {
        name: f"arn:aws:iam::123456789012:role/shopstack-{name}"
        for name in ("cart", "accounting", "checkout", "aws-load-balancer-controller", "cluster-autoscaler")
    }
    return [
        ModelConfig(
            images=local_images,
            stage="local",
            aws_endpoint_url="http://127.0.0.1:4566",
            aws_credentials=("testing", "testing"),
        ),
        ModelConfig(images=aws_images, stage="aws", role_arns=roles),
    ]


def _name(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    namespace = f"{meta['namespace']}/" if "namespace" in meta else ""
    return f"{obj['kind']} {namespace}{meta['name']}"


def schema_failures(stage: str, objects: Sequence[dict[str, Any]]) -> Iterator[str]:
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            yield f"{stage}: {_name(obj)}: kubernetes-validate: {err.message}"
        except kubernetes_validate.SchemaNotFoundError:
            yield f"{stage}: {_name(obj)}: kubernetes-validate: no schema for {obj['apiVersion']}"


def checkov_binary() -> str:
    beside = Path(sys.executable).with_name("checkov")
    found = str(beside) if beside.exists() else shutil.which("checkov")
    if found is None:
        raise SystemExit("checkov is not installed here (it is in tox's lint env)")
    return found


def checkov_failures(manifests: Path, checkov: str | None = None) -> Iterator[str]:
    """One line per failed check of the manifests under `manifests` (offline: nothing is downloaded)."""
    command = [checkov or checkov_binary(), "-d", str(manifests), "--framework", "kubernetes"]
    command += ["--quiet", "--compact", "--skip-download"]
    result = subprocess.run([*command, "-o", "json"], capture_output=True, text=True, check=False)
    try:
        reports = json.loads(result.stdout) if result.stdout.strip() else []
    except json.JSONDecodeError:
        yield f"checkov did not report JSON (exit {result.returncode}): {result.stderr.strip()[-300:]}"
        return
    for report in reports if isinstance(reports, list) else [reports]:
        for failed in report.get("results", {}).get("failed_checks", []):
            where = Path(failed["file_path"]).stem
            yield f"{where}: {failed['resource']}: {failed['check_id']} {failed['check_name']}"


def main() -> int:
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shopstack-policy-") as directory:
        for config in sample_configs():
            objects = render(config)
            failures += schema_failures(config.stage, objects)
            path = Path(directory) / f"{config.stage}.yaml"
            path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        failures += checkov_failures(Path(directory))
    for line in failures:
        print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
