"""free_ports hands out distinct ports even where the kernel gives a just-closed port out again, as it did
in CI when a Ray head got one port for its GCS and its client server."""

from __future__ import annotations

import ports
import pytest


class ReusingKernel:
    """Sockets whose bind to port 0 takes the lowest port not bound right now, so a closed probe's port is
    the next one handed out."""

    def __init__(self) -> None:
        self.bound: set[int] = set()

    def socket(self) -> ReusingKernel.Socket:
        return ReusingKernel.Socket(self)

    class Socket:
        def __init__(self, kernel: ReusingKernel) -> None:
            self.kernel = kernel
            self.port = 0

        def bind(self, address: tuple[str, int]) -> None:
            self.port = min(set(range(40000, 40100)) - self.kernel.bound)
            self.kernel.bound.add(self.port)

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

        def __enter__(self) -> ReusingKernel.Socket:
            return self

        def __exit__(self, *exc: object) -> None:
            self.kernel.bound.discard(self.port)


def test_ports_asked_together_are_distinct_where_a_closed_port_is_handed_out_again(monkeypatch):
    kernel = ReusingKernel()
    monkeypatch.setattr(ports.socket, "socket", kernel.socket)
    chosen = ports.free_ports(4)
    assert len(set(chosen)) == 4
    assert kernel.bound == set(), "every probe is closed once the ports are chosen"


@pytest.mark.parametrize("count", [1, 3])
def test_real_ports_are_distinct_and_free_to_bind(count):
    import socket

    chosen = ports.free_ports(count)
    assert len(set(chosen)) == count
    for port in chosen:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
