"""The resolver shim a pod's Python processes load: this directory goes first on the pod's PYTHONPATH.

Its modules are imported by top-level name inside the pod (`sitecustomize`, `cluster_resolver`) and use
only the standard library; nothing here imports the rest of `sim`.
"""
