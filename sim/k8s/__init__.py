"""A Kubernetes API server emulator: the model (`store`) apart from the wire (`app`).

The model:
- `resources`: the table of served resource types (discovery, routing and storage all read it);
  `objects`: what an object is here (`Obj`, a plain dict) and its timestamps.
- `store.Store`: storage and watch: objects, resourceVersion, generation, selectors, limit/continue,
  watch fan-out with a bounded history, finalizers and graceful deletion, defaulting (`defaults`),
  mutating admission hooks (`Store.admission`). Synchronous; in-process controllers may call it directly
  from the server's event loop and subscribe with `Store.watch` (asyncio queues) or `Store.listeners`
  (callbacks).
- `fieldmanager`: managedFields and server-side apply (merge, ownership, conflicts); `patch`: JSON merge,
  JSON patch, strategic merge (merge keys from a small documented table) and the field sets apply tracks.
- `garbagecollector` and `namespaces`: what kube-controller-manager's garbage collector and namespace
  controller do, run by the store within the delete or create that sets them off (`store.Cascade`), so
  that a cascading delete is whole when it returns.
- `persistence`: the snapshot a store with a data directory starts from and is written to.
- `validation`: the 1.30 schemas via kubernetes-validate, honouring `fieldValidation`; `conversion`: an
  object served at another version than its storage's; `eviction`: the Eviction subresource and its
  disruption budgets; `events`: Events as the components record them.

The wire:
- `app.KubeApp`: the ASGI app and its REST routing (served by `sim.serving`, hypercorn behind a front door
  that hands it SPDY upgrades whole); `messages`: a request and its response as the routes see them.
- `discovery`: version, health, discovery documents and the OpenAPI documents (`openapi`: the 1.30
  OpenAPI v2 and v3; `gnostic`: v2 in the protobuf encoding kubectl reads); `authz`: everyone may do
  everything, and `kubectl auth can-i` says so; `metrics`: metrics.k8s.io from the node agent's samples.
- `proxy`: the `services/NAME/proxy` and `pods/NAME/proxy` subresources, streamed to the pods' loopback
  addresses.
- `streaming`: exec and port-forward over WebSockets and SPDY (`spdy`: the SPDY/3.1 sessions);
  `podlogs`: `pods/log`, following with `-f` (`app.KubeApp.log_source` is where a kubelet plugs in).
- `tables`: Table output, as kubectl prints it; `selectors`, `errors`, `kubeconfig`.
"""
