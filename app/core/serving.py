"""Running the web server's processes: uvicorn, each process with a listening socket of its own.

uvicorn's own `--workers` binds one socket in its parent and hands it to every server process;
they all wait on it, and a connection goes to whichever process accepts it first. Clients that
open their connections together and keep them (a proxy's pool of upstream connections, a load
balancer, the benchmark's wrk) then land unevenly, and stay so: in the benchmark 48 connections
fell 45/3 on two processes (the phase missed its target), 64 fell 18/46, and 32 fell 32/0 when
the load began while the second process was still starting. With SO_REUSEPORT (Linux) each
process has a socket of its own bound to the same address, and the kernel spreads new
connections over the sockets by a hash of each connection's addresses: each process gets
about its share whenever it started, and a process that is gone gets none.

`run` does that with a small supervisor in uvicorn's terms: each process is a uvicorn Server
given its own socket; a process that dies is replaced (unless it failed to start: a broken app
or setting would fail the same way again, and the whole server stops with uvicorn's exit code
for that); SIGINT or SIGTERM stops them all, each finishing its requests as uvicorn does.
With one process, --reload, port 0, a Unix socket or a platform whose SO_REUSEPORT does not
balance (BSDs, macOS) or is missing (Windows), it is uvicorn.run as it is.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger(__name__)

# Linux balances connections between the sockets of a SO_REUSEPORT group (since 3.9); BSDs
# and macOS give them all to one socket, Windows has no such option.
REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
CHECK_SECONDS = 0.2  # how often the supervisor looks at its processes and signals
STOP_SECONDS = 30.0  # how long a stopping process may take to finish its requests


def run(app: str, **options: Any) -> None:
    """uvicorn.run(app, **options), with `options["workers"]` processes each on a socket of its
    own where that balances connections (see the module's docstring)."""
    config = uvicorn.Config(app, **options)
    own_sockets = REUSE_PORT and config.workers > 1 and not config.should_reload
    if not own_sockets or config.port == 0 or config.uds is not None or config.fd is not None:
        uvicorn.run(app, **options)
        return
    code = Supervisor(config).run()
    if code:
        sys.exit(code)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) in a SO_REUSEPORT group, as uvicorn binds its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(config: uvicorn.Config, sock: socket.socket) -> None:
    """A server process: uvicorn's Server on its own socket (as uvicorn's children run)."""
    config.configure_logging()
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Keeps config.workers server processes running until SIGINT or SIGTERM."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.config = config
        self.context = multiprocessing.get_context("spawn")  # (as uvicorn starts its children)
        self.signals: list[int] = []

    def start(self) -> BaseProcess:
        """A server process on a new socket of the group; the socket goes to the child when it
        starts (its descriptor is passed at spawn), so this process closes its own copy: a
        socket left open here with nobody accepting on it would take its share of connections
        and never answer them."""
        sock = listening_socket(self.config.host, self.config.port)
        try:
            process = self.context.Process(target=serve, args=(self.config, sock), daemon=False)
            process.start()
        finally:
            sock.close()
        log.info("started server process %s", process.pid)
        return process

    def run(self) -> int:
        """-> the exit code: 0, or STARTUP_FAILURE when a process could not start serving."""
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda number, frame: self.signals.append(number))
        processes: list[BaseProcess] = []
        try:
            for _ in range(self.config.workers):
                processes.append(self.start())
        except OSError as exc:  # the address is taken (by a server without SO_REUSEPORT)
            log.error("cannot listen on %s:%s: %s", self.config.host, self.config.port, exc)
            self.stop(processes)
            return STARTUP_FAILURE
        code = 0
        while not self.signals:
            time.sleep(CHECK_SECONDS)
            for index, process in enumerate(processes):
                if process.is_alive() or self.signals:
                    continue
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    log.error("server process %s failed to start: stopping", process.pid)
                    code = STARTUP_FAILURE
                    self.signals.append(signal.SIGTERM)
                    break
                log.warning(
                    "server process %s ended (exit code %s): starting another",
                    process.pid,
                    process.exitcode,
                )
                processes[index] = self.start()
        self.stop(processes)
        return code

    @staticmethod
    def stop(processes: list[BaseProcess]) -> None:
        """Ask every process to stop (uvicorn's graceful shutdown), then wait for them."""
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("server process %s did not stop in time: killed", process.pid)
                process.kill()
                process.join()
