"""Ports chosen for processes started later are never handed out twice."""

from __future__ import annotations

from sim.supervisor.process import free_port


def test_no_port_is_handed_out_twice_even_before_it_is_bound() -> None:
    ports = [free_port() for _ in range(2000)]  # bind(0) alone repeats ports well before this
    assert len(set(ports)) == len(ports)
