"""The local cluster's network, each node's data plane (kube-proxy's and the cluster DNS's job): each pod
has its own loopback address (the kubelet picks it: `sim.kubelet.addresses`), each Service a ClusterIP
from a loopback range with a proxy on it, and pods resolve Service names.

It reads what the API and its controllers write (Services, and the EndpointSlices of
`sim.controllers.endpoints`); nothing in `sim.controllers` depends on it.

- `proxy`: the service proxy, a listener per ClusterIP Service port balancing over ready endpoints.
- `dns`: the Service records as a hosts file; `shim/`: the resolver a pod's Python processes load
  (`sitecustomize`), which applies the pod's search domains to it before the normal resolver.
- `links`: the `<SVC>_SERVICE_HOST`/`_PORT` variables. `node.NodeNetwork` assembles proxy, DNS and
  links for a cluster with nodes and gives the kubelet each pod's variables.
"""
