"""The bench prints how each signing load's connections fell on the server processes
(bench/cpu.connections, from /proc): it must count every connection, each at the process
that accepted it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cpu

# A stand-in server process: accepts on the listening socket it inherited and keeps every
# connection. "serve" in its command line makes it one of the bench's server processes.
ACCEPTING = """
import socket, sys
listener = socket.socket(fileno=int(sys.argv[1]))
held = []
while True:
    held.append(listener.accept()[0])
"""


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc")
def test_every_connection_is_counted_at_the_process_that_holds_it() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    servers = [
        subprocess.Popen([sys.executable, "-c", ACCEPTING, str(fd), "serve"], pass_fds=(fd,))
        for _ in range(2)
    ]
    clients = []
    try:
        listener.close()  # (the stand-ins have their own)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(9)]
        deadline = time.monotonic() + 30
        while sum(cpu.connections(port)) < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        split = cpu.connections(port)
        assert sum(split) == 9 and 1 <= len(split) <= 2
        assert split == sorted(split, reverse=True)
        assert cpu.connections(port, cpu.FLOOR) == []  # other kinds are not counted
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.kill()
            server.wait()
