"""CPU time of the processes a benchmark runs, from /proc, by what they are.

A rate on a shared machine swings with whatever else runs; the CPU a request costs swings
much less. So the bench reads each process's CPU ticks before and after a load and reports
the cost per request, split by who paid it: Chorus's server processes, its mail workers, the
database's backends, the bench itself (its SMTP sink and webhook receiver), the floor.
wrk's own CPU is left out (it is the load, not the server).
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

SERVERS = "servers"
WORKERS = "mail workers"
POSTGRES = "PostgreSQL"
BENCH = "bench (sink)"
FLOOR = "floor"
GROUPS = (SERVERS, POSTGRES, WORKERS, BENCH, FLOOR)
CHORUS = (SERVERS, POSTGRES, WORKERS)  # what Chorus itself costs
SURGE = (*CHORUS, BENCH)  # what a surge at Chorus costs the machine (the sink included)

Ticks = dict[int, tuple[str, int]]


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields from the state on (index 1: ppid, 11: utime, 12: stime)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _kind(pid: int, parent_kind: str | None) -> str | None:
    """What a process the bench started is, from its command line (its children are what it
    is: uvicorn's server processes are the children of `chorus serve`)."""
    if parent_kind is not None:
        return parent_kind
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    if b" serve " in command:
        return SERVERS
    if b" worker" in command:
        return WORKERS
    if b"bench.floor" in command:
        return FLOOR
    return None  # wrk, a CLI command in passing


def _stats() -> dict[int, list[str] | None]:
    return {int(p.name): _stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}


def _processes(stats: dict[int, list[str] | None]) -> dict[int, str]:
    """The kind of the bench's process and of every process it started (but wrk), by pid."""
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    kinds: dict[int, str] = {os.getpid(): BENCH}
    todo: list[tuple[int, str | None]] = [(pid, None) for pid in children.get(os.getpid(), [])]
    while todo:
        pid, parent_kind = todo.pop()
        kind = _kind(pid, parent_kind)
        if kind is not None:
            kinds[pid] = kind
        todo += [(child, kind) for child in children.get(pid, [])]
    return kinds


def ticks(conn: psycopg.Connection[tuple[int]]) -> Ticks:
    """CPU ticks so far, and the kind, of the bench's process, of every process it started (but
    wrk), and of the database's backends (but this connection's)."""
    stats = _stats()
    kinds = _processes(stats)
    for (pid,) in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    ):
        kinds[pid] = POSTGRES
    found: Ticks = {}
    for pid, kind in kinds.items():
        fields = stats.get(pid) or _stat(pid)
        if fields is not None:
            found[pid] = (kind, int(fields[11]) + int(fields[12]))
    return found


def seconds(before: Ticks, after: Ticks, kinds: tuple[str, ...] = GROUPS) -> dict[str, float]:
    """CPU seconds spent between two readings, by kind (a process gone since is not counted:
    read `after` before stopping anything)."""
    spent = dict.fromkeys(kinds, 0.0)
    per_second = os.sysconf("SC_CLK_TCK")
    for pid, (kind, now) in after.items():
        if kind in spent:
            was = before.get(pid, (kind, 0))[1]
            spent[kind] += (now - was) / per_second
    return spent


ESTABLISHED, LISTENING = "01", "0A"  # a socket's state as /proc/net/tcp writes it


def tcp_sockets(port: int, state: str = ESTABLISHED) -> set[int]:
    """The inodes of the TCP sockets in `state` whose local port is `port`."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is ADDRESS:PORT in hex; st is the state; inode is field 9.
            if fields[3] == state and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def sockets_held(pid: int, inodes: set[int]) -> int:
    """How many of the sockets `inodes` process `pid` holds (0 for a process gone)."""
    held = 0
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:  # (closed meanwhile)
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                held += 1
    except OSError:
        return 0
    return held


def connections(port: int, kind: str = SERVERS) -> list[int]:
    """How many of the connections to `port` each server process of `kind` holds, most
    first: a client keeps its connections for the whole load, so where they fell (by the
    kernel's hash over the processes' sockets, app/core/serving.py) decides how the
    processes share it."""
    wanted = tcp_sockets(port)
    counts = [
        sockets_held(pid, wanted) for pid, found in _processes(_stats()).items() if found == kind
    ]
    return sorted((n for n in counts if n), reverse=True)
