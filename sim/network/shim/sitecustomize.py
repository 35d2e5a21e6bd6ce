"""Run at the start of every Python process of a pod (this directory is first on its PYTHONPATH):
installs the cluster resolver, then runs the `sitecustomize` this one shadows, if there is one."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

import cluster_resolver


def _run_shadowed() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


cluster_resolver.install_from_environment()
_run_shadowed()
