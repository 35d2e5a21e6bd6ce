"""The local cloud: everything Shopstack needs from AWS and Kubernetes, offline, on loopback."""
