"""A Kubernetes API server emulator: the model (`store`) apart from the wire (`app`).

- `resources`: the table of served resource types (discovery, routing and storage all read it).
- `store.Store`: objects, resourceVersion, generation, selectors, limit/continue, watch fan-out with a
  bounded history, owner-reference garbage collection, finalizers, server-side apply with managedFields,
  and persistence to a snapshot. Synchronous; in-process controllers may call it directly from the
  server's event loop and subscribe with `Store.watch` (asyncio queues) or `Store.listeners` (callbacks).
- `app.KubeApp`: the ASGI app (run under hypercorn by `python -m sim.k8s`); `log_source` is where a
  kubelet plugs in `pods/log`.
- `patch`: JSON merge, JSON patch, strategic merge (merge keys from a small documented table) and the
  field sets of server-side apply. `tables`: Table output. `openapi`: the minimal documents kubectl reads.
  `validation`: the 1.30 schemas via kubernetes-validate, honouring `fieldValidation`.
"""
