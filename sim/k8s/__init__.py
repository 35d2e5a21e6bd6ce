"""A Kubernetes API server emulator: the model (`store`) apart from the wire (`app`).

- `resources`: the table of served resource types (discovery, routing and storage all read it).
- `store.Store`: objects, resourceVersion, generation, selectors, limit/continue, watch fan-out with a
  bounded history, owner-reference garbage collection, finalizers, server-side apply with managedFields,
  and persistence to a snapshot. Synchronous; in-process controllers may call it directly from the
  server's event loop and subscribe with `Store.watch` (asyncio queues) or `Store.listeners` (callbacks).
- `app.KubeApp`: the ASGI app (served by `sim.serving`, hypercorn behind a front door that hands it SPDY
  upgrades whole); `log_source` is where a kubelet plugs in `pods/log` (`podlogs` follows it for `-f`).
- `streaming`: exec and port-forward over WebSockets and SPDY (`spdy`: the SPDY/3.1 sessions).
- `patch`: JSON merge, JSON patch, strategic merge (merge keys from a small documented table) and the
  field sets of server-side apply. `tables`: Table output. `openapi`: the 1.30 OpenAPI v2 and v3
  documents (`gnostic`: v2 in the protobuf encoding kubectl reads). `validation`: the 1.30 schemas via
  kubernetes-validate, honouring `fieldValidation`.
"""
