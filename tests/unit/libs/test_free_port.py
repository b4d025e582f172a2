"""Ports for services started by tests and `podium up`: outside the range the kernel gives outgoing
connections, so none of them can take a port between its choice and the service's bind."""

from __future__ import annotations

import socket

from libs.devstack.broker import _ephemeral_start, free_port


def test_ports_are_below_the_ephemeral_range_never_twice_and_free():
    start = _ephemeral_start()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    if start > 2048:  # Linux: /proc says where outgoing connections take their ports from
        assert all(1024 <= p < start for p in ports), (start, sorted(ports)[-3:])
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # free when handed out
