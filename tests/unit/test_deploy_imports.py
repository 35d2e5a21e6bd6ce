"""The deploy's AWS path stands on its own: loading `deploy.py`, `teardown.py` and `inventory/aws.py` with
everything they import loads nothing of the local cloud (`sim`) and none of the services' runtime
(OpenFeature, its flagd provider, gRPC), so a real AWS deploy neither loads nor needs them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.pyinfra_run import REPO

FORBIDDEN = ("sim", "openfeature", "grpc", "quart", "hypercorn", "aiokafka")

PROBE = """
import ast, importlib, json, sys
for path in ("deploy.py", "teardown.py", "inventory/aws.py"):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:  # `from infra.aws import eks`: a submodule
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_aws_path_loads_nothing_of_the_simulator_or_the_services_runtime() -> None:
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    )
    assert "infra.aws.eks" in loaded, "the probe loaded the deploy"
    assert "infra.k8s.apply" in loaded, "the probe loaded the deploy"
    offending = [name for name in loaded if name.split(".")[0] in FORBIDDEN]
    assert offending == []
