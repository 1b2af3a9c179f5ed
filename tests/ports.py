"""Free TCP ports on 127.0.0.1 for servers a test starts."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_ports(count: int) -> list[int]:
    """`count` distinct ports, free when returned. All probes stay bound until every port is chosen: a probe
    closed before the next bind may hand its port out again, and a Ray head given one port twice refuses to
    start ("trying to use a port number ... that is used by other components")."""
    with ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
        return ports
