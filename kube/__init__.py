"""Kubernetes' own contracts that more than one part needs, in the standard library alone: the local
cloud's API server and kubelet, and the deploy, read them without importing each other."""
