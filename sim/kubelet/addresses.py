"""Pod IP allocation: each pod its own loopback address from the cluster's pod CIDR (the CNI plugin's job
upstream). 127.0.0.0/8 is all loopback on Linux, so an address needs no setup to be bound or reached."""

from __future__ import annotations

import ipaddress

from sim.kubelet.pod import HOST_IP


class PodAddresses:
    """Distinct loopback addresses from a CIDR inside 127.0.0.0/8 (never 127.0.0.1, the node's)."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        if not self.network.subnet_of(ipaddress.ip_network("127.0.0.0/8")):  # type: ignore[arg-type]
            raise ValueError(f"pod CIDR {cidr} is not inside 127.0.0.0/8")
        self._hosts = self.network.hosts()
        self._free: list[str] = []
        self.used: set[str] = {HOST_IP}

    def allocate(self) -> str:
        """An address no running pod has: a released one first, else the next never handed out."""
        while self._free:
            ip = self._free.pop(0)
            if ip not in self.used:
                self.used.add(ip)
                return ip
        for candidate in self._hosts:
            ip = str(candidate)
            if ip not in self.used and not ip.endswith(".0") and not ip.endswith(".255"):
                self.used.add(ip)
                return ip
        raise RuntimeError(f"pod CIDR {self.network} is exhausted")

    def release(self, ip: str) -> None:
        """Give back the address of a pod that stopped."""
        if ip in self.used and ip != HOST_IP:
            self.used.discard(ip)
            self._free.append(ip)
