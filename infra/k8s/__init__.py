"""pyinfra facts and operations for the deploy's Kubernetes state: access, server-side apply, prune, wait."""
