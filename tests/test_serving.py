"""`chorus serve --workers N` on Linux (app/core/serving.py): each server process listens on a
socket of its own bound to the same port (SO_REUSEPORT), so the kernel spreads connections
over them whenever each started; one that dies is replaced; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from app.core import serving
from app.core.config import Settings
from bench.cpu import ESTABLISHED, LISTENING, sockets_held, tcp_sockets
from tests.processes import Server, chorus_env, servers

pytestmark = pytest.mark.skipif(not serving.REUSE_PORT, reason="Linux's SO_REUSEPORT")


def _children(pid: int) -> list[int]:
    """The server processes of `chorus serve` (its children but multiprocessing's helper)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"resource_tracker" not in command:
            found.append(int(entry.name))
    return sorted(found)


def _port(server: Server) -> int:
    return int(server.url.rpartition(":")[2])


def _wait(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_each_server_process_listens_on_a_socket_of_its_own(settings: Settings) -> None:
    with servers(chorus_env(settings), workers=2) as (server,):
        port = _port(server)
        children = _children(server.process.pid)
        assert len(children) == 2
        # One each, none left in the supervisor. (A socket listens once its process has
        # started serving: until then the kernel gives the group's connections to the others.)
        _wait(lambda: len(tcp_sockets(port, LISTENING)) == 2)
        listening = tcp_sockets(port, LISTENING)
        assert [sockets_held(child, listening) for child in children] == [1, 1]
        assert sockets_held(server.process.pid, listening) == 0

        # Connections kept open (as a proxy keeps its upstream ones) go to both processes.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        try:

            def split() -> list[int]:
                # (The servers' ends: their local port is `port`.)
                established = tcp_sockets(port, ESTABLISHED)
                return [sockets_held(child, established) for child in children]

            _wait(lambda: sum(split()) == 40)  # every one accepted
            assert min(split()) > 0, split()
        finally:
            for client in clients:
                client.close()


def test_a_server_process_that_dies_is_replaced(settings: Settings) -> None:
    with servers(chorus_env(settings), workers=2) as (server,):
        port = _port(server)
        _wait(lambda: len(tcp_sockets(port, LISTENING)) == 2)
        first, second = _children(server.process.pid)
        os.kill(first, signal.SIGKILL)
        _wait(
            lambda: (
                len(_children(server.process.pid)) == 2
                and first not in _children(server.process.pid)
            )
        )
        replacement = next(c for c in _children(server.process.pid) if c != second)
        # The new process listens on a new socket of the group; the dead one's is gone.
        _wait(lambda: sockets_held(replacement, tcp_sockets(port, LISTENING)) == 1)
        assert len(tcp_sockets(port, LISTENING)) == 2
        for _ in range(20):  # new connections, whichever socket each lands on, are answered
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert server.process.poll() is None

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=40) == 0
        assert _children(server.process.pid) == [] and tcp_sockets(port, LISTENING) == set()
